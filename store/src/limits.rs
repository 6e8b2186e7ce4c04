//! The SQL of rate limits: events per bucket in `rate_events` (what every replica sees), counted
//! and added inside one locked transaction per check, so concurrent requests cannot all pass a
//! limit that each checked alone. The rules (which buckets, how many, for how long) are
//! `auth::ratelimit`'s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::catalog::Tx;
use super::{db, Store};
use crate::config::Backend;
use crate::error::StoreError;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

/// A transaction holding the rate-limit lock of some buckets: counts and adds events.
pub struct RateTx {
    tx: Tx<'static>,
}

impl Store {
    /// Opens a transaction that holds the lock of `buckets` until it ends: on SQLite the write
    /// lock (`BEGIN IMMEDIATE`), on PostgreSQL one transaction-scoped advisory lock per bucket
    /// (taken in a fixed order, so two checks never wait on each other in a cycle).
    pub async fn rate_tx(&self, buckets: &[&str]) -> Result<RateTx, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            let mut keys: Vec<i64> = buckets.iter().map(|b| bucket_key(b)).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                db(sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(key)
                    .execute(&mut *tx)
                    .await)?;
            }
        }
        Ok(RateTx { tx })
    }

    /// Removes events older than `age` (every bucket's window is shorter).
    pub async fn prune_rate_events(&self, age: Duration) -> Result<u64, StoreError> {
        let before = now_ms() - age.as_millis() as i64;
        let done = db(sqlx::query("DELETE FROM rate_events WHERE at_ms < $1")
            .bind(before)
            .execute(&self.pool)
            .await)?;
        Ok(done.rows_affected())
    }

    /// Removes events by id (a provisional attempt that turned out not to count).
    pub async fn delete_rate_events(&self, ids: &[i64]) -> Result<(), StoreError> {
        for id in ids {
            db(sqlx::query("DELETE FROM rate_events WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await)?;
        }
        Ok(())
    }
}

impl RateTx {
    /// Events of `bucket` at or after `since_ms`, and the time of the oldest of them.
    pub async fn window(
        &mut self,
        bucket: &str,
        since_ms: i64,
    ) -> Result<(u64, Option<i64>), StoreError> {
        let (count, oldest): (i64, Option<i64>) = db(sqlx::query_as(
            "SELECT COUNT(*), MIN(at_ms) FROM rate_events WHERE bucket = $1 AND at_ms >= $2",
        )
        .bind(bucket)
        .bind(since_ms)
        .fetch_one(&mut *self.tx)
        .await)?;
        Ok((count.max(0) as u64, oldest))
    }

    /// Adds `n` events to `bucket` now; their ids.
    pub async fn add(&mut self, bucket: &str, n: u32) -> Result<Vec<i64>, StoreError> {
        let now = now_ms();
        let mut ids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            ids.push(db(sqlx::query_scalar(
                "INSERT INTO rate_events (bucket, at_ms) VALUES ($1, $2) RETURNING id",
            )
            .bind(bucket)
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await)?);
        }
        Ok(ids)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        db(self.tx.commit().await)
    }
}

/// A bucket's advisory-lock key: the first 8 bytes of its SHA-256.
fn bucket_key(bucket: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bucket.as_bytes());
    i64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}
