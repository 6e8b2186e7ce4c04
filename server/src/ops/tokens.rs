//! Creating and revoking API tokens on behalf of a principal (the Tokens page and the REST
//! API): who may make a token for which project and scope, and who may revoke it.

use super::{Caller, OpError};
use crate::auth::{Action, PrincipalKind, TokenScope};
use crate::error::StoreError;
use crate::storage::access::Owned;
use crate::storage::tokens::{NewToken, TokenSpec};
use crate::storage::{rfc3339_from_unix, Store};

/// Longest lifetime a token may be given, in days.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// Makes a token for the caller: in `project` (default: `default`), with `scope` (`read` or
/// `write`, default `write`), expiring after `expires_in_days` (default: never). The caller must
/// be able to read the project (a read token) or edit it (a write token): a token never grants
/// more than its user has. In local mode the token has no user (it stops working once accounts
/// exist).
pub async fn create_token(
    store: &Store,
    caller: &Caller,
    name: &str,
    project: Option<&str>,
    scope: Option<&str>,
    expires_in_days: Option<u32>,
) -> Result<NewToken, OpError> {
    let access = caller.access(store);
    let scope_name = scope.unwrap_or("write");
    let scope = TokenScope::parse(scope_name)
        .ok_or_else(|| OpError::invalid(format!("scope: {scope_name:?} is not read or write")))?;
    let slug = project.unwrap_or(crate::storage::access::DEFAULT_PROJECT);
    let project_id = access
        .require(
            Action::ManageOwnTokens,
            &Owned::Project(slug.to_owned()),
            &format!("project {slug:?}"),
        )
        .await?;
    if scope == TokenScope::Write {
        access
            .require_project(
                Action::Edit,
                project_id,
                &format!("write tokens for project {slug}"),
            )
            .await?;
    }
    if expires_in_days.is_some_and(|d| d == 0 || d > MAX_TOKEN_DAYS) {
        return Err(OpError::invalid(format!(
            "expires_in_days: between 1 and {MAX_TOKEN_DAYS}"
        )));
    }
    let expires_at =
        expires_in_days.map(|d| rfc3339_from_unix(crate::auth::now_unix() + u64::from(d) * 86_400));
    let user_id = match caller.principal.kind {
        PrincipalKind::Local => None,
        _ => caller.principal.user_id,
    };
    let token = store
        .create_token_for(&TokenSpec {
            name: name.to_owned(),
            user_id,
            project_id,
            scope,
            expires_at,
        })
        .await
        .map_err(|e| match e {
            StoreError::Invalid(m) => OpError::invalid(m),
            e => e.into(),
        })?;
    access
        .audit(
            "token_created",
            format!("token {} ({})", token.token.name, token.token.prefix),
            Some(project_id),
            format!("{} scope", scope.as_str()),
        )
        .await;
    Ok(token)
}

/// Revokes a token: its owner, an admin of its project, or a site admin may. `Ok(false)` when it
/// was already revoked.
pub async fn revoke_token(store: &Store, caller: &Caller, id: i64) -> Result<bool, OpError> {
    let access = caller.access(store);
    access
        .require_signed_in(Action::ManageOwnTokens, "tokens")
        .await?;
    let Some((owner, project)) = store.token_owner(id).await? else {
        return Err(OpError::not_found(format!("no token {id}")));
    };
    let own = owner.is_some() && owner == caller.principal.user_id;
    if !own {
        // Others' tokens: project admins of the token's project (and site admins, local mode).
        let hidden = access
            .require_project(Action::Administer, project, &format!("token {id}"))
            .await;
        if let Err(e) = hidden {
            // Another member's token is not this principal's business: as if it did not exist.
            return Err(match e {
                OpError::Forbidden(_) => OpError::not_found(format!("no token {id}")),
                e => e,
            });
        }
    }
    let done = store.revoke_token(id).await?;
    if done {
        access
            .audit("token_revoked", format!("token {id}"), Some(project), "")
            .await;
    }
    Ok(done)
}

/// The tokens the caller may see: local mode and site admins every token, others their own.
pub async fn tokens(
    store: &Store,
    caller: &Caller,
) -> Result<Vec<caplens_app::model::ApiTokenRow>, OpError> {
    let access = caller.access(store);
    access
        .require_signed_in(Action::ManageOwnTokens, "tokens")
        .await?;
    let p = &caller.principal;
    let only = if p.is_local() || (p.site_admin && !p.is_token()) {
        None
    } else {
        Some(p.user_id.unwrap_or(-1))
    };
    Ok(store.tokens(only).await?)
}
