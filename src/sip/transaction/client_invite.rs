//! The INVITE client transaction (RFC 3261 §17.1.1, Figure 5, as amended by
//! RFC 6026 §7.2 and Figure 3 there).
//!
//! Calling: the INVITE is retransmitted on Timer A (T1, doubling, no cap:
//! the doubling stops at Timer B = 64*T1 anyway) over unreliable transports;
//! Timer B gives up.  A provisional moves to Proceeding and stops both.
//! A 300-699 final is ACKed by the transaction itself (the ACK is
//! hop-by-hop) and Completed absorbs its retransmissions for Timer D,
//! re-sending the ACK each time.  A 2xx goes to the TU, which ACKs it
//! end-to-end; RFC 6026's Accepted state then keeps the transaction for
//! Timer M so that 2xx retransmissions (and 2xx from other forks) still
//! reach the TU instead of being treated as strays, the race RFC 3261's
//! "terminate on 2xx" left open.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ack::AckTemplate;
use super::error::TransactionError;
use super::message::SipMessage;
use super::output::Sink;
use super::state::TransactionState;
use super::timers::{Timer, TimerConfig, Timers};

/// One INVITE client transaction.
#[derive(Debug, Clone)]
pub(crate) struct InviteClient {
    state: TransactionState,
    config: TimerConfig,
    request: Bytes,
    ack_template: AckTemplate,
    /// The ACK sent for the non-2xx final, re-sent on its retransmissions.
    ack: Option<Bytes>,
    /// The current Timer A interval.
    interval_a: Duration,
    timers: Timers,
}

impl InviteClient {
    /// Sends `invite` and enters Calling.
    pub(crate) fn start(
        invite: &SipMessage,
        config: TimerConfig,
        now: Instant,
        sink: &mut Sink<'_>,
    ) -> Result<InviteClient, TransactionError> {
        let ack_template = AckTemplate::new(invite)?;
        let mut t = InviteClient {
            state: TransactionState::Calling,
            config,
            request: invite.to_bytes(),
            ack_template,
            ack: None,
            interval_a: config.t1,
            timers: Timers::default(),
        };
        sink.transmit(t.request.clone());
        if !sink.reliable() {
            t.timers.set(Timer::A, now + config.t1);
        }
        t.timers.set(Timer::B, now + config.t1x64());
        Ok(t)
    }

    pub(crate) fn state(&self) -> TransactionState {
        self.state
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// A response matched this transaction.
    pub(crate) fn on_response(&mut self, response: SipMessage, now: Instant, sink: &mut Sink<'_>) {
        let Some(status) = response.status() else {
            return;
        };
        use TransactionState as S;
        match (self.state, status) {
            (S::Calling | S::Proceeding, 100..=199) => {
                if self.state == S::Calling
                    && let Some(guard) = self.config.invite_proceeding_guard
                {
                    self.timers.set(Timer::TuGuard, now + guard);
                }
                self.state = S::Proceeding;
                self.timers.cancel(Timer::A);
                self.timers.cancel(Timer::B);
                sink.response(response);
            }
            (S::Calling | S::Proceeding, 200..=299) => {
                self.state = S::Accepted;
                self.timers.clear();
                self.timers.set(Timer::M, now + self.config.t1x64());
                sink.response(response);
            }
            (S::Calling | S::Proceeding, 300..=699) => {
                self.state = S::Completed;
                self.timers.clear();
                self.ack = self.ack_template.build(&response);
                if let Some(ack) = &self.ack {
                    sink.transmit(ack.clone());
                }
                let d = self.config.timer_d(sink.reliable());
                self.timers.set(Timer::D, now + d);
                sink.response(response);
            }
            (S::Completed, 300..=699) => {
                // A retransmitted final: our ACK was lost (§17.1.1.2).
                if let Some(ack) = &self.ack {
                    sink.transmit(ack.clone());
                }
            }
            (S::Accepted, 200..=299) => {
                // RFC 6026 §7.2: every 2xx goes up so the TU ACKs it.
                sink.response(response);
            }
            _ => {}
        }
    }

    /// The TU sent a CANCEL for this INVITE: if no final response comes
    /// within 64*T1, give the transaction up (§9.1).
    pub(crate) fn on_cancel_sent(&mut self, now: Instant) {
        if matches!(
            self.state,
            TransactionState::Calling | TransactionState::Proceeding
        ) {
            self.timers.set(Timer::Cancelled, now + self.config.t1x64());
        }
    }

    /// Fires every timer due at `now`.
    pub(crate) fn on_tick(&mut self, now: Instant, sink: &mut Sink<'_>) {
        while let Some(timer) = self.timers.pop_due(now) {
            self.fire(timer, now, sink);
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant, sink: &mut Sink<'_>) {
        match (timer, self.state) {
            (Timer::A, TransactionState::Calling) => {
                sink.transmit(self.request.clone());
                self.interval_a = self.interval_a.saturating_mul(2);
                self.timers.set(Timer::A, now + self.interval_a);
            }
            (Timer::B, TransactionState::Calling) => {
                sink.timeout(Timer::B);
                self.terminate();
            }
            (
                Timer::TuGuard | Timer::Cancelled,
                TransactionState::Calling | TransactionState::Proceeding,
            ) => {
                sink.timeout(timer);
                self.terminate();
            }
            (Timer::D, TransactionState::Completed) | (Timer::M, TransactionState::Accepted) => {
                self.terminate();
            }
            _ => {}
        }
    }

    /// The transport could not send (§17.1.4).  Before a final response the
    /// TU must learn the request failed; afterwards only our ACK was lost.
    pub(crate) fn on_transport_error(&mut self, sink: &mut Sink<'_>) {
        if matches!(
            self.state,
            TransactionState::Calling | TransactionState::Proceeding
        ) {
            sink.transport_error();
        }
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = TransactionState::Terminated;
        self.timers.clear();
    }
}
