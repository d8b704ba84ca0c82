//! What `GET /api/v1/registrations` shows: who is registered from where,
//! since when and until when, and which addresses are locked out after
//! failed authentication (*erro de autenticação de usuário no PABX*).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Registration {
    /// The extension number.
    pub extension: String,
    pub contact: String,
    /// `ip:port` the REGISTER came from.
    pub source: String,
    pub transport: String,
    pub user_agent: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuthLockout {
    /// The address (or IPv6 prefix) refused.
    pub address: String,
    pub prefix_len: u8,
    pub failures: u32,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The last failure's reason.
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Registrations {
    pub items: Vec<Registration>,
    pub lockouts: Vec<AuthLockout>,
}
