//! Call recording (SPEC §4): a stereo WAV, 8 kHz 16-bit PCM, left = the
//! caller, right = the agent, aligned to wall-clock time with silence where
//! packets were lost, valid even after `kill -9`.
//!
//! * [`Aligner`] (sans-IO) places each leg's decoded samples on one sample
//!   clock that starts with the recording, and emits interleaved frames a
//!   fixed playout delay behind real time.
//! * [`Recorder`] writes those frames with `hound`, checkpointing the RIFF
//!   header every [`FLUSH_EVERY`], and returns `{duration_ms, bytes, sha256}`
//!   when finalized.
//! * [`repair`] fixes the two RIFF size fields of a file left open by a
//!   killed process (run it at start-up over the recordings of calls that
//!   were live).
//!
//! **Placement.** A leg's first packet anchors its RTP timestamps to the
//! wall-clock position of its arrival; later packets are placed by RTP
//! timestamp (so jitter and reordering do not move audio, and a lost packet
//! leaves its 20 ms of silence). The anchor is re-taken from the arrival
//! time when the SSRC changes, when a packet would land more than
//! [`MAX_AHEAD`] ahead of real time (a sender clock running fast), when it
//! is more than [`MAX_BEHIND`] behind (a timestamp jump), or after
//! [`LATE_RESYNC`] packets in a row arrived too late to be written (a clock
//! running slow, or a lasting rise in network delay). So each channel stays
//! within about `PLAYOUT_DELAY` of wall-clock time whatever the sender's
//! clock does, and both stay aligned with each other.
//!
//! **Crash loss bound.** Frames reach the file `PLAYOUT_DELAY` after real
//! time, and the header is checkpointed every `FLUSH_EVERY`, so a kill loses
//! at most `PLAYOUT_DELAY + FLUSH_EVERY` (+ one tick of the driver): 0.2 s +
//! 0.5 s here, under SPEC's one second. (The file is not `fsync`ed: a kill
//! of the process loses nothing the kernel holds; a power cut may.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::relay::{Audio, Side};
use crate::domain::Protocol;

/// Samples per second.
pub const SAMPLE_RATE: u32 = 8000;
/// Frames are written this long after real time (reordering/jitter window).
pub const PLAYOUT_DELAY: Duration = Duration::from_millis(200);
/// The header is checkpointed this often.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// A packet placed further ahead of real time re-anchors its channel.
pub const MAX_AHEAD: Duration = Duration::from_millis(200);
/// A packet placed further behind real time re-anchors its channel at once.
pub const MAX_BEHIND: Duration = Duration::from_secs(1);
/// This many too-late packets in a row re-anchor their channel.
pub const LATE_RESYNC: u32 = 3;

/// Frames in the ring (a power of two, ~1 s): covers the playout delay,
/// `MAX_AHEAD` and the driver's tick with room to spare.
const RING: usize = 8192;

fn frames(d: Duration) -> u64 {
    (d.as_nanos() * SAMPLE_RATE as u128 / 1_000_000_000) as u64
}

#[derive(Debug, Clone, Copy, Default)]
struct ChannelClock {
    /// (sample position, RTP timestamp, SSRC) of the anchor.
    anchor: Option<(u64, u32, u32)>,
    late_run: u32,
}

/// What the aligner did with the audio it got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlignerStats {
    /// Samples written per channel.
    pub samples: [u64; 2],
    /// Samples that came after their place was already written out.
    pub late_samples: [u64; 2],
    /// Times each channel's clock was re-anchored (excluding the first).
    pub resyncs: [u64; 2],
}

/// Places both legs' audio on one wall-clock sample grid and emits stereo
/// frames (interleaved `[left, right]` i16) `PLAYOUT_DELAY` behind real time.
pub struct Aligner {
    start: Instant,
    /// Interleaved frames; slot of position p is `p % RING`.
    ring: Box<[i16]>,
    /// Next position to emit; everything before it is written out.
    base: u64,
    /// One past the highest position written.
    high: u64,
    delay: u64,
    clocks: [ChannelClock; 2],
    stats: AlignerStats,
}

impl Aligner {
    /// A recording whose position 0 is `start`.
    pub fn new(start: Instant) -> Aligner {
        Aligner {
            start,
            ring: vec![0i16; RING * 2].into_boxed_slice(),
            base: 0,
            high: 0,
            delay: frames(PLAYOUT_DELAY),
            clocks: [ChannelClock::default(); 2],
            stats: AlignerStats::default(),
        }
    }

    pub fn stats(&self) -> AlignerStats {
        self.stats
    }

    /// Frames emitted so far.
    pub fn emitted(&self) -> u64 {
        self.base
    }

    fn wall(&self, t: Instant) -> u64 {
        frames(t.saturating_duration_since(self.start))
    }

    /// Where a packet of `n` samples goes, or None when it is too late.
    fn place(&mut self, side: Side, ssrc: u32, ts: u32, arrival: Instant, n: usize) -> Option<u64> {
        let wall = self.wall(arrival);
        let base = self.base;
        let ch = side.index();
        let clock = &mut self.clocks[ch];
        let anchor = match clock.anchor {
            Some(a @ (_, _, s)) if s == ssrc => a,
            previous => {
                if previous.is_some() {
                    self.stats.resyncs[ch] += 1;
                }
                clock.anchor = Some((wall, ts, ssrc));
                clock.late_run = 0;
                return Some(wall);
            }
        };
        let pos = anchor.0 as i64 + ts.wrapping_sub(anchor.1) as i32 as i64;
        let ahead = pos - wall as i64;
        let late = pos + (n as i64) <= base as i64;
        let reanchor = ahead > frames(MAX_AHEAD) as i64
            || -ahead > frames(MAX_BEHIND) as i64
            || (late && clock.late_run + 1 >= LATE_RESYNC);
        if reanchor {
            clock.anchor = Some((wall, ts, ssrc));
            clock.late_run = 0;
            self.stats.resyncs[ch] += 1;
            return Some(wall);
        }
        if late {
            clock.late_run += 1;
            self.stats.late_samples[ch] += n as u64;
            return None;
        }
        clock.late_run = 0;
        Some(pos as u64)
    }

    fn write(&mut self, side: Side, pos: u64, samples: impl Iterator<Item = i16>) {
        let ch = side.index();
        let (base, end) = (self.base, self.base + RING as u64);
        for (k, s) in samples.enumerate() {
            let p = pos + k as u64;
            if p < base {
                self.stats.late_samples[ch] += 1;
                continue;
            }
            if p >= end {
                break;
            }
            self.ring[(p as usize % RING) * 2 + ch] = s;
            self.stats.samples[ch] += 1;
            self.high = self.high.max(p + 1);
        }
    }

    /// Adds decoded samples of `side` (RTP `ssrc`/`ts`, arrived at `arrival`).
    pub fn push_pcm(&mut self, side: Side, ssrc: u32, ts: u32, arrival: Instant, samples: &[i16]) {
        if let Some(pos) = self.place(side, ssrc, ts, arrival, samples.len()) {
            self.write(side, pos, samples.iter().copied());
        }
    }

    /// Adds a G.711 payload of `side`, decoding straight into place.
    pub fn push_g711(&mut self, side: Side, audio: &Audio<'_>, arrival: Instant) {
        let table = audio.codec.table();
        if let Some(pos) = self.place(
            side,
            audio.ssrc,
            audio.timestamp,
            arrival,
            audio.payload.len(),
        ) {
            self.write(side, pos, audio.payload.iter().map(|&c| table[c as usize]));
        }
    }

    /// Emits every frame up to `now - PLAYOUT_DELAY` (silence where nothing
    /// was written), in contiguous interleaved slices.
    pub fn drain(&mut self, now: Instant, sink: impl FnMut(&[i16])) {
        let target = self.wall(now).saturating_sub(self.delay);
        self.emit_to(target, sink);
    }

    /// Emits everything up to `now`, and whatever was written beyond it.
    pub fn finish(&mut self, now: Instant, sink: impl FnMut(&[i16])) {
        let target = self.wall(now).max(self.high);
        self.emit_to(target, sink);
    }

    fn emit_to(&mut self, target: u64, mut sink: impl FnMut(&[i16])) {
        while self.base < target {
            let slot = self.base as usize % RING;
            let n = ((target - self.base) as usize).min(RING - slot);
            let chunk = &mut self.ring[slot * 2..(slot + n) * 2];
            sink(chunk);
            chunk.fill(0);
            self.base += n as u64;
        }
    }
}

/// What a finished (or repaired) recording is, for the attendance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordingInfo {
    pub duration_ms: u64,
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: String,
}

/// `root/YYYY/MM/DD/<protocol>.wav`, the date being the protocol's own (its
/// first eight digits, in the installation's time zone).
pub fn recording_path(root: &Path, protocol: &Protocol) -> PathBuf {
    let p = protocol.as_str();
    root.join(&p[0..4])
        .join(&p[4..6])
        .join(&p[6..8])
        .join(format!("{p}.wav"))
}

fn wav_err(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other),
    }
}

const SPEC: hound::WavSpec = hound::WavSpec {
    channels: 2,
    sample_rate: SAMPLE_RATE,
    bits_per_sample: 16,
    sample_format: hound::SampleFormat::Int,
};

/// A recording being written.
pub struct Recorder {
    path: PathBuf,
    writer: hound::WavWriter<BufWriter<File>>,
    aligner: Aligner,
    last_flush: Instant,
    durable_frames: u64,
}

impl Recorder {
    /// Creates `path` (and its directories) as a valid, empty WAV on disk;
    /// the recording's time 0 is `start`.
    pub fn create(path: &Path, start: Instant) -> io::Result<Recorder> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = File::create(path)?;
        // ~1 s of audio: between checkpoints frames stay in memory.
        let buf = BufWriter::with_capacity(32 * 1024, file);
        let mut writer = hound::WavWriter::new(buf, SPEC).map_err(wav_err)?;
        writer.flush().map_err(wav_err)?;
        Ok(Recorder {
            path: path.to_path_buf(),
            writer,
            aligner: Aligner::new(start),
            last_flush: start,
            durable_frames: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn aligner_stats(&self) -> AlignerStats {
        self.aligner.stats()
    }

    /// Adds a relayed packet's audio of `side`.
    pub fn push(&mut self, side: Side, audio: &Audio<'_>, arrival: Instant) {
        self.aligner.push_g711(side, audio, arrival);
    }

    /// Adds decoded samples (tests, other codecs).
    pub fn push_pcm(&mut self, side: Side, ssrc: u32, ts: u32, arrival: Instant, samples: &[i16]) {
        self.aligner.push_pcm(side, ssrc, ts, arrival, samples);
    }

    fn write_frames(
        writer: &mut hound::WavWriter<BufWriter<File>>,
        aligner: &mut Aligner,
        finish: Option<Instant>,
        now: Instant,
    ) -> io::Result<()> {
        let mut result = Ok(());
        let sink = |chunk: &[i16]| {
            if result.is_err() {
                return;
            }
            let mut w = writer.get_i16_writer(chunk.len() as u32);
            for &s in chunk {
                w.write_sample(s);
            }
            result = w.flush().map_err(wav_err);
        };
        match finish {
            Some(t) => aligner.finish(t, sink),
            None => aligner.drain(now, sink),
        }
        result
    }

    /// Writes out what is due at `now` and checkpoints the header when
    /// `FLUSH_EVERY` has passed. Call it on every packet or on a timer (at
    /// least every ~100 ms).
    pub fn tick(&mut self, now: Instant) -> io::Result<()> {
        Self::write_frames(&mut self.writer, &mut self.aligner, None, now)?;
        if now.saturating_duration_since(self.last_flush) >= FLUSH_EVERY {
            self.checkpoint()?;
            self.last_flush = now;
        }
        Ok(())
    }

    /// Checkpoints the header now: what is written so far survives a kill.
    pub fn checkpoint(&mut self) -> io::Result<()> {
        self.writer.flush().map_err(wav_err)?;
        self.durable_frames = self.aligner.emitted();
        Ok(())
    }

    /// Frames the file holds as of the last checkpoint.
    pub fn durable_frames(&self) -> u64 {
        self.durable_frames
    }

    /// Writes everything up to `now`, finalizes the header and hashes the
    /// file. Blocking I/O (reads the whole file back): call it from a
    /// blocking context for long recordings.
    pub fn finalize(mut self, now: Instant) -> io::Result<RecordingInfo> {
        Self::write_frames(&mut self.writer, &mut self.aligner, Some(now), now)?;
        self.writer.finalize().map_err(wav_err)?;
        info_of(&self.path)
    }
}

/// Duration, size and SHA-256 of a WAV file on disk.
pub fn info_of(path: &Path) -> io::Result<RecordingInfo> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let layout = header_layout(&mut file)?;
    let frames = layout.declared_data as u64 / layout.block_align as u64;
    Ok(RecordingInfo {
        duration_ms: frames * 1000 / layout.sample_rate as u64,
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

struct Layout {
    /// Offset of the data chunk's size field.
    data_size_at: u64,
    declared_data: u32,
    block_align: u16,
    sample_rate: u32,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn header_layout(file: &mut File) -> io::Result<Layout> {
    let len = file.metadata()?.len();
    let mut head = [0u8; 12];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad("not a RIFF/WAVE file"));
    }
    let mut at = 12u64;
    let mut fmt: Option<(u16, u32)> = None;
    while at + 8 <= len {
        let mut ch = [0u8; 8];
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut ch)?;
        let size = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
        match &ch[0..4] {
            b"fmt " => {
                let mut f = [0u8; 16];
                file.read_exact(&mut f)?;
                let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                let align = u16::from_le_bytes([f[12], f[13]]);
                fmt = Some((align, rate));
            }
            b"data" => {
                let (block_align, sample_rate) = fmt.ok_or_else(|| bad("data before fmt"))?;
                if block_align == 0 || sample_rate == 0 {
                    return Err(bad("bad fmt chunk"));
                }
                return Ok(Layout {
                    data_size_at: at + 4,
                    declared_data: size,
                    block_align,
                    sample_rate,
                });
            }
            _ => {}
        }
        at += 8 + size as u64 + (size as u64 & 1);
    }
    Err(bad("no data chunk"))
}

/// What [`repair`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// Whether the file had to be changed.
    pub changed: bool,
    pub info: RecordingInfo,
}

/// Makes a WAV left open by a killed process valid: the data chunk becomes
/// everything after its header up to the last whole frame, and the RIFF and
/// data sizes say so. A file too short to hold the header (killed before it
/// reached the disk) becomes an empty recording. Idempotent.
pub fn repair(path: &Path) -> io::Result<Repaired> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let layout = match header_layout(&mut file) {
        Ok(l) => l,
        Err(e) if len < 44 => {
            tracing::warn!(path = %path.display(), error = %e, "recording has no header; rewritten as empty");
            drop(file);
            let w = hound::WavWriter::create(path, SPEC).map_err(wav_err)?;
            w.finalize().map_err(wav_err)?;
            return Ok(Repaired {
                changed: true,
                info: info_of(path)?,
            });
        }
        Err(e) => return Err(e),
    };
    let data_start = layout.data_size_at + 4;
    let align = layout.block_align as u64;
    let available = len.saturating_sub(data_start);
    let data_len = (available / align * align).min(u32::MAX as u64 - 64);
    let riff_size = (data_start + data_len - 8) as u32;
    let mut riff = [0u8; 4];
    file.seek(SeekFrom::Start(4))?;
    file.read_exact(&mut riff)?;
    let changed = u32::from_le_bytes(riff) != riff_size
        || layout.declared_data as u64 != data_len
        || len != data_start + data_len;
    if changed {
        if len != data_start + data_len {
            file.set_len(data_start + data_len)?;
        }
        file.seek(SeekFrom::Start(4))?;
        file.write_all(&riff_size.to_le_bytes())?;
        file.seek(SeekFrom::Start(layout.data_size_at))?;
        file.write_all(&(data_len as u32).to_le_bytes())?;
        file.sync_all()?;
    }
    drop(file);
    Ok(Repaired {
        changed,
        info: info_of(path)?,
    })
}

#[cfg(test)]
mod tests;
