//! Applies the tracker's [`CallDecision`]s to the store: one attendance per
//! Asterisk call (`source: ami`, `call_ref` = Linkedid), answered, ended and
//! closed per its department's rule, with the MixMonitor file linked.
//!
//! Every step is idempotent in the store (open once per Linkedid, first
//! answer wins, ended once, closed once), so a decision replayed after a
//! reconnect, or seen by two nodes, changes nothing.

use std::collections::HashMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use super::tracker::{CallDecision, Direction as AmiDirection, HangupCause, Party};
use crate::domain::{Attendance, AttendanceStatus, CallSource, CloseReason, Direction};
use crate::store::{CallDirectory, NewAttendance, Store, StoreError};

/// Remembered Linkedid → protocol entries at most (ended calls leave).
const MAX_CACHED: usize = 65_536;

/// Writes what the tracker decided.
pub struct Follower {
    store: Store,
    tz: chrono_tz::Tz,
    directory: CallDirectory,
    /// Linkedid → protocol of calls opened by this follower.
    protocols: HashMap<String, String>,
}

/// What the follower did with one decision (logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Opened(String),
    AlreadyOpen(String),
    Answered(String),
    RecordingLinked(String),
    Ended {
        protocol: String,
        closed: Option<CloseReason>,
    },
    /// The decision concerns a call without an attendance (nothing to do).
    Unknown,
}

impl Follower {
    pub fn new(store: Store, tz: chrono_tz::Tz) -> Self {
        Follower {
            store,
            tz,
            directory: CallDirectory::default(),
            protocols: HashMap::new(),
        }
    }

    pub fn set_directory(&mut self, directory: CallDirectory) {
        self.directory = directory;
    }

    pub fn directory(&self) -> &CallDirectory {
        &self.directory
    }

    pub async fn apply(&mut self, decision: &CallDecision) -> Result<Applied, StoreError> {
        match decision {
            CallDecision::CallOpened {
                linkedid,
                caller,
                callee,
                direction,
                department_code,
                opened_at,
            } => {
                let department_id = department_code
                    .as_deref()
                    .and_then(|c| self.directory.department_codes.get(c))
                    .map(|d| d.id);
                let new = NewAttendance {
                    direction: match direction {
                        AmiDirection::Inbound => Direction::Inbound,
                        AmiDirection::Outbound => Direction::Outbound,
                        AmiDirection::Internal => Direction::Internal,
                    },
                    department_id,
                    agent_id: None,
                    caller: caller.clone(),
                    callee: callee.clone(),
                    source: CallSource::Ami,
                    opened_at: utc(*opened_at),
                    call_ref: Some(linkedid.clone()),
                };
                let (att, created) = self.store.open_attendance_once(&new, self.tz).await?;
                if self.protocols.len() >= MAX_CACHED {
                    self.protocols.clear();
                }
                self.protocols
                    .insert(linkedid.clone(), att.protocol.clone());
                if created {
                    tracing::info!(protocol = %att.protocol, linkedid, caller, callee, "AMI call opened");
                    Ok(Applied::Opened(att.protocol))
                } else {
                    tracing::debug!(protocol = %att.protocol, linkedid, "AMI call already has its attendance");
                    Ok(Applied::AlreadyOpen(att.protocol))
                }
            }
            CallDecision::CallAnswered {
                linkedid,
                agent_extension,
            } => {
                let Some(protocol) = self.protocol_of(linkedid).await? else {
                    return Ok(Applied::Unknown);
                };
                let agent = agent_extension
                    .as_deref()
                    .and_then(|e| self.directory.agent_of_extension(e));
                self.store
                    .mark_attendance_answered(&protocol, agent, Utc::now())
                    .await?;
                tracing::info!(%protocol, linkedid, agent_extension = ?agent_extension, "AMI call answered");
                Ok(Applied::Answered(protocol))
            }
            CallDecision::RecordingAnnounced { linkedid, path } => {
                let Some(protocol) = self.protocol_of(linkedid).await? else {
                    return Ok(Applied::Unknown);
                };
                self.store.link_remote_recording(&protocol, path).await?;
                Ok(Applied::RecordingLinked(protocol))
            }
            CallDecision::CallEnded {
                linkedid,
                cause,
                ended_at,
                answered,
                hangup_by,
            } => {
                let Some(protocol) = self.protocol_of(linkedid).await? else {
                    return Ok(Applied::Unknown);
                };
                self.protocols.remove(linkedid);
                let at = utc(*ended_at);
                let (att, news) = self.store.mark_attendance_ended(&protocol, at).await?;
                let mut closed = None;
                if news && att.status != AttendanceStatus::Closed {
                    let reason = close_reason(cause.as_ref(), *answered, *hangup_by);
                    if *answered && reason == CloseReason::Failed {
                        tracing::warn!(%protocol, linkedid, "AMI call ended while the link was down");
                    }
                    if self.closes_on_hangup(&att, *answered)
                        && self
                            .store
                            .close_attendance_if_open(&protocol, reason, at)
                            .await?
                    {
                        closed = Some(reason);
                    }
                }
                tracing::info!(%protocol, linkedid, closed = ?closed.map(|r| r.as_str()), "AMI call ended");
                Ok(Applied::Ended { protocol, closed })
            }
        }
    }

    /// An unanswered call has nothing left to attend: always closed. An
    /// answered one per its department (no department: closed).
    fn closes_on_hangup(&self, att: &Attendance, answered: bool) -> bool {
        if !answered {
            return true;
        }
        att.department_id
            .and_then(|id| self.directory.departments.get(&id))
            .is_none_or(|d| d.close_on_hangup)
    }

    async fn protocol_of(&mut self, linkedid: &str) -> Result<Option<String>, StoreError> {
        if let Some(p) = self.protocols.get(linkedid) {
            return Ok(Some(p.clone()));
        }
        let found = self
            .store
            .find_attendance_by_call_ref(CallSource::Ami, linkedid)
            .await?
            .map(|a| a.protocol);
        if let Some(p) = &found {
            self.protocols.insert(linkedid.to_owned(), p.clone());
        }
        Ok(found)
    }
}

/// Why a followed call ended, in attendance terms.
///
/// - answered: the side that sent the first `HangupRequest` (the callee's
///   side is the agent); unknown (the call vanished while disconnected) is
///   `failed`, as for crash recovery;
/// - unanswered: the caller hanging up first is `abandoned`; busy or call
///   rejected (Q.850 17, 21) is `rejected`; anything else (rung out, no
///   route, unavailable, vanished) is `no_answer`.
pub fn close_reason(
    cause: Option<&HangupCause>,
    answered: bool,
    hangup_by: Option<Party>,
) -> CloseReason {
    match (answered, cause, hangup_by) {
        (true, None, _) => CloseReason::Failed,
        (true, Some(_), Some(Party::Callee)) => CloseReason::AgentHangup,
        (true, Some(_), _) => CloseReason::CallerHangup,
        (false, Some(c), _) if matches!(c.code, 17 | 21) => CloseReason::Rejected,
        (false, Some(_), Some(Party::Caller)) => CloseReason::Abandoned,
        (false, _, _) => CloseReason::NoAnswer,
    }
}

fn utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: u16) -> Option<HangupCause> {
        Some(HangupCause {
            code,
            text: String::new(),
        })
    }

    #[test]
    fn close_reasons() {
        use CloseReason::*;
        assert_eq!(
            close_reason(c(16).as_ref(), true, Some(Party::Caller)),
            CallerHangup
        );
        assert_eq!(
            close_reason(c(16).as_ref(), true, Some(Party::Callee)),
            AgentHangup
        );
        assert_eq!(close_reason(c(16).as_ref(), true, None), CallerHangup);
        assert_eq!(close_reason(None, true, None), Failed);
        assert_eq!(
            close_reason(c(16).as_ref(), false, Some(Party::Caller)),
            Abandoned
        );
        assert_eq!(
            close_reason(c(17).as_ref(), false, Some(Party::Callee)),
            Rejected
        );
        assert_eq!(close_reason(c(3).as_ref(), false, None), NoAnswer);
        assert_eq!(close_reason(None, false, None), NoAnswer);
    }
}
