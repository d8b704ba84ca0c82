//! Attendances: opened before anyone rings, closed with a reason, listed and
//! exported for the platform.

use futures_util::{Stream, StreamExt};
use sqlx::any::AnyRow;

use super::row::{
    get_ts, int, json, ms, now_ms, opt_flag, opt_int, opt_text, opt_ts, parsed, text, to_json,
};
use super::{Page, Store, StoreError};
use crate::domain::{
    Attendance, AttendanceStatus, CallSource, CloseReason, Direction, Id, Protocol, RecordingInfo,
    Timestamp, Transfer,
};

macro_rules! select {
    () => {
        "SELECT protocol, direction, status, department_id, agent_id, caller, callee, \
         opened_at, answered_at, ended_at, closed_at, close_reason, source, transfers, \
         recording_duration_ms, recording_bytes, recording_sha256, recording_remote_path \
         FROM attendances"
    };
}

/// Statements the pool path and the AMI batch path (one transaction)
/// share, written once.
pub(super) const ANSWER_SQL: &str = "UPDATE attendances SET status = 'in_progress', answered_at = $1, \
     agent_id = COALESCE($2, agent_id), last_activity_at = $1 \
     WHERE protocol = $3 AND status = 'ringing'";
const LINK_REMOTE_RECORDING_SQL: &str = "UPDATE attendances SET recording_remote_path = $1 \
     WHERE protocol = $2 AND recording_remote_path IS NULL";
pub(super) const CLOSE_IF_OPEN_SQL: &str = "UPDATE attendances SET status = 'closed', close_reason = $1, closed_at = $2, \
     ended_at = COALESCE(ended_at, $2), last_activity_at = $2 \
     WHERE protocol = $3 AND status <> 'closed'";

pub(super) const ATTACH_RECORDING_SQL: &str = "UPDATE attendances SET recording_path = $1, \
     recording_duration_ms = $2, recording_bytes = $3, recording_sha256 = $4 WHERE protocol = $5";

/// Filters of `GET /attendances`; each is optional.
#[derive(Debug, Clone, Default)]
pub struct AttendanceFilter {
    pub status: Option<AttendanceStatus>,
    pub department_id: Option<Id>,
    pub agent_id: Option<Id>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// What is known when a call arrives (journaled as is by the ledger).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// The bridge node carrying the call (SIP calls), for crash recovery.
    pub node: Option<String>,
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
        recording_remote_path: opt_text(row, "recording_remote_path")?,
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
        if !insert_ringing(&self.pool, &protocol, new).await? {
            return Err(StoreError::Conflict(format!(
                "protocol {protocol} or call {:?} is already open",
                new.call_ref
            )));
        }
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
        if !self.close_attendance_if_open(protocol, reason, at).await? {
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
        let done = sqlx::query(ATTACH_RECORDING_SQL)
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

/// A call of the bridge's own B2BUA that a previous process left live: what
/// crash recovery needs to end it.
#[derive(Debug, Clone, PartialEq)]
pub struct InterruptedCall {
    pub protocol: String,
    pub status: AttendanceStatus,
    pub opened_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub last_activity_at: Timestamp,
    /// Its department's `close_on_hangup`; `None` when it has no
    /// department (see [`crate::domain::closes_when_call_ends`]).
    pub department_closes_on_hangup: Option<bool>,
    /// Whether a recording is linked already.
    pub has_recording: bool,
}

/// Crash recovery's reads and writes (SPEC §4 "Crash recovery").
impl Store {
    /// SIP calls that never ended: live in the process that handled them
    /// when it stopped without ending them.
    pub async fn interrupted_sip_calls(
        &self,
        node: &str,
    ) -> Result<Vec<InterruptedCall>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.protocol, a.status, a.opened_at, a.answered_at, a.last_activity_at, \
             a.recording_path, d.close_on_hangup \
             FROM attendances a LEFT JOIN departments d ON d.id = a.department_id \
             WHERE a.source = 'sip' AND a.ended_at IS NULL AND a.status <> 'closed' \
             AND (a.node = $1 OR a.node IS NULL) ORDER BY a.protocol",
        )
        .bind(node)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(InterruptedCall {
                    protocol: text(row, "protocol")?,
                    status: parsed(row, "status")?,
                    opened_at: get_ts(row, "opened_at")?,
                    answered_at: opt_ts(row, "answered_at")?,
                    last_activity_at: get_ts(row, "last_activity_at")?,
                    department_closes_on_hangup: opt_flag(row, "close_on_hangup")?,
                    has_recording: opt_text(row, "recording_path")?.is_some(),
                })
            })
            .collect()
    }

    /// Ends an interrupted call at `at` (its last known activity, which
    /// stays as it is), closing it with `close` at the same instant when
    /// given. `false` when it had ended meanwhile.
    pub async fn end_interrupted_call(
        &self,
        protocol: &str,
        at: Timestamp,
        close: Option<CloseReason>,
    ) -> Result<bool, StoreError> {
        let done = match close {
            None => {
                sqlx::query(
                    "UPDATE attendances SET ended_at = $1 \
                     WHERE protocol = $2 AND ended_at IS NULL AND status <> 'closed'",
                )
                .bind(ms(at))
                .bind(protocol)
                .execute(&self.pool)
                .await?
            }
            Some(reason) => {
                sqlx::query(
                    "UPDATE attendances SET ended_at = $1, status = 'closed', \
                     close_reason = $2, closed_at = $1 \
                     WHERE protocol = $3 AND ended_at IS NULL AND status <> 'closed'",
                )
                .bind(ms(at))
                .bind(reason.as_str())
                .bind(protocol)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// The newest activity of any SIP call, if there is one.
    pub async fn last_sip_activity(&self) -> Result<Option<Timestamp>, StoreError> {
        let row =
            sqlx::query("SELECT MAX(last_activity_at) AS t FROM attendances WHERE source = 'sip'")
                .fetch_one(&self.pool)
                .await?;
        opt_ts(&row, "t")
    }

    /// Answered SIP calls with protocol `>= from` and no recording linked
    /// (a process stopped between a call's end and the linking of its
    /// recording leaves them so).
    pub async fn sip_calls_without_recording(
        &self,
        from: &str,
        node: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT protocol FROM attendances WHERE protocol >= $1 AND source = 'sip' \
             AND answered_at IS NOT NULL AND recording_path IS NULL \
             AND (node = $2 OR node IS NULL) ORDER BY protocol",
        )
        .bind(from)
        .bind(node)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| text(r, "protocol")).collect()
    }
}

/// What happened to a call, in domain terms, for the call engines (SIP and
/// AMI) to record on its attendance. Every method is idempotent: applying
/// the same fact twice (a re-sync, a retransmission) changes nothing.
impl Store {
    /// The attendance of the call `call_ref` seen by `source`, if any
    /// (newest first if a SIP reference was ever reused).
    pub async fn find_attendance_by_call_ref(
        &self,
        source: CallSource,
        call_ref: &str,
    ) -> Result<Option<Attendance>, StoreError> {
        let row = sqlx::query(concat!(
            select!(),
            " WHERE source = $1 AND call_ref = $2 ORDER BY opened_at DESC, protocol DESC LIMIT 1"
        ))
        .bind(source.as_str())
        .bind(call_ref)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The call reference and source of an attendance (to act on its call).
    pub async fn attendance_call_ref(
        &self,
        protocol: &str,
    ) -> Result<(CallSource, Option<String>), StoreError> {
        let row = sqlx::query("SELECT source, call_ref FROM attendances WHERE protocol = $1")
            .bind(protocol)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((parsed(&row, "source")?, opt_text(&row, "call_ref")?))
    }

    /// Opens the attendance of a call unless one with the same
    /// `(source, call_ref)` exists; returns it and whether it is new. For
    /// AMI a unique index makes this hold across nodes too (the loser of a
    /// race gets the winner's row; its allocated protocol is skipped).
    pub async fn open_attendance_once(
        &self,
        new: &NewAttendance,
        tz: chrono_tz::Tz,
    ) -> Result<(Attendance, bool), StoreError> {
        let Some(call_ref) = new.call_ref.as_deref() else {
            return Ok((self.open_attendance(new, tz).await?, true));
        };
        if let Some(found) = self
            .find_attendance_by_call_ref(new.source, call_ref)
            .await?
        {
            return Ok((found, false));
        }
        let protocol = self.next_protocol(Protocol::day(new.opened_at, tz)).await?;
        let inserted = insert_ringing(&self.pool, &protocol, new).await?;
        if inserted {
            return Ok((self.get_attendance(protocol.as_str()).await?, true));
        }
        let found = self
            .find_attendance_by_call_ref(new.source, call_ref)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((found, false))
    }

    /// Someone answered: `in_progress`, `answered_at`, and the agent when
    /// known. Only the first answer counts; a closed attendance is kept.
    pub async fn mark_attendance_answered(
        &self,
        protocol: &str,
        agent_id: Option<Id>,
        at: Timestamp,
    ) -> Result<Attendance, StoreError> {
        sqlx::query(ANSWER_SQL)
            .bind(ms(at))
            .bind(agent_id)
            .bind(protocol)
            .execute(&self.pool)
            .await?;
        self.get_attendance(protocol).await
    }

    /// The call ended (every leg hung up). Returns the attendance and
    /// whether this was news (`false` when it had already ended).
    pub async fn mark_attendance_ended(
        &self,
        protocol: &str,
        at: Timestamp,
    ) -> Result<(Attendance, bool), StoreError> {
        let done = sqlx::query(
            "UPDATE attendances SET ended_at = $1, last_activity_at = $1 \
             WHERE protocol = $2 AND ended_at IS NULL",
        )
        .bind(ms(at))
        .bind(protocol)
        .execute(&self.pool)
        .await?;
        Ok((
            self.get_attendance(protocol).await?,
            done.rows_affected() == 1,
        ))
    }

    /// Closes the attendance with `reason` unless it is closed already;
    /// returns whether this call closed it.
    pub async fn close_attendance_if_open(
        &self,
        protocol: &str,
        reason: CloseReason,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(CLOSE_IF_OPEN_SQL)
            .bind(reason.as_str())
            .bind(ms(at))
            .bind(protocol)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Links a recording the PBX made on its own disk (a path we cannot
    /// serve); the first one announced is kept.
    pub async fn link_remote_recording(
        &self,
        protocol: &str,
        path: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(LINK_REMOTE_RECORDING_SQL)
            .bind(path)
            .bind(protocol)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Appends a transfer to the history; when it moved the call to a
    /// department, that department now owns the attendance.
    pub async fn record_transfer(
        &self,
        protocol: &str,
        transfer: &Transfer,
    ) -> Result<Attendance, StoreError> {
        let current = self.get_attendance(protocol).await?;
        let mut transfers = current.transfers;
        transfers.push(transfer.clone());
        sqlx::query(
            "UPDATE attendances SET transfers = $1, \
             department_id = COALESCE($2, department_id), last_activity_at = $3 \
             WHERE protocol = $4",
        )
        .bind(to_json(&transfers))
        .bind(transfer.department_id)
        .bind(ms(transfer.at))
        .bind(protocol)
        .execute(&self.pool)
        .await?;
        self.get_attendance(protocol).await
    }
}

/// The AMI follower's writes, in one transaction per batch of decisions:
/// one BEGIN/COMMIT (and on SQLite one WAL append) for a whole read of
/// events instead of one per statement, and no re-read after an update
/// (`RETURNING` gives what the caller needs). Dropped without
/// [`AttendanceBatch::commit`], nothing of it is kept.
pub struct AttendanceBatch {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl Store {
    /// Starts a batch. On SQLite the transaction takes the write lock at
    /// once (`BEGIN IMMEDIATE`, waiting up to `busy_timeout`), so a batch
    /// that reads first can never fail to upgrade to a writer.
    pub async fn attendance_batch(&self) -> Result<AttendanceBatch, StoreError> {
        let tx = match self.backend {
            super::Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            super::Backend::Postgres => self.pool.begin().await?,
        };
        Ok(AttendanceBatch { tx })
    }
}

impl AttendanceBatch {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// The protocol of the call `call_ref` seen by `source`, if any.
    pub async fn find_protocol(
        &mut self,
        source: CallSource,
        call_ref: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT protocol FROM attendances WHERE source = $1 AND call_ref = $2 \
             ORDER BY opened_at DESC, protocol DESC LIMIT 1",
        )
        .bind(source.as_str())
        .bind(call_ref)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(|r| text(r, "protocol")).transpose()
    }

    /// As [`Store::open_attendance_once`]; returns the protocol and whether
    /// it is new.
    pub async fn open_once(
        &mut self,
        new: &NewAttendance,
        tz: chrono_tz::Tz,
    ) -> Result<(String, bool), StoreError> {
        if let Some(call_ref) = new.call_ref.as_deref()
            && let Some(found) = self.find_protocol(new.source, call_ref).await?
        {
            return Ok((found, false));
        }
        let protocol =
            super::protocols::next_protocol_on(&mut self.tx, Protocol::day(new.opened_at, tz))
                .await?;
        let inserted = insert_ringing(&mut *self.tx, &protocol, new).await?;
        if inserted {
            return Ok((protocol.as_str().to_owned(), true));
        }
        // Another node opened it meanwhile (its row is committed now).
        let call_ref = new.call_ref.as_deref().ok_or(StoreError::NotFound)?;
        let found = self
            .find_protocol(new.source, call_ref)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((found, false))
    }

    /// As [`Store::mark_attendance_answered`], without reading it back;
    /// returns whether this answer counted.
    pub async fn mark_answered(
        &mut self,
        protocol: &str,
        agent_id: Option<Id>,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(ANSWER_SQL)
            .bind(ms(at))
            .bind(agent_id)
            .bind(protocol)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// As [`Store::link_remote_recording`].
    pub async fn link_remote_recording(
        &mut self,
        protocol: &str,
        path: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(LINK_REMOTE_RECORDING_SQL)
            .bind(path)
            .bind(protocol)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// The call ended. `close` given: closed with that reason in the same
    /// statement. Returns `None` when it had already ended, else its status
    /// and department after the update (to decide the close rule).
    pub async fn mark_ended(
        &mut self,
        protocol: &str,
        at: Timestamp,
        close: Option<CloseReason>,
    ) -> Result<Option<(AttendanceStatus, Option<Id>)>, StoreError> {
        // An attendance without `ended_at` is never closed (every close
        // sets it), so closing here needs no other condition.
        let row = match close {
            None => {
                sqlx::query(
                    "UPDATE attendances SET ended_at = $1, last_activity_at = $1 \
                     WHERE protocol = $2 AND ended_at IS NULL \
                     RETURNING status, department_id",
                )
                .bind(ms(at))
                .bind(protocol)
                .fetch_optional(&mut *self.tx)
                .await?
            }
            Some(reason) => {
                sqlx::query(
                    "UPDATE attendances SET ended_at = $1, last_activity_at = $1, \
                     status = 'closed', close_reason = $2, closed_at = $1 \
                     WHERE protocol = $3 AND ended_at IS NULL \
                     RETURNING status, department_id",
                )
                .bind(ms(at))
                .bind(reason.as_str())
                .bind(protocol)
                .fetch_optional(&mut *self.tx)
                .await?
            }
        };
        row.map(|r| Ok((parsed(&r, "status")?, opt_int(&r, "department_id")?)))
            .transpose()
    }

    /// As [`Store::close_attendance_if_open`].
    pub async fn close_if_open(
        &mut self,
        protocol: &str,
        reason: CloseReason,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(CLOSE_IF_OPEN_SQL)
            .bind(reason.as_str())
            .bind(ms(at))
            .bind(protocol)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Click-to-call through Asterisk: the attendance the API opened is
    /// the one of Asterisk call `call_ref` (its Linkedid) from now on.
    /// Returns whether it was found.
    pub async fn claim_call_ref(
        &mut self,
        protocol: &str,
        source: CallSource,
        call_ref: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE attendances SET call_ref = $1 WHERE protocol = $2 AND source = $3")
                .bind(call_ref)
                .bind(protocol)
                .bind(source.as_str())
                .execute(&mut *self.tx)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Withdraws the attendance of a call that turned out to be another
    /// engine's (an Asterisk call whose other side is the bridge, which
    /// opens its own): deleted unless an agent attends it (the dialplan
    /// answering it is no agent). Returns its protocol.
    pub async fn discard_unattended(
        &mut self,
        source: CallSource,
        call_ref: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM attendances WHERE source = $1 AND call_ref = $2 \
             AND agent_id IS NULL RETURNING protocol",
        )
        .bind(source.as_str())
        .bind(call_ref)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(|r| text(r, "protocol")).transpose()
    }

    /// The call was transferred and `agent_id` answered it there: it is
    /// now the attendance's agent (and `department_id`, when given, its
    /// department). The transfer is added to the history unless it is
    /// there already (the API records the `Redirect` it sent: the last
    /// entry, to the same target, from the agent who attended until now).
    /// Returns whether the attendance was found.
    pub async fn reassign(
        &mut self,
        protocol: &str,
        agent_id: Option<Id>,
        department_id: Option<Id>,
        target: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let Some(row) =
            sqlx::query("SELECT agent_id, transfers FROM attendances WHERE protocol = $1")
                .bind(protocol)
                .fetch_optional(&mut *self.tx)
                .await?
        else {
            return Ok(false);
        };
        let from_agent_id = opt_int(&row, "agent_id")?;
        let mut transfers: Vec<Transfer> = json(&row, "transfers")?;
        let recorded = transfers
            .last()
            .is_some_and(|t| t.target == target && t.from_agent_id == from_agent_id);
        if !recorded {
            transfers.push(Transfer {
                at,
                from_agent_id,
                target: target.to_owned(),
                department_id,
            });
        }
        sqlx::query(
            "UPDATE attendances SET agent_id = $1, department_id = COALESCE($2, department_id), \
             transfers = $3, last_activity_at = $4 WHERE protocol = $5",
        )
        .bind(agent_id)
        .bind(department_id)
        .bind(to_json(&transfers))
        .bind(ms(at))
        .bind(protocol)
        .execute(&mut *self.tx)
        .await?;
        Ok(true)
    }
}

/// Persists a new attendance in `ringing` (before anyone is rung). `false`
/// when a row with this protocol, or an open one for the same call, is
/// already there.
pub(super) async fn insert_ringing<'e, E>(
    executor: E,
    protocol: &Protocol,
    new: &NewAttendance,
) -> Result<bool, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query(
        "INSERT INTO attendances (protocol, direction, status, department_id, agent_id, \
         caller, callee, opened_at, source, transfers, last_activity_at, call_ref, node) \
         VALUES ($1, $2, 'ringing', $3, $4, $5, $6, $7, $8, '[]', $7, $9, $10) \
         ON CONFLICT DO NOTHING",
    )
    .bind(protocol.as_str())
    .bind(new.direction.as_str())
    .bind(new.department_id)
    .bind(new.agent_id)
    .bind(&new.caller)
    .bind(&new.callee)
    .bind(ms(new.opened_at))
    .bind(new.source.as_str())
    .bind(new.call_ref.as_deref())
    .bind(new.node.as_deref())
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    /// The call moved to a department, or an agent took it; `None` keeps
    /// what is recorded.
    pub async fn assign_attendance(
        &self,
        protocol: &str,
        department_id: Option<Id>,
        agent_id: Option<Id>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE attendances SET department_id = COALESCE($1, department_id), \
             agent_id = COALESCE($2, agent_id), last_activity_at = $3 WHERE protocol = $4",
        )
        .bind(department_id)
        .bind(agent_id)
        .bind(now_ms())
        .bind(protocol)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
