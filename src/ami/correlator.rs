//! Matches what Asterisk sends back to the actions we sent, by `ActionID`.
//!
//! Three shapes of answer exist:
//! - a plain response (`Response: Success|Error`) completes the action;
//! - a list action answers `Response: Success` + `EventList: start`, then
//!   events carrying the same ActionID, then an event with
//!   `EventList: Complete` (`CoreShowChannelsComplete`, `EndpointListComplete`,
//!   `ContactListComplete`...); it completes with the collected events;
//! - anything else (events without a pending ActionID, late answers to actions
//!   that already timed out) passes through so nothing is swallowed.
//!
//! Time is an input (`now`), so timeouts are tested without sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::packet::{Packet, PacketKind};

/// A finished action with everything Asterisk answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub action_id: String,
    /// The action name (`Login`, `CoreShowChannels`...).
    pub action: String,
    pub response: Packet,
    /// For list actions: the item events, in order (without the final one).
    pub events: Vec<Packet>,
    /// For list actions: the `...Complete` event (`ListItems` etc.).
    pub list_complete: Option<Packet>,
}

impl Completion {
    /// `Response: Success` (or `Goodbye`, which is how Logoff succeeds).
    pub fn is_success(&self) -> bool {
        matches!(
            self.response.response(),
            Some(super::packet::ResponseStatus::Success)
                | Some(super::packet::ResponseStatus::Goodbye)
                | Some(super::packet::ResponseStatus::Follows)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FailureReason {
    #[error("no answer from Asterisk within {0:?}")]
    TimedOut(Duration),
    #[error("AMI connection lost before the answer")]
    Disconnected,
    #[error("list answer exceeded {0} events")]
    ListTooLong(usize),
}

/// An action that will never complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionFailure {
    pub action_id: String,
    pub action: String,
    pub reason: FailureReason,
}

pub type ActionOutcome = Result<Completion, ActionFailure>;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegisterError {
    #[error("ActionID {0:?} is already pending")]
    DuplicateActionId(String),
    #[error("too many pending actions ({0})")]
    TooManyPending(usize),
}

/// What a received packet turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correlated {
    /// Part of a pending action's answer; nothing to report yet.
    Absorbed,
    Done(ActionOutcome),
    /// Not ours: an event, or a response nobody waits for any more.
    Unsolicited(Packet),
}

#[derive(Debug)]
enum Stage {
    AwaitingResponse,
    Collecting {
        response: Packet,
        events: Vec<Packet>,
    },
    /// Over the event limit: dropping items until the list ends.
    Overflowed,
}

#[derive(Debug)]
struct Pending {
    action: String,
    timeout: Duration,
    deadline: Instant,
    stage: Stage,
}

/// Tracks pending actions.
#[derive(Debug)]
pub struct Correlator {
    pending: HashMap<String, Pending>,
    max_pending: usize,
    max_list_events: usize,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator::new()
    }
}

impl Correlator {
    pub fn new() -> Self {
        Correlator {
            pending: HashMap::new(),
            max_pending: 10_000,
            max_list_events: 200_000,
        }
    }

    pub fn with_limits(max_pending: usize, max_list_events: usize) -> Self {
        Correlator {
            max_pending,
            max_list_events,
            ..Correlator::new()
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_pending(&self, action_id: &str) -> bool {
        self.pending.contains_key(action_id)
    }

    /// Start waiting for the answer to `action` (name) sent as `action_id`.
    /// The deadline is pushed on while list items keep arriving.
    pub fn register(
        &mut self,
        action_id: &str,
        action: &str,
        now: Instant,
        timeout: Duration,
    ) -> Result<(), RegisterError> {
        if self.pending.contains_key(action_id) {
            return Err(RegisterError::DuplicateActionId(action_id.to_owned()));
        }
        if self.pending.len() >= self.max_pending {
            return Err(RegisterError::TooManyPending(self.max_pending));
        }
        self.pending.insert(
            action_id.to_owned(),
            Pending {
                action: action.to_owned(),
                timeout,
                deadline: now + timeout,
                stage: Stage::AwaitingResponse,
            },
        );
        Ok(())
    }

    /// Feed one received packet.
    pub fn on_packet(&mut self, packet: Packet, now: Instant) -> Correlated {
        let Some(id) = packet.action_id() else {
            return Correlated::Unsolicited(packet);
        };
        let Some(pending) = self.pending.get_mut(id) else {
            return Correlated::Unsolicited(packet);
        };
        match packet.kind() {
            PacketKind::Response(_) => {
                if !matches!(pending.stage, Stage::AwaitingResponse) {
                    // A second response for the same id: not part of the list.
                    return Correlated::Unsolicited(packet);
                }
                let starts_list = packet
                    .event_list()
                    .is_some_and(|v| v.eq_ignore_ascii_case("start"));
                if starts_list {
                    pending.deadline = now + pending.timeout;
                    pending.stage = Stage::Collecting {
                        response: packet,
                        events: Vec::new(),
                    };
                    return Correlated::Absorbed;
                }
                let id = id.to_owned();
                let action = self
                    .pending
                    .remove(&id)
                    .map(|p| p.action)
                    .unwrap_or_default();
                Correlated::Done(Ok(Completion {
                    action_id: id,
                    action,
                    response: packet,
                    events: Vec::new(),
                    list_complete: None,
                }))
            }
            PacketKind::Event(_) => {
                let ends_list = packet.event_list().is_some_and(|v| {
                    v.eq_ignore_ascii_case("Complete") || v.eq_ignore_ascii_case("Cancelled")
                });
                match &mut pending.stage {
                    // An event echoing our id before the response (e.g. an
                    // OriginateResponse): not a list item, pass it on.
                    Stage::AwaitingResponse => Correlated::Unsolicited(packet),
                    Stage::Collecting { events, .. } if !ends_list => {
                        if events.len() >= self.max_list_events {
                            pending.stage = Stage::Overflowed;
                            let id = id.to_owned();
                            return Correlated::Done(Err(ActionFailure {
                                action_id: id,
                                action: pending.action.clone(),
                                reason: FailureReason::ListTooLong(self.max_list_events),
                            }));
                        }
                        events.push(packet);
                        pending.deadline = now + pending.timeout;
                        Correlated::Absorbed
                    }
                    Stage::Overflowed if !ends_list => Correlated::Absorbed,
                    Stage::Overflowed => {
                        let id = id.to_owned();
                        self.pending.remove(&id);
                        Correlated::Absorbed
                    }
                    Stage::Collecting { .. } => {
                        let id = id.to_owned();
                        match self.pending.remove(&id) {
                            Some(Pending {
                                action,
                                stage: Stage::Collecting { response, events },
                                ..
                            }) => Correlated::Done(Ok(Completion {
                                action_id: id,
                                action,
                                response,
                                events,
                                list_complete: Some(packet),
                            })),
                            _ => Correlated::Unsolicited(packet),
                        }
                    }
                }
            }
            PacketKind::Generic => Correlated::Unsolicited(packet),
        }
    }

    /// Fail every action whose deadline has passed.
    pub fn expire(&mut self, now: Instant) -> Vec<ActionFailure> {
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out: Vec<ActionFailure> = expired
            .into_iter()
            .filter_map(|id| {
                let p = self.pending.remove(&id)?;
                let overflowed = matches!(p.stage, Stage::Overflowed);
                (!overflowed).then_some(ActionFailure {
                    action_id: id,
                    action: p.action,
                    reason: FailureReason::TimedOut(p.timeout),
                })
            })
            .collect();
        out.sort_by(|a, b| a.action_id.cmp(&b.action_id));
        out
    }

    /// The earliest deadline, for the driver's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// The connection is gone: every pending action fails.
    pub fn fail_all(&mut self) -> Vec<ActionFailure> {
        let mut out: Vec<ActionFailure> = self
            .pending
            .drain()
            .filter(|(_, p)| !matches!(p.stage, Stage::Overflowed))
            .map(|(id, p)| ActionFailure {
                action_id: id,
                action: p.action,
                reason: FailureReason::Disconnected,
            })
            .collect();
        out.sort_by(|a, b| a.action_id.cmp(&b.action_id));
        out
    }
}
