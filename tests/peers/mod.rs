//! End-to-end harness: the `pbx-bridge` binary as an operator runs it (a
//! temp SQLite, free loopback ports, an admin token from the environment),
//! driven through its admin API and by real, independent SIP user agents:
//! PJSUA2 (`tests/peers/ua.py`, one process per user agent, JSON lines on
//! stdout) and SIPp. `./scripts/test` installs both and sets
//! `PBX_BRIDGE_TEST_PYTHON` to the virtualenv's Python that has PJSUA2.
//!
//! Every packet stays on 127.0.0.1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef0123";
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A port free on 127.0.0.1 for both UDP and TCP (the SIP listener takes both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// The Python that has PJSUA2 (installed by `./scripts/test`).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("PBX_BRIDGE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(REPO).join("target/peers-venv/bin/python");
    assert!(
        venv.exists(),
        "PBX_BRIDGE_TEST_PYTHON is not set and {} is missing: run the tests with \
         ./scripts/test, which installs PJSUA2 (tests/peers)",
        venv.display()
    );
    venv
}

/// SIPp (Debian `sip-tester`, installed by `./scripts/test`).
pub fn sipp() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("sipp");
        if p.exists() {
            return p;
        }
    }
    panic!("sipp is not installed: run the tests with ./scripts/test (apt package sip-tester)");
}

/// The running service; killed (and its temp dir removed) on drop.
pub struct Service {
    child: Child,
    pub http_port: u16,
    pub sip: SocketAddr,
    pub dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Service {
    /// Starts the binary with a fresh SQLite and free ports, and waits until
    /// both the API and the SIP listener (OPTIONS over UDP) answer.
    pub async fn start(extra_env: &[(&str, &str)]) -> Service {
        let dir = tempfile::tempdir().expect("tempdir");
        let http_port = free_port();
        let sip_port = free_port();
        let sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pbx-bridge"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PBX_BRIDGE_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("PBX_BRIDGE_SIP_LISTEN", sip.to_string())
            .env("PBX_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PBX_BRIDGE_DATA_DIR", dir.path().join("data"))
            .env("PBX_BRIDGE_RECORDINGS_DIR", dir.path().join("recordings"))
            .env(
                "PBX_BRIDGE_DATABASE_URL",
                format!("sqlite://{}/e2e.db?mode=rwc", dir.path().display()),
            )
            .env("PBX_BRIDGE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn pbx-bridge");
        let mut svc = Service {
            child,
            http_port,
            sip,
            dir,
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = svc.child.try_wait() {
                panic!("pbx-bridge exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "pbx-bridge did not listen in time"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(resp) = sip_options(sip, Duration::from_millis(300)) {
                assert!(resp.status >= 200, "OPTIONS got {}", resp.status);
                break;
            }
            if let Ok(Some(status)) = svc.child.try_wait() {
                panic!("pbx-bridge exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the SIP listener on {sip} did not answer OPTIONS within 10 s"
            );
        }
        svc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(
                method,
                format!("http://127.0.0.1:{}/api/v1{path}", self.http_port),
            )
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("API request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("API body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn create_extension(&self, number: &str, secret: &str, algorithms: &[&str]) {
        let (status, body) = self
            .api(
                reqwest::Method::POST,
                "/extensions",
                Some(json!({"number": number, "secret": secret, "digest_algorithms": algorithms})),
            )
            .await;
        assert_eq!(status, 201, "create extension {number}: {body}");
    }

    /// `GET /api/v1/registrations`.
    pub async fn registrations(&self) -> Value {
        let (status, body) = self.api(reqwest::Method::GET, "/registrations", None).await;
        assert_eq!(status, 200, "GET /registrations: {body}");
        body
    }

    /// The bindings of one extension.
    pub async fn bindings_of(&self, extension: &str) -> Vec<Value> {
        let all = self.registrations().await;
        all["items"]
            .as_array()
            .unwrap_or_else(|| panic!("registrations without items: {all}"))
            .iter()
            .filter(|b| b["extension"] == extension)
            .cloned()
            .collect()
    }

    /// Polls until the extension has no binding left (or the timeout).
    pub async fn wait_no_binding(&self, extension: &str, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let b = self.bindings_of(extension).await;
            if b.is_empty() || Instant::now() >= deadline {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// utime + stime of the service process, in clock ticks (/proc/PID/stat).
    pub fn cpu_ticks(&self) -> u64 {
        proc_cpu_ticks(self.child.id())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

// --- PJSUA2 user agents ---------------------------------------------------

/// One `tests/peers/ua.py` process.
pub struct Ua {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    pub seen: Vec<Value>,
    stderr_path: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Ua {
    /// `ua.py <args…>`; PJSIP's log goes to a file shown when a check fails.
    pub fn spawn(args: &[&str]) -> Ua {
        let logdir = tempfile::tempdir().expect("tempdir");
        let stderr_path = logdir.path().join("ua.log");
        let stderr = std::fs::File::create(&stderr_path).expect("ua log");
        let script = Path::new(REPO).join("tests/peers/ua.py");
        let mut child = Command::new(python())
            .arg(&script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn tests/peers/ua.py");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v = serde_json::from_str::<Value>(&line)
                    .unwrap_or_else(|_| json!({"event": "unparsed", "line": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Ua {
            child,
            stdin,
            events: rx,
            seen: Vec::new(),
            stderr_path,
            _logdir: logdir,
        }
    }

    /// Runs `ua.py register` with the usual arguments plus `extra`.
    pub fn register(registrar: SocketAddr, user: &str, password: &str, extra: &[&str]) -> Ua {
        let reg = registrar.to_string();
        let mut args = vec![
            "register",
            "--registrar",
            &reg,
            "--user",
            user,
            "--password",
            password,
        ];
        args.extend_from_slice(extra);
        Ua::spawn(&args)
    }

    /// The next event named `name` (earlier ones are kept in `seen`).
    pub fn expect_event(&mut self, name: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v["event"] == name {
                        return v;
                    }
                    let terminal = v["event"] == "error"
                        || v["event"] == "exit"
                        || (v["event"] == "result" && v["ok"] == false);
                    if terminal {
                        self.fail(&format!("ua.py ended its run while waiting for {name:?}"));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no {name:?} event from ua.py within {timeout:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("ua.py ended before a {name:?} event"))
                }
            }
        }
    }

    /// Closes stdin: a UA holding `--until-stdin-eof` then finishes.
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the process to end and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Drain what is left for `seen`.
                while let Ok(v) = self.events.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(v);
                }
                return status.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                self.fail(&format!("ua.py did not exit within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The PJSIP log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Panics with the events seen and the tail of the PJSIP log.
    pub fn fail(&self, why: &str) -> ! {
        let log = self.log();
        let tail: String = log
            .lines()
            .rev()
            .take(120)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "{why}\nevents: {}\n--- PJSIP log (tail) ---\n{tail}",
            serde_json::to_string_pretty(&self.seen).unwrap()
        );
    }
}

impl Drop for Ua {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// --- raw SIP over UDP -------------------------------------------------------

/// A SIP response as far as the tests look at it.
#[derive(Debug, Clone)]
pub struct SipResponse {
    pub status: u16,
    pub call_id: Option<String>,
    pub cseq_method: Option<String>,
    pub raw: String,
}

/// Parses a datagram that is a SIP response; None for anything else.
pub fn parse_response(bytes: &[u8]) -> Option<SipResponse> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let first = text.lines().next()?;
    let status = first.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()?;
    let header = |names: &[&str]| -> Option<String> {
        text.split("\r\n\r\n")
            .next()?
            .lines()
            .skip(1)
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                names
                    .iter()
                    .any(|n| name.trim().eq_ignore_ascii_case(n))
                    .then(|| value.trim().to_owned())
            })
    };
    let call_id = header(&["call-id", "i"]);
    let cseq_method =
        header(&["cseq"]).and_then(|c| c.split_whitespace().nth(1).map(str::to_owned));
    Some(SipResponse {
        status,
        call_id,
        cseq_method,
        raw: text,
    })
}

pub fn random_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// An OPTIONS request from `from` to the service.
pub fn options_request(to: SocketAddr, from: SocketAddr, call_id: &str) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag={call_id}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         User-Agent: pbx-bridge-e2e\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Sends one OPTIONS over UDP and waits for its final response.
pub fn sip_options(to: SocketAddr, timeout: Duration) -> Option<SipResponse> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    let from = sock.local_addr().ok()?;
    let call_id = format!("opt-{}", random_token());
    sock.send_to(options_request(to, from, &call_id).as_bytes(), to)
        .ok()?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).ok()?;
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        if let Some(r) = parse_response(&buf[..n])
            && r.status >= 200
            && r.call_id.as_deref() == Some(call_id.as_str())
        {
            return Some(r);
        }
    }
}

/// Runs SIPp with `args` from `cwd` (bounded by `timeout`); returns the exit
/// code and what it printed.
pub fn run_sipp(cwd: &Path, args: &[String], timeout: Duration) -> (i32, String) {
    let mut child = Command::new(sipp())
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipp");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!(
        "{}{}",
        t1.join().unwrap_or_default(),
        t2.join().unwrap_or_default()
    );
    (code, text)
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create file");
    f.write_all(text.as_bytes()).expect("write file");
    p.display().to_string()
}
