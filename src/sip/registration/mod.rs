//! UAC registration (RFC 3261 §10.2), sans-IO: the bridge registering a
//! binding with a carrier's registrar. Digest challenges are answered with
//! `crate::sip::auth` (MD5, SHA-256, SHA-512-256; qop=auth or none).
//!
//! - [`message`]: the REGISTER we send and what we read from the answers;
//! - [`schedule`]: refresh points, backoff with jitter, the entropy source;
//! - [`client`]: the state machine (time is an input).

pub mod client;
pub mod message;
pub mod schedule;

#[cfg(test)]
mod tests;

pub use client::{
    AttemptResult, EXCHANGE_TIMEOUT, Failure, Output, RegState, RegistrationClient,
    RegistrationStatus,
};
pub use message::RegistrationConfig;
pub use schedule::{AUTH_FAILED_MIN, BACKOFF_BASE, BACKOFF_CAP, Backoff, Entropy, refresh_after};
