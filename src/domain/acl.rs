//! IP rules (*liberar ou bloquear IPs e/ou blocos*), evaluated in order; the
//! first rule whose network holds the address decides, and no match allows.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AclAction {
    Allow,
    Deny,
}

/// Which traffic a rule governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AclApplies {
    Sip,
    Api,
    Both,
}

impl AclApplies {
    pub fn covers(self, what: AclApplies) -> bool {
        self == AclApplies::Both || self == what
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AclRule {
    pub id: i64,
    /// Rules are evaluated by ascending position.
    pub position: i64,
    #[schema(value_type = String)]
    pub cidr: IpNet,
    pub action: AclAction,
    pub applies_to: AclApplies,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AclRuleInput {
    /// Absent = after the last rule.
    #[serde(default)]
    pub position: Option<i64>,
    #[schema(value_type = String)]
    #[serde(deserialize_with = "super::net::cidr")]
    pub cidr: IpNet,
    pub action: AclAction,
    #[serde(default = "both")]
    pub applies_to: AclApplies,
}

fn both() -> AclApplies {
    AclApplies::Both
}

impl AclRuleInput {
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        if let Some(p) = self.position {
            e.check(p >= 0, "position", "must not be negative");
        }
        e.into_result()
    }
}

impl AclRule {
    pub fn to_input(&self) -> AclRuleInput {
        AclRuleInput {
            position: Some(self.position),
            cidr: self.cidr,
            action: self.action,
            applies_to: self.applies_to,
        }
    }

    /// The decision of an ordered rule list for `addr` on `what`.
    pub fn decide<'a>(
        rules: impl IntoIterator<Item = &'a AclRule>,
        addr: IpAddr,
        what: AclApplies,
    ) -> AclAction {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        rules
            .into_iter()
            .find(|r| r.applies_to.covers(what) && r.cidr.contains(&addr))
            .map(|r| r.action)
            .unwrap_or(AclAction::Allow)
    }
}
