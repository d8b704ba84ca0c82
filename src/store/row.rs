//! Conversions between rows and domain values that both backends share.

use chrono::{TimeZone, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::StoreError;
use crate::domain::Timestamp;

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

pub fn ts(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

pub fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(ts))
}

pub fn get_ts(row: &AnyRow, col: &str) -> Result<Timestamp, StoreError> {
    Ok(ts(row.try_get::<i64, _>(col)?))
}

/// A boolean column: BOOLEAN on PostgreSQL, 0/1 INTEGER on SQLite.
pub fn flag(row: &AnyRow, col: &str) -> Result<bool, StoreError> {
    match row.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(col)? != 0),
    }
}

/// A nullable boolean column (e.g. from an outer join).
pub fn opt_flag(row: &AnyRow, col: &str) -> Result<Option<bool>, StoreError> {
    match row.try_get::<Option<bool>, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<Option<i64>, _>(col)?.map(|n| n != 0)),
    }
}

pub fn text(row: &AnyRow, col: &str) -> Result<String, StoreError> {
    Ok(row.try_get::<String, _>(col)?)
}

pub fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>, StoreError> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub fn int(row: &AnyRow, col: &str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

/// An integer column that must fit `T` (ports, seconds, counts).
#[allow(dead_code)]
pub fn small<T: TryFrom<i64>>(row: &AnyRow, col: &str) -> Result<T, StoreError> {
    let v = int(row, col)?;
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} = {v} is out of range")))
}

#[allow(dead_code)]
pub fn opt_small<T: TryFrom<i64>>(row: &AnyRow, col: &str) -> Result<Option<T>, StoreError> {
    opt_int(row, col)?
        .map(|v| {
            T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} = {v} is out of range")))
        })
        .transpose()
}

/// A JSON text column.
pub fn json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T, StoreError> {
    let s = text(row, col)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// A text column holding one of an enum's names.
pub fn parsed<T: std::str::FromStr>(row: &AnyRow, col: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let s = text(row, col)?;
    s.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(format!("{col}: {e}")))
}

/// The serde name of a unit enum value (`"simultaneous"`), for text columns.
pub fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// Reads a text column back into a unit enum by its serde name.
pub fn enum_col<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T, StoreError> {
    let s = text(row, col)?;
    serde_json::from_value(serde_json::Value::String(s.clone()))
        .map_err(|_| StoreError::Corrupt(format!("{col}: unknown value {s:?}")))
}
