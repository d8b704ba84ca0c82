//! Who is who on the PBX, read in one go for the call engines: extension
//! numbers and their agents, department PABX codes, trunk names.

use std::collections::HashMap;

use super::row::{flag, int, opt_int, small, text};
use super::{Store, StoreError};
use crate::domain::Id;

/// A department as a call engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepartmentRef {
    pub id: Id,
    pub close_on_hangup: bool,
}

/// A snapshot of the numbering plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallDirectory {
    /// Active extension number → the agent using it, if any.
    pub extensions: HashMap<String, Option<Id>>,
    /// PABX code (`"701"`) → department.
    pub department_codes: HashMap<String, DepartmentRef>,
    /// Every department by id (close rule after a transfer).
    pub departments: HashMap<Id, DepartmentRef>,
    /// Trunk names (also their PJSIP endpoint names on Asterisk).
    pub trunks: Vec<String>,
}

impl CallDirectory {
    pub fn agent_of_extension(&self, number: &str) -> Option<Id> {
        self.extensions.get(number).copied().flatten()
    }
}

impl Store {
    /// Reads the numbering plan (three small queries).
    pub async fn call_directory(&self) -> Result<CallDirectory, StoreError> {
        let mut dir = CallDirectory::default();
        let rows = sqlx::query(
            "SELECT e.number, a.id AS agent_id FROM extensions e \
             LEFT JOIN agents a ON a.extension_id = e.id WHERE e.active = $1",
        )
        .bind(true)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            dir.extensions
                .insert(text(row, "number")?, opt_int(row, "agent_id")?);
        }
        let rows = sqlx::query("SELECT id, pabx_code, close_on_hangup FROM departments")
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            let d = DepartmentRef {
                id: int(row, "id")?,
                close_on_hangup: flag(row, "close_on_hangup")?,
            };
            if opt_int(row, "pabx_code")?.is_some() {
                let code: u16 = small(row, "pabx_code")?;
                dir.department_codes.insert(code.to_string(), d);
            }
            dir.departments.insert(d.id, d);
        }
        let rows = sqlx::query("SELECT name FROM trunks ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            dir.trunks.push(text(row, "name")?);
        }
        Ok(dir)
    }
}
