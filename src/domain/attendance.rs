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

/// The one close rule when a call ends (SPEC §4 "When a call ends"): does
/// its attendance close, or stay `in_progress` for someone to go on with?
/// `department_closes_on_hangup` is the call's (current) department's
/// `close_on_hangup`, `None` when the call has no department.
///
/// - Never answered: always closed. Nobody talked, so there is no
///   conversation to go on with, whatever the department says.
/// - Answered, in a department: closed when the department closes on
///   hangup; otherwise it stays open until the API or the inactivity rule
///   closes it (the department's team follows up).
/// - Answered, no department (an extension-to-extension or outbound call):
///   closed, since no team exists to go on with it and nothing else would
///   ever close it but inactivity.
///
/// Every engine that ends calls applies this same function: the SIP call,
/// the AMI follower and crash recovery.
pub fn closes_when_call_ends(answered: bool, department_closes_on_hangup: Option<bool>) -> bool {
    !answered || department_closes_on_hangup.unwrap_or(true)
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

#[cfg(test)]
mod close_rule_tests {
    use super::closes_when_call_ends;

    #[test]
    fn unanswered_always_closes_answered_follows_the_department() {
        for department in [Some(true), Some(false), None] {
            assert!(closes_when_call_ends(false, department));
        }
        assert!(closes_when_call_ends(true, Some(true)));
        assert!(!closes_when_call_ends(true, Some(false)));
        assert!(closes_when_call_ends(true, None));
    }
}
