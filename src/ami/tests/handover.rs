//! A followed call carrying its protocol (`Setvar __PBX_BRIDGE_PROTOCOL`
//! before the `Redirect`) that goes to the bridge is handed over: the
//! follower keeps its attendance (not withdrawn, not closed at hang-up) and
//! the bridge, which gets the protocol in `X-Protocol`, continues it. The
//! events are the redirect of `tracker_transfer` (modelled on the fixtures)
//! with the `VarSet` Asterisk reports for the `Setvar`.

use super::super::follow::{Applied, Follower};
use super::super::packet::Packet;
use super::super::tracker::{CallDecision, Party, Tracker};
use super::follow_store::{attendances, plan};
use super::tracker_bridge::at;
use super::tracker_transfer::{Department, LINKEDID, redirect_to_department, transfer_config};
use crate::domain::{AttendanceChange, AttendanceStatus, CloseReason};
use crate::store::LedgerStep;

/// The `VarSet` of `Setvar __PBX_BRIDGE_PROTOCOL` on the customer's
/// channel, as Asterisk reports it (the name as set, prefix included).
fn setvar(protocol: &str) -> Packet {
    Packet::new()
        .with("Event", "VarSet")
        .with("Channel", "PJSIP/operadora-00000080")
        .with("Uniqueid", LINKEDID)
        .with("Linkedid", LINKEDID)
        .with("ChannelState", "6")
        .with("Variable", "__PBX_BRIDGE_PROTOCOL")
        .with("Value", protocol)
}

/// The redirect to the bridge's department, the `Setvar` right before it;
/// the index of the first event after the `Setvar`.
fn redirected_with(protocol: &str) -> (Vec<Packet>, usize) {
    let (mut evs, _) = redirect_to_department(Department::OnTheBridge, Party::Caller);
    let redirect = evs
        .iter()
        .position(|e| e.event_name() == Some("BridgeLeave"))
        .expect("redirect");
    evs.insert(redirect, setvar(protocol));
    let leg = evs
        .iter()
        .position(|e| {
            e.event_name() == Some("Newchannel")
                && e.get("Channel") == Some("PJSIP/bridge-00000084")
        })
        .expect("the leg to the bridge");
    evs.insert(leg + 1, in_the_handler());
    (evs, redirect + 1)
}

/// The leg to the bridge running the rendered pre-dial handler (which
/// writes `X-Protocol`), before Asterisk dials it.
fn in_the_handler() -> Packet {
    Packet::new()
        .with("Event", "Newexten")
        .with("Channel", "PJSIP/bridge-00000084")
        .with("ChannelState", "0")
        .with("Context", "pbx-bridge-to-bridge")
        .with("Exten", "s")
        .with("Uniqueid", "1800000001.14")
        .with("Linkedid", LINKEDID)
}

/// Without the handler (files rendered before it), the variable alone
/// hands nothing over: the call is followed as before.
#[test]
fn without_the_pre_dial_handler_the_call_stays_followed() {
    let (evs, _) = redirected_with("20261207000042");
    let evs: Vec<Packet> = evs
        .into_iter()
        .filter(|e| e.get("Context") != Some("pbx-bridge-to-bridge"))
        .collect();
    let mut t = Tracker::new(transfer_config());
    let mut got = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        got.extend(t.on_event(ev, at(i)));
    }
    assert_eq!(
        kinds(&got),
        ["opened", "answered", "claimed", "transferred", "ended"],
        "{got:#?}"
    );
}

fn kinds(got: &[CallDecision]) -> Vec<&'static str> {
    got.iter()
        .map(|d| match d {
            CallDecision::CallOpened { .. } => "opened",
            CallDecision::CallAnswered { .. } => "answered",
            CallDecision::CallTransferred { .. } => "transferred",
            CallDecision::CallEnded { .. } => "ended",
            CallDecision::CallToBridge { .. } => "to-bridge",
            CallDecision::CallHandedOver { .. } => "handed-over",
            CallDecision::RecordingAnnounced { .. } => "recording",
            CallDecision::CallClaimed { .. } => "claimed",
        })
        .collect()
}

#[test]
fn a_redirected_call_carrying_its_protocol_is_handed_to_the_bridge() {
    let (evs, _) = redirected_with("20261207000042");
    let mut t = Tracker::new(transfer_config());
    let mut got = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        got.extend(t.on_event(ev, at(i)));
    }
    assert_eq!(
        kinds(&got),
        ["opened", "answered", "claimed", "handed-over"],
        "{got:#?}"
    );
    assert_eq!(
        got[3],
        CallDecision::CallHandedOver {
            linkedid: LINKEDID.into(),
            protocol: "20261207000042".into(),
        }
    );
    assert_eq!(t.live_calls(), 0);
}

#[test]
fn the_inheritable_and_plain_names_are_both_the_protocol_variable() {
    for name in [
        "PBX_BRIDGE_PROTOCOL",
        "_PBX_BRIDGE_PROTOCOL",
        "__PBX_BRIDGE_PROTOCOL",
    ] {
        let (mut evs, after) = redirected_with("20261207000042");
        let p = std::mem::replace(&mut evs[after - 1], Packet::new());
        evs[after - 1] = Packet::new()
            .with("Event", "VarSet")
            .with("Channel", p.get("Channel").unwrap_or_default())
            .with("Uniqueid", LINKEDID)
            .with("Linkedid", LINKEDID)
            .with("Variable", name)
            .with("Value", "20261207000042");
        let mut t = Tracker::new(transfer_config());
        let mut got = Vec::new();
        for (i, ev) in evs.iter().enumerate() {
            got.extend(t.on_event(ev, at(i)));
        }
        assert!(kinds(&got).contains(&"handed-over"), "{name}: {got:#?}");
    }
}

/// On a real store: the follower keeps the answered attendance, does not
/// close it when Asterisk hangs up, and the bridge's changes (as the call
/// core writes them under `X-Protocol`) make the new agent its agent and
/// close it: one attendance.
#[tokio::test]
async fn the_follower_hands_the_redirected_attendance_over_and_the_bridge_closes_it() {
    let p = plan(701).await;
    let directory = p.store.call_directory().await.expect("directory");
    let mut cfg = transfer_config();
    cfg.known_extensions = directory.extensions.keys().cloned().collect();
    let mut tracker = Tracker::new(cfg);
    let mut follower = Follower::new(p.store.clone(), chrono_tz::UTC);
    follower.set_directory(directory);
    // Up to the Setvar, with a placeholder protocol: the real one is the
    // attendance the follower opened.
    let (evs, after) = redirected_with("placeholder");
    let mut applied = Vec::new();
    let mut feed = async |tracker: &mut Tracker, i: usize, ev: &Packet| {
        let decisions = tracker.on_event(ev, at(i));
        if !decisions.is_empty() {
            applied.extend(follower.apply_batch(&decisions).await.expect("applied"));
        }
    };
    for (i, ev) in evs.iter().enumerate().take(after - 1) {
        feed(&mut tracker, i, ev).await;
    }
    let items = attendances(&p.store).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    let protocol = items[0].0.protocol.clone();
    let answered_at = items[0].0.answered_at.expect("answered by 1001");
    assert_eq!(items[0].0.agent_id, Some(p.agents["1001"]));
    feed(&mut tracker, after - 1, &setvar(&protocol)).await;
    for (i, ev) in evs.iter().enumerate().skip(after) {
        feed(&mut tracker, i, ev).await;
    }
    assert!(
        applied.contains(&Applied::HandedOver(protocol.clone())),
        "{applied:?}"
    );
    let items = attendances(&p.store).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(
        items[0].0.status,
        AttendanceStatus::InProgress,
        "not closed by the follower"
    );
    assert_eq!(items[0].0.ended_at, None);
    // What the bridge writes for the call it continues.
    let now = chrono::Utc::now();
    let changes = [
        AttendanceChange::Assigned {
            department_id: Some(p.department),
            agent_id: None,
            at: now,
        },
        AttendanceChange::Answered {
            agent_id: Some(p.agents["1002"]),
            at: now,
        },
        AttendanceChange::Assigned {
            department_id: None,
            agent_id: Some(p.agents["1002"]),
            at: now,
        },
        AttendanceChange::Ended {
            at: now,
            close: Some(CloseReason::CallerHangup),
        },
    ];
    let steps: Vec<LedgerStep<'_>> = changes
        .iter()
        .map(|change| LedgerStep::Change {
            protocol: &protocol,
            change,
        })
        .collect();
    p.store.apply_ledger_batch(&steps).await.expect("applied");
    let items = attendances(&p.store).await;
    assert_eq!(items.len(), 1, "one attendance: {items:#?}");
    let a = &items[0].0;
    assert_eq!(a.agent_id, Some(p.agents["1002"]), "{a:#?}");
    assert_eq!(a.department_id, Some(p.department));
    assert_eq!(a.answered_at, Some(answered_at), "answered_at kept");
    assert_eq!(a.status, AttendanceStatus::Closed);
    assert_eq!(a.close_reason, Some(CloseReason::CallerHangup));
}

/// A change for a protocol the database does not know (a forged or stale
/// `X-Protocol` the PBX passed on) touches nothing and fails nothing: the
/// ledger writer goes on.
#[tokio::test]
async fn changes_for_an_unknown_protocol_are_skipped() {
    let p = plan(701).await;
    let change = AttendanceChange::Assigned {
        department_id: Some(p.department),
        agent_id: None,
        at: chrono::Utc::now(),
    };
    let end = AttendanceChange::Ended {
        at: chrono::Utc::now(),
        close: Some(CloseReason::NoAnswer),
    };
    let steps = [
        LedgerStep::Change {
            protocol: "20261207999999",
            change: &change,
        },
        LedgerStep::Change {
            protocol: "20261207999999",
            change: &end,
        },
    ];
    p.store.apply_ledger_batch(&steps).await.expect("no error");
    assert!(attendances(&p.store).await.is_empty());
}

/// Stream i: the click-to-call of 1001 into department 700 (on the
/// bridge), with the protocol variable and the leg to the bridge running
/// the rendered pre-dial handler: the follower hands the attendance the
/// API opened to the bridge; it is neither withdrawn nor ended here.
#[tokio::test]
async fn a_click_to_call_into_a_department_on_the_bridge_is_handed_over() {
    use super::follow_store::follow;
    use super::support::{packets_of, read, scenario};
    use crate::domain::{CallSource, Direction};
    let p = plan(700).await;
    let new = crate::store::NewAttendance {
        direction: Direction::Internal,
        department_id: None,
        agent_id: None,
        caller: "1001".into(),
        callee: "700".into(),
        source: CallSource::Ami,
        opened_at: chrono::Utc::now(),
        call_ref: None,
        node: None,
    };
    let protocol = p
        .store
        .open_attendance(&new, chrono_tz::UTC)
        .await
        .expect("opened")
        .protocol;
    let text = String::from_utf8(read(&scenario("i-", ".ami.in"))).expect("ASCII");
    let first_exten =
        "Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/1001-0000000c\r\n";
    let at_ = text.find(first_exten).expect("the originate's channel");
    let claim = format!(
        "Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/1001-0000000c\r\n\
         ChannelState: 0\r\nContext: pbx-bridge-ext-1001\r\nExten: s\r\n\
         Uniqueid: 1796648901.12\r\nLinkedid: 1796648901.12\r\n\
         Variable: __PBX_BRIDGE_PROTOCOL\r\nValue: {protocol}\r\n\r\n"
    );
    let text = format!("{}{claim}{}", &text[..at_], &text[at_..]);
    let leg = text
        .find("Channel: PJSIP/bridge-0000000d\r\n")
        .expect("the leg to the bridge");
    let end = leg + text[leg..].find("\r\n\r\n").expect("its end") + 4;
    let handler = "Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/bridge-0000000d\r\n\
         ChannelState: 0\r\nContext: pbx-bridge-to-bridge\r\nExten: s\r\nPriority: 1\r\n\
         Uniqueid: 1796648902.13\r\nLinkedid: 1796648901.12\r\n\r\n";
    let text = format!("{}{handler}{}", &text[..end], &text[end..]);
    let evs: Vec<Packet> = packets_of(text.as_bytes())
        .into_iter()
        .filter(|p| p.event_name().is_some())
        .collect();
    let tuning = super::super::client::AmiTuning::default();
    let applied = follow(
        &p.store,
        |d| tuning.tracker_config(d),
        &evs,
        async |_, _| {},
    )
    .await;
    assert!(
        applied.contains(&Applied::HandedOver(protocol.clone())),
        "{applied:?}"
    );
    assert!(
        !applied
            .iter()
            .any(|a| matches!(a, Applied::Withdrawn(Some(w)) if *w == protocol)),
        "{applied:?}"
    );
    let a = p.store.get_attendance(&protocol).await.expect("kept");
    assert_eq!(a.ended_at, None, "the bridge ends it: {a:?}");
    assert_eq!(a.status, AttendanceStatus::Ringing, "{a:?}");
}
