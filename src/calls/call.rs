//! One call through the bridge, as a task: the caller's leg (a UAS
//! dialog), the forks that ring agents or an extension (UAC dialogs), the
//! ring that decides who rings, the media relay and recording, the
//! attendance and the live-call entry.
//!
//! ```text
//! INVITE ─► 100 ─► protocol opened ─► ports ─► 180 ─► ring ─┬─ answer ─► 200 (SDP) ─► talking
//!                                                         ├─ CANCEL ─► 487, forks CANCELled: abandoned
//!                                                         └─ nobody ─► 480: no_answer / after_hours
//! talking: BYE either side ends both; re-INVITE / INFO / UPDATE relayed; REFER from
//! the agent (or the API) rings the new target with the caller kept on the relay
//! ```
//!
//! The relay anchors media from the first fork on: the offer to agents
//! names the bridge's agent-side port, the answer to the caller its
//! caller-side port, so a transfer changes only the agent side and the
//! recording of the attendance goes on in one file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tracing::Instrument;

use super::engine::{IncomingCall, Services};
use super::fork::{Fork, ForkRequest, ForkState, binding_route};
use super::live::{CallControl, CallState, LegRole, LegState, LiveCall, LiveLeg};
use super::plan::CallPlan;
use super::signal::{CallInput, Command, Outbox};
use super::trace::TraceDirection;
use crate::domain::{
    CallSource, CloseReason, Department, Direction, Id, Protocol, Timestamp, Transfer,
};
use crate::media::recorder::{Recorder, recording_path};
use crate::media::relay::{MediaSession, RelayConfig, Side};
use crate::media::relay_task::{EndReason, LegSockets, RelayHandle, RelayReport, spawn_relay};
use crate::media::sdp::{self, SessionDescription};
use crate::routing::{FailReason, Outcome, Output, Ring};
use crate::sip::dialog::{
    Dialog, DialogState, ForkEvent, IdSource, LocalParty, RandomIds, RequestDecision,
    Retransmit2xx, RetransmitStep,
};
use crate::sip::message::{Method, NameAddr, SipMessage, response_to};
use crate::sip::transaction::{TransactionKey, Transport};
use crate::store::NewAttendance;

/// What calls accept (also the forks' `Allow`).
pub(super) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO, UPDATE";
/// How long an extension rings when called directly.
const DIRECT_RING: Duration = Duration::from_secs(60);

/// Why a fork was not sent.
#[derive(Debug)]
enum ForkRefused {
    /// The agent or extension is on another call (claimed first).
    Busy,
    Failed(String),
}

impl From<String> for ForkRefused {
    fn from(e: String) -> Self {
        ForkRefused::Failed(e)
    }
}

impl std::fmt::Display for ForkRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForkRefused::Busy => f.write_str("already in a call"),
            ForkRefused::Failed(e) => f.write_str(e),
        }
    }
}

/// Why the call ended, for the attendance and the logs.
#[derive(Debug, Clone, PartialEq)]
enum Ending {
    Hangup(Side),
    Api,
    /// The ring ended without an answer (`reason` for the attendance).
    Unanswered(CloseReason),
    Failed(String),
}

impl Ending {
    fn close_reason(&self) -> CloseReason {
        match self {
            Ending::Hangup(Side::Caller) => CloseReason::CallerHangup,
            Ending::Hangup(Side::Agent) => CloseReason::AgentHangup,
            Ending::Api => CloseReason::Api,
            Ending::Unanswered(r) => *r,
            Ending::Failed(_) => CloseReason::Failed,
        }
    }
}

struct CallerLeg {
    invite: SipMessage,
    key: TransactionKey,
    source: SocketAddr,
    transport: Transport,
    local: LocalParty,
    from: NameAddr,
    to_tag: String,
    dialog: Option<Dialog>,
    final_sent: bool,
    /// The caller's latest SDP (offers to agents are made from it).
    sdp: Bytes,
}

/// The agent (or extension) the caller talks to.
struct AgentLeg {
    fork: usize,
    dialog: Dialog,
}

/// A 2xx to an INVITE we answered, resent until its ACK (§13.3.1.4).
struct Retransmit {
    side: Side,
    key: TransactionKey,
    sent: Retransmit2xx,
}

/// A request of one leg relayed to the other, waiting for its answer.
struct Relayed {
    to: Side,
    seq: u32,
    from_key: TransactionKey,
    from_request: SipMessage,
}

enum Target {
    Department(Department),
    Extension(String),
}

struct Media {
    caller: Option<LegSockets>,
    agent: Option<LegSockets>,
    caller_port: u16,
    agent_port: u16,
    relay: Option<RelayHandle>,
    recording: Option<PathBuf>,
}

struct Call {
    svc: Arc<Services>,
    out: Outbox,
    ids: RandomIds,
    control: UnboundedSender<CallControl>,
    media_ended: UnboundedSender<((), RelayReport)>,
    protocol: String,
    direction: Direction,
    caller_number: String,
    callee: String,
    since: Timestamp,
    answered_at: Option<Timestamp>,
    caller: CallerLeg,
    forks: Vec<Fork>,
    agent: Option<AgentLeg>,
    ring: Option<Ring>,
    /// Direct ring of an extension: its fork and deadline.
    direct: Option<(usize, Instant)>,
    department: Option<Department>,
    /// The agent the attendance names (the last one connected).
    agent_id: Option<Id>,
    media: Media,
    retransmits: Vec<Retransmit>,
    relayed: Vec<Relayed>,
    ending: Option<Ending>,
    /// The relay's report when it ended by itself (dead media).
    media_report: Option<RelayReport>,
    /// Where the call goes, until `begin` starts ringing it.
    pending_target: Option<Target>,
    /// Setup latency marks: the INVITE's arrival (until the first fork
    /// leaves) and the winning 200 OK's (until the caller's 200 leaves).
    received: Option<Instant>,
    answer_received: Option<Instant>,
    /// Inserted in the live-call table (later changes are updates).
    published: bool,
    /// The department the attendance names now.
    attendance_department: Option<Id>,
}

/// Runs a call from its INVITE to its end.
pub(super) async fn run(
    svc: Arc<Services>,
    out: Outbox,
    mut inputs: UnboundedReceiver<CallInput>,
    incoming: IncomingCall,
) {
    let call_id = incoming.invite.call_id().unwrap_or_default().to_owned();
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let mut call = match Call::setup(svc, out.clone(), incoming, control_tx, ended_tx).await {
        Some(call) => call,
        None => {
            out.send(Command::Ended);
            return;
        }
    };
    let span = tracing::info_span!("call", protocol = %call.protocol, call_id = %call_id);
    // The span goes with the future (never `enter()` across an await: the
    // thread would run other calls inside it).
    async move {
        tracing::info!(caller = %call.caller_number, callee = %call.callee, "call opened");
        call.begin().await;
        while call.ending.is_none() {
            let deadline = call.next_deadline();
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => call.on_input(input).await,
                    None => call.ending = Some(Ending::Failed("the SIP endpoint stopped".into())),
                },
                Some(control) = control_rx.recv() => call.on_control(control).await,
                Some(((), report)) = ended_rx.recv() => call.on_media_ended(report),
                _ = tokio::time::sleep_until(deadline.into()) => call.on_tick().await,
            }
        }
        call.finish().await;
        // Late responses and retransmissions of the legs: absorbed until the
        // transactions end, then the routes go.
        let linger = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(linger);
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => call.on_late_input(input),
                    None => break,
                },
                _ = &mut linger => break,
            }
        }
    }
    .instrument(span)
    .await;
    out.send(Command::Ended);
}

fn user_of(na: &NameAddr) -> String {
    na.uri.user_text().unwrap_or_default()
}

fn is_sdp(msg: &SipMessage) -> bool {
    !msg.body().is_empty()
        && msg
            .media_type()
            .is_some_and(|t| t.eq_ignore_ascii_case("application/sdp"))
}

fn audio_of(body: &[u8]) -> Option<crate::media::sdp::AudioMedia> {
    let text = std::str::from_utf8(body).ok()?;
    SessionDescription::parse(text).ok()?.audio()
}

impl Call {
    /// Answers 100, decides who calls what, opens the attendance and the
    /// media ports. `None` when the call was refused (already answered).
    async fn setup(
        svc: Arc<Services>,
        out: Outbox,
        incoming: IncomingCall,
        control: UnboundedSender<CallControl>,
        media_ended: UnboundedSender<((), RelayReport)>,
    ) -> Option<Call> {
        let IncomingCall {
            key,
            invite,
            source,
            transport,
            extension,
            received,
        } = incoming;
        let reject = |status: u16, reason: Option<&str>| {
            if let Ok(r) = response_to(&invite, status, reason)
                .and_then(|b| b.to_tag("rej").header("Allow", ALLOW).build())
            {
                out.send(Command::Respond {
                    key: key.clone(),
                    response: r,
                });
            }
        };
        if let Ok(trying) = response_to(&invite, 100, None).and_then(|b| b.build()) {
            out.send(Command::Respond {
                key: key.clone(),
                response: trying,
            });
        }
        let call_id = invite.call_id().unwrap_or_default().to_owned();
        let plan = match svc.plan().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%call_id, error = %e, "cannot read the call plan; call refused");
                reject(500, None);
                return None;
            }
        };
        let (Ok(from), Ok(uri)) = (invite.from(), invite.request_uri()) else {
            reject(400, None);
            return None;
        };
        let dialled = uri.user_text().unwrap_or_default();
        let direction = match (&extension, plan.trunk_for(source.ip())) {
            (Some(_), _) => Direction::Internal,
            (None, Some(_)) => Direction::Inbound,
            (None, None) => {
                tracing::warn!(%call_id, %source, "INVITE from an unknown address (no trunk, no extension); refused");
                reject(403, Some("Unknown caller"));
                return None;
            }
        };
        let target = if let Some(d) = plan.department_by_code(&dialled) {
            Target::Department(d.clone())
        } else if plan.extension(&dialled).is_some() && extension.as_deref() != Some(&dialled) {
            Target::Extension(dialled.clone())
        } else {
            tracing::info!(%call_id, %dialled, "no department or extension with this number");
            reject(404, None);
            return None;
        };
        if !is_sdp(&invite) || audio_of(invite.body()).is_none() {
            reject(488, Some("An SDP offer with audio is required"));
            return None;
        }
        let caller_number = extension.clone().unwrap_or_else(|| user_of(&from));
        let since = Utc::now();
        let new = NewAttendance {
            direction,
            department_id: match &target {
                Target::Department(d) => Some(d.id),
                Target::Extension(_) => None,
            },
            agent_id: match &target {
                Target::Extension(n) => plan.agent_of_extension(n),
                Target::Department(_) => None,
            },
            caller: caller_number.clone(),
            callee: dialled.clone(),
            source: CallSource::Sip,
            opened_at: since,
            call_ref: Some(call_id.clone()),
            node: Some(svc.app.settings().node_id.clone()),
        };
        let tz = svc.app.settings().time_zone;
        let attendance = match svc.app.store().open_attendance(&new, tz).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(%call_id, error = %e, "cannot open the attendance; call refused");
                reject(500, None);
                return None;
            }
        };
        let protocol = attendance.protocol;
        let media_ip = svc.app.settings().media_address;
        let legs = async {
            let c = LegSockets::bind(&svc.ports, media_ip).await?;
            let a = LegSockets::bind(&svc.ports, media_ip).await?;
            Ok::<_, std::io::Error>((c, a))
        };
        let (caller_media, agent_media) = match legs.await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%protocol, %call_id, error = %e, "no RTP ports left; call refused");
                reject(503, Some("No media ports"));
                let _ = svc
                    .app
                    .store()
                    .close_attendance_if_open(&protocol, CloseReason::Failed, Utc::now())
                    .await;
                return None;
            }
        };
        let local = svc.local(transport).clone();
        let mut ids = RandomIds;
        let to_tag = ids.tag();
        let sdp = invite.body().clone();
        let mut call = Call {
            out,
            ids,
            control,
            media_ended,
            protocol,
            direction,
            caller_number,
            callee: dialled,
            since,
            answered_at: None,
            caller: CallerLeg {
                invite,
                key,
                source,
                transport,
                local,
                from,
                to_tag,
                dialog: None,
                final_sent: false,
                sdp,
            },
            forks: Vec::new(),
            agent: None,
            ring: None,
            direct: None,
            department: None,
            agent_id: new.agent_id,
            media: Media {
                caller_port: caller_media.port(),
                agent_port: agent_media.port(),
                caller: Some(caller_media),
                agent: Some(agent_media),
                relay: None,
                recording: None,
            },
            retransmits: Vec::new(),
            relayed: Vec::new(),
            ending: None,
            media_report: None,
            pending_target: None,
            received: Some(received),
            answer_received: None,
            published: false,
            attendance_department: new.department_id,
            svc,
        };
        let raw = call.caller.invite.to_bytes();
        call.trace(TraceDirection::In, source, transport, &raw);
        call.pending_target = Some(target);
        Some(call)
    }
}

impl Call {
    // ----- sending ----------------------------------------------------------

    fn trace(
        &self,
        direction: TraceDirection,
        peer: SocketAddr,
        transport: Transport,
        bytes: &Bytes,
    ) {
        self.svc
            .app
            .traces()
            .record(&self.protocol, direction, peer, transport.as_str(), bytes);
    }

    fn leg_route(&self, side: Side) -> Option<(SocketAddr, Transport)> {
        match side {
            Side::Caller => Some((self.caller.source, self.caller.transport)),
            Side::Agent => {
                let fork = self.forks.get(self.agent.as_ref()?.fork)?;
                Some((fork.destination, fork.transport))
            }
        }
    }

    fn send_request(&self, request: SipMessage, destination: SocketAddr, transport: Transport) {
        self.trace(
            TraceDirection::Out,
            destination,
            transport,
            &request.to_bytes(),
        );
        self.out.send(Command::Request {
            request,
            destination,
            transport,
        });
    }

    fn transmit(&self, message: SipMessage, destination: SocketAddr, transport: Transport) {
        self.trace(
            TraceDirection::Out,
            destination,
            transport,
            &message.to_bytes(),
        );
        self.out.send(Command::Transmit {
            message,
            destination,
            transport,
        });
    }

    fn respond(&self, key: &TransactionKey, response: SipMessage, peer: (SocketAddr, Transport)) {
        self.trace(TraceDirection::Out, peer.0, peer.1, &response.to_bytes());
        self.out.send(Command::Respond {
            key: key.clone(),
            response,
        });
    }

    /// A final non-2xx to the caller's INVITE (once).
    fn refuse_caller(&mut self, status: u16) {
        if self.caller.final_sent {
            return;
        }
        self.caller.final_sent = true;
        if let Ok(r) = response_to(&self.caller.invite, status, None)
            .and_then(|b| b.to_tag(&self.caller.to_tag).build())
        {
            self.respond(
                &self.caller.key.clone(),
                r,
                (self.caller.source, self.caller.transport),
            );
        }
    }

    /// BYE on a leg's dialog.
    fn bye(&mut self, side: Side) {
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
        if let Ok(bye) = dialog.request(Method::Bye, &mut self.ids) {
            self.send_request(bye, route.0, route.1);
        }
    }

    fn cancel_fork(&mut self, idx: usize) {
        let Some(fork) = self.forks.get_mut(idx) else {
            return;
        };
        if !fork.live() {
            return;
        }
        fork.state = ForkState::Over;
        let (dest, transport) = (fork.destination, fork.transport);
        let cancels = fork.set.cancel_pending();
        for c in cancels {
            self.send_request(c, dest, transport);
        }
    }

    fn bye_fork(&mut self, idx: usize) {
        let Some(fork) = self.forks.get_mut(idx) else {
            return;
        };
        fork.state = ForkState::Over;
        let (dest, transport) = (fork.destination, fork.transport);
        let bye = fork
            .set
            .winner_mut()
            .and_then(|d| d.request(Method::Bye, &mut self.ids).ok());
        if let Some(bye) = bye {
            self.send_request(bye, dest, transport);
        }
    }

    /// Ends the call from our side: the caller gets a final answer or a
    /// BYE, the agent a BYE, forks still ringing a CANCEL.
    fn hang_up(&mut self, ending: Ending) {
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
    fn end_unanswered(&mut self, reason: CloseReason, status: u16) {
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

    // ----- the live-call view ----------------------------------------------

    fn publish(&mut self) {
        let caller_extension =
            (self.direction == Direction::Internal).then(|| self.caller_number.clone());
        let mut legs = vec![LiveLeg {
            role: LegRole::Caller,
            call_id: self.caller.invite.call_id().unwrap_or_default().to_owned(),
            peer: self.caller.source.to_string(),
            extension: caller_extension,
            agent_id: None,
            state: if self.ending.is_some() {
                LegState::Ended
            } else if self.answered_at.is_some() {
                LegState::Answered
            } else {
                LegState::Calling
            },
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
                    _ if self.ending.is_some() => LegState::Ended,
                    ForkState::Calling => LegState::Calling,
                    ForkState::Ringing => LegState::Ringing,
                    ForkState::Answered if current == Some(i) => LegState::Answered,
                    _ => LegState::Ended,
                },
            });
        }
        let call = LiveCall {
            id: self.protocol.clone(),
            protocol: self.protocol.clone(),
            direction: self.direction,
            state: if self.ending.is_some() {
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
        };
        let calls = self.svc.app.calls();
        if self.published {
            calls.update(&self.protocol, |c| *c = call);
        } else {
            calls.insert(call, self.control.clone());
            self.published = true;
        }
    }

    // ----- ringing -----------------------------------------------------------

    async fn begin(&mut self) {
        let ringing = Dialog::dialog_response(
            &self.caller.invite,
            180,
            &self.caller.to_tag,
            &self.caller.local.contact,
        )
        .ok()
        .and_then(|b| b.build().ok());
        if let Some(r) = ringing {
            self.respond(
                &self.caller.key.clone(),
                r,
                (self.caller.source, self.caller.transport),
            );
        }
        self.publish();
        match self.pending_target.take() {
            Some(Target::Department(d)) => self.ring_department(d.id).await,
            Some(Target::Extension(n)) => self.ring_extension(&n).await,
            None => {}
        }
    }

    async fn plan(&mut self) -> Option<Arc<CallPlan>> {
        match self.svc.plan().await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the call plan");
                self.hang_up(Ending::Failed(format!("call plan: {e}")));
                None
            }
        }
    }

    async fn ring_department(&mut self, department: Id) {
        let Some(plan) = self.plan().await else {
            return;
        };
        let directory = plan.directory(
            &self.svc.app.registered_extensions(),
            &self.svc.app.calls().busy_agents(),
            &self.svc.idle_times(),
        );
        self.ring = Some(Ring::start(
            directory,
            department,
            Instant::now(),
            Utc::now(),
        ));
        self.drive_ring().await;
    }

    async fn ring_extension(&mut self, number: &str) {
        let Some(plan) = self.plan().await else {
            return;
        };
        let Some(binding) = self.svc.app.bindings_of(number).into_iter().next() else {
            tracing::info!(extension = number, "extension not registered");
            self.end_unanswered(CloseReason::NoAnswer, 480);
            return;
        };
        match self.start_fork(plan.agent_of_extension(number), number, &binding) {
            Ok(idx) => self.direct = Some((idx, Instant::now() + DIRECT_RING)),
            Err(ForkRefused::Busy) => {
                tracing::info!(extension = number, "extension busy");
                self.end_unanswered(CloseReason::Rejected, 486);
            }
            Err(e) => {
                tracing::warn!(extension = number, error = %e, "cannot ring the extension");
                self.end_unanswered(CloseReason::NoAnswer, 480);
            }
        }
        self.publish();
    }

    fn start_fork(
        &mut self,
        agent: Option<Id>,
        extension: &str,
        binding: &crate::domain::Registration,
    ) -> Result<usize, ForkRefused> {
        let text = std::str::from_utf8(&self.caller.sdp).map_err(|e| e.to_string())?;
        let offer = sdp::rewrite(
            text,
            self.svc.app.settings().media_address,
            self.media.agent_port,
        )
        .map_err(|e| e.to_string())?;
        let (_, _, transport) = binding_route(binding).map_err(|e| e.to_string())?;
        let local = self.svc.local(transport).clone();
        let (fork, invite) = Fork::build(
            ForkRequest {
                agent,
                extension,
                binding,
                caller: &self.caller.from,
                protocol: &self.protocol,
                sdp: Bytes::from(offer),
                local: &local,
            },
            &mut self.ids,
        )
        .map_err(|e| e.to_string())?;
        let leg = LiveLeg {
            role: LegRole::Agent,
            call_id: fork.call_id.clone(),
            peer: fork.destination.to_string(),
            extension: Some(fork.extension.clone()),
            agent_id: fork.agent,
            state: LegState::Calling,
        };
        if !self.svc.app.calls().claim(&self.protocol, leg) {
            return Err(ForkRefused::Busy);
        }
        self.send_request(invite, fork.destination, fork.transport);
        if let Some(at) = self.received.take() {
            metrics::histogram!("pbx_call_setup_seconds", "stage" => "invite_to_fork")
                .record(at.elapsed().as_secs_f64());
        }
        self.forks.push(fork);
        Ok(self.forks.len() - 1)
    }

    fn fork_of_agent(&self, agent: Id) -> Option<usize> {
        self.forks.iter().rposition(|f| f.agent == Some(agent))
    }

    async fn drive_ring(&mut self) {
        loop {
            let outputs = {
                let Some(ring) = self.ring.as_mut() else {
                    return;
                };
                match self.svc.missed.lock() {
                    Ok(mut missed) => ring.drain(&mut missed),
                    Err(_) => return,
                }
            };
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                self.on_ring_output(output).await;
            }
        }
    }

    async fn on_ring_output(&mut self, output: Output) {
        let now = Instant::now();
        match output {
            Output::EnteredDepartment { department, via } => {
                tracing::info!(department, ?via, "call entered department");
                let plan = self.plan().await;
                self.department = plan.and_then(|p| p.department(department).cloned());
                // The called department is on the attendance already; only a
                // move (overflow, after hours, transfer) is written.
                if self.attendance_department != Some(department) {
                    self.attendance_department = Some(department);
                    if let Err(e) = self
                        .svc
                        .app
                        .store()
                        .assign_attendance(&self.protocol, Some(department), None)
                        .await
                    {
                        tracing::error!(error = %e, "cannot record the department on the attendance");
                    }
                }
                self.publish();
            }
            Output::AfterHours { department, target } => {
                tracing::info!(department, ?target, "department closed: after hours");
            }
            Output::RingAgents { agents, .. } => {
                let Some(plan) = self.plan().await else {
                    return;
                };
                for agent in agents {
                    let result = match plan.agent_extension(agent) {
                        None => Err(ForkRefused::Failed(
                            "the agent has no active extension".to_owned(),
                        )),
                        Some(number) => match self.svc.app.bindings_of(number).first() {
                            None => Err(ForkRefused::Failed(format!(
                                "extension {number} is not registered"
                            ))),
                            Some(b) => self.start_fork(Some(agent), number, b).map(|_| ()),
                        },
                    };
                    if let Err(e) = result {
                        tracing::info!(agent, error = %e, "agent cannot be rung");
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
            Output::CancelAgents(agents) => {
                for agent in agents {
                    if let Some(i) = self.fork_of_agent(agent) {
                        self.cancel_fork(i);
                    }
                }
                self.publish();
            }
            Output::RangOut { agent, department } => {
                tracing::info!(agent, department, "agent let the call ring out");
            }
            Output::Connect { agent, .. } => {
                if let Some(i) = self.fork_of_agent(agent) {
                    self.connect(i).await;
                }
            }
            Output::HangUpLateAnswer(agent) => {
                if let Some(i) = self.fork_of_agent(agent) {
                    self.bye_fork(i);
                }
            }
            Output::ForwardToNumber(number) => {
                tracing::warn!(%number, "after-hours forwarding to a number needs outbound routes on the bridge; the call ends");
            }
            Output::PauseAgent { agent, reason } => {
                match self.svc.app.store().pause_agent(agent, reason).await {
                    Ok(_) => {
                        tracing::info!(agent, reason, event = "agent.paused", "agent paused");
                        self.svc.app.numbering_plan_changed();
                    }
                    Err(e) => tracing::error!(agent, error = %e, "cannot pause the agent"),
                }
            }
            Output::LoopCut { from, to } => {
                tracing::warn!(from, to, "overflow loop cut");
            }
            Output::Finished(outcome) => self.ring_finished(outcome),
        }
    }

    fn ring_finished(&mut self, outcome: Outcome) {
        tracing::info!(?outcome, "ring finished");
        if matches!(outcome, Outcome::Answered { .. }) {
            return;
        }
        let reason = outcome.close_reason().unwrap_or(CloseReason::NoAnswer);
        self.end_unanswered(reason, 480);
    }

    /// The fork `idx` answered and is wanted: bridge it.
    async fn connect(&mut self, idx: usize) {
        let now = Instant::now();
        let (dialog, answer, agent) = match self.forks.get(idx) {
            Some(f) => (f.set.winner().cloned(), f.answer.clone(), f.agent),
            None => return,
        };
        let (Some(mut dialog), Some(answer)) = (dialog, answer) else {
            tracing::warn!("the answer has no dialog or no SDP; hung up");
            self.bye_fork(idx);
            self.hang_up(Ending::Failed("agent answered without SDP".into()));
            return;
        };
        let Some(audio) = audio_of(&answer) else {
            self.bye_fork(idx);
            self.hang_up(Ending::Failed("agent's SDP has no usable audio".into()));
            return;
        };
        dialog.set_request_header(Method::Invite, super::X_PROTOCOL, &self.protocol);
        self.agent = Some(AgentLeg { fork: idx, dialog });
        if agent.is_some() {
            self.agent_id = agent;
        }
        self.direct = None;
        let at = Utc::now();
        if let Some(relay) = &self.media.relay {
            relay.update_remote(Side::Agent, audio).await;
            if let Err(e) = self
                .svc
                .app
                .store()
                .assign_attendance(&self.protocol, None, agent)
                .await
            {
                tracing::error!(error = %e, "cannot record the agent on the attendance");
            }
            tracing::info!(agent = ?agent, "transfer answered");
            self.publish();
            return;
        }
        self.start_media(audio, now);
        let media_ip = self.svc.app.settings().media_address;
        let body = std::str::from_utf8(&answer)
            .ok()
            .and_then(|t| sdp::rewrite(t, media_ip, self.media.caller_port).ok());
        let Some(body) = body else {
            self.hang_up(Ending::Failed("agent's SDP cannot be rewritten".into()));
            return;
        };
        let ok = Dialog::dialog_response(
            &self.caller.invite,
            200,
            &self.caller.to_tag,
            &self.caller.local.contact,
        )
        .ok()
        .and_then(|b| {
            b.header("Allow", ALLOW)
                .body("application/sdp", body)
                .build()
                .ok()
        });
        let Some(ok) = ok else {
            self.hang_up(Ending::Failed("cannot build the 200 OK".into()));
            return;
        };
        match Dialog::uas(&self.caller.invite, &ok, self.caller.local.clone()) {
            Ok(mut d) => {
                d.set_request_header(Method::Invite, super::X_PROTOCOL, &self.protocol);
                self.caller.dialog = Some(d);
            }
            Err(e) => {
                self.hang_up(Ending::Failed(format!("caller dialog: {e}")));
                return;
            }
        }
        self.caller.final_sent = true;
        let key = self.caller.key.clone();
        self.answer_2xx(Side::Caller, &key, ok);
        if let Some(t) = self.answer_received.take() {
            metrics::histogram!("pbx_call_setup_seconds", "stage" => "answer_to_caller")
                .record(t.elapsed().as_secs_f64());
        }
        self.answered_at = Some(at);
        tracing::info!(agent = ?agent, "call answered");
        self.publish();
        if let Err(e) = self
            .svc
            .app
            .store()
            .mark_attendance_answered(&self.protocol, agent, at)
            .await
        {
            tracing::error!(error = %e, "cannot mark the attendance answered");
        }
    }

    /// Sends a 2xx to an INVITE and keeps resending it until the ACK.
    fn answer_2xx(&mut self, side: Side, key: &TransactionKey, response: SipMessage) {
        let Some(route) = self.leg_route(side) else {
            return;
        };
        self.respond(key, response.clone(), route);
        self.retransmits.push(Retransmit {
            side,
            key: key.clone(),
            sent: Retransmit2xx::new(response, route.1.is_reliable(), Instant::now()),
        });
    }

    fn start_media(&mut self, agent_audio: crate::media::sdp::AudioMedia, now: Instant) {
        let (Some(caller), Some(agent)) = (self.media.caller.take(), self.media.agent.take())
        else {
            return;
        };
        let config = RelayConfig {
            dead_media_after: self.svc.app.settings().rtp_timeout,
            ..RelayConfig::default()
        };
        let mut session = MediaSession::new(config, now);
        if let Some(caller_audio) = audio_of(&self.caller.sdp) {
            session.set_remote(Side::Caller, &caller_audio, now);
        }
        session.set_remote(Side::Agent, &agent_audio, now);
        let recorder = if self.department.as_ref().is_some_and(|d| d.record) {
            let root = &self.svc.app.settings().recordings_dir;
            match Protocol::parse(&self.protocol) {
                Ok(p) => {
                    let path = recording_path(root, &p);
                    match Recorder::create(&path, now) {
                        Ok(r) => {
                            self.media.recording = Some(path);
                            Some(r)
                        }
                        Err(e) => {
                            tracing::error!(path = %path.display(), error = %e, "cannot start the recording; the call goes on unrecorded");
                            None
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "protocol cannot name a recording");
                    None
                }
            }
        } else {
            None
        };
        self.media.relay = Some(spawn_relay(
            (),
            caller,
            agent,
            session,
            recorder,
            self.media_ended.clone(),
        ));
    }
}

impl Call {
    // ----- what arrives ------------------------------------------------------

    fn side_of(&self, call_id: &str) -> Option<Side> {
        if self.caller.invite.call_id().ok() == Some(call_id) {
            return Some(Side::Caller);
        }
        let agent = self.agent.as_ref()?;
        (self.forks.get(agent.fork)?.call_id == call_id).then_some(Side::Agent)
    }

    async fn on_input(&mut self, input: CallInput) {
        match input {
            CallInput::Request {
                key,
                request,
                source,
                transport,
            } => {
                self.trace(TraceDirection::In, source, transport, &request.to_bytes());
                let call_id = request.call_id().unwrap_or_default().to_owned();
                match self.side_of(&call_id) {
                    Some(side) => self.on_leg_request(side, key, request).await,
                    None => {
                        // A fork no longer wanted (hung up after a late
                        // answer, or transferred away) saying goodbye.
                        let status = if request.method() == Some(&Method::Bye) {
                            200
                        } else {
                            481
                        };
                        if let Ok(r) = response_to(&request, status, None).and_then(|b| b.build()) {
                            self.respond(&key, r, (source, transport));
                        }
                    }
                }
            }
            CallInput::Cancelled => self.on_cancel().await,
            CallInput::Ack { request } => {
                let call_id = request.call_id().unwrap_or_default().to_owned();
                let seq = request.cseq().map(|c| c.seq).unwrap_or(0);
                if let Some(side) = self.side_of(&call_id) {
                    if let Some(route) = self.leg_route(side) {
                        self.trace(TraceDirection::In, route.0, route.1, &request.to_bytes());
                    }
                    self.retransmits
                        .retain_mut(|r| !(r.side == side && r.sent.on_ack(seq)));
                }
            }
            CallInput::Response { response } => {
                if let Some((peer, t)) = self.route_of_response(&response) {
                    self.trace(TraceDirection::In, peer, t, &response.to_bytes());
                }
                self.on_response(response).await;
            }
            CallInput::TransactionFailed { key } => self.on_transaction_failed(key).await,
        }
    }

    fn route_of_response(&self, response: &SipMessage) -> Option<(SocketAddr, Transport)> {
        let call_id = response.call_id().ok()?;
        if let Some(side) = self.side_of(call_id) {
            return self.leg_route(side);
        }
        self.forks
            .iter()
            .find(|f| f.call_id == call_id)
            .map(|f| (f.destination, f.transport))
    }

    async fn on_cancel(&mut self) {
        if self.caller.final_sent {
            return;
        }
        tracing::info!("caller cancelled while ringing");
        self.refuse_caller(487);
        if let Some(ring) = self.ring.as_mut() {
            ring.caller_hung_up(Instant::now());
            self.drive_ring().await;
        }
        self.end_unanswered(CloseReason::Abandoned, 487);
    }

    async fn on_transaction_failed(&mut self, key: TransactionKey) {
        let Some(idx) = self.forks.iter().position(|f| f.key == key) else {
            return;
        };
        if !self.forks[idx].live() {
            return;
        }
        tracing::info!(extension = %self.forks[idx].extension, "fork got no response");
        self.fork_failed(idx, 408).await;
    }

    async fn fork_failed(&mut self, idx: usize, status: u16) {
        self.forks[idx].state = ForkState::Over;
        let agent = self.forks[idx].agent;
        if let (Some(ring), Some(agent)) = (self.ring.as_mut(), agent) {
            ring.agent_failed(agent, FailReason::from_status(status), Instant::now());
            self.drive_ring().await;
        } else if self.direct.is_some_and(|(d, _)| d == idx) {
            self.direct = None;
            let (reason, to_caller) = match status {
                486 | 600 => (CloseReason::Rejected, 486),
                603 => (CloseReason::Rejected, 603),
                _ => (CloseReason::NoAnswer, 480),
            };
            self.end_unanswered(reason, to_caller);
        }
        self.publish();
    }

    async fn on_response(&mut self, response: SipMessage) {
        let (Ok(call_id), Ok(cseq)) = (response.call_id(), response.cseq()) else {
            return;
        };
        let call_id = call_id.to_owned();
        if let Some(idx) = self.forks.iter().position(|f| f.call_id == call_id)
            && cseq.method == Method::Invite
            && cseq.seq == self.forks[idx].invite_seq
        {
            self.on_fork_response(idx, response).await;
            return;
        }
        if let Some(side) = self.side_of(&call_id) {
            self.on_leg_response(side, response).await;
        }
    }

    async fn on_fork_response(&mut self, idx: usize, response: SipMessage) {
        let event = self.forks[idx].set.on_response(&response, &mut self.ids);
        let (dest, transport) = (self.forks[idx].destination, self.forks[idx].transport);
        let agent = self.forks[idx].agent;
        match event {
            ForkEvent::Provisional { .. } | ForkEvent::Ignored => {}
            ForkEvent::Early { status, .. } => {
                if matches!(status, 180 | 183) && self.forks[idx].state == ForkState::Calling {
                    self.forks[idx].state = ForkState::Ringing;
                    if let (Some(ring), Some(agent)) = (self.ring.as_mut(), agent) {
                        ring.agent_ringing(agent, Instant::now());
                        self.drive_ring().await;
                    }
                    self.publish();
                }
            }
            ForkEvent::Answered { ack, cancels, .. } => {
                self.answer_received = Some(Instant::now());
                self.transmit(ack, dest, transport);
                for c in cancels {
                    self.send_request(c, dest, transport);
                }
                let wanted = self.forks[idx].live() && self.ending.is_none();
                self.forks[idx].state = ForkState::Answered;
                if is_sdp(&response) {
                    self.forks[idx].answer = Some(response.body().clone());
                }
                if let (Some(ring), Some(agent)) = (self.ring.as_mut(), agent) {
                    ring.agent_answered(agent, Instant::now());
                    self.drive_ring().await;
                } else if wanted && self.direct.is_some_and(|(d, _)| d == idx) {
                    self.connect(idx).await;
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
                if self.forks[idx].live() {
                    self.fork_failed(idx, status).await;
                }
            }
        }
    }

    fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.caller.dialog.as_mut(),
            Side::Agent => self.agent.as_mut().map(|a| &mut a.dialog),
        }
    }

    /// The bridge's RTP port the `side` leg sends to.
    fn port_facing(&self, side: Side) -> u16 {
        match side {
            Side::Caller => self.media.caller_port,
            Side::Agent => self.media.agent_port,
        }
    }

    fn rewrite_for(&self, side: Side, body: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(body).ok()?;
        sdp::rewrite(
            text,
            self.svc.app.settings().media_address,
            self.port_facing(side),
        )
        .ok()
    }

    /// Answers an in-dialog request of `side`.
    fn answer_in_dialog(
        &mut self,
        side: Side,
        key: &TransactionKey,
        request: &SipMessage,
        status: u16,
        body: Option<(String, Bytes)>,
    ) {
        let Some(route) = self.leg_route(side) else {
            return;
        };
        let Some(dialog) = self.dialog_mut(side) else {
            return;
        };
        let local_tag = dialog.id().local_tag.clone();
        let contact = dialog.local_party().contact.clone();
        let built = Dialog::dialog_response(request, status, &local_tag, &contact)
            .ok()
            .and_then(|mut b| {
                if let Some((ct, body)) = body {
                    b = b.body(&ct, body);
                }
                b.build().ok()
            });
        let Some(response) = built else { return };
        let _ = dialog.on_sent_response(&response);
        let is_invite_2xx =
            request.method() == Some(&Method::Invite) && (200..300).contains(&status);
        if is_invite_2xx {
            self.answer_2xx(side, key, response);
        } else {
            self.respond(key, response, route);
        }
    }

    async fn on_leg_request(&mut self, side: Side, key: TransactionKey, request: SipMessage) {
        let Some(dialog) = self.dialog_mut(side) else {
            if let Ok(r) = response_to(&request, 481, None).and_then(|b| b.build())
                && let Some(route) = self.leg_route(side)
            {
                self.respond(&key, r, route);
            }
            return;
        };
        match dialog.on_request(&request) {
            RequestDecision::Reject(rejection) => {
                if let (Ok(r), Some(route)) = (rejection.response(&request), self.leg_route(side)) {
                    self.respond(&key, r, route);
                }
            }
            RequestDecision::Drop | RequestDecision::Ack => {}
            RequestDecision::Accept { .. } => match request.method() {
                Some(Method::Bye) => {
                    self.answer_in_dialog(side, &key, &request, 200, None);
                    tracing::info!(?side, "hung up");
                    self.hang_up(Ending::Hangup(side));
                }
                Some(Method::Options) => self.answer_in_dialog(side, &key, &request, 200, None),
                Some(Method::Refer) if side == Side::Agent => self.on_refer(key, request).await,
                _ => self.relay_request(side, key, request).await,
            },
        }
    }

    /// Passes an in-dialog request to the other leg (re-INVITE for hold,
    /// INFO for DTMF, UPDATE...), SDP rewritten to the bridge's ports.
    async fn relay_request(&mut self, from: Side, key: TransactionKey, request: SipMessage) {
        let to = from.other();
        let Some(method) = request.method().cloned() else {
            return;
        };
        let body = if request.body().is_empty() {
            None
        } else if is_sdp(&request) {
            self.rewrite_for(to, request.body())
                .map(|b| ("application/sdp".to_owned(), Bytes::from(b)))
        } else {
            Some((
                request
                    .content_type()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                request.body().clone(),
            ))
        };
        let Some(route) = self.leg_route(to) else {
            // No other leg now (a transfer is ringing): ask to retry.
            self.answer_in_dialog(from, &key, &request, 491, None);
            return;
        };
        let branch = self.ids.branch();
        let Some(dialog) = self.dialog_mut(to) else {
            self.answer_in_dialog(from, &key, &request, 491, None);
            return;
        };
        let built = dialog
            .request_builder(method.clone(), &branch)
            .ok()
            .and_then(|mut b| {
                for name in ["Event", "Subscription-State", "Info-Package"] {
                    if let Some(v) = request.header(name) {
                        b = b.header(name, String::from_utf8_lossy(v));
                    }
                }
                if let Some((ct, body)) = body {
                    b = b.body(&ct, body);
                }
                b.build().ok()
            });
        let Some(out) = built else {
            self.answer_in_dialog(from, &key, &request, 491, None);
            return;
        };
        if method == Method::Invite && is_sdp(&request) {
            if from == Side::Caller {
                self.caller.sdp = request.body().clone();
            }
            if let (Some(relay), Some(audio)) = (&self.media.relay, audio_of(request.body())) {
                relay.update_remote(from, audio).await;
            }
        }
        let seq = out.cseq().map(|c| c.seq).unwrap_or(0);
        self.send_request(out, route.0, route.1);
        self.relayed.push(Relayed {
            to,
            seq,
            from_key: key,
            from_request: request,
        });
    }

    async fn on_leg_response(&mut self, side: Side, response: SipMessage) {
        let Ok(cseq) = response.cseq() else { return };
        let status = response.status().unwrap_or(0);
        let route = self.leg_route(side);
        let mut ack = None;
        let dialog = match side {
            Side::Caller => self.caller.dialog.as_mut(),
            Side::Agent => self.agent.as_mut().map(|a| &mut a.dialog),
        };
        if let Some(dialog) = dialog {
            let _ = dialog.on_response(&response);
            if cseq.method == Method::Invite && (200..300).contains(&status) {
                ack = dialog.ack_for_2xx(&response, &mut self.ids).ok();
            }
        }
        if let (Some(ack), Some(route)) = (ack, route) {
            self.transmit(ack, route.0, route.1);
        }
        if status < 200 {
            return;
        }
        let Some(i) = self
            .relayed
            .iter()
            .position(|r| r.to == side && r.seq == cseq.seq)
        else {
            return;
        };
        let relayed = self.relayed.remove(i);
        let from = side.other();
        let body = if is_sdp(&response) {
            if cseq.method == Method::Invite
                && (200..300).contains(&status)
                && let (Some(relay), Some(audio)) = (&self.media.relay, audio_of(response.body()))
            {
                relay.update_remote(side, audio).await;
            }
            self.rewrite_for(from, response.body())
                .map(|b| ("application/sdp".to_owned(), Bytes::from(b)))
        } else {
            None
        };
        self.answer_in_dialog(from, &relayed.from_key, &relayed.from_request, status, body);
    }

    // ----- transfers -----------------------------------------------------------

    async fn resolve(&mut self, target: &str) -> Option<Target> {
        let plan = self.plan().await?;
        if let Some(d) = plan.department_by_code(target) {
            return Some(Target::Department(d.clone()));
        }
        plan.extension(target)
            .map(|_| Target::Extension(target.to_owned()))
    }

    /// REFER from the agent (RFC 3515): accepted, NOTIFY 200 at once (the
    /// bridge keeps the caller and takes over), then the blind transfer.
    async fn on_refer(&mut self, key: TransactionKey, request: SipMessage) {
        let target = request
            .header("Refer-To")
            .and_then(|v| NameAddr::parse(&String::from_utf8_lossy(v)).ok())
            .map(|na| user_of(&na))
            .unwrap_or_default();
        let Some(resolved) = self.resolve(&target).await else {
            tracing::info!(%target, "REFER to an unknown number");
            self.answer_in_dialog(Side::Agent, &key, &request, 404, None);
            return;
        };
        self.answer_in_dialog(Side::Agent, &key, &request, 202, None);
        let branch = self.ids.branch();
        let route = self.leg_route(Side::Agent);
        let notify = self.dialog_mut(Side::Agent).and_then(|d| {
            d.request_builder(Method::Notify, &branch)
                .ok()
                .and_then(|b| {
                    b.header("Event", "refer")
                        .header("Subscription-State", "terminated;reason=noresource")
                        .body(
                            "message/sipfrag;version=2.0",
                            Bytes::from_static(b"SIP/2.0 200 OK\r\n"),
                        )
                        .build()
                        .ok()
                })
        });
        if let (Some(n), Some(route)) = (notify, route) {
            self.send_request(n, route.0, route.1);
        }
        if let Err(e) = self.transfer(&target, resolved).await {
            tracing::warn!(%target, error = %e, "transfer failed");
        }
    }

    async fn transfer(&mut self, label: &str, target: Target) -> Result<(), String> {
        let Some(leg) = self.agent.take() else {
            return Err("the call has no agent to transfer from".into());
        };
        if self.answered_at.is_none() {
            self.agent = Some(leg);
            return Err("the call is not answered".into());
        }
        if let Target::Department(d) = &target {
            self.attendance_department = Some(d.id);
        }
        let transfer = Transfer {
            at: Utc::now(),
            from_agent_id: self.agent_id,
            target: label.to_owned(),
            department_id: match &target {
                Target::Department(d) => Some(d.id),
                Target::Extension(_) => None,
            },
        };
        if let Err(e) = self
            .svc
            .app
            .store()
            .record_transfer(&self.protocol, &transfer)
            .await
        {
            tracing::error!(error = %e, "cannot record the transfer");
        }
        tracing::info!(target = label, "blind transfer");
        // The agent leg ends here; the caller stays on the relay.
        let fork = leg.fork;
        self.agent = Some(leg);
        self.bye(Side::Agent);
        self.agent = None;
        if let Some(f) = self.forks.get_mut(fork) {
            f.state = ForkState::Over;
            if let Some(a) = f.agent
                && let Ok(mut idle) = self.svc.idle_since.lock()
            {
                idle.insert(a, Utc::now());
            }
        }
        self.ring = None;
        self.direct = None;
        match target {
            Target::Department(d) => {
                self.department = Some(d.clone());
                self.ring_department(d.id).await
            }
            Target::Extension(n) => self.ring_extension(&n).await,
        }
        self.publish();
        Ok(())
    }

    async fn on_control(&mut self, control: CallControl) {
        match control {
            CallControl::Shutdown => {
                tracing::warn!("the bridge is stopping: call hung up");
                self.hang_up(Ending::Failed("the bridge shut down".into()));
            }
            CallControl::HangUp => {
                tracing::info!("hung up through the API");
                self.hang_up(Ending::Api);
            }
            CallControl::Transfer { target, reply } => {
                let result = match self.resolve(&target).await {
                    Some(t) => self.transfer(&target, t).await,
                    None => Err(format!("{target:?} is no department code or extension")),
                };
                let _ = reply.send(result);
            }
        }
    }

    fn on_media_ended(&mut self, report: RelayReport) {
        if let EndReason::DeadMedia(dead) = &report.reason {
            tracing::warn!(
                ?dead,
                "dead media: no RTP for the configured time; call ended"
            );
            self.media.relay = None;
            self.media_report = Some(report);
            self.hang_up(Ending::Failed("dead media".into()));
        }
    }

    // ----- time ------------------------------------------------------------------

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        [
            self.ring.as_ref().and_then(Ring::next_deadline),
            self.direct.map(|(_, d)| d),
            self.retransmits
                .iter()
                .filter_map(|r| r.sent.next_deadline())
                .min(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(far)
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        if let Some(ring) = self.ring.as_mut()
            && ring.next_deadline().is_some_and(|d| d <= now)
        {
            ring.tick(now);
            self.drive_ring().await;
        }
        if let Some((idx, deadline)) = self.direct
            && deadline <= now
        {
            tracing::info!("extension did not answer");
            self.direct = None;
            self.cancel_fork(idx);
            self.end_unanswered(CloseReason::NoAnswer, 480);
        }
        let mut lost = false;
        let mut resend = Vec::new();
        self.retransmits.retain_mut(|r| match r.sent.on_tick(now) {
            RetransmitStep::Wait => !r.sent.is_done(),
            RetransmitStep::Resend(response) => {
                resend.push((r.side, r.key.clone(), response));
                true
            }
            RetransmitStep::GaveUp => {
                lost = true;
                false
            }
        });
        for (side, key, response) in resend {
            if let Some(route) = self.leg_route(side) {
                self.respond(&key, response, route);
            }
        }
        if lost {
            tracing::warn!("no ACK for a 2xx within 32 s; call ended");
            self.hang_up(Ending::Failed("no ACK".into()));
        }
    }

    // ----- the end -------------------------------------------------------------

    async fn finish(&mut self) {
        let ending = self
            .ending
            .clone()
            .unwrap_or(Ending::Failed("unknown".into()));
        let now = Utc::now();
        let report = match self.media.relay.take() {
            Some(relay) => relay.stop().await,
            None => self.media_report.take(),
        };
        let store = self.svc.app.store();
        if let Some(report) = report {
            tracing::info!(
                caller_packets = report.caller.packets,
                agent_packets = report.agent.packets,
                caller_loss = report.caller.loss_fraction(),
                agent_loss = report.agent.loss_fraction(),
                "media ended"
            );
            match (&report.recording, &report.recording_path) {
                (Some(Ok(info)), Some(path)) => {
                    let root = &self.svc.app.settings().recordings_dir;
                    let relative = path
                        .strip_prefix(root)
                        .unwrap_or(path)
                        .to_string_lossy()
                        .into_owned();
                    if let Err(e) = store
                        .attach_recording(
                            &self.protocol,
                            &relative,
                            info.duration_ms,
                            info.bytes,
                            &info.sha256,
                        )
                        .await
                    {
                        tracing::error!(path = %path.display(), error = %e, "recording kept on disk but not linked; start-up recovery links it");
                    }
                }
                (Some(Err(e)), path) => {
                    tracing::error!(?path, error = %e, "recording failed; the file is repaired at the next start");
                }
                _ => {}
            }
        }
        let reason = ending.close_reason();
        if let Ending::Failed(why) = &ending {
            tracing::warn!(reason = %why, "call failed");
        }
        let result = if self.answered_at.is_some() {
            let ended = store.mark_attendance_ended(&self.protocol, now).await;
            let close = self.department.as_ref().is_none_or(|d| d.close_on_hangup);
            match ended {
                Ok(_) if close => store
                    .close_attendance_if_open(&self.protocol, reason, now)
                    .await
                    .map(|_| ()),
                other => other.map(|_| ()),
            }
        } else {
            store
                .close_attendance_if_open(&self.protocol, reason, now)
                .await
                .map(|_| ())
        };
        if let Err(e) = result {
            tracing::error!(error = %e, ?reason, "cannot record the end of the call on its attendance");
        }
        if let Some(leg) = &self.agent
            && let Some(a) = self.forks.get(leg.fork).and_then(|f| f.agent)
            && let Ok(mut idle) = self.svc.idle_since.lock()
        {
            idle.insert(a, now);
        }
        self.svc.app.calls().remove(&self.protocol);
        self.svc.app.traces().end(&self.protocol);
        tracing::info!(?reason, "call ended");
    }

    /// After the end: late 2xx still get their ACK (and a BYE), a crossing
    /// BYE its 200.
    fn on_late_input(&mut self, input: CallInput) {
        match input {
            CallInput::Response { response } => {
                let Ok(call_id) = response.call_id() else {
                    return;
                };
                if let Some(f) = self.forks.iter_mut().find(|f| f.call_id == call_id) {
                    let (dest, transport) = (f.destination, f.transport);
                    match f.set.on_response(&response, &mut self.ids) {
                        ForkEvent::Answered { ack, .. } | ForkEvent::ResendAck(ack) => {
                            let bye = f
                                .set
                                .winner_mut()
                                .and_then(|d| d.request(Method::Bye, &mut self.ids).ok());
                            self.out.send(Command::Transmit {
                                message: ack,
                                destination: dest,
                                transport,
                            });
                            if let Some(bye) = bye {
                                self.out.send(Command::Request {
                                    request: bye,
                                    destination: dest,
                                    transport,
                                });
                            }
                        }
                        ForkEvent::AckAndBye { ack, bye, .. } => {
                            self.out.send(Command::Transmit {
                                message: ack,
                                destination: dest,
                                transport,
                            });
                            self.out.send(Command::Request {
                                request: bye,
                                destination: dest,
                                transport,
                            });
                        }
                        ForkEvent::Cancel(c) => self.out.send(Command::Request {
                            request: c,
                            destination: dest,
                            transport,
                        }),
                        _ => {}
                    }
                }
            }
            CallInput::Request { key, request, .. } => {
                let status = if request.method() == Some(&Method::Bye) {
                    200
                } else {
                    481
                };
                if let Ok(r) = response_to(&request, status, None).and_then(|b| b.build()) {
                    self.out.send(Command::Respond { key, response: r });
                }
            }
            _ => {}
        }
    }
}
