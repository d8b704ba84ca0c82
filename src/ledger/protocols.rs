//! Protocol numbers without a database round trip: each node reserves
//! blocks of a day's sequence ahead (one atomic upsert per block, so nodes
//! sharing PostgreSQL get disjoint blocks) and hands numbers out of them in
//! memory.
//!
//! A reserved block is journaled before any number of it is used, and each
//! number handed out is journaled by its open record; at start the blocks
//! are rebuilt from the journal minus everything up to the highest number
//! used, so a restart during a database stall goes on with the unused
//! remainder and never repeats a number. Gaps (a block reserved but never
//! journaled, numbers left when the day ends) are fine; duplicates never.
//!
//! A background refiller keeps at least half a block ahead: the block size
//! follows the recent call rate (`stall_cover` worth of calls, within
//! `min_block..=max_block`), and in the last hour before local midnight
//! the next day's block is reserved too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Timelike, Utc};

use super::journal::{Entry, Record};
use crate::domain::Protocol;

/// The node's unused protocol numbers, by day (ascending ranges).
#[derive(Debug, Default)]
pub(crate) struct Allocator {
    days: BTreeMap<NaiveDate, VecDeque<(u64, u64)>>,
    /// Days asked for with nothing left (the refiller reserves them).
    wanted: BTreeSet<NaiveDate>,
}

impl Allocator {
    /// The blocks the journal holds, minus every number up to the highest
    /// one an open record used, per day.
    pub fn from_records(records: &[Record]) -> Self {
        let mut ranges: BTreeMap<NaiveDate, Vec<(u64, u64)>> = BTreeMap::new();
        let mut used: BTreeMap<NaiveDate, u64> = BTreeMap::new();
        for r in records {
            match &r.entry {
                Entry::Block { day, first, last } => {
                    ranges.entry(*day).or_default().push((*first, *last))
                }
                Entry::Open { protocol, .. } => {
                    if let Ok(p) = Protocol::parse(protocol) {
                        let (day, seq) = p.parts();
                        let u = used.entry(day).or_default();
                        *u = (*u).max(seq);
                    }
                }
                _ => {}
            }
        }
        let mut alloc = Allocator::default();
        for (day, mut rs) in ranges {
            let floor = used.get(&day).copied().unwrap_or(0);
            rs.sort_unstable();
            for (first, last) in rs {
                alloc.add(day, first.max(floor + 1), last);
            }
        }
        alloc
    }

    /// Adds numbers `first..=last` of `day`, merged with what overlaps.
    pub fn add(&mut self, day: NaiveDate, first: u64, last: u64) {
        if first > last {
            return;
        }
        let q = self.days.entry(day).or_default();
        let mut all: Vec<(u64, u64)> = q.drain(..).chain([(first, last)]).collect();
        all.sort_unstable();
        for (f, l) in all {
            match q.back_mut() {
                Some((_, bl)) if f <= *bl + 1 => *bl = (*bl).max(l),
                _ => q.push_back((f, l)),
            }
        }
        self.wanted.remove(&day);
    }

    /// The lowest unused number of `day`.
    pub fn take(&mut self, day: NaiveDate) -> Option<u64> {
        let q = self.days.get_mut(&day);
        let Some(q) = q.filter(|q| !q.is_empty()) else {
            self.wanted.insert(day);
            return None;
        };
        let front = q.front_mut()?;
        let seq = front.0;
        if front.0 == front.1 {
            q.pop_front();
        } else {
            front.0 += 1;
        }
        Some(seq)
    }

    pub fn remaining(&self, day: NaiveDate) -> u64 {
        self.days
            .get(&day)
            .map(|q| q.iter().map(|(f, l)| l - f + 1).sum())
            .unwrap_or(0)
    }

    /// Drops the days before `day` (their numbers are no longer useful).
    pub fn forget_before(&mut self, day: NaiveDate) {
        self.days = self.days.split_off(&day);
        self.wanted = self.wanted.split_off(&day);
    }

    pub fn take_wanted(&mut self) -> Vec<NaiveDate> {
        std::mem::take(&mut self.wanted).into_iter().collect()
    }

    /// The unused blocks as journal entries (a new segment's preamble).
    pub fn snapshot(&self) -> Vec<Entry> {
        self.days
            .iter()
            .flat_map(|(day, q)| {
                q.iter().map(|(first, last)| Entry::Block {
                    day: *day,
                    first: *first,
                    last: *last,
                })
            })
            .collect()
    }
}

/// The allocator shared by `open` and the refiller, with the rate that
/// sizes the next block.
pub(crate) struct Blocks {
    pub alloc: Mutex<Allocator>,
    /// Wakes the refiller.
    pub wake: tokio::sync::Notify,
    /// Wakes opens waiting for numbers.
    pub filled: tokio::sync::Notify,
    handed: AtomicU64,
    size: AtomicU64,
    min_block: u64,
    max_block: u64,
    stall_cover: Duration,
    rate: Mutex<(Instant, u64, f64)>,
}

impl Blocks {
    pub fn new(alloc: Allocator, min_block: u64, max_block: u64, stall_cover: Duration) -> Self {
        let min_block = min_block.max(1);
        Self {
            alloc: Mutex::new(alloc),
            wake: tokio::sync::Notify::new(),
            filled: tokio::sync::Notify::new(),
            handed: AtomicU64::new(0),
            size: AtomicU64::new(min_block),
            min_block,
            max_block: max_block.max(min_block),
            stall_cover,
            rate: Mutex::new((Instant::now(), 0, 0.0)),
        }
    }

    /// A number of `day`, waking the refiller when less than half a block
    /// is left (or none).
    pub fn take(&self, day: NaiveDate) -> Option<u64> {
        let (seq, left) = {
            let mut a = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
            (a.take(day), a.remaining(day))
        };
        if seq.is_some() {
            self.handed.fetch_add(1, Ordering::Relaxed);
        }
        if seq.is_none() || left < self.block_size() / 2 {
            self.wake.notify_one();
        }
        seq
    }

    pub fn remaining(&self, day: NaiveDate) -> u64 {
        self.lock().remaining(day)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Allocator> {
        self.alloc.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn block_size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// A number of `day`, waiting up to `wait` for the refiller when there
    /// is none left (a burst that outran it).
    pub async fn take_or_wait(&self, day: NaiveDate, wait: Duration) -> Option<u64> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let filled = self.filled.notified();
            tokio::pin!(filled);
            filled.as_mut().enable();
            if let Some(seq) = self.take(day) {
                return Some(seq);
            }
            if tokio::time::timeout_at(until, filled).await.is_err() {
                return None;
            }
        }
    }

    /// Re-estimates the call rate (at most five times a second) and so the
    /// block size: enough numbers to ride out `stall_cover` at that rate.
    pub fn update_size(&self) -> u64 {
        let mut r = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = r.0.elapsed().as_secs_f64();
        if elapsed >= 0.2 {
            let handed = self.handed.load(Ordering::Relaxed);
            let now_rate = (handed - r.1) as f64 / elapsed;
            // Rises at once with a burst, decays slowly.
            r.2 = now_rate.max(r.2 * 0.95 + now_rate * 0.05);
            *r = (Instant::now(), handed, r.2);
            let want = (r.2 * self.stall_cover.as_secs_f64()).ceil() as u64;
            self.size.store(
                want.clamp(self.min_block, self.max_block),
                Ordering::Relaxed,
            );
        }
        self.block_size()
    }
}

/// The days that need numbers now: today, tomorrow in the last hour
/// before local midnight, and any day an open found empty (not older than
/// yesterday).
pub(crate) fn days_to_fill(tz: chrono_tz::Tz, wanted: Vec<NaiveDate>) -> Vec<NaiveDate> {
    let now = Utc::now().with_timezone(&tz);
    let today = now.date_naive();
    let mut days = vec![today];
    if now.hour() == 23
        && let Some(next) = today.succ_opt()
    {
        days.push(next);
    }
    let yesterday = today.pred_opt().unwrap_or(today);
    for d in wanted {
        if d >= yesterday && !days.contains(&d) {
            days.push(d);
        }
    }
    days
}

/// Reserves `size` numbers of `day` in the database, journals the block,
/// then lets `open` use it.
pub(crate) async fn reserve(
    store: &crate::store::Store,
    blocks: &Blocks,
    submitter: &super::Submitter,
    day: NaiveDate,
    size: u64,
) -> Result<(), super::LedgerError> {
    let (first, last) = store.reserve_protocol_block(day, size).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    submitter
        .append(Entry::Block { day, first, last }, Some(tx))
        .map_err(|_| super::LedgerError::Closed)?;
    rx.await
        .map_err(|_| super::LedgerError::Closed)?
        .map_err(super::LedgerError::Journal)?;
    blocks.lock().add(day, first, last);
    blocks.filled.notify_waiters();
    tracing::debug!(%day, first, last, "protocol block reserved");
    Ok(())
}

/// Keeps numbers ahead (see the module doc) until `stop`.
pub(crate) async fn refill(
    store: crate::store::Store,
    blocks: std::sync::Arc<Blocks>,
    submitter: std::sync::Arc<super::Submitter>,
    tz: chrono_tz::Tz,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut failing = false;
    let mut backoff = super::writer::BACKOFF_MIN;
    loop {
        tokio::select! {
            _ = blocks.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let size = blocks.update_size();
        let wanted = blocks.lock().take_wanted();
        let days = days_to_fill(tz, wanted);
        if let Some(yesterday) = days[0].pred_opt() {
            blocks.lock().forget_before(yesterday);
        }
        for day in days {
            if blocks.remaining(day) >= size / 2 {
                continue;
            }
            let r = tokio::select! {
                r = reserve(&store, &blocks, &submitter, day, size) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match r {
                Ok(()) => {
                    backoff = super::writer::BACKOFF_MIN;
                    if failing {
                        tracing::info!(%day, "protocol numbers reserved again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(%day, left = blocks.remaining(day), error = %e, "cannot reserve protocol numbers (retrying)");
                        failing = true;
                    }
                    blocks.lock().wanted.insert(day);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    backoff = super::writer::next_backoff(backoff);
                    break;
                }
            }
        }
    }
}
