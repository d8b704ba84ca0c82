//! One test per B2BUA rule or race, named after it.

use std::time::Duration;

use super::*;
use crate::domain::{AfterHours, Period};

const S: Duration = Duration::from_secs(1);

/// Rings both agents, agent 1 answers, the caller ACKs.
fn answered() -> Sim {
    let mut sim = Sim::start(two_agents(), "700");
    sim.agent_says(1, 180);
    sim.agent_says(1, 200);
    sim.caller_ack(1);
    sim
}

#[test]
fn invite_gets_100_then_180_only_after_the_attendance_is_durable() {
    let mut sim = Sim::start_with(FakeEnv::new(two_agents()), "700", false);
    assert_eq!(sim.to_caller_invite(), vec![100]);
    assert!(
        sim.requests(Method::Invite).is_empty(),
        "nobody rings before"
    );
    sim.feed(Input::Opened(Ok(PROTOCOL.into())));
    assert_eq!(sim.to_caller_invite(), vec![100, 180]);
    assert_eq!(sim.requests(Method::Invite).len(), 2, "both agents ring");
    let invite = &sim.to_agent(1, Method::Invite)[0];
    assert_eq!(
        invite.header("X-Protocol").map(|v| &v[..]),
        Some(PROTOCOL.as_bytes())
    );
}

#[test]
fn a_node_that_cannot_make_the_attendance_durable_answers_503_with_retry_after() {
    let mut sim = Sim::start_with(FakeEnv::new(two_agents()), "700", false);
    sim.feed(Input::Opened(Err("disk full".into())));
    let refusal = sim
        .commands()
        .into_iter()
        .find_map(|c| match c {
            Command::Respond { response, .. } if response.status() == Some(503) => {
                Some(response.clone())
            }
            _ => None,
        })
        .expect("503");
    assert_eq!(
        refusal.header("Retry-After").map(|v| &v[..]),
        Some(&b"30"[..])
    );
    assert!(sim.call.is_finished());
    assert!(sim.requests(Method::Invite).is_empty());
}

#[test]
fn cancel_while_the_attendance_is_being_made_durable_is_still_recorded_abandoned() {
    let mut sim = Sim::start_with(FakeEnv::new(two_agents()), "700", false);
    sim.sip(CallInput::Cancelled);
    assert_eq!(sim.to_caller_invite(), vec![100, 487]);
    sim.feed(Input::Opened(Ok(PROTOCOL.into())));
    assert_eq!(sim.ended(), Some(Some(CloseReason::Abandoned)));
    assert!(sim.requests(Method::Invite).is_empty(), "nobody rang");
    assert!(sim.call.is_finished());
    assert!(!sim.is_live());
}

#[test]
fn first_200_wins_and_the_other_fork_is_cancelled() {
    let mut sim = Sim::start(two_agents(), "700");
    sim.agent_says(2, 180);
    sim.agent_says(1, 200);
    sim.caller_ack(1);
    assert_eq!(sim.caller_200s(), 1);
    assert_eq!(sim.to_agent(2, Method::Cancel).len(), 1);
    assert!(matches!(
        sim.media()[0],
        MediaOp::Start { record: true, .. }
    ));
    assert!(sim.changes().iter().any(|c| matches!(
        c,
        AttendanceChange::Answered {
            agent_id: Some(1),
            ..
        }
    )));
    sim.caller_request("BYE", false);
    assert_eq!(sim.ended(), Some(Some(CloseReason::CallerHangup)));
    assert_eq!(sim.to_agent(1, Method::Bye).len(), 1);
    assert_eq!(sim.media().last(), Some(&&MediaOp::Stop));
    assert!(!sim.is_live());
}

#[test]
fn cancel_crossing_a_200_gets_the_late_agent_an_ack_and_a_bye() {
    let mut sim = Sim::start(two_agents(), "700");
    sim.agent_says(1, 180);
    sim.sip(CallInput::Cancelled);
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 487]);
    assert_eq!(sim.to_agent(1, Method::Cancel).len(), 1);
    // The agent's 200 crossed our CANCEL.
    sim.agent_says(1, 200);
    assert_eq!(sim.to_agent(1, Method::Ack).len(), 1, "the 2xx is ACKed");
    assert_eq!(sim.to_agent(1, Method::Bye).len(), 1, "and hung up");
    assert_eq!(sim.caller_200s(), 0, "the caller never gets a 200");
    assert_eq!(sim.ended(), Some(Some(CloseReason::Abandoned)));
}

#[test]
fn two_agents_answering_at_once_bridge_one_and_hang_up_the_other() {
    let mut sim = Sim::start(two_agents(), "700");
    sim.agent_says(1, 200);
    sim.agent_says(2, 200);
    assert_eq!(sim.caller_200s(), 1);
    assert_eq!(sim.to_agent(2, Method::Ack).len(), 1);
    assert_eq!(sim.to_agent(2, Method::Bye).len(), 1);
    assert!(sim.to_agent(1, Method::Bye).is_empty());
}

#[test]
fn a_2xx_is_retransmitted_until_its_ack() {
    let mut sim = Sim::start(two_agents(), "700");
    sim.agent_says(1, 200);
    assert_eq!(sim.caller_200s(), 1);
    sim.advance(S / 2);
    assert_eq!(sim.caller_200s(), 2, "resent at T1");
    sim.advance(S);
    assert_eq!(sim.caller_200s(), 3, "then 2*T1");
    sim.caller_ack(1);
    sim.advance(10 * S);
    assert_eq!(sim.caller_200s(), 3, "the ACK stops it");
    assert!(sim.ended().is_none());
}

#[test]
fn a_2xx_never_acked_ends_the_call_after_64_t1() {
    let mut sim = Sim::start(two_agents(), "700");
    sim.agent_says(1, 200);
    sim.advance(31 * S);
    assert!(sim.ended().is_none());
    sim.advance(2 * S);
    assert_eq!(sim.ended(), Some(Some(CloseReason::Failed)));
    assert_eq!(sim.to_agent(1, Method::Bye).len(), 1);
    assert!(
        !sim.requests(Method::Bye)
            .iter()
            .all(|(_, d)| d.port() != 5090)
    );
}

#[test]
fn bye_crossing_a_reinvite_ends_both_legs_and_answers_the_reinvite() {
    let mut sim = answered();
    // The caller puts the agent on hold; the agent hangs up before
    // answering the relayed re-INVITE.
    sim.caller_request("INVITE", true);
    assert_eq!(sim.to_agent(1, Method::Invite).len(), 2, "relayed");
    sim.agent_request(1, "BYE", "");
    assert_eq!(sim.ended(), Some(Some(CloseReason::AgentHangup)));
    let to_caller: Vec<_> = sim
        .responses()
        .into_iter()
        .filter(|(_, m, _)| *m == Method::Invite)
        .map(|(s, _, _)| s)
        .collect();
    assert_eq!(to_caller.last(), Some(&487), "the re-INVITE is answered");
    assert_eq!(
        sim.requests(Method::Bye)
            .iter()
            .filter(|(_, d)| d.port() == 5090)
            .count(),
        1,
        "the caller gets a BYE"
    );
}

#[test]
fn refer_while_ringing_is_refused_and_the_ring_goes_on() {
    let mut sim = Sim::start(two_agents(), "700");
    sim.agent_says(1, 180);
    sim.agent_request(1, "REFER", "Refer-To: <sip:701@127.0.0.1>\n");
    let refer = sim
        .responses()
        .into_iter()
        .find(|(_, m, _)| *m == Method::Refer)
        .unwrap();
    assert_eq!(refer.0, 481);
    assert!(sim.ended().is_none());
    sim.agent_says(1, 200);
    assert_eq!(sim.caller_200s(), 1);
}

fn two_departments() -> CallPlan {
    plan(
        vec![department(1, 700), department(2, 701)],
        &[&[1], &[1], &[2]],
    )
}

#[test]
fn refer_moves_the_caller_and_keeps_one_attendance() {
    let mut sim = Sim::start(two_departments(), "700");
    sim.agent_says(1, 200);
    sim.caller_ack(1);
    sim.agent_request(1, "REFER", "Refer-To: <sip:701@127.0.0.1>\n");
    assert_eq!(sim.to_agent(1, Method::Notify).len(), 1);
    assert_eq!(sim.to_agent(1, Method::Bye).len(), 1);
    assert_eq!(
        sim.to_agent(3, Method::Invite).len(),
        1,
        "department 701 rings"
    );
    sim.agent_says(3, 200);
    assert!(matches!(
        sim.media().last(),
        Some(MediaOp::Update {
            side: Side::Agent,
            ..
        })
    ));
    assert_eq!(sim.caller_200s(), 1, "the caller stays where it is");
    assert!(sim.changes().iter().any(|c| matches!(
        c,
        AttendanceChange::Transferred(t) if t.department_id == Some(2) && t.from_agent_id == Some(1)
    )));
    sim.caller_request("BYE", false);
    assert_eq!(sim.ended(), Some(Some(CloseReason::CallerHangup)));
}

#[test]
fn hang_up_during_a_transfer_cancels_the_new_ring() {
    let mut sim = Sim::start(two_departments(), "700");
    sim.agent_says(1, 200);
    sim.caller_ack(1);
    sim.feed(Input::Control(Control::Transfer {
        target: "701".into(),
    }));
    assert!(matches!(
        sim.out
            .iter()
            .rev()
            .find(|o| matches!(o, Output::TransferReply(_))),
        Some(Output::TransferReply(Ok(())))
    ));
    sim.agent_says(3, 180);
    sim.caller_request("BYE", false);
    assert_eq!(sim.to_agent(3, Method::Cancel).len(), 1);
    assert_eq!(sim.ended(), Some(Some(CloseReason::CallerHangup)));
    assert!(!sim.is_live());
    assert!(sim.env.live.busy_agents().is_empty());
}

#[test]
fn dead_media_during_hold_ends_both_legs_failed() {
    let mut sim = answered();
    sim.caller_request("INVITE", true);
    sim.agent_says(1, 200); // the hold re-INVITE's answer
    sim.feed(Input::MediaDead);
    assert_eq!(sim.ended(), Some(Some(CloseReason::Failed)));
    assert_eq!(sim.requests(Method::Bye).len(), 2);
}

#[test]
fn api_hang_up_closes_api_and_api_transfer_of_unknown_target_is_refused() {
    let mut sim = answered();
    sim.feed(Input::Control(Control::Transfer {
        target: "999".into(),
    }));
    assert!(matches!(
        sim.out.last(),
        Some(Output::TransferReply(Err(_)))
    ));
    sim.feed(Input::Control(Control::HangUp));
    assert_eq!(sim.ended(), Some(Some(CloseReason::Api)));
}

#[test]
fn overflow_rings_one_agent_at_a_time_then_the_overflow_department() {
    let mut d1 = department(1, 700);
    d1.ring_strategy = crate::domain::RingStrategy::Overflow;
    d1.agent_ring_timeout_s = 5;
    d1.overflow_department_id = Some(2);
    let mut sim = Sim::start(
        plan(vec![d1, department(2, 701)], &[&[1], &[1], &[2]]),
        "700",
    );
    assert_eq!(sim.requests(Method::Invite).len(), 1);
    sim.advance(5 * S);
    assert_eq!(sim.requests(Method::Invite).len(), 2, "the next agent");
    sim.advance(5 * S);
    assert_eq!(
        sim.to_agent(3, Method::Invite).len(),
        1,
        "overflow department"
    );
    assert!(sim.changes().iter().any(|c| matches!(
        c,
        AttendanceChange::Assigned {
            department_id: Some(2),
            ..
        }
    )));
    sim.agent_says(3, 200);
    assert_eq!(sim.caller_200s(), 1);
}

#[test]
fn nobody_answers_closes_no_answer() {
    let mut sim = Sim::start(two_agents(), "700");
    sim.advance(31 * S);
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 480]);
    assert_eq!(sim.ended(), Some(Some(CloseReason::NoAnswer)));
}

fn closed_department(after_hours: AfterHours) -> CallPlan {
    let mut d = department(1, 700);
    d.period_id = Some(9);
    d.after_hours = Some(after_hours);
    let never_open = Period {
        id: 9,
        name: "never".into(),
        time_zone: "America/Sao_Paulo".into(),
        ranges: Vec::new(),
        created_at: wall0(),
        updated_at: wall0(),
    };
    plan_with_periods(vec![d, department(2, 701)], vec![never_open], &[&[1], &[2]])
}

#[test]
fn after_hours_department_is_recorded_on_the_attendance() {
    let mut sim = Sim::start(
        closed_department(AfterHours {
            department_id: Some(2),
            number: None,
            hangup: None,
        }),
        "700",
    );
    assert!(sim.changes().iter().any(|c| matches!(
        c,
        AttendanceChange::Transferred(t) if t.target == "after_hours" && t.department_id == Some(2)
    )));
    assert_eq!(sim.to_agent(2, Method::Invite).len(), 1);
    sim.agent_says(2, 200);
    assert_eq!(sim.caller_200s(), 1);
    let _ = &mut sim;
}

#[test]
fn a_department_that_keeps_attendances_open_leaves_an_answered_call_in_progress() {
    let mut d = department(1, 700);
    d.close_on_hangup = false;
    let mut sim = Sim::start(plan(vec![d], &[&[1]]), "700");
    sim.agent_says(1, 200);
    sim.caller_ack(1);
    sim.caller_request("BYE", false);
    assert_eq!(sim.ended(), Some(None), "ended, not closed");
}

#[test]
fn an_unknown_number_is_404_and_opens_nothing() {
    let sim = Sim::start(two_agents(), "555");
    assert_eq!(sim.to_caller_invite(), vec![100, 404]);
    assert!(
        !sim.out
            .iter()
            .any(|o| matches!(o, Output::OpenAttendance(_)))
    );
    assert!(sim.call.is_finished());
}

#[test]
fn a_late_bye_after_the_end_is_answered_200() {
    let mut sim = answered();
    sim.caller_request("BYE", false);
    let before = sim.responses().len();
    sim.agent_request(1, "BYE", "");
    let after = sim.responses();
    assert_eq!(after.len(), before + 1);
    assert_eq!(after.last().unwrap().0, 200);
}

/// The SIP call closes as [`crate::domain::closes_when_call_ends`] says,
/// over the same table `tests/close_rule.rs` runs the AMI follower and
/// crash recovery through.
#[test]
fn sip_calls_close_as_the_domain_rule_says() {
    for answered in [false, true] {
        for closes_on_hangup in [Some(true), Some(false), None] {
            let (plan, dialled) = match closes_on_hangup {
                Some(closes) => {
                    let mut d = department(1, 700);
                    d.close_on_hangup = closes;
                    (plan(vec![d], &[&[1]]), "700")
                }
                // An extension called directly: the call has no department.
                None => (plan(vec![], &[&[]]), "1001"),
            };
            let mut sim = Sim::start(plan, dialled);
            if answered {
                sim.agent_says(1, 200);
                sim.caller_ack(1);
                sim.caller_request("BYE", false);
            } else {
                sim.sip(CallInput::Cancelled);
            }
            let closes = crate::domain::closes_when_call_ends(answered, closes_on_hangup);
            assert_eq!(
                sim.ended().map(|c| c.is_some()),
                Some(closes),
                "answered {answered}, department closes {closes_on_hangup:?}"
            );
        }
    }
}
