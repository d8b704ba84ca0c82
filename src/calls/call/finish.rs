//! The end: hanging up from our side (a final answer or BYE to the caller,
//! BYE to the agent, CANCEL to forks still ringing), the attendance's end
//! with the domain's close rule, and the late messages of a call that is
//! over (a 2xx that crossed our CANCEL gets its ACK and a BYE, a crossing
//! BYE its 200).

use super::{Call, Ending, MediaOp, Output, Stage};
use crate::calls::signal::{CallInput, Command};
use crate::domain::{AttendanceChange, CloseReason, closes_when_call_ends};
use crate::media::relay::Side;
use crate::sip::dialog::{DialogState, ForkEvent};
use crate::sip::message::{Method, response_to};

impl Call {
    /// A final non-2xx to the caller's INVITE (once).
    pub(super) fn refuse_caller(&mut self, status: u16) {
        if self.caller.final_sent {
            return;
        }
        self.caller.final_sent = true;
        let Some(received) = self.received() else {
            // Click-to-call: our INVITE to the extension is given up.
            self.cancel_origin();
            return;
        };
        let key = received.key.clone();
        if let Ok(r) = response_to(&received.invite, status, None)
            .and_then(|b| b.to_tag(&received.to_tag).build())
        {
            self.respond(&key, r, self.caller_peer());
        }
    }

    /// BYE on a leg's confirmed dialog.
    pub(super) fn bye(&mut self, side: Side) {
        let Some(route) = self.leg_route(side) else {
            return;
        };
        let dialog = match side {
            Side::Caller => self.caller.dialog.as_mut(),
            Side::Agent => self.agent.as_mut().map(|a| &mut a.dialog),
        };
        let Some(dialog) = dialog else { return };
        if dialog.state() != DialogState::Confirmed {
            return;
        }
        if let Ok(bye) = dialog.request(Method::Bye, self.ids.as_mut()) {
            self.send_request(bye, route.0, route.1);
        }
    }

    /// Ends the call from our side: the caller gets a final answer or a
    /// BYE, the agent a BYE, forks still ringing a CANCEL.
    pub(super) fn hang_up(&mut self, ending: Ending) {
        if !self.caller.final_sent {
            self.refuse_caller(480);
        } else {
            self.bye(Side::Caller);
        }
        self.bye(Side::Agent);
        for i in 0..self.forks.len() {
            self.cancel_fork(i);
        }
        if self.ending.is_none() {
            self.ending = Some(ending);
        }
    }

    /// The ring (or direct ring) is over with nobody connected.
    pub(super) fn end_unanswered(&mut self, reason: CloseReason, status: u16) {
        if self.caller.final_sent {
            self.bye(Side::Caller);
        } else {
            self.refuse_caller(status);
        }
        for i in 0..self.forks.len() {
            self.cancel_fork(i);
        }
        if self.ending.is_none() {
            self.ending = Some(Ending::Unanswered(reason));
        }
    }

    pub(super) fn on_media_dead(&mut self) {
        tracing::warn!(protocol = %self.protocol, "dead media: no RTP for the configured time; call ended");
        self.hang_up(Ending::Failed("dead media".into()));
    }

    /// Records the end: media stopped (its recording linked by the
    /// driver), the attendance ended and closed per the domain's rule, the
    /// live entry gone.
    pub(super) fn finish(&mut self) {
        if self.stage == Stage::Finished {
            return;
        }
        self.close_stage();
        let ending = self
            .ending
            .clone()
            .unwrap_or(Ending::Failed("unknown".into()));
        let at = self.wall();
        if self.media_started {
            self.out(Output::Media(MediaOp::Stop));
        }
        // Requests relayed to a leg that is gone now never get their
        // answer from it: the sender gets one from us.
        for r in std::mem::take(&mut self.relayed) {
            self.answer_in_dialog(r.to.other(), &r.from_key, &r.from_request, 487, None);
        }
        if let Ending::Failed(why) = &ending {
            tracing::warn!(protocol = %self.protocol, reason = %why, "call failed");
        }
        // A call forwarded out of a closed department closes as that,
        // whatever the department's rule (see `forward`).
        let (reason, closes) = match self.closes_as {
            Some(reason) => (reason, true),
            None => (
                ending.close_reason(),
                closes_when_call_ends(
                    self.answered_at.is_some(),
                    self.department.as_ref().map(|d| d.close_on_hangup),
                ),
            ),
        };
        self.record(AttendanceChange::Ended {
            at,
            close: closes.then_some(reason),
        });
        if let Some(leg) = &self.agent
            && let Some(a) = self.forks.get(leg.fork).and_then(|f| f.agent)
        {
            self.env.agent_idle(a, at);
        }
        if let Some(a) = self.origin_agent_talked() {
            self.env.agent_idle(a, at);
        }
        self.env.unpublish(&self.protocol);
        self.unacked.clear();
        tracing::info!(protocol = %self.protocol, ?reason, "call ended");
        self.out(Output::Finished { linger: true });
    }

    /// After the end (or before the attendance exists): late 2xx still get
    /// their ACK and a BYE, a crossing BYE its 200, anything else 481.
    pub(super) fn on_late_input(&mut self, input: CallInput) {
        match input {
            CallInput::Response { response } => {
                let Ok(call_id) = response.call_id() else {
                    return;
                };
                let origin = match &mut self.caller.origin {
                    super::Origin::Originated(o) => o.fork.as_mut(),
                    super::Origin::Received(_) => None,
                };
                let Some(f) = self
                    .forks
                    .iter_mut()
                    .chain(origin)
                    .find(|f| f.call_id == call_id)
                else {
                    return;
                };
                let (dest, transport) = (f.destination, f.transport);
                let mut send = Vec::new();
                match f.set.on_response(&response, self.ids.as_mut()) {
                    ForkEvent::Answered { ack, .. } | ForkEvent::ResendAck(ack) => {
                        send.push(Command::Transmit {
                            message: ack,
                            destination: dest,
                            transport,
                        });
                        if let Some(bye) = f
                            .set
                            .winner_mut()
                            .filter(|d| d.state() == DialogState::Confirmed)
                            .and_then(|d| d.request(Method::Bye, self.ids.as_mut()).ok())
                        {
                            send.push(Command::Request {
                                request: bye,
                                destination: dest,
                                transport,
                            });
                        }
                    }
                    ForkEvent::AckAndBye { ack, bye, .. } => {
                        send.push(Command::Transmit {
                            message: ack,
                            destination: dest,
                            transport,
                        });
                        send.push(Command::Request {
                            request: bye,
                            destination: dest,
                            transport,
                        });
                    }
                    ForkEvent::Cancel(c) => send.push(Command::Request {
                        request: c,
                        destination: dest,
                        transport,
                    }),
                    _ => {}
                }
                for command in send {
                    self.out(Output::Sip(command));
                }
            }
            CallInput::Request { key, request, .. } => {
                let status = if request.method() == Some(&Method::Bye) {
                    200
                } else {
                    481
                };
                if let Ok(r) = response_to(&request, status, None).and_then(|b| b.build()) {
                    self.out(Output::Sip(Command::Respond { key, response: r }));
                }
            }
            _ => {}
        }
    }
}
