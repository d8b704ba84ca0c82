//! SIP (RFC 3261): the message layer, digest authentication, and (to come)
//! transport, transactions and dialogs. The message layer and digest auth
//! are the project's own: `rsip` was measured unfit (see README).

pub mod auth;
pub mod message;
pub mod transaction;
