//! Share links: making a read-only link to a view of an experiment (only the secret's hash is
//! kept) and revoking it.

use caplens_app::review::NewShareLink;

use super::{actor, open_experiment};
use crate::auth::{random_secret, sha256_hex, Action};
use crate::ops::{Access, OpError};
use crate::storage::access::Owned;

/// Longest share-link lifetime: a year.
const MAX_SHARE_SECONDS: u64 = 366 * 86_400;

/// Makes a read-only link to `path` (a view of this experiment). Only the secret's hash is kept.
pub async fn create_share_link(
    access: &Access<'_>,
    slug: &str,
    path: &str,
    expires_in: Option<u64>,
    base_url: &str,
) -> Result<NewShareLink, OpError> {
    let e = open_experiment(access, slug, Action::Edit).await?;
    let own = format!("/experiments/{slug}");
    let path = path.trim();
    let path_only = path.split(['?', '#']).next().unwrap_or("");
    let inside = path_only == own || path_only.starts_with(&format!("{own}/"));
    if !inside || path.contains("//") || path.contains('\\') || path.chars().any(char::is_control) {
        return Err(OpError::invalid(format!(
            "path: {path:?} is not a view of this experiment (it starts with {own})"
        )));
    }
    if path_only.ends_with("/settings") {
        return Err(OpError::invalid("path: the settings page cannot be shared"));
    }
    if let Some(s) = expires_in {
        if s == 0 || s > MAX_SHARE_SECONDS {
            return Err(OpError::invalid(format!(
                "expires_in: between 1 and {MAX_SHARE_SECONDS} seconds"
            )));
        }
    }
    let expires_at =
        expires_in.map(|s| crate::storage::rfc3339_from_unix(crate::auth::now_unix() + s));
    let secret = random_secret("cls_");
    let id = access
        .store
        .create_share_link(
            e.id,
            &sha256_hex(&secret),
            path,
            &actor(access),
            expires_at.as_deref(),
        )
        .await?;
    access
        .audit(
            "share_link_created",
            format!("share link {id} of {slug}"),
            Some(e.project_id),
            path,
        )
        .await;
    Ok(NewShareLink {
        id,
        url: format!("{}/s/{secret}", base_url.trim_end_matches('/')),
        expires_at,
    })
}

pub async fn revoke_share_link(access: &Access<'_>, id: i64) -> Result<(), OpError> {
    let project = access
        .require(Action::Edit, &Owned::ShareLink(id), "share link")
        .await?;
    access.store.revoke_share_link(id).await?;
    access
        .audit(
            "share_link_revoked",
            format!("share link {id}"),
            Some(project),
            "",
        )
        .await;
    Ok(())
}
