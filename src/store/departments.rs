//! Departments: their ring settings, PABX code, overflow chain, business
//! hours and after-hours destination. `order` is stored as `sort_order`
//! (a reserved word in SQL); `after_hours` is nullable JSON text.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{
    enum_col, enum_text, flag, get_ts, now_ms, opt_int, opt_small, opt_text, small, text, to_json,
};
use super::{Page, Store, StoreError};
use crate::domain::{AfterHours, Department, DepartmentInput, FieldErrors, Id};

macro_rules! select {
    () => {
        "SELECT id, name, description, active, sort_order, pabx_code, ring_strategy, \
         ring_target, ring_count, agent_ring_timeout_s, ring_timeout_s, \
         overflow_department_id, close_on_hangup, record, period_id, after_hours, \
         auto_pause_after_missed, created_at, updated_at FROM departments"
    };
}

fn from_row(row: &AnyRow) -> Result<Department, StoreError> {
    let after_hours = opt_text(row, "after_hours")?
        .map(|s| {
            serde_json::from_str::<AfterHours>(&s)
                .map_err(|e| StoreError::Corrupt(format!("after_hours: {e}")))
        })
        .transpose()?;
    Ok(Department {
        id: row.try_get("id")?,
        name: text(row, "name")?,
        description: text(row, "description")?,
        active: flag(row, "active")?,
        order: row.try_get("sort_order")?,
        pabx_code: opt_small(row, "pabx_code")?,
        ring_strategy: enum_col(row, "ring_strategy")?,
        ring_target: enum_col(row, "ring_target")?,
        ring_count: opt_small(row, "ring_count")?,
        agent_ring_timeout_s: small(row, "agent_ring_timeout_s")?,
        ring_timeout_s: small(row, "ring_timeout_s")?,
        overflow_department_id: opt_int(row, "overflow_department_id")?,
        close_on_hangup: flag(row, "close_on_hangup")?,
        record: flag(row, "record")?,
        period_id: opt_int(row, "period_id")?,
        after_hours,
        auto_pause_after_missed: opt_small(row, "auto_pause_after_missed")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

impl Store {
    pub async fn list_departments(
        &self,
        after: Id,
        limit: usize,
    ) -> Result<Page<Department>, StoreError> {
        self.page_by_id(
            concat!(select!(), " WHERE id > $1 ORDER BY id LIMIT $2"),
            after,
            limit,
            from_row,
            |d| d.id,
        )
        .await
    }

    pub async fn get_department(&self, id: Id) -> Result<Department, StoreError> {
        self.one_by_id(concat!(select!(), " WHERE id = $1"), id, from_row)
            .await
    }

    /// The rules that need other rows: references (422, every bad field at
    /// once), then the PABX code's uniqueness against departments and
    /// extension numbers (409). `id` is the department being replaced.
    async fn check_department_refs(
        &self,
        id: Option<Id>,
        input: &DepartmentInput,
    ) -> Result<(), StoreError> {
        let mut errors = FieldErrors::new();
        if let Some(target) = input.overflow_department_id {
            if !self.exists("departments", target).await? {
                errors.add(
                    "overflow_department_id",
                    format!("no department with id {target}"),
                );
            } else if let Some(id) = id
                && let Some(chain) = self.overflow_loop(id, target).await?
            {
                let chain = chain
                    .iter()
                    .map(Id::to_string)
                    .collect::<Vec<_>>()
                    .join(" → ");
                errors.add(
                    "overflow_department_id",
                    format!("would create a loop of overflow departments: {chain}"),
                );
            }
        }
        if let Some(period) = input.period_id
            && !self.exists("periods", period).await?
        {
            errors.add("period_id", format!("no period with id {period}"));
        }
        if let Some(target) = input.after_hours.as_ref().and_then(|a| a.department_id) {
            if Some(target) == id {
                errors.add(
                    "after_hours.department_id",
                    "must not be the department itself",
                );
            } else if !self.exists("departments", target).await? {
                errors.add(
                    "after_hours.department_id",
                    format!("no department with id {target}"),
                );
            }
        }
        errors.into_result().map_err(StoreError::Invalid)?;

        if let Some(code) = input.pabx_code {
            if let Some(row) = sqlx::query("SELECT id FROM departments WHERE pabx_code = $1")
                .bind(i64::from(code))
                .fetch_optional(&self.pool)
                .await?
            {
                let other: i64 = row.try_get("id")?;
                if Some(other) != id {
                    return Err(StoreError::Conflict(format!(
                        "PABX code {code} is already used by department {other}"
                    )));
                }
            }
            if let Some(row) = sqlx::query("SELECT id FROM extensions WHERE number = $1")
                .bind(code.to_string())
                .fetch_optional(&self.pool)
                .await?
            {
                let ext: i64 = row.try_get("id")?;
                return Err(StoreError::Conflict(format!(
                    "PABX code {code} is the number of extension {ext}"
                )));
            }
        }
        Ok(())
    }

    /// The chain `id → target → …` when making `target` the overflow of `id`
    /// would lead back to `id`; `None` when the chain ends.
    async fn overflow_loop(&self, id: Id, target: Id) -> Result<Option<Vec<Id>>, StoreError> {
        let mut chain = vec![id, target];
        let mut current = target;
        while current != id {
            let next = sqlx::query("SELECT overflow_department_id FROM departments WHERE id = $1")
                .bind(current)
                .fetch_optional(&self.pool)
                .await?
                .map(|row| opt_int(&row, "overflow_department_id"))
                .transpose()?
                .flatten();
            match next {
                None => return Ok(None),
                // A loop that does not pass through `id` is not this change's
                // doing (and cannot be stored through this check).
                Some(n) if n != id && chain.contains(&n) => return Ok(None),
                Some(n) => {
                    chain.push(n);
                    current = n;
                }
            }
        }
        Ok(Some(chain))
    }

    pub async fn create_department(
        &self,
        input: &DepartmentInput,
    ) -> Result<Department, StoreError> {
        self.check_department_refs(None, input).await?;
        let insert = sqlx::query(
            "INSERT INTO departments (name, description, active, sort_order, pabx_code, \
             ring_strategy, ring_target, ring_count, agent_ring_timeout_s, ring_timeout_s, \
             overflow_department_id, close_on_hangup, record, period_id, after_hours, \
             auto_pause_after_missed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
             $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) RETURNING id",
        );
        let row = bind_input(insert, input)
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::unique(e, || code_taken(input)))?;
        self.get_department(row.try_get("id")?).await
    }

    pub async fn replace_department(
        &self,
        id: Id,
        input: &DepartmentInput,
    ) -> Result<Department, StoreError> {
        self.get_department(id).await?;
        self.check_department_refs(Some(id), input).await?;
        let update = sqlx::query(
            "UPDATE departments SET name = $1, description = $2, active = $3, sort_order = $4, \
             pabx_code = $5, ring_strategy = $6, ring_target = $7, ring_count = $8, \
             agent_ring_timeout_s = $9, ring_timeout_s = $10, overflow_department_id = $11, \
             close_on_hangup = $12, record = $13, period_id = $14, after_hours = $15, \
             auto_pause_after_missed = $16, updated_at = $17 WHERE id = $18",
        );
        bind_input(update, input)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::unique(e, || code_taken(input)))?;
        self.get_department(id).await
    }

    /// Refused (409, naming each user) while another department overflows
    /// or sends its after-hours calls here, agents are members, or a trunk
    /// DID routes here.
    pub async fn delete_department(&self, id: Id) -> Result<(), StoreError> {
        self.get_department(id).await?;
        let mut users = self
            .users_of(
                &[
                    (
                        "overflow of department",
                        "SELECT id FROM departments WHERE overflow_department_id = $1",
                    ),
                    (
                        "agent",
                        "SELECT agent_id AS id FROM agent_departments WHERE department_id = $1 \
                         ORDER BY agent_id",
                    ),
                    (
                        "DID route of trunk",
                        "SELECT DISTINCT trunk_id AS id FROM trunk_did_routes \
                         WHERE department_id = $1 ORDER BY trunk_id",
                    ),
                ],
                id,
            )
            .await?;
        // after_hours is JSON text: compare in Rust rather than with
        // dialect-specific JSON operators.
        let rows = sqlx::query(
            "SELECT id, after_hours FROM departments WHERE after_hours IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let Some(text) = opt_text(&row, "after_hours")? else {
                continue;
            };
            let after: AfterHours = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("after_hours: {e}")))?;
            if after.department_id == Some(id) {
                let other: i64 = row.try_get("id")?;
                users.push(format!("after hours of department {other}"));
            }
        }
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "department {id} is used by {}",
                users.join(", ")
            )));
        }
        sqlx::query("DELETE FROM departments WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::unique(e, String::new))?;
        Ok(())
    }
}

/// The conflict when the UNIQUE constraint catches a concurrent writer.
fn code_taken(input: &DepartmentInput) -> String {
    match input.pabx_code {
        Some(code) => format!("PABX code {code} is already used by another department"),
        None => "the department conflicts with another".into(),
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds `$1`..`$16`: the input's columns, in the order both the INSERT
/// and the UPDATE list them.
fn bind_input<'q>(query: AnyQuery<'q>, input: &'q DepartmentInput) -> AnyQuery<'q> {
    query
        .bind(&input.name)
        .bind(&input.description)
        .bind(input.active)
        .bind(input.order)
        .bind(input.pabx_code.map(i64::from))
        .bind(enum_text(&input.ring_strategy))
        .bind(enum_text(&input.ring_target))
        .bind(input.ring_count.map(i64::from))
        .bind(i64::from(input.agent_ring_timeout_s))
        .bind(i64::from(input.ring_timeout_s))
        .bind(input.overflow_department_id)
        .bind(input.close_on_hangup)
        .bind(input.record)
        .bind(input.period_id)
        .bind(input.after_hours.as_ref().map(to_json))
        .bind(input.auto_pause_after_missed.map(i64::from))
}
