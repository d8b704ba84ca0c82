//! The B2BUA: calls that reach the bridge over SIP. Each call is a task
//! that owns its legs (the caller's UAS dialog, the agents' UAC forks), its
//! ring ([`crate::routing::Ring`]), its media relay and recording, and its
//! attendance; signalling (`crate::signalling`) routes messages to it by
//! Call-ID and sends what it asks through the SIP stack.

mod call;
mod engine;
mod fork;
pub mod live;
mod originations;
mod plan;
pub mod recovery;
mod services;
mod signal;
mod task;
pub mod trace;

pub use call::{
    CallConfig, CallEnv, Control, IncomingCall, Input, MediaOp, NotOriginated, OriginateCall,
    Output,
};
pub use engine::CallEngine;
pub use live::{CallControl, CallState, LegRole, LegState, LiveCall, LiveCalls, LiveLeg};
pub use originations::{Originate, OriginateError, Originated, Originations};
pub use plan::CallPlan;
pub use services::{CallHandles, CallSettings};
pub use signal::{CallInput, Command};
/// The header that carries the attendance protocol on every INVITE the
/// bridge sends for a call (SPEC §4).
pub const X_PROTOCOL: &str = "X-Protocol";

pub use trace::{SipTraces, TraceDirection, TracedMessage};
