//! Media (issue 4): the parts the B2BUA wires together for a bridged call.
//!
//! * [`ports`]: RTP/RTCP port pairs leased from `Settings::rtp_ports`,
//!   given back on drop.
//! * [`sdp`]: what the relay needs of an offer/answer, and the lossless
//!   rewrite that points a leg at the bridge.
//! * [`relay`]: the sans-IO relay core (latching, forwarding, counters,
//!   dead media); [`relay_task`]: the tokio task that runs it over a call's
//!   UDP sockets and feeds the recorder.
//! * [`g711`]: PCMU/PCMA tables; [`recorder`]: the wall-clock aligned,
//!   crash-safe stereo WAV and its start-up repair.

pub mod g711;
#[cfg(test)]
mod g711_reference;
pub mod ports;
pub mod recorder;
pub mod relay;
pub mod relay_task;
pub mod sdp;

pub use g711::Codec;
pub use ports::{PortError, PortLease, PortPool};
pub use recorder::{Aligner, Recorder, RecordingInfo, Repaired, recording_path, repair};
pub use relay::{DeadMedia, LegStats, MediaSession, RelayConfig, RtpVerdict, Side};
pub use relay_task::{EndReason, LegSockets, RelayCommand, RelayHandle, RelayReport, spawn_relay};
pub use sdp::{AudioMedia, Direction, SessionDescription};
