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
    env: Vec<(String, String)>,
    client: reqwest::Client,
}

impl Service {
    /// Where the bridge stores the recording of `protocol`
    /// (`recordings/YYYY/MM/DD/<protocol>.wav`).
    pub fn recording(&self, protocol: &str) -> PathBuf {
        self.dir
            .path()
            .join("recordings")
            .join(&protocol[0..4])
            .join(&protocol[4..6])
            .join(&protocol[6..8])
            .join(format!("{protocol}.wav"))
    }

    /// Starts the binary with a fresh SQLite and free ports, and waits until
    /// both the API and the SIP listener (OPTIONS over UDP) answer.
    pub async fn start(extra_env: &[(&str, &str)]) -> Service {
        let dir = tempfile::tempdir().expect("tempdir");
        let http_port = free_port();
        let sip_port = free_port();
        let sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
        let env: Vec<(String, String)> = extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = Self::spawn(dir.path(), http_port, sip, &env);
        let mut svc = Service {
            child,
            http_port,
            sip,
            dir,
            env,
            client: reqwest::Client::new(),
        };
        svc.wait_ready();
        svc
    }

    /// SIGTERM (a graceful stop), then the exit status within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// A new process on the same data, ports and settings (after `terminate`).
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.dir.path(), self.http_port, self.sip, &self.env);
        self.wait_ready();
    }

    /// `kill -9` alone (then `restart` starts a new process on the same data,
    /// ports and settings), for tests that change something in between.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `kill -9`, then a new process on the same data, ports and settings.
    pub async fn kill9_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.dir.path(), self.http_port, self.sip, &self.env);
        self.wait_ready();
    }

    fn spawn(dir: &Path, http_port: u16, sip: SocketAddr, extra_env: &[(String, String)]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pbx-bridge"));
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PBX_BRIDGE_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env("PBX_BRIDGE_SIP_LISTEN", sip.to_string())
            .env("PBX_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PBX_BRIDGE_DATA_DIR", dir.join("data"))
            .env("PBX_BRIDGE_RECORDINGS_DIR", dir.join("recordings"))
            .env(
                "PBX_BRIDGE_DATABASE_URL",
                format!("sqlite://{}/e2e.db?mode=rwc", dir.display()),
            )
            .env("PBX_BRIDGE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn pbx-bridge")
    }

    /// Waits until both the API and the SIP listener (OPTIONS) answer.
    fn wait_ready(&mut self) {
        let (http_port, sip) = (self.http_port, self.sip);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
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
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pbx-bridge exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the SIP listener on {sip} did not answer OPTIONS within 10 s"
            );
        }
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

impl Ua {
    /// The `127.0.0.1:PORT` the UA's SIP transport is bound to (from its
    /// `started` event, which every subcommand emits first).
    pub fn local_addr(&mut self) -> SocketAddr {
        if !self.seen.iter().any(|v| v["event"] == "started") {
            self.expect_event("started", Duration::from_secs(15));
        }
        let v = self
            .seen
            .iter()
            .find(|v| v["event"] == "started")
            .expect("started event");
        v["local"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| self.fail("started event without a local address"))
    }

    /// The first event named `name` already seen, or else the next one: for
    /// events whose order against others is not fixed (e.g. `media` around
    /// `confirmed`).
    pub fn seen_or_expect(&mut self, name: &str, timeout: Duration) -> Value {
        if let Some(v) = self.seen.iter().find(|v| v["event"] == name) {
            return v.clone();
        }
        self.expect_event(name, timeout)
    }

    /// The events named `name` seen so far (by `expect_event` and `wait`).
    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|v| v["event"] == name)
            .cloned()
            .collect()
    }

    /// Closes stdin (an agent then ends its calls, unregisters and exits) and
    /// waits for the exit code.
    pub fn finish(&mut self, timeout: Duration) -> i32 {
        self.close_stdin();
        self.wait(timeout)
    }
}

/// The media options `ua.py agent` and `ua.py call` share.
pub trait UaMedia: Sized {
    /// Any other `ua.py` argument.
    fn with_arg(self, a: String) -> Self;

    /// Play `wav` (8 kHz mono 16-bit) into each call, looping.
    fn play(self, wav: impl AsRef<Path>) -> Self {
        self.with_arg("--play".into()).with_arg(path_arg(wav))
    }

    /// Play `wav` once (`play_done` at its end).
    fn play_once(self, wav: impl AsRef<Path>) -> Self {
        self.play(wav).with_arg("--no-loop".into())
    }

    /// Record what the far side sends; `{n}` in the name becomes the call
    /// number.
    fn record(self, wav: impl AsRef<Path>) -> Self {
        self.with_arg("--record".into()).with_arg(path_arg(wav))
    }

    /// Send BYE `secs` after CONFIRMED (default: wait for the far side).
    fn hangup_after(self, secs: f64) -> Self {
        self.with_arg("--hangup-after".into())
            .with_arg(secs_arg(secs))
    }
}

impl UaMedia for AgentBuilder {
    fn with_arg(self, a: String) -> Self {
        self.arg(a)
    }
}

impl UaMedia for CallerBuilder {
    fn with_arg(self, a: String) -> Self {
        self.arg(a)
    }
}

fn path_arg(p: impl AsRef<Path>) -> String {
    p.as_ref().display().to_string()
}

fn secs_arg(s: f64) -> String {
    format!("{s}")
}

/// `ua.py agent`: a reachable agent phone with call behaviours. Every
/// incoming call gets them; the agent handles calls one after the other until
/// stdin closes (`Ua::finish`) or it is dropped.
///
/// Events per call (each with `"call": n`): `incoming` (`from`, `to`,
/// `call_id`, `request_uri`, `x_protocol`, `x_headers`), `ringing`,
/// `answered` or `rejected`, `confirmed`, `media` (`status`), `dtmf`
/// (`digit`), `hangup`, `play_done`, `call_ended` (`status`, `reason`,
/// `invite_status`, `confirmed`, `duration`, `ended_by`, `dtmf`,
/// `recording`; the recording is complete once this is seen).
#[derive(Debug, Clone)]
pub struct AgentBuilder {
    args: Vec<String>,
}

impl AgentBuilder {
    /// An agent that registers `user` at `registrar` (digest `password`).
    pub fn registered(registrar: SocketAddr, user: &str, password: &str) -> AgentBuilder {
        AgentBuilder {
            args: vec![
                "agent".into(),
                "--registrar".into(),
                registrar.to_string(),
                "--user".into(),
                user.into(),
                "--password".into(),
                password.into(),
            ],
        }
    }

    /// An agent that does not register: it only listens on a free loopback
    /// port (`Ua::local_addr`); call it at `sip:agent@127.0.0.1:PORT`.
    pub fn direct() -> AgentBuilder {
        AgentBuilder {
            args: vec![
                "agent".into(),
                "--no-register".into(),
                "--user".into(),
                "agent".into(),
            ],
        }
    }

    /// Any other `ua.py agent` argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// 180 at once, 200 after `secs` (default: 0).
    pub fn answer_after(self, secs: f64) -> Self {
        self.arg("--answer-after").arg(secs_arg(secs))
    }

    /// 180, then ring until CANCEL (`call_ended` has `status` 487).
    pub fn never_answer(self) -> Self {
        self.arg("--never-answer")
    }

    /// Answer the INVITE with `code` (e.g. 486).
    pub fn reject(self, code: u16) -> Self {
        self.arg("--reject").arg(code.to_string())
    }

    /// Blind-transfer (REFER) each answered call to `uri` `secs` after
    /// CONFIRMED; events `transfer`, `transfer_status` (`code`, `final`).
    pub fn transfer_to(self, uri: &str, secs: f64) -> Self {
        self.arg("--transfer-to")
            .arg(uri)
            .arg("--transfer-after")
            .arg(secs_arg(secs))
    }

    /// Starts it and waits (15 s) until it is reachable (`ready`: registered,
    /// or listening with `direct`).
    pub fn spawn(self) -> Ua {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut ua = Ua::spawn(&args);
        ua.expect_event("ready", Duration::from_secs(15));
        ua
    }
}

/// `ua.py call`: one caller, one call; the process exits when the call ends
/// (`Ua::wait`: 0 when the call ran as requested).
///
/// Events: `started`, `registered` (unless unregistered), `calling`,
/// `ringing` (`code` of the first 18x), `confirmed`, `media` (`status`),
/// `dtmf_sent`, `hold`, `unhold`, `cancel`, `hangup`, `call_ended` (as for
/// the agent), `result` (`ok` plus the `call_ended` fields), `exit`.
#[derive(Debug, Clone)]
pub struct CallerBuilder {
    args: Vec<String>,
    registered: bool,
}

impl CallerBuilder {
    /// A caller of `to` (a loopback SIP URI) that does not register and has
    /// no credentials.
    pub fn new(to: &str) -> CallerBuilder {
        CallerBuilder {
            args: vec!["call".into(), "--to".into(), to.into()],
            registered: false,
        }
    }

    /// Register `user` at `registrar` first (and answer challenges with it).
    pub fn registered(mut self, registrar: SocketAddr, user: &str, password: &str) -> Self {
        self.registered = true;
        self.arg("--registrar")
            .arg(registrar.to_string())
            .arg("--user")
            .arg(user)
            .arg("--password")
            .arg(password)
    }

    /// Call as `user` without registering, answering digest challenges with
    /// these credentials.
    pub fn auth(self, user: &str, password: &str) -> Self {
        self.arg("--user").arg(user).arg("--password").arg(password)
    }

    /// The domain of the caller's From URI (default: the registrar host or
    /// 127.0.0.1).
    pub fn domain(self, domain: &str) -> Self {
        self.arg("--domain").arg(domain)
    }

    /// Any other `ua.py call` argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// An extra header on the INVITE.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.arg("--header").arg(format!("{name}: {value}"))
    }

    /// CANCEL `secs` after the INVITE (exit 0 if it was never answered).
    pub fn cancel_after(self, secs: f64) -> Self {
        self.arg("--cancel-after").arg(secs_arg(secs))
    }

    /// Send `digits` as RFC 4733 events 0.5 s after media is up.
    pub fn dtmf(self, digits: &str) -> Self {
        self.arg("--dtmf").arg(digits)
    }

    /// `secs` after CONFIRMED: re-INVITE sendonly (hold), then unhold 1 s later.
    pub fn hold_after(self, secs: f64) -> Self {
        self.arg("--hold-after").arg(secs_arg(secs))
    }

    /// Exit 0 only if the INVITE's final status is `code`.
    pub fn expect_status(self, code: u16) -> Self {
        self.arg("--expect-status").arg(code.to_string())
    }

    /// Give up (hang up, exit 3) after `secs` (default 120).
    pub fn max_duration(self, secs: f64) -> Self {
        self.arg("--max-duration").arg(secs_arg(secs))
    }

    /// Starts the caller (it places the call at once, after registering if asked).
    pub fn spawn(self) -> Ua {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        if !self.registered {
            args.insert(1, "--no-register");
        }
        Ua::spawn(&args)
    }
}

// --- audio files (sox) ------------------------------------------------------

/// `sox` (Debian `sox`, installed by `./scripts/test`).
pub fn sox() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("sox");
        if p.exists() {
            return p;
        }
    }
    panic!("sox is not installed: run the tests with ./scripts/test (apt package sox)");
}

fn run_sox(args: &[&str]) -> String {
    let out = Command::new(sox()).args(args).output().expect("run sox");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sox {args:?} failed: {text}");
    text
}

/// Writes an 8 kHz mono 16-bit sine of `freq_hz` lasting `seconds` at half
/// scale (`sox -n -r 8000 -c 1 -b 16 out.wav synth S sine F vol 0.5`).
pub fn make_tone(path: &Path, freq_hz: u32, seconds: f64) {
    let p = path.display().to_string();
    run_sox(&[
        "-n",
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        &p,
        "synth",
        &seconds.to_string(),
        "sine",
        &freq_hz.to_string(),
        "vol",
        "0.5",
    ]);
}

/// What `sox FILE -n remix N stat` says of one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavStat {
    /// Seconds analysed.
    pub seconds: f64,
    /// RMS amplitude, 0..1 (a half-scale tone ~0.35, speech ~0.08, silence 0).
    pub rms: f64,
    pub max_amplitude: f64,
    /// Zero-crossing estimate in Hz (a 440 Hz tone through PCMU reads ~438;
    /// silence in the file pulls it down in proportion).
    pub rough_frequency: f64,
}

impl WavStat {
    /// A tone of about `hz` (within 10 %) and clearly not silence.
    pub fn is_tone(&self, hz: f64) -> bool {
        self.rms > 0.1 && (self.rough_frequency - hz).abs() <= hz * 0.10
    }
}

/// `sox FILE -n remix CHANNEL [trim START [LEN]] stat` (channels from 1).
pub fn wav_stat_range(path: &Path, channel: u32, start: f64, len: Option<f64>) -> WavStat {
    let p = path.display().to_string();
    let ch = channel.to_string();
    let start_s = start.to_string();
    let len_s = len.map(|l| l.to_string());
    let mut args = vec![p.as_str(), "-n", "remix", ch.as_str()];
    if start > 0.0 || len_s.is_some() {
        args.push("trim");
        args.push(&start_s);
        if let Some(l) = &len_s {
            args.push(l);
        }
    }
    args.push("stat");
    let text = run_sox(&args);
    let field = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                let k = k.split_whitespace().collect::<Vec<_>>().join(" ");
                (k == key).then(|| v.trim().parse::<f64>().ok())?
            })
            .unwrap_or_else(|| panic!("sox stat of {p}: no {key:?} in:\n{text}"))
    };
    WavStat {
        seconds: field("Length (seconds)"),
        rms: field("RMS amplitude"),
        max_amplitude: field("Maximum amplitude"),
        rough_frequency: field("Rough frequency"),
    }
}

/// [`wav_stat_range`] of the whole file.
pub fn wav_stat(path: &Path, channel: u32) -> WavStat {
    wav_stat_range(path, channel, 0.0, None)
}

fn soxi(flag: &str, path: &Path) -> String {
    let out = Command::new(sox().with_file_name("soxi"))
        .arg(flag)
        .arg(path)
        .output()
        .expect("run soxi");
    assert!(
        out.status.success(),
        "soxi {flag} {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Duration in seconds (`soxi -D`).
pub fn wav_duration(path: &Path) -> f64 {
    let s = soxi("-D", path);
    s.parse()
        .unwrap_or_else(|_| panic!("soxi -D {}: {s:?}", path.display()))
}

/// Number of channels (`soxi -c`).
pub fn wav_channels(path: &Path) -> u32 {
    let s = soxi("-c", path);
    s.parse()
        .unwrap_or_else(|_| panic!("soxi -c {}: {s:?}", path.display()))
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
/// SIPp running `scenario` (a path under the repository) for one call on
/// 127.0.0.1:`port` (its media on another free port), with `extra`
/// arguments, in a thread of its own with a scratch directory; joins to
/// its exit code and output. `timeout`: SIPp's own `-timeout`, and (plus
/// 5 s) how long the thread waits for it.
pub fn sipp_once(
    scenario: &str,
    port: u16,
    extra: &[&str],
    timeout: Duration,
) -> std::thread::JoinHandle<(i32, String)> {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut args: Vec<String> = [
        "-sf",
        &format!("{REPO}/{scenario}"),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-mp",
        &free_port().to_string(),
        "-m",
        "1",
        "-timeout",
        &timeout.as_secs().to_string(),
        "-nostdin",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    std::thread::spawn(move || {
        let done = run_sipp(&dir, &args, timeout + Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&dir);
        done
    })
}

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
