//! Admission: from the INVITE to the durable attendance. The call answers
//! 100, decides who calls what (an extension that authenticated, or a
//! trunk known by address) and where to (a department's PABX code or an
//! extension), and asks for the attendance; nobody rings before the ledger
//! says it is durable ([`Input::Opened`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::{
    ALLOW, Call, CallConfig, CallEnv, CallerLeg, Clock, IncomingCall, Origin, Output, Received,
    Stage, Target, audio_of, is_sdp, user_of,
};
use crate::calls::trace::TraceDirection;
use crate::domain::{CallSource, Direction, Id, Timestamp};
use crate::sip::dialog::IdSource;
use crate::sip::message::response_to;
use crate::store::NewAttendance;

use super::super::signal::Command;

/// What every call is made with, whatever starts it.
pub(super) struct Parts {
    pub env: Arc<dyn CallEnv>,
    pub config: CallConfig,
    pub ids: Box<dyn IdSource + Send>,
    pub now: Instant,
    pub wall: Timestamp,
}

/// Why an INVITE is refused before any protocol exists.
pub(super) struct Refusal {
    status: u16,
    reason: Option<&'static str>,
    retry_after: Option<u32>,
}

impl Refusal {
    pub(super) fn new(status: u16, reason: Option<&'static str>) -> Refusal {
        Refusal {
            status,
            reason,
            retry_after: None,
        }
    }
}

impl Call {
    /// A new call from its INVITE, at `now` (`wall` is the same instant on
    /// the wall clock). Its first outputs are the 100 and either a refusal
    /// (then [`Output::Finished`]) or [`Output::OpenAttendance`].
    pub fn new(
        incoming: IncomingCall,
        env: Arc<dyn CallEnv>,
        config: CallConfig,
        mut ids: Box<dyn IdSource + Send>,
        now: Instant,
        wall: Timestamp,
    ) -> Call {
        let IncomingCall {
            key,
            invite,
            source,
            transport,
            extension,
            from_pbx,
            received,
        } = incoming;
        let call_id = invite.call_id().unwrap_or_default().to_owned();
        let from = invite.from().ok();
        let local = env.local(transport);
        let to_tag = ids.tag();
        let sdp = invite.body().clone();
        let (received_invite, received_key) = (invite.clone(), key.clone());
        let caller = CallerLeg {
            from: from.clone().unwrap_or_else(super::anonymous),
            origin: Origin::Received(Received {
                invite,
                key,
                to_tag,
            }),
            source,
            transport,
            local,
            dialog: None,
            final_sent: false,
            sdp,
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
            Some(received),
        );
        if let Ok(trying) = response_to(&received_invite, 100, None).and_then(|b| b.build()) {
            call.out(Output::Sip(Command::Respond {
                key: received_key,
                response: trying,
            }));
        }
        let carried = carried_protocol(&received_invite, from_pbx, &call.call_id);
        match call.admit(&received_invite, from.is_some(), extension, from_pbx) {
            Ok(new) => match carried {
                Some(protocol) => call.continue_attendance(protocol, &new),
                None => call.out(Output::OpenAttendance(new)),
            },
            Err(refusal) => {
                call.refuse_before_open(refusal);
                call.close_stage();
                call.out(Output::Finished { linger: false });
            }
        }
        call
    }

    /// A call not yet admitted: its caller's leg and nothing else.
    pub(super) fn assemble(
        parts: Parts,
        caller: CallerLeg,
        call_id: String,
        received: Option<Instant>,
    ) -> Call {
        let Parts {
            env,
            config,
            ids,
            now,
            wall,
        } = parts;
        Call {
            env,
            config,
            ids,
            clock: Clock { at: now, wall },
            now,
            stage: Stage::Opening,
            protocol: String::new(),
            call_id,
            direction: Direction::Inbound,
            caller_number: String::new(),
            callee: String::new(),
            since: wall,
            answered_at: None,
            caller,
            forks: Vec::new(),
            agent: None,
            ring: None,
            direct: None,
            follow_me: None,
            closes_as: None,
            department: None,
            agent_id: None,
            media_started: false,
            continued: false,
            unacked: Vec::new(),
            relayed: Vec::new(),
            ending: None,
            pending_target: None,
            received,
            answer_received: None,
            attendance_department: None,
            trunk_channel: None,
            outbound: None,
            outputs: VecDeque::new(),
        }
    }

    /// Decides direction and target; the attendance to open.
    fn admit(
        &mut self,
        invite: &crate::sip::message::SipMessage,
        has_from: bool,
        extension: Option<String>,
        from_pbx: bool,
    ) -> Result<NewAttendance, Refusal> {
        let plan = self.env.plan();
        let (true, Ok(uri)) = (has_from, invite.request_uri()) else {
            return Err(Refusal::new(400, None));
        };
        let dialled = uri.user_text().unwrap_or_default();
        let source = self.caller.source;
        // The PBX's calls are known by their asserted identity: one of
        // its phones (internal) or a customer through its carriers.
        let asserted = from_pbx
            .then(|| asserted_identity(invite).unwrap_or_else(|| user_of(&self.caller.from)));
        let trunk = match (&extension, from_pbx) {
            (None, false) => plan.trunk_for(source.ip()),
            _ => None,
        };
        self.direction = match (&extension, trunk, &asserted) {
            (Some(_), _, _) => Direction::Internal,
            (None, _, Some(who)) if plan.extension(who).is_some() => Direction::Internal,
            (None, _, Some(_)) | (None, Some(_), None) => Direction::Inbound,
            (None, None, None) => {
                tracing::warn!(call_id = %self.call_id, %source, "INVITE from an unknown address (no trunk, no extension); refused");
                return Err(Refusal::new(403, Some("Unknown caller")));
            }
        };
        // A carrier's call is routed by its DID (the request-URI user, or
        // the To user); a PABX code or an extension number dialled as such
        // still works (Asterisk sends codes).
        let to_user = invite.to().ok().and_then(|t| t.uri.user_text());
        let by_did = trunk.and_then(|t| {
            t.did_routes.iter().find(|r| {
                same_number(&r.did, &dialled)
                    || to_user.as_deref().is_some_and(|u| same_number(&r.did, u))
            })
        });
        let target = if let Some(route) = by_did {
            let department = route.department_id.and_then(|d| plan.department(d));
            let extension = route.extension_id.and_then(|e| plan.extension_by_id(e));
            match (department, extension) {
                (Some(d), _) => Target::Department(d.clone()),
                (None, Some(e)) => Target::Extension(e.number.clone()),
                (None, None) => {
                    tracing::warn!(call_id = %self.call_id, did = %route.did, "the DID's department or extension is gone (or inactive)");
                    return Err(Refusal::new(404, None));
                }
            }
        } else if let Some(d) = plan.department_by_code(&dialled) {
            Target::Department(d.clone())
        } else if plan.extension(&dialled).is_some() && extension.as_deref() != Some(&dialled) {
            Target::Extension(dialled.clone())
        } else if let Some(t) = trunk {
            tracing::warn!(call_id = %self.call_id, trunk = %t.name, %dialled, to = ?to_user, "unknown DID: no route, department or extension");
            return Err(Refusal::new(404, None));
        } else if let Some(caller) = extension.as_deref() {
            // An extension dialling beyond the bridge: the outbound routes.
            let caller_id = plan.extension(caller).map(|e| e.id);
            match crate::routing::route_call(plan.routes(), caller_id, &dialled) {
                Ok(dial) => {
                    self.direction = Direction::Outbound;
                    Target::Outbound(dial)
                }
                Err(refusal) => {
                    tracing::warn!(call_id = %self.call_id, extension = caller, %dialled, reason = %refusal, "outbound call refused");
                    return Err(Refusal::new(route_refusal_status(&refusal), None));
                }
            }
        } else {
            tracing::info!(call_id = %self.call_id, %dialled, "no department or extension with this number");
            return Err(Refusal::new(404, None));
        };
        if self.config.caller_port == 0 || self.config.agent_port == 0 {
            return Err(Refusal {
                status: 503,
                reason: Some("No media ports"),
                retry_after: Some(5),
            });
        }
        if !is_sdp(invite) || audio_of(invite.body()).is_none() {
            return Err(Refusal::new(
                488,
                Some("An SDP offer with audio is required"),
            ));
        }
        if let Some(t) = trunk
            && let Some(max) = t.max_channels
        {
            if !self.env.take_trunk_channel(t.id, max) {
                tracing::warn!(call_id = %self.call_id, trunk = %t.name, max, "trunk at max_channels; call refused");
                return Err(Refusal {
                    status: 503,
                    reason: Some("Trunk at capacity"),
                    retry_after: Some(5),
                });
            }
            self.trunk_channel = Some(t.id);
        }
        self.caller_number = extension
            .or(asserted)
            .unwrap_or_else(|| user_of(&self.caller.from));
        self.callee = dialled;
        let (department_id, agent_id) = match &target {
            Target::Department(d) => (Some(d.id), None),
            Target::Extension(n) => (None, plan.agent_of_extension(n)),
            Target::Outbound(_) => (None, None),
        };
        Ok(self.attendance_for(target, department_id, agent_id))
    }

    /// The attendance the call opens once its target is chosen (a received
    /// INVITE's, or a click-to-call's); the department and agent it names
    /// are remembered, so later changes only write what moves.
    pub(super) fn attendance_for(
        &mut self,
        target: Target,
        department_id: Option<Id>,
        agent_id: Option<Id>,
    ) -> NewAttendance {
        self.agent_id = agent_id;
        self.attendance_department = department_id;
        self.pending_target = Some(target);
        NewAttendance {
            direction: self.direction,
            department_id,
            agent_id,
            caller: self.caller_number.clone(),
            callee: self.callee.clone(),
            source: CallSource::Sip,
            opened_at: self.since,
            call_ref: Some(self.call_id.clone()),
            node: Some(self.env.node()),
        }
    }

    /// The PBX sent a call that already has its attendance (an AMI
    /// `Redirect` to a department code, or a click-to-call through Asterisk
    /// into one): the call goes on under that protocol instead of opening
    /// a second attendance. Nothing waits on the database: the protocol is
    /// taken as given, the department the ring enters is written as an
    /// assignment and the answering agent as the attendance's agent. A
    /// protocol the database does not know makes those changes touch no
    /// row (the ledger writer logs it); the call itself works as usual.
    /// The close rule sees what happened here: nobody answering at the
    /// bridge closes it (`no_answer`, `abandoned`) even if an agent on
    /// Asterisk had answered it before the transfer.
    fn continue_attendance(&mut self, protocol: crate::domain::Protocol, new: &NewAttendance) {
        tracing::info!(protocol = %protocol.as_str(), call_id = %self.call_id, department = ?new.department_id, "call from the PBX continues its attendance");
        self.continued = true;
        // Unset, so that the department the ring enters is written.
        self.attendance_department = None;
        self.on_opened(Ok(protocol.as_str().to_owned()));
    }

    fn refuse_before_open(&mut self, refusal: Refusal) {
        let Some(received) = self.received() else {
            return;
        };
        let key = received.key.clone();
        let built = response_to(&received.invite, refusal.status, refusal.reason).and_then(|b| {
            let b = b.to_tag("rej").header("Allow", ALLOW);
            match refusal.retry_after {
                Some(s) => b.header("Retry-After", s).build(),
                None => b.build(),
            }
        });
        if let Ok(r) = built {
            self.caller.final_sent = true;
            self.out(Output::Sip(Command::Respond { key, response: r }));
        }
    }

    /// The ledger answered: ring, or refuse with 503 when the node cannot
    /// make the attendance durable (disk full): never a bare 500.
    pub(super) fn on_opened(&mut self, result: Result<String, String>) {
        if self.caller.final_sent {
            // CANCELled meanwhile: the attendance still records it.
            if let Ok(protocol) = result {
                self.protocol = protocol;
                self.stage = Stage::Live;
                self.ending = Some(super::Ending::Unanswered(
                    crate::domain::CloseReason::Abandoned,
                ));
                self.finish();
            }
            return;
        }
        let protocol = match result {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(call_id = %self.call_id, error = %e, "cannot make the attendance durable; call refused");
                if self.received().is_none() {
                    self.out(Output::NotOriginated(super::NotOriginated {
                        field: None,
                        why: format!("cannot record the call: {e}"),
                    }));
                }
                self.refuse_before_open(Refusal {
                    status: 503,
                    reason: Some("Cannot record the call"),
                    retry_after: Some(30),
                });
                self.close_stage();
                self.out(Output::Finished { linger: false });
                return;
            }
        };
        self.protocol = protocol;
        self.stage = Stage::Live;
        tracing::info!(protocol = %self.protocol, call_id = %self.call_id, caller = %self.caller_number, callee = %self.callee, "call opened");
        let Some(received) = self.received() else {
            // Click-to-call: the extension first; the target once it answers.
            self.publish();
            self.call_extension();
            if self.ending.is_some() {
                self.finish();
            }
            return;
        };
        let (raw, key) = (received.invite.to_bytes(), received.key.clone());
        self.trace(TraceDirection::In, self.caller_peer(), raw);
        let ringing = self
            .caller_dialog_response(180)
            .and_then(|b| b.build().ok());
        if let Some(r) = ringing {
            self.respond(&key, r, self.caller_peer());
        }
        self.publish();
        self.dial_pending_target();
        if self.ending.is_some() {
            self.finish();
        }
    }

    /// Rings (or dials) where the call goes, decided at admission.
    pub(super) fn dial_pending_target(&mut self) {
        match self.pending_target.take() {
            Some(Target::Department(d)) => self.ring_department(d.id),
            Some(Target::Extension(n)) => self.ring_extension(&n),
            Some(Target::Outbound(dial)) => self.start_outbound(dial),
            None => {}
        }
    }

    /// CANCEL while the attendance is being made durable: 487 now; the
    /// attendance is closed `abandoned` once it exists.
    pub(super) fn cancel_before_open(&mut self) {
        if self.caller.final_sent {
            return;
        }
        tracing::info!(call_id = %self.call_id, "caller cancelled before ringing");
        self.refuse_caller(487);
    }
}

/// The status an extension's call gets when the outbound routes refuse it.
pub(super) fn route_refusal_status(refusal: &crate::routing::RouteRefusal) -> u16 {
    match refusal {
        crate::routing::RouteRefusal::NoRoute => 404,
        crate::routing::RouteRefusal::NotAllowed(_) => 403,
        crate::routing::RouteRefusal::NoTrunk(_) => 503,
    }
}

/// Whether two telephone numbers are the same, `+` and visual separators
/// aside (carriers differ in how they spell a DID).
fn same_number(a: &str, b: &str) -> bool {
    let digits = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '+' | '-' | '.' | ' ' | '(' | ')'))
            .collect()
    };
    !a.is_empty() && digits(a) == digits(b)
}

/// The protocol an INVITE carries in `X-Protocol`, trusted only from the
/// PBX (whose dialplan sets it from `PBX_BRIDGE_PROTOCOL`): anyone else
/// could otherwise write into any attendance. Malformed values are ignored
/// (a new attendance is opened).
fn carried_protocol(
    invite: &crate::sip::message::SipMessage,
    from_pbx: bool,
    call_id: &str,
) -> Option<crate::domain::Protocol> {
    let raw = invite.header(crate::calls::X_PROTOCOL)?;
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if !from_pbx {
        tracing::debug!(call_id, x_protocol = %text, "X-Protocol from outside the PBX ignored");
        return None;
    }
    match crate::domain::Protocol::parse(text) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(call_id, x_protocol = %text, error = %e, "malformed X-Protocol from the PBX ignored; a new attendance is opened");
            None
        }
    }
}

/// The user of the first P-Asserted-Identity (RFC 3325) of a request from
/// a trusted peer: who the PBX says is calling.
fn asserted_identity(invite: &crate::sip::message::SipMessage) -> Option<String> {
    let value = String::from_utf8_lossy(invite.header("P-Asserted-Identity")?).into_owned();
    let first = value.split(',').next()?.trim();
    let na = crate::sip::message::NameAddr::parse(first).ok()?;
    na.uri.user_text().filter(|u| !u.is_empty())
}
