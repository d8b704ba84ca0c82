//! Errors the dialog layer returns to its TU (the B2BUA).  Network input
//! never produces an error from `Dialog::on_request`: a bad in-dialog
//! request is a `RequestDecision::Reject` (answered) or `Drop`.

use super::message::{BuildError, HeaderError, Method};

/// Why a dialog could not be created or a request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("header: {0}")]
    Header(#[from] HeaderError),
    #[error("cannot build message: {0}")]
    Build(#[from] BuildError),
    #[error("expected a request")]
    NotARequest,
    #[error("expected a response")]
    NotAResponse,
    /// Only 101..=299 responses to INVITE create dialogs (§12.1).
    #[error("a {0} response does not create a dialog")]
    NotDialogCreating(u16),
    /// A dialog-creating response must carry a To tag (§12.1.1).
    #[error("the response has no To tag")]
    NoToTag,
    /// The response (or request) belongs to another request or dialog.
    #[error("message does not match: {0}")]
    Mismatch(&'static str),
    /// The remote target cannot be taken from the Contact (§12.1.1).
    #[error("no usable Contact: {0}")]
    Contact(&'static str),
    /// Nothing can be sent in a terminated dialog.
    #[error("the dialog is terminated")]
    Terminated,
    /// ACK and CANCEL have their own builders (`ack_for_2xx`,
    /// `cancel_for`); a UAS must not send BYE in an early dialog (§15).
    #[error("{0} cannot be sent with Dialog::request here")]
    Method(Method),
    /// An INVITE transaction of the dialog is in progress (§14.1).
    #[error("another INVITE of this dialog is in progress")]
    InvitePending,
    /// The local CSeq reached 2^32-1 (§8.1.1.5).
    #[error("the local CSeq space is exhausted")]
    CSeqExhausted,
}
