//! The bridge's registrations to its trunks as a shared, in-memory view:
//! signalling (`crate::signalling::trunks`) publishes each trunk's state,
//! the API shows it. Neutral ground, so neither side imports the other.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::{Id, TrunkRegistration};

/// Cheap to clone; clones share the same view. A trunk absent from it
/// does not register (`disabled`).
#[derive(Debug, Clone, Default)]
pub struct TrunkRegistrationsView(Arc<RwLock<HashMap<Id, TrunkRegistration>>>);

impl TrunkRegistrationsView {
    /// Trunk `id`'s registration (`disabled` when it does not register).
    pub fn get(&self, id: Id) -> TrunkRegistration {
        self.0
            .read()
            .ok()
            .and_then(|m| m.get(&id).cloned())
            .unwrap_or_else(|| TrunkRegistration::disabled(id))
    }

    pub fn set(&self, registration: TrunkRegistration) {
        if let Ok(mut m) = self.0.write() {
            m.insert(registration.trunk_id, registration);
        }
    }

    /// Trunk `id` no longer registers.
    pub fn remove(&self, id: Id) {
        if let Ok(mut m) = self.0.write() {
            m.remove(&id);
        }
    }
}
