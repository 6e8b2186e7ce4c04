//! `/api/v1/imports`: uploads (raw body or multipart), their progress and results, retries;
//! `/api/v1/imports/detect` (what a file is, before uploading it) and `/api/v1/formats`.
//! Writes need an editor's rights in the project the runs go to: an API token
//! (`Authorization: Bearer clk_...`; its own project unless `project=` names another it may
//! edit), or a session in team mode (the upload page).

use axum::{
    body::Body,
    extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, RawQuery, Request, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::access::{require_write_credentials, Caller};
use super::AppState;
use crate::auth::{ratelimit::wait_text, Action, PrincipalKind};
use crate::error::ApiError;
use crate::storage::access::Owned;
use crate::ingest::formats::json_document_note;
use crate::ingest::pipeline::{new_import_id, ImportParams, ImportReport};
use crate::storage::hex;
use crate::ingest::service::{SpooledFile, SpooledRequest};
use crate::ingest::{detect_head, importer, read_head, FileHints, Format, InputFile, SNIFF_BYTES};
use crate::storage::now_rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/imports",
            post(create_import)
                .get(list_imports)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/imports/detect",
            post(detect).layer(DefaultBodyLimit::max(SNIFF_BYTES + 64 * 1024)),
        )
        .route("/imports/{id}", get(get_import))
        .route("/imports/{id}/retry", post(retry_import))
        .route("/formats", get(formats))
}


fn too_large(max: u64) -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "payload_too_large",
        message: format!(
            "the upload is larger than this server accepts ({max} bytes, CAPLENS_MAX_UPLOAD_BYTES); compress it (.gz or .zst are read directly) or ask the operator to raise the limit"
        ),
    }
}

/// Streams one body (or multipart field) into a spool file; returns (bytes, sha256).
struct Spooler {
    file: tokio::fs::File,
    hasher: Sha256,
    bytes: u64,
}

impl Spooler {
    async fn create(path: &std::path::Path) -> Result<Self, ApiError> {
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|e| internal(format!("cannot write the upload: {e}")))?;
        Ok(Spooler {
            file,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    async fn write(&mut self, chunk: &[u8], budget: &mut u64, max: u64) -> Result<(), ApiError> {
        if chunk.len() as u64 > *budget {
            return Err(too_large(max));
        }
        *budget -= chunk.len() as u64;
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| internal(format!("cannot write the upload: {e}")))
    }

    async fn finish(mut self) -> Result<(u64, String), ApiError> {
        self.file
            .flush()
            .await
            .map_err(|e| internal(format!("cannot write the upload: {e}")))?;
        Ok((self.bytes, hex(&self.hasher.finalize())))
    }
}

fn internal(message: String) -> ApiError {
    tracing::error!(%message, "import upload failed");
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message,
    }
}

/// A file name safe to show and store (the client's, without path or control characters).
fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if cleaned.trim().is_empty() {
        "upload".to_owned()
    } else {
        cleaned
    }
}

#[derive(Serialize)]
struct Accepted {
    #[serde(flatten)]
    report: ImportReport,
    /// Where to follow the import.
    status_url: String,
}

async fn create_import(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, request.headers())?;
    let token_id = match caller.principal.kind {
        PrincipalKind::Token { id, .. } => Some(id),
        _ => None,
    };
    let (params, filename) = ImportParams::from_query(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let access = caller.access(&state.store);
    // Authorised before a byte is spooled; again below if the metadata part names a project.
    let (project, _) = access.project_for_write(params.project.as_deref(), "uploads").await?;
    if let Some(id) = token_id {
        state
            .auth
            .limits()
            .uploads
            .hit(&format!("token {id}"))
            .map_err(|wait| ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limited",
                message: format!("this token uploaded too often in the last hour; {}", wait_text(wait)),
            })?;
    }
    let max = state.imports.max_upload_bytes;
    if let Some(len) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max {
            return Err(too_large(max));
        }
    }
    let id = new_import_id();
    let dir = state.imports.create_spool(&id)?;
    let result = spool_request(&state, &dir, params, filename, request).await;
    let (files, params) = match result {
        Ok(v) => v,
        Err(e) => {
            state.imports.discard_spool(&id).await;
            return Err(e);
        }
    };
    if let Err(e) = params.validate() {
        state.imports.discard_spool(&id).await;
        return Err(ApiError::bad_request(e));
    }
    let mut params = params;
    let checked = authorise_upload(&access, &mut params, &project).await;
    if let Err(e) = checked {
        state.imports.discard_spool(&id).await;
        return Err(e);
    }
    if files.is_empty() {
        state.imports.discard_spool(&id).await;
        return Err(ApiError::bad_request(
            "no file in the request: send the file as the body, or as a multipart part named \"file\"",
        ));
    }
    let project_slug = params.project.clone().unwrap_or_default();
    let experiment = params.experiment.clone();
    let request = SpooledRequest {
        files,
        params,
        token_id,
        created_at: now_rfc3339(),
        queued_by: None,
    };
    state.imports.submit(id.clone(), request)?;
    let project_id = state.store.project_id(Some(&project_slug)).await?;
    access
        .audit(
            "import",
            format!("import {id}"),
            project_id,
            format!("experiment {}", experiment.as_deref().unwrap_or(crate::ingest::pipeline::DEFAULT_EXPERIMENT)),
        )
        .await;
    let report = state
        .imports
        .report(&id)
        .await?
        .ok_or_else(|| internal("the import vanished".into()))?;
    let status_url = format!("/api/v1/imports/{id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            report,
            status_url: status_url.clone(),
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, status_url.parse().expect("an ASCII path"));
    Ok(response)
}

/// The final project and experiment of an upload: the metadata part may name another project
/// (authorised again), and an existing experiment must be in a project the principal edits
/// (runs never join another project's experiment).
async fn authorise_upload(
    access: &super::access::Access<'_>,
    params: &mut ImportParams,
    checked_project: &str,
) -> Result<(), ApiError> {
    let project = match params.project.as_deref() {
        Some(p) if p != checked_project => access.project_for_write(Some(p), "uploads").await?.0,
        _ => checked_project.to_owned(),
    };
    let experiment = params
        .experiment
        .clone()
        .unwrap_or_else(|| crate::ingest::pipeline::DEFAULT_EXPERIMENT.to_owned());
    if let Some(p) = access.store.project_of(&Owned::Experiment(experiment.clone())).await? {
        let project_id = access.store.project_id(Some(&project)).await?;
        if Some(p) != project_id {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                code: "conflict",
                message: format!(
                    "experiment: {experiment:?} belongs to another project; choose another experiment slug for project {project}"
                ),
            });
        }
    }
    params.project = Some(project);
    Ok(())
}

async fn spool_request(
    state: &AppState,
    dir: &std::path::Path,
    params: ImportParams,
    filename: Option<String>,
    request: Request,
) -> Result<(Vec<SpooledFile>, ImportParams), ApiError> {
    let max = state.imports.max_upload_bytes;
    let mut budget = max;
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut files = Vec::new();
    if !is_multipart {
        let stored_as = "0".to_owned();
        let mut spool = Spooler::create(&dir.join(&stored_as)).await?;
        let mut stream = request.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("the upload was cut off: {e}")))?;
            spool.write(&chunk, &mut budget, max).await?;
        }
        let (bytes, sha256) = spool.finish().await?;
        if bytes > 0 {
            files.push(SpooledFile {
                name: clean_name(filename.as_deref().unwrap_or("upload")),
                stored_as,
                bytes,
                sha256,
            });
        }
        return Ok((files, params));
    }
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut params = params;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("bad multipart body: {e}")))?
    {
        let name = field.name().unwrap_or("").to_owned();
        if name == "metadata" || name == "params" {
            let text = field
                .text()
                .await
                .map_err(|e| ApiError::bad_request(format!("bad multipart part {name:?}: {e}")))?;
            let extra: ImportParams = serde_json::from_str(&text).map_err(|e| {
                ApiError::bad_request(format!(
                    "the {name:?} part is not valid import metadata JSON: {e}"
                ))
            })?;
            params = params.or(extra);
            continue;
        }
        if field.file_name().is_none() && name != "file" {
            return Err(ApiError::bad_request(format!(
                "unknown multipart part {name:?}: send files as parts named \"file\" and metadata as a JSON part named \"metadata\""
            )));
        }
        let display = clean_name(field.file_name().unwrap_or("upload"));
        let stored_as = files.len().to_string();
        let mut spool = Spooler::create(&dir.join(&stored_as)).await?;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| ApiError::bad_request(format!("the upload was cut off: {e}")))?
        {
            spool.write(&chunk, &mut budget, max).await?;
        }
        let (bytes, sha256) = spool.finish().await?;
        files.push(SpooledFile {
            name: display,
            stored_as,
            bytes,
            sha256,
        });
    }
    Ok((files, params))
}

async fn get_import(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ImportReport>, ApiError> {
    let access = caller.access(&state.store);
    let what = format!("import {id:?}");
    match state.store.project_of(&Owned::Import(id.clone())).await? {
        Some(project) => access.require_project(Action::Read, project, &what).await?,
        // Still queued (no row yet, or a retry between its old and new row): the project is
        // in the queued request; one without (queued before projects) is in no project.
        None => {
            let Some(report) = state.imports.report(&id).await? else {
                return Err(ApiError::not_found(format!("no {what}")));
            };
            let project = match report.params.project.as_deref() {
                Some(slug) => state.store.project_id(Some(slug)).await?.unwrap_or(-1),
                None => -1,
            };
            access.require_project(Action::Read, project, &what).await?;
        }
    }
    state
        .imports
        .report(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no import {id:?}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
}

async fn list_imports(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ImportReport>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let access = caller.access(&state.store);
    access.require_signed_in(Action::Read, "imports").await?;
    let projects = state.store.import_projects().await?;
    let all = state.imports.recent(if access.readable().is_some() { 2000 } else { limit }).await?;
    let mut kept = access.keep(all, |r| r.id.clone(), &projects);
    kept.truncate(limit as usize);
    Ok(Json(kept))
}

async fn retry_import(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let access = caller.access(&state.store);
    let project = access
        .require(Action::Edit, &Owned::Import(id.clone()), &format!("import {id:?}"))
        .await?;
    access.audit("import_retried", format!("import {id}"), Some(project), "").await;
    match state.imports.retry(&id).await? {
        Ok(()) => {
            let report = state.imports.report(&id).await?;
            Ok((StatusCode::ACCEPTED, Json(report)).into_response())
        }
        Err(message) if message.starts_with("no import") => Err(ApiError::not_found(message)),
        Err(message) => Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message,
        }),
    }
}

#[derive(Serialize)]
struct FormatInfo {
    name: &'static str,
    title: &'static str,
}

async fn formats() -> Json<Vec<FormatInfo>> {
    // Public knowledge (what caplens reads); behind sign-in like every non-public route.
    Json(
        Format::ALL
            .iter()
            .map(|f| FormatInfo {
                name: f.name(),
                title: f.title(),
            })
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectQuery {
    filename: Option<String>,
}

/// What `POST /imports/detect` answers.
#[derive(Serialize)]
struct Detected {
    format: Option<&'static str>,
    title: Option<&'static str>,
    /// Why no format matched.
    message: Option<String>,
    hints: FileHints,
}

/// Detects the format of the first bytes of a file (the body) and reads hints from them.
async fn detect(
    query: Result<Query<DetectQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Json<Detected>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let bytes = axum::body::to_bytes(body, SNIFF_BYTES + 64 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("send at most {SNIFF_BYTES} bytes: {e}")))?;
    let name = clean_name(query.filename.as_deref().unwrap_or("upload"));
    let tmp = tempfile_in_memory(&bytes).map_err(|e| internal(format!("detect: {e}")))?;
    let input = InputFile::new(tmp.path(), name.clone());
    let head = read_head(&input, SNIFF_BYTES).unwrap_or_else(|_| bytes.to_vec());
    let format = detect_head(&name, &head);
    let hints = format
        .and_then(|f| importer(f).hints(&input).ok())
        .unwrap_or_default();
    Ok(Json(Detected {
        format: format.map(Format::name),
        title: format.map(Format::title),
        message: format.is_none().then(|| {
            json_document_note(&name, &head).unwrap_or_else(|| {
                "not a format caplens recognises from its first records; choose the format by hand"
                    .to_owned()
            })
        }),
        hints,
    }))
}

/// The bytes in a temporary file (importers read files), removed on drop.
fn tempfile_in_memory(bytes: &[u8]) -> std::io::Result<TempFile> {
    let path =
        std::env::temp_dir().join(format!("caplens-detect-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, bytes)?;
    Ok(TempFile(path))
}

struct TempFile(std::path::PathBuf);

impl TempFile {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
