//! The answer: the winning fork becomes the agent leg, the caller gets its
//! 200 OK (the agent's SDP rewritten to the bridge's caller-side port) and
//! the media relay starts. The relay anchors media from the first fork on:
//! the offer to agents names the bridge's agent-side port, so a transfer's
//! answer changes only the agent side and the recording goes on in one
//! file.

use super::{ALLOW, AgentLeg, Call, MediaOp, Output, Unacked, audio_of};
use crate::calls::X_PROTOCOL;
use crate::domain::{AttendanceChange, Id, Timestamp};
use crate::media::relay::Side;
use crate::sip::dialog::{Dialog, Retransmit2xx};
use crate::sip::message::{Method, SipMessage};
use crate::sip::transaction::{TransactionKey, Transport};

impl Call {
    /// The fork `idx` answered and is wanted: bridge it.
    pub(super) fn connect(&mut self, idx: usize) {
        let (dialog, answer, agent) = match self.forks.get(idx) {
            Some(f) => (f.set.winner().cloned(), f.answer.clone(), f.agent),
            None => return,
        };
        let (Some(mut dialog), Some(answer)) = (dialog, answer) else {
            tracing::warn!(protocol = %self.protocol, "the answer has no dialog or no SDP; hung up");
            self.bye_fork(idx);
            self.fail("agent answered without SDP");
            return;
        };
        let Some(audio) = audio_of(&answer) else {
            self.bye_fork(idx);
            self.fail("agent's SDP has no usable audio");
            return;
        };
        dialog.set_request_header(Method::Invite, X_PROTOCOL, &self.protocol);
        self.agent = Some(AgentLeg { fork: idx, dialog });
        if agent.is_some() {
            self.agent_id = agent;
        }
        self.direct = None;
        if let Some(ob) = self.outbound.as_mut() {
            ob.answered();
        }
        let at = self.wall();
        if self.media_started {
            // A transfer's answer: the caller is talking already.
            self.out(Output::Media(MediaOp::Update {
                side: Side::Agent,
                audio,
            }));
            self.record(AttendanceChange::Assigned {
                department_id: None,
                agent_id: agent,
                at,
            });
            tracing::info!(protocol = %self.protocol, agent = ?agent, "transfer answered");
            self.publish();
            return;
        }
        if self.received().is_none() {
            // Click-to-call: the extension answered our INVITE already; its
            // leg needs no 200, only the media.
            self.start_media(audio, at, agent);
            return;
        }
        let Some(body) = self.rewrite_for(Side::Caller, &answer) else {
            self.fail("agent's SDP cannot be rewritten");
            return;
        };
        let ok = self.caller_dialog_response(200).and_then(|b| {
            b.header("Allow", ALLOW)
                .body("application/sdp", body)
                .build()
                .ok()
        });
        let Some(ok) = ok else {
            self.fail("cannot build the 200 OK");
            return;
        };
        let Some((invite, key)) = self.received().map(|r| (r.invite.clone(), r.key.clone())) else {
            return;
        };
        match Dialog::uas(&invite, &ok, self.caller.local.clone()) {
            Ok(mut d) => {
                d.set_request_header(Method::Invite, X_PROTOCOL, &self.protocol);
                self.caller.dialog = Some(d);
            }
            Err(e) => {
                self.fail(&format!("caller dialog: {e}"));
                return;
            }
        }
        self.caller.final_sent = true;
        self.out(Output::Media(MediaOp::Start {
            caller: audio_of(&self.caller.sdp),
            agent: audio,
            record: self.records(),
        }));
        self.media_started = true;
        self.answer_2xx(Side::Caller, &key, ok);
        if let Some(since) = self.answer_received.take() {
            self.out(Output::SetupMark {
                stage: "answer_to_caller",
                since,
            });
        }
        self.mark_answered(at, agent);
    }

    /// Click-to-call: both legs answered, the relay starts between them.
    fn start_media(
        &mut self,
        audio: crate::media::sdp::AudioMedia,
        at: Timestamp,
        agent: Option<Id>,
    ) {
        self.out(Output::Media(MediaOp::Start {
            caller: audio_of(&self.caller.sdp),
            agent: audio,
            record: self.records(),
        }));
        self.media_started = true;
        self.mark_answered(at, agent);
    }

    fn mark_answered(&mut self, at: Timestamp, agent: Option<Id>) {
        self.answered_at = Some(at);
        tracing::info!(protocol = %self.protocol, agent = ?agent, "call answered");
        self.publish();
        self.record(AttendanceChange::Answered {
            agent_id: agent,
            at,
        });
        if self.continued && agent.is_some() {
            // `Answered` only moves a ringing attendance (first answer
            // wins, `answered_at` kept); a redirected one was answered
            // before, and its agent is the one who answered here.
            self.record(AttendanceChange::Assigned {
                department_id: None,
                agent_id: agent,
                at,
            });
        }
    }

    /// Sends a 2xx to an INVITE and keeps resending it until the ACK
    /// (RFC 3261 §13.3.1.4).
    pub(super) fn answer_2xx(&mut self, side: Side, key: &TransactionKey, response: SipMessage) {
        let Some(route) = self.leg_route(side) else {
            return;
        };
        self.respond(key, response.clone(), route);
        self.unacked.push(Unacked {
            side,
            key: key.clone(),
            retransmit: Retransmit2xx::new(response, route.1 != Transport::Udp, self.now),
        });
    }
}
