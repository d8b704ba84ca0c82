//! Blind transfer: REFER from the agent (RFC 3515) or the API. The bridge
//! keeps the caller on the relay, ends the agent leg and rings the new
//! department or extension; the attendance keeps its protocol and records
//! the move.

use bytes::Bytes;

use super::{Call, Control, Ending, Output, Target, user_of};
use crate::calls::fork::ForkState;
use crate::domain::{AttendanceChange, Transfer};
use crate::media::relay::Side;
use crate::sip::message::{Method, NameAddr, SipMessage};
use crate::sip::transaction::TransactionKey;

impl Call {
    /// REFER from the agent: accepted, NOTIFY 200 at once (the bridge
    /// keeps the caller and takes over), then the blind transfer.
    pub(super) fn on_refer(&mut self, key: TransactionKey, request: SipMessage) {
        let target = request
            .header("Refer-To")
            .and_then(|v| NameAddr::parse(&String::from_utf8_lossy(v)).ok())
            .map(|na| user_of(&na))
            .unwrap_or_default();
        let Some(resolved) = self.resolve(&target) else {
            tracing::info!(protocol = %self.protocol, %target, "REFER to an unknown number");
            self.answer_in_dialog(Side::Agent, &key, &request, 404, None);
            return;
        };
        self.answer_in_dialog(Side::Agent, &key, &request, 202, None);
        let branch = self.ids.branch();
        let route = self.leg_route(Side::Agent);
        let notify = self.dialog_mut(Side::Agent).and_then(|d| {
            d.request_builder(Method::Notify, &branch)
                .ok()
                .and_then(|b| {
                    b.header("Event", "refer")
                        .header("Subscription-State", "terminated;reason=noresource")
                        .body(
                            "message/sipfrag;version=2.0",
                            Bytes::from_static(b"SIP/2.0 200 OK\r\n"),
                        )
                        .build()
                        .ok()
                })
        });
        if let (Some(n), Some(route)) = (notify, route) {
            self.send_request(n, route.0, route.1);
        }
        if let Err(e) = self.transfer(&target, resolved) {
            tracing::warn!(protocol = %self.protocol, %target, error = %e, "transfer failed");
        }
    }

    fn transfer(&mut self, label: &str, target: Target) -> Result<(), String> {
        if self.answered_at.is_none() || self.agent.is_none() {
            return Err("the call is not answered".into());
        }
        let at = self.wall();
        let department_id = match &target {
            Target::Department(d) => Some(d.id),
            Target::Extension(_) | Target::Outbound(_) => None,
        };
        if department_id.is_some() {
            self.attendance_department = department_id;
        }
        self.record(AttendanceChange::Transferred(Transfer {
            at,
            from_agent_id: self.agent_id,
            target: label.to_owned(),
            department_id,
        }));
        tracing::info!(protocol = %self.protocol, target = label, "blind transfer");
        // The agent leg ends here; the caller stays on the relay.
        self.bye(Side::Agent);
        if let Some(leg) = self.agent.take()
            && let Some(f) = self.forks.get_mut(leg.fork)
        {
            f.state = ForkState::Over;
            if let Some(a) = f.agent {
                self.env.agent_idle(a, at);
            }
        }
        self.unacked.retain(|u| u.side != Side::Agent);
        self.relayed.retain(|r| r.to != Side::Agent);
        self.ring = None;
        self.direct = None;
        self.follow_me = None;
        // The caller's own trunk channel stays held: the caller is still on.
        self.release_outbound_channel();
        self.outbound = None;
        // Moved on from a closed department's forward: the new place's
        // rule closes it.
        self.closes_as = None;
        match target {
            Target::Department(d) => {
                self.department = Some(d.clone());
                self.ring_department(d.id)
            }
            Target::Extension(n) => self.ring_extension(&n),
            Target::Outbound(dial) => self.start_outbound(dial),
        }
        self.publish();
        Ok(())
    }

    pub(super) fn on_control(&mut self, control: Control) {
        match control {
            Control::Shutdown => {
                tracing::warn!(protocol = %self.protocol, "the bridge is stopping: call hung up");
                self.hang_up(Ending::Failed("the bridge shut down".into()));
            }
            Control::HangUp => {
                tracing::info!(protocol = %self.protocol, "hung up through the API");
                self.hang_up(Ending::Api);
            }
            Control::Transfer { target } => {
                let result = match self.resolve(&target) {
                    Some(t) => self.transfer(&target, t),
                    None => Err(format!("{target:?} is no department code or extension")),
                };
                self.out(Output::TransferReply(result));
            }
        }
    }
}
