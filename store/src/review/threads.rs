//! The SQL of comment threads and their comments: threads made on first comment, comments with
//! their mentions, edits and deletions, resolving, the inbox and the discussion's counts.

use std::collections::HashMap;

use caplens_model::review::CommentTarget;
use sqlx::Row;

use crate::error::StoreError;
use crate::{db, now_rfc3339, Store};

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
    tx: &mut crate::catalog::Tx<'_>,
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

impl Store {
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
}
