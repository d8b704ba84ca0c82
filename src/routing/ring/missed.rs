//! `auto_pause_after_missed`: consecutive missed calls per agent and
//! department, kept across calls.

use std::collections::HashMap;

use crate::domain::Id;

/// Counts, for each agent and department, the department's calls in a row
/// the agent let ring out. It outlives rings: one per process (or per node),
/// shared by every ring through [`super::Ring::drain`].
///
/// - a ring-out ([`super::Output::RangOut`]) adds one; reaching the
///   department's `auto_pause_after_missed` pauses the agent and starts the
///   count again;
/// - an answered call (any department) resets all the agent's counts: the
///   agent is at the desk, and a pause stops every department's calls;
/// - a call that another agent answered, that the caller abandoned, or that
///   the agent declined or was busy for neither counts nor resets;
/// - the driver calls [`MissedCalls::reset`] when a pause ends.
#[derive(Debug, Clone, Default)]
pub struct MissedCalls {
    counts: HashMap<(Id, Id), u32>,
}

impl MissedCalls {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a ring-out; `true` when the agent must now be paused.
    pub fn missed(&mut self, agent: Id, department: Id, threshold: Option<u32>) -> bool {
        let Some(n) = threshold.filter(|n| *n > 0) else {
            return false;
        };
        let count = self.counts.entry((agent, department)).or_default();
        *count += 1;
        if *count >= n {
            self.counts.remove(&(agent, department));
            true
        } else {
            false
        }
    }

    /// The agent answered a call.
    pub fn answered(&mut self, agent: Id) {
        self.reset(agent);
    }

    /// Forget the agent's counts (its pause ended, or it was edited).
    pub fn reset(&mut self, agent: Id) {
        self.counts.retain(|(a, _), _| *a != agent);
    }

    /// Consecutive misses of `department`'s calls by `agent`.
    pub fn count(&self, agent: Id, department: Id) -> u32 {
        self.counts.get(&(agent, department)).copied().unwrap_or(0)
    }
}
