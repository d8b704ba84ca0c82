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
        username: Some(format!("acct{id}")),
        has_secret: true,
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
    .with_trunk_secrets([(11, "s3cret-11".to_owned())].into_iter().collect())
}

fn dial(number: &str) -> Sim {
    Sim::start_from_extension(FakeEnv::new(outbound_plan(Vec::new())), "1001", number)
}

#[test]
fn an_outbound_call_goes_through_the_first_trunk_rewritten_and_is_recorded() {
    let mut sim = dial("011987654321");
    let new = sim.opened();
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

/// The carrier on trunk `id` challenges the last INVITE it got.
fn challenge(sim: &mut Sim, id: Id, status: u16) {
    let invite = sim.to_agent(id, Method::Invite).pop().unwrap();
    let mut response = agent_response(&invite, status, "c1", id);
    let header = if status == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    response
        .push_header(
            header,
            "Digest realm=\"carrier\", nonce=\"n0nce\", qop=\"auth\", algorithm=MD5",
        )
        .unwrap();
    sim.sip(CallInput::Response { response });
}

#[test]
fn a_carrier_challenge_is_answered_once_with_the_trunks_credentials() {
    let mut sim = dial("011987654321");
    challenge(&mut sim, 11, 401);
    let invites = sim.to_agent(11, Method::Invite);
    assert_eq!(invites.len(), 2, "the INVITE again, with credentials");
    let retry = &invites[1];
    let auth = String::from_utf8_lossy(retry.header("Authorization").unwrap()).into_owned();
    assert!(
        auth.contains("username=\"acct11\"") && auth.contains("realm=\"carrier\""),
        "{auth}"
    );
    assert_eq!(
        retry.cseq().unwrap().seq,
        invites[0].cseq().unwrap().seq + 1
    );
    assert_eq!(retry.call_id().unwrap(), invites[0].call_id().unwrap());
    assert_eq!(
        retry.from().unwrap().tag(),
        invites[0].from().unwrap().tag()
    );
    sim.agent_says(11, 200);
    assert_eq!(sim.caller_200s(), 1);
}

#[test]
fn a_second_challenge_means_wrong_credentials_and_the_next_trunk_is_tried() {
    let mut sim = dial("011987654321");
    challenge(&mut sim, 11, 407);
    assert!(
        sim.to_agent(11, Method::Invite)[1]
            .header("Proxy-Authorization")
            .is_some()
    );
    challenge(&mut sim, 11, 407);
    assert_eq!(sim.to_agent(11, Method::Invite).len(), 2, "never a third");
    assert_eq!(sim.to_agent(12, Method::Invite).len(), 1);
}

#[test]
fn a_challenge_without_credentials_on_the_trunk_fails_over() {
    let mut sim = dial("011987654321");
    sim.agent_says(11, 503);
    challenge(&mut sim, 12, 401);
    assert_eq!(
        sim.to_agent(12, Method::Invite).len(),
        1,
        "trunk 12 has no secret"
    );
    assert_eq!(sim.ended(), Some(Some(CloseReason::Failed)));
}
