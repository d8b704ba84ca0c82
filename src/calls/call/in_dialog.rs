//! What arrives on the call's legs while it lives: requests of the
//! connected dialogs (BYE ends both legs; re-INVITE, UPDATE and INFO are
//! relayed to the other leg with the SDP rewritten; REFER is a transfer),
//! their responses, ACKs for our 2xx, and time (ring deadlines, 2xx
//! retransmission).

use bytes::Bytes;

use super::{Call, Ending, MediaOp, Output, Relayed, audio_of, is_sdp};
use crate::calls::signal::CallInput;
use crate::calls::trace::TraceDirection;
use crate::media::relay::Side;
use crate::sip::dialog::{Dialog, RequestDecision, RetransmitStep};
use crate::sip::message::{Method, SipMessage, response_to};
use crate::sip::transaction::TransactionKey;

impl Call {
    pub(super) fn on_sip(&mut self, input: CallInput) {
        match input {
            CallInput::Request {
                key,
                request,
                source,
                transport,
            } => {
                self.trace(TraceDirection::In, (source, transport), request.to_bytes());
                let call_id = request.call_id().unwrap_or_default().to_owned();
                match self.side_of(&call_id) {
                    Some(side) => self.on_leg_request(side, key, request),
                    None => {
                        // A fork no longer wanted (hung up after a late
                        // answer, or transferred away) saying goodbye.
                        let status = if request.method() == Some(&Method::Bye) {
                            200
                        } else {
                            481
                        };
                        if let Ok(r) = response_to(&request, status, None).and_then(|b| b.build()) {
                            self.respond(&key, r, (source, transport));
                        }
                    }
                }
            }
            CallInput::Cancelled => self.on_cancel(),
            CallInput::Ack { request } => self.on_ack(&request),
            CallInput::Response { response } => {
                self.trace_response(&response);
                self.on_response(response);
            }
            CallInput::TransactionFailed { key } => {
                if self.is_origin_transaction(&key) {
                    self.on_origin_transaction_failed();
                } else if let Some(idx) = self.forks.iter().position(|f| f.key == key) {
                    self.on_fork_transaction_failed(idx);
                }
            }
        }
    }

    fn on_ack(&mut self, request: &SipMessage) {
        let call_id = request.call_id().unwrap_or_default().to_owned();
        let seq = request.cseq().map(|c| c.seq).unwrap_or(0);
        if let Some(side) = self.side_of(&call_id) {
            if let Some(route) = self.leg_route(side) {
                self.trace(TraceDirection::In, route, request.to_bytes());
            }
            self.unacked
                .retain_mut(|u| !(u.side == side && u.retransmit.on_ack(seq)));
        }
    }

    fn on_cancel(&mut self) {
        if self.caller.final_sent {
            return;
        }
        tracing::info!(protocol = %self.protocol, "caller cancelled while ringing");
        self.refuse_caller(487);
        if let Some(ring) = self.ring.as_mut() {
            ring.caller_hung_up(self.now);
            self.drive_ring();
        }
        self.end_unanswered(crate::domain::CloseReason::Abandoned, 487);
    }

    fn on_response(&mut self, response: SipMessage) {
        let (Ok(call_id), Ok(cseq)) = (response.call_id(), response.cseq()) else {
            return;
        };
        let call_id = call_id.to_owned();
        if cseq.method == Method::Invite && self.is_origin_invite(&call_id, cseq.seq) {
            self.on_origin_response(response);
            return;
        }
        if let Some(idx) = self.forks.iter().position(|f| f.call_id == call_id)
            && cseq.method == Method::Invite
            && cseq.seq == self.forks[idx].invite_seq
        {
            self.on_fork_response(idx, response);
            return;
        }
        if let Some(side) = self.side_of(&call_id) {
            self.on_leg_response(side, response);
        }
    }

    /// Answers an in-dialog request of `side`.
    pub(super) fn answer_in_dialog(
        &mut self,
        side: Side,
        key: &TransactionKey,
        request: &SipMessage,
        status: u16,
        body: Option<(String, Bytes)>,
    ) {
        let Some(route) = self.leg_route(side) else {
            return;
        };
        let Some(dialog) = self.dialog_mut(side) else {
            return;
        };
        let local_tag = dialog.id().local_tag.clone();
        let contact = dialog.local_party().contact.clone();
        let built = Dialog::dialog_response(request, status, &local_tag, &contact)
            .ok()
            .and_then(|mut b| {
                if let Some((ct, body)) = body {
                    b = b.body(&ct, body);
                }
                b.build().ok()
            });
        let Some(response) = built else { return };
        let _ = dialog.on_sent_response(&response);
        let is_invite_2xx =
            request.method() == Some(&Method::Invite) && (200..300).contains(&status);
        if is_invite_2xx {
            self.answer_2xx(side, key, response);
        } else {
            self.respond(key, response, route);
        }
    }

    fn on_leg_request(&mut self, side: Side, key: TransactionKey, request: SipMessage) {
        let route = self.leg_route(side);
        let Some(dialog) = self.dialog_mut(side) else {
            if let (Ok(r), Some(route)) = (
                response_to(&request, 481, None).and_then(|b| b.build()),
                route,
            ) {
                self.respond(&key, r, route);
            }
            return;
        };
        match dialog.on_request(&request) {
            RequestDecision::Reject(rejection) => {
                if let (Ok(r), Some(route)) = (rejection.response(&request), route) {
                    self.respond(&key, r, route);
                }
            }
            RequestDecision::Drop | RequestDecision::Ack => {}
            RequestDecision::Accept { .. } => match request.method() {
                Some(Method::Bye) => {
                    self.answer_in_dialog(side, &key, &request, 200, None);
                    tracing::info!(protocol = %self.protocol, ?side, "hung up");
                    if side == Side::Caller && self.answered_at.is_none() {
                        // Click-to-call: the extension gave up before the
                        // target answered.
                        self.hang_up(Ending::Unanswered(crate::domain::CloseReason::Abandoned));
                    } else {
                        self.hang_up(Ending::Hangup(side));
                    }
                }
                Some(Method::Options) => self.answer_in_dialog(side, &key, &request, 200, None),
                Some(Method::Refer) if side == Side::Agent => self.on_refer(key, request),
                _ => self.relay_request(side, key, request),
            },
        }
    }

    /// Passes an in-dialog request to the other leg (re-INVITE for hold,
    /// INFO for DTMF, UPDATE...), SDP rewritten to the bridge's ports.
    fn relay_request(&mut self, from: Side, key: TransactionKey, request: SipMessage) {
        let to = from.other();
        let Some(method) = request.method().cloned() else {
            return;
        };
        let body = if request.body().is_empty() {
            None
        } else if is_sdp(&request) {
            self.rewrite_for(to, request.body())
                .map(|b| ("application/sdp".to_owned(), Bytes::from(b)))
        } else {
            Some((
                request
                    .content_type()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                request.body().clone(),
            ))
        };
        let Some(route) = self.leg_route(to) else {
            // No other leg now (a transfer is ringing): ask to retry.
            self.answer_in_dialog(from, &key, &request, 491, None);
            return;
        };
        let branch = self.ids.branch();
        let Some(dialog) = self.dialog_mut(to) else {
            self.answer_in_dialog(from, &key, &request, 491, None);
            return;
        };
        let built = dialog
            .request_builder(method.clone(), &branch)
            .ok()
            .and_then(|mut b| {
                for name in ["Event", "Subscription-State", "Info-Package"] {
                    if let Some(v) = request.header(name) {
                        b = b.header(name, String::from_utf8_lossy(v));
                    }
                }
                if let Some((ct, body)) = body {
                    b = b.body(&ct, body);
                }
                b.build().ok()
            });
        let Some(out) = built else {
            self.answer_in_dialog(from, &key, &request, 491, None);
            return;
        };
        if method == Method::Invite && is_sdp(&request) {
            if from == Side::Caller {
                self.caller.sdp = request.body().clone();
            }
            if let Some(audio) = audio_of(request.body())
                && self.media_started
            {
                self.out(Output::Media(MediaOp::Update { side: from, audio }));
            }
        }
        let seq = out.cseq().map(|c| c.seq).unwrap_or(0);
        self.send_request(out, route.0, route.1);
        self.relayed.push(Relayed {
            to,
            seq,
            from_key: key,
            from_request: request,
        });
    }

    fn on_leg_response(&mut self, side: Side, response: SipMessage) {
        let Ok(cseq) = response.cseq() else { return };
        let status = response.status().unwrap_or(0);
        let route = self.leg_route(side);
        let mut ack = None;
        // Disjoint fields: the dialog and the id source.
        let dialog = match side {
            Side::Caller => self.caller.dialog.as_mut(),
            Side::Agent => self.agent.as_mut().map(|a| &mut a.dialog),
        };
        if let Some(dialog) = dialog {
            let _ = dialog.on_response(&response);
            if cseq.method == Method::Invite && (200..300).contains(&status) {
                ack = dialog.ack_for_2xx(&response, self.ids.as_mut()).ok();
            }
        }
        if let (Some(ack), Some(route)) = (ack, route) {
            self.transmit(ack, route.0, route.1);
        }
        if status < 200 {
            return;
        }
        let Some(i) = self
            .relayed
            .iter()
            .position(|r| r.to == side && r.seq == cseq.seq)
        else {
            return;
        };
        let relayed = self.relayed.remove(i);
        let from = side.other();
        let body = if is_sdp(&response) {
            if cseq.method == Method::Invite
                && (200..300).contains(&status)
                && self.media_started
                && let Some(audio) = audio_of(response.body())
            {
                self.out(Output::Media(MediaOp::Update { side, audio }));
            }
            self.rewrite_for(from, response.body())
                .map(|b| ("application/sdp".to_owned(), Bytes::from(b)))
        } else {
            None
        };
        self.answer_in_dialog(from, &relayed.from_key, &relayed.from_request, status, body);
    }

    /// Time: the ring's deadlines, the direct ring's, 2xx retransmission.
    pub(super) fn on_tick(&mut self) {
        let now = self.now;
        if let Some(ring) = self.ring.as_mut()
            && ring.next_deadline().is_some_and(|d| d <= now)
        {
            ring.tick(now);
            self.drive_ring();
        }
        if let Some((idx, deadline)) = self.direct
            && deadline <= now
        {
            self.direct_ring_over(idx);
        }
        if self.origin_deadline().is_some_and(|d| d <= now) {
            self.origin_rang_out();
        }
        if self
            .outbound
            .as_ref()
            .and_then(|o| o.deadline())
            .is_some_and(|d| d <= now)
        {
            self.outbound_timed_out();
        }
        let mut lost = false;
        let mut resend = Vec::new();
        for u in &mut self.unacked {
            match u.retransmit.on_tick(now) {
                RetransmitStep::Wait => {}
                RetransmitStep::Resend(r) => resend.push((u.side, u.key.clone(), r)),
                RetransmitStep::GaveUp => lost = true,
            }
        }
        self.unacked.retain(|u| !u.retransmit.is_done());
        for (side, key, response) in resend {
            if let Some(route) = self.leg_route(side) {
                self.respond(&key, response, route);
            }
        }
        if lost {
            tracing::warn!(protocol = %self.protocol, "no ACK for a 2xx within 32 s; call ended");
            self.fail("no ACK");
        }
    }
}
