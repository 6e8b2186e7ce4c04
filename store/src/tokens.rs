//! API tokens: bearer secrets for the REST API. Each belongs to a user and a project, with a
//! `read` or `write` scope and an optional expiry. Only a SHA-256 of each secret is stored; the
//! secret itself is shown once, when created.

use sha2::{Digest, Sha256};

use super::{db, now_rfc3339, Store};
use crate::error::StoreError;

/// What an API token may do: read, or read and write (upload, start evaluations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    Read,
    Write,
}

impl TokenScope {
    pub fn parse(s: &str) -> Option<TokenScope> {
        match s {
            "read" => Some(TokenScope::Read),
            "write" => Some(TokenScope::Write),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        }
    }
}

/// Prefix of every secret, so a leaked token is recognisable (and greppable) as caplens'.
pub const TOKEN_PREFIX: &str = "clk_";

pub use caplens_model::model::{ApiTokenRow as ApiToken, CreatedToken as NewToken};

fn hash(secret: &str) -> String {
    crate::hex(&Sha256::digest(secret.as_bytes()))
}

/// What a new token is for and what it may do.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub name: String,
    /// The user it acts for (`None`: a local-mode token, refused once accounts exist).
    pub user_id: Option<i64>,
    pub project_id: i64,
    pub scope: TokenScope,
    /// RFC 3339; `None`: until revoked.
    pub expires_at: Option<String>,
}

/// An active token as authentication needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenGrant {
    pub id: i64,
    pub prefix: String,
    pub user_id: Option<i64>,
    pub project_id: i64,
    pub scope: TokenScope,
}

/// Why a presented token does not authenticate.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenRefusal {
    Unknown,
    Revoked,
    Expired,
}

impl Store {
    /// Creates a local-mode write token named `name` in the default project (no user: such
    /// tokens stop working once accounts exist).
    pub async fn create_token(&self, name: &str) -> Result<NewToken, StoreError> {
        let project_id = self.project_id(None).await?.unwrap_or(-1);
        self.create_token_for(&TokenSpec {
            name: name.to_owned(),
            user_id: None,
            project_id,
            scope: TokenScope::Write,
            expires_at: None,
        })
        .await
    }

    /// Creates a token; the secret is in the result and nowhere else.
    pub async fn create_token_for(&self, spec: &TokenSpec) -> Result<NewToken, StoreError> {
        let name = spec.name.trim();
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
            "INSERT INTO api_tokens (name, prefix, secret_hash, created_at, user_id, project_id, scope, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(name)
        .bind(&prefix)
        .bind(hash(&secret))
        .bind(&created_at)
        .bind(spec.user_id)
        .bind(spec.project_id)
        .bind(spec.scope.as_str())
        .bind(&spec.expires_at)
        .fetch_one(&self.pool)
        .await)?;
        let token = self
            .tokens(None)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .expect("just inserted");
        Ok(NewToken { token, secret })
    }

    /// Tokens, newest first, revoked ones included; `user`: only that user's.
    pub async fn tokens(&self, user: Option<i64>) -> Result<Vec<ApiToken>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            Option<i64>,
        );
        let rows: Vec<Row> = db(sqlx::query_as(
            "SELECT t.id, t.name, t.prefix, t.created_at, t.last_used_at, t.revoked_at, u.name, p.slug, t.scope, t.expires_at, t.user_id \
             FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id LEFT JOIN projects p ON p.id = t.project_id \
             ORDER BY t.id DESC",
        )
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows
            .into_iter()
            .filter(|r| user.is_none() || r.10 == user)
            .map(
                |(
                    id,
                    name,
                    prefix,
                    created_at,
                    last_used_at,
                    revoked_at,
                    user,
                    project,
                    scope,
                    expires_at,
                    _,
                )| ApiToken {
                    id,
                    name,
                    prefix,
                    created_at,
                    last_used_at,
                    revoked_at,
                    user,
                    project,
                    scope,
                    expires_at,
                },
            )
            .collect())
    }

    /// The owner and project of a token (to decide who may revoke it).
    pub async fn token_owner(&self, id: i64) -> Result<Option<(Option<i64>, i64)>, StoreError> {
        let row: Option<(Option<i64>, Option<i64>)> = db(sqlx::query_as(
            "SELECT user_id, project_id FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(row.map(|(u, p)| (u, p.unwrap_or(-1))))
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

    /// The grant of the token with this secret, or why it is refused. Records the use without
    /// delaying the caller (the update may wait for an import holding SQLite's writer lock).
    pub async fn authenticate_token(
        &self,
        secret: &str,
    ) -> Result<Result<TokenGrant, TokenRefusal>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(Err(TokenRefusal::Unknown));
        }
        type Row = (
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            String,
            Option<String>,
        );
        let row: Option<Row> = db(sqlx::query_as(
            "SELECT id, prefix, revoked_at, expires_at, user_id, project_id, scope, last_used_at FROM api_tokens WHERE secret_hash = $1",
        )
        .bind(hash(secret))
        .fetch_optional(&self.pool)
        .await)?;
        let Some((id, prefix, revoked_at, expires_at, user_id, project_id, scope, last_used)) = row
        else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        if revoked_at.is_some() {
            return Ok(Err(TokenRefusal::Revoked));
        }
        let now = now_rfc3339();
        if expires_at.is_some_and(|e| e.as_str() <= now.as_str()) {
            return Ok(Err(TokenRefusal::Expired));
        }
        // At most one write a minute per token: a CI job's burst of requests must not turn every
        // read into a write (SQLite has one writer).
        let stale = last_used
            .as_deref()
            .and_then(super::unix_from_rfc3339)
            .is_none_or(|t| t + 60 <= super::unix_from_rfc3339(&now).unwrap_or(0));
        if stale {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let _ = sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(now_rfc3339())
                    .bind(id)
                    .execute(&pool)
                    .await;
            });
        }
        Ok(Ok(TokenGrant {
            id,
            prefix,
            user_id,
            project_id: project_id.unwrap_or(-1),
            scope: TokenScope::parse(&scope).unwrap_or(TokenScope::Read),
        }))
    }
}
