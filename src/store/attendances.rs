//! Attendances: opened before anyone rings, closed with a reason, listed and
//! exported for the platform.

use futures_util::{Stream, StreamExt};
use sqlx::any::AnyRow;

use super::row::{get_ts, int, json, ms, now_ms, opt_int, opt_text, opt_ts, parsed, text};
use super::{Page, Store, StoreError};
use crate::domain::{
    Attendance, AttendanceStatus, CallSource, CloseReason, Direction, Id, Protocol, RecordingInfo,
    Timestamp,
};

macro_rules! select {
    () => {
        "SELECT protocol, direction, status, department_id, agent_id, caller, callee, \
         opened_at, answered_at, ended_at, closed_at, close_reason, source, transfers, \
         recording_duration_ms, recording_bytes, recording_sha256 FROM attendances"
    };
}

/// Filters of `GET /attendances`; each is optional.
#[derive(Debug, Clone, Default)]
pub struct AttendanceFilter {
    pub status: Option<AttendanceStatus>,
    pub department_id: Option<Id>,
    pub agent_id: Option<Id>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// What is known when a call arrives.
#[derive(Debug, Clone)]
pub struct NewAttendance {
    pub direction: Direction,
    pub department_id: Option<Id>,
    pub agent_id: Option<Id>,
    pub caller: String,
    pub callee: String,
    pub source: CallSource,
    pub opened_at: Timestamp,
    /// The call's reference (SIP Call-ID or AMI Linkedid), to find it again.
    pub call_ref: Option<String>,
}

fn from_row(row: &AnyRow) -> Result<Attendance, StoreError> {
    let recording = match opt_text(row, "recording_sha256")? {
        Some(sha256) => Some(RecordingInfo {
            duration_ms: opt_int(row, "recording_duration_ms")?.unwrap_or(0).max(0) as u64,
            bytes: opt_int(row, "recording_bytes")?.unwrap_or(0).max(0) as u64,
            sha256,
        }),
        None => None,
    };
    Ok(Attendance {
        protocol: text(row, "protocol")?,
        direction: parsed(row, "direction")?,
        status: parsed(row, "status")?,
        department_id: opt_int(row, "department_id")?,
        agent_id: opt_int(row, "agent_id")?,
        caller: text(row, "caller")?,
        callee: text(row, "callee")?,
        opened_at: get_ts(row, "opened_at")?,
        answered_at: opt_ts(row, "answered_at")?,
        ended_at: opt_ts(row, "ended_at")?,
        closed_at: opt_ts(row, "closed_at")?,
        close_reason: opt_text(row, "close_reason")?
            .map(|s| s.parse::<CloseReason>().map_err(StoreError::Corrupt))
            .transpose()?,
        source: parsed(row, "source")?,
        transfers: json(row, "transfers")?,
        recording,
    })
}

impl Store {
    /// Allocates a protocol and persists the attendance in `ringing`.
    pub async fn open_attendance(
        &self,
        new: &NewAttendance,
        tz: chrono_tz::Tz,
    ) -> Result<Attendance, StoreError> {
        let protocol = self.next_protocol(Protocol::day(new.opened_at, tz)).await?;
        let at = ms(new.opened_at);
        sqlx::query(
            "INSERT INTO attendances (protocol, direction, status, department_id, agent_id, \
             caller, callee, opened_at, source, transfers, last_activity_at, call_ref) \
             VALUES ($1, $2, 'ringing', $3, $4, $5, $6, $7, $8, '[]', $7, $9)",
        )
        .bind(protocol.as_str())
        .bind(new.direction.as_str())
        .bind(new.department_id)
        .bind(new.agent_id)
        .bind(&new.caller)
        .bind(&new.callee)
        .bind(at)
        .bind(new.source.as_str())
        .bind(new.call_ref.as_deref())
        .execute(&self.pool)
        .await?;
        self.get_attendance(protocol.as_str()).await
    }

    pub async fn get_attendance(&self, protocol: &str) -> Result<Attendance, StoreError> {
        let row = sqlx::query(concat!(select!(), " WHERE protocol = $1"))
            .bind(protocol)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    /// Newest first; the cursor is the last protocol of the previous page
    /// (protocols sort by day then sequence).
    pub async fn list_attendances(
        &self,
        filter: &AttendanceFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<Attendance>, StoreError> {
        let rows = sqlx::query(concat!(
            select!(),
            " WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR department_id = $2) \
             AND ($3 IS NULL OR agent_id = $3) AND ($4 IS NULL OR opened_at >= $4) \
             AND ($5 IS NULL OR opened_at < $5) AND ($6 IS NULL OR protocol < $6) \
             ORDER BY protocol DESC LIMIT $7"
        ))
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.department_id)
        .bind(filter.agent_id)
        .bind(filter.from.map(ms))
        .bind(filter.to.map(ms))
        .bind(before)
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, limit, |a| a.protocol.clone()))
    }

    /// Attendances opened in `[from, to)`, oldest first, one row at a time,
    /// so an export of a year never sits in memory.
    pub fn stream_attendances(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> impl Stream<Item = Result<Attendance, StoreError>> + Send + 'static {
        let pool = self.pool.clone();
        async_stream::try_stream! {
            let mut rows = sqlx::query(concat!(
                select!(),
                " WHERE ($1 IS NULL OR opened_at >= $1) AND ($2 IS NULL OR opened_at < $2) \
                 ORDER BY opened_at, protocol"
            ))
            .bind(from.map(ms))
            .bind(to.map(ms))
            .fetch(&pool);
            while let Some(row) = rows.next().await {
                yield from_row(&row?)?;
            }
        }
    }

    /// Closes an open attendance; closing a closed one is a conflict.
    pub async fn close_attendance(
        &self,
        protocol: &str,
        reason: CloseReason,
        at: Timestamp,
    ) -> Result<Attendance, StoreError> {
        let done = sqlx::query(
            "UPDATE attendances SET status = 'closed', close_reason = $1, closed_at = $2, \
             ended_at = COALESCE(ended_at, $2), last_activity_at = $2 \
             WHERE protocol = $3 AND status <> 'closed'",
        )
        .bind(reason.as_str())
        .bind(ms(at))
        .bind(protocol)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            let current = self.get_attendance(protocol).await?;
            return Err(StoreError::Conflict(format!(
                "attendance {} is already closed ({})",
                current.protocol,
                current.close_reason.map(|r| r.as_str()).unwrap_or("closed")
            )));
        }
        self.get_attendance(protocol).await
    }

    /// Counts attendances by status (metrics).
    pub async fn count_attendances(&self, status: AttendanceStatus) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM attendances WHERE status = $1")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await?;
        int(&row, "n")
    }

    /// Where the recording of `protocol` is stored, if it has one.
    pub async fn recording_path(&self, protocol: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT recording_path FROM attendances WHERE protocol = $1")
            .bind(protocol)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        opt_text(&row, "recording_path")
    }

    /// Attendances left open longer than `idle_ms` without activity.
    pub async fn close_inactive_attendances(&self, idle_ms: i64) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE attendances SET status = 'closed', close_reason = 'inactivity', \
             closed_at = $1, ended_at = COALESCE(ended_at, last_activity_at) \
             WHERE status = 'in_progress' AND last_activity_at < $2",
        )
        .bind(now)
        .bind(now - idle_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

impl Store {
    /// Links a finished recording (path relative to the recordings dir).
    pub async fn attach_recording(
        &self,
        protocol: &str,
        relative_path: &str,
        duration_ms: u64,
        bytes: u64,
        sha256: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE attendances SET recording_path = $1, recording_duration_ms = $2, \
             recording_bytes = $3, recording_sha256 = $4 WHERE protocol = $5",
        )
        .bind(relative_path)
        .bind(i64::try_from(duration_ms).unwrap_or(i64::MAX))
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .bind(sha256)
        .bind(protocol)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
