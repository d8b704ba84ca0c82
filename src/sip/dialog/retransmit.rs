//! TEMPORARY (the layers branch brings the real one): RFC 3261 §13.3.1.4.

use std::time::{Duration, Instant};

use crate::sip::message::SipMessage;

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

pub struct Retransmit2xx {
    response: SipMessage,
    reliable: bool,
    seq: u32,
    next: Option<Instant>,
    interval: Duration,
    give_up: Instant,
    done: bool,
}

pub enum RetransmitStep {
    Wait,
    Resend(SipMessage),
    GaveUp,
}

impl Retransmit2xx {
    pub fn new(response: SipMessage, reliable: bool, now: Instant) -> Retransmit2xx {
        let seq = response.cseq().map(|c| c.seq).unwrap_or(0);
        Retransmit2xx {
            response,
            reliable,
            seq,
            next: Some(now + T1),
            interval: T1,
            give_up: now + 64 * T1,
            done: false,
        }
    }
    pub fn cseq(&self) -> u32 {
        self.seq
    }
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        if self.reliable {
            return Some(self.give_up);
        }
        self.next.map(|n| n.min(self.give_up))
    }
    pub fn on_tick(&mut self, now: Instant) -> RetransmitStep {
        if self.done {
            return RetransmitStep::Wait;
        }
        if now >= self.give_up {
            self.done = true;
            return RetransmitStep::GaveUp;
        }
        if !self.reliable && self.next.is_some_and(|n| n <= now) {
            self.interval = (self.interval * 2).min(T2);
            self.next = Some(now + self.interval);
            return RetransmitStep::Resend(self.response.clone());
        }
        RetransmitStep::Wait
    }
    pub fn on_ack(&mut self, ack_cseq: u32) -> bool {
        if ack_cseq == self.seq {
            self.done = true;
            return true;
        }
        false
    }
    pub fn is_done(&self) -> bool {
        self.done
    }
}
