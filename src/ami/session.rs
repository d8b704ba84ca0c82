//! The client's AMI connection as a state machine with no I/O.
//!
//! ```text
//! Disconnected ─start→ Connecting ─connected→ Banner ─banner→ Authenticating
//!      ▲                   ▲                                     │ Success      │ Error
//!  shutdown                │ retry_at reached                    ▼              ▼
//!                    Backoff / AuthFailed ◄── eof, io error, ─ Connected    AuthFailed
//!                                             ping timeout
//! ```
//!
//! The driver feeds inputs (`connected`, `bytes_received`, `eof`, `io_error`,
//! `tick`) with the current `Instant` and executes [`Output`]s: open a TCP
//! connection after a delay, write bytes, close. The session never reads the
//! clock, so backoff, keep-alive and timeouts are tested in simulated time.
//!
//! Why each rule:
//! - capped exponential backoff with jitter: a restarting Asterisk must not
//!   be hit by every bridge node at the same instant;
//! - reset only after a *stable* connection: a PBX that accepts then drops
//!   at once must not be retried every second forever;
//! - a failed login is retried only on the cap schedule: the secret will not
//!   fix itself, and Asterisk logs (and may ban) every failed attempt;
//! - `Ping` keep-alive: a half-open TCP connection otherwise looks healthy
//!   for hours while no event arrives;
//! - `CoreShowChannels` after every login: events missed while disconnected
//!   are gone, so the live channels are re-read ([`Output::Resync`]);
//! - `PJSIPShowEndpoints` after every login too: the extensions' contacts and
//!   device states ([`Output::Presence`]); a refusal or timeout leaves
//!   presence to the events and keeps the connection.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::action::{Action, ActionIds, EncodeError};
use super::codec::{Banner, DecodeError, Decoder, DecoderLimits, Frame};
use super::correlator::{ActionOutcome, Correlated, Correlator, RegisterError};
use super::packet::{Packet, PacketKind, ResponseStatus};

/// Capped exponential backoff: `initial · 2^attempt`, at most `max`, then
/// reduced by a random fraction of up to `jitter` (so the cap is a real
/// upper bound and nodes spread out below it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// 0.0 (none) ..= 1.0 (full jitter).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before jitter for the given number of consecutive failures
    /// (0 = first retry).
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// `unit` is a random number in `[0, 1)`.
    pub fn jittered(&self, base: Duration, unit: f64) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter * unit.clamp(0.0, 1.0))
    }
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub username: String,
    pub secret: String,
    pub backoff: Backoff,
    /// Send `Ping` this long after the previous one while connected.
    pub ping_interval: Duration,
    /// No answer to a `Ping` within this → the link is dead.
    pub ping_timeout: Duration,
    /// Give up on a TCP connect attempt after this.
    pub connect_timeout: Duration,
    /// Banner plus `Login` answer must arrive within this (Asterisk delays a
    /// failed login by about one second).
    pub login_timeout: Duration,
    /// Default timeout of actions sent with [`Session::send_action`].
    pub action_timeout: Duration,
    /// Timeout (renewed by every list item) of the re-sync `CoreShowChannels`.
    pub resync_timeout: Duration,
    /// A connection that lived this long resets the backoff.
    pub stable_after: Duration,
    pub decoder_limits: DecoderLimits,
    /// ActionIDs are `<prefix>-<connection>-<n>`.
    pub action_id_prefix: String,
}

impl SessionConfig {
    pub fn new(username: impl Into<String>, secret: impl Into<String>) -> Self {
        SessionConfig {
            username: username.into(),
            secret: secret.into(),
            backoff: Backoff::default(),
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(10),
            action_timeout: Duration::from_secs(15),
            resync_timeout: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
            decoder_limits: DecoderLimits::default(),
            action_id_prefix: "pbx-bridge".to_owned(),
        }
    }
}

/// Where the connection is; what `/readyz` and `/metrics` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Not started, or shut down.
    Disconnected,
    /// A TCP connection is being opened.
    Connecting,
    /// Connected; waiting for `Asterisk Call Manager/...`.
    Banner,
    /// `Login` sent, waiting for its answer.
    Authenticating,
    Connected,
    /// Waiting to reconnect after an error or EOF.
    Backoff,
    /// Asterisk refused the credentials; retried on the slow schedule.
    AuthFailed {
        message: String,
    },
}

impl SessionState {
    /// Short name for metrics labels and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            SessionState::Disconnected => "disconnected",
            SessionState::Connecting => "connecting",
            SessionState::Banner => "banner",
            SessionState::Authenticating => "authenticating",
            SessionState::Connected => "connected",
            SessionState::Backoff => "backoff",
            SessionState::AuthFailed { .. } => "auth_failed",
        }
    }

    fn has_transport(&self) -> bool {
        matches!(
            self,
            SessionState::Connecting
                | SessionState::Banner
                | SessionState::Authenticating
                | SessionState::Connected
        )
    }

    fn is_waiting_retry(&self) -> bool {
        matches!(
            self,
            SessionState::Backoff | SessionState::AuthFailed { .. }
        )
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Snapshot for `/readyz`: ready only when `Connected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    pub state: SessionState,
    pub last_error: Option<String>,
    /// When the next connection attempt is due (in backoff).
    pub retry_at: Option<Instant>,
    pub connected_since: Option<Instant>,
    /// Successful logins so far.
    pub logins: u64,
}

impl SessionStatus {
    pub fn is_ready(&self) -> bool {
        self.state == SessionState::Connected
    }
}

/// What the driver must do or pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to Asterisk after waiting `after`, then call
    /// [`Session::connected`] (or [`Session::io_error`] if it fails).
    Connect {
        after: Duration,
    },
    /// Write these bytes to the connection.
    Send(Bytes),
    /// Close the connection (drop the socket; ignore what it still yields).
    Close,
    StateChanged(SessionState, Option<String>),
    /// An event no pending action claimed.
    Event(Packet),
    /// A caller's action finished (or failed).
    ActionDone(ActionOutcome),
    /// Live channels (`CoreShowChannel` events) read after a login.
    Resync(Vec<Packet>),
    /// Asterisk refused the re-sync list (e.g. missing read permission).
    ResyncFailed(String),
    /// The endpoints (`EndpointList` events) read after a login.
    Presence(Vec<Packet>),
    /// Asterisk refused (or never finished) the endpoint list.
    PresenceFailed(String),
    /// A response or message nobody waited for (late answer after timeout).
    Unmatched(Packet),
    /// The decoder skipped a malformed/oversized message and carried on.
    Skipped(DecodeError),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    #[error("AMI is not connected (state {0})")]
    NotConnected(SessionState),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Register(#[from] RegisterError),
}

/// SplitMix64: tiny, seeded, good enough to spread reconnect times.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The AMI client session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: SessionState,
    last_error: Option<String>,
    rng: Rng,
    /// Consecutive failed connections (drives the backoff exponent).
    attempt: u32,
    /// Since the last auth failure and until a login succeeds, every retry
    /// waits the full cap.
    auth_failing: bool,
    decoder: Decoder,
    rx: BytesMut,
    correlator: Correlator,
    ids: ActionIds,
    connections: u64,
    logins: u64,
    outputs: VecDeque<Output>,
    retry_at: Option<Instant>,
    /// Connect or login must finish by then.
    phase_deadline: Option<Instant>,
    next_ping_at: Option<Instant>,
    connected_since: Option<Instant>,
    login_id: Option<String>,
    ping_id: Option<String>,
    resync_id: Option<String>,
    presence_id: Option<String>,
    logoff_id: Option<String>,
}

impl Session {
    /// `seed` feeds the jitter; give each node a different one.
    pub fn new(config: SessionConfig, seed: u64) -> Self {
        let decoder = Decoder::with_limits(config.decoder_limits);
        let ids = ActionIds::new(config.action_id_prefix.clone());
        Session {
            config,
            state: SessionState::Disconnected,
            last_error: None,
            rng: Rng(seed),
            attempt: 0,
            auth_failing: false,
            decoder,
            rx: BytesMut::new(),
            correlator: Correlator::new(),
            ids,
            connections: 0,
            logins: 0,
            outputs: VecDeque::new(),
            retry_at: None,
            phase_deadline: None,
            next_ping_at: None,
            connected_since: None,
            login_id: None,
            ping_id: None,
            resync_id: None,
            presence_id: None,
            logoff_id: None,
        }
    }

    pub fn state(&self) -> &SessionState {
        &self.state
    }

    pub fn status(&self) -> SessionStatus {
        SessionStatus {
            state: self.state.clone(),
            last_error: self.last_error.clone(),
            retry_at: self.retry_at.filter(|_| self.state.is_waiting_retry()),
            connected_since: self.connected_since,
            logins: self.logins,
        }
    }

    /// Next output to execute, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn drain_outputs(&mut self) -> Vec<Output> {
        self.outputs.drain(..).collect()
    }

    /// When [`Session::tick`] must be called next at the latest.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |c: Option<Instant>| {
            if let Some(c) = c {
                t = Some(t.map_or(c, |t| t.min(c)));
            }
        };
        if self.state.is_waiting_retry() {
            consider(self.retry_at);
        }
        consider(self.phase_deadline);
        if self.state == SessionState::Connected {
            consider(self.next_ping_at);
            if self.attempt > 0 {
                consider(self.connected_since.map(|s| s + self.config.stable_after));
            }
        }
        consider(self.correlator.next_deadline());
        t
    }

    /// Begin connecting (from `Disconnected`).
    pub fn start(&mut self, now: Instant) {
        if self.state != SessionState::Disconnected {
            return;
        }
        self.retry_at = Some(now);
        self.phase_deadline = Some(now + self.config.connect_timeout);
        self.set_state(SessionState::Connecting);
        self.outputs.push_back(Output::Connect {
            after: Duration::ZERO,
        });
    }

    /// Log off and stay disconnected until [`Session::start`].
    pub fn shutdown(&mut self, _now: Instant) {
        if self.state == SessionState::Connected {
            let id = self.ids.next_id();
            if let Ok(bytes) = Action::logoff().with_action_id(id.clone()).to_bytes() {
                self.logoff_id = Some(id);
                self.outputs.push_back(Output::Send(bytes));
            }
        }
        let had_transport = self.state.has_transport();
        self.fail_pending();
        if had_transport {
            self.outputs.push_back(Output::Close);
        }
        self.clear_connection();
        self.retry_at = None;
        self.set_state(SessionState::Disconnected);
    }

    /// The TCP connection is open.
    pub fn connected(&mut self, now: Instant) {
        let ok = match &self.state {
            SessionState::Connecting => true,
            s if s.is_waiting_retry() => self.retry_at.is_some_and(|r| now >= r),
            _ => false,
        };
        if !ok {
            return;
        }
        self.clear_connection();
        self.connections += 1;
        self.ids.set_prefix(format!(
            "{}-{}",
            self.config.action_id_prefix, self.connections
        ));
        self.phase_deadline = Some(now + self.config.login_timeout);
        self.set_state(SessionState::Banner);
    }

    /// Bytes read from the connection.
    pub fn bytes_received(&mut self, now: Instant, data: &[u8]) {
        if !matches!(
            self.state,
            SessionState::Banner | SessionState::Authenticating | SessionState::Connected
        ) {
            return;
        }
        self.rx.extend_from_slice(data);
        loop {
            match self.decoder.decode(&mut self.rx) {
                Ok(Some(frame)) => {
                    self.frame(now, frame);
                    if !self.state.has_transport() {
                        self.rx.clear();
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) if e.is_fatal() => {
                    self.fail_connection(now, format!("AMI protocol error: {e}"));
                    return;
                }
                Err(e) => self.outputs.push_back(Output::Skipped(e)),
            }
        }
    }

    /// A decoded frame, for drivers that decode themselves (e.g. `Framed`).
    pub fn frame(&mut self, now: Instant, frame: Frame) {
        match frame {
            Frame::Banner(b) => self.banner(now, b),
            Frame::Packet(p) => self.packet(now, p),
        }
    }

    pub fn banner(&mut self, now: Instant, _banner: Banner) {
        if self.state != SessionState::Banner {
            return;
        }
        let id = self.ids.next_id();
        let login = Action::login(&self.config.username, &self.config.secret).with_action_id(&id);
        match login.to_bytes() {
            Ok(bytes) => {
                let _ = self
                    .correlator
                    .register(&id, "Login", now, self.config.login_timeout);
                self.login_id = Some(id);
                self.outputs.push_back(Output::Send(bytes));
                self.set_state(SessionState::Authenticating);
            }
            Err(e) => {
                // Credentials with a line break: retrying cannot help, so
                // treat it like a refused login (slow schedule).
                self.auth_failed(now, format!("invalid AMI credentials: {e}"));
            }
        }
    }

    /// One decoded packet.
    pub fn packet(&mut self, now: Instant, packet: Packet) {
        if !matches!(
            self.state,
            SessionState::Authenticating | SessionState::Connected
        ) {
            return;
        }
        match self.correlator.on_packet(packet, now) {
            Correlated::Absorbed => {}
            Correlated::Done(outcome) => self.on_done(now, outcome),
            Correlated::Unsolicited(p) => match p.kind() {
                PacketKind::Event(_) => self.outputs.push_back(Output::Event(p)),
                _ => self.outputs.push_back(Output::Unmatched(p)),
            },
        }
    }

    /// Asterisk closed the connection.
    pub fn eof(&mut self, now: Instant) {
        self.io_error(now, "connection closed by Asterisk");
    }

    /// Connect failed, or the connection broke.
    pub fn io_error(&mut self, now: Instant, reason: impl Into<String>) {
        let reason = reason.into();
        match &self.state {
            s if s.has_transport() => self.fail_connection(now, reason),
            // The attempt the driver was told to make has failed.
            s if s.is_waiting_retry() && self.retry_at.is_some_and(|r| now >= r) => {
                self.fail_connection(now, reason)
            }
            // Stale report from a connection already closed.
            _ => {}
        }
    }

    /// Time passes: retries, timeouts, keep-alive.
    pub fn tick(&mut self, now: Instant) {
        if self.state.is_waiting_retry() && self.retry_at.is_some_and(|r| now >= r) {
            let due = self.retry_at.unwrap_or(now);
            self.phase_deadline = Some(due + self.config.connect_timeout);
            self.set_state(SessionState::Connecting);
        }
        if self.state.has_transport() && self.phase_deadline.is_some_and(|d| now >= d) {
            let why = match self.state {
                SessionState::Connecting => "TCP connect timed out",
                SessionState::Banner => "no AMI banner in time",
                _ => "no answer to Login in time",
            };
            self.fail_connection(now, why.to_owned());
            return;
        }
        for failure in self.correlator.expire(now) {
            let id = Some(failure.action_id.as_str());
            if id == self.ping_id.as_deref() {
                self.fail_connection(now, "keep-alive Ping unanswered: link dead".to_owned());
                return;
            } else if id == self.login_id.as_deref() {
                self.fail_connection(now, "no answer to Login in time".to_owned());
                return;
            } else if id == self.resync_id.as_deref() {
                self.fail_connection(now, "CoreShowChannels re-sync timed out".to_owned());
                return;
            } else if id == self.presence_id.as_deref() {
                self.presence_id = None;
                self.outputs.push_back(Output::PresenceFailed(
                    "PJSIPShowEndpoints timed out".to_owned(),
                ));
            } else if id == self.logoff_id.as_deref() {
                self.logoff_id = None;
            } else {
                self.outputs.push_back(Output::ActionDone(Err(failure)));
            }
        }
        if self.state == SessionState::Connected {
            if self
                .connected_since
                .is_some_and(|s| now.duration_since(s) >= self.config.stable_after)
            {
                self.attempt = 0;
            }
            if self.ping_id.is_none() && self.next_ping_at.is_some_and(|p| now >= p) {
                self.send_ping(now);
            }
        }
    }

    /// Send an action with the default timeout. Returns its ActionID (one is
    /// assigned when the action has none).
    pub fn send_action(&mut self, now: Instant, action: Action) -> Result<String, SessionError> {
        let timeout = self.config.action_timeout;
        self.send_action_with_timeout(now, action, timeout)
    }

    pub fn send_action_with_timeout(
        &mut self,
        now: Instant,
        mut action: Action,
        timeout: Duration,
    ) -> Result<String, SessionError> {
        if self.state != SessionState::Connected {
            return Err(SessionError::NotConnected(self.state.clone()));
        }
        if action.action_id().is_none() {
            action.set_action_id(self.ids.next_id());
        }
        let bytes = action.to_bytes()?;
        let id = action.action_id().unwrap_or_default().to_owned();
        self.correlator.register(&id, action.name(), now, timeout)?;
        self.outputs.push_back(Output::Send(bytes));
        Ok(id)
    }

    fn send_internal(&mut self, now: Instant, action: Action, timeout: Duration) -> Option<String> {
        let id = self.ids.next_id();
        let action = action.with_action_id(&id);
        let bytes = action.to_bytes().ok()?;
        self.correlator
            .register(&id, action.name(), now, timeout)
            .ok()?;
        self.outputs.push_back(Output::Send(bytes));
        Some(id)
    }

    fn send_ping(&mut self, now: Instant) {
        self.ping_id = self.send_internal(now, Action::ping(), self.config.ping_timeout);
        self.next_ping_at = Some(now + self.config.ping_interval);
    }

    fn on_done(&mut self, now: Instant, outcome: ActionOutcome) {
        let id = match &outcome {
            Ok(c) => c.action_id.clone(),
            Err(f) => f.action_id.clone(),
        };
        if Some(&id) == self.login_id.as_ref() {
            self.login_id = None;
            self.on_login(now, outcome);
        } else if Some(&id) == self.ping_id.as_ref() {
            // Any answer proves the link; Asterisk 22 says `Ping: Pong`.
            self.ping_id = None;
        } else if Some(&id) == self.resync_id.as_ref() {
            self.resync_id = None;
            match outcome {
                Ok(c) if c.is_success() => self.outputs.push_back(Output::Resync(c.events)),
                Ok(c) => {
                    let msg = c.response.message().unwrap_or("CoreShowChannels refused");
                    self.outputs.push_back(Output::ResyncFailed(msg.to_owned()));
                }
                Err(f) => self
                    .outputs
                    .push_back(Output::ResyncFailed(f.reason.to_string())),
            }
        } else if Some(&id) == self.presence_id.as_ref() {
            self.presence_id = None;
            self.outputs.push_back(match outcome {
                Ok(c) if c.is_success() => Output::Presence(c.events),
                Ok(c) => Output::PresenceFailed(
                    c.response
                        .message()
                        .unwrap_or("PJSIPShowEndpoints refused")
                        .to_owned(),
                ),
                Err(f) => Output::PresenceFailed(f.reason.to_string()),
            });
        } else if Some(&id) == self.logoff_id.as_ref() {
            self.logoff_id = None;
        } else {
            self.outputs.push_back(Output::ActionDone(outcome));
        }
    }

    fn on_login(&mut self, now: Instant, outcome: ActionOutcome) {
        match outcome {
            Ok(c) if c.response.response() == Some(ResponseStatus::Success) => {
                self.logins += 1;
                self.auth_failing = false;
                self.last_error = None;
                self.phase_deadline = None;
                self.connected_since = Some(now);
                self.set_state(SessionState::Connected);
                self.resync_id = self.send_internal(
                    now,
                    Action::core_show_channels(),
                    self.config.resync_timeout,
                );
                self.presence_id = self.send_internal(
                    now,
                    Action::pjsip_show_endpoints(),
                    self.config.resync_timeout,
                );
                self.next_ping_at = Some(now + self.config.ping_interval);
            }
            Ok(c) => {
                let message = c
                    .response
                    .message()
                    .unwrap_or("Authentication failed")
                    .to_owned();
                self.auth_failed(now, message);
            }
            Err(f) => self.fail_connection(now, f.reason.to_string()),
        }
    }

    fn auth_failed(&mut self, now: Instant, message: String) {
        self.auth_failing = true;
        self.fail_pending();
        if self.state.has_transport() {
            self.outputs.push_back(Output::Close);
        }
        self.clear_connection();
        self.last_error = Some(message.clone());
        let delay = self.next_delay();
        self.retry_at = Some(now + delay);
        self.set_state(SessionState::AuthFailed { message });
        self.outputs.push_back(Output::Connect { after: delay });
    }

    fn fail_connection(&mut self, now: Instant, reason: String) {
        if self.state == SessionState::Connected
            && self
                .connected_since
                .is_some_and(|s| now.duration_since(s) >= self.config.stable_after)
        {
            self.attempt = 0;
        }
        self.fail_pending();
        if self.state.has_transport() {
            self.outputs.push_back(Output::Close);
        }
        self.clear_connection();
        self.last_error = Some(reason);
        let delay = self.next_delay();
        self.retry_at = Some(now + delay);
        // After an auth failure the account is still suspect: keep the slow
        // schedule and keep reporting AuthFailed until a login succeeds.
        let next = match (&self.state, self.auth_failing) {
            (SessionState::AuthFailed { message }, true) => SessionState::AuthFailed {
                message: message.clone(),
            },
            _ => SessionState::Backoff,
        };
        self.set_state(next);
        self.outputs.push_back(Output::Connect { after: delay });
    }

    fn next_delay(&mut self) -> Duration {
        let b = self.config.backoff;
        let base = if self.auth_failing {
            b.max
        } else {
            b.base_delay(self.attempt)
        };
        self.attempt = self.attempt.saturating_add(1);
        b.jittered(base, self.rng.unit())
    }

    fn fail_pending(&mut self) {
        for f in self.correlator.fail_all() {
            let id = Some(f.action_id.as_str());
            let internal = id == self.login_id.as_deref()
                || id == self.ping_id.as_deref()
                || id == self.resync_id.as_deref()
                || id == self.presence_id.as_deref()
                || id == self.logoff_id.as_deref();
            if !internal {
                self.outputs.push_back(Output::ActionDone(Err(f)));
            }
        }
    }

    fn clear_connection(&mut self) {
        self.decoder = Decoder::with_limits(self.config.decoder_limits);
        self.rx.clear();
        self.correlator = Correlator::new();
        self.phase_deadline = None;
        self.next_ping_at = None;
        self.connected_since = None;
        self.login_id = None;
        self.ping_id = None;
        self.resync_id = None;
        self.presence_id = None;
        self.logoff_id = None;
    }

    fn set_state(&mut self, state: SessionState) {
        if self.state != state {
            self.state = state.clone();
            self.outputs
                .push_back(Output::StateChanged(state, self.last_error.clone()));
        }
    }
}
