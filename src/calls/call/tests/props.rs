//! Thousands of random interleavings of what the legs, the API and time
//! can do to a call: whatever happens, the call never panics, answers the
//! caller's INVITE with exactly one final response, ends its attendance at
//! most once (exactly once when it is over), and leaves no agent busy
//! and no trunk channel held. The same holds when the call is forwarded
//! beyond the bridge (follow-me, after hours) and a carrier plays a leg.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    AgentSays(Id, u16),
    CallerCancel,
    CallerAck,
    CallerBye,
    CallerReinvite,
    AgentBye(Id),
    HangUp,
    Transfer,
    MediaDead,
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            1..=3i64,
            prop::sample::select(vec![180u16, 183, 200, 486, 603, 408, 500])
        )
            .prop_map(|(a, s)| Step::AgentSays(a, s)),
        Just(Step::CallerCancel),
        Just(Step::CallerAck),
        Just(Step::CallerBye),
        Just(Step::CallerReinvite),
        (1..=3i64).prop_map(Step::AgentBye),
        Just(Step::HangUp),
        Just(Step::Transfer),
        Just(Step::MediaDead),
        (0..40_000u64).prop_map(Step::Advance),
    ]
}

fn apply(sim: &mut Sim, step: &Step) {
    let answered = sim.caller_200s() > 0;
    match step {
        Step::AgentSays(a, s) if !sim.to_agent(*a, Method::Invite).is_empty() => {
            sim.agent_says(*a, *s);
        }
        Step::CallerCancel => sim.sip(CallInput::Cancelled),
        Step::CallerAck if answered => sim.caller_ack(1),
        Step::CallerBye if answered => {
            sim.caller_request("BYE", false);
        }
        Step::CallerReinvite if answered => {
            sim.caller_request("INVITE", true);
        }
        Step::AgentBye(a) if answered && !sim.to_agent(*a, Method::Invite).is_empty() => {
            sim.agent_request(*a, "BYE", "");
        }
        Step::HangUp => sim.feed(Input::Control(Control::HangUp)),
        Step::Transfer => sim.feed(Input::Control(Control::Transfer {
            target: "701".into(),
        })),
        Step::MediaDead if answered => sim.feed(Input::MediaDead),
        Step::Advance(ms) => sim.advance(Duration::from_millis(*ms)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_keeps_the_call_rules(steps in prop::collection::vec(step(), 1..30)) {
        let plan = plan_full(
            vec![department(1, 700), department(2, 701)],
            Vec::new(),
            &[&[1], &[1], &[2]],
            Trunk { max_channels: Some(5), ..trunk() },
        );
        let mut sim = Sim::start(plan, "700");
        for s in &steps {
            apply(&mut sim, s);
        }
        // Time runs out for whatever is left (ring timeouts, no ACK).
        sim.advance(Duration::from_secs(120));
        sim.feed(Input::Control(Control::HangUp));
        let finals: Vec<u16> = sim.to_caller_invite().into_iter().filter(|s| *s >= 200).collect();
        prop_assert!(!finals.is_empty(), "the caller's INVITE got a final answer");
        prop_assert!(finals.iter().all(|s| *s == finals[0]), "one final answer (2xx may be resent): {:?}", finals);
        prop_assert!(sim.call.is_finished());
        prop_assert!(sim.ended().is_some(), "the attendance ended");
        prop_assert!(!sim.is_live());
        prop_assert!(sim.env.live.busy_agents().is_empty());
        prop_assert_eq!(sim.env.live.trunk_channels(1), 0, "the trunk channel is given back");
        let replies = sim.out.iter().filter(|o| matches!(o, Output::TransferReply(_))).count();
        let asked = steps.iter().filter(|s| matches!(s, Step::Transfer)).count();
        prop_assert_eq!(replies, asked, "every API transfer is answered");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Extension 1001 with follow-me (or department 710 closed, forwarding
    /// after hours); "agent" 3 of the steps is the carrier's trunk.
    #[test]
    fn any_interleaving_of_a_forwarded_call_keeps_the_call_rules(
        dialled in prop::sample::select(vec!["1001", "710"]),
        ring_first_s in 0..3u32,
        steps in prop::collection::vec(step(), 1..30),
    ) {
        use super::forward::{CARRIER, follow_me, forward_plan, route};
        let plan = forward_plan(follow_me(ring_first_s), vec![route(Vec::new())]);
        let mut sim = Sim::start(plan, dialled);
        let carrier = |a: &Id| if *a == 3 { CARRIER } else { *a };
        for s in &steps {
            let s = match s {
                Step::AgentSays(a, st) => Step::AgentSays(carrier(a), *st),
                Step::AgentBye(a) => Step::AgentBye(carrier(a)),
                other => other.clone(),
            };
            apply(&mut sim, &s);
        }
        sim.advance(Duration::from_secs(300));
        sim.feed(Input::Control(Control::HangUp));
        let finals: Vec<u16> = sim.to_caller_invite().into_iter().filter(|s| *s >= 200).collect();
        prop_assert!(!finals.is_empty(), "the caller's INVITE got a final answer");
        prop_assert!(finals.iter().all(|s| *s == finals[0]), "one final answer: {:?}", finals);
        prop_assert!(sim.call.is_finished());
        let ended = sim.ended();
        prop_assert!(ended.is_some(), "the attendance ended");
        if dialled == "710" {
            prop_assert_eq!(ended, Some(Some(CloseReason::AfterHours)), "after hours, whatever happened");
        }
        prop_assert!(!sim.is_live());
        prop_assert!(sim.env.live.busy_agents().is_empty());
        prop_assert_eq!(sim.env.live.trunk_channels(1), 0);
        prop_assert_eq!(sim.env.live.trunk_channels(CARRIER), 0);
    }
}
