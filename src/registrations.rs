//! The registrar's bindings and lockouts as a shared, in-memory view: the
//! registrar (`crate::signalling`) publishes into it, the API shows it and
//! the calls read where an extension is registered. Neutral ground, so
//! neither side imports the other.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::domain::{Registration, Registrations};

/// The registrar's bindings and lockouts as the API and the calls see
/// them. Cheap to clone; clones share the same view.
#[derive(Debug, Clone, Default)]
pub struct RegistrationsView(Arc<RwLock<Registrations>>);

impl RegistrationsView {
    /// A copy of the whole view.
    pub fn snapshot(&self) -> Registrations {
        self.0.read().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn update(&self, f: impl FnOnce(&mut Registrations)) {
        if let Ok(mut r) = self.0.write() {
            f(&mut r);
        }
    }

    /// Where extension `number` is registered (its bindings).
    pub fn bindings_of(&self, number: &str) -> Vec<Registration> {
        self.0
            .read()
            .map(|r| {
                r.items
                    .iter()
                    .filter(|b| b.extension == number)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The extensions registered now.
    pub fn registered_extensions(&self) -> HashSet<String> {
        self.0
            .read()
            .map(|r| r.items.iter().map(|b| b.extension.clone()).collect())
            .unwrap_or_default()
    }
}
