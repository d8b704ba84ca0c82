//! Placeholder of the per-call SIP trace (replaced by the calls-api branch).

use std::net::SocketAddr;

use serde::Serialize;

use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceDirection {
    In,
    Out,
}

#[derive(Debug, Clone, Serialize)]
pub struct TracedMessage {
    pub at: Timestamp,
    pub direction: TraceDirection,
    pub peer: String,
    pub transport: String,
    pub call_id: String,
    pub first_line: String,
    pub message: String,
}

#[derive(Clone)]
pub struct SipTraces {}

impl SipTraces {
    pub fn new(_max: usize, _keep: usize, _for: std::time::Duration) -> Self {
        SipTraces {}
    }
    pub fn record(&self, _p: &str, _d: TraceDirection, _peer: SocketAddr, _t: &str, _b: &[u8]) {}
    pub fn end(&self, _p: &str) {}
    pub fn get(&self, _p: &str) -> Option<Vec<TracedMessage>> {
        None
    }
}
