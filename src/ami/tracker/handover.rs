//! Calls that carry a protocol of the bridge (`PBX_BRIDGE_PROTOCOL`): a
//! click-to-call the bridge opened before asking Asterisk to place it
//! (`Originate`), or a followed call the API redirected (`Setvar` before
//! `Redirect`). The variable is set inheritable (`__`), so the channel
//! Asterisk dials to the bridge carries it, and the rendered pre-dial
//! handler ([`crate::asterisk::TO_BRIDGE_CONTEXT`]) puts it in
//! `X-Protocol`: the bridge continues that attendance. From the moment the
//! bridge's leg runs that handler the call is the bridge's
//! ([`CallDecision::CallHandedOver`]). A leg to the bridge that does not
//! run it (files rendered before the handler existed) is followed as
//! before: the bridge opens its own attendance then, and this one must
//! not be left open.

use std::time::SystemTime;

use super::{Call, CallDecision, Packet, Snapshot, Tracker, snapshot};

/// The channel variable that carries the protocol (set as
/// `__PBX_BRIDGE_PROTOCOL`, so that every channel the call creates
/// inherits it).
pub const PROTOCOL_VARIABLE: &str = "PBX_BRIDGE_PROTOCOL";

/// Whether a `VarSet`'s `Variable` is the protocol variable, whatever its
/// inheritance prefix (`_`, `__`): Asterisk reports the name as set.
pub(super) fn is_protocol_variable(name: &str) -> bool {
    name.trim_start_matches('_')
        .eq_ignore_ascii_case(PROTOCOL_VARIABLE)
}

/// Whether this event shows a channel in the rendered pre-dial handler
/// that writes `X-Protocol` (Asterisk reports the handler's `Newexten`
/// on the outgoing channel before dialling).
pub(super) fn runs_the_handler(s: &Snapshot<'_>) -> bool {
    s.context == Some(crate::asterisk::TO_BRIDGE_CONTEXT)
}

impl Tracker {
    /// `VarSet` of the protocol variable: the call is that attendance's
    /// ([`CallDecision::CallClaimed`]; for a followed call about to be
    /// redirected it names the attendance it has already), remembered for
    /// the hand-over.
    pub(super) fn on_claim(&mut self, ev: &Packet, at: SystemTime, out: &mut Vec<CallDecision>) {
        let Some(s) = snapshot(ev, "") else {
            return;
        };
        let Some(protocol) = ev.get("Value").filter(|p| !p.is_empty()) else {
            return;
        };
        self.touch(&s, at, out);
        let Some(call) = self.calls.get_mut(s.linkedid) else {
            return;
        };
        call.carried = Some(protocol.to_owned());
        if !call.claimed {
            call.claimed = true;
            call.originated = true;
            out.push(CallDecision::CallClaimed {
                linkedid: s.linkedid.to_owned(),
                protocol: protocol.to_owned(),
            });
        }
    }

    /// A leg of a call carrying a protocol goes to the bridge: the bridge
    /// continues the attendance, so nothing more is reported (no answer,
    /// transfer or end: the bridge writes them).
    pub(super) fn hand_over(linkedid: &str, call: &mut Call, out: &mut Vec<CallDecision>) {
        let Some(protocol) = call.carried.clone() else {
            return;
        };
        call.to_bridge = true;
        call.opened = false;
        tracing::debug!(linkedid, %protocol, "call carrying a protocol went to the bridge");
        out.push(CallDecision::CallHandedOver {
            linkedid: linkedid.to_owned(),
            protocol,
        });
    }
}
