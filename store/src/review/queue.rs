//! The SQL of the review queue: the answer statistics and unverifiable counts it is built from,
//! and who each of its problems is assigned to.

use std::collections::HashMap;

use crate::error::StoreError;
use crate::{db, now_rfc3339, Store};

impl Store {
    /// Per (run, problem) of the experiment's completed runs: the answers JSON (normalised
    /// answer → count), the reference answer and n.
    pub async fn experiment_answer_stats(
        &self,
        experiment_id: i64,
    ) -> Result<Vec<(i64, i64, String, String, u64)>, StoreError> {
        let rows: Vec<(i64, i64, String, String, i64)> = db(sqlx::query_as(
            "SELECT s.run_id, s.problem_id, s.answers, p.reference_answer, s.n FROM run_problem_stats s
             JOIN experiment_runs er ON er.run_id = s.run_id JOIN runs r ON r.id = s.run_id
             JOIN problems p ON p.id = s.problem_id
             WHERE er.experiment_id = $1 AND r.status = 'completed'",
        )
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(r, p, a, reference, n)| (r, p, a, reference, n.max(0) as u64))
            .collect())
    }

    /// Rollouts caplens' verifier could not decide, per (run, problem), over the given runs
    /// (only runs whose tally has any: the queue reads no other run's rollouts).
    pub async fn unverifiable_counts(
        &self,
        run_ids: &[i64],
    ) -> Result<Vec<(i64, i64, u64)>, StoreError> {
        self.rollout_counts(run_ids, "caplens_verdict = 2").await
    }

    /// Per (run, problem) of the given runs: rollouts on which the file's verdict and caplens'
    /// (equal or different) disagree.
    pub async fn verdict_disagreement_counts(
        &self,
        run_ids: &[i64],
    ) -> Result<Vec<(i64, i64, u64)>, StoreError> {
        self.rollout_counts(
            run_ids,
            "file_correct IS NOT NULL AND caplens_verdict IN (0, 1) AND file_correct <> caplens_verdict",
        )
        .await
    }

    /// Rollouts matching `condition` (a constant SQL condition on `rollouts`), per (run,
    /// problem), one run at a time through the run's index.
    async fn rollout_counts(
        &self,
        run_ids: &[i64],
        condition: &'static str,
    ) -> Result<Vec<(i64, i64, u64)>, StoreError> {
        let sql = format!(
            "SELECT run_id, problem_id, COUNT(*) FROM rollouts WHERE run_id = $1 AND {condition}
             GROUP BY run_id, problem_id"
        );
        let mut out = Vec::new();
        for run in run_ids {
            let rows: Vec<(i64, i64, i64)> =
                db(sqlx::query_as(&sql).bind(*run).fetch_all(&self.pool).await)?;
            out.extend(rows.into_iter().map(|(r, p, n)| (r, p, n.max(0) as u64)));
        }
        Ok(out)
    }

    // ---------- review queue assignments ----------

    pub async fn assign_problem(
        &self,
        experiment_id: i64,
        problem_id: i64,
        user_id: Option<i64>,
        by: &str,
    ) -> Result<(), StoreError> {
        db(sqlx::query(
            "DELETE FROM review_assignments WHERE experiment_id = $1 AND problem_id = $2",
        )
        .bind(experiment_id)
        .bind(problem_id)
        .execute(&self.pool)
        .await)?;
        if let Some(user) = user_id {
            db(sqlx::query(
                "INSERT INTO review_assignments (experiment_id, problem_id, user_id, assigned_by, assigned_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(experiment_id)
            .bind(problem_id)
            .bind(user)
            .bind(by)
            .bind(now_rfc3339())
            .execute(&self.pool)
            .await)?;
        }
        Ok(())
    }

    /// Problem → assignee name.
    pub async fn assignments(
        &self,
        experiment_id: i64,
    ) -> Result<HashMap<i64, String>, StoreError> {
        let rows: Vec<(i64, String)> = db(sqlx::query_as(
            "SELECT a.problem_id, u.name FROM review_assignments a JOIN users u ON u.id = a.user_id WHERE a.experiment_id = $1",
        )
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows.into_iter().collect())
    }
}
