//! Evaluation runs as the pages, the REST API and the CLI start and follow them: start (one
//! evaluation or a checkpoint series), list, progress, cancel/resume, token interventions,
//! engines (list, add/change) and evaluation datasets (upload).
//!
//! Every engine a request names (`engine`, `series[].engine`, an intervention's `engine`) is
//! looked up the same way, [`usable_engine`]: one of the project's own engines or a shared one;
//! any other name is "not found", whoever owns it.

use caplens_app::evals::{EngineView, EvalFormOptions, EvalStartRequest, EvaluationView};

use super::{Access, OpError};
use crate::auth::ratelimit::Limits;
use crate::auth::{Action, PrincipalKind};
use crate::evals::{self, datasets, interventions, EvalError};
use crate::storage::access::Owned;
use crate::storage::evals::EngineRow;

/// Most checkpoints one start may queue (`series`): each is an evaluation, counted against
/// the caller's evaluation starts.
pub const MAX_SERIES: usize = 64;

impl From<EvalError> for OpError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::Invalid { .. } => OpError::Invalid(e.to_string()),
            EvalError::NotFound(m) => OpError::NotFound(m),
            EvalError::Store(s) => OpError::Store(s),
        }
    }
}

impl From<datasets::DatasetError> for OpError {
    fn from(e: datasets::DatasetError) -> Self {
        match e {
            datasets::DatasetError::Store(s) => OpError::Store(s),
            datasets::DatasetError::Conflict(m) => OpError::Conflict(m),
            other => OpError::Invalid(other.to_string()),
        }
    }
}

/// The engine `name` as project `project` may use it: the project's own, else a shared one.
pub(in crate::ops) async fn usable_engine(
    access: &Access<'_>,
    project: i64,
    name: &str,
) -> Result<EngineRow, OpError> {
    access
        .store
        .engine_for_project(name, project)
        .await?
        .ok_or_else(|| OpError::not_found(format!("engine: no engine named {name:?} in this project; `GET /api/v1/engines` lists them")))
}

/// Authorises and queues an evaluation (several for a checkpoint series) in the project the
/// request names (default: the token's project, else `default`); the caller must be an editor
/// there. Each queued evaluation counts against an API token's evaluation starts. Returns the
/// evaluations' ids.
pub async fn start(
    access: &Access<'_>,
    limits: &Limits,
    request: &mut EvalStartRequest,
) -> Result<Vec<i64>, OpError> {
    let (slug, project) = access
        .project_for_write(request.project.as_deref(), "evaluations")
        .await?;
    request.project = Some(slug);
    let series = request.series.as_ref().map_or(0, Vec::len);
    if series > MAX_SERIES {
        return Err(OpError::invalid(format!(
            "series: {series} checkpoints; one start queues at most {MAX_SERIES} (start the rest separately)"
        )));
    }
    // The experiment: free, or the project's (decided again when the run is written).
    let experiment = request
        .experiment
        .clone()
        .unwrap_or_else(|| caplens_app::evals::DEFAULT_EXPERIMENT.to_owned());
    super::imports::check_experiment_slug(access, &experiment, project).await?;
    // Every engine named, checked the same way before anything is queued.
    let mut named: Vec<&str> = vec![request
        .engine
        .as_deref()
        .unwrap_or(caplens_app::evals::DEFAULT_ENGINE)];
    named.extend(
        request
            .series
            .iter()
            .flatten()
            .filter_map(|c| c.engine.as_deref()),
    );
    for name in named {
        usable_engine(access, project, name).await?;
    }
    if let PrincipalKind::Token { id, .. } = access.principal.kind {
        let work = series.max(1) as u32;
        limits
            .eval_starts
            .hit_n(&format!("token {id}"), work)
            .await?
            .map_err(|wait| {
                OpError::RateLimited(format!(
                    "this token started too many evaluations in the last hour (this request queues {work}); {}",
                    crate::auth::ratelimit::wait_text(wait)
                ))
            })?;
    }
    let ids = evals::start(access.store, project, request).await?;
    access
        .audit(
            "evaluation_started",
            format!(
                "evaluations {}",
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(project),
            format!(
                "engine {}, dataset {}",
                request
                    .engine
                    .as_deref()
                    .unwrap_or(caplens_app::evals::DEFAULT_ENGINE),
                request
                    .dataset
                    .as_deref()
                    .unwrap_or(caplens_app::evals::DEFAULT_DATASET)
            ),
        )
        .await;
    Ok(ids)
}

/// The progress view of an evaluation the caller may read.
pub async fn evaluation(access: &Access<'_>, id: i64) -> Result<EvaluationView, OpError> {
    access
        .require(
            Action::Read,
            &Owned::Evaluation(id),
            &format!("evaluation {id}"),
        )
        .await?;
    evals::view(access.store, id)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no evaluation {id}")))
}

/// The newest evaluations the caller may read.
pub async fn evaluations(access: &Access<'_>, limit: i64) -> Result<Vec<EvaluationView>, OpError> {
    access
        .require_signed_in(Action::Read, "evaluations")
        .await?;
    let projects = access.store.evaluation_projects().await?;
    let all = evals::list(
        access.store,
        if access.readable().is_some() {
            5000
        } else {
            limit
        },
    )
    .await?;
    let mut kept = access.keep(all, |e| e.id, &projects);
    kept.truncate(limit.max(0) as usize);
    Ok(kept)
}

/// Cancel or resume.
#[derive(Clone, Copy, Debug)]
pub enum Transition {
    Cancel,
    Resume,
}

/// Applies a state change; a conflict with the current state when it does not apply.
pub async fn transition(
    access: &Access<'_>,
    id: i64,
    change: Transition,
) -> Result<EvaluationView, OpError> {
    let project = access
        .require(
            Action::Edit,
            &Owned::Evaluation(id),
            &format!("evaluation {id}"),
        )
        .await?;
    let view = evals::view(access.store, id)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no evaluation {id}")))?;
    let (done, allowed) = match change {
        Transition::Cancel => (
            access.store.cancel_evaluation(id).await?,
            "only queued or running evaluations can be cancelled",
        ),
        Transition::Resume => (
            access.store.resume_evaluation(id).await?,
            "only cancelled or failed evaluations can be resumed",
        ),
    };
    if !done {
        return Err(OpError::conflict(format!(
            "evaluation {id} is {}; {allowed}",
            view.status
        )));
    }
    let action = match change {
        Transition::Cancel => "evaluation_cancelled",
        Transition::Resume => "evaluation_resumed",
    };
    access
        .audit(action, format!("evaluation {id}"), Some(project), "")
        .await;
    Ok(evals::view(access.store, id).await?.unwrap_or(view))
}

/// Queues interventions on one rollout (chosen or top-entropy positions).
pub async fn intervene_rollout(
    access: &Access<'_>,
    rollout: i64,
    request: &interventions::InterventionRequest,
) -> Result<interventions::InterventionView, OpError> {
    let project = access
        .require(
            Action::Edit,
            &Owned::Rollout(rollout),
            &format!("rollout {rollout}"),
        )
        .await?;
    let engine = match &request.engine {
        Some(name) => Some(usable_engine(access, project, name).await?.view.id),
        None => None,
    };
    let job = interventions::queue(access.store, rollout, engine, request).await?;
    access
        .audit(
            "interventions_queued",
            format!("rollout {rollout}"),
            Some(project),
            format!("job {job}"),
        )
        .await;
    interventions::view(access.store, job)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no intervention {job}")))
}

/// Queues interventions over a completed evaluation's run: `rollouts` rollouts spread evenly.
pub async fn intervene_evaluation(
    access: &Access<'_>,
    id: i64,
    rollouts: u32,
    request: &interventions::InterventionRequest,
) -> Result<Vec<i64>, OpError> {
    let project = access
        .require(
            Action::Edit,
            &Owned::Evaluation(id),
            &format!("evaluation {id}"),
        )
        .await?;
    let engine = match &request.engine {
        Some(name) => Some(usable_engine(access, project, name).await?.view.id),
        None => None,
    };
    let view = evals::view(access.store, id)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no evaluation {id}")))?;
    let Some(run) = view.run_id else {
        return Err(OpError::conflict(format!(
            "evaluation {id} is {}; interventions need its completed run",
            view.status
        )));
    };
    let jobs = interventions::queue_for_run(access.store, run, rollouts, engine, request).await?;
    access
        .audit(
            "interventions_queued",
            format!("evaluation {id}"),
            Some(project),
            format!("{} jobs", jobs.len()),
        )
        .await;
    Ok(jobs)
}

/// One intervention job the caller may read.
pub async fn intervention(
    access: &Access<'_>,
    id: i64,
) -> Result<interventions::InterventionView, OpError> {
    access
        .require(
            Action::Read,
            &Owned::Intervention(id),
            &format!("intervention {id}"),
        )
        .await?;
    interventions::view(access.store, id)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no intervention {id}")))
}

/// The engines the caller may use: shared ones and those of projects it reads.
pub async fn engines(access: &Access<'_>) -> Result<Vec<EngineView>, OpError> {
    access.require_signed_in(Action::Read, "engines").await?;
    let readable = access.readable();
    Ok(access
        .store
        .engines()
        .await?
        .into_iter()
        .filter(|e| match e.project_id {
            None => true,
            Some(p) => {
                readable.as_ref().is_none_or(|r| r.contains(&p))
                    && access.principal.shared_experiment().is_none()
            }
        })
        .map(|e| e.view)
        .collect())
}

pub use crate::evals::engines::EngineRequest;

/// Adds or changes an engine. Engines make the server (and its workers) open connections, so
/// only site admins add or change them, and a project's admins where the project allows it
/// (`engine_admins`); the address must pass the engine address policy (`engine::netguard`).
pub async fn save_engine(
    access: &Access<'_>,
    request: EngineRequest,
) -> Result<serde_json::Value, OpError> {
    let name = request.name.trim().to_owned();
    let project = if request.project.as_deref() == Some("*") {
        access.require_site("engines for every project").await?;
        None
    } else {
        let (slug, id) = access
            .project_for(Action::Read, request.project.as_deref(), "engines")
            .await?;
        let allowed = access
            .store
            .project_by_id(id)
            .await?
            .is_some_and(|p| p.engine_admins);
        if allowed {
            access
                .require_project(
                    Action::Administer,
                    id,
                    &format!("engines of project {slug}"),
                )
                .await?;
        } else {
            access
                .require_site(&format!("engines of project {slug} (its admins may add them once a site admin allows it)"))
                .await?;
        }
        Some(id)
    };
    let saved = crate::evals::engines::save_engine(access.store, project, request)
        .await
        .map_err(|e| match e {
            crate::evals::engines::SaveEngineError::Invalid(m) => OpError::Invalid(m),
            crate::evals::engines::SaveEngineError::Conflict(m) => OpError::Conflict(m),
            crate::evals::engines::SaveEngineError::Store(s) => OpError::Store(s),
        })?;
    access
        .audit("engine_saved", format!("engine {name}"), project, "")
        .await;
    Ok(saved)
}

/// What the "new evaluation" form offers the caller: the engines and datasets of the projects
/// it reads, and the shared ones.
pub async fn form_options(access: &Access<'_>) -> Result<EvalFormOptions, OpError> {
    access
        .require_signed_in(Action::Read, "evaluations")
        .await?;
    let (mut options, engine_projects, dataset_projects) =
        evals::form_options(access.store).await?;
    let readable = access.readable();
    let visible = |p: &Option<i64>| match p {
        None => true,
        Some(p) => readable.as_ref().is_none_or(|r| r.contains(p)),
    };
    let mut keep = engine_projects.iter().map(visible);
    options.engines.retain(|_| keep.next().unwrap_or(false));
    let mut keep = dataset_projects.iter().map(visible);
    options.datasets.retain(|_| keep.next().unwrap_or(false));
    // Two readable projects may each have a dataset of one name: the form lists the name once.
    let mut seen = std::collections::HashSet::new();
    options.datasets.retain(|d| seen.insert(d.name.clone()));
    Ok(options)
}

/// A dataset of problems for evaluations, parsed from a JSON Lines or parquet file and stored
/// in the project named (default: the token's, else `default`). Names are unique within a
/// project. Returns (dataset id, problems).
pub async fn upload_dataset(
    access: &Access<'_>,
    project: Option<&str>,
    name: &str,
    description: &str,
    file_name: &str,
    bytes: &[u8],
    fields: &datasets::DatasetFields,
) -> Result<(i64, usize), OpError> {
    let (_, project_id) = access.project_for_write(project, "datasets").await?;
    let name = name.trim();
    if name.is_empty() {
        return Err(OpError::invalid("name: give the dataset a name (?name=…)"));
    }
    if bytes.len() > datasets::MAX_DATASET_BYTES {
        return Err(OpError::TooLarge(format!(
            "a dataset may be at most {} MiB",
            datasets::MAX_DATASET_BYTES >> 20
        )));
    }
    let (file, bytes_owned, fields_owned) = (file_name.to_owned(), bytes.to_vec(), fields.clone());
    // Parsing untrusted bytes is CPU work with a byte limit: off the async threads.
    let problems =
        tokio::task::spawn_blocking(move || datasets::parse(&file, &bytes_owned, &fields_owned))
            .await
            .map_err(|e| OpError::invalid(format!("the dataset could not be parsed: {e}")))??;
    let id = datasets::store_dataset(
        access.store,
        Some(project_id),
        name,
        description,
        "upload",
        &problems,
    )
    .await?;
    access
        .audit(
            "dataset_uploaded",
            format!("dataset {name}"),
            Some(project_id),
            format!("{} problems", problems.len()),
        )
        .await;
    Ok((id, problems.len()))
}
