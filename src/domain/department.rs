//! Departments (*departamentos*) and how their calls ring.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldErrors;

/// How a department's agents are rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RingStrategy {
    /// All available agents at once; the first answer wins.
    Simultaneous,
    /// *Transbordo*: one agent at a time, longest idle first.
    Overflow,
}

/// Which agents ring (*encaminhar ligação para*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RingTarget {
    All,
    /// The first `ring_count` agents by longest idle time.
    Count,
    /// Nobody: straight to the overflow department.
    None,
}

/// Where calls go outside the department's period or on a holiday: exactly
/// one of the three fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AfterHours {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangup: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Department {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub active: bool,
    pub order: i64,
    pub pabx_code: Option<u16>,
    pub ring_strategy: RingStrategy,
    pub ring_target: RingTarget,
    pub ring_count: Option<u32>,
    pub agent_ring_timeout_s: u32,
    pub ring_timeout_s: u32,
    pub overflow_department_id: Option<i64>,
    pub close_on_hangup: bool,
    pub record: bool,
    pub period_id: Option<i64>,
    pub after_hours: Option<AfterHours>,
    pub auto_pause_after_missed: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub pabx_code: Option<u16>,
    #[serde(default = "simultaneous")]
    pub ring_strategy: RingStrategy,
    #[serde(default = "all")]
    pub ring_target: RingTarget,
    #[serde(default)]
    pub ring_count: Option<u32>,
    #[serde(default = "fifteen")]
    pub agent_ring_timeout_s: u32,
    #[serde(default = "thirty")]
    pub ring_timeout_s: u32,
    #[serde(default)]
    pub overflow_department_id: Option<i64>,
    #[serde(default)]
    pub close_on_hangup: bool,
    #[serde(default = "yes")]
    pub record: bool,
    #[serde(default)]
    pub period_id: Option<i64>,
    #[serde(default)]
    pub after_hours: Option<AfterHours>,
    #[serde(default)]
    pub auto_pause_after_missed: Option<u32>,
}

fn yes() -> bool {
    true
}
fn simultaneous() -> RingStrategy {
    RingStrategy::Simultaneous
}
fn all() -> RingTarget {
    RingTarget::All
}
fn fifteen() -> u32 {
    15
}
fn thirty() -> u32 {
    30
}

impl DepartmentInput {
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        e.name("name", &self.name, 120);
        e.check(
            self.description.chars().count() <= 2000,
            "description",
            "must be at most 2000 characters",
        );
        if let Some(code) = self.pabx_code {
            e.check(
                (100..=999).contains(&code),
                "pabx_code",
                "must be between 100 and 999",
            );
        }
        match (self.ring_target, self.ring_count) {
            (RingTarget::Count, None) => {
                e.add("ring_count", "is required when ring_target is count")
            }
            (RingTarget::Count, Some(n)) => {
                e.check((1..=100).contains(&n), "ring_count", "must be 1 to 100")
            }
            (_, Some(_)) => e.add("ring_count", "is only used when ring_target is count"),
            (_, None) => {}
        }
        e.check(
            (5..=600).contains(&self.agent_ring_timeout_s),
            "agent_ring_timeout_s",
            "must be 5 to 600 seconds",
        );
        e.check(
            (5..=3600).contains(&self.ring_timeout_s),
            "ring_timeout_s",
            "must be 5 to 3600 seconds",
        );
        if let Some(n) = self.auto_pause_after_missed {
            e.check(
                (1..=100).contains(&n),
                "auto_pause_after_missed",
                "must be 1 to 100",
            );
        }
        if let Some(ah) = &self.after_hours {
            let set = [
                ah.department_id.is_some(),
                ah.number.is_some(),
                ah.hangup.is_some(),
            ]
            .iter()
            .filter(|s| **s)
            .count();
            e.check(
                set == 1,
                "after_hours",
                "must hold exactly one of department_id, number, hangup",
            );
            if let Some(n) = &ah.number {
                e.dial_string("after_hours.number", n, 20);
            }
            if ah.hangup == Some(false) {
                e.add("after_hours.hangup", "must be true when given");
            }
        }
        e.into_result()
    }
}

impl Department {
    pub fn to_input(&self) -> DepartmentInput {
        DepartmentInput {
            name: self.name.clone(),
            description: self.description.clone(),
            active: self.active,
            order: self.order,
            pabx_code: self.pabx_code,
            ring_strategy: self.ring_strategy,
            ring_target: self.ring_target,
            ring_count: self.ring_count,
            agent_ring_timeout_s: self.agent_ring_timeout_s,
            ring_timeout_s: self.ring_timeout_s,
            overflow_department_id: self.overflow_department_id,
            close_on_hangup: self.close_on_hangup,
            record: self.record,
            period_id: self.period_id,
            after_hours: self.after_hours.clone(),
            auto_pause_after_missed: self.auto_pause_after_missed,
        }
    }
}
