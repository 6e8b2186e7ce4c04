//! The SQL of an experiment's settings: rename and describe, move to another project (with the
//! runs it alone holds), and delete (with its review data and the runs no other experiment holds).

use crate::error::StoreError;
use crate::{db, Store};

impl Store {
    pub async fn update_experiment(
        &self,
        id: i64,
        name: &str,
        description: &str,
    ) -> Result<(), StoreError> {
        db(
            sqlx::query("UPDATE experiments SET name = $1, description = $2 WHERE id = $3")
                .bind(name)
                .bind(description)
                .bind(id)
                .execute(&self.pool)
                .await,
        )?;
        Ok(())
    }

    /// Moves an experiment, and the runs that belong to it alone, to another project.
    pub async fn move_experiment(&self, id: i64, project_id: i64) -> Result<(), StoreError> {
        let mut tx = db(self.pool.begin().await)?;
        db(
            sqlx::query("UPDATE experiments SET project_id = $1 WHERE id = $2")
                .bind(project_id)
                .bind(id)
                .execute(&mut *tx)
                .await,
        )?;
        db(sqlx::query(
            "UPDATE runs SET project_id = $1 WHERE id IN (SELECT er.run_id FROM experiment_runs er WHERE er.experiment_id = $2)
               AND NOT EXISTS (SELECT 1 FROM experiment_runs x WHERE x.run_id = runs.id AND x.experiment_id <> $2)",
        )
        .bind(project_id)
        .bind(id)
        .execute(&mut *tx)
        .await)?;
        db(tx.commit().await)?;
        Ok(())
    }

    /// Deletes an experiment with its review data, and the runs (with their rollouts) that
    /// belong to no other experiment. Returns the blob keys those runs used (trace and response
    /// packs).
    pub async fn delete_experiment(&self, id: i64) -> Result<Vec<String>, StoreError> {
        let mut tx = db(self.pool.begin().await)?;
        let only_here = "SELECT er.run_id FROM experiment_runs er WHERE er.experiment_id = $1
               AND NOT EXISTS (SELECT 1 FROM experiment_runs x WHERE x.run_id = er.run_id AND x.experiment_id <> $1)";
        let mut keys: Vec<String> = db(sqlx::query_scalar(&format!(
            "SELECT DISTINCT trace_key FROM rollouts WHERE trace_key IS NOT NULL AND run_id IN ({only_here})"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await)?;
        let packs: Vec<String> = db(sqlx::query_scalar(&format!(
            "SELECT response_pack FROM runs WHERE response_pack IS NOT NULL AND id IN ({only_here})"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await)?;
        keys.extend(packs);
        let runs: Vec<i64> = db(sqlx::query_scalar(only_here)
            .bind(id)
            .fetch_all(&mut *tx)
            .await)?;
        db(sqlx::query("DELETE FROM experiments WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await)?;
        for run in runs {
            // Rollouts first: on PostgreSQL they keep no foreign key to their run (0008).
            db(sqlx::query("DELETE FROM rollouts WHERE run_id = $1")
                .bind(run)
                .execute(&mut *tx)
                .await)?;
            db(sqlx::query("DELETE FROM runs WHERE id = $1")
                .bind(run)
                .execute(&mut *tx)
                .await)?;
        }
        db(tx.commit().await)?;
        Ok(keys)
    }
}
