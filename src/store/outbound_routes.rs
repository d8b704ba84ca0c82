//! Outbound routes with their trunks (`outbound_route_trunks`, in failover
//! order) and the extensions allowed to use them
//! (`outbound_route_extensions`, returned in id order).

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{get_ts, int, json, now_ms, small, text, to_json};
use super::{Page, Store, StoreError};
use crate::domain::{FieldErrors, Id, OutboundRoute, OutboundRouteInput};

macro_rules! select {
    () => {
        "SELECT id, name, priority, patterns, strip, prepend, created_at, updated_at \
         FROM outbound_routes"
    };
}

fn from_row(row: &AnyRow) -> Result<OutboundRoute, StoreError> {
    Ok(OutboundRoute {
        id: row.try_get("id")?,
        name: text(row, "name")?,
        priority: int(row, "priority")?,
        patterns: json(row, "patterns")?,
        strip: small(row, "strip")?,
        prepend: text(row, "prepend")?,
        trunk_ids: Vec::new(),
        allowed_extension_ids: Vec::new(),
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

/// Rows of (`route_id`, `other`) grouped by route, in query order.
fn grouped(rows: &[AnyRow], col: &str) -> Result<HashMap<Id, Vec<Id>>, StoreError> {
    let mut map: HashMap<Id, Vec<Id>> = HashMap::new();
    for row in rows {
        map.entry(int(row, "route_id")?)
            .or_default()
            .push(int(row, col)?);
    }
    Ok(map)
}

impl Store {
    /// Routes after `after` in id order (the routing engine sorts by
    /// priority itself).
    pub async fn list_outbound_routes(
        &self,
        after: Id,
        limit: usize,
    ) -> Result<Page<OutboundRoute>, StoreError> {
        let rows = sqlx::query(concat!(select!(), " WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after)
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        if let Some(last) = items[..items.len().min(limit)].last().map(|r| r.id) {
            self.load_route_children(&mut items, after, last).await?;
        }
        Ok(Page::from_rows(items, limit, |r| r.id.to_string()))
    }

    /// Fills the trunk and extension lists of `routes`, whose ids are in
    /// `(after, last]`.
    async fn load_route_children(
        &self,
        routes: &mut [OutboundRoute],
        after: Id,
        last: Id,
    ) -> Result<(), StoreError> {
        let trunks = sqlx::query(
            "SELECT route_id, trunk_id FROM outbound_route_trunks \
             WHERE route_id > $1 AND route_id <= $2 ORDER BY route_id, position",
        )
        .bind(after)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        let extensions = sqlx::query(
            "SELECT route_id, extension_id FROM outbound_route_extensions \
             WHERE route_id > $1 AND route_id <= $2 ORDER BY route_id, extension_id",
        )
        .bind(after)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        let mut trunks = grouped(&trunks, "trunk_id")?;
        let mut extensions = grouped(&extensions, "extension_id")?;
        for r in routes {
            r.trunk_ids = trunks.remove(&r.id).unwrap_or_default();
            r.allowed_extension_ids = extensions.remove(&r.id).unwrap_or_default();
        }
        Ok(())
    }

    pub async fn get_outbound_route(&self, id: Id) -> Result<OutboundRoute, StoreError> {
        let row = sqlx::query(concat!(select!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut route = [from_row(&row)?];
        self.load_route_children(&mut route, id - 1, id).await?;
        let [route] = route;
        Ok(route)
    }

    async fn check_route_refs(&self, input: &OutboundRouteInput) -> Result<(), StoreError> {
        let mut e = FieldErrors::new();
        for (i, t) in input.trunk_ids.iter().enumerate() {
            if !self.exists("trunks", *t).await? {
                e.add(format!("trunk_ids[{i}]"), format!("no trunk with id {t}"));
            }
        }
        for (i, x) in input.allowed_extension_ids.iter().enumerate() {
            if !self.exists("extensions", *x).await? {
                e.add(
                    format!("allowed_extension_ids[{i}]"),
                    format!("no extension with id {x}"),
                );
            }
        }
        e.into_result().map_err(StoreError::Invalid)
    }

    pub async fn create_outbound_route(
        &self,
        input: &OutboundRouteInput,
    ) -> Result<OutboundRoute, StoreError> {
        self.check_route_refs(input).await?;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO outbound_routes (name, priority, patterns, strip, prepend, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        )
        .bind(&input.name)
        .bind(input.priority)
        .bind(to_json(&input.patterns))
        .bind(i64::from(input.strip))
        .bind(&input.prepend)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        write_route_children(&mut tx, id, input).await?;
        tx.commit().await?;
        self.get_outbound_route(id).await
    }

    pub async fn replace_outbound_route(
        &self,
        id: Id,
        input: &OutboundRouteInput,
    ) -> Result<OutboundRoute, StoreError> {
        self.get_outbound_route(id).await?;
        self.check_route_refs(input).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE outbound_routes SET name = $1, priority = $2, patterns = $3, strip = $4, \
             prepend = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(&input.name)
        .bind(input.priority)
        .bind(to_json(&input.patterns))
        .bind(i64::from(input.strip))
        .bind(&input.prepend)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        write_route_children(&mut tx, id, input).await?;
        tx.commit().await?;
        self.get_outbound_route(id).await
    }

    pub async fn delete_outbound_route(&self, id: Id) -> Result<(), StoreError> {
        self.get_outbound_route(id).await?;
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM outbound_route_trunks WHERE route_id = $1",
            "DELETE FROM outbound_route_extensions WHERE route_id = $1",
            "DELETE FROM outbound_routes WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Makes the input's trunks (in order) and extensions those of `route`.
async fn write_route_children(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    route: Id,
    input: &OutboundRouteInput,
) -> Result<(), StoreError> {
    let in_use = || "a referenced trunk or extension was deleted meanwhile".to_owned();
    for sql in [
        "DELETE FROM outbound_route_trunks WHERE route_id = $1",
        "DELETE FROM outbound_route_extensions WHERE route_id = $1",
    ] {
        sqlx::query(sql).bind(route).execute(&mut **tx).await?;
    }
    for (position, trunk) in input.trunk_ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO outbound_route_trunks (route_id, trunk_id, position) VALUES ($1, $2, $3)",
        )
        .bind(route)
        .bind(trunk)
        .bind(position as i64)
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::unique(e, in_use))?;
    }
    for extension in &input.allowed_extension_ids {
        sqlx::query(
            "INSERT INTO outbound_route_extensions (route_id, extension_id) VALUES ($1, $2)",
        )
        .bind(route)
        .bind(extension)
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::unique(e, in_use))?;
    }
    Ok(())
}
