//! Reading the catalog: experiments, models, datasets and runs as lists (filtered to the
//! projects the caller may read), one experiment, and the read API's report tables (pass@k,
//! unsolvable sets, summaries). The pages and the REST API call these; both see the same rows.

use caplens_analysis::tables::ModelTables;
use caplens_analysis::verdicts::VerdictSource;
use caplens_app::model::{
    DatasetProblemsView, DatasetRow, ExperimentDetail, ExperimentSummary, ModelRow, RunRow,
    MAX_DATASET_PROBLEMS_PER_PAGE,
};

use super::{Access, OpError};
use crate::auth::Action;
use crate::storage::access::Owned;
use crate::storage::review::ExperimentRef;

/// The one prologue of every operation on an experiment: may the principal do `action` on
/// experiment `slug` (a share link: only its own)? Its id and project when yes; not found when
/// it does not exist or is hidden from the principal.
pub async fn open_experiment(
    access: &Access<'_>,
    slug: &str,
    action: Action,
) -> Result<ExperimentRef, OpError> {
    let what = format!("experiment {slug:?}");
    let experiment = access
        .store
        .experiment_ref(slug)
        .await?
        .ok_or_else(|| OpError::NotFound(format!("no {what}")))?;
    let resource = Owned::Experiment(slug.to_owned());
    access
        .require_in(action, &resource, experiment.project_id, &what)
        .await?;
    Ok(experiment)
}

/// The experiments the caller may read, newest first.
pub async fn experiments(access: &Access<'_>) -> Result<Vec<ExperimentSummary>, OpError> {
    access
        .require_signed_in(Action::Read, "experiments")
        .await?;
    let projects = access.store.experiment_projects().await?;
    Ok(access.keep(
        access.store.experiments().await?,
        |e| e.slug.clone(),
        &projects,
    ))
}

/// One experiment with its runs in lineage order.
pub async fn experiment(access: &Access<'_>, slug: &str) -> Result<ExperimentDetail, OpError> {
    open_experiment(access, slug, Action::Read).await?;
    access
        .store
        .experiment(slug)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no experiment {slug:?}")))
}

/// The models of the projects the caller may read.
pub async fn models(access: &Access<'_>) -> Result<Vec<ModelRow>, OpError> {
    access.require_signed_in(Action::Read, "models").await?;
    let projects = access.store.model_projects().await?;
    Ok(access.keep(access.store.models().await?, |m| m.id, &projects))
}

/// The datasets of the projects the caller may read, and the shared ones.
pub async fn datasets(access: &Access<'_>) -> Result<Vec<DatasetRow>, OpError> {
    access.require_signed_in(Action::Read, "datasets").await?;
    let projects = access.store.dataset_projects().await?;
    Ok(access.keep(access.store.datasets().await?, |d| d.id, &projects))
}

/// A dataset's problem index: one page (`limit` ≤ 500) of its problems in file order, those
/// whose prompt or key holds every term of `q` when given (the full-text index). Not found when
/// the dataset does not exist or is hidden from the caller.
pub async fn dataset_problems(
    access: &Access<'_>,
    dataset_id: i64,
    q: Option<String>,
    limit: u64,
    offset: u64,
) -> Result<DatasetProblemsView, OpError> {
    let what = format!("dataset {dataset_id}");
    access
        .require(Action::Read, &Owned::Dataset(dataset_id), &what)
        .await?;
    if limit == 0 || limit > MAX_DATASET_PROBLEMS_PER_PAGE {
        return Err(OpError::invalid(format!(
            "limit: between 1 and {MAX_DATASET_PROBLEMS_PER_PAGE}"
        )));
    }
    let dataset = access
        .store
        .dataset(dataset_id)
        .await?
        .ok_or_else(|| OpError::NotFound(format!("no {what}")))?;
    let q = q.filter(|q| !q.trim().is_empty());
    let (total, problems) = access
        .store
        .dataset_problems(dataset_id, q.as_deref(), limit, offset)
        .await?;
    Ok(DatasetProblemsView {
        dataset,
        q,
        total,
        offset,
        limit,
        problems,
    })
}

/// The runs of the projects the caller may read, newest first.
pub async fn runs(access: &Access<'_>) -> Result<Vec<RunRow>, OpError> {
    access.require_signed_in(Action::Read, "runs").await?;
    let projects = access.store.run_projects().await?;
    Ok(access.keep(access.store.runs().await?, |r| r.id, &projects))
}

/// The read API's tables of an experiment (`caplens passk|unsolvable|summary --json` from the
/// same rows), under `verdicts` (`None`: each run's default) with or without the reviewers'
/// overrides.
pub async fn report_tables(
    access: &Access<'_>,
    slug: &str,
    verdicts: Option<VerdictSource>,
    reviewed: bool,
) -> Result<ModelTables, OpError> {
    open_experiment(access, slug, Action::Read).await?;
    access
        .store
        .model_tables(slug, verdicts, reviewed)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no experiment {slug:?}")))
}
