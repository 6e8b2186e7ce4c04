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

/// What an interrupted import's row says, so that the user knows nothing of it is stored and
/// how to get it in.
const INTERRUPTED: &str = "interrupted: the server stopped during the import, so nothing of it was stored; retry it (POST /api/v1/imports/ID/retry, while its upload is kept) or upload the files again";

impl Store {
    /// Records an import as `processing` (outside its transaction: the row shows progress).
    pub async fn insert_import(&self, i: &NewImport<'_>) -> Result<(), StoreError> {
        db(sqlx::query(
            "INSERT INTO imports (id, status, format, files, params, content_hash, bytes_total, token_id, created_at, project_id)
             VALUES ($1, 'processing', $2, $3, $4, '', $5, $6, $7, (SELECT id FROM projects WHERE slug = $8))",
        )
        .bind(i.id)
        .bind(i.format)
        .bind(i.files)
        .bind(i.params)
        .bind(i.bytes_total)
        .bind(i.token_id)
        .bind(i.created_at)
        .bind(i.project)
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
        db(sqlx::query_scalar("SELECT id FROM imports ORDER BY created_at DESC, id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await)
    }

    /// Forgets an import's row (a retry records the import anew).
    pub async fn delete_import(&self, id: &str) -> Result<(), StoreError> {
        db(sqlx::query("DELETE FROM imports WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await)?;
        Ok(())
    }

    /// Imports left `processing` by a server that stopped mid-import: their transaction never
    /// committed, so nothing of them is visible; marks them failed, saying how to retry, and
    /// returns their ids (the caller deletes their trace packs).
    pub async fn fail_interrupted_imports(&self) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> = db(sqlx::query_scalar(
            "SELECT id FROM imports WHERE status = 'processing'",
        )
        .fetch_all(&self.pool)
        .await)?;
        for id in &ids {
            db(sqlx::query(
                "UPDATE imports SET status = 'failed', finished_at = $1, message = $2 WHERE id = $3",
            )
            .bind(now_rfc3339())
            .bind(INTERRUPTED)
            .bind(id)
            .execute(&self.pool)
            .await)?;
        }
        Ok(ids)
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
