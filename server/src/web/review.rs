//! Team review over HTTP (issue 15): `/api/v1` routes for overrides, labels, comments, share
//! links, the review export/import and live discussion events (SSE); and `/s/{secret}`, where
//! a read-only share link is opened. Every handler goes through `review::*`, which asks
//! `Access` first.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        Html, IntoResponse, Redirect, Response,
    },
    Extension, Json,
};
use caplens_app::review::{CommentTarget, ThreadFilter};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::caller::require_write_credentials;
use super::error::ApiError;
use super::middleware::Credentials;
use super::AppState;
use crate::auth::{sha256_hex, AuthSettings};
use crate::ops::{review, Action, Caller};
use crate::review::{JudgementRequest, OverrideRequest};
use crate::storage::access::AuditRecord;

/// The address users reach this server at: `--public-url`, else the request's Host.
pub fn base_url(settings: &AuthSettings, headers: &HeaderMap) -> String {
    if let Some(public) = settings.public_url.as_deref() {
        return public.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

pub(super) async fn add_override(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Result<Json<OverrideRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    // Authorise before reading the body: a viewer learns "forbidden", not what the body lacks.
    crate::ops::catalog::open_experiment(&access, &slug, Action::Edit).await?;
    let req = json_body(body)?;
    let row = review::add_override(&access, &slug, &req).await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// `POST /api/v1/experiments/{slug}/judgements`: the caller's own judgement (issue 27).
pub(super) async fn post_judgement(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Result<Json<JudgementRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    crate::ops::catalog::open_experiment(&access, &slug, Action::Review).await?;
    let req = json_body(body)?;
    let mine = review::set_judgement(&access, &slug, &req).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "judgements": mine })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JudgementsQuery {
    problem: Option<i64>,
}

/// `GET /api/v1/experiments/{slug}/judgements[?problem=ID]`: the judgements the caller may see
/// (in a blind project, a non-editor's own).
pub(super) async fn list_judgements(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<JudgementsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let rows = review::judgements(&caller.access(&state.store), &slug, q.problem).await?;
    Ok(Json(serde_json::json!({ "judgements": rows })).into_response())
}

/// `GET /api/v1/experiments/{slug}/agreement`: Cohen's κ per pair of reviewers, Fleiss' κ and
/// the disagreements.
pub(super) async fn agreement(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let view = review::agreement(&caller.access(&state.store), &slug).await?;
    Ok(Json(serde_json::json!({
        "experiment": view.experiment,
        "blind": view.blind,
        "judgements": view.judgements,
        "reviewers": view.reviewers,
        "items": view.agreement.items,
        "pairs": view.agreement.pairs,
        "fleiss_kappa": view.agreement.fleiss_kappa,
        "disagreements": view.disagreements,
    }))
    .into_response())
}

pub(super) async fn list_overrides(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let rows = review::list_overrides(&caller.access(&state.store), &slug).await?;
    Ok(Json(serde_json::json!({ "overrides": rows })).into_response())
}

pub(super) async fn delete_override(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    review::delete_override(&caller.access(&state.store), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LabelsBody {
    labels: Vec<String>,
}

pub(super) async fn set_labels(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((slug, key)): Path<(String, String)>,
    body: Result<Json<LabelsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    crate::ops::catalog::open_experiment(&access, &slug, Action::Review).await?;
    let body = json_body(body)?;
    let review = review::set_labels_by_key(&access, &slug, &key, &body.labels).await?;
    Ok(Json(review).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct CommentsQuery {
    /// `1`: only unresolved threads.
    unresolved: Option<String>,
    /// `1`: only threads that mention the caller.
    mentions: Option<String>,
    label: Option<String>,
    /// `experiment`, `problem:ID`, `rollout:ID`, `token:ROLLOUT:INDEX`.
    target: Option<String>,
    /// Every thread under this problem id.
    problem: Option<i64>,
    /// The threads of this rollout and its tokens.
    rollout: Option<i64>,
}

/// `problem:12`, `rollout:5`, `token:5:17`, `experiment`.
pub fn parse_target(text: &str) -> Result<CommentTarget, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("target: {s:?} is not a number"))
    };
    match parts.as_slice() {
        ["experiment"] => Ok(CommentTarget::Experiment),
        ["problem", p] => Ok(CommentTarget::Problem { problem: num(p)? }),
        ["rollout", r] => Ok(CommentTarget::Rollout { rollout: num(r)? }),
        ["token", r, i] => Ok(CommentTarget::Token {
            rollout: num(r)?,
            index: num(i)?,
        }),
        _ => Err(format!(
            "target: {text:?} is not experiment, problem:ID, rollout:ID or token:ROLLOUT:INDEX"
        )),
    }
}

pub(super) async fn list_comments(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<CommentsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = ThreadFilter {
        unresolved: q.unresolved.as_deref() == Some("1"),
        mentions_me: q.mentions.as_deref() == Some("1"),
        label: q.label,
        target: q
            .target
            .as_deref()
            .map(parse_target)
            .transpose()
            .map_err(ApiError::bad_request)?,
        problem: q.problem,
        rollout: q.rollout,
    };
    let threads = review::threads(&caller.access(&state.store), &slug, &filter).await?;
    Ok(Json(serde_json::json!({ "threads": threads })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommentBody {
    target: CommentTarget,
    body: String,
}

pub(super) async fn post_comment(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Result<Json<CommentBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    crate::ops::catalog::open_experiment(&access, &slug, Action::Review).await?;
    let body = json_body(body)?;
    let thread = review::post_comment(&access, &slug, &body.target, &body.body).await?;
    Ok((StatusCode::CREATED, Json(thread)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplyBody {
    body: String,
}

pub(super) async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<ReplyBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    review::open_thread(&access, id, Action::Review).await?;
    let body = json_body(body)?;
    let thread = review::reply(&access, id, &body.body).await?;
    Ok((StatusCode::CREATED, Json(thread)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResolveBody {
    resolved: bool,
}

pub(super) async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Result<Json<ResolveBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    review::open_thread(&access, id, Action::Review).await?;
    let body = json_body(body)?;
    let thread = review::resolve_thread(&access, id, body.resolved).await?;
    Ok(Json(thread).into_response())
}

/// Live discussion: an event `discussion` whenever a comment is added, edited or deleted or a
/// thread is resolved or reopened (polled every second, so it works across replicas). The
/// request's credentials are resolved again every `STREAM_RECHECK`: a revoked share link, a
/// removed member or a disabled account ends the stream.
pub(super) async fn comment_events(
    State(state): State<AppState>,
    caller: Caller,
    credentials: Option<Extension<Credentials>>,
    Path(slug): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let first = review::discussion_stamp(&caller.access(&state.store), &slug).await?;
    let credentials = credentials.map(|Extension(c)| c);
    let checked = std::time::Instant::now();
    let stream = stream::unfold(
        (first, true, caller, checked),
        move |(last, initial, mut caller, mut checked)| {
            let state = state.clone();
            let slug = slug.clone();
            let credentials = credentials.clone();
            async move {
                if initial {
                    return Some((
                        Ok(Event::default().event("discussion").data(last.clone())),
                        (last, false, caller, checked),
                    ));
                }
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if super::shutting_down() {
                        return None;
                    }
                    if checked.elapsed() >= super::evals::STREAM_RECHECK {
                        checked = std::time::Instant::now();
                        if let Some(c) = &credentials {
                            caller.principal = c.principal_now(&state.auth).await;
                        }
                    }
                    // Authorised on every poll, with the principal as last resolved.
                    let stamp = review::discussion_stamp(&caller.access(&state.store), &slug)
                        .await
                        .ok()?;
                    if stamp != last {
                        return Some((
                            Ok(Event::default().event("discussion").data(stamp.clone())),
                            (stamp, false, caller, checked),
                        ));
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShareBody {
    path: String,
    expires_in: Option<u64>,
}

pub(super) async fn create_share_link(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Result<Json<ShareBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    crate::ops::catalog::open_experiment(&access, &slug, Action::Edit).await?;
    let body = json_body(body)?;
    let base = base_url(state.auth.settings(), &headers);
    let link =
        review::create_share_link(&access, &slug, &body.path, body.expires_in, &base).await?;
    Ok((StatusCode::CREATED, Json(link)).into_response())
}

pub(super) async fn revoke_share_link(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    review::revoke_share_link(&caller.access(&state.store), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn export_jsonl(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let records = review::export_review(&caller.access(&state.store), &slug).await?;
    let mut body = String::new();
    for r in &records {
        body.push_str(&serde_json::to_string(r).expect("serialises"));
        body.push('\n');
    }
    Ok(download(
        body,
        "application/x-ndjson",
        &format!("{slug}-review.jsonl"),
    ))
}

pub(super) async fn export_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let records = review::export_review(&caller.access(&state.store), &slug).await?;
    Ok(download(
        crate::review::review_csv(&records),
        "text/csv; charset=utf-8",
        &format!("{slug}-review.csv"),
    ))
}

pub(super) fn download(body: String, content_type: &'static str, name: &str) -> Response {
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}

/// Largest review file taken.
const MAX_REVIEW_BYTES: usize = 16 << 20;

pub(super) async fn import_review(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    crate::ops::catalog::open_experiment(&caller.access(&state.store), &slug, Action::Edit).await?;
    if body.len() > MAX_REVIEW_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the review file is larger than {MAX_REVIEW_BYTES} bytes"),
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("review file: not UTF-8 ({e})")))?;
    let report =
        review::import_review(&caller.access(&state.store), &slug, "review file", text).await?;
    Ok(Json(report).into_response())
}

/// The page shown for a share link that cannot be opened (plain HTML: no app, no data).
pub(super) fn share_link_ended_page(why: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Share link {why} · caplens</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1 data-testid=\"share-ended\">This share link was {why}</h1>\
         <p>It no longer opens anything. Ask whoever sent it for a new link, or <a href=\"/login\">sign in</a>.</p></body></html>"
    );
    (StatusCode::GONE, Html(body)).into_response()
}

/// `GET /s/{secret}`: opens a share link. Active: records the opening (audit log), sets the
/// share cookie and redirects to the shared view. Revoked, expired or unknown: a page that says so.
pub(super) async fn open_share_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(secret): Path<String>,
) -> Response {
    let grant = match state.store.share_grant(&sha256_hex(&secret)).await {
        Ok(g) => g,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(grant) = grant else {
        return share_link_ended_page("not found");
    };
    let status = grant.state();
    state
        .store
        .audit(AuditRecord {
            user_id: caller.principal.user_id,
            actor: caller.principal.name.clone(),
            action: "share_link_opened",
            target: format!("share link {} of {}", grant.id, grant.experiment),
            project_id: Some(grant.project_id),
            refused: status != "active",
            detail: status.into(),
            address: caller.peer.clone(),
        })
        .await;
    if status != "active" {
        return share_link_ended_page(status);
    }
    if let Err(e) = state.store.share_link_opened(grant.id).await {
        return ApiError::from(e).into_response();
    }
    let mut res = Redirect::to(&grant.path).into_response();
    // Signed-in users keep their own rights: only visitors get the share cookie.
    if caller.principal.user_id.is_none() && !caller.principal.is_local() {
        res.headers_mut()
            .insert(header::SET_COOKIE, state.auth.share_cookie(&secret));
    }
    res
}
