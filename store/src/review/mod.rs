//! The SQL of team review (issue 15): comment threads and comments with mentions, review labels,
//! verdict overrides (and the rollouts a reviewed recount reads), review-queue assignments, share
//! links, and the experiment settings (rename, move, delete). Decisions are made in
//! `review` and `auth::policy`; this module only stores and looks up.
//!
//! This file holds the lookups every review area starts from (an experiment, the runs,
//! problems and rollouts that belong to it, problems by key); each area's SQL is in its own file:
//!
//! | file | job |
//! |---|---|
//! | `threads` | comment threads, comments, mentions, the inbox and discussion counts |
//! | `labels` | label definitions and problem labels |
//! | `overrides` | verdict overrides, the rollouts a reviewed recount reads, the review version |
//! | `queue` | the review queue's inputs and its assignments |
//! | `share_links` | share links |
//! | `experiments` | experiment settings: rename, move, delete |

mod experiments;
mod judgements;
mod labels;
mod overrides;
mod queue;
mod share_links;
mod threads;

use std::collections::HashMap;

use crate::error::StoreError;
use crate::{db, Store};
pub use overrides::{OverrideTarget, ReviewRolloutRow};
pub use share_links::ShareGrant;
pub use threads::{CommentRecord, ThreadRecord};

/// An experiment's id and project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExperimentRef {
    pub id: i64,
    pub project_id: i64,
}

impl Store {
    /// An experiment's slug by id.
    pub async fn experiment_slug(&self, id: i64) -> Result<Option<String>, StoreError> {
        db(
            sqlx::query_scalar("SELECT slug FROM experiments WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await,
        )
    }

    /// An experiment's id and project by slug.
    pub async fn experiment_ref(&self, slug: &str) -> Result<Option<ExperimentRef>, StoreError> {
        let row: Option<(i64, Option<i64>)> = db(sqlx::query_as(
            "SELECT id, project_id FROM experiments WHERE slug = $1",
        )
        .bind(slug)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(row.map(|(id, p)| ExperimentRef {
            id,
            project_id: p.unwrap_or(-1),
        }))
    }

    /// Does the problem have data in one of the experiment's runs?
    pub async fn problem_in_experiment(
        &self,
        experiment_id: i64,
        problem_id: i64,
    ) -> Result<bool, StoreError> {
        let n: i64 = db(sqlx::query_scalar(
            "SELECT COUNT(*) FROM run_problem_stats s JOIN experiment_runs er ON er.run_id = s.run_id
             WHERE er.experiment_id = $1 AND s.problem_id = $2",
        )
        .bind(experiment_id)
        .bind(problem_id)
        .fetch_one(&self.pool)
        .await)?;
        Ok(n > 0)
    }

    /// The run ids of an experiment.
    pub async fn experiment_run_ids(&self, experiment_id: i64) -> Result<Vec<i64>, StoreError> {
        db(sqlx::query_scalar(
            "SELECT run_id FROM experiment_runs WHERE experiment_id = $1 ORDER BY run_id",
        )
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await)
    }

    /// The problem of a rollout when the rollout belongs to one of the experiment's runs.
    pub async fn rollout_problem_in_experiment(
        &self,
        experiment_id: i64,
        rollout_id: i64,
    ) -> Result<Option<i64>, StoreError> {
        db(sqlx::query_scalar(
            "SELECT o.problem_id FROM rollouts o JOIN experiment_runs er ON er.run_id = o.run_id
             WHERE er.experiment_id = $1 AND o.id = $2",
        )
        .bind(experiment_id)
        .bind(rollout_id)
        .fetch_optional(&self.pool)
        .await)
    }

    /// The experiments a rollout's run belongs to (slugs), for thread lookups from a rollout page.
    pub async fn rollout_experiments(&self, rollout_id: i64) -> Result<Vec<String>, StoreError> {
        db(sqlx::query_scalar(
            "SELECT e.slug FROM rollouts o JOIN experiment_runs er ON er.run_id = o.run_id
             JOIN experiments e ON e.id = er.experiment_id WHERE o.id = $1 ORDER BY e.id",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await)
    }

    /// Is the resource part of the experiment (a share link's reach)?
    pub async fn in_experiment(
        &self,
        resource: &crate::access::Owned,
        experiment_id: i64,
    ) -> Result<bool, StoreError> {
        use crate::access::Owned;
        let (sql, key) = match resource {
            Owned::Experiment(slug) => ("SELECT COUNT(*) FROM experiments WHERE id = $1 AND slug = $2", Err(slug.clone())),
            Owned::Run(id) => ("SELECT COUNT(*) FROM experiment_runs WHERE experiment_id = $1 AND run_id = $2", Ok(*id)),
            Owned::Rollout(id) => (
                "SELECT COUNT(*) FROM rollouts o JOIN experiment_runs er ON er.run_id = o.run_id WHERE er.experiment_id = $1 AND o.id = $2",
                Ok(*id),
            ),
            _ => return Ok(false),
        };
        let q = sqlx::query_scalar::<_, i64>(sql).bind(experiment_id);
        let q = match key {
            Ok(id) => q.bind(id),
            Err(slug) => q.bind(slug),
        };
        Ok(db(q.fetch_one(&self.pool).await)? > 0)
    }

    /// Labels and overrides of an experiment as (problem key, …) for export: keyed by
    /// `dataset/key` so another experiment over the same problems can take them.
    pub async fn problem_keys(
        &self,
        problem_ids: &[i64],
    ) -> Result<HashMap<i64, String>, StoreError> {
        let mut out = HashMap::new();
        for chunk in problem_ids.chunks(500) {
            let list = chunk
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let rows: Vec<(i64, String, String)> = db(sqlx::query_as(&format!(
                "SELECT p.id, d.name, p.problem_key FROM problems p JOIN datasets d ON d.id = p.dataset_id WHERE p.id IN ({list})"
            ))
            .fetch_all(&self.pool)
            .await)?;
            for (id, d, k) in rows {
                out.insert(id, if d.is_empty() { k } else { format!("{d}/{k}") });
            }
        }
        Ok(out)
    }

    /// The problem of the experiment named by `dataset/key` (or a bare key when unambiguous).
    pub async fn experiment_problem_by_key(
        &self,
        experiment_id: i64,
        key: &str,
    ) -> Result<Option<i64>, StoreError> {
        let rows: Vec<(i64, String, String)> = db(sqlx::query_as(
            "SELECT DISTINCT p.id, d.name, p.problem_key FROM run_problem_stats s
             JOIN experiment_runs er ON er.run_id = s.run_id JOIN problems p ON p.id = s.problem_id
             JOIN datasets d ON d.id = p.dataset_id WHERE er.experiment_id = $1 AND (p.problem_key = $2 OR d.name || '/' || p.problem_key = $2)",
        )
        .bind(experiment_id)
        .bind(key)
        .fetch_all(&self.pool)
        .await)?;
        let exact = rows.iter().find(|(_, d, k)| format!("{d}/{k}") == key);
        Ok(match (exact, rows.len()) {
            (Some((id, _, _)), _) => Some(*id),
            (None, 1) => Some(rows[0].0),
            _ => None,
        })
    }
}
