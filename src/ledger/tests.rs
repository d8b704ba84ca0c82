//! The journal's file format, replay, rotation and the protocol-block
//! bookkeeping, on real files (no database: `tests/ledger.rs` has those).

use std::fs;
use std::path::Path;

use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

use super::AttendanceChange;
use super::journal::{self, Entry, Files, Record};
use super::protocols::Allocator;
use crate::domain::{CallSource, CloseReason, Direction, Transfer};
use crate::store::NewAttendance;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

fn new_attendance(caller: &str) -> NewAttendance {
    NewAttendance {
        direction: Direction::Inbound,
        department_id: Some(3),
        agent_id: None,
        caller: caller.into(),
        callee: "100".into(),
        source: CallSource::Sip,
        opened_at: Utc.timestamp_millis_opt(1_790_000_000_123).unwrap(),
        call_ref: Some(format!("call-{caller}@host")),
        node: Some("node-a".into()),
    }
}

fn sample(n: u64) -> Vec<Record> {
    let at = Utc.timestamp_millis_opt(1_790_000_000_000).unwrap();
    (1..=n)
        .map(|lsn| {
            let protocol = format!("20261121{lsn:06}");
            let entry = match lsn % 5 {
                0 => Entry::Block {
                    day: day(),
                    first: lsn * 10,
                    last: lsn * 10 + 9,
                },
                1 => Entry::Open {
                    protocol,
                    new: new_attendance(&lsn.to_string()),
                },
                2 => Entry::Change {
                    protocol,
                    change: AttendanceChange::Transferred(Transfer {
                        at,
                        from_agent_id: Some(1),
                        target: "sales".into(),
                        department_id: Some(2),
                    }),
                },
                3 => Entry::Change {
                    protocol,
                    change: AttendanceChange::Ended {
                        at,
                        close: Some(CloseReason::CallerHangup),
                    },
                },
                _ => Entry::Change {
                    protocol,
                    change: AttendanceChange::RecordingAttached {
                        path: "2026/11/21/x.wav".into(),
                        duration_ms: 1234,
                        bytes: 5678,
                        sha256: "ab".repeat(32),
                    },
                },
            };
            Record { lsn, entry }
        })
        .collect()
}

fn frames(records: &[Record]) -> (Vec<u8>, Vec<usize>) {
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    for r in records {
        journal::encode(r, &mut buf).unwrap();
        ends.push(buf.len());
    }
    (buf, ends)
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

fn arb_change() -> impl Strategy<Value = AttendanceChange> {
    let at = (0i64..4_000_000_000_000).prop_map(|ms| Utc.timestamp_millis_opt(ms).unwrap());
    prop_oneof![
        (
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            at.clone()
        )
            .prop_map(|(department_id, agent_id, at)| AttendanceChange::Assigned {
                department_id,
                agent_id,
                at
            }),
        (proptest::option::of(any::<i64>()), at.clone())
            .prop_map(|(agent_id, at)| AttendanceChange::Answered { agent_id, at }),
        (at.clone(), any::<bool>()).prop_map(|(at, c)| AttendanceChange::Ended {
            at,
            close: c.then_some(CloseReason::Abandoned)
        }),
        (".*", any::<u64>(), any::<u64>(), "[0-9a-f]{64}").prop_map(
            |(path, duration_ms, bytes, sha256)| AttendanceChange::RecordingAttached {
                path,
                duration_ms,
                bytes,
                sha256
            }
        ),
        (at, ".*", proptest::option::of(any::<i64>())).prop_map(|(at, target, department_id)| {
            AttendanceChange::Transferred(Transfer {
                at,
                from_agent_id: None,
                target,
                department_id,
            })
        }),
    ]
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        ("[0-9]{14}", ".*").prop_map(|(protocol, caller)| Entry::Open {
            protocol,
            new: new_attendance(&caller)
        }),
        ("[0-9]{14}", arb_change())
            .prop_map(|(protocol, change)| Entry::Change { protocol, change }),
        (1u64..999_999, 0u64..1000).prop_map(|(first, n)| Entry::Block {
            day: day(),
            first,
            last: first + n
        }),
        ".*".prop_map(|node| Entry::Header { node }),
    ]
}

proptest! {
    #[test]
    fn any_records_roundtrip(entries in proptest::collection::vec(arb_entry(), 0..40)) {
        let records: Vec<Record> = entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| Record { lsn: i as u64 + 1, entry })
            .collect();
        let (buf, _) = frames(&records);
        let scan = journal::scan(&buf, "test");
        prop_assert_eq!(scan.valid_len, buf.len());
        prop_assert_eq!(scan.skipped, 0);
        prop_assert_eq!(scan.records, records);
    }
}

#[test]
fn a_torn_tail_at_every_offset_is_ignored_and_truncated() {
    let records = sample(6);
    let (buf, ends) = frames(&records);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0000000000000001.seg");
    for cut in 0..=buf.len() {
        let whole = ends.iter().filter(|e| **e <= cut).count();
        let valid = if whole == 0 { 0 } else { ends[whole - 1] };
        let scan = journal::scan(&buf[..cut], "test");
        assert_eq!(scan.records, records[..whole], "cut at {cut}");
        assert_eq!(scan.valid_len, valid, "cut at {cut}");
        assert_eq!(scan.skipped, 0);

        fs::write(&path, &buf[..cut]).unwrap();
        let replay = journal::replay(dir.path()).unwrap();
        assert_eq!(replay.records, records[..whole], "cut at {cut}");
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, valid);
    }
}

#[test]
fn a_zeroed_tail_is_torn_too() {
    let records = sample(3);
    let (mut buf, ends) = frames(&records);
    buf.extend_from_slice(&[0u8; 4096]);
    let scan = journal::scan(&buf, "test");
    assert_eq!(scan.records, records);
    assert_eq!(scan.valid_len, ends[2]);
}

#[test]
fn a_corrupt_record_in_the_middle_is_skipped() {
    let records = sample(5);
    let (mut buf, ends) = frames(&records);
    // A byte of the second record's body.
    buf[ends[0] + 12] ^= 0x55;
    let scan = journal::scan(&buf, "test");
    assert_eq!(scan.skipped, 1);
    assert_eq!(scan.valid_len, buf.len());
    let lsns: Vec<u64> = scan.records.iter().map(|r| r.lsn).collect();
    assert_eq!(lsns, vec![1, 3, 4, 5]);
    // The last record corrupted looks like a torn write: cut, not skipped.
    let mut buf2 = frames(&records).0;
    let n = buf2.len();
    buf2[n - 3] ^= 0x55;
    let scan = journal::scan(&buf2, "test");
    assert_eq!(scan.records, records[..4]);
    assert_eq!(scan.valid_len, ends[3]);
}

#[test]
fn segments_rotate_and_go_once_applied() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample(30);
    let header = |lsn| Record {
        lsn,
        entry: Entry::Header {
            node: "node-a".into(),
        },
    };
    let mut files = Files::create(dir.path(), 1500, Vec::new(), &[header(0)]).unwrap();
    for r in &records {
        let (buf, _) = frames(std::slice::from_ref(r));
        files.append(&buf, r.lsn).unwrap();
        if files.needs_rotation() {
            files.rotate(&[header(r.lsn)]).unwrap();
        }
    }
    let before = segment_files(dir.path());
    assert!(before.len() >= 4, "{before:?}");
    let replay = journal::replay(dir.path()).unwrap();
    let replayed: Vec<&Record> = replay
        .records
        .iter()
        .filter(|r| !matches!(r.entry, Entry::Header { .. }))
        .collect();
    assert_eq!(replayed, records.iter().collect::<Vec<_>>());
    assert_eq!(replay.last_lsn, 30);

    // Applied up to 15: the segments holding nothing newer are deleted,
    // the active one never.
    files.set_applied(15).unwrap();
    let after = segment_files(dir.path());
    assert!(after.len() < before.len());
    let replay = journal::replay(dir.path()).unwrap();
    assert_eq!(replay.checkpoint, 15);
    let lsns: Vec<u64> = replay.records.iter().map(|r| r.lsn).collect();
    assert!(lsns.contains(&16) && lsns.contains(&30));
    assert!(lsns.iter().filter(|l| **l > 0).min().unwrap() <= &16);
    files.set_applied(30).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1, "only the active one");
    assert_eq!(journal::replay(dir.path()).unwrap().last_lsn, 30);
}

#[test]
fn a_second_process_cannot_take_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let _held = journal::lock(dir.path(), std::time::Duration::ZERO).unwrap();
    let err = journal::lock(dir.path(), std::time::Duration::from_millis(50)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy);
}

fn open_record(lsn: u64, seq: u64) -> Record {
    Record {
        lsn,
        entry: Entry::Open {
            protocol: format!("20261121{seq:06}"),
            new: new_attendance("x"),
        },
    }
}

#[test]
fn blocks_rebuilt_from_the_journal_never_repeat_a_number() {
    let block = |lsn, first, last| Record {
        lsn,
        entry: Entry::Block {
            day: day(),
            first,
            last,
        },
    };
    // Reserved 1..=200, a rotation snapshot 51..=200, used up to 80; then
    // a second block 401..=600.
    let records = vec![
        block(1, 1, 200),
        open_record(2, 50),
        block(2, 51, 200),
        open_record(3, 80),
        block(4, 401, 600),
    ];
    let mut a = Allocator::from_records(&records);
    assert_eq!(a.remaining(day()), 120 + 200);
    assert_eq!(a.take(day()), Some(81));
    // Only the snapshot left (older segments deleted): same answer.
    let mut b = Allocator::from_records(&records[2..]);
    assert_eq!(b.take(day()), Some(81));
    let mut seen = std::collections::BTreeSet::new();
    while let Some(n) = a.take(day()) {
        assert!(seen.insert(n), "{n} twice");
    }
    assert_eq!(seen.len(), 319);
    assert_eq!(*seen.iter().next_back().unwrap(), 600);
    // Another day has nothing; asking marks it wanted.
    let other = day().succ_opt().unwrap();
    assert_eq!(a.take(other), None);
    assert_eq!(a.take_wanted(), vec![day(), other]);
}

#[test]
fn the_snapshot_round_trips() {
    let mut a = Allocator::default();
    a.add(day(), 10, 20);
    a.add(day(), 21, 30);
    a.add(day(), 50, 60);
    assert_eq!(a.take(day()), Some(10));
    let records: Vec<Record> = a
        .snapshot()
        .into_iter()
        .map(|entry| Record { lsn: 7, entry })
        .collect();
    assert_eq!(records.len(), 2, "adjacent blocks merge");
    let b = Allocator::from_records(&records);
    assert_eq!(b.remaining(day()), a.remaining(day()));
    assert_eq!(b.snapshot(), a.snapshot());
}
