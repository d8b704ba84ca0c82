//! Decoder and encoder behaviour the fixtures do not show.

use bytes::BytesMut;

use super::super::action::{Action, ActionIds, EncodeError};
use super::super::codec::{DecodeError, Decoder, DecoderLimits, Frame, decode_all};
use super::super::packet::{Packet, PacketKind, ResponseStatus};

fn packets(decoder: &mut Decoder, bytes: &[u8]) -> (Vec<Packet>, Vec<DecodeError>) {
    let (frames, errors) = decode_all(decoder, bytes);
    let packets = frames
        .into_iter()
        .filter_map(|f| match f {
            Frame::Packet(p) => Some(p),
            Frame::Banner(_) => None,
        })
        .collect();
    (packets, errors)
}

#[test]
fn legacy_follows_body_keeps_blank_lines_until_end_command() {
    let raw = b"Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n\
Channel              Location\n\nSIP/1001-0001       s@internal:1\n\
1 active channel\n--END COMMAND--\r\n\r\nEvent: Ping\r\n\r\n";
    let (p, e) = packets(&mut Decoder::without_banner(), raw);
    assert!(e.is_empty());
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].kind(), PacketKind::Response(ResponseStatus::Follows));
    assert_eq!(p[0].action_id(), Some("7"));
    assert_eq!(
        p[0].output_lines(),
        [
            "Channel              Location",
            "",
            "SIP/1001-0001       s@internal:1",
            "1 active channel"
        ]
    );
    assert!(p[1].is_event("Ping"));
    // Written back, it decodes the same.
    let again = p[0].to_string();
    let (q, _) = packets(&mut Decoder::without_banner(), again.as_bytes());
    assert_eq!(q, p[..1]);
}

#[test]
fn legacy_follows_end_marker_glued_to_output() {
    let raw = b"Response: Follows\r\nActionID: 1\r\nNo such command 'x'--END COMMAND--\r\n\r\n";
    let (p, _) = packets(&mut Decoder::without_banner(), raw);
    assert_eq!(p[0].output_lines(), ["No such command 'x'"]);
    let raw = b"Response: Follows\r\nActionID: 1\r\n--END COMMAND--\r\n\r\n";
    let (p, _) = packets(&mut Decoder::without_banner(), raw);
    assert!(p[0].output_lines().is_empty());
}

#[test]
fn modern_command_output_lines_in_order() {
    let raw = b"Response: Success\r\nActionID: 2\r\nMessage: Command output follows\r\n\
Output: Channel   Location\r\nOutput:   indented: yes\r\nOutput: \r\n\r\n";
    let (p, _) = packets(&mut Decoder::without_banner(), raw);
    assert_eq!(
        p[0].output_lines(),
        ["Channel   Location", "  indented: yes", ""]
    );
}

#[test]
fn bare_lf_and_stray_blank_lines_are_tolerated() {
    let raw = b"Asterisk Call Manager/2.10.4\n\r\n\nEvent: A\nX: 1\n\nEvent: B\r\nY: 2\n\r\n";
    let mut d = Decoder::new();
    let (frames, errors) = decode_all(&mut d, raw);
    assert!(errors.is_empty());
    assert_eq!(frames.len(), 3);
    let Frame::Packet(b) = &frames[2] else {
        panic!()
    };
    assert_eq!(b.get("y"), Some("2"));
    assert!(d.is_idle());
}

#[test]
fn repeated_keys_are_kept_in_order_and_lookup_ignores_case() {
    let raw = b"Event: Status\r\nChanVariable: A=1\r\nchanvariable: B=2\r\nUniqueID: u\r\n\r\n";
    let (p, _) = packets(&mut Decoder::without_banner(), raw);
    assert_eq!(
        p[0].get_all("ChanVariable").collect::<Vec<_>>(),
        ["A=1", "B=2"]
    );
    assert_eq!(p[0].get("uniqueid"), Some("u"));
    assert_eq!(p[0].event_name(), Some("Status"));
}

#[test]
fn packet_kinds() {
    let g = Packet::new().with("Action", "Ping");
    assert_eq!(g.kind(), PacketKind::Generic);
    let r = Packet::new().with("Response", "Pong");
    assert_eq!(
        r.kind(),
        PacketKind::Response(ResponseStatus::Other("Pong".into()))
    );
    let late = Packet::new().with("ActionID", "1").with("Event", "X");
    assert_eq!(late.kind(), PacketKind::Event("X".into()));
    let bye = Packet::new().with("Response", "Goodbye");
    assert_eq!(bye.response(), Some(ResponseStatus::Goodbye));
}

#[test]
fn not_ami_banner_is_fatal() {
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(&b"HTTP/1.1 400 Bad Request\r\n\r\n"[..]);
    let err = d.decode(&mut buf).unwrap_err();
    assert!(matches!(err, DecodeError::NotAmi(_)) && err.is_fatal());
    // It stays failed and drops what follows.
    buf.extend_from_slice(b"Event: X\r\n\r\n");
    assert!(d.decode(&mut buf).is_err());
    assert!(buf.is_empty());
}

#[test]
fn endless_banner_is_bounded() {
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(&[b'A'; 1000][..]);
    assert!(matches!(
        d.decode(&mut buf),
        Err(DecodeError::BannerTooLong { limit: 256 })
    ));
}

fn small_limits() -> DecoderLimits {
    DecoderLimits {
        max_packet_bytes: 200,
        max_headers: 4,
        max_banner_bytes: 64,
    }
}

#[test]
fn oversized_packet_is_skipped_and_decoder_resynchronises() {
    let mut raw = b"Event: Big\r\n".to_vec();
    for i in 0..40 {
        raw.extend_from_slice(format!("H{i}: {}\r\n", "x".repeat(20)).as_bytes());
    }
    raw.extend_from_slice(b"\r\nEvent: After\r\nA: 1\r\n\r\n");
    for chunk in [1usize, 7, 64, 10_000] {
        let mut d = Decoder::with_limits(small_limits());
        let mut banner = BytesMut::from(&b"Asterisk Call Manager/11.0.0\r\n"[..]);
        assert!(matches!(d.decode(&mut banner), Ok(Some(Frame::Banner(_)))));
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut errors = Vec::new();
        for piece in raw.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(f)) => got.push(f),
                    Ok(None) => break,
                    Err(e) => errors.push(e),
                }
                assert!(buf.len() <= 200 + chunk, "buffer bounded");
            }
        }
        assert_eq!(
            errors,
            [DecodeError::TooManyHeaders { limit: 4 }],
            "chunk {chunk}"
        );
        assert_eq!(got.len(), 1, "chunk {chunk}");
        let Frame::Packet(p) = &got[0] else { panic!() };
        assert!(p.is_event("After"));
    }
}

#[test]
fn one_huge_line_is_skipped_with_bounded_memory() {
    let limits = DecoderLimits {
        max_headers: 100,
        ..small_limits()
    };
    let mut d = Decoder::with_limits(limits);
    let mut buf = BytesMut::from(&b"Asterisk Call Manager/11.0.0\r\n"[..]);
    d.decode(&mut buf).unwrap();
    let mut errors = 0;
    let mut got = Vec::new();
    buf.extend_from_slice(b"Event: Huge\r\nData: ");
    for _ in 0..100 {
        buf.extend_from_slice(&[b'z'; 97]);
        buf.extend_from_slice(b"\r");
        loop {
            match d.decode(&mut buf) {
                Ok(Some(f)) => got.push(f),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(e, DecodeError::PacketTooLarge { limit: 200 });
                    errors += 1
                }
            }
        }
        assert!(buf.len() <= 200);
    }
    buf.extend_from_slice(b"\n\r\nEvent: Next\r\n\r\n");
    while let Some(f) = d.decode(&mut buf).unwrap() {
        got.push(f);
    }
    assert_eq!(errors, 1);
    assert_eq!(got.len(), 1);
    let Frame::Packet(p) = &got[0] else { panic!() };
    assert!(p.is_event("Next"));
}

#[test]
fn action_encoding_is_crlf_framed_and_ordered() {
    let a = Action::new("Originate")
        .with_action_id("x-1")
        .header("Channel", "PJSIP/1001")
        .variable("A", "1")
        .variable("B", "2");
    assert_eq!(
        &a.to_bytes().unwrap()[..],
        b"Action: Originate\r\nActionID: x-1\r\nChannel: PJSIP/1001\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"
    );
    let login = Action::login("bridge", "bridge-secret").with_action_id("1");
    assert_eq!(
        &login.to_bytes().unwrap()[..],
        b"Action: Login\r\nActionID: 1\r\nUsername: bridge\r\nSecret: bridge-secret\r\nEvents: on\r\n\r\n"
    );
}

#[test]
fn injection_is_rejected() {
    let evil = "Customer\r\n\r\nAction: Command\r\nCommand: core stop now";
    let a = Action::new("Originate").header("CallerID", evil);
    assert_eq!(
        a.to_bytes(),
        Err(EncodeError::LineBreakInValue {
            name: "CallerID".into()
        })
    );
    let mut buf = BytesMut::new();
    assert!(a.encode(&mut buf).is_err());
    assert!(buf.is_empty(), "nothing written on error");
    assert!(
        Action::new("Ping")
            .with_action_id("a\nb")
            .to_bytes()
            .is_err()
    );
    assert!(Action::new("Ping\r").to_bytes().is_err());
    assert!(
        Action::new("Ping")
            .header("Bad:Name", "v")
            .to_bytes()
            .is_err()
    );
    assert!(Action::new("Ping").header("", "v").to_bytes().is_err());
    assert!(
        Action::new("Ping")
            .header("Action", "Command")
            .to_bytes()
            .is_err()
    );
    assert!(
        Action::new("Ping")
            .header("X", "lone\rcr")
            .to_bytes()
            .is_err()
    );
}

#[test]
fn action_ids_are_unique_and_prefixed() {
    let mut ids = ActionIds::new("node1-3");
    assert_eq!(ids.next_id(), "node1-3-000001");
    assert_eq!(ids.next_id(), "node1-3-000002");
}

#[test]
fn tokio_codec_adapter_decodes_and_encodes() {
    use tokio_util::codec::{Decoder as _, Encoder as _};
    let mut codec = super::super::AmiCodec::default();
    let mut buf = BytesMut::from(&b"Asterisk Call Manager/11.0.0\r\nEvent: X\r\n\r\nEvent: Y"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Banner(_)))));
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Packet(_)))));
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
    let mut out = BytesMut::new();
    codec
        .encode(&Action::ping().with_action_id("p"), &mut out)
        .unwrap();
    assert_eq!(&out[..], b"Action: Ping\r\nActionID: p\r\n\r\n");
    assert!(
        codec
            .encode(Action::new("A").header("B", "\n"), &mut out)
            .is_err()
    );
}
