//! The tracker replaying the recorded calls, and re-sync after a cut.

use std::time::{Duration, SystemTime};

use super::super::packet::Packet;
use super::super::tracker::{CallDecision, Direction, HangupCause, Party, Tracker};
use super::support::*;

/// Packet index as seconds after the epoch: deterministic times.
fn at(i: usize) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64)
}

fn events(prefix: &str) -> Vec<Packet> {
    packets_of(&read(&scenario(prefix, ".ami.in")))
        .into_iter()
        .filter(|p| p.event_name().is_some())
        .collect()
}

fn run(tracker: &mut Tracker, evs: &[Packet], offset: usize) -> Vec<(usize, CallDecision)> {
    let mut out = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        for d in tracker.on_event(ev, at(offset + i)) {
            out.push((offset + i, d));
        }
    }
    out
}

fn index_of(evs: &[Packet], pred: impl Fn(&Packet) -> bool) -> usize {
    evs.iter().position(pred).expect("event present")
}

fn cause(code: u16, text: &str) -> Option<HangupCause> {
    Some(HangupCause {
        code,
        text: text.into(),
    })
}

/// CoreShowChannel as Asterisk 22 writes it, from a channel event's fields.
fn core_show_channel(from: &Packet, duration: &str) -> Packet {
    let mut p = Packet::new()
        .with("Event", "CoreShowChannel")
        .with("ActionID", "pbx-bridge-2-000002");
    for k in [
        "Channel",
        "ChannelState",
        "ChannelStateDesc",
        "CallerIDNum",
        "CallerIDName",
        "ConnectedLineNum",
        "ConnectedLineName",
        "Language",
        "AccountCode",
        "Context",
        "Exten",
        "Priority",
        "Uniqueid",
        "Linkedid",
    ] {
        p.push(k, from.get(k).unwrap_or_default());
    }
    p.push("BridgeId", from.get("BridgeUniqueid").unwrap_or_default());
    p.push("Application", "Dial");
    p.push("ApplicationData", "PJSIP/1001&PJSIP/1002,30");
    p.push("Duration", duration);
    p
}

#[test]
fn scenario_b_ring_all_is_one_call_answered_by_1002() {
    let evs = events("b-");
    let mut t = Tracker::new(fixture_tracker_config());
    let got = run(&mut t, &evs, 0);
    let first = index_of(&evs, |e| e.is_event("Newchannel"));
    let rec = index_of(&evs, |e| e.get("Variable") == Some("MIXMONITOR_FILENAME"));
    let answer = index_of(&evs, |e| {
        e.is_event("DialEnd") && e.get("DialStatus") == Some("ANSWER")
    });
    let last = evs.iter().rposition(|e| e.is_event("Hangup")).unwrap();
    let l = "1795295209.0".to_owned();
    assert_eq!(
        got,
        [
            (
                first,
                CallDecision::CallOpened {
                    linkedid: l.clone(),
                    caller: "+4930123456".into(),
                    callee: "701".into(),
                    direction: Direction::Inbound,
                    department_code: Some("701".into()),
                    opened_at: at(first),
                }
            ),
            (
                rec,
                CallDecision::RecordingAnnounced {
                    linkedid: l.clone(),
                    path: "/var/spool/asterisk/monitor/dept701-1795295209.0.wav".into(),
                }
            ),
            (
                answer,
                CallDecision::CallAnswered {
                    linkedid: l.clone(),
                    agent_extension: Some("1002".into()),
                    at: at(answer),
                }
            ),
            (
                last,
                CallDecision::CallEnded {
                    linkedid: l,
                    cause: cause(16, "Normal Clearing"),
                    ended_at: at(last),
                    answered: true,
                    hangup_by: Some(Party::Caller),
                }
            ),
        ]
    );
    assert_eq!(t.live_calls(), 0);
}

#[test]
fn scenario_d_originate_is_an_internal_call_1001_to_1002() {
    let evs = events("d-");
    let mut t = Tracker::new(fixture_tracker_config());
    let got = run(&mut t, &evs, 0);
    let open = index_of(&evs, |e| {
        e.is_event("Newexten") && e.get("Exten") == Some("1002")
    });
    let answer = index_of(&evs, |e| {
        e.is_event("DialEnd") && e.get("DialStatus") == Some("ANSWER") && e.get("Channel").is_some()
    });
    let last = evs.iter().rposition(|e| e.is_event("Hangup")).unwrap();
    let l = "1795295235.6".to_owned();
    assert_eq!(
        got,
        [
            (
                open,
                CallDecision::CallOpened {
                    linkedid: l.clone(),
                    caller: "1001".into(),
                    callee: "1002".into(),
                    direction: Direction::Internal,
                    department_code: None,
                    opened_at: at(open),
                }
            ),
            (
                answer,
                CallDecision::CallAnswered {
                    linkedid: l.clone(),
                    agent_extension: Some("1002".into()),
                    at: at(answer),
                }
            ),
            (
                last,
                CallDecision::CallEnded {
                    linkedid: l,
                    cause: cause(16, "Normal Clearing"),
                    ended_at: at(last),
                    answered: true,
                    hangup_by: Some(Party::Caller),
                }
            ),
        ]
    );
}

#[test]
fn scenarios_g_and_g2_are_unanswered_calls_with_their_causes() {
    for (prefix, l, callee, code, text, by) in [
        (
            "g-",
            "1795295286.18",
            "1002",
            3,
            "No route to destination",
            None,
        ),
        (
            "g2-",
            "1795295280.16",
            "1001",
            17,
            "User busy",
            Some(Party::Callee),
        ),
    ] {
        let evs = events(prefix);
        let mut t = Tracker::new(fixture_tracker_config());
        let got = run(&mut t, &evs, 0);
        let first = index_of(&evs, |e| e.is_event("Newchannel"));
        let last = evs.iter().rposition(|e| e.is_event("Hangup")).unwrap();
        assert_eq!(
            got,
            [
                (
                    first,
                    CallDecision::CallOpened {
                        linkedid: l.into(),
                        caller: "+4930123456".into(),
                        callee: callee.into(),
                        direction: Direction::Inbound,
                        department_code: None,
                        opened_at: at(first),
                    }
                ),
                (
                    last,
                    CallDecision::CallEnded {
                        linkedid: l.into(),
                        cause: cause(code, text),
                        ended_at: at(last),
                        answered: false,
                        hangup_by: by,
                    }
                ),
            ],
            "{prefix}"
        );
    }
}

#[test]
fn scenarios_without_calls_decide_nothing() {
    for path in transcripts_in() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Calls (`i-` is replayed in `follow_store`).
        if ["b-", "d-", "g-", "g2-", "i-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            continue;
        }
        let mut t = Tracker::new(fixture_tracker_config());
        for p in packets_of(&read(&path)) {
            assert!(t.on_event(&p, at(0)).is_empty(), "{name}");
        }
        assert_eq!(t.live_calls(), 0, "{name}");
    }
}

#[test]
fn directions_from_contexts_and_callees() {
    let mut t = Tracker::new(fixture_tracker_config());
    let chan = |l: &str, name: &str, ctx: &str, exten: &str| {
        Packet::new()
            .with("Event", "Newchannel")
            .with("Channel", name)
            .with("ChannelState", "4")
            .with("CallerIDNum", "1001")
            .with("Context", ctx)
            .with("Exten", exten)
            .with("Uniqueid", l)
            .with("Linkedid", l)
    };
    let dir = |t: &mut Tracker, p: Packet| match t.on_event(&p, at(0)).pop() {
        Some(CallDecision::CallOpened {
            direction,
            department_code,
            ..
        }) => (direction, department_code),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        dir(&mut t, chan("1.1", "PJSIP/1001-1", "internal", "1002")),
        (Direction::Internal, None)
    );
    assert_eq!(
        dir(&mut t, chan("1.2", "PJSIP/1001-2", "internal", "702")),
        (Direction::Internal, Some("702".into()))
    );
    assert_eq!(
        dir(&mut t, chan("1.3", "PJSIP/1001-3", "internal", "955511234")),
        (Direction::Outbound, None)
    );
    assert_eq!(
        dir(&mut t, chan("1.4", "PJSIP/bridge-4", "elsewhere", "1001")),
        (Direction::Inbound, None)
    );
    assert_eq!(
        dir(&mut t, chan("1.5", "PJSIP/x-5", "from-bridge", "701")),
        (Direction::Inbound, Some("701".into()))
    );
    // `s` opens nothing until a real extension is known.
    assert!(
        t.on_event(&chan("1.6", "PJSIP/1001-6", "internal", "s"), at(0))
            .is_empty()
    );
}

/// Index of the first event after which b's call is answered and bridged.
fn b_mid_call(evs: &[Packet]) -> usize {
    evs.iter()
        .position(|e| {
            e.is_event("BridgeEnter") && e.get("Channel") == Some("PJSIP/bridge-00000000")
        })
        .unwrap()
        + 1
}

#[test]
fn cut_mid_call_then_resync_without_the_call_ends_it_exactly_once() {
    let evs = events("b-");
    let cut = b_mid_call(&evs);
    let mut t = Tracker::new(fixture_tracker_config());
    let before = run(&mut t, &evs[..cut], 0);
    assert_eq!(before.len(), 3, "opened, recording, answered: {before:?}");
    // Disconnected; the call ended meanwhile; the re-sync shows no channel.
    let got = t.resync(&[], at(1000));
    assert_eq!(
        got,
        [CallDecision::CallEnded {
            linkedid: "1795295209.0".into(),
            cause: None,
            ended_at: at(1000),
            answered: true,
            hangup_by: None,
        }]
    );
    assert!(t.resync(&[], at(1001)).is_empty(), "not twice");
    // Late events of the ended call (had we not lost them) re-open nothing.
    assert!(run(&mut t, &evs[cut..], 2000).is_empty());
    assert_eq!(t.live_calls(), 0);
}

#[test]
fn cut_mid_call_then_resync_with_the_call_alive_does_not_duplicate() {
    let evs = events("b-");
    let cut = b_mid_call(&evs);
    let mut t = Tracker::new(fixture_tracker_config());
    run(&mut t, &evs[..cut], 0);
    // Live channels: the caller and agent 1002, bridged (1001 hung up).
    let caller = &evs[cut - 1];
    let agent = evs[..cut]
        .iter()
        .rfind(|e| e.is_event("BridgeEnter") && e.get("Channel") == Some("PJSIP/1002-00000002"))
        .unwrap();
    let snapshot = [
        core_show_channel(caller, "00:00:02"),
        core_show_channel(agent, "00:00:01"),
    ];
    assert!(t.resync(&snapshot, at(1000)).is_empty());
    assert!(t.resync(&snapshot, at(1001)).is_empty());
    // The rest of the call ends it once, with its real cause.
    let rest = run(&mut t, &evs[cut..], cut);
    let ended: Vec<_> = rest
        .iter()
        .filter(|(_, d)| matches!(d, CallDecision::CallEnded { .. }))
        .collect();
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(
        matches!(&ended[0].1, CallDecision::CallEnded { cause, answered: true, .. }
        if *cause == cause_16())
    );
}

fn cause_16() -> Option<HangupCause> {
    cause(16, "Normal Clearing")
}

#[test]
fn resync_discovers_a_live_call_once_and_follows_it_to_the_end() {
    let evs = events("b-");
    let cut = b_mid_call(&evs);
    let caller = &evs[cut - 1];
    let agent = evs[..cut]
        .iter()
        .rfind(|e| e.is_event("BridgeEnter") && e.get("Channel") == Some("PJSIP/1002-00000002"))
        .unwrap();
    let snapshot = [
        core_show_channel(agent, "00:00:01"),
        core_show_channel(caller, "00:00:05"),
    ];
    // A fresh bridge process: it never saw the start of the call.
    let mut t = Tracker::new(fixture_tracker_config());
    let got = t.resync(&snapshot, at(1000));
    let l = "1795295209.0".to_owned();
    assert_eq!(
        got,
        [
            CallDecision::CallOpened {
                linkedid: l.clone(),
                caller: "+4930123456".into(),
                callee: "701".into(),
                direction: Direction::Inbound,
                department_code: Some("701".into()),
                opened_at: at(995),
            },
            CallDecision::CallAnswered {
                linkedid: l.clone(),
                agent_extension: Some("1002".into()),
                at: at(1000),
            },
        ]
    );
    assert!(
        t.resync(&snapshot, at(1001)).is_empty(),
        "seen again: no duplicate"
    );
    let rest = run(&mut t, &evs[cut..], 2000);
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(matches!(
        &rest[0].1,
        CallDecision::CallEnded { answered: true, .. }
    ));
}

#[test]
fn every_cut_point_of_b_with_empty_resync_balances_opens_and_ends() {
    let evs = events("b-");
    for cut in 0..=evs.len() {
        let mut t = Tracker::new(fixture_tracker_config());
        let mut all: Vec<CallDecision> = run(&mut t, &evs[..cut], 0)
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        all.extend(t.resync(&[], at(5000)));
        all.extend(run(&mut t, &evs[cut..], 6000).into_iter().map(|(_, d)| d));
        let opened = all
            .iter()
            .filter(|d| matches!(d, CallDecision::CallOpened { .. }))
            .count();
        let ended = all
            .iter()
            .filter(|d| matches!(d, CallDecision::CallEnded { .. }))
            .count();
        assert!(opened <= 1 && opened == ended, "cut {cut}: {all:?}");
    }
}

#[test]
fn pump_reports_counts_for_benchmarks() {
    let bytes = read(&scenario("b-", ".ami.in"));
    let body = super::super::replay::strip_banner(&bytes);
    let stats = super::super::replay::pump(body, 3, 1460, &fixture_tracker_config());
    let per_pass = packets_of(&bytes);
    assert_eq!(stats.packets, per_pass.len() * 3);
    assert_eq!(
        stats.events,
        per_pass.iter().filter(|p| p.event_name().is_some()).count() * 3
    );
    assert_eq!(stats.decisions, 4 * 3);
}
