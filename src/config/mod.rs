//! Service settings: defaults, an optional TOML file, environment variables
//! and command-line flags, resolved in that order of increasing precedence
//! (SPEC §2). Every value is validated here so a bad setting stops the start
//! with one line that names it, instead of failing later inside a subsystem.

mod file;
mod resolve;

pub use file::FileSettings;
pub use resolve::{RawSettings, resolve};

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::DigestAlgorithm;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved, validated settings the service runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sip_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub rtp_ports: RangeInclusive<u16>,
    pub media_address: IpAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub recordings_dir: PathBuf,
    pub admin_token: Option<String>,
    pub log: String,
    pub log_format: LogFormat,
    /// Time zone of the installation: protocol numbers carry its local date.
    pub time_zone: chrono_tz::Tz,
    /// Attendances left open are closed after this long without activity.
    pub inactivity_close: Duration,
    /// What a 401 offers to extensions that do not choose their own.
    pub default_digest_algorithms: Vec<DigestAlgorithm>,
    /// How long SIGTERM waits for live calls and requests before exiting.
    pub shutdown_grace: Duration,
    /// The digest realm the registrar challenges with.
    pub sip_realm: String,
    /// This node's name: its SIP calls' attendances carry it, so crash
    /// recovery ends only the calls this node carried.
    pub node_id: String,
    /// Bounds on the registration interval a phone may ask for.
    pub register_min_expires_s: u32,
    pub register_max_expires_s: u32,
    /// An address failing authentication this often within the window is
    /// locked out for `auth_lockout`.
    pub auth_max_failures: u32,
    pub auth_failure_window: Duration,
    pub auth_lockout: Duration,
    /// Dead media: a call with no RTP from a leg for this long is ended
    /// (and the reason logged), so a vanished phone does not hold an agent.
    pub rtp_timeout: Duration,
}

/// A setting that could not be used; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {reason}")]
pub struct SettingError {
    pub name: &'static str,
    pub reason: String,
}

impl SettingError {
    pub fn new(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            reason: reason.into(),
        }
    }
}
