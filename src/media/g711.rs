//! G.711 (ITU-T, 1988) µ-law (PCMU, RTP payload type 0) and A-law (PCMA,
//! payload type 8).
//!
//! Decoding is one lookup in a 256-entry table per sample. The tables are
//! ours: built at compile time (`const fn`) from the G.711 expansion rules,
//! and tested against an independent implementation's output for all 256
//! codes (`g711_reference.rs`). The encoders are the classic segment search;
//! the product only decodes (for the recording), the encoders serve tests,
//! tones and the benchmark.

/// An audio codec the bridge can decode into the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551).
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec of a static payload type, if it is one of ours.
    pub const fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The codec of an `a=rtpmap` encoding name (case-insensitive).
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// The decode table of this codec.
    #[inline]
    pub fn table(self) -> &'static [i16; 256] {
        match self {
            Codec::Pcmu => &ULAW_TO_LINEAR,
            Codec::Pcma => &ALAW_TO_LINEAR,
        }
    }

    /// Decodes one code.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        self.table()[code as usize]
    }

    /// Decodes `payload` into `out` (which must be at least as long).
    #[inline]
    pub fn decode_into(self, payload: &[u8], out: &mut [i16]) {
        let table = self.table();
        for (o, &c) in out.iter_mut().zip(payload) {
            *o = table[c as usize];
        }
    }

    /// Encodes one linear sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => encode_ulaw(sample),
            Codec::Pcma => encode_alaw(sample),
        }
    }
}

/// µ-law code → 16-bit linear sample.
pub static ULAW_TO_LINEAR: [i16; 256] = build_ulaw_table();
/// A-law code → 16-bit linear sample.
pub static ALAW_TO_LINEAR: [i16; 256] = build_alaw_table();

const ULAW_BIAS: i32 = 0x84;

/// G.711 µ-law expansion: the code is stored inverted; 3 exponent bits, 4
/// mantissa bits, biased by 33 (×4 in 16-bit scale).
const fn ulaw_expand(code: u8) -> i16 {
    let u = !code;
    let mantissa = (u & 0x0f) as i32;
    let exponent = ((u & 0x70) >> 4) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// G.711 A-law expansion: even bits inverted (XOR 0x55); segment 0 is
/// linear, higher segments double; the decision value is the middle of the
/// interval (+0x08 / +0x108 in 16-bit scale). Sign bit set means positive.
const fn alaw_expand(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mantissa = ((a & 0x0f) as i32) << 4;
    let segment = ((a & 0x70) >> 4) as i32;
    let magnitude = match segment {
        0 => mantissa + 8,
        1 => mantissa + 0x108,
        s => (mantissa + 0x108) << (s - 1),
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_expand(i as u8);
        i += 1;
    }
    t
}

const fn build_alaw_table() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_expand(i as u8);
        i += 1;
    }
    t
}

/// Segment end points of µ-law (14-bit magnitudes after the >>2).
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Segment end points of A-law (13-bit magnitudes after the >>3).
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn segment(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&e| value <= e).unwrap_or(8)
}

/// 16-bit linear → µ-law (G.711 compression; the classic CCITT/Sun rules).
pub fn encode_ulaw(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 2;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7f
    } else {
        0xff
    };
    pcm = pcm.min(8159) + (ULAW_BIAS >> 2);
    let seg = segment(pcm, &ULAW_SEG_END);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let code = ((seg as i32) << 4) | ((pcm >> (seg + 1)) & 0x0f);
    (code as u8) ^ mask
}

/// 16-bit linear → A-law (G.711 compression).
pub fn encode_alaw(sample: i16) -> u8 {
    let mut pcm = (sample as i32) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xd5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &ALAW_SEG_END);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let mut code = (seg as i32) << 4;
    code |= if seg < 2 {
        (pcm >> 1) & 0x0f
    } else {
        (pcm >> seg) & 0x0f
    };
    (code as u8) ^ mask
}

/// Encodes a sine tone of `freq_hz` at `amplitude` (0..=32767), starting at
/// sample index `start`, into `out` (8 kHz). For tests and the benchmark.
pub fn tone(codec: Codec, freq_hz: f64, amplitude: f64, start: u64, out: &mut [u8]) {
    for (i, o) in out.iter_mut().enumerate() {
        let t = (start + i as u64) as f64 / 8000.0;
        let s = (amplitude * (2.0 * std::f64::consts::PI * freq_hz * t).sin()) as i16;
        *o = codec.encode(s);
    }
}

#[cfg(test)]
mod tests {
    use super::super::g711_reference::{ALAW_REFERENCE, ULAW_REFERENCE};
    use super::*;

    #[test]
    fn tables_match_the_reference_for_every_code() {
        for code in 0..=255u8 {
            assert_eq!(
                ULAW_TO_LINEAR[code as usize], ULAW_REFERENCE[code as usize],
                "µ-law {code:#04x}"
            );
            assert_eq!(
                ALAW_TO_LINEAR[code as usize], ALAW_REFERENCE[code as usize],
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn well_known_codes() {
        // Silence: µ-law 0xFF (and negative zero 0x7F), A-law 0xD5/0x55.
        assert_eq!(Codec::Pcmu.decode(0xff), 0);
        assert_eq!(Codec::Pcmu.decode(0x7f), 0);
        assert_eq!(Codec::Pcma.decode(0xd5), 8);
        assert_eq!(Codec::Pcma.decode(0x55), -8);
        // Full scale.
        assert_eq!(Codec::Pcmu.decode(0x80), 32124);
        assert_eq!(Codec::Pcmu.decode(0x00), -32124);
        assert_eq!(Codec::Pcma.decode(0xaa), 32256);
        assert_eq!(Codec::Pcma.decode(0x2a), -32256);
    }

    #[test]
    fn encoder_matches_reference_vectors() {
        // From CPython audioop.lin2ulaw / lin2alaw.
        let xs: [i16; 16] = [
            -32768, -32767, -10000, -1000, -100, -9, -8, -1, 0, 1, 7, 8, 100, 1000, 10000, 32767,
        ];
        let ulaw: [u8; 16] = [
            0, 0, 28, 78, 114, 125, 126, 126, 255, 255, 254, 254, 242, 206, 156, 128,
        ];
        let alaw: [u8; 16] = [
            42, 42, 54, 122, 83, 85, 85, 85, 213, 213, 213, 213, 211, 250, 182, 170,
        ];
        for i in 0..16 {
            assert_eq!(encode_ulaw(xs[i]), ulaw[i], "ulaw({})", xs[i]);
            assert_eq!(encode_alaw(xs[i]), alaw[i], "alaw({})", xs[i]);
        }
    }

    #[test]
    fn decode_then_encode_round_trips() {
        for code in 0..=255u8 {
            let a = Codec::Pcma.decode(code);
            assert_eq!(encode_alaw(a), code, "A-law {code:#04x}");
            let u = Codec::Pcmu.decode(code);
            // µ-law has two zeros; negative zero comes back as positive.
            let want = if code == 0x7f { 0xff } else { code };
            assert_eq!(encode_ulaw(u), want, "µ-law {code:#04x}");
        }
    }

    #[test]
    fn encode_then_decode_error_is_bounded() {
        // Quantisation error is at most half a step of the segment: < 1/16
        // of the magnitude plus the smallest step.
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let y = codec.decode(codec.encode(x)) as i32;
                let err = (y - x as i32).abs();
                let bound = (x as i32).abs() / 16 + 140;
                assert!(err <= bound, "{codec:?} {x} -> {y}");
            }
        }
    }

    #[test]
    fn decode_into_and_payload_types() {
        let mut out = [0i16; 4];
        Codec::Pcmu.decode_into(&[0xff, 0x80, 0x00, 0x7f], &mut out);
        assert_eq!(out, [0, 32124, -32124, 0]);
        assert_eq!(Codec::from_static_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_static_payload_type(18), None);
        assert_eq!(Codec::from_encoding_name("pcma"), Some(Codec::Pcma));
        assert_eq!(Codec::Pcma.payload_type(), 8);
        let mut buf = [0u8; 160];
        tone(Codec::Pcmu, 1000.0, 8000.0, 0, &mut buf);
        assert!(buf.iter().any(|&b| b != 0xff));
    }
}
