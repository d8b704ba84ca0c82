//! Signalling: the SIP transaction user of the bridge. It owns the SIP
//! stack (`crate::sip::stack`) and drives it from one task, dispatching
//! every request by method:
//!
//! - REGISTER to the registrar ([`registry`]: credentials, the
//!   registrations view, lockouts);
//! - CANCEL: 200 (or 481 when it matches no INVITE) and the call is told;
//! - requests of a live call's dialogs to its call (`crate::calls`);
//! - a new INVITE: digest authentication when the caller is one of our
//!   extensions (407), 503 + Retry-After while draining, else a new call;
//! - anything else: 481 (in-dialog methods of no call) or 405.
//!
//! It also registers the bridge with the trunks that say `register`
//! ([`trunks`]): their REGISTERs go out through the stack and the answers
//! are routed back to them (by Call-ID) before anything reaches the calls.
//!
//! Calls' commands (requests, responses, ACKs) go back through the stack.
//! On shutdown it drains ([`drain`]): new calls get 503, live calls go on
//! for the grace period, then are hung up.

pub mod drain;
pub mod registry;
pub mod trunks;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::calls::{
    CallControl, CallEngine, CallInput, Command, IncomingCall, LiveCalls, Originate,
};
use crate::registrations::RegistrationsView;
use crate::sip::dialog::LocalParty;
use crate::sip::message::{Host, Method, SipMessage, Uri, response_to};
use crate::sip::stack::SipStack;
use crate::sip::transaction::{TransactionKey, Transport, TuEvent};
use crate::store::Store;
use crate::trunk_registrations::TrunkRegistrationsView;

use drain::{Drain, DrainFlag, DrainStep};
use registry::{Credentials, Registry, RegistryConfig};
use trunks::{TrunkRegistrations, TrunkTarget};

/// What the bridge allows (OPTIONS answers and 405s list it).
pub const ALLOW: &str = "REGISTER, OPTIONS, INVITE, ACK, CANCEL, BYE, REFER, NOTIFY, INFO, UPDATE";

/// The settings signalling runs with.
#[derive(Debug, Clone)]
pub struct SignallingConfig {
    pub registry: RegistryConfig,
    /// How long live calls go on after SIGTERM before they are hung up.
    pub shutdown_grace: Duration,
    /// Where carriers reach the bridge: the Contact and Via of its
    /// REGISTERs to trunks.
    pub advertised: SocketAddr,
}

/// The shared state signalling reads and writes — narrow handles rather
/// than the whole application.
#[derive(Clone)]
pub struct Handles {
    /// Extension credentials (REGISTER and calls from extensions).
    pub credentials: Credentials,
    /// Where the registrar publishes bindings and lockouts.
    pub registrations: RegistrationsView,
    /// Set when draining starts; new calls are refused while it is.
    pub draining: DrainFlag,
    /// The live calls, to hang them up when the grace period is over.
    pub live_calls: LiveCalls,
    /// Where the credentials are periodically re-read from.
    pub store: Store,
    /// The PBX's SIP address: its INVITEs are trusted without a challenge.
    pub pbx_peer: crate::pbx_peer::PbxPeer,
    /// Where the trunk registrations' states are published.
    pub trunk_registrations: TrunkRegistrationsView,
    /// Bumped by API changes: the trunks to register are re-read at once.
    pub plan_changes: crate::plan_changes::PlanChanges,
    /// Click-to-calls from the API, started as calls here.
    pub originations: crate::calls::Originations,
}

/// The transaction user: owns the stack, the registrar and the call
/// engine, and runs them in one task ([`Signalling::run`]).
pub struct Signalling {
    stack: SipStack,
    registry: Registry,
    calls: CallEngine,
    commands: mpsc::UnboundedReceiver<(u64, Command)>,
    draining: DrainFlag,
    live_calls: LiveCalls,
    store: Store,
    pbx_peer: crate::pbx_peer::PbxPeer,
    grace: Duration,
    trunks: TrunkRegistrations,
    plan_changes: crate::plan_changes::PlanChanges,
    /// Click-to-calls from the API (`None` when another signalling took
    /// the channel first).
    originations: Option<mpsc::UnboundedReceiver<Originate>>,
}

impl Signalling {
    /// `calls` and `commands` are what `CallEngine::new` returned.
    pub fn new(
        stack: SipStack,
        config: SignallingConfig,
        handles: Handles,
        calls: CallEngine,
        commands: mpsc::UnboundedReceiver<(u64, Command)>,
    ) -> Signalling {
        Signalling {
            stack,
            registry: Registry::new(config.registry, handles.credentials, handles.registrations),
            calls,
            commands,
            draining: handles.draining,
            live_calls: handles.live_calls,
            store: handles.store,
            pbx_peer: handles.pbx_peer,
            grace: config.shutdown_grace,
            trunks: TrunkRegistrations::new(handles.trunk_registrations, config.advertised),
            plan_changes: handles.plan_changes,
            originations: handles.originations.take_receiver(),
        }
    }

    /// Runs until `shutdown` turns true, then drains: new calls get 503,
    /// live calls go on until they end or the grace period is over, when
    /// they are hung up (BYE) before signalling stops.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let reloader = tokio::spawn(registry::keep_credentials(
            self.registry.credentials().clone(),
            self.store.clone(),
        ));
        let (targets_tx, mut targets) = watch::channel::<Option<Vec<TrunkTarget>>>(None);
        let trunk_reader = tokio::spawn(trunks::keep_targets(
            self.store.clone(),
            self.plan_changes.clone(),
            targets_tx,
        ));
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        let mut drain = Drain::Serving;
        loop {
            match drain.step(self.calls.live(), self.grace, Instant::now()) {
                DrainStep::Continue => {}
                DrainStep::HangUpAll => {
                    tracing::warn!(
                        calls = self.calls.live(),
                        "grace period over: hanging up the calls still live"
                    );
                    for call in self.live_calls.list() {
                        if let Some(control) = self.live_calls.control(&call.id) {
                            let _ = control.send(CallControl::Shutdown);
                        }
                    }
                }
                DrainStep::Stop => break,
            }
            tokio::select! {
                event = self.stack.next_event() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
                Some((call, command)) = self.commands.recv() => self.on_call_command(call, command),
                Some(request) = next_origination(&mut self.originations) => self.on_origination(request),
                _ = housekeeping.tick() => self.registry.expire(),
                _ = sleep_until(self.trunks.poll_timeout()) => self.trunks.on_tick(Instant::now()),
                Ok(()) = targets.changed(), if drain.serving() => {
                    let list = targets.borrow_and_update().clone().unwrap_or_default();
                    self.trunks.apply(&list, Instant::now());
                }
                _ = stopped(&mut shutdown), if drain.serving() => {
                    self.trunks.unregister_all(Instant::now());
                    self.draining.start();
                    tracing::info!(calls = self.calls.live(), "SIP draining: no new calls, live calls go on");
                    drain.start(Instant::now());
                }
            }
            self.send_trunk_requests();
            self.stack.flush().await;
        }
        reloader.abort();
        trunk_reader.abort();
    }

    fn on_event(&mut self, event: TuEvent) {
        match event {
            TuEvent::Request {
                key,
                request,
                source,
                transport,
                cancels,
            } => self.on_request(key, request, source, transport, cancels),
            TuEvent::Ack { request, .. } => {
                let call_id = request.call_id().unwrap_or_default().to_owned();
                self.calls.deliver(&call_id, CallInput::Ack { request });
            }
            TuEvent::StrayResponse { response } | TuEvent::Response { response, .. }
                if self.trunks.on_response(&response, Instant::now()) => {}
            TuEvent::StrayResponse { response } | TuEvent::Response { response, .. } => {
                let call_id = response.call_id().unwrap_or_default().to_owned();
                self.calls
                    .deliver(&call_id, CallInput::Response { response });
            }
            TuEvent::Timeout { key, .. } if self.trunks.on_failure(&key, true, Instant::now()) => {}
            TuEvent::TransportError { key }
                if self.trunks.on_failure(&key, false, Instant::now()) => {}
            TuEvent::Terminated { key } if self.trunks.on_terminated(&key) => {}
            TuEvent::Timeout { key, timer } => {
                tracing::debug!(%key, ?timer, "SIP transaction timed out");
                self.calls.transaction_failed(&key);
            }
            TuEvent::TransportError { key } => {
                tracing::debug!(%key, "SIP transport error");
                self.calls.transaction_failed(&key);
            }
            TuEvent::Terminated { key } => self.calls.transaction_ended(&key),
        }
    }

    fn on_request(
        &mut self,
        key: TransactionKey,
        request: SipMessage,
        source: SocketAddr,
        transport: Transport,
        cancels: Option<TransactionKey>,
    ) {
        let response = match request.method() {
            Some(Method::Register) => self.registry.register(&request, source, transport),
            Some(Method::Cancel) => {
                // §9.2: 200 to the CANCEL here; the call answers its INVITE
                // 487 if it had no final answer yet.
                let status = if cancels.is_some() { 200 } else { 481 };
                let call_id = request.call_id().unwrap_or_default().to_owned();
                if cancels.is_some() {
                    self.calls.deliver(&call_id, CallInput::Cancelled);
                }
                response_to(&request, status, None)
                    .and_then(|b| b.to_tag(&tag_for(&key)).build())
                    .ok()
            }
            Some(_) if self.calls.owns(request.call_id().unwrap_or_default()) => {
                let call_id = request.call_id().unwrap_or_default().to_owned();
                self.calls.deliver(
                    &call_id,
                    CallInput::Request {
                        key,
                        request,
                        source,
                        transport,
                    },
                );
                return;
            }
            Some(Method::Invite) if !has_to_tag(&request) => {
                self.on_new_invite(key, request, source, transport);
                return;
            }
            Some(
                Method::Bye
                | Method::Invite
                | Method::Refer
                | Method::Notify
                | Method::Info
                | Method::Update,
            ) => response_to(&request, 481, None)
                .and_then(|b| b.to_tag(&tag_for(&key)).build())
                .ok(),
            _ => response_to(&request, 405, None)
                .and_then(|b| b.to_tag(&tag_for(&key)).header("Allow", ALLOW).build())
                .ok(),
        };
        if let Some(response) = response {
            self.answer(&key, &response);
        }
    }

    /// A new call. An INVITE whose From is one of our extensions must
    /// authenticate (407); anything else is a trunk's call, which the call
    /// checks by source address.
    fn on_new_invite(
        &mut self,
        key: TransactionKey,
        request: SipMessage,
        source: SocketAddr,
        transport: Transport,
    ) {
        let received = Instant::now();
        let from_user = request
            .from()
            .ok()
            .and_then(|f| f.uri.user_text())
            .unwrap_or_default();
        let mut extension = None;
        // The PBX relays its phones' and carriers' calls: no challenge
        // (the rendered `bridge` endpoint has no credentials).
        let from_pbx = self.pbx_peer.is_pbx(source, transport);
        if !from_pbx && self.registry.is_extension(&from_user) {
            match self.registry.authorize_call(&request, source) {
                Ok(user) => extension = Some(user),
                Err(response) => {
                    if let Some(response) = response {
                        self.answer(&key, &response);
                    }
                    return;
                }
            }
        }
        if self.draining.is_draining() {
            if let Ok(r) = response_to(&request, 503, None)
                .and_then(|b| b.to_tag(&tag_for(&key)).header("Retry-After", "30").build())
            {
                let _ = self.stack.respond(&key, &r);
            }
            return;
        }
        self.calls.start(IncomingCall {
            key,
            invite: request,
            source,
            transport,
            extension,
            from_pbx,
            received,
        });
    }

    /// A click-to-call from the API: a new call, unless draining.
    fn on_origination(&mut self, request: Originate) {
        if self.draining.is_draining() {
            let _ = request.reply.send(Err(crate::calls::NotOriginated {
                field: None,
                why: "the bridge is stopping".into(),
            }));
            return;
        }
        self.calls.originate(request);
    }

    /// What a call asks: requests through new client transactions,
    /// responses through its server transactions, ACKs as they are.
    fn on_call_command(&mut self, call: u64, command: Command) {
        match command {
            Command::Request {
                request,
                destination,
                transport,
            } => {
                let call_id = request.call_id().unwrap_or_default().to_owned();
                match self.stack.send_request(request, destination, transport) {
                    Ok(key) => self.calls.note_request(call, &call_id, key),
                    Err(e) => {
                        tracing::warn!(%call_id, %destination, error = %e, "cannot send a call's request")
                    }
                }
            }
            Command::Respond { key, response } => {
                if let Err(e) = self.stack.respond(&key, &response) {
                    tracing::debug!(%key, error = %e, "cannot send a call's response");
                }
            }
            Command::Transmit {
                message,
                destination,
                transport,
            } => self
                .stack
                .transmit(message.to_bytes(), destination, transport),
            Command::Ended => self.calls.forget(call),
        }
    }

    /// Sends the trunk registrations' REGISTERs through new client
    /// transactions.
    fn send_trunk_requests(&mut self) {
        let now = Instant::now();
        for (request, destination, transport) in self.trunks.take_requests(now) {
            let call_id = request.call_id().unwrap_or_default().to_owned();
            match self.stack.send_request(request, destination, transport) {
                Ok(key) => self.trunks.note_key(&call_id, key),
                Err(e) => {
                    tracing::warn!(%destination, error = %e, "cannot send a trunk REGISTER");
                    self.trunks.send_failed(&call_id, now);
                }
            }
        }
    }

    fn answer(&mut self, key: &TransactionKey, response: &SipMessage) {
        if let Err(e) = self.stack.respond(key, response) {
            tracing::debug!(%key, error = %e, "cannot answer SIP request");
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The next click-to-call; never, without the channel.
async fn next_origination(
    rx: &mut Option<mpsc::UnboundedReceiver<Originate>>,
) -> Option<Originate> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A To tag for our responses, stable per transaction so retransmitted
/// requests get the same answer.
fn tag_for(key: &TransactionKey) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!("pb{:x}", h.finish())
}

fn has_to_tag(request: &SipMessage) -> bool {
    request.to().ok().is_some_and(|t| t.tag().is_some())
}

/// How the bridge names itself on `transport`: Via sent-by and Contact.
pub fn local_party(addr: SocketAddr, transport: Transport) -> LocalParty {
    let host = match addr.ip() {
        std::net::IpAddr::V4(v4) => Host::Ipv4(v4),
        std::net::IpAddr::V6(v6) => Host::Ipv6(v6),
    };
    let suffix = if transport == Transport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    let contact = format!("sip:pbx-bridge@{}{suffix}", addr)
        .parse()
        .unwrap_or_else(|_| Uri::Other {
            scheme: "sip".into(),
            rest: format!("pbx-bridge@{addr}"),
        });
    LocalParty::new(transport, host, Some(addr.port()), contact)
}
