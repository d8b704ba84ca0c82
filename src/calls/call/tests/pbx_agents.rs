//! Agents whose phones register on Asterisk are rung "through the PBX"
//! (SPEC §9): an INVITE for the extension to the PBX's SIP address, when
//! AMI reports it reachable and not in use there; a contact registered on
//! the bridge is preferred; unknown presence (AMI lost) rings nobody.

use std::time::Duration;

use super::*;
use crate::pbx_presence::{DeviceState, ExtensionPresence};

const S: Duration = Duration::from_secs(1);
const PBX: &str = "127.0.0.1:5080";

/// A node beside a PBX where only `registered` are registered on the
/// bridge and `on_pbx` (number, device state) are reachable on Asterisk.
fn env(plan: CallPlan, registered: &[&str], on_pbx: &[(&str, &str)]) -> Arc<FakeEnv> {
    let env = FakeEnv::new(plan);
    *env.registered.lock().unwrap() = registered.iter().map(|n| n.to_string()).collect();
    *env.pbx.lock().unwrap() = Some(PBX.parse().unwrap());
    for (number, device) in on_pbx {
        env.pbx_presence.update(|b| {
            b.insert(
                number.to_string(),
                ExtensionPresence {
                    contacts: [(format!("sip:{number}@127.0.0.1:5092"), true)].into(),
                    peer_reachable: Some(true),
                    device: Some(DeviceState::parse(device)),
                },
            );
        });
    }
    env
}

/// The INVITEs sent to the PBX.
fn to_pbx(sim: &Sim) -> Vec<SipMessage> {
    sim.requests(Method::Invite)
        .into_iter()
        .filter(|(_, d)| *d == PBX.parse::<SocketAddr>().unwrap())
        .map(|(m, _)| m)
        .collect()
}

/// Asterisk answers the bridge's INVITE for agent `agent` with `status`.
fn pbx_says(sim: &mut Sim, agent: Id, status: u16) {
    let invite = to_pbx(sim).last().cloned().expect("rung through the PBX");
    let response = agent_response(&invite, status, "ast1", agent);
    sim.sip(CallInput::Response { response });
}

fn header(m: &SipMessage, name: &str) -> Option<String> {
    m.header(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn an_agent_only_on_the_pbx_is_rung_at_the_pbx_address_with_x_protocol() {
    let env = env(two_agents(), &["1001"], &[("1002", "NOT_INUSE")]);
    let mut sim = Sim::start_with(env, "700", true);
    assert_eq!(sim.to_agent(1, Method::Invite).len(), 1, "at its contact");
    let invites = to_pbx(&sim);
    assert_eq!(invites.len(), 1, "agent 2 through the PBX");
    let invite = &invites[0];
    assert_eq!(
        invite.request_uri().unwrap().to_string(),
        format!("sip:1002@{PBX}")
    );
    assert_eq!(header(invite, "X-Protocol").as_deref(), Some(PROTOCOL));
    assert!(
        header(invite, "To")
            .unwrap()
            .contains(&format!("sip:1002@{PBX}")),
        "{invite:?}"
    );
    assert!(
        header(invite, "From").unwrap().contains("5511999990000"),
        "the caller's identity passes through"
    );
    let leg = sim.env.live.get(PROTOCOL).unwrap();
    assert!(
        leg.legs
            .iter()
            .any(|l| l.agent_id == Some(2) && l.peer == PBX),
        "the PBX leg is claimed for agent 2: {leg:?}"
    );
    // Both ring; Asterisk's phone answers: the caller is connected to
    // agent 2 and agent 1's ring is cancelled.
    sim.agent_says(1, 180);
    pbx_says(&mut sim, 2, 180);
    pbx_says(&mut sim, 2, 200);
    sim.caller_ack(1);
    assert_eq!(sim.caller_200s(), 1);
    assert_eq!(sim.to_agent(1, Method::Cancel).len(), 1);
    assert!(sim.changes().iter().any(|c| matches!(
        c,
        AttendanceChange::Answered {
            agent_id: Some(2),
            ..
        }
    )));
    assert!(matches!(sim.media()[0], MediaOp::Start { .. }));
}

#[test]
fn a_contact_registered_on_the_bridge_is_preferred() {
    let env = env(
        two_agents(),
        &["1001", "1002"],
        &[("1001", "NOT_INUSE"), ("1002", "NOT_INUSE")],
    );
    let sim = Sim::start_with(env, "700", true);
    assert_eq!(sim.to_agent(1, Method::Invite).len(), 1);
    assert_eq!(sim.to_agent(2, Method::Invite).len(), 1);
    assert!(to_pbx(&sim).is_empty(), "never through the PBX as well");
}

#[test]
fn an_agent_in_use_on_the_pbx_is_skipped_and_the_overflow_goes_on() {
    let mut d1 = department(1, 700);
    d1.ring_strategy = crate::domain::RingStrategy::Overflow;
    d1.agent_ring_timeout_s = 5;
    d1.overflow_department_id = Some(2);
    let plan = plan(vec![d1, department(2, 701)], &[&[1], &[1], &[2]]);
    // Agent 1 is in a call on Asterisk, agent 2 rings there, agent 3
    // (the overflow department) is on the bridge.
    let env = env(plan, &["1003"], &[("1001", "INUSE"), ("1002", "NOT_INUSE")]);
    let mut sim = Sim::start_with(env, "700", true);
    let invites = to_pbx(&sim);
    assert_eq!(invites.len(), 1);
    assert_eq!(
        invites[0].request_uri().unwrap().to_string(),
        format!("sip:1002@{PBX}"),
        "agent 1 (in use on Asterisk) is skipped"
    );
    sim.advance(5 * S);
    assert_eq!(to_pbx(&sim).len(), 1, "agent 1 is never rung");
    assert_eq!(
        sim.to_agent(3, Method::Invite).len(),
        1,
        "overflow department"
    );
    sim.agent_says(3, 200);
    assert_eq!(sim.caller_200s(), 1);
}

#[test]
fn a_department_whose_agents_are_all_busy_on_the_pbx_overflows_at_once() {
    let mut d1 = department(1, 700);
    d1.overflow_department_id = Some(2);
    let plan = plan(vec![d1, department(2, 701)], &[&[1], &[1], &[2]]);
    let env = env(plan, &["1003"], &[("1001", "INUSE"), ("1002", "RINGING")]);
    let sim = Sim::start_with(env, "700", true);
    assert!(to_pbx(&sim).is_empty());
    assert_eq!(sim.to_agent(3, Method::Invite).len(), 1);
}

#[test]
fn presence_unknown_after_ami_loss_rings_nobody_through_the_pbx() {
    let env = env(
        two_agents(),
        &[],
        &[("1001", "NOT_INUSE"), ("1002", "NOT_INUSE")],
    );
    // The AMI session dropped: the client clears what it knew.
    env.pbx_presence.clear();
    let sim = Sim::start_with(env.clone(), "700", true);
    assert!(sim.requests(Method::Invite).is_empty());
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 480]);
    assert_eq!(sim.ended(), Some(Some(CloseReason::NoAnswer)));
    // A direct call to the extension is not sent to the PBX either.
    let sim = Sim::start_with(env, "1002", true);
    assert!(sim.requests(Method::Invite).is_empty());
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 480]);
}

#[test]
fn without_a_pbx_address_presence_on_asterisk_rings_nobody() {
    let env = env(two_agents(), &[], &[("1001", "NOT_INUSE")]);
    *env.pbx.lock().unwrap() = None;
    let sim = Sim::start_with(env, "700", true);
    assert!(sim.requests(Method::Invite).is_empty());
    assert_eq!(sim.ended(), Some(Some(CloseReason::NoAnswer)));
}

#[test]
fn a_direct_call_reaches_an_extension_on_the_pbx_or_is_busy_there() {
    let env1 = env(two_agents(), &[], &[("1002", "NOT_INUSE")]);
    let mut sim = Sim::start_with(env1, "1002", true);
    let invites = to_pbx(&sim);
    assert_eq!(invites.len(), 1);
    assert_eq!(header(&invites[0], "X-Protocol").as_deref(), Some(PROTOCOL));
    pbx_says(&mut sim, 2, 200);
    assert_eq!(sim.caller_200s(), 1);

    let busy = env(two_agents(), &[], &[("1002", "INUSE")]);
    let sim = Sim::start_with(busy, "1002", true);
    assert!(to_pbx(&sim).is_empty());
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 486]);
    assert_eq!(sim.ended(), Some(Some(CloseReason::Rejected)));
}

#[test]
fn a_transfer_to_an_extension_on_the_pbx_goes_through_the_pbx() {
    let env = env(two_agents(), &["1001"], &[("1002", "NOT_INUSE")]);
    // Agent 2 rings through the PBX too; agent 1 answers first.
    let mut sim = Sim::start_with(env, "700", true);
    sim.agent_says(1, 200);
    sim.caller_ack(1);
    assert_eq!(to_pbx(&sim).len(), 1);
    sim.feed(Input::Control(Control::Transfer {
        target: "1002".into(),
    }));
    assert!(matches!(
        sim.out
            .iter()
            .rev()
            .find(|o| matches!(o, Output::TransferReply(_))),
        Some(Output::TransferReply(Ok(())))
    ));
    let invites = to_pbx(&sim);
    assert_eq!(invites.len(), 2, "the transfer rings 1002 through the PBX");
    assert_eq!(
        invites[1].request_uri().unwrap().to_string(),
        format!("sip:1002@{PBX}")
    );
    assert_eq!(header(&invites[1], "X-Protocol").as_deref(), Some(PROTOCOL));
}

#[test]
fn a_call_asterisk_sent_reaches_an_agent_on_asterisk_with_the_customer_as_caller() {
    let env = env(two_agents(), &[], &[("1002", "NOT_INUSE")]);
    // Asterisk relays the customer: From is whatever it put there, the
    // customer is the asserted identity.
    let invite = invite_with(
        "700",
        "P-Asserted-Identity: \"Cliente\" <sip:551133334444@127.0.0.1>\n",
    );
    let sim = Sim::start_invite(env, invite, true, true);
    let invites = to_pbx(&sim);
    assert_eq!(invites.len(), 1);
    let from = invites[0].from().unwrap();
    assert_eq!(user_of(&from), "551133334444", "{from:?}");
    assert!(from.tag().is_some());
}
