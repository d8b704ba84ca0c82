//! Agents (*atendentes*) and their department memberships and pauses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldErrors;

/// An agent's place in a department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub department_id: i64,
    /// Whether the department's calls ring this agent.
    #[serde(default = "yes")]
    pub receives_calls: bool,
    /// Responsible for the department (supervision; never rung for that).
    #[serde(default)]
    pub responsible: bool,
}

fn yes() -> bool {
    true
}

/// A pause in progress. Pauses never end by themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pause {
    pub reason: String,
    pub since: DateTime<Utc>,
}

/// Body of `POST /agents/{id}/pause`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseInput {
    pub reason: String,
}

impl PauseInput {
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        e.name("reason", &self.reason, 120);
        e.into_result()
    }
}

/// Whether calls can reach the agent right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Available,
    Paused,
    Offline,
}

impl Presence {
    /// Presence from the agent's state: paused wins, then offline when the
    /// agent is inactive, has no extension, or that extension is not
    /// registered; available otherwise.
    pub fn derive(active: bool, has_extension: bool, paused: bool, registered: bool) -> Self {
        if paused {
            Self::Paused
        } else if !active || !has_extension || !registered {
            Self::Offline
        } else {
            Self::Available
        }
    }
}

/// An agent as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: i64,
    pub name: String,
    pub extension_id: Option<i64>,
    pub active: bool,
    pub departments: Vec<Membership>,
    pub pause: Option<Pause>,
    /// Derived: paused, offline (inactive, no extension, or not
    /// registered) or available.
    pub presence: Presence,
    /// Derived: in a call right now.
    pub busy: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInput {
    pub name: String,
    #[serde(default)]
    pub extension_id: Option<i64>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub departments: Vec<Membership>,
}

impl AgentInput {
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        e.name("name", &self.name, 120);
        for (i, m) in self.departments.iter().enumerate() {
            if self.departments[..i]
                .iter()
                .any(|o| o.department_id == m.department_id)
            {
                e.add(
                    format!("departments[{i}].department_id"),
                    "department listed twice",
                );
            }
        }
        e.into_result()
    }
}

impl Agent {
    pub fn to_input(&self) -> AgentInput {
        AgentInput {
            name: self.name.clone(),
            extension_id: self.extension_id,
            active: self.active,
            departments: self.departments.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_is_paused_then_offline_then_available() {
        assert_eq!(Presence::derive(true, true, true, true), Presence::Paused);
        assert_eq!(Presence::derive(false, true, true, false), Presence::Paused);
        assert_eq!(
            Presence::derive(false, true, false, true),
            Presence::Offline
        );
        assert_eq!(
            Presence::derive(true, false, false, true),
            Presence::Offline
        );
        assert_eq!(
            Presence::derive(true, true, false, false),
            Presence::Offline
        );
        assert_eq!(
            Presence::derive(true, true, false, true),
            Presence::Available
        );
    }
}
