//! The SQL of share links: made (only the secret's hash kept), listed with their state, found by
//! their secret, counted when opened, and revoked.

use caplens_model::review::ShareLinkRow;

use crate::error::StoreError;
use crate::{db, now_rfc3339, Store};

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
}
