//! The SDP a media-anchoring B2BUA needs (RFC 4566 / RFC 3264).
//!
//! [`SessionDescription::parse`] reads what the relay must know of an offer
//! or answer: connection addresses, the media ports, payload types with
//! their `a=rtpmap`, the RFC 4733 `telephone-event` type, direction
//! attributes and `a=rtcp`. [`rewrite`] makes a copy that points the peer at
//! the bridge: the address of `o=` and of every `c=`, the port of the audio
//! `m=` line and `a=rtcp`.
//!
//! # Why a line-based rewriter of our own, not `rtc-sdp`
//!
//! The bridge must pass everything else through untouched: codecs and fmtp
//! it does not understand, `a=ssrc`, vendor attributes, even the other
//! side's line endings. A rewriter that copies each line it does not touch
//! as a slice of the input is lossless *by construction*, with nothing to
//! trust about a parser's round trip; `rtc-sdp` does round-trip byte-exact
//! (DEPENDENCIES.md) but would parse every line into a model and serialise
//! it back on each of the ~4 SDPs of every call, for a change of four
//! fields. SDP is line-oriented (`<type>=<value>` per line) and every field
//! we touch has a fixed position in its line, so ~150 lines cover it with no
//! dependency. What this does not do: ICE (its attributes are removed, since
//! the candidates would let the peers bypass the bridge), SDES/DTLS keys
//! (plain RTP/AVP only), and more than one audio stream (others get port 0).

use std::net::{IpAddr, SocketAddr};

use super::g711::Codec;

/// An SDP that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SDP line {line}: {reason}")]
pub struct SdpError {
    pub line: usize,
    pub reason: &'static str,
}

/// A stream's direction attribute (RFC 3264 §6.1), from the sender of the
/// SDP's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn parse(attr: &str) -> Option<Direction> {
        match attr {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Whether the side that wrote this SDP will send RTP.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// One `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`…
    pub kind: String,
    /// 0 when the stream is rejected or disabled.
    pub port: u16,
    pub proto: String,
    /// The format list as written (payload type numbers for RTP).
    pub formats: Vec<String>,
    /// The media-level `c=` address.
    pub connection: Option<IpAddr>,
    pub rtpmaps: Vec<RtpMap>,
    pub direction: Option<Direction>,
    /// `a=rtcp:<port> [IN IP4 <addr>]` (RFC 3605).
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    pub ptime: Option<u32>,
}

/// The parts of an SDP the bridge uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin_address: Option<IpAddr>,
    /// The session-level `c=` address.
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

/// What the relay needs of the audio stream of one leg's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioMedia {
    /// Where the leg wants RTP (None: rejected, or on hold with 0.0.0.0).
    pub rtp: Option<SocketAddr>,
    /// Where it wants RTCP (`a=rtcp`, else RTP port + 1).
    pub rtcp: Option<SocketAddr>,
    /// The payload types we can decode, in order of preference.
    pub codecs: Vec<(u8, Codec)>,
    /// The RFC 4733 `telephone-event` payload type, if offered.
    pub telephone_event: Option<u8>,
    pub direction: Direction,
}

fn err(line: usize, reason: &'static str) -> SdpError {
    SdpError { line, reason }
}

/// Lines with their number (1-based), the content without the terminator,
/// and the terminator (`\r\n`, `\n` or nothing at the end).
fn lines(sdp: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    sdp.split_inclusive('\n').enumerate().map(|(i, raw)| {
        let content = raw
            .strip_suffix("\r\n")
            .or_else(|| raw.strip_suffix('\n'))
            .unwrap_or(raw);
        (i + 1, content, &raw[content.len()..])
    })
}

/// `IN IP4 <addr>[/ttl[/n]]` → the address.
fn parse_connection(value: &str, n: usize) -> Result<IpAddr, SdpError> {
    let mut f = value.split_ascii_whitespace();
    let (net, _kind, addr) = (f.next(), f.next(), f.next());
    if net != Some("IN") {
        return Err(err(n, "connection is not IN"));
    }
    let addr = addr.ok_or(err(n, "connection without an address"))?;
    let addr = addr.split('/').next().unwrap_or(addr);
    addr.parse()
        .map_err(|_| err(n, "connection address is not an IP address"))
}

impl SessionDescription {
    /// Parses the parts the bridge uses; other lines are skipped.
    pub fn parse(sdp: &str) -> Result<SessionDescription, SdpError> {
        let mut out = SessionDescription {
            origin_address: None,
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut saw_version = false;
        for (n, line, _) in lines(sdp) {
            if line.is_empty() {
                continue;
            }
            let Some((kind, value)) = line.split_once('=') else {
                return Err(err(n, "not a <type>=<value> line"));
            };
            match kind {
                "v" => saw_version = true,
                "o" => {
                    let f: Vec<&str> = value.split_ascii_whitespace().collect();
                    if f.len() != 6 {
                        return Err(err(n, "o= needs six fields"));
                    }
                    out.origin_address = f[5].parse().ok();
                }
                "c" => {
                    let addr = parse_connection(value, n)?;
                    match out.media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => out.connection = Some(addr),
                    }
                }
                "m" => {
                    let mut f = value.split_ascii_whitespace();
                    let (Some(media), Some(port), Some(proto)) = (f.next(), f.next(), f.next())
                    else {
                        return Err(err(n, "m= needs media, port and proto"));
                    };
                    let port = port.split('/').next().unwrap_or(port);
                    let port = port
                        .parse()
                        .map_err(|_| err(n, "m= port is not a number"))?;
                    out.media.push(MediaDescription {
                        kind: media.to_string(),
                        port,
                        proto: proto.to_string(),
                        formats: f.map(str::to_string).collect(),
                        connection: None,
                        rtpmaps: Vec::new(),
                        direction: None,
                        rtcp: None,
                        ptime: None,
                    });
                }
                "a" => {
                    let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                    if let Some(d) = Direction::parse(name) {
                        match out.media.last_mut() {
                            Some(m) => m.direction = Some(d),
                            None => out.direction = Some(d),
                        }
                        continue;
                    }
                    let Some(m) = out.media.last_mut() else {
                        continue;
                    };
                    match name {
                        "rtpmap" => m.rtpmaps.push(parse_rtpmap(arg, n)?),
                        "rtcp" => {
                            let (port, rest) = arg.split_once(' ').unwrap_or((arg, ""));
                            let port = port
                                .trim()
                                .parse()
                                .map_err(|_| err(n, "a=rtcp port is not a number"))?;
                            let addr = if rest.trim().is_empty() {
                                None
                            } else {
                                Some(parse_connection(rest, n)?)
                            };
                            m.rtcp = Some((port, addr));
                        }
                        "ptime" => m.ptime = arg.trim().parse().ok(),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(err(1, "no v= line"));
        }
        Ok(out)
    }

    /// The first audio stream in use, as the relay needs it: a disabled
    /// stream (port 0) before it is skipped, as `rewrite` skips it; with
    /// only disabled audio, the first of them (no address: rejected).
    pub fn audio(&self) -> Option<AudioMedia> {
        let audio = || self.media.iter().filter(|m| m.kind == "audio");
        let m = audio().find(|m| m.port != 0).or_else(|| audio().next())?;
        let addr = m.connection.or(self.connection);
        let rtp = match addr {
            Some(a) if m.port != 0 && !a.is_unspecified() => Some(SocketAddr::new(a, m.port)),
            _ => None,
        };
        let rtcp = rtp.map(|rtp| match m.rtcp {
            Some((port, a)) => SocketAddr::new(a.unwrap_or(rtp.ip()), port),
            None => SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1)),
        });
        let mut codecs = Vec::new();
        let mut telephone_event = None;
        for f in &m.formats {
            let Ok(pt) = f.parse::<u8>() else { continue };
            match m.rtpmaps.iter().find(|r| r.payload_type == pt) {
                Some(r) if r.encoding.eq_ignore_ascii_case("telephone-event") => {
                    if r.clock_rate == 8000 || telephone_event.is_none() {
                        telephone_event = Some(pt);
                    }
                }
                Some(r) if r.clock_rate == 8000 => {
                    if let Some(c) = Codec::from_encoding_name(&r.encoding) {
                        codecs.push((pt, c));
                    }
                }
                Some(_) => {}
                None => {
                    if let Some(c) = Codec::from_static_payload_type(pt) {
                        codecs.push((pt, c));
                    }
                }
            }
        }
        Some(AudioMedia {
            rtp,
            rtcp,
            codecs,
            telephone_event,
            direction: m
                .direction
                .or(self.direction)
                .unwrap_or(Direction::SendRecv),
        })
    }
}

fn parse_rtpmap(arg: &str, n: usize) -> Result<RtpMap, SdpError> {
    let bad = err(n, "malformed a=rtpmap");
    let (pt, rest) = arg.split_once(' ').ok_or(bad.clone())?;
    let mut enc = rest.trim().split('/');
    let encoding = enc.next().filter(|e| !e.is_empty()).ok_or(bad.clone())?;
    let clock_rate = enc.next().and_then(|c| c.parse().ok()).ok_or(bad.clone())?;
    Ok(RtpMap {
        payload_type: pt.trim().parse().map_err(|_| bad.clone())?,
        encoding: encoding.to_string(),
        clock_rate,
        channels: enc.next().and_then(|c| c.parse().ok()),
    })
}

fn addr_type(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IP4" } else { "IP6" }
}

/// The `<media> <port> <proto and formats>` of an `m=` value, split on
/// ASCII whitespace as [`SessionDescription::parse`] reads it (so a tab or a
/// doubled space does not shift the fields); the last part is kept as
/// written.
fn media_fields(value: &str) -> Option<(&str, &str, &str)> {
    let ws = |c: char| c.is_ascii_whitespace();
    let (kind, after) = value.trim_start_matches(ws).split_once(ws)?;
    let (port, rest) = after.trim_start_matches(ws).split_once(ws)?;
    let rest = rest.trim_start_matches(ws);
    (!rest.is_empty()).then_some((kind, port, rest))
}

/// ICE attributes: dropped, since their candidates would route media around
/// the bridge.
const ICE_ATTRIBUTES: [&str; 8] = [
    "a=candidate:",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=ice-options:",
    "a=ice-lite",
    "a=ice-mismatch",
    "a=remote-candidates:",
    "a=end-of-candidates",
];

/// The bridge's own offer, for a leg it opens without anyone's SDP to
/// copy (click-to-call rings the extension first): G.711 PCMU and PCMA
/// (what every phone and carrier speaks) and RFC 4733 events, to
/// `media_address:audio_port`. `session` is the `o=` id and version.
pub fn offer(media_address: IpAddr, audio_port: u16, session: u64) -> String {
    let at = addr_type(media_address);
    format!(
        "v=0\r\no=pbx-bridge {session} {session} IN {at} {media_address}\r\ns=pbx-bridge\r\n\
         c=IN {at} {media_address}\r\nt=0 0\r\n\
         m=audio {audio_port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// A copy of `sdp` that sends the peer's media to the bridge: `o=` and every
/// `c=` carry `media_address` (a `c=` of 0.0.0.0 / `::`, the old hold
/// signal, is kept), the first audio `m=` line with a non-zero port gets
/// `audio_port` and its `a=rtcp` gets `audio_port + 1`; any other stream
/// with a port gets port 0 (the bridge relays one audio stream); ICE
/// attributes are removed. Every other line, and every line ending, is
/// copied byte for byte.
pub fn rewrite(sdp: &str, media_address: IpAddr, audio_port: u16) -> Result<String, SdpError> {
    let mut out = String::with_capacity(sdp.len() + 16);
    let at = addr_type(media_address);
    // Which m= section we are in: None before the first; Some(true) for the
    // audio section that the bridge relays.
    let mut section: Option<bool> = None;
    let mut audio_taken = false;
    for (n, line, end) in lines(sdp) {
        if ICE_ATTRIBUTES.iter().any(|p| line.starts_with(p)) {
            continue;
        }
        if let Some(value) = line.strip_prefix("o=") {
            let f: Vec<&str> = value.split_ascii_whitespace().collect();
            if f.len() != 6 {
                return Err(err(n, "o= needs six fields"));
            }
            out.push_str(&format!(
                "o={} {} {} {} {at} {media_address}",
                f[0], f[1], f[2], f[3]
            ));
        } else if let Some(value) = line.strip_prefix("c=") {
            let addr = parse_connection(value, n)?;
            if addr.is_unspecified() {
                out.push_str(line);
            } else {
                out.push_str(&format!("c=IN {at} {media_address}"));
            }
        } else if let Some(value) = line.strip_prefix("m=") {
            let Some((kind, port, rest)) = media_fields(value) else {
                return Err(err(n, "m= needs media, port and proto"));
            };
            let disabled = port.split('/').next().and_then(|p| p.parse::<u16>().ok()) == Some(0);
            let relayed = kind == "audio" && !disabled && !audio_taken;
            audio_taken |= relayed;
            section = Some(relayed);
            let new_port = if relayed {
                audio_port
            } else if disabled {
                out.push_str(line);
                out.push_str(end);
                continue;
            } else {
                0
            };
            out.push_str(&format!("m={kind} {new_port} {rest}"));
        } else if section == Some(true)
            && let Some(arg) = line.strip_prefix("a=rtcp:")
        {
            let rtcp = audio_port.wrapping_add(1);
            if arg.contains(' ') {
                out.push_str(&format!("a=rtcp:{rtcp} IN {at} {media_address}"));
            } else {
                out.push_str(&format!("a=rtcp:{rtcp}"));
            }
        } else {
            out.push_str(line);
        }
        out.push_str(end);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PJSUA2 2.15 (pjmedia), CRLF, with a=rtcp and an a=ssrc.
    const PJSUA2: &str = "v=0\r\n\
o=- 3923410442 3923410442 IN IP4 192.168.1.10\r\n\
s=pjmedia\r\n\
b=AS:84\r\n\
t=0 0\r\n\
a=X-nat:0\r\n\
m=audio 4000 RTP/AVP 0 8 96 120\r\n\
c=IN IP4 192.168.1.10\r\n\
b=TIAS:64000\r\n\
a=rtcp:4001 IN IP4 192.168.1.10\r\n\
a=sendrecv\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:96 telephone-event/16000\r\n\
a=fmtp:96 0-16\r\n\
a=rtpmap:120 telephone-event/8000\r\n\
a=fmtp:120 0-16\r\n\
a=ssrc:1620290578 cname:4e0a3f6b2b8d1c5a\r\n";

    /// SIPp's built-in uac scenario (`-sn uac`), keywords expanded.
    const SIPP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

    /// Asterisk 20 (chan_pjsip), session-level c=, ptime, maxptime.
    const ASTERISK: &str = "v=0\r\n\
o=- 1700000000 1700000002 IN IP4 10.0.0.5\r\n\
s=Asterisk\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
m=audio 12346 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:140\r\n\
a=sendrecv\r\n";

    #[test]
    fn parses_pjsua2() {
        let s = SessionDescription::parse(PJSUA2).unwrap();
        assert_eq!(s.origin_address, Some("192.168.1.10".parse().unwrap()));
        let a = s.audio().unwrap();
        assert_eq!(a.rtp, Some("192.168.1.10:4000".parse().unwrap()));
        assert_eq!(a.rtcp, Some("192.168.1.10:4001".parse().unwrap()));
        assert_eq!(a.codecs, [(0, Codec::Pcmu), (8, Codec::Pcma)]);
        assert_eq!(a.telephone_event, Some(120));
        assert_eq!(a.direction, Direction::SendRecv);
        assert_eq!(s.media[0].rtpmaps.len(), 4);
    }

    #[test]
    fn parses_sipp_with_static_types_only() {
        let s = SessionDescription::parse(SIPP).unwrap();
        let a = s.audio().unwrap();
        assert_eq!(a.rtp, Some("127.0.0.1:6000".parse().unwrap()));
        assert_eq!(a.rtcp, Some("127.0.0.1:6001".parse().unwrap()));
        assert_eq!(a.codecs, [(0, Codec::Pcmu)]);
        assert_eq!(a.telephone_event, None);
    }

    #[test]
    fn parses_asterisk_session_level_connection() {
        let s = SessionDescription::parse(ASTERISK).unwrap();
        let a = s.audio().unwrap();
        assert_eq!(a.rtp, Some("10.0.0.5:12346".parse().unwrap()));
        assert_eq!(a.codecs, [(8, Codec::Pcma), (0, Codec::Pcmu)]);
        assert_eq!(a.telephone_event, Some(101));
        assert_eq!(s.media[0].ptime, Some(20));
    }

    #[test]
    fn hold_and_directions() {
        let hold = ASTERISK
            .replace("c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0")
            .replace("a=sendrecv", "a=sendonly");
        let a = SessionDescription::parse(&hold).unwrap().audio().unwrap();
        assert_eq!(a.rtp, None);
        assert_eq!(a.direction, Direction::SendOnly);
        assert!(a.direction.sends());
        let inactive = SIPP.replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n");
        let a = SessionDescription::parse(&inactive)
            .unwrap()
            .audio()
            .unwrap();
        assert_eq!(a.direction, Direction::Inactive);
        assert!(!a.direction.sends());
    }

    #[test]
    fn rejects_garbage() {
        assert!(SessionDescription::parse("hello").is_err());
        assert!(SessionDescription::parse("s=-\r\n").is_err());
        assert!(SessionDescription::parse("v=0\r\nm=audio x RTP/AVP 0\r\n").is_err());
        assert!(SessionDescription::parse("v=0\r\nc=IN IP4 host.example\r\n").is_err());
        assert!(SessionDescription::parse("v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:x\r\n").is_err());
    }

    #[test]
    fn rewrites_pjsua2_keeping_every_other_line() {
        let bridge: IpAddr = "203.0.113.7".parse().unwrap();
        let out = rewrite(PJSUA2, bridge, 20010).unwrap();
        let want = PJSUA2
            .replace(
                "o=- 3923410442 3923410442 IN IP4 192.168.1.10",
                "o=- 3923410442 3923410442 IN IP4 203.0.113.7",
            )
            .replace("m=audio 4000 ", "m=audio 20010 ")
            .replace("c=IN IP4 192.168.1.10", "c=IN IP4 203.0.113.7")
            .replace(
                "a=rtcp:4001 IN IP4 192.168.1.10",
                "a=rtcp:20011 IN IP4 203.0.113.7",
            );
        assert_eq!(out, want);
        let a = SessionDescription::parse(&out).unwrap().audio().unwrap();
        assert_eq!(a.rtp, Some("203.0.113.7:20010".parse().unwrap()));
        assert_eq!(a.rtcp, Some("203.0.113.7:20011".parse().unwrap()));
    }

    #[test]
    fn rewrites_sipp_and_asterisk() {
        let bridge: IpAddr = "127.0.0.1".parse().unwrap();
        let out = rewrite(SIPP, bridge, 20000).unwrap();
        assert_eq!(out, SIPP.replace("m=audio 6000 ", "m=audio 20000 "));
        let out = rewrite(ASTERISK, "192.0.2.1".parse().unwrap(), 20002).unwrap();
        assert_eq!(
            out,
            ASTERISK
                .replace("IN IP4 10.0.0.5", "IN IP4 192.0.2.1")
                .replace("m=audio 12346 ", "m=audio 20002 ")
        );
    }

    #[test]
    fn rewrite_keeps_lf_endings_hold_and_disables_other_streams() {
        let sdp = "v=0\no=- 1 1 IN IP4 10.1.1.1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\n\
m=audio 5004 RTP/AVP 0\na=candidate:1 1 UDP 2130706431 10.1.1.1 5004 typ host\na=ice-ufrag:abcd\n\
m=video 5006 RTP/AVP 96\na=rtpmap:96 H264/90000\nm=audio 0 RTP/AVP 8\na=x-last";
        let out = rewrite(sdp, "::1".parse().unwrap(), 30000).unwrap();
        assert_eq!(
            out,
            "v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\n\
m=audio 30000 RTP/AVP 0\n\
m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\nm=audio 0 RTP/AVP 8\na=x-last"
        );
    }

    /// `parse` splits `m=` on any ASCII whitespace; `rewrite` split it on
    /// single spaces, so the same line had other fields: a tab made the
    /// rewrite fail, a doubled space moved the port into the proto, a
    /// leading space lost the media kind, and (found by fuzzing, the input
    /// below) a parseable SDP was rewritten into one that does not parse.
    #[test]
    fn a_disabled_audio_stream_before_the_used_one_is_skipped() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\nm=audio 4000 RTP/AVP 8\r\n";
        let a = SessionDescription::parse(sdp).unwrap().audio().unwrap();
        assert_eq!(a.rtp, Some("10.0.0.1:4000".parse().unwrap()));
        assert_eq!(a.codecs, vec![(8, Codec::Pcma)]);
        let out = rewrite(sdp, "192.0.2.1".parse().unwrap(), 20000).unwrap();
        let b = SessionDescription::parse(&out).unwrap().audio().unwrap();
        assert_eq!(b.rtp, Some("192.0.2.1:20000".parse().unwrap()));
        // Only disabled audio: the stream is there, with no address.
        let off = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(
            SessionDescription::parse(off).unwrap().audio().unwrap().rtp,
            None
        );
    }

    #[test]
    fn rewrite_reads_m_lines_as_parse_does() {
        let bridge: IpAddr = "203.0.113.7".parse().unwrap();
        let head = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";
        // The proto and formats are kept as written.
        for (m, rest) in [
            ("m=audio\t4000\tRTP/AVP\t0 8", "RTP/AVP\t0 8"),
            ("m=audio  4000 RTP/AVP 0 8", "RTP/AVP 0 8"),
            ("m= audio 4000 RTP/AVP 0 8", "RTP/AVP 0 8"),
            ("m=audio 4000 \t RTP/AVP 0 8", "RTP/AVP 0 8"),
        ] {
            let out = rewrite(&format!("{head}{m}\r\n"), bridge, 20000).unwrap();
            let want = head.replace("10.0.0.1", "203.0.113.7");
            assert_eq!(out, format!("{want}m=audio 20000 {rest}\r\n"), "{m:?}");
            let a = SessionDescription::parse(&out).unwrap().audio().unwrap();
            assert_eq!(a.rtp, Some("203.0.113.7:20000".parse().unwrap()));
            assert_eq!(a.codecs, [(0, Codec::Pcmu), (8, Codec::Pcma)]);
        }
        let fuzzed = "v= 4\r\nm=                 (  6 2";
        assert!(SessionDescription::parse(fuzzed).is_ok());
        let out = rewrite(fuzzed, bridge, 20000).unwrap();
        assert_eq!(out, "v= 4\r\nm=( 0 2");
        assert!(SessionDescription::parse(&out).is_ok());
    }

    #[test]
    fn rewrite_then_parse_is_lossless_for_untouched_lines() {
        // Every line that is not o=/c=/m=/a=rtcp comes out identical.
        for sdp in [PJSUA2, SIPP, ASTERISK] {
            let out = rewrite(sdp, "198.51.100.2".parse().unwrap(), 24000).unwrap();
            let keep = |s: &str| {
                s.split("\r\n")
                    .filter(|l| {
                        !(l.starts_with("o=")
                            || l.starts_with("c=")
                            || l.starts_with("m=")
                            || l.starts_with("a=rtcp:"))
                    })
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            assert_eq!(keep(&out), keep(sdp));
        }
    }
}

#[cfg(test)]
mod tests_props;
