//! The live view of Asterisk's calls, driven as the client drives it
//! ([`AmiCalls::publish`] after every event, the tracker's channels) on the
//! real recorded streams, with the follower's attach done by hand.

use super::super::follow::Follower;
use super::super::live::{AmiCallState, AmiCalls, AmiLiveCall};
use super::super::packet::Packet;
use super::super::tracker::{CallDecision, Tracker};
use super::follow_store::{attendances, plan};
use super::support::*;
use super::tracker_bridge::at;
use crate::domain::{CloseReason, Direction, Id};

const B: &str = "1795295209.0";

fn events(bytes: &[u8]) -> Vec<Packet> {
    packets_of(bytes)
        .into_iter()
        .filter(|p| p.event_name().is_some())
        .collect()
}

/// Feeds `evs` (numbered from `offset`) as the client does; returns the
/// decisions.
fn feed(t: &mut Tracker, calls: &AmiCalls, evs: &[Packet], offset: usize) -> Vec<CallDecision> {
    let mut all = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        let d = t.on_event(ev, at(offset + i));
        calls.publish(&d, ev.get("Linkedid"), |l| t.channels(l));
        all.extend(d);
    }
    all
}

fn scenario_b() -> (Vec<Packet>, usize) {
    let evs = events(&read(&scenario("b-", ".ami.in")));
    let bridged = evs
        .iter()
        .rposition(|e| e.is_event("BridgeEnter"))
        .expect("BridgeEnter");
    (evs, bridged)
}

#[test]
fn a_ring_all_call_is_listed_once_it_has_its_protocol_and_leaves_when_it_ends() {
    let (evs, bridged) = scenario_b();
    let calls = AmiCalls::new();
    calls.set_online(true);
    let mut t = Tracker::new(fixture_tracker_config());
    feed(&mut t, &calls, &evs[..=bridged], 0);
    assert_eq!(calls.followed(), 1);
    assert!(calls.list().is_empty(), "no protocol yet: not listed");
    calls.attach(B, "20261207000001", Some(7));
    calls.attended(B, Some(3), None);
    let listed = calls.list();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let c = &listed[0];
    assert_eq!(
        (c.id.as_str(), c.protocol.as_str()),
        ("20261207000001", "20261207000001")
    );
    assert_eq!(c.linkedid, B);
    assert_eq!(c.direction, Direction::Inbound);
    assert_eq!(c.state, AmiCallState::Answered);
    assert_eq!(c.caller, "+4930123456");
    assert_eq!(c.callee, "701");
    assert_eq!(c.agent_extension.as_deref(), Some("1002"));
    assert_eq!((c.agent_id, c.department_id), (Some(3), Some(7)));
    assert!(c.answered_at.is_some_and(|a| a >= c.since), "{c:?}");
    // 1001's fork hung up when 1002 answered: the customer and 1002 remain.
    assert_eq!(
        c.channels,
        ["PJSIP/bridge-00000000", "PJSIP/1002-00000002"],
        "{c:?}"
    );
    assert_eq!(c.customer_channel.as_deref(), Some("PJSIP/bridge-00000000"));
    assert_eq!(calls.get("20261207000001").as_ref(), Some(c));
    assert_eq!(calls.get("20261207000002"), None);
    // The customer hangs up: gone, and a late attach does not revive it.
    let rest = feed(&mut t, &calls, &evs[bridged + 1..], bridged + 1);
    assert!(
        rest.iter()
            .any(|d| matches!(d, CallDecision::CallEnded { .. }))
    );
    assert_eq!(calls.followed(), 0);
    calls.attach(B, "20261207000001", None);
    assert!(calls.list().is_empty());
    assert_eq!(calls.get("20261207000001"), None);
}

#[test]
fn while_ringing_the_call_is_listed_ringing_with_every_fork() {
    let (evs, _) = scenario_b();
    let answer = evs
        .iter()
        .position(|e| e.is_event("DialEnd") && e.get("DialStatus") == Some("ANSWER"))
        .expect("answer");
    let calls = AmiCalls::new();
    calls.set_online(true);
    let mut t = Tracker::new(fixture_tracker_config());
    feed(&mut t, &calls, &evs[..answer], 0);
    calls.attach(B, "20261207000001", None);
    let c = calls.get("20261207000001").expect("listed");
    assert_eq!(c.state, AmiCallState::Ringing);
    assert_eq!(c.agent_extension, None);
    assert_eq!(
        c.channels,
        [
            "PJSIP/bridge-00000000",
            "PJSIP/1001-00000001",
            "PJSIP/1002-00000002"
        ]
    );
}

#[test]
fn nothing_is_shown_while_the_session_is_down_and_a_re_read_ends_what_vanished() {
    let (evs, bridged) = scenario_b();
    let calls = AmiCalls::new();
    calls.set_online(true);
    let mut t = Tracker::new(fixture_tracker_config());
    feed(&mut t, &calls, &evs[..=bridged], 0);
    calls.attach(B, "20261207000001", None);
    assert_eq!(calls.list().len(), 1);
    // The session drops: hidden, not found.
    calls.set_online(false);
    assert!(calls.list().is_empty());
    assert_eq!(calls.get("20261207000001"), None);
    // Logged in again; the re-read finds no channel: the call ended.
    let d = t.resync(&[], at(500));
    calls.publish(&d, None, |l| t.channels(l));
    calls.refresh_all(|l| t.channels(l));
    calls.set_online(true);
    assert!(
        matches!(d.as_slice(), [CallDecision::CallEnded { .. }]),
        "{d:?}"
    );
    assert!(calls.list().is_empty());
    assert_eq!(calls.followed(), 0);
}

#[test]
fn a_call_still_live_after_a_reconnect_is_shown_again() {
    let (evs, bridged) = scenario_b();
    let calls = AmiCalls::new();
    calls.set_online(true);
    let mut t = Tracker::new(fixture_tracker_config());
    feed(&mut t, &calls, &evs[..=bridged], 0);
    calls.attach(B, "20261207000001", None);
    calls.set_online(false);
    // The re-read lists only the customer's channel (1002 left unseen).
    let customer = evs
        .iter()
        .find(|e| e.get("Channel") == Some("PJSIP/bridge-00000000") && e.get("Uniqueid") == Some(B))
        .expect("the customer's channel")
        .clone()
        .with("Event", "CoreShowChannel")
        .with("Duration", "00:00:05");
    let d = t.resync(&[customer], at(500));
    assert!(d.is_empty(), "known and live: nothing new {d:?}");
    calls.publish(&d, None, |l| t.channels(l));
    calls.refresh_all(|l| t.channels(l));
    calls.set_online(true);
    let c = calls.get("20261207000001").expect("shown again");
    assert_eq!(c.channels, ["PJSIP/bridge-00000000"]);
    assert_eq!(c.state, AmiCallState::Answered);
}

/// Scenario d with the bridge's protocol variable (click-to-call through
/// Asterisk): claimed before it opens; the follower may attach the
/// protocol then, and the call is listed once it opened.
#[test]
fn a_click_to_call_is_listed_from_its_claim_once_it_opens() {
    let text = String::from_utf8(read(&scenario("d-", ".ami.in"))).expect("ASCII");
    let text = text.replace(
        "Variable: BRIDGE_TASK\r\nValue: click2call-42\r\n",
        "Variable: PBX_BRIDGE_PROTOCOL\r\nValue: 20261207000042\r\n",
    );
    let evs = events(text.as_bytes());
    let calls = AmiCalls::new();
    calls.set_online(true);
    let mut t = Tracker::new(fixture_tracker_config());
    let mut listed_before_open = false;
    let mut seen_open = false;
    for (i, ev) in evs.iter().enumerate() {
        let d = t.on_event(ev, at(i));
        calls.publish(&d, ev.get("Linkedid"), |l| t.channels(l));
        for x in &d {
            match x {
                // What the follower does once the claim is stored.
                CallDecision::CallClaimed { linkedid, protocol } => {
                    calls.attach(linkedid, protocol, None);
                    listed_before_open |= !calls.list().is_empty();
                }
                CallDecision::CallOpened { .. } => seen_open = true,
                _ => {}
            }
        }
        if seen_open && t.open_calls().len() == 1 {
            let c = calls.get("20261207000042").expect("listed once open");
            assert_eq!(c.linkedid, "1795295235.6");
            assert_eq!(c.caller, "1001");
        }
    }
    assert!(seen_open);
    assert!(!listed_before_open, "a claim alone has no caller/callee");
    assert_eq!(calls.followed(), 0, "ended");
}

/// Scenario b through the tracker, the view and a follower writing to a
/// store, as the client runs them; at `BridgeEnter` the API hangs the call
/// up (`refused`: Asterisk refuses that). Returns the view as it was then
/// and the attendance's close reason.
async fn hang_up_b(refused: bool) -> (AmiLiveCall, Option<CloseReason>, Id, Id) {
    let p = plan(701).await;
    let (evs, bridged) = scenario_b();
    let calls = AmiCalls::new();
    calls.set_online(true);
    let mut follower = Follower::new(p.store.clone(), chrono_tz::UTC).with_live(calls.clone());
    follower.set_directory(p.store.call_directory().await.expect("directory"));
    let mut t = Tracker::new(fixture_tracker_config());
    let mut seen = None;
    for (i, ev) in evs.iter().enumerate() {
        let d = t.on_event(ev, at(i));
        calls.publish(&d, ev.get("Linkedid"), |l| t.channels(l));
        if !d.is_empty() {
            follower.apply_batch(&d).await.expect("applied");
        }
        if i == bridged {
            seen = calls.list().pop();
            follower.hangup_requested(B, true);
            if refused {
                follower.hangup_requested(B, false);
            }
        }
    }
    let items = attendances(&p.store).await;
    assert_eq!(items.len(), 1);
    (
        seen.expect("listed at BridgeEnter"),
        items[0].0.close_reason,
        p.agents["1002"],
        p.department,
    )
}

#[tokio::test]
async fn the_follower_attaches_protocol_agent_and_department_and_an_api_hang_up_closes_api() {
    let (call, reason, agent, department) = hang_up_b(false).await;
    assert!(!call.protocol.is_empty());
    assert_eq!(call.agent_id, Some(agent));
    assert_eq!(call.department_id, Some(department));
    assert_eq!(reason, Some(CloseReason::Api));
}

#[tokio::test]
async fn a_refused_api_hang_up_leaves_the_close_reason_to_the_call() {
    let (_, reason, _, _) = hang_up_b(true).await;
    assert_eq!(reason, Some(CloseReason::CallerHangup));
}

/// A call handed over to the bridge (`X-Protocol`) is the bridge's live
/// call from then on: the view drops it (no second entry under the same
/// protocol in `GET /calls`), and a late attach does not bring it back.
#[test]
fn a_call_handed_over_to_the_bridge_leaves_the_view() {
    let (evs, bridged) = scenario_b();
    let calls = AmiCalls::new();
    calls.set_online(true);
    let mut t = Tracker::new(fixture_tracker_config());
    feed(&mut t, &calls, &evs[..=bridged], 0);
    calls.attach(B, "20261207000001", Some(7));
    assert_eq!(calls.list().len(), 1);
    calls.apply(&CallDecision::CallHandedOver {
        linkedid: B.into(),
        protocol: "20261207000001".into(),
    });
    assert!(calls.list().is_empty());
    assert!(calls.get("20261207000001").is_none());
    calls.attach(B, "20261207000001", Some(7));
    assert!(
        calls.list().is_empty(),
        "a late attach does not list it again"
    );
}
