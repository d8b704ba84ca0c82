//! Actions the bridge sends to Asterisk, and their wire encoding.
//!
//! AMI has no escaping: a CR or LF inside a value would end the header (or
//! the whole action) and let the rest be read as new headers or a new action,
//! e.g. a caller ID of `x\r\n\r\nAction: Command\r\nCommand: core stop now`.
//! Values reach us from API callers and SIP peers, so encoding *rejects* any
//! line break instead of guessing how to escape it.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::packet::Header;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("AMI action name {0:?} is empty or contains ':', CR or LF")]
    InvalidActionName(String),
    #[error("AMI header name {0:?} is empty or contains ':', CR or LF")]
    InvalidHeaderName(String),
    /// The injection guard.
    #[error("AMI header {name:?} has a CR or LF in its value")]
    LineBreakInValue { name: String },
    #[error("AMI header {0:?} is set by the encoder and may not be given")]
    ReservedHeader(String),
}

/// An AMI action: `Action: <name>`, an optional `ActionID`, then headers in
/// the order given (repeats allowed, e.g. several `Variable:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    name: String,
    action_id: Option<String>,
    headers: Vec<Header>,
}

impl Action {
    pub fn new(name: impl Into<String>) -> Self {
        Action {
            name: name.into(),
            action_id: None,
            headers: Vec::new(),
        }
    }

    /// Append a header. `ActionID` given here sets the action id.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        if name.eq_ignore_ascii_case("ActionID") {
            self.action_id = Some(value.into());
        } else {
            self.headers.push(Header::new(name, value));
        }
        self
    }

    /// `Variable: NAME=value` (Originate, Redirect's channel variables).
    pub fn variable(self, name: &str, value: &str) -> Self {
        self.header("Variable", format!("{name}={value}"))
    }

    /// `Setvar` of the call's protocol on `channel`, sent right before a
    /// `Redirect`: inheritable (`__`), so that the channel Asterisk then
    /// dials to the bridge carries it into `X-Protocol` (the rendered
    /// pre-dial handler) and the bridge continues that attendance.
    pub fn protocol_setvar(channel: &str, protocol: &str) -> Self {
        Action::new("Setvar")
            .header("Channel", channel)
            .header(
                "Variable",
                format!("__{}", super::tracker::PROTOCOL_VARIABLE),
            )
            .header("Value", protocol)
    }

    /// `Redirect` of `channel` to `exten`, priority 1, in `context` (a
    /// blind transfer; preceded by [`Action::protocol_setvar`], whose
    /// answer nobody waits for: without it the bridge opens its own).
    pub fn redirect(channel: &str, context: &str, exten: &str) -> Self {
        Action::new("Redirect")
            .header("Channel", channel)
            .header("Context", context)
            .header("Exten", exten)
            .header("Priority", "1")
    }

    pub fn with_action_id(mut self, id: impl Into<String>) -> Self {
        self.action_id = Some(id.into());
        self
    }

    pub fn set_action_id(&mut self, id: impl Into<String>) {
        self.action_id = Some(id.into());
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn action_id(&self) -> Option<&str> {
        self.action_id.as_deref()
    }

    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// `Login` with `Events: on` so the session receives every event class
    /// the AMI user may read.
    pub fn login(username: &str, secret: &str) -> Self {
        Action::new("Login")
            .header("Username", username)
            .header("Secret", secret)
            .header("Events", "on")
    }

    pub fn ping() -> Self {
        Action::new("Ping")
    }

    pub fn logoff() -> Self {
        Action::new("Logoff")
    }

    /// The list action used to re-read live channels after every login.
    pub fn core_show_channels() -> Self {
        Action::new("CoreShowChannels")
    }

    /// Hangs up `channel` with cause 16 (normal clearing): the API ending
    /// a call Asterisk carries.
    pub fn hangup(channel: &str) -> Self {
        Action::new("Hangup")
            .header("Channel", channel)
            .header("Cause", "16")
    }

    /// Every PJSIP endpoint with its contacts and device state (extension
    /// presence, re-read after a login).
    pub fn pjsip_show_endpoints() -> Self {
        Action::new("PJSIPShowEndpoints")
    }

    /// Check everything [`Action::encode`] would reject, without encoding.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if !valid_name(&self.name) {
            return Err(EncodeError::InvalidActionName(self.name.clone()));
        }
        if let Some(id) = &self.action_id {
            check_value("ActionID", id)?;
        }
        for h in &self.headers {
            if !valid_name(&h.name) {
                return Err(EncodeError::InvalidHeaderName(h.name.clone()));
            }
            if h.name.eq_ignore_ascii_case("Action") {
                return Err(EncodeError::ReservedHeader(h.name.clone()));
            }
            check_value(&h.name, &h.value)?;
        }
        Ok(())
    }

    /// Append the wire form (CRLF lines, blank line at the end) to `dst`.
    /// Nothing is written when the action is invalid.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.validate()?;
        dst.reserve(self.encoded_len_hint());
        put_line(dst, "Action", &self.name);
        if let Some(id) = &self.action_id {
            put_line(dst, "ActionID", id);
        }
        for h in &self.headers {
            put_line(dst, &h.name, &h.value);
        }
        dst.put_slice(b"\r\n");
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        self.encode(&mut buf)?;
        Ok(buf.freeze())
    }

    fn encoded_len_hint(&self) -> usize {
        let base = 12 + self.name.len() + self.action_id.as_ref().map_or(0, |i| 12 + i.len());
        base + self
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 4)
            .sum::<usize>()
            + 2
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.bytes().any(|c| matches!(c, b':' | b'\r' | b'\n'))
}

fn check_value(name: &str, value: &str) -> Result<(), EncodeError> {
    if value.bytes().any(|c| c == b'\r' || c == b'\n') {
        return Err(EncodeError::LineBreakInValue {
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn put_line(dst: &mut BytesMut, name: &str, value: &str) {
    dst.put_slice(name.as_bytes());
    dst.put_slice(b": ");
    dst.put_slice(value.as_bytes());
    dst.put_slice(b"\r\n");
}

/// Hands out unique `ActionID`s: `<prefix>-<n>`. The prefix should differ per
/// connection (e.g. include a session counter) so a late answer to an action
/// of a previous connection can never match a new one.
#[derive(Debug, Clone)]
pub struct ActionIds {
    prefix: String,
    next: u64,
}

impl ActionIds {
    pub fn new(prefix: impl Into<String>) -> Self {
        ActionIds {
            prefix: prefix.into(),
            next: 1,
        }
    }

    pub fn set_prefix(&mut self, prefix: impl Into<String>) {
        self.prefix = prefix.into();
    }

    pub fn next_id(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        format!("{}-{:06}", self.prefix, n)
    }
}
