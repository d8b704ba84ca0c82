//! Property tests: no input bytes can panic the decoder or grow its memory
//! without bound; encoded actions decode back to what was encoded.

use bytes::BytesMut;
use proptest::prelude::*;

use super::super::action::Action;
use super::super::codec::{Decoder, DecoderLimits, Frame};
use super::super::correlator::Correlator;
use super::super::packet::Header;
use super::super::tracker::Tracker;

fn limits() -> DecoderLimits {
    DecoderLimits {
        max_packet_bytes: 512,
        max_headers: 16,
        max_banner_bytes: 64,
    }
}

/// Feed `bytes` in pieces cut at `cuts`; returns the frames.
fn feed(decoder: &mut Decoder, bytes: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut prev = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        buf.extend_from_slice(&bytes[prev..p]);
        prev = p;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => {
                    // Memory bound: what stays buffered is one partial line
                    // within the limit.
                    let l = decoder.limits();
                    assert!(buf.len() <= l.max_packet_bytes.max(l.max_banner_bytes));
                    break;
                }
                Err(e) if e.is_fatal() => return frames,
                Err(_) => {}
            }
        }
    }
    frames
}

/// Bytes that look like AMI often enough to reach the interesting paths.
fn ami_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b": ".to_vec()),
        Just(b"Response: Follows\r\n".to_vec()),
        Just(b"--END COMMAND--".to_vec()),
        Just(b"Event: Hangup\r\n".to_vec()),
        Just(b"Response: Success\r\nEventList: start\r\n".to_vec()),
        Just(b"EventList: Complete\r\n".to_vec()),
        Just(b"ActionID: 1\r\n".to_vec()),
        Just(b"Uniqueid: 1.1\r\nLinkedid: 1.1\r\nChannel: PJSIP/1001-1\r\n".to_vec()),
        Just(b"Exten: 701\r\nContext: internal\r\n".to_vec()),
        Just(b"DialStatus: ANSWER\r\n".to_vec()),
        Just(b"Asterisk Call Manager/11.0.0\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let _ = feed(&mut Decoder::with_limits(limits()), &bytes, &cuts);
        let mut d = Decoder::without_banner();
        let _ = feed(&mut d, &bytes, &cuts);
    }

    #[test]
    fn ami_like_bytes_never_panic_and_split_is_invariant(bytes in ami_like(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let mut whole = Decoder::without_banner();
        let reference = feed(&mut whole, &bytes, &[]);
        let mut split = Decoder::without_banner();
        let got = feed(&mut split, &bytes, &cuts);
        prop_assert_eq!(&got, &reference);
        // Whatever was decoded must not panic the correlator or tracker.
        let mut c = Correlator::new();
        let mut t = Tracker::new(super::support::fixture_tracker_config());
        let now = std::time::Instant::now();
        let _ = c.register("1", "X", now, std::time::Duration::from_secs(1));
        for f in reference {
            if let Frame::Packet(p) = f {
                let _ = t.on_event(&p, std::time::SystemTime::UNIX_EPOCH);
                let _ = t.resync(std::slice::from_ref(&p), std::time::SystemTime::UNIX_EPOCH);
                let _ = c.on_packet(p, now);
            }
        }
    }

    #[test]
    fn action_encode_decode_round_trip(
        name in "[A-Za-z][A-Za-z0-9_]{0,20}",
        id in "[ -~&&[^\r\n]]{0,30}",
        headers in proptest::collection::vec(("[!-9;-~][ -9;-~]{0,15}", "[^\r\n]{0,40}"), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut action = Action::new(name.clone()).with_action_id(id.clone());
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("Action") || k.eq_ignore_ascii_case("ActionID") {
                continue;
            }
            action = action.header(k.clone(), v.clone());
        }
        let bytes = action.to_bytes().unwrap();
        let frames = feed(&mut Decoder::without_banner(), &bytes, &cuts);
        prop_assert_eq!(frames.len(), 1);
        let Frame::Packet(p) = &frames[0] else { panic!("not a packet") };
        let mut expected = vec![Header::new("Action", name), Header::new("ActionID", id)];
        expected.extend(action.headers().iter().cloned());
        prop_assert_eq!(&p.headers, &expected);
        prop_assert!(p.body.is_empty());
    }

    #[test]
    fn line_breaks_in_values_are_always_rejected(
        prefix in "[^\r\n]{0,10}", brk in prop_oneof![Just("\r"), Just("\n"), Just("\r\n")],
        suffix in "[^\r\n]{0,10}",
    ) {
        let v = format!("{prefix}{brk}{suffix}");
        prop_assert!(Action::new("Originate").header("CallerID", v).to_bytes().is_err());
    }
}
