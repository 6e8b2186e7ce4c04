//! The SQL of team review (issue 15): comment threads and comments with mentions, review labels,
//! verdict overrides (and the rollouts a reviewed recount reads), review-queue assignments, share
//! links, and the experiment settings (rename, move, delete). Decisions are made in
//! `review` and `auth::policy`; this module only stores and looks up.

use std::collections::HashMap;

use caplens_model::review::{
    CommentTarget, LabelDef, OverrideRow, ProblemLabel, ShareLinkRow, BUILTIN_LABELS,
};
use sqlx::Row;

use super::{db, now_rfc3339, Store};
use crate::error::StoreError;

/// An experiment's id and project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExperimentRef {
    pub id: i64,
    pub project_id: i64,
}

/// A stored thread (without comments).
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadRecord {
    pub id: i64,
    pub experiment_id: i64,
    pub experiment: String,
    pub target: CommentTarget,
    pub problem_id: Option<i64>,
    pub problem_key: Option<String>,
    pub created_at: String,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
}

/// A stored comment.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentRecord {
    pub id: i64,
    pub thread_id: i64,
    pub author_id: Option<i64>,
    pub author_name: String,
    pub body: String,
    pub body_html: String,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub deleted_at: Option<String>,
}

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

/// A share link found by its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareGrant {
    pub id: i64,
    pub experiment_id: i64,
    pub experiment: String,
    pub project_id: i64,
    pub path: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

const THREAD_SELECT: &str =
    "SELECT t.id, t.experiment_id, e.slug, t.kind, t.problem_id, t.rollout_id, t.token_index,
        t.created_at, t.resolved_at, t.resolved_by, d.name AS dataset, p.problem_key
     FROM comment_threads t JOIN experiments e ON e.id = t.experiment_id
     LEFT JOIN problems p ON p.id = t.problem_id LEFT JOIN datasets d ON d.id = p.dataset_id";

fn thread_row(row: &sqlx::any::AnyRow) -> Result<ThreadRecord, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let problem_id: Option<i64> = row.try_get("problem_id")?;
    let rollout: Option<i64> = row.try_get("rollout_id")?;
    let target = match kind.as_str() {
        "problem" => CommentTarget::Problem {
            problem: problem_id.unwrap_or_default(),
        },
        "rollout" => CommentTarget::Rollout {
            rollout: rollout.unwrap_or_default(),
        },
        "token" => CommentTarget::Token {
            rollout: rollout.unwrap_or_default(),
            index: row
                .try_get::<Option<i64>, _>("token_index")?
                .unwrap_or_default(),
        },
        _ => CommentTarget::Experiment,
    };
    let key: Option<String> = row.try_get("problem_key")?;
    let dataset: Option<String> = row.try_get("dataset")?;
    Ok(ThreadRecord {
        id: row.try_get("id")?,
        experiment_id: row.try_get("experiment_id")?,
        experiment: row.try_get("slug")?,
        target,
        problem_id,
        problem_key: key.map(|k| match dataset {
            Some(d) if !d.is_empty() => format!("{d}/{k}"),
            _ => k,
        }),
        created_at: row.try_get("created_at")?,
        resolved_at: row.try_get("resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
    })
}

fn comment_row(row: &sqlx::any::AnyRow) -> Result<CommentRecord, sqlx::Error> {
    Ok(CommentRecord {
        id: row.try_get("id")?,
        thread_id: row.try_get("thread_id")?,
        author_id: row.try_get("author_id")?,
        author_name: row.try_get("author_name")?,
        body: row.try_get("body")?,
        body_html: row.try_get("body_html")?,
        created_at: row.try_get("created_at")?,
        edited_at: row.try_get("edited_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

const COMMENT_SELECT: &str =
    "SELECT id, thread_id, author_id, author_name, body, body_html, created_at, edited_at, deleted_at FROM comments";

/// Records who a comment mentions (inside the comment's transaction).
async fn insert_mentions(
    tx: &mut super::catalog::Tx<'_>,
    comment_id: i64,
    users: &[i64],
) -> Result<(), StoreError> {
    for user in users {
        db(
            sqlx::query("INSERT INTO comment_mentions (comment_id, user_id) VALUES ($1, $2)")
                .bind(comment_id)
                .bind(*user)
                .execute(&mut **tx)
                .await,
        )?;
    }
    Ok(())
}

/// A share link's state at `now`: `active`, `expired` or `revoked`. Timestamps are all
/// `YYYY-MM-DDTHH:MM:SSZ` (`now_rfc3339`), so they compare as text.
fn share_link_state(expires_at: Option<&str>, revoked_at: Option<&str>, now: &str) -> &'static str {
    if revoked_at.is_some() {
        "revoked"
    } else if expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

impl ShareGrant {
    /// `active`, `expired` or `revoked`, now.
    pub fn state(&self) -> &'static str {
        share_link_state(
            self.expires_at.as_deref(),
            self.revoked_at.as_deref(),
            &now_rfc3339(),
        )
    }
}

impl Store {
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
        resource: &super::access::Owned,
        experiment_id: i64,
    ) -> Result<bool, StoreError> {
        use super::access::Owned;
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

    // ---------- threads and comments ----------

    /// The thread on `target` in the experiment, made when missing.
    pub async fn thread_for(
        &self,
        experiment_id: i64,
        target: &CommentTarget,
        problem_id: Option<i64>,
        user_id: Option<i64>,
    ) -> Result<i64, StoreError> {
        let (rollout, index) = match target {
            CommentTarget::Rollout { rollout } => (Some(*rollout), None),
            CommentTarget::Token { rollout, index } => (Some(*rollout), Some(*index)),
            _ => (None, None),
        };
        let existing: Option<i64> = db(sqlx::query_scalar(
            "SELECT id FROM comment_threads WHERE experiment_id = $1 AND kind = $2
               AND COALESCE(problem_id, -1) = $3 AND COALESCE(rollout_id, -1) = $4 AND COALESCE(token_index, -1) = $5
             ORDER BY id LIMIT 1",
        )
        .bind(experiment_id)
        .bind(target.kind())
        .bind(problem_id.unwrap_or(-1))
        .bind(rollout.unwrap_or(-1))
        .bind(index.unwrap_or(-1))
        .fetch_optional(&self.pool)
        .await)?;
        if let Some(id) = existing {
            return Ok(id);
        }
        db(sqlx::query_scalar(
            "INSERT INTO comment_threads (experiment_id, kind, problem_id, rollout_id, token_index, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(experiment_id)
        .bind(target.kind())
        .bind(problem_id)
        .bind(rollout)
        .bind(index)
        .bind(now_rfc3339())
        .bind(user_id)
        .fetch_one(&self.pool)
        .await)
    }

    /// Adds a comment and its mentions (user ids); the comment's id.
    pub async fn add_comment(
        &self,
        thread_id: i64,
        author_id: Option<i64>,
        author_name: &str,
        body: &str,
        body_html: &str,
        mentions: &[i64],
    ) -> Result<i64, StoreError> {
        let mut tx = db(self.pool.begin().await)?;
        let id: i64 = db(sqlx::query_scalar(
            "INSERT INTO comments (thread_id, author_id, author_name, body, body_html, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(thread_id)
        .bind(author_id)
        .bind(author_name)
        .bind(body)
        .bind(body_html)
        .bind(now_rfc3339())
        .fetch_one(&mut *tx)
        .await)?;
        insert_mentions(&mut tx, id, mentions).await?;
        db(tx.commit().await)?;
        Ok(id)
    }

    pub async fn comment(&self, id: i64) -> Result<Option<CommentRecord>, StoreError> {
        let row = db(sqlx::query(&format!("{COMMENT_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await)?;
        row.as_ref()
            .map(comment_row)
            .transpose()
            .map_err(StoreError::Database)
    }

    /// Replaces a comment's text and mentions.
    pub async fn edit_comment(
        &self,
        id: i64,
        body: &str,
        body_html: &str,
        mentions: &[i64],
    ) -> Result<(), StoreError> {
        let mut tx = db(self.pool.begin().await)?;
        db(sqlx::query(
            "UPDATE comments SET body = $1, body_html = $2, edited_at = $3 WHERE id = $4",
        )
        .bind(body)
        .bind(body_html)
        .bind(now_rfc3339())
        .bind(id)
        .execute(&mut *tx)
        .await)?;
        db(
            sqlx::query("DELETE FROM comment_mentions WHERE comment_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await,
        )?;
        insert_mentions(&mut tx, id, mentions).await?;
        db(tx.commit().await)?;
        Ok(())
    }

    /// Deletes a comment's text; the thread keeps a "deleted" placeholder so replies stay in order.
    pub async fn delete_comment(&self, id: i64) -> Result<(), StoreError> {
        db(sqlx::query(
            "UPDATE comments SET body = '', body_html = '', deleted_at = $1 WHERE id = $2",
        )
        .bind(now_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await)?;
        db(
            sqlx::query("DELETE FROM comment_mentions WHERE comment_id = $1")
                .bind(id)
                .execute(&self.pool)
                .await,
        )?;
        Ok(())
    }

    pub async fn set_thread_resolved(&self, id: i64, by: Option<&str>) -> Result<(), StoreError> {
        db(sqlx::query(
            "UPDATE comment_threads SET resolved_at = $1, resolved_by = $2 WHERE id = $3",
        )
        .bind(by.map(|_| now_rfc3339()))
        .bind(by)
        .bind(id)
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    pub async fn thread(&self, id: i64) -> Result<Option<ThreadRecord>, StoreError> {
        let row = db(sqlx::query(&format!("{THREAD_SELECT} WHERE t.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await)?;
        row.as_ref()
            .map(thread_row)
            .transpose()
            .map_err(StoreError::Database)
    }

    /// An experiment's threads, newest activity first.
    pub async fn threads(&self, experiment_id: i64) -> Result<Vec<ThreadRecord>, StoreError> {
        let rows = db(sqlx::query(&format!(
            "{THREAD_SELECT} WHERE t.experiment_id = $1 ORDER BY
               (SELECT MAX(c.id) FROM comments c WHERE c.thread_id = t.id) DESC, t.id DESC"
        ))
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await)?;
        rows.iter()
            .map(thread_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::Database)
    }

    /// Threads (of any experiment) with a comment mentioning the user, or with a reply by someone
    /// else after one of the user's comments: (thread, why).
    pub async fn inbox_threads(
        &self,
        user_id: i64,
    ) -> Result<Vec<(ThreadRecord, &'static str)>, StoreError> {
        let mentioned: Vec<i64> = db(sqlx::query_scalar(
            "SELECT DISTINCT c.thread_id FROM comment_mentions m JOIN comments c ON c.id = m.comment_id
             WHERE m.user_id = $1 AND c.deleted_at IS NULL",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await)?;
        let replied: Vec<i64> = db(sqlx::query_scalar(
            "SELECT DISTINCT mine.thread_id FROM comments mine JOIN comments other
               ON other.thread_id = mine.thread_id AND other.id > mine.id
             WHERE mine.author_id = $1 AND COALESCE(other.author_id, -1) <> $1 AND other.deleted_at IS NULL",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await)?;
        let mut wanted: Vec<(i64, &'static str)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (ids, why) in [(mentioned, "mention"), (replied, "reply")] {
            wanted.extend(
                ids.into_iter()
                    .filter(|id| seen.insert(*id))
                    .map(|id| (id, why)),
            );
        }
        let mut threads: HashMap<i64, ThreadRecord> = HashMap::new();
        for chunk in wanted.chunks(200) {
            let list = chunk
                .iter()
                .map(|(i, _)| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let rows = db(
                sqlx::query(&format!("{THREAD_SELECT} WHERE t.id IN ({list})"))
                    .fetch_all(&self.pool)
                    .await,
            )?;
            for row in &rows {
                let t = thread_row(row).map_err(StoreError::Database)?;
                threads.insert(t.id, t);
            }
        }
        Ok(wanted
            .into_iter()
            .filter_map(|(id, why)| Some((threads.remove(&id)?, why)))
            .collect())
    }

    /// Comments of the threads, in order.
    pub async fn comments_of(
        &self,
        thread_ids: &[i64],
    ) -> Result<HashMap<i64, Vec<CommentRecord>>, StoreError> {
        let mut out: HashMap<i64, Vec<CommentRecord>> = HashMap::new();
        for chunk in thread_ids.chunks(200) {
            let list = chunk
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let rows = db(sqlx::query(&format!(
                "{COMMENT_SELECT} WHERE thread_id IN ({list}) ORDER BY id"
            ))
            .fetch_all(&self.pool)
            .await)?;
            for row in &rows {
                let c = comment_row(row).map_err(StoreError::Database)?;
                out.entry(c.thread_id).or_default().push(c);
            }
        }
        Ok(out)
    }

    /// Users mentioned in a thread's comments (ids).
    pub async fn mentioned_in_thread(&self, thread_id: i64) -> Result<Vec<i64>, StoreError> {
        db(sqlx::query_scalar(
            "SELECT DISTINCT m.user_id FROM comment_mentions m JOIN comments c ON c.id = m.comment_id WHERE c.thread_id = $1",
        )
        .bind(thread_id)
        .fetch_all(&self.pool)
        .await)
    }

    /// Live comment counts of an experiment per problem (all threads under it) and per rollout
    /// (its own and its tokens' threads).
    pub async fn comment_counts(
        &self,
        experiment_id: i64,
    ) -> Result<(Vec<(i64, u64)>, Vec<(i64, u64)>), StoreError> {
        let by_problem: Vec<(i64, i64)> = db(sqlx::query_as(
            "SELECT t.problem_id, COUNT(c.id) FROM comment_threads t JOIN comments c ON c.thread_id = t.id
             WHERE t.experiment_id = $1 AND t.problem_id IS NOT NULL AND c.deleted_at IS NULL GROUP BY t.problem_id",
        )
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await)?;
        let by_rollout: Vec<(i64, i64)> = db(sqlx::query_as(
            "SELECT t.rollout_id, COUNT(c.id) FROM comment_threads t JOIN comments c ON c.thread_id = t.id
             WHERE t.experiment_id = $1 AND t.rollout_id IS NOT NULL AND c.deleted_at IS NULL GROUP BY t.rollout_id",
        )
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await)?;
        let cast = |v: Vec<(i64, i64)>| v.into_iter().map(|(a, b)| (a, b.max(0) as u64)).collect();
        Ok((cast(by_problem), cast(by_rollout)))
    }

    /// A fingerprint of an experiment's discussion: changes on any new, edited or deleted
    /// comment and any resolve/reopen.
    pub async fn discussion_stamp(&self, experiment_id: i64) -> Result<String, StoreError> {
        let row: (Option<i64>, Option<String>, i64, Option<String>) = db(sqlx::query_as(
            "SELECT MAX(c.id), MAX(COALESCE(c.deleted_at, c.edited_at, c.created_at)),
                    (SELECT COUNT(*) FROM comment_threads x WHERE x.experiment_id = $1 AND x.resolved_at IS NOT NULL),
                    (SELECT MAX(x.resolved_at) FROM comment_threads x WHERE x.experiment_id = $1)
             FROM comment_threads t JOIN comments c ON c.thread_id = t.id WHERE t.experiment_id = $1",
        )
        .bind(experiment_id)
        .fetch_one(&self.pool)
        .await)?;
        Ok(format!(
            "{}:{}:{}:{}",
            row.0.unwrap_or(0),
            row.1.unwrap_or_default(),
            row.2,
            row.3.unwrap_or_default()
        ))
    }

    // ---------- labels ----------

    /// The labels a project's problems may carry: the built-in ones, then the project's own.
    pub async fn label_defs(&self, project_id: i64) -> Result<Vec<LabelDef>, StoreError> {
        let own: Vec<(String, String)> = db(sqlx::query_as(
            "SELECT name, colour FROM review_labels WHERE project_id = $1 ORDER BY name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await)?;
        let mut out: Vec<LabelDef> = BUILTIN_LABELS
            .iter()
            .map(|(n, c)| LabelDef {
                name: (*n).into(),
                colour: (*c).into(),
                builtin: true,
            })
            .collect();
        out.extend(own.into_iter().map(|(name, colour)| LabelDef {
            name,
            colour,
            builtin: false,
        }));
        Ok(out)
    }

    pub async fn add_label_def(
        &self,
        project_id: i64,
        name: &str,
        colour: &str,
    ) -> Result<(), StoreError> {
        db(sqlx::query(
            "INSERT INTO review_labels (project_id, name, colour, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, name) DO UPDATE SET colour = excluded.colour",
        )
        .bind(project_id)
        .bind(name)
        .bind(colour)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    /// Sets a problem's labels in an experiment to exactly `labels` (kept labels keep who set
    /// them and when).
    pub async fn set_problem_labels(
        &self,
        experiment_id: i64,
        problem_id: i64,
        labels: &[String],
        by: &str,
    ) -> Result<(), StoreError> {
        let mut tx = db(self.pool.begin().await)?;
        let existing: Vec<String> = db(sqlx::query_scalar(
            "SELECT label FROM problem_labels WHERE experiment_id = $1 AND problem_id = $2",
        )
        .bind(experiment_id)
        .bind(problem_id)
        .fetch_all(&mut *tx)
        .await)?;
        for old in existing.iter().filter(|l| !labels.contains(l)) {
            db(sqlx::query("DELETE FROM problem_labels WHERE experiment_id = $1 AND problem_id = $2 AND label = $3")
                .bind(experiment_id)
                .bind(problem_id)
                .bind(old)
                .execute(&mut *tx)
                .await)?;
        }
        let now = now_rfc3339();
        for new in labels.iter().filter(|l| !existing.contains(l)) {
            db(sqlx::query(
                "INSERT INTO problem_labels (experiment_id, problem_id, label, set_by, set_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(experiment_id)
            .bind(problem_id)
            .bind(new)
            .bind(by)
            .bind(&now)
            .execute(&mut *tx)
            .await)?;
        }
        db(tx.commit().await)?;
        Ok(())
    }

    /// Every labelled problem of an experiment with its labels (colours from the definitions).
    pub async fn problem_labels(
        &self,
        experiment: ExperimentRef,
    ) -> Result<HashMap<i64, Vec<ProblemLabel>>, StoreError> {
        let defs = self.label_defs(experiment.project_id).await?;
        let rows: Vec<(i64, String, String, String)> = db(sqlx::query_as(
            "SELECT problem_id, label, set_by, set_at FROM problem_labels WHERE experiment_id = $1 ORDER BY set_at, label",
        )
        .bind(experiment.id)
        .fetch_all(&self.pool)
        .await)?;
        let mut out: HashMap<i64, Vec<ProblemLabel>> = HashMap::new();
        for (problem, label, set_by, set_at) in rows {
            let colour = defs
                .iter()
                .find(|d| d.name == label)
                .map_or("#999999".into(), |d| d.colour.clone());
            out.entry(problem).or_default().push(ProblemLabel {
                label,
                colour,
                set_by,
                set_at,
            });
        }
        Ok(out)
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

    // ---------- verdict overrides ----------

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
        db(sqlx::query(
            "UPDATE experiments SET review_version = review_version + 1 WHERE id = $1",
        )
        .bind(experiment_id)
        .execute(&mut *tx)
        .await)?;
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
        db(sqlx::query(
            "UPDATE experiments SET review_version = review_version + 1 WHERE id = $1",
        )
        .bind(experiment_id)
        .execute(&mut *tx)
        .await)?;
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
                    problem: if dataset.is_empty() {
                        key
                    } else {
                        format!("{dataset}/{key}")
                    },
                    rollout: row.try_get("rollout_id")?,
                    answer: row.try_get("answer")?,
                    verdict: if row.try_get::<i64, _>("verdict")? != 0 {
                        "correct"
                    } else {
                        "wrong"
                    }
                    .into(),
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

    // ---------- review queue ----------

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
        let mut out = Vec::new();
        for run in run_ids {
            let rows: Vec<(i64, i64, i64)> = db(sqlx::query_as(
                "SELECT run_id, problem_id, COUNT(*) FROM rollouts WHERE run_id = $1 AND caplens_verdict = 2
                 GROUP BY run_id, problem_id",
            )
            .bind(*run)
            .fetch_all(&self.pool)
            .await)?;
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

    // ---------- share links ----------

    pub async fn create_share_link(
        &self,
        experiment_id: i64,
        secret_hash: &str,
        path: &str,
        by: &str,
        expires_at: Option<&str>,
    ) -> Result<i64, StoreError> {
        db(sqlx::query_scalar(
            "INSERT INTO share_links (experiment_id, secret_hash, path, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(experiment_id)
        .bind(secret_hash)
        .bind(path)
        .bind(by)
        .bind(now_rfc3339())
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await)
    }

    pub async fn share_links(&self, experiment_id: i64) -> Result<Vec<ShareLinkRow>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            i64,
            Option<String>,
        );
        let rows: Vec<Row> = db(sqlx::query_as(
            "SELECT id, path, created_by, created_at, expires_at, revoked_at, opened, last_opened_at
             FROM share_links WHERE experiment_id = $1 ORDER BY id DESC",
        )
        .bind(experiment_id)
        .fetch_all(&self.pool)
        .await)?;
        let now = now_rfc3339();
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    path,
                    created_by,
                    created_at,
                    expires_at,
                    revoked_at,
                    opened,
                    last_opened_at,
                )| ShareLinkRow {
                    state: share_link_state(expires_at.as_deref(), revoked_at.as_deref(), &now)
                        .into(),
                    id,
                    path,
                    created_by,
                    created_at,
                    expires_at,
                    revoked_at,
                    opened,
                    last_opened_at,
                },
            )
            .collect())
    }

    /// A share link by the SHA-256 of its secret (whatever its state).
    pub async fn share_grant(&self, secret_hash: &str) -> Result<Option<ShareGrant>, StoreError> {
        type Row = (
            i64,
            i64,
            String,
            Option<i64>,
            String,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = db(sqlx::query_as(
            "SELECT s.id, s.experiment_id, e.slug, e.project_id, s.path, s.expires_at, s.revoked_at
             FROM share_links s JOIN experiments e ON e.id = s.experiment_id WHERE s.secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(row.map(
            |(id, experiment_id, experiment, project, path, expires_at, revoked_at)| ShareGrant {
                id,
                experiment_id,
                experiment,
                project_id: project.unwrap_or(-1),
                path,
                expires_at,
                revoked_at,
            },
        ))
    }

    pub async fn share_link_opened(&self, id: i64) -> Result<(), StoreError> {
        db(sqlx::query(
            "UPDATE share_links SET opened = opened + 1, last_opened_at = $1 WHERE id = $2",
        )
        .bind(now_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    /// The experiment (id, slug, project) of a share link.
    pub async fn share_link_experiment(
        &self,
        id: i64,
    ) -> Result<Option<(i64, String, i64)>, StoreError> {
        let row: Option<(i64, String, Option<i64>)> = db(sqlx::query_as(
            "SELECT e.id, e.slug, e.project_id FROM share_links s JOIN experiments e ON e.id = s.experiment_id WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(row.map(|(i, s, p)| (i, s, p.unwrap_or(-1))))
    }

    pub async fn revoke_share_link(&self, id: i64) -> Result<(), StoreError> {
        db(sqlx::query(
            "UPDATE share_links SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    // ---------- experiment settings ----------

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
