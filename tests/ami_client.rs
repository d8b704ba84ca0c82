//! The AMI client against a test AMI server on loopback that replays the
//! recorded transcripts (`tests/fixtures/ami/*/*.timeline.jsonl`): real
//! bytes, in recorded order, with the recorded delays scaled down. The
//! server rewrites the recorded Login ActionID to the client's, answers the
//! client's own `CoreShowChannels` (in stream order), `Ping`, `Logoff` and
//! actions, and can cut the connection after any row.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Db, TestDb, settings_for};
use pbx_bridge::ami::{AmiTuning, Backoff};
use pbx_bridge::app::App;
use pbx_bridge::service::Service;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Recorded delays are multiplied by this (b lasts 7 s recorded).
const TIME_SCALE: f64 = 0.02;

// --- the recorded timelines -------------------------------------------------

#[derive(Clone)]
struct Row {
    t: f64,
    incoming: bool,
    data: String,
}

fn timeline(prefix: &str) -> Vec<Row> {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ami");
    for dir in std::fs::read_dir(&base).expect("fixtures") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).expect("scenario") {
            let f = f.expect("entry").path();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with(prefix)
                && name.ends_with(".timeline.jsonl")
                && !name.contains(".observer.")
            {
                let text = std::fs::read_to_string(&f).expect("timeline");
                return text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| {
                        let v: Value = serde_json::from_str(l).expect("row");
                        Row {
                            t: v["t"].as_f64().unwrap(),
                            incoming: v["dir"] == "in",
                            data: v["data"].as_str().unwrap().to_owned(),
                        }
                    })
                    .collect();
            }
        }
    }
    panic!("no timeline {prefix}*");
}

fn header<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// --- the test AMI server ----------------------------------------------------

#[derive(Clone)]
enum Plan {
    /// Replay a timeline; close the connection after row `cut` if given.
    Replay { rows: Vec<Row>, cut: Option<usize> },
    /// Banner, accept any login, empty channel list, then idle.
    Idle,
    /// Replay a timeline, stopping after row `hold` until the client sends
    /// a `Hangup` action (answered Success), then replay the rest.
    HoldForHangup { rows: Vec<Row>, hold: usize },
}

#[derive(Clone, Default)]
struct FakeLog {
    connections: Arc<AtomicUsize>,
    /// Every action the client sent (its text), in order.
    actions: Arc<Mutex<Vec<String>>>,
}

impl FakeLog {
    fn actions_named(&self, name: &str) -> Vec<String> {
        self.actions
            .lock()
            .unwrap()
            .iter()
            .filter(|a| header(a, "Action") == Some(name))
            .cloned()
            .collect()
    }
}

async fn fake_ami(plans: Vec<Plan>) -> (u16, FakeLog) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = FakeLog::default();
    let l = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let n = l.connections.fetch_add(1, Ordering::SeqCst);
            let plan = plans.get(n).or(plans.last()).cloned().unwrap_or(Plan::Idle);
            tokio::spawn(serve(stream, plan, l.clone()));
        }
    });
    (port, log)
}

/// One connection: a reader answers what it can and hands Login and
/// CoreShowChannels to the script, which answers them in stream order.
async fn serve(stream: TcpStream, plan: Plan, log: FakeLog) {
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Option<String>>();
    let (ordered_tx, mut ordered_rx) = mpsc::unbounded_channel::<(String, String)>();
    // Writer: `None` closes our side.
    tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            match msg {
                Some(s) => {
                    if wr.write_all(s.as_bytes()).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = wr.shutdown().await;
                    return;
                }
            }
        }
    });
    let out = out_tx.clone();
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let block = String::from_utf8_lossy(&buf[..end + 4]).to_string();
                buf.drain(..end + 4);
                log.actions.lock().unwrap().push(block.clone());
                let id = header(&block, "ActionID").unwrap_or_default().to_owned();
                match header(&block, "Action").unwrap_or_default() {
                    "Login" | "CoreShowChannels" => {
                        let name = header(&block, "Action").unwrap().to_owned();
                        let _ = ordered_tx.send((name, id));
                    }
                    "Ping" => {
                        let _ = out.send(Some(format!(
                            "Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1795295209.000000\r\n\r\n"
                        )));
                    }
                    "Logoff" => {
                        let _ = out.send(Some(format!(
                            "Response: Goodbye\r\nActionID: {id}\r\nMessage: Thanks for all the fish.\r\n\r\n"
                        )));
                        let _ = out.send(None);
                    }
                    "Originate" => {
                        let _ = out.send(Some(format!(
                            "Response: Success\r\nActionID: {id}\r\nMessage: Originate successfully queued\r\n\r\n"
                        )));
                    }
                    "Redirect" => {
                        let _ = out.send(Some(format!(
                            "Response: Success\r\nActionID: {id}\r\nMessage: Redirect successful\r\n\r\n"
                        )));
                    }
                    "Hangup" => {
                        let _ = out.send(Some(format!(
                            "Response: Success\r\nActionID: {id}\r\nMessage: Channel Hungup\r\n\r\n"
                        )));
                        let _ = ordered_tx.send(("Hangup".into(), id));
                    }
                    _ => {
                        let _ = out.send(Some(format!(
                            "Response: Error\r\nActionID: {id}\r\nMessage: Invalid/unknown command\r\n\r\n"
                        )));
                    }
                }
            }
        }
    });
    let empty_list = |id: &str| {
        format!(
            "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n\
Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
        )
    };
    let (plan, hold) = match plan {
        Plan::HoldForHangup { rows, hold } => (Plan::Replay { rows, cut: None }, Some(hold)),
        p => (p, None),
    };
    match plan {
        Plan::HoldForHangup { .. } => unreachable!("made a replay above"),
        Plan::Idle => {
            let _ = out_tx.send(Some("Asterisk Call Manager/11.0.0\r\n".into()));
            let Ok(Some(id)) = wait_for(&mut ordered_rx, "Login").await else {
                return;
            };
            let _ = out_tx.send(Some(format!(
                "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
            )));
            if let Ok(Some(id)) = wait_for(&mut ordered_rx, "CoreShowChannels").await {
                let _ = out_tx.send(Some(empty_list(&id)));
            }
        }
        Plan::Replay { rows, cut } => {
            let recorded_login = rows
                .iter()
                .find(|r| !r.incoming && header(&r.data, "Action") == Some("Login"))
                .and_then(|r| header(&r.data, "ActionID"))
                .unwrap_or_default()
                .to_owned();
            let mut client_login = String::new();
            let mut prev_t = 0.0;
            for (i, row) in rows.iter().enumerate() {
                if !row.incoming {
                    match header(&row.data, "Action") {
                        Some("Login") => match wait_for(&mut ordered_rx, "Login").await {
                            Ok(Some(id)) => client_login = id,
                            _ => return,
                        },
                        Some("Logoff") => break,
                        _ => {}
                    }
                    continue;
                }
                let delay = ((row.t - prev_t) * TIME_SCALE).max(0.0);
                prev_t = row.t;
                if delay > 0.0 {
                    tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                }
                if row.data.is_empty() {
                    let _ = out_tx.send(None);
                    break;
                }
                let data = if recorded_login.is_empty() {
                    row.data.clone()
                } else {
                    row.data.replace(&recorded_login, &client_login)
                };
                let login_ok = !client_login.is_empty()
                    && header(&data, "ActionID") == Some(client_login.as_str())
                    && header(&data, "Response") == Some("Success");
                let _ = out_tx.send(Some(data));
                if login_ok
                    && let Ok(Some(id)) = wait_for(&mut ordered_rx, "CoreShowChannels").await
                {
                    let _ = out_tx.send(Some(empty_list(&id)));
                }
                if cut == Some(i) {
                    let _ = out_tx.send(None);
                    reader.abort();
                    return;
                }
                if hold == Some(i) {
                    let hung_up = tokio::time::timeout(Duration::from_secs(20), async {
                        while let Some((n, _)) = ordered_rx.recv().await {
                            if n == "Hangup" {
                                return true;
                            }
                        }
                        false
                    });
                    if !matches!(hung_up.await, Ok(true)) {
                        return;
                    }
                }
            }
        }
    }
    // Stay up answering Ping/Logoff until the client goes.
    let _ = reader.await;
}

/// The next `name` action the script must answer, skipping others.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<(String, String)>,
    name: &'static str,
) -> Result<Option<String>, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(5), async move {
        while let Some((n, id)) = rx.recv().await {
            if n == name {
                return Some(id);
            }
        }
        None
    })
    .await
}

// --- the service under test -------------------------------------------------

struct Bridge {
    app: App,
    base: String,
    client: reqwest::Client,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _db: TestDb,
}

fn fast_tuning() -> AmiTuning {
    AmiTuning {
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
            jitter: 0.0,
        },
        ping_interval: Duration::from_secs(5),
        ping_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        login_timeout: Duration::from_secs(2),
        action_timeout: Duration::from_secs(2),
        resync_timeout: Duration::from_secs(2),
        stable_after: Duration::from_secs(30),
        directory_refresh: Duration::from_secs(30),
        // The recorded transcripts come from a PBX whose `bridge` endpoint
        // was a customer's trunk (context `from-bridge`), not this bridge:
        // with it as the bridge, their calls would be the bridge's own.
        bridge_endpoints: Vec::new(),
        ..AmiTuning::default()
    }
}

impl Bridge {
    async fn start(db: Db, tuning: AmiTuning) -> Self {
        let db = TestDb::new(db).await;
        let service = Service::start(settings_for(&db)).await.expect("starts");
        service.app().ami().set_tuning(tuning);
        let app = service.app().clone();
        let base = format!("http://{}/api/v1", service.http_addr());
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(service.serve(rx));
        Bridge {
            app,
            base,
            client: reqwest::Client::new(),
            stop,
            task,
            _db: db,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(common::ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn create(&self, path: &str, body: Value) -> i64 {
        let (s, v) = self.post(path, body).await;
        assert_eq!(s, StatusCode::CREATED, "{path}: {v}");
        v["id"].as_i64().unwrap()
    }

    /// Extensions 1001/1002, agent Bia on 1002, department 701.
    async fn numbering_plan(&self, close_on_hangup: bool) -> (i64, i64) {
        self.create(
            "/extensions",
            json!({"number": "1001", "display_name": "Ana", "secret": "a-long-secret-1"}),
        )
        .await;
        let e2 = self
            .create(
                "/extensions",
                json!({"number": "1002", "display_name": "Bia", "secret": "a-long-secret-2"}),
            )
            .await;
        let dept = self
            .create(
                "/departments",
                json!({"name": "Suporte", "pabx_code": 701, "close_on_hangup": close_on_hangup}),
            )
            .await;
        let agent = self
            .create("/agents", json!({"name": "Bia", "extension_id": e2, "departments": [{"department_id": dept}]}))
            .await;
        (dept, agent)
    }

    async fn enable_pbx(&self, port: u16, secret: &str) {
        let (s, v) = self
            .call(
                reqwest::Method::PUT,
                "/pbx",
                Some(
                    json!({"ami_host": "127.0.0.1", "ami_port": port, "ami_username": "bridge",
                            "ami_secret": secret, "sip_host": "127.0.0.1", "enabled": true}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    async fn attendances(&self) -> Vec<Value> {
        let (s, v) = self.get("/attendances").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `pred` holds for the attendance list.
    async fn wait_attendances(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let items = self.attendances().await;
            if pred(&items) {
                return items;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}: {items:#?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_state(&self, state: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (s, v) = self.get("/pbx/status").await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if v["state"] == state {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for state {state}: {v}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("stops")
            .expect("task")
            .expect("clean exit");
    }
}

fn closed(items: &[Value]) -> bool {
    items.len() == 1 && items[0]["status"] == "closed"
}

macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(Db::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)(Db::Postgres).await;
            }
        }
    };
}

// --- the tests --------------------------------------------------------------

both!(
    scenario_b_one_attendance_answered_by_1002_closed_on_hangup,
    |db| async move {
        let bridge = Bridge::start(db, fast_tuning()).await;
        let (dept, agent) = bridge.numbering_plan(true).await;
        let (s, v) = bridge.get("/pbx/status").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["enabled"], false, "{v}");
        let (port, log) = fake_ami(vec![Plan::Replay {
            rows: timeline("b-"),
            cut: None,
        }])
        .await;
        bridge.enable_pbx(port, "bridge-secret").await;
        let items = bridge.wait_attendances("b closed", closed).await;
        let a = &items[0];
        assert_eq!(a["source"], "ami", "{a}");
        assert_eq!(a["direction"], "inbound");
        assert_eq!(a["caller"], "+4930123456");
        assert_eq!(a["callee"], "701");
        assert_eq!(a["department_id"], dept);
        assert_eq!(a["agent_id"], agent);
        assert_eq!(a["close_reason"], "caller_hangup");
        assert!(
            a["answered_at"].is_string() && a["ended_at"].is_string(),
            "{a}"
        );
        assert_eq!(
            a["recording_remote_path"],
            "/var/spool/asterisk/monitor/dept701-1795295209.0.wav"
        );
        assert_eq!(
            a["recording"],
            Value::Null,
            "a PBX file is not our recording"
        );

        let status = bridge.wait_state("connected").await;
        assert_eq!(status["connected"], true);
        assert_eq!(status["last_error"], Value::Null);
        let ready: Value = reqwest::get(bridge.base.replace("/api/v1", "/readyz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["ami"], "connected", "{ready}");
        assert_eq!(log.connections.load(Ordering::SeqCst), 1);
        assert!(
            bridge.app.ami().events_received() >= 99,
            "every event of b reached the tracker"
        );
        assert_eq!(log.actions_named("Login").len(), 1);
        assert_eq!(log.actions_named("CoreShowChannels").len(), 1);
        let login = &log.actions_named("Login")[0];
        assert_eq!(header(login, "Username"), Some("bridge"));
        bridge.stop().await;
        // Shutdown logs off.
        assert_eq!(log.actions_named("Logoff").len(), 1);
    }
);

both!(
    scenario_b_stays_in_progress_when_the_department_keeps_it_open,
    |db| async move {
        let bridge = Bridge::start(db, fast_tuning()).await;
        bridge.numbering_plan(false).await;
        let (port, _log) = fake_ami(vec![Plan::Replay {
            rows: timeline("b-"),
            cut: None,
        }])
        .await;
        bridge.enable_pbx(port, "bridge-secret").await;
        let items = bridge
            .wait_attendances("b ended", |i| i.len() == 1 && i[0]["ended_at"].is_string())
            .await;
        assert_eq!(items[0]["status"], "in_progress", "{}", items[0]);
        assert_eq!(items[0]["close_reason"], Value::Null);
        bridge.stop().await;
    }
);

both!(scenario_d_originate_is_one_internal_call, |db| async move {
    let bridge = Bridge::start(db, fast_tuning()).await;
    let (_, agent) = bridge.numbering_plan(true).await;
    let (port, _log) = fake_ami(vec![Plan::Replay {
        rows: timeline("d-"),
        cut: None,
    }])
    .await;
    bridge.enable_pbx(port, "bridge-secret").await;
    let items = bridge.wait_attendances("d closed", closed).await;
    let a = &items[0];
    assert_eq!(a["source"], "ami");
    assert_eq!(a["direction"], "internal");
    assert_eq!(a["caller"], "1001");
    assert_eq!(a["callee"], "1002");
    assert_eq!(a["department_id"], Value::Null);
    assert_eq!(a["agent_id"], agent, "answered by 1002: {a}");
    assert_eq!(a["close_reason"], "caller_hangup", "1001 hung up: {a}");
    bridge.stop().await;
});

both!(
    scenarios_g_and_g2_unanswered_calls_close_at_once,
    |db| async move {
        for (prefix, callee, reason) in [("g-", "1002", "no_answer"), ("g2-", "1001", "rejected")] {
            let bridge = Bridge::start(db, fast_tuning()).await;
            // The department keeps answered calls open; unanswered ones close.
            bridge.numbering_plan(false).await;
            let (port, _log) = fake_ami(vec![Plan::Replay {
                rows: timeline(prefix),
                cut: None,
            }])
            .await;
            bridge.enable_pbx(port, "bridge-secret").await;
            let items = bridge.wait_attendances(prefix, closed).await;
            let a = &items[0];
            assert_eq!(a["direction"], "inbound", "{prefix}");
            assert_eq!(a["callee"], callee, "{prefix}");
            assert_eq!(a["answered_at"], Value::Null, "{prefix}");
            assert_eq!(a["agent_id"], Value::Null, "{prefix}");
            assert_eq!(a["close_reason"], reason, "{prefix}");
            bridge.stop().await;
        }
    }
);

both!(
    cut_mid_call_reconnects_resyncs_and_ends_the_call_once,
    |db| async move {
        let bridge = Bridge::start(db, fast_tuning()).await;
        let (_, agent) = bridge.numbering_plan(true).await;
        let rows = timeline("b-");
        let cut = rows
            .iter()
            .position(|r| r.incoming && r.data.contains("Event: BridgeEnter"))
            .expect("b has a BridgeEnter");
        let (port, log) = fake_ami(vec![
            Plan::Replay {
                rows: rows.clone(),
                cut: Some(cut),
            },
            Plan::Idle,
        ])
        .await;
        bridge.enable_pbx(port, "bridge-secret").await;
        let items = bridge
            .wait_attendances("b closed after the re-sync", closed)
            .await;
        let a = &items[0];
        assert_eq!(a["agent_id"], agent, "answered before the cut: {a}");
        assert_eq!(
            a["close_reason"], "failed",
            "ended unseen while disconnected: {a}"
        );
        assert!(a["ended_at"].is_string());
        assert_eq!(log.connections.load(Ordering::SeqCst), 2);
        assert_eq!(
            log.actions_named("CoreShowChannels").len(),
            2,
            "re-read after the reconnect"
        );
        let status = bridge.wait_state("connected").await;
        assert!(status["logins"].as_u64().unwrap() >= 2, "{status}");
        // Nothing else opens, nothing ends twice.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = bridge.attendances().await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0], *a);
        bridge.stop().await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_is_reported_and_not_retried_in_a_storm() {
    let mut tuning = fast_tuning();
    tuning.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(700),
        jitter: 0.0,
    };
    let bridge = Bridge::start(Db::Sqlite, tuning).await;
    let (port, log) = fake_ami(vec![Plan::Replay {
        rows: timeline("f-"),
        cut: None,
    }])
    .await;
    bridge.enable_pbx(port, "wrong-secret").await;
    let status = bridge.wait_state("auth_failed").await;
    assert_eq!(status["last_error"], "Authentication failed", "{status}");
    assert_eq!(status["connected"], false);
    assert!(status["retry_at"].is_string(), "{status}");
    let login = &log.actions_named("Login")[0];
    assert_eq!(header(login, "Secret"), Some("wrong-secret"));
    let start = log.connections.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let during = log.connections.load(Ordering::SeqCst) - start;
    // Every retry waits the full cap (0.7 s): about 3 in 2.2 s, not dozens.
    assert!((1..=4).contains(&during), "{during} connections in 2.2 s");
    assert_eq!(bridge.get("/pbx/status").await.1["state"], "auth_failed");
    let ready: Value = reqwest::get(bridge.base.replace("/api/v1", "/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ami"], "auth_failed", "{ready}");
    // Enabled but not logged in: Asterisk's calls are unknown, so a
    // hang-up of a call that is not the bridge's cannot be answered 404.
    let (s, v) = bridge
        .call(reqwest::Method::DELETE, "/calls/20261207000001", None)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let (_, v) = bridge.get("/calls").await;
    assert_eq!(v["items"], json!([]), "{v}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_pbx_logs_off_and_stays_idle() {
    let bridge = Bridge::start(Db::Sqlite, fast_tuning()).await;
    let (port, log) = fake_ami(vec![Plan::Idle]).await;
    bridge.enable_pbx(port, "bridge-secret").await;
    bridge.wait_state("connected").await;
    let (s, v) = bridge
        .call(
            reqwest::Method::PATCH,
            "/pbx",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = bridge.wait_state("disconnected").await;
        if status["enabled"] == false {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(log.connections.load(Ordering::SeqCst), 1);
    assert_eq!(log.actions_named("Logoff").len(), 1);
    // Actions need a connected PBX.
    let (s, v) = bridge
        .post("/calls", json!({"from_extension": "1001", "to": "1002"}))
        .await;
    assert!(
        s == StatusCode::SERVICE_UNAVAILABLE || s == StatusCode::UNPROCESSABLE_ENTITY,
        "{s} {v}"
    );
    bridge.stop().await;
}

both!(click_to_call_and_transfer_through_ami, |db| async move {
    let bridge = Bridge::start(db, fast_tuning()).await;
    let (dept, _) = bridge.numbering_plan(false).await;
    // Before the PBX is enabled, an extension registered nowhere: 422.
    let (s, v) = bridge
        .post("/calls", json!({"from_extension": "1001", "to": "1002"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("not registered"), "{v}");
    // Replay b up to the moment both legs are bridged, then stay connected.
    let rows = timeline("b-");
    let cut = rows
        .iter()
        .position(|r| r.incoming && r.data.contains("Event: BridgeEnter"))
        .unwrap();
    let live: Vec<Row> = rows[..=cut].to_vec();
    let (port, log) = fake_ami(vec![Plan::Replay {
        rows: live,
        cut: None,
    }])
    .await;
    bridge.enable_pbx(port, "bridge-secret").await;
    let items = bridge
        .wait_attendances("b answered", |i| {
            i.len() == 1 && i[0]["status"] == "in_progress"
        })
        .await;
    let protocol = items[0]["protocol"].as_str().unwrap().to_owned();

    // 422 names the fields.
    let (s, v) = bridge
        .post("/calls", json!({"from_extension": "", "to": "abc"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"from_extension") && fields.contains(&"to"),
        "{v}"
    );
    let (s, v) = bridge
        .post(
            "/calls",
            json!({"from_extension": "1001", "to": "+5511999990000"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The attendance is opened first; its protocol rides on the Originate.
    let c2c = v["protocol"].as_str().expect("the attendance").to_owned();
    assert_eq!(v["source"], "ami", "{v}");
    assert_eq!(v["status"], "ringing", "{v}");
    assert_eq!(v["direction"], "outbound", "{v}");
    let originate = &log.actions_named("Originate")[0];
    assert_eq!(header(originate, "Channel"), Some("PJSIP/1001"));
    assert_eq!(header(originate, "Exten"), Some("+5511999990000"));
    assert_eq!(header(originate, "Context"), Some("pbx-bridge-ext-1001"));
    assert_eq!(header(originate, "Async"), Some("true"));
    assert_eq!(
        header(originate, "Variable"),
        Some(format!("__PBX_BRIDGE_PROTOCOL={c2c}").as_str()),
        "inheritable: the leg Asterisk dials to the bridge carries it"
    );
    let caller_id = header(originate, "CallerID").unwrap_or_default();
    assert_eq!(caller_id, "\"Ana\" <1001>", "the callee sees the agent");

    // Transfer the customer's channel to department 701.
    let (s, v) = bridge
        .post(
            &format!("/calls/{protocol}/transfer"),
            json!({"target": "799"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unknown code: {v}");
    let (s, v) = bridge
        .post(
            &format!("/calls/{protocol}/transfer"),
            json!({"target": "701"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The attendance rides on the channel first (inheritable), so that a
    // department on the bridge continues it (X-Protocol).
    let setvar = &log.actions_named("Setvar")[0];
    assert_eq!(header(setvar, "Channel"), Some("PJSIP/bridge-00000000"));
    assert_eq!(header(setvar, "Variable"), Some("__PBX_BRIDGE_PROTOCOL"));
    assert_eq!(header(setvar, "Value"), Some(protocol.as_str()));
    let redirect = &log.actions_named("Redirect")[0];
    assert_eq!(header(redirect, "Channel"), Some("PJSIP/bridge-00000000"));
    assert_eq!(header(redirect, "Exten"), Some("701"));
    assert_eq!(header(redirect, "Priority"), Some("1"));
    assert_eq!(header(redirect, "Context"), Some("pbx-bridge-departments"));
    let (_, a) = bridge.get(&format!("/attendances/{protocol}")).await;
    assert_eq!(a["transfers"].as_array().unwrap().len(), 1, "{a}");
    assert_eq!(a["transfers"][0]["target"], "701");
    assert_eq!(a["transfers"][0]["department_id"], dept);
    let (s, _) = bridge
        .post("/calls/20991231000001/transfer", json!({"target": "701"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    bridge.stop().await;
});

both!(
    a_call_that_goes_to_the_bridge_loses_its_ami_attendance,
    |db| async move {
        use pbx_bridge::ami::follow::{Applied, Follower};
        use pbx_bridge::ami::tracker::{CallDecision, Direction};
        let bridge = Bridge::start(db, fast_tuning()).await;
        let plan = bridge.app.numbering_plan_watch();
        let before = *plan.borrow();
        bridge.numbering_plan(true).await;
        // Every API change of the plan is signalled to the AMI client.
        assert!(*plan.borrow() > before);
        let mut f = Follower::new(bridge.app.store().clone(), chrono_tz::UTC);
        f.set_directory(bridge.app.store().call_directory().await.unwrap());
        let opened = |l: &str| CallDecision::CallOpened {
            linkedid: l.into(),
            caller: "1001".into(),
            callee: "1002".into(),
            direction: Direction::Internal,
            department_code: None,
            opened_at: std::time::SystemTime::now(),
        };
        let to_bridge = |l: &str| CallDecision::CallToBridge { linkedid: l.into() };
        // Unanswered, then sent to the bridge: withdrawn.
        let applied = f.apply_batch(&[opened("9.1")]).await.expect("open");
        let Applied::Opened(p1) = &applied[0] else {
            panic!("{applied:?}")
        };
        assert_eq!(bridge.attendances().await.len(), 1);
        let applied = f.apply(&to_bridge("9.1")).await.expect("withdraw");
        assert_eq!(applied, Applied::Withdrawn(Some(p1.clone())));
        assert!(bridge.attendances().await.is_empty());
        // Answered by the dialplan (no agent): withdrawn as well.
        let applied = f
            .apply_batch(&[
                opened("9.3"),
                CallDecision::CallAnswered {
                    linkedid: "9.3".into(),
                    agent_extension: None,
                    at: std::time::SystemTime::now(),
                },
                to_bridge("9.3"),
            ])
            .await
            .expect("batch");
        assert!(
            matches!(&applied[2], Applied::Withdrawn(Some(_))),
            "{applied:?}"
        );
        assert!(bridge.attendances().await.is_empty());
        // An agent attends it: kept (one batch, one transaction).
        let applied = f
            .apply_batch(&[
                opened("9.2"),
                CallDecision::CallAnswered {
                    linkedid: "9.2".into(),
                    agent_extension: Some("1002".into()),
                    at: std::time::SystemTime::now(),
                },
                to_bridge("9.2"),
            ])
            .await
            .expect("batch");
        assert_eq!(applied[2], Applied::Withdrawn(None), "{applied:?}");
        let items = bridge.attendances().await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["status"], "in_progress");
        bridge.stop().await;
    }
);

/// The calls Asterisk carries in `GET`/`DELETE /calls` (its own file: this
/// one is long enough).
#[path = "ami_client/live_calls.rs"]
mod live_calls;
