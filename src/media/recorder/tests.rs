use super::*;
use crate::media::g711::{Codec, encode_ulaw};
use std::io::BufRead;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Collects everything an aligner emits.
fn collect(out: &mut Vec<i16>) -> impl FnMut(&[i16]) + '_ {
    |c| out.extend_from_slice(c)
}

fn left(frames: &[i16]) -> Vec<i16> {
    frames.iter().step_by(2).copied().collect()
}

fn right(frames: &[i16]) -> Vec<i16> {
    frames.iter().skip(1).step_by(2).copied().collect()
}

/// A packet of 160 samples all equal to `v`.
fn packet(v: i16) -> [i16; 160] {
    [v; 160]
}

#[test]
fn lost_packets_become_silence_and_channels_stay_aligned() {
    let t0 = Instant::now();
    let mut a = Aligner::new(t0);
    let mut out = Vec::new();
    for i in 0..100u32 {
        let t = t0 + ms(20 * i as u64);
        // Caller loses packet 10; the agent sends all.
        if i != 10 {
            a.push_pcm(Side::Caller, 1, 1000 + i * 160, t, &packet(100 + i as i16));
        }
        a.push_pcm(
            Side::Agent,
            2,
            5_000_000 + i * 160,
            t,
            &packet(-(i as i16) - 1),
        );
        a.drain(t, collect(&mut out));
    }
    a.finish(t0 + ms(2000), collect(&mut out));
    assert_eq!(out.len(), 16000 * 2);
    let (l, r) = (left(&out), right(&out));
    for i in 0..100usize {
        let want_l = if i == 10 { 0 } else { 100 + i as i16 };
        assert!(
            l[i * 160..(i + 1) * 160].iter().all(|&s| s == want_l),
            "left packet {i}"
        );
        assert!(
            r[i * 160..(i + 1) * 160]
                .iter()
                .all(|&s| s == -(i as i16) - 1),
            "right {i}"
        );
    }
}

#[test]
fn reordering_and_jitter_do_not_move_audio() {
    let t0 = Instant::now();
    let mut a = Aligner::new(t0);
    let mut out = Vec::new();
    // Packets 0..50, each delayed by up to 60 ms, 20/21 and 30/31 swapped.
    let mut arrivals: Vec<(u64, u32)> = (0..50u32)
        .map(|i| (20 * i as u64 + (i as u64 * 37 % 61), i))
        .collect();
    arrivals.sort();
    let p20 = arrivals.iter().position(|x| x.1 == 20).unwrap();
    let p21 = arrivals.iter().position(|x| x.1 == 21).unwrap();
    arrivals.swap(p20, p21);
    for (at, i) in arrivals {
        let t = t0 + ms(at);
        a.push_pcm(Side::Caller, 9, i * 160, t, &packet(i as i16 + 1));
        a.drain(t, collect(&mut out));
    }
    a.finish(t0 + ms(1000), collect(&mut out));
    let l = left(&out);
    // The first packet (no delay) anchors at 0; everything else by timestamp.
    for i in 0..50usize {
        assert!(
            l[i * 160..(i + 1) * 160].iter().all(|&s| s == i as i16 + 1),
            "packet {i}"
        );
    }
    assert_eq!(a.stats().late_samples, [0, 0]);
    assert_eq!(a.stats().resyncs, [0, 0]);
}

#[test]
fn one_silent_leg_and_a_late_start_are_placed_by_wall_clock() {
    let t0 = Instant::now();
    let mut a = Aligner::new(t0);
    let mut out = Vec::new();
    // The agent starts talking 1 s into the call; the caller never does.
    for i in 0..50u32 {
        let t = t0 + ms(1000 + 20 * i as u64);
        a.push_pcm(Side::Agent, 3, 777 + i * 160, t, &packet(5));
        a.drain(t, collect(&mut out));
    }
    a.finish(t0 + ms(2000), collect(&mut out));
    assert_eq!(out.len(), 16000 * 2);
    let (l, r) = (left(&out), right(&out));
    assert!(l.iter().all(|&s| s == 0));
    assert!(r[..8000].iter().all(|&s| s == 0));
    assert!(r[8000..].iter().all(|&s| s == 5));
}

#[test]
fn packets_later_than_the_playout_delay_are_dropped_then_resynced() {
    let t0 = Instant::now();
    let mut a = Aligner::new(t0);
    let mut out = Vec::new();
    for i in 0..10u32 {
        let t = t0 + ms(20 * i as u64);
        a.push_pcm(Side::Caller, 1, i * 160, t, &packet(1));
        a.drain(t, collect(&mut out));
    }
    // Then the network delay jumps by 500 ms for good.
    for i in 10..100u32 {
        let t = t0 + ms(20 * i as u64 + 500);
        a.push_pcm(Side::Caller, 1, i * 160, t, &packet(1));
        a.drain(t, collect(&mut out));
    }
    let s = a.stats();
    assert_eq!(s.resyncs[0], 1);
    assert_eq!(s.late_samples[0], 2 * 160);
    // After the resync the audio is written again, 500 ms later than its
    // timestamps say: aligned to when it was heard.
    a.finish(t0 + ms(2500), collect(&mut out));
    let l = left(&out);
    assert_eq!(l.len(), 20000);
    assert!(l[19000..19990].iter().all(|&s| s == 1));
}

#[test]
fn clock_drift_stays_bounded() {
    // A sender clock 1 % fast and another 1 % slow, for 60 s: each channel
    // keeps within the playout delay + MAX_AHEAD of wall-clock time.
    for (ppm, side) in [(10_000i64, Side::Caller), (-10_000, Side::Agent)] {
        let t0 = Instant::now();
        let mut a = Aligner::new(t0);
        let mut out = Vec::new();
        for i in 0..3000u64 {
            let t = t0 + ms(20 * i);
            // The sender's idea of 20 ms of samples, stamped by its clock.
            let ts = (i as i64 * 160 * (1_000_000 + ppm) / 1_000_000) as u32;
            // Each sample holds its send time in units of 20 ms (mod 32768).
            a.push_pcm(side, 4, ts, t, &packet((i % 30_000) as i16 + 1));
            a.drain(t, collect(&mut out));
        }
        let ch = if side == Side::Caller {
            left(&out)
        } else {
            right(&out)
        };
        // Where sample position p holds packet k, |p - 160k| must stay small.
        let mut worst = 0i64;
        for (p, &s) in ch.iter().enumerate() {
            if s == 0 {
                continue;
            }
            let sent_at = (s as i64 - 1) * 160;
            worst = worst.max((p as i64 - sent_at).abs());
        }
        let bound = frames(PLAYOUT_DELAY + MAX_AHEAD) as i64 + 160;
        assert!(worst <= bound, "{ppm} ppm: {worst} > {bound}");
        assert!(a.stats().resyncs[side.index()] >= 1);
        // Silence gaps from resyncs are small: most of the time is audio.
        let audible = ch.iter().filter(|&&s| s != 0).count();
        assert!(
            audible as f64 > ch.len() as f64 * 0.95,
            "{ppm}: {audible}/{}",
            ch.len()
        );
    }
}

#[test]
fn ssrc_change_reanchors_and_g711_decodes_in_place() {
    let t0 = Instant::now();
    let mut a = Aligner::new(t0);
    let mut out = Vec::new();
    let payload = [encode_ulaw(1000); 160];
    let audio = |ssrc, timestamp| Audio {
        codec: Codec::Pcmu,
        ssrc,
        seq: 0,
        timestamp,
        payload: &payload,
    };
    a.push_g711(Side::Agent, &audio(1, 0), t0);
    // Transferred to another agent: new SSRC, unrelated timestamps, 500 ms later.
    a.push_g711(Side::Agent, &audio(2, 3_000_000_000), t0 + ms(500));
    a.finish(t0 + ms(600), collect(&mut out));
    let r = right(&out);
    let v = Codec::Pcmu.decode(encode_ulaw(1000));
    assert!(r[..160].iter().all(|&s| s == v));
    assert!(r[160..4000].iter().all(|&s| s == 0));
    assert!(r[4000..4160].iter().all(|&s| s == v));
    assert_eq!(a.stats().resyncs[1], 1);
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Feeds `secs` seconds of both legs (simulated time) into a recorder.
fn feed(rec: &mut Recorder, t0: Instant, from_ms: u64, to_ms: u64) {
    let payload = [encode_ulaw(3000); 160];
    let mut t = from_ms;
    while t < to_ms {
        let i = (t / 20) as u32;
        let at = t0 + ms(t);
        for (side, ssrc) in [(Side::Caller, 11), (Side::Agent, 22)] {
            let audio = Audio {
                codec: Codec::Pcmu,
                ssrc,
                seq: i as u16,
                timestamp: i * 160,
                payload: &payload,
            };
            rec.push(side, &audio, at);
        }
        rec.tick(at).unwrap();
        t += 20;
    }
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let samples = r.samples::<i16>().map(|s| s.unwrap()).collect();
    (spec, samples)
}

#[test]
fn finalize_reports_duration_size_and_hash() {
    let dir = tmp();
    let protocol = Protocol::parse("20261121000042").unwrap();
    let path = recording_path(dir.path(), &protocol);
    assert!(path.ends_with("2026/11/21/20261121000042.wav"));
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, t0).unwrap();
    feed(&mut rec, t0, 0, 3000);
    let info = rec.finalize(t0 + ms(3000)).unwrap();
    assert_eq!(info.duration_ms, 3000);
    assert_eq!(info.bytes, 44 + 3000 * 8 * 4);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(info.sha256, hex::encode(Sha256::digest(&bytes)));
    let (spec, samples) = read_wav(&path);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    assert_eq!(samples.len(), 3000 * 8 * 2);
    let v = Codec::Pcmu.decode(encode_ulaw(3000));
    assert!(samples.iter().all(|&s| s == v));
    // A finalized file needs no repair.
    let r = repair(&path).unwrap();
    assert!(!r.changed);
    assert_eq!(r.info, info);
}

#[test]
fn a_new_recording_is_a_valid_empty_wav_on_disk() {
    let dir = tmp();
    let path = dir.path().join("x/y/z.wav");
    let rec = Recorder::create(&path, Instant::now()).unwrap();
    let (_, samples) = read_wav(&path);
    assert!(samples.is_empty());
    std::mem::forget(rec);
}

#[test]
fn kill_without_finalize_then_repair_keeps_what_was_checkpointed() {
    let dir = tmp();
    let path = dir.path().join("killed.wav");
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, t0).unwrap();
    feed(&mut rec, t0, 0, 4010);
    let durable = rec.durable_frames();
    assert!(durable >= 3000 * 8, "{durable}");
    // A kill: nothing more reaches the file (the BufWriter's tail is lost).
    std::mem::forget(rec);
    let r = repair(&path).unwrap();
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len() as u64 / 2 * 1000 / 8000, r.info.duration_ms);
    assert!(samples.len() as u64 / 2 >= durable);
    // At most the playout delay + a checkpoint interval + a tick is lost.
    let lost_ms = 4010 - r.info.duration_ms;
    assert!(
        lost_ms <= (PLAYOUT_DELAY + FLUSH_EVERY).as_millis() as u64 + 20,
        "{lost_ms}"
    );
    assert!(repair(&path).is_ok_and(|r| !r.changed));
}

#[test]
fn repair_of_a_file_truncated_mid_frame_and_mid_header() {
    let dir = tmp();
    let path = dir.path().join("t.wav");
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, t0).unwrap();
    feed(&mut rec, t0, 0, 2000);
    rec.finalize(t0 + ms(2000)).unwrap();
    // Truncate mid-frame: the header now claims more than there is.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(44 + 1000 * 4 + 3).unwrap();
    drop(f);
    let r = repair(&path).unwrap();
    assert!(r.changed);
    assert_eq!(r.info.bytes, 44 + 1000 * 4);
    assert_eq!(r.info.duration_ms, 125);
    let (_, samples) = read_wav(&path);
    assert_eq!(samples.len(), 2000);
    // Killed before the header reached the disk: an empty recording.
    fs::write(&path, b"RIFF\0\0").unwrap();
    let r = repair(&path).unwrap();
    assert!(r.changed);
    assert_eq!(r.info.duration_ms, 0);
    assert!(read_wav(&path).1.is_empty());
    // Not a WAV at all (and long): refused, not destroyed.
    fs::write(&path, vec![7u8; 100]).unwrap();
    assert!(repair(&path).is_err());
    assert_eq!(fs::read(&path).unwrap(), vec![7u8; 100]);
}

const CHILD_ENV: &str = "PBX_BRIDGE_RECORDER_SIGKILL_CHILD";

/// Run by `sigkill_mid_recording_then_repair` in a child process: records
/// in real time, printing each checkpoint, until it is killed.
#[test]
#[ignore = "child process of sigkill_mid_recording_then_repair"]
fn sigkill_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let t0 = Instant::now();
    let mut rec = Recorder::create(Path::new(&path), t0).unwrap();
    println!("started");
    let payload = [encode_ulaw(2000); 160];
    let mut last = 0;
    for i in 0u32.. {
        let due = t0 + ms(20 * i as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        for (side, ssrc) in [(Side::Caller, 1), (Side::Agent, 2)] {
            let audio = Audio {
                codec: Codec::Pcmu,
                ssrc,
                seq: i as u16,
                timestamp: i * 160,
                payload: &payload,
            };
            rec.push(side, &audio, now);
        }
        rec.tick(now).unwrap();
        if rec.durable_frames() != last {
            last = rec.durable_frames();
            println!("checkpoint {last}");
        }
    }
}

#[test]
fn sigkill_mid_recording_then_repair() {
    let dir = tmp();
    let path = dir.path().join("2026/01/02/20260102000001.wav");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "media::recorder::tests::sigkill_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut started = None;
    let mut checkpoints = Vec::new();
    while checkpoints.len() < 4 {
        let line = lines.next().expect("child output").unwrap();
        if line.contains("started") {
            started = Some(Instant::now());
        } else if let Some(n) = line.strip_prefix("checkpoint ") {
            checkpoints.push(n.parse::<u64>().unwrap());
        }
    }
    // Kill it between two checkpoints.
    std::thread::sleep(ms(300));
    child.kill().unwrap(); // SIGKILL
    let killed_after = started.unwrap().elapsed();
    let status = child.wait().unwrap();
    assert!(!status.success());

    let r = repair(&path).unwrap();
    let mut reader = hound::WavReader::open(&path).unwrap();
    let frames = reader.duration() as u64;
    assert_eq!(frames * 1000 / 8000, r.info.duration_ms);
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    assert_eq!(samples.len() as u64, frames * 2);
    assert!(
        frames >= *checkpoints.last().unwrap(),
        "{frames} < {checkpoints:?}"
    );
    // SPEC §4: such a kill loses at most the last second.
    let lost = killed_after.as_millis() as i64 - r.info.duration_ms as i64;
    assert!(
        lost <= 1000,
        "lost {lost} ms (killed after {killed_after:?})"
    );
}
