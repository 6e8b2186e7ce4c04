//! Settings: a project's review settings (its labels, whether viewers comment) and an
//! experiment's settings page, rename, move to another project and delete.

use caplens_app::review::ExperimentSettings;

use super::open_experiment;
use crate::auth::Action;
use crate::ops::{Access, OpError};
use crate::storage::access::Owned;

/// A project's labels and whether its viewers may comment (the project page).
pub async fn project_review(
    access: &Access<'_>,
    project_slug: &str,
) -> Result<caplens_app::review::ProjectReviewSettings, OpError> {
    let project = access
        .require(
            Action::Read,
            &Owned::Project(project_slug.to_owned()),
            "project",
        )
        .await?;
    let row = access
        .store
        .project_by_id(project)
        .await?
        .ok_or_else(|| OpError::not_found("no project"))?;
    Ok(caplens_app::review::ProjectReviewSettings {
        labels: access.store.label_defs(project).await?,
        viewers_comment: row.viewers_comment,
        can_administer: access.may(Action::Administer, project),
        engine_admins: row.engine_admins,
        can_set_engine_admins: (access.principal.site_admin && !access.principal.is_token())
            || access.principal.is_local(),
    })
}

/// Lets a project's viewers comment and label, or not (project admins).
pub async fn set_viewers_comment(
    access: &Access<'_>,
    project_slug: &str,
    allowed: bool,
) -> Result<(), OpError> {
    let project = access
        .require(
            Action::Administer,
            &Owned::Project(project_slug.to_owned()),
            "project",
        )
        .await?;
    access.store.set_viewers_comment(project, allowed).await?;
    access
        .audit(
            "viewers_comment",
            format!("project {project_slug}"),
            Some(project),
            if allowed { "on" } else { "off" },
        )
        .await;
    Ok(())
}

/// The settings page's data.
pub async fn settings(access: &Access<'_>, slug: &str) -> Result<ExperimentSettings, OpError> {
    let e = open_experiment(access, slug, Action::Read).await?;
    let detail = access
        .store
        .experiment(slug)
        .await?
        .ok_or_else(|| OpError::not_found("no experiment"))?;
    let can_edit = access.may(Action::Edit, e.project_id);
    let projects = access
        .store
        .projects()
        .await?
        .into_iter()
        .filter(|p| access.may(Action::Administer, p.id))
        .map(|p| p.slug)
        .collect();
    Ok(ExperimentSettings {
        slug: slug.to_owned(),
        name: detail.summary.name,
        description: detail.summary.description,
        project: detail.summary.project,
        share_links: if can_edit {
            access.store.share_links(e.id).await?
        } else {
            Vec::new()
        },
        projects,
        can_edit,
        can_administer: access.may(Action::Administer, e.project_id),
    })
}

/// Renames and describes an experiment (editors).
pub async fn update_experiment(
    access: &Access<'_>,
    slug: &str,
    name: &str,
    description: &str,
) -> Result<(), OpError> {
    let e = open_experiment(access, slug, Action::Edit).await?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(OpError::invalid("name: 1 to 200 characters"));
    }
    if description.chars().count() > 5_000 {
        return Err(OpError::invalid("description: at most 5000 characters"));
    }
    access
        .store
        .update_experiment(e.id, name, description.trim())
        .await?;
    access
        .audit(
            "experiment_renamed",
            format!("experiment {slug}"),
            Some(e.project_id),
            name,
        )
        .await;
    Ok(())
}

/// Moves an experiment to another project (admin of both).
pub async fn move_experiment(
    access: &Access<'_>,
    slug: &str,
    project_slug: &str,
) -> Result<(), OpError> {
    let e = open_experiment(access, slug, Action::Administer).await?;
    let target = access
        .require(
            Action::Administer,
            &Owned::Project(project_slug.to_owned()),
            "project",
        )
        .await?;
    access.store.move_experiment(e.id, target).await?;
    access
        .audit(
            "experiment_moved",
            format!("experiment {slug}"),
            Some(e.project_id),
            format!("to project {project_slug}"),
        )
        .await;
    Ok(())
}

/// Deletes an experiment (admins; `confirm` must repeat the slug). Its review data goes with
/// it, and its runs that no other experiment holds (their trace packs too).
pub async fn delete_experiment(
    access: &Access<'_>,
    slug: &str,
    confirm: &str,
) -> Result<(), OpError> {
    let e = open_experiment(access, slug, Action::Administer).await?;
    if confirm.trim() != slug {
        return Err(OpError::invalid(format!(
            "confirm: type the experiment's slug ({slug}) to delete it"
        )));
    }
    let keys = access.store.delete_experiment(e.id).await?;
    for key in keys {
        if let Err(err) = access.store.blobs.delete(&key).await {
            tracing::warn!(%key, error = %err, "could not delete a trace pack of a deleted experiment");
        }
    }
    access
        .audit(
            "experiment_deleted",
            format!("experiment {slug}"),
            Some(e.project_id),
            "",
        )
        .await;
    Ok(())
}
