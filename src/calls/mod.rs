//! What the B2BUA's call tasks share with the rest of the service: the
//! table of live calls (the API lists and controls them, ringing skips the
//! busy agents), the per-call SIP traces (debugging), and the recovery of
//! the calls a killed process left behind.

pub mod live;
pub mod recovery;
pub mod trace;

pub use live::{CallControl, CallState, LegRole, LegState, LiveCall, LiveCalls, LiveLeg};
pub use trace::{SipTraces, TraceDirection, TracedMessage};
