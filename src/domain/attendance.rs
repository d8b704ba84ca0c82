//! Attendances (*atendimentos*): one per customer call, numbered by its
//! protocol, with its outcome and recording.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttendanceStatus {
    Ringing,
    InProgress,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    CallerHangup,
    AgentHangup,
    Abandoned,
    NoAnswer,
    Rejected,
    Transferred,
    AfterHours,
    Api,
    Inactivity,
    Failed,
}

/// Who saw the call: the bridge's own SIP legs, or Asterisk through AMI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallSource {
    Sip,
    Ami,
}

/// One move of the call to another place, kept in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Transfer {
    pub at: DateTime<Utc>,
    pub from_agent_id: Option<i64>,
    pub target: String,
    pub department_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordingInfo {
    pub duration_ms: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attendance {
    pub protocol: String,
    pub direction: Direction,
    pub status: AttendanceStatus,
    pub department_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub caller: String,
    pub callee: String,
    pub opened_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<CloseReason>,
    pub source: CallSource,
    pub transfers: Vec<Transfer>,
    pub recording: Option<RecordingInfo>,
    /// Where Asterisk stored its own recording of the call (MixMonitor), as
    /// Asterisk announced it: a path on the PBX, not downloadable here.
    pub recording_remote_path: Option<String>,
}

macro_rules! text_enum {
    ($t:ty {$($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self {$(Self::$v => $s),* }
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {$($s => Ok(Self::$v),)* other => Err(format!("unknown value {other:?}")) }
            }
        }
    };
}

text_enum!(Direction {Inbound = "inbound", Outbound = "outbound", Internal = "internal" });
text_enum!(AttendanceStatus {Ringing = "ringing", InProgress = "in_progress", Closed = "closed" });
text_enum!(CallSource {Sip = "sip", Ami = "ami" });
text_enum!(CloseReason {
    CallerHangup = "caller_hangup",
    AgentHangup = "agent_hangup",
    Abandoned = "abandoned",
    NoAnswer = "no_answer",
    Rejected = "rejected",
    Transferred = "transferred",
    AfterHours = "after_hours",
    Api = "api",
    Inactivity = "inactivity",
    Failed = "failed",
});
