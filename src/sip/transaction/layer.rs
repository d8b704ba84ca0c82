//! The transaction layer: every live transaction, the matching of inbound
//! messages to them (§17.1.3, §17.2.3), one timer queue, and the output
//! queue the driver drains.
//!
//! Sans-IO: inputs are method calls carrying `now`; outputs accumulate in a
//! queue (`take_outputs`); `next_deadline` says when to call `on_tick`.
//! Memory is bounded: at most `max_transactions` live at once (new inbound
//! requests beyond that get a stateless 503, new outbound ones an error),
//! terminated transactions are removed at once, and the timer heap is
//! compacted when stale entries pile up.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::client_invite::InviteClient;
use super::client_non_invite::NonInviteClient;
use super::error::TransactionError;
use super::key::{Role, TransactionKey};
use super::message::{Method, SipMessage, response_to};
use super::output::{Output, Sink, TuEvent};
use super::server_invite::{AckOutcome, InviteServer};
use super::server_non_invite::NonInviteServer;
use super::state::TransactionState;
use super::timers::TimerConfig;
use super::transport::Transport;

/// Settings of a `TransactionLayer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerConfig {
    pub timers: TimerConfig,
    /// Upper bound on live transactions (client and server together).
    pub max_transactions: usize,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            timers: TimerConfig::default(),
            max_transactions: 65_536,
        }
    }
}

#[derive(Debug, Clone)]
enum Machine {
    InviteClient(InviteClient),
    NonInviteClient(NonInviteClient),
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
}

impl Machine {
    fn state(&self) -> TransactionState {
        match self {
            Machine::InviteClient(m) => m.state(),
            Machine::NonInviteClient(m) => m.state(),
            Machine::InviteServer(m) => m.state(),
            Machine::NonInviteServer(m) => m.state(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self {
            Machine::InviteClient(m) => m.next_deadline(),
            Machine::NonInviteClient(m) => m.next_deadline(),
            Machine::InviteServer(m) => m.next_deadline(),
            Machine::NonInviteServer(m) => m.next_deadline(),
        }
    }

    fn on_tick(&mut self, now: Instant, sink: &mut Sink<'_>) {
        match self {
            Machine::InviteClient(m) => m.on_tick(now, sink),
            Machine::NonInviteClient(m) => m.on_tick(now, sink),
            Machine::InviteServer(m) => m.on_tick(now, sink),
            Machine::NonInviteServer(m) => m.on_tick(now, sink),
        }
    }

    fn on_transport_error(&mut self, sink: &mut Sink<'_>) {
        match self {
            Machine::InviteClient(m) => m.on_transport_error(sink),
            Machine::NonInviteClient(m) => m.on_transport_error(sink),
            Machine::InviteServer(m) => m.on_transport_error(sink),
            Machine::NonInviteServer(m) => m.on_transport_error(sink),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key: TransactionKey,
    peer: SocketAddr,
    transport: Transport,
    machine: Machine,
    /// The deadline this entry has in the heap (others there are stale).
    scheduled: Option<Instant>,
}

/// All transactions of one SIP endpoint.
#[derive(Debug)]
pub struct TransactionLayer {
    config: LayerConfig,
    ids: HashMap<TransactionKey, u64>,
    entries: HashMap<u64, Entry>,
    next_id: u64,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    out: Vec<Output>,
}

impl Default for TransactionLayer {
    fn default() -> Self {
        TransactionLayer::new(LayerConfig::default())
    }
}

impl TransactionLayer {
    pub fn new(config: LayerConfig) -> TransactionLayer {
        TransactionLayer {
            config,
            ids: HashMap::new(),
            entries: HashMap::new(),
            next_id: 0,
            heap: BinaryHeap::new(),
            out: Vec::new(),
        }
    }

    pub fn config(&self) -> &LayerConfig {
        &self.config
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The state of a live transaction.
    pub fn state(&self, key: &TransactionKey) -> Option<TransactionState> {
        let id = self.ids.get(key)?;
        self.entries.get(id).map(|e| e.machine.state())
    }

    /// The keys of every live transaction (for diagnostics).
    pub fn keys(&self) -> impl Iterator<Item = &TransactionKey> {
        self.ids.keys()
    }

    /// Everything queued since the last call, in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// When `on_tick` must next be called; `None` when no timer runs.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Queues bytes that belong to no transaction: the TU's ACK for a 2xx
    /// (§13.2.2.4) or a stateless response.
    pub fn transmit_stateless(
        &mut self,
        bytes: Bytes,
        destination: SocketAddr,
        transport: Transport,
    ) {
        self.out.push(Output::Transmit {
            bytes,
            destination,
            transport,
        });
    }

    // ----- inputs from the network ----------------------------------------

    /// A request arrived from `source` over `transport` (already through
    /// the message layer's inbound checks).  Retransmissions are absorbed,
    /// ACKs for non-2xx finals complete their INVITE transaction, other
    /// ACKs go to the TU, and anything new creates a server transaction and
    /// reaches the TU as `TuEvent::Request`.  Requests too broken to key
    /// are dropped: they cannot even be answered.
    pub fn on_request(
        &mut self,
        request: SipMessage,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let Ok(key) = TransactionKey::server(&request) else {
            return;
        };
        let is_ack = request.method() == Some(&Method::Ack);
        let found = self.ids.get(&key).copied();
        match (is_ack, found) {
            (true, Some(id)) => {
                let outcome = self.drive(id, now, |m, sink| match m {
                    Machine::InviteServer(s) => s.on_ack(now, sink),
                    _ => AckOutcome::Absorbed,
                });
                if outcome == Some(AckOutcome::ForTu) {
                    self.out.push(Output::ToTu(TuEvent::Ack {
                        request,
                        source,
                        transport,
                        key: Some(key),
                    }));
                }
            }
            (true, None) => self.out.push(Output::ToTu(TuEvent::Ack {
                request,
                source,
                transport,
                key: None,
            })),
            (false, Some(id)) => {
                self.drive(id, now, |m, sink| match m {
                    Machine::InviteServer(s) => s.on_retransmission(sink),
                    Machine::NonInviteServer(s) => s.on_retransmission(sink),
                    _ => {}
                });
            }
            (false, None) => self.new_server(key, request, source, transport, now),
        }
        self.prune_heap();
    }

    fn new_server(
        &mut self,
        key: TransactionKey,
        request: SipMessage,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        if self.entries.len() >= self.config.max_transactions {
            // Overload: answer statelessly so the client backs off (§21.5.4).
            if let Ok(b) = response_to(&request, 503, None)
                && let Ok(bytes) = b.to_tag("txl-overload").header("Retry-After", 5).to_bytes()
            {
                self.transmit_stateless(bytes, source, transport);
            }
            return;
        }
        let cancels = key.cancel_target().filter(|k| self.ids.contains_key(k));
        let machine = if key.is_invite() {
            Machine::InviteServer(InviteServer::start(
                request.clone(),
                self.config.timers,
                now,
            ))
        } else {
            Machine::NonInviteServer(NonInviteServer::start(self.config.timers, now))
        };
        self.out.push(Output::ToTu(TuEvent::Request {
            key: key.clone(),
            request,
            source,
            transport,
            cancels,
        }));
        let id = self.insert(key, source, transport, machine);
        self.drive(id, now, |_, _| ());
    }

    /// A response arrived.  It goes to its client transaction, which
    /// decides what the TU sees; a 2xx to INVITE matching nothing goes to
    /// the TU as a stray (§13.2.2.4); anything else unmatched is dropped
    /// (§18.1.2).
    pub fn on_response(&mut self, response: SipMessage, now: Instant) {
        let Ok(key) = TransactionKey::for_response(&response) else {
            return;
        };
        match self.ids.get(&key).copied() {
            Some(id) => {
                self.drive(id, now, |m, sink| match m {
                    Machine::InviteClient(c) => c.on_response(response, now, sink),
                    Machine::NonInviteClient(c) => c.on_response(response, now, sink),
                    _ => {}
                });
            }
            None => {
                if key.is_invite() && response.status().is_some_and(|s| (200..300).contains(&s)) {
                    self.out
                        .push(Output::ToTu(TuEvent::StrayResponse { response }));
                }
            }
        }
        self.prune_heap();
    }

    /// The driver failed to send for transaction `key` (§17.1.4, §17.2.4).
    pub fn on_transport_error(&mut self, key: &TransactionKey, now: Instant) {
        if let Some(id) = self.ids.get(key).copied() {
            self.drive(id, now, |m, sink| m.on_transport_error(sink));
        }
        self.prune_heap();
    }

    /// Fires every timer due at `now`.
    pub fn on_tick(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            match self.entries.get_mut(&id) {
                Some(e) if e.scheduled == Some(at) => e.scheduled = None,
                _ => continue,
            }
            self.drive(id, now, |_, _| ());
        }
        self.prune_heap();
    }

    // ----- inputs from the TU ---------------------------------------------

    /// Starts a client transaction for `request` (which must carry a
    /// `z9hG4bK` branch in its top Via) and sends it.  A CANCEL is its own
    /// transaction: build it with the INVITE's branch (§9.1).
    pub fn send_request(
        &mut self,
        request: SipMessage,
        destination: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> Result<TransactionKey, TransactionError> {
        match request.method() {
            None => return Err(TransactionError::NotARequest),
            Some(Method::Ack) => return Err(TransactionError::AckHasNoTransaction),
            Some(_) => {}
        }
        let key = TransactionKey::client(&request)?;
        if self.ids.contains_key(&key) {
            return Err(TransactionError::Duplicate(Box::new(key)));
        }
        if self.entries.len() >= self.config.max_transactions {
            return Err(TransactionError::CapacityExceeded(
                self.config.max_transactions,
            ));
        }
        let timers = self.config.timers;
        let mut sink = Sink {
            out: &mut self.out,
            key: &key,
            peer: destination,
            transport,
        };
        let machine = if key.is_invite() {
            Machine::InviteClient(InviteClient::start(&request, timers, now, &mut sink)?)
        } else {
            Machine::NonInviteClient(NonInviteClient::start(&request, timers, now, &mut sink))
        };
        let id = self.insert(key.clone(), destination, transport, machine);
        self.drive(id, now, |_, _| ());
        if let Some(invite_id) = key.cancel_target().and_then(|k| self.ids.get(&k).copied()) {
            self.drive(invite_id, now, |m, _| {
                if let Machine::InviteClient(c) = m {
                    c.on_cancel_sent(now);
                }
            });
        }
        self.prune_heap();
        Ok(key)
    }

    /// The TU answers server transaction `key`.
    pub fn send_response(
        &mut self,
        key: &TransactionKey,
        response: &SipMessage,
        now: Instant,
    ) -> Result<(), TransactionError> {
        if !response.is_response() {
            return Err(TransactionError::NotAResponse);
        }
        if key.role() != Role::Server {
            return Err(TransactionError::NotAServerTransaction {
                key: Box::new(key.clone()),
            });
        }
        let id = self
            .ids
            .get(key)
            .copied()
            .ok_or_else(|| TransactionError::UnknownTransaction(Box::new(key.clone())))?;
        let r = self
            .drive(id, now, |m, sink| match m {
                Machine::InviteServer(s) => s.send_response(response, now, sink),
                Machine::NonInviteServer(s) => s.send_response(response, now, sink),
                _ => Err(TransactionError::NotAServerTransaction {
                    key: Box::new(key.clone()),
                }),
            })
            .unwrap_or_else(|| Err(TransactionError::UnknownTransaction(Box::new(key.clone()))));
        self.prune_heap();
        r
    }

    /// Entries in the timer heap, live or stale (tests check it stays bounded).
    #[cfg(test)]
    pub(crate) fn timer_queue_len(&self) -> usize {
        self.heap.len()
    }

    // ----- internals --------------------------------------------------------

    fn insert(
        &mut self,
        key: TransactionKey,
        peer: SocketAddr,
        transport: Transport,
        machine: Machine,
    ) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.ids.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry {
                key,
                peer,
                transport,
                machine,
                scheduled: None,
            },
        );
        id
    }

    /// Runs `f` on a machine, fires its timers already due (zero-length
    /// timers on reliable transports), then reschedules it or removes it
    /// when it terminated.
    fn drive<R>(
        &mut self,
        id: u64,
        now: Instant,
        f: impl FnOnce(&mut Machine, &mut Sink<'_>) -> R,
    ) -> Option<R> {
        let entry = self.entries.get_mut(&id)?;
        let mut sink = Sink {
            out: &mut self.out,
            key: &entry.key,
            peer: entry.peer,
            transport: entry.transport,
        };
        let r = f(&mut entry.machine, &mut sink);
        entry.machine.on_tick(now, &mut sink);
        if entry.machine.state() == TransactionState::Terminated {
            if let Some(e) = self.entries.remove(&id) {
                self.ids.remove(&e.key);
                self.out
                    .push(Output::ToTu(TuEvent::Terminated { key: e.key }));
            }
            return Some(r);
        }
        let deadline = entry.machine.next_deadline();
        if deadline != entry.scheduled {
            entry.scheduled = deadline;
            if let Some(at) = deadline {
                self.heap.push(Reverse((at, id)));
            }
        }
        Some(r)
    }

    /// Drops stale heap tops (so `next_deadline` is exact) and rebuilds the
    /// heap when stale entries outnumber live ones (bounded memory).
    fn prune_heap(&mut self) {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            let live = self
                .entries
                .get(&id)
                .is_some_and(|e| e.scheduled == Some(at));
            if live {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > 2 * self.entries.len() + 64 {
            self.heap = self
                .entries
                .iter()
                .filter_map(|(id, e)| e.scheduled.map(|at| Reverse((at, *id))))
                .collect();
        }
    }
}
