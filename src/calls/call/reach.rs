//! Where an agent's (or an extension's) phone is rung (SPEC §9): at the
//! contact it registered on the bridge, preferred; or else, beside an
//! enabled PBX, "through the PBX": an INVITE for the extension to
//! `pbx.sip_host:sip_port`, whose rendered context for calls from the
//! bridge dials `PJSIP/<extension>`. Asterisk's side counts only as AMI
//! reports it now: reachable and not in use. Unknown (AMI down, nothing
//! said yet) is never rung.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::ring::ForkRefused;
use super::{Call, user_of};
use crate::calls::plan::CallPlan;
use crate::domain::{Id, Registration};
use crate::pbx_presence::Availability;
use crate::sip::message::NameAddr;
use crate::sip::transaction::Transport;

/// Where a fork goes.
#[derive(Debug, Clone)]
pub(super) enum Reach {
    /// The contact registered on the bridge.
    Bridge(Registration),
    /// The PBX's SIP address (UDP).
    Pbx(SocketAddr),
}

impl Call {
    /// Where extension `number` is rung now: refused `Busy` when it is in
    /// use on the PBX, `Failed` when it is nowhere to be reached.
    pub(super) fn reach(&self, number: &str) -> Result<Reach, ForkRefused> {
        if let Some(b) = self.env.bindings_of(number).into_iter().next() {
            return Ok(Reach::Bridge(b));
        }
        let pbx = self.env.pbx_address();
        match (pbx, pbx.map(|_| self.env.pbx_availability(number))) {
            (Some(addr), Some(Availability::Free)) => Ok(Reach::Pbx(addr)),
            (Some(_), Some(Availability::InUse)) => Err(ForkRefused::Busy),
            _ => Err(ForkRefused::Failed(format!(
                "extension {number} is not registered (on the bridge or the PBX)"
            ))),
        }
    }

    /// The From of an INVITE through the PBX: the attendance's caller.
    /// The rendered `bridge` endpoint takes its caller ID from there, so
    /// the agent's phone shows the customer; for a call Asterisk itself
    /// sent, that is its asserted identity, not the phone in its From.
    pub(super) fn caller_for_pbx(&self) -> NameAddr {
        let number = &self.caller_number;
        if number.is_empty() || user_of(&self.caller.from) == *number {
            return self.caller.from.clone();
        }
        let host = &self.env.local(Transport::Udp).host;
        NameAddr::parse(&format!("<sip:{number}@{host}>"))
            .unwrap_or_else(|_| self.caller.from.clone())
    }

    /// The ring's view of the agents (SPEC §5 "available"): the extensions
    /// reachable (registered on the bridge, or free or in use on the PBX)
    /// and the agents busy (in a call here, or in use on the PBX).
    pub(super) fn presence(&self, plan: &CallPlan) -> (HashSet<String>, HashSet<Id>) {
        let mut reachable = self.env.registered_extensions();
        let mut busy = self.env.busy_agents();
        if self.env.pbx_address().is_some() {
            for (number, availability) in self.env.pbx_presence() {
                match availability {
                    Availability::Free => {}
                    Availability::InUse => {
                        if let Some(agent) = plan.agent_of_extension(&number) {
                            busy.insert(agent);
                        }
                    }
                    Availability::Unknown | Availability::Unreachable => continue,
                }
                reachable.insert(number);
            }
        }
        (reachable, busy)
    }
}
