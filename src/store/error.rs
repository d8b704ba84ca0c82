use crate::domain::FieldErrors;

/// What a store operation can fail with, in terms the API can answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// Something is in the way: a duplicate, or a row that uses this one.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input is well-formed but refers to things that do not fit.
    #[error("invalid: {0}")]
    Invalid(FieldErrors),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Maps a unique-constraint violation to a conflict with `what`.
    pub(crate) fn unique(err: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(what()),
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Self::Conflict("a referenced row does not exist or is still in use".into())
            }
            _ => Self::Database(err),
        }
    }
}
