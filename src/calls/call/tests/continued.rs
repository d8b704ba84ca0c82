//! A call the PBX sends with `X-Protocol` (an AMI `Redirect` to a
//! department code, a click-to-call through Asterisk into one) continues
//! that attendance: nothing is opened, the department and the answering
//! agent are written on it, and it ends by the department's rule.

use super::*;
use crate::domain::AttendanceChange;

/// A protocol opened before the call reached the bridge.
const CARRIED: &str = "20261207000042";

fn pbx_invite() -> SipMessage {
    invite_with(
        "700",
        &format!("P-Asserted-Identity: <sip:551133334444@127.0.0.1>\nX-Protocol: {CARRIED}\n"),
    )
}

fn opens(sim: &Sim) -> usize {
    sim.out
        .iter()
        .filter(|o| matches!(o, Output::OpenAttendance(_)))
        .count()
}

#[test]
fn a_pbx_call_with_x_protocol_continues_that_attendance() {
    let mut sim = Sim::start_invite(FakeEnv::new(two_agents()), pbx_invite(), true, false);
    assert_eq!(opens(&sim), 0, "nothing is opened");
    assert_eq!(sim.call.protocol(), CARRIED);
    assert_eq!(sim.to_caller_invite(), vec![100, 180]);
    // The department it rings is written on the attendance.
    assert!(
        sim.changes().iter().any(|c| matches!(
            c,
            AttendanceChange::Assigned {
                department_id: Some(1),
                agent_id: None,
                ..
            }
        )),
        "{:?}",
        sim.changes()
    );
    // The agents are rung under that protocol.
    let invites = sim.to_agent(1, Method::Invite);
    assert_eq!(
        invites[0]
            .header("X-Protocol")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .as_deref(),
        Some(CARRIED)
    );
    sim.agent_says(2, 200);
    let changes = sim.changes();
    assert!(changes.iter().any(|c| matches!(
        c,
        AttendanceChange::Answered {
            agent_id: Some(2),
            ..
        }
    )));
    // Answered before (a Redirect): the agent is still set.
    assert!(changes.iter().any(|c| matches!(
        c,
        AttendanceChange::Assigned {
            department_id: None,
            agent_id: Some(2),
            ..
        }
    )));
    assert!(matches!(
        sim.media()[0],
        MediaOp::Start { record: true, .. }
    ));
    sim.caller_ack(1);
    sim.caller_request("BYE", false);
    assert_eq!(sim.ended(), Some(Some(CloseReason::CallerHangup)));
    assert!(!sim.is_live());
}

#[test]
fn x_protocol_from_anyone_but_the_pbx_is_ignored() {
    // A carrier (known by address) sending the header gets a new attendance.
    let invite = invite_with("700", &format!("X-Protocol: {CARRIED}\n"));
    let sim = Sim::start_invite(FakeEnv::new(two_agents()), invite, false, true);
    assert_eq!(opens(&sim), 1, "a new attendance");
    assert_eq!(sim.call.protocol(), PROTOCOL);
}

#[test]
fn a_malformed_x_protocol_from_the_pbx_opens_a_new_attendance() {
    let invite = invite_with(
        "700",
        "P-Asserted-Identity: <sip:551133334444@127.0.0.1>\nX-Protocol: 42; drop table\n",
    );
    let sim = Sim::start_invite(FakeEnv::new(two_agents()), invite, true, true);
    assert_eq!(opens(&sim), 1);
    assert_eq!(sim.call.protocol(), PROTOCOL);
}

#[test]
fn an_unanswered_continued_call_ends_closed_on_that_protocol() {
    let mut sim = Sim::start_invite(FakeEnv::new(two_agents()), pbx_invite(), true, false);
    sim.agent_says(1, 486);
    sim.agent_says(2, 486);
    sim.advance(Duration::from_secs(600));
    assert_eq!(opens(&sim), 0);
    assert!(sim.ended().is_some_and(|c| c.is_some()), "closed");
    assert_eq!(sim.call.protocol(), CARRIED);
}
