//! Typed reads of a `SipMessage`, parsed on demand from the raw fields.
//!
//! Every accessor returns a `Result`/`Option` and never panics: a broken
//! header only fails the accessor that reads it.  Nothing is cached; call an
//! accessor once and keep the value if you need it repeatedly.

use std::borrow::Cow;
use std::fmt;

use super::error::HeaderError;
use super::headers::{HeaderField, HeaderName};
use super::method::Method;
use super::model::SipMessage;
use super::name_addr::{Contacts, NameAddr};
use super::syntax::{is_token, is_word_byte, parse_digits, split_list, trim_lws, unfold};
use super::uri::Uri;
use super::via::Via;

/// The CSeq header: sequence number and method (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &str) -> Result<CSeq, &'static str> {
        let s = trim_lws(s);
        let digits_end = s.bytes().take_while(u8::is_ascii_digit).count();
        let seq = parse_digits(s.get(..digits_end).unwrap_or(""))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("sequence number missing or above 2^32-1")?;
        let rest = s.get(digits_end..).unwrap_or("");
        let method = trim_lws(rest);
        if method.len() == rest.len() {
            return Err("no whitespace between number and method");
        }
        let method = Method::from_token(method.as_bytes()).ok_or("bad method")?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// The value of a field as text with folding removed.
fn text(field: &HeaderField) -> Result<Cow<'_, str>, HeaderError> {
    let label = field.kind().label();
    match unfold(field.value()) {
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(|_| HeaderError::malformed(label, "not UTF-8")),
        Cow::Owned(v) => String::from_utf8(v)
            .map(Cow::Owned)
            .map_err(|_| HeaderError::malformed(label, "not UTF-8")),
    }
}

impl SipMessage {
    /// The only field of a kind: `Missing` / `Duplicated` otherwise.
    fn single(&self, kind: HeaderName) -> Result<&HeaderField, HeaderError> {
        let mut it = self.fields_of(kind);
        let first = it.next().ok_or(HeaderError::Missing(kind.label()))?;
        if it.next().is_some() {
            return Err(HeaderError::Duplicated(kind.label()));
        }
        Ok(first)
    }

    /// The at-most-one field of a kind.
    fn optional(&self, kind: HeaderName) -> Result<Option<&HeaderField>, HeaderError> {
        match self.single(kind) {
            Ok(f) => Ok(Some(f)),
            Err(HeaderError::Missing(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Parsed Request-URI (`Missing` for a response).
    pub fn request_uri(&self) -> Result<Uri, HeaderError> {
        let raw = self
            .request_uri_raw()
            .ok_or(HeaderError::Missing("Request-URI"))?;
        let s = std::str::from_utf8(raw)
            .map_err(|_| HeaderError::malformed("Request-URI", "not UTF-8"))?;
        Uri::parse(s).map_err(|e| HeaderError::malformed("Request-URI", e.0))
    }

    /// Call-ID, borrowed from the message (`word [@ word]`).
    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let f = self.single(HeaderName::CallId)?;
        let v: &[u8] = f.value();
        let ok = !v.is_empty()
            && v.iter().all(|&b| is_word_byte(b) || b == b'@')
            && v.iter().filter(|&&b| b == b'@').count() <= 1
            && v.first() != Some(&b'@')
            && v.last() != Some(&b'@');
        if !ok {
            return Err(HeaderError::malformed("Call-ID", "not word[@word]"));
        }
        std::str::from_utf8(v).map_err(|_| HeaderError::malformed("Call-ID", "not UTF-8"))
    }

    /// CSeq (exactly one header).
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        let f = self.single(HeaderName::CSeq)?;
        CSeq::parse(&text(f)?).map_err(|r| HeaderError::malformed("CSeq", r))
    }

    fn name_addr(&self, kind: HeaderName) -> Result<NameAddr, HeaderError> {
        let f = self.single(kind)?;
        NameAddr::parse(&text(f)?).map_err(|r| HeaderError::malformed(kind.label(), r))
    }

    /// From (exactly one header).
    pub fn from(&self) -> Result<NameAddr, HeaderError> {
        self.name_addr(HeaderName::From)
    }

    /// To (exactly one header).
    pub fn to(&self) -> Result<NameAddr, HeaderError> {
        self.name_addr(HeaderName::To)
    }

    /// Every Via value across all Via fields, top first.  An empty list is
    /// `Missing`.
    pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
        let mut out = Vec::new();
        for f in self.fields_of(HeaderName::Via) {
            let t = text(f)?;
            for part in split_list(&t) {
                out.push(Via::parse(part).map_err(|r| HeaderError::malformed("Via", r))?);
            }
        }
        if out.is_empty() {
            return Err(HeaderError::Missing("Via"));
        }
        Ok(out)
    }

    /// The topmost Via value (only it is parsed).
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let f = self
            .fields_of(HeaderName::Via)
            .next()
            .ok_or(HeaderError::Missing("Via"))?;
        let t = text(f)?;
        let first = split_list(&t).into_iter().next().unwrap_or("");
        Via::parse(first).map_err(|r| HeaderError::malformed("Via", r))
    }

    /// A comma list of name-addrs over all fields of a kind.
    fn name_addr_list(&self, kind: HeaderName) -> Result<Vec<NameAddr>, HeaderError> {
        let mut out = Vec::new();
        for f in self.fields_of(kind) {
            let t = text(f)?;
            for part in split_list(&t) {
                out.push(
                    NameAddr::parse(part).map_err(|r| HeaderError::malformed(kind.label(), r))?,
                );
            }
        }
        Ok(out)
    }

    /// Contacts: `Wildcard` for `Contact: *` (which must then be the only
    /// contact), else the list (empty when there is no Contact header).
    pub fn contacts(&self) -> Result<Contacts, HeaderError> {
        let mut star = false;
        let mut count = 0;
        for f in self.fields_of(HeaderName::Contact) {
            let t = text(f)?;
            for part in split_list(&t) {
                count += 1;
                star |= part == "*";
            }
        }
        if star {
            return if count == 1 {
                Ok(Contacts::Wildcard)
            } else {
                Err(HeaderError::malformed(
                    "Contact",
                    "* mixed with other contacts",
                ))
            };
        }
        self.name_addr_list(HeaderName::Contact).map(Contacts::List)
    }

    /// Route values, in order.
    pub fn route(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.name_addr_list(HeaderName::Route)
    }

    /// Record-Route values, in order.
    pub fn record_route(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.name_addr_list(HeaderName::RecordRoute)
    }

    /// Expires in seconds (values above 2^32-1 saturate, RFC 3261 §10.2.4
    /// and §20.19 leave large values to the server).
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        let Some(f) = self.optional(HeaderName::Expires)? else {
            return Ok(None);
        };
        let t = text(f)?;
        let t = trim_lws(&t);
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HeaderError::malformed("Expires", "not delta-seconds"));
        }
        Ok(Some(parse_digits(t).map_or(u32::MAX, |n| {
            u32::try_from(n).unwrap_or(u32::MAX)
        })))
    }

    /// Max-Forwards (0..=255); `None` when absent.
    pub fn max_forwards(&self) -> Result<Option<u8>, HeaderError> {
        let Some(f) = self.optional(HeaderName::MaxForwards)? else {
            return Ok(None);
        };
        let t = text(f)?;
        parse_digits(trim_lws(&t))
            .and_then(|n| u8::try_from(n).ok())
            .map(Some)
            .ok_or(HeaderError::malformed(
                "Max-Forwards",
                "not a number 0..=255",
            ))
    }

    /// Content-Length; `None` when absent.
    pub fn content_length(&self) -> Result<Option<u32>, HeaderError> {
        let Some(f) = self.optional(HeaderName::ContentLength)? else {
            return Ok(None);
        };
        let t = text(f)?;
        parse_digits(trim_lws(&t))
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or(HeaderError::malformed("Content-Length", "not a number"))
    }

    /// Content-Type as written (with parameters), folding removed.
    pub fn content_type(&self) -> Option<String> {
        self.fields_of(HeaderName::ContentType)
            .next()
            .map(HeaderField::value_text)
    }

    /// The media type of Content-Type without parameters, lower-cased
    /// (`application/sdp`).
    pub fn media_type(&self) -> Option<String> {
        let ct = self.content_type()?;
        let essence = ct.split(';').next().unwrap_or("");
        Some(trim_lws(essence).to_ascii_lowercase())
    }

    /// User-Agent as text (lossy UTF-8, folding removed).
    pub fn user_agent(&self) -> Option<String> {
        self.fields_of(HeaderName::UserAgent)
            .next()
            .map(HeaderField::value_text)
    }

    /// Option-tags of every field of a kind (tokens, comma separated).
    fn option_tags(&self, kind: HeaderName) -> Result<Vec<String>, HeaderError> {
        let mut out = Vec::new();
        for f in self.fields_of(kind) {
            let t = text(f)?;
            if trim_lws(&t).is_empty() {
                continue; // an empty Supported is legal (RFC 3261 §20.37)
            }
            for part in split_list(&t) {
                if !is_token(part.as_bytes()) {
                    return Err(HeaderError::malformed(
                        kind.label(),
                        "option-tag is not a token",
                    ));
                }
                out.push(part.to_owned());
            }
        }
        Ok(out)
    }

    /// Require option-tags.
    pub fn require(&self) -> Result<Vec<String>, HeaderError> {
        self.option_tags(HeaderName::Require)
    }

    /// Proxy-Require option-tags.
    pub fn proxy_require(&self) -> Result<Vec<String>, HeaderError> {
        self.option_tags(HeaderName::ProxyRequire)
    }

    /// Supported option-tags (compact `k`).
    pub fn supported(&self) -> Result<Vec<String>, HeaderError> {
        self.option_tags(HeaderName::Supported)
    }

    /// Unsupported option-tags.
    pub fn unsupported(&self) -> Result<Vec<String>, HeaderError> {
        self.option_tags(HeaderName::Unsupported)
    }

    /// Allow: the methods listed (tokens).
    pub fn allow(&self) -> Result<Vec<Method>, HeaderError> {
        self.option_tags(HeaderName::Allow)?
            .iter()
            .map(|m| {
                Method::from_token(m.as_bytes())
                    .ok_or(HeaderError::malformed("Allow", "bad method"))
            })
            .collect()
    }
}
