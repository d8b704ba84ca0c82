//! Click-to-call through Asterisk, on the real captured bytes: the API
//! opens the attendance first and passes its protocol on the `Originate`
//! (`Variable: __PBX_BRIDGE_PROTOCOL=…`); the follower attaches the call to
//! it instead of opening a second one; an originate that never reached
//! anyone is never stored answered; an `OriginateResponse` failure closes
//! the attendance `failed`.

use super::super::client::AmiTuning;
use super::super::follow::{Applied, Follower, originate_outcome};
use super::super::packet::Packet;
use super::super::tracker::{CallDecision, Tracker};
use super::follow_store::{attendances, follow, plan};
use super::support::*;
use super::tracker_bridge::at;
use crate::domain::{AttendanceStatus, CallSource, CloseReason, Direction};
use crate::store::{NewAttendance, Store};

/// The attendance `POST /calls` opens before the `Originate`.
async fn opened_by_the_api(store: &Store, from: &str, to: &str) -> String {
    let new = NewAttendance {
        direction: Direction::Internal,
        department_id: None,
        agent_id: None,
        caller: from.into(),
        callee: to.into(),
        source: CallSource::Ami,
        opened_at: chrono::Utc::now(),
        call_ref: None,
        node: None,
    };
    store
        .open_attendance(&new, chrono_tz::UTC)
        .await
        .expect("opened")
        .protocol
}

fn events(bytes: &[u8]) -> Vec<Packet> {
    packets_of(bytes)
        .into_iter()
        .filter(|p| p.event_name().is_some())
        .collect()
}

/// Scenario d (Originate of 1001, then 1002 dialled and answered) as the
/// bridge sends it: its channel variable carries the protocol.
fn scenario_d_with(protocol: &str) -> Vec<u8> {
    let text = String::from_utf8(read(&scenario("d-", ".ami.in"))).expect("ASCII");
    assert!(text.contains("Variable: BRIDGE_TASK\r\nValue: click2call-42\r\n"));
    text.replace(
        "Variable: BRIDGE_TASK\r\nValue: click2call-42\r\n",
        &format!("Variable: PBX_BRIDGE_PROTOCOL\r\nValue: {protocol}\r\n"),
    )
    .into_bytes()
}

#[tokio::test]
async fn the_originate_is_attached_to_the_attendance_the_api_opened() {
    let p = plan(700).await;
    let protocol = opened_by_the_api(&p.store, "1001", "1002").await;
    let tuning = AmiTuning::default();
    let applied = follow(
        &p.store,
        |d| tuning.tracker_config(d),
        &events(&scenario_d_with(&protocol)),
        async |_, _| {},
    )
    .await;
    assert!(
        !applied.iter().any(|a| matches!(a, Applied::Opened(_))),
        "nothing opened besides the API's: {applied:?}"
    );
    let items = attendances(&p.store).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    let (a, source, call_ref) = &items[0];
    assert_eq!(a.protocol, protocol);
    assert_eq!(*source, CallSource::Ami);
    assert_eq!(call_ref.as_deref(), Some("1795295235.6"), "the Linkedid");
    // Answered when 1002 answered (not when 1001 picked the click up).
    assert_eq!(a.agent_id, Some(p.agents["1002"]), "{a:?}");
    let (answered, ended) = (a.answered_at.expect("answered"), a.ended_at.expect("ended"));
    assert!(answered <= ended, "{a:?}");
    assert_eq!(a.status, AttendanceStatus::Closed);
    assert_eq!(a.close_reason, Some(CloseReason::CallerHangup));
}

#[test]
fn the_tracker_reports_the_claim_before_the_call_opens() {
    let mut t = Tracker::new(AmiTuning::default().tracker_config(&Default::default()));
    let mut kinds = Vec::new();
    for (i, ev) in events(&scenario_d_with("20261207000042"))
        .iter()
        .enumerate()
    {
        for d in t.on_event(ev, at(i)) {
            kinds.push(match d {
                CallDecision::CallClaimed { protocol, .. } => {
                    assert_eq!(protocol, "20261207000042");
                    "claimed"
                }
                CallDecision::CallOpened { .. } => "opened",
                CallDecision::CallAnswered { .. } => "answered",
                CallDecision::CallEnded { .. } => "ended",
                _ => "other",
            });
        }
    }
    assert_eq!(kinds, ["claimed", "opened", "answered", "ended"]);
}

/// Stream i: the click-to-call of 1001 into department 700, which the
/// bridge refused (`NOANSWER`, `Call Rejected`), as it would have been
/// with the protocol variable: the attendance ends unanswered, never
/// withdrawn as the bridge's call.
#[tokio::test]
async fn a_click_to_call_that_reached_nobody_is_never_answered() {
    let p = plan(700).await;
    let protocol = opened_by_the_api(&p.store, "1001", "700").await;
    let text = String::from_utf8(read(&scenario("i-", ".ami.in"))).expect("ASCII");
    let first_exten =
        "Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/1001-0000000c\r\n";
    let at_ = text.find(first_exten).expect("the originate's channel");
    let claim = format!(
        "Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/1001-0000000c\r\n\
         ChannelState: 0\r\nChannelStateDesc: Down\r\nCallerIDNum: 1001\r\nCallerIDName: Ana\r\n\
         Context: pbx-bridge-ext-1001\r\nExten: s\r\nPriority: 1\r\n\
         Uniqueid: 1796648901.12\r\nLinkedid: 1796648901.12\r\n\
         Variable: PBX_BRIDGE_PROTOCOL\r\nValue: {protocol}\r\n\r\n"
    );
    let stream = format!("{}{claim}{}", &text[..at_], &text[at_..]);
    let tuning = AmiTuning::default();
    let applied = follow(
        &p.store,
        |d| tuning.tracker_config(d),
        &events(stream.as_bytes()),
        async |_, _| {},
    )
    .await;
    assert!(
        !applied
            .iter()
            .any(|a| matches!(a, Applied::Withdrawn(Some(w)) if *w == protocol)),
        "{applied:?}"
    );
    let a = p.store.get_attendance(&protocol).await.expect("kept");
    assert_eq!(a.answered_at, None, "nobody answered: {a:?}");
    assert!(a.ended_at.is_some(), "{a:?}");
    assert_eq!(a.status, AttendanceStatus::Closed);
    assert_eq!(a.close_reason, Some(CloseReason::Rejected), "{a:?}");
    let (_, call_ref) = p.store.attendance_call_ref(&protocol).await.unwrap();
    assert_eq!(call_ref.as_deref(), Some("1796648901.12"));
}

/// Stream i also holds the `OriginateResponse` failure of 1002 (not on
/// Asterisk): read as a failure, it closes its attendance `failed`.
#[tokio::test]
async fn an_originate_response_failure_closes_the_attendance_failed() {
    let bytes = read(&scenario("i-", ".ami.in"));
    let outcomes: Vec<(String, Option<String>)> = events(&bytes)
        .iter()
        .filter_map(|p| originate_outcome(p).map(|(id, f)| (id.to_owned(), f)))
        .collect();
    assert!(
        outcomes.iter().any(|(_, f)| f.is_none()),
        "the success: {outcomes:?}"
    );
    let (_, failure) = outcomes
        .iter()
        .find(|(id, f)| id == "pbx-bridge-1-000011" && f.is_some())
        .expect("the failure of 1002");
    let reason = failure.as_deref().unwrap();
    assert!(
        reason.contains("Failure") && reason.contains("reason 0"),
        "{reason}"
    );
    let p = plan(700).await;
    let protocol = opened_by_the_api(&p.store, "1002", "1003").await;
    let mut follower = Follower::new(p.store.clone(), chrono_tz::UTC);
    follower.originate_failed(&protocol, reason).await;
    let a = p.store.get_attendance(&protocol).await.unwrap();
    assert_eq!(a.status, AttendanceStatus::Closed);
    assert_eq!(a.close_reason, Some(CloseReason::Failed));
    assert_eq!(a.answered_at, None);
    assert!(a.ended_at.is_some());
}
