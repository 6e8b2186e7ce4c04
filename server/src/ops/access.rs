//! Who is calling, and the one place the authorisation policy is asked.
//!
//! Every operation builds an [`Access`] from its [`Caller`] and asks it before it touches a
//! resource: `Access` finds the resource's project (`Store::project_of`), narrows a share link
//! to its one experiment, and asks the pure policy (`auth::policy::authorize`). Refused changes
//! are written to the audit log. Architecture invariant: nothing outside `ops/` calls the
//! policy (`server/tests/architecture.rs`).

use std::collections::HashSet;

use super::OpError;
use crate::auth::policy::{authorize, Action, Denial, Principal, PrincipalKind, Target};
use crate::storage::access::{AuditRecord, Owned};
use crate::storage::Store;

/// Who asks, as the web (from the request) or the CLI (the operator) found them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The client's address, for the audit log.
    pub peer: Option<String>,
}

impl Caller {
    pub fn new(principal: Principal, peer: Option<String>) -> Caller {
        Caller { principal, peer }
    }

    /// The command line: it holds the database, so it acts as the server's operator (every
    /// right), audited as `cli`.
    pub fn operator() -> Caller {
        let mut principal = Principal::local();
        principal.name = "cli".into();
        Caller {
            principal,
            peer: Some("command line".into()),
        }
    }

    /// This caller's view of the store: what every operation takes.
    pub fn access<'a>(&'a self, store: &'a Store) -> Access<'a> {
        Access {
            store,
            principal: &self.principal,
            peer: self.peer.clone(),
        }
    }
}

/// A principal's view of the store: what every operation takes. Its decisions (`require*`,
/// `may`, `keep`) are visible inside `ops/` only, so no other layer can ask the policy.
pub struct Access<'a> {
    pub(in crate::ops) store: &'a Store,
    pub(in crate::ops) principal: &'a Principal,
    pub(in crate::ops) peer: Option<String>,
}

/// A refusal of the policy as the operations answer it: 401-like, hidden (as if it did not
/// exist) or forbidden with the reason.
pub(in crate::ops) fn denial_error(denial: Denial, what: &str) -> OpError {
    match denial {
        Denial::NotSignedIn => OpError::Unauthorized("sign in first (or send an API token)".into()),
        Denial::Hidden => OpError::NotFound(format!("no {what}")),
        Denial::Forbidden(why) => OpError::Forbidden(why),
    }
}

impl<'a> Access<'a> {
    /// May the principal do `action` on `resource`? Its project id when yes; not found when the
    /// resource does not exist or is hidden from the principal.
    pub(in crate::ops) async fn require(
        &self,
        action: Action,
        resource: &Owned,
        what: &str,
    ) -> Result<i64, OpError> {
        let project = self
            .store
            .project_of(resource)
            .await?
            .ok_or_else(|| OpError::NotFound(format!("no {what}")))?;
        self.require_in(action, resource, project, what).await?;
        Ok(project)
    }

    /// [`Self::require`] of a resource whose project is known.
    pub(in crate::ops) async fn require_in(
        &self,
        action: Action,
        resource: &Owned,
        project: i64,
        what: &str,
    ) -> Result<(), OpError> {
        // A share link reads its one experiment and what is in it, nothing else of the project.
        if let Some(experiment) = self.principal.shared_experiment() {
            if !self.store.in_experiment(resource, experiment).await? {
                return Err(OpError::NotFound(format!("no {what}")));
            }
        }
        self.require_project(action, project, what).await
    }

    /// May the principal do `action` in project `project`? (0: a resource every project may
    /// use, such as the built-in dataset: reading it needs only a signed-in principal, changing
    /// it a site admin.)
    pub(in crate::ops) async fn require_project(
        &self,
        action: Action,
        project: i64,
        what: &str,
    ) -> Result<(), OpError> {
        let target = if project == 0 && action == Action::Read {
            Target::SignedIn
        } else if project == 0 {
            Target::Site
        } else {
            Target::Project(project)
        };
        self.decide(action, target, what, Some(project).filter(|p| *p > 0))
            .await
    }

    /// Site administration (users, projects, the whole audit log, shared engines).
    pub(in crate::ops) async fn require_site(&self, what: &str) -> Result<(), OpError> {
        self.decide(Action::Administer, Target::Site, what, None)
            .await
    }

    /// Anything any signed-in principal may do (read lists, manage own tokens).
    pub(in crate::ops) async fn require_signed_in(
        &self,
        action: Action,
        what: &str,
    ) -> Result<(), OpError> {
        self.decide(action, Target::SignedIn, what, None).await
    }

    /// Whether the principal may do `action` in `project`, without auditing a refusal (what a
    /// page shows or hides).
    pub(in crate::ops) fn may(&self, action: Action, project: i64) -> bool {
        authorize(self.principal, action, Target::Project(project)).is_ok()
    }

    /// Whether the principal may read the project.
    pub(in crate::ops) fn can_read(&self, project: i64) -> bool {
        self.principal.shared_experiment().is_none() && self.may(Action::Read, project)
    }

    async fn decide(
        &self,
        action: Action,
        target: Target,
        what: &str,
        project: Option<i64>,
    ) -> Result<(), OpError> {
        match authorize(self.principal, action, target) {
            Ok(()) => Ok(()),
            Err(denial) => {
                // Reads of hidden things are not worth an audit line each (a 404 says nothing);
                // refused changes and forbidden reads are.
                if !(action == Action::Read && denial == Denial::Hidden) {
                    self.audit_refusal(action, what, project, &denial).await;
                }
                Err(denial_error(denial, what))
            }
        }
    }

    async fn audit_refusal(
        &self,
        action: Action,
        what: &str,
        project: Option<i64>,
        denial: &Denial,
    ) {
        let detail = match denial {
            Denial::NotSignedIn => "not signed in".to_owned(),
            Denial::Hidden => "not a member of the project".to_owned(),
            Denial::Forbidden(why) => why.clone(),
        };
        self.store
            .audit(AuditRecord {
                user_id: self.principal.user_id,
                actor: self.principal.name.clone(),
                action: "refused",
                target: format!("{action:?} {what}").to_lowercase(),
                project_id: project,
                refused: true,
                detail,
                address: self.peer.clone(),
            })
            .await;
    }

    /// Writes an audit line for an action the principal did.
    pub(in crate::ops) async fn audit(
        &self,
        action: &'static str,
        target: impl Into<String>,
        project: Option<i64>,
        detail: impl Into<String>,
    ) {
        self.store
            .audit(AuditRecord {
                user_id: self.principal.user_id,
                actor: self.principal.name.clone(),
                action,
                target: target.into(),
                project_id: project,
                refused: false,
                detail: detail.into(),
                address: self.peer.clone(),
            })
            .await;
    }

    /// The projects the principal may read (`None`: all).
    pub(in crate::ops) fn readable(&self) -> Option<HashSet<i64>> {
        self.principal.readable_projects()
    }

    /// Keeps the items whose project the principal may read (project 0: shared by every
    /// project, readable by everyone signed in).
    pub(in crate::ops) fn keep<T, K: Eq + std::hash::Hash>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> K,
        projects: &[(K, i64)],
    ) -> Vec<T> {
        let Some(readable) = self.readable() else {
            return items;
        };
        let by_key: std::collections::HashMap<&K, i64> =
            projects.iter().map(|(k, p)| (k, *p)).collect();
        items
            .into_iter()
            .filter(|item| {
                by_key
                    .get(&key(item))
                    .is_some_and(|p| *p == 0 || readable.contains(p))
            })
            .collect()
    }

    /// The token's project, if the principal is an API token.
    pub(in crate::ops) fn token_project(&self) -> Option<i64> {
        match &self.principal.kind {
            PrincipalKind::Token { project_id, .. } => Some(*project_id),
            _ => None,
        }
    }

    /// The project an upload, evaluation, dataset or engine goes to: the one named (by slug),
    /// else an API token's own project, else `default`; the principal must be an editor there.
    /// A project the principal may not see is "not found", whatever its name.
    pub(in crate::ops) async fn project_for_write(
        &self,
        named: Option<&str>,
        what: &str,
    ) -> Result<(String, i64), OpError> {
        self.project_for(Action::Edit, named, what).await
    }

    /// As [`project_for_write`](Self::project_for_write), for another action.
    pub(in crate::ops) async fn project_for(
        &self,
        action: Action,
        named: Option<&str>,
        what: &str,
    ) -> Result<(String, i64), OpError> {
        let _ = what;
        let project = match (named, self.token_project()) {
            (Some(slug), _) => self.store.project_by_slug(slug).await?,
            (None, Some(id)) => self.store.project_by_id(id).await?,
            (None, None) => {
                self.store
                    .project_by_slug(crate::storage::access::DEFAULT_PROJECT)
                    .await?
            }
        };
        let shown = named.unwrap_or(crate::storage::access::DEFAULT_PROJECT);
        let Some(project) = project else {
            return Err(OpError::NotFound(format!("no project {shown:?}")));
        };
        self.require_project(action, project.id, &format!("project {:?}", project.slug))
            .await
            .map_err(|e| match e {
                // Hidden projects read as missing, with the same words.
                OpError::NotFound(_) => OpError::NotFound(format!("no project {shown:?}")),
                other => other,
            })?;
        Ok((project.slug, project.id))
    }
}
