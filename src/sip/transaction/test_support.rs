//! Simulated-time harness for the transaction tests: builds messages and
//! drives a `TransactionLayer` through its deadlines, logging every output
//! with the simulated time it happened at.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::{SipMessage, parse, response_to};
use super::{LayerConfig, Output, TransactionKey, TransactionLayer, Transport, TuEvent};

pub(crate) const T2: Duration = Duration::from_secs(4);

pub(crate) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn peer() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 5060))
}

/// A request as a UA at `sent_by` would send it.
pub(crate) fn request(method: &str, branch: &str, sent_by: &str) -> SipMessage {
    let text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP {sent_by};branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
Route: <sip:proxy.example.com;lr>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: call-{branch}@example.com\r\n\
CSeq: 7 {method}\r\n\
Contact: <sip:alice@{sent_by}>\r\n\
Content-Length: 0\r\n\r\n"
    );
    parse(Bytes::from(text)).expect("test request parses")
}

pub(crate) fn invite(branch: &str) -> SipMessage {
    request("INVITE", branch, "client.example.com:5060")
}

/// The ACK a UAC sends for a non-2xx final to `invite` (same branch).
pub(crate) fn ack_for(invite: &SipMessage, to_tag: &str) -> SipMessage {
    let text = String::from_utf8_lossy(&invite.to_bytes())
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replace(" INVITE\r\n", " ACK\r\n")
        .replace(
            "To: <sip:bob@example.com>",
            &format!("To: <sip:bob@example.com>;tag={to_tag}"),
        );
    parse(Bytes::from(text)).expect("ack parses")
}

/// A response to `req` (with a To tag unless 100).
pub(crate) fn response(req: &SipMessage, status: u16) -> SipMessage {
    let b = response_to(req, status, None).expect("response_to");
    let b = if status == 100 { b } else { b.to_tag("b1") };
    b.build().expect("response builds")
}

/// A `TransactionLayer` in simulated time with an output log.
pub(crate) struct Harness {
    pub(crate) layer: TransactionLayer,
    pub(crate) now: Instant,
    pub(crate) log: Vec<(Duration, Output)>,
}

impl Harness {
    pub(crate) fn new() -> Harness {
        Harness::with(LayerConfig::default())
    }

    pub(crate) fn with(config: LayerConfig) -> Harness {
        Harness {
            layer: TransactionLayer::new(config),
            now: epoch(),
            log: Vec::new(),
        }
    }

    /// Time since the harness started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - epoch()
    }

    fn collect(&mut self) {
        let at = self.elapsed();
        for o in self.layer.take_outputs() {
            self.log.push((at, o));
        }
    }

    /// Advances simulated time by `d`, ticking at every deadline on the way.
    pub(crate) fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(at) = self.layer.next_deadline() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.layer.on_tick(self.now);
            self.collect();
        }
        self.now = target;
    }

    pub(crate) fn send(&mut self, req: SipMessage, transport: Transport) -> TransactionKey {
        let k = self
            .layer
            .send_request(req, peer(), transport, self.now)
            .expect("send_request");
        self.collect();
        k
    }

    pub(crate) fn recv_response(&mut self, resp: SipMessage) {
        self.layer.on_response(resp, self.now);
        self.collect();
    }

    pub(crate) fn recv_request(&mut self, req: SipMessage, transport: Transport) {
        self.layer.on_request(req, peer(), transport, self.now);
        self.collect();
    }

    pub(crate) fn respond(&mut self, key: &TransactionKey, resp: &SipMessage) {
        self.layer
            .send_response(key, resp, self.now)
            .expect("send_response");
        self.collect();
    }

    /// Times (since start) and bytes of every transmission.
    pub(crate) fn transmits(&self) -> Vec<(Duration, Bytes)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Transmit { bytes, .. } => Some((*at, bytes.clone())),
                Output::ToTu(_) => None,
            })
            .collect()
    }

    /// Transmissions whose start line begins with `prefix`.
    pub(crate) fn transmits_of(&self, prefix: &str) -> Vec<Duration> {
        self.transmits()
            .into_iter()
            .filter(|(_, b)| b.starts_with(prefix.as_bytes()))
            .map(|(at, _)| at)
            .collect()
    }

    pub(crate) fn tu_events(&self) -> Vec<TuEvent> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::ToTu(e) => Some(e.clone()),
                Output::Transmit { .. } => None,
            })
            .collect()
    }

    /// The key of the last `TuEvent::Request`.
    pub(crate) fn last_request_key(&self) -> TransactionKey {
        self.tu_events()
            .into_iter()
            .rev()
            .find_map(|e| match e {
                TuEvent::Request { key, .. } => Some(key),
                _ => None,
            })
            .expect("a request reached the TU")
    }

    pub(crate) fn clear_log(&mut self) {
        self.log.clear();
    }
}

pub(crate) fn secs(v: &[f64]) -> Vec<Duration> {
    v.iter().map(|s| Duration::from_secs_f64(*s)).collect()
}
