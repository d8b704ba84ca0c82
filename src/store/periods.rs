//! Business hours (*períodos de atendimento*); their ranges are JSON text.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{get_ts, json, now_ms, text, to_json};
use super::{Page, Store, StoreError};
use crate::domain::{Id, Period, PeriodInput};

macro_rules! select {
    () => {
        "SELECT id, name, time_zone, ranges, created_at, updated_at FROM periods"
    };
}

fn from_row(row: &AnyRow) -> Result<Period, StoreError> {
    Ok(Period {
        id: row.try_get("id")?,
        name: text(row, "name")?,
        time_zone: text(row, "time_zone")?,
        ranges: json(row, "ranges")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

impl Store {
    pub async fn list_periods(&self, after: Id, limit: usize) -> Result<Page<Period>, StoreError> {
        self.page_by_id(
            concat!(select!(), " WHERE id > $1 ORDER BY id LIMIT $2"),
            after,
            limit,
            from_row,
            |p| p.id,
        )
        .await
    }

    pub async fn get_period(&self, id: Id) -> Result<Period, StoreError> {
        self.one_by_id(concat!(select!(), " WHERE id = $1"), id, from_row)
            .await
    }

    pub async fn create_period(&self, input: &PeriodInput) -> Result<Period, StoreError> {
        let row = sqlx::query(
            "INSERT INTO periods (name, time_zone, ranges, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(&input.name)
        .bind(&input.time_zone)
        .bind(to_json(&input.ranges))
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        self.get_period(row.try_get("id")?).await
    }

    pub async fn replace_period(&self, id: Id, input: &PeriodInput) -> Result<Period, StoreError> {
        let done = sqlx::query(
            "UPDATE periods SET name = $1, time_zone = $2, ranges = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(&input.name)
        .bind(&input.time_zone)
        .bind(to_json(&input.ranges))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_period(id).await
    }

    /// Refused (409) while a department or a holiday uses the period.
    pub async fn delete_period(&self, id: Id) -> Result<(), StoreError> {
        self.get_period(id).await?;
        let users = self
            .users_of(
                &[
                    (
                        "department",
                        "SELECT id FROM departments WHERE period_id = $1",
                    ),
                    ("holiday", "SELECT id FROM holidays WHERE period_id = $1"),
                ],
                id,
            )
            .await?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "period {id} is used by {}",
                users.join(", ")
            )));
        }
        sqlx::query("DELETE FROM periods WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::unique(e, String::new))?;
        Ok(())
    }
}
