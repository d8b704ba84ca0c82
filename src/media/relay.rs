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
mod tests;
