//! Property tests of the SDP layer: [`SessionDescription::parse`] and
//! [`rewrite`] never panic on arbitrary input, and on generated offers
//! `rewrite` keeps its documented contract: every line it does not own is
//! copied byte for byte and in order, the audio stream points at the
//! bridge with its codecs, direction and `telephone-event` unchanged, and a
//! second rewrite changes nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

/// One generated SDP line, with what `rewrite` is documented to do to it.
#[derive(Debug, Clone)]
enum Line {
    /// Not rewritten: copied byte for byte.
    Keep(String),
    /// An ICE attribute: removed.
    Ice(String),
    /// `o=<head> IN IP4|IP6 <addr>`: the address becomes the bridge's.
    Origin { head: String, addr: String },
    /// `c=IN IP4|IP6 <addr>[/ttl]`: the bridge's, unless unspecified (hold).
    Conn(IpAddr, Option<u8>),
    /// `m=<kind> <port>[/<count>] <rest>`.
    Media {
        kind: &'static str,
        port: u16,
        count: Option<u8>,
        rest: String,
        /// The audio stream the bridge relays (gets the bridge's port).
        relayed: bool,
    },
    /// `a=rtcp:<port>[ IN IP4|IP6 <addr>]`.
    Rtcp {
        port: u16,
        addr: Option<IpAddr>,
        relayed: bool,
    },
}

fn addr_kind(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IP4" } else { "IP6" }
}

impl Line {
    fn render(&self) -> String {
        match self {
            Line::Keep(s) | Line::Ice(s) => s.clone(),
            Line::Origin { head, addr } => {
                let kind = match addr.parse::<IpAddr>() {
                    Ok(IpAddr::V6(_)) => "IP6",
                    _ => "IP4",
                };
                format!("o={head} IN {kind} {addr}")
            }
            Line::Conn(a, ttl) => match ttl {
                Some(t) => format!("c=IN {} {a}/{t}", addr_kind(*a)),
                None => format!("c=IN {} {a}", addr_kind(*a)),
            },
            Line::Media {
                kind,
                port,
                count,
                rest,
                ..
            } => match count {
                Some(n) => format!("m={kind} {port}/{n} {rest}"),
                None => format!("m={kind} {port} {rest}"),
            },
            Line::Rtcp { port, addr, .. } => match addr {
                Some(a) => format!("a=rtcp:{port} IN {} {a}", addr_kind(*a)),
                None => format!("a=rtcp:{port}"),
            },
        }
    }

    /// The line `rewrite(_, ip, port)` must produce, per its documentation.
    fn rewritten(&self, ip: IpAddr, port: u16) -> Option<String> {
        let at = addr_kind(ip);
        Some(match self {
            Line::Ice(_) => return None,
            Line::Origin { head, .. } => format!("o={head} IN {at} {ip}"),
            Line::Conn(a, _) if !a.is_unspecified() => format!("c=IN {at} {ip}"),
            Line::Media {
                kind,
                rest,
                relayed: true,
                ..
            } => format!("m={kind} {port} {rest}"),
            Line::Media {
                kind,
                port: p,
                rest,
                ..
            } if *p != 0 => format!("m={kind} 0 {rest}"),
            Line::Rtcp {
                addr,
                relayed: true,
                ..
            } => match addr {
                Some(_) => format!("a=rtcp:{} IN {at} {ip}", port.wrapping_add(1)),
                None => format!("a=rtcp:{}", port.wrapping_add(1)),
            },
            other => other.render(),
        })
    }
}

/// A generated offer: its lines, each with its terminator.
#[derive(Debug, Clone)]
struct Offer {
    lines: Vec<(Line, &'static str)>,
    /// The connection address that applies to the relayed audio stream.
    audio_connection: IpAddr,
    /// Whether its `m=` lists 101 with `a=rtpmap:101 telephone-event/8000`.
    has_te_101: bool,
}

impl Offer {
    fn text(&self) -> String {
        self.lines
            .iter()
            .map(|(l, end)| format!("{}{end}", l.render()))
            .collect()
    }

    fn expected_rewrite(&self, ip: IpAddr, port: u16) -> String {
        self.lines
            .iter()
            .filter_map(|(l, end)| l.rewritten(ip, port).map(|s| s + end))
            .collect()
    }
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        1 => any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        1 => any::<u64>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | a as u128))),
    ]
    .prop_filter("unspecified", |a| !a.is_unspecified())
}

/// A `c=` address: mostly a real one, sometimes the hold address.
fn connection() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        8 => ip(),
        1 => Just(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        1 => Just(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    ]
}

fn direction() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("a=sendrecv"),
        Just("a=sendonly"),
        Just("a=recvonly"),
        Just("a=inactive"),
    ]
}

/// Free text of one line (no line break).
fn text() -> impl Strategy<Value = String> {
    "[ -~\u{e9}\u{4e2d}]{0,24}"
}

/// A line the rewriter must not touch; some look like the ones it does.
fn other_line() -> impl Strategy<Value = String> {
    prop_oneof![
        text().prop_map(|t| format!("i={t}")),
        text().prop_map(|t| format!("a=x-{t}")),
        "[0-9]{1,6}".prop_map(|n| format!("b=AS:{n}")),
        "[0-9]{1,6}".prop_map(|n| format!("b=TIAS:{n}")),
        Just("a=rtcp-mux".to_string()),
        Just("a=rtcp-fb:* nack".to_string()),
        Just("a=rtcp-rsize".to_string()),
        Just("a=maxptime:140".to_string()),
        (any::<u32>(), "[a-z0-9]{4,16}").prop_map(|(s, c)| format!("a=ssrc:{s} cname:{c}")),
        Just("a=mid:0".to_string()),
        Just("a=tool:pjmedia  2.15 (double space kept)".to_string()),
        Just("a=connection:new".to_string()),
        Just("a=X-nat:0".to_string()),
        Just("k=prompt".to_string()),
        Just("e=ops@example.com".to_string()),
    ]
}

fn ice_line() -> impl Strategy<Value = String> {
    prop_oneof![
        (ip(), 1u16..)
            .prop_map(|(a, p)| format!("a=candidate:1 1 UDP 2130706431 {a} {p} typ host")),
        "[a-zA-Z0-9+/]{4,8}".prop_map(|u| format!("a=ice-ufrag:{u}")),
        "[a-zA-Z0-9+/]{22,24}".prop_map(|p| format!("a=ice-pwd:{p}")),
        Just("a=ice-options:trickle".to_string()),
        Just("a=ice-lite".to_string()),
        Just("a=end-of-candidates".to_string()),
    ]
}

/// (payload type, its `a=rtpmap` value when it has one).
fn payload_type() -> impl Strategy<Value = (u8, Option<&'static str>)> {
    prop_oneof![
        Just((0, Some("PCMU/8000"))),
        Just((0, None)),
        Just((8, Some("PCMA/8000"))),
        Just((8, None)),
        Just((101, Some("telephone-event/8000"))),
        Just((120, Some("telephone-event/16000"))),
        Just((9, Some("G722/8000"))),
        Just((18, Some("G729/8000"))),
        Just((13, None)),
        Just((96, Some("opus/48000/2"))),
        Just((97, Some("pcmu/8000"))),
        Just((98, Some("PCMA/16000"))),
        Just((3, None)),
    ]
}

/// The attribute lines of one media section, and its format list.
fn media_attributes(relayed: bool) -> impl Strategy<Value = (Vec<Line>, Vec<u8>, bool)> {
    (
        proptest::collection::vec(payload_type(), 1..6),
        proptest::option::of((any::<u16>(), proptest::option::of(ip()))),
        proptest::option::of(direction()),
        proptest::option::of(prop_oneof![Just(10u32), Just(20), Just(30), Just(60)]),
        proptest::collection::vec(other_line(), 0..4),
        proptest::collection::vec(ice_line(), 0..3),
        any::<bool>(),
    )
        .prop_flat_map(move |(pts, rtcp, dir, ptime, other, ice, fmtp)| {
            let mut formats = Vec::new();
            let mut attrs = Vec::new();
            for (pt, map) in pts {
                if formats.contains(&pt) {
                    continue;
                }
                formats.push(pt);
                if let Some(m) = map {
                    attrs.push(Line::Keep(format!("a=rtpmap:{pt} {m}")));
                    if fmtp && m.starts_with("telephone-event") {
                        attrs.push(Line::Keep(format!("a=fmtp:{pt} 0-16")));
                    }
                }
            }
            let has_te_101 = attrs
                .iter()
                .any(|l| matches!(l, Line::Keep(s) if s == "a=rtpmap:101 telephone-event/8000"));
            if let Some((port, addr)) = rtcp {
                attrs.push(Line::Rtcp {
                    port,
                    addr,
                    relayed,
                });
            }
            attrs.extend(dir.map(|d| Line::Keep(d.to_string())));
            attrs.extend(ptime.map(|p| Line::Keep(format!("a=ptime:{p}"))));
            attrs.extend(other.into_iter().map(Line::Keep));
            attrs.extend(ice.into_iter().map(Line::Ice));
            (Just(attrs).prop_shuffle(), Just(formats), Just(has_te_101))
        })
}

/// The relayed audio stream: a non-zero port, RTP/AVP, G.711 and friends.
fn audio_section() -> impl Strategy<Value = (Vec<Line>, Option<IpAddr>, bool)> {
    (
        1u16..,
        proptest::option::of(1u8..4),
        prop_oneof![Just("RTP/AVP"), Just("RTP/AVPF")],
        proptest::option::of((connection(), proptest::option::of(any::<u8>()))),
        media_attributes(true),
    )
        .prop_map(|(port, count, proto, conn, (attrs, formats, te))| {
            let fmts: Vec<String> = formats.iter().map(u8::to_string).collect();
            let mut lines = vec![Line::Media {
                kind: "audio",
                port,
                count,
                rest: format!("{proto} {}", fmts.join(" ")),
                relayed: true,
            }];
            lines.extend(conn.map(|(a, ttl)| Line::Conn(a, ttl)));
            lines.extend(attrs);
            (lines, conn.map(|c| c.0), te)
        })
}

/// Another stream: the bridge gives it port 0 (or keeps its 0).
fn other_section() -> impl Strategy<Value = Vec<Line>> {
    (
        prop_oneof![
            Just("video"),
            Just("audio"),
            Just("application"),
            Just("text")
        ],
        prop_oneof![Just(0u16), 1u16..],
        proptest::option::of(connection()),
        media_attributes(false),
    )
        .prop_map(|(kind, port, conn, (attrs, formats, _))| {
            let fmts: Vec<String> = formats.iter().map(u8::to_string).collect();
            let mut lines = vec![Line::Media {
                kind,
                port,
                count: None,
                rest: format!("RTP/AVP {}", fmts.join(" ")),
                relayed: false,
            }];
            lines.extend(conn.map(|a| Line::Conn(a, None)));
            lines.extend(attrs);
            lines
        })
}

fn end_of_line() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\r\n"), Just("\n")]
}

fn offer() -> impl Strategy<Value = Offer> {
    (
        (
            "[a-z0-9-]{1,8}",
            any::<u32>(),
            any::<u32>(),
            prop_oneof![
                ip().prop_map(|a| a.to_string()),
                Just("host.example.com".to_string()),
            ],
        ),
        text(),
        proptest::option::of(connection()),
        proptest::option::of(direction()),
        proptest::collection::vec(other_line(), 0..3),
        proptest::collection::vec(ice_line(), 0..2),
        audio_section(),
        proptest::collection::vec(other_section(), 0..3),
        // Line endings: one style for the SDP, sometimes mixed, sometimes no
        // terminator after the last line.
        (end_of_line(), any::<bool>(), any::<bool>()),
        proptest::collection::vec(end_of_line(), 64),
        ip(),
    )
        .prop_map(
            |(
                (user, id, version, origin),
                name,
                session_c,
                session_dir,
                session_other,
                session_ice,
                (audio, audio_c, has_te_101),
                others,
                (eol, mixed, last_unterminated),
                eols,
                fallback,
            )| {
                let mut lines = vec![
                    Line::Keep("v=0".to_string()),
                    Line::Origin {
                        head: format!("{user} {id} {version}"),
                        addr: origin,
                    },
                    Line::Keep(format!("s={name}")),
                ];
                // A c= must apply to the audio stream: at session level if
                // the stream has none.
                let session_c = match (session_c, audio_c) {
                    (None, None) => Some(fallback),
                    (c, _) => c,
                };
                lines.extend(session_c.map(|a| Line::Conn(a, None)));
                lines.push(Line::Keep("t=0 0".to_string()));
                lines.extend(session_dir.map(|d| Line::Keep(d.to_string())));
                lines.extend(session_other.into_iter().map(Line::Keep));
                lines.extend(session_ice.into_iter().map(Line::Ice));
                lines.extend(audio);
                lines.extend(others.into_iter().flatten());
                let n = lines.len();
                let lines = lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let end = if i + 1 == n && last_unterminated {
                            ""
                        } else if mixed {
                            eols[i % eols.len()]
                        } else {
                            eol
                        };
                        (l, end)
                    })
                    .collect();
                Offer {
                    lines,
                    audio_connection: audio_c.or(session_c).unwrap(),
                    has_te_101,
                }
            },
        )
}

/// The lines `rewrite` does not own, with their terminators, in order.
fn untouched(sdp: &str) -> Vec<&str> {
    sdp.split_inclusive('\n')
        .filter(|l| {
            !(l.starts_with("o=")
                || l.starts_with("c=")
                || l.starts_with("m=")
                || l.starts_with("a=rtcp:")
                || ICE_ATTRIBUTES.iter().any(|p| l.starts_with(p)))
        })
        .collect()
}

/// Lines that look like SDP, for the never-panics properties.
fn sdp_ish() -> impl Strategy<Value = String> {
    let line = (
        prop_oneof![
            Just(""),
            Just("v="),
            Just("o="),
            Just("c="),
            Just("c=IN IP4 "),
            Just("c=IN IP6 "),
            Just("m="),
            Just("m=audio "),
            Just("m=video "),
            Just("a="),
            Just("a=rtpmap:"),
            Just("a=rtcp:"),
            Just("a=rtcp:1 IN IP4 "),
            Just("a=ptime:"),
            Just("a=sendonly"),
            Just("a=candidate:"),
            Just("a=ice-lite"),
        ],
        "[ -~\t\u{0}\u{e9}\u{4e2d}]{0,30}",
        prop_oneof![Just("\r\n"), Just("\n"), Just("\r"), Just("")],
    )
        .prop_map(|(p, t, e)| format!("{p}{t}{e}"));
    proptest::collection::vec(line, 0..20).prop_map(|v| v.concat())
}

/// Never panics; a rewrite of a parseable SDP parses again; rewriting is
/// idempotent.
fn check_arbitrary(sdp: &str, ip: IpAddr, port: u16) -> Result<(), TestCaseError> {
    let parsed = SessionDescription::parse(sdp);
    if let Ok(p) = &parsed {
        let _ = p.audio();
    }
    let Ok(out) = rewrite(sdp, ip, port) else {
        return Ok(());
    };
    if parsed.is_ok() {
        prop_assert!(
            SessionDescription::parse(&out).is_ok(),
            "the rewrite of a parseable SDP does not parse: {out:?}"
        );
    }
    prop_assert_eq!(rewrite(&out, ip, port), Ok(out), "not idempotent");
    Ok(())
}

#[test]
fn fuzz_found_inputs_keep_the_properties() {
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    // m= fields separated by runs of spaces (cargo fuzz, target `sdp`).
    check_arbitrary("v= 4\r\nm=                 (  6 2", ip, 20000).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn parse_never_panics(sdp in any::<String>()) {
        let _ = SessionDescription::parse(&sdp).map(|s| s.audio());
    }

    #[test]
    fn rewrite_never_panics_on_arbitrary_strings(
        sdp in any::<String>(),
        ip in ip(),
        port in any::<u16>(),
    ) {
        check_arbitrary(&sdp, ip, port)?;
    }

    #[test]
    fn parse_and_rewrite_never_panic_on_sdp_like_input(
        sdp in sdp_ish(),
        ip in ip(),
        port in any::<u16>(),
    ) {
        check_arbitrary(&sdp, ip, port)?;
    }

    #[test]
    fn rewrite_never_panics_on_mangled_offers(
        offer in offer(),
        cut in any::<prop::sample::Index>(),
        insert in "[ -~\r\n\t]{0,12}",
        ip in ip(),
        port in any::<u16>(),
    ) {
        let sdp = offer.text();
        let mut at = cut.index(sdp.len() + 1);
        while !sdp.is_char_boundary(at) {
            at -= 1;
        }
        check_arbitrary(&format!("{}{insert}{}", &sdp[..at], &sdp[at..]), ip, port)?;
        check_arbitrary(&sdp[..at], ip, port)?;
    }

    /// The documented contract of `rewrite`, on generated offers.
    #[test]
    fn rewrite_keeps_the_contract(offer in offer(), ip in ip(), port in 1u16..) {
        let sdp = offer.text();
        let before = SessionDescription::parse(&sdp).expect("a generated offer parses");
        let audio_before = before.audio().expect("the offer has audio");
        let hold = offer.audio_connection.is_unspecified();
        prop_assert_eq!(audio_before.rtp.is_none(), hold);

        let out = rewrite(&sdp, ip, port).expect("a generated offer rewrites");

        // Exactly the documented edits, every other byte kept.
        prop_assert_eq!(&out, &offer.expected_rewrite(ip, port));
        // (a) Every line that is not o=, c=, m= or a=rtcp (nor ICE, which
        // is removed) is kept byte for byte, terminator included, in order.
        prop_assert_eq!(untouched(&out), untouched(&sdp));

        // (b) It parses, and its audio is at the bridge with the same codecs.
        let after = SessionDescription::parse(&out).expect("the rewrite parses");
        let audio = after.audio().expect("the rewrite has audio");
        let want = (!hold).then(|| SocketAddr::new(ip, port));
        prop_assert_eq!(audio.rtp, want);
        prop_assert_eq!(audio.rtcp, want.map(|_| SocketAddr::new(ip, port.wrapping_add(1))));
        prop_assert_eq!(&audio.codecs, &audio_before.codecs);
        prop_assert_eq!(audio.telephone_event, audio_before.telephone_event);
        prop_assert_eq!(audio.direction, audio_before.direction);
        prop_assert_eq!(after.origin_address, Some(ip));
        prop_assert_eq!(after.media.len(), before.media.len());
        for m in &after.media[1..] {
            prop_assert_eq!(m.port, 0, "a stream other than the relayed one keeps a port");
        }
        for (a, b) in after.media.iter().zip(&before.media) {
            prop_assert_eq!((&a.kind, &a.proto, &a.formats), (&b.kind, &b.proto, &b.formats));
            prop_assert_eq!((&a.rtpmaps, a.direction, a.ptime), (&b.rtpmaps, b.direction, b.ptime));
        }
        // What the generator put in is what the parser reports.
        if offer.has_te_101 {
            prop_assert_eq!(audio.telephone_event, Some(101));
        }
        let formats = &after.media[0].formats;
        if formats.iter().any(|f| f == "0") {
            prop_assert!(audio.codecs.contains(&(0, Codec::Pcmu)));
        }
        if formats.iter().any(|f| f == "8") {
            prop_assert!(audio.codecs.contains(&(8, Codec::Pcma)));
        }

        // (c) Idempotent.
        prop_assert_eq!(rewrite(&out, ip, port).expect("the rewrite rewrites"), out);
    }
}
