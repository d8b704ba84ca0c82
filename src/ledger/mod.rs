//! The node's attendance ledger (SPEC §4: "a slow or unreachable database
//! never delays, refuses or drops a call").
//!
//! A call opens its attendance and records its changes here, waiting only
//! on the local disk: the protocol number comes from a block this node
//! reserved ahead ([`protocols`]), the record is made durable in a local
//! journal with group commit ([`journal`]), and a single writer task
//! applies the journal to the database in order, in batched transactions,
//! retrying forever while the database stalls ([`writer`]). At start the
//! journal is read back and whatever had not reached the database is
//! applied before the service goes on (crash recovery then sees it).
//!
//! One journal thread gives every record its place (lsn) in one total
//! order; the writer applies them in that order, so an attendance's changes
//! always follow its open.

mod journal;
mod protocols;
#[cfg(test)]
mod tests;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use tokio::sync::{oneshot, watch};

use crate::domain::{Protocol, ProtocolError};
pub use crate::store::NewAttendance;
use crate::store::{Store, StoreError};
use journal::{Cmd, Entry, Record};
use protocols::{Allocator, Blocks};

/// A change of an opened attendance: the domain's vocabulary.
pub use crate::domain::AttendanceChange;

/// Where the journal lives and how the ledger behaves.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The journal's directory (created).
    pub dir: PathBuf,
    /// This node's name (journal headers, logs).
    pub node: String,
    /// The installation's time zone (protocol days).
    pub time_zone: chrono_tz::Tz,
    /// Smallest protocol block reserved at once.
    pub min_block: u64,
    /// Largest protocol block reserved at once.
    pub max_block: u64,
    /// A block holds this long of calls at the recent rate (a stall of the
    /// database this long never runs out of numbers).
    pub stall_cover: Duration,
    /// A segment past this size is closed and a new one started.
    pub segment_bytes: u64,
    /// Most records in one database transaction.
    pub batch_max: usize,
    /// How long `start` waits for the database to take the replay.
    pub start_timeout: Duration,
    /// How long `open` waits for the refiller when a burst used every
    /// number the node held for the day (never otherwise).
    pub empty_wait: Duration,
}

impl LedgerConfig {
    pub fn new(dir: impl Into<PathBuf>, node: impl Into<String>, time_zone: chrono_tz::Tz) -> Self {
        Self {
            dir: dir.into(),
            node: node.into(),
            time_zone,
            min_block: 200,
            max_block: 10_000,
            stall_cover: Duration::from_secs(60),
            segment_bytes: 64 << 20,
            batch_max: 500,
            start_timeout: Duration::from_secs(300),
            empty_wait: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The record could not be made durable on the node.
    #[error("ledger journal cannot make it durable: {0}")]
    Journal(String),
    /// No protocol number reserved for that day (yet).
    #[error("no protocol number reserved for {0}")]
    NoProtocol(NaiveDate),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database did not answer within {timeout:?} at start: {source}")]
    StartTimeout {
        timeout: Duration,
        #[source]
        source: StoreError,
    },
    #[error("the ledger is shut down")]
    Closed,
}

/// Hands records to the journal thread with their lsn: the lock makes
/// the channel order the lsn order.
pub(crate) struct Submitter {
    state: Mutex<(u64, Option<std::sync::mpsc::Sender<Cmd>>)>,
}

impl Submitter {
    fn new(next: u64, tx: std::sync::mpsc::Sender<Cmd>) -> Self {
        Self {
            state: Mutex::new((next, Some(tx))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Option<std::sync::mpsc::Sender<Cmd>>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `entry`; its lsn, or the entry back once the journal is closed.
    pub(crate) fn append(
        &self,
        entry: Entry,
        ack: Option<oneshot::Sender<Result<(), String>>>,
    ) -> Result<u64, Box<Entry>> {
        let mut s = self.lock();
        let lsn = s.0;
        let Some(tx) = s.1.as_ref() else {
            return Err(Box::new(entry));
        };
        match tx.send(Cmd::Append { lsn, entry, ack }) {
            Ok(()) => {
                s.0 += 1;
                Ok(lsn)
            }
            Err(std::sync::mpsc::SendError(cmd)) => match cmd {
                Cmd::Append { entry, .. } => Err(Box::new(entry)),
                _ => unreachable!("an append was sent"),
            },
        }
    }

    pub(crate) fn send(&self, cmd: Cmd) -> bool {
        self.lock()
            .1
            .as_ref()
            .is_some_and(|tx| tx.send(cmd).is_ok())
    }

    /// The lsn of the last record queued.
    pub(crate) fn last_lsn(&self) -> u64 {
        self.lock().0 - 1
    }

    fn close(&self) {
        self.lock().1 = None;
    }
}

/// The node's attendance ledger. Cheap to clone.
#[derive(Clone)]
pub struct Ledger(Arc<Inner>);

struct Inner {
    submitter: Arc<Submitter>,
    blocks: Arc<Blocks>,
    applied: Arc<watch::Sender<u64>>,
    stop: watch::Sender<bool>,
    tz: chrono_tz::Tz,
    empty_wait: Duration,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.submitter.close();
    }
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.to_owned(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

impl Ledger {
    /// Opens (creates) the journal in config.dir, reads it, applies every record not yet applied
    /// to the store BEFORE returning (start-up: crash recovery runs right after and must see them;
    /// retry while the DB does not answer, bounded by a generous timeout, then return an error),
    /// reserves protocol blocks, and spawns the journal and writer tasks.
    pub async fn start(store: Store, config: LedgerConfig) -> Result<Ledger, LedgerError> {
        let dir = config.dir.clone();
        let (lock, replay) = {
            let dir = dir.clone();
            blocking(move || {
                let lock = journal::lock(&dir, Duration::from_secs(5))?;
                Ok((lock, journal::replay(&dir)?))
            })
            .await
            .map_err(io_err(&config.dir))?
        };
        let deadline = Instant::now() + config.start_timeout;
        let pending: Vec<(u64, Option<Entry>)> = replay
            .records
            .iter()
            .filter(|r| r.lsn > replay.checkpoint && r.entry.protocol().is_some())
            .map(|r| (r.lsn, Some(r.entry.clone())))
            .collect();
        apply_bounded(
            &store,
            &pending,
            config.batch_max,
            deadline,
            config.start_timeout,
        )
        .await?;
        if !pending.is_empty() {
            tracing::info!(
                records = pending.len(),
                "ledger: journaled attendance records replayed into the database"
            );
        }
        let blocks = Arc::new(Blocks::new(
            Allocator::from_records(&replay.records),
            config.min_block,
            config.max_block,
            config.stall_cover,
        ));
        let last_lsn = replay.last_lsn;
        let preamble = {
            let (node, blocks) = (config.node.clone(), blocks.clone());
            move |lsn: u64| {
                let header = Entry::Header { node: node.clone() };
                std::iter::once(header)
                    .chain(blocks.lock().snapshot())
                    .map(|entry| Record { lsn, entry })
                    .collect::<Vec<_>>()
            }
        };
        let files = {
            let (d, first) = (dir.clone(), preamble(last_lsn));
            let (bytes, old) = (config.segment_bytes, replay.segments);
            blocking(move || {
                let mut files = journal::Files::create(&d, bytes, old, &first)?;
                files.set_applied(last_lsn)?;
                Ok(files)
            })
            .await
            .map_err(io_err(&dir))?
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let (fwd_tx, fwd_rx) = tokio::sync::mpsc::unbounded_channel();
        let submitter = Arc::new(Submitter::new(last_lsn + 1, tx));
        let thread = std::thread::Builder::new()
            .name("ledger-journal".into())
            .spawn(move || {
                journal::run(files, rx, fwd_tx, last_lsn, preamble);
                drop(lock);
            })
            .map_err(io_err(&dir))?;
        let (stop, stop_rx) = watch::channel(false);
        let applied = Arc::new(watch::Sender::new(last_lsn));
        let ledger = Ledger(Arc::new(Inner {
            submitter: submitter.clone(),
            blocks: blocks.clone(),
            applied: applied.clone(),
            stop,
            tz: config.time_zone,
            empty_wait: config.empty_wait,
            thread: Mutex::new(Some(thread)),
        }));
        // Numbers for today before the first call, if none are left over.
        let today = Protocol::day(Utc::now(), config.time_zone);
        let mut backoff = writer::BACKOFF_MIN;
        while blocks.remaining(today) == 0 {
            match protocols::reserve(&store, &blocks, &submitter, today, config.min_block).await {
                Ok(()) => {}
                Err(LedgerError::Store(e)) if Instant::now() < deadline => {
                    tracing::warn!(error = %e, "ledger: cannot reserve protocol numbers yet (retrying)");
                    tokio::time::sleep(backoff).await;
                    backoff = writer::next_backoff(backoff);
                }
                Err(e) => return Err(e),
            }
        }
        tokio::spawn(
            writer::Writer {
                store: store.clone(),
                rx: fwd_rx,
                applied,
                submitter: submitter.clone(),
                stop: stop_rx.clone(),
                batch_max: config.batch_max,
            }
            .run(),
        );
        tokio::spawn(protocols::refill(
            store,
            blocks.clone(),
            submitter,
            config.time_zone,
            stop_rx,
        ));
        blocks.wake.notify_one();
        Ok(ledger)
    }

    /// Allocates the call's protocol from this node's reserved block (no DB round trip) and
    /// makes the opening durable on the node (journal write + group-commit fsync). Waits only
    /// on the local disk (and, only when a burst used up every number the node held for the
    /// day, up to `LedgerConfig::empty_wait` for the background refill). Err = the node cannot make it durable (disk full/journal broken, or no
    /// protocol number reserved for that day): the caller answers 503 + Retry-After.
    pub async fn open(&self, new: NewAttendance) -> Result<Protocol, LedgerError> {
        let day = Protocol::day(new.opened_at, self.0.tz);
        let Some(seq) = self.0.blocks.take_or_wait(day, self.0.empty_wait).await else {
            tracing::error!(%day, "no protocol number reserved for the day: call refused");
            return Err(LedgerError::NoProtocol(day));
        };
        let protocol = Protocol::new(day, seq)?;
        let (tx, rx) = oneshot::channel();
        let entry = Entry::Open {
            protocol: protocol.to_string(),
            new,
        };
        self.0
            .submitter
            .append(entry, Some(tx))
            .map_err(|_| LedgerError::Closed)?;
        match rx.await {
            Ok(Ok(())) => {
                tracing::debug!(%protocol, "attendance opened (durable on the node)");
                Ok(protocol)
            }
            Ok(Err(e)) => {
                tracing::error!(%protocol, error = %e, "attendance cannot be made durable: call refused");
                Err(LedgerError::Journal(e))
            }
            Err(_) => Err(LedgerError::Closed),
        }
    }

    /// Appends a change of an opened attendance. Never blocks, never fails the caller: durable at
    /// the next group commit, applied to the DB in order after the open.
    pub fn record(&self, protocol: &str, change: AttendanceChange) {
        let entry = Entry::Change {
            protocol: protocol.to_owned(),
            change,
        };
        if let Err(entry) = self.0.submitter.append(entry, None) {
            tracing::error!(
                protocol,
                ?entry,
                "ledger is shut down: attendance change not recorded"
            );
        }
    }

    /// Resolves when everything recorded before the call is durable on the node.
    pub async fn durable(&self) {
        let (tx, rx) = oneshot::channel();
        if self.0.submitter.send(Cmd::Flush(tx)) {
            let _ = rx.await;
        }
    }

    /// Resolves when everything recorded before the call is in the database (or the timeout passes: false).
    pub async fn applied(&self, timeout: Duration) -> bool {
        let target = self.0.submitter.last_lsn();
        let mut rx = self.0.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|a| *a >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Records journaled but not yet in the database (metrics `pbx_ledger_backlog`, /readyz detail).
    pub fn backlog(&self) -> usize {
        let applied = *self.0.applied.borrow();
        self.0.submitter.last_lsn().saturating_sub(applied) as usize
    }

    /// At shutdown: make everything durable, then give the writer `grace` to apply.
    pub async fn shutdown(&self, grace: Duration) {
        self.durable().await;
        if !self.applied(grace).await {
            tracing::warn!(
                backlog = self.backlog(),
                "ledger: records not yet in the database stay in the node journal (applied at the next start)"
            );
        }
        let _ = self.0.stop.send(true);
        self.0.submitter.send(Cmd::Stop);
        self.0.submitter.close();
        let thread = self.0.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    /// Protocol numbers of `day` this node holds unused (tests, diagnostics).
    pub fn reserved(&self, day: NaiveDate) -> u64 {
        self.0.blocks.remaining(day)
    }
}

/// Start-up: applies `pending` in batches, retrying until `deadline`.
async fn apply_bounded(
    store: &Store,
    pending: &[(u64, Option<Entry>)],
    batch_max: usize,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), LedgerError> {
    let mut outage = writer::Outage::default();
    let chunks: Vec<_> = pending.chunks(batch_max.max(1)).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut backoff = writer::BACKOFF_MIN;
        loop {
            match writer::apply(store, chunk).await {
                Ok(()) => {
                    outage.succeeded(chunk.len(), i + 1 == chunks.len());
                    break;
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(LedgerError::StartTimeout { timeout, source: e });
                }
                Err(e) => {
                    outage.failed(writer::first_protocol(chunk), &e);
                    tokio::time::sleep(backoff).await;
                    backoff = writer::next_backoff(backoff);
                }
            }
        }
    }
    Ok(())
}
