//! The endpoint's side of the B2BUA: which call owns which Call-ID and
//! client transaction, starting a task per new call, and the state calls
//! share (the plan, ports, missed-call counts, idle times).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::call;
use super::plan::CallPlan;
use super::signal::{CallInput, Command, Outbox};
use crate::app::App;
use crate::domain::{Id, Timestamp};
use crate::media::ports::PortPool;
use crate::routing::MissedCalls;
use crate::sip::dialog::LocalParty;
use crate::sip::message::SipMessage;
use crate::sip::transaction::{TransactionKey, Transport};
use crate::store::StoreError;

/// How long a plan read from the database is trusted without a change
/// signal (changes made by other nodes).
const PLAN_MAX_AGE: Duration = Duration::from_secs(5);

/// A new INVITE (no To tag) that starts a call.
#[derive(Debug)]
pub struct IncomingCall {
    pub key: TransactionKey,
    pub invite: SipMessage,
    pub source: SocketAddr,
    pub transport: Transport,
    /// The extension that authenticated (digest), or `None` for a caller
    /// known only by address (a trunk).
    pub extension: Option<String>,
    /// When the INVITE arrived (setup latency is measured from here).
    pub received: Instant,
}

/// What every call task shares.
pub(super) struct Services {
    pub app: App,
    pub ports: PortPool,
    udp: LocalParty,
    tcp: LocalParty,
    plan: tokio::sync::Mutex<(Arc<CallPlan>, Option<Instant>)>,
    pub missed: Mutex<MissedCalls>,
    pub idle_since: Mutex<HashMap<Id, Timestamp>>,
}

impl Services {
    pub fn local(&self, transport: Transport) -> &LocalParty {
        match transport {
            Transport::Tcp => &self.tcp,
            _ => &self.udp,
        }
    }

    /// The current plan, re-read when the API changed it or it is old.
    pub async fn plan(&self) -> Result<Arc<CallPlan>, StoreError> {
        let generation = self.app.numbering_plan_generation();
        let mut cached = self.plan.lock().await;
        let fresh = cached
            .1
            .is_some_and(|at| at.elapsed() < PLAN_MAX_AGE && cached.0.generation == generation);
        if !fresh {
            let plan = CallPlan::load(self.app.store(), generation).await?;
            *cached = (Arc::new(plan), Some(Instant::now()));
        }
        Ok(cached.0.clone())
    }

    pub fn idle_times(&self) -> HashMap<Id, Timestamp> {
        self.idle_since
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

/// Routes the SIP endpoint's messages to call tasks.
pub struct CallEngine {
    services: Arc<Services>,
    commands: UnboundedSender<(u64, Command)>,
    calls: HashMap<u64, Route>,
    by_call_id: HashMap<String, u64>,
    by_transaction: HashMap<TransactionKey, u64>,
    next_id: u64,
}

struct Route {
    input: UnboundedSender<CallInput>,
    call_ids: Vec<String>,
    /// The client transactions it started (some may be gone already), so
    /// forgetting a call never scans every transaction of the endpoint.
    transactions: Vec<TransactionKey>,
}

impl CallEngine {
    /// `udp`/`tcp`: how the bridge names itself on each transport (Via,
    /// Contact). The receiver carries the calls' commands to the endpoint.
    pub fn new(
        app: App,
        ports: PortPool,
        udp: LocalParty,
        tcp: LocalParty,
    ) -> (CallEngine, UnboundedReceiver<(u64, Command)>) {
        let (commands, rx) = mpsc::unbounded_channel();
        let services = Arc::new(Services {
            app,
            ports,
            udp,
            tcp,
            plan: tokio::sync::Mutex::new((Arc::new(CallPlan::default()), None)),
            missed: Mutex::new(MissedCalls::new()),
            idle_since: Mutex::new(HashMap::new()),
        });
        let engine = CallEngine {
            services,
            commands,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            by_transaction: HashMap::new(),
            next_id: 0,
        };
        (engine, rx)
    }

    /// Whether `call_id` belongs to a live call.
    pub fn owns(&self, call_id: &str) -> bool {
        self.by_call_id.contains_key(call_id)
    }

    /// Hands a message to the call owning `call_id`; false when none does.
    pub fn deliver(&mut self, call_id: &str, input: CallInput) -> bool {
        let Some(id) = self.by_call_id.get(call_id).copied() else {
            return false;
        };
        self.send(id, input)
    }

    /// Hands a transaction failure to the call that sent the request.
    pub fn transaction_failed(&mut self, key: &TransactionKey) {
        if let Some(id) = self.by_transaction.remove(key) {
            self.send(id, CallInput::TransactionFailed { key: key.clone() });
        }
    }

    pub fn transaction_ended(&mut self, key: &TransactionKey) {
        self.by_transaction.remove(key);
    }

    fn send(&mut self, id: u64, input: CallInput) -> bool {
        match self.calls.get(&id) {
            Some(route) if route.input.send(input).is_ok() => true,
            _ => {
                self.forget(id);
                false
            }
        }
    }

    /// Starts the task of a new call.
    pub fn start(&mut self, incoming: IncomingCall) {
        let Ok(call_id) = incoming.invite.call_id().map(str::to_owned) else {
            return;
        };
        self.next_id += 1;
        let id = self.next_id;
        let (tx, rx) = mpsc::unbounded_channel();
        self.calls.insert(
            id,
            Route {
                input: tx,
                call_ids: vec![call_id.clone()],
                transactions: Vec::new(),
            },
        );
        self.by_call_id.insert(call_id, id);
        let outbox = Outbox::new(id, self.commands.clone());
        tokio::spawn(call::run(self.services.clone(), outbox, rx, incoming));
    }

    /// Records what a call's command means for routing: a request's
    /// Call-ID and client transaction now lead to the call; `Ended` forgets
    /// the call.
    pub fn note_request(&mut self, id: u64, call_id: &str, key: TransactionKey) {
        if let Some(route) = self.calls.get_mut(&id) {
            if !route.call_ids.iter().any(|c| c == call_id) {
                route.call_ids.push(call_id.to_owned());
                self.by_call_id.insert(call_id.to_owned(), id);
            }
            route.transactions.push(key.clone());
            self.by_transaction.insert(key, id);
        }
    }

    pub fn forget(&mut self, id: u64) {
        if let Some(route) = self.calls.remove(&id) {
            for c in route.call_ids {
                if self.by_call_id.get(&c) == Some(&id) {
                    self.by_call_id.remove(&c);
                }
            }
            for k in route.transactions {
                if self.by_transaction.get(&k) == Some(&id) {
                    self.by_transaction.remove(&k);
                }
            }
        }
    }

    pub fn live(&self) -> usize {
        self.calls.len()
    }
}
