//! The calls Asterisk carries, live (SPEC §5 "Live calls", §6): what
//! `GET /api/v1/calls` lists beside the bridge's own calls (`source: ami`)
//! and what `DELETE /api/v1/calls/{protocol}` finds to hang up through AMI.
//!
//! Two writers, each with what only it knows, so no mapping is copied:
//! - the AMI client, from the [`Tracker`](super::tracker::Tracker) as it
//!   runs (no await between an event and its effect here): the call opens,
//!   is answered or transferred, its channels change, it ends. Keyed by
//!   Linkedid, which is all the tracker knows.
//! - the follower, once an attendance is stored for a Linkedid (opened, or
//!   claimed by a click-to-call's `PBX_BRIDGE_PROTOCOL`): its protocol, its
//!   department and the agent attending. A call is listed only once it has
//!   its protocol: before that it has no id in the API.
//!
//! A decision reaches the follower only after the client applied it here,
//! so an entry always exists when the follower attaches to it, and a call
//! that ended is gone before a late attach could revive it (attaching never
//! creates an entry).
//!
//! While the session is not logged in nothing is listed or found: what
//! Asterisk does then is unknown. The entries are hidden rather than
//! dropped because the tracker keeps following its calls across a
//! reconnect and does not report the still-live ones again; the re-read of
//! the live channels after the login ends the vanished ones (removing them
//! here) and refreshes the channels, and only then is the view shown again.
//!
//! `std` locks held for a few map operations, never across an `await`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::tracker::{CallChannels, CallDecision, Direction as AmiDirection};
use crate::domain::Direction;

/// Where an Asterisk call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AmiCallState {
    Ringing,
    Answered,
}

/// A call Asterisk carries, as `GET /calls` shows it (`source: ami`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AmiLiveCall {
    /// The call's id in the API: its attendance's protocol.
    pub id: String,
    pub protocol: String,
    /// Asterisk's Linkedid of the call (the attendance's `call_ref`).
    pub linkedid: String,
    pub direction: Direction,
    pub state: AmiCallState,
    pub department_id: Option<i64>,
    /// The agent attending, once one answered (the last after a transfer).
    pub agent_id: Option<i64>,
    /// The extension (PJSIP endpoint) that answered, when it is one.
    pub agent_extension: Option<String>,
    pub caller: String,
    pub callee: String,
    pub since: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    /// The call's live channels, the one that called first.
    pub channels: Vec<String>,
    /// The customer's channel (what a transfer redirects).
    pub customer_channel: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Opened by the tracker (a claimed call may not be yet).
    opened: bool,
    call: AmiLiveCall,
}

impl Entry {
    fn new(linkedid: &str) -> Self {
        Entry {
            opened: false,
            call: AmiLiveCall {
                id: String::new(),
                protocol: String::new(),
                linkedid: linkedid.to_owned(),
                direction: Direction::Internal,
                state: AmiCallState::Ringing,
                department_id: None,
                agent_id: None,
                agent_extension: None,
                caller: String::new(),
                callee: String::new(),
                since: DateTime::<Utc>::UNIX_EPOCH,
                answered_at: None,
                channels: Vec::new(),
                customer_channel: None,
            },
        }
    }

    fn listed(&self) -> bool {
        self.opened && !self.call.protocol.is_empty()
    }
}

#[derive(Default)]
struct Table {
    /// Linkedid → call.
    calls: HashMap<String, Entry>,
    /// Logged in and re-synced: the entries are shown.
    online: bool,
}

/// The live view of Asterisk's calls. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct AmiCalls(Arc<RwLock<Table>>);

impl AmiCalls {
    pub fn new() -> Self {
        Self::default()
    }

    // A panic elsewhere while holding the lock leaves the table consistent
    // between operations: keep using it.
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The live calls with an attendance, oldest first; none while the
    /// session is down.
    pub fn list(&self) -> Vec<AmiLiveCall> {
        let t = self.read();
        if !t.online {
            return Vec::new();
        }
        let mut v: Vec<AmiLiveCall> = t
            .calls
            .values()
            .filter(|e| e.listed())
            .map(|e| e.call.clone())
            .collect();
        v.sort_by(|a, b| (a.since, &a.protocol).cmp(&(b.since, &b.protocol)));
        v
    }

    /// The live call of attendance `protocol`; `None` while the session is
    /// down.
    pub fn get(&self, protocol: &str) -> Option<AmiLiveCall> {
        let t = self.read();
        if !t.online {
            return None;
        }
        t.calls
            .values()
            .find(|e| e.listed() && e.call.protocol == protocol)
            .map(|e| e.call.clone())
    }

    /// How many calls are followed (listed or not), for tests and logs.
    pub fn followed(&self) -> usize {
        self.read().calls.len()
    }

    /// Shown (`true`: logged in and re-synced) or hidden.
    pub fn set_online(&self, online: bool) {
        self.write().online = online;
    }

    /// The tracker decided `d` (the client, before the follower sees it).
    pub fn apply(&self, d: &CallDecision) {
        let mut t = self.write();
        match d {
            CallDecision::CallClaimed { linkedid, .. } => {
                t.calls
                    .entry(linkedid.clone())
                    .or_insert_with(|| Entry::new(linkedid));
            }
            CallDecision::CallOpened {
                linkedid,
                caller,
                callee,
                direction,
                opened_at,
                ..
            } => {
                let e = t
                    .calls
                    .entry(linkedid.clone())
                    .or_insert_with(|| Entry::new(linkedid));
                e.opened = true;
                e.call.caller.clone_from(caller);
                e.call.callee.clone_from(callee);
                e.call.direction = match direction {
                    AmiDirection::Inbound => Direction::Inbound,
                    AmiDirection::Outbound => Direction::Outbound,
                    AmiDirection::Internal => Direction::Internal,
                };
                e.call.since = utc(*opened_at);
            }
            // Answered, or answered again where a transfer sent it: the
            // agent now attending.
            CallDecision::CallAnswered {
                linkedid,
                agent_extension,
                at,
            }
            | CallDecision::CallTransferred {
                linkedid,
                agent_extension,
                at,
                ..
            } => {
                if let Some(e) = t.calls.get_mut(linkedid) {
                    e.call.state = AmiCallState::Answered;
                    e.call.agent_extension.clone_from(agent_extension);
                    e.call.answered_at.get_or_insert(utc(*at));
                }
            }
            // Handed over: the bridge lists it (same protocol) from now on.
            CallDecision::CallEnded { linkedid, .. }
            | CallDecision::CallToBridge { linkedid }
            | CallDecision::CallHandedOver { linkedid, .. } => {
                t.calls.remove(linkedid);
            }
            CallDecision::RecordingAnnounced { .. } => {}
        }
    }

    /// What the client does after each event (or re-read): applies the
    /// tracker's new decisions, then refreshes the channels of their calls
    /// and of `linkedid`'s (the event's call, whose legs may have changed
    /// without a decision) from `channels` (the tracker's).
    pub fn publish(
        &self,
        decisions: &[CallDecision],
        linkedid: Option<&str>,
        channels: impl Fn(&str) -> Option<CallChannels>,
    ) {
        for d in decisions {
            self.apply(d);
        }
        for l in decisions.iter().map(CallDecision::linkedid).chain(linkedid) {
            self.refresh_channels(l, &channels);
        }
    }

    /// Refreshes the channels of call `linkedid` from `channels` (called
    /// only when it is followed here, so the tracker is asked only then).
    pub fn refresh_channels(
        &self,
        linkedid: &str,
        channels: impl FnOnce(&str) -> Option<CallChannels>,
    ) {
        let mut t = self.write();
        if let Some(e) = t.calls.get_mut(linkedid) {
            set_channels(&mut e.call, channels(linkedid));
        }
    }

    /// Refreshes every call's channels (after a re-read of the channels).
    pub fn refresh_all(&self, channels: impl Fn(&str) -> Option<CallChannels>) {
        let mut t = self.write();
        for (linkedid, e) in t.calls.iter_mut() {
            set_channels(&mut e.call, channels(linkedid));
        }
    }

    /// The follower stored the attendance `protocol` for call `linkedid`
    /// (with its department, when it has one). No effect on a call that is
    /// not followed (any more).
    pub fn attach(&self, linkedid: &str, protocol: &str, department_id: Option<i64>) {
        let mut t = self.write();
        if let Some(e) = t.calls.get_mut(linkedid) {
            e.call.id = protocol.to_owned();
            e.call.protocol = protocol.to_owned();
            if department_id.is_some() {
                e.call.department_id = department_id;
            }
        }
    }

    /// The follower stored who attends call `linkedid` now (answer or
    /// transfer), and the department it went to in a transfer.
    pub fn attended(&self, linkedid: &str, agent_id: Option<i64>, department_id: Option<i64>) {
        let mut t = self.write();
        if let Some(e) = t.calls.get_mut(linkedid) {
            e.call.agent_id = agent_id;
            if department_id.is_some() {
                e.call.department_id = department_id;
            }
        }
    }
}

fn set_channels(call: &mut AmiLiveCall, channels: Option<CallChannels>) {
    let Some(c) = channels else {
        return;
    };
    call.channels = c.root.into_iter().chain(c.others).collect();
    call.customer_channel = c.customer;
}

fn utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}
