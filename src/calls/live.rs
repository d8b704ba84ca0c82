//! The calls in progress on this node (SPEC §5 "Live calls"): what each
//! call task publishes about itself, so the API can list and control calls
//! and the ring logic can skip agents and extensions already in one.
//!
//! Every call task inserts its call, updates it as legs ring, answer and
//! end, and removes it when the call is over. The API reaches a call task
//! only through the control channel the task registered: the table never
//! acts on a call itself.
//!
//! Locks are `std` locks held for a few map operations, never across an
//! `await`. The busy sets are kept as reference counts updated on every
//! change, because they are read for every new call (to pick who to ring)
//! while the table is read by the API only now and then.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

use crate::domain::Direction;

/// What the API (or the shutdown) asks of a call task.
#[derive(Debug)]
pub enum CallControl {
    /// End every leg of the call (`DELETE /calls/{id}`).
    HangUp,
    /// The bridge is stopping and the grace period is over: end every leg;
    /// the attendance records a fault (`failed`), not an API action.
    Shutdown,
    /// Blind-transfer the caller to `target` (a department's PABX code or an
    /// extension); the task answers on `reply` once it has accepted or
    /// refused, with a message for the API client when refused.
    Transfer {
        target: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Ringing,
    Answered,
    Ending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegRole {
    /// The customer's side (or the calling extension).
    Caller,
    /// A side the bridge rang: an agent, an extension or a trunk.
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegState {
    Calling,
    Ringing,
    Answered,
    Ended,
}

/// One SIP dialog of a call.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LiveLeg {
    pub role: LegRole,
    /// The leg's SIP Call-ID.
    pub call_id: String,
    /// The remote party's address (`ip:port`).
    pub peer: String,
    /// The extension number on this leg, when it is one of ours.
    pub extension: Option<String>,
    pub agent_id: Option<i64>,
    pub state: LegState,
}

/// A call in progress, as `GET /calls` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LiveCall {
    /// The call's id in the API: its attendance's protocol.
    pub id: String,
    pub protocol: String,
    pub direction: Direction,
    pub state: CallState,
    pub department_id: Option<i64>,
    /// The agent talking, once one answered.
    pub agent_id: Option<i64>,
    pub caller: String,
    pub callee: String,
    // Spelled out rather than `domain::Timestamp` (the same type) so the
    // OpenAPI derive sees a date-time and not an unknown schema.
    pub since: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub legs: Vec<LiveLeg>,
}

impl LiveCall {
    /// The agents and extensions this call keeps busy: those of its legs
    /// that have not ended.
    fn busy(&self) -> (Vec<i64>, Vec<String>) {
        let active = || self.legs.iter().filter(|l| l.state != LegState::Ended);
        (
            active().filter_map(|l| l.agent_id).collect(),
            active().filter_map(|l| l.extension.clone()).collect(),
        )
    }
}

struct Entry {
    call: LiveCall,
    control: mpsc::UnboundedSender<CallControl>,
    /// Insertion order, to list calls that started in the same instant in a
    /// stable order.
    seq: u64,
}

#[derive(Default)]
struct Table {
    calls: HashMap<String, Entry>,
    next_seq: u64,
    /// Agent → number of live legs it is on.
    agents: HashMap<i64, usize>,
    /// Extension number → number of live legs it is on.
    extensions: HashMap<String, usize>,
    /// Trunk → channels its calls hold (`max_channels`).
    trunk_channels: HashMap<i64, u32>,
}

fn count_in<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, keys: Vec<K>) {
    for k in keys {
        *map.entry(k).or_default() += 1;
    }
}

fn count_out<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, keys: Vec<K>) {
    for k in keys {
        if let Some(n) = map.get_mut(&k) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&k);
            }
        }
    }
}

impl Table {
    fn add_busy(&mut self, call: &LiveCall) {
        let (agents, extensions) = call.busy();
        count_in(&mut self.agents, agents);
        count_in(&mut self.extensions, extensions);
    }

    fn remove_busy(&mut self, call: &LiveCall) {
        let (agents, extensions) = call.busy();
        count_out(&mut self.agents, agents);
        count_out(&mut self.extensions, extensions);
    }

    fn publish_len(&self) {
        metrics::gauge!("pbx_calls_live").set(self.calls.len() as f64);
    }
}

/// The live calls of this node, keyed by protocol. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct LiveCalls(Arc<RwLock<Table>>);

impl LiveCalls {
    pub fn new() -> Self {
        Self::default()
    }

    // A panic elsewhere while holding the lock must not hide every call
    // from the API and the ring logic for the rest of the process' life:
    // the table is still consistent between operations, so use it.
    fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a new call with the channel its task listens on. A call
    /// with the same id is replaced (its task is expected to be gone).
    pub fn insert(&self, call: LiveCall, control: mpsc::UnboundedSender<CallControl>) {
        let mut t = self.write();
        if let Some(old) = t.calls.remove(&call.id) {
            tracing::warn!(protocol = %call.id, "live call replaced by a new one with the same id");
            t.remove_busy(&old.call);
        }
        t.add_busy(&call);
        let seq = t.next_seq;
        t.next_seq += 1;
        t.calls
            .insert(call.id.clone(), Entry { call, control, seq });
        t.publish_len();
    }

    /// Changes a call in place (no-op when it is not live). `f` runs under
    /// the table's lock: keep it to field assignments.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut LiveCall)) {
        let mut guard = self.write();
        let t = &mut *guard;
        let Some(entry) = t.calls.get_mut(id) else {
            return;
        };
        let (agents, extensions) = entry.call.busy();
        f(&mut entry.call);
        // The id is the key: a closure cannot move the call to another one.
        entry.call.id = id.to_owned();
        let (new_agents, new_extensions) = entry.call.busy();
        count_out(&mut t.agents, agents);
        count_out(&mut t.extensions, extensions);
        count_in(&mut t.agents, new_agents);
        count_in(&mut t.extensions, new_extensions);
    }

    /// Adds `leg` to call `id` unless its agent or extension is already on
    /// a live leg of any call: the check and the claim happen under one
    /// lock, so two calls ringing at once never both take the same free
    /// agent. False when busy (or the call is not live).
    pub fn claim(&self, id: &str, leg: LiveLeg) -> bool {
        let mut guard = self.write();
        let t = &mut *guard;
        let taken = leg.agent_id.is_some_and(|a| t.agents.contains_key(&a))
            || leg
                .extension
                .as_ref()
                .is_some_and(|e| t.extensions.contains_key(e));
        let Some(entry) = t.calls.get_mut(id) else {
            return false;
        };
        if taken {
            return false;
        }
        if leg.state != LegState::Ended {
            count_in(&mut t.agents, leg.agent_id.into_iter().collect());
            count_in(
                &mut t.extensions,
                leg.extension.clone().into_iter().collect(),
            );
        }
        entry.call.legs.push(leg);
        true
    }

    pub fn remove(&self, id: &str) {
        let mut t = self.write();
        if let Some(old) = t.calls.remove(id) {
            t.remove_busy(&old.call);
        }
        t.publish_len();
    }

    /// Every live call, oldest first.
    pub fn list(&self) -> Vec<LiveCall> {
        let t = self.read();
        let mut entries: Vec<&Entry> = t.calls.values().collect();
        entries.sort_by_key(|e| (e.call.since, e.seq));
        entries.into_iter().map(|e| e.call.clone()).collect()
    }

    pub fn get(&self, id: &str) -> Option<LiveCall> {
        self.read().calls.get(id).map(|e| e.call.clone())
    }

    /// The channel to the task of call `id`.
    pub fn control(&self, id: &str) -> Option<mpsc::UnboundedSender<CallControl>> {
        self.read().calls.get(id).map(|e| e.control.clone())
    }

    /// Agents with a leg not ended in any live call (ringing or talking):
    /// not available for a new call.
    pub fn busy_agents(&self) -> HashSet<i64> {
        self.read().agents.keys().copied().collect()
    }

    /// Extension numbers with a leg not ended in any live call.
    pub fn busy_extensions(&self) -> HashSet<String> {
        self.read().extensions.keys().cloned().collect()
    }

    /// Takes one of `trunk`'s channels unless `max` are held: check and
    /// take under one lock, so two calls arriving at once never both get
    /// the last one.
    pub fn take_trunk_channel(&self, trunk: i64, max: u32) -> bool {
        let mut t = self.write();
        let held = t.trunk_channels.entry(trunk).or_default();
        if *held >= max {
            return false;
        }
        *held += 1;
        true
    }

    /// Gives one of `trunk`'s channels back.
    pub fn release_trunk_channel(&self, trunk: i64) {
        let mut t = self.write();
        if let Some(held) = t.trunk_channels.get_mut(&trunk) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                t.trunk_channels.remove(&trunk);
            }
        }
    }

    /// Channels `trunk`'s calls hold now.
    pub fn trunk_channels(&self, trunk: i64) -> u32 {
        self.read().trunk_channels.get(&trunk).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.read().calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().calls.is_empty()
    }
}

#[cfg(test)]
mod tests;
