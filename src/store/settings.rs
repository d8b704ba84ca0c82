//! Installation-wide values the service generates once and keeps (keys,
//! markers), as opposed to operator settings which come from configuration.

use super::row::text;
use super::{Backend, Store, StoreError};

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| text(&r, "value")).transpose()
    }

    /// Stores `value` under `key` unless a value is already there, and
    /// returns the value that won (so concurrent first starts agree).
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => "INSERT OR IGNORE INTO settings (key, value) VALUES ($1, $2)",
            Backend::Postgres => {
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
            }
        };
        sqlx::query(sql)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        self.setting(key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("setting {key} vanished")))
    }
}
