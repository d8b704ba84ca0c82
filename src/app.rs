//! The running service's shared state: what the API, and later the SIP and
//! AMI tasks, all need. Cheap to clone.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::RwLock;

use crate::config::Settings;
use crate::domain::{AclAction, AclApplies, AclRule};
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    store: Store,
    settings: Settings,
    /// The ACL, cached: it is read on every packet and request, written
    /// rarely; reloaded on every change and periodically (other nodes).
    acl: RwLock<Vec<AclRule>>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    draining: AtomicBool,
    sip_bound: AtomicBool,
}

impl App {
    pub fn new(
        store: Store,
        settings: Settings,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            settings,
            acl: RwLock::new(Vec::new()),
            metrics,
            draining: AtomicBool::new(false),
            sip_bound: AtomicBool::new(false),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn metrics(&self) -> Option<&metrics_exporter_prometheus::PrometheusHandle> {
        self.0.metrics.as_ref()
    }

    /// Re-reads the ACL from the database.
    pub async fn reload_acl(&self) -> Result<(), StoreError> {
        let rules = self.0.store.all_acl_rules().await?;
        *self.0.acl.write().await = rules;
        Ok(())
    }

    /// The ACL's decision for traffic of kind `what` from `addr`.
    pub async fn acl_allows(&self, addr: IpAddr, what: AclApplies) -> bool {
        AclRule::decide(self.0.acl.read().await.iter(), addr, what) == AclAction::Allow
    }

    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }

    pub fn set_sip_bound(&self, bound: bool) {
        self.0.sip_bound.store(bound, Ordering::SeqCst);
    }

    pub fn sip_bound(&self) -> bool {
        self.0.sip_bound.load(Ordering::SeqCst)
    }
}
