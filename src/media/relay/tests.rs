//! The relay core's tests: latching, loss and jitter, dead media.

use super::*;
use crate::media::sdp::Direction;

fn media(addr: &str, te: Option<u8>) -> AudioMedia {
    let rtp: SocketAddr = addr.parse().unwrap();
    AudioMedia {
        rtp: Some(rtp),
        rtcp: Some(SocketAddr::new(rtp.ip(), rtp.port() + 1)),
        codecs: vec![(0, Codec::Pcmu), (8, Codec::Pcma)],
        telephone_event: te,
        direction: Direction::SendRecv,
    }
}

fn pkt(pt: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut b = vec![0u8; 172];
    let n = build_rtp(&mut b, pt, false, seq, ts, ssrc, &[0xff; 160]);
    b.truncate(n);
    b
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn session(t0: Instant) -> MediaSession {
    let mut s = MediaSession::new(RelayConfig::default(), t0);
    s.set_remote(Side::Caller, &media("10.0.0.1:4000", Some(101)), t0);
    s.set_remote(Side::Agent, &media("10.0.0.2:5000", Some(101)), t0);
    s
}

#[test]
fn forwards_to_the_signalled_then_the_latched_address() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let nat: SocketAddr = "198.51.100.9:31000".parse().unwrap();
    let agent: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    // Agent speaks first: goes to the caller's SDP address.
    let p = pkt(0, 1, 160, 7);
    match s.on_rtp(Side::Agent, agent, &p, t0) {
        RtpVerdict::Relay { to, audio } => {
            assert_eq!(to, Some("10.0.0.1:4000".parse().unwrap()));
            let a = audio.unwrap();
            assert_eq!(
                (a.codec, a.seq, a.timestamp, a.payload.len()),
                (Codec::Pcmu, 1, 160, 160)
            );
        }
        v => panic!("{v:?}"),
    }
    // The caller's RTP really comes from a NAT address: latch to it.
    let p = pkt(8, 100, 0, 9);
    assert!(matches!(
        s.on_rtp(Side::Caller, nat, &p, t0 + ms(20)),
        RtpVerdict::Relay { to: Some(a), audio: Some(Audio { codec: Codec::Pcma, .. }) } if a == agent
    ));
    assert_eq!(s.leg(Side::Caller).latched(), Some(nat));
    let p = pkt(0, 2, 320, 7);
    assert!(matches!(
        s.on_rtp(Side::Agent, agent, &p, t0 + ms(40)),
        RtpVerdict::Relay { to: Some(a), .. } if a == nat
    ));
}

#[test]
fn foreign_sources_are_refused_until_the_latched_one_is_quiet() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let a: SocketAddr = "198.51.100.9:31000".parse().unwrap();
    let b: SocketAddr = "198.51.100.9:31002".parse().unwrap();
    assert!(matches!(
        s.on_rtp(Side::Caller, a, &pkt(0, 1, 0, 1), t0),
        RtpVerdict::Relay { .. }
    ));
    assert!(matches!(
        s.on_rtp(Side::Caller, b, &pkt(0, 1, 0, 2), t0 + ms(100)),
        RtpVerdict::Refused(Refused::Foreign)
    ));
    // After relatch_after of silence from `a`, `b` takes over (NAT rebinding).
    assert!(matches!(
        s.on_rtp(Side::Caller, b, &pkt(0, 1, 0, 2), t0 + ms(600)),
        RtpVerdict::Relay { .. }
    ));
    assert_eq!(s.leg(Side::Caller).latched(), Some(b));
    let st = s.leg(Side::Caller).stats();
    assert_eq!((st.foreign, st.latches, st.packets), (1, 2, 2));
    // A re-INVITE with a new address clears the latch.
    s.set_remote(Side::Caller, &media("10.0.0.3:4000", None), t0 + ms(700));
    assert_eq!(s.leg(Side::Caller).latched(), None);
    assert!(matches!(
        s.on_rtp(Side::Caller, a, &pkt(0, 2, 160, 2), t0 + ms(710)),
        RtpVerdict::Relay { .. }
    ));
}

#[test]
fn dtmf_passes_without_audio_and_garbage_is_refused() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let src: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let mut b = [0u8; 32];
    let n = build_rtp(&mut b, 101, true, 5, 800, 3, &[1, 0x0a, 0, 160]);
    match s.on_rtp(Side::Caller, src, &b[..n], t0) {
        RtpVerdict::Relay { to, audio } => {
            assert!(to.is_some());
            assert!(audio.is_none());
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(s.leg(Side::Caller).stats().dtmf_packets, 1);
    // Comfort noise (13) is relayed, not recorded.
    let n = build_rtp(&mut b, 13, false, 6, 960, 3, &[40]);
    assert!(matches!(
        s.on_rtp(Side::Caller, src, &b[..n], t0),
        RtpVerdict::Relay { audio: None, .. }
    ));
    assert!(matches!(
        s.on_rtp(Side::Caller, src, b"hello", t0),
        RtpVerdict::Refused(Refused::Malformed)
    ));
}

#[test]
fn loss_and_reordering_from_sequence_numbers() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let src: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    // 0..100 with 10, 20, 30 lost; 50 and 51 swapped; across the wrap.
    let start = 65500u16;
    let mut order: Vec<u16> = (0..100).filter(|i| ![10, 20, 30].contains(i)).collect();
    let i50 = order.iter().position(|&x| x == 50).unwrap();
    order.swap(i50, i50 + 1);
    for (k, i) in order.into_iter().enumerate() {
        let seq = start.wrapping_add(i);
        let p = pkt(0, seq, i as u32 * 160, 42);
        s.on_rtp(Side::Caller, src, &p, t0 + ms(20 * k as u64));
    }
    let st = s.leg(Side::Caller).stats();
    assert_eq!(st.expected, 100);
    assert_eq!(st.lost, 3);
    assert_eq!(st.packets, 97);
    // A new SSRC starts over; the earlier loss is kept.
    s.on_rtp(Side::Caller, src, &pkt(0, 7, 0, 43), t0 + ms(3000));
    s.on_rtp(Side::Caller, src, &pkt(0, 9, 320, 43), t0 + ms(3040));
    let st = s.leg(Side::Caller).stats();
    assert_eq!((st.expected, st.lost), (103, 4));
}

#[test]
fn jitter_follows_rfc3550() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let src: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    // Perfectly paced: zero jitter.
    for i in 0..50u32 {
        s.on_rtp(
            Side::Caller,
            src,
            &pkt(0, i as u16, i * 160, 1),
            t0 + ms(20 * i as u64),
        );
    }
    assert_eq!(s.leg(Side::Caller).stats().jitter_ms, 0.0);
    // Alternating 5 ms late / on time: |D| = 5 ms each time, J → 5 ms.
    for i in 50..1000u32 {
        let off = if i % 2 == 0 { 5 } else { 0 };
        s.on_rtp(
            Side::Caller,
            src,
            &pkt(0, i as u16, i * 160, 1),
            t0 + ms(20 * i as u64 + off),
        );
    }
    let j = s.leg(Side::Caller).stats().jitter_ms;
    assert!((4.8..=5.0).contains(&j), "{j}");
}

#[test]
fn dead_media_after_the_timeout_but_not_on_hold() {
    let t0 = Instant::now();
    let cfg = RelayConfig {
        dead_media_after: ms(5000),
        ..RelayConfig::default()
    };
    let mut s = MediaSession::new(cfg, t0);
    s.set_remote(Side::Caller, &media("10.0.0.1:4000", None), t0);
    s.set_remote(Side::Agent, &media("10.0.0.2:5000", None), t0);
    let c: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    let a: SocketAddr = "10.0.0.2:5000".parse().unwrap();
    for i in 0..100u32 {
        let t = t0 + ms(20 * i as u64);
        s.on_rtp(Side::Caller, c, &pkt(0, i as u16, i * 160, 1), t);
        s.on_rtp(Side::Agent, a, &pkt(0, i as u16, i * 160, 2), t);
    }
    assert_eq!(s.leg(Side::Agent).last_packet_at(), Some(t0 + ms(1980)));
    assert_eq!(s.dead_media(t0 + ms(6000)), None);
    // The caller goes silent while the agent keeps sending.
    for i in 100..400u32 {
        s.on_rtp(
            Side::Agent,
            a,
            &pkt(0, i as u16, i * 160, 2),
            t0 + ms(20 * i as u64),
        );
    }
    assert_eq!(
        s.dead_media(t0 + ms(6980)),
        Some(DeadMedia {
            side: Side::Caller,
            silent_for: ms(5000)
        })
    );
    // On hold (recvonly): not expected to send; the agent too.
    let mut hold = media("10.0.0.1:4000", None);
    hold.direction = Direction::RecvOnly;
    s.set_remote(Side::Caller, &hold, t0 + ms(7000));
    assert_eq!(s.dead_media(t0 + ms(7980)), None);
    let mut agent_hold = media("10.0.0.2:5000", None);
    agent_hold.direction = Direction::Inactive;
    s.set_remote(Side::Agent, &agent_hold, t0 + ms(8000));
    assert_eq!(s.dead_media(t0 + ms(59_000)), None);
    // The caller resumes: a fresh clock from the re-INVITE.
    s.set_remote(Side::Caller, &media("10.0.0.1:4000", None), t0 + ms(60_000));
    assert_eq!(s.dead_media(t0 + ms(64_999)), None);
    // RTCP keeps a leg alive too.
    assert_eq!(
        s.on_rtcp(
            Side::Caller,
            c,
            &[0x80, 201, 0, 1, 0, 0, 0, 1],
            t0 + ms(64_000)
        ),
        Ok(Some("10.0.0.2:5001".parse().unwrap()))
    );
    assert_eq!(s.dead_media(t0 + ms(68_999)), None);
    assert_eq!(
        s.dead_media(t0 + ms(69_000)),
        Some(DeadMedia {
            side: Side::Caller,
            silent_for: ms(5000)
        })
    );
}

#[test]
fn a_leg_that_never_sends_is_dead() {
    let t0 = Instant::now();
    let s = MediaSession::new(
        RelayConfig {
            dead_media_after: ms(1000),
            ..RelayConfig::default()
        },
        t0,
    );
    assert_eq!(s.dead_media(t0 + ms(999)), None);
    assert_eq!(
        s.dead_media(t0 + ms(1000)).map(|d| d.side),
        Some(Side::Caller)
    );
}

/// RFC 3550 A.8 keeps jitter ×16 in 32 bits; with timestamps jumping by
/// ±2^31 (garbage, or a hostile peer) it reached u32::MAX, and
/// `jitter16 + 8` overflowed: a panic in debug builds, a wrapped (wrong)
/// jitter in release ones.
#[test]
fn jitter_survives_timestamps_jumping_by_half_the_clock() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let src: SocketAddr = "10.0.0.1:4000".parse().unwrap();
    // Arriving together, so |D| is the timestamp step: 2^31, 2^31, then
    // the one that brings jitter ×16 to exactly u32::MAX.
    let d3 = (1u32 << 27) + (1 << 28) - (1 << 23) - 1;
    for (i, ts) in [0, 1 << 31, 0, d3, d3].into_iter().enumerate() {
        s.on_rtp(Side::Caller, src, &pkt(0, i as u16, ts, 5), t0);
    }
    let j = s.leg(Side::Caller).stats().jitter_ms;
    assert!(j.is_finite() && j > 3.0e7, "{j}");
}

/// Property tests: arbitrary datagrams never panic and keep the counters
/// consistent; a generated stream with loss, reordering and duplicates
/// gives the RFC 3550 A.1 counts.
mod props {
    use proptest::prelude::*;

    use super::*;

    /// A few sources: the signalled ones, a NAT address, an IPv6 peer.
    const SOURCES: [&str; 5] = [
        "10.0.0.1:4000",
        "10.0.0.2:5000",
        "198.51.100.9:31000",
        "198.51.100.9:31002",
        "[2001:db8::7]:40000",
    ];

    #[derive(Debug, Clone)]
    enum Event {
        Rtp(Side, usize, Vec<u8>),
        Rtcp(Side, usize, Vec<u8>),
        Remote(Side, AudioMedia),
    }

    fn side() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Caller), Just(Side::Agent)]
    }

    /// Arbitrary bytes, or version-2 headers with arbitrary flags
    /// (padding, extension, CSRC count), payload types and timestamps.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            (
                any::<u8>(),
                prop_oneof![Just(0u8), Just(8), Just(101), Just(13), any::<u8>()],
                any::<u16>(),
                any::<u32>(),
                0u32..3,
                proptest::collection::vec(any::<u8>(), 0..48),
            )
                .prop_map(|(b0, pt, seq, ts, ssrc, tail)| {
                    let mut p = vec![0x80 | (b0 & 0x3f), pt];
                    p.extend(seq.to_be_bytes());
                    p.extend(ts.to_be_bytes());
                    p.extend(ssrc.to_be_bytes());
                    p.extend(tail);
                    p
                }),
            (
                any::<u8>(),
                192u8..=223,
                proptest::collection::vec(any::<u8>(), 0..32)
            )
                .prop_map(|(b0, pt, tail)| {
                    let mut p = vec![0x80 | (b0 & 0x3f), pt];
                    p.extend(tail);
                    p
                }),
        ]
    }

    fn audio_media() -> impl Strategy<Value = AudioMedia> {
        (
            proptest::option::of(0..SOURCES.len()),
            proptest::collection::vec(
                prop_oneof![
                    Just((0u8, Codec::Pcmu)),
                    Just((8, Codec::Pcma)),
                    Just((96, Codec::Pcmu))
                ],
                0..3,
            ),
            proptest::option::of(prop_oneof![Just(101u8), Just(0), any::<u8>()]),
            prop_oneof![
                Just(Direction::SendRecv),
                Just(Direction::SendOnly),
                Just(Direction::RecvOnly),
                Just(Direction::Inactive),
            ],
        )
            .prop_map(|(addr, codecs, telephone_event, direction)| {
                let rtp = addr.map(|i| SOURCES[i].parse::<SocketAddr>().unwrap());
                AudioMedia {
                    rtp,
                    rtcp: rtp.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1))),
                    codecs,
                    telephone_event,
                    direction,
                }
            })
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            8 => (side(), 0..SOURCES.len(), datagram()).prop_map(|(s, i, p)| Event::Rtp(s, i, p)),
            2 => (side(), 0..SOURCES.len(), datagram()).prop_map(|(s, i, p)| Event::Rtcp(s, i, p)),
            1 => (side(), audio_media()).prop_map(|(s, m)| Event::Remote(s, m)),
        ]
    }

    /// Time steps: mostly a packet interval, sometimes a relatch-sized
    /// gap, sometimes hours.
    fn step() -> impl Strategy<Value = Duration> {
        prop_oneof![
            8 => (0u64..40).prop_map(Duration::from_millis),
            2 => (0u64..2_000).prop_map(Duration::from_millis),
            1 => (0u64..100_000_000).prop_map(Duration::from_millis),
        ]
    }

    fn check_stats(st: &LegStats) -> Result<(), TestCaseError> {
        prop_assert!(st.lost <= st.expected, "{st:?}");
        let f = st.loss_fraction();
        prop_assert!((0.0..=1.0).contains(&f), "{f} {st:?}");
        prop_assert!(st.jitter_ms.is_finite() && st.jitter_ms >= 0.0, "{st:?}");
        prop_assert!(st.dtmf_packets <= st.packets, "{st:?}");
        prop_assert!(st.undeliverable <= st.packets, "{st:?}");
        prop_assert!(st.latches <= st.packets, "{st:?}");
        prop_assert!(st.bytes >= 12 * st.packets, "{st:?}");
        Ok(())
    }

    /// One loss/reorder/duplication pattern: per sent packet, whether it
    /// is lost, duplicated, or swapped with the next one.
    #[derive(Debug, Clone, Copy)]
    enum Fate {
        Delivered,
        Lost,
        Duplicated,
        SwappedWithNext,
    }

    fn fate() -> impl Strategy<Value = Fate> {
        prop_oneof![
            12 => Just(Fate::Delivered),
            2 => Just(Fate::Lost),
            1 => Just(Fate::Duplicated),
            1 => Just(Fate::SwappedWithNext),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn arbitrary_datagrams_never_panic_and_counters_add_up(
            remotes in proptest::collection::vec(proptest::option::of(audio_media()), 2),
            events in proptest::collection::vec((event(), step()), 0..120),
            relatch_ms in 0u64..1_000,
        ) {
            let t0 = Instant::now();
            let config = RelayConfig {
                relatch_after: Duration::from_millis(relatch_ms),
                ..RelayConfig::default()
            };
            let mut s = MediaSession::new(config, t0);
            for (side, m) in [Side::Caller, Side::Agent].into_iter().zip(&remotes) {
                if let Some(m) = m {
                    s.set_remote(side, m, t0);
                }
            }
            let mut now = t0;
            let mut fed = [0u64; 2];
            for (e, dt) in events {
                now += dt;
                match e {
                    Event::Rtp(side, i, p) => {
                        fed[side.index()] += 1;
                        let src: SocketAddr = SOURCES[i].parse().unwrap();
                        match s.on_rtp(side, src, &p, now) {
                            RtpVerdict::Relay { to, audio } => {
                                prop_assert_eq!(to, s.leg(side.other()).rtp_destination());
                                prop_assert_eq!(s.leg(side).latched(), Some(src));
                                if let Some(a) = audio {
                                    prop_assert!(a.payload.len() + 12 <= p.len());
                                    prop_assert_eq!(a.ssrc.to_be_bytes(), [p[8], p[9], p[10], p[11]]);
                                }
                            }
                            RtpVerdict::Refused(Refused::Foreign) => {
                                prop_assert_ne!(s.leg(side).latched(), Some(src));
                            }
                            RtpVerdict::Refused(Refused::Malformed) => {}
                        }
                    }
                    Event::Rtcp(side, i, p) => {
                        fed[side.index()] += 1;
                        let src: SocketAddr = SOURCES[i].parse().unwrap();
                        if let Ok(to) = s.on_rtcp(side, src, &p, now) {
                            prop_assert_eq!(to, s.leg(side.other()).rtcp_destination());
                        }
                    }
                    Event::Remote(side, m) => s.set_remote(side, &m, now),
                }
                let _ = s.dead_media(now);
                for side in [Side::Caller, Side::Agent] {
                    check_stats(&s.leg(side).stats())?;
                }
            }
            for side in [Side::Caller, Side::Agent] {
                let st = s.leg(side).stats();
                // Every datagram is counted exactly once.
                prop_assert_eq!(
                    st.packets + st.rtcp_packets + st.malformed + st.foreign,
                    fed[side.index()],
                    "{:?}", st
                );
            }
        }

        #[test]
        fn a_stream_with_loss_reordering_and_duplicates_is_counted(
            first_seq in prop_oneof![any::<u16>(), 65_000u16..],
            fates in proptest::collection::vec(fate(), 1..400),
            ssrc in any::<u32>(),
            pt in prop_oneof![Just(0u8), Just(8), Just(101), Just(13)],
        ) {
            // Sent packet k has extended sequence number k (seq
            // first_seq + k, wrapping); build the arrival order.
            let mut arrivals: Vec<u64> = Vec::new();
            let mut k = 0;
            while k < fates.len() {
                let n = k as u64;
                match fates[k] {
                    Fate::Delivered => arrivals.push(n),
                    Fate::Lost => {}
                    Fate::Duplicated => arrivals.extend([n, n]),
                    Fate::SwappedWithNext if k + 1 < fates.len() => {
                        arrivals.extend([n + 1, n]);
                        k += 1;
                    }
                    Fate::SwappedWithNext => arrivals.push(n),
                }
                k += 1;
            }
            prop_assume!(!arrivals.is_empty());

            let t0 = Instant::now();
            let mut s = session(t0);
            let src: SocketAddr = "10.0.0.1:4000".parse().unwrap();
            for (i, &n) in arrivals.iter().enumerate() {
                let seq = first_seq.wrapping_add(n as u16);
                let p = pkt(pt, seq, (n as u32) * 160, ssrc);
                let v = s.on_rtp(Side::Caller, src, &p, t0 + ms(20 * i as u64));
                let is_audio = matches!(v, RtpVerdict::Relay { audio: Some(_), .. });
                let relayed = matches!(v, RtpVerdict::Relay { to: Some(_), .. });
                prop_assert!(relayed, "{:?}", v);
                prop_assert_eq!(is_audio, pt == 0 || pt == 8);
            }

            // RFC 3550 A.1/A.3: expected runs from the first arrival's
            // number to the highest; duplicates count as received.
            let base = arrivals[0];
            let highest = *arrivals.iter().max().unwrap();
            let expected = highest + 1 - base;
            let received = arrivals.len() as u64;
            let st = s.leg(Side::Caller).stats();
            prop_assert_eq!(st.packets, received);
            prop_assert_eq!(st.bytes, received * 172);
            prop_assert_eq!(st.expected, expected);
            prop_assert_eq!(st.lost, expected.saturating_sub(received));
            prop_assert_eq!(st.dtmf_packets, if pt == 101 { received } else { 0 });
            prop_assert_eq!((st.malformed, st.foreign, st.latches), (0, 0, 1));
            check_stats(&st)?;
            // Without duplicates, and when nothing older than the first
            // arrival comes late (A.1 counts it as received, which
            // hides a loss), lost is exactly the packets missing.
            let older = arrivals.iter().any(|&n| n < base);
            if !older && !fates.iter().any(|f| matches!(f, Fate::Duplicated)) {
                let delivered: std::collections::BTreeSet<u64> = arrivals.iter().copied().collect();
                let missing = (base..=highest).filter(|n| !delivered.contains(n)).count() as u64;
                prop_assert_eq!(st.lost, missing);
            }
        }
    }
}
