use super::*;

fn leg(role: LegRole, ext: Option<&str>, agent: Option<i64>, state: LegState) -> LiveLeg {
    LiveLeg {
        role,
        call_id: format!("cid-{}", ext.unwrap_or("x")),
        peer: "127.0.0.1:5062".into(),
        extension: ext.map(str::to_owned),
        agent_id: agent,
        state,
    }
}

fn call(id: &str, since_s: i64, legs: Vec<LiveLeg>) -> LiveCall {
    LiveCall {
        id: id.into(),
        protocol: id.into(),
        direction: Direction::Inbound,
        state: CallState::Ringing,
        department_id: Some(1),
        agent_id: None,
        caller: "5511999990000".into(),
        callee: "100".into(),
        since: DateTime::from_timestamp(since_s, 0).unwrap(),
        answered_at: None,
        legs,
    }
}

fn channel() -> mpsc::UnboundedSender<CallControl> {
    mpsc::unbounded_channel().0
}

fn set<T: std::hash::Hash + Eq + Clone>(items: &[T]) -> HashSet<T> {
    items.iter().cloned().collect()
}

#[test]
fn busy_sets_follow_legs_across_updates_and_removal() {
    let live = LiveCalls::new();
    assert!(live.is_empty());
    live.insert(
        call(
            "20260101000001",
            10,
            vec![
                leg(LegRole::Caller, None, None, LegState::Answered),
                leg(LegRole::Agent, Some("1001"), Some(1), LegState::Ringing),
                leg(LegRole::Agent, Some("1002"), Some(2), LegState::Ringing),
            ],
        ),
        channel(),
    );
    assert_eq!(live.busy_agents(), set(&[1, 2]));
    assert_eq!(
        live.busy_extensions(),
        set(&["1001".to_owned(), "1002".to_owned()])
    );

    // Agent 1 answers; agent 2's fork is cancelled.
    live.update("20260101000001", |c| {
        c.state = CallState::Answered;
        c.agent_id = Some(1);
        c.legs[1].state = LegState::Answered;
        c.legs[2].state = LegState::Ended;
    });
    assert_eq!(live.busy_agents(), set(&[1]));
    assert_eq!(live.busy_extensions(), set(&["1001".to_owned()]));

    // Agent 1 is also rung by a second call (counted twice, busy once).
    live.insert(
        call(
            "20260101000002",
            20,
            vec![
                leg(LegRole::Caller, Some("1003"), None, LegState::Answered),
                leg(LegRole::Agent, Some("1001"), Some(1), LegState::Ringing),
            ],
        ),
        channel(),
    );
    assert_eq!(live.busy_agents(), set(&[1]));
    assert_eq!(live.len(), 2);
    live.remove("20260101000001");
    assert_eq!(live.busy_agents(), set(&[1]), "still on the second call");
    assert_eq!(
        live.busy_extensions(),
        set(&["1001".to_owned(), "1003".to_owned()])
    );
    live.update("20260101000002", |c| {
        c.legs.pop();
    });
    assert!(live.busy_agents().is_empty());
    live.remove("20260101000002");
    live.remove("20260101000002");
    assert!(live.is_empty());
    assert!(live.busy_extensions().is_empty());
}

#[test]
fn list_is_oldest_first_and_get_control_find_calls() {
    let live = LiveCalls::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    live.insert(call("20260101000002", 20, vec![]), channel());
    live.insert(call("20260101000001", 10, vec![]), tx);
    live.insert(call("20260101000003", 20, vec![]), channel());
    let ids: Vec<String> = live.list().into_iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        ["20260101000001", "20260101000002", "20260101000003"],
        "by start, then by insertion"
    );
    assert_eq!(live.get("20260101000001").unwrap().since.timestamp(), 10);
    assert!(live.get("nope").is_none());
    assert!(live.control("nope").is_none());
    live.control("20260101000001")
        .unwrap()
        .send(CallControl::HangUp)
        .unwrap();
    assert!(matches!(rx.try_recv(), Ok(CallControl::HangUp)));
}

#[test]
fn replacing_a_call_and_updating_a_gone_one_keep_counts_right() {
    let live = LiveCalls::new();
    let busy = vec![leg(
        LegRole::Agent,
        Some("1001"),
        Some(7),
        LegState::Ringing,
    )];
    live.insert(call("20260101000001", 1, busy.clone()), channel());
    live.insert(call("20260101000001", 1, busy), channel());
    assert_eq!(live.len(), 1);
    live.remove("20260101000001");
    assert!(live.busy_agents().is_empty(), "no count left behind");
    live.update("20260101000001", |c| c.state = CallState::Ending);
    assert!(live.get("20260101000001").is_none());

    // A closure cannot rename the call out from under its key.
    live.insert(call("20260101000004", 1, vec![]), channel());
    live.update("20260101000004", |c| c.id = "other".into());
    assert_eq!(live.get("20260101000004").unwrap().id, "20260101000004");
}

#[test]
fn serializes_in_snake_case() {
    let c = call(
        "20260101000001",
        0,
        vec![leg(LegRole::Caller, None, None, LegState::Calling)],
    );
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["state"], "ringing");
    assert_eq!(v["direction"], "inbound");
    assert_eq!(v["legs"][0]["role"], "caller");
    assert_eq!(v["legs"][0]["state"], "calling");
    assert_eq!(v["since"], "1970-01-01T00:00:00Z");
}

#[test]
fn two_calls_claiming_one_free_agent_at_once_get_it_once() {
    let live = LiveCalls::new();
    live.insert(call("20260101000001", 0, vec![]), channel());
    live.insert(call("20260101000002", 0, vec![]), channel());
    let agent_leg = || leg(LegRole::Agent, Some("1001"), Some(7), LegState::Calling);
    let claims: Vec<bool> = std::thread::scope(|s| {
        let a = s.spawn(|| live.claim("20260101000001", agent_leg()));
        let b = s.spawn(|| live.claim("20260101000002", agent_leg()));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert_eq!(claims.iter().filter(|&&c| c).count(), 1, "{claims:?}");
    assert_eq!(live.busy_agents(), set(&[7]));
    // The extension alone is enough to be busy (a direct extension call).
    let ext_only = leg(LegRole::Agent, Some("1001"), None, LegState::Calling);
    assert!(!live.claim("20260101000002", ext_only));
    // Once the winner's leg ends, the agent is free for the other call.
    let winner = if claims[0] {
        "20260101000001"
    } else {
        "20260101000002"
    };
    let loser = if claims[0] {
        "20260101000002"
    } else {
        "20260101000001"
    };
    live.update(winner, |c| {
        c.legs.iter_mut().for_each(|l| l.state = LegState::Ended)
    });
    assert!(live.claim(loser, agent_leg()));
    assert!(
        !live.claim("20260101000009", agent_leg()),
        "not a live call"
    );
}
