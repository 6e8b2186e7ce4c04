//! `/api/v1/evals*`, `/api/v1/engines`, `POST /api/v1/datasets`, interventions: evaluation runs
//! over REST. Each handler parses, calls `ops::evals`, and renders; `GET
//! /api/v1/evals/{id}/events` is a server-sent-events stream of the progress view that ends
//! when its caller may no longer read the evaluation.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Extension, Json,
};
use caplens_app::evals::{EvalStartRequest, EvaluationView};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::caller::require_write_credentials;
use super::error::ApiError;
use super::middleware::Credentials;
use super::AppState;
use crate::evals::{datasets, interventions};
use crate::ops::{self, Caller};

/// How often an open event stream asks again whether its caller may still read what it streams
/// (a revoked share link, a removed member, a disabled account end it within this).
pub const STREAM_RECHECK: Duration = Duration::from_secs(2);

/// A JSON body with serde's own message (line, column, field) on failure.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

pub(super) async fn start(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let mut request: EvalStartRequest = parse_body(&body)?;
    let access = caller.access(&state.store);
    let ids = ops::evals::start(&access, state.auth.limits(), &mut request).await?;
    let mut views = Vec::with_capacity(ids.len());
    for id in ids {
        views.push(ops::evals::evaluation(&access, id).await?);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "evaluations": views })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    limit: Option<i64>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<EvaluationView>>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(Json(
        ops::evals::evaluations(&caller.access(&state.store), limit).await?,
    ))
}

pub(super) async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<EvaluationView>, ApiError> {
    Ok(Json(
        ops::evals::evaluation(&caller.access(&state.store), id).await?,
    ))
}

/// Progress as server-sent events: one `progress` event with the view now and whenever it
/// changes (polled every 500 ms, from the database, so any worker's progress shows), then a
/// final `done` event when the evaluation is finished. Every [`STREAM_RECHECK`] the request's
/// credentials are resolved again and the read asked again: a caller who lost the right stops
/// receiving.
pub(super) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    credentials: Option<Extension<Credentials>>,
    Path(id): Path<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let first = ops::evals::evaluation(&caller.access(&state.store), id).await?;
    let credentials = credentials.map(|Extension(c)| c);
    struct Follow {
        caller: Caller,
        last: Option<EvaluationView>,
        pending: Option<EvaluationView>,
        ended: bool,
        checked: Instant,
    }
    let start = Follow {
        caller,
        last: None,
        pending: Some(first),
        ended: false,
        checked: Instant::now(),
    };
    let stream = stream::unfold(start, move |mut f| {
        let state = state.clone();
        let credentials = credentials.clone();
        async move {
            if f.ended || super::shutting_down() {
                return None;
            }
            loop {
                let view = match f.pending.take() {
                    Some(v) => v,
                    None => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        if super::shutting_down() {
                            return None;
                        }
                        if f.checked.elapsed() >= STREAM_RECHECK {
                            f.checked = Instant::now();
                            if let Some(c) = &credentials {
                                f.caller.principal = c.principal_now(&state.auth).await;
                            }
                        }
                        // Authorised on every poll, with the principal as last resolved.
                        match ops::evals::evaluation(&f.caller.access(&state.store), id).await {
                            Ok(v) => v,
                            Err(_) => return None,
                        }
                    }
                };
                if f.last.as_ref() == Some(&view) {
                    continue;
                }
                let finished = view.is_finished();
                let event = Event::default()
                    .event(if finished { "done" } else { "progress" })
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().comment("unserialisable"));
                f.last = Some(view);
                f.ended = finished;
                return Some((Ok(event), f));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<EvaluationView>, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    Ok(Json(
        ops::evals::transition(
            &caller.access(&state.store),
            id,
            ops::evals::Transition::Cancel,
        )
        .await?,
    ))
}

pub(super) async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<EvaluationView>, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    Ok(Json(
        ops::evals::transition(
            &caller.access(&state.store),
            id,
            ops::evals::Transition::Resume,
        )
        .await?,
    ))
}

/// `POST /api/v1/rollouts/{id}/interventions`: one rollout, chosen or top-entropy positions.
pub(super) async fn intervene_rollout(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let request: interventions::InterventionRequest = if body.is_empty() {
        Default::default()
    } else {
        parse_body(&body)?
    };
    let view = ops::evals::intervene_rollout(&caller.access(&state.store), id, &request).await?;
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// `POST /api/v1/evals/{id}/interventions`: automatic mode over a completed evaluation's run:
/// `{"rollouts": R, "top_entropy": m, "k": k}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunInterventions {
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

pub(super) async fn intervene_run(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let r: RunInterventions = parse_body(if body.is_empty() { b"{}" } else { &body })?;
    let request = interventions::InterventionRequest {
        engine: r.engine,
        k: r.k,
        positions: None,
        top_entropy: r.top_entropy,
        max_tokens: r.max_tokens,
    };
    let jobs = ops::evals::intervene_evaluation(
        &caller.access(&state.store),
        id,
        r.rollouts.unwrap_or(8),
        &request,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "interventions": jobs })),
    )
        .into_response())
}

pub(super) async fn intervention(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<interventions::InterventionView>, ApiError> {
    Ok(Json(
        ops::evals::intervention(&caller.access(&state.store), id).await?,
    ))
}

pub(super) async fn engines(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<caplens_app::evals::EngineView>>, ApiError> {
    Ok(Json(
        ops::evals::engines(&caller.access(&state.store)).await?,
    ))
}

/// `POST /api/v1/engines`: add or change an OpenAI-compatible endpoint.
pub(super) async fn add_engine(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let request: ops::evals::EngineRequest = parse_body(&body)?;
    let saved = ops::evals::save_engine(&caller.access(&state.store), request).await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct DatasetQuery {
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
pub(super) async fn upload_dataset(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<DatasetQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let name = q.name.unwrap_or_default();
    let file = q
        .filename
        .unwrap_or_else(|| format!("{}.jsonl", name.trim()));
    let fields = datasets::DatasetFields {
        id: q.id_field.filter(|f| !f.trim().is_empty()),
        prompt: q.prompt_field.filter(|f| !f.trim().is_empty()),
        answer: q.answer_field.filter(|f| !f.trim().is_empty()),
        tags: q.tags_field.filter(|f| !f.trim().is_empty()),
    };
    let (id, problems) = ops::evals::upload_dataset(
        &caller.access(&state.store),
        q.project.as_deref(),
        &name,
        q.description.as_deref().unwrap_or(""),
        &file,
        &body,
        &fields,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id, "name": name.trim(), "problems": problems })),
    )
        .into_response())
}
