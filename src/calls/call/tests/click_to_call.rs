//! Click-to-call on the bridge (3PCC, RFC 3725 flow I) in simulated time:
//! the extension rings first, the target once it answered; the
//! extension's leg never gets a 200 from us.

use super::*;
use crate::calls::LegState;

/// Extension 1001 ("Ana", agent 1, in no department) clicks; agent 2
/// (extension 1002) answers department 700.
fn ana_and_department() -> CallPlan {
    let mut ana = fixtures::extension(101, "1001", true);
    ana.display_name = "Ana".into();
    let extensions = vec![ana, fixtures::extension(102, "1002", true)];
    let agents = vec![
        fixtures::agent(1, Some(101), &[]),
        fixtures::agent(2, Some(102), &[1]),
    ];
    CallPlan::from_parts(
        1,
        vec![department(1, 700)],
        Vec::new(),
        Vec::new(),
        agents,
        extensions,
        vec![trunk()],
    )
}

impl Sim {
    /// A click-to-call of `from` to `to`, its attendance opened at once.
    fn originate(env: Arc<FakeEnv>, from: &str, to: &str) -> Sim {
        let mut sim = Sim::originate_pending(env, from, to);
        sim.auto_open = true;
        sim.feed(Input::Opened(Ok(PROTOCOL.into())));
        sim
    }

    /// Why it was refused, if it was.
    fn refusal(&self) -> Option<&NotOriginated> {
        self.out.iter().find_map(|o| match o {
            Output::NotOriginated(n) => Some(n),
            _ => None,
        })
    }
}

/// The SDP of a message, as text.
fn sdp_of(m: &SipMessage) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

#[test]
fn extension_answers_then_the_department_agent_bridged_and_recorded() {
    let mut sim = Sim::originate(FakeEnv::new(ana_and_department()), "1001", "700");
    let opened = sim.opened();
    assert_eq!(opened.direction, Direction::Internal);
    assert_eq!(
        (opened.caller.as_str(), opened.callee.as_str()),
        ("1001", "700")
    );
    assert_eq!(opened.department_id, Some(1));
    // The extension rings first, with the bridge's own offer.
    let invites = sim.to_agent(1, Method::Invite);
    assert_eq!(invites.len(), 1);
    let invite = &invites[0];
    let from = invite.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("Click-to-call"));
    assert_eq!(from.uri.user_text().as_deref(), Some("700"));
    assert_eq!(
        invite.header("X-Protocol").map(|v| v.to_vec()),
        Some(PROTOCOL.as_bytes().to_vec())
    );
    let offer = sdp_of(invite);
    assert!(offer.contains("m=audio 20000 RTP/AVP 0 8 101"), "{offer}");
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    assert!(
        sim.to_agent(2, Method::Invite).is_empty(),
        "nobody else rings yet"
    );
    sim.agent_says(1, 180);
    assert_eq!(
        sim.env.live.get(PROTOCOL).unwrap().legs[0].state,
        LegState::Ringing
    );
    sim.agent_says(1, 200);
    assert_eq!(
        sim.to_agent(1, Method::Ack).len(),
        1,
        "the extension's 200 is ACKed"
    );
    // Now the department: agent 2 is offered the extension's answer, and
    // sees Ana as the caller.
    let fork = sim.to_agent(2, Method::Invite).pop().expect("agent 2 rung");
    let from = fork.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("Ana"));
    assert_eq!(from.uri.user_text().as_deref(), Some("1001"));
    assert!(
        sdp_of(&fork).contains("m=audio 20002 "),
        "{}",
        sdp_of(&fork)
    );
    assert!(sim.media().is_empty(), "no media before the target answers");
    sim.agent_says(2, 200);
    assert_eq!(sim.to_agent(2, Method::Ack).len(), 1);
    match sim.media().as_slice() {
        [MediaOp::Start { caller, record, .. }] => {
            assert!(*record, "the department records");
            assert_eq!(
                caller.as_ref().and_then(|a| a.rtp).map(|a| a.port()),
                Some(40000),
                "the extension's answer"
            );
        }
        other => panic!("media {other:?}"),
    }
    assert!(
        sim.responses()
            .iter()
            .all(|(s, m, _)| !(*s == 200 && *m == Method::Invite)),
        "no 200 to the extension: it answered ours"
    );
    assert!(sim.changes().iter().any(|c| matches!(
        c,
        AttendanceChange::Answered {
            agent_id: Some(2),
            ..
        }
    )));
    let live = sim.env.live.get(PROTOCOL).unwrap();
    assert_eq!(live.state, crate::calls::live::CallState::Answered);
    assert_eq!(live.legs[0].extension.as_deref(), Some("1001"));
    assert!(sim.env.live.busy_agents().contains(&1) && sim.env.live.busy_agents().contains(&2));
    // The extension hangs up: the agent gets a BYE, the attendance closes.
    sim.agent_request(1, "BYE", "");
    assert_eq!(sim.to_agent(2, Method::Bye).len(), 1);
    assert_eq!(sim.ended(), Some(Some(CloseReason::CallerHangup)));
    assert!(!sim.is_live());
    assert!(matches!(sim.media().last(), Some(MediaOp::Stop)));
}

#[test]
fn extension_declines_closed_rejected() {
    let mut sim = Sim::originate(FakeEnv::new(ana_and_department()), "1001", "700");
    sim.agent_says(1, 180);
    sim.agent_says(1, 486);
    assert_eq!(sim.ended(), Some(Some(CloseReason::Rejected)));
    assert!(sim.to_agent(2, Method::Invite).is_empty());
    assert!(!sim.is_live());
    assert!(sim.call.is_finished());
}

#[test]
fn extension_rings_out_cancelled_no_answer() {
    let mut sim = Sim::originate(FakeEnv::new(ana_and_department()), "1001", "700");
    sim.agent_says(1, 180);
    sim.advance(Duration::from_secs(61));
    assert_eq!(sim.to_agent(1, Method::Cancel).len(), 1);
    assert_eq!(sim.ended(), Some(Some(CloseReason::NoAnswer)));
    assert!(!sim.is_live());
}

#[test]
fn target_not_answered_bye_to_the_extension_closed_no_answer() {
    let mut sim = Sim::originate(FakeEnv::new(ana_and_department()), "1001", "700");
    sim.agent_says(1, 200);
    sim.agent_says(2, 180);
    sim.advance(Duration::from_secs(31));
    assert_eq!(
        sim.to_agent(2, Method::Cancel).len(),
        1,
        "the agent's ring is cancelled"
    );
    assert_eq!(
        sim.to_agent(1, Method::Bye).len(),
        1,
        "the extension is hung up"
    );
    assert_eq!(sim.ended(), Some(Some(CloseReason::NoAnswer)));
    assert!(sim.media().is_empty());
    assert!(!sim.is_live());
}

#[test]
fn delete_while_the_extension_rings_cancels_it() {
    let mut sim = Sim::originate(FakeEnv::new(ana_and_department()), "1001", "700");
    sim.agent_says(1, 180);
    assert!(sim.is_live(), "listed while the extension rings");
    sim.feed(Input::Control(Control::HangUp));
    assert_eq!(sim.to_agent(1, Method::Cancel).len(), 1);
    assert_eq!(sim.ended(), Some(Some(CloseReason::Api)));
    assert!(!sim.is_live());
    // Its 487 changes nothing; a 200 that crossed the CANCEL is ACKed and
    // hung up.
    sim.agent_says(1, 200);
    assert_eq!(sim.to_agent(1, Method::Ack).len(), 1);
    assert_eq!(sim.to_agent(1, Method::Bye).len(), 1);
    assert!(sim.to_agent(2, Method::Invite).is_empty());
}

#[test]
fn an_extension_not_registered_is_refused_before_anything() {
    let env = FakeEnv::new(ana_and_department());
    env.registered.lock().unwrap().remove("1001");
    let sim = Sim::originate(env, "1001", "700");
    let refusal = sim.refusal().expect("refused");
    assert_eq!(refusal.field, Some("from_extension"));
    assert!(refusal.why.contains("not registered"), "{}", refusal.why);
    assert!(sim.commands().is_empty());
    assert!(
        !sim.out
            .iter()
            .any(|o| matches!(o, Output::OpenAttendance(_)))
    );
    assert!(sim.call.is_finished());
}

#[test]
fn an_unroutable_target_is_refused_on_to() {
    let sim = Sim::originate(FakeEnv::new(ana_and_department()), "1001", "5511999990000");
    let refusal = sim.refusal().expect("refused: no outbound route");
    assert_eq!(refusal.field, Some("to"));
    assert!(sim.commands().is_empty());
}

#[test]
fn a_busy_extension_is_not_rung() {
    let env = FakeEnv::new(ana_and_department());
    let first = Sim::originate(env.clone(), "1001", "1002");
    assert!(first.is_live());
    let mut second = Sim::originate_pending(env, "1001", "700");
    second.feed(Input::Opened(Ok("20261207000002".into())));
    assert_eq!(second.ended(), Some(Some(CloseReason::Rejected)));
    assert!(
        second.commands().is_empty(),
        "nothing sent to a busy extension"
    );
}

#[test]
fn extension_to_extension_rings_the_callee_with_the_agent_name() {
    let mut sim = Sim::originate(FakeEnv::new(ana_and_department()), "1001", "1002");
    assert_eq!(sim.opened().direction, Direction::Internal);
    sim.agent_says(1, 200);
    let fork = sim.to_agent(2, Method::Invite).pop().expect("1002 rung");
    assert_eq!(fork.from().unwrap().display_name.as_deref(), Some("Ana"));
    sim.agent_says(2, 200);
    assert!(matches!(sim.media().as_slice(), [MediaOp::Start { .. }]));
    // The callee hangs up: BYE to the extension.
    sim.agent_request(2, "BYE", "");
    assert_eq!(sim.to_agent(1, Method::Bye).len(), 1);
    assert_eq!(sim.ended(), Some(Some(CloseReason::AgentHangup)));
}

impl Sim {
    /// A click-to-call whose attendance is not opened yet.
    fn originate_pending(env: Arc<FakeEnv>, from: &str, to: &str) -> Sim {
        let now = Instant::now();
        let call = Call::originate(
            OriginateCall {
                from_extension: from.into(),
                to: to.into(),
            },
            env.clone(),
            CallConfig {
                media_address: "127.0.0.1".parse().unwrap(),
                caller_port: 20000,
                agent_port: 20002,
            },
            Box::new(CounterIds::new(format!("{from}-{to}"))),
            now,
            wall0(),
        );
        let mut sim = Sim {
            call,
            env,
            now,
            out: Vec::new(),
            auto_open: false,
            caller_seq: 1,
        };
        sim.drain();
        sim
    }
}
