//! The tokio driver of the AMI [`Session`]: it owns the TCP connection,
//! feeds the session bytes and ticks, writes what it says, sleeps until
//! [`Session::poll_timeout`], and follows its `Connect { after }`. Events go
//! to the [`Tracker`]; its decisions go, in order, to a [`Follower`] task
//! that writes the attendances.
//!
//! The PBX connection is read from the store at start and whenever
//! [`AmiHandle::config_changed`] is poked (`PUT`/`PATCH /pbx`); with
//! `pbx.enabled = false` the client logs off and stays idle. The numbering
//! plan ([`CallDirectory`]) is re-read periodically, and at once when the
//! API changes it ([`PlanChanges::changed`]).
//!
//! The client takes only narrow handles ([`AmiHandles`]). The API reaches
//! the running client through the same [`AmiHandle`]: its status (for
//! `/readyz`, `/api/v1/pbx/status`, metrics) and the actions it may send
//! (`Originate`, `Redirect`, `Hangup`), and the live view of the calls
//! Asterisk carries ([`AmiCalls`]), kept current from the tracker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use super::action::Action;
use super::correlator::ActionOutcome;
use super::follow::Follower;
use super::live::AmiCalls;
use super::session::{Output, Session, SessionConfig, SessionState};
use super::tracker::{CallDecision, Tracker, TrackerConfig};
pub use super::tuning::AmiTuning;
use crate::pbx_presence::PbxPresence;
use crate::plan_changes::PlanChanges;
use crate::store::{CallDirectory, Store};

enum Command {
    Originate {
        from_extension: String,
        to: String,
        /// The attendance the API opened for it (a channel variable the
        /// tracker reads back), and who the callee sees calling.
        protocol: String,
        caller_name: String,
        reply: oneshot::Sender<Result<(), AmiActionError>>,
    },
    Redirect {
        linkedid: String,
        target: String,
        protocol: String,
        reply: oneshot::Sender<Result<(), AmiActionError>>,
    },
    /// `DELETE /calls/{protocol}` of a call Asterisk carries.
    Hangup {
        linkedid: String,
        reply: oneshot::Sender<Result<(), AmiActionError>>,
    },
}

struct Shared {
    status: RwLock<AmiStatus>,
    /// Bumped by every PBX configuration change. A generation, not a
    /// `Notify`: the client marks what it has seen before it reads the
    /// configuration, so a change it already read never reconnects it
    /// (a stored `Notify` permit did, just after the first connect).
    changed: watch::Sender<u64>,
    tuning: Mutex<AmiTuning>,
    commands: mpsc::Sender<Command>,
    receiver: Mutex<Option<mpsc::Receiver<Command>>>,
    running: AtomicBool,
    events: AtomicU64,
    applied: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    calls: AmiCalls,
}

/// The API's side of the client. Cheap to clone.
#[derive(Clone)]
pub struct AmiHandle(Arc<Shared>);

impl Default for AmiHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl AmiHandle {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(64);
        AmiHandle(Arc::new(Shared {
            status: RwLock::new(AmiStatus::idle(false, None)),
            changed: watch::Sender::new(0),
            tuning: Mutex::new(AmiTuning::default()),
            commands: tx,
            receiver: Mutex::new(Some(rx)),
            running: AtomicBool::new(false),
            events: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
            calls: AmiCalls::new(),
        }))
    }

    pub fn status(&self) -> AmiStatus {
        self.0
            .status
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The PBX configuration changed: re-read it (reconnect or go idle).
    pub fn config_changed(&self) {
        self.0.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Replaces the timings; takes effect at the next (re)configuration.
    pub fn set_tuning(&self, tuning: AmiTuning) {
        *lock(&self.0.tuning) = tuning;
    }

    pub fn tuning(&self) -> AmiTuning {
        lock(&self.0.tuning).clone()
    }

    /// AMI events received so far.
    pub fn events_received(&self) -> u64 {
        self.0.events.load(Ordering::Relaxed)
    }

    /// Call decisions written to the store so far.
    pub fn decisions_applied(&self) -> u64 {
        self.0.applied.load(Ordering::Relaxed)
    }

    /// Latencies kept since the last call (with `record_latencies`).
    pub fn take_latencies(&self) -> Vec<Duration> {
        std::mem::take(&mut *lock(&self.0.latencies))
    }

    /// Click-to-call: ring `PJSIP/<from_extension>`; when it answers, it
    /// dials `to` in the originate context, shown as `caller_name`. The
    /// call carries `protocol` (its attendance, opened by the caller of
    /// this); a failure Asterisk reports later closes that `failed`.
    pub async fn originate(
        &self,
        from_extension: &str,
        to: &str,
        protocol: &str,
        caller_name: &str,
    ) -> Result<(), AmiActionError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Originate {
            from_extension: from_extension.into(),
            to: to.into(),
            protocol: protocol.into(),
            caller_name: caller_name.into(),
            reply,
        })
        .await?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Blind transfer: `Redirect` the customer's channel of the call
    /// `linkedid` to `target` in the transfer context, its attendance
    /// `protocol` set on the channel first (the bridge continues it).
    pub async fn redirect(
        &self,
        linkedid: &str,
        target: &str,
        protocol: &str,
    ) -> Result<(), AmiActionError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Redirect {
            linkedid: linkedid.into(),
            target: target.into(),
            protocol: protocol.into(),
            reply,
        })
        .await?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Hangs up the call `linkedid` (every live channel, the customer's
    /// first); its attendance closes `api` when the hang-up is seen.
    pub async fn hang_up(&self, linkedid: &str) -> Result<(), AmiActionError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Hangup {
            linkedid: linkedid.into(),
            reply,
        })
        .await?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// The calls Asterisk carries, as the tracker follows them.
    pub fn calls(&self) -> &AmiCalls {
        &self.0.calls
    }

    async fn command(&self, cmd: Command) -> Result<(), AmiActionError> {
        let status = self.status();
        if !status.enabled {
            return Err(AmiActionError::Disabled);
        }
        if !status.connected || !self.0.running.load(Ordering::SeqCst) {
            return Err(AmiActionError::NotConnected(status.state));
        }
        self.0.commands.send(cmd).await.map_err(|_| stopped())
    }

    fn set_status(&self, f: impl FnOnce(&mut AmiStatus)) {
        let mut s = self.0.status.write().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        metrics::gauge!("pbx_ami_connected").set(if s.connected { 1.0 } else { 0.0 });
    }
}

fn stopped() -> AmiActionError {
    AmiActionError::NotConnected("stopped".into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

mod follow_task;
mod status;

pub use status::{AmiActionError, AmiStatus};

/// Decisions caused by bytes read at `received`.
struct Batch {
    received: Instant,
    decisions: Vec<CallDecision>,
}

enum ToFollower {
    Batch(Batch),
    Directory(CallDirectory),
    /// `OriginateResponse` failure of a click-to-call.
    OriginateFailed {
        protocol: String,
        reason: String,
    },
    /// The API hung up this call: its end closes `api`.
    HangupRequested {
        linkedid: String,
    },
    /// Asterisk refused (or never answered) that hang-up: the call goes on.
    HangupRefused {
        linkedid: String,
    },
}

/// What the AMI client needs from the rest of the service.
#[derive(Clone)]
pub struct AmiHandles {
    /// The PBX connection, the numbering plan, and where the followed
    /// calls' attendances are written.
    pub store: Store,
    /// The time zone of protocol dates.
    pub time_zone: chrono_tz::Tz,
    /// The client's status and action channel, shared with the API.
    pub ami: AmiHandle,
    /// Re-read the numbering plan at once when it changes.
    pub plan_changes: PlanChanges,
    /// Where the extensions' presence on Asterisk is published (read by
    /// the calls); cleared whenever the session is not logged in.
    pub presence: PbxPresence,
}

/// Runs the client until `shutdown` turns true; logs off on the way out.
pub async fn run(handles: AmiHandles, mut shutdown: watch::Receiver<bool>) {
    let handle = handles.ami.clone();
    let Some(mut commands) = lock(&handle.0.receiver).take() else {
        tracing::error!("AMI client already running");
        return;
    };
    let (follow_tx, follow_rx) = mpsc::unbounded_channel();
    let follower = tokio::spawn(follow_task::follow(
        Follower::new(handles.store.clone(), handles.time_zone).with_live(handle.calls().clone()),
        follow_rx,
        handle.clone(),
    ));
    let mut client = Client {
        store: handles.store.clone(),
        handle: handle.clone(),
        tracker: Tracker::new(TrackerConfig::new()),
        follow: follow_tx,
        tuning: handle.tuning(),
        directory_read: None,
        plan: handles.plan_changes.subscribe(),
        config: handle.0.changed.subscribe(),
        pending: HashMap::new(),
        originations: HashMap::new(),
        hangups: HashMap::new(),
        decisions: Vec::new(),
        presence: handles.presence.clone(),
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        client.tuning = handle.tuning();
        // What is read below includes every change made so far.
        client.config.mark_unchanged();
        client.refresh_directory().await;
        match client.target().await {
            Target::Idle { enabled, error } => {
                if let Some(e) = &error {
                    tracing::warn!(error = %e, "AMI not started");
                }
                handle.set_status(|s| *s = AmiStatus::idle(enabled, error));
                client.presence.clear();
                handle.calls().set_online(false);
                tokio::select! {
                    _ = client.config.changed() => continue,
                    _ = signalled(&mut shutdown) => break,
                }
            }
            Target::Pbx { login, session } => {
                let exit = client
                    .connection(login, session, &mut commands, &mut shutdown)
                    .await;
                if exit == Exit::Shutdown {
                    break;
                }
            }
        }
    }
    handle.set_status(|s| {
        s.state = SessionState::Disconnected.as_str().into();
        s.connected = false;
        s.retry_at = None;
        s.since = Utc::now();
    });
    drop(client);
    // Let the follower write what is queued.
    let _ = tokio::time::timeout(Duration::from_secs(5), follower).await;
}

enum Target {
    Idle {
        enabled: bool,
        error: Option<String>,
    },
    Pbx {
        login: PbxLogin,
        session: Box<Session>,
    },
}

/// What a connection is made with: a change of any of it reconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PbxLogin {
    host: String,
    port: u16,
    username: String,
    secret: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Reconfigure,
    Shutdown,
}

struct Client {
    store: Store,
    handle: AmiHandle,
    tracker: Tracker,
    follow: mpsc::UnboundedSender<ToFollower>,
    tuning: AmiTuning,
    directory_read: Option<Instant>,
    /// Bumped by the API when extensions, agents, departments or trunks
    /// change: the numbering plan is re-read at once.
    plan: watch::Receiver<u64>,
    /// The PBX configuration's generation ([`AmiHandle::config_changed`]).
    config: watch::Receiver<u64>,
    /// ActionID → who waits for its answer.
    pending: HashMap<String, (String, oneshot::Sender<Result<(), AmiActionError>>)>,
    /// ActionID of a click-to-call `Originate` → its protocol, until its
    /// `OriginateResponse`.
    originations: HashMap<String, String>,
    /// ActionID of the API's `Hangup` of a call's customer → its
    /// Linkedid, until answered.
    hangups: HashMap<String, String>,
    decisions: Vec<CallDecision>,
    presence: PbxPresence,
}

struct Conn {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn target(&self) -> Target {
        let store = &self.store;
        let pbx = match store.get_pbx().await {
            Ok(p) => p,
            Err(e) => {
                return Target::Idle {
                    enabled: false,
                    error: Some(format!("cannot read the PBX configuration: {e}")),
                };
            }
        };
        if !pbx.enabled {
            return Target::Idle {
                enabled: false,
                error: None,
            };
        }
        let secret = match store.pbx_ami_secret().await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Target::Idle {
                    enabled: true,
                    error: Some("no AMI secret configured".into()),
                };
            }
            Err(e) => {
                return Target::Idle {
                    enabled: true,
                    error: Some(format!("cannot read the AMI secret: {e}")),
                };
            }
        };
        let t = &self.tuning;
        let mut cfg = SessionConfig::new(pbx.ami_username.clone(), secret.clone());
        cfg.backoff = t.backoff;
        cfg.ping_interval = t.ping_interval;
        cfg.ping_timeout = t.ping_timeout;
        cfg.connect_timeout = t.connect_timeout;
        cfg.login_timeout = t.login_timeout;
        cfg.action_timeout = t.action_timeout;
        cfg.resync_timeout = t.resync_timeout;
        cfg.stable_after = t.stable_after;
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7)
            ^ u64::from(std::process::id());
        Target::Pbx {
            login: PbxLogin {
                host: pbx.ami_host,
                port: pbx.ami_port,
                username: pbx.ami_username,
                secret,
            },
            session: Box::new(Session::new(cfg, seed)),
        }
    }

    /// Where and as whom the client would log in now (`None`: idle).
    async fn login_now(&self) -> Option<PbxLogin> {
        match self.target().await {
            Target::Pbx { login, .. } => Some(login),
            Target::Idle { .. } => None,
        }
    }

    async fn refresh_directory(&mut self) {
        // Seen before reading: a change during the read triggers another.
        self.plan.borrow_and_update();
        match self.store.call_directory().await {
            Ok(dir) => {
                self.tracker.set_config(self.tuning.tracker_config(&dir));
                let _ = self.follow.send(ToFollower::Directory(dir));
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the numbering plan for AMI"),
        }
        self.directory_read = Some(Instant::now());
    }

    /// One PBX configuration: connect, reconnect… until it changes or the
    /// service stops.
    async fn connection(
        &mut self,
        login: PbxLogin,
        mut session: Box<Session>,
        commands: &mut mpsc::Receiver<Command>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Exit {
        let handle = self.handle.clone();
        handle.0.running.store(true, Ordering::SeqCst);
        handle.set_status(|s| {
            *s = AmiStatus::idle(true, None);
            s.host = Some(login.host.clone());
            s.port = Some(login.port);
        });
        let (host, port) = (login.host.as_str(), login.port);
        tracing::info!(host, port, "AMI client starting");
        let mut conn: Option<Conn> = None;
        let mut connect_at: Option<Instant> = None;
        let mut buf = vec![0u8; 64 * 1024];
        session.start(Instant::now());
        self.outputs(&mut session, &mut conn, &mut connect_at, Instant::now())
            .await;
        let exit = loop {
            let refresh_at =
                self.directory_read.unwrap_or_else(Instant::now) + self.tuning.directory_refresh;
            let wake = [session.poll_timeout(), connect_at, Some(refresh_at)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(refresh_at);
            let reading = conn.is_some();
            let mut stop = shutdown.clone();
            tokio::select! {
                _ = signalled(shutdown) => break Exit::Shutdown,
                // A change the connection already has (the API's write
                // read before its notice came) keeps it.
                _ = self.config.changed() => {
                    if self.login_now().await.as_ref() != Some(&login) {
                        break Exit::Reconfigure;
                    }
                }
                Ok(()) = self.plan.changed() => self.refresh_directory().await,
                r = read(&mut conn, &mut buf), if reading => {
                    let now = Instant::now();
                    match r {
                        Ok(0) => {
                            conn = None;
                            session.eof(now);
                        }
                        Ok(n) => session.bytes_received(now, &buf[..n]),
                        Err(e) => {
                            conn = None;
                            session.io_error(now, format!("read error: {e}"));
                        }
                    }
                    self.outputs(&mut session, &mut conn, &mut connect_at, now).await;
                }
                Some(cmd) = commands.recv() => {
                    self.command(&mut session, cmd);
                    self.outputs(&mut session, &mut conn, &mut connect_at, Instant::now()).await;
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if connect_at.is_some_and(|c| now >= c) {
                        connect_at = None;
                        let attempt = tokio::time::timeout(
                            self.tuning.connect_timeout,
                            TcpStream::connect((host, port)),
                        );
                        let result = tokio::select! {
                            r = attempt => r,
                            _ = signalled(&mut stop) => break Exit::Shutdown,
                        };
                        let now = Instant::now();
                        match result {
                            Ok(Ok(stream)) => {
                                let _ = stream.set_nodelay(true);
                                let (reader, writer) = stream.into_split();
                                conn = Some(Conn { reader, writer });
                                tracing::debug!(host, port, "AMI TCP connected");
                                session.connected(now);
                            }
                            Ok(Err(e)) => session.io_error(now, format!("cannot connect to {host}:{port}: {e}")),
                            Err(_) => session.io_error(now, format!("cannot connect to {host}:{port}: timed out")),
                        }
                    }
                    if refresh_at <= now {
                        self.refresh_directory().await;
                    }
                    session.tick(Instant::now());
                    self.outputs(&mut session, &mut conn, &mut connect_at, now).await;
                }
            }
        };
        handle.0.running.store(false, Ordering::SeqCst);
        self.presence.clear();
        handle.calls().set_online(false);
        // Log off (if logged in) and close.
        let now = Instant::now();
        session.shutdown(now);
        self.outputs(&mut session, &mut conn, &mut connect_at, now)
            .await;
        if let Some(mut c) = conn.take() {
            let _ = c.writer.shutdown().await;
        }
        for (_, (_, reply)) in self.pending.drain() {
            let _ = reply.send(Err(stopped()));
        }
        for (_, linkedid) in self.hangups.drain() {
            let _ = self.follow.send(ToFollower::HangupRefused { linkedid });
        }
        tracing::info!(host, port, reason = ?exit, "AMI client stopped");
        exit
    }

    fn command(&mut self, session: &mut Session, cmd: Command) {
        let now = Instant::now();
        let mut protocol_of_action = None;
        let (name, action, reply) = match cmd {
            Command::Originate {
                from_extension,
                to,
                protocol,
                caller_name,
                reply,
            } => {
                let action = Action::new("Originate")
                    .header("Channel", format!("PJSIP/{from_extension}"))
                    .header(
                        "Context",
                        self.tuning
                            .originate_context
                            .replace("{ext}", &from_extension),
                    )
                    .header("Exten", &to)
                    .header("Priority", "1")
                    .header(
                        "CallerID",
                        format!("\"{}\" <{from_extension}>", caller_name.replace('"', "")),
                    )
                    .header("Timeout", "30000")
                    .header("Async", "true")
                    .header(
                        "Variable",
                        format!("__{}={protocol}", super::tracker::PROTOCOL_VARIABLE),
                    );
                protocol_of_action = Some(protocol);
                ("Originate", action, reply)
            }
            Command::Redirect {
                linkedid,
                target,
                protocol,
                reply,
            } => {
                let Some(channel) = self.tracker.channels(&linkedid).and_then(|c| c.customer)
                else {
                    let _ = reply.send(Err(AmiActionError::NoSuchCall(linkedid)));
                    return;
                };
                let setvar = Action::protocol_setvar(&channel, &protocol);
                if let Err(e) = session.send_action(now, setvar) {
                    tracing::warn!(%protocol, linkedid, error = %e, "Setvar before Redirect not sent");
                }
                let context = if self.tracker.is_department_code(&target) {
                    &self.tuning.transfer_context
                } else {
                    &self.tuning.transfer_extension_context
                };
                (
                    "Redirect",
                    Action::redirect(&channel, context, &target),
                    reply,
                )
            }
            Command::Hangup { linkedid, reply } => {
                self.hang_up(session, linkedid, reply);
                return;
            }
        };
        match session.send_action(now, action) {
            Ok(id) => {
                tracing::info!(action = name, action_id = %id, "AMI action sent");
                if let Some(p) = protocol_of_action {
                    self.originations.insert(id.clone(), p);
                }
                self.pending.insert(id, (name.to_owned(), reply));
            }
            Err(super::SessionError::NotConnected(s)) => {
                let _ = reply.send(Err(AmiActionError::NotConnected(s.to_string())));
            }
            Err(e) => {
                let _ = reply.send(Err(AmiActionError::Invalid(e.to_string())));
            }
        }
    }

    /// `Hangup` of every live channel of call `linkedid`, the customer's
    /// first: hanging up one leg does not end every call (an agent's
    /// channel may go on in the dialplan). The API is answered with the
    /// customer's action; the others' answers are only logged.
    fn hang_up(
        &mut self,
        session: &mut Session,
        linkedid: String,
        reply: oneshot::Sender<Result<(), AmiActionError>>,
    ) {
        let now = Instant::now();
        let Some(channels) = self.tracker.channels(&linkedid) else {
            let _ = reply.send(Err(AmiActionError::NoSuchCall(linkedid)));
            return;
        };
        let mut order: Vec<String> = channels.customer.into_iter().collect();
        for c in channels.root.into_iter().chain(channels.others) {
            if !order.contains(&c) {
                order.push(c);
            }
        }
        if order.is_empty() {
            let _ = reply.send(Err(AmiActionError::NoSuchCall(linkedid)));
            return;
        }
        // Before the actions: the hang-up's events come after them.
        let _ = self.follow.send(ToFollower::HangupRequested {
            linkedid: linkedid.clone(),
        });
        let mut reply = Some(reply);
        for channel in order {
            let first = reply.is_some();
            let waiter = reply.take().unwrap_or_else(|| oneshot::channel().0);
            match session.send_action(now, Action::hangup(&channel)) {
                Ok(id) => {
                    tracing::info!(action = "Hangup", action_id = %id, linkedid, channel, "AMI action sent");
                    if first {
                        self.hangups.insert(id.clone(), linkedid.clone());
                    }
                    self.pending.insert(id, ("Hangup".to_owned(), waiter));
                }
                Err(e) => {
                    let _ = waiter.send(Err(AmiActionError::NotConnected(e.to_string())));
                }
            }
        }
    }

    /// Carries out what the session asked, in order.
    async fn outputs(
        &mut self,
        session: &mut Session,
        conn: &mut Option<Conn>,
        connect_at: &mut Option<Instant>,
        received: Instant,
    ) {
        let mut state_changed = false;
        while let Some(out) = session.poll_output() {
            super::presence::follow(&self.presence, &out);
            match out {
                Output::Connect { after } => {
                    *conn = None;
                    *connect_at = Some(Instant::now() + after);
                }
                Output::Send(bytes) => {
                    let failed = match conn.as_mut() {
                        Some(c) => c.writer.write_all(&bytes).await.err(),
                        None => None,
                    };
                    if let Some(e) = failed {
                        *conn = None;
                        session.io_error(Instant::now(), format!("write error: {e}"));
                    }
                }
                Output::Close => *conn = None,
                Output::StateChanged(state, error) => {
                    state_changed = true;
                    if state != SessionState::Connected {
                        // Hidden until the live channels are re-read.
                        self.handle.calls().set_online(false);
                    }
                    match &state {
                        SessionState::Connected => tracing::info!("AMI logged in"),
                        SessionState::AuthFailed { message } => {
                            tracing::error!(message = %message, "AMI login refused")
                        }
                        SessionState::Backoff => {
                            tracing::warn!(error = ?error, "AMI connection lost; backing off")
                        }
                        s => tracing::debug!(state = %s, "AMI state"),
                    }
                }
                Output::Event(p) => {
                    self.handle.0.events.fetch_add(1, Ordering::Relaxed);
                    self.originate_response(&p);
                    let first = self.decisions.len();
                    self.tracker
                        .on_event_into(&p, SystemTime::now(), &mut self.decisions);
                    self.publish_calls(first, p.get("Linkedid"));
                }
                Output::Resync(channels) => {
                    let mut d = self.tracker.resync(&channels, SystemTime::now());
                    tracing::info!(
                        channels = channels.len(),
                        decisions = d.len(),
                        "AMI re-synced live channels"
                    );
                    let first = self.decisions.len();
                    self.decisions.append(&mut d);
                    self.publish_calls(first, None);
                    let calls = self.handle.calls();
                    calls.refresh_all(|l| self.tracker.channels(l));
                    calls.set_online(true);
                }
                Output::ResyncFailed(msg) => {
                    tracing::warn!(message = %msg, "AMI CoreShowChannels refused: calls missed while disconnected stay open");
                    // What the tracker knows is all there is to show.
                    self.handle.calls().set_online(true);
                }
                Output::Presence(endpoints) => {
                    tracing::info!(
                        endpoints = endpoints.len(),
                        "AMI re-read the extensions' presence"
                    );
                }
                Output::PresenceFailed(msg) => {
                    tracing::warn!(message = %msg, "AMI PJSIPShowEndpoints refused: presence on Asterisk comes only from events");
                }
                Output::ActionDone(outcome) => self.action_done(outcome),
                Output::Unmatched(p) => {
                    self.originate_response(&p);
                    tracing::debug!(packet = ?p, "unmatched AMI packet")
                }
                Output::Skipped(e) => tracing::warn!(error = %e, "skipped a malformed AMI message"),
            }
        }
        if !self.decisions.is_empty() {
            let decisions = std::mem::take(&mut self.decisions);
            let _ = self.follow.send(ToFollower::Batch(Batch {
                received,
                decisions,
            }));
        }
        if state_changed {
            self.publish(session);
        }
    }

    /// Applies the decisions from `first` on to the live view (see
    /// [`AmiCalls::publish`]).
    fn publish_calls(&self, first: usize, linkedid: Option<&str>) {
        self.handle
            .calls()
            .publish(&self.decisions[first..], linkedid, |l| {
                self.tracker.channels(l)
            });
    }

    /// A click-to-call's `OriginateResponse`: a failure closes its
    /// attendance (a success is followed from the call's events).
    fn originate_response(&mut self, p: &super::Packet) {
        if let Some((id, failure)) = super::follow::originate_outcome(p)
            && let Some(protocol) = self.originations.remove(id)
            && let Some(reason) = failure
        {
            let _ = self
                .follow
                .send(ToFollower::OriginateFailed { protocol, reason });
        }
    }

    fn action_done(&mut self, outcome: ActionOutcome) {
        let id = match &outcome {
            Ok(c) => &c.action_id,
            Err(f) => &f.action_id,
        };
        let hangup_of = self.hangups.remove(id);
        let Some((action, reply)) = self.pending.remove(id) else {
            return;
        };
        let result = match outcome {
            Ok(c) if c.is_success() => Ok(()),
            Ok(c) => Err(AmiActionError::Refused {
                action,
                message: c.response.message().unwrap_or("Error").to_owned(),
            }),
            Err(f) => Err(AmiActionError::Failed {
                action,
                reason: f.reason.to_string(),
            }),
        };
        if let (Some(linkedid), Err(e)) = (hangup_of, &result) {
            tracing::warn!(linkedid, error = %e, "AMI hang-up of a call not done");
            let _ = self.follow.send(ToFollower::HangupRefused { linkedid });
        }
        let _ = reply.send(result);
    }

    fn publish(&self, session: &Session) {
        let st = session.status();
        let now_i = Instant::now();
        let now = Utc::now();
        self.handle.set_status(|s| {
            s.state = st.state.as_str().into();
            s.connected = st.is_ready();
            s.last_error = st.last_error.clone();
            s.since = now;
            s.logins = st.logins;
            s.retry_at = st.retry_at.map(|r| {
                now + chrono::Duration::from_std(r.saturating_duration_since(now_i))
                    .unwrap_or_default()
            });
        });
    }
}

async fn read(conn: &mut Option<Conn>, buf: &mut [u8]) -> std::io::Result<usize> {
    match conn {
        Some(c) => c.reader.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the shutdown watch turns true (or its sender is gone).
async fn signalled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
