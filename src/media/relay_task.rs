//! The tokio task that runs one call's media: it owns the call's four UDP
//! sockets (RTP and RTCP for each leg, on leased ports), drives the
//! [`MediaSession`] core, feeds the [`Recorder`] with each leg's audio, and
//! ends the call's media on dead media or on command.
//!
//! Sending uses `try_send_to`: a full socket buffer drops that packet (RTP
//! tolerates loss; stalling the relay would delay both directions). The
//! recorder's writes go to a 32 KiB `BufWriter` and reach the kernel every
//! half second (a page-cache write of ~16 KiB), cheap enough for the
//! runtime thread; the final hash of the file runs on the blocking pool.
//!
//! Whatever ends the task (report, command channel dropped, panic), its
//! [`LegSockets`] are dropped and the ports go back to the pool.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::ports::{PortLease, PortPool};
use super::recorder::{Recorder, RecordingInfo};
use super::relay::{DeadMedia, LegStats, MediaSession, RtpVerdict, Side};
use super::sdp::AudioMedia;

/// How often the task checks for dead media and writes out the recording.
const TICK: Duration = Duration::from_millis(100);
/// Bind attempts over leased pairs (a pair may be taken by another process).
const BIND_ATTEMPTS: usize = 16;

/// A leg's RTP and RTCP sockets on a leased port pair.
#[derive(Debug)]
pub struct LegSockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    lease: PortLease,
}

impl LegSockets {
    /// Leases a pair from `pool` and binds both ports on `ip` (the bridge's
    /// media address), trying another pair if one is taken.
    pub async fn bind(pool: &PortPool, ip: IpAddr) -> io::Result<LegSockets> {
        let mut last = None;
        for _ in 0..BIND_ATTEMPTS.min(pool.capacity()) {
            let lease = pool
                .allocate()
                .map_err(|e| io::Error::new(io::ErrorKind::AddrNotAvailable, e))?;
            let rtp = match UdpSocket::bind((ip, lease.rtp())).await {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match UdpSocket::bind((ip, lease.rtcp())).await {
                Ok(rtcp) => return Ok(LegSockets { rtp, rtcp, lease }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
    }

    /// The RTP port to put in this leg's SDP (`sdp::rewrite`).
    pub fn port(&self) -> u16 {
        self.lease.rtp()
    }
}

/// Orders for a running relay.
#[derive(Debug, Clone)]
pub enum RelayCommand {
    /// A leg's new SDP (re-INVITE, or the answer arriving).
    Remote { side: Side, media: AudioMedia },
    /// End the media (hang-up).
    Stop,
}

/// Why the relay ended.
#[derive(Debug, Clone, PartialEq)]
pub enum EndReason {
    DeadMedia(DeadMedia),
    /// `Stop`, or the handle was dropped.
    Stopped,
}

/// The end of a call's media.
#[derive(Debug, Clone)]
pub struct RelayReport {
    pub reason: EndReason,
    pub caller: LegStats,
    pub agent: LegStats,
    /// The finished recording (`{duration_ms, bytes, sha256}`), or why it
    /// failed (the file is left for `recorder::repair`); None when the call
    /// was not recorded.
    pub recording: Option<Result<RecordingInfo, String>>,
    pub recording_path: Option<PathBuf>,
}

/// The B2BUA's handle on a running relay. Dropping it stops the relay.
#[derive(Debug)]
pub struct RelayHandle {
    commands: mpsc::Sender<RelayCommand>,
    caller_port: u16,
    agent_port: u16,
    join: JoinHandle<RelayReport>,
}

impl RelayHandle {
    /// The bridge's RTP port the caller sends to (in the SDP to the caller).
    pub fn caller_port(&self) -> u16 {
        self.caller_port
    }

    /// The bridge's RTP port the agent sends to.
    pub fn agent_port(&self) -> u16 {
        self.agent_port
    }

    /// Applies a leg's new SDP.
    pub async fn update_remote(&self, side: Side, media: AudioMedia) {
        let _ = self
            .commands
            .send(RelayCommand::Remote { side, media })
            .await;
    }

    /// Stops the relay and waits for its report (also sent on the channel).
    pub async fn stop(self) -> Option<RelayReport> {
        let _ = self.commands.send(RelayCommand::Stop).await;
        self.join.await.ok()
    }
}

/// Starts the relay of one call. The report goes to `ended` tagged with
/// `key` when the media ends for any reason (dead media included, which is
/// the B2BUA's cue to hang up both legs).
pub fn spawn_relay<K: Send + 'static>(
    key: K,
    caller: LegSockets,
    agent: LegSockets,
    session: MediaSession,
    recorder: Option<Recorder>,
    ended: mpsc::UnboundedSender<(K, RelayReport)>,
) -> RelayHandle {
    let (tx, rx) = mpsc::channel(8);
    let (caller_port, agent_port) = (caller.port(), agent.port());
    let join = tokio::spawn(async move {
        let report = run(caller, agent, session, recorder, rx).await;
        let _ = ended.send((key, report.clone()));
        report
    });
    RelayHandle {
        commands: tx,
        caller_port,
        agent_port,
        join,
    }
}

struct Legs {
    caller: LegSockets,
    agent: LegSockets,
}

impl Legs {
    fn get(&self, side: Side) -> &LegSockets {
        match side {
            Side::Caller => &self.caller,
            Side::Agent => &self.agent,
        }
    }
}

fn send(socket: &UdpSocket, packet: &[u8], to: SocketAddr) {
    if let Err(e) = socket.try_send_to(packet, to) {
        tracing::trace!(%to, error = %e, "RTP send dropped");
    }
}

struct Recording {
    recorder: Option<Recorder>,
    path: Option<PathBuf>,
    failed: Option<String>,
}

impl Recording {
    fn fail(&mut self, e: io::Error) {
        tracing::warn!(path = ?self.path, error = %e, "recording failed; the file is left for repair");
        self.recorder = None;
        self.failed = Some(e.to_string());
    }
}

fn on_rtp(
    legs: &Legs,
    session: &mut MediaSession,
    rec: &mut Recording,
    side: Side,
    packet: &[u8],
    src: SocketAddr,
) {
    let now = Instant::now();
    if let RtpVerdict::Relay { to, audio } = session.on_rtp(side, src, packet, now) {
        if let Some(to) = to {
            send(&legs.get(side.other()).rtp, packet, to);
        }
        if let (Some(r), Some(audio)) = (rec.recorder.as_mut(), audio) {
            r.push(side, &audio, now);
        }
    }
}

fn on_rtcp(legs: &Legs, session: &mut MediaSession, side: Side, packet: &[u8], src: SocketAddr) {
    if let Ok(Some(to)) = session.on_rtcp(side, src, packet, Instant::now()) {
        send(&legs.get(side.other()).rtcp, packet, to);
    }
}

async fn run(
    caller: LegSockets,
    agent: LegSockets,
    mut session: MediaSession,
    recorder: Option<Recorder>,
    mut commands: mpsc::Receiver<RelayCommand>,
) -> RelayReport {
    let legs = Legs { caller, agent };
    let mut rec = Recording {
        path: recorder.as_ref().map(|r| r.path().to_path_buf()),
        recorder,
        failed: None,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut b0, mut b1) = ([0u8; 2048], [0u8; 2048]);
    let (mut b2, mut b3) = ([0u8; 1500], [0u8; 1500]);
    let reason = loop {
        tokio::select! {
            r = legs.caller.rtp.recv_from(&mut b0) => if let Ok((n, src)) = r {
                on_rtp(&legs, &mut session, &mut rec, Side::Caller, &b0[..n], src);
            },
            r = legs.agent.rtp.recv_from(&mut b1) => if let Ok((n, src)) = r {
                on_rtp(&legs, &mut session, &mut rec, Side::Agent, &b1[..n], src);
            },
            r = legs.caller.rtcp.recv_from(&mut b2) => if let Ok((n, src)) = r {
                on_rtcp(&legs, &mut session, Side::Caller, &b2[..n], src);
            },
            r = legs.agent.rtcp.recv_from(&mut b3) => if let Ok((n, src)) = r {
                on_rtcp(&legs, &mut session, Side::Agent, &b3[..n], src);
            },
            _ = tick.tick() => {
                let now = Instant::now();
                if let Some(dead) = session.dead_media(now) {
                    break EndReason::DeadMedia(dead);
                }
                if let Some(r) = rec.recorder.as_mut()
                    && let Err(e) = r.tick(now)
                {
                    rec.fail(e);
                }
            },
            cmd = commands.recv() => match cmd {
                Some(RelayCommand::Remote { side, media }) => {
                    session.set_remote(side, &media, Instant::now());
                }
                Some(RelayCommand::Stop) | None => break EndReason::Stopped,
            },
        }
    };
    // Give the ports back before anything slow.
    drop(legs);
    let recording = match rec.recorder.take() {
        Some(r) => {
            let now = Instant::now();
            let done = tokio::task::spawn_blocking(move || r.finalize(now)).await;
            Some(match done {
                Ok(Ok(info)) => Ok(info),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            })
        }
        None => rec.failed.map(Err),
    };
    let report = RelayReport {
        reason,
        caller: session.leg(Side::Caller).stats(),
        agent: session.leg(Side::Agent).stats(),
        recording,
        recording_path: rec.path,
    };
    for (leg, s) in [("caller", &report.caller), ("agent", &report.agent)] {
        metrics::counter!("pbx_rtp_packets_total", "leg" => leg).increment(s.packets);
        metrics::counter!("pbx_rtp_lost_packets_total", "leg" => leg).increment(s.lost);
        metrics::histogram!("pbx_rtp_jitter_ms", "leg" => leg).record(s.jitter_ms);
    }
    match &report.reason {
        EndReason::DeadMedia(d) => tracing::warn!(
            side = ?d.side, silent_for_ms = d.silent_for.as_millis() as u64,
            "dead media: no RTP from one leg; ending the call"
        ),
        EndReason::Stopped => tracing::debug!("media relay stopped"),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::{Codec, encode_ulaw};
    use crate::media::recorder::Recorder;
    use crate::media::relay::{RelayConfig, build_rtp};
    use crate::media::sdp::Direction;

    fn audio_media(rtp: SocketAddr) -> AudioMedia {
        AudioMedia {
            rtp: Some(rtp),
            rtcp: Some(SocketAddr::new(rtp.ip(), rtp.port() + 1)),
            codecs: vec![(0, Codec::Pcmu)],
            telephone_event: Some(101),
            direction: Direction::SendRecv,
        }
    }

    async fn recv(sock: &UdpSocket) -> Vec<u8> {
        let mut b = [0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut b))
            .await
            .expect("a relayed packet")
            .unwrap();
        b[..n].to_vec()
    }

    #[tokio::test]
    async fn relays_both_ways_latches_passes_dtmf_and_records() {
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        let pool = PortPool::new(42000..=42099).unwrap();
        let caller_ep = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let agent_ep = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let caller_legs = LegSockets::bind(&pool, localhost).await.unwrap();
        let agent_legs = LegSockets::bind(&pool, localhost).await.unwrap();
        assert_eq!(pool.in_use(), 2);
        let now = Instant::now();
        let mut session = MediaSession::new(RelayConfig::default(), now);
        // The caller's SDP names an address its RTP does not come from (NAT).
        session.set_remote(
            Side::Caller,
            &audio_media("127.0.0.1:9".parse().unwrap()),
            now,
        );
        session.set_remote(
            Side::Agent,
            &audio_media(agent_ep.local_addr().unwrap()),
            now,
        );
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::create(&dir.path().join("r.wav"), now).unwrap();
        let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
        let handle = spawn_relay(
            7u32,
            caller_legs,
            agent_legs,
            session,
            Some(recorder),
            ended_tx,
        );
        let to_caller_port = SocketAddr::new(localhost, handle.caller_port());
        let to_agent_port = SocketAddr::new(localhost, handle.agent_port());

        let (pl, pr) = ([encode_ulaw(4000); 160], [encode_ulaw(-2000); 160]);
        let mut buf = [0u8; 200];
        for i in 0..25u16 {
            let n = build_rtp(&mut buf, 0, false, i, i as u32 * 160, 0xca11, &pl);
            caller_ep.send_to(&buf[..n], to_caller_port).await.unwrap();
            assert_eq!(recv(&agent_ep).await, buf[..n], "caller→agent unchanged");
            let n = build_rtp(&mut buf, 0, false, i, i as u32 * 160, 0xa6e7, &pr);
            agent_ep.send_to(&buf[..n], to_agent_port).await.unwrap();
            // Latched: goes to where the caller's RTP really comes from.
            assert_eq!(recv(&caller_ep).await, buf[..n], "agent→caller unchanged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // DTMF passes through untouched.
        let n = build_rtp(&mut buf, 101, true, 25, 4000, 0xca11, &[5, 0x8a, 0, 160]);
        caller_ep.send_to(&buf[..n], to_caller_port).await.unwrap();
        assert_eq!(recv(&agent_ep).await, buf[..n]);
        // RTCP from the agent goes to the caller's signalled RTCP port (not
        // latched yet): just check it is accepted and counted.
        let rtcp = [0x80u8, 201, 0, 1, 0, 0, 0xa6, 0xe7];
        agent_ep
            .send_to(&rtcp, SocketAddr::new(localhost, handle.agent_port() + 1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;

        let report = handle.stop().await.unwrap();
        let (key, sent) = ended_rx.recv().await.unwrap();
        assert_eq!(key, 7);
        assert_eq!(sent.reason, EndReason::Stopped);
        assert_eq!(pool.in_use(), 0, "ports given back");
        assert_eq!(report.caller.packets, 26);
        assert_eq!(report.caller.dtmf_packets, 1);
        assert_eq!(report.caller.lost, 0);
        assert_eq!(report.agent.packets, 25);
        assert_eq!(report.agent.rtcp_packets, 1);
        let info = report.recording.unwrap().unwrap();
        assert!(info.duration_ms >= 500, "{info:?}");
        let mut r = hound::WavReader::open(report.recording_path.unwrap()).unwrap();
        let s: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        let l: Vec<i16> = s.iter().step_by(2).copied().collect();
        let rt: Vec<i16> = s.iter().skip(1).step_by(2).copied().collect();
        let lv = Codec::Pcmu.decode(encode_ulaw(4000));
        let rv = Codec::Pcmu.decode(encode_ulaw(-2000));
        assert_eq!(l.iter().filter(|&&x| x == lv).count(), 25 * 160);
        assert_eq!(rt.iter().filter(|&&x| x == rv).count(), 25 * 160);
    }

    #[tokio::test]
    async fn dead_media_ends_the_relay_and_returns_the_ports() {
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        let pool = PortPool::new(42100..=42199).unwrap();
        let caller = LegSockets::bind(&pool, localhost).await.unwrap();
        let agent = LegSockets::bind(&pool, localhost).await.unwrap();
        let cfg = RelayConfig {
            dead_media_after: Duration::from_millis(300),
            ..RelayConfig::default()
        };
        let session = MediaSession::new(cfg, Instant::now());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _handle = spawn_relay("call-1", caller, agent, session, None, tx);
        let (key, report) = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key, "call-1");
        match report.reason {
            EndReason::DeadMedia(d) => assert!(d.silent_for >= Duration::from_millis(300)),
            r => panic!("{r:?}"),
        }
        assert!(report.recording.is_none());
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_relay() {
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        let pool = PortPool::new(42200..=42299).unwrap();
        let caller = LegSockets::bind(&pool, localhost).await.unwrap();
        let agent = LegSockets::bind(&pool, localhost).await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = spawn_relay(
            (),
            caller,
            agent,
            MediaSession::new(RelayConfig::default(), Instant::now()),
            None,
            tx,
        );
        drop(handle);
        let ((), report) = rx.recv().await.unwrap();
        assert_eq!(report.reason, EndReason::Stopped);
        assert_eq!(pool.in_use(), 0);
    }
}
