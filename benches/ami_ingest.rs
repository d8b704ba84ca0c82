//! AMI event ingestion benchmark (a benchmark, not a test):
//!
//! 1. the pure receive path: codec + tracker over scenario b's bytes;
//! 2. the client: a loopback AMI server (its own thread) streams scenario b
//!    again and again (each pass with fresh Uniqueids/Linkedids) into the
//!    real client + follower writing attendances to SQLite in a temp dir,
//!    on a current-thread runtime (one core). Prints events/s (blasting)
//!    and the p99 latency from bytes received to attendance updated
//!    (paced, one call every few ms, so queueing does not dominate).
//!
//! Run: `cargo bench --bench ami_ingest` (`-- --calls N` to change size).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use pbx_bridge::ami::replay::{packets, pump, strip_banner};
use pbx_bridge::ami::{AmiTuning, TrackerConfig};
use pbx_bridge::app::App;
use pbx_bridge::config::{RawSettings, resolve};
use pbx_bridge::domain::PbxInput;
use pbx_bridge::store::Store;

const B: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/ami/b-ringall-701-answered-by-1002/b-ringall-701-answered-by-1002.ami.in"
);
const ID: &str = "1795295209.";

fn main() {
    let calls: usize = std::env::args()
        .skip_while(|a| a != "--calls")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let transcript = std::fs::read(B).expect("scenario b");
    let events: Vec<String> = packets(&transcript)
        .into_iter()
        .filter(|p| p.event_name().is_some())
        .map(|p| p.to_string())
        .collect();
    let per_call = events.len();
    let body = events.concat();

    // 1. codec + tracker only.
    let cfg = TrackerConfig::new()
        .inbound_context("from-bridge")
        .trunk("bridge")
        .extension("1001")
        .extension("1002")
        .department("701");
    let raw = strip_banner(&transcript);
    let passes = 20_000;
    let t = Instant::now();
    let stats = pump(raw, passes, 4096, &cfg);
    let dt = t.elapsed();
    println!(
        "codec+tracker: {} events in {:.3} s = {:.0} events/s ({} decisions)",
        stats.events,
        dt.as_secs_f64(),
        stats.events as f64 / dt.as_secs_f64(),
        stats.decisions
    );

    // 2. client + follower + SQLite over loopback.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(client_bench(&body, per_call, calls));
}

/// The loopback AMI server: login, empty re-sync, then the script of
/// `(bytes, pause_after)` pieces sent by the bench through `rx`.
fn server(listener: TcpListener, rx: std_mpsc::Receiver<(Vec<u8>, Duration)>) {
    let (mut stream, _) = listener.accept().expect("client connects");
    stream.set_nodelay(true).ok();
    stream
        .write_all(b"Asterisk Call Manager/11.0.0\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut id_of = |action: &str| -> String {
        let mut id = String::new();
        let mut name = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return id;
            }
            let l = line.trim_end();
            if l.is_empty() {
                if name == action {
                    return id;
                }
                continue;
            }
            if let Some(v) = l.strip_prefix("ActionID: ") {
                id = v.to_owned();
            }
            if let Some(v) = l.strip_prefix("Action: ") {
                name = v.to_owned();
            }
        }
    };
    let login = id_of("Login");
    write!(
        stream,
        "Response: Success\r\nActionID: {login}\r\nMessage: Authentication accepted\r\n\r\n"
    )
    .unwrap();
    let csc = id_of("CoreShowChannels");
    write!(stream, "Response: Success\r\nActionID: {csc}\r\nEventList: start\r\n\r\nEvent: CoreShowChannelsComplete\r\nActionID: {csc}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n").unwrap();
    // Drain whatever else the client sends (Ping) in the background.
    let mut sink = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while matches!(sink.read(&mut buf), Ok(n) if n > 0) {}
    });
    while let Ok((bytes, pause)) = rx.recv() {
        if stream.write_all(&bytes).is_err() {
            return;
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

fn pass_bytes(body: &str, n: usize) -> Vec<u8> {
    body.replace(ID, &format!("{}.", 1_000_000 + n))
        .into_bytes()
}

async fn client_bench(body: &str, per_call: usize, calls: usize) {
    let dir = tempfile::tempdir().unwrap();
    let raw = RawSettings {
        database_url: Some(format!(
            "sqlite://{}/bench.db?mode=rwc",
            dir.path().display()
        )),
        data_dir: Some(dir.path().join("data").display().to_string()),
        recordings_dir: Some(dir.path().join("rec").display().to_string()),
        ..Default::default()
    };
    let settings = resolve(&raw).expect("settings");
    let store = Store::connect(&settings.database_url).await.expect("store");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    store
        .put_pbx(&PbxInput {
            ami_host: "127.0.0.1".into(),
            ami_port: port,
            ami_username: "bridge".into(),
            ami_secret: Some("bridge-secret".into()),
            sip_host: "127.0.0.1".into(),
            sip_port: 5060,
            enabled: true,
        })
        .await
        .expect("pbx");
    let ledger = pbx_bridge::ledger::Ledger::start(
        store.clone(),
        pbx_bridge::ledger::LedgerConfig::new(
            settings.data_dir.join("journal"),
            settings.node_id.clone(),
            settings.time_zone,
        ),
    )
    .await
    .expect("ledger");
    let app = App::new(store, ledger, settings, None);
    app.ami().set_tuning(AmiTuning {
        record_latencies: true,
        ping_interval: Duration::from_secs(3600),
        // The recorded PBX's `bridge` endpoint is a customer's trunk, not
        // this bridge (whose calls would be its own, never followed).
        bridge_endpoints: Vec::new(),
        ..AmiTuning::default()
    });
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || server(listener, rx));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let client = tokio::spawn(pbx_bridge::ami::client::run(
        pbx_bridge::service::ami_handles(&app),
        stop_rx,
    ));
    let handle = app.ami().clone();
    while !handle.status().connected {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Throughput: every pass at once.
    let decisions_per_call = 4;
    let t = Instant::now();
    for n in 0..calls {
        tx.send((pass_bytes(body, n), Duration::ZERO)).unwrap();
    }
    let want_events = (calls * per_call) as u64;
    let want = (calls * decisions_per_call) as u64;
    let mut events_done = None;
    while handle.decisions_applied() < want {
        if events_done.is_none() && handle.events_received() >= want_events {
            events_done = Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let all = t.elapsed();
    let ev = events_done.unwrap_or(all);
    println!(
        "client (loopback → session → tracker): {} events in {:.3} s = {:.0} events/s",
        want_events,
        ev.as_secs_f64(),
        want_events as f64 / ev.as_secs_f64()
    );
    println!(
        "client + follower (attendances in SQLite): {} calls, {} events in {:.3} s = {:.0} events/s, {:.0} calls/s",
        calls,
        want_events,
        all.as_secs_f64(),
        want_events as f64 / all.as_secs_f64(),
        calls as f64 / all.as_secs_f64()
    );
    handle.take_latencies();

    // Latency: one call every 5 ms.
    let paced = calls.min(400);
    let before = handle.decisions_applied();
    for n in 0..paced {
        tx.send((pass_bytes(body, calls + n), Duration::from_millis(5)))
            .unwrap();
    }
    while handle.decisions_applied() < before + (paced * decisions_per_call) as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut lat = handle.take_latencies();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "latency bytes received → attendance updated ({} batches, one call per 5 ms): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        lat.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3
    );
    let _ = stop.send(true);
    let _ = client.await;
}
