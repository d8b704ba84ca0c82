//! What happens to an attendance while its call goes on, as the call engine
//! reports it: the vocabulary between the call core (which decides) and the
//! ledger (which makes it durable and writes it to the database in order).

use serde::{Deserialize, Serialize};

use super::{CloseReason, Id, Timestamp, Transfer};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum AttendanceChange {
    /// Moved to a department and/or taken by an agent (`None` keeps what
    /// is recorded).
    Assigned {
        department_id: Option<Id>,
        agent_id: Option<Id>,
        at: Timestamp,
    },
    /// First answer wins (status ringing → in_progress).
    Answered { agent_id: Option<Id>, at: Timestamp },
    /// Appended to `transfers`; a department transfer moves the attendance
    /// there.
    Transferred(Transfer),
    /// The call ended; `close` = `Some(reason)` closes it in the same step
    /// (the caller applied [`super::closes_when_call_ends`]).
    Ended {
        at: Timestamp,
        close: Option<CloseReason>,
    },
    /// Recording linked: path relative to the recordings dir.
    RecordingAttached {
        path: String,
        duration_ms: u64,
        bytes: u64,
        sha256: String,
    },
}
