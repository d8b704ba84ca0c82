//! The call's entry in the live-call table (`GET /calls`), rebuilt from
//! its state whenever something visible changes.

use super::{Call, Stage};
use crate::calls::fork::ForkState;
use crate::calls::live::{CallState, LegRole, LegState, LiveCall, LiveLeg};
use crate::domain::Direction;

impl Call {
    /// What `GET /calls` shows of this call now.
    pub(super) fn snapshot(&self) -> LiveCall {
        let over = self.ending.is_some() || self.stage == Stage::Finished;
        let (extension, agent_id, state) = match self.origin_leg_state() {
            // Click-to-call: the extension (and its agent) is on the call
            // once claimed and rung.
            Some((_, None)) => (None, None, LegState::Calling),
            Some((agent, Some(state))) => (Some(self.caller_number.clone()), agent, state),
            None => (
                (self.direction == Direction::Internal).then(|| self.caller_number.clone()),
                None,
                if self.answered_at.is_some() {
                    LegState::Answered
                } else {
                    LegState::Calling
                },
            ),
        };
        let mut legs = vec![LiveLeg {
            role: LegRole::Caller,
            call_id: self.call_id.clone(),
            peer: self.caller.source.to_string(),
            extension,
            agent_id,
            state: if over { LegState::Ended } else { state },
        }];
        let current = self.agent.as_ref().map(|a| a.fork);
        for (i, f) in self.forks.iter().enumerate() {
            legs.push(LiveLeg {
                role: LegRole::Agent,
                call_id: f.call_id.clone(),
                peer: f.destination.to_string(),
                extension: Some(f.extension.clone()),
                agent_id: f.agent,
                state: match f.state {
                    _ if over => LegState::Ended,
                    ForkState::Calling => LegState::Calling,
                    ForkState::Ringing => LegState::Ringing,
                    ForkState::Answered if current == Some(i) => LegState::Answered,
                    _ => LegState::Ended,
                },
            });
        }
        LiveCall {
            id: self.protocol.clone(),
            protocol: self.protocol.clone(),
            direction: self.direction,
            state: if over {
                CallState::Ending
            } else if self.answered_at.is_some() {
                CallState::Answered
            } else {
                CallState::Ringing
            },
            department_id: self.department.as_ref().map(|d| d.id),
            agent_id: self.agent_id,
            caller: self.caller_number.clone(),
            callee: self.callee.clone(),
            since: self.since,
            answered_at: self.answered_at,
            legs,
        }
    }

    pub(super) fn publish(&mut self) {
        if self.stage != Stage::Live {
            return;
        }
        self.env.publish(self.snapshot());
    }
}
