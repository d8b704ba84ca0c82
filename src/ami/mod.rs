//! AMI (Asterisk Manager Interface) core, sans-IO.
//!
//! Everything here takes bytes, packets and `now` as inputs and returns
//! values; nothing opens a socket, spawns a task or reads the clock. A thin
//! tokio driver (elsewhere) moves bytes between a `TcpStream` and a
//! [`Session`], sleeps until [`Session::poll_timeout`], and hands
//! [`Output`]s to the rest of the bridge. That keeps the protocol logic
//! testable with recorded transcripts and simulated time.
//!
//! - [`packet`]: one AMI message (ordered, repeatable headers).
//! - [`codec`]: streaming decoder (banner, packets, legacy `Follows`).
//! - [`action`]: actions and their CRLF encoding with an injection guard.
//! - [`framed`]: `tokio_util::codec` adapter over the decoder/encoder.
//! - [`correlator`]: matches responses and list events to ActionIDs.
//! - [`session`]: connection state machine (login, keep-alive, backoff).
//! - [`tracker`]: follows Asterisk's own calls from events; emits decisions.
//! - [`presence`]: the extensions' contact and device state on Asterisk.
//! - [`replay`]: helpers to feed transcripts (tests, benchmarks).
//! - [`client`]: the tokio driver (TCP, timers, actions from the API).
//! - [`follow`]: writes the tracker's decisions as attendances.
//! - [`live`]: the live view of Asterisk's calls (`GET /calls`, `DELETE`).
//! - [`tuning`]: the client's timings and dialplan names.

pub mod action;
pub mod client;
pub mod codec;
pub mod correlator;
pub mod follow;
pub mod framed;
pub mod live;
pub mod packet;
pub mod presence;
pub mod replay;
pub mod session;
pub mod tracker;
pub mod tuning;

#[cfg(test)]
mod tests;

pub use action::{Action, ActionIds, EncodeError};
pub use client::{AmiActionError, AmiHandle, AmiHandles, AmiStatus, AmiTuning};
pub use codec::{Banner, DecodeError, Decoder, DecoderLimits, Frame};
pub use correlator::{
    ActionFailure, ActionOutcome, Completion, Correlated, Correlator, FailureReason,
};
pub use framed::AmiCodec;
pub use live::{AmiCallState, AmiCalls, AmiLiveCall};
pub use packet::{Header, Packet, PacketKind, ResponseStatus};
pub use session::{
    Backoff, Output, Session, SessionConfig, SessionError, SessionState, SessionStatus,
};
pub use tracker::{
    CallChannels, CallDecision, Direction, HangupCause, Party, Tracker, TrackerConfig,
};
