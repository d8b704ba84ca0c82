//! Persistence on SQLite (the embedded default) or PostgreSQL, through
//! sqlx's `Any` driver so every query is written once and runs on both; the
//! schema is an equivalent pair of migrations (`migrations/sqlite`,
//! `migrations/postgres`). Queries are static SQL with bound parameters.
//!
//! Portability rules the queries follow: `$N` placeholders (SQLite accepts
//! them too), integers as BIGINT/INTEGER (i64), timestamps as epoch
//! milliseconds, lists as JSON text, booleans read through [`row::flag`].

mod acl;
mod agents;
mod attendances;
mod departments;
mod directory;
mod error;
mod extensions;
mod holidays;
mod idempotency;
mod ledger;
mod outbound_routes;
mod page;
mod pbx;
mod periods;
mod protocols;
mod provisioning;
mod row;
mod settings;
mod tokens;
mod trunks;
mod webhooks;

pub use attendances::{AttendanceBatch, AttendanceFilter, InterruptedCall, NewAttendance};
pub use directory::{CallDirectory, DepartmentRef};
pub use error::StoreError;
pub use idempotency::StoredResponse;
pub use ledger::LedgerStep;
pub use page::Page;
pub use provisioning::all_pages;
pub use tokens::{AuthenticatedToken, hash_token};

use std::str::FromStr;

use crate::domain;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow, install_default_drivers};
use sqlx::{AnyPool, Executor};

/// Which database is behind the pool (a few statements differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The service's database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Alive while any clone of this store is: the SQLite checkpointer
    /// stops when it is gone.
    alive: std::sync::Arc<()>,
}

impl Store {
    /// Connects, creating the SQLite file and its directory if needed, and
    /// applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite {
            prepare_sqlite(url).await?;
        }
        let max = if backend == Backend::Sqlite { 8 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Writers wait for each other instead of failing.
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        // WAL checkpoints (and their fsyncs) run in the
                        // background (`checkpointer`), not inside a
                        // committing writer; this is only the safety net.
                        conn.execute("PRAGMA wal_autocheckpoint = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let store = Self {
            pool,
            backend,
            alive: std::sync::Arc::new(()),
        };
        store.migrate().await?;
        if backend == Backend::Sqlite {
            tokio::spawn(checkpointer(
                store.pool.clone(),
                std::sync::Arc::downgrade(&store.alive),
            ));
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Cheap round trip for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Moves the SQLite WAL into the database file every 100 ms
/// (`PASSIVE`: never blocks readers or writers), on its own pool
/// connection, so no committing writer (the AMI follower, the API) runs a
/// checkpoint and its fsyncs itself. Each checkpoint's fsync can still
/// stall concurrent writes for a few ms (the file system's journal), so
/// they are kept small. Ends when every clone of the store is dropped or
/// it is closed.
async fn checkpointer(pool: AnyPool, alive: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.strong_count() == 0 || pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "SQLite WAL checkpoint skipped");
        }
    }
}

/// Creates the SQLite file's directory and switches the file to WAL once
/// (persistent in the file): readers never block the writer, and a process
/// killed mid-write leaves a consistent database.
async fn prepare_sqlite(url: &str) -> Result<(), StoreError> {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let conn = options.connect().await?;
    sqlx::Connection::close(conn).await.ok();
    Ok(())
}

impl Store {
    /// One page of an id-ordered resource: `sql` takes `$1` = the last id
    /// of the previous page and `$2` = how many rows to fetch.
    pub(crate) async fn page_by_id<T>(
        &self,
        sql: &'static str,
        after: domain::Id,
        limit: usize,
        from_row: impl Fn(&AnyRow) -> Result<T, StoreError>,
        id_of: impl Fn(&T) -> domain::Id,
    ) -> Result<Page<T>, StoreError> {
        let rows = sqlx::query(sql)
            .bind(after)
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, limit, |t| id_of(t).to_string()))
    }

    /// The row `sql` (taking `$1` = id) finds, or `NotFound`.
    pub(crate) async fn one_by_id<T>(
        &self,
        sql: &'static str,
        id: domain::Id,
        from_row: impl Fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }
}
