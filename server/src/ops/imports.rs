//! Imports as the REST API, the upload page and `caplens push` make them: who may upload where
//! (an editor of the project the runs go to), limits per token, reading an import's report,
//! listing, retrying, and detecting a file's format before uploading it. The bytes themselves
//! are streamed to the spool by the web layer; the experiment and project an import writes
//! into are decided again inside the import's transaction (`ingest::pipeline`).

use serde::Serialize;

use super::{Access, OpError};
use crate::auth::ratelimit::Limits;
use crate::auth::{Action, PrincipalKind};
use crate::ingest::formats::json_document_note;
use crate::ingest::pipeline::{ImportParams, ImportReport, DEFAULT_EXPERIMENT};
use crate::ingest::service::{ImportService, SpooledFile, SpooledRequest};
use crate::ingest::{detect_head, read_head, FileHints, Format, InputFile, SNIFF_BYTES};
use crate::storage::access::Owned;
use crate::storage::now_rfc3339;

/// Leave to spool an upload: the caller may edit the project the runs go to.
#[derive(Debug, Clone)]
pub struct UploadPermit {
    project_slug: String,
    project_id: i64,
    token_id: Option<i64>,
}

/// Authorises an upload before a byte of it is stored: the project named in the query (or the
/// token's, or `default`) must be one the caller edits; an API token's uploads are limited per
/// hour.
pub async fn begin_upload(
    access: &Access<'_>,
    limits: &Limits,
    params: &ImportParams,
) -> Result<UploadPermit, OpError> {
    let (project_slug, project_id) = access
        .project_for_write(params.project.as_deref(), "uploads")
        .await?;
    let token_id = match access.principal.kind {
        PrincipalKind::Token { id, .. } => Some(id),
        _ => None,
    };
    if let Some(id) = token_id {
        limits
            .uploads
            .hit_n(&format!("token {id}"), 1)
            .await?
            .map_err(|wait| {
                OpError::RateLimited(format!(
                    "this token uploaded too often in the last hour; {}",
                    crate::auth::ratelimit::wait_text(wait)
                ))
            })?;
    }
    Ok(UploadPermit {
        project_slug,
        project_id,
        token_id,
    })
}

/// Queues a spooled upload. The metadata part may have named another project (authorised
/// again); an experiment slug taken by a project the caller cannot write to is refused without
/// saying whose it is. The import decides its experiment again when it writes.
pub async fn submit_upload(
    access: &Access<'_>,
    imports: &ImportService,
    permit: UploadPermit,
    id: &str,
    files: Vec<SpooledFile>,
    mut params: ImportParams,
) -> Result<ImportReport, OpError> {
    params.validate().map_err(OpError::Invalid)?;
    if files.is_empty() {
        return Err(OpError::invalid(
            "no file in the request: send the file as the body, or as a multipart part named \"file\"",
        ));
    }
    let (project_slug, project_id) = match params.project.as_deref() {
        Some(p) if p != permit.project_slug => access.project_for_write(Some(p), "uploads").await?,
        _ => (permit.project_slug.clone(), permit.project_id),
    };
    let experiment = params
        .experiment
        .clone()
        .unwrap_or_else(|| DEFAULT_EXPERIMENT.to_owned());
    check_experiment_slug(access, &experiment, project_id).await?;
    params.project = Some(project_slug);
    let request = SpooledRequest {
        files,
        params,
        token_id: permit.token_id,
        created_at: now_rfc3339(),
        queued_by: None,
    };
    imports.submit(id.to_owned(), request)?;
    access
        .audit(
            "import",
            format!("import {id}"),
            Some(project_id),
            format!("experiment {experiment}"),
        )
        .await;
    imports
        .report(id)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no import {id:?}")))
}

/// An experiment slug a write into `project` may use: free, or already the project's. Slugs are
/// one namespace (they are the experiments' URLs); a slug another project holds is "not
/// available", and nothing more is said about it.
pub(in crate::ops) async fn check_experiment_slug(
    access: &Access<'_>,
    slug: &str,
    project: i64,
) -> Result<(), OpError> {
    match access
        .store
        .project_of(&Owned::Experiment(slug.to_owned()))
        .await?
    {
        Some(p) if p != project => Err(OpError::conflict(format!(
            "experiment: the slug {slug:?} is not available in this project; choose another"
        ))),
        _ => Ok(()),
    }
}

/// An import's report: live while it runs, stored once finished. Share links never read
/// imports (they open one experiment's views).
pub async fn import(
    access: &Access<'_>,
    imports: &ImportService,
    id: &str,
) -> Result<ImportReport, OpError> {
    let what = format!("import {id:?}");
    if access.principal.shared_experiment().is_some() {
        return Err(OpError::not_found(format!("no {what}")));
    }
    match access
        .store
        .project_of(&Owned::Import(id.to_owned()))
        .await?
    {
        Some(project) => access.require_project(Action::Read, project, &what).await?,
        // Still queued (no row yet, or a retry between its old and new row): the project is
        // in the queued request; one without (queued before projects) is in no project.
        None => {
            let Some(report) = imports.report(id).await? else {
                return Err(OpError::not_found(format!("no {what}")));
            };
            let project = match report.params.project.as_deref() {
                Some(slug) => access.store.project_id(Some(slug)).await?.unwrap_or(-1),
                None => -1,
            };
            access.require_project(Action::Read, project, &what).await?;
        }
    }
    imports
        .report(id)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no {what}")))
}

/// The newest imports of the projects the caller reads.
pub async fn imports(
    access: &Access<'_>,
    imports: &ImportService,
    limit: i64,
) -> Result<Vec<ImportReport>, OpError> {
    access.require_signed_in(Action::Read, "imports").await?;
    if access.principal.shared_experiment().is_some() {
        return Ok(Vec::new());
    }
    let projects = access.store.import_projects().await?;
    let all = imports
        .recent(if access.readable().is_some() {
            2000
        } else {
            limit
        })
        .await?;
    let mut kept = access.keep(all, |r| r.id.clone(), &projects);
    kept.truncate(limit.max(0) as usize);
    Ok(kept)
}

/// Runs a failed import again from its kept upload (editors of its project).
pub async fn retry(
    access: &Access<'_>,
    imports: &ImportService,
    id: &str,
) -> Result<Option<ImportReport>, OpError> {
    let project = access
        .require(
            Action::Edit,
            &Owned::Import(id.to_owned()),
            &format!("import {id:?}"),
        )
        .await?;
    access
        .audit("import_retried", format!("import {id}"), Some(project), "")
        .await;
    match imports.retry(id).await? {
        Ok(()) => Ok(imports.report(id).await?),
        Err(message) if message.starts_with("no import") => Err(OpError::NotFound(message)),
        Err(message) => Err(OpError::Conflict(message)),
    }
}

/// What `POST /imports/detect` answers.
#[derive(Debug, Serialize)]
pub struct Detected {
    pub format: Option<&'static str>,
    pub title: Option<&'static str>,
    /// Why no format matched.
    pub message: Option<String>,
    pub hints: FileHints,
}

/// Detects the format of a file's first bytes and reads hints from them. Needs upload rights
/// (an editor somewhere): detection parses untrusted bytes, so it is not for every reader. The
/// parsing runs off the async threads, within the sniff budget.
pub async fn detect(
    access: &Access<'_>,
    file_name: &str,
    bytes: Vec<u8>,
) -> Result<Detected, OpError> {
    may_upload_somewhere(access).await?;
    if bytes.len() > SNIFF_BYTES + 64 * 1024 {
        return Err(OpError::TooLarge(format!(
            "send at most the first {SNIFF_BYTES} bytes of the file"
        )));
    }
    let name = file_name.to_owned();
    tokio::task::spawn_blocking(move || detect_bytes(&name, &bytes))
        .await
        .map_err(|e| OpError::invalid(format!("detection failed: {e}")))?
}

/// Whether the caller may upload into at least one project (API tokens: their own).
async fn may_upload_somewhere(access: &Access<'_>) -> Result<(), OpError> {
    if let Some(project) = access.token_project() {
        return access
            .require_project(Action::Edit, project, "uploads")
            .await;
    }
    access.require_signed_in(Action::Read, "uploads").await?;
    let projects = access.store.projects().await?;
    if projects.iter().any(|p| access.may(Action::Edit, p.id)) {
        return Ok(());
    }
    Err(OpError::forbidden(
        "detecting a file's format needs upload rights: an editor's role in a project",
    ))
}

fn detect_bytes(name: &str, bytes: &[u8]) -> Result<Detected, OpError> {
    let dir =
        std::env::temp_dir().join(format!("caplens-detect-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| OpError::invalid(format!("detect: {e}")))?;
    let _cleanup = RemoveOnDrop(dir.clone());
    let path = dir.join("head");
    std::fs::write(&path, bytes).map_err(|e| OpError::invalid(format!("detect: {e}")))?;
    let input = InputFile::new(&path, name.to_owned());
    let head = read_head(&input, SNIFF_BYTES).unwrap_or_else(|_| bytes.to_vec());
    let format = detect_head(name, &head);
    let hints = format
        .and_then(|f| f.importer().hints(&input).ok())
        .unwrap_or_default();
    Ok(Detected {
        format: format.map(Format::name),
        title: format.map(Format::title),
        message: format.is_none().then(|| {
            json_document_note(name, &head).unwrap_or_else(|| {
                "not a format caplens recognises from its first records; choose the format by hand".to_owned()
            })
        }),
        hints,
    })
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
