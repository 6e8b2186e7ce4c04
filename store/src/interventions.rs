//! Token-intervention jobs (`interventions` rows, paper eqs. 5-6) and what they read and write
//! of runs and rollouts. The job logic is `evals::interventions`.

use super::{db, now_rfc3339, Store};
use crate::config::Backend;
use crate::error::StoreError;

/// An intervention job's row (`request` and `result` as stored JSON).
pub struct InterventionRow {
    pub id: i64,
    pub rollout_id: i64,
    pub engine: String,
    pub status: String,
    pub request: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl Store {
    /// Queues a job; returns its id.
    pub async fn insert_intervention(
        &self,
        rollout_id: i64,
        engine_id: i64,
        request: &str,
    ) -> Result<i64, StoreError> {
        db(sqlx::query_scalar(
            "INSERT INTO interventions (rollout_id, engine_id, status, request, created_at)
             VALUES ($1, $2, 'queued', $3, $4) RETURNING id",
        )
        .bind(rollout_id)
        .bind(engine_id)
        .bind(request)
        .bind(now_rfc3339())
        .fetch_one(&self.pool)
        .await)
    }

    /// The ids of a run's rollouts that have a token trace, in order.
    pub async fn traced_rollout_ids(&self, run_id: i64) -> Result<Vec<i64>, StoreError> {
        db(sqlx::query_scalar(
            "SELECT id FROM rollouts WHERE run_id = $1 AND trace_key IS NOT NULL ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await)
    }

    /// The engine of the evaluation that produced a run, if an evaluation did.
    pub async fn run_engine_id(&self, run_id: i64) -> Result<Option<i64>, StoreError> {
        db(
            sqlx::query_scalar("SELECT engine_id FROM evaluations WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await,
        )
    }

    /// The built-in embedded engine's id.
    pub async fn embedded_engine_id(&self) -> Result<Option<i64>, StoreError> {
        db(sqlx::query_scalar("SELECT id FROM engines WHERE kind = 'embedded' AND project_id IS NULL ORDER BY id LIMIT 1")
            .fetch_optional(&self.pool)
            .await)
    }

    /// The settings (JSON) of the evaluation that produced a run, if an evaluation did.
    pub async fn run_eval_settings(&self, run_id: i64) -> Result<Option<String>, StoreError> {
        db(
            sqlx::query_scalar("SELECT settings FROM evaluations WHERE run_id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await,
        )
    }

    pub async fn intervention(&self, id: i64) -> Result<Option<InterventionRow>, StoreError> {
        type Row = (
            i64,
            i64,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
        );
        let row: Option<Row> = db(sqlx::query_as(
            "SELECT i.id, i.rollout_id, g.name, i.status, i.request, i.result, i.error, i.created_at, i.finished_at
             FROM interventions i JOIN engines g ON g.id = i.engine_id WHERE i.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(row.map(|r| InterventionRow {
            id: r.0,
            rollout_id: r.1,
            engine: r.2,
            status: r.3,
            request: r.4,
            result: r.5,
            error: r.6,
            created_at: r.7,
            finished_at: r.8,
        }))
    }

    /// A job's (rollout, engine id, request JSON).
    pub async fn intervention_job(&self, id: i64) -> Result<(i64, i64, String), StoreError> {
        db(
            sqlx::query_as(
                "SELECT rollout_id, engine_id, request FROM interventions WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )
    }

    /// Claims the next queued job, or one whose worker's lease ran out (`lease_until` and now
    /// as RFC 3339).
    pub async fn claim_intervention(
        &self,
        worker: &str,
        lease_until: &str,
    ) -> Result<Option<i64>, StoreError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        db(sqlx::query_scalar(&format!(
            "UPDATE interventions SET status = 'running', worker = $1, lease_until = $2
             WHERE id = (SELECT id FROM interventions
                         WHERE status = 'queued' OR (status = 'running' AND lease_until < $3)
                         ORDER BY id LIMIT 1{lock})
             RETURNING id"
        ))
        .bind(worker)
        .bind(lease_until)
        .bind(now_rfc3339())
        .fetch_optional(&self.pool)
        .await)
    }

    /// Records a job's end: `result` JSON when completed, `error` when failed.
    pub async fn finish_intervention(
        &self,
        id: i64,
        status: &str,
        result: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        db(sqlx::query(
            "UPDATE interventions SET status = $2, result = $3, error = $4, finished_at = $5, lease_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(result)
        .bind(error)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    /// Points a rollout at a whole-blob trace (an intervention's result).
    pub async fn set_rollout_trace(
        &self,
        rollout_id: i64,
        key: &str,
        length: i64,
    ) -> Result<(), StoreError> {
        db(sqlx::query(
            "UPDATE rollouts SET trace_key = $2, trace_offset = NULL, trace_length = $3 WHERE id = $1",
        )
        .bind(rollout_id)
        .bind(key)
        .bind(length)
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    /// (id, correct, mean entropy, perplexity) of each rollout of a run, in order.
    pub async fn run_rollout_means(
        &self,
        run_id: i64,
    ) -> Result<Vec<(i64, i64, Option<f64>, Option<f64>)>, StoreError> {
        db(sqlx::query_as(
            "SELECT id, correct, mean_entropy, perplexity FROM rollouts WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await)
    }

    /// Replaces a run's token statistics (JSON) and marks it updated, so cached views are
    /// rebuilt.
    pub async fn set_run_token_stats(
        &self,
        run_id: i64,
        stats: Option<&str>,
    ) -> Result<(), StoreError> {
        db(
            sqlx::query("UPDATE runs SET token_stats = $2, updated_at = $3 WHERE id = $1")
                .bind(run_id)
                .bind(stats)
                .bind(now_rfc3339())
                .execute(&self.pool)
                .await,
        )?;
        Ok(())
    }
}
