//! Error values of the message layer.
//!
//! `ParseError` is about the message as a whole (framing, start line, header
//! lines, body); `HeaderError` is about one typed header read on demand, so a
//! message with a broken `Contact` can still be routed by its `Via`.

use thiserror::Error;

/// Why a datagram or framed message is not a SIP message we can use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Empty input (or only CRLF keep-alives).
    #[error("empty message")]
    Empty,
    /// The message is larger than the configured maximum.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// No empty line terminates the header section.
    #[error("header section is not terminated by an empty line")]
    UnterminatedHeaders,
    /// The first line is neither a Request-Line nor a Status-Line.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// A header line is malformed (no colon, bad name, bare CR/LF, ...).
    #[error("malformed header line {line}: {reason}")]
    HeaderLine { line: usize, reason: &'static str },
    /// More header fields than allowed.
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    /// One header field (with its folded lines) is longer than allowed.
    #[error("header line longer than {limit} bytes")]
    HeaderTooLong { limit: usize },
    /// Content-Length is not a number, or appears more than once.
    #[error("bad Content-Length: {0}")]
    ContentLength(&'static str),
    /// Content-Length says more bytes than the datagram holds.
    #[error("Content-Length {declared} but only {available} body bytes")]
    BodyTruncated { declared: usize, available: usize },
}

/// Why a typed header accessor failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The header is absent where the caller needs it.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The header occurs more than once where only one is allowed.
    #[error("duplicated {0} header")]
    Duplicated(&'static str),
    /// The header value does not match its grammar.
    #[error("malformed {header}: {reason}")]
    Malformed {
        header: &'static str,
        reason: &'static str,
    },
}

impl HeaderError {
    pub(crate) fn malformed(header: &'static str, reason: &'static str) -> Self {
        HeaderError::Malformed { header, reason }
    }
}

/// Why a `Uri` failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed URI: {0}")]
pub struct UriError(pub &'static str);

/// Why a builder could not produce a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BuildError {
    /// A header name is not a token.
    #[error("invalid header name {0:?}")]
    HeaderName(String),
    /// A header value contains CR or LF (header injection) or is not text.
    #[error("invalid value for header {0}")]
    HeaderValue(String),
    /// A status code outside 100..=699.
    #[error("invalid status code {0}")]
    Status(u16),
    /// The request being answered lacks a header a response must copy.
    #[error("cannot build a response: {0}")]
    Request(#[from] HeaderError),
    /// The built bytes did not parse back (a bug or a bad raw value).
    #[error("built message does not parse: {0}")]
    Parse(#[from] ParseError),
}
