//! The database's own driver (sqlx's SQLite or PostgreSQL, not `Any`) for the bulk writer: a
//! lazily connecting pool with the `Any` pool's session settings, and the writer's connection.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::config::{Backend, DatabaseConfig};

/// The database's own driver, for the bulk writer (connections are opened when first needed).
#[derive(Clone)]
pub(crate) enum NativePool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl NativePool {
    /// A lazily connecting pool on the same database as the `Any` pool, with the same session
    /// settings (SQLite: WAL, foreign keys, busy timeout; a larger page cache for bulk loads).
    pub(crate) fn lazy(config: &DatabaseConfig) -> Result<NativePool, sqlx::Error> {
        Ok(match config.backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(&config.url)?
                    .foreign_keys(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    // 64 MB of page cache: a load's index pages stay in memory.
                    .pragma("cache_size", "-65536")
                    // Statement journals in memory: a multi-row INSERT journals the pages it
                    // touches, and on disk that was two write calls per row (half the load's
                    // time went to the kernel).
                    .pragma("temp_store", "memory");
                NativePool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(2)
                        .acquire_timeout(Duration::from_secs(30))
                        .connect_lazy_with(options),
                )
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(&config.url)?;
                NativePool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(4)
                        .acquire_timeout(Duration::from_secs(30))
                        .connect_lazy_with(options),
                )
            }
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            NativePool::Sqlite(p) => p.close().await,
            NativePool::Postgres(p) => p.close().await,
        }
    }
}

/// The writer's transaction on the database's own driver.
pub(crate) enum Conn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}
