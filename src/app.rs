//! The admin API's state (its axum state): the store, settings, ACL,
//! metrics, draining flag, registrations view, credentials, AMI handle,
//! numbering-plan changes, live calls, SIP traces and ledger. Cheap to clone.
//!
//! Only the API (and start-up in `crate::service`) uses it. The SIP
//! stack, signalling, the call engine and the AMI client take narrow
//! handles instead (`crate::signalling::Handles`,
//! [`crate::calls::CallHandles`], [`crate::ami::AmiHandles`]), which
//! `crate::service` builds from the same shared parts this holds.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use crate::ami::AmiHandle;
use crate::calls::{LiveCalls, Originations, SipTraces};
use crate::config::Settings;
use crate::domain::{AclAction, AclApplies, AclRule, Registrations};
use crate::ledger::Ledger;
use crate::pbx_presence::PbxPresence;
use crate::plan_changes::PlanChanges;
use crate::registrations::RegistrationsView;
use crate::signalling::drain::DrainFlag;
use crate::signalling::registry::Credentials;
use crate::sip::registrar::Credential;
use crate::store::{Store, StoreError};
use crate::trunk_registrations::TrunkRegistrationsView;

/// The API's state, assembled from the same handles the other layers are
/// given one by one (see the module documentation). Not to be passed to
/// anything but the API: give a layer the handles it needs instead.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    store: Store,
    /// The node's attendance ledger: opens and changes of calls, durable on
    /// the node first, applied to the database in the background.
    ledger: Ledger,
    settings: Settings,
    /// The ACL, cached: it is read on every packet and request, written
    /// rarely; reloaded on every change and periodically (other nodes).
    acl: RwLock<Vec<AclRule>>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    draining: DrainFlag,
    /// Where SIP listens, once bound.
    sip_addr: RwLock<Option<SocketAddr>>,
    /// The registrar's bindings and lockouts, as the API shows them.
    registrations: RegistrationsView,
    /// The extensions' SIP credentials, in memory so a REGISTER never waits
    /// on the database; reloaded by every API change (before it answers)
    /// and periodically (other nodes).
    credentials: Credentials,
    /// The AMI client's status and action channel.
    ami: AmiHandle,
    /// Generation of the numbering plan (extensions, agents, departments,
    /// trunks), bumped by every API change so the call engines re-read it
    /// at once instead of at their next periodic refresh.
    numbering_plan: PlanChanges,
    /// The calls in progress on this node.
    calls: LiveCalls,
    /// The SIP messages of live and recently ended calls.
    traces: SipTraces,
    /// The bridge's registrations to its trunks, published by signalling.
    trunk_registrations: TrunkRegistrationsView,
    /// The extensions' presence on Asterisk, published by the AMI client.
    pbx_presence: PbxPresence,
    /// Click-to-calls for the call engine (through signalling).
    originations: Originations,
}

/// SIP messages kept per call (the first and last half).
const TRACE_MESSAGES_PER_CALL: usize = 500;
/// Ended calls whose SIP trace is kept.
const TRACE_ENDED_CALLS: usize = 10_000;
/// How long an ended call's SIP trace is kept.
const TRACE_KEEP_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

impl App {
    pub fn new(
        store: Store,
        ledger: Ledger,
        settings: Settings,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            ledger,
            settings,
            acl: RwLock::new(Vec::new()),
            metrics,
            draining: DrainFlag::default(),
            sip_addr: RwLock::new(None),
            registrations: RegistrationsView::default(),
            credentials: Credentials::default(),
            ami: AmiHandle::new(),
            numbering_plan: PlanChanges::new(),
            calls: LiveCalls::new(),
            traces: SipTraces::new(TRACE_MESSAGES_PER_CALL, TRACE_ENDED_CALLS, TRACE_KEEP_FOR),
            trunk_registrations: TrunkRegistrationsView::default(),
            pbx_presence: PbxPresence::default(),
            originations: Originations::default(),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn ledger(&self) -> &Ledger {
        &self.0.ledger
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
        if let Ok(mut acl) = self.0.acl.write() {
            *acl = rules;
        }
        Ok(())
    }

    /// The ACL's decision for traffic of kind `what` from `addr`. Cheap
    /// enough for every SIP packet: a read lock and a short scan.
    pub fn acl_allows(&self, addr: IpAddr, what: AclApplies) -> bool {
        match self.0.acl.read() {
            Ok(rules) => AclRule::decide(rules.iter(), addr, what) == AclAction::Allow,
            Err(_) => false,
        }
    }

    pub fn start_draining(&self) {
        self.0.draining.start();
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.is_draining()
    }

    /// The draining flag itself, for the layers that only need it.
    pub fn drain_flag(&self) -> &DrainFlag {
        &self.0.draining
    }

    pub fn set_sip_addr(&self, addr: Option<SocketAddr>) {
        if let Ok(mut a) = self.0.sip_addr.write() {
            *a = addr;
        }
    }

    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.0.sip_addr.read().ok().and_then(|a| *a)
    }

    pub fn sip_bound(&self) -> bool {
        self.sip_addr().is_some()
    }

    pub fn registrations(&self) -> Registrations {
        self.0.registrations.snapshot()
    }

    /// Where the registrar publishes its bindings and lockouts.
    pub fn registrations_view(&self) -> &RegistrationsView {
        &self.0.registrations
    }

    pub fn update_registrations(&self, f: impl FnOnce(&mut Registrations)) {
        self.0.registrations.update(f);
    }

    /// Re-reads every extension's credentials from the database.
    pub async fn reload_credentials(&self) -> Result<(), StoreError> {
        self.0.credentials.reload(&self.0.store).await
    }

    /// The in-memory extension credentials (see [`Credentials`]).
    pub fn credentials(&self) -> &Credentials {
        &self.0.credentials
    }

    /// The credentials of extension `number`, if it exists.
    pub fn credential(&self, number: &str) -> Option<Credential> {
        self.0.credentials.get(number)
    }

    /// The numbering plan changed in the database (after the write).
    pub fn numbering_plan_changed(&self) {
        self.0.numbering_plan.changed();
    }

    /// Wakes (`changed()`) after every [`App::numbering_plan_changed`].
    pub fn numbering_plan_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.numbering_plan.subscribe()
    }

    /// The numbering plan's change handle itself, for the layers that
    /// only need it (calls, AMI).
    pub fn plan_changes(&self) -> &PlanChanges {
        &self.0.numbering_plan
    }

    /// The plan generation now (see [`App::numbering_plan_changed`]).
    pub fn numbering_plan_generation(&self) -> u64 {
        self.0.numbering_plan.generation()
    }

    /// Where extension `number` is registered (its bindings), for calls.
    pub fn bindings_of(&self, number: &str) -> Vec<crate::domain::Registration> {
        self.0.registrations.bindings_of(number)
    }

    /// The extensions registered now (agent presence).
    pub fn registered_extensions(&self) -> std::collections::HashSet<String> {
        self.0.registrations.registered_extensions()
    }

    /// The AMI client: its status and the actions it can send.
    pub fn ami(&self) -> &AmiHandle {
        &self.0.ami
    }

    /// The calls in progress on this node.
    pub fn calls(&self) -> &LiveCalls {
        &self.0.calls
    }

    /// Where click-to-calls of extensions on the bridge are placed.
    pub fn originations(&self) -> &Originations {
        &self.0.originations
    }

    /// The per-call SIP traces.
    pub fn traces(&self) -> &SipTraces {
        &self.0.traces
    }

    /// The bridge's registrations to its trunks (states by trunk).
    pub fn trunk_registrations(&self) -> &TrunkRegistrationsView {
        &self.0.trunk_registrations
    }

    /// The extensions' presence on Asterisk (from AMI).
    pub fn pbx_presence(&self) -> &PbxPresence {
        &self.0.pbx_presence
    }
}
