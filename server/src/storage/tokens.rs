//! API tokens: bearer secrets for the write API (`POST /api/v1/imports`). Only a SHA-256 of
//! each secret is stored; the secret itself is shown once, when created.

use sha2::{Digest, Sha256};

use super::{db, now_rfc3339, Store};
use crate::error::StoreError;

/// Prefix of every secret, so a leaked token is recognisable (and greppable) as caplens'.
pub const TOKEN_PREFIX: &str = "clk_";

pub use caplens_app::model::{ApiTokenRow as ApiToken, CreatedToken as NewToken};

fn hash(secret: &str) -> String {
    crate::ingest::pipeline::hex(&Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Creates a token named `name` (what it is for: "ci", "alice's laptop").
    pub async fn create_token(&self, name: &str) -> Result<NewToken, StoreError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "a token name must be 1-100 printable characters".into(),
            ));
        }
        // Two v4 UUIDs: 244 random bits.
        let secret = format!(
            "{TOKEN_PREFIX}{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let prefix: String = secret.chars().take(TOKEN_PREFIX.len() + 6).collect();
        let created_at = now_rfc3339();
        let id: i64 = db(sqlx::query_scalar(
            "INSERT INTO api_tokens (name, prefix, secret_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(&prefix)
        .bind(hash(&secret))
        .bind(&created_at)
        .fetch_one(&self.pool)
        .await)?;
        Ok(NewToken {
            token: ApiToken {
                id,
                name: name.to_owned(),
                prefix,
                created_at,
                last_used_at: None,
                revoked_at: None,
            },
            secret,
        })
    }

    /// Every token, newest first, revoked ones included.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<(i64, String, String, String, Option<String>, Option<String>)> = db(sqlx::query_as(
            "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, name, prefix, created_at, last_used_at, revoked_at)| ApiToken {
                    id,
                    name,
                    prefix,
                    created_at,
                    last_used_at,
                    revoked_at,
                },
            )
            .collect())
    }

    /// Revokes a token by id; `false` when there is no such active token.
    pub async fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let done = db(sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await)?;
        Ok(done.rows_affected() > 0)
    }

    /// The id of the active token with this secret. Records the use without delaying the
    /// caller (the update may wait for an import holding SQLite's writer lock).
    pub async fn authenticate_token(&self, secret: &str) -> Result<Option<i64>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let id: Option<i64> = db(sqlx::query_scalar(
            "SELECT id FROM api_tokens WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash(secret))
        .fetch_optional(&self.pool)
        .await)?;
        if let Some(id) = id {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let _ = sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(now_rfc3339())
                    .bind(id)
                    .execute(&pool)
                    .await;
            });
        }
        Ok(id)
    }
}
