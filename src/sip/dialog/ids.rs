//! Where tags, branches and Call-IDs come from.
//!
//! The dialog core never reads a clock or an entropy source by itself: the
//! driver hands it an `IdSource`.  `CounterIds` is deterministic (a prefix
//! plus a counter: tests, or production with a prefix unique per process
//! start, e.g. from `RandomIds`); `RandomIds` draws from the thread RNG.

use super::message::BRANCH_MAGIC_COOKIE;

/// A source of fresh, unique tokens (RFC 3261 `token` characters only).
pub trait IdSource {
    /// A new token, never returned before by this source.
    fn next_token(&mut self) -> String;

    /// A From/To tag (§19.3: at least 32 bits of randomness when random).
    fn tag(&mut self) -> String {
        self.next_token()
    }

    /// A Via branch with the RFC 3261 magic cookie (§8.1.1.7).
    fn branch(&mut self) -> String {
        format!("{BRANCH_MAGIC_COOKIE}{}", self.next_token())
    }

    /// A Call-ID `token@host` (§8.1.1.4).
    fn call_id(&mut self, host: &str) -> String {
        let token = self.next_token();
        if host.is_empty() {
            token
        } else {
            format!("{token}@{host}")
        }
    }
}

/// Deterministic ids: `{prefix}{counter}`.  The prefix must be unique per
/// process start (branches and Call-IDs must not repeat across restarts)
/// and consist of token characters.
#[derive(Debug, Clone)]
pub struct CounterIds {
    prefix: String,
    next: u64,
}

impl CounterIds {
    pub fn new(prefix: impl Into<String>) -> CounterIds {
        let prefix: String = prefix.into();
        let prefix = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(*c))
            .collect();
        CounterIds { prefix, next: 1 }
    }
}

impl IdSource for CounterIds {
    fn next_token(&mut self) -> String {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        format!("{}{n}", self.prefix)
    }
}

/// Random ids: 64 bits from the thread RNG, hex.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_token(&mut self) -> String {
        format!("{:016x}", rand::random::<u64>())
    }
}
