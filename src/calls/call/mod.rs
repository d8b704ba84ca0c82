//! One call through the bridge as a sans-IO state machine: the caller's
//! leg (a UAS dialog), the forks that ring agents or an extension (UAC
//! dialogs), the ring that decides who rings, and the attendance's story.
//! It reads no clock, opens no socket and awaits nothing: [`Call::handle`]
//! takes an [`Input`] (a SIP message, the ledger's answer, an API order, a
//! tick) with the time, and [`Call::poll_output`] hands back what to do
//! ([`Output`]: SIP messages, media orders, attendance changes...).
//! [`super::task`] is the thin tokio driver.
//!
//! ```text
//! INVITE ─► 100 ─► OpenAttendance ─► (durable) ─► 180 ─► ring ─┬─ answer ─► 200 (SDP) ─► talking
//!                                                             ├─ CANCEL ─► 487, forks CANCELled: abandoned
//!                                                             └─ nobody ─► 480: no_answer / after_hours
//! talking: BYE either side ends both; re-INVITE / INFO / UPDATE relayed; REFER from
//! the agent (or the API) rings the new target with the caller kept on the relay
//! ```
//!
//! The stages live in their own files: `admission` (the INVITE until the
//! attendance is durable), `ring` (forks and the department ring),
//! `outbound` (a number beyond the bridge through a route's trunks),
//! `forward` (follow-me and after-hours numbers onto that path), `bridge`
//! (the answer), `in_dialog` (requests and responses of the connected
//! legs, 2xx retransmission), `transfer`, `finish` (hang-up, the
//! attendance's end, late messages), `view` (the live-call entry).
//!
//! Shared, in-memory state of the node (the numbering plan snapshot, the
//! registrations, the live-call table where agents are claimed) is reached
//! synchronously through [`CallEnv`]: it is memory, not I/O, and a claim
//! must be atomic with the fork it allows.

mod admission;
mod bridge;
mod env;
mod finish;
mod forward;
mod in_dialog;
mod originate;
mod outbound;
mod reach;
mod ring;
mod transfer;
mod view;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use self::env::CallEnv;
pub use self::originate::{NotOriginated, OriginateCall};
use super::fork::Fork;
use super::signal::{CallInput, Command};
use super::trace::TraceDirection;
use crate::domain::{AttendanceChange, CloseReason, Department, Direction, Id, Timestamp};
use crate::media::relay::Side;
use crate::media::sdp::AudioMedia;
use crate::routing::Ring;
use crate::sip::dialog::{Dialog, IdSource, LocalParty, Retransmit2xx};
use crate::sip::message::{NameAddr, SipMessage};
use crate::sip::transaction::{TransactionKey, Transport};
use crate::store::NewAttendance;

/// What calls accept (also the forks' `Allow`).
pub(super) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, INFO, UPDATE";
/// How long an extension rings when called directly.
const DIRECT_RING: Duration = Duration::from_secs(60);

/// What the API (or the shutdown) asks of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `DELETE /calls/{id}`: end every leg; closed `api`.
    HangUp,
    /// The grace period of a shutdown is over: end every leg; `failed`.
    Shutdown,
    /// Blind-transfer the caller; answered by [`Output::TransferReply`].
    Transfer { target: String },
}

/// Everything a call reacts to.
#[derive(Debug)]
pub enum Input {
    /// A message of one of the call's legs, routed by Call-ID (boxed:
    /// a SIP message dwarfs the other inputs).
    Sip(Box<CallInput>),
    /// The ledger's answer to [`Output::OpenAttendance`]: the protocol, or
    /// why the node cannot make the attendance durable.
    Opened(Result<String, String>),
    Control(Control),
    /// The relay ended by itself: no RTP for the configured time.
    MediaDead,
    /// Time passed ([`Call::poll_timeout`] was reached).
    Tick,
}

/// Orders for the call's media relay.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaOp {
    /// Both legs are known: relay between the bridge's two ports, and
    /// record the call (stereo, caller left) when `record`.
    Start {
        caller: Option<AudioMedia>,
        agent: AudioMedia,
        record: bool,
    },
    /// A leg's new SDP (re-INVITE, or a transfer's answer).
    Update { side: Side, audio: AudioMedia },
    /// The call is over: stop, finish the recording and link it.
    Stop,
}

/// What the driver must do, in order.
#[derive(Debug)]
pub enum Output {
    /// A SIP message to send through signalling (and the SIP stack).
    Sip(Command),
    /// A message for the call's SIP trace (`/calls/{id}/sip-trace`).
    Trace {
        direction: TraceDirection,
        peer: SocketAddr,
        transport: Transport,
        bytes: Bytes,
    },
    /// Allocate the protocol and make the attendance durable; answer with
    /// [`Input::Opened`]. Nobody is rung before that.
    OpenAttendance(NewAttendance),
    /// A change of the (opened) attendance.
    Attendance(AttendanceChange),
    Media(MediaOp),
    /// The ring decided to pause this agent (missed calls).
    PauseAgent {
        agent: Id,
        reason: &'static str,
    },
    /// Setup latency: the SIP message just before this one left; record
    /// how long after `since` (the INVITE's, or the winning 200's, arrival)
    /// it was carried out. Measured by the driver, on the real clock: the
    /// core's own time does not move while it handles one input.
    SetupMark {
        stage: &'static str,
        since: Instant,
    },
    /// The answer to [`Control::Transfer`].
    TransferReply(Result<(), String>),
    /// A click-to-call ([`Call::originate`]) refused before its attendance
    /// was opened: nothing rang, nothing was stored.
    NotOriginated(NotOriginated),
    /// The call is over. With `linger`, late messages of its legs still
    /// come in for a short while (retransmissions, crossing BYEs).
    Finished {
        linger: bool,
    },
}

/// Fixed facts of this node the call needs.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// The address written into SDP (both legs send RTP there).
    pub media_address: IpAddr,
    /// The bridge's RTP port facing the caller, and facing the agent; 0
    /// when none could be leased (the call is refused 503).
    pub caller_port: u16,
    pub agent_port: u16,
}

/// A new INVITE (no To tag) that starts a call.
#[derive(Debug)]
pub struct IncomingCall {
    pub key: TransactionKey,
    pub invite: SipMessage,
    pub source: SocketAddr,
    pub transport: Transport,
    /// The extension that authenticated (digest), or `None` for a caller
    /// known only by address (a trunk, or the PBX).
    pub extension: Option<String>,
    /// The INVITE came from the PBX beside the bridge (trusted without a
    /// challenge; the caller is its P-Asserted-Identity).
    pub from_pbx: bool,
    /// When the INVITE arrived (setup latency is measured from here).
    pub received: Instant,
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

/// Where the call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the attendance to be durable.
    Opening,
    /// Ringing, talking, transferring.
    Live,
    /// Over: only late messages are answered.
    Finished,
}

/// The caller's leg: who calls, and (in `origin`) how the leg came to be.
struct CallerLeg {
    origin: Origin,
    /// Where the leg's requests and responses go.
    source: SocketAddr,
    transport: Transport,
    local: LocalParty,
    /// The caller's identity, shown to the agents rung (their From).
    from: NameAddr,
    dialog: Option<Dialog>,
    /// The leg is settled: a final answer went to the caller's INVITE, or
    /// (click-to-call) the extension answered ours.
    final_sent: bool,
    /// The caller's latest SDP (offers to agents are made from it).
    sdp: Bytes,
}

/// How the caller's leg came to be. One per call, inside the call: the
/// variants' sizes differ, which boxing would not make cheaper.
#[allow(clippy::large_enum_variant)]
enum Origin {
    /// The caller's INVITE: the bridge is its UAS.
    Received(Received),
    /// Click-to-call: the bridge called the extension (UAC; RFC 3725
    /// flow I) and dials the target once it answers.
    Originated(originate::OriginLeg),
}

/// The INVITE that started a call, answered by the bridge.
struct Received {
    invite: SipMessage,
    key: TransactionKey,
    to_tag: String,
}

/// The agent (or extension) the caller talks to.
struct AgentLeg {
    fork: usize,
    dialog: Dialog,
}

/// A request of one leg relayed to the other, waiting for its answer.
struct Relayed {
    to: Side,
    seq: u32,
    from_key: TransactionKey,
    from_request: SipMessage,
}

/// A 2xx we sent to an INVITE of `side`, resent until its ACK.
struct Unacked {
    side: Side,
    key: TransactionKey,
    retransmit: Retransmit2xx,
}

#[derive(Debug, Clone)]
enum Target {
    Department(Department),
    Extension(String),
    /// A number beyond the bridge, through an outbound route's trunks.
    Outbound(crate::routing::OutboundDial),
}

/// Wall-clock time derived from the input instants: one reading at the
/// start, so the core never reads a clock and simulated time moves both.
#[derive(Debug, Clone, Copy)]
struct Clock {
    at: Instant,
    wall: Timestamp,
}

impl Clock {
    fn wall(&self, now: Instant) -> Timestamp {
        let elapsed = now.saturating_duration_since(self.at);
        self.wall + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }
}

/// One call. See the module documentation.
pub struct Call {
    env: Arc<dyn CallEnv>,
    config: CallConfig,
    ids: Box<dyn IdSource + Send>,
    clock: Clock,
    now: Instant,
    stage: Stage,
    /// Known once the attendance is durable.
    protocol: String,
    call_id: String,
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
    /// The extension's follow-me, dialled when its direct ring ends
    /// unanswered.
    follow_me: Option<forward::Forward>,
    /// The close reason the attendance takes when the call ends, whatever
    /// happened (an after-hours forward closes `after_hours`).
    closes_as: Option<CloseReason>,
    department: Option<Department>,
    /// The agent the attendance names (the last one connected).
    agent_id: Option<Id>,
    media_started: bool,
    /// The call goes on with an attendance opened before it reached the
    /// bridge (`X-Protocol` from the PBX): its answer also names the agent
    /// on an attendance that may be answered already.
    continued: bool,
    unacked: Vec<Unacked>,
    relayed: Vec<Relayed>,
    ending: Option<Ending>,
    /// Where the call goes once its attendance is durable.
    pending_target: Option<Target>,
    /// Setup latency marks: the INVITE's arrival (until the first fork
    /// leaves) and the winning 200 OK's (until the caller's 200 leaves).
    received: Option<Instant>,
    answer_received: Option<Instant>,
    /// The department the attendance names now.
    attendance_department: Option<Id>,
    /// The channel (`max_channels`) of the trunk a carrier's call came in
    /// on, given back when the call is over.
    trunk_channel: Option<Id>,
    /// An outbound call's trunks and where it stands with them.
    outbound: Option<outbound::Outbound>,
    outputs: VecDeque<Output>,
}

impl Call {
    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Input::Tick`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stage != Stage::Live {
            return None;
        }
        [
            self.ring.as_ref().and_then(Ring::next_deadline),
            self.direct.map(|(_, d)| d),
            self.origin_deadline(),
            self.outbound
                .as_ref()
                .and_then(outbound::Outbound::deadline),
            self.unacked
                .iter()
                .filter_map(|u| u.retransmit.next_deadline())
                .min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The protocol, once the attendance is durable (empty before).
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    #[cfg(test)]
    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    /// Feeds one input at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) {
        self.now = self.now.max(now);
        match self.stage {
            Stage::Opening => match input {
                Input::Opened(result) => self.on_opened(result),
                Input::Sip(sip) if matches!(*sip, CallInput::Cancelled) => {
                    self.cancel_before_open()
                }
                Input::Sip(other) => self.on_late_input(*other),
                Input::Control(Control::Transfer { .. }) => self.out(Output::TransferReply(Err(
                    "the call is not answered".into(),
                ))),
                Input::Control(_) | Input::MediaDead | Input::Tick => {}
            },
            Stage::Live => {
                match input {
                    Input::Sip(sip) => self.on_sip(*sip),
                    Input::Opened(_) => {}
                    Input::Control(control) => self.on_control(control),
                    Input::MediaDead => self.on_media_dead(),
                    Input::Tick => self.on_tick(),
                }
                if self.ending.is_some() {
                    self.finish();
                }
            }
            Stage::Finished => match input {
                Input::Sip(sip) => self.on_late_input(*sip),
                Input::Control(Control::Transfer { .. }) => {
                    self.out(Output::TransferReply(Err("the call is over".into())))
                }
                _ => {}
            },
        }
    }

    /// The call is over: nothing it holds is kept.
    fn close_stage(&mut self) {
        self.stage = Stage::Finished;
        self.release_trunk_channel();
        self.release_outbound_channel();
    }

    fn wall(&self) -> Timestamp {
        self.clock.wall(self.now)
    }

    fn out(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    fn record(&mut self, change: AttendanceChange) {
        self.out(Output::Attendance(change));
    }

    // ----- sending ----------------------------------------------------------

    fn trace(&mut self, direction: TraceDirection, peer: (SocketAddr, Transport), bytes: Bytes) {
        if self.protocol.is_empty() {
            return;
        }
        self.out(Output::Trace {
            direction,
            peer: peer.0,
            transport: peer.1,
            bytes,
        });
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

    fn send_request(&mut self, request: SipMessage, destination: SocketAddr, transport: Transport) {
        self.trace(
            TraceDirection::Out,
            (destination, transport),
            request.to_bytes(),
        );
        self.out(Output::Sip(Command::Request {
            request,
            destination,
            transport,
        }));
    }

    fn transmit(&mut self, message: SipMessage, destination: SocketAddr, transport: Transport) {
        self.trace(
            TraceDirection::Out,
            (destination, transport),
            message.to_bytes(),
        );
        self.out(Output::Sip(Command::Transmit {
            message,
            destination,
            transport,
        }));
    }

    fn respond(
        &mut self,
        key: &TransactionKey,
        response: SipMessage,
        peer: (SocketAddr, Transport),
    ) {
        self.trace(TraceDirection::Out, peer, response.to_bytes());
        self.out(Output::Sip(Command::Respond {
            key: key.clone(),
            response,
        }));
    }

    /// A response of the caller's dialog (To tag, our Contact) to its
    /// INVITE: the 180 and the 200 (none for a call the bridge placed).
    fn caller_dialog_response(&self, status: u16) -> Option<crate::sip::message::MessageBuilder> {
        let received = self.received()?;
        Dialog::dialog_response(
            &received.invite,
            status,
            &received.to_tag,
            &self.caller.local.contact,
        )
        .ok()
    }

    /// The caller's INVITE, when the call started with one.
    fn received(&self) -> Option<&Received> {
        match &self.caller.origin {
            Origin::Received(r) => Some(r),
            Origin::Originated(_) => None,
        }
    }

    /// Whether the answered call is recorded: as its department says;
    /// outbound calls always (as department calls are by default).
    fn records(&self) -> bool {
        match &self.department {
            Some(d) => d.record,
            None => self.outbound.is_some(),
        }
    }

    fn caller_peer(&self) -> (SocketAddr, Transport) {
        (self.caller.source, self.caller.transport)
    }

    fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.caller.dialog.as_mut(),
            Side::Agent => self.agent.as_mut().map(|a| &mut a.dialog),
        }
    }

    fn side_of(&self, call_id: &str) -> Option<Side> {
        if self.call_id == call_id {
            return Some(Side::Caller);
        }
        let agent = self.agent.as_ref()?;
        (self.forks.get(agent.fork)?.call_id == call_id).then_some(Side::Agent)
    }

    /// The bridge's RTP port the `side` leg sends to.
    fn port_facing(&self, side: Side) -> u16 {
        match side {
            Side::Caller => self.config.caller_port,
            Side::Agent => self.config.agent_port,
        }
    }

    /// An SDP body rewritten so that `side` sends its RTP to the bridge.
    fn rewrite_for(&self, side: Side, body: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(body).ok()?;
        crate::media::sdp::rewrite(text, self.config.media_address, self.port_facing(side)).ok()
    }
}

/// Who a caller is when its identity cannot be written (RFC 3323's
/// anonymous URI): a constant, so it always parses.
fn anonymous() -> NameAddr {
    NameAddr::parse("<sip:anonymous@anonymous.invalid>").expect("a constant name-addr parses")
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

fn audio_of(body: &[u8]) -> Option<AudioMedia> {
    let text = std::str::from_utf8(body).ok()?;
    crate::media::sdp::SessionDescription::parse(text)
        .ok()?
        .audio()
}
