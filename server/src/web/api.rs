//! REST API v1 (JSON). Errors are `{ "error": { "code", "message" } }` with the matching status;
//! unknown routes under `/api` answer a JSON 404, wrong methods a JSON 405.

use axum::{
    extract::{OriginalUri, Path, State},
    http::Method,
    routing::get,
    Json, Router,
};
use caplens_app::model::*;

use super::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    let v1 = Router::new()
        .route("/experiments", get(experiments))
        .route("/experiments/{slug}", get(experiment))
        .route("/models", get(models))
        .route("/datasets", get(datasets))
        .route("/runs", get(runs));
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
) -> Result<Json<Vec<ExperimentSummary>>, ApiError> {
    Ok(Json(state.store.experiments().await?))
}

async fn experiment(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<ExperimentDetail>, ApiError> {
    state
        .store
        .experiment(&slug)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no experiment {slug:?}")))
}

async fn models(State(state): State<AppState>) -> Result<Json<Vec<ModelRow>>, ApiError> {
    Ok(Json(state.store.models().await?))
}

async fn datasets(State(state): State<AppState>) -> Result<Json<Vec<DatasetRow>>, ApiError> {
    Ok(Json(state.store.datasets().await?))
}

async fn runs(State(state): State<AppState>) -> Result<Json<Vec<RunRow>>, ApiError> {
    Ok(Json(state.store.runs().await?))
}
