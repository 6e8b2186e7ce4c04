//! `/api/v1/imports`: uploads (raw body or multipart) streamed to the spool, their progress and
//! results, retries; `/api/v1/imports/detect` (what a file is, before uploading it) and
//! `/api/v1/formats`. Who may upload where is `ops::imports`' question: asked before a byte is
//! spooled, and again for the project the metadata part names.

use axum::{
    body::Body,
    extract::{FromRequest, Multipart, Path, Query, RawQuery, Request, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::caller::require_write_credentials;
use super::error::ApiError;
use super::AppState;
use crate::ingest::pipeline::{new_import_id, ImportParams, ImportReport};
use crate::ingest::service::SpooledFile;
use crate::ingest::{Format, SNIFF_BYTES};
use crate::ops::{self, Caller};
use crate::storage::hex;

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the upload is larger than this server accepts ({max} bytes, CAPLENS_MAX_UPLOAD_BYTES); compress it (.gz or .zst are read directly) or ask the operator to raise the limit"
        ),
    )
}

/// Streams one body (or multipart field) into a spool file; returns (bytes, sha256).
pub(super) struct Spooler {
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
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
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
pub(super) struct Accepted {
    #[serde(flatten)]
    report: ImportReport,
    /// Where to follow the import.
    status_url: String,
}

pub(super) async fn create_import(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, request.headers())?;
    let (params, filename) = ImportParams::from_query(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let access = caller.access(&state.store);
    // Authorised before a byte is spooled; again by the operation if the metadata part names
    // another project.
    let permit = ops::imports::begin_upload(&access, state.auth.limits(), &params).await?;
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
    let submitted = match spool_request(&state, &dir, params, filename, request).await {
        Ok((files, params)) => {
            ops::imports::submit_upload(&access, &state.imports, permit, &id, files, params)
                .await
                .map_err(ApiError::from)
        }
        Err(e) => Err(e),
    };
    let report = match submitted {
        Ok(report) => report,
        Err(e) => {
            state.imports.discard_spool(&id).await;
            return Err(e);
        }
    };
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

pub(super) async fn get_import(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ImportReport>, ApiError> {
    Ok(Json(
        ops::imports::import(&caller.access(&state.store), &state.imports, &id).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    limit: Option<i64>,
}

pub(super) async fn list_imports(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ImportReport>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    Ok(Json(
        ops::imports::imports(&caller.access(&state.store), &state.imports, limit).await?,
    ))
}

pub(super) async fn retry_import(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_write_credentials(&caller.principal, &headers)?;
    let report = ops::imports::retry(&caller.access(&state.store), &state.imports, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(report)).into_response())
}

#[derive(Serialize)]
pub(super) struct FormatInfo {
    name: &'static str,
    title: &'static str,
    extensions: &'static [&'static str],
}

pub(super) async fn formats() -> Json<Vec<FormatInfo>> {
    // Public knowledge (what caplens reads); behind sign-in like every non-public route.
    Json(
        Format::all()
            .map(|f| FormatInfo {
                name: f.name(),
                title: f.title(),
                extensions: f.spec().extensions,
            })
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DetectQuery {
    filename: Option<String>,
}

/// Detects the format of the first bytes of a file (the body) and reads hints from them.
pub(super) async fn detect(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<DetectQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Json<ops::imports::Detected>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let access = caller.access(&state.store);
    let bytes = axum::body::to_bytes(body, SNIFF_BYTES + 64 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("send at most {SNIFF_BYTES} bytes: {e}")))?;
    let name = clean_name(query.filename.as_deref().unwrap_or("upload"));
    Ok(Json(
        ops::imports::detect(&access, &name, bytes.to_vec()).await?,
    ))
}
