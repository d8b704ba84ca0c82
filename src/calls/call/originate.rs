//! Click-to-call on the bridge (`POST /calls {from_extension, to}` for an
//! extension registered here): third-party call control, RFC 3725 flow I.
//! The bridge calls the extension first, offering its own caller-side RTP
//! port (the INVITE's From shows what is dialled, so the agent sees it);
//! once the extension answers and is ACKed, the call goes on exactly as if
//! the extension had dialled `to` (an extension, a department's PABX code,
//! or a number through the outbound routes), the forks offered the
//! extension's answer. The extension's leg is answered already, so the
//! target's answer only starts the relay (and the recording).
//!
//! ```text
//! API ─► OpenAttendance ─► (durable: 201) ─► INVITE ext ─┬─ 200 ─► ACK ─► dial `to` ─► answer ─► relay
//!                                                        ├─ 486/603 ─► rejected
//!                                                        └─ 480/408/ring-out ─► no_answer (CANCEL)
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use super::admission::Parts;
use super::{Call, CallerLeg, DIRECT_RING, Ending, Origin, Output, Target, audio_of, is_sdp};
use crate::calls::X_PROTOCOL;
use crate::calls::fork::{Fork, ForkRequest, ForkState, binding_route};
use crate::calls::live::{LegRole, LegState, LiveLeg};
use crate::domain::{CloseReason, Direction, Id};
use crate::sip::dialog::ForkEvent;
use crate::sip::message::{Method, NameAddr, Uri};
use crate::sip::transaction::{TransactionKey, Transport};
use crate::store::NewAttendance;

/// What the API asks: ring `from_extension`, then dial `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateCall {
    pub from_extension: String,
    pub to: String,
}

/// Why a click-to-call did not start: nothing rang, nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotOriginated {
    /// The request's field at fault (`from_extension`, `to`); `None` for a
    /// fault of the node (no media ports, the journal cannot be written).
    pub field: Option<&'static str>,
    pub why: String,
}

impl NotOriginated {
    fn field(field: &'static str, why: impl Into<String>) -> NotOriginated {
        NotOriginated {
            field: Some(field),
            why: why.into(),
        }
    }
}

/// The caller's leg of a click-to-call: our INVITE to the extension.
pub(super) struct OriginLeg {
    extension: String,
    /// The extension's agent (busy while the call lives).
    agent: Option<Id>,
    /// Where the INVITE goes: the extension's registered contact.
    target: Uri,
    /// Sent once the attendance is durable.
    pub(super) fork: Option<Fork>,
    /// Until when the extension may ring.
    deadline: Option<Instant>,
}

impl Call {
    /// A click-to-call, at `now` (`wall` on the wall clock). Its first
    /// output is [`Output::OpenAttendance`], or [`Output::NotOriginated`]
    /// then [`Output::Finished`] when it cannot be placed.
    pub fn originate(
        request: OriginateCall,
        env: std::sync::Arc<dyn super::CallEnv>,
        config: super::CallConfig,
        mut ids: Box<dyn crate::sip::dialog::IdSource + Send>,
        now: Instant,
        wall: crate::domain::Timestamp,
    ) -> Call {
        let binding = env.bindings_of(&request.from_extension).into_iter().next();
        let route = binding.as_ref().and_then(|b| binding_route(b).ok());
        let registered = route.is_some();
        let (target, source, transport) = match route {
            Some(r) => r,
            // Not registered: refused below, before anything is sent.
            None => (
                "sip:invalid@invalid.invalid"
                    .parse()
                    .expect("a constant URI parses"),
                SocketAddr::from(([0, 0, 0, 0], 0)),
                Transport::Udp,
            ),
        };
        let local = env.local(transport);
        let call_id = ids.call_id(&local.host.to_string());
        let plan = env.plan();
        let extension = plan.extension(&request.from_extension);
        // The agents rung see who clicked: the extension's name and number.
        let display = extension
            .map(|e| e.display_name.replace(['"', '\\'], ""))
            .filter(|d| !d.is_empty());
        let number = &request.from_extension;
        let from = NameAddr::parse(&match display {
            Some(d) => format!("\"{d}\" <sip:{number}@{}>", local.host),
            None => format!("<sip:{number}@{}>", local.host),
        })
        .unwrap_or_else(|_| super::anonymous());
        let caller = CallerLeg {
            origin: Origin::Originated(OriginLeg {
                extension: request.from_extension.clone(),
                agent: plan.agent_of_extension(&request.from_extension),
                target,
                fork: None,
                deadline: None,
            }),
            source,
            transport,
            local,
            from,
            dialog: None,
            final_sent: false,
            sdp: Bytes::new(),
        };
        let mut call = Call::assemble(
            Parts {
                env,
                config,
                ids,
                now,
                wall,
            },
            caller,
            call_id,
            None,
        );
        let admitted = if !registered {
            Err(NotOriginated::field(
                "from_extension",
                "not registered on the bridge",
            ))
        } else {
            call.admit_origination(&request)
        };
        match admitted {
            Ok(new) => call.out(Output::OpenAttendance(new)),
            Err(refusal) => {
                tracing::info!(extension = %request.from_extension, to = %request.to, why = %refusal.why, "click-to-call refused");
                call.out(Output::NotOriginated(refusal));
                call.close_stage();
                call.out(Output::Finished { linger: false });
            }
        }
        call
    }

    /// Where `to` goes as the extension's own call would; the attendance.
    fn admit_origination(&mut self, req: &OriginateCall) -> Result<NewAttendance, NotOriginated> {
        let plan = self.env.plan();
        let Some(caller) = plan.extension(&req.from_extension) else {
            return Err(NotOriginated::field(
                "from_extension",
                "no active extension with this number",
            ));
        };
        if self.config.caller_port == 0 || self.config.agent_port == 0 {
            return Err(NotOriginated {
                field: None,
                why: "no media ports left".into(),
            });
        }
        let to = req.to.as_str();
        let (target, direction) = if to == req.from_extension {
            return Err(NotOriginated::field(
                "to",
                "is the calling extension itself",
            ));
        } else if let Some(d) = plan.department_by_code(to) {
            (Target::Department(d.clone()), Direction::Internal)
        } else if plan.extension(to).is_some() {
            (Target::Extension(to.to_owned()), Direction::Internal)
        } else {
            match crate::routing::route_call(plan.routes(), Some(caller.id), to) {
                Ok(dial) => (Target::Outbound(dial), Direction::Outbound),
                Err(refusal) => return Err(NotOriginated::field("to", refusal.to_string())),
            }
        };
        self.direction = direction;
        self.caller_number = req.from_extension.clone();
        self.callee = to.to_owned();
        let (department_id, agent_id) = match &target {
            Target::Department(d) => (Some(d.id), None),
            Target::Extension(n) => (None, plan.agent_of_extension(n)),
            // A call out is the clicking agent's.
            Target::Outbound(_) => (None, plan.agent_of_extension(&req.from_extension)),
        };
        Ok(self.attendance_for(target, department_id, agent_id))
    }

    fn origin(&self) -> Option<&OriginLeg> {
        match &self.caller.origin {
            Origin::Originated(o) => Some(o),
            Origin::Received(_) => None,
        }
    }

    fn origin_mut(&mut self) -> Option<&mut OriginLeg> {
        match &mut self.caller.origin {
            Origin::Originated(o) => Some(o),
            Origin::Received(_) => None,
        }
    }

    /// The attendance is durable: ring the extension (claimed first, so it
    /// is never rung by two calls at once).
    pub(super) fn call_extension(&mut self) {
        let Some(origin) = self.origin() else {
            return;
        };
        let (extension, agent, target) = (
            origin.extension.clone(),
            origin.agent,
            origin.target.clone(),
        );
        let leg = LiveLeg {
            role: LegRole::Caller,
            call_id: self.call_id.clone(),
            peer: self.caller.source.to_string(),
            extension: Some(extension.clone()),
            agent_id: agent,
            state: LegState::Calling,
        };
        if !self.env.claim(&self.protocol, leg) {
            tracing::info!(protocol = %self.protocol, %extension, "click-to-call: the extension is on another call");
            self.ending = Some(Ending::Unanswered(CloseReason::Rejected));
            return;
        }
        let local = self.caller.local.clone();
        let offer = crate::media::sdp::offer(
            self.config.media_address,
            self.config.caller_port,
            u64::from(self.config.caller_port),
        );
        let (destination, transport) = (self.caller.source, self.caller.transport);
        let parties = NameAddr::parse(&format!(
            "\"Click-to-call\" <sip:{}@{}>",
            self.callee, local.host
        ))
        .and_then(|from| {
            let to = NameAddr::parse(&format!("<sip:{extension}@{}>", local.host))?;
            Ok((from, to))
        });
        let built = parties.map_err(|e| e.to_string()).and_then(|(from, to)| {
            Fork::build(
                ForkRequest {
                    agent,
                    extension: &extension,
                    route: (target, destination, transport),
                    to,
                    caller: &from,
                    protocol: &self.protocol,
                    sdp: Bytes::from(offer),
                    local: &local,
                    call_id: Some(&self.call_id),
                },
                self.ids.as_mut(),
            )
            .map_err(|e| e.to_string())
        });
        let (fork, invite) = match built {
            Ok(b) => b,
            Err(e) => {
                self.fail(&format!("cannot build the INVITE to the extension: {e}"));
                return;
            }
        };
        tracing::info!(protocol = %self.protocol, %extension, to = %self.callee, "click-to-call: ringing the extension");
        self.send_request(invite, destination, transport);
        let deadline = self.now + DIRECT_RING;
        if let Some(o) = self.origin_mut() {
            o.deadline = Some(deadline);
            o.fork = Some(fork);
        }
        self.publish();
    }

    pub(super) fn origin_deadline(&self) -> Option<Instant> {
        self.origin().and_then(|o| o.deadline)
    }

    /// `(agent, state)` of the extension's leg of a click-to-call (`None`
    /// for another call); the state is `None` before the extension is
    /// claimed and rung.
    pub(super) fn origin_leg_state(&self) -> Option<(Option<Id>, Option<LegState>)> {
        let o = self.origin()?;
        let state = o.fork.as_ref().map(|f| match f.state {
            ForkState::Calling => LegState::Calling,
            ForkState::Ringing => LegState::Ringing,
            ForkState::Answered => LegState::Answered,
            ForkState::Over => LegState::Ended,
        });
        Some((o.agent, state))
    }

    /// The agent who placed the call, once it talked (idle from its end).
    pub(super) fn origin_agent_talked(&self) -> Option<Id> {
        let o = self.origin()?;
        o.fork
            .as_ref()
            .filter(|f| f.state == ForkState::Answered)
            .and(o.agent)
    }

    pub(super) fn is_origin_invite(&self, call_id: &str, seq: u32) -> bool {
        self.origin()
            .and_then(|o| o.fork.as_ref())
            .is_some_and(|f| f.call_id == call_id && f.invite_seq == seq)
    }

    pub(super) fn is_origin_transaction(&self, key: &TransactionKey) -> bool {
        self.origin()
            .and_then(|o| o.fork.as_ref())
            .is_some_and(|f| &f.key == key)
    }

    /// Gives up our INVITE to the extension (CANCEL once it rang).
    pub(super) fn cancel_origin(&mut self) {
        let Some(fork) = self.origin_mut().and_then(|o| o.fork.as_mut()) else {
            return;
        };
        if !fork.live() {
            return;
        }
        fork.state = ForkState::Over;
        let (dest, transport) = (fork.destination, fork.transport);
        let cancels = fork.set.cancel_pending();
        if let Some(o) = self.origin_mut() {
            o.deadline = None;
        }
        for c in cancels {
            self.send_request(c, dest, transport);
        }
    }

    /// The extension rang for [`DIRECT_RING`] without answering.
    pub(super) fn origin_rang_out(&mut self) {
        tracing::info!(protocol = %self.protocol, "click-to-call: the extension did not answer");
        self.cancel_origin();
        self.caller.final_sent = true;
        self.end_origin(Ending::Unanswered(CloseReason::NoAnswer));
    }

    /// Our INVITE to the extension got no response at all.
    pub(super) fn on_origin_transaction_failed(&mut self) {
        if !self
            .origin()
            .and_then(|o| o.fork.as_ref())
            .is_some_and(Fork::live)
        {
            return;
        }
        tracing::info!(protocol = %self.protocol, "click-to-call: the extension did not respond");
        if let Some(f) = self.origin_mut().and_then(|o| o.fork.as_mut()) {
            f.state = ForkState::Over;
        }
        self.caller.final_sent = true;
        self.end_origin(Ending::Unanswered(CloseReason::NoAnswer));
    }

    fn end_origin(&mut self, ending: Ending) {
        if let Some(o) = self.origin_mut() {
            o.deadline = None;
        }
        if self.ending.is_none() {
            self.ending = Some(ending);
        }
    }

    /// A response to our INVITE to the extension.
    pub(super) fn on_origin_response(&mut self, response: crate::sip::message::SipMessage) {
        let fork = match &mut self.caller.origin {
            Origin::Originated(o) => o.fork.as_mut(),
            Origin::Received(_) => None,
        };
        let (dest, transport, live, event) = match fork {
            Some(f) => (
                f.destination,
                f.transport,
                f.live(),
                f.set.on_response(&response, self.ids.as_mut()),
            ),
            _ => return,
        };
        match event {
            ForkEvent::Provisional { .. } | ForkEvent::Ignored => {}
            ForkEvent::Early { status, .. } => {
                if matches!(status, 180 | 183) {
                    if let Some(f) = self.origin_mut().and_then(|o| o.fork.as_mut())
                        && f.state == ForkState::Calling
                    {
                        f.state = ForkState::Ringing;
                    }
                    self.publish();
                }
            }
            ForkEvent::Answered { ack, cancels, .. } => {
                self.transmit(ack, dest, transport);
                for c in cancels {
                    self.send_request(c, dest, transport);
                }
                if !live || self.ending.is_some() {
                    // Answered after we gave up: hung up at once.
                    self.bye_origin_winner(dest, transport);
                    return;
                }
                self.origin_answered(&response);
            }
            ForkEvent::AckAndBye { ack, bye, .. } => {
                self.transmit(ack, dest, transport);
                self.send_request(bye, dest, transport);
            }
            ForkEvent::ResendAck(ack) => self.transmit(ack, dest, transport),
            ForkEvent::Cancel(c) => self.send_request(c, dest, transport),
            ForkEvent::Failed { status, .. } => {
                if !live {
                    return;
                }
                if let Some(f) = self.origin_mut().and_then(|o| o.fork.as_mut()) {
                    f.state = ForkState::Over;
                }
                self.caller.final_sent = true;
                let ending = match status {
                    486 | 600 | 603 => Ending::Unanswered(CloseReason::Rejected),
                    408 | 480 | 487 => Ending::Unanswered(CloseReason::NoAnswer),
                    other => Ending::Failed(format!("the extension answered {other}")),
                };
                tracing::info!(protocol = %self.protocol, status, "click-to-call: the extension did not take the call");
                self.end_origin(ending);
            }
        }
    }

    fn bye_origin_winner(&mut self, dest: SocketAddr, transport: Transport) {
        let fork = match &mut self.caller.origin {
            Origin::Originated(o) => o.fork.as_mut(),
            Origin::Received(_) => None,
        };
        let bye = match fork {
            Some(f) => {
                f.state = ForkState::Over;
                f.set
                    .winner_mut()
                    .and_then(|d| d.request(Method::Bye, self.ids.as_mut()).ok())
            }
            _ => None,
        };
        if let Some(bye) = bye {
            self.send_request(bye, dest, transport);
        }
    }

    /// The extension answered (and got its ACK): its answer is what the
    /// target is offered; the target is dialled now.
    fn origin_answered(&mut self, response: &crate::sip::message::SipMessage) {
        let (dest, transport) = (self.caller.source, self.caller.transport);
        if !is_sdp(response) || audio_of(response.body()).is_none() {
            tracing::warn!(protocol = %self.protocol, "click-to-call: the extension answered without usable audio");
            self.bye_origin_winner(dest, transport);
            self.caller.final_sent = true;
            self.end_origin(Ending::Failed(
                "the extension's answer has no usable audio".into(),
            ));
            return;
        }
        let dialog = match &mut self.caller.origin {
            Origin::Originated(o) => {
                o.deadline = None;
                o.fork.as_mut().and_then(|f| {
                    f.state = ForkState::Answered;
                    f.answer = Some(response.body().clone());
                    f.set.winner().cloned()
                })
            }
            Origin::Received(_) => None,
        };
        let Some(mut dialog) = dialog else {
            self.caller.final_sent = true;
            self.end_origin(Ending::Failed(
                "the extension's answer made no dialog".into(),
            ));
            return;
        };
        dialog.set_request_header(Method::Invite, X_PROTOCOL, &self.protocol);
        self.caller.dialog = Some(dialog);
        self.caller.sdp = response.body().clone();
        self.caller.final_sent = true;
        tracing::info!(protocol = %self.protocol, to = %self.callee, "click-to-call: the extension answered; dialling");
        self.publish();
        self.dial_pending_target();
    }
}
