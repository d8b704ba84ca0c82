//! The thin tokio driver of one [`Call`]: it binds the call's RTP ports,
//! feeds the call its inputs (SIP messages, API orders, media ending,
//! ticks at [`Call::poll_timeout`]) with the time, and carries out its
//! outputs: SIP commands to signalling, the media relay and recording,
//! attendance changes to the ledger (durable on the node; the database
//! gets them later, so nothing here waits on it), traces, pauses.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::call::{
    Call, CallConfig, CallEnv, Control, IncomingCall, Input, MediaOp, NotOriginated, Output,
};
use super::live::{CallControl, LiveCall, LiveLeg};
use super::originations::{Originate, Originated};
use super::plan::CallPlan;
use super::services::Services;
use super::signal::{CallInput, Command, Outbox};
use crate::domain::{AttendanceChange, Id, Protocol, Registration, Timestamp};
use crate::media::recorder::{Recorder, recording_path};
use crate::media::relay::{MediaSession, RelayConfig, Side};
use crate::media::relay_task::{EndReason, LegSockets, RelayHandle, RelayReport, spawn_relay};
use crate::routing::MissedCalls;
use crate::sip::dialog::{LocalParty, RandomIds};
use crate::sip::transaction::Transport;

/// How long an ended call still answers its legs' late messages.
const LINGER: Duration = Duration::from_secs(2);
/// Retries of an auto-pause write (the database may be stalled).
const PAUSE_RETRY: Duration = Duration::from_secs(2);

/// The call's view of the node ([`CallEnv`]), over the shared services.
struct TaskEnv {
    svc: Arc<Services>,
    plan: Arc<CallPlan>,
    control: UnboundedSender<CallControl>,
    published: AtomicBool,
}

impl CallEnv for TaskEnv {
    fn plan(&self) -> Arc<CallPlan> {
        let current = self.svc.plan.current();
        if current.generation >= self.plan.generation {
            current
        } else {
            self.plan.clone()
        }
    }

    fn bindings_of(&self, number: &str) -> Vec<Registration> {
        self.svc.handles.registrations.bindings_of(number)
    }

    fn registered_extensions(&self) -> std::collections::HashSet<String> {
        self.svc.handles.registrations.registered_extensions()
    }

    fn pbx_address(&self) -> Option<std::net::SocketAddr> {
        self.svc.handles.pbx_peer.get()
    }

    fn pbx_availability(&self, number: &str) -> crate::pbx_presence::Availability {
        self.svc.handles.pbx_presence.availability(number)
    }

    fn pbx_presence(&self) -> std::collections::HashMap<String, crate::pbx_presence::Availability> {
        self.svc.handles.pbx_presence.snapshot()
    }

    fn busy_agents(&self) -> std::collections::HashSet<Id> {
        self.svc.handles.live_calls.busy_agents()
    }

    fn idle_times(&self) -> std::collections::HashMap<Id, Timestamp> {
        self.svc.idle_times()
    }

    fn agent_idle(&self, agent: Id, at: Timestamp) {
        if let Ok(mut idle) = self.svc.idle_since.lock() {
            idle.insert(agent, at);
        }
    }

    fn with_missed(&self, f: &mut dyn FnMut(&mut MissedCalls)) {
        if let Ok(mut missed) = self.svc.missed.lock() {
            f(&mut missed);
        }
    }

    fn local(&self, transport: Transport) -> LocalParty {
        self.svc.local(transport).clone()
    }

    fn node(&self) -> String {
        self.svc.handles.settings.node_id.clone()
    }

    fn publish(&self, call: LiveCall) {
        let calls = &self.svc.handles.live_calls;
        if self.published.swap(true, Ordering::SeqCst) {
            let id = call.id.clone();
            calls.update(&id, |c| *c = call);
        } else {
            calls.insert(call, self.control.clone());
        }
    }

    fn unpublish(&self, id: &str) {
        self.svc.handles.live_calls.remove(id);
    }

    fn claim(&self, id: &str, leg: LiveLeg) -> bool {
        self.svc.handles.live_calls.claim(id, leg)
    }

    fn take_trunk_channel(&self, trunk: Id, max: u32) -> bool {
        self.svc.handles.live_calls.take_trunk_channel(trunk, max)
    }

    fn release_trunk_channel(&self, trunk: Id) {
        self.svc.handles.live_calls.release_trunk_channel(trunk)
    }
}

/// The media of the call: its sockets until the relay starts, then the
/// relay (or, once it ended by itself, its report).
struct Media {
    sockets: Option<(LegSockets, LegSockets)>,
    relay: Option<RelayHandle>,
    report: Option<RelayReport>,
    ended: UnboundedSender<((), RelayReport)>,
}

/// What starts a call: an INVITE, or the API's click-to-call.
pub(super) enum Start {
    Incoming(Box<IncomingCall>),
    Originate(Originate),
}

/// Runs a call from its INVITE (or click-to-call) to its end.
pub(super) async fn run(
    svc: Arc<Services>,
    out: Outbox,
    inputs: UnboundedReceiver<CallInput>,
    start: Start,
) {
    let span = match &start {
        Start::Incoming(incoming) => {
            let call_id = incoming.invite.call_id().unwrap_or_default().to_owned();
            tracing::info_span!("call", call_id = %call_id)
        }
        Start::Originate(o) => tracing::info_span!(
            "call",
            click_to_call = %o.call.from_extension,
            to = %o.call.to
        ),
    };
    // The span goes with the future (never `enter()` across an await: the
    // thread would run other calls inside it).
    drive(svc, out.clone(), inputs, start)
        .instrument(span)
        .await;
    out.send(Command::Ended);
}

async fn drive(
    svc: Arc<Services>,
    out: Outbox,
    mut inputs: UnboundedReceiver<CallInput>,
    start: Start,
) {
    let media_ip = svc.handles.settings.media_address;
    let sockets = async {
        let c = LegSockets::bind(&svc.ports, media_ip).await?;
        let a = LegSockets::bind(&svc.ports, media_ip).await?;
        Ok::<_, std::io::Error>((c, a))
    }
    .await;
    let sockets = match sockets {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "no RTP ports left; call refused");
            None
        }
    };
    let config = CallConfig {
        media_address: media_ip,
        caller_port: sockets.as_ref().map_or(0, |s| s.0.port()),
        agent_port: sockets.as_ref().map_or(0, |s| s.1.port()),
    };
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let plan = svc
        .plan
        .at_least(svc.handles.plan_changes.generation())
        .await;
    let env = Arc::new(TaskEnv {
        svc: svc.clone(),
        plan,
        control: control_tx,
        published: AtomicBool::new(false),
    });
    let (mut call, origin_reply) = match start {
        Start::Incoming(incoming) => (
            Call::new(
                *incoming,
                env,
                config,
                Box::new(RandomIds),
                Instant::now(),
                Utc::now(),
            ),
            None,
        ),
        Start::Originate(Originate { call, reply }) => (
            Call::originate(
                call,
                env,
                config,
                Box::new(RandomIds),
                Instant::now(),
                Utc::now(),
            ),
            Some(reply),
        ),
    };
    let mut driver = Driver {
        origin_reply,
        svc,
        out,
        media: Media {
            sockets,
            relay: None,
            report: None,
            ended: ended_tx,
        },
        replies: VecDeque::new(),
        finished: None,
    };
    loop {
        driver.carry_out(&mut call).await;
        if driver.finished.is_some() {
            break;
        }
        let deadline = call
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let input = tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => Input::Sip(Box::new(input)),
                None => Input::Control(Control::Shutdown),
            },
            Some(control) = control_rx.recv() => driver.control(control),
            Some(((), report)) = ended_rx.recv() => {
                let dead = matches!(report.reason, EndReason::DeadMedia(_));
                if let EndReason::DeadMedia(d) = &report.reason {
                    tracing::warn!(dead = ?d, "relay ended: dead media");
                }
                driver.media.relay = None;
                driver.media.report = Some(report);
                if !dead { continue; }
                Input::MediaDead
            }
            _ = tokio::time::sleep_until(deadline.into()) => Input::Tick,
        };
        call.handle(input, Instant::now());
    }
    if driver.finished == Some(true) {
        // Late responses and retransmissions of the legs: answered until
        // the transactions end, then the routes go.
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => call.handle(Input::Sip(Box::new(input)), Instant::now()),
                    None => break,
                },
                Some(control) = control_rx.recv() => {
                    let input = driver.control(control);
                    call.handle(input, Instant::now());
                }
                _ = &mut linger => break,
            }
            driver.carry_out(&mut call).await;
        }
    }
}

struct Driver {
    svc: Arc<Services>,
    out: Outbox,
    media: Media,
    /// API transfer orders waiting for the call's answer, in order.
    replies: VecDeque<oneshot::Sender<Result<(), String>>>,
    /// `Some(linger)` once the call said it is over.
    finished: Option<bool>,
    /// Click-to-call: the API waits here for the attendance.
    origin_reply: Option<oneshot::Sender<Result<Originated, NotOriginated>>>,
}

impl Driver {
    fn control(&mut self, control: CallControl) -> Input {
        Input::Control(match control {
            CallControl::HangUp => Control::HangUp,
            CallControl::Shutdown => Control::Shutdown,
            CallControl::Transfer { target, reply } => {
                self.replies.push_back(reply);
                Control::Transfer { target }
            }
        })
    }

    /// Carries out everything the call asked, in order.
    async fn carry_out(&mut self, call: &mut Call) {
        while let Some(output) = call.poll_output() {
            match output {
                Output::Sip(command) => self.out.send(command),
                Output::Trace {
                    direction,
                    peer,
                    transport,
                    bytes,
                } => self.svc.handles.traces.record(
                    call.protocol(),
                    direction,
                    peer,
                    transport.as_str(),
                    &bytes,
                ),
                Output::OpenAttendance(new) => {
                    let copy = self.origin_reply.is_some().then(|| new.clone());
                    let opened = self
                        .svc
                        .handles
                        .ledger
                        .open(new)
                        .await
                        .map(|p| p.as_str().to_owned())
                        .map_err(|e| e.to_string());
                    if let (Some(reply), Some(attendance), Ok(protocol)) =
                        (self.origin_reply.take(), copy, &opened)
                    {
                        let _ = reply.send(Ok(Originated {
                            protocol: protocol.clone(),
                            attendance,
                        }));
                    }
                    call.handle(Input::Opened(opened), Instant::now());
                }
                Output::Attendance(change) => {
                    self.svc.handles.ledger.record(call.protocol(), change)
                }
                Output::Media(op) => self.media(call.protocol(), op).await,
                Output::PauseAgent { agent, reason } => self.pause(agent, reason),
                Output::SetupMark { stage, since } => {
                    metrics::histogram!("pbx_call_setup_seconds", "stage" => stage)
                        .record(since.elapsed().as_secs_f64());
                }
                Output::NotOriginated(why) => {
                    if let Some(reply) = self.origin_reply.take() {
                        let _ = reply.send(Err(why));
                    }
                }
                Output::TransferReply(result) => {
                    if let Some(reply) = self.replies.pop_front() {
                        let _ = reply.send(result);
                    }
                }
                Output::Finished { linger } => {
                    if !call.protocol().is_empty() {
                        self.svc.handles.traces.end(call.protocol());
                    }
                    self.finished = Some(linger);
                }
            }
        }
    }

    async fn media(&mut self, protocol: &str, op: MediaOp) {
        match op {
            MediaOp::Start {
                caller,
                agent,
                record,
            } => {
                let Some((caller_sockets, agent_sockets)) = self.media.sockets.take() else {
                    return;
                };
                let now = Instant::now();
                let settings = &self.svc.handles.settings;
                let mut session = MediaSession::new(
                    RelayConfig {
                        dead_media_after: settings.rtp_timeout,
                        ..RelayConfig::default()
                    },
                    now,
                );
                if let Some(caller) = caller {
                    session.set_remote(Side::Caller, &caller, now);
                }
                session.set_remote(Side::Agent, &agent, now);
                let recorder = if record {
                    start_recording(&settings.recordings_dir, protocol, now)
                } else {
                    None
                };
                self.media.relay = Some(spawn_relay(
                    (),
                    caller_sockets,
                    agent_sockets,
                    session,
                    recorder,
                    self.media.ended.clone(),
                ));
            }
            MediaOp::Update { side, audio } => {
                if let Some(relay) = &self.media.relay {
                    relay.update_remote(side, audio).await;
                }
            }
            MediaOp::Stop => {
                let report = match self.media.relay.take() {
                    Some(relay) => relay.stop().await,
                    None => self.media.report.take(),
                };
                if let Some(report) = report {
                    self.media_ended(protocol, &report);
                }
            }
        }
    }

    /// Logs the media's figures and links the finished recording.
    fn media_ended(&self, protocol: &str, report: &RelayReport) {
        tracing::info!(
            caller_packets = report.caller.packets,
            agent_packets = report.agent.packets,
            caller_loss = report.caller.loss_fraction(),
            agent_loss = report.agent.loss_fraction(),
            "media ended"
        );
        match (&report.recording, &report.recording_path) {
            (Some(Ok(info)), Some(path)) => {
                let root = &self.svc.handles.settings.recordings_dir;
                let relative = path
                    .strip_prefix(root)
                    .unwrap_or(path)
                    .to_string_lossy()
                    .into_owned();
                self.svc.handles.ledger.record(
                    protocol,
                    AttendanceChange::RecordingAttached {
                        path: relative,
                        duration_ms: info.duration_ms,
                        bytes: info.bytes,
                        sha256: info.sha256.clone(),
                    },
                );
            }
            (Some(Err(e)), path) => {
                tracing::error!(?path, error = %e, "recording failed; the file is repaired at the next start");
            }
            _ => {}
        }
    }

    /// Pauses an agent in the background: the call never waits for it,
    /// and a stalled database only delays it.
    fn pause(&self, agent: Id, reason: &'static str) {
        let store = self.svc.handles.store.clone();
        let plan_changes = self.svc.handles.plan_changes.clone();
        tokio::spawn(async move {
            loop {
                match store.pause_agent(agent, reason).await {
                    Ok(_) => {
                        tracing::info!(agent, reason, event = "agent.paused", "agent paused");
                        plan_changes.changed();
                        return;
                    }
                    Err(crate::store::StoreError::NotFound) => return,
                    Err(e) => {
                        tracing::warn!(agent, error = %e, "cannot pause the agent yet; retrying");
                        tokio::time::sleep(PAUSE_RETRY).await;
                    }
                }
            }
        });
    }
}

fn start_recording(root: &std::path::Path, protocol: &str, now: Instant) -> Option<Recorder> {
    let p = match Protocol::parse(protocol) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "protocol cannot name a recording");
            return None;
        }
    };
    let path = recording_path(root, &p);
    match Recorder::create(&path, now) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot start the recording; the call goes on unrecorded");
            None
        }
    }
}
