//! Test databases: a fresh SQLite file, and — when `CAPLENS_TEST_POSTGRES_URL` is set — a fresh
//! PostgreSQL schema per test (dropped afterwards), so concurrent runs never collide.
#![allow(dead_code)]

use caplens_server::{config::DatabaseConfig, storage::Store};
use sqlx::Executor;

pub struct TestDb {
    pub store: Store,
    pub name: &'static str,
    _dir: tempfile::TempDir,
    pg_schema: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        TestDb::sqlite_with(true).await
    }

    /// A fresh SQLite database, migrated or not.
    pub async fn sqlite_with(migrate: bool) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseConfig::resolve(None, dir.path()).unwrap();
        let store = Store::open(&db, dir.path()).await.expect("open sqlite");
        if migrate {
            store.migrate().await.expect("migrate sqlite");
        }
        TestDb {
            store,
            name: "sqlite",
            _dir: dir,
            pg_schema: None,
        }
    }

    /// `None` when no PostgreSQL is configured for tests. When `CAPLENS_TEST_POSTGRES_URL` is
    /// set, failing to reach it fails the test (the test command always sets it).
    pub async fn postgres() -> Option<TestDb> {
        TestDb::postgres_with(true).await
    }

    /// A fresh PostgreSQL schema, migrated or not; `None` as for [`TestDb::postgres`].
    pub async fn postgres_with(migrate: bool) -> Option<TestDb> {
        let base = std::env::var("CAPLENS_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        sqlx::any::install_default_drivers();
        let schema = format!(
            "caplens_t_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let admin = sqlx::AnyPool::connect(&base)
            .await
            .expect("CAPLENS_TEST_POSTGRES_URL is set but unreachable");
        admin
            .execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .unwrap();
        admin.close().await;
        let url = schema_url(&base, &schema);
        let dir = tempfile::tempdir().unwrap();
        let db = DatabaseConfig::resolve(Some(&url), dir.path()).unwrap();
        let store = Store::open(&db, dir.path()).await.expect("open postgres");
        if migrate {
            store.migrate().await.expect("migrate postgres");
        }
        Some(TestDb {
            store,
            name: "postgres",
            _dir: dir,
            pg_schema: Some((base, schema)),
        })
    }

    /// SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite().await];
        match TestDb::postgres().await {
            Some(pg) => dbs.push(pg),
            None => {
                eprintln!("note: CAPLENS_TEST_POSTGRES_URL not set; PostgreSQL variant not run")
            }
        }
        dbs
    }

    /// SQLite and, when configured, PostgreSQL, neither migrated.
    pub async fn all_unmigrated() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite_with(false).await];
        dbs.extend(TestDb::postgres_with(false).await);
        dbs
    }

    /// The `DatabaseConfig` of this test database, for more stores (replicas) on it.
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig::resolve(self.database_url().as_deref(), self.dir()).unwrap()
    }

    /// The `DATABASE_URL` of this PostgreSQL test database (its own schema), for a `caplens`
    /// process; `None` for SQLite (whose file is in the data directory).
    pub fn database_url(&self) -> Option<String> {
        self.pg_schema
            .as_ref()
            .map(|(base, schema)| schema_url(base, schema))
    }

    /// The data directory (blobs, uploads) of this test database.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some((base, schema)) = self.pg_schema {
            let admin = sqlx::AnyPool::connect(&base).await.unwrap();
            admin
                .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await
                .unwrap();
            admin.close().await;
        }
    }
}

/// A PostgreSQL URL whose connections use `schema`.
fn schema_url(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
