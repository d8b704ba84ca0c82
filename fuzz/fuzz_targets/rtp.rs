//! Fuzzes the media relay core: a `MediaSession` fed arbitrary datagrams on
//! both legs' RTP and RTCP ports, from a few sources, with SDP updates and
//! time jumps, must never panic and keep its counters consistent; the audio
//! it hands out goes through the recorder's G.711 path (`Aligner`).
//! Run: `cargo fuzz run -s none rtp -- -max_total_time=120`
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pbx_bridge::media::{
    Aligner, AudioMedia, Codec, Direction, MediaSession, RelayConfig, RtpVerdict, Side,
};

const SOURCES: [&str; 4] = [
    "10.0.0.1:4000",
    "10.0.0.2:5000",
    "198.51.100.9:31000",
    "[2001:db8::7]:40000",
];

/// Audio is recorded for the first 5 minutes only (keeps each run's drained
/// audio small; the relay itself sees every time jump).
const RECORDING: Duration = Duration::from_secs(300);

fn source(b: u8) -> SocketAddr {
    SOURCES[b as usize % SOURCES.len()].parse().unwrap()
}

/// Milliseconds mostly, seconds sometimes, hours rarely.
fn step(b: u8) -> Duration {
    match b {
        0..200 => Duration::from_millis(b as u64),
        200..250 => Duration::from_secs((b - 199) as u64),
        _ => Duration::from_secs(3600 * (b - 249) as u64),
    }
}

fn media(b: &[u8; 4]) -> AudioMedia {
    let rtp = (b[0] & 0x80 == 0).then(|| source(b[0]));
    let codecs = [(0, Codec::Pcmu), (8, Codec::Pcma), (b[1], Codec::Pcmu)];
    AudioMedia {
        rtp,
        rtcp: rtp.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1))),
        codecs: codecs[..(b[1] % 4) as usize].to_vec(),
        telephone_event: (b[2] & 0x80 == 0).then_some(b[2]),
        direction: match b[3] % 4 {
            0 => Direction::SendRecv,
            1 => Direction::SendOnly,
            2 => Direction::RecvOnly,
            _ => Direction::Inactive,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let Some((&relatch, mut rest)) = data.split_first() else {
        return;
    };
    let config = RelayConfig {
        relatch_after: Duration::from_millis(relatch as u64 * 4),
        dead_media_after: Duration::from_secs(5),
    };
    let mut session = MediaSession::new(config, t0);
    let mut aligner = Aligner::new(t0);
    let mut now = t0;
    let mut fed = [0u64; 2];
    // Each op: [flags, source/step, len, packet...] (or [flags, 4 SDP bytes]).
    while let [flags, arg, tail @ ..] = rest {
        let side = if flags & 1 == 0 {
            Side::Caller
        } else {
            Side::Agent
        };
        now += step(*arg);
        if flags & 6 == 6 {
            let Some((sdp, tail)) = tail.split_first_chunk::<4>() else {
                break;
            };
            session.set_remote(side, &media(sdp), now);
            rest = tail;
            continue;
        }
        let Some((&len, tail)) = tail.split_first() else {
            break;
        };
        let len = (len as usize).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        rest = tail;
        let src = source(flags >> 3);
        fed[side.index()] += 1;
        if flags & 2 == 0 {
            if let RtpVerdict::Relay { to, audio } = session.on_rtp(side, src, packet, now) {
                assert_eq!(to, session.leg(side.other()).rtp_destination());
                if let Some(audio) = audio {
                    assert!(audio.payload.len() + 12 <= packet.len());
                    if now.duration_since(t0) <= RECORDING {
                        aligner.push_g711(side, &audio, now);
                        aligner.drain(now, |chunk| assert!(chunk.len() % 2 == 0));
                    }
                }
            }
        } else if let Ok(to) = session.on_rtcp(side, src, packet, now) {
            assert_eq!(to, session.leg(side.other()).rtcp_destination());
        }
        let _ = session.dead_media(now);
    }
    for side in [Side::Caller, Side::Agent] {
        let st = session.leg(side).stats();
        assert_eq!(
            st.packets + st.rtcp_packets + st.malformed + st.foreign,
            fed[side.index()],
            "{st:?}"
        );
        assert!(st.lost <= st.expected, "{st:?}");
        assert!((0.0..=1.0).contains(&st.loss_fraction()), "{st:?}");
        assert!(st.jitter_ms.is_finite() && st.jitter_ms >= 0.0, "{st:?}");
    }
    let _ = aligner.stats();
    aligner.finish(now.min(t0 + RECORDING), |chunk| {
        assert!(chunk.len() % 2 == 0)
    });
});
