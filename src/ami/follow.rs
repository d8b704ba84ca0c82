//! Applies the tracker's [`CallDecision`]s to the store: one attendance per
//! Asterisk call (`source: ami`, `call_ref` = Linkedid), answered, ended and
//! closed per its department's rule, with the MixMonitor file linked.
//!
//! Decisions are written in batches, one transaction each (all or nothing,
//! so a failed batch can be retried whole without losing or doubling
//! anything); the numbering plan comes from the [`CallDirectory`] snapshot,
//! so no lookup query runs per call.
//!
//! Every step is idempotent in the store (open once per Linkedid, first
//! answer wins, ended once, closed once), so a decision replayed after a
//! reconnect, or seen by two nodes, changes nothing.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use super::live::AmiCalls;
use super::tracker::{CallDecision, Direction as AmiDirection, HangupCause, Party};
use crate::domain::{
    AttendanceStatus, CallSource, CloseReason, Direction, Id, closes_when_call_ends,
};
use crate::store::{AttendanceBatch, CallDirectory, NewAttendance, Store, StoreError};

/// Remembered Linkedid → protocol entries at most (ended calls leave).
const MAX_CACHED: usize = 65_536;

/// Writes what the tracker decided.
pub struct Follower {
    store: Store,
    tz: chrono_tz::Tz,
    directory: CallDirectory,
    /// Linkedid → protocol of calls opened by this follower.
    protocols: HashMap<String, String>,
    /// Where the stored protocols, departments and agents are published
    /// for `GET /calls` (the client publishes the rest).
    live: AmiCalls,
    /// Linkedids the API hung up: their end closes `api`.
    api_hangups: HashSet<String>,
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
    /// The call went to the bridge; its attendance (if it had one no agent
    /// attends) was deleted.
    Withdrawn(Option<String>),
    /// The call went to the bridge carrying its protocol: the bridge
    /// continues that attendance; it is kept and no longer followed.
    HandedOver(String),
    /// Transferred: another agent attends it now.
    Transferred(String),
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
            live: AmiCalls::new(),
            api_hangups: HashSet::new(),
        }
    }

    /// Publishes into `live` (the AMI client's view) instead of a view of
    /// its own.
    pub fn with_live(mut self, live: AmiCalls) -> Self {
        self.live = live;
        self
    }

    /// The API asked Asterisk to hang up call `linkedid` (`requested`):
    /// when it ends, its attendance closes `api`, whoever's hang-up
    /// Asterisk reports; or Asterisk refused that (`!requested`): its end
    /// is its own again.
    pub fn hangup_requested(&mut self, linkedid: &str, requested: bool) {
        if !requested {
            self.api_hangups.remove(linkedid);
            return;
        }
        if self.api_hangups.len() >= MAX_CACHED {
            self.api_hangups.clear();
        }
        self.api_hangups.insert(linkedid.to_owned());
    }

    pub fn set_directory(&mut self, directory: CallDirectory) {
        self.directory = directory;
    }

    pub fn directory(&self) -> &CallDirectory {
        &self.directory
    }

    /// Applies one decision (its own transaction).
    pub async fn apply(&mut self, decision: &CallDecision) -> Result<Applied, StoreError> {
        let mut applied = self.apply_batch(std::slice::from_ref(decision)).await?;
        Ok(applied.pop().unwrap_or(Applied::Unknown))
    }

    /// Applies `decisions` in order in ONE transaction: all of them are
    /// stored, or (on an error) none, and the error is returned so the
    /// caller can retry; the Linkedid cache is rolled back with it.
    pub async fn apply_batch(
        &mut self,
        decisions: &[CallDecision],
    ) -> Result<Vec<Applied>, StoreError> {
        if self.protocols.len() >= MAX_CACHED {
            self.protocols.clear();
        }
        let mut undo: Vec<(String, Option<String>)> = Vec::new();
        let mut applied = Vec::with_capacity(decisions.len());
        let result = async {
            let mut batch = self.store.attendance_batch().await?;
            for d in decisions {
                applied.push(self.apply_in(&mut batch, d, &mut undo).await?);
            }
            batch.commit().await
        }
        .await;
        if let Err(e) = result {
            for (linkedid, before) in undo.into_iter().rev() {
                match before {
                    Some(p) => self.protocols.insert(linkedid, p),
                    None => self.protocols.remove(&linkedid),
                };
            }
            return Err(e);
        }
        for (d, a) in decisions.iter().zip(&applied) {
            log_applied(d, a);
            self.publish(d, a);
        }
        Ok(applied)
    }

    fn remember(
        &mut self,
        undo: &mut Vec<(String, Option<String>)>,
        linkedid: &str,
        protocol: Option<String>,
    ) {
        let before = match protocol {
            Some(p) => self.protocols.insert(linkedid.to_owned(), p),
            None => self.protocols.remove(linkedid),
        };
        undo.push((linkedid.to_owned(), before));
    }

    async fn apply_in(
        &mut self,
        batch: &mut AttendanceBatch,
        decision: &CallDecision,
        undo: &mut Vec<(String, Option<String>)>,
    ) -> Result<Applied, StoreError> {
        match decision {
            CallDecision::CallOpened {
                linkedid,
                caller,
                callee,
                direction,
                department_code,
                opened_at,
            } => {
                if let Some(p) = self.protocols.get(linkedid) {
                    return Ok(Applied::AlreadyOpen(p.clone()));
                }
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
                    node: None,
                };
                let (protocol, created) = batch.open_once(&new, self.tz).await?;
                self.remember(undo, linkedid, Some(protocol.clone()));
                Ok(if created {
                    Applied::Opened(protocol)
                } else {
                    Applied::AlreadyOpen(protocol)
                })
            }
            CallDecision::CallAnswered {
                linkedid,
                agent_extension,
                at,
            } => {
                let Some(protocol) = self.protocol_of(batch, undo, linkedid).await? else {
                    return Ok(Applied::Unknown);
                };
                let agent = self.agent_of(agent_extension.as_deref());
                batch.mark_answered(&protocol, agent, utc(*at)).await?;
                Ok(Applied::Answered(protocol))
            }
            CallDecision::RecordingAnnounced { linkedid, path } => {
                let Some(protocol) = self.protocol_of(batch, undo, linkedid).await? else {
                    return Ok(Applied::Unknown);
                };
                batch.link_remote_recording(&protocol, path).await?;
                Ok(Applied::RecordingLinked(protocol))
            }
            CallDecision::CallEnded {
                linkedid,
                cause,
                ended_at,
                answered,
                hangup_by,
            } => {
                let Some(protocol) = self.protocol_of(batch, undo, linkedid).await? else {
                    return Ok(Applied::Unknown);
                };
                self.remember(undo, linkedid, None);
                let at = utc(*ended_at);
                let reason = if self.api_hangups.contains(linkedid) {
                    CloseReason::Api
                } else {
                    close_reason(cause.as_ref(), *answered, *hangup_by)
                };
                // Closed whatever the department says (even where it keeps
                // attendances open: unanswered), in the same statement.
                let close_now = closes_when_call_ends(*answered, Some(false)).then_some(reason);
                let Some((status, department_id)) =
                    batch.mark_ended(&protocol, at, close_now).await?
                else {
                    return Ok(Applied::Ended {
                        protocol,
                        closed: None,
                    });
                };
                let closed = if close_now.is_some() {
                    close_now
                } else if status != AttendanceStatus::Closed
                    && closes_when_call_ends(
                        *answered,
                        self.department_closes_on_hangup(department_id),
                    )
                    && batch.close_if_open(&protocol, reason, at).await?
                {
                    Some(reason)
                } else {
                    None
                };
                Ok(Applied::Ended { protocol, closed })
            }
            CallDecision::CallClaimed { linkedid, protocol } => {
                if !batch
                    .claim_call_ref(protocol, CallSource::Ami, linkedid)
                    .await?
                {
                    tracing::warn!(%protocol, linkedid, "a click-to-call's protocol is not an AMI attendance here; followed as a call of its own");
                    return Ok(Applied::Unknown);
                }
                self.remember(undo, linkedid, Some(protocol.clone()));
                Ok(Applied::AlreadyOpen(protocol.clone()))
            }
            CallDecision::CallToBridge { linkedid } => {
                self.remember(undo, linkedid, None);
                let protocol = batch.discard_unattended(CallSource::Ami, linkedid).await?;
                Ok(Applied::Withdrawn(protocol))
            }
            CallDecision::CallHandedOver { linkedid, protocol } => {
                // Neither deleted (even unanswered) nor closed later: the
                // bridge answers, records and closes it from now on.
                self.remember(undo, linkedid, None);
                Ok(Applied::HandedOver(protocol.clone()))
            }
            CallDecision::CallTransferred {
                linkedid,
                target,
                department_code,
                agent_extension,
                at,
            } => {
                let Some(protocol) = self.protocol_of(batch, undo, linkedid).await? else {
                    return Ok(Applied::Unknown);
                };
                let agent = self.agent_of(agent_extension.as_deref());
                let department_id = department_code
                    .as_deref()
                    .and_then(|c| self.directory.department_codes.get(c))
                    .map(|d| d.id);
                if !batch
                    .reassign(&protocol, agent, department_id, target, utc(*at))
                    .await?
                {
                    return Ok(Applied::Unknown);
                }
                Ok(Applied::Transferred(protocol))
            }
        }
    }

    /// Publishes what was stored (after the commit) into the live view.
    fn publish(&mut self, d: &CallDecision, a: &Applied) {
        let department = |code: &Option<String>| {
            code.as_deref()
                .and_then(|c| self.directory.department_codes.get(c))
                .map(|d| d.id)
        };
        match (d, a) {
            (
                CallDecision::CallOpened {
                    linkedid,
                    department_code,
                    ..
                },
                Applied::Opened(p) | Applied::AlreadyOpen(p),
            ) => self.live.attach(linkedid, p, department(department_code)),
            (CallDecision::CallClaimed { linkedid, .. }, Applied::AlreadyOpen(p)) => {
                self.live.attach(linkedid, p, None)
            }
            (
                CallDecision::CallAnswered {
                    linkedid,
                    agent_extension,
                    ..
                },
                Applied::Answered(_),
            ) => {
                let agent = self.agent_of(agent_extension.as_deref());
                self.live.attended(linkedid, agent, None);
            }
            (
                CallDecision::CallTransferred {
                    linkedid,
                    agent_extension,
                    department_code,
                    ..
                },
                Applied::Transferred(_),
            ) => {
                let agent = self.agent_of(agent_extension.as_deref());
                self.live
                    .attended(linkedid, agent, department(department_code));
            }
            (CallDecision::CallEnded { linkedid, .. }, _) => {
                self.api_hangups.remove(linkedid);
            }
            _ => {}
        }
    }

    /// A click-to-call Asterisk could not place (`OriginateResponse`
    /// failure): its attendance ends, closed `failed`; nothing answered it.
    /// Retried a while when the database stalls.
    pub async fn originate_failed(&mut self, protocol: &str, reason: &str) {
        tracing::warn!(%protocol, reason, "click-to-call through Asterisk failed");
        for _ in 0..ORIGINATE_FAILED_TRIES {
            let at = Utc::now();
            let result = async {
                let mut batch = self.store.attendance_batch().await?;
                batch
                    .mark_ended(protocol, at, Some(CloseReason::Failed))
                    .await?;
                batch.commit().await
            }
            .await;
            match result {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(%protocol, error = %e, "cannot close a failed click-to-call yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The `close_on_hangup` of the call's (current) department; `None`
    /// when it has none (or one the directory no longer knows).
    /// The agent using Asterisk extension `extension`, if any.
    fn agent_of(&self, extension: Option<&str>) -> Option<Id> {
        extension.and_then(|e| self.directory.agent_of_extension(e))
    }

    fn department_closes_on_hangup(&self, department_id: Option<Id>) -> Option<bool> {
        department_id
            .and_then(|id| self.directory.departments.get(&id))
            .map(|d| d.close_on_hangup)
    }

    async fn protocol_of(
        &mut self,
        batch: &mut AttendanceBatch,
        undo: &mut Vec<(String, Option<String>)>,
        linkedid: &str,
    ) -> Result<Option<String>, StoreError> {
        if let Some(p) = self.protocols.get(linkedid) {
            return Ok(Some(p.clone()));
        }
        let found = batch.find_protocol(CallSource::Ami, linkedid).await?;
        if let Some(p) = &found {
            self.remember(undo, linkedid, Some(p.clone()));
        }
        Ok(found)
    }
}

/// Logs what was stored (after the commit).
fn log_applied(d: &CallDecision, a: &Applied) {
    let linkedid = d.linkedid();
    match (d, a) {
        (CallDecision::CallOpened { caller, callee, .. }, Applied::Opened(protocol)) => {
            tracing::info!(%protocol, linkedid, caller, callee, "AMI call opened");
        }
        (_, Applied::AlreadyOpen(protocol)) => {
            tracing::debug!(%protocol, linkedid, "AMI call already has its attendance");
        }
        (
            CallDecision::CallAnswered {
                agent_extension, ..
            },
            Applied::Answered(protocol),
        ) => {
            tracing::info!(%protocol, linkedid, agent_extension = ?agent_extension, "AMI call answered");
        }
        (
            CallDecision::CallEnded {
                answered, cause, ..
            },
            Applied::Ended { protocol, closed },
        ) => {
            if *answered && cause.is_none() {
                tracing::warn!(%protocol, linkedid, "AMI call ended while the link was down");
            }
            tracing::info!(%protocol, linkedid, closed = ?closed.map(|r| r.as_str()), "AMI call ended");
        }
        (
            CallDecision::CallTransferred {
                target,
                agent_extension,
                ..
            },
            Applied::Transferred(protocol),
        ) => {
            tracing::info!(%protocol, linkedid, target, agent_extension = ?agent_extension, "AMI call transferred");
        }
        (_, Applied::HandedOver(protocol)) => {
            tracing::info!(%protocol, linkedid, "AMI call went to the bridge with its protocol: the bridge continues its attendance");
        }
        (_, Applied::Withdrawn(protocol)) => {
            tracing::info!(protocol = ?protocol, linkedid, "AMI call went to the bridge: its attendance is the bridge's");
        }
        _ => {}
    }
}

/// How often a failed click-to-call's close is tried.
const ORIGINATE_FAILED_TRIES: u32 = 30;

/// An `OriginateResponse`: its ActionID, and why it failed (`None`: it
/// succeeded). `None` for any other packet.
pub fn originate_outcome(p: &super::Packet) -> Option<(&str, Option<String>)> {
    if p.event_name() != Some("OriginateResponse") {
        return None;
    }
    let id = p.get("ActionID")?;
    let response = p.get("Response").unwrap_or("Failure");
    if response.eq_ignore_ascii_case("Success") {
        return Some((id, None));
    }
    Some((
        id,
        Some(format!(
            "Asterisk could not place the call (OriginateResponse {response}, reason {})",
            p.get("Reason").unwrap_or("unknown")
        )),
    ))
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
