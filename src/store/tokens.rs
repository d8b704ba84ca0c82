//! API tokens. Only a SHA-256 of each token is stored: tokens are long and
//! random, so a fast hash is enough and a leaked database reveals none.

use ipnet::IpNet;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{get_ts, json, now_ms, opt_ts, text, to_json};
use super::{Page, Store, StoreError};
use crate::domain::{ApiToken, ApiTokenInput, Id, Scope};

macro_rules! select {
    () => {
        "SELECT id, name, scopes, allowed_networks, prefix, created_at, updated_at, \
         last_used_at FROM api_tokens"
    };
}

/// The caller a bearer token stands for.
#[derive(Debug, Clone)]
pub struct AuthenticatedToken {
    pub id: Id,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub allowed_networks: Vec<IpNet>,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token value: a recognisable prefix and 256 random bits.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("pbxb_{}", hex::encode(bytes))
}

fn from_row(row: &AnyRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: text(row, "name")?,
        scopes: json(row, "scopes")?,
        allowed_networks: json(row, "allowed_networks")?,
        prefix: text(row, "prefix")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
    })
}

impl Store {
    pub async fn list_tokens(&self, after: Id, limit: usize) -> Result<Page<ApiToken>, StoreError> {
        self.page_by_id(
            concat!(select!(), " WHERE id > $1 ORDER BY id LIMIT $2"),
            after,
            limit,
            from_row,
            |t| t.id,
        )
        .await
    }

    pub async fn get_token(&self, id: Id) -> Result<ApiToken, StoreError> {
        self.one_by_id(concat!(select!(), " WHERE id = $1"), id, from_row)
            .await
    }

    /// Creates a token with a fresh value; the value is returned once.
    pub async fn create_token(
        &self,
        input: &ApiTokenInput,
    ) -> Result<(ApiToken, String), StoreError> {
        let value = generate_token();
        let token = self.insert_token(input, &value).await?;
        Ok((token, value))
    }

    /// Stores a token whose value the caller chose (the configured admin
    /// token, or the one printed at first start).
    pub async fn insert_token(
        &self,
        input: &ApiTokenInput,
        value: &str,
    ) -> Result<ApiToken, StoreError> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO api_tokens (name, scopes, allowed_networks, token_hash, prefix, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(&input.name)
        .bind(to_json(&input.scopes))
        .bind(to_json(&input.allowed_networks))
        .bind(hash_token(value))
        .bind(value.chars().take(9).collect::<String>())
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::unique(e, || "this token value already exists".into()))?;
        self.get_token(row.try_get("id")?).await
    }

    pub async fn replace_token(
        &self,
        id: Id,
        input: &ApiTokenInput,
    ) -> Result<ApiToken, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET name = $1, scopes = $2, allowed_networks = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(&input.name)
        .bind(to_json(&input.scopes))
        .bind(to_json(&input.allowed_networks))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_token(id).await
    }

    pub async fn delete_token(&self, id: Id) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn count_tokens(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The token a bearer value stands for, if any; notes its use.
    pub async fn authenticate(
        &self,
        value: &str,
    ) -> Result<Option<AuthenticatedToken>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, scopes, allowed_networks, last_used_at FROM api_tokens \
             WHERE token_hash = $1",
        )
        .bind(hash_token(value))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = AuthenticatedToken {
            id: row.try_get("id")?,
            name: text(&row, "name")?,
            scopes: json(&row, "scopes")?,
            allowed_networks: json(&row, "allowed_networks")?,
        };
        // Recording every use would turn each API read into a write; a
        // minute's precision is what an admin needs.
        let now = now_ms();
        let last = row.try_get::<Option<i64>, _>("last_used_at")?.unwrap_or(0);
        if now - last > 60_000 {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(token.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(token))
    }
}
