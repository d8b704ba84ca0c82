//! The `pbx-bridge` binary as an operator runs it: first start prints the
//! admin token once, data survives a restart, SIGTERM exits 0, SIGKILL in
//! the middle of writes leaves a consistent database, bad settings stop the
//! start with one line naming the setting.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    child: Child,
    port: u16,
    stdout: std::sync::mpsc::Receiver<String>,
}

impl Running {
    /// The first stdout line containing `needle` within `wait` (the port
    /// opens before the first start prints its token).
    fn stdout_line(&self, needle: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Running {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pbx-bridge"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PBX_BRIDGE_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("PBX_BRIDGE_SIP_LISTEN", "127.0.0.1:0")
        .env("PBX_BRIDGE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn pbx-bridge");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Running {
                child,
                port,
                stdout: rx,
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("pbx-bridge exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("pbx-bridge did not listen in time");
}

fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "did not exit in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn api(
    port: u16,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method, format!("http://127.0.0.1:{port}/api/v1{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn first_start_prints_token_once_and_data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path(), &[]);
    let line = first
        .stdout_line("admin token", Duration::from_secs(10))
        .expect("the first start prints the admin token");
    let token = line.rsplit(' ').next().unwrap().to_owned();
    assert!(token.starts_with("pbxb_"), "{line}");
    assert!(
        dir.path().join("data/pbx-bridge.db").exists(),
        "SQLite under ./data"
    );
    assert!(dir.path().join("recordings").is_dir());

    let (status, _) = api(
        first.port,
        &token,
        reqwest::Method::POST,
        "/extensions",
        Some(json!({"number": "1001", "secret": "s3cret-pass"})),
    )
    .await;
    assert_eq!(status, 201);
    sigterm(&first.child);
    let status = wait_exit(&mut first.child);
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");

    let second = start(dir.path(), &[]);
    assert!(
        second
            .stdout_line("admin token", Duration::from_secs(1))
            .is_none(),
        "the token is printed only once"
    );
    let (status, page) = api(
        second.port,
        &token,
        reqwest::Method::GET,
        "/extensions",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["number"], "1001");
    let mut second = second;
    sigterm(&second.child);
    assert_eq!(wait_exit(&mut second.child).code(), Some(0));
}

#[tokio::test]
async fn sigkill_during_writes_leaves_a_consistent_database() {
    let dir = tempfile::tempdir().unwrap();
    let token = "kill-test-admin-token-0123456789";
    for round in 0..3 {
        let mut run = start(dir.path(), &[("PBX_BRIDGE_ADMIN_TOKEN", token)]);
        let port = run.port;
        // Writers hammer the API while the process is killed under them.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    for i in 0..10_000 {
                        let body = json!({
                            "name": format!("agent {round}-{w}-{i}"),
                            "scopes": ["config:read"],
                        });
                        let sent = client
                            .post(format!("http://127.0.0.1:{port}/api/v1/tokens"))
                            .bearer_auth(token)
                            .json(&body)
                            .send()
                            .await;
                        if sent.is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        run.child.kill().unwrap(); // SIGKILL
        run.child.wait().unwrap();
        for w in writers {
            w.await.unwrap();
        }
    }
    // The database opens, passes SQLite's integrity check, and every row
    // is whole.
    let run = start(dir.path(), &[("PBX_BRIDGE_ADMIN_TOKEN", token)]);
    let mut cursor = String::new();
    let mut rows = 0;
    loop {
        let (status, page) = api(
            run.port,
            token,
            reqwest::Method::GET,
            &format!("/tokens?limit=500{cursor}"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        for t in page["items"].as_array().unwrap() {
            assert!(t["name"].is_string() && t["scopes"].is_array());
            rows += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert!(rows > 1, "some writes landed before the kills");
    let mut run = run;
    sigterm(&run.child);
    assert_eq!(wait_exit(&mut run.child).code(), Some(0));
    let url = format!("sqlite://{}/data/pbx-bridge.db", dir.path().display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn bad_settings_stop_the_start_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("PBX_BRIDGE_RTP_PORTS", "30000-20000"),
        ("PBX_BRIDGE_HTTP_LISTEN", "localhost"),
        ("PBX_BRIDGE_LOG_FORMAT", "xml"),
        ("PBX_BRIDGE_DATABASE_URL", "mysql://x"),
        ("PBX_BRIDGE_TIME_ZONE", "Mars/Base"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pbx-bridge"))
            .current_dir(dir.path())
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} must stop the start");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(var), "names {var}: {stderr}");
    }
}
