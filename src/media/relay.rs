//! The sans-IO core of a call's media relay: two legs (caller, agent), each
//! with the address its SDP signalled and the address its RTP really comes
//! from (latched), per-leg counters, and the dead-media verdict. Time is an
//! input; the tokio side is `relay_task.rs`.
//!
//! **Latching (symmetric RTP, for callers behind NAT).** A leg latches to the
//! source of the first valid RTP packet it receives, whatever the SDP said.
//! A packet from another source is dropped while the latched source is
//! alive; once the latched source has been silent for
//! [`RelayConfig::relatch_after`], the next packet's source is latched
//! instead (a NAT rebinding, a phone changing port). A new SDP for the leg
//! (re-INVITE) clears the latch. RTCP latches the same way, separately.
//!
//! **Forwarding.** RTP from one leg goes to the other leg's latched address,
//! else to its signalled one. Nothing in the packet is changed (no SSRC or
//! sequence rewriting), so RTCP stays consistent end to end: RTCP received
//! on a leg's port+1 is forwarded, unparsed, to the other leg's RTCP address
//! (latched, else `a=rtcp` / RTP port+1). RFC 4733 DTMF (the leg's
//! `telephone-event` payload type) is forwarded untouched and never decoded
//! into the recording; unknown payload types (comfort noise…) are forwarded
//! and not recorded either.
//!
//! **Dead media.** A leg whose SDP says it sends (`sendrecv`/`sendonly`, or
//! no SDP yet) and from which neither RTP nor RTCP has arrived for
//! [`RelayConfig::dead_media_after`] makes the call's media dead. A leg on
//! hold (`recvonly`/`inactive`) is not expected to send and never triggers
//! it; its clock restarts when it resumes.
//!
//! **Counters.** Packets, bytes, loss from sequence numbers (RFC 3550 A.1 /
//! A.3, per SSRC; restarted when the SSRC changes) and interarrival jitter
//! (RFC 3550 A.8, on audio packets, 8 kHz clock).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtp_rs::RtpReader;

use super::g711::Codec;
use super::sdp::AudioMedia;

/// One side of a bridged call. In the recording the caller is the left
/// channel and the agent the right one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Caller,
    Agent,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Agent,
            Side::Agent => Side::Caller,
        }
    }

    /// 0 for the caller (left channel), 1 for the agent (right channel).
    pub fn index(self) -> usize {
        match self {
            Side::Caller => 0,
            Side::Agent => 1,
        }
    }
}

/// Timeouts of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelayConfig {
    /// No RTP/RTCP from a sending leg for this long ends the call.
    pub dead_media_after: Duration,
    /// A latched source silent this long may be replaced by a new one.
    pub relatch_after: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            dead_media_after: Duration::from_secs(30),
            relatch_after: Duration::from_millis(500),
        }
    }
}

/// Counters of what one leg sent to the bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LegStats {
    /// RTP packets accepted (from the latched source).
    pub packets: u64,
    /// Their UDP payload bytes.
    pub bytes: u64,
    /// Packets lost (expected from sequence numbers minus received; never
    /// negative).
    pub lost: u64,
    /// Packets expected from sequence numbers (for a loss fraction).
    pub expected: u64,
    /// Interarrival jitter (RFC 3550 A.8), in milliseconds.
    pub jitter_ms: f64,
    /// RFC 4733 telephone-event packets passed through.
    pub dtmf_packets: u64,
    /// RTCP packets accepted.
    pub rtcp_packets: u64,
    /// Packets refused: not RTP, or from a source other than the latched one.
    pub malformed: u64,
    pub foreign: u64,
    /// Packets with no destination on the other leg yet.
    pub undeliverable: u64,
    /// Times the leg latched to a new source.
    pub latches: u64,
}

impl LegStats {
    /// Lost / expected, 0 when nothing was expected.
    pub fn loss_fraction(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.lost as f64 / self.expected as f64
        }
    }
}

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// RFC 3550 A.1 sequence state of one SSRC.
#[derive(Debug, Clone, Copy, Default)]
struct SeqState {
    ssrc: u32,
    started: bool,
    base: u64,
    max_seq: u16,
    cycles: u64,
    received: u64,
    /// Jitter ×16 in timestamp units (A.8) and the previous transit.
    jitter16: u64,
    transit: Option<u32>,
}

impl SeqState {
    fn start(ssrc: u32, seq: u16) -> SeqState {
        SeqState {
            ssrc,
            started: true,
            base: seq as u64,
            max_seq: seq,
            received: 1,
            ..SeqState::default()
        }
    }

    fn update(&mut self, seq: u16) {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A big jump: the sender restarted its sequence. Start over.
            *self = SeqState::start(self.ssrc, seq);
            return;
        }
        // Else a duplicate or reordered packet: counted, max unchanged.
        self.received += 1;
    }

    fn expected(&self) -> u64 {
        (self.cycles + self.max_seq as u64 + 1).saturating_sub(self.base)
    }

    fn jitter(&mut self, arrival_ts: u32, rtp_ts: u32) {
        let transit = arrival_ts.wrapping_sub(rtp_ts);
        if let Some(prev) = self.transit {
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            // J += (|D| - J) / 16, in ×16 fixed point. In u64 it cannot
            // overflow (|D| <= 2^31, so J×16 stays below 2^36) nor go
            // negative ((J×16 + 8) / 16 <= J×16).
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }
}

/// One leg of the relay.
#[derive(Debug, Clone)]
pub struct RelayLeg {
    signalled: Option<SocketAddr>,
    signalled_rtcp: Option<SocketAddr>,
    latched: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
    codecs: Vec<(u8, Codec)>,
    telephone_event: Option<u8>,
    sends: bool,
    last_rtp_at: Option<Instant>,
    last_rtcp_at: Option<Instant>,
    /// Start of the dead-media clock: the last packet, or when the leg
    /// started (or resumed) sending.
    alive_at: Instant,
    seq: SeqState,
    /// Loss and packets of earlier SSRCs of this leg.
    earlier_lost: u64,
    earlier_expected: u64,
    stats: LegStats,
}

impl RelayLeg {
    fn new(now: Instant) -> RelayLeg {
        RelayLeg {
            signalled: None,
            signalled_rtcp: None,
            latched: None,
            latched_rtcp: None,
            codecs: Vec::new(),
            telephone_event: None,
            sends: true,
            last_rtp_at: None,
            last_rtcp_at: None,
            alive_at: now,
            seq: SeqState::default(),
            earlier_lost: 0,
            earlier_expected: 0,
            stats: LegStats::default(),
        }
    }

    /// Where RTP for this leg goes: the latched source, else the SDP's.
    pub fn rtp_destination(&self) -> Option<SocketAddr> {
        self.latched.or(self.signalled)
    }

    /// Where RTCP for this leg goes.
    pub fn rtcp_destination(&self) -> Option<SocketAddr> {
        self.latched_rtcp.or(self.signalled_rtcp)
    }

    pub fn signalled(&self) -> Option<SocketAddr> {
        self.signalled
    }

    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// When the last accepted RTP packet arrived.
    pub fn last_packet_at(&self) -> Option<Instant> {
        self.last_rtp_at
    }

    pub fn stats(&self) -> LegStats {
        let mut s = self.stats;
        let expected = self.earlier_expected + self.seq.expected();
        let lost_now = self.seq.expected().saturating_sub(self.seq.received);
        s.expected = expected;
        s.lost = self.earlier_lost + lost_now;
        s.jitter_ms = (self.seq.jitter16 >> 4) as f64 / 8.0;
        s
    }

    fn codec(&self, pt: u8) -> Option<Codec> {
        match self.codecs.iter().find(|(p, _)| *p == pt) {
            Some((_, c)) => Some(*c),
            None if self.codecs.is_empty() => Codec::from_static_payload_type(pt),
            None => None,
        }
    }

    fn accept_source(
        latched: &mut Option<SocketAddr>,
        last: Option<Instant>,
        src: SocketAddr,
        now: Instant,
        relatch_after: Duration,
    ) -> bool {
        match *latched {
            Some(l) if l == src => true,
            Some(_) if last.is_some_and(|t| now.saturating_duration_since(t) < relatch_after) => {
                false
            }
            _ => {
                *latched = Some(src);
                true
            }
        }
    }
}

/// Decodable audio in a relayed packet, for the recorder.
#[derive(Debug, Clone, Copy)]
pub struct Audio<'a> {
    pub codec: Codec,
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

/// Why a packet was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not an RTP/RTCP version 2 packet.
    Malformed,
    /// From a source other than the latched one, while that one is alive.
    Foreign,
}

/// What to do with one received RTP packet.
#[derive(Debug, Clone, Copy)]
pub enum RtpVerdict<'a> {
    /// Send it unchanged to `to` (None: the other leg has no address yet),
    /// and record `audio` if there is some.
    Relay {
        to: Option<SocketAddr>,
        audio: Option<Audio<'a>>,
    },
    Refused(Refused),
}

/// The call's media is dead: `side` sent nothing for `silent_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadMedia {
    pub side: Side,
    pub silent_for: Duration,
}

/// The relay state of one call.
#[derive(Debug, Clone)]
pub struct MediaSession {
    config: RelayConfig,
    epoch: Instant,
    legs: [RelayLeg; 2],
}

impl MediaSession {
    /// A session whose media starts now (the dead-media clocks too).
    pub fn new(config: RelayConfig, now: Instant) -> MediaSession {
        MediaSession {
            config,
            epoch: now,
            legs: [RelayLeg::new(now), RelayLeg::new(now)],
        }
    }

    pub fn config(&self) -> RelayConfig {
        self.config
    }

    pub fn leg(&self, side: Side) -> &RelayLeg {
        &self.legs[side.index()]
    }

    /// Applies a leg's (new) SDP. A changed address clears the latch; a leg
    /// that starts sending again gets a fresh dead-media clock.
    pub fn set_remote(&mut self, side: Side, media: &AudioMedia, now: Instant) {
        let leg = &mut self.legs[side.index()];
        if leg.signalled != media.rtp {
            leg.latched = None;
            leg.latched_rtcp = None;
        }
        leg.signalled = media.rtp;
        leg.signalled_rtcp = media.rtcp;
        leg.codecs.clone_from(&media.codecs);
        leg.telephone_event = media.telephone_event;
        let sends = media.direction.sends();
        if sends && !leg.sends {
            leg.alive_at = now;
        }
        leg.sends = sends;
    }

    /// An RTP packet arrived on `side`'s port from `src`.
    pub fn on_rtp<'a>(
        &mut self,
        side: Side,
        src: SocketAddr,
        packet: &'a [u8],
        now: Instant,
    ) -> RtpVerdict<'a> {
        let relatch_after = self.config.relatch_after;
        let arrival_ts =
            ((now.saturating_duration_since(self.epoch).as_micros() * 8) / 1000) as u32;
        let leg = &mut self.legs[side.index()];
        let rtp = match RtpReader::new(packet) {
            Ok(r) => r,
            Err(_) => {
                leg.stats.malformed += 1;
                return RtpVerdict::Refused(Refused::Malformed);
            }
        };
        let previous = leg.latched;
        if !RelayLeg::accept_source(&mut leg.latched, leg.last_rtp_at, src, now, relatch_after) {
            leg.stats.foreign += 1;
            return RtpVerdict::Refused(Refused::Foreign);
        }
        if leg.latched != previous {
            leg.stats.latches += 1;
        }
        leg.last_rtp_at = Some(now);
        leg.alive_at = now;
        leg.stats.packets += 1;
        leg.stats.bytes += packet.len() as u64;

        let ssrc = rtp.ssrc();
        let seq: u16 = rtp.sequence_number().into();
        if !leg.seq.started || leg.seq.ssrc != ssrc {
            if leg.seq.started {
                leg.earlier_expected += leg.seq.expected();
                leg.earlier_lost += leg.seq.expected().saturating_sub(leg.seq.received);
            }
            leg.seq = SeqState::start(ssrc, seq);
        } else {
            leg.seq.update(seq);
        }

        let pt = rtp.payload_type();
        let audio = if Some(pt) == leg.telephone_event {
            leg.stats.dtmf_packets += 1;
            None
        } else if let Some(codec) = leg.codec(pt) {
            leg.seq.jitter(arrival_ts, rtp.timestamp());
            Some(Audio {
                codec,
                ssrc,
                seq,
                timestamp: rtp.timestamp(),
                payload: rtp.payload(),
            })
        } else {
            None
        };
        let to = self.legs[side.other().index()].rtp_destination();
        if to.is_none() {
            self.legs[side.index()].stats.undeliverable += 1;
        }
        RtpVerdict::Relay { to, audio }
    }

    /// An RTCP packet arrived on `side`'s port+1 from `src`: where to
    /// forward it, or why not.
    pub fn on_rtcp(
        &mut self,
        side: Side,
        src: SocketAddr,
        packet: &[u8],
        now: Instant,
    ) -> Result<Option<SocketAddr>, Refused> {
        let relatch_after = self.config.relatch_after;
        let leg = &mut self.legs[side.index()];
        if packet.len() < 8 || packet[0] >> 6 != 2 || !(192..=223).contains(&packet[1]) {
            leg.stats.malformed += 1;
            return Err(Refused::Malformed);
        }
        if !RelayLeg::accept_source(
            &mut leg.latched_rtcp,
            leg.last_rtcp_at,
            src,
            now,
            relatch_after,
        ) {
            leg.stats.foreign += 1;
            return Err(Refused::Foreign);
        }
        leg.last_rtcp_at = Some(now);
        leg.alive_at = now;
        leg.stats.rtcp_packets += 1;
        Ok(self.legs[side.other().index()].rtcp_destination())
    }

    /// The dead-media verdict at `now`: the first sending leg silent for
    /// `dead_media_after` or longer.
    pub fn dead_media(&self, now: Instant) -> Option<DeadMedia> {
        [Side::Caller, Side::Agent].into_iter().find_map(|side| {
            let leg = &self.legs[side.index()];
            let silent_for = now.saturating_duration_since(leg.alive_at);
            (leg.sends && silent_for >= self.config.dead_media_after)
                .then_some(DeadMedia { side, silent_for })
        })
    }
}

/// Builds an RTP packet (12-byte header, no CSRC/extension) into `out`;
/// returns its length. For tests, tones and the benchmark.
pub fn build_rtp(
    out: &mut [u8],
    payload_type: u8,
    marker: bool,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> usize {
    out[0] = 0x80;
    out[1] = (payload_type & 0x7f) | if marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&seq.to_be_bytes());
    out[4..8].copy_from_slice(&timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    out[12..12 + payload.len()].copy_from_slice(payload);
    12 + payload.len()
}

#[cfg(test)]
mod tests {
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
}
