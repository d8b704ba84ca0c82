//! The AMI client's timings and the dialplan names it relies on (the
//! contexts `pbx-bridge asterisk render` writes), and the tracker's view of
//! the PBX built from them and the numbering plan.

use std::collections::HashSet;
use std::time::Duration;

use super::session::Backoff;
use super::tracker::TrackerConfig;
use crate::store::CallDirectory;

/// Timings and dialplan names of the client. The defaults suit production;
/// tests shorten the timings with [`AmiHandle::set_tuning`] before start.
#[derive(Debug, Clone)]
pub struct AmiTuning {
    pub backoff: Backoff,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub connect_timeout: Duration,
    pub login_timeout: Duration,
    pub action_timeout: Duration,
    pub resync_timeout: Duration,
    pub stable_after: Duration,
    /// How often the numbering plan is re-read.
    pub directory_refresh: Duration,
    /// Context where click-to-call's second leg is dialled; `{ext}` is
    /// replaced by the calling extension (what it may dial).
    pub originate_context: String,
    /// Context where a redirected channel enters a department code.
    pub transfer_context: String,
    /// Context where a redirected channel reaches an extension.
    pub transfer_extension_context: String,
    /// Contexts where calls from outside arrive.
    pub inbound_contexts: Vec<String>,
    /// PJSIP endpoints of the bridge itself (the rendered `bridge`): calls
    /// whose other side is one of them are the bridge's (it opens their
    /// attendance), never followed here. Also treated as trunks.
    pub bridge_endpoints: Vec<String>,
    /// Keep every bytes-received → attendance-updated latency (benchmark).
    pub record_latencies: bool,
}

impl Default for AmiTuning {
    fn default() -> Self {
        AmiTuning {
            backoff: Backoff::default(),
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(10),
            action_timeout: Duration::from_secs(15),
            resync_timeout: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
            directory_refresh: Duration::from_secs(30),
            // The contexts `pbx-bridge asterisk render` writes.
            originate_context: "pbx-bridge-ext-{ext}".into(),
            transfer_context: "pbx-bridge-departments".into(),
            transfer_extension_context: "pbx-bridge-extensions".into(),
            // Plus `pbx-bridge-from-<trunk>` for every configured trunk.
            inbound_contexts: vec![
                "pbx-bridge-from-bridge".into(),
                "from-bridge".into(),
                "from-trunk".into(),
            ],
            bridge_endpoints: vec![crate::asterisk::BRIDGE_ENDPOINT.into()],
            record_latencies: false,
        }
    }
}

impl AmiTuning {
    /// The tracker's view of the PBX: these names and the numbering plan.
    pub fn tracker_config(&self, dir: &CallDirectory) -> TrackerConfig {
        let mut cfg = TrackerConfig::new();
        cfg.inbound_contexts = self.inbound_contexts.iter().cloned().collect();
        cfg.inbound_contexts.extend(
            dir.trunks
                .iter()
                .map(|name| format!("pbx-bridge-from-{name}")),
        );
        cfg.trunk_endpoints = self
            .bridge_endpoints
            .iter()
            .chain(dir.trunks.iter())
            .cloned()
            .collect::<HashSet<_>>();
        cfg.bridge_endpoints = self.bridge_endpoints.iter().cloned().collect();
        cfg.known_extensions = dir.extensions.keys().cloned().collect();
        cfg.department_codes = dir.department_codes.keys().cloned().collect();
        cfg
    }
}
