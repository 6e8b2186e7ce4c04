//! Users, projects and members, managed by a principal (the admin pages and `GET
//! /api/v1/audit`): each function authorises through the policy, acts, and writes the audit log.

use caplens_app::model::{
    AuditEntry, MemberRow, ProjectAccess, ProjectRow, Role, SessionView, UserRow,
};

use super::{Caller, OpError};
use crate::auth::{password, Action, Auth};
use crate::error::StoreError;
use crate::storage::access::Owned;
use crate::storage::Store;

fn invalid(e: StoreError) -> OpError {
    match e {
        StoreError::Invalid(m) => OpError::invalid(m),
        e => e.into(),
    }
}

/// What the pages need to know about the caller.
pub async fn session_view(
    store: &Store,
    auth: &Auth,
    caller: &Caller,
) -> Result<SessionView, OpError> {
    let p = &caller.principal;
    let access = caller.access(store);
    let projects = store.projects().await?;
    let visible: Vec<ProjectAccess> = projects
        .into_iter()
        .filter(|pr| p.is_local() || access.can_read(pr.id))
        .map(|pr| ProjectAccess {
            role: p
                .role_in(pr.id)
                .filter(|_| !p.is_local())
                .or(p.is_local().then_some(Role::Admin)),
            slug: pr.slug,
            name: pr.name,
            open_to_all: pr.open_to_all,
        })
        .collect();
    Ok(SessionView {
        local_mode: p.is_local(),
        user: (!p.is_local() && p.user_id.is_some()).then(|| p.name.clone()),
        site_admin: p.site_admin && !p.is_local(),
        projects: if p.user_id.is_some() || p.is_local() {
            visible
        } else {
            Vec::new()
        },
        single_sign_on: auth.oidc().is_some(),
        passwords: auth.settings().mode != crate::auth::AuthMode::Proxy,
        shared_experiment: match p.shared_experiment() {
            Some(id) => store.experiment_slug(id).await?,
            None => None,
        },
    })
}

pub async fn users(store: &Store, caller: &Caller) -> Result<Vec<UserRow>, OpError> {
    caller.access(store).require_site("users").await?;
    Ok(store.users().await?)
}

/// Creates an account with a password (site admins).
pub async fn create_user(
    store: &Store,
    caller: &Caller,
    name: &str,
    password_text: &str,
    admin: bool,
) -> Result<UserRow, OpError> {
    let access = caller.access(store);
    access.require_site("users").await?;
    password::check_strength(password_text).map_err(OpError::invalid)?;
    let pw = password_text.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| OpError::invalid(e.to_string()))?;
    let user = store
        .create_user(name.trim(), None, Some(&hash), admin)
        .await
        .map_err(invalid)?;
    access
        .audit(
            "user_created",
            format!("user {}", user.name),
            None,
            if admin { "site admin" } else { "" },
        )
        .await;
    Ok(user)
}

pub async fn set_user_disabled(
    store: &Store,
    caller: &Caller,
    id: i64,
    disabled: bool,
) -> Result<(), OpError> {
    let access = caller.access(store);
    access.require_site("users").await?;
    let user = store
        .user(id)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no user {id}")))?;
    if disabled && Some(id) == caller.principal.user_id {
        return Err(OpError::invalid("you cannot disable your own account"));
    }
    store.set_user_disabled(id, disabled).await?;
    access
        .audit(
            if disabled {
                "user_disabled"
            } else {
                "user_enabled"
            },
            format!("user {}", user.row.name),
            None,
            "",
        )
        .await;
    Ok(())
}

/// The projects the caller may see.
pub async fn projects(store: &Store, caller: &Caller) -> Result<Vec<ProjectRow>, OpError> {
    let access = caller.access(store);
    access.require_signed_in(Action::Read, "projects").await?;
    Ok(store
        .projects()
        .await?
        .into_iter()
        .filter(|pr| access.can_read(pr.id))
        .collect())
}

pub async fn create_project(
    store: &Store,
    caller: &Caller,
    slug: &str,
    name: &str,
    open_to_all: bool,
) -> Result<ProjectRow, OpError> {
    let access = caller.access(store);
    access.require_site("projects").await?;
    let project = store
        .create_project(slug.trim(), name, open_to_all)
        .await
        .map_err(invalid)?;
    access
        .audit(
            "project_created",
            format!("project {}", project.slug),
            Some(project.id),
            if open_to_all {
                "open to all signed-in users"
            } else {
                ""
            },
        )
        .await;
    Ok(project)
}

/// Lets a project's admins add and change its engines, or not (site admins only: it decides
/// who may make the server open connections).
pub async fn set_engine_admins(
    store: &Store,
    caller: &Caller,
    project: &str,
    allowed: bool,
) -> Result<(), OpError> {
    let access = caller.access(store);
    access
        .require_site("who manages a project's engines")
        .await?;
    let p = store
        .project_by_slug(project)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no project {project:?}")))?;
    store.set_engine_admins(p.id, allowed).await?;
    access
        .audit(
            "engine_admins",
            format!("project {project}"),
            Some(p.id),
            if allowed { "on" } else { "off" },
        )
        .await;
    Ok(())
}

/// Members of a project: anyone who may read the project sees them.
pub async fn members(
    store: &Store,
    caller: &Caller,
    project: &str,
) -> Result<Vec<MemberRow>, OpError> {
    let id = caller
        .access(store)
        .require(
            Action::Read,
            &Owned::Project(project.to_owned()),
            &format!("project {project:?}"),
        )
        .await?;
    Ok(store.members(id).await?)
}

/// Adds a member or changes a role (project admins, site admins). `role` `None` removes.
pub async fn set_member(
    store: &Store,
    caller: &Caller,
    project: &str,
    user: &str,
    role: Option<Role>,
) -> Result<(), OpError> {
    let access = caller.access(store);
    let project_id = access
        .require(
            Action::Administer,
            &Owned::Project(project.to_owned()),
            &format!("project {project:?}"),
        )
        .await?;
    let target = store
        .user_by_name(user.trim())
        .await?
        .ok_or_else(|| OpError::not_found(format!("no user named {user:?}")))?;
    // A project keeps at least one admin, unless a site admin is acting.
    if !caller.principal.site_admin && role != Some(Role::Admin) {
        let admins = store
            .members(project_id)
            .await?
            .into_iter()
            .filter(|m| m.role == Role::Admin && m.user_id != target.row.id)
            .count();
        if admins == 0 {
            return Err(OpError::invalid(
                "a project needs at least one admin: make someone else admin first",
            ));
        }
    }
    match role {
        Some(role) => store.set_member(project_id, target.row.id, role).await?,
        None => {
            store.remove_member(project_id, target.row.id).await?;
        }
    }
    // Their sessions see the new role at their next request (roles are read per request).
    access
        .audit(
            "role_changed",
            format!("user {} in project {project}", target.row.name),
            Some(project_id),
            role.map_or("removed".to_owned(), |r| format!("now {}", r.as_str())),
        )
        .await;
    Ok(())
}

/// The audit log: site admins see everything, project admins their projects' entries.
pub async fn audit(
    store: &Store,
    caller: &Caller,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<AuditEntry>, OpError> {
    let p = &caller.principal;
    let access = caller.access(store);
    if p.is_local() || (p.site_admin && !p.is_token()) {
        return Ok(store.audit_entries(limit, before, None).await?);
    }
    let administered: Vec<i64> = store
        .projects()
        .await?
        .into_iter()
        .filter(|pr| access.may(Action::Administer, pr.id))
        .map(|pr| pr.id)
        .collect();
    if administered.is_empty() {
        access.require_site("the audit log").await?;
    }
    Ok(store
        .audit_entries(limit, before, Some(&administered))
        .await?)
}
