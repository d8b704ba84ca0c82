//! API tokens (*grupos de permissão API*): scopes and allowed networks.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    #[serde(rename = "admin")]
    Admin,
    #[serde(rename = "config:read")]
    ConfigRead,
    #[serde(rename = "config:write")]
    ConfigWrite,
    #[serde(rename = "calls")]
    Calls,
    #[serde(rename = "attendances:read")]
    AttendancesRead,
    #[serde(rename = "recordings:read")]
    RecordingsRead,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::ConfigRead => "config:read",
            Self::ConfigWrite => "config:write",
            Self::Calls => "calls",
            Self::AttendancesRead => "attendances:read",
            Self::RecordingsRead => "recordings:read",
        }
    }
}

/// A token as listed: never its value, which is shown once at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    #[schema(value_type = Vec<String>)]
    pub allowed_networks: Vec<IpNet>,
    /// The first characters of the value, to tell tokens apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenInput {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Empty = any network.
    #[serde(default, deserialize_with = "super::net::cidr_list")]
    #[schema(value_type = Vec<String>)]
    pub allowed_networks: Vec<IpNet>,
}

impl ApiTokenInput {
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        e.name("name", &self.name, 80);
        e.check(!self.scopes.is_empty(), "scopes", "must not be empty");
        for (i, s) in self.scopes.iter().enumerate() {
            if self.scopes[..i].contains(s) {
                e.add(format!("scopes[{i}]"), "scope listed twice");
            }
        }
        e.into_result()
    }
}

impl ApiToken {
    pub fn to_input(&self) -> ApiTokenInput {
        ApiTokenInput {
            name: self.name.clone(),
            scopes: self.scopes.clone(),
            allowed_networks: self.allowed_networks.clone(),
        }
    }

    /// Whether the token grants `scope`; `admin` grants everything, and
    /// `config:write` includes reading the configuration.
    pub fn grants(scopes: &[Scope], scope: Scope) -> bool {
        scopes.contains(&Scope::Admin)
            || scopes.contains(&scope)
            || (scope == Scope::ConfigRead && scopes.contains(&Scope::ConfigWrite))
    }
}
