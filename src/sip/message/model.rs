//! The lossless message model.
//!
//! A `SipMessage` is its start line, its header fields in order (each the
//! exact bytes received) and its body, all `Bytes` slices of the one buffer
//! that was parsed.  Serializing an unmodified message gives back its bytes;
//! editing replaces only the fields touched.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::BuildError;
use super::headers::{HeaderField, HeaderName};
use super::method::Method;
use super::syntax::is_token;

/// `Method SP Request-URI SP SIP-Version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    pub(crate) raw: Bytes,
    pub(crate) method: Method,
    pub(crate) uri: Bytes,
    pub(crate) version: Bytes,
}

/// `SIP-Version SP Status-Code SP Reason-Phrase`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    pub(crate) raw: Bytes,
    pub(crate) version: Bytes,
    pub(crate) status: u16,
    /// Raw octets: the reason phrase may be UTF-8 or anything else.
    pub(crate) reason: Bytes,
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request(RequestLine),
    Response(StatusLine),
}

impl StartLine {
    /// The line exactly as received, without CRLF.
    pub fn raw(&self) -> &Bytes {
        match self {
            StartLine::Request(r) => &r.raw,
            StartLine::Response(s) => &s.raw,
        }
    }

    /// The SIP-Version token as written (e.g. `SIP/2.0`).
    pub fn version(&self) -> &[u8] {
        match self {
            StartLine::Request(r) => &r.version,
            StartLine::Response(s) => &s.version,
        }
    }
}

/// A parsed SIP request or response.  See the accessor methods for typed
/// reads (parsed on demand) and `to_bytes` for serialization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    start: StartLine,
    fields: Vec<HeaderField>,
    body: Bytes,
}

impl SipMessage {
    pub(crate) fn from_parts(start: StartLine, fields: Vec<HeaderField>, body: Bytes) -> Self {
        SipMessage {
            start,
            fields,
            body,
        }
    }

    /// The start line.
    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request(_))
    }

    /// True for a response.
    pub fn is_response(&self) -> bool {
        matches!(self.start, StartLine::Response(_))
    }

    /// The request method; `None` for a response.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request(r) => Some(&r.method),
            StartLine::Response(_) => None,
        }
    }

    /// The Request-URI as written; parse it with `request_uri()`.
    pub fn request_uri_raw(&self) -> Option<&[u8]> {
        match &self.start {
            StartLine::Request(r) => Some(&r.uri),
            StartLine::Response(_) => None,
        }
    }

    /// The status code (100..=699); `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response(s) => Some(s.status),
            StartLine::Request(_) => None,
        }
    }

    /// The reason phrase octets (may be empty, may be non-UTF-8).
    pub fn reason(&self) -> Option<&[u8]> {
        match &self.start {
            StartLine::Response(s) => Some(&s.reason),
            StartLine::Request(_) => None,
        }
    }

    /// True when the start line says exactly SIP/2.0 (case-insensitive
    /// "SIP"); otherwise the server answers 505.
    pub fn is_sip_2_0(&self) -> bool {
        self.start.version().eq_ignore_ascii_case(b"SIP/2.0")
    }

    /// All header fields in order.
    pub fn fields(&self) -> &[HeaderField] {
        &self.fields
    }

    /// The body (exactly Content-Length bytes, or the rest of a datagram).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Fields with this name (case-insensitive, compact forms resolved).
    pub fn fields_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderField> + 'a {
        let wanted = HeaderName::from_bytes(name.as_bytes());
        self.fields.iter().filter(move |f| {
            if wanted == HeaderName::Other {
                f.kind() == HeaderName::Other && f.name().eq_ignore_ascii_case(name.as_bytes())
            } else {
                f.kind() == wanted
            }
        })
    }

    pub(crate) fn fields_of(&self, kind: HeaderName) -> impl Iterator<Item = &HeaderField> {
        self.fields.iter().filter(move |f| f.kind() == kind)
    }

    /// The raw value of the first header with this name (trimmed, possibly
    /// folded).  `header("v")`, `header("via")` and `header("Via")` agree.
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a Bytes> {
        self.fields_named(name).next().map(HeaderField::value)
    }

    /// The raw values of every header with this name, in order.  Values are
    /// per header line; use `header_list` to split comma-separated lists.
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.fields_named(name).map(HeaderField::value)
    }

    /// Every comma-separated element of every header with this name, with
    /// folding removed.  Splits outside quoted strings and `<...>` only; use
    /// it for list-valued headers (Allow, Supported, Route, ...), not for
    /// Date, User-Agent or authentication headers.
    pub fn header_list(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        for f in self.fields_named(name) {
            let text = f.value_text();
            out.extend(
                super::syntax::split_list(&text)
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
        out
    }

    /// Serializes the message: start line, fields as stored, empty line,
    /// body.  An unedited message gives back the bytes it was parsed from
    /// (minus any leading CRLFs and any octets after the body).
    pub fn to_bytes(&self) -> Bytes {
        let len = self.start.raw().len()
            + 4
            + self.fields.iter().map(|f| f.raw().len()).sum::<usize>()
            + self.body.len();
        let mut out = BytesMut::with_capacity(len);
        out.put_slice(self.start.raw());
        out.put_slice(b"\r\n");
        for f in &self.fields {
            out.put_slice(f.raw());
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
        out.freeze()
    }

    // ----- editing -------------------------------------------------------

    /// Appends a header field `name: value`.
    pub fn push_header(&mut self, name: &str, value: &str) -> Result<(), BuildError> {
        let f = checked_field(name, value)?;
        self.fields.push(f);
        Ok(())
    }

    /// Inserts a header field at `index` (clamped to the end).
    pub fn insert_header(
        &mut self,
        index: usize,
        name: &str,
        value: &str,
    ) -> Result<(), BuildError> {
        let f = checked_field(name, value)?;
        self.fields.insert(index.min(self.fields.len()), f);
        Ok(())
    }

    /// Removes every field with this name; returns how many were removed.
    pub fn remove_header(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|f| !f.is(name));
        before - self.fields.len()
    }

    /// Replaces the first field with this name by `name: value` (at the same
    /// position) and removes the others; appends when there is none.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), BuildError> {
        let f = checked_field(name, value)?;
        match self.fields.iter().position(|x| x.is(name)) {
            Some(i) => {
                if let Some(slot) = self.fields.get_mut(i) {
                    *slot = f;
                }
                let mut idx = 0;
                self.fields.retain(|x| {
                    let keep = idx == i || !x.is(name);
                    idx += 1;
                    keep
                });
            }
            None => self.fields.push(f),
        }
        Ok(())
    }

    /// Adds a Via value on top (as a new first Via field, placed before the
    /// current top Via so the field order stays meaningful).
    pub fn prepend_via(&mut self, via_value: &str) -> Result<(), BuildError> {
        let f = checked_field("Via", via_value)?;
        let at = self
            .fields
            .iter()
            .position(|x| x.kind() == HeaderName::Via)
            .unwrap_or(0);
        self.fields.insert(at, f);
        Ok(())
    }

    /// Removes the top Via value (only the first element when the top Via
    /// field holds a comma-separated list).  Returns false when there is no
    /// Via.  Other fields keep their bytes.
    pub fn remove_top_via(&mut self) -> bool {
        let Some(i) = self.fields.iter().position(|x| x.kind() == HeaderName::Via) else {
            return false;
        };
        let Some(field) = self.fields.get(i) else {
            return false;
        };
        let text = field.value_text();
        let parts: Vec<&str> = super::syntax::split_list(&text);
        if parts.len() <= 1 {
            self.fields.remove(i);
        } else {
            let rest = parts.get(1..).unwrap_or(&[]).join(", ");
            let name = String::from_utf8_lossy(field.name()).into_owned();
            self.fields[i] = HeaderField::new(&name, &rest);
        }
        true
    }

    /// Replaces the body, updates Content-Length (in place, or appended) and
    /// sets Content-Type when given (removes it for an empty body when
    /// `content_type` is `None` and the body is empty).
    pub fn set_body(&mut self, content_type: Option<&str>, body: Bytes) -> Result<(), BuildError> {
        if let Some(ct) = content_type {
            self.set_header("Content-Type", ct)?;
        } else if body.is_empty() {
            self.remove_header("Content-Type");
        }
        self.set_header("Content-Length", &body.len().to_string())?;
        self.body = body;
        Ok(())
    }
}

/// Validates a header name (token) and value (no CR/LF) and builds a field.
pub(crate) fn checked_field(name: &str, value: &str) -> Result<HeaderField, BuildError> {
    if !is_token(name.as_bytes()) {
        return Err(BuildError::HeaderName(name.to_owned()));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(BuildError::HeaderValue(name.to_owned()));
    }
    Ok(HeaderField::new(name, value.trim_matches([' ', '\t'])))
}
