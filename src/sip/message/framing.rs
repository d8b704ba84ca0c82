//! Cutting SIP messages out of a TCP/TLS byte stream (RFC 3261 §18.3) and
//! recognising RFC 5626 CRLF keep-alives.
//!
//! As in tokio-rs/mini-redis `connection.rs`, the framer only *checks* the
//! buffer: it looks for the end of the header section and the one
//! Content-Length, and splits off a complete message only when all its
//! bytes are there.  Parsing happens afterwards on the split-off `Bytes`.
//! Memory is bounded by `Limits`: a header section that does not end within
//! `max_message_size` bytes, or a body that would exceed it, is an error.

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::error::ParseError;
use super::parse::{Limits, content_length_of, split_head};

/// What the framer found at the front of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message (headers and exactly Content-Length body bytes);
    /// hand it to `parse`.
    Message(Bytes),
    /// A double-CRLF keep-alive ping (RFC 5626 §3.5.1): answer with one CRLF.
    Ping,
    /// A single CRLF (a pong to our ping, or stray CRLF before a message).
    Pong,
}

/// The stream cannot be resynchronised; close the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramingError {
    /// No end of headers within the size limit.
    #[error("header section larger than {limit} bytes")]
    HeadersTooLarge { limit: usize },
    /// Content-Length would make the message exceed the size limit.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// Content-Length is mandatory on streams (RFC 3261 §18.3).
    #[error("no Content-Length on a stream transport")]
    MissingContentLength,
    /// The header section cannot be read (bad Content-Length, bare CR/LF...).
    #[error("unreadable header section: {0}")]
    Head(#[from] ParseError),
}

/// Incremental framer for one connection.  Keeps only a scan offset so a
/// slowly arriving header section is not rescanned from the start.
#[derive(Debug, Clone, Default)]
pub struct StreamFramer {
    limits: Limits,
    /// Bytes of the buffer already searched for CRLFCRLF.
    scanned: usize,
    /// Total length of the message at the front once its header section
    /// has been read (waiting for the body).
    pending: Option<usize>,
}

impl StreamFramer {
    /// A framer with the given limits.
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            limits,
            scanned: 0,
            pending: None,
        }
    }

    /// Takes the next frame off the front of `buf`.
    ///
    /// `Ok(None)`: more bytes are needed (nothing was consumed, except that
    /// the scan position is remembered).  `Err`: close the connection.
    pub fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        if let Some(total) = self.pending {
            return Ok(self.take(buf, total));
        }
        // Keep-alives come only between messages, i.e. at the front.
        if self.scanned == 0 {
            match (buf.first(), buf.get(1), buf.get(2), buf.get(3)) {
                (Some(b'\r'), Some(b'\n'), Some(b'\r'), Some(b'\n')) => {
                    let _ = buf.split_to(4);
                    return Ok(Some(Frame::Ping));
                }
                (Some(b'\r'), Some(b'\n'), Some(b'\r'), None) => return Ok(None),
                (Some(b'\r'), Some(b'\n'), Some(_), _) => {
                    let _ = buf.split_to(2);
                    return Ok(Some(Frame::Pong));
                }
                (Some(b'\r'), None, _, _) | (Some(b'\r'), Some(b'\n'), None, _) => return Ok(None),
                _ => {}
            }
        }
        let from = self.scanned.saturating_sub(3);
        let found = buf
            .get(from..)
            .unwrap_or(&[])
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| from + p);
        let Some(at) = found else {
            self.scanned = buf.len();
            if buf.len() > self.limits.max_message_size {
                return Err(FramingError::HeadersTooLarge {
                    limit: self.limits.max_message_size,
                });
            }
            return Ok(None);
        };
        let head_len = at + 4;
        if head_len > self.limits.max_message_size {
            return Err(FramingError::HeadersTooLarge {
                limit: self.limits.max_message_size,
            });
        }
        let head = Bytes::copy_from_slice(buf.get(..head_len).unwrap_or(&[]));
        let parsed = split_head(&head, &self.limits, false)?;
        let body_len =
            content_length_of(&parsed.fields)?.ok_or(FramingError::MissingContentLength)?;
        let total = head_len.saturating_add(body_len);
        if total > self.limits.max_message_size {
            return Err(FramingError::TooLarge {
                size: total,
                limit: self.limits.max_message_size,
            });
        }
        self.pending = Some(total);
        Ok(self.take(buf, total))
    }

    /// Splits off the message of `total` bytes once it is all there.
    fn take(&mut self, buf: &mut BytesMut, total: usize) -> Option<Frame> {
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return None;
        }
        self.scanned = 0;
        self.pending = None;
        Some(Frame::Message(buf.split_to(total).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn keepalives_and_messages() {
        let mut f = StreamFramer::default();
        let mut buf = BytesMut::from(format!("\r\n\r\n{MSG}\r\n{MSG}").as_str());
        assert_eq!(f.next_frame(&mut buf).unwrap(), Some(Frame::Ping));
        assert_eq!(
            f.next_frame(&mut buf).unwrap(),
            Some(Frame::Message(Bytes::from(MSG)))
        );
        assert_eq!(f.next_frame(&mut buf).unwrap(), Some(Frame::Pong));
        assert_eq!(
            f.next_frame(&mut buf).unwrap(),
            Some(Frame::Message(Bytes::from(MSG)))
        );
        assert_eq!(f.next_frame(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn errors() {
        let mut f = StreamFramer::default();
        let mut buf = BytesMut::from("OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(
            f.next_frame(&mut buf),
            Err(FramingError::MissingContentLength)
        );
        let mut f = StreamFramer::new(Limits {
            max_message_size: 64,
            ..Limits::default()
        });
        let mut buf = BytesMut::from(vec![b'a'; 100].as_slice());
        assert!(matches!(
            f.next_frame(&mut buf),
            Err(FramingError::HeadersTooLarge { .. })
        ));
        let mut f = StreamFramer::new(Limits {
            max_message_size: 64,
            ..Limits::default()
        });
        let mut buf = BytesMut::from("OPTIONS sip:a@b SIP/2.0\r\nl: 1000\r\n\r\n");
        assert!(matches!(
            f.next_frame(&mut buf),
            Err(FramingError::TooLarge { .. })
        ));
    }
}
