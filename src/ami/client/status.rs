//! What the client shows the API: its status (`/api/v1/pbx/status`,
//! `/readyz`) and why an action it was asked for did not happen.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ami::session::SessionState;

/// What `/api/v1/pbx/status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AmiStatus {
    /// `pbx.enabled` as last read.
    pub enabled: bool,
    /// `disconnected | connecting | banner | authenticating | connected |
    /// backoff | auth_failed`.
    pub state: String,
    pub connected: bool,
    pub last_error: Option<String>,
    /// When the state last changed.
    pub since: DateTime<Utc>,
    /// Next connection attempt (in backoff or after a refused login).
    pub retry_at: Option<DateTime<Utc>>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Successful logins since start.
    pub logins: u64,
}

impl AmiStatus {
    pub(super) fn idle(enabled: bool, last_error: Option<String>) -> Self {
        AmiStatus {
            enabled,
            state: SessionState::Disconnected.as_str().into(),
            connected: false,
            last_error,
            since: Utc::now(),
            retry_at: None,
            host: None,
            port: None,
            logins: 0,
        }
    }

    /// `/readyz`'s short word: `disabled` or the state.
    pub fn summary(&self) -> &str {
        if self.enabled {
            &self.state
        } else {
            "disabled"
        }
    }
}

/// Why an action from the API did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmiActionError {
    #[error("the PBX is not enabled")]
    Disabled,
    #[error("AMI is not connected ({0})")]
    NotConnected(String),
    #[error("no live Asterisk call {0}")]
    NoSuchCall(String),
    #[error("Asterisk refused {action}: {message}")]
    Refused { action: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{action} failed: {reason}")]
    Failed { action: String, reason: String },
}
