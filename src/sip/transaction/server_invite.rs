//! The INVITE server transaction (RFC 3261 §17.2.1, Figure 7, as amended by
//! RFC 6026 §7.1 and Figure 5 there).
//!
//! Proceeding: the TU has the INVITE; if it says nothing for 200 ms the
//! transaction sends 100 Trying itself so the client stops retransmitting
//! (§17.2.1).  INVITE retransmissions are answered with the last
//! provisional.  A 300-699 final moves to Completed, where it is
//! retransmitted on Timer G (T1 doubling to T2, unreliable only) until the
//! ACK arrives (Confirmed, absorbing ACK retransmissions for Timer I) or
//! Timer H (64*T1) gives up.  A 2xx moves to RFC 6026's Accepted state for
//! Timer L: INVITE retransmissions are absorbed (the TU retransmits the 2xx
//! itself, §13.3.1.4, and passes each copy through here), and the ACKs for
//! the 2xx go to the TU.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error::TransactionError;
use super::message::{SipMessage, response_to};
use super::output::Sink;
use super::state::TransactionState;
use super::timers::{Timer, TimerConfig, Timers};

/// What an ACK did to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// It acknowledged our non-2xx final (or retransmitted that ACK).
    Absorbed,
    /// It belongs to the TU (an ACK for a 2xx, RFC 6026 Accepted).
    ForTu,
}

/// One INVITE server transaction.
#[derive(Debug, Clone)]
pub(crate) struct InviteServer {
    state: TransactionState,
    config: TimerConfig,
    /// The INVITE, kept to build the automatic 100 and the guard's 408.
    request: SipMessage,
    last_response: Option<Bytes>,
    /// The current Timer G interval.
    interval_g: Duration,
    timers: Timers,
}

impl InviteServer {
    /// Enters Proceeding (the layer passes the INVITE to the TU).
    pub(crate) fn start(request: SipMessage, config: TimerConfig, now: Instant) -> InviteServer {
        let mut timers = Timers::default();
        timers.set(Timer::Trying, now + config.trying_delay);
        if let Some(guard) = config.invite_proceeding_guard {
            timers.set(Timer::TuGuard, now + guard);
        }
        InviteServer {
            state: TransactionState::Proceeding,
            config,
            request,
            last_response: None,
            interval_g: config.t1,
            timers,
        }
    }

    pub(crate) fn state(&self) -> TransactionState {
        self.state
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// A retransmission of the INVITE arrived: re-send the last provisional
    /// (Proceeding) or the final (Completed); absorb it otherwise.
    pub(crate) fn on_retransmission(&mut self, sink: &mut Sink<'_>) {
        if matches!(
            self.state,
            TransactionState::Proceeding | TransactionState::Completed
        ) && let Some(r) = &self.last_response
        {
            sink.transmit(r.clone());
        }
    }

    /// An ACK matched this transaction.
    pub(crate) fn on_ack(&mut self, now: Instant, sink: &mut Sink<'_>) -> AckOutcome {
        match self.state {
            TransactionState::Completed => {
                self.state = TransactionState::Confirmed;
                self.timers.clear();
                let i = self.config.t4_or_zero(sink.reliable());
                self.timers.set(Timer::I, now + i);
                AckOutcome::Absorbed
            }
            TransactionState::Accepted => AckOutcome::ForTu,
            _ => AckOutcome::Absorbed,
        }
    }

    /// The TU sends a response.
    pub(crate) fn send_response(
        &mut self,
        response: &SipMessage,
        now: Instant,
        sink: &mut Sink<'_>,
    ) -> Result<(), TransactionError> {
        let status = response.status().ok_or(TransactionError::NotAResponse)?;
        use TransactionState as S;
        match (self.state, status) {
            (S::Proceeding, 100..=199) => {
                self.timers.cancel(Timer::Trying);
                let bytes = response.to_bytes();
                sink.transmit(bytes.clone());
                self.last_response = Some(bytes);
            }
            (S::Proceeding, 200..=299) => {
                self.state = S::Accepted;
                self.timers.clear();
                self.timers.set(Timer::L, now + self.config.t1x64());
                let bytes = response.to_bytes();
                sink.transmit(bytes.clone());
                self.last_response = Some(bytes);
            }
            (S::Proceeding, 300..=699) => self.complete(response.to_bytes(), now, sink),
            // RFC 6026 §7.1: the TU's 2xx retransmissions pass through.
            (S::Accepted, 200..=299) => sink.transmit(response.to_bytes()),
            (state, status) => return Err(TransactionError::InvalidState { state, status }),
        }
        Ok(())
    }

    fn complete(&mut self, bytes: Bytes, now: Instant, sink: &mut Sink<'_>) {
        self.state = TransactionState::Completed;
        self.timers.clear();
        sink.transmit(bytes.clone());
        self.last_response = Some(bytes);
        if !sink.reliable() {
            self.interval_g = self.config.t1;
            self.timers.set(Timer::G, now + self.interval_g);
        }
        self.timers.set(Timer::H, now + self.config.t1x64());
    }

    /// Fires every timer due at `now`.
    pub(crate) fn on_tick(&mut self, now: Instant, sink: &mut Sink<'_>) {
        while let Some(timer) = self.timers.pop_due(now) {
            self.fire(timer, now, sink);
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant, sink: &mut Sink<'_>) {
        use TransactionState as S;
        match (timer, self.state) {
            (Timer::Trying, S::Proceeding) if self.last_response.is_none() => {
                // §8.2.6.1: a 100 needs no To tag.
                if let Ok(b) = response_to(&self.request, 100, None)
                    && let Ok(bytes) = b.to_bytes()
                {
                    sink.transmit(bytes.clone());
                    self.last_response = Some(bytes);
                }
            }
            (Timer::TuGuard, S::Proceeding) => {
                sink.timeout(Timer::TuGuard);
                let tag = guard_tag(&self.request);
                match response_to(&self.request, 408, None).and_then(|b| b.to_tag(&tag).to_bytes())
                {
                    Ok(bytes) => self.complete(bytes, now, sink),
                    Err(_) => self.terminate(),
                }
            }
            (Timer::G, S::Completed) => {
                if let Some(r) = &self.last_response {
                    sink.transmit(r.clone());
                }
                self.interval_g = self.interval_g.saturating_mul(2).min(self.config.t2);
                self.timers.set(Timer::G, now + self.interval_g);
            }
            (Timer::H, S::Completed) => {
                // §17.2.1: the ACK never came; the TU must know.
                sink.timeout(Timer::H);
                self.terminate();
            }
            (Timer::I, S::Confirmed) | (Timer::L, S::Accepted) => self.terminate(),
            _ => {}
        }
    }

    /// The transport could not send a response (§17.2.4).
    pub(crate) fn on_transport_error(&mut self, sink: &mut Sink<'_>) {
        sink.transport_error();
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = TransactionState::Terminated;
        self.timers.clear();
    }
}

/// A To tag for the guard's 408, stable per request so retransmitted 408s
/// are identical.
fn guard_tag(request: &SipMessage) -> String {
    let mut h = DefaultHasher::new();
    request.call_id().unwrap_or_default().hash(&mut h);
    request
        .top_via()
        .map(|v| v.to_string())
        .unwrap_or_default()
        .hash(&mut h);
    format!("tg{:x}", h.finish())
}
