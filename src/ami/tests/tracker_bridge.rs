//! Calls whose other side is the bridge are the bridge's (it opens its own
//! SIP attendance): the tracker never opens, or withdraws, an AMI attendance
//! for calls that go to the bridge and for the legs the bridge places
//! through Asterisk.

use std::time::{Duration, SystemTime};

use super::super::packet::Packet;
use super::super::tracker::{CallDecision, Direction, Tracker, TrackerConfig};
use super::support::*;

pub(super) fn at(i: usize) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64)
}

/// The rendered dialplan's PBX: `bridge` is the bridge's endpoint.
pub(super) fn config() -> TrackerConfig {
    fixture_tracker_config()
        .bridge("bridge")
        .trunk("operadora")
        .inbound_context("pbx-bridge-from-bridge")
}

/// A leg: `(channel, uniqueid, linkedid, context, exten, caller, state)`.
#[derive(Clone, Copy)]
pub(super) struct Leg<'a>(
    pub &'a str,
    pub &'a str,
    pub &'a str,
    pub &'a str,
    pub &'a str,
    pub &'a str,
    pub &'a str,
);

pub(super) fn chan_event(name: &str, leg: Leg<'_>) -> Packet {
    let Leg(channel, uid, lid, ctx, exten, caller, state) = leg;
    Packet::new()
        .with("Event", name)
        .with("Channel", channel)
        .with("ChannelState", state)
        .with("CallerIDNum", caller)
        .with("Context", ctx)
        .with("Exten", exten)
        .with("Uniqueid", uid)
        .with("Linkedid", lid)
}

pub(super) fn dial(name: &str, from: Leg<'_>, to: Leg<'_>, status: Option<&str>) -> Packet {
    let mut p = chan_event(name, from);
    let Leg(channel, uid, lid, ctx, exten, caller, state) = to;
    for (k, v) in [
        ("DestChannel", channel),
        ("DestChannelState", state),
        ("DestCallerIDNum", caller),
        ("DestContext", ctx),
        ("DestExten", exten),
        ("DestUniqueid", uid),
        ("DestLinkedid", lid),
    ] {
        p.push(k, v);
    }
    if let Some(s) = status {
        p.push("DialStatus", s);
    }
    p
}

pub(super) fn hangup(leg: Leg<'_>, cause: &str) -> Packet {
    chan_event("Hangup", leg)
        .with("Cause", cause)
        .with("Cause-txt", "Normal Clearing")
}

pub(super) fn run(t: &mut Tracker, evs: &[Packet]) -> Vec<(usize, CallDecision)> {
    let mut out = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        for d in t.on_event(ev, at(i)) {
            out.push((i, d));
        }
    }
    out
}

/// Extension 1001 dials department 701, which the rendered dialplan sends
/// to the bridge (`Dial(PJSIP/701@bridge)`); the bridge answers (its agent
/// did), they talk, 1001 hangs up.
fn extension_calls_department_through_the_bridge() -> Vec<Packet> {
    let root = Leg(
        "PJSIP/1001-00000010",
        "1800000000.40",
        "1800000000.40",
        "pbx-bridge-ext-1001",
        "701",
        "1001",
        "4",
    );
    let root_up = Leg(root.0, root.1, root.2, root.3, root.4, root.5, "6");
    let bridge = Leg(
        "PJSIP/bridge-00000011",
        "1800000000.41",
        "1800000000.40",
        "pbx-bridge-from-bridge",
        "s",
        "701",
        "0",
    );
    let bridge_ringing = Leg(
        bridge.0, bridge.1, bridge.2, bridge.3, bridge.4, bridge.5, "5",
    );
    let bridge_up = Leg(
        bridge.0, bridge.1, bridge.2, bridge.3, bridge.4, bridge.5, "6",
    );
    vec![
        chan_event("Newchannel", root),
        chan_event("Newexten", root),
        Packet::new()
            .with("Event", "VarSet")
            .with("Channel", root.0)
            .with("Uniqueid", root.1)
            .with("Linkedid", root.2)
            .with("Variable", "MIXMONITOR_FILENAME")
            .with("Value", "/var/spool/asterisk/monitor/x.wav"),
        chan_event("Newchannel", bridge),
        dial("DialBegin", root, bridge, None),
        chan_event("Newstate", bridge_ringing),
        chan_event("Newstate", bridge_up),
        dial("DialEnd", root, bridge_up, Some("ANSWER")),
        chan_event("Newstate", root_up),
        chan_event("BridgeEnter", root_up),
        chan_event("BridgeEnter", bridge_up),
        chan_event("HangupRequest", root_up),
        hangup(root_up, "16"),
        hangup(bridge_up, "16"),
        Packet::new()
            .with("Event", "Cdr")
            .with("UniqueID", root.1)
            .with("DestinationChannel", bridge.0)
            .with("Disposition", "ANSWERED"),
    ]
}

#[test]
fn a_call_dialing_the_bridge_opens_nothing() {
    let mut t = Tracker::new(config());
    let got = run(&mut t, &extension_calls_department_through_the_bridge());
    assert_eq!(got, []);
    assert_eq!(t.live_calls(), 0);
    assert!(t.open_calls().is_empty());
}

#[test]
fn without_a_bridge_endpoint_the_same_call_is_followed() {
    // The old behaviour, kept when no bridge endpoint is configured.
    let mut t = Tracker::new(fixture_tracker_config());
    let got = run(&mut t, &extension_calls_department_through_the_bridge());
    let kinds: Vec<&str> = got
        .iter()
        .map(|(_, d)| match d {
            CallDecision::CallOpened { .. } => "opened",
            CallDecision::RecordingAnnounced { .. } => "recording",
            CallDecision::CallAnswered { .. } => "answered",
            CallDecision::CallEnded { .. } => "ended",
            CallDecision::CallToBridge { .. } => "to-bridge",
            CallDecision::CallHandedOver { .. } => "handed-over",
            CallDecision::CallTransferred { .. } => "transferred",
            CallDecision::CallClaimed { .. } => "claimed",
        })
        .collect();
    assert_eq!(kinds, ["opened", "recording", "answered", "ended"]);
}

#[test]
fn a_trunk_did_sent_to_the_bridge_opens_nothing() {
    // `[pbx-bridge-from-operadora] exten => 1130000701,…,Dial(PJSIP/701@bridge)`
    let root = Leg(
        "PJSIP/operadora-00000020",
        "1800000000.50",
        "1800000000.50",
        "pbx-bridge-from-operadora",
        "1130000701",
        "+551199998888",
        "4",
    );
    let bridge = Leg(
        "PJSIP/bridge-00000021",
        "1800000000.51",
        "1800000000.50",
        "pbx-bridge-from-bridge",
        "s",
        "701",
        "0",
    );
    let evs = [
        chan_event("Newchannel", root),
        chan_event("Newchannel", bridge),
        dial("DialBegin", root, bridge, None),
        dial("DialEnd", root, bridge, Some("BUSY")),
        hangup(bridge, "17"),
        hangup(root, "17"),
    ];
    let mut t = Tracker::new(config());
    assert_eq!(run(&mut t, &evs), []);
    assert_eq!(t.live_calls(), 0);
}

/// 1001 calls 1002, who does not answer; the dialplan then sends the call
/// to a department through the bridge.
#[test]
fn a_call_that_overflows_to_the_bridge_unanswered_is_withdrawn() {
    let root = Leg(
        "PJSIP/1001-00000030",
        "1800000000.60",
        "1800000000.60",
        "pbx-bridge-ext-1001",
        "1002",
        "1001",
        "4",
    );
    let agent = Leg(
        "PJSIP/1002-00000031",
        "1800000000.61",
        "1800000000.60",
        "pbx-bridge-extensions",
        "s",
        "1002",
        "5",
    );
    let bridge = Leg(
        "PJSIP/bridge-00000032",
        "1800000000.62",
        "1800000000.60",
        "pbx-bridge-from-bridge",
        "s",
        "701",
        "6",
    );
    let evs = [
        chan_event("Newchannel", root),  // 0: held
        chan_event("Newchannel", agent), // 1: rings 1002: opened
        dial("DialBegin", root, agent, None),
        dial("DialEnd", root, agent, Some("NOANSWER")),
        hangup(agent, "19"),
        chan_event("Newchannel", bridge), // 5: to the bridge: withdrawn
        dial("DialBegin", root, bridge, None),
        dial("DialEnd", root, bridge, Some("ANSWER")),
        hangup(bridge, "16"),
        hangup(root, "16"),
    ];
    let mut t = Tracker::new(config());
    let got = run(&mut t, &evs);
    let l = "1800000000.60".to_owned();
    assert_eq!(
        got,
        [
            (
                1,
                CallDecision::CallOpened {
                    linkedid: l.clone(),
                    caller: "1001".into(),
                    callee: "1002".into(),
                    direction: Direction::Internal,
                    department_code: None,
                    opened_at: at(0),
                }
            ),
            (5, CallDecision::CallToBridge { linkedid: l }),
        ]
    );
    assert_eq!(t.live_calls(), 0);
}

#[test]
fn an_answered_call_later_sent_to_the_bridge_stays_followed() {
    let root = Leg(
        "PJSIP/1001-00000040",
        "1800000000.70",
        "1800000000.70",
        "pbx-bridge-ext-1001",
        "1002",
        "1001",
        "6",
    );
    let agent = Leg(
        "PJSIP/1002-00000041",
        "1800000000.71",
        "1800000000.70",
        "pbx-bridge-extensions",
        "s",
        "1002",
        "6",
    );
    let bridge = Leg(
        "PJSIP/bridge-00000042",
        "1800000000.72",
        "1800000000.70",
        "pbx-bridge-from-bridge",
        "s",
        "701",
        "6",
    );
    let evs = [
        chan_event("Newchannel", root),
        chan_event("Newchannel", agent),
        dial("DialEnd", root, agent, Some("ANSWER")),
        hangup(agent, "16"),
        chan_event("Newchannel", bridge),
        hangup(bridge, "16"),
        hangup(root, "16"),
    ];
    let mut t = Tracker::new(config());
    let got: Vec<CallDecision> = run(&mut t, &evs).into_iter().map(|(_, d)| d).collect();
    assert!(matches!(got[0], CallDecision::CallOpened { .. }), "{got:?}");
    assert!(
        matches!(got[1], CallDecision::CallAnswered { .. }),
        "{got:?}"
    );
    assert!(
        matches!(got[2], CallDecision::CallEnded { answered: true, .. }),
        "{got:?}"
    );
    assert_eq!(got.len(), 3, "{got:?}");
}

#[test]
fn a_held_call_that_ends_before_dialing_is_opened_and_ended() {
    let root = Leg(
        "PJSIP/1001-00000050",
        "1800000000.80",
        "1800000000.80",
        "pbx-bridge-ext-1001",
        "701",
        "1001",
        "4",
    );
    let evs = [
        chan_event("Newchannel", root),
        chan_event("Newexten", root),
        chan_event("HangupRequest", root),
        hangup(root, "16"),
    ];
    let mut t = Tracker::new(config());
    let got = run(&mut t, &evs);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0],
        (
            3,
            CallDecision::CallOpened {
                linkedid: "1800000000.80".into(),
                caller: "1001".into(),
                callee: "701".into(),
                direction: Direction::Internal,
                department_code: Some("701".into()),
                opened_at: at(0),
            }
        )
    );
    assert!(matches!(
        got[1].1,
        CallDecision::CallEnded {
            answered: false,
            ..
        }
    ));
}

#[test]
fn resync_sees_the_bridge_leg_and_opens_nothing() {
    let evs = extension_calls_department_through_the_bridge();
    // Mid-call snapshot: the root and the bridge leg, both up.
    let snap: Vec<Packet> = [&evs[9], &evs[10]]
        .iter()
        .map(|e| {
            let mut p = Packet::new().with("Event", "CoreShowChannel");
            for k in [
                "Channel",
                "ChannelState",
                "CallerIDNum",
                "Context",
                "Exten",
                "Uniqueid",
                "Linkedid",
            ] {
                p.push(k, e.get(k).unwrap_or_default());
            }
            p.push("Duration", "00:00:05");
            p
        })
        .collect();
    let mut t = Tracker::new(config());
    assert_eq!(t.resync(&snap, at(100)), []);
    assert!(t.open_calls().is_empty());
}

/// The recorded scenarios of `fixture_tracker_config` were captured with a
/// customer's UA on an endpoint named `bridge`. With the bridge rule on, that
/// endpoint is the bridge: the calls rooted on it (b, g, g2) are the
/// bridge's and open nothing; the originate between extensions (d) decides
/// the same.
#[test]
fn fixture_scenarios_with_the_bridge_rule() {
    for prefix in ["b-", "d-", "g-", "g2-"] {
        let evs: Vec<Packet> = packets_of(&read(&scenario(prefix, ".ami.in")))
            .into_iter()
            .filter(|p| p.event_name().is_some())
            .collect();
        let decide = |cfg: TrackerConfig| -> Vec<CallDecision> {
            let mut t = Tracker::new(cfg);
            run(&mut t, &evs).into_iter().map(|(_, d)| d).collect()
        };
        let without = decide(fixture_tracker_config());
        let with = decide(fixture_tracker_config().bridge("bridge"));
        assert!(!without.is_empty(), "{prefix}");
        if prefix == "d-" {
            assert_eq!(with, without, "{prefix}");
        } else {
            assert_eq!(with, [], "{prefix}");
        }
    }
}

/// The bridge rings agent 1002 "through the PBX": its INVITE (with
/// `X-Protocol`) arrives on the `bridge` endpoint and the rendered context
/// for calls from the bridge dials `PJSIP/1002`, who answers; the bridge
/// hangs up. The bridge carries the call: nothing is opened here.
fn bridge_rings_an_agent_through_the_pbx(answer: bool) -> Vec<Packet> {
    bridge_rings_through_the_pbx("1002", answer)
}

/// [`bridge_rings_an_agent_through_the_pbx`] for extension `ext`.
fn bridge_rings_through_the_pbx(ext: &str, answer: bool) -> Vec<Packet> {
    let agent_channel = format!("PJSIP/{ext}-00000061");
    let agent_context = format!("pbx-bridge-ext-{ext}");
    let root = Leg(
        "PJSIP/bridge-00000060",
        "1800000000.90",
        "1800000000.90",
        "pbx-bridge-from-bridge",
        ext,
        "551133334444",
        "4",
    );
    let root_up = Leg(root.0, root.1, root.2, root.3, root.4, root.5, "6");
    let agent = Leg(
        &agent_channel,
        "1800000000.91",
        "1800000000.90",
        &agent_context,
        "s",
        ext,
        "0",
    );
    let agent_ringing = Leg(agent.0, agent.1, agent.2, agent.3, agent.4, agent.5, "5");
    let agent_up = Leg(agent.0, agent.1, agent.2, agent.3, agent.4, agent.5, "6");
    let mut evs = vec![
        chan_event("Newchannel", root),
        chan_event("Newexten", root),
        chan_event("Newchannel", agent),
        dial("DialBegin", root, agent, None),
        chan_event("Newstate", agent_ringing),
    ];
    if answer {
        evs.extend([
            chan_event("Newstate", agent_up),
            dial("DialEnd", root, agent_up, Some("ANSWER")),
            chan_event("Newstate", root_up),
            chan_event("BridgeEnter", agent_up),
            chan_event("BridgeEnter", root_up),
            chan_event("HangupRequest", root_up),
            chan_event("BridgeLeave", root_up),
            hangup(root_up, "16"),
            chan_event("BridgeLeave", agent_up),
            hangup(agent_up, "16"),
            Packet::new()
                .with("Event", "Cdr")
                .with("UniqueID", root.1)
                .with("DestinationChannel", agent.0)
                .with("Disposition", "ANSWERED"),
        ]);
    } else {
        evs.extend([
            chan_event("HangupRequest", root),
            dial("DialEnd", root, agent_ringing, Some("CANCEL")),
            hangup(agent_ringing, "16"),
            hangup(root, "16"),
            Packet::new()
                .with("Event", "Cdr")
                .with("UniqueID", root.1)
                .with("DestinationChannel", agent.0)
                .with("Disposition", "NO ANSWER"),
        ]);
    }
    evs
}

#[test]
fn a_leg_the_bridge_places_through_the_pbx_opens_nothing() {
    for answer in [true, false] {
        let mut t = Tracker::new(config());
        let got = run(&mut t, &bridge_rings_an_agent_through_the_pbx(answer));
        assert_eq!(got, [], "answered: {answer}");
        assert_eq!(t.live_calls(), 0);
        assert!(t.open_calls().is_empty());
    }
}

/// The bridge rings agent 1001 through the PBX (SPEC §9): its leg
/// `PJSIP/bridge-…` in `pbx-bridge-from-bridge` dials `PJSIP/1001`. The
/// bridge opened the attendance; neither its leg nor the agent's
/// `PJSIP/1001-…` channel dialled from it opens a second one, also when
/// the tracker first hears of the call from the agent's channel alone
/// (connected mid-call).
#[test]
fn ringing_1001_through_the_pbx_opens_no_second_attendance() {
    for answer in [true, false] {
        let evs = bridge_rings_through_the_pbx("1001", answer);
        let mut t = Tracker::new(config());
        assert_eq!(run(&mut t, &evs), [], "answered: {answer}");
        assert!(t.open_calls().is_empty());
        assert_eq!(t.live_calls(), 0);
        let agent_only: Vec<Packet> = evs
            .iter()
            .filter(|e| {
                e.get("Channel")
                    .is_some_and(|c| c.starts_with("PJSIP/1001-"))
            })
            .cloned()
            .collect();
        assert!(!agent_only.is_empty());
        let mut t = Tracker::new(config());
        let got = run(&mut t, &agent_only);
        assert!(
            !got.iter()
                .any(|(_, d)| matches!(d, CallDecision::CallOpened { .. })),
            "answered: {answer}: {got:?}"
        );
        assert!(t.open_calls().is_empty());
    }
}

#[test]
fn a_leg_the_bridge_places_is_not_opened_by_a_resync_either() {
    let evs = bridge_rings_an_agent_through_the_pbx(true);
    // Mid-call snapshot: the bridge's leg and the agent, both up.
    let snap: Vec<Packet> = [&evs[9], &evs[8]]
        .iter()
        .map(|e| {
            let mut p = Packet::new().with("Event", "CoreShowChannel");
            for k in [
                "Channel",
                "ChannelState",
                "CallerIDNum",
                "Context",
                "Exten",
                "Uniqueid",
                "Linkedid",
            ] {
                p.push(k, e.get(k).unwrap_or_default());
            }
            p.push("Duration", "00:00:05");
            p
        })
        .collect();
    let mut t = Tracker::new(config());
    assert_eq!(t.resync(&snap, at(100)), []);
    assert!(t.open_calls().is_empty());
}

/// A trunk call the dialplan answers (`Answer()`, a greeting) before
/// sending it to a department on the bridge: the dialplan answering it is
/// no agent, the call stays held and goes to the bridge: nothing opened.
#[test]
fn a_call_the_dialplan_answers_before_the_bridge_opens_nothing() {
    let root = Leg(
        "PJSIP/operadora-00000070",
        "1800000000.95",
        "1800000000.95",
        "pbx-bridge-from-operadora",
        "1130000701",
        "+551199998888",
        "4",
    );
    let root_up = Leg(root.0, root.1, root.2, root.3, root.4, root.5, "6");
    let bridge = Leg(
        "PJSIP/bridge-00000071",
        "1800000000.96",
        "1800000000.95",
        "pbx-bridge-from-bridge",
        "s",
        "701",
        "6",
    );
    let evs = [
        chan_event("Newchannel", root),
        chan_event("Newstate", root_up),
        chan_event("Newchannel", bridge),
        dial("DialBegin", root_up, bridge, None),
        dial("DialEnd", root_up, bridge, Some("ANSWER")),
        hangup(bridge, "16"),
        hangup(root_up, "16"),
    ];
    let mut t = Tracker::new(config());
    assert_eq!(run(&mut t, &evs), []);
    assert_eq!(t.live_calls(), 0);
}
