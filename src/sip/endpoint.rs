//! The SIP endpoint: the thin tokio loop that ties the transport to the
//! sans-IO cores. Every received message goes through the ACL, the message
//! layer's inbound checks and the transaction layer; requests reach the
//! transaction user here (registrar, OPTIONS, and "not here" answers for
//! what later issues implement). Time is read here, once per event, and
//! handed to the cores.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{TimeZone, Utc};
use tokio::sync::{mpsc, watch};

use super::auth::{Algorithm, LockoutConfig};
use super::dialog::LocalParty;
use super::message::{Inbound as Checked, Method, Policy, SipMessage, inspect, response_to};
use super::registrar::{BindingChange, ChangeCause, Handled, Registrar, RegistrarConfig};
use super::transaction::{
    LayerConfig, Output, TransactionKey, TransactionLayer, Transport, TuEvent,
};
use super::transport::{Inbound, SipTransport};
use crate::app::App;
use crate::calls::{CallEngine, CallInput, Command, IncomingCall};
use crate::domain::{AclApplies, AuthLockout, Registration};
use crate::media::ports::PortPool;

/// What the endpoint allows (OPTIONS answers list it).
const ALLOW: &str = "REGISTER, OPTIONS, INVITE, ACK, CANCEL, BYE, REFER, NOTIFY, INFO, UPDATE";

/// Registrar settings the endpoint is built with.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub realm: String,
    pub min_expires: u32,
    pub max_expires: u32,
    pub lockout: LockoutConfig,
    pub default_algorithms: Vec<Algorithm>,
    pub nonce_key: [u8; 32],
    /// The RTP ports calls lease.
    pub rtp_ports: PortPool,
    /// Where SIP listens: the bridge's Via and Contact.
    pub sip_addr: SocketAddr,
}

pub struct SipEndpoint {
    app: App,
    transport: SipTransport,
    layer: TransactionLayer,
    registrar: Registrar,
    policy: Policy,
    calls: CallEngine,
    commands: Option<mpsc::UnboundedReceiver<(u64, Command)>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn to_time(secs: u64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .single()
        .unwrap_or_default()
}

impl SipEndpoint {
    pub fn new(app: App, transport: SipTransport, config: EndpointConfig) -> Self {
        let registrar = Registrar::new(
            RegistrarConfig {
                realm: config.realm,
                min_expires: config.min_expires,
                max_expires: config.max_expires,
                default_expires: config.max_expires.min(3600).max(config.min_expires),
                max_contacts: 1,
                default_algorithms: config.default_algorithms,
                lockout: config.lockout,
            },
            config.nonce_key,
        );
        let party = |t: Transport| local_party(config.sip_addr, t);
        let (calls, commands) = CallEngine::new(
            app.clone(),
            config.rtp_ports,
            party(Transport::Udp),
            party(Transport::Tcp),
        );
        Self {
            app,
            transport,
            layer: TransactionLayer::new(LayerConfig::default()),
            registrar,
            policy: Policy::default(),
            calls,
            commands: Some(commands),
        }
    }

    /// Runs until `shutdown` turns true, then drains: new calls get 503,
    /// live calls go on until they end or the grace period is over, when
    /// they are hung up (BYE) before the endpoint stops.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let reloader = tokio::spawn(keep_credentials(self.app.clone()));
        let Some(mut commands) = self.commands.take() else {
            return;
        };
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        let mut drain = Drain::Serving;
        loop {
            match drain.step(&self.calls, self.app.settings().shutdown_grace) {
                DrainStep::Continue => {}
                DrainStep::HangUpAll => {
                    tracing::warn!(
                        calls = self.calls.live(),
                        "grace period over: hanging up the calls still live"
                    );
                    for call in self.app.calls().list() {
                        if let Some(control) = self.app.calls().control(&call.id) {
                            let _ = control.send(crate::calls::CallControl::Shutdown);
                        }
                    }
                }
                DrainStep::Stop => break,
            }
            let deadline = self
                .layer
                .next_deadline()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                received = inbound.recv() => match received {
                    Some(message) => self.on_inbound(message),
                    None => break,
                },
                Some((call, command)) = commands.recv() => self.on_call_command(call, command),
                _ = tokio::time::sleep_until(deadline.into()) => self.layer.on_tick(Instant::now()),
                _ = housekeeping.tick() => self.expire(),
                _ = stopped(&mut shutdown), if matches!(drain, Drain::Serving) => {
                    self.app.start_draining();
                    tracing::info!(calls = self.calls.live(), "SIP draining: no new calls, live calls go on");
                    drain = Drain::Draining { since: Instant::now() };
                }
            }
            self.flush().await;
        }
        reloader.abort();
    }

    fn on_inbound(&mut self, message: Inbound) {
        let Inbound {
            bytes,
            source,
            transport,
        } = message;
        if !self.app.acl_allows(source.ip(), AclApplies::Sip) {
            metrics::counter!("pbx_sip_dropped_total", "reason" => "acl").increment(1);
            tracing::debug!(%source, "SIP packet dropped by ACL");
            return;
        }
        let now = Instant::now();
        match inspect(bytes, &self.policy) {
            Checked::Request(mut request) => {
                stamp_source(&mut request, source);
                trace_message("in", &request, source);
                if request.method() == Some(&Method::Options) {
                    // Keep-alive pings are answered statelessly (RFC 3261
                    // §8.2.7): a retransmission just gets the same answer,
                    // and thousands of pings a second hold no transaction
                    // state for 32 s each.
                    if let Some(response) = options_response(&request) {
                        self.layer.transmit_stateless(response, source, transport);
                    }
                    return;
                }
                self.layer.on_request(request, source, transport, now);
            }
            Checked::Response(response) => {
                trace_message("in", &response, source);
                self.layer.on_response(response, now);
            }
            Checked::Reject {
                rejection,
                response,
            } => {
                tracing::debug!(%source, status = rejection.status, detail = %rejection.detail, "SIP request rejected");
                self.layer.transmit_stateless(response, source, transport);
            }
            Checked::Drop(reason) => {
                tracing::debug!(%source, ?reason, "SIP message dropped");
            }
        }
    }

    /// Sends what the transaction layer produced and hands its events to
    /// the transaction user, until nothing is left.
    async fn flush(&mut self) {
        loop {
            let outputs = self.layer.take_outputs();
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                match output {
                    Output::Transmit {
                        bytes,
                        destination,
                        transport,
                    } => {
                        if tracing::enabled!(tracing::Level::DEBUG)
                            && let Ok(message) = super::message::parse(bytes.clone())
                        {
                            trace_message("out", &message, destination);
                        }
                        if let Err(e) = self.transport.send(bytes, destination, transport) {
                            tracing::debug!(%destination, error = %e, "SIP send failed");
                        }
                    }
                    Output::ToTu(event) => self.on_tu_event(event),
                }
            }
        }
    }

    fn on_tu_event(&mut self, event: TuEvent) {
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
            TuEvent::StrayResponse { response } | TuEvent::Response { response, .. } => {
                let call_id = response.call_id().unwrap_or_default().to_owned();
                self.calls
                    .deliver(&call_id, CallInput::Response { response });
            }
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
        let now = Instant::now();
        let response = match request.method() {
            Some(Method::Register) => {
                let app = &self.app;
                let lookup = |user: &str| app.credential(user);
                let handled =
                    self.registrar
                        .handle(&request, source, transport, unix_now(), lookup);
                self.note_auth_failure(&handled, &request, source);
                self.publish_changes(&handled.changes);
                handled.response
            }
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
        if let Some(response) = response
            && let Err(e) = self.layer.send_response(&key, &response, now)
        {
            tracing::debug!(%key, error = %e, "cannot answer SIP request");
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
        let now = Instant::now();
        let from_user = request
            .from()
            .ok()
            .and_then(|f| f.uri.user_text())
            .unwrap_or_default();
        let mut extension = None;
        if self.app.credential(&from_user).is_some() {
            let app = &self.app;
            let lookup = |user: &str| app.credential(user);
            match self
                .registrar
                .authorize_call(&request, source, unix_now(), lookup)
            {
                Ok(user) => extension = Some(user),
                Err(handled) => {
                    self.note_auth_failure(&handled, &request, source);
                    if let Some(response) = handled.response
                        && let Err(e) = self.layer.send_response(&key, &response, now)
                    {
                        tracing::debug!(%key, error = %e, "cannot answer SIP request");
                    }
                    return;
                }
            }
        }
        if self.app.is_draining() {
            if let Ok(r) = response_to(&request, 503, None)
                .and_then(|b| b.to_tag(&tag_for(&key)).header("Retry-After", "30").build())
            {
                let _ = self.layer.send_response(&key, &r, now);
            }
            return;
        }
        self.calls.start(IncomingCall {
            key,
            invite: request,
            source,
            transport,
            extension,
            received: now,
        });
    }

    /// What a call asks: requests through new client transactions,
    /// responses through its server transactions, ACKs as they are.
    fn on_call_command(&mut self, call: u64, command: Command) {
        let now = Instant::now();
        match command {
            Command::Request {
                request,
                destination,
                transport,
            } => {
                let call_id = request.call_id().unwrap_or_default().to_owned();
                match self
                    .layer
                    .send_request(request, destination, transport, now)
                {
                    Ok(key) => self.calls.note_request(call, &call_id, key),
                    Err(e) => {
                        tracing::warn!(%call_id, %destination, error = %e, "cannot send a call's request")
                    }
                }
            }
            Command::Respond { key, response } => {
                if let Err(e) = self.layer.send_response(&key, &response, now) {
                    tracing::debug!(%key, error = %e, "cannot send a call's response");
                }
            }
            Command::Transmit {
                message,
                destination,
                transport,
            } => self
                .layer
                .transmit_stateless(message.to_bytes(), destination, transport),
            Command::Ended => self.calls.forget(call),
        }
    }

    /// Logs a failed authentication (REGISTER or INVITE) so *erro de
    /// autenticação* is diagnosable, and publishes the lockouts.
    fn note_auth_failure(&self, handled: &Handled, request: &SipMessage, source: SocketAddr) {
        if let Some(reason) = &handled.auth_failure {
            tracing::warn!(
                %source,
                call_id = request.call_id().unwrap_or_default(),
                status = handled.status,
                locked_out = handled.locked_out,
                "SIP authentication failed: {reason}"
            );
            metrics::counter!("pbx_sip_auth_failures_total").increment(1);
            self.publish_lockouts();
        }
    }

    fn expire(&mut self) {
        let changes = self.registrar.expire(unix_now());
        self.publish_changes(&changes);
        self.publish_lockouts();
    }

    fn publish_changes(&self, changes: &[BindingChange]) {
        if changes.is_empty() {
            return;
        }
        for change in changes {
            let b = &change.binding;
            match change.cause {
                ChangeCause::Refreshed => {}
                cause => tracing::info!(
                    extension = %b.aor,
                    contact = %b.contact,
                    source = %b.source,
                    call_id = %b.call_id,
                    ?cause,
                    "registration changed"
                ),
            }
        }
        // Incremental: a refresh must not copy every binding (thousands of
        // phones re-register all the time).
        self.app.update_registrations(|view| {
            for change in changes {
                let b = &change.binding;
                let entry = Registration {
                    extension: b.aor.clone(),
                    contact: b.contact.clone(),
                    source: b.source.to_string(),
                    transport: b.transport.as_str().to_ascii_lowercase(),
                    user_agent: b.user_agent.clone(),
                    registered_at: to_time(b.registered_at),
                    expires_at: to_time(b.expires_at),
                };
                let at = view
                    .items
                    .iter()
                    .position(|r| r.extension == entry.extension && r.contact == entry.contact);
                match (change.cause, at) {
                    (ChangeCause::Registered | ChangeCause::Refreshed, Some(i)) => {
                        view.items[i] = entry
                    }
                    (ChangeCause::Registered | ChangeCause::Refreshed, None) => {
                        view.items.push(entry)
                    }
                    (_, Some(i)) => {
                        view.items.swap_remove(i);
                    }
                    (_, None) => {}
                }
            }
            metrics::gauge!("pbx_registrations").set(view.items.len() as f64);
        });
    }

    fn publish_lockouts(&self) {
        let lockouts: Vec<AuthLockout> = self
            .registrar
            .lockouts(unix_now())
            .into_iter()
            .map(|l| AuthLockout {
                address: l.addr.to_string(),
                prefix_len: l.prefix_len,
                failures: l.info.failures,
                since: to_time(l.info.since),
                until: to_time(l.info.until),
                reason: l.info.reason,
            })
            .collect();
        self.app.update_registrations(|r| r.lockouts = lockouts);
    }
}

/// RFC 3261 §18.2.1 and RFC 3581: records in the top Via where the
/// request really came from (`received`, and `rport` when the client asked
/// for it), so responses — which copy the Via — reach phones behind NAT.
fn stamp_source(request: &mut SipMessage, source: SocketAddr) {
    let Ok(mut via) = request.top_via() else {
        return;
    };
    let sent_by = via.host.to_string();
    let same_host =
        sent_by.trim_start_matches('[').trim_end_matches(']') == source.ip().to_string();
    let wants_rport = via.rport.is_some();
    if same_host && !wants_rport {
        return;
    }
    via.received = Some(source.ip().to_string());
    if wants_rport {
        via.rport = Some(Some(source.port()));
    }
    let value = via.to_string();
    if request.remove_top_via() && request.prepend_via(&value).is_err() {
        tracing::debug!(%source, "cannot stamp the Via");
    }
}

/// Where a shutdown stands.
#[derive(Debug, Clone, Copy)]
enum Drain {
    Serving,
    /// SIGTERM at `since`: calls go on for the grace period.
    Draining {
        since: Instant,
    },
    /// Calls were told to hang up at `since`; their BYEs and attendance
    /// writes get a few seconds.
    HangingUp {
        since: Instant,
    },
}

enum DrainStep {
    Continue,
    HangUpAll,
    Stop,
}

/// How long hung-up calls get to send their BYEs and write their end.
const HANG_UP_WAIT: Duration = Duration::from_secs(3);

impl Drain {
    fn step(&mut self, calls: &CallEngine, grace: Duration) -> DrainStep {
        match *self {
            Drain::Serving => DrainStep::Continue,
            Drain::Draining { .. } | Drain::HangingUp { .. } if calls.live() == 0 => {
                DrainStep::Stop
            }
            Drain::Draining { since } if since.elapsed() >= grace => {
                *self = Drain::HangingUp {
                    since: Instant::now(),
                };
                DrainStep::HangUpAll
            }
            Drain::HangingUp { since } if since.elapsed() >= HANG_UP_WAIT => DrainStep::Stop,
            _ => DrainStep::Continue,
        }
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// 200 to OPTIONS, with a To tag derived from the request so a
/// retransmission gets the identical answer.
fn options_response(request: &SipMessage) -> Option<bytes::Bytes> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    request.call_id().unwrap_or_default().hash(&mut h);
    request.top_via().ok()?.branch.hash(&mut h);
    response_to(request, 200, None)
        .and_then(|b| {
            b.to_tag(&format!("po{:x}", h.finish()))
                .header("Allow", ALLOW)
                .header("Accept", "application/sdp")
                .to_bytes()
        })
        .ok()
}

/// A To tag for our responses, stable per transaction so retransmitted
/// requests get the same answer.
fn tag_for(key: &TransactionKey) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!("pb{:x}", h.finish())
}

fn trace_message(direction: &str, message: &SipMessage, peer: SocketAddr) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let call_id = message.call_id().unwrap_or_default();
        let line = match (message.method(), message.status()) {
            (Some(m), _) => m.as_str().to_owned(),
            (None, Some(s)) => s.to_string(),
            _ => String::new(),
        };
        tracing::debug!(%peer, call_id, %line, "sip {direction}");
    }
}

/// Keeps the in-memory credentials fresh: at start, then every few seconds
/// (another node may have changed an extension; this node's API reloads
/// them itself).
async fn keep_credentials(app: App) {
    loop {
        if let Err(e) = app.reload_credentials().await {
            tracing::warn!(error = %e, "cannot load extension credentials");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

fn has_to_tag(request: &SipMessage) -> bool {
    request.to().ok().is_some_and(|t| t.tag().is_some())
}

/// How the bridge names itself on `transport`: Via sent-by and Contact.
fn local_party(addr: SocketAddr, transport: Transport) -> LocalParty {
    let host = match addr.ip() {
        std::net::IpAddr::V4(v4) => super::message::Host::Ipv4(v4),
        std::net::IpAddr::V6(v6) => super::message::Host::Ipv6(v6),
    };
    let suffix = if transport == Transport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    let contact = format!("sip:pbx-bridge@{}{suffix}", addr)
        .parse()
        .unwrap_or_else(|_| super::message::Uri::Other {
            scheme: "sip".into(),
            rest: format!("pbx-bridge@{addr}"),
        });
    LocalParty::new(transport, host, Some(addr.port()), contact)
}
