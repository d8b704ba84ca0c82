//! The tracker and the follower together on a real SQLite store: the real
//! stream captured beside Asterisk with the rendered files loaded
//! (`i-calls-to-the-bridge`), and a redirected call.

use std::collections::BTreeMap;

use super::super::client::AmiTuning;
use super::super::follow::{Applied, Follower};
use super::super::packet::Packet;
use super::super::tracker::{CallDecision, Party, Tracker, TrackerConfig};
use super::support::*;
use super::tracker_bridge::at;
use super::tracker_transfer::{Department, LINKEDID, redirect_to_department, transfer_config};
use crate::domain::{
    AgentInput, Attendance, AttendanceStatus, CallSource, CloseReason, DepartmentInput,
    DigestAlgorithm, ExtensionInput, Id, Transfer,
};
use crate::store::{AttendanceFilter, Store};

pub(super) struct Plan {
    _dir: tempfile::TempDir,
    pub store: Store,
    /// Extension number → its agent.
    pub agents: BTreeMap<&'static str, Id>,
    pub department: Id,
}

/// Extensions 1001, 1002, 1003; department `code` (closes on hangup) with
/// agents on 1001 (Ana) and 1002 (Bruno), as in the capture.
pub(super) async fn plan(code: u16) -> Plan {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url).await.expect("store");
    let department = store
        .create_department(
            &serde_json::from_value::<DepartmentInput>(
                serde_json::json!({"name": "Suporte", "pabx_code": code, "close_on_hangup": true}),
            )
            .expect("department input"),
        )
        .await
        .expect("department")
        .id;
    let mut agents = BTreeMap::new();
    for (number, name) in [
        ("1001", Some("Ana")),
        ("1002", Some("Bruno")),
        ("1003", None),
    ] {
        let ext: ExtensionInput = serde_json::from_value(serde_json::json!({
            "number": number, "display_name": name.unwrap_or("Caller"),
            "secret": format!("secret-{number}-abcdef"),
        }))
        .expect("extension input");
        let ext = store
            .create_extension(&ext, &[DigestAlgorithm::Md5])
            .await
            .expect("extension");
        if let Some(name) = name {
            let agent: AgentInput = serde_json::from_value(serde_json::json!({
                "name": name, "extension_id": ext.id,
                "departments": [{"department_id": department}],
            }))
            .expect("agent input");
            agents.insert(number, store.create_agent(&agent).await.expect("agent").id);
        }
    }
    Plan {
        _dir: dir,
        store,
        agents,
        department,
    }
}

/// Feeds `evs` one by one (the decisions of each event in one batch, as
/// the client does) through a tracker and a follower on `store`.
pub(super) async fn follow(
    store: &Store,
    config: impl FnOnce(&crate::store::CallDirectory) -> TrackerConfig,
    evs: &[Packet],
    mid: impl AsyncFnMut(usize, &[CallDecision]),
) -> Vec<Applied> {
    let directory = store.call_directory().await.expect("directory");
    let mut tracker = Tracker::new(config(&directory));
    let mut follower = Follower::new(store.clone(), chrono_tz::UTC);
    follower.set_directory(directory);
    let mut mid = mid;
    let mut applied = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        let decisions = tracker.on_event(ev, at(i));
        mid(i, &decisions).await;
        if !decisions.is_empty() {
            applied.extend(follower.apply_batch(&decisions).await.expect("applied"));
        }
    }
    applied
}

/// Every attendance with its `call_ref`.
pub(super) async fn attendances(store: &Store) -> Vec<(Attendance, CallSource, Option<String>)> {
    let page = store
        .list_attendances(&AttendanceFilter::default(), None, 100)
        .await
        .expect("list");
    let mut out = Vec::new();
    for a in page.items {
        let (source, call_ref) = store
            .attendance_call_ref(&a.protocol)
            .await
            .expect("call_ref");
        out.push((a, source, call_ref));
    }
    out
}

/// The real stream, replayed whole with the production tracker
/// configuration (`AmiTuning::default()` over the numbering plan): the
/// calls whose other side is the bridge open nothing, the others one each.
#[tokio::test]
async fn calls_to_the_bridge_stream_opens_one_attendance_per_asterisk_call() {
    let p = plan(700).await;
    let bytes = read(&scenario("i-", ".ami.in"));
    let evs: Vec<Packet> = packets_of(&bytes)
        .into_iter()
        .filter(|p| p.event_name().is_some())
        .collect();
    assert!(evs.len() > 400, "{} events", evs.len());
    let tuning = AmiTuning::default();
    let applied = follow(
        &p.store,
        |d| tuning.tracker_config(d),
        &evs,
        async |_, _| {},
    )
    .await;
    assert!(
        !applied.iter().any(|a| matches!(a, Applied::Withdrawn(_))),
        "nothing opened to withdraw: {applied:?}"
    );
    let items = attendances(&p.store).await;
    let by_ref: BTreeMap<&str, &Attendance> = items
        .iter()
        .map(|(a, source, r)| {
            assert_eq!(*source, CallSource::Ami);
            (r.as_deref().expect("call_ref"), a)
        })
        .collect();
    assert_eq!(items.len(), 2, "{by_ref:#?}");
    for bridge_call in ["1796648824.6", "1796648901.12", "1796648911.14"] {
        assert!(!by_ref.contains_key(bridge_call), "{bridge_call}");
    }
    // 1003 calls 1001 inside Asterisk.
    let internal = by_ref["1796648854.8"];
    assert_eq!((&*internal.caller, &*internal.callee), ("1003", "1001"));
    assert!(internal.answered_at.is_some());
    assert_eq!(internal.agent_id, Some(p.agents["1001"]));
    assert_eq!(internal.status, AttendanceStatus::Closed);
    assert_eq!(internal.close_reason, Some(CloseReason::CallerHangup));
    assert_eq!(internal.department_id, None);
    // Click-to-call: Originate of 1001 into 1003.
    let c2c = by_ref["1796648870.10"];
    assert_eq!((&*c2c.caller, &*c2c.callee), ("1001", "1003"));
    assert!(c2c.answered_at.is_some());
    assert_eq!(c2c.status, AttendanceStatus::Closed);
}

/// The same stream with no bridge endpoint configured (the bug: the client
/// never told the tracker which endpoint is the bridge) opened a second
/// attendance for the call the bridge carried.
#[tokio::test]
async fn without_the_bridge_endpoint_the_carried_call_was_doubled() {
    let p = plan(700).await;
    let evs: Vec<Packet> = packets_of(&read(&scenario("i-", ".ami.in")))
        .into_iter()
        .filter(|p| p.event_name().is_some())
        .collect();
    let tuning = AmiTuning {
        bridge_endpoints: Vec::new(),
        ..AmiTuning::default()
    };
    follow(
        &p.store,
        |d| tuning.tracker_config(d),
        &evs,
        async |_, _| {},
    )
    .await;
    let refs: Vec<Option<String>> = attendances(&p.store)
        .await
        .into_iter()
        .map(|(_, _, r)| r)
        .collect();
    assert!(refs.contains(&Some("1796648824.6".into())), "{refs:?}");
}

/// `POST /calls/{protocol}/transfer {"target": "701"}` of a call 1001
/// answered: the API records the transfer when it sends the `Redirect`;
/// when 1002 answers at 701, 1002's agent attends the call, 701 owns it,
/// and the transfer is not recorded twice.
#[tokio::test]
async fn a_redirected_call_is_attributed_to_the_agent_who_answers_there() {
    let p = plan(701).await;
    let (evs, answered_at) = redirect_to_department(Department::OnAsterisk, Party::Callee);
    let redirect_at = evs
        .iter()
        .position(|e| e.event_name() == Some("BridgeLeave"))
        .expect("redirect");
    let store = p.store.clone();
    let (first, dept) = (p.agents["1001"], p.department);
    let applied = follow(
        &p.store,
        |d| {
            let mut cfg = transfer_config();
            cfg.known_extensions = d.extensions.keys().cloned().collect();
            cfg
        },
        &evs,
        async |i, _| {
            if i + 1 == redirect_at {
                // What the API does as it sends the Redirect.
                let (protocol, current) = only(&store).await;
                assert_eq!(current.agent_id, Some(first));
                store
                    .record_transfer(
                        &protocol,
                        &Transfer {
                            at: chrono::Utc::now(),
                            from_agent_id: current.agent_id,
                            target: "701".into(),
                            department_id: Some(dept),
                        },
                    )
                    .await
                    .expect("transfer recorded");
            }
        },
    )
    .await;
    assert!(
        applied.iter().any(|a| matches!(a, Applied::Transferred(_))),
        "{applied:?} (answered at {answered_at})"
    );
    let (_, a) = only(&p.store).await;
    assert_eq!(a.agent_id, Some(p.agents["1002"]), "{a:#?}");
    assert_eq!(a.department_id, Some(p.department));
    assert_eq!(a.transfers.len(), 1, "{:?}", a.transfers);
    assert_eq!(a.transfers[0].from_agent_id, Some(first));
    assert_eq!(a.transfers[0].target, "701");
    assert!(a.answered_at.is_some());
    assert_eq!(a.close_reason, Some(CloseReason::AgentHangup));
}

/// The same transfer made without the API (nothing recorded it): the
/// follower records it.
#[tokio::test]
async fn a_transfer_the_api_did_not_record_is_recorded() {
    let p = plan(701).await;
    let (evs, _) = redirect_to_department(Department::OnAsterisk, Party::Caller);
    follow(
        &p.store,
        |d| {
            let mut cfg = transfer_config();
            cfg.known_extensions = d.extensions.keys().cloned().collect();
            cfg
        },
        &evs,
        async |_, _| {},
    )
    .await;
    let (_, a) = only(&p.store).await;
    assert_eq!(a.agent_id, Some(p.agents["1002"]));
    assert_eq!(a.department_id, Some(p.department));
    assert_eq!(a.transfers.len(), 1, "{:?}", a.transfers);
    assert_eq!(a.transfers[0].from_agent_id, Some(p.agents["1001"]));
    assert_eq!(a.transfers[0].department_id, Some(p.department));
    assert_eq!(a.close_reason, Some(CloseReason::CallerHangup));
}

async fn only(store: &Store) -> (String, Attendance) {
    let items = attendances(store).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    let (a, _, call_ref) = items.into_iter().next().expect("one");
    assert_eq!(call_ref.as_deref(), Some(LINKEDID));
    (a.protocol.clone(), a)
}
