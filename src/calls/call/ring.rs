//! Ringing: the forks (one INVITE per agent or extension, each claimed in
//! the live-call table before it leaves, so two calls never ring one free
//! agent; at its bridge contact or through the PBX, see `reach`), the
//! department ring ([`Ring`]) that decides who rings when, and the forks'
//! responses.

use std::time::Duration;

use bytes::Bytes;

use super::forward::{Forward, ForwardKind};
use super::reach::Reach;
use super::{Call, DIRECT_RING, Ending, Output, Target};
use crate::calls::fork::{Fork, ForkRequest, ForkState, binding_route};
use crate::calls::live::{LegRole, LegState, LiveLeg};
use crate::calls::trace::TraceDirection;
use crate::domain::{AttendanceChange, CloseReason, Id, Transfer};
use crate::routing::{AfterHoursTarget, FailReason, Outcome, Output as RingOutput, Ring};
use crate::sip::dialog::ForkEvent;
use crate::sip::message::SipMessage;
use crate::sip::transaction::Transport;

/// Why a fork was not sent.
#[derive(Debug)]
pub(super) enum ForkRefused {
    /// The agent or extension is on another call (claimed first).
    Busy,
    Failed(String),
}

impl std::fmt::Display for ForkRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForkRefused::Busy => f.write_str("already in a call"),
            ForkRefused::Failed(e) => f.write_str(e),
        }
    }
}

impl Call {
    pub(super) fn ring_department(&mut self, department: Id) {
        let plan = self.env.plan();
        let (reachable, busy) = self.presence(&plan);
        let directory = plan.directory(&reachable, &busy, &self.env.idle_times());
        self.ring = Some(Ring::start(directory, department, self.now, self.wall()));
        self.drive_ring();
    }

    /// Rings extension `number` directly (a call or a transfer to it).
    /// With follow-me on ([`super::forward`]) it rings for `ring_first_s`
    /// and the number comes next, or the number at once when the extension
    /// cannot ring or `ring_first_s` is 0.
    pub(super) fn ring_extension(&mut self, number: &str) {
        let plan = self.env.plan();
        let extension = plan.extension(number);
        let follow_me = extension.and_then(|e| Forward::follow_me(e.id, &e.follow_me));
        let ring_for = match (&follow_me, extension) {
            (Some(_), Some(e)) => Duration::from_secs(u64::from(e.follow_me.ring_first_s)),
            _ => DIRECT_RING,
        };
        if let Some(forward) = follow_me.clone()
            && ring_for.is_zero()
        {
            tracing::info!(protocol = %self.protocol, extension = number, "follow-me: straight to the number");
            self.forward(forward);
            self.publish();
            return;
        }
        // At its bridge contact, or through the PBX (`reach`).
        let fork = self
            .reach(number)
            .and_then(|reach| self.start_fork(plan.agent_of_extension(number), number, reach));
        match fork {
            Ok(idx) => {
                self.direct = Some((idx, self.now + ring_for));
                self.follow_me = follow_me;
            }
            Err(e) => {
                let busy = matches!(e, ForkRefused::Busy);
                tracing::info!(protocol = %self.protocol, extension = number, error = %e, "cannot ring the extension");
                match (follow_me, busy) {
                    (Some(forward), _) => self.forward(forward),
                    (None, true) => self.end_unanswered(CloseReason::Rejected, 486),
                    (None, false) => self.end_unanswered(CloseReason::NoAnswer, 480),
                }
            }
        }
        self.publish();
    }

    fn start_fork(
        &mut self,
        agent: Option<Id>,
        extension: &str,
        reach: Reach,
    ) -> Result<usize, ForkRefused> {
        let fail = |e: &dyn std::fmt::Display| ForkRefused::Failed(e.to_string());
        let offer = self.offer_to_agent_side()?;
        let (route, to, caller) = match reach {
            Reach::Bridge(binding) => {
                let route = binding_route(&binding).map_err(|e| fail(&e))?;
                let to = format!("<sip:{extension}@{}>", self.env.local(route.2).host);
                (route, to, self.caller.from.clone())
            }
            // The rendered `bridge` endpoint: UDP, identified by our address.
            Reach::Pbx(pbx) => {
                let uri = format!("sip:{extension}@{pbx}");
                let route = (uri.parse().map_err(|e| fail(&e))?, pbx, Transport::Udp);
                (route, format!("<{uri}>"), self.caller_for_pbx())
            }
        };
        tracing::info!(protocol = %self.protocol, extension, destination = %route.1, "ringing");
        let local = self.env.local(route.2);
        let to = crate::sip::message::NameAddr::parse(&to).map_err(|e| fail(&e))?;
        let (fork, invite) = Fork::build(
            ForkRequest {
                agent,
                extension,
                route,
                to,
                caller: &caller,
                protocol: &self.protocol,
                sdp: offer,
                local: &local,
                call_id: None,
            },
            self.ids.as_mut(),
        )
        .map_err(|e| fail(&e))?;
        let leg_extension = Some(fork.extension.clone());
        self.launch_fork(fork, invite, leg_extension)
    }

    /// The caller's SDP rewritten so the far side sends its RTP to the
    /// bridge's agent-side port: the offer of every fork.
    pub(super) fn offer_to_agent_side(&self) -> Result<Bytes, ForkRefused> {
        let fail = |e: &dyn std::fmt::Display| ForkRefused::Failed(e.to_string());
        let text = std::str::from_utf8(&self.caller.sdp).map_err(|e| fail(&e))?;
        crate::media::sdp::rewrite(text, self.config.media_address, self.config.agent_port)
            .map(Bytes::from)
            .map_err(|e| fail(&e))
    }

    /// Claims the fork's leg in the live-call table (its agent or
    /// `extension` busy elsewhere: refused) and sends its INVITE.
    pub(super) fn launch_fork(
        &mut self,
        fork: Fork,
        invite: SipMessage,
        extension: Option<String>,
    ) -> Result<usize, ForkRefused> {
        let leg = LiveLeg {
            role: LegRole::Agent,
            call_id: fork.call_id.clone(),
            peer: fork.destination.to_string(),
            extension,
            agent_id: fork.agent,
            state: LegState::Calling,
        };
        if !self.env.claim(&self.protocol, leg) {
            return Err(ForkRefused::Busy);
        }
        self.send_request(invite, fork.destination, fork.transport);
        if let Some(since) = self.received.take() {
            self.out(Output::SetupMark {
                stage: "invite_to_fork",
                since,
            });
        }
        self.forks.push(fork);
        Ok(self.forks.len() - 1)
    }

    pub(super) fn fork_of_agent(&self, agent: Id) -> Option<usize> {
        self.forks.iter().rposition(|f| f.agent == Some(agent))
    }

    /// Runs the ring's outputs until it has nothing more to say.
    pub(super) fn drive_ring(&mut self) {
        loop {
            let mut outputs = Vec::new();
            {
                let Some(ring) = self.ring.as_mut() else {
                    return;
                };
                self.env
                    .with_missed(&mut |missed| outputs = ring.drain(missed));
            }
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                self.on_ring_output(output);
            }
        }
    }

    fn on_ring_output(&mut self, output: RingOutput) {
        let now = self.now;
        match output {
            RingOutput::EnteredDepartment { department, via } => {
                tracing::info!(protocol = %self.protocol, department, ?via, "call entered department");
                self.department = self.env.plan().department(department).cloned();
                // The called department is on the attendance already; only
                // a move (overflow, after hours, transfer) is written.
                if self.attendance_department != Some(department) {
                    self.attendance_department = Some(department);
                    let at = self.wall();
                    self.record(AttendanceChange::Assigned {
                        department_id: Some(department),
                        agent_id: None,
                        at,
                    });
                }
                self.publish();
            }
            RingOutput::AfterHours { department, target } => {
                tracing::info!(protocol = %self.protocol, department, ?target, "department closed: after hours");
                // A call sent on to the after-hours department keeps going:
                // its attendance says why it moved.
                if let AfterHoursTarget::Department(to) = target {
                    let at = self.wall();
                    self.record(AttendanceChange::Transferred(Transfer {
                        at,
                        from_agent_id: None,
                        target: "after_hours".to_owned(),
                        department_id: Some(to),
                    }));
                }
            }
            RingOutput::RingAgents { agents, .. } => {
                let plan = self.env.plan();
                for agent in agents {
                    let result = match plan.agent_extension(agent) {
                        None => Err(ForkRefused::Failed(
                            "the agent has no active extension".to_owned(),
                        )),
                        Some(number) => self
                            .reach(number)
                            .and_then(|reach| self.start_fork(Some(agent), number, reach))
                            .map(|_| ()),
                    };
                    if let Err(e) = result {
                        tracing::info!(protocol = %self.protocol, agent, error = %e, "agent cannot be rung");
                        let reason = match e {
                            ForkRefused::Busy => FailReason::Busy,
                            ForkRefused::Failed(_) => FailReason::Unreachable,
                        };
                        if let Some(ring) = self.ring.as_mut() {
                            ring.agent_failed(agent, reason, now);
                        }
                    }
                }
                self.publish();
            }
            RingOutput::CancelAgents(agents) => {
                for agent in agents {
                    if let Some(i) = self.fork_of_agent(agent) {
                        self.cancel_fork(i);
                    }
                }
                self.publish();
            }
            RingOutput::RangOut { agent, department } => {
                tracing::info!(protocol = %self.protocol, agent, department, "agent let the call ring out");
            }
            RingOutput::Connect { agent, .. } => {
                if let Some(i) = self.fork_of_agent(agent) {
                    self.connect(i);
                }
            }
            RingOutput::HangUpLateAnswer(agent) => {
                if let Some(i) = self.fork_of_agent(agent) {
                    self.bye_fork(i);
                }
            }
            RingOutput::ForwardToNumber(number) => {
                self.forward(Forward {
                    number,
                    kind: ForwardKind::AfterHours,
                });
                self.publish();
            }
            RingOutput::PauseAgent { agent, reason } => {
                self.out(Output::PauseAgent { agent, reason });
            }
            RingOutput::LoopCut { from, to } => {
                tracing::warn!(protocol = %self.protocol, from, to, "overflow loop cut");
            }
            RingOutput::Finished(outcome) => self.ring_finished(outcome),
        }
    }

    fn ring_finished(&mut self, outcome: Outcome) {
        tracing::info!(protocol = %self.protocol, ?outcome, "ring finished");
        let reason = match outcome {
            // Answered, or forwarded to the after-hours number (dialled on
            // `ForwardToNumber`, just before): the call goes on.
            Outcome::Answered { .. } | Outcome::AfterHoursNumber { .. } => return,
            other => other.close_reason().unwrap_or(CloseReason::NoAnswer),
        };
        self.end_unanswered(reason, 480);
    }

    pub(super) fn cancel_fork(&mut self, idx: usize) {
        let Some(fork) = self.forks.get_mut(idx) else {
            return;
        };
        if !fork.live() {
            return;
        }
        fork.state = ForkState::Over;
        let (dest, transport) = (fork.destination, fork.transport);
        for c in fork.set.cancel_pending() {
            self.send_request(c, dest, transport);
        }
    }

    pub(super) fn bye_fork(&mut self, idx: usize) {
        let Some(fork) = self.forks.get_mut(idx) else {
            return;
        };
        fork.state = ForkState::Over;
        let (dest, transport) = (fork.destination, fork.transport);
        let bye = fork.set.winner_mut().and_then(|d| {
            d.request(crate::sip::message::Method::Bye, self.ids.as_mut())
                .ok()
        });
        if let Some(bye) = bye {
            self.send_request(bye, dest, transport);
        }
    }

    /// A fork's INVITE got no response (timeout or transport error).
    pub(super) fn on_fork_transaction_failed(&mut self, idx: usize) {
        if !self.forks[idx].live() {
            return;
        }
        tracing::info!(protocol = %self.protocol, extension = %self.forks[idx].extension, "fork got no response");
        self.fork_failed(idx, 408);
    }

    fn fork_failed(&mut self, idx: usize, status: u16) {
        self.forks[idx].state = ForkState::Over;
        let agent = self.forks[idx].agent;
        if self.is_outbound_fork(idx) {
            self.outbound_failed(status);
        } else if let (Some(ring), Some(agent)) = (self.ring.as_mut(), agent) {
            ring.agent_failed(agent, FailReason::from_status(status), self.now);
            self.drive_ring();
        } else if self.direct.is_some_and(|(d, _)| d == idx) {
            self.direct = None;
            if let Some(forward) = self.follow_me.take() {
                tracing::info!(protocol = %self.protocol, status, "the extension did not take the call; follow-me");
                self.forward(forward);
                self.publish();
                return;
            }
            let (reason, to_caller) = match status {
                486 | 600 => (CloseReason::Rejected, 486),
                603 => (CloseReason::Rejected, 603),
                _ => (CloseReason::NoAnswer, 480),
            };
            self.end_unanswered(reason, to_caller);
        }
        self.publish();
    }

    /// A response to a fork's INVITE (provisional, 2xx from any branch a
    /// proxy forked to, failures).
    pub(super) fn on_fork_response(&mut self, idx: usize, response: SipMessage) {
        let event = self.forks[idx]
            .set
            .on_response(&response, self.ids.as_mut());
        let (dest, transport) = (self.forks[idx].destination, self.forks[idx].transport);
        let agent = self.forks[idx].agent;
        match event {
            ForkEvent::Provisional { .. } | ForkEvent::Ignored => {}
            ForkEvent::Early { status, .. } => {
                if matches!(status, 180 | 183) && self.forks[idx].state == ForkState::Calling {
                    self.forks[idx].state = ForkState::Ringing;
                    if self.is_outbound_fork(idx) {
                        self.outbound_ringing();
                    }
                    if let (Some(ring), Some(agent)) = (self.ring.as_mut(), agent) {
                        ring.agent_ringing(agent, self.now);
                        self.drive_ring();
                    }
                    self.publish();
                }
            }
            ForkEvent::Answered { ack, cancels, .. } => {
                self.answer_received = Some(self.now);
                self.transmit(ack, dest, transport);
                for c in cancels {
                    self.send_request(c, dest, transport);
                }
                let wanted = self.forks[idx].live() && self.ending.is_none();
                self.forks[idx].state = ForkState::Answered;
                if super::is_sdp(&response) {
                    self.forks[idx].answer = Some(response.body().clone());
                }
                if let (Some(ring), Some(agent)) = (self.ring.as_mut(), agent) {
                    ring.agent_answered(agent, self.now);
                    self.drive_ring();
                } else if wanted
                    && (self.direct.is_some_and(|(d, _)| d == idx) || self.is_outbound_fork(idx))
                {
                    self.connect(idx);
                } else {
                    self.bye_fork(idx);
                }
            }
            ForkEvent::AckAndBye { ack, bye, .. } => {
                self.transmit(ack, dest, transport);
                self.send_request(bye, dest, transport);
            }
            ForkEvent::ResendAck(ack) => self.transmit(ack, dest, transport),
            ForkEvent::Cancel(c) => self.send_request(c, dest, transport),
            ForkEvent::Failed { status, .. } => {
                if matches!(status, 401 | 407)
                    && self.is_outbound_fork(idx)
                    && self.forks[idx].live()
                    && self.outbound_challenged(idx, &response)
                {
                    return;
                }
                if self.forks[idx].live() {
                    self.fork_failed(idx, status);
                }
            }
        }
    }

    /// Where a response of one of the call's dialogs came from (trace).
    pub(super) fn trace_response(&mut self, response: &SipMessage) {
        let Ok(call_id) = response.call_id() else {
            return;
        };
        let route = match self.side_of(call_id) {
            Some(side) => self.leg_route(side),
            None => self
                .forks
                .iter()
                .find(|f| f.call_id == call_id)
                .map(|f| (f.destination, f.transport)),
        };
        if let Some(route) = route {
            self.trace(TraceDirection::In, route, response.to_bytes());
        }
    }

    /// The target of a transfer by its number.
    pub(super) fn resolve(&self, target: &str) -> Option<Target> {
        let plan = self.env.plan();
        if let Some(d) = plan.department_by_code(target) {
            return Some(Target::Department(d.clone()));
        }
        plan.extension(target)
            .map(|_| Target::Extension(target.to_owned()))
    }

    /// The direct ring of an extension timed out.
    pub(super) fn direct_ring_over(&mut self, idx: usize) {
        tracing::info!(protocol = %self.protocol, "extension did not answer");
        self.direct = None;
        self.cancel_fork(idx);
        match self.follow_me.take() {
            Some(forward) => self.forward(forward),
            None => self.end_unanswered(CloseReason::NoAnswer, 480),
        }
        self.publish();
    }

    pub(super) fn fail(&mut self, why: &str) {
        self.hang_up(Ending::Failed(why.to_owned()));
    }
}
