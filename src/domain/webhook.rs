//! Webhooks: where events are delivered, signed with the webhook's secret.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldErrors;

/// The events of SPEC §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "attendance.opened")]
    AttendanceOpened,
    #[serde(rename = "call.ringing")]
    CallRinging,
    #[serde(rename = "call.answered")]
    CallAnswered,
    #[serde(rename = "call.transferred")]
    CallTransferred,
    #[serde(rename = "call.ended")]
    CallEnded,
    #[serde(rename = "attendance.closed")]
    AttendanceClosed,
    #[serde(rename = "recording.ready")]
    RecordingReady,
    #[serde(rename = "recording.failed")]
    RecordingFailed,
    #[serde(rename = "agent.paused")]
    AgentPaused,
    #[serde(rename = "agent.unpaused")]
    AgentUnpaused,
    #[serde(rename = "registration.changed")]
    RegistrationChanged,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    pub events: Vec<EventType>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub events: Vec<EventType>,
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

impl WebhookInput {
    pub fn validate(&self, creating: bool) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        let url_ok = (self.url.starts_with("http://") || self.url.starts_with("https://"))
            && self.url.len() <= 2048
            && self.url.len() > "https://".len()
            && !self
                .url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control());
        e.check(url_ok, "url", "must be an http:// or https:// URL");
        match &self.secret {
            Some(s) => e.check(
                (16..=256).contains(&s.len()),
                "secret",
                "must be 16 to 256 characters",
            ),
            None if creating => e.add("secret", "is required"),
            None => {}
        }
        e.check(!self.events.is_empty(), "events", "must not be empty");
        for (i, ev) in self.events.iter().enumerate() {
            if self.events[..i].contains(ev) {
                e.add(format!("events[{i}]"), "event listed twice");
            }
        }
        e.into_result()
    }
}

impl Webhook {
    pub fn to_input(&self) -> WebhookInput {
        WebhookInput {
            url: self.url.clone(),
            secret: None,
            events: self.events.clone(),
            active: self.active,
        }
    }
}

/// One attempt history entry of an event to a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}
