//! The node ledger against real databases (SPEC §4): opens never wait for
//! a stalled database, everything reaches it afterwards in order, a kill
//! during the stall loses and doubles nothing, and protocol numbers stay
//! unique across nodes and restarts.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::time::Duration;

use chrono::Utc;
use common::{Db, TestDb};
use pbx_bridge::domain::{
    Attendance, AttendanceStatus, CallSource, CloseReason, Direction, Protocol, Transfer,
};
use pbx_bridge::ledger::{AttendanceChange, Ledger, LedgerConfig};
use pbx_bridge::store::{NewAttendance, Store};
use sqlx::{Connection, Executor};

const TZ: chrono_tz::Tz = chrono_tz::America::Sao_Paulo;

fn config(dir: &std::path::Path, node: &str) -> LedgerConfig {
    LedgerConfig::new(dir.join(format!("journal-{node}")), node, TZ)
}

fn new_call(i: usize, node: &str) -> NewAttendance {
    NewAttendance {
        direction: Direction::Inbound,
        department_id: None,
        agent_id: None,
        caller: format!("55119{i:08}"),
        callee: "100".into(),
        source: CallSource::Sip,
        opened_at: Utc::now(),
        call_ref: Some(format!("{node}-call-{i}@test")),
        node: Some(node.into()),
    }
}

/// Opens call `i` and records the changes its kind (`i % 4`) calls for.
async fn call(ledger: &Ledger, i: usize) -> Protocol {
    let protocol = ledger.open(new_call(i, "node-a")).await.expect("open");
    let p = protocol.as_str();
    let at = Utc::now();
    match i % 4 {
        0 => {
            ledger.record(
                p,
                AttendanceChange::Answered {
                    agent_id: Some(7),
                    at,
                },
            );
            ledger.record(
                p,
                AttendanceChange::Ended {
                    at,
                    close: Some(CloseReason::CallerHangup),
                },
            );
            ledger.record(p, recording(i));
        }
        1 => ledger.record(
            p,
            AttendanceChange::Ended {
                at,
                close: Some(CloseReason::Abandoned),
            },
        ),
        2 => {
            ledger.record(
                p,
                AttendanceChange::Answered {
                    agent_id: Some(8),
                    at,
                },
            );
            ledger.record(p, AttendanceChange::Transferred(transfer(at)));
            ledger.record(p, AttendanceChange::Ended { at, close: None });
        }
        _ => {
            let assigned = AttendanceChange::Assigned {
                department_id: Some(4),
                agent_id: Some(9),
                at,
            };
            ledger.record(p, assigned);
            ledger.record(p, AttendanceChange::Answered { agent_id: None, at });
            ledger.record(
                p,
                AttendanceChange::Ended {
                    at,
                    close: Some(CloseReason::AgentHangup),
                },
            );
        }
    }
    protocol
}

fn recording(i: usize) -> AttendanceChange {
    AttendanceChange::RecordingAttached {
        path: format!("2026/01/01/{i}.wav"),
        duration_ms: 1000 + i as u64,
        bytes: 16_000 + i as u64,
        sha256: format!("{i:064}"),
    }
}

fn transfer(at: chrono::DateTime<Utc>) -> Transfer {
    Transfer {
        at,
        from_agent_id: Some(8),
        target: "sales".into(),
        department_id: Some(5),
    }
}

/// What call `i` must look like in the database.
fn check(a: &Attendance, i: usize) {
    let p = &a.protocol;
    match i % 4 {
        0 => {
            assert_eq!(a.status, AttendanceStatus::Closed, "{p}");
            assert_eq!(a.close_reason, Some(CloseReason::CallerHangup), "{p}");
            assert_eq!(a.agent_id, Some(7), "{p}");
            let rec = a.recording.as_ref().expect("recording");
            assert_eq!(rec.duration_ms, 1000 + i as u64, "{p}");
            assert_eq!(rec.sha256, format!("{i:064}"), "{p}");
        }
        1 => {
            assert_eq!(a.status, AttendanceStatus::Closed, "{p}");
            assert_eq!(a.close_reason, Some(CloseReason::Abandoned), "{p}");
            assert!(a.answered_at.is_none(), "{p}");
        }
        2 => {
            assert_eq!(a.status, AttendanceStatus::InProgress, "{p}");
            assert!(a.ended_at.is_some(), "{p}");
            assert_eq!(a.transfers.len(), 1, "{p}: one transfer, not doubled");
            assert_eq!(a.department_id, Some(5), "{p}");
        }
        _ => {
            assert_eq!(a.status, AttendanceStatus::Closed, "{p}");
            assert_eq!(a.close_reason, Some(CloseReason::AgentHangup), "{p}");
            assert_eq!((a.department_id, a.agent_id), (Some(4), Some(9)), "{p}");
        }
    }
}

async fn count(conn: &mut sqlx::SqliteConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM attendances")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Holds SQLite's write lock (another connection, as another process would).
async fn lock_sqlite(url: &str) -> sqlx::SqliteConnection {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    conn.execute("BEGIN EXCLUSIVE").await.unwrap();
    conn
}

/// Every protocol is in the database as its kind requires, opened in
/// protocol order (SQLite's rowid is the insertion order).
async fn check_all(store: &Store, url: &str, protocols: &[Protocol]) {
    for (i, p) in protocols.iter().enumerate() {
        check(&store.get_attendance(p.as_str()).await.unwrap(), i);
    }
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let in_db: Vec<String> = sqlx::query_scalar("SELECT protocol FROM attendances ORDER BY rowid")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut sorted = protocols.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    sorted.sort();
    assert_eq!(in_db, sorted, "inserted once each, in protocol order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stall_never_delays_opens_and_everything_arrives_after() {
    let db = TestDb::new(Db::Sqlite).await;
    let store = Store::connect(&db.url).await.unwrap();
    let ledger = Ledger::start(store.clone(), config(db.dir(), "node-a"))
        .await
        .unwrap();
    let held_since = std::time::Instant::now();
    let mut lock = lock_sqlite(&db.url).await;
    let mut protocols = Vec::new();
    for i in 0..100 {
        protocols.push(call(&ledger, i).await);
    }
    ledger.durable().await;
    // Every open returned while the lock is held: none of it is in the
    // database yet, all of it waits in the journal.
    assert_eq!(count(&mut lock).await, 0);
    assert!(ledger.backlog() >= 100, "backlog {}", ledger.backlog());
    assert!(!ledger.applied(Duration::from_millis(200)).await);
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(held_since.elapsed())).await;
    lock.execute("COMMIT").await.unwrap();
    assert!(
        ledger.applied(Duration::from_secs(60)).await,
        "applied after the stall"
    );
    // The protocol block the refill reserves as the database comes back is
    // journaled too, possibly just after `applied` took its target: it
    // reaches the database as well.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ledger.backlog() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "backlog {}",
            ledger.backlog()
        );
        ledger.applied(Duration::from_secs(1)).await;
    }
    let seqs: Vec<u64> = protocols
        .iter()
        .map(|p| p.as_str()[8..].parse().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "protocols increase: {seqs:?}"
    );
    check_all(&store, &db.url, &protocols).await;
    ledger.shutdown(Duration::from_secs(5)).await;
}

const CHILD_ENV: &str = "PBX_BRIDGE_LEDGER_KILL_CHILD";

/// Run by `sqlite_kill_during_stall_then_replay` in a child process:
/// starts a ledger, applies 10 calls, then on "go" makes 100 more calls
/// (while the parent holds the database) and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of sqlite_kill_during_stall_then_replay"]
async fn kill_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (url, dir) = spec.split_once('|').unwrap();
    let store = Store::connect(url).await.unwrap();
    let ledger = Ledger::start(store, config(std::path::Path::new(dir), "node-a"))
        .await
        .unwrap();
    for i in 0..10 {
        println!("protocol {}", call(&ledger, i).await);
    }
    assert!(ledger.applied(Duration::from_secs(30)).await);
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    for i in 10..110 {
        println!("protocol {}", call(&ledger, i).await);
    }
    ledger.durable().await;
    println!("durable");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_during_stall_then_replay() {
    let db = TestDb::new(Db::Sqlite).await;
    let store = Store::connect(&db.url).await.unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{}", db.url, db.dir().display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut protocols = Vec::new();
    let mut read_until = |marker: &str, protocols: &mut Vec<Protocol>| loop {
        let line = lines.next().expect("child output").unwrap();
        if line.contains(marker) {
            return;
        }
        // (libtest may print its "test ... " on the same line)
        if let Some(at) = line.find("protocol ") {
            protocols.push(Protocol::parse(&line[at + 9..at + 23]).unwrap());
        }
    };
    read_until("ready", &mut protocols);
    let mut lock = lock_sqlite(&db.url).await;
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    read_until("durable", &mut protocols);
    // Durable on the node only: the database still has the first 10.
    assert_eq!(count(&mut lock).await, 10);
    child.kill().unwrap(); // SIGKILL, the database still locked
    assert!(!child.wait().unwrap().success());
    lock.execute("COMMIT").await.unwrap();
    drop(lock);
    assert_eq!(protocols.len(), 110);

    // A new start on the same journal applies what the killed one left.
    let ledger = Ledger::start(store.clone(), config(db.dir(), "node-a"))
        .await
        .unwrap();
    check_all(&store, &db.url, &protocols).await;
    // And goes on after the highest number handed out.
    let next = ledger.open(new_call(999, "node-a")).await.unwrap();
    assert!(
        protocols.iter().all(|p| *p < next),
        "{next} repeats or precedes"
    );
    ledger.shutdown(Duration::from_secs(5)).await;
}

async fn two_nodes_never_share_a_protocol(db: Db) {
    let test_db = TestDb::new(db).await;
    let a = Store::connect(&test_db.url).await.unwrap();
    let b = Store::connect(&test_db.url).await.unwrap();
    let la = Ledger::start(a.clone(), config(test_db.dir(), "node-a"))
        .await
        .unwrap();
    let lb = Ledger::start(b, config(test_db.dir(), "node-b"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..10 {
        let ledger = if t % 2 == 0 { la.clone() } else { lb.clone() };
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..50 {
                let p = ledger.open(new_call(t * 50 + i, "n")).await.unwrap();
                ledger.record(
                    p.as_str(),
                    AttendanceChange::Ended {
                        at: Utc::now(),
                        close: None,
                    },
                );
                got.push(p.to_string());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), 500, "duplicate protocols across nodes");
    assert!(la.applied(Duration::from_secs(60)).await);
    assert!(lb.applied(Duration::from_secs(60)).await);
    let stored = a.stream_attendances(None, None);
    let stored: Vec<_> = futures_util::StreamExt::collect::<Vec<_>>(stored).await;
    let stored: BTreeSet<String> = stored.into_iter().map(|r| r.unwrap().protocol).collect();
    assert_eq!(stored, unique);
    la.shutdown(Duration::from_secs(5)).await;
    lb.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_nodes_never_share_a_protocol() {
    two_nodes_never_share_a_protocol(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_never_share_a_protocol() {
    two_nodes_never_share_a_protocol(Db::Postgres).await;
}

async fn restart_mid_block_goes_on_after_the_last_number(db: Db) {
    let test_db = TestDb::new(db).await;
    let store = Store::connect(&test_db.url).await.unwrap();
    let today = Protocol::day(Utc::now(), TZ);
    let mut before = Vec::new();
    let ledger = Ledger::start(store.clone(), config(test_db.dir(), "node-a"))
        .await
        .unwrap();
    for i in 0..30 {
        before.push(ledger.open(new_call(i, "node-a")).await.unwrap());
    }
    let left = ledger.reserved(today);
    ledger.shutdown(Duration::from_secs(5)).await;
    drop(ledger);

    let ledger = Ledger::start(store.clone(), config(test_db.dir(), "node-a"))
        .await
        .unwrap();
    // The unused remainder of the block is still this node's.
    assert_eq!(ledger.reserved(today), left);
    let mut after = Vec::new();
    for i in 30..60 {
        after.push(ledger.open(new_call(i, "node-a")).await.unwrap());
    }
    let last_before = before.iter().max().unwrap();
    assert!(
        after.iter().all(|p| p > last_before),
        "{after:?} vs {last_before}"
    );
    let seq = |p: &Protocol| p.as_str()[8..].parse::<u64>().unwrap();
    assert_eq!(
        seq(&after[0]),
        seq(last_before) + 1,
        "the same block goes on"
    );
    assert!(ledger.applied(Duration::from_secs(30)).await);
    ledger.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_mid_block_never_repeats_a_protocol() {
    restart_mid_block_goes_on_after_the_last_number(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_block_never_repeats_a_protocol() {
    restart_mid_block_goes_on_after_the_last_number(Db::Postgres).await;
}
