//! The numbering plan's change signal: a generation the API bumps after
//! every write to extensions, agents, departments, periods, holidays,
//! trunks or outbound routes (and the calls after pausing an agent), so
//! the call engine and the AMI client re-read the plan at once instead of
//! at their next periodic refresh. Cheap to clone; clones share the same generation.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct PlanChanges(Arc<watch::Sender<u64>>);

impl Default for PlanChanges {
    fn default() -> Self {
        Self::new()
    }
}

impl PlanChanges {
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    /// The numbering plan changed in the database (after the write).
    pub fn changed(&self) {
        self.0.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Wakes (`changed()`) after every [`PlanChanges::changed`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    /// The plan generation now (see [`PlanChanges::changed`]).
    pub fn generation(&self) -> u64 {
        *self.0.borrow()
    }
}
