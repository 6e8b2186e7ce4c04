//! Review labels: a problem's review panel in an experiment, setting its labels (by id or by
//! key), and adding a label to a project's list.

use caplens_app::review::ProblemReview;

use super::{actor, open_experiment, problem_in};
use crate::auth::Action;
use crate::ops::{Access, OpError};
use crate::storage::access::Owned;

/// Longest label name (characters).
const MAX_LABEL_CHARS: usize = 60;

/// The review panel of a problem in an experiment.
pub async fn problem_review(
    access: &Access<'_>,
    slug: &str,
    problem_id: i64,
) -> Result<ProblemReview, OpError> {
    let e = open_experiment(access, slug, Action::Read).await?;
    problem_in(access, e, problem_id).await?;
    let labels = access
        .store
        .problem_labels(e)
        .await?
        .remove(&problem_id)
        .unwrap_or_default();
    Ok(ProblemReview {
        experiment: slug.to_owned(),
        labels,
        available_labels: access.store.label_defs(e.project_id).await?,
        overrides: access.store.overrides(e.id, Some(problem_id)).await?,
        assignee: access.store.assignments(e.id).await?.remove(&problem_id),
        can_review: access.may(Action::Edit, e.project_id),
        can_comment: access.may(Action::Review, e.project_id),
        judgements: super::judgements(access, slug, Some(problem_id)).await?,
        blind: access.store.blind_review(e.project_id).await?
            && !access.may(Action::Edit, e.project_id),
        me: super::actor(access),
    })
}

/// Sets a problem's labels (names from the project's label list).
pub async fn set_labels(
    access: &Access<'_>,
    slug: &str,
    problem_id: i64,
    labels: &[String],
) -> Result<ProblemReview, OpError> {
    let e = open_experiment(access, slug, Action::Review).await?;
    problem_in(access, e, problem_id).await?;
    let defs = access.store.label_defs(e.project_id).await?;
    let mut wanted: Vec<String> = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let l = l.trim();
        if !defs.iter().any(|d| d.name == l) {
            let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            return Err(OpError::invalid(format!(
                "labels[{i}]: {l:?} is not a label of this project (one of: {}); a project admin adds labels",
                names.join(", ")
            )));
        }
        if !wanted.iter().any(|w| w == l) {
            wanted.push(l.to_owned());
        }
    }
    access
        .store
        .set_problem_labels(e.id, problem_id, &wanted, &actor(access))
        .await?;
    access
        .audit(
            "labels_set",
            format!("problem {problem_id} in {slug}"),
            Some(e.project_id),
            wanted.join(", "),
        )
        .await;
    problem_review(access, slug, problem_id).await
}

/// Sets the labels of the problem `key` (its id, or `dataset/key`, or a bare key) of an
/// experiment.
pub async fn set_labels_by_key(
    access: &Access<'_>,
    slug: &str,
    key: &str,
    labels: &[String],
) -> Result<ProblemReview, OpError> {
    let e = open_experiment(access, slug, Action::Review).await?;
    let problem = match key.parse::<i64>() {
        Ok(id) => Some(id),
        Err(_) => access.store.experiment_problem_by_key(e.id, key).await?,
    }
    .ok_or_else(|| OpError::not_found(format!("no problem {key:?} in experiment {slug:?}")))?;
    set_labels(access, slug, problem, labels).await
}

/// Adds a label to a project's list (project admins).
pub async fn add_label(
    access: &Access<'_>,
    project_slug: &str,
    name: &str,
    colour: &str,
) -> Result<(), OpError> {
    let project = access
        .require(
            Action::Administer,
            &Owned::Project(project_slug.to_owned()),
            "project",
        )
        .await?;
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_LABEL_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(OpError::invalid(format!(
            "name: 1 to {MAX_LABEL_CHARS} printable characters"
        )));
    }
    let colour = colour.trim();
    let valid = colour.len() == 7
        && colour.starts_with('#')
        && colour[1..].chars().all(|c| c.is_ascii_hexdigit());
    if !valid {
        return Err(OpError::invalid(format!(
            "colour: {colour:?} is not #rrggbb"
        )));
    }
    access.store.add_label_def(project, name, colour).await?;
    access
        .audit(
            "label_defined",
            format!("project {project_slug}"),
            Some(project),
            name,
        )
        .await;
    Ok(())
}
