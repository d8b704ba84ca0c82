//! The node ledger's statements (`crate::ledger`): applying a batch of
//! journaled attendance records in one transaction, and reserving a block
//! of protocol numbers.
//!
//! Every step is idempotent, because a batch may be applied twice (the
//! process can die between the commit and the ledger's applied-position
//! checkpoint): the open inserts `ON CONFLICT DO NOTHING`, the first answer
//! wins, an ended call is not ended again, a transfer already in the list
//! is not appended again, a recording is set to the same values.

use chrono::NaiveDate;

use super::attendances::{
    ANSWER_SQL, ATTACH_RECORDING_SQL, CLOSE_IF_OPEN_SQL, NewAttendance, insert_ringing,
};
use super::row::{int, json, ms, to_json};
use super::{Backend, Store, StoreError};
use crate::domain::{Protocol, Transfer};
use crate::ledger::AttendanceChange;

const ASSIGN_SQL: &str = "UPDATE attendances SET department_id = COALESCE($1, department_id), \
     agent_id = COALESCE($2, agent_id), last_activity_at = $3 WHERE protocol = $4";
const END_SQL: &str = "UPDATE attendances SET ended_at = $1, last_activity_at = $1 \
     WHERE protocol = $2 AND ended_at IS NULL";
const TRANSFERS_SQL: &str = "SELECT transfers FROM attendances WHERE protocol = $1";
const SET_TRANSFERS_SQL: &str = "UPDATE attendances SET transfers = $1, \
     department_id = COALESCE($2, department_id), last_activity_at = $3 WHERE protocol = $4";
/// Takes `$2` numbers of day `$1` at once; atomic on both databases, so
/// nodes sharing PostgreSQL get disjoint blocks.
const RESERVE_SQL: &str = "INSERT INTO protocol_sequences (day, last) VALUES ($1, $2) \
     ON CONFLICT (day) DO UPDATE SET last = protocol_sequences.last + $2 RETURNING last";

/// One journaled record to apply.
#[derive(Debug, Clone, Copy)]
pub enum LedgerStep<'a> {
    Open {
        protocol: &'a str,
        new: &'a NewAttendance,
    },
    Change {
        protocol: &'a str,
        change: &'a AttendanceChange,
    },
}

impl LedgerStep<'_> {
    pub fn protocol(&self) -> &str {
        match self {
            LedgerStep::Open { protocol, .. } | LedgerStep::Change { protocol, .. } => protocol,
        }
    }
}

impl Store {
    /// Applies `steps` in order in ONE transaction: all or nothing, so a
    /// failed batch is retried whole.
    pub async fn apply_ledger_batch(&self, steps: &[LedgerStep<'_>]) -> Result<(), StoreError> {
        let mut tx = match self.backend {
            // Takes the write lock at once (see `attendance_batch`).
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        for step in steps {
            apply_step(&mut tx, step).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Reserves `n` protocol numbers of `day`; returns the first and the
    /// last of the block (inclusive).
    pub async fn reserve_protocol_block(
        &self,
        day: NaiveDate,
        n: u64,
    ) -> Result<(u64, u64), StoreError> {
        let n = i64::try_from(n.max(1)).unwrap_or(i64::MAX);
        let row = sqlx::query(RESERVE_SQL)
            .bind(day.format("%Y%m%d").to_string())
            .bind(n)
            .fetch_one(&self.pool)
            .await?;
        let last = int(&row, "last")?;
        let first = last - n + 1;
        if first < 1 {
            return Err(StoreError::Corrupt(format!(
                "protocol_sequences.last = {last} for {day}"
            )));
        }
        Ok((first as u64, last as u64))
    }
}

async fn apply_step(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    step: &LedgerStep<'_>,
) -> Result<(), StoreError> {
    let (protocol, change) = match step {
        LedgerStep::Open { protocol, new } => {
            let p = Protocol::parse(protocol)
                .map_err(|e| StoreError::Corrupt(format!("protocol {protocol}: {e}")))?;
            insert_ringing(&mut **tx, &p, new).await?;
            return Ok(());
        }
        LedgerStep::Change { protocol, change } => (*protocol, *change),
    };
    match change {
        AttendanceChange::Assigned {
            department_id,
            agent_id,
            at,
        } => {
            let done = sqlx::query(ASSIGN_SQL)
                .bind(*department_id)
                .bind(*agent_id)
                .bind(ms(*at))
                .bind(protocol)
                .execute(&mut **tx)
                .await?;
            if done.rows_affected() == 0 {
                // A call continuing an attendance (X-Protocol from the PBX)
                // whose protocol is not here: nothing to write, nothing to
                // retry; the changes of such a call all touch no row.
                tracing::warn!(%protocol, "attendance change for an unknown protocol skipped");
            }
        }
        AttendanceChange::Answered { agent_id, at } => {
            sqlx::query(ANSWER_SQL)
                .bind(ms(*at))
                .bind(*agent_id)
                .bind(protocol)
                .execute(&mut **tx)
                .await?;
        }
        AttendanceChange::Transferred(transfer) => {
            let Some(row) = sqlx::query(TRANSFERS_SQL)
                .bind(protocol)
                .fetch_optional(&mut **tx)
                .await?
            else {
                return Ok(());
            };
            let mut transfers: Vec<Transfer> = json(&row, "transfers")?;
            if transfers
                .iter()
                .any(|t| t.at == transfer.at && t.target == transfer.target)
            {
                return Ok(());
            }
            transfers.push(transfer.clone());
            sqlx::query(SET_TRANSFERS_SQL)
                .bind(to_json(&transfers))
                .bind(transfer.department_id)
                .bind(ms(transfer.at))
                .bind(protocol)
                .execute(&mut **tx)
                .await?;
        }
        AttendanceChange::Ended { at, close } => {
            sqlx::query(END_SQL)
                .bind(ms(*at))
                .bind(protocol)
                .execute(&mut **tx)
                .await?;
            if let Some(reason) = close {
                sqlx::query(CLOSE_IF_OPEN_SQL)
                    .bind(reason.as_str())
                    .bind(ms(*at))
                    .bind(protocol)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        AttendanceChange::RecordingAttached {
            path,
            duration_ms,
            bytes,
            sha256,
        } => {
            sqlx::query(ATTACH_RECORDING_SQL)
                .bind(path)
                .bind(i64::try_from(*duration_ms).unwrap_or(i64::MAX))
                .bind(i64::try_from(*bytes).unwrap_or(i64::MAX))
                .bind(sha256)
                .bind(protocol)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

impl StoreError {
    /// Whether retrying cannot help: the database answered and refused
    /// this data (a constraint), as opposed to being slow or unreachable.
    pub fn is_refusal(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                !matches!(db.kind(), sqlx::error::ErrorKind::Other)
            }
            StoreError::Corrupt(_) | StoreError::Invalid(_) | StoreError::Conflict(_) => true,
            _ => false,
        }
    }
}
