//! Webhooks (their secrets sign deliveries and are never returned) and the
//! history of their deliveries.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{flag, get_ts, json, now_ms, opt_small, opt_text, opt_ts, small, text, to_json};
use super::{Page, Store, StoreError};
use crate::domain::{FieldErrors, Id, Webhook, WebhookDelivery, WebhookInput};

macro_rules! select {
    () => {
        "SELECT id, url, events, active, created_at, updated_at FROM webhooks"
    };
}

fn from_row(row: &AnyRow) -> Result<Webhook, StoreError> {
    Ok(Webhook {
        id: row.try_get("id")?,
        url: text(row, "url")?,
        events: json(row, "events")?,
        active: flag(row, "active")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<WebhookDelivery, StoreError> {
    Ok(WebhookDelivery {
        id: row.try_get("id")?,
        event_id: text(row, "event_id")?,
        event_type: text(row, "event_type")?,
        status: text(row, "status")?,
        attempts: small(row, "attempts")?,
        last_status_code: opt_small(row, "last_status_code")?,
        last_error: opt_text(row, "last_error")?,
        next_attempt_at: opt_ts(row, "next_attempt_at")?,
        created_at: get_ts(row, "created_at")?,
        delivered_at: opt_ts(row, "delivered_at")?,
    })
}

impl Store {
    pub async fn list_webhooks(
        &self,
        after: Id,
        limit: usize,
    ) -> Result<Page<Webhook>, StoreError> {
        self.page_by_id(
            concat!(select!(), " WHERE id > $1 ORDER BY id LIMIT $2"),
            after,
            limit,
            from_row,
            |w| w.id,
        )
        .await
    }

    pub async fn get_webhook(&self, id: Id) -> Result<Webhook, StoreError> {
        self.one_by_id(concat!(select!(), " WHERE id = $1"), id, from_row)
            .await
    }

    /// The secret that signs deliveries to webhook `id`.
    pub async fn webhook_secret(&self, id: Id) -> Result<String, StoreError> {
        let row = sqlx::query("SELECT secret FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        text(&row, "secret")
    }

    /// Creates a webhook; the input's secret must be present (validated).
    pub async fn create_webhook(&self, input: &WebhookInput) -> Result<Webhook, StoreError> {
        let secret = input
            .secret
            .as_deref()
            .ok_or_else(|| StoreError::Invalid(FieldErrors::single("secret", "is required")))?;
        let row = sqlx::query(
            "INSERT INTO webhooks (url, secret, events, active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(&input.url)
        .bind(secret)
        .bind(to_json(&input.events))
        .bind(input.active)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        self.get_webhook(row.try_get("id")?).await
    }

    /// Replaces webhook `id`; an absent secret keeps the stored one.
    pub async fn replace_webhook(
        &self,
        id: Id,
        input: &WebhookInput,
    ) -> Result<Webhook, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET url = $1, secret = COALESCE($2, secret), events = $3, \
             active = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&input.url)
        .bind(input.secret.as_deref())
        .bind(to_json(&input.events))
        .bind(input.active)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_webhook(id).await
    }

    /// Deletes webhook `id` with its delivery history.
    pub async fn delete_webhook(&self, id: Id) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deliveries to webhook `id`, newest first; `before` is the cursor (the
    /// last id of the previous page), `None` for the first page.
    pub async fn list_webhook_deliveries(
        &self,
        id: Id,
        before: Option<Id>,
        limit: usize,
    ) -> Result<Page<WebhookDelivery>, StoreError> {
        self.get_webhook(id).await?;
        let rows = sqlx::query(
            "SELECT id, event_id, event_type, status, attempts, last_status_code, last_error, \
             next_attempt_at, created_at, delivered_at FROM webhook_deliveries \
             WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, limit, |d| d.id.to_string()))
    }
}
