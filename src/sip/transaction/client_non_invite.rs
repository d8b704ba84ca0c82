//! The non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).
//!
//! Trying: the request is retransmitted on Timer E, starting at T1 and
//! doubling up to T2 (non-INVITE responses are immediate, so the cap keeps
//! the retransmission rate sane on long transactions); in Proceeding E is
//! pinned at T2.  Timer F (64*T1) gives up in either state.  Completed
//! absorbs response retransmissions for Timer K (T4, zero on reliable).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::SipMessage;
use super::output::Sink;
use super::state::TransactionState;
use super::timers::{Timer, TimerConfig, Timers};

/// One non-INVITE client transaction.
#[derive(Debug, Clone)]
pub(crate) struct NonInviteClient {
    state: TransactionState,
    config: TimerConfig,
    request: Bytes,
    /// The current Timer E interval.
    interval_e: Duration,
    timers: Timers,
}

impl NonInviteClient {
    /// Sends `request` and enters Trying.
    pub(crate) fn start(
        request: &SipMessage,
        config: TimerConfig,
        now: Instant,
        sink: &mut Sink<'_>,
    ) -> NonInviteClient {
        let mut t = NonInviteClient {
            state: TransactionState::Trying,
            config,
            request: request.to_bytes(),
            interval_e: config.t1,
            timers: Timers::default(),
        };
        sink.transmit(t.request.clone());
        if !sink.reliable() {
            t.timers.set(Timer::E, now + config.t1);
        }
        t.timers.set(Timer::F, now + config.t1x64());
        t
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
            (S::Trying | S::Proceeding, 100..=199) => {
                self.state = S::Proceeding;
                sink.response(response);
            }
            (S::Trying | S::Proceeding, 200..=699) => {
                self.state = S::Completed;
                self.timers.clear();
                let k = self.config.t4_or_zero(sink.reliable());
                self.timers.set(Timer::K, now + k);
                sink.response(response);
            }
            // Completed absorbs retransmissions (§17.1.2.2).
            _ => {}
        }
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
            (Timer::E, S::Trying) => {
                sink.transmit(self.request.clone());
                self.interval_e = self.interval_e.saturating_mul(2).min(self.config.t2);
                self.timers.set(Timer::E, now + self.interval_e);
            }
            (Timer::E, S::Proceeding) => {
                sink.transmit(self.request.clone());
                self.interval_e = self.config.t2;
                self.timers.set(Timer::E, now + self.interval_e);
            }
            (Timer::F, S::Trying | S::Proceeding) => {
                sink.timeout(Timer::F);
                self.terminate();
            }
            (Timer::K, S::Completed) => self.terminate(),
            _ => {}
        }
    }

    /// The transport could not send (§17.1.4).
    pub(crate) fn on_transport_error(&mut self, sink: &mut Sink<'_>) {
        if self.state != TransactionState::Completed {
            sink.transport_error();
        }
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = TransactionState::Terminated;
        self.timers.clear();
    }
}
