//! REST API v1 (JSON). Errors are `{ "error": { "code", "message" } }` with the matching status;
//! unknown routes under `/api` answer a JSON 404, wrong methods a JSON 405.

use axum::{
    extract::{OriginalUri, Path, Query, State},
    http::{header, Method},
    response::{IntoResponse, Response},
    Json,
};
use caplens_analysis::tables::{KSelection, ModelTables, UnsolvableDoc};
use caplens_analysis::verdicts::VerdictSource;
use caplens_app::model::*;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::ops::{self, Caller};

pub(super) async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!(
        "no API route {method} {}; see docs/api.md",
        uri.path()
    ))
}

pub(super) async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

pub(super) async fn experiments(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ExperimentSummary>>, ApiError> {
    Ok(Json(
        ops::catalog::experiments(&caller.access(&state.store)).await?,
    ))
}

pub(super) async fn experiment(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<ExperimentDetail>, ApiError> {
    Ok(Json(
        ops::catalog::experiment(&caller.access(&state.store), &slug).await?,
    ))
}

pub(super) async fn models(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ModelRow>>, ApiError> {
    Ok(Json(
        ops::catalog::models(&caller.access(&state.store)).await?,
    ))
}

pub(super) async fn datasets(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<DatasetRow>>, ApiError> {
    Ok(Json(
        ops::catalog::datasets(&caller.access(&state.store)).await?,
    ))
}

pub(super) async fn runs(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<RunRow>>, ApiError> {
    Ok(Json(
        ops::catalog::runs(&caller.access(&state.store)).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

/// `GET /api/v1/audit?limit=&before=`: the audit log, newest first (site admins: everything;
/// project admins: their projects' entries).
pub(super) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(
        ops::admin::audit(
            &state.store,
            &caller,
            q.limit.unwrap_or(100).clamp(1, 1000),
            q.before,
        )
        .await?,
    ))
}

/// The OpenAPI 3.1 description of this API (docs/api.md is the prose version), as written:
/// the `format` enums say `["@formats"]`, filled from the registry by [`openapi_document`].
pub const OPENAPI: &str = include_str!("openapi.json");

/// The OpenAPI document served: [`OPENAPI`] with every `format` enum listing the registry's
/// formats, so the document cannot drift from what caplens reads.
pub fn openapi_document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let names: Vec<String> = crate::ingest::Format::names()
            .into_iter()
            .map(|n| format!("{n:?}"))
            .collect();
        OPENAPI.replace("[\"@formats\"]", &format!("[{}]", names.join(", ")))
    })
}

pub(super) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi_document(),
    )
        .into_response()
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
) -> Result<ModelTables, ApiError> {
    let verdicts = match verdicts {
        None | Some("") => None,
        Some(v) => Some(VerdictSource::parse(v).ok_or_else(|| {
            ApiError::bad_request(format!("verdicts: {v:?} is not one of file, caplens"))
        })?),
    };
    let reviewed = match reviewed {
        None | Some("") | Some("1") => true,
        Some("0") => false,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "reviewed: {v:?} is not 0 or 1"
            )))
        }
    };
    Ok(ops::catalog::report_tables(&caller.access(&state.store), slug, verdicts, reviewed).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasskQuery {
    /// `1,2,4`, `all`, or absent (powers of two up to the largest n).
    k: Option<String>,
    /// `file` or `caplens`: whose verdicts count (absent: each run's default).
    verdicts: Option<String>,
    /// `1` (default): with the reviewers' verdict overrides; `0`: without.
    reviewed: Option<String>,
}

/// Same document as `caplens passk --json` on the same rollouts.
pub(super) async fn experiment_passk(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<PasskQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let ks = match query.k.as_deref() {
        None => KSelection::Default,
        Some(k) => k
            .parse()
            .map_err(|e: String| ApiError::bad_request(format!("k: {e}")))?,
    };
    let doc = tables(
        &state,
        &caller,
        &slug,
        query.verdicts.as_deref(),
        query.reviewed.as_deref(),
    )
    .await?
    .passk(&ks);
    Ok(json_text(serde_json::to_string(&doc).expect("serialises")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnsolvableQuery {
    k: Option<u64>,
    verdicts: Option<String>,
    reviewed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SummaryQuery {
    verdicts: Option<String>,
    reviewed: Option<String>,
}

/// Same document as `caplens unsolvable [--k K] --json` on the same rollouts.
pub(super) async fn experiment_unsolvable(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<UnsolvableQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if query.k == Some(0) {
        return Err(ApiError::bad_request("k: must be at least 1"));
    }
    let report = tables(
        &state,
        &caller,
        &slug,
        query.verdicts.as_deref(),
        query.reviewed.as_deref(),
    )
    .await?
    .unsolvable(query.k);
    Ok(json_text(
        serde_json::to_string(&UnsolvableDoc::of(&report)).expect("serialises"),
    ))
}

/// Same document as `caplens summary --json` on the same rollouts.
pub(super) async fn experiment_summary(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let doc = tables(
        &state,
        &caller,
        &slug,
        query.verdicts.as_deref(),
        query.reviewed.as_deref(),
    )
    .await?
    .summary();
    Ok(json_text(serde_json::to_string(&doc).expect("serialises")))
}

/// `GET /api/v1/datasets/{id}/problems?q=TEXT&limit=N&offset=M`: a dataset's problem index,
/// one page in file order (docs/api.md).
pub(super) async fn dataset_problems(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<caplens_app::model::DatasetProblemsView>, ApiError> {
    const KNOWN: [&str; 3] = ["q", "limit", "offset"];
    if let Some(unknown) = query.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?}; known: {}",
            KNOWN.join(", ")
        )));
    }
    let number = |name: &str, default: u64| -> Result<u64, ApiError> {
        query.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("{name}: not a whole number: {v:?}")))
        })
    };
    let view = ops::catalog::dataset_problems(
        &caller.access(&state.store),
        id,
        query.get("q").cloned(),
        number("limit", caplens_app::model::DATASET_PROBLEMS_PER_PAGE)?,
        number("offset", 0)?,
    )
    .await?;
    Ok(Json(view))
}

/// The query parameters `GET /api/v1/experiments/{slug}/problems` knows.
const PROBLEMS_PARAMETERS: [&str; 11] = [
    "runs",
    "q",
    "sort",
    "change",
    "min_delta",
    "label",
    "unsolvable",
    "verdicts",
    "reviewed",
    "limit",
    "offset",
];

/// The problems view's request from a query string: unknown parameters and values that do not
/// parse are a 400 naming the parameter.
fn problems_request(
    query: &std::collections::HashMap<String, String>,
) -> Result<caplens_app::views::ProblemsRequest, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|k| !PROBLEMS_PARAMETERS.contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?}; known: {}",
            PROBLEMS_PARAMETERS.join(", ")
        )));
    }
    caplens_app::views::ProblemsRequest::try_from_query(|k| query.get(k).cloned())
        .map_err(|e| ApiError::bad_request(format!("{}: {}", e.0, e.1)))
}

/// `GET /api/v1/experiments/{slug}/problems?runs=A,B&…`: the problems view as JSON, one page
/// (docs/api.md).
pub(super) async fn experiment_problems(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request = problems_request(&query)?;
    let view = ops::views::problems(
        &caller.access(&state.store),
        &state.views,
        &slug,
        request,
        true,
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no experiment {slug:?}")))?;
    Ok(Json(problems_document(&view)))
}

/// The JSON document of a page of the problems view.
fn problems_document(view: &caplens_app::views::ProblemsView) -> serde_json::Value {
    use serde_json::json;
    let selected = &view.frame.selected;
    let runs: Vec<serde_json::Value> = selected
        .iter()
        .map(|id| {
            let label = view
                .frame
                .runs
                .iter()
                .find(|r| r.id == *id)
                .map_or(String::new(), |r| r.label.clone());
            json!({"id": id, "label": label})
        })
        .collect();
    let problems: Vec<serde_json::Value> = view
        .rows
        .iter()
        .map(|r| {
            let cells: serde_json::Map<String, serde_json::Value> = selected
                .iter()
                .zip(&r.cells)
                .filter_map(|(id, cell)| {
                    cell.map(|(c, n)| (id.to_string(), json!({"n": n, "c": c})))
                })
                .collect();
            json!({
                "id": r.problem_id,
                "key": r.key,
                "prompt": r.prompt,
                "runs": cells,
                "delta": r.delta,
                "labels": r.labels,
                "comments": r.comments,
            })
        })
        .collect();
    json!({
        "experiment": view.frame.experiment.slug,
        "runs": runs,
        "missing_runs": view.frame.missing_runs,
        "total": view.total,
        "offset": view.request.offset,
        "limit": view.request.limit,
        "paired": view.paired,
        "problems": problems,
    })
}

/// `GET /api/v1/experiments/{slug}/problems.csv?…`: every matching problem (not a page), sorted,
/// as CSV (formula-safe).
pub(super) async fn experiment_problems_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let request = problems_request(&query)?;
    let view = ops::views::problems(
        &caller.access(&state.store),
        &state.views,
        &slug,
        request,
        false,
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no experiment {slug:?}")))?;
    Ok(super::review::download(
        crate::views::problems_table(&view).to_csv(),
        "text/csv; charset=utf-8",
        &format!("{slug}-problems.csv"),
    ))
}
