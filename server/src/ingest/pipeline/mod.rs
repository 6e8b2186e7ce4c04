//! The one import pipeline behind REST, browser and CLI uploads.
//!
//! ```text
//! files ──(format: given or detect)──> RolloutImporter::read ──> PrepareSink (prepare.rs, on
//!   the parser thread: grade, quality checks, token means, trace encoding and digest; batches
//!   bounded in rows and bytes) ──bounded channel──> Writer (writer.rs: runs, problems, trace
//!   packs, rollups, token statistics; rollouts to the storage's BulkWriter, which COPYs them
//!   into PostgreSQL or INSERTs them into SQLite) ──> finish (per-problem stats, run aggregates
//!   and token statistics, experiment links, import row) ──> COMMIT
//! ```
//!
//! The types of the API (parameters, report, progress) are in report.rs; no SQL is written
//! here (`storage::bulk` and `storage::imports` hold it).
//!
//! Guarantees (tests in server/tests/ingest.rs):
//! - **all or nothing**: everything an import writes, including its final status, is one
//!   database transaction; a failure or a killed server leaves no run visible (trace packs of a
//!   failed import are deleted; an interrupted import is marked failed at the next start);
//! - **idempotent**: a run remembers the SHA-256 of the files it came from; the same files for
//!   the same model and dataset are reported as a duplicate of the earlier import and add nothing;
//! - **bounded memory**: at most `CHANNEL_BATCHES + 2` batches of at most `BATCH_ROWS` rows and
//!   `BATCH_BYTES` bytes are in flight; the rest grows with problems and distinct answers only.

mod prepare;
mod report;
mod writer;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use caplens_analysis::verdicts::VerdictTally;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub use prepare::{caplens_verdict, grade};
pub use report::{
    guess_stage, is_slug, new_import_id, sha256_file, ImportFile, ImportFileInfo, ImportParams,
    ImportProgress, ImportReport, ImportStatus, ImportedRun, STAGES,
};

use super::{detect, Format, InputError, ReadStop, SourceInfo};
use crate::error::StoreError;
use crate::storage::blobs::BlobStore;
use crate::storage::imports::{ImportOutcome, NewImport};
use crate::storage::{hex, now_rfc3339, Store};
use prepare::{FilePlan, PrepareSink, Prepared};
use writer::Writer;

/// Rows per batch sent from the parser thread to the writer.
const BATCH_ROWS: usize = 2048;
/// Bytes (responses and traces) per batch, so batches of long traces stay small.
const BATCH_BYTES: usize = 8 << 20;
/// Batches waiting in the channel: enough for the parser to keep working while the database
/// writes a buffer (at most 16 x 8 MB in flight).
const CHANNEL_BATCHES: usize = 16;
/// Rejected rows' errors kept for the report.
pub const ERRORS_KEPT: usize = 20;
/// The experiment runs go to when none is named.
pub const DEFAULT_EXPERIMENT: &str = "uploads";

/// Why an import did not complete; becomes the report's `message`.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("duplicate")]
    Duplicate {
        of: String,
        runs: Vec<i64>,
        why: String,
    },
}

/// Runs one import to its end and returns its report; the report is also stored in the
/// `imports` row. Never panics on input; every failure is a `failed` report with a message.
pub async fn run_import(
    store: &Store,
    id: &str,
    files: Vec<ImportFile>,
    params: ImportParams,
    progress: Arc<ImportProgress>,
    token_id: Option<i64>,
) -> ImportReport {
    let created_at = now_rfc3339();
    let mut report = ImportReport {
        id: id.to_owned(),
        status: ImportStatus::Processing,
        files: Vec::new(),
        params: params.clone(),
        experiment: None,
        bytes_total: progress.bytes_total,
        bytes_read: 0,
        rows_read: 0,
        rows_stored: 0,
        rows_rejected: 0,
        errors: Vec::new(),
        verdicts: VerdictTally::default(),
        runs: Vec::new(),
        warnings: Vec::new(),
        message: None,
        duplicate_of: None,
        created_at,
        finished_at: None,
    };
    let heartbeat = renew_lease_while_running(store, id, &progress);
    let outcome = prepare_and_store(store, &mut report, files, &params, &progress, token_id).await;
    if let Some(h) = heartbeat {
        h.abort();
    }
    report.bytes_read = progress.bytes_read();
    report.rows_read = progress.rows_read.load(Ordering::Relaxed);
    report.rows_rejected = progress.rows_rejected.load(Ordering::Relaxed);
    report.errors = progress.errors();
    report.finished_at = Some(now_rfc3339());
    match outcome {
        Ok(()) => {
            report.status = ImportStatus::Completed;
            report.rows_stored = progress.rows_stored.load(Ordering::Relaxed);
            report.warnings = report::warnings_of(&report.runs);
            // The completed row was written inside the import's transaction.
            return report;
        }
        Err(Failure::Duplicate { of, runs, why }) => {
            report.status = ImportStatus::Duplicate;
            report.duplicate_of = Some(of.clone());
            report.message = Some(format!(
                "already imported as {why}, by {of} (runs {}); nothing was added",
                runs.iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            report.rows_stored = 0;
            report.runs.clear();
        }
        Err(e) => {
            report.status = ImportStatus::Failed;
            report.message = Some(e.to_string());
            report.rows_stored = 0;
            report.runs.clear();
        }
    }
    let _ = store
        .blobs
        .delete_prefix(&BlobStore::import_traces_prefix(id))
        .await;
    if let Err(e) = record_unstored(store, &report, token_id).await {
        tracing::error!(import = id, error = %e, "could not record the import's result");
    }
    report
}

/// Test hook for crash safety: with this variable set, an import stops after its first batch is
/// written, with its transaction open, says so on stderr and waits to be killed. Lets a test kill
/// an import mid-write without racing the clock (server/tests/cli.rs).
pub const HOLD_IMPORT_FOR_TEST: &str = "CAPLENS_TEST_HOLD_IMPORT";

async fn hold_import_open(progress: &ImportProgress) -> ! {
    eprintln!(
        "{HOLD_IMPORT_FOR_TEST}: holding the import open after {} stored rows",
        progress.rows_stored.load(Ordering::Relaxed)
    );
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

/// Each file's format (`format`, or detected) and hints, with what the report says of it and
/// the upload's SHA-256 when it was hashed while uploading. Reads the files' heads: call it off
/// the async threads.
fn plan_files(
    files: Vec<ImportFile>,
    format: Option<Format>,
) -> Result<Vec<(FilePlan, ImportFileInfo, Option<String>)>, InputError> {
    files
        .into_iter()
        .map(|file| {
            let format = match format {
                Some(f) => f,
                None => detect(&file.input)?,
            };
            let hints = format.importer().hints(&file.input)?;
            let info = ImportFileInfo {
                name: file.input.name.clone(),
                bytes: std::fs::metadata(&file.input.path)
                    .map(|m| m.len())
                    .unwrap_or(0),
                sha256: file.sha256.clone().unwrap_or_default(),
                format: Some(format.name().to_owned()),
            };
            let plan = FilePlan {
                input: file.input,
                format,
                hints,
            };
            Ok((plan, info, file.sha256))
        })
        .collect()
}

async fn prepare_and_store(
    store: &Store,
    report: &mut ImportReport,
    files: Vec<ImportFile>,
    params: &ImportParams,
    progress: &Arc<ImportProgress>,
    token_id: Option<i64>,
) -> Result<(), Failure> {
    params.validate().map_err(Failure::Invalid)?;
    if files.is_empty() {
        return Err(Failure::Invalid("no file to import".into()));
    }
    // Formats and hints first: a file that is not what it claims fails before any write. They
    // parse the files' heads, so on a blocking thread like the records. The SHA-256 of files not
    // hashed while uploading runs on its own thread beside the import (a separate pass over the
    // file first would lengthen a CLI import); it is needed only at the end, for the duplicate
    // check.
    let format = params.format();
    let planned = tokio::task::spawn_blocking(move || plan_files(files, format))
        .await
        .map_err(|e| {
            Failure::Invalid(format!(
                "reading the files' heads stopped unexpectedly: {e}"
            ))
        })??;
    let mut plans = Vec::with_capacity(planned.len());
    let mut to_hash = Vec::new();
    for (i, (plan, info, sha256)) in planned.into_iter().enumerate() {
        if sha256.is_none() {
            to_hash.push((i, plan.input.clone()));
        }
        report.files.push(info);
        plans.push(plan);
    }
    let hashing = tokio::task::spawn_blocking(move || {
        to_hash
            .into_iter()
            .map(|(i, input)| {
                sha256_file(&input.path)
                    .map(|h| (i, h))
                    .map_err(|e| input.error(format!("cannot read: {e}")))
            })
            .collect::<Result<Vec<(usize, String)>, InputError>>()
    });
    let experiment = params
        .experiment
        .clone()
        .unwrap_or_else(|| DEFAULT_EXPERIMENT.to_owned());
    report.experiment = Some(experiment.clone());
    insert_processing_row(store, report, token_id).await?;

    let mut tx = store.begin_bulk().await?;
    // The project is found in the transaction that writes into it.
    let project_slug = params
        .project
        .as_deref()
        .unwrap_or(crate::storage::access::DEFAULT_PROJECT);
    let project_id = tx.project_id(project_slug).await?.ok_or_else(|| {
        Failure::Invalid(format!("project: there is no project {project_slug:?}"))
    })?;
    let mut writer = Writer::new(store, &report.id, params, project_id);
    writer.file_names = report.files.iter().map(|f| f.name.clone()).collect();
    writer.hints = plans.iter().map(|p| p.hints.clone()).collect();
    let (sender, mut receiver) = mpsc::channel::<Vec<Prepared>>(CHANNEL_BATCHES);
    let parser_progress = progress.clone();
    let skip_invalid = params.skip_invalid.unwrap_or(false);
    // What each file says about its run (SourceInfo), collected by the parser.
    let parser = tokio::task::spawn_blocking(move || -> Result<Vec<SourceInfo>, ReadStop> {
        let mut sources = Vec::with_capacity(plans.len());
        for (file_index, plan) in plans.iter().enumerate() {
            let mut sink =
                PrepareSink::new(file_index, plan, &sender, skip_invalid, &parser_progress);
            plan.format.importer().read(&plan.input, &mut sink)?;
            sink.flush()?;
            sources.push(sink.source);
        }
        Ok(sources)
    });
    let mut write_result: Result<(), Failure> = Ok(());
    let hold_for_test = std::env::var_os(HOLD_IMPORT_FOR_TEST).is_some();
    while let Some(batch) = receiver.recv().await {
        if let Err(e) = writer.write_batch(&mut tx, batch, progress).await {
            write_result = Err(e);
            break;
        }
        if hold_for_test {
            // Written into the open transaction (not only buffered), then held.
            if let Err(e) = tx.flush_rollouts().await {
                write_result = Err(e.into());
                break;
            }
            hold_import_open(progress).await;
        }
    }
    // Dropping the receiver makes a parser still sending stop at its next batch.
    drop(receiver);
    let parsed = parser
        .await
        .map_err(|e| Failure::Invalid(format!("the reader stopped unexpectedly: {e}")))?;
    write_result?;
    let sources = match parsed {
        Ok(sources) => sources,
        Err(ReadStop::Input(e)) => return Err(Failure::Input(e)),
        Err(ReadStop::Sink(m)) => return Err(Failure::Invalid(m)),
    };
    writer.sources = sources;
    if writer.runs.iter().all(|r| r.rows == 0) {
        let rejected = progress.rows_rejected.load(Ordering::Relaxed);
        return Err(Failure::Invalid(if rejected > 0 {
            format!(
                "every record was rejected ({rejected}); nothing was imported. First error: {}",
                progress.errors().first().map(String::as_str).unwrap_or("")
            )
        } else {
            "the files hold no valid record; nothing was imported".into()
        }));
    }
    let hashes = hashing
        .await
        .map_err(|e| Failure::Invalid(format!("hashing stopped unexpectedly: {e}")))??;
    for (i, h) in hashes {
        report.files[i].sha256 = h;
    }
    let content_hash = content_hash(&report.files);
    report.runs = writer.finish(&mut tx, &experiment, &content_hash).await?;
    report.verdicts = VerdictTally::default();
    for run in &report.runs {
        report.verdicts.merge(&run.verdicts);
    }
    report.rows_stored = progress.rows_stored.load(Ordering::Relaxed);
    report.rows_read = progress.rows_read.load(Ordering::Relaxed);
    report.rows_rejected = progress.rows_rejected.load(Ordering::Relaxed);
    report.errors = progress.errors();
    report.bytes_read = progress.bytes_read();
    report.status = ImportStatus::Completed;
    report.finished_at = Some(now_rfc3339());
    let files = serde_json::to_string(&report.files).expect("serialises");
    tx.complete_import(
        &Outcome::of(report)
            .with_content(&content_hash, &files)
            .outcome(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The content hash of an import: SHA-256 over its files' SHA-256s, in order.
fn content_hash(files: &[ImportFileInfo]) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.sha256.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

async fn insert_processing_row(
    store: &Store,
    report: &ImportReport,
    token_id: Option<i64>,
) -> Result<(), StoreError> {
    store
        .insert_import(&NewImport {
            id: &report.id,
            format: report.files.first().and_then(|f| f.format.as_deref()),
            files: &serde_json::to_string(&report.files).expect("serialises"),
            params: &serde_json::to_string(&report.params).expect("serialises"),
            bytes_total: report.bytes_total as i64,
            token_id,
            created_at: &report.created_at,
            project: report
                .params
                .project
                .as_deref()
                .unwrap_or(crate::storage::access::DEFAULT_PROJECT),
        })
        .await
}

/// A report's row values, serialised once.
struct Outcome<'r> {
    report: &'r ImportReport,
    errors: String,
    runs: String,
    content: Option<(&'r str, &'r str)>,
}

impl<'r> Outcome<'r> {
    fn of(report: &'r ImportReport) -> Self {
        Outcome {
            report,
            errors: serde_json::to_string(&report.errors).expect("serialises"),
            runs: serde_json::to_string(&report.runs).expect("serialises"),
            content: None,
        }
    }

    fn with_content(mut self, content_hash: &'r str, files: &'r str) -> Self {
        self.content = Some((content_hash, files));
        self
    }

    fn outcome(&self) -> ImportOutcome<'_> {
        let r = self.report;
        ImportOutcome {
            id: &r.id,
            status: r.status.as_str(),
            rows_read: r.rows_read as i64,
            rows_stored: r.rows_stored as i64,
            rows_rejected: r.rows_rejected as i64,
            errors: &self.errors,
            runs: &self.runs,
            message: r.message.as_deref(),
            duplicate_of: r.duplicate_of.as_deref(),
            finished_at: r.finished_at.as_deref(),
            bytes_total: r.bytes_total as i64,
            content: self.content,
        }
    }
}

/// Records a failed or duplicate import (the row may not exist yet when it failed early).
async fn record_unstored(
    store: &Store,
    r: &ImportReport,
    token_id: Option<i64>,
) -> Result<(), StoreError> {
    if !store.import_exists(&r.id).await? {
        insert_processing_row(store, r, token_id).await?;
    }
    store.record_import_outcome(&Outcome::of(r).outcome()).await
}

/// Reads an import's stored report.
pub async fn load_report(store: &Store, id: &str) -> Result<Option<ImportReport>, StoreError> {
    let Some(row) = store.import(id).await? else {
        return Ok(None);
    };
    let params: ImportParams = serde_json::from_str(&row.params).unwrap_or_default();
    let status = ImportStatus::parse(&row.status);
    let runs: Vec<ImportedRun> = serde_json::from_str(&row.runs).unwrap_or_default();
    let mut verdicts = VerdictTally::default();
    for run in &runs {
        verdicts.merge(&run.verdicts);
    }
    Ok(Some(ImportReport {
        id: row.id,
        status,
        files: serde_json::from_str(&row.files).unwrap_or_default(),
        experiment: row.experiment.or_else(|| {
            (status == ImportStatus::Completed).then(|| {
                params
                    .experiment
                    .clone()
                    .unwrap_or_else(|| DEFAULT_EXPERIMENT.to_owned())
            })
        }),
        params,
        bytes_total: row.bytes_total as u64,
        bytes_read: if status.is_finished() {
            row.bytes_total as u64
        } else {
            0
        },
        rows_read: row.rows_read as u64,
        rows_stored: row.rows_stored as u64,
        rows_rejected: row.rows_rejected as u64,
        errors: serde_json::from_str(&row.errors).unwrap_or_default(),
        verdicts,
        warnings: report::warnings_of(&runs),
        runs,
        message: row.message,
        duplicate_of: row.duplicate_of,
        created_at: row.created_at,
        finished_at: row.finished_at,
    }))
}

/// Imports left `processing` by a server that stopped mid-import: their transaction never
/// committed, so nothing of them is visible; they are marked failed (with how to retry) and
/// their trace packs deleted. Returns their ids.
pub async fn recover_interrupted(store: &Store) -> Result<Vec<String>, StoreError> {
    let ids = store.fail_abandoned_imports().await?;
    for id in &ids {
        let _ = store
            .blobs
            .delete_prefix(&BlobStore::import_traces_prefix(id))
            .await;
    }
    Ok(ids)
}

/// On PostgreSQL, renews the import's lease (and records its progress) every third of the lease
/// while it runs, so that other replicas know it is alive; `None` on SQLite (no lease to renew).
fn renew_lease_while_running(
    store: &Store,
    id: &str,
    progress: &Arc<ImportProgress>,
) -> Option<tokio::task::JoinHandle<()>> {
    store.import_lease_until()?;
    let (store, id, progress) = (store.clone(), id.to_owned(), progress.clone());
    let every = crate::storage::imports::import_lease() / 3;
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let rows = progress.rows_read.load(Ordering::Relaxed) as i64;
            match store.renew_import_lease(&id, rows).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(import = %id, error = %e, "could not renew the import lease")
                }
            }
        }
    }))
}
