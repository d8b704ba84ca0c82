//! Every recorded transcript, byte for byte, under every chunking.

use bytes::BytesMut;

use super::super::action::Action;
use super::super::codec::{Decoder, Frame, decode_all};
use super::super::packet::{Packet, PacketKind};
use super::support::*;

/// Blank lines after the banner = packets (no legacy `Follows` here).
fn blank_line_terminators(bytes: &[u8]) -> usize {
    let after_banner = &bytes[bytes.iter().position(|&c| c == b'\n').unwrap() + 1..];
    after_banner.split(|&c| c == b'\n').filter(|l| *l == b"\r" || l.is_empty()).count()
        // `split` yields one empty piece after the final '\n'.
        - 1
}

#[test]
fn every_transcript_parses_byte_for_byte() {
    for path in transcripts_in() {
        let bytes = read(&path);
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut frames = Vec::new();
        while let Some(f) = decoder.decode(&mut buf).expect("no decode error") {
            frames.push(f);
        }
        let name = path.display();
        assert!(buf.is_empty(), "{name}: leftover bytes");
        assert!(decoder.is_idle(), "{name}: half-built packet");
        let Frame::Banner(banner) = &frames[0] else {
            panic!("{name}: first frame is not the banner")
        };
        assert_eq!(banner.line, "Asterisk Call Manager/11.0.0");
        assert_eq!(banner.version.as_deref(), Some("11.0.0"));
        let packets: Vec<&Packet> = frames[1..]
            .iter()
            .map(|f| match f {
                Frame::Packet(p) => p,
                Frame::Banner(_) => panic!("{name}: second banner"),
            })
            .collect();
        assert_eq!(packets.len(), blank_line_terminators(&bytes), "{name}");
        // Lossless: writing the packets back gives the exact bytes.
        let mut rebuilt = format!("{}\r\n", banner.line);
        for p in &packets {
            assert!(p.body.is_empty(), "{name}: stray line in {p:?}");
            assert_ne!(p.kind(), PacketKind::Generic, "{name}: {p:?}");
            rebuilt.push_str(&p.to_string());
        }
        assert_eq!(rebuilt.as_bytes(), &bytes[..], "{name}: not byte for byte");
    }
}

#[test]
fn known_packets_of_scenario_a() {
    let packets = packets_of(&read(&scenario("a-", ".ami.in")));
    let kinds: Vec<String> = packets
        .iter()
        .map(|p| match p.kind() {
            PacketKind::Response(s) => format!("R:{s:?}"),
            PacketKind::Event(e) => format!("E:{e}"),
            PacketKind::Generic => "G".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "R:Success",
            "E:FullyBooted",
            "E:SuccessfulAuth",
            "R:Success",
            "R:Success",
            "E:EndpointList",
            "E:EndpointList",
            "E:EndpointList",
            "E:EndpointListComplete",
            "R:Goodbye",
        ]
    );
    assert_eq!(packets[0].message(), Some("Authentication accepted"));
    assert_eq!(packets[3].get("corecdrenabled"), Some("Yes"));
    assert_eq!(packets[3].get("SystemName"), Some(""));
    assert_eq!(
        packets[5].get("Contacts"),
        Some("1001/sip:1001-0x564ecd6c0620@127.0.0.1:5090,")
    );
    assert_eq!(packets[8].event_list(), Some("Complete"));
}

#[test]
fn originate_response_is_an_event_despite_its_response_header() {
    let packets = packets_of(&read(&scenario("d-", ".ami.in")));
    let p = packets
        .iter()
        .find(|p| p.is_event("OriginateResponse"))
        .unwrap();
    assert_eq!(p.get("Response"), Some("Success"));
    assert_eq!(p.action_id(), Some("d-originate-1001-then-1002-002"));
}

/// Split at every offset. Between packets the decoder is idle (asserted),
/// so splitting the whole stream at offset i behaves exactly like splitting
/// the packet that contains i, fed to an idle decoder; checking each packet
/// at each of its offsets covers every offset of every transcript in linear
/// time. Small transcripts are also split whole, the literal way.
#[test]
fn every_offset_split_gives_identical_packets() {
    for path in transcripts_in() {
        let bytes = read(&path);
        let name = path.display();
        let reference = frames_of(&bytes);

        // Literal whole-stream splits for the small transcripts.
        if bytes.len() <= 4096 {
            for i in 0..=bytes.len() {
                let mut d = Decoder::new();
                let mut buf = BytesMut::new();
                let mut got = Vec::new();
                for part in [&bytes[..i], &bytes[i..]] {
                    buf.extend_from_slice(part);
                    while let Some(f) = d.decode(&mut buf).unwrap() {
                        got.push(f);
                    }
                }
                assert_eq!(got, reference, "{name}: split at {i}");
            }
        }

        // Per-packet windows for all of them.
        let banner_end = bytes.iter().position(|&c| c == b'\n').unwrap() + 1;
        for i in 0..=banner_end {
            let mut d = Decoder::new();
            let mut buf = BytesMut::from(&bytes[..i]);
            let mut got = Vec::new();
            while let Some(f) = d.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&bytes[i..banner_end]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got, reference[..1], "{name}: banner split at {i}");
        }
        let mut start = banner_end;
        for (k, expected) in reference[1..].iter().enumerate() {
            let len = packet_len(&bytes[start..]);
            let pkt = &bytes[start..start + len];
            for i in 0..=len {
                let mut d = Decoder::without_banner();
                let mut buf = BytesMut::from(&pkt[..i]);
                let mut got = Vec::new();
                while let Some(f) = d.decode(&mut buf).unwrap() {
                    got.push(f);
                }
                buf.extend_from_slice(&pkt[i..]);
                while let Some(f) = d.decode(&mut buf).unwrap() {
                    got.push(f);
                }
                assert_eq!(got.len(), 1, "{name}: packet {k} split at {i}");
                assert_eq!(&got[0], expected, "{name}: packet {k} split at {i}");
                assert!(buf.is_empty() && d.is_idle());
            }
            start += len;
        }
        assert_eq!(start, bytes.len(), "{name}: packets do not tile the stream");
    }
}

/// Length of the first packet (through its blank line).
fn packet_len(bytes: &[u8]) -> usize {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4
}

/// Deterministic xorshift for split points (no rand dependency).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_multi_splits_give_identical_packets() {
    let mut seed = 0x5eed_1234_abcd_u64;
    for path in transcripts_in() {
        let bytes = read(&path);
        let reference = frames_of(&bytes);
        for round in 0..60 {
            let cuts = 1 + (xorshift(&mut seed) % 40) as usize;
            let mut points: Vec<usize> = (0..cuts)
                .map(|_| (xorshift(&mut seed) % (bytes.len() as u64 + 1)) as usize)
                .collect();
            points.sort_unstable();
            let mut d = Decoder::new();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut prev = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                buf.extend_from_slice(&bytes[prev..p]);
                prev = p;
                while let Some(f) = d.decode(&mut buf).unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, reference, "{} round {round}", path.display());
        }
        // One byte at a time, the extreme case.
        let mut d = Decoder::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in &bytes {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, reference, "{} byte by byte", path.display());
    }
}

#[test]
fn timeline_replay_in_recorded_chunks_matches_unsplit_parse() {
    for path in files_ending(".timeline.jsonl") {
        let rows = timeline(&path);
        let raw_in = path.to_string_lossy().replace(".timeline.jsonl", ".ami.in");
        let raw_out = path
            .to_string_lossy()
            .replace(".timeline.jsonl", ".ami.out");
        let ins: Vec<u8> = rows
            .iter()
            .filter(|r| r.incoming)
            .flat_map(|r| r.data.clone())
            .collect();
        let outs: Vec<u8> = rows
            .iter()
            .filter(|r| !r.incoming)
            .flat_map(|r| r.data.clone())
            .collect();
        assert_eq!(ins, read(raw_in.as_ref()), "{}", path.display());
        assert_eq!(outs, read(raw_out.as_ref()), "{}", path.display());
        assert!(rows.windows(2).all(|w| w[0].t <= w[1].t));
        assert!(
            rows.last().is_some_and(|r| r.incoming && r.data.is_empty()),
            "ends with EOF"
        );

        let mut d = Decoder::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for r in rows.iter().filter(|r| r.incoming) {
            buf.extend_from_slice(&r.data);
            while let Some(f) = d.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert!(d.is_idle() && buf.is_empty());
        assert_eq!(got, frames_of(&ins), "{}", path.display());
    }
}

/// What the capturing client sent decodes to actions, and our encoder
/// writes those same actions back byte for byte.
#[test]
fn sent_actions_reencode_byte_for_byte() {
    for path in files_ending(".ami.out") {
        let bytes = read(&path);
        let mut d = Decoder::without_banner();
        let (frames, errors) = decode_all(&mut d, &bytes);
        assert!(errors.is_empty());
        let mut rebuilt = BytesMut::new();
        for f in frames {
            let Frame::Packet(p) = f else {
                panic!("banner in .out")
            };
            assert_eq!(p.kind(), PacketKind::Generic);
            // The plain listener of `i-calls-to-the-bridge` logged in
            // without one; every scripted capture numbered its actions.
            assert!(
                p.action_id().is_some()
                    || path.to_string_lossy().contains("/i-calls-to-the-bridge/"),
                "every fixture action has an ActionID"
            );
            let mut action = Action::new(p.get("Action").expect("Action header"));
            for h in &p.headers[1..] {
                action = action.header(h.name.clone(), h.value.clone());
            }
            action.encode(&mut rebuilt).unwrap();
        }
        assert_eq!(&rebuilt[..], &bytes[..], "{}", path.display());
    }
}
