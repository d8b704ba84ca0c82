//! One UAC registration (RFC 3261 §10.2) as a sans-IO state machine: time
//! is an input, REGISTERs to send and the end of each exchange are
//! outputs. At most one REGISTER is in flight; a new exchange starts only
//! when the previous one has ended and its wait is over.
//!
//! ```text
//! new(config, seed, now)          first REGISTER due at `now`
//! on_tick(now) at poll_timeout()  sends what is due, times out a lost exchange
//! on_response(response, now)      401/407 answered once per exchange (again
//!                                 only for stale=true), 423 retried with
//!                                 Min-Expires, 2xx registers until expiry
//!                                 and schedules the refresh, the rest backs off
//! on_failure(kind, now)           timeout or transport error: back off
//! unregister(now)                 Expires: 0 when bound, then done
//! poll_output()                   Send(REGISTER) | Attempt(result)
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::message::{
    RegisterParts, RegistrationConfig, granted_expires, min_expires, pick_challenge, register,
    retry_after,
};
use super::schedule::{AUTH_FAILED_MIN, Backoff, Entropy, refresh_after};
use crate::sip::auth::{Challenge, answer_challenge};
use crate::sip::message::{BRANCH_MAGIC_COOKIE, Method, SipMessage};

/// No final answer this long after a send ends the exchange as a timeout
/// (a safety net: the transaction layer's Timer F fires at 32 s).
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(40);
/// Challenges with `stale=true` answered in one exchange.
const MAX_STALE: u8 = 2;
/// 423 Interval Too Brief retries in one exchange.
const MAX_INTERVAL_RETRIES: u8 = 2;

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegState {
    /// Not bound (before the first answer, or after unregistering).
    Unregistered,
    /// An exchange is under way and we hold no binding.
    Registering,
    /// Bound until `expires_at` (a refresh may be under way or backing off).
    Registered,
    /// The registrar refused our credentials; retried slowly.
    AuthFailed,
    /// The last exchange failed (error, rejection, timeout); backing off.
    Failed,
}

impl RegState {
    pub fn as_str(self) -> &'static str {
        match self {
            RegState::Unregistered => "unregistered",
            RegState::Registering => "registering",
            RegState::Registered => "registered",
            RegState::AuthFailed => "auth_failed",
            RegState::Failed => "failed",
        }
    }
}

/// What the driver shows of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationStatus {
    pub state: RegState,
    /// While registered: when the binding runs out.
    pub expires_at: Option<Instant>,
    /// When the next REGISTER goes out (`None` while one is in flight).
    pub next_attempt_at: Option<Instant>,
    /// The last final status code received.
    pub last_status: Option<u16>,
    /// Why the last exchange failed (cleared by a success).
    pub last_error: Option<String>,
}

/// How one exchange ended (metrics: `result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptResult {
    Registered,
    Unregistered,
    AuthFailed,
    /// A 3xx/4xx other than auth, or an unusable answer.
    Rejected,
    /// 5xx/6xx.
    ServerError,
    Timeout,
    TransportError,
}

impl AttemptResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Registered => "registered",
            AttemptResult::Unregistered => "unregistered",
            AttemptResult::AuthFailed => "auth_failed",
            AttemptResult::Rejected => "rejected",
            AttemptResult::ServerError => "server_error",
            AttemptResult::Timeout => "timeout",
            AttemptResult::TransportError => "transport_error",
        }
    }
}

/// A REGISTER's transaction ended without a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Transport,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this REGISTER (a new client transaction) to the registrar.
    Send(SipMessage),
    /// An exchange ended.
    Attempt(AttemptResult),
}

/// The REGISTER in flight and what this exchange has seen.
#[derive(Debug, Clone, Default)]
struct Exchange {
    cseq: u32,
    deadline: Option<Instant>,
    unregister: bool,
    /// A challenge was answered in this exchange.
    answered: bool,
    /// The nonce the credentials of the REGISTER in flight used.
    used_nonce: Option<String>,
    stale_retries: u8,
    interval_retries: u8,
}

/// The last challenge answered, reused (next nc) on refreshes.
#[derive(Debug, Clone)]
struct AuthCache {
    proxy: bool,
    challenge: Challenge,
    nc: u32,
}

/// One registration (see the module documentation).
#[derive(Debug, Clone)]
pub struct RegistrationClient {
    config: RegistrationConfig,
    entropy: Entropy,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// What we ask for (raised by a 423).
    expires: u32,
    backoff: Backoff,
    flight: Option<Exchange>,
    auth: Option<AuthCache>,
    next_attempt: Option<Instant>,
    stopping: bool,
    status: RegistrationStatus,
    outputs: VecDeque<Output>,
}

impl RegistrationClient {
    /// A client whose first REGISTER is due at `now`; `seed` feeds its
    /// tags, branches, cnonces and backoff jitter.
    pub fn new(config: RegistrationConfig, seed: u64, now: Instant) -> RegistrationClient {
        let mut entropy = Entropy::new(seed);
        let call_id = format!("{}{}@pbx-bridge", entropy.token(), entropy.token());
        let from_tag = entropy.token();
        RegistrationClient {
            expires: config.expires,
            config,
            entropy,
            call_id,
            from_tag,
            cseq: 0,
            backoff: Backoff::default(),
            flight: None,
            auth: None,
            next_attempt: Some(now),
            stopping: false,
            status: RegistrationStatus {
                state: RegState::Unregistered,
                expires_at: None,
                next_attempt_at: Some(now),
                last_status: None,
                last_error: None,
            },
            outputs: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// The Call-ID of every REGISTER of this client (§10.2.4).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn status(&self) -> &RegistrationStatus {
        &self.status
    }

    /// Whether a REGISTER is waiting for its final answer.
    pub fn in_flight(&self) -> bool {
        self.flight.is_some()
    }

    /// Unregistered after [`RegistrationClient::unregister`]: nothing more
    /// will be sent.
    pub fn is_done(&self) -> bool {
        self.stopping && self.flight.is_none() && self.next_attempt.is_none()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`RegistrationClient::on_tick`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = match self.status.state {
            RegState::Registered => self.status.expires_at,
            _ => None,
        };
        [
            self.next_attempt,
            self.flight.as_ref().and_then(|f| f.deadline),
            expiry,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn on_tick(&mut self, now: Instant) {
        if self
            .flight
            .as_ref()
            .and_then(|f| f.deadline)
            .is_some_and(|d| now >= d)
        {
            self.on_failure(Failure::Timeout, now);
        }
        if self.status.state == RegState::Registered
            && self.status.expires_at.is_some_and(|e| now >= e)
        {
            self.status.expires_at = None;
            self.status.state = if self.flight.is_some() {
                RegState::Registering
            } else {
                RegState::Failed
            };
        }
        if self.flight.is_none() && self.next_attempt.is_some_and(|at| now >= at) {
            self.start(now);
        }
    }

    /// Stop: unregister (Expires: 0) when bound, then be done. An exchange
    /// in flight ends first.
    pub fn unregister(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        if self.flight.is_some() {
            return;
        }
        if self.bound(now) {
            self.start(now);
        } else {
            self.stop();
        }
    }

    /// A response of one of our REGISTER transactions.
    pub fn on_response(&mut self, response: &SipMessage, now: Instant) {
        let Some(code) = response.status() else {
            return;
        };
        let ours = self.flight.as_ref().is_some_and(|f| {
            response.call_id().ok() == Some(self.call_id.as_str())
                && response
                    .cseq()
                    .is_ok_and(|c| c.seq == f.cseq && c.method == Method::Register)
        });
        if !ours || code < 200 {
            return;
        }
        let Some(flight) = self.flight.take() else {
            return;
        };
        self.status.last_status = Some(code);
        let reason = || {
            let text = response
                .reason()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .unwrap_or_default();
            format!("{code} {text}").trim_end().to_owned()
        };
        match code {
            200..=299 if flight.unregister => {
                self.outputs
                    .push_back(Output::Attempt(AttemptResult::Unregistered));
                self.stop();
            }
            200..=299 => {
                let granted = granted_expires(response, &self.config.contact, self.expires);
                if granted == 0 {
                    let error = format!("{}: the registrar granted 0 s", reason());
                    self.fail(now, AttemptResult::Rejected, error, Duration::ZERO);
                    return;
                }
                self.backoff.reset();
                self.status.state = RegState::Registered;
                self.status.expires_at = Some(now + Duration::from_secs(u64::from(granted)));
                self.status.last_error = None;
                self.outputs
                    .push_back(Output::Attempt(AttemptResult::Registered));
                if self.stopping {
                    self.start(now);
                } else {
                    self.schedule(now + refresh_after(granted));
                }
            }
            401 | 407 => self.on_challenge(response, flight, now, reason()),
            403 => {
                self.auth = None;
                self.fail(now, AttemptResult::AuthFailed, reason(), AUTH_FAILED_MIN);
            }
            423 => match min_expires(response) {
                Some(min)
                    if min > self.expires && flight.interval_retries < MAX_INTERVAL_RETRIES =>
                {
                    self.expires = min;
                    self.send(
                        now,
                        Exchange {
                            interval_retries: flight.interval_retries + 1,
                            ..flight
                        },
                    );
                }
                _ => {
                    let error = format!("{}: no usable Min-Expires", reason());
                    self.fail(now, AttemptResult::Rejected, error, Duration::ZERO);
                }
            },
            408 => self.fail(now, AttemptResult::Timeout, reason(), Duration::ZERO),
            500..=699 => {
                let floor = retry_after(response)
                    .map(|s| Duration::from_secs(u64::from(s.min(3600))))
                    .unwrap_or_default();
                self.fail(now, AttemptResult::ServerError, reason(), floor);
            }
            _ => self.fail(now, AttemptResult::Rejected, reason(), Duration::ZERO),
        }
    }

    /// The REGISTER in flight got no answer.
    pub fn on_failure(&mut self, kind: Failure, now: Instant) {
        if self.flight.take().is_none() {
            return;
        }
        let (result, error) = match kind {
            Failure::Timeout => (AttemptResult::Timeout, "no answer from the registrar"),
            Failure::Transport => (AttemptResult::TransportError, "transport error"),
        };
        self.fail(now, result, error.to_owned(), Duration::ZERO);
    }

    fn on_challenge(&mut self, response: &SipMessage, flight: Exchange, now: Instant, why: String) {
        let Some((proxy, challenge)) = pick_challenge(response) else {
            let error = format!("{why}: no digest challenge we can answer");
            self.fail(now, AttemptResult::AuthFailed, error, AUTH_FAILED_MIN);
            return;
        };
        let refused = if challenge.stale {
            flight.stale_retries >= MAX_STALE
        } else {
            flight.answered || flight.used_nonce.as_deref() == Some(challenge.nonce.as_str())
        };
        if refused {
            self.auth = None;
            let error = format!("{why}: credentials refused");
            self.fail(now, AttemptResult::AuthFailed, error, AUTH_FAILED_MIN);
            return;
        }
        self.auth = Some(AuthCache {
            proxy,
            challenge: challenge.clone(),
            nc: 0,
        });
        self.send(
            now,
            Exchange {
                answered: true,
                stale_retries: flight.stale_retries + u8::from(challenge.stale),
                ..flight
            },
        );
    }

    /// Whether the registrar may hold our binding now.
    fn bound(&self, now: Instant) -> bool {
        self.status.expires_at.is_some_and(|e| e > now)
    }

    /// A new exchange (a registration, a refresh, or the unregistration).
    fn start(&mut self, now: Instant) {
        if self.status.state != RegState::Registered {
            self.status.state = RegState::Registering;
        }
        let unregister = self.stopping;
        self.send(
            now,
            Exchange {
                unregister,
                ..Exchange::default()
            },
        );
    }

    /// Sends the next REGISTER of `exchange` (new CSeq and branch, the
    /// cached credentials with the next nonce count).
    fn send(&mut self, now: Instant, mut exchange: Exchange) {
        self.cseq += 1;
        let branch = format!("{BRANCH_MAGIC_COOKIE}{}", self.entropy.token());
        let cnonce = self.entropy.token();
        let uri = self.config.registrar.to_string();
        let credentials = self.auth.as_mut().and_then(|a| {
            a.nc += 1;
            answer_challenge(
                &a.challenge,
                "REGISTER",
                &uri,
                &self.config.username,
                &self.config.password,
                &cnonce,
                a.nc,
            )
            .ok()
            .map(|c| (a.proxy, c))
        });
        exchange.cseq = self.cseq;
        exchange.deadline = Some(now + EXCHANGE_TIMEOUT);
        exchange.used_nonce = credentials.as_ref().map(|(_, c)| c.nonce.clone());
        let expires = if exchange.unregister { 0 } else { self.expires };
        let built = register(
            &self.config,
            &RegisterParts {
                call_id: &self.call_id,
                from_tag: &self.from_tag,
                branch: &branch,
                cseq: self.cseq,
                expires,
                credentials: credentials.as_ref().map(|(p, c)| (*p, c)),
            },
        );
        self.next_attempt = None;
        self.status.next_attempt_at = None;
        match built {
            Ok(request) => {
                self.flight = Some(exchange);
                self.outputs.push_back(Output::Send(request));
            }
            Err(e) => {
                self.flight = None;
                let error = format!("cannot build the REGISTER: {e}");
                self.fail(now, AttemptResult::Rejected, error, Duration::ZERO);
            }
        }
    }

    /// An exchange failed: back off (at least `floor`), or stop when
    /// unregistering.
    fn fail(&mut self, now: Instant, result: AttemptResult, error: String, floor: Duration) {
        self.outputs.push_back(Output::Attempt(result));
        self.status.last_error = Some(error);
        if self.stopping {
            self.stop();
            return;
        }
        self.status.state = match result {
            AttemptResult::AuthFailed => RegState::AuthFailed,
            _ if self.bound(now) => RegState::Registered,
            _ => RegState::Failed,
        };
        if self.status.state != RegState::Registered {
            self.status.expires_at = None;
        }
        let wait = self.backoff.next(&mut self.entropy, floor);
        self.schedule(now + wait);
    }

    fn schedule(&mut self, at: Instant) {
        self.next_attempt = Some(at);
        self.status.next_attempt_at = Some(at);
    }

    fn stop(&mut self) {
        self.flight = None;
        self.next_attempt = None;
        self.status.state = RegState::Unregistered;
        self.status.expires_at = None;
        self.status.next_attempt_at = None;
    }
}
