//! Parsing and printing of digest `Authorization` / `WWW-Authenticate`
//! header values (RFC 7616 §3.3–3.4, RFC 8760, RFC 3261 §22.4 and §25).
//!
//! Values arrive from the network, so the parser is total: any input yields
//! a value or a [`HeaderError`] saying what was wrong, never a panic, and its
//! cost is linear in the input (the number of parameters is capped so that
//! duplicate detection stays cheap).
//!
//! The parser is lenient where deployed phones are sloppy and it costs no
//! safety (case of names, quoted or unquoted values, extra whitespace, empty
//! list elements) and strict where ambiguity could be abused (duplicate
//! parameters, control characters, unterminated quotes, junk between
//! parameters).

use std::fmt::{self, Write as _};

use super::algorithm::Algorithm;

/// More parameters than any real client sends; caps the quadratic
/// duplicate check and the work an attacker can make us do.
pub const MAX_PARAMS: usize = 32;

/// Why a header value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("empty header value")]
    Empty,
    #[error("authentication scheme is {0:?}, not Digest")]
    NotDigest(String),
    #[error("syntax error at byte {pos}: expected {expected}")]
    Syntax { pos: usize, expected: &'static str },
    #[error("unterminated quoted string starting at byte {0}")]
    UnterminatedQuote(usize),
    #[error("control character in parameter value at byte {0}")]
    ControlChar(usize),
    #[error("parameter {0:?} appears more than once")]
    Duplicate(String),
    #[error("more than {MAX_PARAMS} parameters")]
    TooManyParams,
    #[error("required parameter {0:?} is missing")]
    Missing(&'static str),
    #[error("unknown digest algorithm {0:?}")]
    UnknownAlgorithm(String),
    #[error("unknown qop {0:?}")]
    InvalidQop(String),
    #[error("nc must be 8 hex digits, got {0:?}")]
    InvalidNc(String),
    #[error("invalid value {value:?} for {name:?}")]
    InvalidValue { name: &'static str, value: String },
}

/// Quality of protection (RFC 7616 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// Authentication of the request line only.
    Auth,
    /// Authentication including the body; parsed so it can be refused with a
    /// clear reason rather than a syntax error.
    AuthInt,
}

impl Qop {
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    fn parse(s: &str) -> Option<Qop> {
        if s.eq_ignore_ascii_case("auth") {
            Some(Qop::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client's digest answer: the value of `Authorization` or
/// `Proxy-Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// The digest-uri exactly as the client sent it: it is hashed literally.
    pub uri: String,
    pub response: String,
    /// `MD5` when the client sent no `algorithm`.
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
    pub qop: Option<Qop>,
    /// Nonce count; on the wire exactly 8 hex digits (printed lower case).
    pub nc: Option<u32>,
    /// RFC 7616 `userhash=true`; SIP does not use it and the verifier refuses it.
    pub userhash: bool,
    /// Other auth-params, kept in order so nothing a client sent is lost.
    pub params: Vec<(String, String)>,
}

/// A server's digest challenge: the value of `WWW-Authenticate` or
/// `Proxy-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub domain: Option<String>,
    pub nonce: String,
    pub opaque: Option<String>,
    /// The nonce was valid but expired: the client should retry with the new
    /// nonce without asking the user for a password again.
    pub stale: bool,
    pub algorithm: Algorithm,
    /// Offered qop values; empty means no `qop` parameter (RFC 2069 style).
    pub qop: Vec<Qop>,
    pub userhash: bool,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// A challenge with `qop="auth"`, the form this server always sends.
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>, algorithm: Algorithm) -> Self {
        Challenge {
            realm: realm.into(),
            domain: None,
            nonce: nonce.into(),
            opaque: None,
            stale: false,
            algorithm,
            qop: vec![Qop::Auth],
            userhash: false,
            params: Vec::new(),
        }
    }

    /// Parses a `WWW-Authenticate` / `Proxy-Authenticate` value (for the
    /// bridge's own registrations to trunks).
    pub fn parse(input: &str) -> Result<Challenge, HeaderError> {
        let params = parse_digest(input)?;
        let mut realm = None;
        let mut domain = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut stale = false;
        let mut algorithm = Algorithm::Md5;
        let mut qop = Vec::new();
        let mut userhash = false;
        let mut extra = Vec::new();
        for p in params {
            let name = p.name.to_ascii_lowercase();
            match name.as_str() {
                "realm" => realm = Some(p.value),
                "domain" => domain = Some(p.value),
                "nonce" => nonce = Some(p.value),
                "opaque" => opaque = Some(p.value),
                "stale" => stale = p.value.eq_ignore_ascii_case("true"),
                "algorithm" => algorithm = parse_algorithm(&p.value)?,
                "userhash" => userhash = p.value.eq_ignore_ascii_case("true"),
                "qop" => {
                    // Unknown qop options are ignored (RFC 7616 §3.3).
                    for item in p.value.split(',') {
                        if let Some(q) = Qop::parse(item.trim_matches(is_lws_char))
                            && !qop.contains(&q)
                        {
                            qop.push(q);
                        }
                    }
                }
                _ => extra.push((p.name, p.value)),
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(HeaderError::Missing("realm"))?,
            domain,
            nonce: nonce.ok_or(HeaderError::Missing("nonce"))?,
            opaque,
            stale,
            algorithm,
            qop,
            userhash,
            params: extra,
        })
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest realm=")?;
        write_quoted(f, &self.realm)?;
        if let Some(domain) = &self.domain {
            f.write_str(", domain=")?;
            write_quoted(f, domain)?;
        }
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        if let Some(opaque) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, opaque)?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if !self.qop.is_empty() {
            f.write_str(", qop=\"")?;
            for (i, q) in self.qop.iter().enumerate() {
                if i > 0 {
                    f.write_char(',')?;
                }
                f.write_str(q.as_str())?;
            }
            f.write_char('"')?;
        }
        if self.userhash {
            f.write_str(", userhash=true")?;
        }
        write_extra(f, &self.params)
    }
}

impl Credentials {
    /// Parses an `Authorization` / `Proxy-Authorization` value.
    pub fn parse(input: &str) -> Result<Credentials, HeaderError> {
        let params = parse_digest(input)?;
        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut algorithm = Algorithm::Md5;
        let mut cnonce = None;
        let mut opaque = None;
        let mut qop = None;
        let mut nc = None;
        let mut userhash = false;
        let mut extra = Vec::new();
        for p in params {
            let name = p.name.to_ascii_lowercase();
            match name.as_str() {
                "username" => username = Some(p.value),
                "realm" => realm = Some(p.value),
                "nonce" => nonce = Some(p.value),
                "uri" => uri = Some(p.value),
                "response" => response = Some(p.value),
                "algorithm" => algorithm = parse_algorithm(&p.value)?,
                "cnonce" => cnonce = Some(p.value),
                "opaque" => opaque = Some(p.value),
                "qop" => {
                    // Some phones quote the qop token; accept it either way.
                    qop = Some(Qop::parse(&p.value).ok_or(HeaderError::InvalidQop(p.value))?)
                }
                "nc" => nc = Some(parse_nc(&p.value)?),
                "userhash" => userhash = p.value.eq_ignore_ascii_case("true"),
                _ => extra.push((p.name, p.value)),
            }
        }
        if qop.is_some() {
            // With qop, cnonce and nc are part of the hashed response.
            if cnonce.is_none() {
                return Err(HeaderError::Missing("cnonce"));
            }
            if nc.is_none() {
                return Err(HeaderError::Missing("nc"));
            }
        }
        Ok(Credentials {
            username: username.ok_or(HeaderError::Missing("username"))?,
            realm: realm.ok_or(HeaderError::Missing("realm"))?,
            nonce: nonce.ok_or(HeaderError::Missing("nonce"))?,
            uri: uri.ok_or(HeaderError::Missing("uri"))?,
            response: response.ok_or(HeaderError::Missing("response"))?,
            algorithm,
            cnonce,
            opaque,
            qop,
            nc,
            userhash,
            params: extra,
        })
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest username=")?;
        write_quoted(f, &self.username)?;
        f.write_str(", realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        f.write_str(", uri=")?;
        write_quoted(f, &self.uri)?;
        f.write_str(", response=")?;
        write_quoted(f, &self.response)?;
        write!(f, ", algorithm={}", self.algorithm)?;
        if let Some(cnonce) = &self.cnonce {
            f.write_str(", cnonce=")?;
            write_quoted(f, cnonce)?;
        }
        if let Some(opaque) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, opaque)?;
        }
        if let Some(qop) = self.qop {
            write!(f, ", qop={qop}")?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        if self.userhash {
            f.write_str(", userhash=true")?;
        }
        write_extra(f, &self.params)
    }
}

fn parse_algorithm(value: &str) -> Result<Algorithm, HeaderError> {
    value
        .parse()
        .map_err(|_| HeaderError::UnknownAlgorithm(value.to_owned()))
}

fn parse_nc(value: &str) -> Result<u32, HeaderError> {
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HeaderError::InvalidNc(value.to_owned()));
    }
    u32::from_str_radix(value, 16).map_err(|_| HeaderError::InvalidNc(value.to_owned()))
}

/// Writes extension parameters; a name that is not a token cannot be printed
/// safely (it could inject parameters), so it is skipped.
fn write_extra(f: &mut fmt::Formatter<'_>, params: &[(String, String)]) -> fmt::Result {
    for (name, value) in params {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            continue;
        }
        write!(f, ", {name}=")?;
        write_quoted(f, value)?;
    }
    Ok(())
}

/// Writes `value` as a quoted-string. `"` and `\` are escaped; control
/// characters other than HTAB are dropped, because no valid realm, nonce or
/// user name contains them and a raw CR/LF would inject header lines.
fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                f.write_char('\\')?;
                f.write_char(c)?;
            }
            c if is_forbidden_control(c) => {}
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn is_forbidden_control(c: char) -> bool {
    (c.is_ascii_control() && c != '\t') || c == '\u{7f}'
}

/// RFC 7230 tchar; a superset of the RFC 3261 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_lws_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// One `name=value` pair, value already unquoted.
struct Param {
    name: String,
    value: String,
}

/// Splits `Digest name=value, ...` into parameters, checking the scheme,
/// the syntax and duplicates (case-insensitive).
fn parse_digest(input: &str) -> Result<Vec<Param>, HeaderError> {
    let mut p = Parser { s: input, pos: 0 };
    p.skip_lws();
    if p.at_end() {
        return Err(HeaderError::Empty);
    }
    let scheme = p.token().ok_or(HeaderError::Syntax {
        pos: p.pos,
        expected: "authentication scheme",
    })?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(HeaderError::NotDigest(scheme.to_owned()));
    }
    let after_scheme = p.pos;
    p.skip_lws();
    if !p.at_end() && p.pos == after_scheme {
        return Err(HeaderError::Syntax {
            pos: p.pos,
            expected: "whitespace after scheme",
        });
    }
    let mut params: Vec<Param> = Vec::new();
    loop {
        p.skip_lws();
        if p.at_end() {
            break;
        }
        if p.eat(b',') {
            // Empty list elements are allowed (RFC 7230 §7).
            continue;
        }
        let name_pos = p.pos;
        let name = p.token().ok_or(HeaderError::Syntax {
            pos: name_pos,
            expected: "parameter name",
        })?;
        p.skip_lws();
        if !p.eat(b'=') {
            return Err(HeaderError::Syntax {
                pos: p.pos,
                expected: "'=' after parameter name",
            });
        }
        p.skip_lws();
        let value = if p.peek() == Some(b'"') {
            p.quoted()?
        } else {
            let start = p.pos;
            p.unquoted_value().ok_or(HeaderError::Syntax {
                pos: start,
                expected: "parameter value",
            })?
        };
        if params.iter().any(|q| q.name.eq_ignore_ascii_case(name)) {
            return Err(HeaderError::Duplicate(name.to_ascii_lowercase()));
        }
        if params.len() == MAX_PARAMS {
            return Err(HeaderError::TooManyParams);
        }
        params.push(Param {
            name: name.to_owned(),
            value,
        });
        p.skip_lws();
        if p.at_end() {
            break;
        }
        if !p.eat(b',') {
            return Err(HeaderError::Syntax {
                pos: p.pos,
                expected: "',' between parameters",
            });
        }
    }
    Ok(params)
}

/// A cursor over the input; `pos` is always on a char boundary because it
/// only advances over ASCII bytes or whole chars.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Linear white space; folding has been undone or is tolerated as plain
    /// CR/LF between parameters.
    fn skip_lws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.s[start..self.pos])
    }

    /// An unquoted value: a token, leniently widened to any printable
    /// characters up to a separator, because some phones send `uri=sip:x@y`
    /// unquoted.
    fn unquoted_value(&mut self) -> Option<String> {
        let start = self.pos;
        let rest = &self.s[self.pos..];
        let len = rest
            .find(|c: char| is_lws_char(c) || c == ',' || c == '"' || is_forbidden_control(c))
            .unwrap_or(rest.len());
        self.pos += len;
        (len > 0).then(|| self.s[start..self.pos].to_owned())
    }

    /// A quoted-string starting at the current `"`, returned unescaped.
    fn quoted(&mut self) -> Result<String, HeaderError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.s[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            let at = self.pos + i;
            match c {
                '"' => {
                    self.pos = at + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((j, e)) if is_forbidden_control(e) => {
                        return Err(HeaderError::ControlChar(self.pos + j));
                    }
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                c if is_forbidden_control(c) => return Err(HeaderError::ControlChar(at)),
                c => out.push(c),
            }
        }
        Err(HeaderError::UnterminatedQuote(open))
    }
}
