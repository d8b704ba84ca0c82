//! Streaming AMI decoder: the banner line, then packets ended by a blank line.
//!
//! It works line by line and keeps the packet being built between calls, so
//! the result never depends on how TCP chunked the bytes (tested by splitting
//! every recorded transcript at every offset). Memory is bounded by
//! [`DecoderLimits`]: an oversized packet yields one non-fatal error and the
//! decoder skips to the next blank line, so one bad message cannot wedge or
//! bloat the session.

use bytes::{Buf, BytesMut};
use thiserror::Error;

use super::packet::{Header, Packet};

/// The first thing Asterisk sends: `Asterisk Call Manager/11.0.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// The whole line without its line ending.
    pub line: String,
    /// The AMI protocol version after the `/`, e.g. `11.0.0`.
    pub version: Option<String>,
}

/// What the decoder produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Banner(Banner),
    Packet(Packet),
}

/// Bounds on what one message may cost. The defaults leave room for large
/// `Command` output (one `Output:` header per line) while keeping a hostile
/// or broken peer from growing a buffer without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    pub max_packet_bytes: usize,
    pub max_headers: usize,
    pub max_banner_bytes: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_packet_bytes: 1024 * 1024,
            max_headers: 16 * 1024,
            max_banner_bytes: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The peer is not an AMI server (wrong port, HTTP, TLS...). Fatal.
    #[error("not an Asterisk Manager Interface: first line was {0:?}")]
    NotAmi(String),
    /// No banner line within the limit. Fatal.
    #[error("AMI banner longer than {limit} bytes")]
    BannerTooLong { limit: usize },
    /// Not fatal: the message was dropped up to its blank line.
    #[error("AMI message larger than {limit} bytes; it was skipped")]
    PacketTooLarge { limit: usize },
    /// Not fatal: the message was dropped up to its blank line.
    #[error("AMI message with more than {limit} headers; it was skipped")]
    TooManyHeaders { limit: usize },
}

impl DecodeError {
    /// Fatal errors mean the connection must be closed; the others were
    /// recovered from by skipping one message.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DecodeError::NotAmi(_) | DecodeError::BannerTooLong { .. }
        )
    }
}

/// The legacy `Response: Follows` command output ends with this line.
const END_COMMAND: &str = "--END COMMAND--";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Banner,
    Packets,
    /// Dropping an oversized message until its blank line.
    Discarding,
    Failed,
}

/// Where a legacy `Response: Follows` packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Follows {
    #[default]
    No,
    /// After `Response: Follows`, still reading `ActionID`/`Privilege`.
    Headers,
    /// Reading free text (blank lines included) until `--END COMMAND--`.
    Body,
    /// Marker seen; the next blank line ends the packet.
    Ended,
}

#[derive(Debug, Default)]
struct Builder {
    packet: Packet,
    bytes: usize,
    follows: Follows,
}

impl Builder {
    fn is_empty(&self) -> bool {
        self.packet.headers.is_empty() && self.packet.body.is_empty()
    }
}

/// The sans-IO AMI decoder. Feed it a growing buffer; it consumes complete
/// lines and returns one [`Frame`] at a time.
#[derive(Debug)]
pub struct Decoder {
    limits: DecoderLimits,
    state: State,
    building: Builder,
    /// Bytes at the front of the buffer already searched for `\n`.
    scanned: usize,
    /// While discarding: part of the current line was dropped and was not a
    /// lone `\r`, so that line is not blank.
    discard_dirty: bool,
    failure: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

fn to_string(bytes: &[u8]) -> String {
    // AMI is ASCII in practice; CallerID names may carry UTF-8. Invalid
    // bytes become U+FFFD rather than an error, since one odd name must not
    // cost the session.
    String::from_utf8_lossy(bytes).into_owned()
}

impl Decoder {
    /// A decoder for a fresh connection: expects the banner line first.
    pub fn new() -> Self {
        Decoder::with_limits(DecoderLimits::default())
    }

    pub fn with_limits(limits: DecoderLimits) -> Self {
        Decoder {
            limits,
            state: State::Banner,
            building: Builder::default(),
            scanned: 0,
            discard_dirty: false,
            failure: None,
        }
    }

    /// A decoder that starts directly with packets (tests, replay of a stream
    /// whose banner was already consumed).
    pub fn without_banner() -> Self {
        let mut d = Decoder::new();
        d.state = State::Packets;
        d
    }

    pub fn limits(&self) -> DecoderLimits {
        self.limits
    }

    /// True when no message is half-built (nothing would be lost on EOF).
    pub fn is_idle(&self) -> bool {
        self.building.is_empty() && self.state != State::Discarding
    }

    /// Decode the next frame from `buf`, consuming the bytes it used.
    /// `Ok(None)` means more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            if let Some(err) = &self.failure {
                buf.clear();
                return Err(err.clone());
            }
            let Some(nl) = memchr_nl(&buf[self.scanned..]).map(|p| p + self.scanned) else {
                self.scanned = buf.len();
                return self.on_partial_line(buf);
            };
            self.scanned = 0;
            let raw_len = nl + 1;
            let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            let result = self.on_line(&buf[..line_end], raw_len);
            buf.advance(raw_len);
            match result {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Checks the limits against a line that has no `\n` yet.
    fn on_partial_line(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        match self.state {
            State::Banner if buf.len() > self.limits.max_banner_bytes => {
                Err(self.fail(DecodeError::BannerTooLong {
                    limit: self.limits.max_banner_bytes,
                }))
            }
            State::Packets if self.building.bytes + buf.len() > self.limits.max_packet_bytes => {
                let limit = self.limits.max_packet_bytes;
                self.start_discarding();
                self.drop_partial(buf);
                Err(DecodeError::PacketTooLarge { limit })
            }
            State::Discarding => {
                self.drop_partial(buf);
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn drop_partial(&mut self, buf: &mut BytesMut) {
        // Keep a trailing '\r': it may be half of the blank line we wait for.
        let keep = usize::from(buf.last() == Some(&b'\r'));
        let drop = buf.len() - keep;
        if drop > 0 {
            self.discard_dirty = true;
        }
        buf.advance(drop);
        self.scanned = buf.len();
    }

    fn start_discarding(&mut self) {
        self.building = Builder::default();
        self.state = State::Discarding;
        self.discard_dirty = false;
    }

    fn fail(&mut self, err: DecodeError) -> DecodeError {
        self.state = State::Failed;
        self.failure = Some(err.clone());
        err
    }

    fn on_line(&mut self, line: &[u8], raw_len: usize) -> Result<Option<Frame>, DecodeError> {
        match self.state {
            State::Failed => Ok(None),
            State::Banner => {
                let text = to_string(line);
                if text.len() > self.limits.max_banner_bytes {
                    return Err(self.fail(DecodeError::BannerTooLong {
                        limit: self.limits.max_banner_bytes,
                    }));
                }
                if !text.starts_with("Asterisk Call Manager") {
                    return Err(self.fail(DecodeError::NotAmi(text)));
                }
                self.state = State::Packets;
                let version = text.split_once('/').map(|(_, v)| v.trim().to_owned());
                Ok(Some(Frame::Banner(Banner {
                    line: text,
                    version,
                })))
            }
            State::Discarding => {
                if line.is_empty() && !self.discard_dirty {
                    self.state = State::Packets;
                }
                self.discard_dirty = false;
                Ok(None)
            }
            State::Packets => self.on_packet_line(line, raw_len),
        }
    }

    fn on_packet_line(
        &mut self,
        line: &[u8],
        raw_len: usize,
    ) -> Result<Option<Frame>, DecodeError> {
        let b = &mut self.building;
        if line.is_empty() && b.follows != Follows::Body {
            if b.is_empty() {
                // Stray blank line between messages: nothing to emit.
                return Ok(None);
            }
            let done = std::mem::take(&mut self.building);
            return Ok(Some(Frame::Packet(done.packet)));
        }
        if b.bytes + raw_len > self.limits.max_packet_bytes {
            let limit = self.limits.max_packet_bytes;
            self.start_discarding();
            return Err(DecodeError::PacketTooLarge { limit });
        }
        b.bytes += raw_len;

        if b.follows == Follows::Body {
            return Ok(self.on_follows_body(line));
        }

        let header = split_header(line);
        if b.follows == Follows::Headers {
            let keeps_heading = header.as_ref().is_some_and(|(k, _)| is_follows_heading(k));
            if !keeps_heading {
                b.follows = Follows::Body;
                return Ok(self.on_follows_body(line));
            }
        }

        let Some((name, value)) = header else {
            b.packet.body.push(to_string(line));
            return Ok(None);
        };
        if b.packet.headers.len() >= self.limits.max_headers {
            let limit = self.limits.max_headers;
            self.start_discarding();
            return Err(DecodeError::TooManyHeaders { limit });
        }
        if b.packet.headers.is_empty()
            && b.follows == Follows::No
            && name.eq_ignore_ascii_case(b"Response")
            && value.eq_ignore_ascii_case(b"Follows")
        {
            b.follows = Follows::Headers;
        }
        b.packet.headers.push(Header {
            name: to_string(name),
            value: to_string(value),
        });
        Ok(None)
    }

    fn on_follows_body(&mut self, line: &[u8]) -> Option<Frame> {
        let b = &mut self.building;
        let text = to_string(line);
        if let Some(before) = text.strip_suffix(END_COMMAND) {
            // Old Asterisk glued the marker to output lacking a final newline.
            if !before.is_empty() {
                b.packet.body.push(before.to_owned());
            }
            b.follows = Follows::Ended;
        } else {
            b.packet.body.push(text);
        }
        None
    }
}

/// Headers that may precede the free text of a legacy `Follows` response.
fn is_follows_heading(name: &[u8]) -> bool {
    [&b"ActionID"[..], b"Privilege", b"Message"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(name))
}

/// `Key: Value` → (`Key`, `Value`) with one space after the colon removed.
fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&c| c == b':')?;
    if colon == 0 {
        return None;
    }
    let name = &line[..colon];
    let mut value = &line[colon + 1..];
    if value.first() == Some(&b' ') {
        value = &value[1..];
    }
    Some((name, value))
}

fn memchr_nl(hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == b'\n')
}

/// Decode a whole byte string at once: every frame, plus the error of any
/// message that was skipped. Handy for tests, replays and benchmarks.
pub fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> (Vec<Frame>, Vec<DecodeError>) {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    let mut errors = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => break,
            Err(e) => {
                let fatal = e.is_fatal();
                errors.push(e);
                if fatal {
                    break;
                }
            }
        }
    }
    (frames, errors)
}
