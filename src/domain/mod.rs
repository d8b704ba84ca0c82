//! The domain vocabulary shared by the admin API, the store and the call
//! engine: one definition of what an extension, a department or an
//! attendance is, so the three can never drift apart.
//!
//! Each resource has a *representation* (what the API returns and the store
//! loads: never a secret) and an *input* (what an admin writes: strict, with
//! unknown fields refused). Inputs validate their own fields; rules that need
//! other rows (uniqueness, references, loops) live in the store.

mod acl;
mod agent;
mod attendance;
mod attendance_change;
mod department;
mod digest_algorithm;
mod extension;
#[cfg(test)]
pub(crate) mod fixtures;
mod holiday;
mod net;
mod outbound_route;
mod pbx;
mod period;
mod protocol;
mod registration;
mod token;
mod trunk;
mod trunk_registration;
mod validation;
mod webhook;

pub use acl::{AclAction, AclApplies, AclRule, AclRuleInput};
pub use agent::{Agent, AgentInput, Membership, Pause, PauseInput, Presence};
pub use attendance::{
    Attendance, AttendanceStatus, CallSource, CloseReason, Direction, RecordingInfo, Transfer,
    closes_when_call_ends,
};
pub use attendance_change::AttendanceChange;
pub use department::{AfterHours, Department, DepartmentInput, RingStrategy, RingTarget};
pub use digest_algorithm::DigestAlgorithm;
pub use extension::{Extension, ExtensionInput, FollowMe};
pub use holiday::{Holiday, HolidayInput};
pub use outbound_route::{OutboundRoute, OutboundRouteInput};
pub use pbx::{Pbx, PbxInput};
pub use period::{Period, PeriodInput, TimeRange, Weekday};
pub use protocol::{Protocol, ProtocolError};
pub use registration::{AuthLockout, Registration, Registrations};
pub use token::{ApiToken, ApiTokenInput, Scope};
pub use trunk::{DidRoute, Transport, Trunk, TrunkInput};
pub use trunk_registration::{TrunkRegState, TrunkRegistration};
pub use validation::{FieldError, FieldErrors};
pub use webhook::{EventType, Webhook, WebhookDelivery, WebhookInput};

/// Row identifier of every configured resource.
pub type Id = i64;

/// Timestamps travel as RFC 3339 UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
