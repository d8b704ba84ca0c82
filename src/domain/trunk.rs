//! Trunks (*troncos*): SIP connections to carriers or other PBXs.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Udp,
    Tcp,
}

/// Where a dialled DID lands: a department or an extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DidRoute {
    pub did: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Trunk {
    pub id: i64,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub username: Option<String>,
    /// Whether a secret is stored (the secret itself is never shown).
    pub has_secret: bool,
    pub register: bool,
    pub register_expires_s: u32,
    pub max_channels: Option<u32>,
    /// Source networks whose INVITEs are calls from this trunk.
    #[schema(value_type = Vec<String>)]
    pub inbound: Vec<IpNet>,
    pub did_routes: Vec<DidRoute>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkInput {
    pub name: String,
    pub host: String,
    #[serde(default = "sip_port")]
    pub port: u16,
    #[serde(default = "udp")]
    pub transport: Transport,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default)]
    pub register: bool,
    #[serde(default = "hour")]
    pub register_expires_s: u32,
    #[serde(default)]
    pub max_channels: Option<u32>,
    #[serde(default, deserialize_with = "super::net::cidr_list")]
    #[schema(value_type = Vec<String>)]
    pub inbound: Vec<IpNet>,
    #[serde(default)]
    pub did_routes: Vec<DidRoute>,
}

fn sip_port() -> u16 {
    5060
}
fn udp() -> Transport {
    Transport::Udp
}
fn hour() -> u32 {
    3600
}

/// A host name or IP literal as it may appear in a SIP URI.
pub(crate) fn valid_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl TrunkInput {
    /// `has_secret` says whether a secret is already stored (replace).
    pub fn validate(&self, has_secret: bool) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        e.name("name", &self.name, 80);
        e.check(
            valid_host(&self.host),
            "host",
            "must be a host name or an IP address",
        );
        e.check(self.port != 0, "port", "must be 1 to 65535");
        if let Some(u) = &self.username {
            e.check(
                !u.is_empty()
                    && u.len() <= 64
                    && !u.chars().any(|c| c.is_control() || c == '"' || c == '@'),
                "username",
                "must be 1 to 64 characters, without control characters, quotes or @",
            );
        }
        if let Some(s) = &self.secret {
            e.secret("secret", s);
        }
        if self.register {
            e.check(
                self.username.is_some(),
                "username",
                "is required when register is true",
            );
            e.check(
                self.secret.is_some() || has_secret,
                "secret",
                "is required when register is true",
            );
        }
        e.check(
            (60..=86400).contains(&self.register_expires_s),
            "register_expires_s",
            "must be 60 to 86400 seconds",
        );
        if let Some(n) = self.max_channels {
            e.check(n >= 1, "max_channels", "must be at least 1");
        }
        for (i, r) in self.did_routes.iter().enumerate() {
            e.dial_string(&format!("did_routes[{i}].did"), &r.did, 32);
            e.check(
                r.department_id.is_some() != r.extension_id.is_some(),
                format!("did_routes[{i}]"),
                "must name exactly one of department_id, extension_id",
            );
            if self.did_routes[..i].iter().any(|o| o.did == r.did) {
                e.add(format!("did_routes[{i}].did"), "DID listed twice");
            }
        }
        e.into_result()
    }
}

impl Trunk {
    pub fn to_input(&self) -> TrunkInput {
        TrunkInput {
            name: self.name.clone(),
            host: self.host.clone(),
            port: self.port,
            transport: self.transport,
            username: self.username.clone(),
            secret: None,
            register: self.register,
            register_expires_s: self.register_expires_s,
            max_channels: self.max_channels,
            inbound: self.inbound.clone(),
            did_routes: self.did_routes.clone(),
        }
    }
}
