//! The dialog layer (RFC 3261 §12–§15), sans-IO.
//!
//! The B2BUA uses it for both legs of a call:
//! - the caller leg is a UAS dialog: `Dialog::dialog_response` builds the
//!   180/200 (our To tag, Record-Route copied, our Contact) and
//!   `Dialog::uas` creates the dialog from the INVITE and that response;
//! - each agent leg starts with a `UacInvite` (Request-URI = the agent's
//!   contact, fresh From tag and Call-ID, CSeq 1, SDP, the application's
//!   extra headers), kept in a `DialogSet`, which turns every response
//!   into a `ForkEvent`
//!   (early dialogs per To tag; the first 2xx is answered and ACKed and
//!   the other INVITEs CANCELled with `cancel_for`; a later 2xx is ACKed
//!   and BYEd).
//!
//! In a dialog: `request` / `request_builder` (BYE, re-INVITE, UPDATE,
//! REFER, NOTIFY... with the route set, remote target and next CSeq),
//! `ack_for_2xx`, `on_request` (CSeq order, target refresh, BYE) and
//! `on_response` / `on_sent_response` (early → confirmed → terminated).
//! `set_request_header` gives a dialog's requests of one method an extra
//! header the core does not interpret (the application's own).
//!
//! A 2xx we send to an INVITE is the UAS core's to retransmit until its ACK
//! (§13.3.1.4): `Retransmit2xx` says when to resend and when to give up.
//!
//! No sockets, no clock: tags, branches and Call-IDs come from an
//! `IdSource` the driver injects.  Messages go out through the transaction
//! layer, except the ACK for a 2xx, which the driver sends directly.

mod error;
mod fork;
mod ids;
mod model;
mod retransmit;
mod uac;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_props;

use super::message;
use super::transaction;

pub use error::DialogError;
pub use fork::{DialogSet, ForkEvent};
pub use ids::{CounterIds, IdSource, RandomIds};
pub use model::{
    Dialog, DialogId, DialogRole, DialogState, LocalParty, MAX_FORWARDS, Rejection, RequestDecision,
};
pub use retransmit::{Retransmit2xx, RetransmitStep};
pub use uac::{UacInvite, cancel_for};
