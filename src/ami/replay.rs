//! Feeding recorded transcripts through the core: used by the tests and
//! ready for a benchmark (events/s), with no timing inside.
//!
//! A benchmark reads a transcript once, strips its banner with
//! [`strip_banner`], then calls [`pump`] in a timed loop and divides
//! [`PumpStats::events`] by the elapsed time. The body can be pumped any
//! number of times through one decoder because it is a whole number of
//! packets; each pass uses a fresh [`Tracker`] so the same Linkedids are
//! followed again rather than ignored as already ended.

use std::time::SystemTime;

use bytes::BytesMut;

use super::codec::{Decoder, Frame};
use super::packet::Packet;
use super::tracker::{CallDecision, Tracker, TrackerConfig};

/// The transcript without its first line (the banner).
pub fn strip_banner(transcript: &[u8]) -> &[u8] {
    match transcript.iter().position(|&c| c == b'\n') {
        Some(nl) => &transcript[nl + 1..],
        None => &[],
    }
}

/// Every packet of a complete transcript (banner first), ignoring errors.
pub fn packets(transcript: &[u8]) -> Vec<Packet> {
    let mut decoder = Decoder::new();
    let (frames, _) = super::codec::decode_all(&mut decoder, transcript);
    frames
        .into_iter()
        .filter_map(|f| match f {
            Frame::Packet(p) => Some(p),
            Frame::Banner(_) => None,
        })
        .collect()
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PumpStats {
    pub packets: usize,
    pub events: usize,
    pub decisions: usize,
}

/// Decode `body` (no banner) `passes` times in `chunk`-byte pieces and feed
/// every event to a tracker: the whole receive path but the socket.
pub fn pump(body: &[u8], passes: usize, chunk: usize, config: &TrackerConfig) -> PumpStats {
    let mut stats = PumpStats::default();
    let mut decoder = Decoder::without_banner();
    let mut buf = BytesMut::with_capacity(chunk.max(1) * 2);
    let mut decisions: Vec<CallDecision> = Vec::new();
    let at = SystemTime::UNIX_EPOCH;
    for _ in 0..passes {
        let mut tracker = Tracker::new(config.clone());
        for piece in body.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Ok(Some(frame)) = decoder.decode(&mut buf) {
                if let Frame::Packet(p) = frame {
                    stats.packets += 1;
                    if p.event_name().is_some() {
                        stats.events += 1;
                        tracker.on_event_into(&p, at, &mut decisions);
                    }
                }
            }
        }
        stats.decisions += decisions.len();
        decisions.clear();
    }
    stats
}
