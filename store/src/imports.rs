//! The `imports` rows: one per upload, `processing` while it runs, then its report. The rows
//! an import stores go through the [`BulkWriter`](super::bulk::BulkWriter), whose transaction
//! also writes the completed report; a failed or duplicate import records its report here.

use super::bulk::{on_conn, BulkWriter, Conn};
use super::{db, now_rfc3339, Store};
use crate::error::StoreError;

/// A new import, before anything of it is stored.
pub struct NewImport<'a> {
    pub id: &'a str,
    pub format: Option<&'a str>,
    /// JSON list of the files.
    pub files: &'a str,
    /// JSON of the import parameters.
    pub params: &'a str,
    pub bytes_total: i64,
    pub token_id: Option<i64>,
    pub created_at: &'a str,
    /// Project slug (`default` when none).
    pub project: &'a str,
}

/// How an import ended, as its row records it.
pub struct ImportOutcome<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub rows_read: i64,
    pub rows_stored: i64,
    pub rows_rejected: i64,
    /// JSON list of the first errors.
    pub errors: &'a str,
    /// JSON list of the imported runs.
    pub runs: &'a str,
    pub message: Option<&'a str>,
    pub duplicate_of: Option<&'a str>,
    pub finished_at: Option<&'a str>,
    pub bytes_total: i64,
    /// Set when completed: the files' content hash and their list (JSON, with hashes).
    pub content: Option<(&'a str, &'a str)>,
}

/// An import's stored row.
pub struct StoredImport {
    pub id: String,
    pub status: String,
    pub files: String,
    pub params: String,
    pub bytes_total: i64,
    pub rows_read: i64,
    pub rows_stored: i64,
    pub rows_rejected: i64,
    pub errors: String,
    pub runs: String,
    pub message: Option<String>,
    pub duplicate_of: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// The experiment its runs went into, when any did.
    pub experiment: Option<String>,
}

/// An import as the sweeper sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportState {
    pub status: String,
    /// Failed because its process stopped (its kept upload is for a retry).
    pub interrupted: bool,
    /// Processing, by a process that holds its lease.
    pub running: bool,
}

/// How long an import lease holds without renewal (PostgreSQL): `CAPLENS_IMPORT_LEASE_SECS`,
/// default 60 s. A replica that dies mid-import is declared interrupted this long after its
/// last renewal (at once by a process on its own host, which sees its pid gone).
pub fn import_lease() -> std::time::Duration {
    let secs = std::env::var("CAPLENS_IMPORT_LEASE_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s >= 2)
        .unwrap_or(60);
    std::time::Duration::from_secs(secs)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What an interrupted import's row says, so that the user knows nothing of it is stored and
/// how to get it in.
const INTERRUPTED: &str = "interrupted: the server stopped during the import, so nothing of it was stored; retry it (POST /api/v1/imports/ID/retry, while its upload is kept) or upload the files again";

impl Store {
    /// Records an import as `processing` (outside its transaction: the row shows progress).
    pub async fn insert_import(&self, i: &NewImport<'_>) -> Result<(), StoreError> {
        db(sqlx::query(
            "INSERT INTO imports (id, status, format, files, params, content_hash, bytes_total, token_id, created_at, project_id, lease_owner, lease_until)
             VALUES ($1, 'processing', $2, $3, $4, '', $5, $6, $7, (SELECT id FROM projects WHERE slug = $8), $9, $10)",
        )
        .bind(i.id)
        .bind(i.format)
        .bind(i.files)
        .bind(i.params)
        .bind(i.bytes_total)
        .bind(i.token_id)
        .bind(i.created_at)
        .bind(i.project)
        .bind(super::instance_id())
        .bind(self.import_lease_until())
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    pub async fn import_exists(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<String> = db(sqlx::query_scalar("SELECT id FROM imports WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await)?;
        Ok(found.is_some())
    }

    /// Records how an import ended when nothing of it was stored (failed, duplicate).
    pub async fn record_import_outcome(&self, o: &ImportOutcome<'_>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        db(outcome_query(o).execute(&mut *tx).await)?;
        db(tx.commit().await)?;
        Ok(())
    }

    /// An import's stored row.
    pub async fn import(&self, id: &str) -> Result<Option<StoredImport>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
        );
        let row: Option<Row> = db(sqlx::query_as(
            "SELECT i.id, i.status, i.files, i.params, i.bytes_total, i.rows_read, i.rows_stored,
                    i.rows_rejected, i.errors, i.runs, i.message, i.duplicate_of, i.created_at, i.finished_at
             FROM imports i WHERE i.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        let Some(r) = row else { return Ok(None) };
        let experiment: Option<String> = db(sqlx::query_scalar(
            "SELECT e.slug FROM experiments e JOIN experiment_runs er ON er.experiment_id = e.id
             JOIN runs r ON r.id = er.run_id WHERE r.import_id = $1 ORDER BY e.id LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(Some(StoredImport {
            id: r.0,
            status: r.1,
            files: r.2,
            params: r.3,
            bytes_total: r.4,
            rows_read: r.5,
            rows_stored: r.6,
            rows_rejected: r.7,
            errors: r.8,
            runs: r.9,
            message: r.10,
            duplicate_of: r.11,
            created_at: r.12,
            finished_at: r.13,
            experiment,
        }))
    }

    /// The ids of the latest imports, newest first.
    pub async fn recent_import_ids(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        db(
            sqlx::query_scalar("SELECT id FROM imports ORDER BY created_at DESC, id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await,
        )
    }

    /// Forgets an import's row (a retry records the import anew).
    pub async fn delete_import(&self, id: &str) -> Result<(), StoreError> {
        db(sqlx::query("DELETE FROM imports WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await)?;
        Ok(())
    }

    /// Until when a new or renewed import lease holds: on PostgreSQL, [`import_lease`] from now
    /// (the running process renews it, [`Store::renew_import_lease`]); on SQLite none (every
    /// process is on one host, and a dead owner is seen from its pid).
    pub fn import_lease_until(&self) -> Option<String> {
        match self.backend {
            crate::config::Backend::Sqlite => None,
            crate::config::Backend::Postgres => Some(super::rfc3339_from_unix(
                unix_now() + import_lease().as_secs(),
            )),
        }
    }

    /// Renews this process's lease on a running import and records its progress (so that any
    /// replica's report shows it); false when the import is no longer this process's.
    pub async fn renew_import_lease(&self, id: &str, rows_read: i64) -> Result<bool, StoreError> {
        let done = db(sqlx::query(
            "UPDATE imports SET lease_until = $3, rows_read = $4
             WHERE id = $1 AND status = 'processing' AND lease_owner = $2",
        )
        .bind(id)
        .bind(super::instance_id())
        .bind(self.import_lease_until())
        .bind(rows_read)
        .execute(&self.pool)
        .await)?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks interrupted every `processing` import whose process is gone: its lease ran out, or
    /// its owner ran on this host and no longer runs, or it has no owner (written before leases,
    /// or by a process of an older version). Nothing of such an import was committed; its kept
    /// upload stays for a retry. Any process may call this at any time (start-up, the sweeper):
    /// another live process's imports are never touched. Returns the ids marked.
    pub async fn fail_abandoned_imports(&self) -> Result<Vec<String>, StoreError> {
        self.fail_imports_where(|owner, until| {
            let now = super::now_rfc3339();
            match owner {
                None => true,
                Some(owner) => {
                    super::instance_is_dead(owner) || until.is_some_and(|u| u < now.as_str())
                }
            }
        })
        .await
    }

    /// Marks interrupted this process's own running imports (a graceful stop: their
    /// transactions are rolled back and their leases released at once, instead of running
    /// out).
    pub async fn release_own_imports(&self) -> Result<Vec<String>, StoreError> {
        let me = super::instance_id();
        self.fail_imports_where(|owner, _| owner == Some(me)).await
    }

    async fn fail_imports_where(
        &self,
        abandoned: impl Fn(Option<&str>, Option<&str>) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<String>)> = db(sqlx::query_as(
            "SELECT id, lease_owner, lease_until FROM imports WHERE status = 'processing'",
        )
        .fetch_all(&self.pool)
        .await)?;
        let mut failed = Vec::new();
        for (id, owner, until) in rows {
            if !abandoned(owner.as_deref(), until.as_deref()) {
                continue;
            }
            // Only if nobody renewed it meanwhile (same owner, same lease).
            let done = db(sqlx::query(
                "UPDATE imports SET status = 'failed', finished_at = $1, message = $2, lease_until = NULL
                 WHERE id = $3 AND status = 'processing'
                   AND COALESCE(lease_owner, '') = $4 AND COALESCE(lease_until, '') = $5",
            )
            .bind(now_rfc3339())
            .bind(INTERRUPTED)
            .bind(&id)
            .bind(owner.as_deref().unwrap_or(""))
            .bind(until.as_deref().unwrap_or(""))
            .execute(&self.pool)
            .await)?;
            if done.rows_affected() == 1 {
                failed.push(id);
            }
        }
        Ok(failed)
    }

    /// The status of an import and whether it was interrupted (its kept upload is for a retry).
    pub async fn import_state(&self, id: &str) -> Result<Option<ImportState>, StoreError> {
        let row: Option<(String, Option<String>, Option<String>, Option<String>)> =
            db(sqlx::query_as(
                "SELECT status, message, lease_owner, lease_until FROM imports WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await)?;
        Ok(row.map(|(status, message, owner, until)| ImportState {
            interrupted: status == "failed"
                && message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("interrupted:")),
            running: status == "processing"
                && match owner {
                    None => false,
                    Some(owner) => {
                        !super::instance_is_dead(&owner) && until.is_none_or(|u| u >= now_rfc3339())
                    }
                },
            status,
        }))
    }

    /// How many imports are `processing` (by any process).
    pub async fn processing_import_count(&self) -> Result<i64, StoreError> {
        db(
            sqlx::query_scalar("SELECT COUNT(*) FROM imports WHERE status = 'processing'")
                .fetch_one(&self.pool)
                .await,
        )
    }

    /// A deployment-wide setting (e.g. `blob_url`).
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        db(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await,
        )
    }

    /// The setting `name`, set to `value` first if it has none: every process that asks gets
    /// the same value (the first writer's).
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
        db(sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(self
            .setting(name)
            .await?
            .unwrap_or_else(|| value.to_owned()))
    }

    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        db(sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(())
    }
}

/// The UPDATE that records an import's outcome (one statement for both drivers' transactions).
fn outcome_query<'q, DB: sqlx::Database>(
    o: &'q ImportOutcome<'q>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let (hash, files) = match o.content {
        Some((h, f)) => (Some(h), Some(f)),
        None => (None, None),
    };
    sqlx::query(
        "UPDATE imports SET status = $1, rows_read = $2, rows_stored = $3, rows_rejected = $4,
                errors = $5, runs = $6, message = $7, duplicate_of = $8, finished_at = $9,
                bytes_total = $10, content_hash = COALESCE($11, content_hash),
                files = COALESCE($12, files)
         WHERE id = $13",
    )
    .bind(o.status)
    .bind(o.rows_read)
    .bind(o.rows_stored)
    .bind(o.rows_rejected)
    .bind(o.errors)
    .bind(o.runs)
    .bind(o.message)
    .bind(o.duplicate_of)
    .bind(o.finished_at)
    .bind(o.bytes_total)
    .bind(hash)
    .bind(files)
    .bind(o.id)
}

impl BulkWriter {
    /// Records a completed import in its row, inside the import's transaction: the report
    /// becomes visible with the runs, or neither does.
    pub async fn complete_import(&mut self, o: &ImportOutcome<'_>) -> Result<(), StoreError> {
        self.flush_rollouts().await?;
        on_conn!(self, |c| outcome_query(o).execute(c).await.map(|_| ()))?;
        Ok(())
    }
}
