//! Forking (§13.2.2.4, §12.1.2): one or several INVITEs for the same call
//! (parallel ringing of agents, or one INVITE a proxy forks), any number of
//! early dialogs, one winner.
//!
//! The first 2xx wins: its dialog is confirmed and ACKed, and every other
//! INVITE still pending is CANCELled (§9.1: only after it had a
//! provisional; a CANCEL wanted earlier is sent when that provisional
//! arrives).  Any later 2xx from another dialog is ACKed and then ended
//! with a BYE (§13.2.2.4).  Retransmitted 2xx get the same ACK again.

use super::error::DialogError;
use super::ids::IdSource;
use super::message::{Method, SipMessage};
use super::model::{Dialog, DialogId, DialogState, LocalParty};
use super::uac::cancel_for;

/// What the driver must do after a response to one of the set's INVITEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkEvent {
    /// 100, or a 1xx without To tag: no dialog.
    Provisional { status: u16 },
    /// A 1xx with a To tag created (`created`) or updated an early dialog
    /// (relay 180/183 to the caller).
    Early {
        id: DialogId,
        status: u16,
        created: bool,
    },
    /// The first 2xx: dialog `id` is confirmed.  Send `ack` (end to end,
    /// not through a client transaction) and `cancels` (each through its
    /// own client transaction).  Copy the dialog out with
    /// `winner().cloned()`; keep the set until the INVITE transactions end
    /// so retransmitted and late 2xx are still answered.
    Answered {
        id: DialogId,
        ack: SipMessage,
        cancels: Vec<SipMessage>,
    },
    /// A 2xx from another dialog after the winner: send `ack`, then `bye`
    /// (§13.2.2.4).
    AckAndBye {
        id: DialogId,
        ack: SipMessage,
        bye: SipMessage,
    },
    /// A retransmitted 2xx: send this ACK again.
    ResendAck(SipMessage),
    /// The first provisional of an INVITE we want cancelled: send this.
    Cancel(SipMessage),
    /// A 300-699 final for one INVITE (its transaction ACKed it); that
    /// INVITE's early dialogs are terminated.  `all_failed`: every INVITE
    /// of the set has now failed and none was answered (ring out /
    /// overflow / no_answer).
    Failed {
        call_id: String,
        status: u16,
        all_failed: bool,
    },
    /// Not a response to this set, broken, or nothing to do.
    Ignored,
}

#[derive(Debug, Clone)]
struct Fork {
    invite: SipMessage,
    call_id: String,
    local_tag: String,
    seq: u32,
    provisional: bool,
    /// Any final response (2xx or not) has arrived.
    finished: bool,
    failed: bool,
    cancel_wanted: bool,
    cancel_sent: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    dialog: Dialog,
    /// Index of the fork it came from.
    fork: usize,
    /// An ACK was built (the 2xx arrived).
    acked: bool,
}

/// The dialogs of one call's outgoing INVITE(s).
#[derive(Debug, Clone)]
pub struct DialogSet {
    local: LocalParty,
    forks: Vec<Fork>,
    entries: Vec<Entry>,
    winner: Option<DialogId>,
}

impl DialogSet {
    pub fn new(local: LocalParty) -> DialogSet {
        DialogSet {
            local,
            forks: Vec::new(),
            entries: Vec::new(),
            winner: None,
        }
    }

    /// A set for one INVITE.
    pub fn with_invite(local: LocalParty, invite: SipMessage) -> Result<DialogSet, DialogError> {
        let mut s = DialogSet::new(local);
        s.add_invite(invite)?;
        Ok(s)
    }

    /// Adds an INVITE as sent (with its From tag) to the set.
    pub fn add_invite(&mut self, invite: SipMessage) -> Result<(), DialogError> {
        if invite.method() != Some(&Method::Invite) {
            return Err(DialogError::Mismatch("not an INVITE"));
        }
        let call_id = invite.call_id()?.to_owned();
        let local_tag = invite
            .from()?
            .tag()
            .ok_or(DialogError::Mismatch("the INVITE has no From tag"))?
            .to_owned();
        let seq = invite.cseq()?.seq;
        self.forks.push(Fork {
            invite,
            call_id,
            local_tag,
            seq,
            provisional: false,
            finished: false,
            failed: false,
            cancel_wanted: false,
            cancel_sent: false,
        });
        Ok(())
    }

    /// The INVITEs of the set, in the order added.
    pub fn invites(&self) -> impl Iterator<Item = &SipMessage> {
        self.forks.iter().map(|f| &f.invite)
    }

    /// Every dialog (early, confirmed or terminated) the set knows.
    pub fn dialogs(&self) -> impl Iterator<Item = &Dialog> {
        self.entries.iter().map(|e| &e.dialog)
    }

    pub fn dialog(&self, id: &DialogId) -> Option<&Dialog> {
        self.entries
            .iter()
            .find(|e| e.dialog.id() == id)
            .map(|e| &e.dialog)
    }

    /// The answered dialog.
    pub fn winner(&self) -> Option<&Dialog> {
        self.winner.as_ref().and_then(|id| self.dialog(id))
    }

    pub fn winner_mut(&mut self) -> Option<&mut Dialog> {
        let id = self.winner.as_ref()?;
        self.entries
            .iter_mut()
            .find(|e| e.dialog.id() == id)
            .map(|e| &mut e.dialog)
    }

    /// The INVITE the winner answered.
    pub fn winner_invite(&self) -> Option<&SipMessage> {
        let id = self.winner.as_ref()?;
        let e = self.entries.iter().find(|e| e.dialog.id() == id)?;
        self.forks.get(e.fork).map(|f| &f.invite)
    }

    /// True once every INVITE got a non-2xx final and none was answered.
    pub fn all_failed(&self) -> bool {
        self.winner.is_none() && !self.forks.is_empty() && self.forks.iter().all(|f| f.failed)
    }

    fn fork_of(&self, response: &SipMessage) -> Option<usize> {
        let cseq = response.cseq().ok()?;
        if cseq.method != Method::Invite {
            return None;
        }
        let call_id = response.call_id().ok()?;
        let from = response.from().ok()?;
        let tag = from.tag()?;
        self.forks
            .iter()
            .position(|f| f.seq == cseq.seq && f.call_id == call_id && f.local_tag == tag)
    }

    /// CANCELs for every INVITE without a final response except the
    /// winner's (all of them when there is no winner: the caller hung up
    /// or the ring timed out).  An INVITE with no provisional yet is
    /// marked; its CANCEL comes as `ForkEvent::Cancel` with its first
    /// provisional (§9.1).
    pub fn cancel_pending(&mut self) -> Vec<SipMessage> {
        let winner_fork = self
            .winner
            .as_ref()
            .and_then(|id| self.entries.iter().find(|e| e.dialog.id() == id))
            .map(|e| e.fork);
        let mut out = Vec::new();
        for (i, f) in self.forks.iter_mut().enumerate() {
            if Some(i) == winner_fork || f.finished || f.cancel_sent {
                continue;
            }
            f.cancel_wanted = true;
            if f.provisional
                && let Ok(c) = cancel_for(&f.invite)
            {
                f.cancel_sent = true;
                out.push(c);
            }
        }
        out
    }

    /// Feeds a response to one of the set's INVITEs.
    pub fn on_response(&mut self, response: &SipMessage, ids: &mut dyn IdSource) -> ForkEvent {
        let Some(status) = response.status() else {
            return ForkEvent::Ignored;
        };
        let Some(fi) = self.fork_of(response) else {
            return ForkEvent::Ignored;
        };
        match status {
            100..=199 => self.on_provisional(fi, status, response),
            200..=299 => self.on_2xx(fi, response, ids),
            _ => self.on_failure(fi, status),
        }
    }

    fn on_provisional(&mut self, fi: usize, status: u16, response: &SipMessage) -> ForkEvent {
        let Some(fork) = self.forks.get_mut(fi) else {
            return ForkEvent::Ignored;
        };
        fork.provisional = true;
        if fork.cancel_wanted && !fork.cancel_sent && !fork.finished {
            if let Ok(c) = cancel_for(&fork.invite) {
                fork.cancel_sent = true;
                return ForkEvent::Cancel(c);
            }
            return ForkEvent::Ignored;
        }
        if self.winner.is_some() || fork.finished {
            return ForkEvent::Ignored;
        }
        let Ok(id) = DialogId::of_response(response) else {
            return ForkEvent::Ignored;
        };
        if status == 100 || id.remote_tag.is_empty() {
            return ForkEvent::Provisional { status };
        }
        if let Some(e) = self.entries.iter_mut().find(|e| e.dialog.id() == &id) {
            return match e.dialog.on_response(response) {
                Ok(_) => ForkEvent::Early {
                    id,
                    status,
                    created: false,
                },
                Err(_) => ForkEvent::Ignored,
            };
        }
        match Dialog::uac(&fork.invite, response, self.local.clone()) {
            Ok(dialog) => {
                self.entries.push(Entry {
                    dialog,
                    fork: fi,
                    acked: false,
                });
                ForkEvent::Early {
                    id,
                    status,
                    created: true,
                }
            }
            Err(_) => ForkEvent::Ignored,
        }
    }

    fn on_2xx(&mut self, fi: usize, response: &SipMessage, ids: &mut dyn IdSource) -> ForkEvent {
        let Ok(id) = DialogId::of_response(response) else {
            return ForkEvent::Ignored;
        };
        if id.remote_tag.is_empty() {
            return ForkEvent::Ignored;
        }
        let Some(fork) = self.forks.get_mut(fi) else {
            return ForkEvent::Ignored;
        };
        fork.finished = true;
        let idx = match self.entries.iter().position(|e| e.dialog.id() == &id) {
            Some(i) => i,
            None => match Dialog::uac(&fork.invite, response, self.local.clone()) {
                Ok(dialog) => {
                    self.entries.push(Entry {
                        dialog,
                        fork: fi,
                        acked: false,
                    });
                    self.entries.len() - 1
                }
                Err(_) => return ForkEvent::Ignored,
            },
        };
        let Some(entry) = self.entries.get_mut(idx) else {
            return ForkEvent::Ignored;
        };
        let retransmission = entry.acked;
        let Ok(ack) = entry.dialog.ack_for_2xx(response, ids) else {
            return ForkEvent::Ignored;
        };
        entry.acked = true;
        if retransmission {
            return ForkEvent::ResendAck(ack);
        }
        match &self.winner {
            None => {
                self.winner = Some(id.clone());
                let cancels = self.cancel_pending();
                ForkEvent::Answered { id, ack, cancels }
            }
            Some(_) => match entry.dialog.request(Method::Bye, ids) {
                Ok(bye) => ForkEvent::AckAndBye { id, ack, bye },
                // Not expected: a just-confirmed dialog accepts BYE.
                Err(_) => ForkEvent::ResendAck(ack),
            },
        }
    }

    fn on_failure(&mut self, fi: usize, status: u16) -> ForkEvent {
        let Some(fork) = self.forks.get_mut(fi) else {
            return ForkEvent::Ignored;
        };
        if fork.finished {
            return ForkEvent::Ignored;
        }
        fork.finished = true;
        fork.failed = true;
        let call_id = fork.call_id.clone();
        for e in self.entries.iter_mut().filter(|e| e.fork == fi) {
            if e.dialog.state() == DialogState::Early {
                e.dialog.terminate();
            }
        }
        ForkEvent::Failed {
            call_id,
            status,
            all_failed: self.all_failed(),
        }
    }
}
