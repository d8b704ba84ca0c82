//! `Idempotency-Key`: a retried create returns the first result instead of
//! creating a duplicate. Keys are scoped to the token that used them.

use super::row::{int, now_ms, text};
use super::{Backend, Store, StoreError};
use crate::domain::Id;

/// The first answer given to a key.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: String,
}

/// Keys older than this are forgotten.
const KEEP_MS: i64 = 24 * 3600 * 1000;

impl Store {
    pub async fn idempotent_response(
        &self,
        token_id: Id,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT method, path, status, body FROM idempotency_keys \
             WHERE token_id = $1 AND key = $2 AND created_at > $3",
        )
        .bind(token_id)
        .bind(key)
        .bind(now_ms() - KEEP_MS)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredResponse {
                method: text(&r, "method")?,
                path: text(&r, "path")?,
                status: u16::try_from(int(&r, "status")?).unwrap_or(500),
                body: text(&r, "body")?,
            })
        })
        .transpose()
    }

    pub async fn remember_response(
        &self,
        token_id: Id,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1")
            .bind(now - KEEP_MS)
            .execute(&self.pool)
            .await?;
        let sql = match self.backend {
            Backend::Sqlite => {
                "INSERT OR IGNORE INTO idempotency_keys (token_id, key, method, path, status, \
                 body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            }
            Backend::Postgres => {
                "INSERT INTO idempotency_keys (token_id, key, method, path, status, body, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
            }
        };
        sqlx::query(sql)
            .bind(token_id)
            .bind(key)
            .bind(&response.method)
            .bind(&response.path)
            .bind(i64::from(response.status))
            .bind(&response.body)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
