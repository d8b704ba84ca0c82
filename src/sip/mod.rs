//! SIP (RFC 3261). The sans-IO cores — the message layer, digest
//! authentication, the transaction layer and the registrar — are the
//! project's own (`rsip` was measured unfit, see README); `transport` and
//! `endpoint` are the thin tokio layer that feeds them.

pub mod auth;
pub mod dialog;
pub mod endpoint;
pub mod message;
pub mod registrar;
pub mod transaction;
pub mod transport;
