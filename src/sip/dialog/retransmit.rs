//! Retransmission of a 2xx to an INVITE by the UAS core (RFC 3261
//! §13.3.1.4), sans-IO.
//!
//! The INVITE server transaction is gone (or, with RFC 6026, absorbs
//! nothing) once a 2xx is sent: the UAS core itself resends the 2xx until
//! the ACK arrives, at T1, 2T1, 4T1... capped at T2, and gives up after
//! 64*T1 (the dialog is confirmed, but the session SHOULD be terminated).
//! A reliable transport carries the 2xx once, but the wait for the ACK is
//! the same.
//!
//! ```text
//! sent 2xx     -> Retransmit2xx::new(response, reliable, now)
//! timer        -> on_tick(now) at next_deadline(): Resend(2xx) | GaveUp | Wait
//! ACK received -> on_ack(cseq)
//! ```

use std::time::{Duration, Instant};

use super::message::SipMessage;
use super::transaction::TimerConfig;

/// What the driver does after `Retransmit2xx::on_tick`.
#[derive(Debug, Clone, PartialEq)]
pub enum RetransmitStep {
    /// Nothing now; tick again at `next_deadline`.
    Wait,
    /// Send this 2xx again.
    Resend(SipMessage),
    /// No ACK within 64*T1: stop (and end the session). Reported once.
    GaveUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the ACK; `next` resend (`None` on a reliable transport).
    Running {
        next: Option<Instant>,
        interval: Duration,
    },
    Acked,
    GaveUp,
}

/// One 2xx to an INVITE waiting for its ACK.
#[derive(Debug, Clone)]
pub struct Retransmit2xx {
    response: SipMessage,
    cseq: u32,
    give_up: Instant,
    t2: Duration,
    state: State,
}

impl Retransmit2xx {
    /// `response` (a 2xx to an INVITE) was just sent. Over an unreliable
    /// transport it is resent at T1, 2T1, .. capped at T2; over a reliable
    /// one it is not resent, but in both cases it gives up after 64*T1
    /// without an ACK.
    pub fn new(response: SipMessage, reliable: bool, now: Instant) -> Retransmit2xx {
        Retransmit2xx::with_timers(response, reliable, now, TimerConfig::default())
    }

    /// Like `new`, with other T1/T2 values.
    pub fn with_timers(
        response: SipMessage,
        reliable: bool,
        now: Instant,
        timers: TimerConfig,
    ) -> Retransmit2xx {
        let cseq = response.cseq().map(|c| c.seq).unwrap_or(0);
        Retransmit2xx {
            response,
            cseq,
            give_up: now + timers.t1x64(),
            t2: timers.t2,
            state: State::Running {
                next: (!reliable).then(|| now + timers.t1),
                interval: timers.t1,
            },
        }
    }

    /// The CSeq number of the INVITE the 2xx answers (its ACK carries it).
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// The 2xx being retransmitted.
    pub fn response(&self) -> &SipMessage {
        &self.response
    }

    /// When to call `on_tick`; `None` once acked or given up.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Running { next, .. } => Some(next.map_or(self.give_up, |n| n.min(self.give_up))),
            State::Acked | State::GaveUp => None,
        }
    }

    pub fn on_tick(&mut self, now: Instant) -> RetransmitStep {
        let State::Running { next, interval } = self.state else {
            return RetransmitStep::Wait;
        };
        if now >= self.give_up {
            self.state = State::GaveUp;
            return RetransmitStep::GaveUp;
        }
        match next {
            Some(at) if now >= at => {
                let interval = (interval * 2).min(self.t2);
                self.state = State::Running {
                    next: Some(now + interval),
                    interval,
                };
                RetransmitStep::Resend(self.response.clone())
            }
            _ => RetransmitStep::Wait,
        }
    }

    /// The ACK acknowledges this 2xx (same CSeq number): retransmission
    /// stops. Returns whether it matched (a late ACK after giving up
    /// matches too, and changes nothing).
    pub fn on_ack(&mut self, ack_cseq: u32) -> bool {
        if ack_cseq != self.cseq {
            return false;
        }
        if matches!(self.state, State::Running { .. }) {
            self.state = State::Acked;
        }
        true
    }

    /// Acked or given up: nothing more to do.
    pub fn is_done(&self) -> bool {
        !matches!(self.state, State::Running { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse;

    fn ok(seq: u32) -> SipMessage {
        let text = format!(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n\
             From: <sip:a@example.com>;tag=a\r\n\
             To: <sip:b@example.com>;tag=b\r\n\
             Call-ID: c1@example.com\r\n\
             CSeq: {seq} INVITE\r\n\
             Contact: <sip:b@192.0.2.2>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        parse(bytes::Bytes::from(text)).unwrap()
    }

    /// Ticks at every deadline until done; the offsets (from `start`) of
    /// the resends and of giving up.
    fn run(r: &mut Retransmit2xx, start: Instant) -> (Vec<Duration>, Option<Duration>) {
        let mut resends = Vec::new();
        let mut gave_up = None;
        while let Some(at) = r.next_deadline() {
            match r.on_tick(at) {
                RetransmitStep::Resend(m) => {
                    assert_eq!(m.cseq().unwrap().seq, r.cseq());
                    resends.push(at - start);
                }
                RetransmitStep::GaveUp => gave_up = Some(at - start),
                RetransmitStep::Wait => panic!("ticked at its deadline, nothing to do"),
            }
        }
        (resends, gave_up)
    }

    #[test]
    fn unreliable_doubles_to_t2_and_gives_up_at_64_t1() {
        let start = Instant::now();
        let mut r = Retransmit2xx::new(ok(7), false, start);
        assert_eq!(r.cseq(), 7);
        assert_eq!(r.next_deadline(), Some(start + Duration::from_millis(500)));
        let (resends, gave_up) = run(&mut r, start);
        let gaps: Vec<f64> = std::iter::once(Duration::ZERO)
            .chain(resends.iter().copied())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        assert_eq!(gaps, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]);
        assert_eq!(resends.last(), Some(&Duration::from_millis(31_500)));
        assert_eq!(gave_up, Some(Duration::from_secs(32)));
        assert!(r.is_done());
        assert_eq!(r.next_deadline(), None);
        // Reported once.
        assert_eq!(
            r.on_tick(start + Duration::from_secs(40)),
            RetransmitStep::Wait
        );
    }

    #[test]
    fn reliable_sends_nothing_and_still_gives_up() {
        let start = Instant::now();
        let mut r = Retransmit2xx::new(ok(1), true, start);
        assert_eq!(r.next_deadline(), Some(start + Duration::from_secs(32)));
        assert_eq!(
            r.on_tick(start + Duration::from_secs(5)),
            RetransmitStep::Wait
        );
        let (resends, gave_up) = run(&mut r, start);
        assert!(resends.is_empty());
        assert_eq!(gave_up, Some(Duration::from_secs(32)));
    }

    #[test]
    fn early_tick_waits() {
        let start = Instant::now();
        let mut r = Retransmit2xx::new(ok(1), false, start);
        assert_eq!(
            r.on_tick(start + Duration::from_millis(499)),
            RetransmitStep::Wait
        );
        assert!(matches!(
            r.on_tick(start + Duration::from_millis(500)),
            RetransmitStep::Resend(_)
        ));
        assert_eq!(r.next_deadline(), Some(start + Duration::from_millis(1500)));
    }

    #[test]
    fn a_late_tick_gives_up_rather_than_resending() {
        let start = Instant::now();
        let mut r = Retransmit2xx::new(ok(1), false, start);
        assert_eq!(
            r.on_tick(start + Duration::from_secs(33)),
            RetransmitStep::GaveUp
        );
        assert!(r.is_done());
    }

    #[test]
    fn ack_stops_it() {
        let start = Instant::now();
        let mut r = Retransmit2xx::new(ok(3), false, start);
        assert!(matches!(
            r.on_tick(start + Duration::from_millis(500)),
            RetransmitStep::Resend(_)
        ));
        // Another INVITE's ACK does not.
        assert!(!r.on_ack(2));
        assert!(!r.is_done());
        assert!(r.on_ack(3));
        assert!(r.is_done());
        assert_eq!(r.next_deadline(), None);
        assert_eq!(
            r.on_tick(start + Duration::from_secs(32)),
            RetransmitStep::Wait
        );
        // The ACK's own retransmission is harmless.
        assert!(r.on_ack(3));
        assert!(r.is_done());
    }

    #[test]
    fn a_late_ack_after_giving_up_is_harmless() {
        let start = Instant::now();
        let mut r = Retransmit2xx::new(ok(4), true, start);
        assert_eq!(
            r.on_tick(start + Duration::from_secs(32)),
            RetransmitStep::GaveUp
        );
        assert!(r.on_ack(4));
        assert!(r.is_done());
        assert_eq!(r.next_deadline(), None);
        assert_eq!(
            r.on_tick(start + Duration::from_secs(60)),
            RetransmitStep::Wait
        );
    }
}
