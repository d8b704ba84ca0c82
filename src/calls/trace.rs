//! Per-call SIP traces (SPEC §5 "Debugging"): every SIP message a call
//! exchanged, by protocol, served at `GET /calls/{id}/sip-trace` while the
//! call lives and for a while after it ended, so "the call dropped" can be
//! diagnosed from the API without a packet capture.
//!
//! Memory is bounded on every axis, because the trace sits on the path of
//! every SIP message and must never be what takes the node down:
//!
//! * a message keeps at most [`MAX_MESSAGE_BYTES`] of its text;
//! * a call keeps at most `max_messages_per_call` messages: the first half
//!   and the last half (set-up and tear-down are what a diagnosis needs;
//!   the middle of a long call is mostly re-INVITEs and OPTIONS), counting
//!   the ones dropped in between;
//! * an ended call's trace is kept for `keep_for`, and at most
//!   `keep_ended_calls` of them (oldest evicted first); expiry is checked
//!   lazily, on every record, end and read, so no timer task is needed;
//! * all traces together stay under a byte budget ([`DEFAULT_MAX_BYTES`]):
//!   past it, ended traces are evicted oldest first;
//! * live traces are capped in number too, in case a call task never calls
//!   [`SipTraces::end`]: past the cap, the trace idle longest is dropped.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Text kept of one message; the rest is replaced by a note of its size.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Bytes kept of a first line (a garbage datagram may have no line break).
const MAX_FIRST_LINE: usize = 512;
/// Bytes kept of a Call-ID.
const MAX_CALL_ID: usize = 256;
/// Default budget for all traces together.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;
/// Live traces kept at least, whatever `keep_ended_calls` says.
const MIN_LIVE_CAP: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TraceDirection {
    /// Received by the bridge.
    In,
    /// Sent by the bridge.
    Out,
}

/// One SIP message as it crossed the wire.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TracedMessage {
    // `DateTime<Utc>` (= `domain::Timestamp`) spelled out for the OpenAPI
    // derive.
    pub at: DateTime<Utc>,
    pub direction: TraceDirection,
    /// The remote address (`ip:port`).
    pub peer: String,
    /// `udp` or `tcp`.
    pub transport: String,
    pub call_id: String,
    /// Request line or status line.
    pub first_line: String,
    /// The whole message (lossy UTF-8), cut at [`MAX_MESSAGE_BYTES`].
    pub message: String,
}

impl TracedMessage {
    /// What the message costs in memory, roughly.
    fn weight(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.peer.len()
            + self.transport.len()
            + self.call_id.len()
            + self.first_line.len()
            + self.message.len()
    }
}

/// A trace as read: the messages kept, in order, and how many were dropped
/// from the middle to stay within the per-call bound.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSnapshot {
    pub messages: Vec<TracedMessage>,
    pub dropped: u64,
    pub ended: bool,
}

struct Trace {
    /// The first messages, up to `head_cap`.
    head: Vec<TracedMessage>,
    /// The latest messages after the head, up to `tail_cap`.
    tail: VecDeque<TracedMessage>,
    dropped: u64,
    bytes: usize,
    ended: bool,
    last: Instant,
}

struct Traces {
    head_cap: usize,
    tail_cap: usize,
    keep_ended: usize,
    keep_for: Duration,
    max_bytes: usize,
    max_live: usize,
    traces: HashMap<String, Trace>,
    /// Ended traces in the order they ended, with when.
    ended: VecDeque<(Instant, String)>,
    bytes: usize,
}

impl Traces {
    fn evict_ended(&mut self, now: Instant) {
        while let Some((at, protocol)) = self.ended.front() {
            let expired = now.saturating_duration_since(*at) >= self.keep_for;
            let too_many = self.ended.len() > self.keep_ended;
            let too_big = self.bytes > self.max_bytes;
            if !(expired || too_many || too_big) {
                break;
            }
            let protocol = protocol.clone();
            self.ended.pop_front();
            self.forget(&protocol);
        }
    }

    fn forget(&mut self, protocol: &str) {
        if let Some(t) = self.traces.remove(protocol) {
            self.bytes = self.bytes.saturating_sub(t.bytes);
        }
    }

    /// Makes room for one more live trace by dropping the one idle longest.
    fn cap_live(&mut self) {
        let live = self.traces.len().saturating_sub(self.ended.len());
        if live < self.max_live {
            return;
        }
        let idlest = self
            .traces
            .iter()
            .filter(|(_, t)| !t.ended)
            .min_by_key(|(_, t)| t.last)
            .map(|(p, _)| p.clone());
        if let Some(p) = idlest {
            tracing::warn!(protocol = %p, "SIP trace dropped: too many live traces (a call never ended its trace?)");
            self.forget(&p);
        }
    }

    fn push(&mut self, protocol: &str, msg: TracedMessage, now: Instant) {
        if !self.traces.contains_key(protocol) {
            self.cap_live();
        }
        let (head_cap, tail_cap) = (self.head_cap, self.tail_cap);
        let trace = self
            .traces
            .entry(protocol.to_owned())
            .or_insert_with(|| Trace {
                head: Vec::new(),
                tail: VecDeque::new(),
                dropped: 0,
                bytes: 0,
                ended: false,
                last: now,
            });
        trace.last = now;
        let weight = msg.weight();
        let mut freed = 0;
        if trace.head.len() < head_cap {
            trace.head.push(msg);
        } else if tail_cap == 0 {
            trace.dropped += 1;
            return;
        } else {
            trace.tail.push_back(msg);
            if trace.tail.len() > tail_cap
                && let Some(old) = trace.tail.pop_front()
            {
                freed = old.weight();
                trace.dropped += 1;
            }
        }
        trace.bytes = trace.bytes + weight - freed;
        self.bytes = self.bytes + weight - freed;
    }
}

/// The SIP traces of this node's calls, by protocol. Cheap to clone
/// (shared).
#[derive(Clone)]
pub struct SipTraces(Arc<Mutex<Traces>>);

impl SipTraces {
    pub fn new(max_messages_per_call: usize, keep_ended_calls: usize, keep_for: Duration) -> Self {
        Self(Arc::new(Mutex::new(Traces {
            head_cap: max_messages_per_call - max_messages_per_call / 2,
            tail_cap: max_messages_per_call / 2,
            keep_ended: keep_ended_calls,
            keep_for,
            max_bytes: DEFAULT_MAX_BYTES,
            max_live: keep_ended_calls.max(MIN_LIVE_CAP),
            traces: HashMap::new(),
            ended: VecDeque::new(),
            bytes: 0,
        })))
    }

    /// The same traces with another budget for all of them together.
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        self.lock().max_bytes = max_bytes;
        self
    }

    // A panic elsewhere while holding the lock leaves the traces usable
    // (each operation keeps them consistent), so tracing goes on.
    fn lock(&self) -> MutexGuard<'_, Traces> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a message of call `protocol` that was received (`In`) from, or
    /// sent (`Out`) to, `peer`. Works on the raw bytes, before or after
    /// parsing, so even a message the parser refuses can be traced.
    pub fn record(
        &self,
        protocol: &str,
        direction: TraceDirection,
        peer: SocketAddr,
        transport: &str,
        bytes: &[u8],
    ) {
        let msg = traced(Utc::now(), direction, peer, transport, bytes);
        self.record_at(protocol, msg, Instant::now());
    }

    fn record_at(&self, protocol: &str, msg: TracedMessage, now: Instant) {
        let mut t = self.lock();
        t.push(protocol, msg, now);
        t.evict_ended(now);
    }

    /// The call is over: its trace is kept for `keep_for` from now (later
    /// retransmissions are still added to it).
    pub fn end(&self, protocol: &str) {
        self.end_at(protocol, Instant::now());
    }

    fn end_at(&self, protocol: &str, now: Instant) {
        let mut t = self.lock();
        if let Some(trace) = t.traces.get_mut(protocol)
            && !trace.ended
        {
            trace.ended = true;
            t.ended.push_back((now, protocol.to_owned()));
        }
        t.evict_ended(now);
    }

    /// The messages of `protocol`, oldest first, if its trace is kept.
    pub fn get(&self, protocol: &str) -> Option<Vec<TracedMessage>> {
        self.snapshot(protocol).map(|s| s.messages)
    }

    /// As [`SipTraces::get`], with what was dropped and whether it ended.
    pub fn snapshot(&self, protocol: &str) -> Option<TraceSnapshot> {
        self.snapshot_at(protocol, Instant::now())
    }

    fn snapshot_at(&self, protocol: &str, now: Instant) -> Option<TraceSnapshot> {
        let mut t = self.lock();
        t.evict_ended(now);
        let trace = t.traces.get(protocol)?;
        Some(TraceSnapshot {
            messages: trace.head.iter().chain(&trace.tail).cloned().collect(),
            dropped: trace.dropped,
            ended: trace.ended,
        })
    }
}

/// Builds the traced form of a message: cheap scans only, no SIP parse.
fn traced(
    at: DateTime<Utc>,
    direction: TraceDirection,
    peer: SocketAddr,
    transport: &str,
    bytes: &[u8],
) -> TracedMessage {
    let kept = &bytes[..bytes.len().min(MAX_MESSAGE_BYTES)];
    let mut message = String::from_utf8_lossy(kept).into_owned();
    if kept.len() < bytes.len() {
        message.push_str(&format!("\r\n[truncated: {} bytes in all]", bytes.len()));
    }
    let line_end = message
        .find("\r\n")
        .or_else(|| message.find('\n'))
        .unwrap_or(message.len());
    let first_line = cut(&message[..line_end], MAX_FIRST_LINE).to_owned();
    TracedMessage {
        at,
        direction,
        peer: peer.to_string(),
        transport: transport.to_owned(),
        call_id: call_id(bytes),
        first_line,
        message,
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The value of the first `Call-ID` (or compact `i`) header, or empty.
/// Stops at the end of the headers; folded lines are skipped.
fn call_id(bytes: &[u8]) -> String {
    let mut lines = bytes.split(|&b| b == b'\n');
    lines.next();
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            let value = String::from_utf8_lossy(line[colon + 1..].trim_ascii());
            return cut(&value, MAX_CALL_ID).to_owned();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests;
