//! The optional `--config FILE` (TOML). Keys are the settings' names in
//! snake_case; an unknown key is an error so a typo never silently falls back
//! to a default.

use std::path::Path;

use serde::Deserialize;

use super::SettingError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub sip_listen: Option<String>,
    pub http_listen: Option<String>,
    pub rtp_ports: Option<String>,
    pub media_address: Option<String>,
    pub database_url: Option<String>,
    pub data_dir: Option<String>,
    pub recordings_dir: Option<String>,
    pub admin_token: Option<String>,
    pub log: Option<String>,
    pub log_format: Option<String>,
    pub time_zone: Option<String>,
    pub inactivity_close_h: Option<u64>,
    pub default_digest_algorithms: Option<Vec<String>>,
    pub shutdown_grace_s: Option<u64>,
    pub sip_realm: Option<String>,
    pub node_id: Option<String>,
    pub register_min_expires_s: Option<u64>,
    pub register_max_expires_s: Option<u64>,
    pub auth_max_failures: Option<u64>,
    pub auth_failure_window_s: Option<u64>,
    pub auth_lockout_s: Option<u64>,
    pub rtp_timeout_s: Option<u64>,
}

impl FileSettings {
    pub fn load(path: &Path) -> Result<Self, SettingError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SettingError::new("config", format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            SettingError::new(
                "config",
                format!("{}: {}", path.display(), e.message().trim()),
            )
        })
    }
}
