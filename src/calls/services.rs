//! What every call task of the node shares: the numbering plan kept in
//! memory, RTP ports, how the bridge names itself, missed-call counts and
//! agents' idle times, and the handles the service gives the calls
//! ([`CallHandles`]: live-call table, traces, registrations, ledger…).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::net::IpAddr;
use std::path::PathBuf;

use super::live::LiveCalls;
use super::plan::CallPlan;
use super::trace::SipTraces;
use crate::domain::{Id, Timestamp};
use crate::ledger::Ledger;
use crate::media::ports::PortPool;
use crate::pbx_peer::PbxPeer;
use crate::plan_changes::PlanChanges;
use crate::registrations::RegistrationsView;
use crate::routing::MissedCalls;
use crate::sip::dialog::LocalParty;
use crate::sip::transaction::Transport;
use crate::store::Store;

/// What the call engine needs from the rest of the service, and nothing
/// more. Every handle is cheap to clone and shared with its owner.
#[derive(Clone)]
pub struct CallHandles {
    /// Only for the plan keeper's background reads and auto-pauses: a
    /// call never waits on the database but for its attendance insert
    /// (through the ledger).
    pub store: Store,
    /// Where calls open and change their attendances.
    pub ledger: Ledger,
    /// The calls in progress on this node (the API shows and controls them).
    pub live_calls: LiveCalls,
    /// The SIP messages of live and recently ended calls.
    pub traces: SipTraces,
    /// Where extensions are registered (the registrar publishes it).
    pub registrations: RegistrationsView,
    /// The numbering plan's generation: read before a call, bumped after
    /// an auto-pause.
    pub plan_changes: PlanChanges,
    /// Where the PBX's SIP side is: set from the plan (signalling trusts
    /// INVITEs from there).
    pub pbx_peer: crate::pbx_peer::PbxPeer,
    /// How extensions stand on Asterisk (the AMI client publishes it):
    /// agents not registered here are rung through the PBX when free there.
    pub pbx_presence: crate::pbx_presence::PbxPresence,
    pub settings: CallSettings,
}

/// The settings calls read.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// This bridge among those sharing one database.
    pub node_id: String,
    /// Where the bridge's RTP sockets bind and what its SDP advertises.
    pub media_address: IpAddr,
    /// No RTP this long ends the call.
    pub rtp_timeout: Duration,
    /// The root of the recordings.
    pub recordings_dir: PathBuf,
}

/// How long a plan read from the database is trusted without a change
/// signal (changes made by other nodes).
const PLAN_MAX_AGE: Duration = Duration::from_secs(5);
/// How long a new call waits for a plan change made just before it (an
/// API write bumps the generation, the keeper re-reads at once). Bounded:
/// a stalled database never holds a call longer than this.
const PLAN_CATCH_UP: Duration = Duration::from_millis(250);

/// The numbering plan in memory, re-read in the background: calls read a
/// snapshot, never under a lock held across a database read.
pub(super) struct PlanKeeper {
    current: std::sync::RwLock<Arc<CallPlan>>,
    loaded: tokio::sync::watch::Sender<u64>,
}

impl PlanKeeper {
    /// Starts the keeper (its first read happens at once).
    pub fn start(store: Store, changes: PlanChanges, pbx_peer: PbxPeer) -> Arc<PlanKeeper> {
        let keeper = Arc::new(PlanKeeper {
            current: std::sync::RwLock::new(Arc::new(CallPlan::default())),
            loaded: tokio::sync::watch::Sender::new(0),
        });
        tokio::spawn(keeper.clone().keep(store, changes, pbx_peer));
        keeper
    }

    pub fn current(&self) -> Arc<CallPlan> {
        self.current
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The plan once it is at least of `generation` (or the catch-up time
    /// is over: then the one there is).
    pub async fn at_least(&self, generation: u64) -> Arc<CallPlan> {
        let mut rx = self.loaded.subscribe();
        let _ = tokio::time::timeout(PLAN_CATCH_UP, rx.wait_for(|g| *g >= generation)).await;
        self.current()
    }

    /// Re-reads the plan whenever the API changes it, and every few
    /// seconds (other nodes' changes). A failed read keeps the old plan.
    async fn keep(self: Arc<Self>, store: Store, changes: PlanChanges, pbx_peer: PbxPeer) {
        let mut changed = changes.subscribe();
        let mut failing = false;
        let mut pbx_unresolved = false;
        loop {
            changed.mark_unchanged();
            let generation = changes.generation();
            match CallPlan::load(&store, generation).await {
                Ok(plan) => {
                    if failing {
                        tracing::info!("call plan read again from the database");
                        failing = false;
                    }
                    pbx_peer.set(match plan.pbx() {
                        Some(pbx) => match crate::sip::transport::resolve(&pbx.sip_host, pbx.sip_port).await {
                            Ok(addr) => {
                                pbx_unresolved = false;
                                Some(addr)
                            }
                            Err(e) => {
                                // Said once when it stops resolving, not every read.
                                if !pbx_unresolved {
                                    tracing::warn!(host = %pbx.sip_host, error = %e, "cannot resolve pbx.sip_host; calls from the PBX are not recognised");
                                }
                                pbx_unresolved = true;
                                None
                            }
                        },
                        None => None,
                    });
                    if let Ok(mut p) = self.current.write() {
                        *p = Arc::new(plan);
                    }
                    self.loaded.send_replace(generation);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot read the call plan; calls use the last one");
                        failing = true;
                    }
                }
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(PLAN_MAX_AGE) => {}
            }
        }
    }
}

/// What every call task shares.
pub(super) struct Services {
    pub handles: CallHandles,
    pub ports: PortPool,
    udp: LocalParty,
    tcp: LocalParty,
    pub plan: Arc<PlanKeeper>,
    pub missed: Mutex<MissedCalls>,
    pub idle_since: Mutex<HashMap<Id, Timestamp>>,
}

impl Services {
    pub fn new(
        handles: CallHandles,
        ports: PortPool,
        udp: LocalParty,
        tcp: LocalParty,
    ) -> Services {
        Services {
            plan: PlanKeeper::start(
                handles.store.clone(),
                handles.plan_changes.clone(),
                handles.pbx_peer.clone(),
            ),
            handles,
            ports,
            udp,
            tcp,
            missed: Mutex::new(MissedCalls::new()),
            idle_since: Mutex::new(HashMap::new()),
        }
    }

    pub fn local(&self, transport: Transport) -> &LocalParty {
        match transport {
            Transport::Tcp => &self.tcp,
            _ => &self.udp,
        }
    }

    pub fn idle_times(&self) -> HashMap<Id, Timestamp> {
        self.idle_since
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}
