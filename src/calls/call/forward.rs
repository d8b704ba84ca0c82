//! Forwarding beyond the bridge: an extension's follow-me (*siga-me*) and
//! a closed department's after-hours `{number}`. Both hand the caller,
//! still hearing its 180, to the one outbound path ([`super::outbound`]:
//! the route's trunks in order, failover, the carrier's challenge), so the
//! protocol, the `X-Protocol` header, the relay and the recording are the
//! call's own; the attendance records where the call went as a transfer
//! (`follow_me:<number>`, `after_hours:<number>`).
//!
//! Follow-me rings the extension for `ring_first_s` first (when it can be
//! rung at all: registered and free), then cancels it and dials the number;
//! with 0, or an extension that cannot ring, the number at once. Any end of
//! that first ring without an answer (time, busy, declined, unreachable)
//! moves on to the number: that is what its owner asked for. The number is
//! routed with the called extension's permissions, as a PBX does, since it
//! is the extension's owner who forwards their calls.
//!
//! An after-hours number is routed by the first matching route whatever it
//! allows ([`crate::routing::route_forward`]: no extension dials it), and
//! the attendance closes `after_hours` when the call ends, whatever the
//! outcome, answered or not: the department is closed and no team follows
//! the call up.

use super::Call;
use crate::domain::{AttendanceChange, CloseReason, FollowMe, Id, Transfer};
use crate::routing::{RouteRefusal, route_call, route_forward};

/// A number the call goes to when the bridge forwards it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Forward {
    pub number: String,
    pub kind: ForwardKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ForwardKind {
    /// The follow-me of the extension with this id (whose route
    /// permissions apply).
    FollowMe {
        extension_id: Id,
    },
    AfterHours,
}

impl Forward {
    /// The extension's follow-me, when it is on and has a number.
    pub fn follow_me(extension_id: Id, follow_me: &FollowMe) -> Option<Forward> {
        let number = follow_me
            .number
            .as_deref()
            .filter(|n| follow_me.enabled && !n.is_empty())?;
        Some(Forward {
            number: number.to_owned(),
            kind: ForwardKind::FollowMe { extension_id },
        })
    }

    /// The target the attendance's transfer history shows.
    fn label(&self) -> String {
        match self.kind {
            ForwardKind::FollowMe { .. } => format!("follow_me:{}", self.number),
            ForwardKind::AfterHours => format!("after_hours:{}", self.number),
        }
    }
}

impl Call {
    /// Dials `forward` through the outbound routes; when no route carries
    /// it, the call ends as its ring would have: 480 (or 503 for a route
    /// without trunks), closed `no_answer`/`failed` for follow-me and
    /// `after_hours` after hours.
    pub(super) fn forward(&mut self, forward: Forward) {
        let plan = self.env.plan();
        let routed = match forward.kind {
            ForwardKind::FollowMe { extension_id } => {
                route_call(plan.routes(), Some(extension_id), &forward.number)
            }
            ForwardKind::AfterHours => route_forward(plan.routes(), &forward.number),
        };
        if forward.kind == ForwardKind::AfterHours {
            self.closes_as = Some(CloseReason::AfterHours);
        }
        let dial = match routed {
            Ok(dial) => dial,
            Err(refusal) => {
                tracing::warn!(protocol = %self.protocol, call_id = %self.call_id, number = %forward.number, ?forward.kind, reason = %refusal, "cannot forward the call: no outbound route carries the number");
                let (reason, status) = match (&refusal, forward.kind) {
                    (_, ForwardKind::AfterHours) => (
                        CloseReason::AfterHours,
                        if matches!(refusal, RouteRefusal::NoTrunk(_)) {
                            503
                        } else {
                            480
                        },
                    ),
                    (RouteRefusal::NoTrunk(_), _) => (CloseReason::Failed, 503),
                    _ => (CloseReason::NoAnswer, 480),
                };
                self.end_unanswered(reason, status);
                return;
            }
        };
        tracing::info!(protocol = %self.protocol, call_id = %self.call_id, number = %forward.number, route = %dial.route, ?forward.kind, "forwarding the call beyond the bridge");
        let at = self.wall();
        self.record(AttendanceChange::Transferred(Transfer {
            at,
            from_agent_id: None,
            target: forward.label(),
            department_id: None,
        }));
        self.start_outbound(dial);
    }
}
