//! Draining on SIGTERM: new calls get 503 (with Retry-After), live calls go
//! on for the grace period, then are hung up (BYE) and get a few seconds to
//! send their BYEs and write their end before signalling stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Whether the service is draining, shared by whoever must refuse new work
/// (SIP, the API's readiness). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct DrainFlag(Arc<AtomicBool>);

impl DrainFlag {
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How long hung-up calls get to send their BYEs and write their end.
pub const HANG_UP_WAIT: Duration = Duration::from_secs(3);

/// Where a shutdown stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    Serving,
    /// SIGTERM at `since`: calls go on for the grace period.
    Draining {
        since: Instant,
    },
    /// Calls were told to hang up at `since`; their BYEs and attendance
    /// writes get [`HANG_UP_WAIT`].
    HangingUp {
        since: Instant,
    },
}

/// What the driver does after [`Drain::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainStep {
    Continue,
    /// Tell every live call to hang up (once).
    HangUpAll,
    /// Stop signalling.
    Stop,
}

impl Drain {
    pub fn serving(&self) -> bool {
        matches!(self, Drain::Serving)
    }

    /// SIGTERM arrived at `now`.
    pub fn start(&mut self, now: Instant) {
        if self.serving() {
            *self = Drain::Draining { since: now };
        }
    }

    /// With `live` calls at `now`, and calls allowed `grace` after SIGTERM.
    pub fn step(&mut self, live: usize, grace: Duration, now: Instant) -> DrainStep {
        match *self {
            Drain::Serving => DrainStep::Continue,
            Drain::Draining { .. } | Drain::HangingUp { .. } if live == 0 => DrainStep::Stop,
            Drain::Draining { since } if now.duration_since(since) >= grace => {
                *self = Drain::HangingUp { since: now };
                DrainStep::HangUpAll
            }
            Drain::HangingUp { since } if now.duration_since(since) >= HANG_UP_WAIT => {
                DrainStep::Stop
            }
            _ => DrainStep::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn serving_never_stops() {
        let t0 = Instant::now();
        let mut d = Drain::Serving;
        assert_eq!(d.step(0, GRACE, t0), DrainStep::Continue);
        assert_eq!(d.step(3, GRACE, t0 + GRACE * 10), DrainStep::Continue);
    }

    #[test]
    fn no_live_call_stops_at_once() {
        let t0 = Instant::now();
        let mut d = Drain::Serving;
        d.start(t0);
        assert_eq!(d.step(0, GRACE, t0), DrainStep::Stop);
    }

    #[test]
    fn calls_that_end_within_the_grace_stop_it_early() {
        let t0 = Instant::now();
        let mut d = Drain::Serving;
        d.start(t0);
        assert_eq!(
            d.step(2, GRACE, t0 + Duration::from_secs(5)),
            DrainStep::Continue
        );
        assert_eq!(
            d.step(0, GRACE, t0 + Duration::from_secs(6)),
            DrainStep::Stop
        );
    }

    #[test]
    fn after_the_grace_calls_are_hung_up_once_then_waited_for() {
        let t0 = Instant::now();
        let mut d = Drain::Serving;
        d.start(t0);
        // A second SIGTERM does not restart the grace period.
        d.start(t0 + Duration::from_secs(10));
        assert_eq!(d.step(1, GRACE, t0 + GRACE), DrainStep::HangUpAll);
        assert_eq!(
            d.step(1, GRACE, t0 + GRACE + Duration::from_secs(1)),
            DrainStep::Continue
        );
        assert_eq!(d.step(1, GRACE, t0 + GRACE + HANG_UP_WAIT), DrainStep::Stop);

        let mut d = Drain::Serving;
        d.start(t0);
        assert_eq!(d.step(1, GRACE, t0 + GRACE), DrainStep::HangUpAll);
        assert_eq!(
            d.step(0, GRACE, t0 + GRACE + Duration::from_secs(1)),
            DrainStep::Stop
        );
    }

    #[test]
    fn the_flag_is_shared() {
        let flag = DrainFlag::default();
        let other = flag.clone();
        assert!(!other.is_draining());
        flag.start();
        assert!(other.is_draining());
    }
}
