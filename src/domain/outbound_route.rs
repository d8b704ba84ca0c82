//! Outbound routes (*rotas de saída*): which trunks carry which numbers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldErrors;
use crate::routing::DialPattern;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutboundRoute {
    pub id: i64,
    pub name: String,
    /// Lower is tried first.
    pub priority: i64,
    pub patterns: Vec<String>,
    pub strip: u32,
    pub prepend: String,
    /// Tried in order; the next on 5xx or timeout.
    pub trunk_ids: Vec<i64>,
    /// Empty = every extension may use the route.
    pub allowed_extension_ids: Vec<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundRouteInput {
    pub name: String,
    #[serde(default)]
    pub priority: i64,
    pub patterns: Vec<String>,
    #[serde(default)]
    pub strip: u32,
    #[serde(default)]
    pub prepend: String,
    pub trunk_ids: Vec<i64>,
    #[serde(default)]
    pub allowed_extension_ids: Vec<i64>,
}

impl OutboundRouteInput {
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        e.name("name", &self.name, 80);
        e.check(!self.patterns.is_empty(), "patterns", "must not be empty");
        for (i, p) in self.patterns.iter().enumerate() {
            if let Err(err) = DialPattern::parse(p) {
                e.add(format!("patterns[{i}]"), err.to_string());
            }
        }
        e.check(self.strip <= 20, "strip", "must be at most 20");
        if !self.prepend.is_empty() {
            e.dial_string("prepend", &self.prepend, 20);
        }
        e.check(
            !self.trunk_ids.is_empty(),
            "trunk_ids",
            "must name at least one trunk",
        );
        for (i, t) in self.trunk_ids.iter().enumerate() {
            if self.trunk_ids[..i].contains(t) {
                e.add(format!("trunk_ids[{i}]"), "trunk listed twice");
            }
        }
        for (i, x) in self.allowed_extension_ids.iter().enumerate() {
            if self.allowed_extension_ids[..i].contains(x) {
                e.add(
                    format!("allowed_extension_ids[{i}]"),
                    "extension listed twice",
                );
            }
        }
        e.into_result()
    }
}

impl OutboundRoute {
    pub fn to_input(&self) -> OutboundRouteInput {
        OutboundRouteInput {
            name: self.name.clone(),
            priority: self.priority,
            patterns: self.patterns.clone(),
            strip: self.strip,
            prepend: self.prepend.clone(),
            trunk_ids: self.trunk_ids.clone(),
            allowed_extension_ids: self.allowed_extension_ids.clone(),
        }
    }
}
