//! Extensions (*ramais*): the SIP accounts agents' softphones register with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DigestAlgorithm, FieldErrors};

/// *Siga-me*: ring the extension for `ring_first_s`, then (or, with 0,
/// instead) the external `number` through the outbound routes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowMe {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub ring_first_s: u32,
}

/// An extension as the API shows it. The secret is never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Extension {
    pub id: i64,
    pub number: String,
    pub display_name: String,
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// The agent whose extension this is (kept from the agent's side).
    pub agent_id: Option<i64>,
    pub active: bool,
    pub follow_me: FollowMe,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an admin writes. `secret` is required on create; on replace an
/// absent secret keeps the stored one so a PATCH need not resend it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionInput {
    pub number: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Offered in this order; absent = the installation default.
    #[serde(default)]
    pub digest_algorithms: Option<Vec<DigestAlgorithm>>,
    #[serde(default)]
    pub agent_id: Option<i64>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub follow_me: FollowMe,
}

fn yes() -> bool {
    true
}

impl ExtensionInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        let n = &self.number;
        e.check(
            (2..=6).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()),
            "number",
            "must be 2 to 6 digits",
        );
        if self.display_name.chars().count() > 80 {
            e.add("display_name", "must be at most 80 characters");
        }
        if self.display_name.chars().any(char::is_control) {
            e.add("display_name", "must not contain control characters");
        }
        match &self.secret {
            Some(s) => e.secret("secret", s),
            None if creating => e.add("secret", "is required"),
            None => {}
        }
        if let Some(algs) = &self.digest_algorithms {
            e.check(!algs.is_empty(), "digest_algorithms", "must not be empty");
            let mut seen = Vec::new();
            for a in algs {
                if seen.contains(a) {
                    e.add("digest_algorithms", format!("{a} is listed twice"));
                }
                seen.push(*a);
            }
        }
        let fm = &self.follow_me;
        if fm.enabled {
            match &fm.number {
                Some(num) => e.dial_string("follow_me.number", num, 20),
                None => e.add("follow_me.number", "is required when follow-me is enabled"),
            }
        } else if let Some(num) = &fm.number {
            e.dial_string("follow_me.number", num, 20);
        }
        e.check(
            fm.ring_first_s <= 300,
            "follow_me.ring_first_s",
            "must be at most 300",
        );
        e.into_result()
    }
}

impl Extension {
    /// The input that reproduces this extension (no secret): the base a
    /// PATCH is merged onto.
    pub fn to_input(&self) -> ExtensionInput {
        ExtensionInput {
            number: self.number.clone(),
            display_name: self.display_name.clone(),
            secret: None,
            digest_algorithms: Some(self.digest_algorithms.clone()),
            agent_id: self.agent_id,
            active: self.active,
            follow_me: self.follow_me.clone(),
        }
    }
}
