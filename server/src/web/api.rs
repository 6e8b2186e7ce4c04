//! REST API v1 (JSON). Errors are `{ "error": { "code", "message" } }` with the matching status;
//! unknown routes under `/api` answer a JSON 404, wrong methods a JSON 405.

use axum::{
    extract::{OriginalUri, Path, Query, State},
    http::{header, Method},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use caplens_app::model::*;
use caplens_analysis::verdicts::VerdictSource;
use serde::Deserialize;

use super::access::Caller;
use super::AppState;
use crate::auth::Action;
use crate::error::ApiError;
use crate::storage::access::Owned;

pub fn router() -> Router<AppState> {
    let v1 = Router::new()
        .route("/experiments", get(experiments))
        .route("/experiments/{slug}", get(experiment))
        .route("/models", get(models))
        .route(
            "/datasets",
            get(datasets)
                .post(super::evals::upload_dataset)
                .layer(super::evals::dataset_body_limit()),
        )
        .route("/runs", get(runs))
        .route("/experiments/{slug}/passk", get(experiment_passk))
        .route("/experiments/{slug}/unsolvable", get(experiment_unsolvable))
        .route("/experiments/{slug}/summary", get(experiment_summary))
        .route("/openapi.json", get(openapi))
        .route("/audit", get(audit))
        .merge(super::imports::routes())
        .merge(super::evals::routes())
        .merge(super::review::routes());
    Router::new()
        .nest("/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!(
        "no API route {method} {}; see docs/api.md",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!("{method} is not allowed on {}", uri.path()),
    }
}

async fn experiments(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ExperimentSummary>>, ApiError> {
    let access = caller.access(&state.store);
    access.require_signed_in(Action::Read, "experiments").await?;
    let projects = state.store.experiment_projects().await?;
    Ok(Json(access.keep(state.store.experiments().await?, |e| e.slug.clone(), &projects)))
}

async fn experiment(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<ExperimentDetail>, ApiError> {
    caller
        .access(&state.store)
        .require(Action::Read, &Owned::Experiment(slug.clone()), &format!("experiment {slug:?}"))
        .await?;
    state
        .store
        .experiment(&slug)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no experiment {slug:?}")))
}

async fn models(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ModelRow>>, ApiError> {
    let access = caller.access(&state.store);
    access.require_signed_in(Action::Read, "models").await?;
    Ok(Json(super::pages::visible_models(&access).await?))
}

async fn datasets(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DatasetRow>>, ApiError> {
    let access = caller.access(&state.store);
    access.require_signed_in(Action::Read, "datasets").await?;
    let projects = state.store.dataset_projects().await?;
    Ok(Json(access.keep(state.store.datasets().await?, |d| d.name.clone(), &projects)))
}

async fn runs(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<RunRow>>, ApiError> {
    let access = caller.access(&state.store);
    access.require_signed_in(Action::Read, "runs").await?;
    let projects = state.store.run_projects().await?;
    Ok(Json(access.keep(state.store.runs().await?, |r| r.id, &projects)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

/// `GET /api/v1/audit?limit=&before=`: the audit log, newest first (site admins: everything;
/// project admins: their projects' entries).
async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(
        crate::auth::admin::audit(&state.store, &caller, q.limit.unwrap_or(100).clamp(1, 1000), q.before).await?,
    ))
}

/// The OpenAPI 3.1 description of this API (docs/api.md is the prose version).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A JSON document already serialised (the report documents keep their key order).
fn json_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn tables(
    state: &AppState,
    caller: &Caller,
    slug: &str,
    verdicts: Option<&str>,
    reviewed: Option<&str>,
) -> Result<crate::reports::ExperimentTables, ApiError> {
    caller
        .access(&state.store)
        .require(Action::Read, &Owned::Experiment(slug.to_owned()), &format!("experiment {slug:?}"))
        .await?;
    let verdicts = match verdicts {
        None | Some("") => None,
        Some(v) => Some(VerdictSource::parse(v).ok_or_else(|| {
            ApiError::bad_request(format!("verdicts: {v:?} is not one of file, caplens"))
        })?),
    };
    let reviewed = match reviewed {
        None | Some("") | Some("1") => true,
        Some("0") => false,
        Some(v) => return Err(ApiError::bad_request(format!("reviewed: {v:?} is not 0 or 1"))),
    };
    state
        .store
        .experiment_tables(slug, verdicts, reviewed)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no experiment {slug:?}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasskQuery {
    /// `1,2,4`, `all`, or absent (powers of two up to the largest n).
    k: Option<String>,
    /// `file` or `caplens`: whose verdicts count (absent: each run's default).
    verdicts: Option<String>,
    /// `1` (default): with the reviewers' verdict overrides; `0`: without.
    reviewed: Option<String>,
}

/// Same document as `caplens passk --json` on the same rollouts.
async fn experiment_passk(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<PasskQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let ks = match query.k.as_deref() {
        None => crate::reports::KSelection::Default,
        Some(k) => k
            .parse()
            .map_err(|e: String| ApiError::bad_request(format!("k: {e}")))?,
    };
    let doc = tables(&state, &caller, &slug, query.verdicts.as_deref(), query.reviewed.as_deref()).await?.passk(ks);
    Ok(json_text(serde_json::to_string(&doc).expect("serialises")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsolvableQuery {
    k: Option<u64>,
    verdicts: Option<String>,
    reviewed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryQuery {
    verdicts: Option<String>,
    reviewed: Option<String>,
}

/// Same document as `caplens unsolvable [--k K] --json` on the same rollouts.
async fn experiment_unsolvable(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<UnsolvableQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if query.k == Some(0) {
        return Err(ApiError::bad_request("k: must be at least 1"));
    }
    let report = tables(&state, &caller, &slug, query.verdicts.as_deref(), query.reviewed.as_deref()).await?.unsolvable(query.k);
    Ok(json_text(crate::reports::unsolvable_json(&report)))
}

/// Same document as `caplens summary --json` on the same rollouts.
async fn experiment_summary(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let doc = tables(&state, &caller, &slug, query.verdicts.as_deref(), query.reviewed.as_deref()).await?.summary();
    Ok(json_text(serde_json::to_string(&doc).expect("serialises")))
}
