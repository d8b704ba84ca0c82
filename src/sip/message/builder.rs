//! Building requests and responses.
//!
//! The builder writes header fields in the order given and always ends with
//! a Content-Length that matches the body, so what it produces frames
//! correctly on every transport.  `response_to` copies the headers RFC 3261
//! §8.2.6.2 requires, byte for byte, from the request.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::BuildError;
use super::headers::{HeaderField, HeaderName};
use super::method::Method;
use super::model::{SipMessage, checked_field};
use super::parse::parse;
use super::uri::Uri;

/// The default reason phrase of a status code (RFC 3261 §21 and friends).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

/// Builds a request or response.  Errors (bad header name/value) are kept
/// and reported by `to_bytes`/`build`, so calls can be chained.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    start_line: String,
    fields: Vec<HeaderField>,
    body: Bytes,
    error: Option<BuildError>,
}

impl MessageBuilder {
    /// `METHOD uri SIP/2.0`.
    pub fn request(method: &Method, uri: &Uri) -> Self {
        Self::with_start(format!("{method} {uri} SIP/2.0"), None)
    }

    /// `SIP/2.0 status reason`; `reason` defaults to `reason_phrase`.
    pub fn response(status: u16, reason: Option<&str>) -> Self {
        let error = (!(100..=699).contains(&status)).then_some(BuildError::Status(status));
        let reason = reason
            .unwrap_or_else(|| reason_phrase(status))
            .replace(['\r', '\n'], " ");
        Self::with_start(format!("SIP/2.0 {status} {reason}"), error)
    }

    fn with_start(start_line: String, error: Option<BuildError>) -> Self {
        MessageBuilder {
            start_line,
            fields: Vec::with_capacity(12),
            body: Bytes::new(),
            error,
        }
    }

    fn record(&mut self, r: Result<HeaderField, BuildError>) {
        match r {
            Ok(f) => self.fields.push(f),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    /// Appends `name: value` (name must be a token, value without CR/LF).
    pub fn header(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        let r = checked_field(name, &value.to_string());
        self.record(r);
        self
    }

    /// Appends an existing field exactly as it is (e.g. copied from a request).
    pub fn raw_field(mut self, field: HeaderField) -> Self {
        self.fields.push(field);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(self, content_type: &str, body: impl Into<Bytes>) -> Self {
        let mut b = self.header("Content-Type", content_type);
        b.body = body.into();
        b
    }

    /// Adds a tag to the To header when it has none (UAS responses, §8.2.6.2).
    pub fn to_tag(mut self, tag: &str) -> Self {
        let Some(i) = self.fields.iter().position(|f| f.kind() == HeaderName::To) else {
            return self;
        };
        let Some(field) = self.fields.get(i) else {
            return self;
        };
        let text = field.value_text();
        let has_tag = super::name_addr::NameAddr::parse(&text)
            .map(|n| n.tag().is_some())
            .unwrap_or(false);
        if !has_tag {
            let f = field.with_value_suffix(&format!(";tag={tag}"));
            if let Some(slot) = self.fields.get_mut(i) {
                *slot = f;
            }
        }
        self
    }

    /// Serializes; any Content-Length given is replaced by the real one.
    pub fn to_bytes(&self) -> Result<Bytes, BuildError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut out = BytesMut::with_capacity(
            self.start_line.len()
                + self.fields.iter().map(|f| f.raw().len()).sum::<usize>()
                + 32
                + self.body.len(),
        );
        out.put_slice(self.start_line.as_bytes());
        out.put_slice(b"\r\n");
        for f in self
            .fields
            .iter()
            .filter(|f| f.kind() != HeaderName::ContentLength)
        {
            out.put_slice(f.raw());
        }
        out.put_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.put_slice(&self.body);
        Ok(out.freeze())
    }

    /// Serializes and parses back into a `SipMessage`.
    pub fn build(&self) -> Result<SipMessage, BuildError> {
        Ok(parse(self.to_bytes()?)?)
    }
}

/// Starts a response to `request` with the headers RFC 3261 §8.2.6.2 says
/// to copy: every Via (same order), From, To, Call-ID and CSeq, byte for
/// byte.  Add a To tag with `.to_tag(..)` (every response but 100 from a
/// UAS needs one) and Record-Route/Contact as the dialog rules require.
/// Fails when the request lacks one of those headers.
pub fn response_to(
    request: &SipMessage,
    status: u16,
    reason: Option<&str>,
) -> Result<MessageBuilder, BuildError> {
    let mut b = MessageBuilder::response(status, reason);
    for f in request.fields_of(HeaderName::Via) {
        b = b.raw_field(f.clone());
    }
    for (kind, label) in [
        (HeaderName::From, "From"),
        (HeaderName::To, "To"),
        (HeaderName::CallId, "Call-ID"),
        (HeaderName::CSeq, "CSeq"),
    ] {
        let f = request.fields_of(kind).next().ok_or(BuildError::Request(
            super::error::HeaderError::Missing(label),
        ))?;
        b = b.raw_field(f.clone());
    }
    if !request.fields().iter().any(|f| f.kind() == HeaderName::Via) {
        return Err(BuildError::Request(super::error::HeaderError::Missing(
            "Via",
        )));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP c.example.com;branch=z9hG4bK3\r\n\
f: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
t: <sip:bob@example.com>\r\n\
i: call-1@example.com\r\n\
CSeq: 1 INVITE\r\n\
X-Unknown:   keep  me  \r\n\
l: 0\r\n\r\n";

    #[test]
    fn response_copies_headers() {
        let req = parse(Bytes::from(INVITE)).unwrap();
        let resp = response_to(&req, 180, None)
            .unwrap()
            .to_tag("b2")
            .header("Contact", "<sip:bridge@192.0.2.1>")
            .build()
            .unwrap();
        assert_eq!(resp.status(), Some(180));
        assert_eq!(resp.reason(), Some(&b"Ringing"[..]));
        assert_eq!(resp.vias().unwrap(), req.vias().unwrap());
        assert_eq!(resp.from().unwrap(), req.from().unwrap());
        assert_eq!(resp.to().unwrap().tag(), Some("b2"));
        assert_eq!(resp.call_id().unwrap(), "call-1@example.com");
        assert_eq!(resp.cseq().unwrap(), req.cseq().unwrap());
        assert_eq!(resp.content_length().unwrap(), Some(0));
        // Copied fields are byte-identical.
        assert_eq!(resp.fields()[0].raw(), req.fields()[0].raw());
    }

    #[test]
    fn edits_keep_other_bytes() {
        let mut req = parse(Bytes::from(INVITE)).unwrap();
        assert_eq!(req.to_bytes(), Bytes::from(INVITE));
        req.prepend_via("SIP/2.0/UDP bridge.example.com;branch=z9hG4bKnew;rport")
            .unwrap();
        assert_eq!(req.top_via().unwrap().branch.as_deref(), Some("z9hG4bKnew"));
        assert_eq!(req.vias().unwrap().len(), 4);
        assert!(req.remove_top_via());
        assert!(req.remove_top_via());
        let vias = req.vias().unwrap();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].branch.as_deref(), Some("z9hG4bK2"));
        req.set_body(Some("text/plain"), Bytes::from_static(b"hello"))
            .unwrap();
        req.set_header("Max-Forwards", "69").unwrap();
        let out = req.to_bytes();
        let again = parse(out.clone()).unwrap();
        assert_eq!(&again.body()[..], b"hello");
        assert_eq!(again.content_length().unwrap(), Some(5));
        assert_eq!(again.max_forwards().unwrap(), Some(69));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("X-Unknown:   keep  me  \r\n"));
        assert!(text.contains("f: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"));
    }

    #[test]
    fn builder_rejects_injection() {
        let b = MessageBuilder::request(&Method::Options, &"sip:a@b".parse().unwrap())
            .header("Subject", "a\r\nVia: evil");
        assert!(matches!(b.to_bytes(), Err(BuildError::HeaderValue(_))));
        let b = MessageBuilder::request(&Method::Options, &"sip:a@b".parse().unwrap())
            .header("Bad Name", "x");
        assert!(matches!(b.to_bytes(), Err(BuildError::HeaderName(_))));
        assert!(MessageBuilder::response(99, None).to_bytes().is_err());
    }
}
