//! Holidays (*feriados*); dates are stored as `YYYY-MM-DD` text.

use chrono::NaiveDate;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{get_ts, now_ms, opt_int, text};
use super::{Page, Store, StoreError};
use crate::domain::{FieldErrors, Holiday, HolidayInput, Id};

macro_rules! select {
    () => {
        "SELECT id, date, name, period_id, created_at, updated_at FROM holidays"
    };
}

const DATE: &str = "%Y-%m-%d";

fn from_row(row: &AnyRow) -> Result<Holiday, StoreError> {
    let date = text(row, "date")?;
    Ok(Holiday {
        id: row.try_get("id")?,
        date: NaiveDate::parse_from_str(&date, DATE)
            .map_err(|e| StoreError::Corrupt(format!("date {date:?}: {e}")))?,
        name: text(row, "name")?,
        period_id: opt_int(row, "period_id")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

impl Store {
    pub async fn list_holidays(
        &self,
        after: Id,
        limit: usize,
    ) -> Result<Page<Holiday>, StoreError> {
        self.page_by_id(
            concat!(select!(), " WHERE id > $1 ORDER BY id LIMIT $2"),
            after,
            limit,
            from_row,
            |h| h.id,
        )
        .await
    }

    pub async fn get_holiday(&self, id: Id) -> Result<Holiday, StoreError> {
        self.one_by_id(concat!(select!(), " WHERE id = $1"), id, from_row)
            .await
    }

    async fn check_holiday_refs(&self, input: &HolidayInput) -> Result<(), StoreError> {
        if let Some(period) = input.period_id
            && !self.exists("periods", period).await?
        {
            return Err(StoreError::Invalid(FieldErrors::single(
                "period_id",
                format!("no period with id {period}"),
            )));
        }
        Ok(())
    }

    pub async fn create_holiday(&self, input: &HolidayInput) -> Result<Holiday, StoreError> {
        self.check_holiday_refs(input).await?;
        let row = sqlx::query(
            "INSERT INTO holidays (date, name, period_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(input.date.format(DATE).to_string())
        .bind(&input.name)
        .bind(input.period_id)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::unique(e, String::new))?;
        self.get_holiday(row.try_get("id")?).await
    }

    pub async fn replace_holiday(
        &self,
        id: Id,
        input: &HolidayInput,
    ) -> Result<Holiday, StoreError> {
        self.get_holiday(id).await?;
        self.check_holiday_refs(input).await?;
        sqlx::query(
            "UPDATE holidays SET date = $1, name = $2, period_id = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(input.date.format(DATE).to_string())
        .bind(&input.name)
        .bind(input.period_id)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::unique(e, String::new))?;
        self.get_holiday(id).await
    }

    pub async fn delete_holiday(&self, id: Id) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM holidays WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
