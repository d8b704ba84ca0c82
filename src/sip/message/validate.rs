//! Sans-IO inbound checks (RFC 3261 §8.2, §16.3, §18; RFC 4475).
//!
//! `inspect` takes what the transport received (one datagram or one framed
//! stream message) and decides before any transaction processing whether
//! to hand it on, to answer statelessly with an error, or to drop it.
//! The lower-level `check_request`/`check_response` work on a parsed
//! message; `error_response` builds the answer bytes.
//!
//! Not decided here (they need routing or application knowledge): 483 (see
//! `too_many_hops`), 405, 415, 404/403, authentication.

use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;
use thiserror::Error;

use super::builder::MessageBuilder;
use super::error::{HeaderError, ParseError};
use super::headers::{HeaderField, HeaderName};
use super::method::Method;
use super::model::SipMessage;
use super::parse::{Limits, leading_crlf_len, parse_start_line, parse_with, split_head};
use super::uri::Uri;

/// What the server supports, for the checks that depend on it.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Option-tags this server supports (Require with anything else → 420).
    pub supported: Vec<String>,
    /// Size limits for parsing.
    pub limits: Limits,
}

/// A request the server must refuse before processing, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{status}: {detail}")]
pub struct Rejection {
    /// 400, 416, 420, 501 or 505.
    pub status: u16,
    /// Human-readable cause, for logs (and sent as a Warning-free reason).
    pub detail: String,
    /// For 420: the option-tags to list in an Unsupported header.
    pub unsupported: Vec<String>,
}

impl Rejection {
    fn new(status: u16, detail: impl Into<String>) -> Self {
        Rejection {
            status,
            detail: detail.into(),
            unsupported: Vec::new(),
        }
    }
}

impl From<HeaderError> for Rejection {
    fn from(e: HeaderError) -> Self {
        Rejection::new(400, e.to_string())
    }
}

/// Why a received message is dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DropReason {
    /// Only CRLFs (a keep-alive on a datagram transport).
    #[error("keep-alive")]
    KeepAlive,
    /// Not parseable, and not enough of a request to answer.
    #[error("unparseable: {0}")]
    Unparseable(ParseError),
    /// A response without the headers needed to match a transaction.
    #[error("bad response: {0}")]
    BadResponse(HeaderError),
    /// An invalid ACK (an ACK is never answered, RFC 3261 §17.2.3).
    #[error("invalid ACK: {0}")]
    InvalidAck(Rejection),
    /// Invalid, but Via/From/To/Call-ID/CSeq are missing, so no response
    /// can be built (RFC 4475 §3.3.1).
    #[error("cannot answer: {0}")]
    CannotAnswer(Rejection),
}

/// The decision about one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A request that passed every check: hand it to the transaction layer.
    Request(SipMessage),
    /// A response with usable Via/CSeq/Call-ID/From/To.
    Response(SipMessage),
    /// Answer statelessly with `response` (to the top Via / source address)
    /// and do nothing else.
    Reject {
        rejection: Rejection,
        response: Bytes,
    },
    /// Ignore it.
    Drop(DropReason),
}

/// Parses and checks one received message.  See the module documentation.
pub fn inspect(buf: Bytes, policy: &Policy) -> Inbound {
    match parse_with(buf.clone(), &policy.limits) {
        Ok(msg) if msg.is_response() => match check_response(&msg) {
            Ok(()) => Inbound::Response(msg),
            Err(e) => Inbound::Drop(DropReason::BadResponse(e)),
        },
        Ok(msg) => match check_request(&msg, policy) {
            Ok(()) => Inbound::Request(msg),
            Err(rejection) => reject(msg.method() == Some(&Method::Ack), msg.fields(), rejection),
        },
        Err(ParseError::Empty) => Inbound::Drop(DropReason::KeepAlive),
        Err(e) => salvage(&buf, policy, e),
    }
}

/// For a request that failed to parse: answer 400 if the start line is not
/// a response's and the header section still yields the needed headers.
fn salvage(buf: &Bytes, policy: &Policy, err: ParseError) -> Inbound {
    let start = leading_crlf_len(buf);
    if buf
        .get(start..start + 4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        return Inbound::Drop(DropReason::Unparseable(err));
    }
    let Ok(head) = split_head(buf, &policy.limits, true) else {
        return Inbound::Drop(DropReason::Unparseable(err));
    };
    let is_ack = match parse_start_line(&head.start_line) {
        Ok(sl) => {
            matches!(sl, super::model::StartLine::Request(ref r) if r.method == Method::Ack)
        }
        Err(_) => false,
    } || cseq_method_is_ack(&head.fields);
    reject(is_ack, &head.fields, Rejection::new(400, err.to_string()))
}

fn cseq_method_is_ack(fields: &[HeaderField]) -> bool {
    fields
        .iter()
        .filter(|f| f.kind() == HeaderName::CSeq)
        .any(|f| f.value_text().split_whitespace().last() == Some("ACK"))
}

fn reject(is_ack: bool, fields: &[HeaderField], rejection: Rejection) -> Inbound {
    if is_ack {
        return Inbound::Drop(DropReason::InvalidAck(rejection));
    }
    match error_response_from_fields(fields, &rejection) {
        Some(response) => Inbound::Reject {
            rejection,
            response,
        },
        None => Inbound::Drop(DropReason::CannotAnswer(rejection)),
    }
}

/// Checks a parsed request in the RFC 3261 §8.2 order: version (505),
/// syntax of the headers every request needs and CSeq/method agreement
/// (400), Request-URI scheme (416), method (501), Require (420).
pub fn check_request(msg: &SipMessage, policy: &Policy) -> Result<(), Rejection> {
    let Some(method) = msg.method() else {
        return Err(Rejection::new(400, "not a request"));
    };
    if !msg.is_sip_2_0() {
        return Err(Rejection::new(505, "SIP version is not 2.0"));
    }
    msg.vias()?;
    msg.from()?;
    msg.to()?;
    msg.call_id()?;
    let cseq = msg.cseq()?;
    // Max-Forwards is mandatory in RFC 3261 but absent from RFC 2543
    // requests, which must still be processed (RFC 4475 §3.4.1).
    msg.max_forwards()?;
    msg.content_length()?;
    msg.contacts()?;
    let require = msg.require()?;
    if &cseq.method != method {
        return Err(Rejection::new(
            400,
            "CSeq method does not match the request method",
        ));
    }
    let uri = msg.request_uri()?;
    match &uri {
        Uri::Sip(u) if u.headers.is_some() => {
            return Err(Rejection::new(400, "Request-URI carries headers"));
        }
        Uri::Sip(_) => {}
        other => {
            return Err(Rejection::new(
                416,
                format!("unsupported Request-URI scheme {}", other.scheme()),
            ));
        }
    }
    if method.is_extension() {
        return Err(Rejection::new(
            501,
            format!("method {method} not implemented"),
        ));
    }
    if !matches!(method, Method::Ack | Method::Cancel) {
        let unsupported: Vec<String> = require
            .into_iter()
            .filter(|t| !policy.supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Err(Rejection {
                status: 420,
                detail: format!("unsupported extensions: {}", unsupported.join(", ")),
                unsupported,
            });
        }
    }
    Ok(())
}

/// Checks that a response can be matched to a client transaction: top Via,
/// CSeq, Call-ID, From and To parse.  Otherwise drop it (§18.1.2).
pub fn check_response(msg: &SipMessage) -> Result<(), HeaderError> {
    msg.top_via()?;
    msg.cseq()?;
    msg.call_id()?;
    msg.from()?;
    msg.to()?;
    Ok(())
}

/// True when a request must be answered 483 Too Many Hops before being
/// forwarded (Max-Forwards is 0 and it is not an OPTIONS the server may
/// answer itself, RFC 3261 §16.3 step 3).  Requests for the server itself
/// (its own AOR/domain) are processed instead (RFC 4475 §3.3.11).
pub fn too_many_hops(msg: &SipMessage) -> bool {
    matches!(msg.max_forwards(), Ok(Some(0))) && msg.method() != Some(&Method::Options)
}

/// Builds the error response for a rejected request (stateless, §8.2.6),
/// `None` when the request is an ACK or lacks Via/From/To/Call-ID/CSeq.
pub fn error_response(request: &SipMessage, rejection: &Rejection) -> Option<Bytes> {
    if request.method() == Some(&Method::Ack) {
        return None;
    }
    error_response_from_fields(request.fields(), rejection)
}

/// A stable To tag for a stateless response: the same request (or its
/// retransmission) gets the same tag (RFC 3261 §8.2.6.2, §16.11).
fn stateless_tag(fields: &[HeaderField]) -> String {
    let mut h = DefaultHasher::new();
    for f in fields.iter().filter(|f| {
        matches!(
            f.kind(),
            HeaderName::CallId | HeaderName::From | HeaderName::Via | HeaderName::CSeq
        )
    }) {
        f.value().hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

fn error_response_from_fields(fields: &[HeaderField], rejection: &Rejection) -> Option<Bytes> {
    let mut b = MessageBuilder::response(rejection.status, None);
    let vias: Vec<&HeaderField> = fields
        .iter()
        .filter(|f| f.kind() == HeaderName::Via)
        .collect();
    if vias.is_empty() {
        return None;
    }
    for f in vias {
        b = b.raw_field(f.clone());
    }
    for kind in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        let f = fields.iter().find(|f| f.kind() == kind)?;
        b = b.raw_field(f.clone());
    }
    if rejection.status != 100 {
        b = b.to_tag(&stateless_tag(fields));
    }
    if !rejection.unsupported.is_empty() {
        b = b.header("Unsupported", rejection.unsupported.join(", "));
    }
    b.to_bytes().ok()
}
