//! The SQL of reviewers' judgements (issue 27): one per reviewer and target (an answer cluster or
//! a rollout), replaced by the reviewer's next; each change bumps the experiment's review version
//! (unanimous judgements count in reviewed views). And the project's blind-review switch.

use caplens_model::review::JudgementRow;
use sqlx::Row;

use super::overrides::{bump_review_version, problem_name, verdict_word, OverrideTarget};
use crate::error::StoreError;
use crate::{db, now_rfc3339, Store};

impl Store {
    /// Records `reviewer`'s judgement on a target, replacing their earlier one on it.
    pub async fn set_judgement(
        &self,
        experiment_id: i64,
        problem_id: i64,
        target: &OverrideTarget,
        correct: bool,
        reviewer: &str,
    ) -> Result<i64, StoreError> {
        let (rollout, answer) = match target {
            OverrideTarget::Rollout(r) => (Some(*r), None),
            OverrideTarget::Answer(a) => (None, Some(a.as_str())),
        };
        let mut tx = db(self.pool.begin().await)?;
        db(sqlx::query(
            "DELETE FROM judgements WHERE experiment_id = $1 AND problem_id = $2 AND reviewer = $3
               AND COALESCE(rollout_id, -1) = $4 AND COALESCE(answer, '\u{1}') = $5",
        )
        .bind(experiment_id)
        .bind(problem_id)
        .bind(reviewer)
        .bind(rollout.unwrap_or(-1))
        .bind(answer.unwrap_or("\u{1}"))
        .execute(&mut *tx)
        .await)?;
        let id: i64 = db(sqlx::query_scalar(
            "INSERT INTO judgements (experiment_id, problem_id, rollout_id, answer, reviewer, verdict, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(experiment_id)
        .bind(problem_id)
        .bind(rollout)
        .bind(answer)
        .bind(reviewer)
        .bind(i64::from(correct))
        .bind(now_rfc3339())
        .fetch_one(&mut *tx)
        .await)?;
        bump_review_version(&mut tx, experiment_id).await?;
        db(tx.commit().await)?;
        Ok(id)
    }

    /// An experiment's judgements, oldest first (optionally of one problem).
    pub async fn judgements(
        &self,
        experiment_id: i64,
        problem_id: Option<i64>,
    ) -> Result<Vec<JudgementRow>, StoreError> {
        let rows = db(sqlx::query(
            "SELECT j.id, j.problem_id, d.name AS dataset, p.problem_key, j.rollout_id, j.answer,
                    j.reviewer, j.verdict, j.created_at
             FROM judgements j JOIN problems p ON p.id = j.problem_id JOIN datasets d ON d.id = p.dataset_id
             WHERE j.experiment_id = $1 AND ($2 < 0 OR j.problem_id = $2) ORDER BY j.id",
        )
        .bind(experiment_id)
        .bind(problem_id.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await)?;
        rows.iter()
            .map(|row| {
                let dataset: String = row.try_get("dataset")?;
                let key: String = row.try_get("problem_key")?;
                Ok(JudgementRow {
                    id: row.try_get("id")?,
                    problem_id: row.try_get("problem_id")?,
                    problem: problem_name(dataset, key),
                    rollout: row.try_get("rollout_id")?,
                    answer: row.try_get("answer")?,
                    reviewer: row.try_get("reviewer")?,
                    verdict: verdict_word(row.try_get("verdict")?),
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

    /// Whether judging is blind in a project.
    pub async fn blind_review(&self, project_id: i64) -> Result<bool, StoreError> {
        let v: Option<i64> = db(sqlx::query_scalar(
            "SELECT blind_review FROM projects WHERE id = $1",
        )
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(v.unwrap_or(0) != 0)
    }

    pub async fn set_blind_review(&self, project_id: i64, blind: bool) -> Result<(), StoreError> {
        db(
            sqlx::query("UPDATE projects SET blind_review = $1 WHERE id = $2")
                .bind(i64::from(blind))
                .bind(project_id)
                .execute(&self.pool)
                .await,
        )?;
        Ok(())
    }
}
