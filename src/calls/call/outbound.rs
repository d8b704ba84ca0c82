//! Outbound: a call to a number beyond the bridge, the one path for an
//! extension dialling out, follow-me and after-hours forwarding
//! ([`super::forward`]). The outbound route (chosen at admission, or when
//! the call is forwarded) names trunks in order: each is tried in turn,
//! failing over on 408, 5xx, no response, or no provisional answer within
//! [`TRUNK_SETUP`]; once the far end rings, it rings until
//! [`OUTBOUND_RING`]. Busy or declined ends the call (the callee said no);
//! `max_channels` of a trunk in use skips it. The dialled trunk's channel
//! is held apart from the one a carrier's call came in on: a customer
//! forwarded back out holds one of each.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Call, ring::ForkRefused};
use crate::calls::fork::{Fork, ForkRequest, ForkState};
use crate::domain::{CloseReason, Id, Trunk};
use crate::routing::OutboundDial;
use crate::sip::auth::{Challenge, answer_challenge};
use crate::sip::message::{NameAddr, SipMessage, Uri};
use crate::sip::transaction::Transport;

/// A trunk that has not answered 1xx by then is given up for the next.
const TRUNK_SETUP: Duration = Duration::from_secs(10);
/// How long the far end may ring.
const OUTBOUND_RING: Duration = Duration::from_secs(120);

/// Where an outbound call stands.
pub(super) struct Outbound {
    dial: OutboundDial,
    /// The next trunk to try (index into `dial.trunk_ids`).
    next: usize,
    /// The fork to the trunk tried now, and when it is given up.
    fork: Option<usize>,
    deadline: Option<Instant>,
    /// The trunk tried now challenged once already (a second challenge
    /// means our credentials are wrong).
    challenged: bool,
    /// The trunk whose channel (`max_channels`) the call holds now.
    channel: Option<Id>,
}

impl Outbound {
    pub fn new(dial: OutboundDial) -> Outbound {
        Outbound {
            dial,
            next: 0,
            fork: None,
            deadline: None,
            challenged: false,
            channel: None,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The far end answered: no more deadline.
    pub fn answered(&mut self) {
        self.deadline = None;
    }
}

impl Call {
    pub(super) fn is_outbound_fork(&self, idx: usize) -> bool {
        self.outbound.as_ref().is_some_and(|o| o.fork == Some(idx))
    }

    /// Dials `dial`'s trunks, from the first (a call placed again, e.g. a
    /// transfer, starts over).
    pub(super) fn start_outbound(&mut self, dial: OutboundDial) {
        self.release_outbound_channel();
        self.outbound = Some(Outbound::new(dial));
        self.dial_next_trunk();
    }

    /// Tries the next trunk of the route; when none is left, the call
    /// fails (503 to the caller).
    pub(super) fn dial_next_trunk(&mut self) {
        let plan = self.env.plan();
        loop {
            let Some(ob) = self.outbound.as_mut() else {
                return;
            };
            ob.fork = None;
            ob.deadline = None;
            ob.challenged = false;
            let Some(&id) = ob.dial.trunk_ids.get(ob.next) else {
                tracing::warn!(protocol = %self.protocol, route = %ob.dial.route, "no trunk of the route took the call");
                self.end_unanswered(CloseReason::Failed, 503);
                return;
            };
            ob.next += 1;
            let number = ob.dial.number.clone();
            self.release_outbound_channel();
            let (Some(trunk), Some(addr)) = (plan.trunk(id), plan.trunk_addr(id)) else {
                tracing::warn!(protocol = %self.protocol, trunk = id, "trunk gone or its host does not resolve; next");
                continue;
            };
            if let Some(max) = trunk.max_channels {
                if !self.env.take_trunk_channel(id, max) {
                    tracing::warn!(protocol = %self.protocol, trunk = %trunk.name, max, "trunk at max_channels; next");
                    continue;
                }
                if let Some(ob) = self.outbound.as_mut() {
                    ob.channel = Some(id);
                }
            }
            match self.start_trunk_fork(trunk, addr, &number) {
                Ok(idx) => {
                    tracing::info!(protocol = %self.protocol, trunk = %trunk.name, %number, "dialling out");
                    if let Some(ob) = self.outbound.as_mut() {
                        ob.fork = Some(idx);
                        ob.deadline = Some(self.now + TRUNK_SETUP);
                    }
                    self.publish();
                    return;
                }
                Err(e) => {
                    tracing::warn!(protocol = %self.protocol, trunk = %trunk.name, error = %e, "cannot dial the trunk; next");
                }
            }
        }
    }

    fn start_trunk_fork(
        &mut self,
        trunk: &Trunk,
        addr: SocketAddr,
        number: &str,
    ) -> Result<usize, ForkRefused> {
        let fail = |e: &dyn std::fmt::Display| ForkRefused::Failed(e.to_string());
        let transport = match trunk.transport {
            crate::domain::Transport::Tcp => Transport::Tcp,
            _ => Transport::Udp,
        };
        let suffix = if transport == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        let target: Uri = format!("sip:{number}@{addr}{suffix}")
            .parse()
            .map_err(|e: crate::sip::message::UriError| fail(&e))?;
        let to =
            NameAddr::parse(&format!("<sip:{number}@{}>", trunk.host)).map_err(|e| fail(&e))?;
        let local = self.env.local(transport);
        // Caller ID as the trunk is configured: its account, else the
        // calling extension's number; the extension's name as display.
        let user = trunk
            .username
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| self.caller_number.clone());
        let display = self
            .env
            .plan()
            .extension(&self.caller_number)
            .map(|e| e.display_name.replace('"', ""))
            .filter(|d| !d.is_empty());
        let from = NameAddr::parse(&match display {
            Some(d) => format!("\"{d}\" <sip:{user}@{}>", local.host),
            None => format!("<sip:{user}@{}>", local.host),
        })
        .map_err(|e| fail(&e))?;
        let offer = self.offer_to_agent_side()?;
        let (mut fork, invite) = Fork::build(
            ForkRequest {
                agent: None,
                extension: number,
                route: (target, addr, transport),
                to,
                caller: &from,
                protocol: &self.protocol,
                sdp: offer,
                local: &local,
                call_id: None,
            },
            self.ids.as_mut(),
        )
        .map_err(|e| fail(&e))?;
        fork.trunk = Some(trunk.id);
        self.launch_fork(fork, invite, None)
    }

    /// The carrier challenged the INVITE (401/407): once per trunk, the
    /// same INVITE again (same Call-ID and From tag, next CSeq, new branch)
    /// with the trunk's credentials (RFC 3261 §22.2). False when it cannot
    /// be answered (no credentials, a second challenge): the fork failed.
    pub(super) fn outbound_challenged(&mut self, idx: usize, response: &SipMessage) -> bool {
        let status = response.status().unwrap_or(0);
        let (challenge_header, answer_header) = match status {
            407 => ("Proxy-Authenticate", "Proxy-Authorization"),
            _ => ("WWW-Authenticate", "Authorization"),
        };
        let Some(ob) = self.outbound.as_mut() else {
            return false;
        };
        if ob.challenged {
            tracing::warn!(protocol = %self.protocol, status, "the carrier refused the trunk's credentials");
            return false;
        }
        let plan = self.env.plan();
        let Some(trunk) = self.forks[idx].trunk.and_then(|id| plan.trunk(id)) else {
            return false;
        };
        let (Some(user), Some(secret)) = (
            trunk.username.as_deref().filter(|u| !u.is_empty()),
            plan.trunk_secret(trunk.id),
        ) else {
            tracing::warn!(protocol = %self.protocol, trunk = %trunk.name, "the carrier asks for credentials the trunk does not have");
            return false;
        };
        let Some(challenge) = response
            .headers(challenge_header)
            .find_map(|v| Challenge::parse(&String::from_utf8_lossy(v)).ok())
        else {
            return false;
        };
        let Some(mut invite) = self.forks[idx].set.invites().last().cloned() else {
            return false;
        };
        let uri =
            String::from_utf8_lossy(invite.request_uri_raw().unwrap_or_default()).into_owned();
        let cnonce = self.ids.next_token();
        let Ok(credentials) =
            answer_challenge(&challenge, "INVITE", &uri, user, secret, &cnonce, 1)
        else {
            return false;
        };
        let seq = invite.cseq().map(|c| c.seq + 1).unwrap_or(2);
        let via = self
            .env
            .local(self.forks[idx].transport)
            .via(&self.ids.branch());
        invite.remove_top_via();
        invite.remove_header(answer_header);
        let rebuilt = invite
            .prepend_via(&via)
            .and_then(|()| invite.set_header("CSeq", &format!("{seq} INVITE")))
            .and_then(|()| invite.push_header(answer_header, &credentials.to_string()));
        let Some(key) = rebuilt
            .ok()
            .and_then(|()| crate::sip::transaction::TransactionKey::client(&invite).ok())
        else {
            return false;
        };
        let fork = &mut self.forks[idx];
        if fork.set.add_invite(invite.clone()).is_err() {
            return false;
        }
        fork.key = key;
        fork.invite_seq = seq;
        fork.state = ForkState::Calling;
        let (destination, transport) = (fork.destination, fork.transport);
        if let Some(ob) = self.outbound.as_mut() {
            ob.challenged = true;
            ob.deadline = Some(self.now + TRUNK_SETUP);
        }
        tracing::info!(protocol = %self.protocol, trunk = %trunk.name, status, "answering the carrier's challenge");
        self.send_request(invite, destination, transport);
        true
    }

    /// The far end rings: it may ring until [`OUTBOUND_RING`].
    pub(super) fn outbound_ringing(&mut self) {
        let now = self.now;
        if let Some(ob) = self.outbound.as_mut() {
            ob.deadline = Some(now + OUTBOUND_RING);
        }
    }

    /// The trunk's fork failed with `status`: fail over, or end.
    pub(super) fn outbound_failed(&mut self, status: u16) {
        match status {
            486 | 600 => self.end_unanswered(CloseReason::Rejected, 486),
            603 => self.end_unanswered(CloseReason::Rejected, 603),
            404 | 484 | 604 => {
                tracing::info!(protocol = %self.protocol, status, "the carrier does not know the number");
                self.end_unanswered(CloseReason::Failed, 404);
            }
            480 | 487 => self.end_unanswered(CloseReason::NoAnswer, 480),
            _ => {
                tracing::info!(protocol = %self.protocol, status, "trunk failed; trying the next");
                self.dial_next_trunk();
            }
        }
    }

    /// The outbound deadline passed: a trunk that never answered 1xx is
    /// given up for the next; a far end ringing this long did not answer.
    pub(super) fn outbound_timed_out(&mut self) {
        let Some(idx) = self.outbound.as_ref().and_then(|o| o.fork) else {
            return;
        };
        let ringing = self
            .forks
            .get(idx)
            .is_some_and(|f| f.state == ForkState::Ringing);
        self.cancel_fork(idx);
        if ringing {
            tracing::info!(protocol = %self.protocol, "the far end did not answer");
            self.end_unanswered(CloseReason::NoAnswer, 480);
        } else {
            tracing::info!(protocol = %self.protocol, "trunk did not answer in time; trying the next");
            self.dial_next_trunk();
        }
    }

    /// Gives back the channel of the trunk a carrier's call came in on
    /// (held for the whole call).
    pub(super) fn release_trunk_channel(&mut self) {
        if let Some(trunk) = self.trunk_channel.take() {
            self.env.release_trunk_channel(trunk);
        }
    }

    /// Gives back the channel of the trunk dialled now.
    pub(super) fn release_outbound_channel(&mut self) {
        if let Some(trunk) = self.outbound.as_mut().and_then(|o| o.channel.take()) {
            self.env.release_trunk_channel(trunk);
        }
    }
}
