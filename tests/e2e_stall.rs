//! Durability under a database stall, end to end (SPEC §4): "a slow or
//! unreachable database never delays, refuses or drops a call ... every
//! protocol and attendance change made meanwhile reaches the database when it
//! answers again, in order, none lost, even if the process is killed before
//! that".
//!
//! The bridge binary on SQLite (`peers::Service`); a recorded department
//! (`overflow`, `close_on_hangup`) whose agents are one SIPp UAS
//! (`benches/sipp/agent.xml`: 180 and 200 at once, RTP echoed with
//! `-rtp_echo`) registered as their extensions; SIPp callers
//! (`tests/sipp/caller_timed.xml`: A-law RTP, BYE after `-d`, INVITE -> 200
//! and BYE -> 200 timed) coming in from a trunk for 127.0.0.1. Meanwhile
//! another process holds SQLite's write lock on the bridge's database file
//! (`BEGIN EXCLUSIVE`), the way a long migration, a backup or a stuck
//! transaction would.
//!
//! `PBX_BRIDGE_TEST_STALL_S` (default 15) sets how long the lock is held.
//! `0` is a control run that takes no lock at all, to check the harness
//! itself: every check tied to the lock is then skipped (and said so).
//!
//! Every packet stays on 127.0.0.1; every process is killed on drop.

mod peers;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use peers::{REPO, Service, free_port, run_sipp, sipp, write_file};
use reqwest::Method;
use serde_json::{Value, json};

const SECS: Duration = Duration::from_secs(1);

/// The two tests run one after the other: each holds the lock for
/// seconds and loads the (shared, 2-core) machine with SIPp.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Seconds the lock is held (`PBX_BRIDGE_TEST_STALL_S`, default 15).
fn stall_secs() -> u64 {
    match std::env::var("PBX_BRIDGE_TEST_STALL_S") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("PBX_BRIDGE_TEST_STALL_S={s:?}: whole seconds")),
        Err(_) => 15,
    }
}

/// A child process, killed and reaped on drop.
struct Proc(Child);

impl Proc {
    fn exited(&mut self) -> Option<i32> {
        self.0
            .try_wait()
            .ok()
            .flatten()
            .map(|s| s.code().unwrap_or(-1))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

// --- the database stall ---------------------------------------------------

/// Holds the write lock, says so, sleeps, commits, says so.
const HOLD_LOCK: &str = r#"
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
print("released", flush=True)
"#;

/// Whether someone holds the write lock right now: a write transaction that
/// may not wait fails with "database is locked".
const PROBE_LOCK: &str = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
try:
    c.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as e:
    print("held" if "locked" in str(e) else "error: %s" % e)
    sys.exit(0)
c.execute("ROLLBACK")
print("free")
"#;

/// Another process holding SQLite's write lock on the bridge's database.
struct DbLock {
    proc: Proc,
    lines: Receiver<String>,
    db: PathBuf,
    taken: Instant,
}

impl DbLock {
    /// Takes the lock for `secs` and returns once it is held.
    fn take(db: &Path, secs: u64) -> DbLock {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(HOLD_LOCK)
            .arg(db)
            .arg(secs.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3 (the lock holder)");
        let stdout = child.stdout.take().unwrap();
        let proc = Proc(child);
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(10 * SECS);
        assert_eq!(
            first.as_deref(),
            Ok("locked"),
            "the lock holder did not take the write lock on {} within 10 s",
            db.display()
        );
        DbLock {
            proc,
            lines,
            db: db.to_owned(),
            taken: Instant::now(),
        }
    }

    /// Asks SQLite itself, from a third process, whether the write lock is
    /// still held now.
    fn held(&self) -> bool {
        let out = Command::new("python3")
            .arg("-c")
            .arg(PROBE_LOCK)
            .arg(&self.db)
            .output()
            .expect("spawn python3 (the lock probe)");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        match said.as_str() {
            "held" => true,
            "free" => false,
            _ => panic!(
                "lock probe: {said:?} {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// Waits (bounded) until the holder has committed.
    fn wait_released(&mut self, timeout: Duration) {
        let said = self.lines.recv_timeout(timeout);
        assert_eq!(
            said.as_deref(),
            Ok("released"),
            "the lock holder did not commit within {timeout:?}"
        );
    }

    /// Ends the holder now (its process dies, SQLite's lock goes with it).
    fn stop(self) {
        drop(self.proc);
    }
}

// --- the bridge, its department and its agents ----------------------------

struct Stall {
    svc: Service,
    /// SIPp working directories (one per SIPp run) and the callers' media.
    work: tempfile::TempDir,
    _agents: Proc,
    code: u32,
    next_media_port: u16,
}

impl Stall {
    /// The bridge with a trunk for 127.0.0.1, department `code` and
    /// `n_agents` agents (extensions `first_ext`...), all answered by one SIPp
    /// UAS that registered them from its own port and echoes RTP.
    async fn start(code: u32, first_ext: u32, n_agents: u32) -> Stall {
        let svc = Service::start(&[]).await;
        let post = async |path: &str, body: Value| -> Value {
            let (s, b) = svc.api(Method::POST, path, Some(body)).await;
            assert!(s == 201 || s == 200, "POST {path}: {s} {b}");
            b
        };
        post(
            "/trunks",
            json!({"name": "carrier", "host": "127.0.0.1", "inbound": ["127.0.0.1/32"]}),
        )
        .await;
        let dept = post(
            "/departments",
            json!({"name": "Suporte", "pabx_code": code, "record": true,
                "close_on_hangup": true, "ring_strategy": "overflow",
                "agent_ring_timeout_s": 10}),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let mut users = String::from("SEQUENTIAL\n");
        for n in first_ext..first_ext + n_agents {
            let ext = post(
                "/extensions",
                json!({"number": n.to_string(), "secret": format!("pw-{n}-x"),
                    "digest_algorithms": ["MD5"]}),
            )
            .await["id"]
                .as_i64()
                .unwrap();
            post(
                "/agents",
                json!({"name": format!("Agent {n}"), "extension_id": ext,
                    "departments": [{"department_id": dept}]}),
            )
            .await;
            users += &format!("{n};[authentication username={n} password=pw-{n}-x]\n");
        }

        let work = tempfile::tempdir().unwrap();
        let media = work.path().join("media.wav");
        // A-law WAV (format 6) for SIPp's rtp_stream, 440 Hz.
        let out = Command::new(peers::sox())
            .args(["-n", "-r", "8000", "-c", "1", "-e", "a-law"])
            .arg(&media)
            .args(["synth", "10", "sine", "440", "vol", "0.5"])
            .output()
            .expect("run sox");
        assert!(out.status.success(), "sox: {out:?}");

        // The agents register from port P; the UAS then answers on P (the
        // bridge sends each fork to the address its binding came from).
        let dir = work.path().join("agents");
        std::fs::create_dir(&dir).unwrap();
        let users = write_file(&dir, "users.csv", &users);
        let port = free_port().to_string();
        let sip = svc.sip.to_string();
        let scenario = |name: &str| format!("{REPO}/benches/sipp/{name}");
        let register: Vec<String> = [
            sip.as_str(),
            "-sf",
            &scenario("register.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "u1",
            "-m",
            &n_agents.to_string(),
            "-inf",
            &users,
            "-key",
            "expires",
            "600",
            "-timeout",
            "20s",
            "-timeout_error",
            "-nostdin",
        ]
        .map(String::from)
        .into();
        let (code_, out) = run_sipp(&dir, &register, 30 * SECS);
        assert_eq!(code_, 0, "SIPp REGISTER of the agents:\n{out}");
        let (s, regs) = svc.api(Method::GET, "/registrations", None).await;
        assert_eq!(s, 200, "{regs}");
        assert_eq!(
            regs["items"].as_array().map(Vec::len),
            Some(n_agents as usize),
            "every agent registered: {regs}"
        );
        let echo = loop {
            // -rtp_echo also binds the port 2 above -mp.
            let p = free_port();
            if std::net::UdpSocket::bind(("127.0.0.1", p + 2)).is_ok() {
                break p;
            }
        };
        let mut uas = Proc(
            Command::new(sipp())
                .current_dir(&dir)
                .args(["-sf", &scenario("agent.xml")])
                .args(["-i", "127.0.0.1", "-p", &port, "-t", "u1"])
                .args(["-mi", "127.0.0.1", "-mp", &echo.to_string(), "-rtp_echo"])
                .args(["-aa", "-nostdin", "-trace_err", "-error_file", "errors.log"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn the agents' SIPp UAS"),
        );
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(uas.exited(), None, "the agents' SIPp UAS exited at once");
        Stall {
            svc,
            work,
            _agents: uas,
            code,
            next_media_port: 30000,
        }
    }

    /// The bridge's SQLite file (`PBX_BRIDGE_DATABASE_URL` of `peers::Service`).
    fn db(&self) -> PathBuf {
        let db = self.svc.dir.path().join("e2e.db");
        assert!(db.exists(), "no database at {}", db.display());
        db
    }

    /// SIPp placing `calls` calls from user `name` at `rate` per second, each
    /// talking `talk_ms` (A-law RTP) before the caller's BYE.
    fn callers(&mut self, name: &str, calls: u32, rate: u32, talk_ms: u32) -> Callers {
        let dir = self.work.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        symlink(self.work.path().join("media.wav"), dir.join("media.wav")).unwrap();
        let media = self.next_media_port;
        self.next_media_port += 1000;
        let out = std::fs::File::create(dir.join("sipp.out")).unwrap();
        let child = Command::new(sipp())
            .current_dir(&dir)
            .arg(self.svc.sip.to_string())
            .args(["-sf", &format!("{REPO}/tests/sipp/caller_timed.xml")])
            .args(["-s", &self.code.to_string(), "-key", "caller", name])
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
                "-t",
                "u1",
            ])
            .args(["-mi", "127.0.0.1", "-mp", &media.to_string()])
            .args(["-r", &rate.to_string(), "-rp", "1000"])
            .args(["-m", &calls.to_string(), "-l", &calls.to_string()])
            .args(["-d", &talk_ms.to_string()])
            .args([
                "-timeout",
                "60s",
                "-timeout_error",
                "-recv_timeout",
                "20000",
            ])
            .args(["-nostdin", "-trace_rtt", "-rtt_freq", "1"])
            .args(["-trace_stat", "-stf", "stat.csv", "-fd", "1"])
            .args(["-trace_err", "-error_file", "errors.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn the callers' SIPp");
        Callers {
            proc: Proc(child),
            dir,
        }
    }

    async fn attendances(&self) -> Vec<Value> {
        let (s, b) = self
            .svc
            .api(Method::GET, "/attendances?limit=500", None)
            .await;
        assert_eq!(s, 200, "{b}");
        assert!(b["next_cursor"].is_null(), "one page holds them: {b}");
        b["items"].as_array().cloned().unwrap_or_default()
    }

    /// The attendances once there are `expected` and every one is closed, or
    /// what there is after `timeout`.
    async fn settled(&self, expected: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let list = self.attendances().await;
            let done = list.len() >= expected && list.iter().all(|a| a["status"] == "closed");
            if done || Instant::now() >= deadline {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn recording(&self, protocol: &str) -> PathBuf {
        self.svc.recording(protocol)
    }
}

/// One SIPp caller run.
struct Callers {
    proc: Proc,
    dir: PathBuf,
}

/// What a SIPp caller run reports.
#[derive(Debug)]
struct CallerReport {
    exit: Option<i32>,
    /// Calls SIPp created, each one INVITE (`OutgoingCall(C)`).
    placed: u64,
    ok: u64,
    failed: u64,
    /// INVITE -> 200 of every answered call, ms.
    setup_ms: Vec<f64>,
    /// BYE -> 200 of every call that hung up, ms.
    bye_ms: Vec<f64>,
    /// SIPp's errors, grouped.
    errors: String,
}

impl CallerReport {
    fn worst_setup_ms(&self) -> f64 {
        self.setup_ms.iter().copied().fold(0.0, f64::max)
    }

    fn worst_bye_ms(&self) -> f64 {
        self.bye_ms.iter().copied().fold(0.0, f64::max)
    }
}

impl Callers {
    /// (rtd, ms) of every timed exchange so far (`-rtt_freq 1` writes each
    /// as it completes: `Date_ms;response_time_ms;rtd_no`).
    fn rtts(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with("_rtt.csv") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines() {
                let f: Vec<&str> = line.split(';').collect();
                if let (Some(ms), Some(rtd)) = (f.get(1).and_then(|v| v.parse().ok()), f.get(2)) {
                    out.push((rtd.trim().to_owned(), ms));
                }
            }
        }
        out
    }

    fn timed(&self, rtd: &str) -> Vec<f64> {
        self.rtts()
            .into_iter()
            .filter(|(r, _)| r == rtd)
            .map(|(_, ms)| ms)
            .collect()
    }

    /// Calls answered so far (INVITE -> 200 timed).
    fn answered(&self) -> usize {
        self.timed("1").len()
    }

    /// Calls hung up so far (BYE -> 200 timed).
    fn hung_up(&self) -> usize {
        self.timed("2").len()
    }

    /// Waits until `n` calls are answered (or `timeout`); how many are.
    fn wait_answered(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let a = self.answered();
            if a >= n || Instant::now() >= deadline {
                return a;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for SIPp to finish (killed after `timeout`) and reads its figures.
    fn wait(&mut self, timeout: Duration) -> CallerReport {
        let deadline = Instant::now() + timeout;
        let exit = loop {
            if let Some(code) = self.proc.exited() {
                break Some(code);
            }
            if Instant::now() >= deadline {
                let _ = self.proc.0.kill();
                let _ = self.proc.0.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stat = std::fs::read_to_string(self.dir.join("stat.csv")).unwrap_or_default();
        let rows: Vec<Vec<&str>> = stat
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(';').collect())
            .collect();
        let field = |name: &str| -> u64 {
            let (Some(head), Some(last)) = (rows.first(), rows.last()) else {
                return 0;
            };
            head.iter()
                .position(|h| *h == name)
                .and_then(|i| last.get(i))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        CallerReport {
            exit,
            placed: field("OutgoingCall(C)"),
            ok: field("SuccessfulCall(C)"),
            failed: field("FailedCall(C)"),
            setup_ms: self.timed("1"),
            bye_ms: self.timed("2"),
            errors: self.errors(),
        }
    }

    /// SIPp's error log, one line per kind of event with its count (e.g. a
    /// 503 where a 200 was expected), plus its own output's tail.
    fn errors(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("errors.log")).unwrap_or_default();
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for line in log.lines() {
            let Some(i) = line.find("received '") else {
                continue;
            };
            let what: String = line[i..].chars().take(60).collect();
            let what = what.split("\\r").next().unwrap_or(&what).to_owned();
            match kinds.iter_mut().find(|(k, _)| *k == what) {
                Some((_, n)) => *n += 1,
                None => kinds.push((what, 1)),
            }
        }
        let out = std::fs::read_to_string(self.dir.join("sipp.out")).unwrap_or_default();
        let tail: String = out
            .lines()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        let mut s: String = kinds.iter().map(|(k, n)| format!("  x{n} {k}\n")).collect();
        if s.is_empty() && !log.trim().is_empty() {
            s = log.lines().take(6).collect::<Vec<_>>().join("\n") + "\n";
        }
        format!("SIPp errors:\n{s}SIPp output (tail):\n{tail}")
    }
}

fn time_of(a: &Value, key: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(
        a[key].as_str().unwrap_or_else(|| panic!("no {key} in {a}")),
    )
    .unwrap_or_else(|e| panic!("{key} of {a}: {e}"))
}

fn protocol(a: &Value) -> String {
    a["protocol"].as_str().unwrap_or_default().to_owned()
}

/// Every call made one attendance; none twice.
fn assert_unique_protocols(list: &[Value]) {
    let mut p: Vec<String> = list.iter().map(protocol).collect();
    p.sort();
    p.dedup();
    assert_eq!(p.len(), list.len(), "a protocol twice: {list:#?}");
}

/// Closed by the caller's BYE, with its recording on disk.
fn assert_hung_up_and_recorded(st: &Stall, a: &Value) {
    assert_eq!(a["status"], "closed", "{a}");
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    assert!(!a["answered_at"].is_null(), "{a}");
    assert!(!a["ended_at"].is_null(), "{a}");
    assert!(!a["recording"].is_null(), "no recording: {a}");
    let path = st.recording(&protocol(a));
    let len = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("recording {}: {e}; {a}", path.display()))
        .len();
    assert_eq!(a["recording"]["bytes"].as_u64(), Some(len), "{a}");
}

const CALLS: u32 = 20;
const RATE: u32 = 2;
const TALK_MS: u32 = 2000;
/// "Promptly": far below the lock time, with room for a loaded machine.
const PROMPT_MS: f64 = 1000.0;

/// 20 calls (2 a second, 2 s of RTP each) arrive, are answered, talk and end
/// while another process holds the database's write lock for 15 s: every
/// call is answered and hung up promptly, inside the lock; once the lock is
/// gone the database holds exactly one closed, recorded attendance per call,
/// protocols in the order the calls were opened.
#[tokio::test(flavor = "multi_thread")]
async fn calls_go_on_while_the_database_is_locked() {
    let _serial = SERIAL.lock().await;
    let stall = stall_secs();
    let mut st = Stall::start(880, 1880, 10).await;
    let mut lock = (stall > 0).then(|| DbLock::take(&st.db(), stall));
    let start = Instant::now();
    let mut callers = st.callers("stall", CALLS, RATE, TALK_MS);
    let r = callers.wait(Duration::from_secs(stall + 60));
    let took = start.elapsed();
    // Right after SIPp's last BYE got its 200: is the lock still held?
    let held_at_end = lock.as_ref().map(DbLock::held);
    eprintln!(
        "e2e_stall: lock {stall} s; {} calls placed during it, {} answered, {} failed; \
         worst INVITE->200 {:.0} ms, worst BYE->200 {:.0} ms (n={}/{}); last call ended \
         {:.1} s after the lock was taken; lock still held then: {}",
        r.placed,
        r.ok,
        r.failed,
        r.worst_setup_ms(),
        r.worst_bye_ms(),
        r.setup_ms.len(),
        r.bye_ms.len(),
        took.as_secs_f64(),
        held_at_end.map_or("no lock (control run)".into(), |h| h.to_string()),
    );
    assert!(
        r.exit == Some(0) && r.placed == CALLS as u64 && r.ok == CALLS as u64 && r.failed == 0,
        "every call placed during the stall is answered and ends well: \
         {} placed, {} ok, {} failed, SIPp exit {:?} (the database lock must not \
         delay or refuse calls)\n{}",
        r.placed,
        r.ok,
        r.failed,
        r.exit,
        r.errors
    );
    assert_eq!(r.setup_ms.len(), CALLS as usize, "every INVITE->200 timed");
    assert_eq!(r.bye_ms.len(), CALLS as usize, "every BYE->200 timed");
    assert!(
        r.worst_setup_ms() < PROMPT_MS,
        "call setup waited on the locked database: worst INVITE->200 {:.0} ms \
         (all: {:?})",
        r.worst_setup_ms(),
        r.setup_ms
    );
    assert!(
        r.worst_bye_ms() < PROMPT_MS,
        "hang-up waited on the locked database: worst BYE->200 {:.0} ms (all: {:?})",
        r.worst_bye_ms(),
        r.bye_ms
    );
    if let Some(held) = held_at_end {
        assert!(
            held,
            "the lock was already released when the last call ended ({:.1} s after it \
             was taken): the calls did not all run during the stall",
            took.as_secs_f64()
        );
    } else {
        eprintln!("e2e_stall: control run (PBX_BRIDGE_TEST_STALL_S=0): no lock checks");
    }

    // The lock goes; everything that happened meanwhile reaches the database.
    if let Some(lock) = lock.as_mut() {
        lock.wait_released(Duration::from_secs(stall + 30));
    }
    let released = Instant::now();
    let list = st.settled(CALLS as usize, 30 * SECS).await;
    eprintln!(
        "e2e_stall: {} attendances ({} closed) {:.1} s after the lock was released",
        list.len(),
        list.iter().filter(|a| a["status"] == "closed").count(),
        released.elapsed().as_secs_f64()
    );
    assert_eq!(
        list.len(),
        CALLS as usize,
        "one attendance per call: {list:#?}"
    );
    assert_unique_protocols(&list);
    for a in &list {
        assert_eq!(a["caller"], "stall", "{a}");
        assert_hung_up_and_recorded(&st, a);
    }
    let mut by_open = list.clone();
    by_open.sort_by_key(|a| time_of(a, "opened_at"));
    let protocols: Vec<u64> = by_open
        .iter()
        .map(|a| protocol(a).parse().unwrap())
        .collect();
    assert!(
        protocols.windows(2).all(|w| w[0] < w[1]),
        "protocols increase in the order the calls were opened: {:?}",
        by_open
            .iter()
            .map(|a| (protocol(a), a["opened_at"].clone()))
            .collect::<Vec<_>>()
    );
}

/// During the stall some calls end and some are still up; then `kill -9`,
/// the lock goes, the bridge starts again on the same data: every INVITE the
/// callers sent has exactly one attendance; the ended calls are closed by the
/// caller with their recording, the live ones ended by crash recovery.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_during_the_stall_loses_nothing() {
    const LIVE: u32 = 3;
    const ENDED: u32 = 6;
    let _serial = SERIAL.lock().await;
    let stall = stall_secs();
    let mut st = Stall::start(890, 1890, 10).await;
    let lock = (stall > 0).then(|| DbLock::take(&st.db(), stall));
    // Long calls (still up at the kill), and short ones (over before it).
    let mut live = st.callers("live", LIVE, RATE, 12_000);
    let mut ended = st.callers("ended", ENDED, RATE, 1500);
    let r = ended.wait(Duration::from_secs(stall + 60));
    let answered = live.wait_answered(LIVE as usize, 10 * SECS);
    // The bridge takes a call's changes without blocking it (SPEC §4: durable
    // on the node first): give it a moment to take the last call's end.
    std::thread::sleep(SECS);
    let hung_up = live.hung_up();
    let held_at_kill = lock.as_ref().map(DbLock::held);
    let at_kill = match (&lock, held_at_kill) {
        (Some(l), Some(held)) => format!(
            "kill {:.1} s after the lock was taken, lock still held: {held}",
            l.taken.elapsed().as_secs_f64()
        ),
        _ => "no lock (control run)".to_owned(),
    };
    eprintln!(
        "e2e_stall: lock {stall} s; before the kill: short calls {} placed, {} ok, {} failed, \
         worst INVITE->200 {:.0} ms, worst BYE->200 {:.0} ms; long calls {answered}/{LIVE} \
         answered, {hung_up} hung up; {at_kill}",
        r.placed,
        r.ok,
        r.failed,
        r.worst_setup_ms(),
        r.worst_bye_ms(),
    );
    assert!(
        r.exit == Some(0) && r.placed == ENDED as u64 && r.ok == ENDED as u64,
        "the short calls are answered and end during the stall: {} placed, {} ok, \
         {} failed, SIPp exit {:?}\n{}",
        r.placed,
        r.ok,
        r.failed,
        r.exit,
        r.errors
    );
    assert_eq!(
        answered, LIVE as usize,
        "the long calls are answered during the stall"
    );
    assert_eq!(hung_up, 0, "the long calls are still up at the kill");
    if let Some(held) = held_at_kill {
        assert!(held, "the lock was already released at the kill");
    }

    st.svc.kill9();
    if let Some(lock) = lock {
        lock.stop();
    }
    st.svc.restart().await;
    // The long calls' BYEs reach the new process, which knows no such dialog.
    let r_live = live.wait(60 * SECS);
    eprintln!(
        "e2e_stall: long calls after the restart: {} placed, {} ok, {} failed (481 expected)",
        r_live.placed, r_live.ok, r_live.failed
    );
    assert_eq!(r_live.placed, LIVE as u64, "{r_live:?}");

    let invites = (r.placed + r_live.placed) as usize;
    let list = st.settled(invites, 30 * SECS).await;
    eprintln!(
        "e2e_stall: {invites} INVITEs sent, {} attendances after the restart ({} closed)",
        list.len(),
        list.iter().filter(|a| a["status"] == "closed").count()
    );
    assert_unique_protocols(&list);
    assert_eq!(
        list.len(),
        invites,
        "one attendance per INVITE sent, none lost, none doubled: {list:#?}"
    );
    let of = |who: &str| -> Vec<&Value> { list.iter().filter(|a| a["caller"] == who).collect() };
    assert_eq!(of("ended").len(), ENDED as usize, "{list:#?}");
    assert_eq!(of("live").len(), LIVE as usize, "{list:#?}");
    for a in of("ended") {
        assert_hung_up_and_recorded(&st, a);
    }
    for a in of("live") {
        assert!(!a["answered_at"].is_null(), "{a}");
        assert!(!a["ended_at"].is_null(), "crash recovery ends it: {a}");
        assert_eq!(a["status"], "closed", "{a}");
        assert_eq!(
            a["close_reason"], "failed",
            "the department closes on hangup: {a}"
        );
    }
    let (_, calls) = st.svc.api(Method::GET, "/calls", None).await;
    assert_eq!(calls["items"], json!([]), "never listed as live again");
}
