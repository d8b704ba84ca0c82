//! Whole-table reads for provisioning Asterisk (`pbx-bridge asterisk
//! render`): every extension and trunk with the secret Asterisk needs,
//! every department and outbound route. Built on the paged reads so the
//! representations are the API's.

use std::collections::HashMap;

use sqlx::Row;

use super::row::{opt_text, text};
use super::{Page, Store, StoreError};
use crate::domain::{Department, Extension, Id, OutboundRoute, Trunk};

const PAGE: usize = 500;

/// Every item of an id-ordered resource, page by page (whole-table reads
/// built on the API's paged reads, so the representations are the API's).
pub async fn all_pages<T, F, Fut>(list: F, id_of: impl Fn(&T) -> Id) -> Result<Vec<T>, StoreError>
where
    F: Fn(Id, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    let mut items = Vec::new();
    let mut after = 0;
    loop {
        let page = list(after, PAGE).await?;
        let more = page.next_cursor.is_some();
        if let Some(last) = page.items.last() {
            after = id_of(last);
        }
        items.extend(page.items);
        if !more {
            return Ok(items);
        }
    }
}

impl Store {
    /// Every extension with its SIP secret, in id order.
    pub async fn extension_accounts(&self) -> Result<Vec<(Extension, String)>, StoreError> {
        let mut secrets: HashMap<Id, String> = HashMap::new();
        for row in sqlx::query("SELECT id, secret FROM extensions")
            .fetch_all(&self.pool)
            .await?
        {
            secrets.insert(row.try_get("id")?, text(&row, "secret")?);
        }
        let extensions = all_pages(|a, l| self.list_extensions(a, l), |e| e.id).await?;
        Ok(extensions
            .into_iter()
            .filter_map(|e| secrets.remove(&e.id).map(|s| (e, s)))
            .collect())
    }

    /// Every trunk with its secret (if one is stored), in id order.
    pub async fn trunk_accounts(&self) -> Result<Vec<(Trunk, Option<String>)>, StoreError> {
        let mut secrets: HashMap<Id, Option<String>> = HashMap::new();
        for row in sqlx::query("SELECT id, secret FROM trunks")
            .fetch_all(&self.pool)
            .await?
        {
            secrets.insert(row.try_get("id")?, opt_text(&row, "secret")?);
        }
        let trunks = all_pages(|a, l| self.list_trunks(a, l), |t| t.id).await?;
        Ok(trunks
            .into_iter()
            .map(|t| {
                let secret = secrets.remove(&t.id).flatten();
                (t, secret)
            })
            .collect())
    }

    /// Every department, in id order.
    pub async fn all_departments(&self) -> Result<Vec<Department>, StoreError> {
        all_pages(|a, l| self.list_departments(a, l), |d| d.id).await
    }

    /// Every outbound route with its trunks and allowed extensions, in id
    /// order.
    pub async fn all_outbound_routes(&self) -> Result<Vec<OutboundRoute>, StoreError> {
        all_pages(|a, l| self.list_outbound_routes(a, l), |r| r.id).await
    }
}
