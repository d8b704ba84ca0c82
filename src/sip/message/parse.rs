//! Turning bytes into a `SipMessage` (RFC 3261 §7, §20, §25).
//!
//! Parsing is deliberately shallow: the start line is checked, header fields
//! are cut into (name, value) slices of the original buffer and the body is
//! framed.  Nothing else is interpreted until an accessor asks, so a 1 KB
//! INVITE costs one `Vec` of fields and no per-header allocation.

use bytes::Bytes;

use super::error::ParseError;
use super::headers::{HeaderField, HeaderName};
use super::method::Method;
use super::model::{RequestLine, SipMessage, StartLine, StatusLine};
use super::syntax::{is_token, is_wsp, parse_digits, trim_lws_bytes};

/// Resource bounds applied to every message, so a hostile peer cannot make
/// the server allocate or scan without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line + headers + body) in bytes.
    pub max_message_size: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
    /// Longest single header field (with its folded continuation lines).
    pub max_header_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_headers: 256,
            max_header_len: 8 * 1024,
        }
    }
}

/// Parses one datagram or one framed message with the default `Limits`.
///
/// Datagram rules (RFC 3261 §18.3): without Content-Length the body is the
/// rest of the datagram; a Content-Length larger than what is there is an
/// error; octets after the declared body are ignored.  Leading CRLFs
/// (keep-alives) are skipped.
pub fn parse(buf: Bytes) -> Result<SipMessage, ParseError> {
    parse_with(buf, &Limits::default())
}

/// `parse` with explicit limits.
pub fn parse_with(buf: Bytes, limits: &Limits) -> Result<SipMessage, ParseError> {
    let head = split_head(&buf, limits, false)?;
    let start = parse_start_line(&head.start_line)?;
    let rest = buf.slice(head.body_start.unwrap_or(buf.len())..);
    let body = frame_body(&head.fields, rest)?;
    Ok(SipMessage::from_parts(start, head.fields, body))
}

/// The start line and header fields of a message, before any interpretation.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) start_line: Bytes,
    pub(crate) fields: Vec<HeaderField>,
    /// Offset of the body; `None` when (leniently) no empty line was found.
    pub(crate) body_start: Option<usize>,
}

/// Index of the CR of the next CRLF at or after `from`; `Ok(None)` at end of
/// input.  A CR not followed by LF, or a LF without CR, is an error: they
/// are how header-injection and request-smuggling attacks start.
fn next_crlf(buf: &[u8], from: usize, line: usize) -> Result<Option<usize>, ParseError> {
    let tail = buf.get(from..).unwrap_or(&[]);
    for (off, &b) in tail.iter().enumerate() {
        match b {
            b'\r' => {
                return if tail.get(off + 1) == Some(&b'\n') {
                    Ok(Some(from + off))
                } else if off + 1 == tail.len() {
                    Ok(None)
                } else {
                    Err(ParseError::HeaderLine {
                        line,
                        reason: "bare CR",
                    })
                };
            }
            b'\n' => {
                return Err(ParseError::HeaderLine {
                    line,
                    reason: "bare LF",
                });
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Number of leading CRLF pairs' bytes (keep-alives before a start line).
pub(crate) fn leading_crlf_len(buf: &[u8]) -> usize {
    let mut n = 0;
    while buf.get(n..n + 2) == Some(b"\r\n") {
        n += 2;
    }
    n
}

/// Cuts the start line and header fields out of `buf`.  With `lenient`, a
/// header section that ends with the buffer (no empty line) is accepted;
/// this is only used to salvage enough headers for an error response.
pub(crate) fn split_head(buf: &Bytes, limits: &Limits, lenient: bool) -> Result<Head, ParseError> {
    if buf.len() > limits.max_message_size {
        return Err(ParseError::TooLarge {
            size: buf.len(),
            limit: limits.max_message_size,
        });
    }
    let mut pos = leading_crlf_len(buf);
    if pos >= buf.len() {
        return Err(ParseError::Empty);
    }
    let sl_end = match next_crlf(buf, pos, 0)? {
        Some(e) => e,
        None if lenient => buf.len(),
        None => return Err(ParseError::UnterminatedHeaders),
    };
    let start_line = buf.slice(pos..sl_end);
    pos = sl_end + 2;
    let mut fields = Vec::with_capacity(16);
    let mut line_no = 1;
    loop {
        if pos >= buf.len() {
            if lenient {
                return Ok(Head {
                    start_line,
                    fields,
                    body_start: None,
                });
            }
            return Err(ParseError::UnterminatedHeaders);
        }
        if buf.get(pos..pos + 2) == Some(b"\r\n") {
            return Ok(Head {
                start_line,
                fields,
                body_start: Some(pos + 2),
            });
        }
        // One logical header field: lines joined by CRLF + SP/HT.
        let field_start = pos;
        let mut scan = pos;
        let (content_end, field_end) = loop {
            match next_crlf(buf, scan, line_no)? {
                Some(e) => {
                    let after = e + 2;
                    if buf.get(after).is_some_and(|&b| is_wsp(b)) {
                        scan = after;
                        line_no += 1;
                        continue;
                    }
                    break (e, after);
                }
                None if lenient => break (buf.len(), buf.len()),
                None => return Err(ParseError::UnterminatedHeaders),
            }
        };
        if field_end - field_start > limits.max_header_len {
            return Err(ParseError::HeaderTooLong {
                limit: limits.max_header_len,
            });
        }
        if fields.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let content = buf.get(field_start..content_end).unwrap_or(&[]);
        let colon = content
            .iter()
            .position(|&b| b == b':')
            .ok_or(ParseError::HeaderLine {
                line: line_no,
                reason: "no colon",
            })?;
        let name = trim_lws_bytes(content.get(..colon).unwrap_or(&[]));
        if content.first().is_some_and(|&b| is_wsp(b)) || !is_token(name) {
            return Err(ParseError::HeaderLine {
                line: line_no,
                reason: "invalid header name",
            });
        }
        let value = trim_lws_bytes(content.get(colon + 1..).unwrap_or(&[]));
        if field_end == content_end {
            // Lenient mode, field cut by the end of the buffer: store it
            // with a CRLF so re-serialization stays well-formed.
            if let Some(f) = HeaderField::reparse(buf.slice(field_start..field_end)) {
                fields.push(f);
            }
            line_no += 1;
            pos = field_end;
            continue;
        }
        fields.push(HeaderField::from_parts(
            buf.slice(field_start..field_end),
            buf.slice_ref(name),
            if value.is_empty() {
                Bytes::new()
            } else {
                buf.slice_ref(value)
            },
        ));
        line_no += 1;
        pos = field_end;
    }
}

/// True for `SIP/1*DIGIT.1*DIGIT` ("SIP" case-insensitive, RFC 3261 §7.1).
fn is_version(v: &[u8]) -> bool {
    let Some(rest) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case(b"SIP/"))
        .and_then(|_| v.get(4..))
    else {
        return false;
    };
    let mut parts = rest.splitn(2, |&b| b == b'.');
    let major = parts.next().unwrap_or(&[]);
    let minor = parts.next().unwrap_or(&[]);
    !major.is_empty()
        && !minor.is_empty()
        && major.iter().all(u8::is_ascii_digit)
        && minor.iter().all(u8::is_ascii_digit)
}

/// Parses a Request-Line or Status-Line (without its CRLF).
pub(crate) fn parse_start_line(line: &Bytes) -> Result<StartLine, ParseError> {
    if line.len() >= 4
        && line
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = line
            .iter()
            .position(|&b| b == b' ')
            .ok_or(ParseError::StartLine("no status code"))?;
        let version = line.slice(..sp);
        if !is_version(&version) {
            return Err(ParseError::StartLine("bad SIP version"));
        }
        let after = line.slice(sp + 1..);
        let code_len = after.iter().position(|&b| b == b' ').unwrap_or(after.len());
        let code = after.get(..code_len).unwrap_or(&[]);
        if code.len() != 3 {
            return Err(ParseError::StartLine("status code is not 3 digits"));
        }
        let status = std::str::from_utf8(code)
            .ok()
            .and_then(parse_digits)
            .filter(|c| (100..=699).contains(c))
            .ok_or(ParseError::StartLine("status code out of range"))?;
        let reason = after.slice((code_len + 1).min(after.len())..);
        return Ok(StartLine::Response(StatusLine {
            raw: line.clone(),
            version,
            status: status as u16,
            reason,
        }));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version
    let mut parts = line.split(|&b| b == b' ');
    let (Some(m), Some(u), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine(
            "request line is not METHOD SP URI SP VERSION",
        ));
    };
    let method = Method::from_token(m).ok_or(ParseError::StartLine("method is not a token"))?;
    if u.is_empty() || u.contains(&b'\t') {
        return Err(ParseError::StartLine("empty or spaced Request-URI"));
    }
    if !is_version(v) {
        return Err(ParseError::StartLine("bad SIP version"));
    }
    Ok(StartLine::Request(RequestLine {
        raw: line.clone(),
        method,
        uri: line.slice_ref(u),
        version: line.slice_ref(v),
    }))
}

/// Applies Content-Length to the bytes after the header section.
pub(crate) fn frame_body(fields: &[HeaderField], rest: Bytes) -> Result<Bytes, ParseError> {
    match content_length_of(fields)? {
        None => Ok(rest),
        Some(n) if n <= rest.len() => Ok(rest.slice(..n)),
        Some(n) => Err(ParseError::BodyTruncated {
            declared: n,
            available: rest.len(),
        }),
    }
}

/// The single Content-Length of a header section, if any.
pub(crate) fn content_length_of(fields: &[HeaderField]) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for f in fields
        .iter()
        .filter(|f| f.kind() == HeaderName::ContentLength)
    {
        if found.is_some() {
            return Err(ParseError::ContentLength("more than one Content-Length"));
        }
        let v = std::str::from_utf8(trim_lws_bytes(f.value()))
            .ok()
            .and_then(parse_digits)
            .ok_or(ParseError::ContentLength("not a decimal number"))?;
        found = Some(usize::try_from(v).map_err(|_| ParseError::ContentLength("too large"))?);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn folding_and_space_before_colon() {
        let m = parse(b(
            "OPTIONS sip:a@b SIP/2.0\r\nVia  : SIP/2.0/UDP\r\n h;branch=z9hG4bK1\r\nl:0\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(m.fields().len(), 2);
        assert_eq!(m.fields()[0].name(), b"Via");
        assert_eq!(
            &m.fields()[0].value()[..],
            b"SIP/2.0/UDP\r\n h;branch=z9hG4bK1"
        );
    }

    #[test]
    fn rejects_bad_lines() {
        for bad in [
            "OPTIONS sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\n a: b\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nA: b\nB: c\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nA: b\rB: c\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nA: b\r\n",
            "OPTIONS  sip:a@b SIP/2.0\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0 \r\n\r\n",
            "OPTIONS sip:a@b HTTP/1.1\r\n\r\n",
            "SIP/2.0 4294967301 big\r\n\r\n",
            "SIP/2.0 099 low\r\n\r\n",
            "\r\n\r\n",
            "",
        ] {
            assert!(parse(b(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn body_framing() {
        let m = parse(b("MESSAGE sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabcdef")).unwrap();
        assert_eq!(&m.body()[..], b"abc");
        let m = parse(b("MESSAGE sip:a@b SIP/2.0\r\nX: y\r\n\r\nabcdef")).unwrap();
        assert_eq!(&m.body()[..], b"abcdef");
        assert_eq!(
            parse(b("MESSAGE sip:a@b SIP/2.0\r\nl: 9\r\n\r\nabc")).unwrap_err(),
            ParseError::BodyTruncated {
                declared: 9,
                available: 3
            }
        );
        assert!(parse(b("MESSAGE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n")).is_err());
        assert!(parse(b("MESSAGE sip:a@b SIP/2.0\r\nl: 1\r\nl: 1\r\n\r\nx")).is_err());
    }

    #[test]
    fn responses() {
        let m = parse(b("SIP/2.0 100 \r\nl:0\r\n\r\n")).unwrap();
        assert_eq!(m.status(), Some(100));
        assert_eq!(m.reason(), Some(&b""[..]));
        let m = parse(b("SIP/2.0 180\r\nl:0\r\n\r\n")).unwrap();
        assert_eq!(m.status(), Some(180));
    }

    #[test]
    fn limits() {
        let l = Limits {
            max_message_size: 100,
            max_headers: 2,
            max_header_len: 20,
        };
        let big = format!("OPTIONS sip:a@b SIP/2.0\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert!(matches!(
            parse_with(b(&big), &l),
            Err(ParseError::TooLarge { .. })
        ));
        let long = format!("OPTIONS sip:a@b SIP/2.0\r\nX: {}\r\n\r\n", "a".repeat(30));
        assert!(matches!(
            parse_with(b(&long), &l),
            Err(ParseError::HeaderTooLong { .. })
        ));
        let many = "OPTIONS sip:a@b SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(matches!(
            parse_with(b(many), &l),
            Err(ParseError::TooManyHeaders { .. })
        ));
    }
}
