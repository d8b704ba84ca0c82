//! The PBX connection: one row (id 1), absent until an admin sets it.

use sqlx::any::AnyRow;

use super::row::{flag, get_ts, now_ms, opt_text, small, text};
use super::{Store, StoreError};
use crate::domain::{Pbx, PbxInput};

fn from_row(row: &AnyRow) -> Result<Pbx, StoreError> {
    Ok(Pbx {
        ami_host: text(row, "ami_host")?,
        ami_port: small(row, "ami_port")?,
        ami_username: text(row, "ami_username")?,
        has_ami_secret: flag(row, "has_ami_secret")?,
        sip_host: text(row, "sip_host")?,
        sip_port: small(row, "sip_port")?,
        enabled: flag(row, "enabled")?,
        updated_at: Some(get_ts(row, "updated_at")?),
    })
}

impl Store {
    /// The stored PBX connection, or the disabled default.
    pub async fn get_pbx(&self) -> Result<Pbx, StoreError> {
        let row = sqlx::query(
            "SELECT ami_host, ami_port, ami_username, ami_secret IS NOT NULL AS has_ami_secret, \
             sip_host, sip_port, enabled, updated_at FROM pbx WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => from_row(&row),
            None => Ok(Pbx::default()),
        }
    }

    /// The stored AMI secret, for logging in to Asterisk.
    pub async fn pbx_ami_secret(&self) -> Result<Option<String>, StoreError> {
        match sqlx::query("SELECT ami_secret FROM pbx WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
        {
            Some(row) => opt_text(&row, "ami_secret"),
            None => Ok(None),
        }
    }

    /// Writes the PBX connection; an absent secret keeps the stored one.
    pub async fn put_pbx(&self, input: &PbxInput) -> Result<Pbx, StoreError> {
        sqlx::query(
            "INSERT INTO pbx (id, ami_host, ami_port, ami_username, ami_secret, sip_host, \
             sip_port, enabled, updated_at) VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET ami_host = excluded.ami_host, \
             ami_port = excluded.ami_port, ami_username = excluded.ami_username, \
             ami_secret = COALESCE(excluded.ami_secret, pbx.ami_secret), \
             sip_host = excluded.sip_host, sip_port = excluded.sip_port, \
             enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(&input.ami_host)
        .bind(i64::from(input.ami_port))
        .bind(&input.ami_username)
        .bind(input.ami_secret.as_deref())
        .bind(&input.sip_host)
        .bind(i64::from(input.sip_port))
        .bind(input.enabled)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        self.get_pbx().await
    }
}
