//! `/api/v1/evals*`, `/api/v1/engines`, `POST /api/v1/datasets`: evaluation runs over REST.
//! Writes need an editor's rights in the project (an API token, or a session in team mode);
//! reads need the right to read the project (`web::access`).
//! `GET /api/v1/evals/{id}/events` is a server-sent-events stream of the progress view.

use std::convert::Infallible;
use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Json, Router,
};
use caplens_app::evals::{EvalStartRequest, EvaluationView};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::access::{require_write_credentials, Caller};
use super::AppState;
use crate::auth::{ratelimit::wait_text, Action};
use crate::storage::access::Owned;
use crate::engine::openai::{ApiMode, OpenAiConfig, OpenAiEngine};
use crate::error::ApiError;
use crate::evals::{self, datasets, interventions, EvalError};

/// Largest dataset upload.
const MAX_DATASET_BYTES: usize = 256 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/evals", post(start).get(list))
        .route("/evals/{id}", get(one))
        .route("/evals/{id}/events", get(events))
        .route("/evals/{id}/cancel", post(cancel))
        .route("/evals/{id}/resume", post(resume))
        .route("/engines", get(engines).post(add_engine))
        .route("/evals/{id}/interventions", post(intervene_run))
        .route("/rollouts/{id}/interventions", post(intervene_rollout))
        .route("/interventions/{id}", get(intervention))
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> Self {
        match e {
            EvalError::Invalid { .. } => ApiError::bad_request(e.to_string()),
            EvalError::NotFound(m) => ApiError::not_found(m),
            EvalError::Store(s) => s.into(),
        }
    }
}

/// A JSON body with serde's own message (line, column, field) on failure.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

async fn start(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let mut request: EvalStartRequest = parse_body(&body)?;
    let ids = start_checked_with(&state.store, &state.auth, &caller, &mut request).await?;
    let mut views = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(v) = evals::view(&state.store, id).await? {
            views.push(v);
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "evaluations": views })),
    )
        .into_response())
}

/// Authorises and queues an evaluation: the principal must be an editor of the project it runs
/// in, the engine must be every project's or that project's, and the dataset readable. Shared
/// by the API and the page.
pub async fn start_checked_with(
    store: &crate::storage::Store,
    auth: &crate::auth::Auth,
    caller: &Caller,
    request: &mut EvalStartRequest,
) -> Result<Vec<i64>, ApiError> {
    let access = caller.access(store);
    let (slug, project) = access
        .project_for_write(request.project.as_deref(), "evaluations")
        .await?;
    request.project = Some(slug.clone());
    if let Some(engine) = &request.engine {
        let engine_project = store
            .project_of(&Owned::EngineNamed(engine.clone()))
            .await?;
        if engine_project.is_some_and(|p| p != 0 && p != project) {
            return Err(ApiError::bad_request(format!(
                "engine: no engine named {engine:?} in project {slug}"
            )));
        }
    }
    let experiment = request
        .experiment
        .clone()
        .unwrap_or_else(|| caplens_app::evals::DEFAULT_EXPERIMENT.to_owned());
    if store
        .project_of(&Owned::Experiment(experiment.clone()))
        .await?
        .is_some_and(|p| p != project)
    {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: format!("experiment: {experiment:?} belongs to another project; choose another experiment slug for project {slug}"),
        });
    }
    if let Some(dataset) = &request.dataset {
        if let Some(p) = store.project_of(&Owned::Dataset(dataset.clone())).await? {
            if p != 0 && !caller.principal.can_read(p) {
                return Err(ApiError::bad_request(format!("dataset: no dataset named {dataset:?}")));
            }
        }
    }
    if let crate::auth::PrincipalKind::Token { id, .. } = caller.principal.kind {
        auth
            .limits()
            .eval_starts
            .hit(&format!("token {id}"))
            .map_err(|wait| ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limited",
                message: format!("this token started too many evaluations in the last hour; {}", wait_text(wait)),
            })?;
    }
    let ids = evals::start(store, request).await?;
    access
        .audit(
            "evaluation_started",
            format!("evaluations {}", ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")),
            Some(project),
            format!("engine {}, dataset {}", request.engine.as_deref().unwrap_or(caplens_app::evals::DEFAULT_ENGINE), request.dataset.as_deref().unwrap_or(caplens_app::evals::DEFAULT_DATASET)),
        )
        .await;
    Ok(ids)
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<EvaluationView>>, ApiError> {
    let access = caller.access(&state.store);
    access.require_signed_in(Action::Read, "evaluations").await?;
    Ok(Json(visible_evaluations(&access, q.limit.unwrap_or(50).clamp(1, 500)).await?))
}

/// The newest evaluations the principal may read.
pub async fn visible_evaluations(
    access: &super::access::Access<'_>,
    limit: i64,
) -> Result<Vec<EvaluationView>, ApiError> {
    let projects = access.store.evaluation_projects().await?;
    let all = evals::list(access.store, if access.readable().is_some() { 5000 } else { limit }).await?;
    let mut kept = access.keep(all, |e| e.id, &projects);
    kept.truncate(limit as usize);
    Ok(kept)
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<EvaluationView>, ApiError> {
    caller
        .access(&state.store)
        .require(Action::Read, &Owned::Evaluation(id), &format!("evaluation {id}"))
        .await?;
    Ok(Json(evaluation_or_404(&state.store, id).await?))
}

/// The progress view of an evaluation, or the API's 404.
async fn evaluation_or_404(
    store: &crate::storage::Store,
    id: i64,
) -> Result<EvaluationView, ApiError> {
    evals::view(store, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no evaluation {id}")))
}

/// Progress as server-sent events: one `progress` event with the view now and whenever it
/// changes (polled every 500 ms, from the database, so any worker's progress shows), then a
/// final `done` event when the evaluation is finished.
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller
        .access(&state.store)
        .require(Action::Read, &Owned::Evaluation(id), &format!("evaluation {id}"))
        .await?;
    let first = evaluation_or_404(&state.store, id).await?;
    let store = state.store.clone();
    // State: (last view sent, finished-and-announced).
    let stream = stream::unfold(
        (None::<EvaluationView>, Some(first), false),
        move |(last, pending, ended)| {
            let store = store.clone();
            async move {
                if ended || super::shutting_down() {
                    return None;
                }
                let mut next = pending;
                loop {
                    let view = match next.take() {
                        Some(v) => v,
                        None => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            if super::shutting_down() {
                                return None;
                            }
                            match evals::view(&store, id).await {
                                Ok(Some(v)) => v,
                                _ => return None,
                            }
                        }
                    };
                    if last.as_ref() == Some(&view) {
                        continue;
                    }
                    let finished = view.is_finished();
                    let event = Event::default()
                        .event(if finished { "done" } else { "progress" })
                        .json_data(&view)
                        .unwrap_or_else(|_| Event::default().comment("unserialisable"));
                    return Some((Ok(event), (Some(view), None, finished)));
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Cancel or resume.
#[derive(Clone, Copy, Debug)]
pub enum Transition {
    Cancel,
    Resume,
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<EvaluationView>, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    transition_with(&state.store, &caller, id, Transition::Cancel).await.map(Json)
}

async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<EvaluationView>, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    transition_with(&state.store, &caller, id, Transition::Resume).await.map(Json)
}

/// Applies a state change; 409 with the current state when it does not apply. Shared by the
/// API and the page.
pub async fn transition_with(
    store: &crate::storage::Store,
    caller: &Caller,
    id: i64,
    change: Transition,
) -> Result<EvaluationView, ApiError> {
    let access = caller.access(store);
    let project = access
        .require(Action::Edit, &Owned::Evaluation(id), &format!("evaluation {id}"))
        .await?;
    let view = evaluation_or_404(store, id).await?;
    let (done, allowed) = match change {
        Transition::Cancel => (
            store.cancel_evaluation(id).await?,
            "only queued or running evaluations can be cancelled",
        ),
        Transition::Resume => (
            store.resume_evaluation(id).await?,
            "only cancelled or failed evaluations can be resumed",
        ),
    };
    if !done {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: format!("evaluation {id} is {}; {allowed}", view.status),
        });
    }
    let action = match change {
        Transition::Cancel => "evaluation_cancelled",
        Transition::Resume => "evaluation_resumed",
    };
    access.audit(action, format!("evaluation {id}"), Some(project), "").await;
    Ok(evals::view(store, id).await?.unwrap_or(view))
}

/// `POST /api/v1/rollouts/{id}/interventions`: one rollout, chosen or top-entropy positions.
async fn intervene_rollout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    let project = access
        .require(Action::Edit, &Owned::Rollout(id), &format!("rollout {id}"))
        .await?;
    let request: interventions::InterventionRequest = if body.is_empty() {
        Default::default()
    } else {
        parse_body(&body)?
    };
    let job = interventions::queue(&state.store, id, &request).await?;
    access
        .audit("interventions_queued", format!("rollout {id}"), Some(project), format!("job {job}"))
        .await;
    let view = interventions::view(&state.store, job).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// `POST /api/v1/evals/{id}/interventions`: automatic mode over a completed evaluation's run:
/// `{"rollouts": R, "top_entropy": m, "k": k}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunInterventions {
    #[serde(default)]
    rollouts: Option<u32>,
    #[serde(default)]
    engine: Option<String>,
    #[serde(default)]
    k: Option<u32>,
    #[serde(default)]
    top_entropy: Option<u32>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

async fn intervene_run(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    let project = access
        .require(Action::Edit, &Owned::Evaluation(id), &format!("evaluation {id}"))
        .await?;
    let r: RunInterventions = parse_body(if body.is_empty() { b"{}" } else { &body })?;
    let request = interventions::InterventionRequest {
        engine: r.engine,
        k: r.k,
        positions: None,
        top_entropy: r.top_entropy,
        max_tokens: r.max_tokens,
    };
    let view = evaluation_or_404(&state.store, id).await?;
    let Some(run) = view.run_id else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: format!(
                "evaluation {id} is {}; interventions need its completed run",
                view.status
            ),
        });
    };
    let jobs =
        interventions::queue_for_run(&state.store, run, r.rollouts.unwrap_or(8), &request).await?;
    access
        .audit("interventions_queued", format!("evaluation {id}"), Some(project), format!("{} jobs", jobs.len()))
        .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "interventions": jobs })),
    )
        .into_response())
}

async fn intervention(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<interventions::InterventionView>, ApiError> {
    caller
        .access(&state.store)
        .require(Action::Read, &Owned::Intervention(id), &format!("intervention {id}"))
        .await?;
    interventions::view(&state.store, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no intervention {id}")))
}

async fn engines(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<caplens_app::evals::EngineView>>, ApiError> {
    let access = caller.access(&state.store);
    access.require_signed_in(Action::Read, "engines").await?;
    Ok(Json(visible_engines(&access).await?))
}

/// Engines every project may use and those of projects the principal may read.
pub async fn visible_engines(
    access: &super::access::Access<'_>,
) -> Result<Vec<caplens_app::evals::EngineView>, ApiError> {
    let projects = access.store.engine_projects().await?;
    let readable = access.readable();
    let by_id: std::collections::HashMap<i64, i64> = projects.into_iter().collect();
    Ok(access
        .store
        .engines()
        .await?
        .into_iter()
        .map(|e| e.view)
        .filter(|e| {
            let p = by_id.get(&e.id).copied().unwrap_or(0);
            p == 0 || readable.as_ref().is_none_or(|r| r.contains(&p))
        })
        .collect())
}

/// `POST /api/v1/engines`: add or update an OpenAI-compatible endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineRequest {
    pub name: String,
    pub base_url: String,
    pub model: String,
    #[serde(default)]
    pub api_mode: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub max_top_logprobs: Option<u32>,
    /// Ask the server for its models before saving (default true).
    #[serde(default)]
    pub check: Option<bool>,
    /// The project whose evaluations may use it (default: the token's project, else
    /// `default`); a site admin may leave it for every project with `"project": "*"`.
    #[serde(default)]
    pub project: Option<String>,
}

async fn add_engine(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let r: EngineRequest = parse_body(&body)?;
    let access = caller.access(&state.store);
    let name = r.name.trim().to_owned();
    let project = if r.project.as_deref() == Some("*") {
        access.require_site("engines for every project").await?;
        None
    } else {
        Some(access.project_for_write(r.project.as_deref(), "engines").await?.1)
    };
    // An existing engine of another project is not this principal's to change.
    if let Some(existing) = state.store.project_of(&Owned::EngineNamed(name.clone())).await? {
        if existing != project.unwrap_or(0) {
            access.require_site(&format!("engine {name:?}")).await?;
        }
    }
    let saved = save_engine(&state.store, r).await?;
    if let Some(p) = project {
        state.store.claim_for_project(&Owned::EngineNamed(name.clone()), p).await?;
    }
    access.audit("engine_saved", format!("engine {name}"), project, "").await;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

/// Validates, optionally checks against the server, and stores an engine; shared by the API,
/// the page and the CLI.
pub async fn save_engine(
    store: &crate::storage::Store,
    r: EngineRequest,
) -> Result<serde_json::Value, ApiError> {
    let name = r.name.trim().to_owned();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad_request("name: must be 1 to 100 characters"));
    }
    let mode = match r.api_mode.as_deref().unwrap_or("completions") {
        "completions" => ApiMode::Completions,
        "chat" => ApiMode::Chat,
        other => {
            return Err(ApiError::bad_request(format!(
                "api_mode: must be completions or chat, got {other:?}"
            )))
        }
    };
    let mut config = OpenAiConfig::new(r.base_url.trim(), r.model.trim());
    config.api_key = r.api_key.clone().filter(|k| !k.is_empty());
    config.max_top_logprobs = r.max_top_logprobs.unwrap_or(20);
    config.max_attempts = 1;
    config.timeout_secs = 10;
    let engine = OpenAiEngine::new(config.clone(), mode)
        .map_err(|e| ApiError::bad_request(e.to_string().replace("invalid setting: ", "")))?;
    let served = if r.check.unwrap_or(true) {
        let models = tokio::task::spawn_blocking(move || engine.served_models())
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .map_err(|e| ApiError::bad_request(format!("checking the server: {e}")))?;
        if !models.is_empty() && !models.iter().any(|m| m == config.model.as_str()) {
            return Err(ApiError::bad_request(format!(
                "model: {:?} is not served at {}; it serves: {}",
                config.model,
                config.api_root(),
                models.join(", ")
            )));
        }
        Some(models)
    } else {
        None
    };
    let mode_name = match mode {
        ApiMode::Completions => "completions",
        ApiMode::Chat => "chat",
    };
    let id = store
        .upsert_engine(
            &name,
            config.base_url.trim_end_matches('/'),
            &config.model,
            mode_name,
            config.api_key.as_deref(),
            config.max_top_logprobs,
        )
        .await
        .map_err(|e| match e {
            crate::error::StoreError::Invalid(m) => ApiError::bad_request(m),
            other => other.into(),
        })?;
    let view = store
        .engine_by_id(id)
        .await?
        .map(|e| e.view)
        .ok_or_else(|| ApiError::not_found("engine vanished"))?;
    Ok(serde_json::json!({ "engine": view, "served_models": served }))
}

#[derive(Debug, Deserialize)]
pub struct DatasetQuery {
    pub name: Option<String>,
    pub description: Option<String>,
    pub filename: Option<String>,
    /// The field each role is read from (default: detected from the common names).
    pub id_field: Option<String>,
    pub prompt_field: Option<String>,
    pub answer_field: Option<String>,
    pub tags_field: Option<String>,
    /// The project the dataset belongs to (default: the token's, else `default`).
    pub project: Option<String>,
}

/// `POST /api/v1/datasets?name=N[&prompt_field=F&answer_field=F&id_field=F&tags_field=F]`: a
/// JSON Lines or parquet body of problems.
pub async fn upload_dataset(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<DatasetQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    let (_, project) = access.project_for_write(q.project.as_deref(), "datasets").await?;
    let Some(name) = q.name.filter(|n| !n.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "name: give the dataset a name (?name=…)",
        ));
    };
    if body.len() > MAX_DATASET_BYTES {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            message: format!("a dataset may be at most {} MiB", MAX_DATASET_BYTES >> 20),
        });
    }
    let file = q.filename.unwrap_or_else(|| format!("{name}.jsonl"));
    let fields = datasets::DatasetFields {
        id: q.id_field.filter(|f| !f.trim().is_empty()),
        prompt: q.prompt_field.filter(|f| !f.trim().is_empty()),
        answer: q.answer_field.filter(|f| !f.trim().is_empty()),
        tags: q.tags_field.filter(|f| !f.trim().is_empty()),
    };
    let problems = datasets::parse(&file, &body, &fields).map_err(dataset_error)?;
    let id = datasets::store_dataset(
        &state.store,
        &name,
        q.description.as_deref().unwrap_or(""),
        "upload",
        &problems,
    )
    .await
    .map_err(dataset_error)?;
    state
        .store
        .claim_for_project(&Owned::Dataset(name.trim().to_owned()), project)
        .await?;
    access
        .audit("dataset_uploaded", format!("dataset {}", name.trim()), Some(project), format!("{} problems", problems.len()))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id, "name": name.trim(), "problems": problems.len() })),
    )
        .into_response())
}

fn dataset_error(e: datasets::DatasetError) -> ApiError {
    match e {
        datasets::DatasetError::Store(s) => s.into(),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Body limit layer for the dataset route (the default 2 MB is too small for a dataset).
pub fn dataset_body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_DATASET_BYTES + 1)
}
