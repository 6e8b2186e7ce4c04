//! Imports as background jobs of the server: queue, run (one at a time on SQLite, whose writer
//! lock an import holds until it commits), report live progress, keep uploads for a retry.
//!
//! An upload is spooled (its files and a `request.json`) before it is queued, so the id can be
//! handed out at once and an interrupted import can be retried from the same bytes, by any
//! replica: the spool is kept in the blob store under `uploads/{id}/`. With the local blob store
//! the spool folder *is* that blob folder (nothing is copied); with object storage the import
//! reads a local spool (`DATA_DIR/uploads/{id}/`) while a copy goes up beside it, `request.json`
//! last, so a kept upload is complete or absent. Both are removed when the import ends
//! (completed, failed or duplicate); only a process stopped mid-import leaves them, for `retry`
//! (the sweeper removes an interrupted import's kept upload after a week, `storage::sweep`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::pipeline::{
    load_report, run_import, ImportFile, ImportFileInfo, ImportParams, ImportProgress,
    ImportReport, ImportStatus,
};
use super::InputFile;
use crate::config::Backend;
use crate::error::StoreError;
use crate::storage::blobs::{valid_key, BlobStore};
use crate::storage::Store;

/// What the spool folder remembers of a request, to run it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpooledRequest {
    pub files: Vec<SpooledFile>,
    pub params: ImportParams,
    pub token_id: Option<i64>,
    pub created_at: String,
    /// The process that queued it ([`crate::storage::instance_id`]): after a crash, a process on
    /// the same host queues it again only when that one is gone.
    #[serde(default)]
    pub queued_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpooledFile {
    /// The uploader's file name.
    pub name: String,
    /// File name inside the spool folder.
    pub stored_as: String,
    pub bytes: u64,
    pub sha256: String,
}

struct LiveImport {
    status: ImportStatus,
    params: ImportParams,
    files: Vec<ImportFileInfo>,
    progress: Arc<ImportProgress>,
    created_at: String,
    /// The copy of the upload going to object storage (for a retry elsewhere).
    keep: Option<tokio::task::JoinHandle<()>>,
    /// The import's task (a stopping server aborts it: its transaction rolls back).
    task: Option<tokio::task::AbortHandle>,
}

/// The server's import jobs.
#[derive(Clone)]
pub struct ImportService {
    store: Store,
    uploads_dir: PathBuf,
    /// Largest accepted upload, in bytes (all files of one request together).
    pub max_upload_bytes: u64,
    permits: Arc<Semaphore>,
    live: Arc<Mutex<HashMap<String, LiveImport>>>,
}

impl ImportService {
    pub fn new(store: Store, data_dir: &Path, max_upload_bytes: u64) -> Self {
        // SQLite has one writer: imports queue behind each other rather than time out on the
        // lock. PostgreSQL takes a few at once.
        let parallel = match store.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        };
        let uploads_dir = match store.blobs.local_root() {
            Some(root) => root.join("uploads"),
            None => data_dir.join("uploads"),
        };
        ImportService {
            store,
            uploads_dir,
            max_upload_bytes,
            permits: Arc::new(Semaphore::new(parallel)),
            live: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The spool folder of an import.
    pub fn spool_dir(&self, id: &str) -> PathBuf {
        self.uploads_dir.join(id)
    }

    /// Queues a spooled request (files already in `spool_dir(id)`) and returns at once.
    pub fn submit(&self, id: String, mut request: SpooledRequest) -> Result<(), StoreError> {
        let dir = self.spool_dir(&id);
        request.queued_by = Some(crate::storage::instance_id().to_owned());
        let json = serde_json::to_vec_pretty(&request).expect("request serialises");
        std::fs::write(dir.join("request.json"), json).map_err(|source| StoreError::Blob {
            path: dir.display().to_string(),
            source,
        })?;
        let files: Vec<ImportFile> = request
            .files
            .iter()
            .map(|f| ImportFile {
                input: InputFile::new(dir.join(&f.stored_as), f.name.clone()),
                sha256: Some(f.sha256.clone()),
            })
            .collect();
        let inputs: Vec<InputFile> = files.iter().map(|f| f.input.clone()).collect();
        let progress = Arc::new(ImportProgress::for_files(&inputs));
        self.live.lock().expect("live lock").insert(
            id.clone(),
            LiveImport {
                status: ImportStatus::Queued,
                params: request.params.clone(),
                files: request
                    .files
                    .iter()
                    .map(|f| ImportFileInfo {
                        name: f.name.clone(),
                        bytes: f.bytes,
                        sha256: f.sha256.clone(),
                        format: None,
                    })
                    .collect(),
                progress: progress.clone(),
                created_at: request.created_at.clone(),
                keep: self.keep_upload(&id, &request),
                task: None,
            },
        );
        let service = self.clone();
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            let _permit = service.permits.acquire().await.expect("never closed");
            if let Some(live) = service.live.lock().expect("live lock").get_mut(&id) {
                live.status = ImportStatus::Processing;
            }
            let report = run_import(
                &service.store,
                &id,
                files,
                request.params,
                progress,
                request.token_id,
            )
            .await;
            tracing::info!(
                import = %id,
                status = report.status.as_str(),
                rows_stored = report.rows_stored,
                rows_rejected = report.rows_rejected,
                message = report.message.as_deref().unwrap_or(""),
                "import finished"
            );
            let keep = service
                .live
                .lock()
                .expect("live lock")
                .remove(&id)
                .and_then(|l| l.keep);
            if let Some(keep) = keep {
                keep.abort();
                let _ = keep.await;
            }
            service.discard_spool(&id).await;
        });
        if let Some(live) = self.live.lock().expect("live lock").get_mut(&task_id) {
            live.task = Some(task.abort_handle());
        }
        Ok(())
    }

    /// A stopping server gives up the imports it is running: their tasks are dropped, so their
    /// transactions roll back (on SQLite, releasing the write lock), and their spooled uploads
    /// stay for a retry. Waits up to 5 s for the tasks to end; the caller then marks them
    /// interrupted (`Store::release_own_imports`).
    pub async fn abort_running(&self) {
        let tasks: Vec<tokio::task::AbortHandle> = self
            .live
            .lock()
            .expect("live lock")
            .values()
            .filter_map(|l| l.task.clone())
            .collect();
        for t in &tasks {
            t.abort();
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while tasks.iter().any(|t| !t.is_finished()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// With object storage, copies the spooled upload to `uploads/{id}/` in the background,
    /// `request.json` last (its presence means the copy is whole). The local store needs no
    /// copy: the spool folder is in it.
    fn keep_upload(
        &self,
        id: &str,
        request: &SpooledRequest,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.store.blobs.local_root().is_some() {
            return None;
        }
        let (blobs, dir, id, request) = (
            self.store.blobs.clone(),
            self.spool_dir(id),
            id.to_owned(),
            request.clone(),
        );
        Some(tokio::spawn(async move {
            let prefix = BlobStore::upload_prefix(&id);
            for f in &request.files {
                let key = format!("{prefix}/{}", f.stored_as);
                if let Err(e) = blobs.put_file(&key, &dir.join(&f.stored_as)).await {
                    tracing::warn!(import = %id, error = %e, "could not keep the upload in the blob store (a retry will need the files again)");
                    return;
                }
            }
            let json = serde_json::to_vec_pretty(&request).expect("request serialises");
            if let Err(e) = blobs.put(&format!("{prefix}/request.json"), &json).await {
                tracing::warn!(import = %id, error = %e, "could not keep the upload's request in the blob store");
            }
        }))
    }

    /// Brings a kept upload from object storage into the local spool; false when none is kept.
    async fn fetch_kept_upload(&self, id: &str) -> Result<bool, StoreError> {
        if self.store.blobs.local_root().is_some() {
            return Ok(false);
        }
        let prefix = BlobStore::upload_prefix(id);
        let Some(json) = self
            .store
            .blobs
            .get(&format!("{prefix}/request.json"))
            .await?
        else {
            return Ok(false);
        };
        let Ok(request) = serde_json::from_slice::<SpooledRequest>(&json) else {
            return Ok(false);
        };
        let dir = self.create_spool(id)?;
        for f in &request.files {
            if !valid_key(&f.stored_as)
                || !self
                    .store
                    .blobs
                    .get_to_file(
                        &format!("{prefix}/{}", f.stored_as),
                        &dir.join(&f.stored_as),
                    )
                    .await?
            {
                return Ok(false);
            }
        }
        std::fs::write(dir.join("request.json"), &json).map_err(|source| StoreError::Blob {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(true)
    }

    /// The report of an import: live while it runs, stored once finished.
    pub async fn report(&self, id: &str) -> Result<Option<ImportReport>, StoreError> {
        if let Some(report) = self.live_report(id) {
            return Ok(Some(report));
        }
        load_report(&self.store, id).await
    }

    fn live_report(&self, id: &str) -> Option<ImportReport> {
        let (status, files, params, p, created_at) = {
            let live = self.live.lock().expect("live lock");
            let l = live.get(id)?;
            (
                l.status,
                l.files.clone(),
                l.params.clone(),
                l.progress.clone(),
                l.created_at.clone(),
            )
        };
        let errors = p.errors.lock().expect("progress lock").clone();
        Some(ImportReport {
            id: id.to_owned(),
            status,
            files,
            experiment: params.experiment.clone(),
            params,
            bytes_total: p.bytes_total,
            bytes_read: p.bytes_read(),
            rows_read: p.rows_read.load(Ordering::Relaxed),
            rows_stored: p.rows_stored.load(Ordering::Relaxed),
            rows_rejected: p.rows_rejected.load(Ordering::Relaxed),
            errors,
            verdicts: Default::default(),
            runs: Vec::new(),
            warnings: Vec::new(),
            message: None,
            duplicate_of: None,
            created_at,
            finished_at: None,
        })
    }

    /// Recent imports, newest first (live ones included).
    pub async fn recent(&self, limit: i64) -> Result<Vec<ImportReport>, StoreError> {
        let mut out: Vec<ImportReport> = {
            let live = self.live.lock().expect("live lock");
            let ids: Vec<String> = live.keys().cloned().collect();
            drop(live);
            ids.iter().filter_map(|id| self.live_report(id)).collect()
        };
        let ids = self.store.recent_import_ids(limit).await?;
        for id in ids {
            if out.iter().any(|r| r.id == id) {
                continue;
            }
            if let Some(r) = load_report(&self.store, &id).await? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        out.truncate(limit.max(0) as usize);
        Ok(out)
    }

    /// Runs a failed import again from its kept upload. `Ok(false)` when there is nothing to
    /// retry (not failed, or its upload is gone).
    pub async fn retry(&self, id: &str) -> Result<Result<(), String>, StoreError> {
        if self.live.lock().expect("live lock").contains_key(id) {
            return Ok(Err("the import is still running".into()));
        }
        let Some(report) = load_report(&self.store, id).await? else {
            return Ok(Err(format!("no import {id}")));
        };
        if report.status != ImportStatus::Failed {
            return Ok(Err(format!(
                "only a failed import can be retried; this one is {}",
                report.status.as_str()
            )));
        }
        let request_path = self.spool_dir(id).join("request.json");
        if !request_path.is_file() {
            // Kept by another replica: from the blob store.
            self.fetch_kept_upload(id).await?;
        }
        let request: SpooledRequest = match std::fs::read(&request_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(r) => r,
            None => {
                return Ok(Err(
                    "its upload is no longer kept (only imports interrupted by a server stop keep it); upload the files again".into(),
                ))
            }
        };
        self.store.delete_import(id).await?;
        self.submit(id.to_owned(), request)?;
        Ok(Ok(()))
    }

    /// A new spool folder for an upload.
    pub fn create_spool(&self, id: &str) -> Result<PathBuf, StoreError> {
        let dir = self.spool_dir(id);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Blob {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(dir)
    }

    /// Removes the spool folder of an upload (refused before being queued, or ended), and its
    /// kept copy in object storage.
    pub async fn discard_spool(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.spool_dir(id));
        if self.store.blobs.local_root().is_none() {
            if let Err(e) = self
                .store
                .blobs
                .delete_prefix(&BlobStore::upload_prefix(id))
                .await
            {
                tracing::warn!(import = %id, error = %e, "could not remove a kept upload (the sweeper will)");
            }
        }
    }

    /// After a start: imports interrupted mid-way are marked failed (nothing of them was
    /// committed; their uploads stay for `retry`); uploads that were still queued are queued
    /// again. Returns (interrupted, requeued) ids.
    pub async fn recover(&self) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let interrupted = super::pipeline::recover_interrupted(&self.store).await?;
        let mut requeued = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.uploads_dir) else {
            return Ok((interrupted, requeued));
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let request: Option<SpooledRequest> = std::fs::read(entry.path().join("request.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let known = load_report(&self.store, &id).await?.is_some();
            // Queued by a process that may still be running (another replica sharing this
            // folder): not ours to queue.
            let orphaned = request.as_ref().is_some_and(|r| {
                r.queued_by
                    .as_deref()
                    .is_none_or(crate::storage::instance_is_dead)
            });
            match request {
                Some(_) if !known && !orphaned => {}
                Some(request) if !known => {
                    self.submit(id.clone(), request)?;
                    requeued.push(id);
                }
                // A failed import keeps its upload for retry; anything else is debris of an
                // upload cut off before it was queued.
                _ if known => {}
                // Debris of an upload cut off before it was queued; a fresh folder may be an
                // upload still arriving at another replica that shares this store.
                _ if modified_before(&entry.path(), std::time::Duration::from_secs(3600)) => {
                    self.discard_spool(&id).await
                }
                _ => {}
            }
        }
        Ok((interrupted, requeued))
    }
}

/// Whether `path` was last modified longer than `age` ago (unknown: no).
fn modified_before(path: &Path, age: std::time::Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|elapsed| elapsed > age)
}
