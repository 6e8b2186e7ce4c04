//! The runs a load writes inside the bulk writer's transaction: created, removed when empty,
//! matched against earlier imports, completed with their per-problem aggregates, and linked.

use super::rollouts::SQLITE_INSERT_ROWS;
use super::{on_conn, placeholders, BulkWriter, Conn};
use super::{EarlierRun, NewRun, ProblemStats, RunCompletion};
use crate::error::StoreError;
use crate::{db, now_rfc3339};

impl BulkWriter {
    pub async fn insert_run(&mut self, r: &NewRun<'_>) -> Result<i64, StoreError> {
        let now = now_rfc3339();
        on_conn!(self, |c| {
            sqlx::query_scalar(
            "INSERT INTO runs (model_id, dataset_id, label, temperature, top_p, max_tokens, n_per_problem,
                               seed, prompt_template, status, origin, created_at, finished_at, import_id, project_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
        )
        .bind(r.model_id)
        .bind(r.dataset_id)
        .bind(r.label)
        .bind(r.temperature)
        .bind(r.top_p)
        .bind(r.max_tokens)
        .bind(r.n_per_problem)
        .bind(r.seed)
        .bind(r.prompt_template)
        .bind(r.status)
        .bind(r.origin)
        .bind(&now)
        .bind((r.status == "completed").then_some(&now))
        .bind(r.import_id)
        .bind(r.project_id)
        .fetch_one(c)
        .await
        })
    }

    /// Removes a run written by this load (one whose every record was skipped).
    pub async fn delete_run(&mut self, run_id: i64) -> Result<(), StoreError> {
        self.flush_rollouts().await?;
        // Rollouts first: on PostgreSQL they keep no foreign key to their run (0008).
        on_conn!(self, |c| sqlx::query(
            "DELETE FROM rollouts WHERE run_id = $1"
        )
        .bind(run_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        on_conn!(self, |c| sqlx::query("DELETE FROM runs WHERE id = $1")
            .bind(run_id)
            .execute(c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// A completed run of the same model and dataset as `run_id` stored from the same files
    /// (`source_hash`).
    pub async fn completed_run_with_hash(
        &mut self,
        run_id: i64,
        source_hash: &str,
    ) -> Result<Option<EarlierRun>, StoreError> {
        on_conn!(self, |c| sqlx::query_as(
            "SELECT r.id, r.import_id, r.label FROM runs r JOIN runs me ON me.id = $1
             WHERE r.model_id = me.model_id AND r.dataset_id = me.dataset_id
               AND r.source_hash = $2 AND r.id <> me.id AND r.status = 'completed'
             ORDER BY r.id LIMIT 1",
        )
        .bind(run_id)
        .bind(source_hash)
        .fetch_optional(c)
        .await)
    }

    /// A completed run of `dataset_id` other than `run_id` that came from the same tool run
    /// (`runs.source_identity`).
    pub async fn run_with_source_identity(
        &mut self,
        identity: &str,
        dataset_id: i64,
        run_id: i64,
    ) -> Result<Option<EarlierRun>, StoreError> {
        on_conn!(self, |c| sqlx::query_as(
            "SELECT id, import_id, label FROM runs
             WHERE source_identity = $1 AND dataset_id = $2 AND id <> $3 AND status = 'completed'
               AND project_id = (SELECT project_id FROM runs WHERE id = $3)
             ORDER BY id LIMIT 1",
        )
        .bind(identity)
        .bind(dataset_id)
        .bind(run_id)
        .fetch_optional(c)
        .await)
    }

    /// Stores a run's per-problem aggregates and what the run says about itself, and marks it
    /// completed.
    pub async fn complete_run(
        &mut self,
        run_id: i64,
        run: &RunCompletion<'_>,
        stats: &[ProblemStats],
    ) -> Result<(), StoreError> {
        self.insert_problem_stats(run_id, stats).await?;
        let tally = serde_json::to_string(run.verdicts).expect("tally serialises");
        on_conn!(self, |c| sqlx::query(
            "UPDATE runs SET status = 'completed', finished_at = COALESCE(finished_at, $1),
                    aggregates = $2, n_per_problem = COALESCE($3, n_per_problem),
                    source_hash = $4, token_stats = $5, default_verdicts = $6, verdict_tally = $7,
                    source_info = $8, source_identity = $9, response_pack = $10
             WHERE id = $11",
        )
        .bind(now_rfc3339())
        .bind(run.aggregates)
        .bind(run.n_per_problem)
        .bind(run.source_hash)
        .bind(run.token_stats)
        .bind(run.default_verdicts.as_str())
        .bind(tally)
        .bind(run.source_info)
        .bind(run.source_identity)
        .bind(run.response_pack)
        .bind(run_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Stores per-problem aggregate rows of a run.
    pub async fn insert_problem_stats(
        &mut self,
        run_id: i64,
        stats: &[ProblemStats],
    ) -> Result<(), StoreError> {
        const COLUMNS: usize = 13;
        for chunk in stats.chunks(SQLITE_INSERT_ROWS) {
            let sql = format!(
                "INSERT INTO run_problem_stats (run_id, problem_id, position, n, c, first_correct_sample,
                   distinct_answers, order_known, answers, c_file, first_correct_file, c_caplens,
                   first_correct_caplens) VALUES {}",
                placeholders(self.is_sqlite(), chunk.len(), COLUMNS)
            );
            macro_rules! bind_stats {
                ($q:expr) => {{
                    let mut q = $q;
                    for s in chunk {
                        let [(c_file, first_file), (c_caplens, first_caplens)] = s.by_source;
                        q = q
                            .bind(run_id)
                            .bind(s.problem_id)
                            .bind(s.position)
                            .bind(s.n)
                            .bind(s.c)
                            .bind(s.first_correct_sample)
                            .bind(s.distinct_answers)
                            .bind(s.order_known as i64)
                            .bind(&s.answers)
                            .bind(c_file as i32)
                            .bind(first_file.map(|v| v as i32))
                            .bind(c_caplens as i32)
                            .bind(first_caplens.map(|v| v as i32));
                    }
                    q
                }};
            }
            on_conn!(self, |c| bind_stats!(sqlx::query(&sql))
                .execute(c)
                .await
                .map(|_| ()))?;
        }
        Ok(())
    }

    /// Puts a run into an experiment.
    pub async fn link_run(&mut self, experiment_id: i64, run_id: i64) -> Result<(), StoreError> {
        on_conn!(self, |c| sqlx::query(
            "INSERT INTO experiment_runs (experiment_id, run_id) VALUES ($1, $2)"
        )
        .bind(experiment_id)
        .bind(run_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Records the project an import wrote into.
    pub async fn set_import_project(
        &mut self,
        import_id: &str,
        project_id: i64,
    ) -> Result<(), StoreError> {
        on_conn!(self, |c| sqlx::query(
            "UPDATE imports SET project_id = $1 WHERE id = $2"
        )
        .bind(project_id)
        .bind(import_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
