//! SIP (RFC 3261): a stack that knows no call, registrar database, media
//! or application. The sans-IO cores — the message layer, digest
//! authentication, the transaction layer, the dialog layer and the
//! registrar — are the project's own (`rsip` was measured unfit, see
//! README); `transport` (sockets) and `stack` (the transaction layer
//! driven over the transport, handing events to a transaction user) are
//! the thin tokio layer that feeds them. The transaction user is
//! `crate::signalling`.

pub mod auth;
pub mod dialog;
pub mod message;
pub mod registrar;
pub mod registration;
pub mod stack;
pub mod transaction;
pub mod transport;
