//! Timer values (RFC 3261 §17, Table 4; RFC 6026 §8.11 for L and M) and a
//! tiny per-transaction timer set.
//!
//! The core never reads the clock: every deadline is an `Instant` computed
//! from the `now` the driver passes in, so tests run in simulated time.

use std::time::{Duration, Instant};

/// Timer base values.  Defaults are the RFC's: T1 = 500 ms (RTT estimate),
/// T2 = 4 s (cap on non-INVITE request and INVITE response retransmission
/// intervals), T4 = 5 s (maximum time a message stays in the network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// How long an INVITE server transaction waits for the TU before it
    /// sends 100 Trying itself (§17.2.1: 200 ms).
    pub trying_delay: Duration,
    /// Bound on how long an INVITE transaction stays in Proceeding.  RFC
    /// 3261 has no such timer for a UA (Timer B stops at the first
    /// provisional; Timer C is for proxies, §16.6), so a silent TU (server
    /// side) or a peer that sent 180 and vanished (client side) would leak
    /// the transaction forever.  When it fires the TU gets
    /// `TuEvent::Timeout { timer: TuGuard }`; a server transaction also
    /// answers 408 itself, a client one terminates (the TU should CANCEL
    /// well before, which arms the §9.1 64*T1 `Cancelled` wait).  Keep it
    /// above the longest ring time.  `None` disables it.
    pub invite_proceeding_guard: Option<Duration>,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            trying_delay: Duration::from_millis(200),
            invite_proceeding_guard: Some(Duration::from_secs(3600)),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J (unreliable), L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D: "> 32 s" on unreliable transports, zero on reliable
    /// (§17.1.1.2).  We use max(32 s, 64*T1) so a large T1 stays safe.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64().max(Duration::from_secs(32))
        }
    }

    /// Timers I and K: T4 on unreliable transports, zero on reliable.
    pub fn t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64*T1 on unreliable transports, zero on reliable.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64()
        }
    }
}

/// The RFC's timer names (plus the two this implementation adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE client request retransmission (§17.1.1.2).
    A,
    /// INVITE client transaction timeout.
    B,
    /// INVITE client wait for response retransmissions in Completed.
    D,
    /// Non-INVITE client request retransmission (§17.1.2.2).
    E,
    /// Non-INVITE client transaction timeout.
    F,
    /// INVITE server final response retransmission (§17.2.1).
    G,
    /// INVITE server wait for ACK.
    H,
    /// INVITE server wait for ACK retransmissions in Confirmed.
    I,
    /// Non-INVITE server wait for request retransmissions in Completed.
    J,
    /// Non-INVITE client wait for response retransmissions in Completed.
    K,
    /// RFC 6026: INVITE server stays in Accepted to absorb INVITE
    /// retransmissions and pass ACKs and 2xx retransmissions.
    L,
    /// RFC 6026: INVITE client stays in Accepted to pass 2xx
    /// retransmissions (from other forks too) to the TU.
    M,
    /// 200 ms automatic 100 Trying (§17.2.1).
    Trying,
    /// Proceeding lasted too long (see `TimerConfig::invite_proceeding_guard`;
    /// for a non-INVITE server, 64*T1 of TU silence).
    TuGuard,
    /// §9.1: 64*T1 after the TU sent a CANCEL, the INVITE client
    /// transaction still has no final response and is given up.
    Cancelled,
}

/// The armed timers of one transaction (at most a handful).
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    armed: Vec<(Timer, Instant)>,
}

impl Timers {
    /// Arms (or re-arms) `timer` to fire at `at`.
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.cancel(timer);
        self.armed.push((timer, at));
    }

    /// Disarms `timer` (no-op when not armed).
    pub(crate) fn cancel(&mut self, timer: Timer) {
        self.armed.retain(|(t, _)| *t != timer);
    }

    /// Disarms every timer.
    pub(crate) fn clear(&mut self) {
        self.armed.clear();
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.armed.iter().map(|(_, at)| *at).min()
    }

    /// Removes and returns the earliest timer due at `now`, so a late tick
    /// fires overdue timers in the order they were due.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (i, _) = self
            .armed
            .iter()
            .enumerate()
            .filter(|(_, (_, at))| *at <= now)
            .min_by_key(|(_, (_, at))| *at)?;
        Some(self.armed.swap_remove(i).0)
    }
}
