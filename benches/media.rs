//! Media micro-benchmark: relay core + G.711 decode + aligned stereo WAV
//! recording for N simulated calls, 50 packets/s per leg (PCMU, 20 ms), in
//! simulated time (no sockets, real file writes), on one thread.
//!
//!     cargo bench --bench media -- [calls=400] [seconds=20]
//!
//! (Without `--bench`, as under `cargo test --all-targets`: 4 calls × 2 s.)
//!
//! Prints the cost in µs per call-second, both as wall time of the single
//! busy thread and as process CPU time (user+sys from /proc, 10 ms ticks)
//! over calls × seconds, and the heap held per call (a counting global
//! allocator, measured with every call live). Finalization (sha256 of every
//! file) is included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pbx_bridge::media::g711::{Codec, tone};
use pbx_bridge::media::relay::build_rtp;
use pbx_bridge::media::{
    AudioMedia, Direction, MediaSession, Recorder, RelayConfig, RtpVerdict, Side,
};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct Call {
    session: MediaSession,
    recorder: Recorder,
    caller_src: SocketAddr,
    agent_src: SocketAddr,
}

fn media(addr: SocketAddr) -> AudioMedia {
    AudioMedia {
        rtp: Some(addr),
        rtcp: Some(SocketAddr::new(addr.ip(), addr.port() + 1)),
        codecs: vec![(0, Codec::Pcmu), (8, Codec::Pcma)],
        telephone_event: Some(101),
        direction: Direction::SendRecv,
    }
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, in
/// clock ticks of 10 ms), or None elsewhere.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` the
    // binary runs without it and does a small smoke run only.
    let full = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (def_calls, def_secs) = if full { (400, 20) } else { (4, 2) };
    let calls: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(def_calls);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(def_secs);
    let dir = tempfile::tempdir_in(
        std::env::var("PBX_BRIDGE_BENCH_DIR").unwrap_or_else(|_| "target".into()),
    )
    .expect("temp dir");

    // One second of two different tones, reused.
    let mut caller_audio = vec![0u8; 8000];
    let mut agent_audio = vec![0u8; 8000];
    tone(Codec::Pcmu, 440.0, 8000.0, 0, &mut caller_audio);
    tone(Codec::Pcmu, 1000.0, 6000.0, 0, &mut agent_audio);

    let heap_before = LIVE.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut live: Vec<Call> = (0..calls)
        .map(|i| {
            let caller_src: SocketAddr = format!("10.1.{}.{}:4000", i / 250, i % 250 + 1)
                .parse()
                .unwrap();
            let agent_src: SocketAddr = format!("10.2.{}.{}:5000", i / 250, i % 250 + 1)
                .parse()
                .unwrap();
            let mut session = MediaSession::new(RelayConfig::default(), t0);
            session.set_remote(Side::Caller, &media(caller_src), t0);
            session.set_remote(Side::Agent, &media(agent_src), t0);
            let recorder = Recorder::create(&dir.path().join(format!("{i}.wav")), t0).unwrap();
            Call {
                session,
                recorder,
                caller_src,
                agent_src,
            }
        })
        .collect();

    let mut packet = [0u8; 172];
    let steps = seconds * 50;
    let started = Instant::now();
    let cpu_started = cpu_time();
    let mut forwarded = 0u64;
    let mut heap_peak = 0usize;
    for step in 0..steps {
        // Simulated time: the packets of this 20 ms step arrive at `now`.
        let now = t0 + Duration::from_millis(20 * step);
        let off = (step as usize % 50) * 160;
        for (i, call) in live.iter_mut().enumerate() {
            for (side, src, audio, ssrc) in [
                (
                    Side::Caller,
                    call.caller_src,
                    &caller_audio,
                    0x1000 + i as u32,
                ),
                (Side::Agent, call.agent_src, &agent_audio, 0x2000 + i as u32),
            ] {
                let n = build_rtp(
                    &mut packet,
                    0,
                    false,
                    step as u16,
                    (step as u32).wrapping_mul(160),
                    ssrc,
                    &audio[off..off + 160],
                );
                if let RtpVerdict::Relay { to, audio } =
                    call.session.on_rtp(side, src, &packet[..n], now)
                {
                    forwarded += to.is_some() as u64;
                    if let Some(a) = audio {
                        call.recorder.push(side, &a, now);
                    }
                }
            }
            // The relay task ticks the recorder every 100 ms.
            if step % 5 == 4 {
                call.recorder.tick(now).unwrap();
            }
        }
        if step == 60 {
            heap_peak = LIVE.load(Ordering::Relaxed);
        }
    }
    let end = t0 + Duration::from_millis(20 * steps);
    let mut durations = 0u64;
    for call in live.drain(..) {
        let info = call.recorder.finalize(end).unwrap();
        durations += info.duration_ms;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().zip(cpu_started).map(|(b, a)| b - a);
    let call_seconds = calls as f64 * seconds as f64;
    let per_call_heap = (heap_peak - heap_before) as f64 / calls as f64;
    println!("media bench: {calls} calls × {seconds} s, 50 pkt/s per leg, PCMU, recorded");
    println!("  packets relayed      {forwarded}");
    println!(
        "  recorded             {:.1} s of audio (mean per call)",
        durations as f64 / calls as f64 / 1000.0
    );
    println!(
        "  wall (one thread)    {:.3} s, incl. finalize (sha256 of every file)",
        elapsed.as_secs_f64()
    );
    println!(
        "  wall per call-second {:.1} µs",
        elapsed.as_secs_f64() * 1e6 / call_seconds
    );
    if let Some(cpu) = cpu {
        println!(
            "  CPU per call-second  {:.1} µs (user+sys {:.2} s)",
            cpu.as_secs_f64() * 1e6 / call_seconds,
            cpu.as_secs_f64()
        );
    }
    println!(
        "  heap per call        {:.1} KiB (MediaSession {} B inline; + the relay task's 7 KiB of packet buffers and 4 sockets)",
        per_call_heap / 1024.0,
        std::mem::size_of::<MediaSession>()
    );
}
