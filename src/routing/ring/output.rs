//! What a ring tells its driver, and how a fork can fail.

use crate::domain::{AfterHours, CloseReason, Id};

/// How the ring came to a department.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The department the caller dialled.
    Called,
    /// Rung out (or nobody available) in `from`.
    Overflow { from: Id },
    /// `from` was closed and its `after_hours` names this department.
    AfterHours { from: Id },
}

/// Where a closed department sends its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterHoursTarget {
    Department(Id),
    Number(String),
    Hangup,
}

impl AfterHoursTarget {
    /// `None` (no `after_hours` configured) hangs up.
    pub fn from_config(config: Option<&AfterHours>) -> Self {
        match config {
            Some(AfterHours {
                department_id: Some(d),
                ..
            }) => Self::Department(*d),
            Some(AfterHours {
                number: Some(n), ..
            }) => Self::Number(n.clone()),
            _ => Self::Hangup,
        }
    }
}

/// The reason a ring gives when it pauses an agent.
pub const MISSED_CALLS: &str = "missed_calls";

/// Why an agent's fork ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// 486 Busy Here, 600 Busy Everywhere.
    Busy,
    /// 603 Decline: the agent refused this call.
    Declined,
    /// 408 / 480 after ringing: the phone itself gave up, which counts as
    /// letting the call ring out.
    NoAnswer,
    /// Anything else: no response, transport error, 404, 5xx…
    Unreachable,
}

impl FailReason {
    /// The reason for a final non-2xx answer to the agent's INVITE.
    pub fn from_status(status: u16) -> Self {
        match status {
            486 | 600 => Self::Busy,
            603 => Self::Declined,
            408 | 480 => Self::NoAnswer,
            _ => Self::Unreachable,
        }
    }
}

/// How the ring ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered {
        agent: Id,
        department: Id,
    },
    /// Rung out, or nobody available, with no overflow department left (or
    /// an overflow loop cut).
    NoAnswer {
        department: Id,
    },
    /// The caller hung up before anyone answered.
    Abandoned {
        department: Id,
    },
    /// Closed, and `after_hours` hangs up (or is not configured).
    AfterHoursHangup {
        department: Id,
    },
    /// Closed, and `after_hours` sends the call to an external number: the
    /// driver dials it through the outbound routes.
    AfterHoursNumber {
        department: Id,
        number: String,
    },
}

impl Outcome {
    /// The attendance's close reason when the ring ended the call;
    /// `None` when the call goes on (answered, or forwarded to a number,
    /// where the attendance already recorded `after_hours`).
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self {
            Outcome::Answered { .. } | Outcome::AfterHoursNumber { .. } => None,
            Outcome::NoAnswer { .. } => Some(CloseReason::NoAnswer),
            Outcome::Abandoned { .. } => Some(CloseReason::Abandoned),
            Outcome::AfterHoursHangup { .. } => Some(CloseReason::AfterHours),
        }
    }

    /// The department the call was in when the ring ended.
    pub fn department(&self) -> Id {
        match self {
            Outcome::Answered { department, .. }
            | Outcome::NoAnswer { department }
            | Outcome::Abandoned { department }
            | Outcome::AfterHoursHangup { department }
            | Outcome::AfterHoursNumber { department, .. } => *department,
        }
    }
}

/// One thing for the driver to do or record, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Event: the call is now in `department` (attendance `department_id`,
    /// events); one per department, overflow and after-hours moves included.
    EnteredDepartment { department: Id, via: Entry },
    /// Event: `department` is closed (period or holiday); the attendance
    /// records `after_hours`. What follows depends on `target`.
    AfterHours {
        department: Id,
        target: AfterHoursTarget,
    },
    /// Action: start a fork (INVITE) to each of these agents, for
    /// `department`'s call.
    RingAgents { department: Id, agents: Vec<Id> },
    /// Action: CANCEL these agents' forks. A 200 OK that still arrives for
    /// one of them must be fed to [`super::Ring::agent_answered`], which
    /// answers [`Output::HangUpLateAnswer`].
    CancelAgents(Vec<Id>),
    /// Event: the agent's phone rang until the timeout (or gave up by
    /// itself) on this department's call: a missed call.
    RangOut { agent: Id, department: Id },
    /// Action: bridge the caller with this agent. At most once per ring.
    Connect { agent: Id, department: Id },
    /// Action: this agent answered a fork the ring no longer wants (after
    /// its CANCEL, after the ring moved on, or after someone else won): ACK
    /// and BYE it.
    HangUpLateAnswer(Id),
    /// Action: dial this external number for the caller (after hours).
    ForwardToNumber(String),
    /// Action: pause the agent with `reason` ([`MISSED_CALLS`]) and emit
    /// `agent.paused`. Decided by [`super::MissedCalls`] when draining.
    PauseAgent { agent: Id, reason: &'static str },
    /// Event: the overflow or after-hours chain came back to a department
    /// it already visited; the ring ends instead of looping.
    LoopCut { from: Id, to: Id },
    /// Event: the ring is over; always last, exactly once.
    Finished(Outcome),
}
