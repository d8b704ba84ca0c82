//! The non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).
//!
//! Trying absorbs request retransmissions silently until the TU answers
//! (RFC 4320: no early 100 for non-INVITE).  Proceeding and Completed
//! answer each retransmission with the last response sent.  Completed
//! lasts Timer J (64*T1, zero on reliable transports) so that late
//! retransmissions still get the final response.
//!
//! A TU that never answers would keep the transaction forever; after 64*T1
//! the client has given up (its Timer F), so we do the same and tell the TU.

use std::time::Instant;

use bytes::Bytes;

use super::error::TransactionError;
use super::message::SipMessage;
use super::output::Sink;
use super::state::TransactionState;
use super::timers::{Timer, TimerConfig, Timers};

/// One non-INVITE server transaction.
#[derive(Debug, Clone)]
pub(crate) struct NonInviteServer {
    state: TransactionState,
    config: TimerConfig,
    last_response: Option<Bytes>,
    timers: Timers,
}

impl NonInviteServer {
    /// Enters Trying (the layer passes the request to the TU).
    pub(crate) fn start(config: TimerConfig, now: Instant) -> NonInviteServer {
        let mut timers = Timers::default();
        timers.set(Timer::TuGuard, now + config.t1x64());
        NonInviteServer {
            state: TransactionState::Trying,
            config,
            last_response: None,
            timers,
        }
    }

    pub(crate) fn state(&self) -> TransactionState {
        self.state
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// A retransmission of the request arrived.
    pub(crate) fn on_retransmission(&mut self, sink: &mut Sink<'_>) {
        if let Some(r) = &self.last_response {
            sink.transmit(r.clone());
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
            (S::Trying | S::Proceeding, 100..=199) => {
                self.state = S::Proceeding;
            }
            (S::Trying | S::Proceeding, 200..=699) => {
                self.state = S::Completed;
                self.timers.clear();
                let j = self.config.timer_j(sink.reliable());
                self.timers.set(Timer::J, now + j);
            }
            (state, status) => return Err(TransactionError::InvalidState { state, status }),
        }
        let bytes = response.to_bytes();
        sink.transmit(bytes.clone());
        self.last_response = Some(bytes);
        Ok(())
    }

    /// Fires every timer due at `now`.
    pub(crate) fn on_tick(&mut self, now: Instant, sink: &mut Sink<'_>) {
        while let Some(timer) = self.timers.pop_due(now) {
            match (timer, self.state) {
                (Timer::J, TransactionState::Completed) => self.terminate(),
                (Timer::TuGuard, TransactionState::Trying | TransactionState::Proceeding) => {
                    sink.timeout(Timer::TuGuard);
                    self.terminate();
                }
                _ => {}
            }
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
