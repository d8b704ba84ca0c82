//! ACL rules, kept in evaluation order.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::row::{enum_col, enum_text, get_ts, int, now_ms, text};
use super::{Page, Store, StoreError};
use crate::domain::{AclRule, AclRuleInput, Id};

macro_rules! select {
    () => {
        "SELECT id, position, cidr, action, applies_to, created_at, updated_at FROM acl_rules"
    };
}

fn from_row(row: &AnyRow) -> Result<AclRule, StoreError> {
    let cidr = text(row, "cidr")?;
    Ok(AclRule {
        id: row.try_get("id")?,
        position: int(row, "position")?,
        cidr: cidr
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("cidr {cidr:?}")))?,
        action: enum_col(row, "action")?,
        applies_to: enum_col(row, "applies_to")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

impl Store {
    /// Every rule, in evaluation order (position, then id).
    pub async fn all_acl_rules(&self) -> Result<Vec<AclRule>, StoreError> {
        let rows = sqlx::query(concat!(select!(), " ORDER BY position, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn list_acl_rules(
        &self,
        after: Id,
        limit: usize,
    ) -> Result<Page<AclRule>, StoreError> {
        self.page_by_id(
            concat!(select!(), " WHERE id > $1 ORDER BY id LIMIT $2"),
            after,
            limit,
            from_row,
            |r| r.id,
        )
        .await
    }

    pub async fn get_acl_rule(&self, id: Id) -> Result<AclRule, StoreError> {
        self.one_by_id(concat!(select!(), " WHERE id = $1"), id, from_row)
            .await
    }

    pub async fn create_acl_rule(&self, input: &AclRuleInput) -> Result<AclRule, StoreError> {
        let now = now_ms();
        let position = match input.position {
            Some(p) => p,
            None => {
                let row =
                    sqlx::query("SELECT COALESCE(MAX(position), -1) + 1 AS next FROM acl_rules")
                        .fetch_one(&self.pool)
                        .await?;
                int(&row, "next")?
            }
        };
        let row = sqlx::query(
            "INSERT INTO acl_rules (position, cidr, action, applies_to, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(position)
        .bind(input.cidr.to_string())
        .bind(enum_text(&input.action))
        .bind(enum_text(&input.applies_to))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        self.get_acl_rule(row.try_get("id")?).await
    }

    pub async fn replace_acl_rule(
        &self,
        id: Id,
        input: &AclRuleInput,
    ) -> Result<AclRule, StoreError> {
        let current = self.get_acl_rule(id).await?;
        sqlx::query(
            "UPDATE acl_rules SET position = $1, cidr = $2, action = $3, applies_to = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(input.position.unwrap_or(current.position))
        .bind(input.cidr.to_string())
        .bind(enum_text(&input.action))
        .bind(enum_text(&input.applies_to))
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.get_acl_rule(id).await
    }

    pub async fn delete_acl_rule(&self, id: Id) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM acl_rules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
