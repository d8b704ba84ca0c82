//! SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.
//!
//! The pieces, one per file:
//! - [`algorithm`]: MD5 / SHA-256 / SHA-512-256 and their `-sess` variants;
//! - [`header`]: `Authorization` and `WWW-Authenticate` values, parse/print;
//! - [`digest`]: response computation and constant-time comparison;
//! - [`nonce`]: stateless HMAC nonces and nonce-count replay tracking;
//! - [`authenticator`]: the registrar's challenge/verify decision;
//! - [`lockout`]: per-address lockout after repeated failures.
//!
//! Nothing reads a clock or touches the network: time is always `now` in
//! Unix seconds, passed in by the caller.

pub mod algorithm;
pub mod authenticator;
pub mod digest;
pub mod header;
pub mod lockout;
pub mod nonce;

#[cfg(test)]
mod tests;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use authenticator::{
    AuthOutcome, Authenticator, AuthenticatorConfig, FailReason, VerifyRequest, answer_challenge,
};
pub use digest::{DigestError, DigestInput, QopParams, compute_response, response_matches};
pub use header::{Challenge, Credentials, HeaderError, Qop};
pub use lockout::{LockInfo, LockedAddress, Lockout, LockoutConfig};
pub use nonce::{NcStatus, NonceCounter, NonceIssuer, NonceStatus};
