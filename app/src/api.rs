//! Server functions: the pages' only way to data, served under `/_app/` (apart from the
//! versioned REST API under `/api/v1`). On the server they call the
//! [`crate::data::DataSource`] in context; in the browser they are HTTP calls.

use crate::model::*;
use crate::views::*;
use leptos::prelude::*;

/// A data error as the server function's answer: its message, and its status on the response
/// (403 for a refusal, 400 for bad input …), so a form a caller may not use fails plainly.
#[cfg(feature = "ssr")]
fn refusal(e: crate::data::DataError) -> ServerFnError {
    // Only when answering the browser's call (`/_app/…`): while a page renders on the server
    // the same function runs in the page's context, and the page keeps its own status.
    let called = use_context::<http::request::Parts>()
        .is_some_and(|parts| parts.uri.path().starts_with("/_app/"));
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>().filter(|_| called) {
        if let Ok(status) = http::StatusCode::from_u16(e.status) {
            response.set_status(status);
        }
    }
    ServerFnError::new(e.message)
}

#[cfg(feature = "ssr")]
fn source() -> Result<crate::data::SharedDataSource, ServerFnError> {
    use_context::<crate::data::SharedDataSource>()
        .ok_or_else(|| ServerFnError::new("internal error: no data source in context"))
}

#[server(prefix = "/_app")]
pub async fn list_experiments() -> Result<Vec<ExperimentSummary>, ServerFnError> {
    source()?.experiments().await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn get_experiment(slug: String) -> Result<Option<ExperimentDetail>, ServerFnError> {
    source()?.experiment(slug).await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn list_models() -> Result<Vec<ModelRow>, ServerFnError> {
    source()?.models().await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn list_datasets() -> Result<Vec<DatasetRow>, ServerFnError> {
    source()?.datasets().await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn list_runs() -> Result<Vec<RunRow>, ServerFnError> {
    source()?.runs().await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn list_imports() -> Result<Vec<ImportView>, ServerFnError> {
    source()?.imports().await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn list_import_formats() -> Result<Vec<ImportFormat>, ServerFnError> {
    Ok(source()?.import_formats())
}

#[server(prefix = "/_app")]
pub async fn get_dataset_problems(
    id: i64,
    q: Option<String>,
    offset: u64,
) -> Result<Option<DatasetProblemsView>, ServerFnError> {
    source()?
        .dataset_problems(id, q, offset)
        .await
        .map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn get_document(name: String) -> Result<Option<DocumentView>, ServerFnError> {
    Ok(source()?.document(name))
}

#[server(prefix = "/_app")]
pub async fn list_tokens() -> Result<Vec<ApiTokenRow>, ServerFnError> {
    source()?.tokens().await.map_err(refusal)
}

/// Every review operation (comments, labels, overrides, queue, share links, settings). JSON
/// body, like the other writes.
#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn review(
    op: crate::review::ReviewOp,
) -> Result<crate::review::ReviewReply, ServerFnError> {
    source()?.review(op).await.map_err(refusal)
}

// Writes take JSON bodies: a cross-site form cannot send `application/json` without a CORS
// preflight, which caplens never grants, so these cannot be triggered from another site.
#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn create_token(
    name: String,
    project: Option<String>,
    scope: Option<String>,
    expires_in_days: Option<u32>,
) -> Result<CreatedToken, ServerFnError> {
    source()?
        .create_token(name, project, scope, expires_in_days)
        .await
        .map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn revoke_token(id: i64) -> Result<bool, ServerFnError> {
    source()?.revoke_token(id).await.map_err(refusal)
}

// Analysis views. Requests are JSON (they hold lists); they only read.
#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_overview_view(
    slug: String,
    verdicts: Option<caplens_analysis::verdicts::VerdictSource>,
    unreviewed: bool,
) -> Result<Option<OverviewView>, ServerFnError> {
    source()?
        .overview_view(slug, verdicts, unreviewed)
        .await
        .map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_passk_view(
    slug: String,
    request: PasskRequest,
) -> Result<Option<PasskView>, ServerFnError> {
    source()?.passk_view(slug, request).await.map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_unsolvable_view(
    slug: String,
    request: UnsolvableRequest,
) -> Result<Option<UnsolvableView>, ServerFnError> {
    source()?
        .unsolvable_view(slug, request)
        .await
        .map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_problem_neighbours(
    slug: String,
    list: TriageList,
    problem_id: i64,
) -> Result<Option<ProblemNeighbours>, ServerFnError> {
    source()?
        .problem_neighbours(slug, list, problem_id)
        .await
        .map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_problems_view(
    slug: String,
    request: ProblemsRequest,
) -> Result<Option<ProblemsView>, ServerFnError> {
    source()?
        .problems_view(slug, request)
        .await
        .map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_compare_view(
    slug: String,
    request: CompareRequest,
) -> Result<Option<CompareView>, ServerFnError> {
    source()?.compare_view(slug, request).await.map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_dynamics_view(
    slug: String,
    request: DynamicsRequest,
) -> Result<Option<DynamicsView>, ServerFnError> {
    source()?
        .dynamics_view(slug, request)
        .await
        .map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_rft_view(
    slug: String,
    request: RftRequest,
) -> Result<Option<RftView>, ServerFnError> {
    source()?.rft_view(slug, request).await.map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_token_stats_view(
    slug: String,
    request: TokenStatsRequest,
) -> Result<Option<TokenStatsView>, ServerFnError> {
    source()?
        .token_stats_view(slug, request)
        .await
        .map_err(refusal)
}

/// Rollouts per page on the problem page.
pub const ROLLOUTS_PER_PAGE: i64 = 20;

// The problem page's reads take JSON: their arguments hold lists and optional strings.
#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_problem(
    id: i64,
    runs: Option<Vec<i64>>,
    experiment: Option<String>,
    unreviewed: bool,
) -> Result<Option<ProblemDetail>, ServerFnError> {
    source()?
        .problem(id, runs, experiment, unreviewed)
        .await
        .map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn get_problem_rollouts(
    problem_id: i64,
    query: RolloutListQuery,
) -> Result<RolloutList, ServerFnError> {
    source()?
        .problem_rollouts(problem_id, query)
        .await
        .map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn get_rollout(
    id: i64,
    metric: Option<crate::heat::Metric>,
) -> Result<Option<RolloutView>, ServerFnError> {
    source()?.rollout(id, metric).await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn get_rollout_token(
    id: i64,
    pos: usize,
) -> Result<Option<crate::heat::TokenDetail>, ServerFnError> {
    source()?.rollout_token(id, pos).await.map_err(refusal)
}

// Evaluation runs (issue 7).
#[server(prefix = "/_app")]
pub async fn get_eval_form() -> Result<crate::evals::EvalFormOptions, ServerFnError> {
    source()?.eval_form().await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn list_evaluations() -> Result<Vec<crate::evals::EvaluationView>, ServerFnError> {
    source()?.evaluations().await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn get_evaluation(
    id: i64,
) -> Result<Option<crate::evals::EvaluationView>, ServerFnError> {
    source()?.evaluation(id).await.map_err(refusal)
}

/// Queues an evaluation (or a checkpoint series): the ids, or (inner `Err`) the message naming
/// the refused field — a refusal is an answer, not a server failure.
#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn start_evaluation(
    request: crate::evals::EvalStartRequest,
) -> Result<Result<Vec<i64>, String>, ServerFnError> {
    Ok(source()?
        .start_evaluation(request)
        .await
        .map_err(|e| e.message))
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn cancel_evaluation(id: i64) -> Result<bool, ServerFnError> {
    source()?.cancel_evaluation(id).await.map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn resume_evaluation(id: i64) -> Result<bool, ServerFnError> {
    source()?.resume_evaluation(id).await.map_err(refusal)
}

/// Stores a dataset (JSON Lines or parquet; `data` is the file in base64, as parquet is binary)
/// read with `fields`: its problem count, or (inner `Err`) every bad line named.
#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn upload_dataset(
    name: String,
    description: String,
    file_name: String,
    data: String,
    fields: crate::evals::DatasetFields,
    project: Option<String>,
) -> Result<Result<usize, String>, ServerFnError> {
    let Some(bytes) = crate::heat::base64_decode(&data) else {
        return Ok(Err(format!("{file_name}: the upload is not valid base64")));
    };
    Ok(source()?
        .upload_dataset(name, description, file_name, bytes, fields, project)
        .await
        .map_err(|e| e.message))
}

/// Queues token interventions (eqs. 5-6) on a rollout's `top_entropy` most uncertain tokens.
#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn queue_interventions(
    rollout: i64,
    k: u32,
    top_entropy: u32,
) -> Result<Result<i64, String>, ServerFnError> {
    Ok(source()?
        .queue_interventions(rollout, k, top_entropy)
        .await
        .map_err(|e| e.message))
}

// Access control (issue 14). Reads are URL-encoded posts; writes take JSON (see above).
#[server(prefix = "/_app")]
pub async fn get_session() -> Result<SessionView, ServerFnError> {
    source()?.session().await.map_err(refusal)
}

#[server(prefix = "/_app")]
pub async fn list_users() -> Result<Vec<UserRow>, ServerFnError> {
    source()?.users().await.map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn create_user(
    name: String,
    password: String,
    admin: bool,
) -> Result<Result<UserRow, String>, ServerFnError> {
    Ok(source()?
        .create_user(name, password, admin)
        .await
        .map_err(|e| e.message))
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn set_user_disabled(
    id: i64,
    disabled: bool,
) -> Result<Result<(), String>, ServerFnError> {
    Ok(source()?
        .set_user_disabled(id, disabled)
        .await
        .map_err(|e| e.message))
}

#[server(prefix = "/_app")]
pub async fn list_projects() -> Result<Vec<ProjectRow>, ServerFnError> {
    source()?.projects().await.map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn create_project(
    slug: String,
    name: String,
    open_to_all: bool,
) -> Result<Result<ProjectRow, String>, ServerFnError> {
    Ok(source()?
        .create_project(slug, name, open_to_all)
        .await
        .map_err(|e| e.message))
}

#[server(prefix = "/_app")]
pub async fn list_members(project: String) -> Result<Vec<MemberRow>, ServerFnError> {
    source()?.members(project).await.map_err(refusal)
}

#[server(prefix = "/_app", input = server_fn::codec::Json)]
pub async fn set_member(
    project: String,
    user: String,
    role: Option<Role>,
) -> Result<Result<(), String>, ServerFnError> {
    Ok(source()?
        .set_member(project, user, role)
        .await
        .map_err(|e| e.message))
}

#[server(prefix = "/_app")]
pub async fn get_audit(before: Option<i64>) -> Result<Vec<AuditEntry>, ServerFnError> {
    source()?.audit(before).await.map_err(refusal)
}
