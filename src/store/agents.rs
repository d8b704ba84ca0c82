//! Agents, their ordered department memberships (`agent_departments`) and
//! their pauses (`pause_reason`, `paused_at`: a pause lasts until ended).

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{flag, get_ts, now_ms, opt_int, opt_text, opt_ts, text};
use super::{Page, Store, StoreError};
use crate::domain::{Agent, AgentInput, FieldErrors, Id, Membership, Pause, Presence};

macro_rules! select {
    () => {
        "SELECT id, name, extension_id, active, pause_reason, paused_at, created_at, \
         updated_at FROM agents"
    };
}

/// Whether the agent's extension is registered: the database cannot know
/// (bindings live in the registrar's memory), so rows read here say
/// `offline`, and the API fills in the live presence and `busy`.
fn registered(_extension: Option<Id>) -> bool {
    false
}

fn from_row(row: &AnyRow) -> Result<Agent, StoreError> {
    let extension_id = opt_int(row, "extension_id")?;
    let active = flag(row, "active")?;
    let pause = match (opt_text(row, "pause_reason")?, opt_ts(row, "paused_at")?) {
        (Some(reason), Some(since)) => Some(Pause { reason, since }),
        _ => None,
    };
    Ok(Agent {
        id: row.try_get("id")?,
        name: text(row, "name")?,
        extension_id,
        active,
        departments: Vec::new(),
        presence: Presence::derive(
            active,
            extension_id.is_some(),
            pause.is_some(),
            registered(extension_id),
        ),
        pause,
        busy: false,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn membership(row: &AnyRow) -> Result<(Id, Membership), StoreError> {
    Ok((
        row.try_get("agent_id")?,
        Membership {
            department_id: row.try_get("department_id")?,
            receives_calls: flag(row, "receives_calls")?,
            responsible: flag(row, "responsible")?,
        },
    ))
}

impl Store {
    pub async fn list_agents(&self, after: Id, limit: usize) -> Result<Page<Agent>, StoreError> {
        let rows = sqlx::query(concat!(select!(), " WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after)
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        let mut page = Page::from_rows(items, limit, |a| a.id.to_string());
        if let Some(last) = page.items.last().map(|a| a.id) {
            // The memberships of the page's agents: ids in (after, last].
            let rows = sqlx::query(
                "SELECT agent_id, department_id, receives_calls, responsible \
                 FROM agent_departments WHERE agent_id > $1 AND agent_id <= $2 \
                 ORDER BY agent_id, position",
            )
            .bind(after)
            .bind(last)
            .fetch_all(&self.pool)
            .await?;
            let mut by_agent: HashMap<Id, Vec<Membership>> = HashMap::new();
            for row in &rows {
                let (agent, m) = membership(row)?;
                by_agent.entry(agent).or_default().push(m);
            }
            for agent in &mut page.items {
                agent.departments = by_agent.remove(&agent.id).unwrap_or_default();
            }
        }
        Ok(page)
    }

    pub async fn get_agent(&self, id: Id) -> Result<Agent, StoreError> {
        let row = sqlx::query(concat!(select!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut agent = from_row(&row)?;
        let rows = sqlx::query(
            "SELECT agent_id, department_id, receives_calls, responsible \
             FROM agent_departments WHERE agent_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        agent.departments = rows
            .iter()
            .map(|r| membership(r).map(|(_, m)| m))
            .collect::<Result<_, _>>()?;
        Ok(agent)
    }

    /// References (422, every bad field at once), then the extension's
    /// other agent (409). `id` is the agent being replaced.
    async fn check_agent_refs(&self, id: Option<Id>, input: &AgentInput) -> Result<(), StoreError> {
        let mut errors = FieldErrors::new();
        if let Some(ext) = input.extension_id
            && !self.exists("extensions", ext).await?
        {
            errors.add("extension_id", format!("no extension with id {ext}"));
        }
        for (i, m) in input.departments.iter().enumerate() {
            if !self.exists("departments", m.department_id).await? {
                errors.add(
                    format!("departments[{i}].department_id"),
                    format!("no department with id {}", m.department_id),
                );
            }
        }
        errors.into_result().map_err(StoreError::Invalid)?;
        if let Some(ext) = input.extension_id
            && let Some(row) = sqlx::query("SELECT id FROM agents WHERE extension_id = $1")
                .bind(ext)
                .fetch_optional(&self.pool)
                .await?
        {
            let other: i64 = row.try_get("id")?;
            if Some(other) != id {
                return Err(StoreError::Conflict(format!(
                    "extension {ext} already belongs to agent {other}"
                )));
            }
        }
        Ok(())
    }

    pub async fn create_agent(&self, input: &AgentInput) -> Result<Agent, StoreError> {
        self.check_agent_refs(None, input).await?;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO agents (name, extension_id, active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(&input.name)
        .bind(input.extension_id)
        .bind(input.active)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || extension_taken(input)))?;
        let id: i64 = row.try_get("id")?;
        write_memberships(&mut tx, id, &input.departments).await?;
        tx.commit().await?;
        self.get_agent(id).await
    }

    /// Replaces the agent's fields and memberships; a pause in progress is
    /// kept (only the pause routes start and end pauses).
    pub async fn replace_agent(&self, id: Id, input: &AgentInput) -> Result<Agent, StoreError> {
        self.get_agent(id).await?;
        self.check_agent_refs(Some(id), input).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE agents SET name = $1, extension_id = $2, active = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(&input.name)
        .bind(input.extension_id)
        .bind(input.active)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || extension_taken(input)))?;
        write_memberships(&mut tx, id, &input.departments).await?;
        tx.commit().await?;
        self.get_agent(id).await
    }

    /// Memberships go with the agent (ON DELETE CASCADE).
    pub async fn delete_agent(&self, id: Id) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::unique(e, String::new))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Starts a pause; 409 when one is already in progress. Atomic: of two
    /// concurrent pauses exactly one wins.
    pub async fn pause_agent(&self, id: Id, reason: &str) -> Result<Agent, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE agents SET pause_reason = $1, paused_at = $2, updated_at = $2 \
             WHERE id = $3 AND paused_at IS NULL",
        )
        .bind(reason)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            let agent = self.get_agent(id).await?;
            let why = agent
                .pause
                .map(|p| format!(" ({:?} since {})", p.reason, p.since.to_rfc3339()))
                .unwrap_or_default();
            return Err(StoreError::Conflict(format!(
                "agent {id} is already paused{why}"
            )));
        }
        self.get_agent(id).await
    }

    /// Ends the pause in progress; 409 when the agent is not paused.
    pub async fn unpause_agent(&self, id: Id) -> Result<Agent, StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET pause_reason = NULL, paused_at = NULL, updated_at = $1 \
             WHERE id = $2 AND paused_at IS NOT NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            self.get_agent(id).await?;
            return Err(StoreError::Conflict(format!("agent {id} is not paused")));
        }
        self.get_agent(id).await
    }
}

/// Replaces the agent's memberships, in the input's order.
async fn write_memberships(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    agent: Id,
    departments: &[Membership],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM agent_departments WHERE agent_id = $1")
        .bind(agent)
        .execute(&mut **tx)
        .await?;
    for (position, m) in departments.iter().enumerate() {
        sqlx::query(
            "INSERT INTO agent_departments (agent_id, department_id, receives_calls, \
             responsible, position) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(agent)
        .bind(m.department_id)
        .bind(m.receives_calls)
        .bind(m.responsible)
        .bind(position as i64)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            StoreError::unique(e, || {
                format!("department {} is listed twice", m.department_id)
            })
        })?;
    }
    Ok(())
}

/// The conflict when the UNIQUE constraint catches a concurrent writer.
fn extension_taken(input: &AgentInput) -> String {
    match input.extension_id {
        Some(ext) => format!("extension {ext} already belongs to another agent"),
        None => "the agent conflicts with another".into(),
    }
}
