//! The SIP stack: the transport, the transaction layer and what RFC 3261
//! asks of every request before it reaches a transaction user — the
//! message layer's inbound checks (`inspect`), Via `received`/`rport`
//! stamping (§18.2.1, RFC 3581), stateless answers to OPTIONS pings and an
//! address filter. It knows no call, registrar, store or application: it
//! hands the transaction user [`TuEvent`]s and takes its requests and
//! responses back.
//!
//! The transaction user *owns* the stack and drives it from its own task:
//!
//! ```text
//! loop {
//!     select! {
//!         event = stack.next_event() => handle(event),   // may call stack.respond(..)
//!         other = tu_inputs.recv()   => ...,              // may call stack.send_request(..)
//!     }
//!     stack.flush().await;                                // send what the TU queued
//! }
//! ```
//!
//! Why owned rather than behind a channel: the TU's commands are plain
//! method calls on the sans-IO transaction layer (`send_request` returns its
//! `TransactionKey` at once, with no round trip), nothing is copied through
//! an extra queue, and there is one task, so the order of events and
//! commands is the order they happen in. The price is that `next_event`
//! must be cancel-safe, since it sits in a `select!`: everything it has
//! taken from the socket queue or the transaction layer is kept in the
//! stack (bytes waiting to be sent, events waiting for the TU) before any
//! `.await`, so dropping the future loses nothing; a datagram whose send
//! was interrupted is sent again on the next call (a duplicate, which SIP
//! tolerates, never a loss).
//!
//! Time is read here, once per input (received message, timer, TU
//! command), and handed to the cores.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::message::{Inbound as Checked, Method, Policy, SipMessage, inspect, response_to};
use super::transaction::{
    LayerConfig, Output, TransactionError, TransactionKey, TransactionLayer, Transport, TuEvent,
};
use super::transport::{Inbound, SipTransport};

/// Which source addresses may talk to the stack; packets from the others
/// are dropped before they are parsed (counted as
/// `pbx_sip_dropped_total{reason="acl"}`).
pub type AddressFilter = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Settings of a [`SipStack`].
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub layer: LayerConfig,
    /// What the inbound checks accept.
    pub policy: Policy,
    /// The methods the transaction user handles: the `Allow` of the
    /// stateless OPTIONS answers.
    pub allow: String,
}

impl StackConfig {
    /// The default transaction timers and inbound policy.
    pub fn new(allow: &str) -> StackConfig {
        StackConfig {
            layer: LayerConfig::default(),
            policy: Policy::default(),
            allow: allow.to_owned(),
        }
    }
}

/// A message to put on the wire.
struct Outgoing {
    bytes: Bytes,
    destination: SocketAddr,
    transport: Transport,
}

pub struct SipStack {
    transport: SipTransport,
    inbound: mpsc::Receiver<Inbound>,
    layer: TransactionLayer,
    policy: Policy,
    allow: String,
    filter: AddressFilter,
    /// Produced by the transaction layer, not yet sent (front first).
    outgoing: VecDeque<Outgoing>,
    /// Produced by the transaction layer, not yet handed to the TU.
    events: VecDeque<TuEvent>,
    /// The transport's queue is closed: nothing more will arrive.
    closed: bool,
}

impl SipStack {
    /// A stack over `transport`, reading what it received from `inbound`
    /// (both from [`SipTransport::bind`]), admitting only sources `filter`
    /// allows.
    pub fn new(
        transport: SipTransport,
        inbound: mpsc::Receiver<Inbound>,
        config: StackConfig,
        filter: AddressFilter,
    ) -> SipStack {
        SipStack {
            transport,
            inbound,
            layer: TransactionLayer::new(config.layer),
            policy: config.policy,
            allow: config.allow,
            filter,
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
            closed: false,
        }
    }

    /// Where the transport listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// The next event for the transaction user: a new request (with its
    /// server transaction key and, for a CANCEL, the INVITE transaction it
    /// cancels), a 2xx ACK, a response, a timeout, a transport error or
    /// the end of a transaction. Sends whatever is waiting on the way.
    /// `None` once the transport is closed and every event was taken.
    ///
    /// Cancel-safe (see the module documentation).
    pub async fn next_event(&mut self) -> Option<TuEvent> {
        loop {
            self.flush().await;
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if self.closed {
                return None;
            }
            let deadline = self.layer.next_deadline();
            tokio::select! {
                received = self.inbound.recv() => match received {
                    Some(message) => self.on_inbound(message),
                    None => self.closed = true,
                },
                _ = sleep_until(deadline) => self.layer.on_tick(Instant::now()),
            }
        }
    }

    /// Sends `request` through a new client transaction; the responses
    /// come back as [`TuEvent::Response`] with the returned key.
    pub fn send_request(
        &mut self,
        request: SipMessage,
        destination: SocketAddr,
        transport: Transport,
    ) -> Result<TransactionKey, TransactionError> {
        let key = self
            .layer
            .send_request(request, destination, transport, Instant::now())?;
        self.collect();
        Ok(key)
    }

    /// Answers server transaction `key` (from [`TuEvent::Request`]).
    pub fn respond(
        &mut self,
        key: &TransactionKey,
        response: &SipMessage,
    ) -> Result<(), TransactionError> {
        let sent = self.layer.send_response(key, response, Instant::now());
        self.collect();
        sent
    }

    /// Sends `bytes` outside any transaction (the ACK for a 2xx,
    /// §13.2.2.4).
    pub fn transmit(&mut self, bytes: Bytes, destination: SocketAddr, transport: Transport) {
        self.layer.transmit_stateless(bytes, destination, transport);
        self.collect();
    }

    /// Puts on the wire everything waiting to be sent (what the TU's
    /// commands produced). Cancel-safe: a message leaves the queue only
    /// once its send is over.
    pub async fn flush(&mut self) {
        self.collect();
        while let Some(out) = self.outgoing.front() {
            if tracing::enabled!(tracing::Level::DEBUG)
                && let Ok(message) = super::message::parse(out.bytes.clone())
            {
                trace_message("out", &message, out.destination);
            }
            // Never waits on a peer: the transport queues or drops.
            let sent = self
                .transport
                .send(out.bytes.clone(), out.destination, out.transport);
            if let Err(e) = sent {
                tracing::debug!(destination = %out.destination, error = %e, "SIP send failed");
            }
            self.outgoing.pop_front();
        }
    }

    /// Moves the transaction layer's outputs into the stack's queues.
    fn collect(&mut self) {
        for output in self.layer.take_outputs() {
            match output {
                Output::Transmit {
                    bytes,
                    destination,
                    transport,
                } => self.outgoing.push_back(Outgoing {
                    bytes,
                    destination,
                    transport,
                }),
                Output::ToTu(event) => self.events.push_back(event),
            }
        }
    }

    fn on_inbound(&mut self, message: Inbound) {
        let Inbound {
            bytes,
            source,
            transport,
        } = message;
        if !(self.filter)(source.ip()) {
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
                    if let Some(response) = options_response(&request, &self.allow) {
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
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
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

/// 200 to OPTIONS, with a To tag derived from the request so a
/// retransmission gets the identical answer.
fn options_response(request: &SipMessage, allow: &str) -> Option<Bytes> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    request.call_id().unwrap_or_default().hash(&mut h);
    request.top_via().ok()?.branch.hash(&mut h);
    response_to(request, 200, None)
        .and_then(|b| {
            b.to_tag(&format!("po{:x}", h.finish()))
                .header("Allow", allow)
                .header("Accept", "application/sdp")
                .to_bytes()
        })
        .ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const REGISTER: &str = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{n};rport\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:1001@127.0.0.1>;tag=f{n}\r\n\
        To: <sip:1001@127.0.0.1>\r\n\
        Call-ID: c{n}@test\r\n\
        CSeq: 1 REGISTER\r\n\
        Contact: <sip:1001@127.0.0.1:{port}>\r\n\
        Content-Length: 0\r\n\r\n";

    const OPTIONS: &str = "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-o{n}\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:ping@127.0.0.1>;tag=o{n}\r\n\
        To: <sip:127.0.0.1>\r\n\
        Call-ID: o{n}@test\r\n\
        CSeq: 1 OPTIONS\r\n\
        Content-Length: 0\r\n\r\n";

    fn text(template: &str, port: u16, n: usize) -> String {
        template
            .replace("{port}", &port.to_string())
            .replace("{n}", &n.to_string())
    }

    async fn stack(allow: bool) -> (SipStack, tokio::net::UdpSocket) {
        let (transport, inbound) = SipTransport::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let filter: AddressFilter = Arc::new(move |_| allow);
        let stack = SipStack::new(transport, inbound, StackConfig::new("OPTIONS"), filter);
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (stack, peer)
    }

    async fn recv(peer: &tokio::net::UdpSocket) -> SipMessage {
        let mut buf = vec![0u8; 65_535];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), peer.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        super::super::message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap()
    }

    #[tokio::test]
    async fn requests_reach_the_tu_stamped_and_answers_go_back() {
        let (mut stack, peer) = stack(true).await;
        let port = peer.local_addr().unwrap().port();
        peer.send_to(text(REGISTER, port, 1).as_bytes(), stack.local_addr())
            .await
            .unwrap();
        let Some(TuEvent::Request { key, request, .. }) = stack.next_event().await else {
            panic!("a request");
        };
        assert_eq!(request.top_via().unwrap().rport, Some(Some(port)));
        let ok = response_to(&request, 200, None)
            .unwrap()
            .to_tag("t")
            .build()
            .unwrap();
        stack.respond(&key, &ok).unwrap();
        stack.flush().await;
        assert_eq!(recv(&peer).await.status(), Some(200));
    }

    #[tokio::test]
    async fn options_are_answered_without_the_tu() {
        let (mut stack, peer) = stack(true).await;
        let port = peer.local_addr().unwrap().port();
        peer.send_to(text(OPTIONS, port, 1).as_bytes(), stack.local_addr())
            .await
            .unwrap();
        // No event comes; the answer is sent while waiting for one.
        let waited = tokio::time::timeout(Duration::from_millis(300), stack.next_event()).await;
        assert!(waited.is_err());
        let answer = recv(&peer).await;
        assert_eq!(answer.status(), Some(200));
        assert_eq!(
            answer.header("Allow").map(|a| a.to_vec()),
            Some(b"OPTIONS".to_vec())
        );
    }

    #[tokio::test]
    async fn the_filter_drops_before_anything_else() {
        let (mut stack, peer) = stack(false).await;
        let port = peer.local_addr().unwrap().port();
        peer.send_to(text(REGISTER, port, 1).as_bytes(), stack.local_addr())
            .await
            .unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(300), stack.next_event()).await;
        assert!(waited.is_err());
    }

    #[tokio::test]
    async fn a_cancelled_next_event_loses_nothing() {
        let (mut stack, peer) = stack(true).await;
        let port = peer.local_addr().unwrap().port();
        for n in 0..50 {
            peer.send_to(text(REGISTER, port, n).as_bytes(), stack.local_addr())
                .await
                .unwrap();
        }
        // Drop next_event after one poll half the time, as a select!
        // whose other branch wins does.
        let mut seen = std::collections::HashSet::new();
        let mut polls = 0;
        while seen.len() < 50 && polls < 10_000 {
            polls += 1;
            let patience = Duration::from_millis(if polls % 2 == 0 { 0 } else { 20 });
            if let Ok(Some(TuEvent::Request { request, .. })) =
                tokio::time::timeout(patience, stack.next_event()).await
            {
                seen.insert(request.call_id().unwrap().to_owned());
            }
        }
        assert_eq!(seen.len(), 50);
    }
}
