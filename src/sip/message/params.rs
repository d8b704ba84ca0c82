//! `;name=value` parameter lists (URI parameters and header parameters).

use std::fmt;

use super::syntax::{Cursor, is_token_byte};

/// One parameter as written (value raw: a quoted value keeps its quotes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

/// An ordered parameter list.  Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<Param>);

impl Params {
    /// `Some(value)` when the parameter is present (`Some(None)` without
    /// `=value`).
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    /// The value of a parameter, with surrounding quotes removed.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten().map(|v| {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
    }

    /// True when the parameter is present (with or without value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets (replaces or appends) a parameter.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_owned);
        match self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(p) => p.value = value,
            None => self.0.push(Param {
                name: name.to_owned(),
                value,
            }),
        }
    }

    /// Removes a parameter; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
        before != self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }
}

impl fmt::Display for Params {
    /// Writes `;name[=value]` for each parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, ";{}", p.name)?;
            if let Some(v) = &p.value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

/// Characters of a header `gen-value` that is not quoted: token characters
/// plus those of a host (`:` and brackets for IPv6).
fn is_gen_value_byte(b: u8) -> bool {
    is_token_byte(b) || matches!(b, b':' | b'[' | b']')
}

/// Parses `*( SEMI generic-param )` of a header (RFC 3261 §25.1), allowing
/// LWS around `;` and `=`.  Stops (without error) at `,` or end of input,
/// which the caller checks.  An empty parameter name (`;;`) is an error.
pub(crate) fn parse_header_params(c: &mut Cursor<'_>) -> Result<Params, &'static str> {
    let mut params = Vec::new();
    loop {
        c.skip_ws();
        if !c.eat(b';') {
            return Ok(Params(params));
        }
        c.skip_ws();
        let name = c.take_while(is_token_byte);
        if name.is_empty() {
            return Err("empty parameter name");
        }
        c.skip_ws();
        let value = if c.eat(b'=') {
            c.skip_ws();
            let v = if c.peek() == Some(b'"') {
                c.quoted_raw().ok_or("unterminated quoted parameter")?
            } else {
                c.take_while(is_gen_value_byte)
            };
            if v.is_empty() {
                return Err("empty parameter value");
            }
            Some(v.to_owned())
        } else {
            None
        };
        params.push(Param {
            name: name.to_owned(),
            value,
        });
    }
}
