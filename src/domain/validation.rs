//! Field-level validation errors, collected rather than returned at the first
//! problem, so one 422 tells the admin everything that is wrong with a request.

use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field: its JSON path (`departments[0].department_id`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// The invalid fields of one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// An error list holding a single field.
    pub fn single(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(field, reason);
        e
    }

    pub fn add(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// Adds the error when `ok` is false.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, reason: impl Into<String>) {
        if !ok {
            self.add(field, reason);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was added.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Checks a human-readable name: present, bounded, no control characters.
    pub fn name(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.add(field, "must not be empty");
        } else if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if value.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        }
    }

    /// Checks a dialable number: digits with an optional leading `+`, and
    /// `*`/`#` which PBX feature codes use.
    pub fn dial_string(&mut self, field: &str, value: &str, max: usize) {
        let body = value.strip_prefix('+').unwrap_or(value);
        if body.is_empty() || body.len() > max {
            self.add(field, format!("must be 1 to {max} digits"));
        } else if !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        {
            self.add(field, "may hold only digits, *, # and a leading +");
        }
    }

    /// Checks a secret that will be used in SIP or AMI: long enough to
    /// resist guessing (toll fraud starts with weak SIP passwords) and free of
    /// characters that would break the configuration files it is rendered to.
    pub fn secret(&mut self, field: &str, value: &str) {
        if value.len() < 8 {
            self.add(field, "must be at least 8 characters");
        } else if value.len() > 128 {
            self.add(field, "must be at most 128 characters");
        } else if value.chars().any(|c| c.is_control() || c == '"') {
            self.add(
                field,
                "must not contain control characters or double quotes",
            );
        }
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}
