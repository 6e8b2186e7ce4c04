//! The SQL of verdict overrides: adding (replacing one on the same target), listing and deleting
//! them with the experiment's review version, and the rollouts a reviewed recount reads.

use caplens_model::review::OverrideRow;
use sqlx::Row;

use crate::error::StoreError;
use crate::{db, now_rfc3339, Store};

/// Where an override applies.
#[derive(Debug, Clone, PartialEq)]
pub enum OverrideTarget {
    Rollout(i64),
    /// A normalised final answer of the problem.
    Answer(String),
}

/// A rollout as a reviewed recount reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRolloutRow {
    pub run_id: i64,
    pub problem_id: i64,
    pub id: i64,
    pub sample_index: i64,
    pub answer: Option<String>,
    pub correct: bool,
    pub file_correct: Option<bool>,
    pub caplens_verdict: Option<i64>,
}

/// Marks an experiment's reviewed verdicts changed (inside the transaction that changed them),
/// so cached views rebuild.
pub(super) async fn bump_review_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    experiment_id: i64,
) -> Result<(), StoreError> {
    db(
        sqlx::query("UPDATE experiments SET review_version = review_version + 1 WHERE id = $1")
            .bind(experiment_id)
            .execute(&mut **tx)
            .await,
    )?;
    Ok(())
}

/// A problem as review rows name it: `dataset/key` (the key alone without a dataset).
pub(super) fn problem_name(dataset: String, key: String) -> String {
    if dataset.is_empty() {
        key
    } else {
        format!("{dataset}/{key}")
    }
}

/// A stored verdict (1 / 0) as review rows say it.
pub(super) fn verdict_word(verdict: i64) -> String {
    if verdict != 0 { "correct" } else { "wrong" }.into()
}

impl Store {
    /// Adds an override, replacing one on the same target; bumps the experiment's review version.
    pub async fn add_override(
        &self,
        experiment_id: i64,
        problem_id: i64,
        target: &OverrideTarget,
        correct: bool,
        reason: &str,
        by: &str,
    ) -> Result<i64, StoreError> {
        let (rollout, answer) = match target {
            OverrideTarget::Rollout(r) => (Some(*r), None),
            OverrideTarget::Answer(a) => (None, Some(a.as_str())),
        };
        let mut tx = db(self.pool.begin().await)?;
        db(sqlx::query(
            "DELETE FROM verdict_overrides WHERE experiment_id = $1 AND problem_id = $2
               AND COALESCE(rollout_id, -1) = $3 AND COALESCE(answer, '\u{1}') = $4",
        )
        .bind(experiment_id)
        .bind(problem_id)
        .bind(rollout.unwrap_or(-1))
        .bind(answer.unwrap_or("\u{1}"))
        .execute(&mut *tx)
        .await)?;
        let id: i64 = db(sqlx::query_scalar(
            "INSERT INTO verdict_overrides (experiment_id, problem_id, rollout_id, answer, verdict, reason, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(experiment_id)
        .bind(problem_id)
        .bind(rollout)
        .bind(answer)
        .bind(i64::from(correct))
        .bind(reason)
        .bind(by)
        .bind(now_rfc3339())
        .fetch_one(&mut *tx)
        .await)?;
        bump_review_version(&mut tx, experiment_id).await?;
        db(tx.commit().await)?;
        Ok(id)
    }

    /// The experiment (id, slug, project) of an override.
    pub async fn override_experiment(
        &self,
        id: i64,
    ) -> Result<Option<(i64, String, i64)>, StoreError> {
        let row: Option<(i64, String, Option<i64>)> = db(sqlx::query_as(
            "SELECT e.id, e.slug, e.project_id FROM verdict_overrides o JOIN experiments e ON e.id = o.experiment_id WHERE o.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(row.map(|(i, s, p)| (i, s, p.unwrap_or(-1))))
    }

    pub async fn delete_override(&self, id: i64) -> Result<bool, StoreError> {
        let Some((experiment_id, _, _)) = self.override_experiment(id).await? else {
            return Ok(false);
        };
        let mut tx = db(self.pool.begin().await)?;
        db(sqlx::query("DELETE FROM verdict_overrides WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await)?;
        bump_review_version(&mut tx, experiment_id).await?;
        db(tx.commit().await)?;
        Ok(true)
    }

    /// An experiment's overrides, oldest first (optionally of one problem).
    pub async fn overrides(
        &self,
        experiment_id: i64,
        problem_id: Option<i64>,
    ) -> Result<Vec<OverrideRow>, StoreError> {
        let rows = db(sqlx::query(
            "SELECT o.id, e.slug, o.problem_id, d.name AS dataset, p.problem_key, o.rollout_id, o.answer, o.verdict,
                    o.reason, o.created_by, o.created_at
             FROM verdict_overrides o JOIN experiments e ON e.id = o.experiment_id
             JOIN problems p ON p.id = o.problem_id JOIN datasets d ON d.id = p.dataset_id
             WHERE o.experiment_id = $1 AND ($2 < 0 OR o.problem_id = $2) ORDER BY o.id",
        )
        .bind(experiment_id)
        .bind(problem_id.unwrap_or(-1))
        .fetch_all(&self.pool)
        .await)?;
        rows.iter()
            .map(|row| {
                let dataset: String = row.try_get("dataset")?;
                let key: String = row.try_get("problem_key")?;
                Ok(OverrideRow {
                    id: row.try_get("id")?,
                    experiment: row.try_get("slug")?,
                    problem_id: row.try_get("problem_id")?,
                    problem: problem_name(dataset, key),
                    rollout: row.try_get("rollout_id")?,
                    answer: row.try_get("answer")?,
                    verdict: verdict_word(row.try_get("verdict")?),
                    reason: row.try_get("reason")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

    /// The rollouts of the experiment's runs on the given problems (a reviewed recount reads
    /// only the groups an override touches).
    pub async fn review_rollouts(
        &self,
        experiment_id: i64,
        problem_ids: &[i64],
    ) -> Result<Vec<ReviewRolloutRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in problem_ids.chunks(200) {
            let list = chunk
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let rows: Vec<(i64, i64, i64, i64, Option<String>, i64, Option<i64>, Option<i64>)> =
                db(sqlx::query_as(&format!(
                    "SELECT o.run_id, o.problem_id, o.id, o.sample_index, o.extracted_answer, o.correct, o.file_correct, o.caplens_verdict
                     FROM rollouts o JOIN experiment_runs er ON er.run_id = o.run_id
                     WHERE er.experiment_id = $1 AND o.problem_id IN ({list}) ORDER BY o.run_id, o.problem_id, o.sample_index, o.id"
                ))
                .bind(experiment_id)
                .fetch_all(&self.pool)
                .await)?;
            out.extend(rows.into_iter().map(
                |(run_id, problem_id, id, sample_index, answer, correct, file, caplens)| {
                    ReviewRolloutRow {
                        run_id,
                        problem_id,
                        id,
                        sample_index,
                        answer,
                        correct: correct != 0,
                        file_correct: file.map(|f| f != 0),
                        caplens_verdict: caplens,
                    }
                },
            ));
        }
        Ok(out)
    }

    /// The experiment's review version (changes with every override change).
    pub async fn review_version(&self, slug: &str) -> Result<i64, StoreError> {
        Ok(db(sqlx::query_scalar::<_, i64>(
            "SELECT review_version FROM experiments WHERE slug = $1",
        )
        .bind(slug)
        .fetch_optional(&self.pool)
        .await)?
        .unwrap_or(0))
    }
}
