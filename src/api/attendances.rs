//! Attendances as stored (SPEC §4): list with filters, read, close by hand,
//! recording download with HTTP Range, and a streamed CSV export.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::ApiError;
use super::auth::Caller;
use crate::app::App;
use crate::domain::{Attendance, AttendanceStatus, CloseReason, Id, Protocol, Scope, Timestamp};
use crate::store::{AttendanceFilter, Page};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/attendances", get(list))
        .route("/attendances/{protocol}", get(read))
        .route("/attendances/{protocol}/close", post(close))
        .route("/attendances/{protocol}/recording", get(recording))
        .route("/export/attendances.csv", get(export))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    department_id: Option<Id>,
    agent_id: Option<Id>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn timestamp(field: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|v| {
            if let Ok(t) = v.parse::<Timestamp>() {
                return Ok(t);
            }
            chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
                .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 time or YYYY-MM-DD"))
        })
        .transpose()
}

fn protocol(text: &str) -> Result<Protocol, ApiError> {
    Protocol::parse(text).map_err(|e| ApiError::invalid("protocol", e.to_string()))
}

async fn list(
    State(app): State<App>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<Attendance>>, ApiError> {
    caller.require(Scope::AttendancesRead)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<AttendanceStatus>()
                .map_err(|_| ApiError::invalid("status", "must be ringing, in_progress or closed"))
        })
        .transpose()?;
    let filter = AttendanceFilter {
        status,
        department_id: q.department_id,
        agent_id: q.agent_id,
        from: timestamp("from", q.from.as_deref())?,
        to: timestamp("to", q.to.as_deref())?,
    };
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => return Err(ApiError::invalid("limit", "must be 1 to 500")),
    };
    let before = q.cursor.as_deref().map(protocol).transpose()?;
    let page = app
        .store()
        .list_attendances(&filter, before.as_ref().map(|p| p.as_str()), limit)
        .await?;
    Ok(Json(page))
}

async fn read(
    State(app): State<App>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Attendance>, ApiError> {
    caller.require(Scope::AttendancesRead)?;
    Ok(Json(
        app.store().get_attendance(protocol(&p)?.as_str()).await?,
    ))
}

async fn close(
    State(app): State<App>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Attendance>, ApiError> {
    caller.require(Scope::Calls)?;
    let p = protocol(&p)?;
    let closed = app
        .store()
        .close_attendance(p.as_str(), CloseReason::Api, chrono::Utc::now())
        .await?;
    tracing::info!(protocol = %p, "attendance closed through the API");
    Ok(Json(closed))
}

/// Parses a single `bytes=` range against a file of `len` bytes.
fn byte_range(value: &str, len: u64) -> Result<(u64, u64), ApiError> {
    let spec = value
        .strip_prefix("bytes=")
        .filter(|s| !s.contains(','))
        .ok_or(ApiError::RangeNotSatisfiable(len))?;
    let (start, end) = spec
        .split_once('-')
        .ok_or(ApiError::RangeNotSatisfiable(len))?;
    let range = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix
                .parse()
                .map_err(|_| ApiError::RangeNotSatisfiable(len))?;
            (
                len.saturating_sub(n),
                len.checked_sub(1)
                    .ok_or(ApiError::RangeNotSatisfiable(len))?,
            )
        }
        (s, "") => (
            s.parse().map_err(|_| ApiError::RangeNotSatisfiable(len))?,
            len.saturating_sub(1),
        ),
        (s, e) => {
            let s: u64 = s.parse().map_err(|_| ApiError::RangeNotSatisfiable(len))?;
            let e: u64 = e.parse().map_err(|_| ApiError::RangeNotSatisfiable(len))?;
            (s, e.min(len.saturating_sub(1)))
        }
    };
    if range.0 > range.1 || range.0 >= len {
        return Err(ApiError::RangeNotSatisfiable(len));
    }
    Ok(range)
}

async fn recording(
    State(app): State<App>,
    caller: Caller,
    Path(p): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Scope::RecordingsRead)?;
    let p = protocol(&p)?;
    let path = app
        .store()
        .recording_path(p.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("attendance {p} has no recording")))?;
    let full = app.settings().recordings_dir.join(&path);
    let mut file = tokio::fs::File::open(&full).await.map_err(|e| {
        tracing::error!(protocol = %p, path = %full.display(), error = %e, "recording missing");
        ApiError::NotFound(format!("the recording of {p} is not available"))
    })?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| byte_range(v, len))
        .transpose()?;
    let (status, start, end) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let stream = tokio_util::io::ReaderStream::new(file.take(count));
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "audio/wav")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, count);
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    response
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
}

const CSV_HEADER: &str = "protocol,direction,status,department_id,agent_id,caller,callee,\
opened_at,answered_at,ended_at,closed_at,close_reason,source,recording_duration_ms\n";

fn csv_field(out: &mut String, value: &str) {
    // Quote when needed, and defuse spreadsheet formulas (a caller ID of
    // "=cmd|..." must not execute when an admin opens the export).
    let risky =
        value.starts_with(['=', '+', '-', '@']) && !value[1..].bytes().all(|b| b.is_ascii_digit());
    let value = if risky {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&value);
    }
}

fn csv_row(a: &Attendance) -> String {
    let t = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    let n = |n: Option<Id>| n.map(|n| n.to_string()).unwrap_or_default();
    let fields = [
        a.protocol.clone(),
        a.direction.as_str().to_owned(),
        a.status.as_str().to_owned(),
        n(a.department_id),
        n(a.agent_id),
        a.caller.clone(),
        a.callee.clone(),
        a.opened_at.to_rfc3339(),
        t(a.answered_at),
        t(a.ended_at),
        t(a.closed_at),
        a.close_reason
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        a.source.as_str().to_owned(),
        a.recording
            .as_ref()
            .map(|r| r.duration_ms.to_string())
            .unwrap_or_default(),
    ];
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(&mut out, f);
    }
    out.push('\n');
    out
}

async fn export(
    State(app): State<App>,
    caller: Caller,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::AttendancesRead)?;
    let from = timestamp("from", q.from.as_deref())?;
    let to = timestamp("to", q.to.as_deref())?;
    let rows = app
        .store()
        .stream_attendances(from, to)
        .map(|row| match row {
            Ok(a) => Ok::<_, std::io::Error>(csv_row(&a)),
            Err(e) => {
                tracing::error!(error = %e, "attendance export aborted");
                Err(std::io::Error::other(e.to_string()))
            }
        });
    let body = futures_util::stream::once(async { Ok(CSV_HEADER.to_owned()) }).chain(rows);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"attendances.csv\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-9", 100).unwrap(), (0, 9));
        assert_eq!(byte_range("bytes=90-", 100).unwrap(), (90, 99));
        assert_eq!(byte_range("bytes=-10", 100).unwrap(), (90, 99));
        assert_eq!(byte_range("bytes=50-500", 100).unwrap(), (50, 99));
        assert!(byte_range("bytes=100-", 100).is_err());
        assert!(byte_range("bytes=5-1", 100).is_err());
        assert!(byte_range("items=0-1", 100).is_err());
        assert!(byte_range("bytes=0-1,3-4", 100).is_err());
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut s = String::new();
        csv_field(&mut s, "a,\"b\"");
        assert_eq!(s, "\"a,\"\"b\"\"\"");
        let mut s = String::new();
        csv_field(&mut s, "=HYPERLINK(1)");
        assert_eq!(s, "'=HYPERLINK(1)");
        let mut s = String::new();
        csv_field(&mut s, "+5511999990000");
        assert_eq!(s, "+5511999990000");
    }
}
