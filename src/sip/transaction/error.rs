//! Errors the transaction layer returns to its TU.  Network input never
//! produces an error: what cannot be matched or parsed is dropped (and
//! reported as `TuEvent`s where the RFC says the TU must see it).

use super::key::TransactionKey;
use super::message::{BuildError, HeaderError};

/// Why a TU call into the transaction layer was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransactionError {
    #[error("expected a request")]
    NotARequest,
    #[error("expected a response")]
    NotAResponse,
    /// ACK has no client transaction: the ACK for a non-2xx is sent by the
    /// INVITE client transaction, the ACK for a 2xx by the TU directly
    /// (§17.1.1.3, §13.2.2.4); use `TransactionLayer::transmit_stateless`.
    #[error("ACK is not sent through a client transaction")]
    AckHasNoTransaction,
    #[error("the top Via branch lacks the z9hG4bK magic cookie (RFC 3261 §8.1.1.7)")]
    NoRfc3261Branch,
    #[error("header: {0}")]
    Header(#[from] HeaderError),
    #[error("cannot build message: {0}")]
    Build(#[from] BuildError),
    #[error("transaction {0} already exists")]
    Duplicate(Box<TransactionKey>),
    #[error("transaction table full ({0} transactions)")]
    CapacityExceeded(usize),
    #[error("no transaction {0}")]
    UnknownTransaction(Box<TransactionKey>),
    #[error("{key} is a client transaction; responses go to server transactions")]
    NotAServerTransaction { key: Box<TransactionKey> },
    #[error("cannot send a {status} in state {state:?}")]
    InvalidState {
        state: super::state::TransactionState,
        status: u16,
    },
}
