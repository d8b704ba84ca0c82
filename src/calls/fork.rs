//! One INVITE the bridge sends for a call: to an agent's (or an
//! extension's) registered contact. A proxy in between may fork it, so
//! its responses go through a [`DialogSet`].

use std::net::SocketAddr;

use bytes::Bytes;

use crate::domain::{Id, Registration};
use crate::sip::dialog::{DialogError, DialogSet, IdSource, LocalParty, UacInvite};
use crate::sip::message::{NameAddr, SipMessage, Uri};
use crate::sip::transaction::{TransactionKey, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ForkState {
    Calling,
    Ringing,
    Answered,
    /// Failed, cancelled, or hung up after a late answer.
    Over,
}

#[derive(Debug)]
pub(super) struct Fork {
    pub agent: Option<Id>,
    /// The trunk it went through (an outbound call).
    pub trunk: Option<Id>,
    pub extension: String,
    pub call_id: String,
    pub key: TransactionKey,
    pub destination: SocketAddr,
    pub transport: Transport,
    pub set: DialogSet,
    pub state: ForkState,
    /// The SDP answer of the 2xx.
    pub answer: Option<Bytes>,
    pub invite_seq: u32,
}

/// Why a fork could not be sent.
#[derive(Debug, thiserror::Error)]
pub(super) enum ForkError {
    #[error("binding {0:?} is not usable: {1}")]
    Binding(String, &'static str),
    #[error(transparent)]
    Dialog(#[from] DialogError),
    #[error("transaction: {0}")]
    Transaction(String),
}

/// Where a binding's requests go: the flow the REGISTER came from (phones
/// behind NAT are reachable only there, RFC 5626 style).
pub(super) fn binding_route(b: &Registration) -> Result<(Uri, SocketAddr, Transport), ForkError> {
    let contact: Uri = b
        .contact
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .parse()
        .map_err(|_| ForkError::Binding(b.contact.clone(), "contact is not a URI"))?;
    let source: SocketAddr = b
        .source
        .parse()
        .map_err(|_| ForkError::Binding(b.contact.clone(), "source is not an address"))?;
    let transport = if b.transport.eq_ignore_ascii_case("tcp") {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    Ok((contact, source, transport))
}

pub(super) struct ForkRequest<'a> {
    pub agent: Option<Id>,
    /// The extension rung, or the number dialled through a trunk.
    pub extension: &'a str,
    /// Where the INVITE goes: request-URI, address, transport.
    pub route: (Uri, SocketAddr, Transport),
    /// The To of the INVITE.
    pub to: NameAddr,
    pub caller: &'a NameAddr,
    pub protocol: &'a str,
    pub sdp: Bytes,
    pub local: &'a LocalParty,
    /// The dialog's Call-ID when it is already chosen (a click-to-call's
    /// leg to the extension is the call's own Call-ID), else a new one.
    pub call_id: Option<&'a str>,
}

impl Fork {
    /// Builds the INVITE (X-Protocol, the caller's identity in From, our
    /// SDP offer) and the fork that follows it.
    pub fn build(
        req: ForkRequest<'_>,
        ids: &mut dyn IdSource,
    ) -> Result<(Fork, SipMessage), ForkError> {
        let (contact, destination, transport) = req.route;
        let mut from = req.caller.clone();
        from.params.remove("tag");
        let mut invite = UacInvite::new(contact, from, req.to);
        if let Some(call_id) = req.call_id {
            invite = invite.call_id(call_id);
        }
        let invite = invite
            .header(super::X_PROTOCOL, req.protocol)
            .header("Allow", super::call::ALLOW)
            .sdp(req.sdp)
            .build(req.local, ids)?;
        let key =
            TransactionKey::client(&invite).map_err(|e| ForkError::Transaction(e.to_string()))?;
        let call_id = invite.call_id().map_err(DialogError::from)?.to_owned();
        let invite_seq = invite.cseq().map_err(DialogError::from)?.seq;
        let set = DialogSet::with_invite(req.local.clone(), invite.clone())?;
        Ok((
            Fork {
                agent: req.agent,
                trunk: None,
                extension: req.extension.to_owned(),
                call_id,
                key,
                destination,
                transport,
                set,
                state: ForkState::Calling,
                answer: None,
                invite_seq,
            },
            invite,
        ))
    }

    pub fn live(&self) -> bool {
        matches!(self.state, ForkState::Calling | ForkState::Ringing)
    }
}
