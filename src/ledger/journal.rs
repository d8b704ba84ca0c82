//! The journal on the node's disk: numbered segment files of framed
//! records, appended by one thread with group commit, read back at start.
//!
//! Frame: `len: u32 LE | crc32(body): u32 LE | body` where the body is the
//! record as JSON. A process killed mid-write leaves a torn tail (a short
//! header, a short body, or a last body whose checksum fails): it is
//! detected and truncated at the next start. A bad checksum in the middle
//! (disk corruption) skips that record with an error log; the length is
//! still trusted to find the next one.
//!
//! Group commit: the thread takes everything queued, writes it in one
//! `write_all`, issues one `sync_data`, then acknowledges the waiters and
//! hands the records to the database writer. It is a plain thread because
//! an fsync can take long on a busy disk and must never hold a tokio
//! worker.
//!
//! Segments rotate past `segment_bytes`; each one starts with a header and
//! the unused protocol blocks (so deleting older segments never loses a
//! reservation). A segment is deleted once every record in it is applied
//! to the database, which the `applied` file (the checkpoint, written after
//! each database commit) records. The checkpoint needs no fsync: losing it
//! only makes the next start apply again records that are idempotent.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::AttendanceChange;
use crate::store::NewAttendance;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
const HEADER: usize = 8;
/// No record is this large; a length beyond it is garbage.
const MAX_RECORD: usize = 16 << 20;
const CHECKPOINT: &str = "applied";
const SEGMENT_EXT: &str = "seg";

/// One journaled record; `lsn` orders them across segments and restarts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Record {
    pub lsn: u64,
    pub entry: Entry,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// An attendance opened with this protocol.
    Open {
        protocol: String,
        new: NewAttendance,
    },
    /// A change of an opened attendance.
    Change {
        protocol: String,
        change: AttendanceChange,
    },
    /// Protocol numbers `first..=last` of `day` reserved for this node
    /// (not applied to the database: the reservation already is there).
    Block {
        day: NaiveDate,
        first: u64,
        last: u64,
    },
    /// Starts a segment (keeps the lsn sequence when older ones are gone).
    Header { node: String },
}

impl Entry {
    pub fn protocol(&self) -> Option<&str> {
        match self {
            Entry::Open { protocol, .. } | Entry::Change { protocol, .. } => Some(protocol),
            _ => None,
        }
    }
}

/// Appends the frame of `record` to `out`.
pub(crate) fn encode(record: &Record, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let body = serde_json::to_vec(record)?;
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&CRC.checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// What a segment's bytes hold.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub records: Vec<Record>,
    /// Bytes up to the end of the last whole frame (the rest is torn).
    pub valid_len: usize,
    /// Whole frames skipped (bad checksum or unreadable body).
    pub skipped: usize,
}

/// Reads the frames of one segment. Never fails: whatever cannot be read
/// is skipped (logged) or is the torn tail.
pub(crate) fn scan(buf: &[u8], name: &str) -> Scan {
    let mut scan = Scan::default();
    let mut pos = 0;
    while pos < buf.len() {
        if buf.len() - pos < HEADER {
            break;
        }
        let len = u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
        let crc = u32::from_le_bytes([buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]]);
        if len == 0 || len > MAX_RECORD || buf.len() - pos - HEADER < len {
            break;
        }
        let end = pos + HEADER + len;
        let body = &buf[pos + HEADER..end];
        if CRC.checksum(body) != crc {
            if end == buf.len() {
                // The last frame, half written when the process died.
                break;
            }
            tracing::error!(
                segment = name,
                offset = pos,
                "journal record with a bad checksum skipped"
            );
            scan.skipped += 1;
        } else {
            match serde_json::from_slice::<Record>(body) {
                Ok(r) => scan.records.push(r),
                Err(e) => {
                    tracing::error!(segment = name, offset = pos, error = %e, "unreadable journal record skipped");
                    scan.skipped += 1;
                }
            }
        }
        pos = end;
    }
    scan.valid_len = pos;
    scan
}

/// A segment file and the highest lsn in it.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub seq: u64,
    pub path: PathBuf,
    pub max_lsn: u64,
}

/// What the journal directory holds at start.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Every readable record, in order.
    pub records: Vec<Record>,
    /// The last lsn known to be in the database.
    pub checkpoint: u64,
    pub segments: Vec<Segment>,
    /// The highest lsn seen (records or checkpoint).
    pub last_lsn: u64,
}

/// Takes the directory for this process (an advisory lock the OS drops
/// with the process): two ledgers appending to one journal would corrupt
/// it. Waits up to `wait` for a previous holder in this process to finish.
pub(crate) fn lock(dir: &Path, wait: std::time::Duration) -> io::Result<File> {
    fs::create_dir_all(dir)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    let until = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    "the journal is in use by another process (PBX_BRIDGE_DATA_DIR shared?)",
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.{SEGMENT_EXT}"))
}

/// Reads every segment of `dir` (creating it), truncating torn tails.
pub(crate) fn replay(dir: &Path) -> io::Result<Replay> {
    fs::create_dir_all(dir)?;
    let mut seqs = Vec::new();
    for e in fs::read_dir(dir)? {
        let path = e?.path();
        if path.extension().and_then(|x| x.to_str()) == Some(SEGMENT_EXT)
            && let Some(seq) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    let checkpoint = fs::read_to_string(dir.join(CHECKPOINT))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mut replay = Replay {
        checkpoint,
        last_lsn: checkpoint,
        ..Default::default()
    };
    for seq in seqs {
        let path = segment_path(dir, seq);
        let buf = fs::read(&path)?;
        let name = path.display().to_string();
        let scan = scan(&buf, &name);
        if scan.valid_len < buf.len() {
            tracing::warn!(segment = %name, dropped_bytes = buf.len() - scan.valid_len, "torn journal tail truncated");
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(scan.valid_len as u64)?;
            f.sync_all()?;
        }
        let max_lsn = scan.records.iter().map(|r| r.lsn).max().unwrap_or(0);
        replay.last_lsn = replay.last_lsn.max(max_lsn);
        replay.records.extend(scan.records);
        replay.segments.push(Segment { seq, path, max_lsn });
    }
    Ok(replay)
}

/// The open journal: closed segments and the one appended to.
pub(crate) struct Files {
    dir: PathBuf,
    segment_bytes: u64,
    closed: Vec<Segment>,
    active: Segment,
    file: File,
    len: u64,
    checkpoint: u64,
}

impl Files {
    /// Starts a new segment after `closed` (the ones found at start), with
    /// `preamble` in it, durable (file and directory entry).
    pub fn create(
        dir: &Path,
        segment_bytes: u64,
        closed: Vec<Segment>,
        preamble: &[Record],
    ) -> io::Result<Self> {
        let seq = closed.iter().map(|s| s.seq).max().unwrap_or(0) + 1;
        let (file, active) = new_segment(dir, seq, preamble)?;
        let len = file.metadata()?.len();
        Ok(Self {
            dir: dir.to_owned(),
            segment_bytes,
            closed,
            active,
            file,
            len,
            checkpoint: 0,
        })
    }

    /// Appends whole frames and makes them durable. On an error the
    /// segment is cut back to where it was, so later frames follow good
    /// ones.
    pub fn append(&mut self, frames: &[u8], max_lsn: u64) -> io::Result<()> {
        let result = self
            .file
            .write_all(frames)
            .and_then(|_| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += frames.len() as u64;
                self.active.max_lsn = self.active.max_lsn.max(max_lsn);
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    pub fn needs_rotation(&self) -> bool {
        self.len >= self.segment_bytes
    }

    pub fn rotate(&mut self, preamble: &[Record]) -> io::Result<()> {
        let (file, active) = new_segment(&self.dir, self.active.seq + 1, preamble)?;
        self.len = file.metadata()?.len();
        self.file = file;
        let old = std::mem::replace(&mut self.active, active);
        self.closed.push(old);
        Ok(())
    }

    /// Records that everything up to `lsn` is in the database and deletes
    /// the segments that hold nothing newer.
    pub fn set_applied(&mut self, lsn: u64) -> io::Result<()> {
        if lsn <= self.checkpoint {
            return Ok(());
        }
        let tmp = self.dir.join(format!("{CHECKPOINT}.tmp"));
        fs::write(&tmp, lsn.to_string())?;
        fs::rename(&tmp, self.dir.join(CHECKPOINT))?;
        self.checkpoint = lsn;
        while let Some(first) = self.closed.first() {
            if first.max_lsn > lsn {
                break;
            }
            fs::remove_file(&first.path)?;
            self.closed.remove(0);
        }
        Ok(())
    }
}

fn new_segment(dir: &Path, seq: u64, preamble: &[Record]) -> io::Result<(File, Segment)> {
    let path = segment_path(dir, seq);
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    let mut buf = Vec::new();
    for r in preamble {
        encode(r, &mut buf).map_err(io::Error::other)?;
    }
    file.write_all(&buf)?;
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    let max_lsn = preamble.iter().map(|r| r.lsn).max().unwrap_or(0);
    Ok((file, Segment { seq, path, max_lsn }))
}

/// What the journal thread is asked to do.
pub(crate) enum Cmd {
    /// Journal `entry`; `ack` learns whether it is durable.
    Append {
        lsn: u64,
        entry: Entry,
        ack: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Answer once everything before is durable (`false`: it could not be).
    Flush(oneshot::Sender<bool>),
    /// Everything up to this lsn is in the database.
    Applied(u64),
    Stop,
}

/// A record handed to the database writer, in lsn order. `entry` is
/// `None` when there is nothing to apply (an open that failed to journal).
#[derive(Debug)]
pub(crate) struct Forward {
    pub lsn: u64,
    pub entry: Option<Entry>,
}

/// Most commands taken into one group commit.
const MAX_GROUP: usize = 8192;

/// The journal thread: group commits until told to stop or every sender
/// is gone. `preamble` gives a new segment's first records.
pub(crate) fn run(
    mut files: Files,
    rx: mpsc::Receiver<Cmd>,
    to_writer: tokio::sync::mpsc::UnboundedSender<Forward>,
    mut last_lsn: u64,
    preamble: impl Fn(u64) -> Vec<Record>,
) {
    let mut broken = false;
    while let Ok(first) = rx.recv() {
        let mut cmds = vec![first];
        while cmds.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => cmds.push(c),
                Err(_) => break,
            }
        }
        let mut buf = Vec::new();
        let mut applied = None;
        let mut stop = false;
        let mut max_lsn = 0;
        for c in &cmds {
            match c {
                Cmd::Append { lsn, entry, .. } => {
                    let record = Record {
                        lsn: *lsn,
                        entry: entry.clone(),
                    };
                    if let Err(e) = encode(&record, &mut buf) {
                        tracing::error!(error = %e, "journal record cannot be encoded");
                    }
                    max_lsn = max_lsn.max(*lsn);
                }
                Cmd::Applied(lsn) => applied = Some(applied.unwrap_or(0).max(*lsn)),
                Cmd::Stop => stop = true,
                Cmd::Flush(_) => {}
            }
        }
        last_lsn = last_lsn.max(max_lsn);
        let written = if buf.is_empty() {
            Ok(())
        } else {
            let t = Instant::now();
            let r = files.append(&buf, max_lsn);
            metrics::histogram!("pbx_ledger_fsync_seconds").record(t.elapsed().as_secs_f64());
            r
        };
        let ok = match &written {
            Ok(()) => {
                if broken {
                    tracing::info!("ledger journal writable again");
                    broken = false;
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, records = cmds.len(), "ledger journal write failed: opens refused, changes kept in memory only");
                broken = true;
                false
            }
        };
        let reason = written.as_ref().err().map(|e| e.to_string());
        for c in cmds {
            match c {
                Cmd::Append { lsn, entry, ack } => {
                    let forward = if ok {
                        Some(entry)
                    } else {
                        match entry {
                            Entry::Change { protocol, change } => {
                                tracing::error!(%protocol, ?change, "attendance change not durable on the node (journal broken); applied from memory only");
                                Some(Entry::Change { protocol, change })
                            }
                            _ => None,
                        }
                    };
                    if let Some(ack) = ack {
                        let _ = ack.send(match &reason {
                            None => Ok(()),
                            Some(r) => Err(r.clone()),
                        });
                    }
                    let _ = to_writer.send(Forward {
                        lsn,
                        entry: forward,
                    });
                }
                Cmd::Flush(ack) => {
                    let _ = ack.send(ok);
                }
                Cmd::Applied(_) | Cmd::Stop => {}
            }
        }
        if ok
            && files.needs_rotation()
            && let Err(e) = files.rotate(&preamble(last_lsn))
        {
            tracing::error!(error = %e, "ledger journal segment rotation failed");
        }
        if let Some(lsn) = applied
            && let Err(e) = files.set_applied(lsn)
        {
            tracing::warn!(error = %e, lsn, "ledger checkpoint or segment deletion failed");
        }
        if stop {
            break;
        }
    }
}
