//! Forwarding beyond the bridge: an extension's follow-me and a closed
//! department's after-hours number, both through the outbound routes.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::domain::{AfterHours, FollowMe, OutboundRoute, Period, Transfer};

const S: Duration = Duration::from_secs(1);
/// The follow-me and after-hours number as configured, and as the route
/// sends it to the carrier (strip 1, prepend 55).
const NUMBER: &str = "011987654321";
const DIALLED: &str = "5511987654321";
/// The carrier's trunk: it answers on 127.0.0.1:5011, i.e. as "agent" 11
/// of the harness (whose helpers find requests by port).
pub(super) const CARRIER: Id = 11;

fn carrier() -> Trunk {
    Trunk {
        id: CARRIER,
        name: "carrier-out".into(),
        inbound: Vec::new(),
        ..trunk()
    }
}

pub(super) fn route(allowed: Vec<Id>) -> OutboundRoute {
    OutboundRoute {
        id: 1,
        name: "national".into(),
        priority: 10,
        patterns: vec!["_0X.".into()],
        strip: 1,
        prepend: "55".into(),
        trunk_ids: vec![CARRIER],
        allowed_extension_ids: allowed,
        created_at: wall0(),
        updated_at: wall0(),
    }
}

/// Department 700 (open, agent 1) and 710 (closed, after hours to
/// [`NUMBER`]); extension 1001 of agent 1 with `follow_me`; the carrier
/// trunk of 127.0.0.0/8 (callers come from it) and the one `routes` use.
pub(super) fn forward_plan(follow_me: FollowMe, routes: Vec<OutboundRoute>) -> CallPlan {
    let mut closed = department(2, 710);
    closed.period_id = Some(9);
    closed.after_hours = Some(AfterHours {
        department_id: None,
        number: Some(NUMBER.into()),
        hangup: None,
    });
    let never_open = Period {
        id: 9,
        name: "never".into(),
        time_zone: "America/Sao_Paulo".into(),
        ranges: Vec::new(),
        created_at: wall0(),
        updated_at: wall0(),
    };
    let addrs: HashMap<Id, std::net::SocketAddr> = [(
        CARRIER,
        format!("127.0.0.1:{}", agent_port(CARRIER))
            .parse()
            .unwrap(),
    )]
    .into_iter()
    .collect();
    CallPlan::from_parts(
        1,
        vec![department(1, 700), closed],
        vec![never_open],
        Vec::new(),
        vec![fixtures::agent(1, Some(101), &[1])],
        vec![Extension {
            follow_me,
            ..fixtures::extension(101, "1001", true)
        }],
        vec![trunk(), carrier()],
    )
    .with_routes(routes, addrs)
}

pub(super) fn follow_me(ring_first_s: u32) -> FollowMe {
    FollowMe {
        enabled: true,
        number: Some(NUMBER.into()),
        ring_first_s,
    }
}

/// A customer (through the inbound carrier) calls extension 1001 with
/// follow-me after `ring_first_s`.
fn call_with_follow_me(ring_first_s: u32) -> Sim {
    Sim::start(
        forward_plan(follow_me(ring_first_s), vec![route(Vec::new())]),
        "1001",
    )
}

fn to_carrier(sim: &Sim, method: Method) -> Vec<SipMessage> {
    sim.to_agent(CARRIER, method)
}

fn transfers(sim: &Sim) -> Vec<&Transfer> {
    sim.changes()
        .into_iter()
        .filter_map(|c| match c {
            AttendanceChange::Transferred(t) => Some(t),
            _ => None,
        })
        .collect()
}

#[test]
fn follow_me_rings_the_extension_for_ring_first_s_then_bridges_the_number() {
    let mut sim = call_with_follow_me(15);
    assert_eq!(
        sim.to_agent(1, Method::Invite).len(),
        1,
        "the extension rings first"
    );
    sim.agent_says(1, 180);
    sim.advance(14 * S);
    assert!(
        to_carrier(&sim, Method::Invite).is_empty(),
        "not before ring_first_s"
    );
    sim.advance(2 * S);
    assert_eq!(
        sim.to_agent(1, Method::Cancel).len(),
        1,
        "the extension is cancelled"
    );
    let invite = to_carrier(&sim, Method::Invite)
        .pop()
        .expect("the number is dialled");
    assert_eq!(
        invite.request_uri().unwrap().user_text().as_deref(),
        Some(DIALLED),
        "through the route: strip 1, prepend 55"
    );
    assert_eq!(
        invite.header("X-Protocol").map(|v| &v[..]),
        Some(PROTOCOL.as_bytes()),
        "one protocol"
    );
    let t = transfers(&sim);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].target, format!("follow_me:{NUMBER}"));
    sim.agent_says(CARRIER, 180);
    assert_eq!(
        sim.to_caller_invite(),
        vec![100, 180],
        "the caller hears 180 throughout"
    );
    sim.agent_says(CARRIER, 200);
    assert_eq!(sim.caller_200s(), 1, "bridged to the number");
    assert!(matches!(
        sim.media()[0],
        MediaOp::Start { record: true, .. }
    ));
    assert!(
        sim.changes()
            .iter()
            .any(|c| matches!(c, AttendanceChange::Answered { .. }))
    );
    assert_eq!(
        sim.opened().agent_id,
        Some(1),
        "the extension's agent keeps it"
    );
    sim.caller_ack(1);
    sim.caller_request("BYE", false);
    assert_eq!(to_carrier(&sim, Method::Bye).len(), 1);
    assert_eq!(sim.ended(), Some(Some(CloseReason::CallerHangup)));
    assert!(!sim.is_live());
}

#[test]
fn follow_me_with_0_goes_straight_to_the_number() {
    let sim = call_with_follow_me(0);
    assert!(
        sim.to_agent(1, Method::Invite).is_empty(),
        "the extension never rings"
    );
    assert_eq!(to_carrier(&sim, Method::Invite).len(), 1);
    assert_eq!(sim.to_caller_invite(), vec![100, 180]);
}

#[test]
fn follow_me_when_the_extension_is_unregistered_goes_to_the_number_at_once() {
    let env = FakeEnv::new(forward_plan(follow_me(15), vec![route(Vec::new())]));
    env.registered.lock().unwrap().remove("1001");
    let sim = Sim::start_with(env, "1001", true);
    assert!(sim.to_agent(1, Method::Invite).is_empty());
    assert_eq!(to_carrier(&sim, Method::Invite).len(), 1);
}

#[test]
fn follow_me_when_the_extension_is_busy_goes_to_the_number_at_once() {
    let env = FakeEnv::new(forward_plan(follow_me(15), vec![route(Vec::new())]));
    // Another call (its own protocol) has agent 1 on the phone.
    let mut first = Sim::start_with(env.clone(), "700", false);
    first.feed(Input::Opened(Ok("20261207000002".into())));
    first.agent_says(1, 200);
    let mut second = Sim::start_with(env, "1001", true);
    assert!(
        second.to_agent(1, Method::Invite).is_empty(),
        "the busy extension is not rung"
    );
    assert_eq!(to_carrier(&second, Method::Invite).len(), 1);
    second.sip(CallInput::Cancelled);
    assert_eq!(second.ended(), Some(Some(CloseReason::Abandoned)));
}

#[test]
fn follow_me_after_the_extension_declines_goes_to_the_number() {
    let mut sim = call_with_follow_me(15);
    sim.agent_says(1, 486);
    assert_eq!(to_carrier(&sim, Method::Invite).len(), 1);
    assert!(sim.ended().is_none());
}

#[test]
fn caller_hanging_up_while_the_follow_me_number_rings_is_abandoned_and_cancels_the_trunk() {
    let mut sim = call_with_follow_me(0);
    sim.agent_says(CARRIER, 180);
    sim.sip(CallInput::Cancelled);
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 487]);
    assert_eq!(
        to_carrier(&sim, Method::Cancel).len(),
        1,
        "CANCEL to the trunk"
    );
    assert_eq!(sim.ended(), Some(Some(CloseReason::Abandoned)));
    assert!(!sim.is_live());
    assert_eq!(sim.env.live.trunk_channels(1), 0);
}

#[test]
fn the_extension_answering_before_ring_first_s_dials_nothing_out() {
    let mut sim = call_with_follow_me(15);
    sim.agent_says(1, 180);
    sim.advance(5 * S);
    sim.agent_says(1, 200);
    assert_eq!(sim.caller_200s(), 1);
    sim.caller_ack(1);
    sim.advance(60 * S);
    assert!(to_carrier(&sim, Method::Invite).is_empty());
    assert!(transfers(&sim).is_empty());
    sim.caller_request("BYE", false);
    assert_eq!(sim.ended(), Some(Some(CloseReason::CallerHangup)));
}

#[test]
fn follow_me_with_no_route_fails_as_the_extension_would() {
    let sim = Sim::start(forward_plan(follow_me(0), Vec::new()), "1001");
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 480]);
    assert_eq!(sim.ended(), Some(Some(CloseReason::NoAnswer)));
    assert!(sim.requests(Method::Invite).is_empty());
}

#[test]
fn follow_me_is_routed_with_the_called_extensions_permissions() {
    let refused = Sim::start(forward_plan(follow_me(0), vec![route(vec![999])]), "1001");
    assert_eq!(refused.to_caller_invite(), vec![100, 180, 480]);
    let allowed = Sim::start(forward_plan(follow_me(0), vec![route(vec![101])]), "1001");
    assert_eq!(to_carrier(&allowed, Method::Invite).len(), 1);
}

#[test]
fn follow_me_whose_trunk_fails_ends_failed_with_503() {
    let mut sim = call_with_follow_me(0);
    sim.agent_says(CARRIER, 503);
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 503]);
    assert_eq!(sim.ended(), Some(Some(CloseReason::Failed)));
}

#[test]
fn a_transfer_to_an_extension_with_follow_me_reaches_the_number() {
    let mut plan = forward_plan(follow_me(0), vec![route(Vec::new())]);
    // Agent 2 on 1002 answers department 700 and transfers to 1001.
    plan = CallPlan::from_parts(
        1,
        vec![department(1, 700)],
        Vec::new(),
        Vec::new(),
        vec![
            fixtures::agent(1, Some(101), &[]),
            fixtures::agent(2, Some(102), &[1]),
        ],
        vec![
            plan.extension("1001").unwrap().clone(),
            fixtures::extension(102, "1002", true),
        ],
        vec![trunk(), carrier()],
    )
    .with_routes(plan.routes().to_vec(), {
        let addr = format!("127.0.0.1:{}", agent_port(CARRIER))
            .parse()
            .unwrap();
        [(CARRIER, addr)].into_iter().collect()
    });
    let mut sim = Sim::start(plan, "700");
    sim.agent_says(2, 200);
    sim.caller_ack(1);
    sim.feed(Input::Control(Control::Transfer {
        target: "1001".into(),
    }));
    assert_eq!(to_carrier(&sim, Method::Invite).len(), 1);
    sim.agent_says(CARRIER, 200);
    assert!(
        sim.media()
            .iter()
            .any(|m| matches!(m, MediaOp::Update { .. })),
        "the caller now talks to the number"
    );
    sim.caller_request("BYE", false);
    assert_eq!(sim.ended(), Some(Some(CloseReason::CallerHangup)));
    assert_eq!(sim.env.live.trunk_channels(1), 0);
}

#[test]
fn the_after_hours_number_is_bridged_and_the_call_closes_after_hours() {
    let plan = forward_plan(FollowMe::default(), vec![route(Vec::new())]);
    let mut sim = Sim::start(plan, "710");
    let invite = to_carrier(&sim, Method::Invite)
        .pop()
        .expect("the number is dialled");
    assert_eq!(
        invite.request_uri().unwrap().user_text().as_deref(),
        Some(DIALLED)
    );
    let t = transfers(&sim);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].target, format!("after_hours:{NUMBER}"));
    sim.agent_says(CARRIER, 200);
    assert_eq!(sim.caller_200s(), 1);
    sim.caller_ack(1);
    sim.advance(3 * S);
    sim.agent_request(CARRIER, "BYE", "");
    assert_eq!(sim.ended(), Some(Some(CloseReason::AfterHours)));
}

#[test]
fn the_after_hours_number_closes_after_hours_even_where_the_department_keeps_calls_open() {
    let mut plan = forward_plan(FollowMe::default(), vec![route(Vec::new())]);
    let mut departments: Vec<Department> = [1, 2]
        .iter()
        .filter_map(|id| plan.department(*id).cloned())
        .collect();
    departments[1].close_on_hangup = false;
    plan = CallPlan::from_parts(
        1,
        departments,
        vec![Period {
            id: 9,
            name: "never".into(),
            time_zone: "America/Sao_Paulo".into(),
            ranges: Vec::new(),
            created_at: wall0(),
            updated_at: wall0(),
        }],
        Vec::new(),
        Vec::new(),
        Vec::new(),
        vec![trunk(), carrier()],
    )
    .with_routes(plan.routes().to_vec(), {
        let addr = format!("127.0.0.1:{}", agent_port(CARRIER))
            .parse()
            .unwrap();
        [(CARRIER, addr)].into_iter().collect()
    });
    let mut sim = Sim::start(plan, "710");
    sim.agent_says(CARRIER, 200);
    sim.caller_ack(1);
    sim.caller_request("BYE", false);
    assert_eq!(sim.ended(), Some(Some(CloseReason::AfterHours)));
}

#[test]
fn no_route_for_the_after_hours_number_closes_after_hours_with_480() {
    let sim = Sim::start(forward_plan(FollowMe::default(), Vec::new()), "710");
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 480]);
    assert_eq!(sim.ended(), Some(Some(CloseReason::AfterHours)));
    assert!(sim.requests(Method::Invite).is_empty());
}

#[test]
fn the_after_hours_number_ringing_out_still_closes_after_hours() {
    let plan = forward_plan(FollowMe::default(), vec![route(Vec::new())]);
    let mut sim = Sim::start(plan, "710");
    sim.agent_says(CARRIER, 180);
    sim.advance(121 * S);
    assert_eq!(sim.to_caller_invite(), vec![100, 180, 480]);
    assert_eq!(to_carrier(&sim, Method::Cancel).len(), 1);
    assert_eq!(sim.ended(), Some(Some(CloseReason::AfterHours)));
}

#[test]
fn a_customer_forwarded_back_out_holds_a_channel_of_each_trunk() {
    let mut plan = forward_plan(follow_me(0), vec![route(Vec::new())]);
    let mut trunks = vec![
        Trunk {
            max_channels: Some(5),
            ..trunk()
        },
        Trunk {
            max_channels: Some(5),
            ..carrier()
        },
    ];
    plan = CallPlan::from_parts(
        1,
        Vec::new(),
        Vec::new(),
        Vec::new(),
        vec![fixtures::agent(1, Some(101), &[])],
        vec![plan.extension("1001").unwrap().clone()],
        std::mem::take(&mut trunks),
    )
    .with_routes(plan.routes().to_vec(), {
        let addr = format!("127.0.0.1:{}", agent_port(CARRIER))
            .parse()
            .unwrap();
        [(CARRIER, addr)].into_iter().collect()
    });
    let mut sim = Sim::start(plan, "1001");
    assert_eq!(sim.env.live.trunk_channels(1), 1, "the way in");
    assert_eq!(sim.env.live.trunk_channels(CARRIER), 1, "the way out");
    sim.agent_says(CARRIER, 200);
    sim.caller_ack(1);
    sim.caller_request("BYE", false);
    assert_eq!(sim.env.live.trunk_channels(1), 0);
    assert_eq!(sim.env.live.trunk_channels(CARRIER), 0);
}
