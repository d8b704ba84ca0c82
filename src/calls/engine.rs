//! Signalling's side of the B2BUA: which call owns which Call-ID and
//! client transaction, and starting a task per new call.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::call::IncomingCall;
use super::originations::Originate;
use super::services::{CallHandles, Services};
use super::signal::{CallInput, Command, Outbox};
use super::task;
use crate::media::ports::PortPool;
use crate::sip::dialog::LocalParty;
use crate::sip::transaction::TransactionKey;

/// Routes signalling's messages to call tasks.
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
    /// forgetting a call never scans every transaction of signalling.
    transactions: Vec<TransactionKey>,
}

impl CallEngine {
    /// `udp`/`tcp`: how the bridge names itself on each transport (Via,
    /// Contact). The receiver carries the calls' commands to signalling.
    /// `handles`: what the calls share with the rest of the service.
    pub fn new(
        handles: CallHandles,
        ports: PortPool,
        udp: LocalParty,
        tcp: LocalParty,
    ) -> (CallEngine, UnboundedReceiver<(u64, Command)>) {
        let (commands, rx) = mpsc::unbounded_channel();
        let services = Arc::new(Services::new(handles, ports, udp, tcp));
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
        self.spawn(Some(call_id), task::Start::Incoming(Box::new(incoming)));
    }

    /// Starts a click-to-call: its Call-ID leads to it from its first
    /// INVITE on ([`CallEngine::note_request`]).
    pub fn originate(&mut self, request: Originate) {
        self.spawn(None, task::Start::Originate(request));
    }

    fn spawn(&mut self, call_id: Option<String>, start: task::Start) {
        self.next_id += 1;
        let id = self.next_id;
        let (tx, rx) = mpsc::unbounded_channel();
        self.calls.insert(
            id,
            Route {
                input: tx,
                call_ids: call_id.iter().cloned().collect(),
                transactions: Vec::new(),
            },
        );
        if let Some(call_id) = call_id {
            self.by_call_id.insert(call_id, id);
        }
        let outbox = Outbox::new(id, self.commands.clone());
        tokio::spawn(task::run(self.services.clone(), outbox, rx, start));
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
