//! `/api/v1/evals*`, `/api/v1/engines`, `POST /api/v1/datasets`: evaluation runs over REST.
//! Writes need a bearer API token, like imports; reads are open like the rest of the API.
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

use super::imports::require_token;
use super::AppState;
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
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_token(&state, &headers).await?;
    let request: EvalStartRequest = parse_body(&body)?;
    let ids = evals::start(&state.store, &request).await?;
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

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<EvaluationView>>, ApiError> {
    Ok(Json(
        evals::list(&state.store, q.limit.unwrap_or(50).clamp(1, 500)).await?,
    ))
}

async fn one(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<EvaluationView>, ApiError> {
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
    Path(id): Path<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let first = evaluation_or_404(&state.store, id).await?;
    let store = state.store.clone();
    // State: (last view sent, finished-and-announced).
    let stream = stream::unfold(
        (None::<EvaluationView>, Some(first), false),
        move |(last, pending, ended)| {
            let store = store.clone();
            async move {
                if ended {
                    return None;
                }
                let mut next = pending;
                loop {
                    let view = match next.take() {
                        Some(v) => v,
                        None => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
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
#[derive(Clone, Copy)]
enum Transition {
    Cancel,
    Resume,
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<EvaluationView>, ApiError> {
    transition(&state, &headers, id, Transition::Cancel).await
}

async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<EvaluationView>, ApiError> {
    transition(&state, &headers, id, Transition::Resume).await
}

/// Applies a state change; 409 with the current state when it does not apply.
async fn transition(
    state: &AppState,
    headers: &HeaderMap,
    id: i64,
    change: Transition,
) -> Result<Json<EvaluationView>, ApiError> {
    require_token(state, headers).await?;
    let view = evaluation_or_404(&state.store, id).await?;
    let (done, allowed) = match change {
        Transition::Cancel => (
            state.store.cancel_evaluation(id).await?,
            "only queued or running evaluations can be cancelled",
        ),
        Transition::Resume => (
            state.store.resume_evaluation(id).await?,
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
    Ok(Json(evals::view(&state.store, id).await?.unwrap_or(view)))
}

/// `POST /api/v1/rollouts/{id}/interventions`: one rollout, chosen or top-entropy positions.
async fn intervene_rollout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_token(&state, &headers).await?;
    let request: interventions::InterventionRequest = if body.is_empty() {
        Default::default()
    } else {
        parse_body(&body)?
    };
    let job = interventions::queue(&state.store, id, &request).await?;
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
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_token(&state, &headers).await?;
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
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "interventions": jobs })),
    )
        .into_response())
}

async fn intervention(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<interventions::InterventionView>, ApiError> {
    interventions::view(&state.store, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no intervention {id}")))
}

async fn engines(
    State(state): State<AppState>,
) -> Result<Json<Vec<caplens_app::evals::EngineView>>, ApiError> {
    Ok(Json(
        state
            .store
            .engines()
            .await?
            .into_iter()
            .map(|e| e.view)
            .collect(),
    ))
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
}

async fn add_engine(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_token(&state, &headers).await?;
    let r: EngineRequest = parse_body(&body)?;
    let saved = save_engine(&state.store, r).await?;
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
}

/// `POST /api/v1/datasets?name=N[&prompt_field=F&answer_field=F&id_field=F&tags_field=F]`: a
/// JSON Lines or parquet body of problems.
pub async fn upload_dataset(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DatasetQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_token(&state, &headers).await?;
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
