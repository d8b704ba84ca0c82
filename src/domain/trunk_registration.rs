//! What `GET /api/v1/trunks/{id}/status` shows: the bridge's registration
//! with the trunk's registrar (SPEC §9 "Alone").

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrunkRegState {
    /// Not bound (not yet answered, or unregistered).
    Unregistered,
    /// A REGISTER is under way and no binding is held.
    Registering,
    /// Bound until `expires_at`; refreshed before then.
    Registered,
    /// The registrar refused the credentials (403, or a second
    /// challenge); retried slowly.
    AuthFailed,
    /// The last attempt failed (timeout, 5xx, other rejection, the host
    /// does not resolve); retried with exponential backoff.
    Failed,
    /// The trunk does not register (`register: false`).
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TrunkRegistration {
    pub trunk_id: i64,
    pub state: TrunkRegState,
    /// While registered: when the binding runs out.
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed (cleared by a success).
    pub last_error: Option<String>,
    /// The last final SIP status the registrar answered.
    pub last_status: Option<u16>,
    /// When the next REGISTER goes out (none while one is in flight).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl TrunkRegistration {
    /// A trunk that does not register.
    pub fn disabled(trunk_id: i64) -> TrunkRegistration {
        TrunkRegistration {
            trunk_id,
            state: TrunkRegState::Disabled,
            expires_at: None,
            last_error: None,
            last_status: None,
            next_attempt_at: None,
        }
    }
}
