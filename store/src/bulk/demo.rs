//! The demo's part of the bulk writer: its trace packs, its removal (experiments, runs, then the
//! models and dataset no other run uses), and the aggregates of its runs (created completed).

use super::{on_conn, BulkWriter, Conn};
use crate::db;
use crate::error::StoreError;

impl BulkWriter {
    /// Trace packs of the stored demo runs.
    pub async fn demo_trace_packs(&mut self) -> Result<Vec<String>, StoreError> {
        on_conn!(self, |c| {
            sqlx::query_scalar(
            "SELECT DISTINCT ro.trace_key FROM rollouts ro JOIN runs r ON r.id = ro.run_id
             WHERE r.origin = 'demo' AND ro.trace_key IS NOT NULL AND r.id IN (
               SELECT er.run_id FROM experiment_runs er JOIN experiments e ON e.id = er.experiment_id
               WHERE e.is_demo = 1)",
        )
        .fetch_all(c)
        .await
        })
    }

    /// Removes the demo experiments and their runs (rollouts and aggregates cascade), then the
    /// named models (children first) and dataset when no other run uses them.
    pub async fn remove_demo(
        &mut self,
        models_children_first: &[&str],
        dataset: &str,
    ) -> Result<(), StoreError> {
        // Rollouts first: on PostgreSQL they keep no foreign key to their run (0008).
        on_conn!(self, |c| sqlx::query(
            "DELETE FROM rollouts WHERE run_id IN (SELECT r.id FROM runs r WHERE r.origin = 'demo'
               AND r.id IN (SELECT er.run_id FROM experiment_runs er
               JOIN experiments e ON e.id = er.experiment_id WHERE e.is_demo = 1))",
        )
        .execute(c)
        .await
        .map(|_| ()))?;
        on_conn!(self, |c| {
            sqlx::query(
            "DELETE FROM runs WHERE origin = 'demo' AND id IN (SELECT er.run_id FROM experiment_runs er
               JOIN experiments e ON e.id = er.experiment_id WHERE e.is_demo = 1)",
        )
        .execute(c)
        .await
        .map(|_| ())
        })?;
        on_conn!(self, |c| sqlx::query(
            "DELETE FROM experiments WHERE is_demo = 1"
        )
        .execute(c)
        .await
        .map(|_| ()))?;
        for model in models_children_first {
            on_conn!(self, |c| {
                sqlx::query(
                "DELETE FROM models WHERE name = $1 AND project_id = (SELECT id FROM projects WHERE slug = 'demo')
                   AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.model_id = models.id)",
            )
            .bind(model)
            .execute(c)
            .await
            .map(|_| ())
            })?;
        }
        on_conn!(self, |c| {
            sqlx::query(
            "DELETE FROM datasets WHERE name = $1 AND project_id = (SELECT id FROM projects WHERE slug = 'demo')
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.dataset_id = datasets.id)",
        )
        .bind(dataset)
        .execute(c)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Stores a run's aggregates and token statistics (the demo's runs are created completed).
    pub async fn set_run_aggregates(
        &mut self,
        run_id: i64,
        aggregates: &str,
        token_stats: Option<&str>,
    ) -> Result<(), StoreError> {
        on_conn!(self, |c| sqlx::query(
            "UPDATE runs SET aggregates = $1, token_stats = $2 WHERE id = $3"
        )
        .bind(aggregates)
        .bind(token_stats)
        .bind(run_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
