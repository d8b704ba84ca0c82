//! Placeholder of the live-call registry (replaced by the calls-api branch).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::domain::{Direction, Timestamp};

pub enum CallControl {
    HangUp,
    Transfer {
        target: String,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Ringing,
    Answered,
    Ending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegRole {
    Caller,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegState {
    Calling,
    Ringing,
    Answered,
    Ended,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveLeg {
    pub role: LegRole,
    pub call_id: String,
    pub peer: String,
    pub extension: Option<String>,
    pub agent_id: Option<i64>,
    pub state: LegState,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveCall {
    pub id: String,
    pub protocol: String,
    pub direction: Direction,
    pub state: CallState,
    pub department_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub caller: String,
    pub callee: String,
    pub since: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub legs: Vec<LiveLeg>,
}

type Entry = (LiveCall, UnboundedSender<CallControl>);

#[derive(Clone, Default)]
pub struct LiveCalls {
    inner: Arc<RwLock<HashMap<String, Entry>>>,
}

impl LiveCalls {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&self, call: LiveCall, control: UnboundedSender<CallControl>) {
        if let Ok(mut m) = self.inner.write() {
            m.insert(call.id.clone(), (call, control));
        }
    }
    pub fn update(&self, id: &str, f: impl FnOnce(&mut LiveCall)) {
        if let Ok(mut m) = self.inner.write()
            && let Some((c, _)) = m.get_mut(id)
        {
            f(c);
        }
    }
    pub fn remove(&self, id: &str) {
        if let Ok(mut m) = self.inner.write() {
            m.remove(id);
        }
    }
    pub fn list(&self) -> Vec<LiveCall> {
        let mut v: Vec<LiveCall> = self
            .inner
            .read()
            .map(|m| m.values().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default();
        v.sort_by_key(|c| c.since);
        v
    }
    pub fn get(&self, id: &str) -> Option<LiveCall> {
        self.inner.read().ok()?.get(id).map(|(c, _)| c.clone())
    }
    pub fn control(&self, id: &str) -> Option<UnboundedSender<CallControl>> {
        self.inner.read().ok()?.get(id).map(|(_, t)| t.clone())
    }
    pub fn busy_agents(&self) -> HashSet<i64> {
        self.legs(|l| l.agent_id)
    }
    pub fn busy_extensions(&self) -> HashSet<String> {
        self.legs(|l| l.extension.clone())
    }
    fn legs<T: std::hash::Hash + Eq>(&self, f: impl Fn(&LiveLeg) -> Option<T>) -> HashSet<T> {
        self.inner
            .read()
            .map(|m| {
                m.values()
                    .flat_map(|(c, _)| c.legs.iter())
                    .filter(|l| l.state != LegState::Ended)
                    .filter_map(&f)
                    .collect()
            })
            .unwrap_or_default()
    }
    pub fn len(&self) -> usize {
        self.inner.read().map(|m| m.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
