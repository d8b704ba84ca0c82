//! The follower's task: applies the tracker's decisions in order, in
//! batches, retried while the database is unavailable, and counts what it
//! applied (metrics, benchmarks). A child of the client so it reads the
//! client's shared counters without widening them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{AmiHandle, Batch, ToFollower, lock};
use crate::ami::follow::Follower;
use crate::ami::tracker::CallDecision;

/// Most decisions written in one transaction (a backlog is drained in
/// chunks of this size; a single read's decisions are never split).
const MAX_DECISIONS_PER_TX: usize = 512;

/// Applies decisions in order. Everything already queued is written in one
/// transaction; a failed transaction is retried (see [`store_with_retry`]),
/// so a database outage delays decisions but loses none.
pub(super) async fn follow(
    mut follower: Follower,
    mut rx: mpsc::UnboundedReceiver<ToFollower>,
    handle: AmiHandle,
) {
    let mut next: Option<ToFollower> = None;
    let mut batches: Vec<Batch> = Vec::new();
    let mut decisions: Vec<CallDecision> = Vec::new();
    loop {
        let msg = match next.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => break,
            },
        };
        let first = match msg {
            ToFollower::Directory(d) => {
                follower.set_directory(d);
                continue;
            }
            ToFollower::Batch(b) => b,
            ToFollower::OriginateFailed { protocol, reason } => {
                follower.originate_failed(&protocol, &reason).await;
                continue;
            }
            ToFollower::HangupRequested { linkedid } => {
                follower.hangup_requested(&linkedid, true);
                continue;
            }
            ToFollower::HangupRefused { linkedid } => {
                follower.hangup_requested(&linkedid, false);
                continue;
            }
        };
        // Take whatever else is already queued (up to a directory change).
        decisions.clear();
        decisions.extend_from_slice(&first.decisions);
        batches.push(first);
        while decisions.len() < MAX_DECISIONS_PER_TX {
            match rx.try_recv() {
                Ok(ToFollower::Batch(b)) => {
                    decisions.extend_from_slice(&b.decisions);
                    batches.push(b);
                }
                Ok(other) => {
                    next = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        store_with_retry(&mut follower, &decisions).await;
        let record =
            handle.0.running.load(Ordering::Relaxed) && lock(&handle.0.tuning).record_latencies;
        let mut kept = Vec::new();
        for b in batches.drain(..) {
            let took = b.received.elapsed();
            metrics::histogram!("pbx_ami_ingest_seconds").record(took.as_secs_f64());
            if record {
                kept.push(took);
            }
        }
        if !kept.is_empty() {
            lock(&handle.0.latencies).extend(kept);
        }
        handle
            .0
            .applied
            .fetch_add(decisions.len() as u64, Ordering::Relaxed);
    }
}

/// Writes `decisions` in one transaction; if it fails, one decision per
/// transaction, each retried with a growing pause (capped at 5 s) for as
/// long as the database is unavailable. Only a decision the database
/// rejects as such (a constraint) is given up, logged with its content and
/// counted in `pbx_ami_decisions_failed_total`.
async fn store_with_retry(follower: &mut Follower, decisions: &[CallDecision]) {
    let Err(e) = follower.apply_batch(decisions).await else {
        return;
    };
    if decisions.len() > 1 {
        tracing::warn!(error = %e, decisions = decisions.len(), "AMI decisions not stored together; storing them one by one");
    }
    for d in decisions {
        let mut pause = Duration::from_millis(50);
        let mut attempt = 0u32;
        loop {
            let err = match follower.apply(d).await {
                Ok(_) => break,
                Err(err) => err,
            };
            attempt += 1;
            if !retryable(&err) {
                metrics::counter!("pbx_ami_decisions_failed_total").increment(1);
                tracing::error!(error = %err, linkedid = d.linkedid(), decision = ?d, "cannot record AMI call decision");
                break;
            }
            if attempt == 1 || attempt.is_power_of_two() {
                tracing::error!(error = %err, attempt, linkedid = d.linkedid(), "cannot record AMI call decision yet; retrying");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

/// A failure that may pass (connection, lock, disk…), unlike a constraint
/// the data itself breaks.
fn retryable(e: &crate::store::StoreError) -> bool {
    use crate::store::StoreError;
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => !matches!(
            db.kind(),
            sqlx::error::ErrorKind::UniqueViolation
                | sqlx::error::ErrorKind::ForeignKeyViolation
                | sqlx::error::ErrorKind::NotNullViolation
                | sqlx::error::ErrorKind::CheckViolation
        ),
        // Shutting down: nothing will ever succeed.
        StoreError::Database(sqlx::Error::PoolClosed) => false,
        StoreError::Database(_) | StoreError::Unavailable(_) => true,
        _ => false,
    }
}
