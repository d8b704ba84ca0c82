//! Protocol allocation. One atomic upsert per number: the row of the day is
//! incremented and read back in the same statement, so concurrent callers
//! (tasks or nodes sharing PostgreSQL) can never get the same sequence.

use chrono::NaiveDate;
use sqlx::AnyConnection;

use super::row::int;
use super::{Store, StoreError};
use crate::domain::{Protocol, ProtocolError};

impl Store {
    /// Allocates the next protocol of `day`.
    pub async fn next_protocol(&self, day: NaiveDate) -> Result<Protocol, StoreError> {
        let mut conn = self.pool.acquire().await?;
        next_protocol_on(&mut conn, day).await
    }
}

/// [`Store::next_protocol`] on a given connection (inside a transaction:
/// the number is only taken if the transaction commits).
pub(super) async fn next_protocol_on(
    conn: &mut AnyConnection,
    day: NaiveDate,
) -> Result<Protocol, StoreError> {
    let key = day.format("%Y%m%d").to_string();
    let row = sqlx::query(
        "INSERT INTO protocol_sequences (day, last) VALUES ($1, 1) \
         ON CONFLICT (day) DO UPDATE SET last = protocol_sequences.last + 1 \
         RETURNING last",
    )
    .bind(&key)
    .fetch_one(conn)
    .await?;
    let seq = u64::try_from(int(&row, "last")?).unwrap_or(0);
    Protocol::new(day, seq).map_err(|e: ProtocolError| StoreError::Unavailable(e.to_string()))
}
