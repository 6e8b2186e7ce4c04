//! The SQL of access control (issue 14): users, server-side sessions, projects and their
//! members, which project a resource belongs to, and the audit log. Decisions are not made here
//! (that is `auth::policy`); this module only stores and looks up.

use super::{db, now_rfc3339, Store};
use crate::error::StoreError;

pub use caplens_model::model::{AuditEntry, MemberRow, ProjectRow, Role, UserRow};

/// A user as the server needs it to authenticate (the password hash never leaves the server).
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub row: UserRow,
    pub password_hash: Option<String>,
}

/// What a session cookie resolves to.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: UserRow,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
}

/// One line of the audit log to write.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    pub user_id: Option<i64>,
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    pub project_id: Option<i64>,
    pub refused: bool,
    pub detail: String,
    pub address: Option<String>,
}

/// A resource whose project decides who may act on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    Experiment(String),
    Run(i64),
    Rollout(i64),
    Evaluation(i64),
    Import(String),
    Intervention(i64),
    Engine(i64),
    /// A problem, through its dataset (0: a shared dataset's).
    Problem(i64),
    /// A dataset (0: a shared one).
    Dataset(i64),
    Project(String),
    /// Review data, through its experiment.
    Override(i64),
    Thread(i64),
    Comment(i64),
    ShareLink(i64),
}

type UserTuple = (
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

const USER_COLUMNS: &str = "id, name, email, display_name, is_admin, disabled_at, oidc_subject, created_at, last_login_at, password_hash";

fn user_record(t: UserTuple) -> UserRecord {
    let (
        id,
        name,
        email,
        display_name,
        is_admin,
        disabled_at,
        oidc_subject,
        created_at,
        last_login_at,
        password_hash,
    ) = t;
    UserRecord {
        row: UserRow {
            id,
            name,
            email,
            display_name,
            is_admin: is_admin != 0,
            disabled: disabled_at.is_some(),
            single_sign_on: oidc_subject.is_some(),
            created_at,
            last_login_at,
        },
        password_hash,
    }
}

/// A user or project name: 1-64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_name(kind: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(StoreError::Invalid(format!(
            "{kind} name {name:?}: use 1-64 letters, digits, '.', '_', '-' or '@'"
        )));
    }
    Ok(())
}

impl Store {
    // ---- users ----

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        db(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await)
    }

    pub async fn admin_count(&self) -> Result<i64, StoreError> {
        db(sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await)
    }

    /// Creates a user; `password_hash` is an argon2id PHC string (`auth::password`).
    pub async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> Result<UserRow, StoreError> {
        valid_name("user", name)?;
        if self.user_by_name(name).await?.is_some() {
            return Err(StoreError::Invalid(format!(
                "a user named {name} exists already"
            )));
        }
        let id: i64 = db(sqlx::query_scalar(
            "INSERT INTO users (name, email, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(email)
        .bind(password_hash)
        .bind(is_admin as i64)
        .bind(now_rfc3339())
        .fetch_one(&self.pool)
        .await)?;
        Ok(self.user(id).await?.expect("just inserted").row)
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        let t: Option<UserTuple> = db(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(t.map(user_record))
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let t: Option<UserTuple> = db(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(t.map(user_record))
    }

    pub async fn user_by_subject(&self, subject: &str) -> Result<Option<UserRecord>, StoreError> {
        let t: Option<UserTuple> = db(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE oidc_subject = $1"
        ))
        .bind(subject)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(t.map(user_record))
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows: Vec<UserTuple> = db(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows.into_iter().map(|t| user_record(t).row).collect())
    }

    /// Creates the account of a single sign-on user (name from the provider, made unique).
    pub async fn create_sso_user(
        &self,
        subject: &str,
        preferred_name: &str,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<UserRow, StoreError> {
        let base: String = preferred_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
            .take(56)
            .collect();
        let base = if base.is_empty() {
            "user".to_string()
        } else {
            base
        };
        let mut name = base.clone();
        let mut n = 1;
        while self.user_by_name(&name).await?.is_some() {
            n += 1;
            name = format!("{base}-{n}");
        }
        let id: i64 = db(sqlx::query_scalar(
            "INSERT INTO users (name, email, display_name, oidc_subject, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&name)
        .bind(email)
        .bind(display_name)
        .bind(subject)
        .bind(now_rfc3339())
        .fetch_one(&self.pool)
        .await)?;
        Ok(self.user(id).await?.expect("just inserted").row)
    }

    pub async fn set_user_admin(&self, id: i64, is_admin: bool) -> Result<(), StoreError> {
        db(sqlx::query("UPDATE users SET is_admin = $1 WHERE id = $2")
            .bind(is_admin as i64)
            .bind(id)
            .execute(&self.pool)
            .await)?;
        Ok(())
    }

    pub async fn set_user_email(
        &self,
        id: i64,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<(), StoreError> {
        db(
            sqlx::query("UPDATE users SET email = $1, display_name = $2 WHERE id = $3")
                .bind(email)
                .bind(display_name)
                .bind(id)
                .execute(&self.pool)
                .await,
        )?;
        Ok(())
    }

    /// Disables (or enables) a user. Disabling also ends every session of the user.
    pub async fn set_user_disabled(&self, id: i64, disabled: bool) -> Result<(), StoreError> {
        let at = disabled.then(now_rfc3339);
        db(
            sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
                .bind(at)
                .bind(id)
                .execute(&self.pool)
                .await,
        )?;
        if disabled {
            self.end_user_sessions(id).await?;
        }
        Ok(())
    }

    /// Sets a new password hash and ends every session of the user.
    pub async fn set_password_hash(&self, id: i64, hash: &str) -> Result<(), StoreError> {
        db(
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(id)
                .execute(&self.pool)
                .await,
        )?;
        self.end_user_sessions(id).await
    }

    // ---- sessions ----

    /// Stores a new session (by the hash of its secret) and records the sign-in time.
    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        expires_at: &str,
        address: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        db(sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at, address) VALUES ($1, $2, $3, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(&now)
        .bind(expires_at)
        .bind(address)
        .execute(&self.pool)
        .await)?;
        db(
            sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
                .bind(&now)
                .bind(user_id)
                .execute(&self.pool)
                .await,
        )?;
        Ok(())
    }

    /// The session with this hash and its user, whatever its age (the caller checks expiry).
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<(i64, String, String, String)> = db(sqlx::query_as(
            "SELECT user_id, created_at, last_seen_at, expires_at FROM sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await)?;
        let Some((user_id, created_at, last_seen_at, expires_at)) = row else {
            return Ok(None);
        };
        let Some(user) = self.user(user_id).await? else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            user: user.row,
            created_at,
            last_seen_at,
            expires_at,
        }))
    }

    pub async fn touch_session(&self, id_hash: &str) -> Result<(), StoreError> {
        db(
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(now_rfc3339())
                .bind(id_hash)
                .execute(&self.pool)
                .await,
        )?;
        Ok(())
    }

    pub async fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        db(sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await)?;
        Ok(())
    }

    /// Signs a user out everywhere.
    pub async fn end_user_sessions(&self, user_id: i64) -> Result<(), StoreError> {
        db(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await)?;
        Ok(())
    }

    // ---- projects and members ----

    pub async fn create_project(
        &self,
        slug: &str,
        name: &str,
        open_to_all: bool,
    ) -> Result<ProjectRow, StoreError> {
        valid_name("project", slug)?;
        if self.project_by_slug(slug).await?.is_some() {
            return Err(StoreError::Invalid(format!(
                "a project {slug} exists already"
            )));
        }
        let name = if name.trim().is_empty() {
            slug
        } else {
            name.trim()
        };
        db(sqlx::query(
            "INSERT INTO projects (slug, name, open_to_all, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(slug)
        .bind(name)
        .bind(open_to_all as i64)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(self.project_by_slug(slug).await?.expect("just inserted"))
    }

    pub async fn projects(&self) -> Result<Vec<ProjectRow>, StoreError> {
        let rows: Vec<(i64, String, String, String, i64, i64, i64)> = db(sqlx::query_as(
            "SELECT id, slug, name, description, open_to_all, viewers_comment, engine_admins FROM projects ORDER BY slug",
        )
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, slug, name, description, open, viewers_comment, engine_admins)| ProjectRow {
                    id,
                    slug,
                    name,
                    description,
                    open_to_all: open != 0,
                    viewers_comment: viewers_comment != 0,
                    engine_admins: engine_admins != 0,
                },
            )
            .collect())
    }

    pub async fn project_by_slug(&self, slug: &str) -> Result<Option<ProjectRow>, StoreError> {
        Ok(self.projects().await?.into_iter().find(|p| p.slug == slug))
    }

    pub async fn project_by_id(&self, id: i64) -> Result<Option<ProjectRow>, StoreError> {
        Ok(self.projects().await?.into_iter().find(|p| p.id == id))
    }

    /// Lets the project's viewers comment and label (issue 15), or not.
    pub async fn set_viewers_comment(&self, id: i64, allowed: bool) -> Result<(), StoreError> {
        db(
            sqlx::query("UPDATE projects SET viewers_comment = $1 WHERE id = $2")
                .bind(allowed as i64)
                .bind(id)
                .execute(&self.pool)
                .await,
        )?;
        Ok(())
    }

    /// Lets the project's admins add and change its engines (else only site admins may).
    pub async fn set_engine_admins(&self, id: i64, allowed: bool) -> Result<(), StoreError> {
        db(
            sqlx::query("UPDATE projects SET engine_admins = $1 WHERE id = $2")
                .bind(allowed as i64)
                .bind(id)
                .execute(&self.pool)
                .await,
        )?;
        Ok(())
    }

    /// Adds a member or changes their role.
    pub async fn set_member(
        &self,
        project_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<(), StoreError> {
        db(sqlx::query(
            "INSERT INTO project_members (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    pub async fn remove_member(&self, project_id: i64, user_id: i64) -> Result<bool, StoreError> {
        let done = db(sqlx::query(
            "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2",
        )
        .bind(project_id)
        .bind(user_id)
        .execute(&self.pool)
        .await)?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn members(&self, project_id: i64) -> Result<Vec<MemberRow>, StoreError> {
        let rows: Vec<(i64, String, String, String)> = db(sqlx::query_as(
            "SELECT u.id, u.name, m.role, m.added_at FROM project_members m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = $1 ORDER BY u.name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|(user_id, user, role, added_at)| {
                Some(MemberRow {
                    user_id,
                    user,
                    role: Role::parse(&role)?,
                    added_at,
                })
            })
            .collect())
    }

    /// Every (project id, role) of a user.
    pub async fn memberships(&self, user_id: i64) -> Result<Vec<(i64, Role)>, StoreError> {
        let rows: Vec<(i64, String)> = db(sqlx::query_as(
            "SELECT project_id, role FROM project_members WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, r)| Some((p, Role::parse(&r)?)))
            .collect())
    }

    /// The project a resource belongs to: `Ok(None)` when the resource does not exist.
    pub async fn project_of(&self, resource: &Owned) -> Result<Option<i64>, StoreError> {
        let (sql, key): (&str, Key) = match resource {
            Owned::Experiment(slug) => ("SELECT project_id FROM experiments WHERE slug = $1", Key::Text(slug)),
            Owned::Run(id) => ("SELECT project_id FROM runs WHERE id = $1", Key::Int(*id)),
            Owned::Rollout(id) => (
                "SELECT r.project_id FROM rollouts o JOIN runs r ON r.id = o.run_id WHERE o.id = $1",
                Key::Int(*id),
            ),
            Owned::Evaluation(id) => ("SELECT project_id FROM evaluations WHERE id = $1", Key::Int(*id)),
            Owned::Import(id) => ("SELECT project_id FROM imports WHERE id = $1", Key::Text(id)),
            Owned::Intervention(id) => (
                "SELECT r.project_id FROM interventions i JOIN rollouts o ON o.id = i.rollout_id JOIN runs r ON r.id = o.run_id WHERE i.id = $1",
                Key::Int(*id),
            ),
            Owned::Engine(id) => ("SELECT COALESCE(project_id, 0) FROM engines WHERE id = $1", Key::Int(*id)),
            Owned::Problem(id) => (
                "SELECT COALESCE(d.project_id, 0) FROM problems p JOIN datasets d ON d.id = p.dataset_id WHERE p.id = $1",
                Key::Int(*id),
            ),
            Owned::Dataset(id) => (
                "SELECT COALESCE(project_id, 0) FROM datasets WHERE id = $1",
                Key::Int(*id),
            ),
            Owned::Project(slug) => ("SELECT id FROM projects WHERE slug = $1", Key::Text(slug)),
            Owned::Override(id) => (
                "SELECT e.project_id FROM verdict_overrides o JOIN experiments e ON e.id = o.experiment_id WHERE o.id = $1",
                Key::Int(*id),
            ),
            Owned::Thread(id) => (
                "SELECT e.project_id FROM comment_threads t JOIN experiments e ON e.id = t.experiment_id WHERE t.id = $1",
                Key::Int(*id),
            ),
            Owned::Comment(id) => (
                "SELECT e.project_id FROM comments c JOIN comment_threads t ON t.id = c.thread_id JOIN experiments e ON e.id = t.experiment_id WHERE c.id = $1",
                Key::Int(*id),
            ),
            Owned::ShareLink(id) => (
                "SELECT e.project_id FROM share_links s JOIN experiments e ON e.id = s.experiment_id WHERE s.id = $1",
                Key::Int(*id),
            ),
        };
        let q = sqlx::query_scalar::<_, Option<i64>>(sql);
        let q = match key {
            Key::Int(i) => q.bind(i),
            Key::Text(t) => q.bind(t.to_owned()),
        };
        // A row with a NULL project (written before projects, outside a migration) is in no
        // project: only site admins and local mode reach it.
        Ok(db(q.fetch_optional(&self.pool).await)?.map(|p| p.unwrap_or(-1)))
    }

    /// The runs over a problem, with their projects (a shared dataset's problem has runs of
    /// several projects; a project's problem only its own).
    pub async fn problem_run_projects(
        &self,
        problem_id: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows: Vec<(i64, Option<i64>)> = db(sqlx::query_as(
            "SELECT s.run_id, r.project_id FROM run_problem_stats s JOIN runs r ON r.id = s.run_id WHERE s.problem_id = $1",
        )
        .bind(problem_id)
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(run, p)| (run, p.unwrap_or(-1)))
            .collect())
    }

    /// Project of every experiment, run and dataset (for filtering lists), by kind and id/slug.
    pub async fn experiment_projects(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, Option<i64>)> =
            db(sqlx::query_as("SELECT slug, project_id FROM experiments")
                .fetch_all(&self.pool)
                .await)?;
        Ok(rows
            .into_iter()
            .map(|(s, p)| (s, p.unwrap_or(-1)))
            .collect())
    }

    pub async fn run_projects(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows: Vec<(i64, Option<i64>)> = db(sqlx::query_as("SELECT id, project_id FROM runs")
            .fetch_all(&self.pool)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(s, p)| (s, p.unwrap_or(-1)))
            .collect())
    }

    /// Project of every dataset by id (0: shared by every project, such as the built-in one).
    pub async fn dataset_projects(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows: Vec<(i64, Option<i64>)> =
            db(sqlx::query_as("SELECT id, project_id FROM datasets")
                .fetch_all(&self.pool)
                .await)?;
        Ok(rows.into_iter().map(|(s, p)| (s, p.unwrap_or(0))).collect())
    }

    pub async fn evaluation_projects(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows: Vec<(i64, Option<i64>)> =
            db(sqlx::query_as("SELECT id, project_id FROM evaluations")
                .fetch_all(&self.pool)
                .await)?;
        Ok(rows
            .into_iter()
            .map(|(s, p)| (s, p.unwrap_or(-1)))
            .collect())
    }

    pub async fn import_projects(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, Option<i64>)> =
            db(sqlx::query_as("SELECT id, project_id FROM imports")
                .fetch_all(&self.pool)
                .await)?;
        Ok(rows
            .into_iter()
            .map(|(s, p)| (s, p.unwrap_or(-1)))
            .collect())
    }

    /// The id of a project by slug, `default` when none is named.
    pub async fn project_id(&self, slug: Option<&str>) -> Result<Option<i64>, StoreError> {
        Ok(self
            .project_by_slug(slug.unwrap_or(DEFAULT_PROJECT))
            .await?
            .map(|p| p.id))
    }

    /// Project of every model by id.
    pub async fn model_projects(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows: Vec<(i64, Option<i64>)> =
            db(sqlx::query_as("SELECT id, project_id FROM models")
                .fetch_all(&self.pool)
                .await)?;
        Ok(rows.into_iter().map(|(m, p)| (m, p.unwrap_or(0))).collect())
    }

    // ---- audit log ----

    /// Appends to the audit log. A failure to write it is logged, not returned: the action
    /// itself has already happened (or been refused).
    pub async fn audit(&self, record: AuditRecord) {
        let result = sqlx::query(
            "INSERT INTO audit_log (at, user_id, actor, action, target, project_id, outcome, detail, address) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(now_rfc3339())
        .bind(record.user_id)
        .bind(&record.actor)
        .bind(record.action)
        .bind(&record.target)
        .bind(record.project_id)
        .bind(if record.refused { "refused" } else { "ok" })
        .bind(&record.detail)
        .bind(&record.address)
        .execute(&self.pool)
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, action = record.action, "could not write the audit log");
        }
    }

    /// The newest audit entries (`before`: entries with a smaller id), optionally of some
    /// projects only.
    pub async fn audit_entries(
        &self,
        limit: i64,
        before: Option<i64>,
        projects: Option<&[i64]>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            Option<i64>,
            String,
            String,
            Option<String>,
        );
        let rows: Vec<Row> = db(sqlx::query_as(
            "SELECT id, at, actor, action, target, project_id, outcome, detail, address FROM audit_log \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 1000) * if projects.is_some() { 10 } else { 1 })
        .fetch_all(&self.pool)
        .await)?;
        let projects_by_id: std::collections::HashMap<i64, String> = self
            .projects()
            .await?
            .into_iter()
            .map(|p| (p.id, p.slug))
            .collect();
        Ok(rows
            .into_iter()
            .filter(|r| projects.is_none_or(|ps| r.5.is_some_and(|p| ps.contains(&p))))
            .take(limit.clamp(1, 1000) as usize)
            .map(
                |(id, at, actor, action, target, project_id, outcome, detail, address)| {
                    AuditEntry {
                        id,
                        at,
                        actor,
                        action,
                        target,
                        project: project_id.and_then(|p| projects_by_id.get(&p).cloned()),
                        outcome,
                        detail,
                        address,
                    }
                },
            )
            .collect())
    }
}

/// The project of uploads and evaluations that name none.
pub const DEFAULT_PROJECT: &str = "default";
/// The project of the demo experiments, readable by everyone signed in.
pub const DEMO_PROJECT: &str = "demo";

enum Key<'a> {
    Int(i64),
    Text(&'a str),
}
