//! Call routing decisions: which trunk carries a dialled number, and how a
//! department's agents ring ([`ring`]: a state machine with no I/O).

pub mod outbound;
mod pattern;
pub mod ring;

pub use outbound::{OutboundDial, RouteRefusal, route_call, route_forward};
pub use pattern::{DialPattern, PatternError};
pub use ring::{
    AfterHoursTarget, AgentEntry, AgentState, Directory, Entry, FailReason, MISSED_CALLS,
    MissedCalls, Outcome, Output, Ring,
};
