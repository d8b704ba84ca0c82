//! Extensions and their secrets (kept for digest auth and for rendering
//! Asterisk's pjsip configuration; never returned by the API).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{flag, get_ts, json, now_ms, opt_int, text, to_json};
use super::{Page, Store, StoreError};
use crate::domain::{DigestAlgorithm, Extension, ExtensionInput, FieldErrors, Id};

/// The representation's columns; a macro so queries stay `concat!`ed
/// static strings.
macro_rules! select {
    () => {
        "SELECT e.id, e.number, e.display_name, e.digest_algorithms, e.active, \
         e.follow_me, e.created_at, e.updated_at, a.id AS agent_id \
         FROM extensions e LEFT JOIN agents a ON a.extension_id = e.id"
    };
}

fn from_row(row: &AnyRow) -> Result<Extension, StoreError> {
    Ok(Extension {
        id: row.try_get("id")?,
        number: text(row, "number")?,
        display_name: text(row, "display_name")?,
        digest_algorithms: json(row, "digest_algorithms")?,
        agent_id: opt_int(row, "agent_id")?,
        active: flag(row, "active")?,
        follow_me: json(row, "follow_me")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

impl Store {
    pub async fn list_extensions(
        &self,
        after: Id,
        limit: usize,
    ) -> Result<Page<Extension>, StoreError> {
        self.page_by_id(
            concat!(select!(), " WHERE e.id > $1 ORDER BY e.id LIMIT $2"),
            after,
            limit,
            from_row,
            |e| e.id,
        )
        .await
    }

    /// The display name of extension `number` (click-to-call shows it to
    /// the callee); `None` when there is no such extension.
    pub async fn extension_display_name(&self, number: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT display_name FROM extensions WHERE number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| sqlx::Row::try_get::<String, _>(r, "display_name"))
            .transpose()
            .map_err(StoreError::from)
    }

    pub async fn get_extension(&self, id: Id) -> Result<Extension, StoreError> {
        self.one_by_id(concat!(select!(), " WHERE e.id = $1"), id, from_row)
            .await
    }

    /// Every extension's number, secret, algorithms and whether it is
    /// active: what the registrar keeps in memory to answer REGISTERs
    /// without a database round trip.
    pub async fn extension_secrets(
        &self,
    ) -> Result<Vec<(String, String, Vec<DigestAlgorithm>, bool)>, StoreError> {
        let rows = sqlx::query(
            "SELECT number, secret, digest_algorithms, active FROM extensions ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    text(r, "number")?,
                    text(r, "secret")?,
                    json(r, "digest_algorithms")?,
                    flag(r, "active")?,
                ))
            })
            .collect()
    }

    /// The extension registering as `number`, with its secret.
    pub async fn extension_credentials(
        &self,
        number: &str,
    ) -> Result<Option<(Extension, String)>, StoreError> {
        let Some(row) = sqlx::query("SELECT id, secret FROM extensions WHERE number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let secret = text(&row, "secret")?;
        Ok(Some((
            self.get_extension(row.try_get("id")?).await?,
            secret,
        )))
    }

    async fn check_extension_refs(
        &self,
        id: Option<Id>,
        input: &ExtensionInput,
    ) -> Result<(), StoreError> {
        if let Some(code) = input
            .number
            .parse::<i64>()
            .ok()
            .filter(|_| input.number.len() == 3)
            && let Some(dept) = sqlx::query("SELECT id FROM departments WHERE pabx_code = $1")
                .bind(code)
                .fetch_optional(&self.pool)
                .await?
        {
            let dept: i64 = dept.try_get("id")?;
            return Err(StoreError::Conflict(format!(
                "number {} is the PABX code of department {dept}",
                input.number
            )));
        }
        if let Some(existing) = sqlx::query("SELECT id FROM extensions WHERE number = $1")
            .bind(&input.number)
            .fetch_optional(&self.pool)
            .await?
        {
            let other: i64 = existing.try_get("id")?;
            if Some(other) != id {
                return Err(StoreError::Conflict(format!(
                    "number {} is already extension {other}",
                    input.number
                )));
            }
        }
        if let Some(agent) = input.agent_id
            && !self.exists("agents", agent).await?
        {
            return Err(StoreError::Invalid(FieldErrors::single(
                "agent_id",
                format!("no agent with id {agent}"),
            )));
        }
        Ok(())
    }

    pub async fn create_extension(
        &self,
        input: &ExtensionInput,
        default_algorithms: &[DigestAlgorithm],
    ) -> Result<Extension, StoreError> {
        self.check_extension_refs(None, input).await?;
        let now = now_ms();
        let algorithms = input
            .digest_algorithms
            .clone()
            .unwrap_or_else(|| default_algorithms.to_vec());
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO extensions (number, display_name, secret, digest_algorithms, active, \
             follow_me, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(&input.number)
        .bind(&input.display_name)
        .bind(input.secret.as_deref().unwrap_or_default())
        .bind(to_json(&algorithms))
        .bind(input.active)
        .bind(to_json(&input.follow_me))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("number {} is taken", input.number)))?;
        let id: i64 = row.try_get("id")?;
        link_agent(&mut tx, id, input.agent_id).await?;
        tx.commit().await?;
        self.get_extension(id).await
    }

    pub async fn replace_extension(
        &self,
        id: Id,
        input: &ExtensionInput,
    ) -> Result<Extension, StoreError> {
        let current = self.get_extension(id).await?;
        self.check_extension_refs(Some(id), input).await?;
        let algorithms = input
            .digest_algorithms
            .clone()
            .unwrap_or(current.digest_algorithms);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE extensions SET number = $1, display_name = $2, \
             secret = COALESCE($3, secret), digest_algorithms = $4, active = $5, follow_me = $6, \
             updated_at = $7 WHERE id = $8",
        )
        .bind(&input.number)
        .bind(&input.display_name)
        .bind(input.secret.as_deref())
        .bind(to_json(&algorithms))
        .bind(input.active)
        .bind(to_json(&input.follow_me))
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("number {} is taken", input.number)))?;
        link_agent(&mut tx, id, input.agent_id).await?;
        tx.commit().await?;
        self.get_extension(id).await
    }

    pub async fn delete_extension(&self, id: Id) -> Result<(), StoreError> {
        self.get_extension(id).await?;
        let users = self
            .users_of(&[
                ("agent", "SELECT id FROM agents WHERE extension_id = $1"),
                (
                    "trunk DID route of trunk",
                    "SELECT trunk_id AS id FROM trunk_did_routes WHERE extension_id = $1",
                ),
                (
                    "outbound route",
                    "SELECT route_id AS id FROM outbound_route_extensions WHERE extension_id = $1",
                ),
            ], id)
            .await?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "extension {id} is used by {}",
                users.join(", ")
            )));
        }
        sqlx::query("DELETE FROM extensions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::unique(e, String::new))?;
        Ok(())
    }

    /// Whether a row with `id` exists in `table` (a fixed table name).
    pub(crate) async fn exists(&self, table: &'static str, id: Id) -> Result<bool, StoreError> {
        let sql = match table {
            "agents" => "SELECT 1 AS x FROM agents WHERE id = $1",
            "extensions" => "SELECT 1 AS x FROM extensions WHERE id = $1",
            "departments" => "SELECT 1 AS x FROM departments WHERE id = $1",
            "periods" => "SELECT 1 AS x FROM periods WHERE id = $1",
            "trunks" => "SELECT 1 AS x FROM trunks WHERE id = $1",
            "webhooks" => "SELECT 1 AS x FROM webhooks WHERE id = $1",
            _ => return Err(StoreError::Corrupt(format!("unknown table {table}"))),
        };
        Ok(sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Descriptions (`"agent 3"`) of the rows that point at `id`, from a
    /// list of (label, fixed query returning `id`).
    pub(crate) async fn users_of(
        &self,
        queries: &[(&str, &'static str)],
        id: Id,
    ) -> Result<Vec<String>, StoreError> {
        let mut users = Vec::new();
        for (label, sql) in queries {
            for row in sqlx::query(*sql).bind(id).fetch_all(&self.pool).await? {
                let other: i64 = row.try_get("id")?;
                users.push(format!("{label} {other}"));
            }
        }
        Ok(users)
    }
}

/// Makes `agent` the one agent whose extension is `extension`.
async fn link_agent(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    extension: Id,
    agent: Option<Id>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE agents SET extension_id = NULL WHERE extension_id = $1")
        .bind(extension)
        .execute(&mut **tx)
        .await?;
    if let Some(agent) = agent {
        sqlx::query("UPDATE agents SET extension_id = $1 WHERE id = $2")
            .bind(extension)
            .bind(agent)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
