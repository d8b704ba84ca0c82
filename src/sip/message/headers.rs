//! Header names (canonical and compact forms) and raw header fields.
//!
//! A `HeaderField` keeps the exact bytes it was received as, so a proxied or
//! edited message reproduces every untouched header byte for byte, unknown
//! headers included.  Typed meaning is given on demand by the accessors of
//! `SipMessage`.

use bytes::Bytes;

/// The header names this layer knows, with their compact forms resolved.
/// Anything else is `Other`: compared by name, case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Accept,
    AcceptContact,
    Allow,
    AllowEvents,
    AuthenticationInfo,
    Authorization,
    CallId,
    Contact,
    ContentDisposition,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    Event,
    Expires,
    From,
    Identity,
    IdentityInfo,
    MaxForwards,
    MinExpires,
    ProxyAuthenticate,
    ProxyAuthorization,
    ProxyRequire,
    RecordRoute,
    ReferredBy,
    ReferTo,
    RejectContact,
    RequestDisposition,
    Require,
    RetryAfter,
    Route,
    Server,
    SessionExpires,
    Subject,
    Supported,
    Timestamp,
    To,
    Unsupported,
    UserAgent,
    Via,
    Warning,
    WwwAuthenticate,
    /// Not in the table above.
    Other,
}

/// (canonical name, compact form, variant)
const TABLE: &[(&str, Option<u8>, HeaderName)] = &[
    ("Accept", None, HeaderName::Accept),
    ("Accept-Contact", Some(b'a'), HeaderName::AcceptContact),
    ("Allow", None, HeaderName::Allow),
    ("Allow-Events", Some(b'u'), HeaderName::AllowEvents),
    ("Authentication-Info", None, HeaderName::AuthenticationInfo),
    ("Authorization", None, HeaderName::Authorization),
    ("Call-ID", Some(b'i'), HeaderName::CallId),
    ("Contact", Some(b'm'), HeaderName::Contact),
    ("Content-Disposition", None, HeaderName::ContentDisposition),
    ("Content-Encoding", Some(b'e'), HeaderName::ContentEncoding),
    ("Content-Length", Some(b'l'), HeaderName::ContentLength),
    ("Content-Type", Some(b'c'), HeaderName::ContentType),
    ("CSeq", None, HeaderName::CSeq),
    ("Date", None, HeaderName::Date),
    ("Event", Some(b'o'), HeaderName::Event),
    ("Expires", None, HeaderName::Expires),
    ("From", Some(b'f'), HeaderName::From),
    ("Identity", Some(b'y'), HeaderName::Identity),
    ("Identity-Info", Some(b'n'), HeaderName::IdentityInfo),
    ("Max-Forwards", None, HeaderName::MaxForwards),
    ("Min-Expires", None, HeaderName::MinExpires),
    ("Proxy-Authenticate", None, HeaderName::ProxyAuthenticate),
    ("Proxy-Authorization", None, HeaderName::ProxyAuthorization),
    ("Proxy-Require", None, HeaderName::ProxyRequire),
    ("Record-Route", None, HeaderName::RecordRoute),
    ("Referred-By", Some(b'b'), HeaderName::ReferredBy),
    ("Refer-To", Some(b'r'), HeaderName::ReferTo),
    ("Reject-Contact", Some(b'j'), HeaderName::RejectContact),
    (
        "Request-Disposition",
        Some(b'd'),
        HeaderName::RequestDisposition,
    ),
    ("Require", None, HeaderName::Require),
    ("Retry-After", None, HeaderName::RetryAfter),
    ("Route", None, HeaderName::Route),
    ("Server", None, HeaderName::Server),
    ("Session-Expires", Some(b'x'), HeaderName::SessionExpires),
    ("Subject", Some(b's'), HeaderName::Subject),
    ("Supported", Some(b'k'), HeaderName::Supported),
    ("Timestamp", None, HeaderName::Timestamp),
    ("To", Some(b't'), HeaderName::To),
    ("Unsupported", None, HeaderName::Unsupported),
    ("User-Agent", None, HeaderName::UserAgent),
    ("Via", Some(b'v'), HeaderName::Via),
    ("Warning", None, HeaderName::Warning),
    ("WWW-Authenticate", None, HeaderName::WwwAuthenticate),
];

impl HeaderName {
    /// Resolves a header name as written (any case, compact form allowed).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if let [c] = name {
            let c = c.to_ascii_lowercase();
            return TABLE
                .iter()
                .find(|(_, compact, _)| *compact == Some(c))
                .map_or(HeaderName::Other, |(_, _, h)| *h);
        }
        TABLE
            .iter()
            .find(|(canon, _, _)| canon.as_bytes().eq_ignore_ascii_case(name))
            .map_or(HeaderName::Other, |(_, _, h)| *h)
    }

    /// The canonical spelling, `None` for `Other`.
    pub fn canonical(self) -> Option<&'static str> {
        TABLE
            .iter()
            .find(|(_, _, h)| *h == self)
            .map(|(canon, _, _)| *canon)
    }

    /// The canonical spelling, or "header" for `Other` (for error messages).
    pub(crate) fn label(self) -> &'static str {
        self.canonical().unwrap_or("header")
    }
}

/// One header field exactly as received (or as built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// The whole field: name, colon, value, folded lines and final CRLF.
    raw: Bytes,
    /// The name as written (a sub-slice of `raw`).
    name: Bytes,
    /// The value without surrounding whitespace; may still contain line
    /// folding (CRLF followed by SP/HT), which typed parsers treat as a space.
    value: Bytes,
    kind: HeaderName,
}

impl HeaderField {
    pub(crate) fn from_parts(raw: Bytes, name: Bytes, value: Bytes) -> Self {
        let kind = HeaderName::from_bytes(&name);
        HeaderField {
            raw,
            name,
            value,
            kind,
        }
    }

    /// Builds a new field `Name: value\r\n`.  The caller has checked that the
    /// name is a token and the value has no CR/LF.
    pub(crate) fn new(name: &str, value: &str) -> Self {
        let raw = Bytes::from(format!("{name}: {value}\r\n"));
        let name_end = name.len();
        let value_start = name_end + 2;
        let value_end = value_start + value.len();
        let name_b = raw.slice(0..name_end);
        let value_b = raw.slice(value_start..value_end);
        HeaderField::from_parts(raw.clone(), name_b, value_b)
    }

    /// A copy of this field with `suffix` appended to its value, every other
    /// byte kept (used to add `;tag=` to a To header whose display name
    /// holds octets we would not re-create faithfully).
    pub(crate) fn with_value_suffix(&self, suffix: &str) -> HeaderField {
        let body = self.raw.strip_suffix(b"\r\n").unwrap_or(&self.raw);
        let mut raw = Vec::with_capacity(body.len() + suffix.len() + 2);
        raw.extend_from_slice(body);
        raw.extend_from_slice(suffix.as_bytes());
        raw.extend_from_slice(b"\r\n");
        HeaderField::reparse(Bytes::from(raw)).unwrap_or_else(|| self.clone())
    }

    /// Builds a field from one complete `name: value[CRLF]` line (adds the
    /// CRLF when missing).  `None` without a colon.
    pub(crate) fn reparse(raw: Bytes) -> Option<HeaderField> {
        let raw = if raw.ends_with(b"\r\n") {
            raw
        } else {
            let mut v = raw.to_vec();
            v.extend_from_slice(b"\r\n");
            Bytes::from(v)
        };
        let content = raw.get(..raw.len() - 2)?;
        let colon = content.iter().position(|&b| b == b':')?;
        let name = super::syntax::trim_lws_bytes(content.get(..colon)?);
        let value = super::syntax::trim_lws_bytes(content.get(colon + 1..)?);
        let name = raw.slice_ref(name);
        let value = if value.is_empty() {
            Bytes::new()
        } else {
            raw.slice_ref(value)
        };
        Some(HeaderField::from_parts(raw.clone(), name, value))
    }

    /// The exact bytes of this field including its terminating CRLF.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The name as written (`v`, `VIA`, `Via`, ...).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The resolved header kind (compact forms mapped).
    pub fn kind(&self) -> HeaderName {
        self.kind
    }

    /// The raw value, trimmed, possibly containing line folding.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// The value with folding replaced by spaces, lossily decoded as UTF-8.
    pub fn value_text(&self) -> String {
        String::from_utf8_lossy(&super::syntax::unfold(&self.value)).into_owned()
    }

    /// True when this field has the given name (case-insensitive, compact
    /// forms resolved: `is("Via")` matches a `v:` field).
    pub fn is(&self, name: &str) -> bool {
        let wanted = HeaderName::from_bytes(name.as_bytes());
        if wanted == HeaderName::Other {
            self.kind == HeaderName::Other && self.name.eq_ignore_ascii_case(name.as_bytes())
        } else {
            self.kind == wanted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms() {
        for (c, h) in [
            ("i", HeaderName::CallId),
            ("M", HeaderName::Contact),
            ("e", HeaderName::ContentEncoding),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("f", HeaderName::From),
            ("s", HeaderName::Subject),
            ("k", HeaderName::Supported),
            ("t", HeaderName::To),
            ("v", HeaderName::Via),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
        ] {
            assert_eq!(HeaderName::from_bytes(c.as_bytes()), h, "{c}");
        }
        assert_eq!(HeaderName::from_bytes(b"z"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"cAlL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
    }

    #[test]
    fn field_is() {
        let f = HeaderField::new("v", "SIP/2.0/UDP a");
        assert!(f.is("Via") && f.is("VIA") && f.is("v"));
        let g = HeaderField::new("X-Foo", "1");
        assert!(g.is("x-foo") && !g.is("Via"));
        assert_eq!(&g.raw()[..], b"X-Foo: 1\r\n");
        assert_eq!(&g.value()[..], b"1");
    }
}
