//! The database writer: applies journaled records in journal order, in
//! batches of one transaction each, retrying forever with exponential
//! backoff while the database is slow or away. After each commit it tells
//! the journal how far it got (the checkpoint, which lets old segments go).
//!
//! A batch the database refuses (a constraint, e.g. a department deleted
//! meanwhile) is retried one record per transaction, and only the record
//! refused is skipped, with an error log: one bad record never blocks the
//! ones behind it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::Submitter;
use super::journal::{Cmd, Entry, Forward};
use crate::store::{LedgerStep, Store, StoreError};

pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

fn steps(records: &[(u64, Option<Entry>)]) -> Vec<LedgerStep<'_>> {
    records
        .iter()
        .filter_map(|(_, e)| match e.as_ref()? {
            Entry::Open { protocol, new } => Some(LedgerStep::Open { protocol, new }),
            Entry::Change { protocol, change } => Some(LedgerStep::Change { protocol, change }),
            Entry::Block { .. } | Entry::Header { .. } => None,
        })
        .collect()
}

/// Applies `records` (one transaction; refused ones isolated and skipped).
pub(crate) async fn apply(
    store: &Store,
    records: &[(u64, Option<Entry>)],
) -> Result<(), StoreError> {
    let steps = steps(records);
    if steps.is_empty() {
        return Ok(());
    }
    match store.apply_ledger_batch(&steps).await {
        Err(e) if e.is_refusal() => {
            for step in &steps {
                match store.apply_ledger_batch(std::slice::from_ref(step)).await {
                    Err(e) if e.is_refusal() => {
                        metrics::counter!("pbx_ledger_apply_errors_total").increment(1);
                        tracing::error!(protocol = step.protocol(), ?step, error = %e, "the database refuses a journaled attendance record; skipped");
                    }
                    other => other?,
                }
            }
            Ok(())
        }
        other => other,
    }
}

/// Logs a database outage once when it starts and once when it is over.
#[derive(Default)]
pub(crate) struct Outage {
    since: Option<Instant>,
    applied: usize,
}

impl Outage {
    pub fn failed(&mut self, protocol: Option<&str>, error: &StoreError) {
        metrics::counter!("pbx_ledger_apply_errors_total").increment(1);
        if self.since.is_none() {
            self.since = Some(Instant::now());
            self.applied = 0;
            tracing::warn!(protocol = protocol.unwrap_or(""), error = %error, "database not answering: attendance records wait in the node journal (retrying)");
        }
    }

    /// `caught_up`: nothing more is waiting.
    pub fn succeeded(&mut self, n: usize, caught_up: bool) {
        if let Some(since) = self.since {
            self.applied += n;
            if caught_up {
                tracing::info!(
                    applied = self.applied,
                    outage_s = since.elapsed().as_secs_f64(),
                    "database answers again: journaled attendance records applied"
                );
                self.since = None;
            }
        }
    }
}

pub(crate) fn first_protocol(records: &[(u64, Option<Entry>)]) -> Option<&str> {
    records
        .iter()
        .find_map(|(_, e)| e.as_ref().and_then(|e| e.protocol()))
}

pub(crate) fn next_backoff(b: Duration) -> Duration {
    (b * 2).min(BACKOFF_MAX)
}

pub(crate) struct Writer {
    pub store: Store,
    pub rx: mpsc::UnboundedReceiver<Forward>,
    pub applied: Arc<watch::Sender<u64>>,
    pub submitter: Arc<Submitter>,
    pub stop: watch::Receiver<bool>,
    pub batch_max: usize,
}

impl Writer {
    pub async fn run(mut self) {
        let mut pending: VecDeque<(u64, Option<Entry>)> = VecDeque::new();
        let mut outage = Outage::default();
        let mut backoff = BACKOFF_MIN;
        loop {
            if pending.is_empty() {
                tokio::select! {
                    f = self.rx.recv() => match f {
                        Some(f) => pending.push_back((f.lsn, f.entry)),
                        None => return,
                    },
                    _ = self.stop.wait_for(|s| *s) => return,
                }
            }
            while let Ok(f) = self.rx.try_recv() {
                pending.push_back((f.lsn, f.entry));
            }
            self.gauge();
            let n = pending.len().min(self.batch_max.max(1));
            let batch: Vec<(u64, Option<Entry>)> = pending.range(..n).cloned().collect();
            let result = tokio::select! {
                r = apply(&self.store, &batch) => r,
                _ = self.stop.wait_for(|s| *s) => return,
            };
            match result {
                Ok(()) => {
                    backoff = BACKOFF_MIN;
                    pending.drain(..n);
                    let last = batch.last().map(|(l, _)| *l).unwrap_or(0);
                    self.applied.send_if_modified(|a| {
                        let changed = last > *a;
                        *a = (*a).max(last);
                        changed
                    });
                    self.submitter.send(Cmd::Applied(last));
                    outage.succeeded(n, pending.is_empty() && self.rx.is_empty());
                    self.gauge();
                }
                Err(e) => {
                    outage.failed(first_protocol(&batch), &e);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {},
                        _ = self.stop.wait_for(|s| *s) => return,
                    }
                    backoff = next_backoff(backoff);
                }
            }
        }
    }

    fn gauge(&self) {
        let backlog = self
            .submitter
            .last_lsn()
            .saturating_sub(*self.applied.borrow());
        metrics::gauge!("pbx_ledger_backlog").set(backlog as f64);
    }
}
