//! The PBX server (*servidor PABX*): how the bridge reaches Asterisk.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldErrors;
use super::trunk::valid_host;

/// The singleton PBX connection. Before an admin sets it, it is disabled
/// with Asterisk's usual ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pbx {
    pub ami_host: String,
    pub ami_port: u16,
    pub ami_username: String,
    pub has_ami_secret: bool,
    pub sip_host: String,
    pub sip_port: u16,
    pub enabled: bool,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Default for Pbx {
    fn default() -> Self {
        Self {
            ami_host: "127.0.0.1".into(),
            ami_port: 5038,
            ami_username: String::new(),
            has_ami_secret: false,
            sip_host: "127.0.0.1".into(),
            sip_port: 5060,
            enabled: false,
            updated_at: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PbxInput {
    pub ami_host: String,
    #[serde(default = "ami_port")]
    pub ami_port: u16,
    #[serde(default)]
    pub ami_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_secret: Option<String>,
    pub sip_host: String,
    #[serde(default = "sip_port")]
    pub sip_port: u16,
    #[serde(default)]
    pub enabled: bool,
}

fn ami_port() -> u16 {
    5038
}
fn sip_port() -> u16 {
    5060
}

impl PbxInput {
    pub fn validate(&self, has_secret: bool) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        e.check(
            valid_host(&self.ami_host),
            "ami_host",
            "must be a host name or an IP address",
        );
        e.check(
            valid_host(&self.sip_host),
            "sip_host",
            "must be a host name or an IP address",
        );
        e.check(self.ami_port != 0, "ami_port", "must be 1 to 65535");
        e.check(self.sip_port != 0, "sip_port", "must be 1 to 65535");
        e.check(
            self.ami_username.len() <= 64 && !self.ami_username.chars().any(|c| c.is_control()),
            "ami_username",
            "must be at most 64 characters, without control characters",
        );
        if let Some(s) = &self.ami_secret {
            e.check(
                !s.is_empty() && s.len() <= 128 && !s.chars().any(|c| c.is_control()),
                "ami_secret",
                "must be 1 to 128 characters, without control characters",
            );
        }
        if self.enabled {
            e.check(
                !self.ami_username.is_empty(),
                "ami_username",
                "is required when enabled",
            );
            e.check(
                self.ami_secret.is_some() || has_secret,
                "ami_secret",
                "is required when enabled",
            );
        }
        e.into_result()
    }
}

impl Pbx {
    pub fn to_input(&self) -> PbxInput {
        PbxInput {
            ami_host: self.ami_host.clone(),
            ami_port: self.ami_port,
            ami_username: self.ami_username.clone(),
            ami_secret: None,
            sip_host: self.sip_host.clone(),
            sip_port: self.sip_port,
            enabled: self.enabled,
        }
    }
}
