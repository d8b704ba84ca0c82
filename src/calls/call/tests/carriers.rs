//! Calls from carriers: DID routes and `max_channels`.

use super::*;
use crate::domain::DidRoute;

fn carrier(did_routes: Vec<DidRoute>, max_channels: Option<u32>) -> CallPlan {
    plan_full(
        vec![department(1, 700), department(2, 701)],
        Vec::new(),
        &[&[1], &[2]],
        Trunk {
            did_routes,
            max_channels,
            ..trunk()
        },
    )
}

fn did(number: &str, department_id: Option<Id>, extension_id: Option<Id>) -> DidRoute {
    DidRoute {
        did: number.into(),
        department_id,
        extension_id,
    }
}

fn opened_department(sim: &Sim) -> Option<Option<Id>> {
    sim.out.iter().find_map(|o| match o {
        Output::OpenAttendance(new) => Some(new.department_id),
        _ => None,
    })
}

#[test]
fn a_did_routes_a_carrier_call_to_its_department_however_it_is_spelled() {
    let plan = carrier(vec![did("+55 11 4000-4000", Some(2), None)], None);
    let sim = Sim::start(plan, "551140004000");
    assert_eq!(opened_department(&sim), Some(Some(2)));
    assert_eq!(sim.to_agent(2, Method::Invite).len(), 1);
    assert!(sim.to_agent(1, Method::Invite).is_empty());
}

#[test]
fn a_did_routes_a_carrier_call_to_an_extension() {
    let plan = carrier(vec![did("551140004001", None, Some(101))], None);
    let sim = Sim::start(plan, "551140004001");
    assert_eq!(opened_department(&sim), Some(None));
    assert_eq!(
        sim.to_agent(1, Method::Invite).len(),
        1,
        "extension 1001 rings"
    );
}

#[test]
fn an_unknown_did_gets_404_and_opens_nothing() {
    let plan = carrier(vec![did("551140004000", Some(2), None)], None);
    let sim = Sim::start(plan, "551199999999");
    assert_eq!(sim.to_caller_invite(), vec![100, 404]);
    assert_eq!(opened_department(&sim), None);
}

#[test]
fn pabx_codes_still_work_on_a_trunk_with_dids() {
    let plan = carrier(vec![did("551140004000", Some(2), None)], None);
    let sim = Sim::start(plan, "700");
    assert_eq!(opened_department(&sim), Some(Some(1)));
}

#[test]
fn max_channels_refuses_the_call_beyond_it_until_one_ends() {
    let env = FakeEnv::new(carrier(Vec::new(), Some(1)));
    let mut first = Sim::start_with(env.clone(), "700", true);
    first.agent_says(1, 200);
    first.caller_ack(1);
    let second = Sim::start_with(env.clone(), "700", true);
    assert_eq!(second.to_caller_invite(), vec![100, 503]);
    assert!(second.call.is_finished());
    assert_eq!(env.live.trunk_channels(1), 1, "the refused call took none");
    first.caller_request("BYE", false);
    assert_eq!(env.live.trunk_channels(1), 0, "given back at the end");
    let third = Sim::start_with(env.clone(), "700", true);
    assert_eq!(third.to_caller_invite(), vec![100, 180]);
}

#[test]
fn a_call_refused_after_taking_a_channel_gives_it_back() {
    let env = FakeEnv::new(carrier(Vec::new(), Some(1)));
    let mut sim = Sim::start_with(env.clone(), "700", false);
    assert_eq!(env.live.trunk_channels(1), 1);
    sim.feed(Input::Opened(Err("disk full".into())));
    assert_eq!(env.live.trunk_channels(1), 0);
}

/// The PBX (its SIP address, recognised by signalling) is no carrier: no
/// trunk is needed, and the caller is who it asserts.
fn pbx_plan() -> CallPlan {
    plan_full(
        vec![department(1, 700)],
        Vec::new(),
        &[&[1], &[]],
        Trunk {
            inbound: vec!["10.0.0.0/8".parse().unwrap()],
            ..trunk()
        },
    )
}

#[test]
fn the_pbx_relays_a_customer_call_known_by_its_asserted_identity() {
    let invite = invite_with(
        "700",
        "P-Asserted-Identity: \"Cliente\" <sip:551133334444@127.0.0.1>\n",
    );
    let sim = Sim::start_invite(FakeEnv::new(pbx_plan()), invite, true, true);
    let new = sim.opened();
    assert_eq!(new.caller, "551133334444");
    assert_eq!(new.direction, crate::domain::Direction::Inbound);
    assert_eq!(sim.to_agent(1, Method::Invite).len(), 1);
}

#[test]
fn the_pbx_relays_one_of_its_phones_as_an_internal_call() {
    let invite = invite_with("700", "P-Asserted-Identity: <sip:1002@127.0.0.1>\n");
    let sim = Sim::start_invite(FakeEnv::new(pbx_plan()), invite, true, true);
    let new = sim.opened();
    assert_eq!(new.caller, "1002");
    assert_eq!(new.direction, crate::domain::Direction::Internal);
}

#[test]
fn without_the_pbx_the_same_address_is_an_unknown_caller() {
    let sim = Sim::start_invite(FakeEnv::new(pbx_plan()), caller_invite("700"), false, true);
    assert_eq!(sim.to_caller_invite(), vec![100, 403]);
}
