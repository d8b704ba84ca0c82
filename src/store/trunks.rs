//! Trunks, their DID routes (`trunk_did_routes`, in order) and their
//! secrets (kept for registering and authenticating; never returned).

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{enum_col, enum_text, flag, get_ts, json, now_ms, opt_int, opt_small, opt_text};
use super::row::{small, text, to_json};
use super::{Page, Store, StoreError};
use crate::domain::{DidRoute, FieldErrors, Id, Trunk, TrunkInput};

macro_rules! select {
    () => {
        "SELECT id, name, host, port, transport, username, secret IS NOT NULL AS has_secret, \
         register, register_expires_s, max_channels, inbound, created_at, updated_at FROM trunks"
    };
}

fn from_row(row: &AnyRow) -> Result<Trunk, StoreError> {
    Ok(Trunk {
        id: row.try_get("id")?,
        name: text(row, "name")?,
        host: text(row, "host")?,
        port: small(row, "port")?,
        transport: enum_col(row, "transport")?,
        username: opt_text(row, "username")?,
        has_secret: flag(row, "has_secret")?,
        register: flag(row, "register")?,
        register_expires_s: small(row, "register_expires_s")?,
        max_channels: opt_small(row, "max_channels")?,
        inbound: json(row, "inbound")?,
        did_routes: Vec::new(),
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn did_route(row: &AnyRow) -> Result<(Id, DidRoute), StoreError> {
    Ok((
        row.try_get("trunk_id")?,
        DidRoute {
            did: text(row, "did")?,
            department_id: opt_int(row, "department_id")?,
            extension_id: opt_int(row, "extension_id")?,
        },
    ))
}

impl Store {
    pub async fn list_trunks(&self, after: Id, limit: usize) -> Result<Page<Trunk>, StoreError> {
        let rows = sqlx::query(concat!(select!(), " WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after)
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        if let Some(last) = items[..items.len().min(limit)].last().map(|t| t.id) {
            let mut routes: HashMap<Id, Vec<DidRoute>> = HashMap::new();
            let rows = sqlx::query(
                "SELECT trunk_id, did, department_id, extension_id FROM trunk_did_routes \
                 WHERE trunk_id > $1 AND trunk_id <= $2 ORDER BY trunk_id, position",
            )
            .bind(after)
            .bind(last)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                let (trunk, route) = did_route(row)?;
                routes.entry(trunk).or_default().push(route);
            }
            for t in &mut items {
                t.did_routes = routes.remove(&t.id).unwrap_or_default();
            }
        }
        Ok(Page::from_rows(items, limit, |t| t.id.to_string()))
    }

    pub async fn get_trunk(&self, id: Id) -> Result<Trunk, StoreError> {
        let row = sqlx::query(concat!(select!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut trunk = from_row(&row)?;
        trunk.did_routes = sqlx::query(
            "SELECT trunk_id, did, department_id, extension_id FROM trunk_did_routes \
             WHERE trunk_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| did_route(r).map(|(_, route)| route))
        .collect::<Result<_, _>>()?;
        Ok(trunk)
    }

    /// The stored secret of trunk `id`, for registering with the carrier.
    pub async fn trunk_secret(&self, id: Id) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT secret FROM trunks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        opt_text(&row, "secret")
    }

    /// The trunks that register (`register: true`), each with its stored
    /// secret, for the bridge's registrations (DID routes not read).
    pub async fn registering_trunks(&self) -> Result<Vec<(Trunk, Option<String>)>, StoreError> {
        let rows = sqlx::query(concat!(select!(), " ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let trunk = from_row(row)?;
            if trunk.register {
                let secret = if trunk.has_secret {
                    self.trunk_secret(trunk.id).await?
                } else {
                    None
                };
                out.push((trunk, secret));
            }
        }
        Ok(out)
    }

    async fn check_trunk_refs(&self, id: Option<Id>, input: &TrunkInput) -> Result<(), StoreError> {
        if let Some(existing) = sqlx::query("SELECT id FROM trunks WHERE name = $1")
            .bind(&input.name)
            .fetch_optional(&self.pool)
            .await?
        {
            let other: i64 = existing.try_get("id")?;
            if Some(other) != id {
                return Err(StoreError::Conflict(format!(
                    "name {:?} is already trunk {other}",
                    input.name
                )));
            }
        }
        let mut e = FieldErrors::new();
        for (i, r) in input.did_routes.iter().enumerate() {
            if let Some(d) = r.department_id
                && !self.exists("departments", d).await?
            {
                e.add(
                    format!("did_routes[{i}].department_id"),
                    format!("no department with id {d}"),
                );
            }
            if let Some(x) = r.extension_id
                && !self.exists("extensions", x).await?
            {
                e.add(
                    format!("did_routes[{i}].extension_id"),
                    format!("no extension with id {x}"),
                );
            }
        }
        e.into_result().map_err(StoreError::Invalid)
    }

    pub async fn create_trunk(&self, input: &TrunkInput) -> Result<Trunk, StoreError> {
        self.check_trunk_refs(None, input).await?;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO trunks (name, host, port, transport, username, secret, register, \
             register_expires_s, max_channels, inbound, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING id",
        )
        .bind(&input.name)
        .bind(&input.host)
        .bind(i64::from(input.port))
        .bind(enum_text(&input.transport))
        .bind(input.username.as_deref())
        .bind(input.secret.as_deref())
        .bind(input.register)
        .bind(i64::from(input.register_expires_s))
        .bind(input.max_channels.map(i64::from))
        .bind(to_json(&input.inbound))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("name {:?} is taken", input.name)))?;
        let id: i64 = row.try_get("id")?;
        write_did_routes(&mut tx, id, &input.did_routes).await?;
        tx.commit().await?;
        self.get_trunk(id).await
    }

    /// Replaces trunk `id`; an absent secret keeps the stored one.
    pub async fn replace_trunk(&self, id: Id, input: &TrunkInput) -> Result<Trunk, StoreError> {
        self.get_trunk(id).await?;
        self.check_trunk_refs(Some(id), input).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE trunks SET name = $1, host = $2, port = $3, transport = $4, username = $5, \
             secret = COALESCE($6, secret), register = $7, register_expires_s = $8, \
             max_channels = $9, inbound = $10, updated_at = $11 WHERE id = $12",
        )
        .bind(&input.name)
        .bind(&input.host)
        .bind(i64::from(input.port))
        .bind(enum_text(&input.transport))
        .bind(input.username.as_deref())
        .bind(input.secret.as_deref())
        .bind(input.register)
        .bind(i64::from(input.register_expires_s))
        .bind(input.max_channels.map(i64::from))
        .bind(to_json(&input.inbound))
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("name {:?} is taken", input.name)))?;
        write_did_routes(&mut tx, id, &input.did_routes).await?;
        tx.commit().await?;
        self.get_trunk(id).await
    }

    /// Deletes trunk `id`; 409 while an outbound route still uses it.
    pub async fn delete_trunk(&self, id: Id) -> Result<(), StoreError> {
        self.get_trunk(id).await?;
        let users = self
            .users_of(
                &[(
                    "outbound route",
                    "SELECT route_id AS id FROM outbound_route_trunks WHERE trunk_id = $1 \
                     ORDER BY route_id",
                )],
                id,
            )
            .await?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "trunk {id} is used by {}",
                users.join(", ")
            )));
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM trunk_did_routes WHERE trunk_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM trunks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, String::new))?;
        tx.commit().await?;
        Ok(())
    }
}

/// Makes `routes` the DID routes of `trunk`, in order.
async fn write_did_routes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    trunk: Id,
    routes: &[DidRoute],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM trunk_did_routes WHERE trunk_id = $1")
        .bind(trunk)
        .execute(&mut **tx)
        .await?;
    for (position, r) in routes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO trunk_did_routes (trunk_id, position, did, department_id, extension_id) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(trunk)
        .bind(position as i64)
        .bind(&r.did)
        .bind(r.department_id)
        .bind(r.extension_id)
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("DID {} is listed twice", r.did)))?;
    }
    Ok(())
}
