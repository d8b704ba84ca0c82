//! TEMPORARY shim until the ledger branch lands: same interface, writes
//! straight to the store in a background task.

use tokio::sync::mpsc;

use crate::domain::{AttendanceChange, Protocol};
use crate::store::{NewAttendance, Store};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LedgerError(String);

#[derive(Clone)]
pub struct Ledger {
    store: Store,
    tz: chrono_tz::Tz,
    tx: mpsc::UnboundedSender<(String, AttendanceChange)>,
}

impl Ledger {
    pub fn shim(store: Store, tz: chrono_tz::Tz) -> Ledger {
        let (tx, mut rx) = mpsc::unbounded_channel::<(String, AttendanceChange)>();
        let s = store.clone();
        tokio::spawn(async move {
            while let Some((p, change)) = rx.recv().await {
                let r = match change {
                    AttendanceChange::Assigned {
                        department_id,
                        agent_id,
                        ..
                    } => s.assign_attendance(&p, department_id, agent_id).await,
                    AttendanceChange::Answered { agent_id, at } => s
                        .mark_attendance_answered(&p, agent_id, at)
                        .await
                        .map(|_| ()),
                    AttendanceChange::Transferred(t) => s.record_transfer(&p, &t).await.map(|_| ()),
                    AttendanceChange::Ended { at, close } => {
                        let r = s.mark_attendance_ended(&p, at).await.map(|_| ());
                        match close {
                            Some(reason) if r.is_ok() => {
                                s.close_attendance_if_open(&p, reason, at).await.map(|_| ())
                            }
                            _ => r,
                        }
                    }
                    AttendanceChange::RecordingAttached {
                        path,
                        duration_ms,
                        bytes,
                        sha256,
                    } => {
                        s.attach_recording(&p, &path, duration_ms, bytes, &sha256)
                            .await
                    }
                };
                if let Err(e) = r {
                    tracing::error!(protocol = %p, error = %e, "ledger shim write failed");
                }
            }
        });
        Ledger { store, tz, tx }
    }

    pub async fn open(&self, new: NewAttendance) -> Result<Protocol, LedgerError> {
        let a = self
            .store
            .open_attendance(&new, self.tz)
            .await
            .map_err(|e| LedgerError(e.to_string()))?;
        Protocol::parse(&a.protocol).map_err(|e| LedgerError(e.to_string()))
    }

    pub fn record(&self, protocol: &str, change: AttendanceChange) {
        let _ = self.tx.send((protocol.to_owned(), change));
    }
}
