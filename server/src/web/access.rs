//! Authorisation at the HTTP edge: every REST handler, export and page data method asks
//! [`Access`] before touching a resource. `Access` finds the resource's project
//! (`Store::project_of`) and asks the one policy (`auth::policy::authorize`); lists are filtered
//! to the projects the principal may read. Refusals are written to the audit log.

use std::collections::HashSet;

use axum::http::{header, HeaderMap, StatusCode};

use crate::auth::{authorize, denial_error, Action, Denial, Principal, Target};
use crate::error::ApiError;
use crate::storage::access::{AuditRecord, Owned};
use crate::storage::Store;

/// A principal's view of the store.
pub struct Access<'a> {
    pub store: &'a Store,
    pub principal: &'a Principal,
    pub peer: Option<String>,
}

impl<'a> Access<'a> {
    pub fn new(store: &'a Store, principal: &'a Principal, peer: Option<String>) -> Access<'a> {
        Access {
            store,
            principal,
            peer,
        }
    }

    /// May the principal do `action` on `resource`? Its project id when yes; 404 when the
    /// resource does not exist or is hidden from the principal, 401/403 otherwise.
    pub async fn require(
        &self,
        action: Action,
        resource: &Owned,
        what: &str,
    ) -> Result<i64, ApiError> {
        let project = self
            .store
            .project_of(resource)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no {what}")))?;
        // A share link reads its one experiment and what is in it, nothing else of the project.
        if let Some(experiment) = self.principal.shared_experiment() {
            if !self.store.in_experiment(resource, experiment).await? {
                return Err(ApiError::not_found(format!("no {what}")));
            }
        }
        self.require_project(action, project, what).await?;
        Ok(project)
    }

    /// May the principal do `action` in project `project`? (0: a resource every project may
    /// use, such as a shared engine: reading it needs only a signed-in principal.)
    pub async fn require_project(
        &self,
        action: Action,
        project: i64,
        what: &str,
    ) -> Result<(), ApiError> {
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

    /// Site administration (users, projects, the whole audit log).
    pub async fn require_site(&self, what: &str) -> Result<(), ApiError> {
        self.decide(Action::Administer, Target::Site, what, None)
            .await
    }

    /// Anything any signed-in principal may do (read lists, manage own tokens).
    pub async fn require_signed_in(&self, action: Action, what: &str) -> Result<(), ApiError> {
        self.decide(action, Target::SignedIn, what, None).await
    }

    async fn decide(
        &self,
        action: Action,
        target: Target,
        what: &str,
        project: Option<i64>,
    ) -> Result<(), ApiError> {
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
    pub async fn audit(
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
    pub fn readable(&self) -> Option<HashSet<i64>> {
        self.principal.readable_projects()
    }

    /// Keeps the items whose project the principal may read.
    pub fn keep<T, K: Eq + std::hash::Hash>(
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
        // Project 0: shared by every project (datasets and engines without a project).
        items
            .into_iter()
            .filter(|item| {
                by_key
                    .get(&key(item))
                    .is_some_and(|p| *p == 0 || readable.contains(p))
            })
            .collect()
    }

    /// The project an upload or evaluation goes to: the one named (by slug), else an API
    /// token's own project, else `default`; the principal must be an editor there.
    pub async fn project_for_write(
        &self,
        named: Option<&str>,
        what: &str,
    ) -> Result<(String, i64), ApiError> {
        let token_project = match &self.principal.kind {
            crate::auth::PrincipalKind::Token { project_id, .. } => Some(*project_id),
            _ => None,
        };
        let project = match (named, token_project) {
            (Some(slug), _) => self
                .store
                .project_by_slug(slug)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no project {slug:?}")))?,
            (None, Some(id)) => self
                .store
                .project_by_id(id)
                .await?
                .ok_or_else(|| ApiError::not_found("the token's project no longer exists"))?,
            (None, None) => self
                .store
                .project_by_slug(crate::storage::access::DEFAULT_PROJECT)
                .await?
                .ok_or_else(|| ApiError::not_found("no default project"))?,
        };
        self.require_project(
            Action::Edit,
            project.id,
            &format!("{what} in project {}", project.slug),
        )
        .await?;
        Ok((project.slug, project.id))
    }
}

/// REST writes need credentials a browser never sends by itself: an API token, or (team mode)
/// a session, whose cross-site use the middleware already refused. In local mode a token is
/// required, as before accounts existed.
pub fn require_write_credentials(
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if headers.contains_key(header::AUTHORIZATION) || !principal.is_local() {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: "this endpoint needs an API token: send `Authorization: Bearer <token>`; create one with `caplens token create NAME` or on the Tokens page".into(),
    })
}

/// The principal and peer address of a request, as the `auth::authenticate` middleware found
/// them (anonymous when the middleware did not run).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub peer: Option<String>,
}

impl Caller {
    pub fn access<'a>(&'a self, store: &'a Store) -> Access<'a> {
        Access::new(store, &self.principal, self.peer.clone())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller {
            principal: parts
                .extensions
                .get::<Principal>()
                .cloned()
                .unwrap_or_else(Principal::anonymous),
            peer: parts
                .extensions
                .get::<crate::auth::RequestPeer>()
                .and_then(|p| p.0)
                .map(|p| p.to_string()),
        })
    }
}
