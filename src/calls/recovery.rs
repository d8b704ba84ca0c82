//! Crash recovery (SPEC §4): at start, before SIP runs, the calls a killed
//! process left live are ended where they stopped, closed with `failed`
//! where the rule says so, and their recordings made playable and linked.
//! A recovered call is never live again: nothing here publishes it, and its
//! attendance now has `ended_at`.
//!
//! What "the calls it left live" means: SIP attendances (`source = sip`)
//! of this node (`node` = `PBX_BRIDGE_NODE_ID`, or no node: rows from
//! before the column existed) with no `ended_at` and not closed. Several
//! nodes may share PostgreSQL: a node starting never touches the calls
//! another node carries, nor their recordings in progress.
//!
//! Idempotent: a second run finds nothing left to end, and every recording
//! it could link is linked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::Duration;

use crate::domain::{AttendanceStatus, CloseReason, Protocol, Timestamp, closes_when_call_ends};
use crate::media::recorder::{self, Repaired};
use crate::store::{InterruptedCall, Store, StoreError};

/// How far back (before the newest SIP activity) to look for ended calls
/// whose recording was never linked: a process stops between a call's end
/// and the linking of its recording within seconds, so a day is plenty.
const UNLINKED_WINDOW: Duration = Duration::days(1);

/// What a recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Calls ended (`ended_at` set).
    pub ended: usize,
    /// Of those, the attendances also closed (reason `failed`).
    pub closed: usize,
    /// Recordings repaired (or found sound) and linked to their attendance.
    pub recordings_repaired: usize,
}

impl RecoveryReport {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The instant an interrupted call is taken to have ended: the last
/// activity known of it, never before it was answered or opened.
fn ended_at(call: &InterruptedCall) -> Timestamp {
    call.last_activity_at
        .max(call.answered_at.unwrap_or(call.opened_at))
        .max(call.opened_at)
}

/// A call that ended by a fault closes as any call does when it ends
/// ([`closes_when_call_ends`]), with reason `failed`.
fn close_reason(call: &InterruptedCall) -> Option<CloseReason> {
    let answered = call.status != AttendanceStatus::Ringing;
    closes_when_call_ends(answered, call.department_closes_on_hangup).then_some(CloseReason::Failed)
}

/// `YYYY/MM/DD/<protocol>.wav`: the recording's path under the recordings
/// directory, as the attendance stores it and the download serves it.
fn relative_path(protocol: &Protocol) -> String {
    recorder::recording_path(Path::new(""), protocol)
        .to_string_lossy()
        .into_owned()
}

/// Ends the calls a previous process of node `node` left live and links
/// their recordings; other nodes' calls (a shared database) are theirs.
/// `tz` is the installation's: protocol numbers carry its local date.
pub async fn recover(
    store: &Store,
    recordings_dir: &Path,
    tz: chrono_tz::Tz,
    node: &str,
) -> Result<RecoveryReport, StoreError> {
    let mut report = RecoveryReport::default();
    let interrupted = store.interrupted_sip_calls(node).await?;
    let mut recordings = BTreeSet::new();
    for call in &interrupted {
        let at = ended_at(call);
        let close = close_reason(call);
        if !store
            .end_interrupted_call(&call.protocol, at, close)
            .await?
        {
            continue;
        }
        report.ended += 1;
        if close.is_some() {
            report.closed += 1;
        }
        tracing::warn!(
            protocol = %call.protocol,
            status = call.status.as_str(),
            ended_at = %at,
            closed = close.is_some(),
            "call ended by crash recovery: the bridge stopped while it was live"
        );
        if !call.has_recording {
            recordings.insert(call.protocol.clone());
        }
    }
    if let Some(newest) = store.last_sip_activity().await? {
        let day = Protocol::day(newest - UNLINKED_WINDOW, tz);
        let from = format!("{}000000", day.format("%Y%m%d"));
        recordings.extend(store.sip_calls_without_recording(&from, node).await?);
    }
    for protocol in recordings {
        if link_recording(store, recordings_dir, &protocol).await? {
            report.recordings_repaired += 1;
        }
    }
    Ok(report)
}

/// Repairs and links the recording of `protocol` if its file exists.
/// A file that cannot be repaired is logged and left alone (never lost).
async fn link_recording(
    store: &Store,
    recordings_dir: &Path,
    protocol: &str,
) -> Result<bool, StoreError> {
    let Ok(protocol) = Protocol::parse(protocol) else {
        tracing::warn!(%protocol, "crash recovery: malformed protocol skipped");
        return Ok(false);
    };
    let path: PathBuf = recorder::recording_path(recordings_dir, &protocol);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Ok(false);
    }
    let repaired = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || recorder::repair(&path)).await
    };
    let Repaired { changed, info } = match repaired {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(protocol = %protocol, path = %path.display(), error = %e, "crash recovery: recording cannot be repaired");
            return Ok(false);
        }
        Err(e) => {
            tracing::error!(protocol = %protocol, error = %e, "crash recovery: recording repair task failed");
            return Ok(false);
        }
    };
    store
        .attach_recording(
            protocol.as_str(),
            &relative_path(&protocol),
            info.duration_ms,
            info.bytes,
            &info.sha256,
        )
        .await?;
    tracing::info!(
        protocol = %protocol,
        duration_ms = info.duration_ms,
        repaired = changed,
        "crash recovery: recording linked"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(status: AttendanceStatus, close_on_hangup: Option<bool>) -> InterruptedCall {
        let t = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
        InterruptedCall {
            protocol: "20260101000001".into(),
            status,
            opened_at: t(100),
            answered_at: Some(t(110)),
            last_activity_at: t(105),
            department_closes_on_hangup: close_on_hangup,
            has_recording: false,
        }
    }

    #[test]
    fn ends_at_the_last_activity_never_before_the_answer() {
        let mut c = call(AttendanceStatus::InProgress, Some(false));
        assert_eq!(ended_at(&c).timestamp(), 110);
        c.last_activity_at = chrono::DateTime::from_timestamp(150, 0).unwrap();
        assert_eq!(ended_at(&c).timestamp(), 150);
        c.answered_at = None;
        c.last_activity_at = chrono::DateTime::from_timestamp(90, 0).unwrap();
        assert_eq!(ended_at(&c).timestamp(), 100);
    }

    #[test]
    fn closes_unanswered_calls_and_close_on_hangup_departments() {
        use AttendanceStatus::*;
        for department in [Some(true), Some(false), None] {
            assert_eq!(
                close_reason(&call(Ringing, department)),
                Some(CloseReason::Failed)
            );
        }
        assert_eq!(
            close_reason(&call(InProgress, Some(true))),
            Some(CloseReason::Failed)
        );
        assert_eq!(close_reason(&call(InProgress, Some(false))), None);
        // No department: nobody to go on with it.
        assert_eq!(
            close_reason(&call(InProgress, None)),
            Some(CloseReason::Failed)
        );
    }

    #[test]
    fn relative_path_is_what_the_download_joins() {
        let p = Protocol::parse("20261121000042").unwrap();
        assert_eq!(relative_path(&p), "2026/11/21/20261121000042.wav");
    }
}
