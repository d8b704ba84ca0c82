//! Extensions dialling out: outbound routes, trunks in order, failover.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::domain::OutboundRoute;

/// Trunk `id` answers on 127.0.0.1:50`id`, i.e. as "agent" `id` of the
/// harness (whose helpers find requests by port).
fn trunk_n(id: Id) -> Trunk {
    Trunk {
        id,
        name: format!("carrier{id}"),
        inbound: Vec::new(),
        ..trunk()
    }
}

fn route(allowed: Vec<Id>) -> OutboundRoute {
    OutboundRoute {
        id: 1,
        name: "national".into(),
        priority: 10,
        patterns: vec!["_0X.".into()],
        strip: 1,
        prepend: "55".into(),
        trunk_ids: vec![11, 12],
        allowed_extension_ids: allowed,
        created_at: wall0(),
        updated_at: wall0(),
    }
}

fn outbound_plan(allowed: Vec<Id>) -> CallPlan {
    let addrs: HashMap<Id, std::net::SocketAddr> = [11, 12]
        .into_iter()
        .map(|id| (id, format!("127.0.0.1:{}", agent_port(id)).parse().unwrap()))
        .collect();
    CallPlan::from_parts(
        1,
        vec![department(1, 700)],
        Vec::new(),
        Vec::new(),
        vec![fixtures::agent(1, Some(101), &[1])],
        vec![fixtures::extension(101, "1001", true)],
        vec![trunk_n(11), trunk_n(12)],
    )
    .with_routes(vec![route(allowed)], addrs)
}

fn dial(number: &str) -> Sim {
    Sim::start_from_extension(FakeEnv::new(outbound_plan(Vec::new())), "1001", number)
}

fn opened(sim: &Sim) -> crate::store::NewAttendance {
    sim.out
        .iter()
        .find_map(|o| match o {
            Output::OpenAttendance(new) => Some(new.clone()),
            _ => None,
        })
        .expect("an attendance")
}

#[test]
fn an_outbound_call_goes_through_the_first_trunk_rewritten_and_is_recorded() {
    let mut sim = dial("011987654321");
    let new = opened(&sim);
    assert_eq!(new.direction, crate::domain::Direction::Outbound);
    assert_eq!(new.callee, "011987654321");
    let invite = sim
        .to_agent(11, Method::Invite)
        .pop()
        .expect("trunk 1 dialled");
    assert_eq!(
        invite.request_uri().unwrap().user_text().as_deref(),
        Some("5511987654321"),
        "strip 1, prepend 55"
    );
    assert_eq!(
        invite.header("X-Protocol").map(|v| &v[..]),
        Some(PROTOCOL.as_bytes())
    );
    sim.agent_says(11, 183);
    sim.agent_says(11, 200);
    assert_eq!(sim.caller_200s(), 1);
    assert!(matches!(
        sim.media()[0],
        MediaOp::Start { record: true, .. }
    ));
    sim.caller_ack(1);
    sim.caller_request("BYE", false);
    assert_eq!(sim.ended(), Some(Some(CloseReason::CallerHangup)));
}

#[test]
fn a_503_from_the_first_trunk_fails_over_to_the_second() {
    let mut sim = dial("011987654321");
    sim.agent_says(11, 503);
    assert_eq!(sim.to_agent(12, Method::Invite).len(), 1, "second trunk");
    sim.agent_says(12, 200);
    assert_eq!(sim.caller_200s(), 1);
}

#[test]
fn a_trunk_silent_past_the_setup_time_fails_over() {
    let mut sim = dial("011987654321");
    sim.advance(Duration::from_secs(11));
    assert_eq!(sim.to_agent(12, Method::Invite).len(), 1);
}

#[test]
fn every_trunk_failing_closes_failed_with_503() {
    let mut sim = dial("011987654321");
    sim.agent_says(11, 500);
    sim.agent_says(12, 408);
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 503]);
    assert_eq!(sim.ended(), Some(Some(CloseReason::Failed)));
}

#[test]
fn busy_at_the_far_end_ends_the_call_without_failover() {
    let mut sim = dial("011987654321");
    sim.agent_says(11, 486);
    assert!(sim.to_agent(12, Method::Invite).is_empty());
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 486]);
    assert_eq!(sim.ended(), Some(Some(CloseReason::Rejected)));
}

#[test]
fn ringing_too_long_is_no_answer() {
    let mut sim = dial("011987654321");
    sim.agent_says(11, 180);
    sim.advance(Duration::from_secs(119));
    assert!(sim.ended().is_none());
    sim.advance(Duration::from_secs(2));
    assert_eq!(sim.ended(), Some(Some(CloseReason::NoAnswer)));
    assert_eq!(sim.to_agent(11, Method::Cancel).len(), 1);
}

#[test]
fn no_route_is_404_and_a_route_that_does_not_allow_the_extension_is_403() {
    let sim = dial("5511987654321");
    assert_eq!(sim.to_caller_invite(), vec![100, 404]);
    let env = FakeEnv::new(outbound_plan(vec![999]));
    let sim = Sim::start_from_extension(env, "1001", "011987654321");
    assert_eq!(sim.to_caller_invite(), vec![100, 403]);
}
