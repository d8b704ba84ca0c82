//! Property tests: generated messages round-trip, arbitrary bytes never
//! panic, and stream framing is independent of how the bytes are split.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,10}"
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9]{0,5}){0,2}".prop_map(Host::Domain),
        any::<[u8; 4]>().prop_map(|a| Host::Ipv4(a.into())),
        any::<[u16; 8]>().prop_map(|a| Host::Ipv6(a.into())),
    ]
}

fn sip_uri() -> impl Strategy<Value = Uri> {
    (
        any::<bool>(),
        proptest::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,12}"),
        host(),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(("[a-z]{1,6}", proptest::option::of("[a-z0-9]{1,6}")), 0..3),
    )
        .prop_map(|(secure, user, host, port, params)| {
            Uri::Sip(SipUri {
                secure,
                user,
                password: None,
                host,
                port,
                params: Params(
                    params
                        .into_iter()
                        .map(|(name, value)| Param { name, value })
                        .collect(),
                ),
                headers: None,
            })
        })
}

fn any_uri() -> impl Strategy<Value = Uri> {
    prop_oneof![
        4 => sip_uri(),
        1 => "\\+?[0-9]{3,12}(;phone-context=[a-z.]{1,8})?".prop_map(Uri::Tel),
    ]
}

fn name_addr() -> impl Strategy<Value = NameAddr> {
    (
        proptest::option::of("[ -~\u{e9}\u{4e2d}]{0,12}"),
        any_uri(),
        proptest::option::of(token()),
    )
        .prop_map(|(display_name, uri, tag)| {
            let mut params = Params::default();
            if let Some(t) = tag {
                params.set("tag", Some(&t));
            }
            NameAddr {
                display_name,
                uri,
                params,
            }
        })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Register),
        Just(Method::Options),
        Just(Method::Bye),
        Just(Method::Refer),
        Just(Method::Update),
        "[A-Z]{3,10}".prop_map(|s| Method::from_token(s.as_bytes()).unwrap_or(Method::Info)),
    ]
}

fn via() -> impl Strategy<Value = Via> {
    (
        prop_oneof![Just("UDP"), Just("TCP"), Just("TLS"), Just("WS")],
        host(),
        proptest::option::of(any::<u16>()),
        "[a-zA-Z0-9]{1,10}",
        proptest::option::of(proptest::option::of(any::<u16>())),
        proptest::option::of(any::<[u8; 4]>()),
    )
        .prop_map(|(t, h, port, b, rport, received)| {
            let mut v = Via::new(t, h, port, &format!("{BRANCH_MAGIC_COOKIE}{b}"));
            v.rport = rport;
            v.received = received.map(|r| std::net::Ipv4Addr::from(r).to_string());
            v
        })
}

#[derive(Debug, Clone)]
struct Req {
    method: Method,
    uri: Uri,
    from: NameAddr,
    to: NameAddr,
    call_id: String,
    seq: u32,
    vias: Vec<Via>,
    contacts: Vec<NameAddr>,
    max_forwards: u8,
    body: Vec<u8>,
    /// Spelling/whitespace style selector.
    style: u8,
}

fn req() -> impl Strategy<Value = Req> {
    (
        method(),
        sip_uri(),
        name_addr(),
        name_addr(),
        "[a-zA-Z0-9.!%*_+`'~()<>:/?{}-]{1,20}(@[a-z0-9.]{1,10})?",
        any::<u32>(),
        proptest::collection::vec(via(), 1..4),
        proptest::collection::vec(name_addr(), 0..3),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..200),
        any::<u8>(),
    )
        .prop_map(
            |(method, uri, from, to, call_id, seq, vias, contacts, max_forwards, body, style)| {
                Req {
                    method,
                    uri,
                    from,
                    to,
                    call_id,
                    seq,
                    vias,
                    contacts,
                    max_forwards,
                    body,
                    style,
                }
            },
        )
}

/// Serializes with varied spellings: compact names, odd case, space before
/// the colon, line folding, Vias comma-joined or one per line.
fn render(r: &Req) -> Bytes {
    let s = r.style;
    let name = |full: &'static str, compact: &'static str| -> String {
        match s % 4 {
            0 => full.to_owned(),
            1 => compact.to_owned(),
            2 => full.to_ascii_uppercase(),
            _ => format!("{} ", full.to_ascii_lowercase()),
        }
    };
    let fold = if s & 0x10 != 0 { "\r\n  " } else { " " };
    let mut out = format!("{} {} SIP/2.0\r\n", r.method, r.uri);
    if s & 0x20 != 0 {
        let all: Vec<String> = r.vias.iter().map(ToString::to_string).collect();
        out += &format!(
            "{}:{fold}{}\r\n",
            name("Via", "v"),
            all.join(&format!(",{fold}"))
        );
    } else {
        for v in &r.vias {
            out += &format!("{}:{fold}{v}\r\n", name("Via", "v"));
        }
    }
    out += &format!("{}:{fold}{}\r\n", name("From", "f"), r.from);
    out += &format!("{}: {}\r\n", name("To", "t"), r.to);
    out += &format!("{}: {}\r\n", name("Call-ID", "i"), r.call_id);
    out += &format!("CSeq:{fold}{} {}\r\n", r.seq, r.method);
    out += &format!("Max-Forwards: {}\r\n", r.max_forwards);
    if !r.contacts.is_empty() {
        let all: Vec<String> = r.contacts.iter().map(ToString::to_string).collect();
        out += &format!("{}: {}\r\n", name("Contact", "m"), all.join(", "));
    }
    out += "X-Opaque: a, \"b,c\" ;;\r\n";
    out += &format!("{}: {}\r\n\r\n", name("Content-Length", "l"), r.body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&r.body);
    Bytes::from(bytes)
}

fn check_typed(m: &SipMessage, r: &Req) {
    assert_eq!(m.method(), Some(&r.method));
    assert_eq!(m.request_uri().unwrap(), r.uri);
    assert_eq!(m.from().unwrap(), r.from);
    assert_eq!(m.to().unwrap(), r.to);
    assert_eq!(m.call_id().unwrap(), r.call_id);
    assert_eq!(
        m.cseq().unwrap(),
        CSeq {
            seq: r.seq,
            method: r.method.clone()
        }
    );
    assert_eq!(m.vias().unwrap(), r.vias);
    assert_eq!(m.top_via().unwrap(), r.vias[0]);
    assert_eq!(m.contacts().unwrap(), Contacts::List(r.contacts.clone()));
    assert_eq!(m.max_forwards().unwrap(), Some(r.max_forwards));
    assert_eq!(&m.body()[..], &r.body[..]);
    assert_eq!(m.header_list("x-opaque"), vec!["a", "\"b,c\" ;;"]);
}

fn frames_of(stream: &[u8], chunks: &[usize]) -> Vec<Frame> {
    let mut framer = StreamFramer::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    for &end in chunks.iter().chain(std::iter::once(&stream.len())) {
        buf.extend_from_slice(stream.get(pos..end).unwrap_or(&[]));
        pos = end;
        while let Some(f) = framer.next_frame(&mut buf).unwrap() {
            out.push(f);
        }
    }
    assert!(buf.is_empty());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn request_round_trip(r in req()) {
        let bytes = render(&r);
        let m = parse(bytes.clone()).unwrap();
        check_typed(&m, &r);
        // Lossless: serializing gives the same bytes, which parse the same.
        prop_assert_eq!(m.to_bytes(), bytes.clone());
        let again = parse(m.to_bytes()).unwrap();
        check_typed(&again, &r);
        // Validation accepts it (or only for method/scheme reasons).
        let policy = Policy::default();
        match inspect(bytes, &policy) {
            Inbound::Request(_) => {}
            Inbound::Reject { rejection, .. } => prop_assert!(
                rejection.status == 501 && r.method.is_extension(),
                "{:?}", rejection
            ),
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn builder_round_trip(r in req()) {
        let mut b = MessageBuilder::request(&r.method, &r.uri);
        for v in &r.vias {
            b = b.header("Via", v);
        }
        b = b.header("From", &r.from).header("To", &r.to)
            .header("Call-ID", &r.call_id)
            .header("CSeq", CSeq { seq: r.seq, method: r.method.clone() })
            .header("Max-Forwards", r.max_forwards);
        for c in &r.contacts {
            b = b.header("Contact", c);
        }
        b = b.header("X-Opaque", "a, \"b,c\" ;;")
            .body("application/octet-stream", r.body.clone());
        let m = b.build().unwrap();
        check_typed(&m, &r);
        // A response to it copies the dialog headers.
        let resp = response_to(&m, 486, None).unwrap().to_tag("t1").build().unwrap();
        prop_assert_eq!(resp.status(), Some(486));
        prop_assert_eq!(resp.vias().unwrap(), r.vias.clone());
        prop_assert_eq!(resp.from().unwrap(), r.from.clone());
        prop_assert_eq!(resp.call_id().unwrap(), r.call_id.as_str());
        let to = resp.to().unwrap();
        prop_assert_eq!(&to.uri, &r.to.uri);
        prop_assert!(to.tag().is_some());
        prop_assert!(validate::check_response(&resp).is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        exercise(&data);
    }

    #[test]
    fn mutated_messages_never_panic(
        r in req(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut data = render(&r).to_vec();
        for (at, byte, op) in edits {
            if data.is_empty() { break; }
            let i = at % data.len();
            match op {
                0 => data[i] = byte,
                1 => data.insert(i, byte),
                _ => { data.remove(i); }
            }
        }
        exercise(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn framing_is_split_independent(
        reqs in proptest::collection::vec(req(), 1..3),
        pings in proptest::collection::vec(0u8..3, 3),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            match pings.get(i).copied().unwrap_or(0) {
                1 => { stream.extend_from_slice(b"\r\n\r\n"); expected.push(Frame::Ping); }
                2 => { stream.extend_from_slice(b"\r\n"); expected.push(Frame::Pong); }
                _ => {}
            }
            let m = render(r);
            stream.extend_from_slice(&m);
            expected.push(Frame::Message(m));
        }
        prop_assert_eq!(frames_of(&stream, &[]), expected.clone());
        for k in 0..=stream.len() {
            prop_assert_eq!(frames_of(&stream, &[k]), expected.clone(), "split at {}", k);
        }
        let every: Vec<usize> = (1..stream.len()).collect();
        prop_assert_eq!(frames_of(&stream, &every), expected);
    }
}

/// Runs every entry point on `data`; only a panic can fail.
pub(crate) fn exercise(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(m) = parse(bytes.clone()) {
        let _ = (m.request_uri(), m.call_id(), m.cseq(), m.from(), m.to());
        let _ = (m.vias(), m.top_via(), m.contacts(), m.expires());
        let _ = (
            m.max_forwards(),
            m.content_length(),
            m.content_type(),
            m.media_type(),
        );
        let _ = (
            m.require(),
            m.supported(),
            m.route(),
            m.record_route(),
            m.allow(),
        );
        let _ = m.header_list("via");
        let _ = response_to(&m, 200, None).map(|b| b.to_tag("x").to_bytes());
        let mut e = m.clone();
        e.remove_top_via();
        let _ = e.prepend_via("SIP/2.0/UDP h;branch=z9hG4bKx");
        let _ = e.set_body(None, Bytes::new());
        let _ = e.to_bytes();
    }
    let _ = inspect(bytes, &Policy::default());
    let mut framer = StreamFramer::default();
    let mut buf = BytesMut::from(data);
    for _ in 0..64 {
        match framer.next_frame(&mut buf) {
            Ok(Some(Frame::Message(m))) => {
                let _ = inspect(m, &Policy::default());
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

#[test]
fn garbage_and_truncation() {
    let msg = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 3\r\n\r\nabc";
    for k in 0..msg.len() {
        exercise(&msg[..k]);
        // A truncated datagram is never taken as a valid request with a body.
        if let Ok(m) = parse(Bytes::copy_from_slice(&msg[..k])) {
            assert!(m.body().len() <= 3);
        }
    }
    exercise(&[0xff; 300]);
    exercise(b"SIP/2.0 200\r\n\r\n");
    exercise("INVITE sip:\u{e9}@x SIP/2.0\r\nTo: \u{4e2d}\r\n\r\n".as_bytes());
}
