//! The one import pipeline behind REST, browser and CLI uploads.
//!
//! ```text
//! files ──(format: given or detect)──> RolloutImporter::read ──> PrepareSink (parser thread:
//!   grade, quality checks, token means, trace encoding and digest; batches bounded in rows and
//!   bytes) ──bounded channel──> Writer (async: runs, problems, rollouts, trace packs, rollups,
//!   token statistics) ──> finish (per-problem stats, run aggregates and token statistics,
//!   experiment links, import row) ──> COMMIT
//! ```
//!
//! Guarantees (tests in server/tests/ingest.rs):
//! - **all or nothing**: everything an import writes, including its final status, is one
//!   database transaction; a failure or a killed server leaves no run visible (trace packs of a
//!   failed import are deleted; an interrupted import is marked failed at the next start);
//! - **idempotent**: a run remembers the SHA-256 of the files it came from; the same files for
//!   the same model and dataset are reported as a duplicate of the earlier import and add nothing;
//! - **bounded memory**: at most `CHANNEL_BATCHES + 2` batches of at most `BATCH_ROWS` rows and
//!   `BATCH_BYTES` bytes are in flight; the rest grows with problems and distinct answers only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use caplens_analysis::quality::QualityChecks;
use caplens_analysis::rollup::RunRollup;
use caplens_analysis::token_stats::{RolloutTokens, TokenStatsAccumulator, TraceTokens};
use caplens_analysis::tokens::{rollout_token_means, RolloutTokenMeans};
use caplens_analysis::trace::{encode, TokenTrace, TopAlternative};
use caplens_analysis::verdicts::{CaplensVerdict, RolloutVerdicts, VerdictSource, VerdictTally};
use caplens_analysis::verifier::{extract_answer, verify, Verdict};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{
    detect, importer, FileHints, Format, InputError, InputFile, ReadStop, RecordOutcome,
    RecordSink, RolloutRecord, SourceInfo,
};
use crate::error::StoreError;
use crate::storage::blobs::{BlobStore, TracePack};
use crate::storage::catalog::{self, quality_flags, NewModel, NewRun, Tx};
use crate::storage::{db, now_rfc3339, Store};

/// Rows per batch sent from the parser thread to the writer.
const BATCH_ROWS: usize = 2048;
/// Bytes (responses and traces) per batch, so batches of long traces stay small.
const BATCH_BYTES: usize = 8 << 20;
/// Batches waiting in the channel.
const CHANNEL_BATCHES: usize = 4;
/// Rows per multi-row INSERT: 17 columns x 512 rows stays under both databases' parameter
/// limits (SQLite 32766, PostgreSQL 65535).
const INSERT_ROWS: usize = 512;
/// Rejected rows' errors kept for the report.
pub const ERRORS_KEPT: usize = 20;
/// The experiment runs go to when none is named.
pub const DEFAULT_EXPERIMENT: &str = "uploads";

/// What the uploader says about the files: the REST query parameters, the JSON metadata part,
/// the CLI flags. Every field is optional; see docs/api.md "Imports".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// Experiment slug; created if it does not exist (default `uploads`).
    pub experiment: Option<String>,
    /// Model name; overrides the model named in the file.
    pub model: Option<String>,
    /// base, sft, rl, tir or other (default: guessed from the model name).
    pub stage: Option<String>,
    /// Name of the model this one was trained from (must exist).
    pub parent: Option<String>,
    /// Training step of the checkpoint.
    pub step: Option<i64>,
    /// Dataset name, when the file does not name one.
    pub dataset: Option<String>,
    /// Format name (default: detected).
    pub format: Option<String>,
    /// Run label (default: the file name).
    pub label: Option<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
    pub seed: Option<i64>,
    /// Skip invalid rows (reported) instead of failing the import.
    pub skip_invalid: Option<bool>,
    /// Show caplens' verdicts by default instead of the file's (both are stored either way;
    /// `verdicts=` switches any view).
    pub regrade: Option<bool>,
    /// The project the runs (and a new experiment, new datasets) go to, by slug (default:
    /// `default`; an API token's own project). Set by the server after authorisation.
    pub project: Option<String>,
}

pub const STAGES: [&str; 5] = ["base", "sft", "rl", "tir", "other"];

impl ImportParams {
    /// Checks the values; the error names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(f) = &self.format {
            if Format::from_name(f).is_none() {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                return Err(format!(
                    "format: unknown format {f:?}; one of {}",
                    names.join(", ")
                ));
            }
        }
        if let Some(s) = &self.stage {
            if !STAGES.contains(&s.as_str()) {
                return Err(format!("stage: {s:?} is not one of {}", STAGES.join(", ")));
            }
        }
        if let Some(e) = &self.experiment {
            if !is_slug(e) {
                return Err(format!(
                    "experiment: {e:?} is not a slug (1-64 characters: a-z, 0-9, '-', '_', '.', starting with a letter or digit)"
                ));
            }
        }
        for (name, v) in [
            ("model", &self.model),
            ("parent", &self.parent),
            ("dataset", &self.dataset),
        ] {
            if let Some(v) = v {
                if v.trim().is_empty() || v.len() > 200 || v.chars().any(char::is_control) {
                    return Err(format!("{name}: must be 1-200 printable characters"));
                }
            }
        }
        if let Some(t) = self.temperature {
            if !(t.is_finite() && t >= 0.0) {
                return Err("temperature: must be a finite number >= 0".into());
            }
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err("top_p: must be in (0, 1]".into());
            }
        }
        if self.max_tokens.is_some_and(|m| m <= 0) {
            return Err("max_tokens: must be positive".into());
        }
        Ok(())
    }

    fn format(&self) -> Option<Format> {
        self.format.as_deref().and_then(Format::from_name)
    }
}

/// Experiment slugs: what URLs can carry without escaping.
pub fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(c))
}

/// The stage a model name suggests (`...-base`, `...-sft`/`instruct`, `...-rl`/`grpo`/`ppo`/`zero`).
pub fn guess_stage(model: &str) -> &'static str {
    let lower = model.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |names: &[&str]| words.iter().any(|w| names.contains(w));
    if has(&["rl", "grpo", "ppo", "dapo", "rlvr", "zero", "reinforce"]) {
        "rl"
    } else if has(&["sft", "instruct", "it", "chat", "distill", "distilled"]) {
        "sft"
    } else if has(&["tir"]) {
        "tir"
    } else if has(&["base"]) {
        "base"
    } else {
        "other"
    }
}

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    Queued,
    Processing,
    Completed,
    Failed,
    Duplicate,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Queued => "queued",
            ImportStatus::Processing => "processing",
            ImportStatus::Completed => "completed",
            ImportStatus::Failed => "failed",
            ImportStatus::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> ImportStatus {
        match s {
            "queued" => ImportStatus::Queued,
            "processing" => ImportStatus::Processing,
            "completed" => ImportStatus::Completed,
            "duplicate" => ImportStatus::Duplicate,
            _ => ImportStatus::Failed,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            ImportStatus::Completed | ImportStatus::Failed | ImportStatus::Duplicate
        )
    }
}

/// One file of an import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportFileInfo {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    pub format: Option<String>,
}

/// A run an import created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedRun {
    pub id: i64,
    pub model: String,
    pub dataset: String,
    pub problems: u64,
    pub rollouts: u64,
    /// pass@1 under the run's default verdicts (`default_verdicts`).
    pub pass_at_1: Option<f64>,
    /// pass@1 under the file's and under caplens' verdicts.
    #[serde(default)]
    pub pass_at_1_file: Option<f64>,
    #[serde(default)]
    pub pass_at_1_caplens: Option<f64>,
    /// Whose verdicts the run shows by default.
    #[serde(default)]
    pub default_verdicts: VerdictSource,
    /// How its rollouts were graded.
    #[serde(default)]
    pub verdicts: VerdictTally,
    /// What the file said about the run (tool, run identity, status).
    #[serde(default)]
    pub source: SourceInfo,
}

/// The state and result of an import: `GET /api/v1/imports/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    pub id: String,
    pub status: ImportStatus,
    pub files: Vec<ImportFileInfo>,
    pub params: ImportParams,
    /// The experiment the runs were added to.
    pub experiment: Option<String>,
    pub bytes_total: u64,
    /// Bytes of the files read so far (equals `bytes_total` once read).
    pub bytes_read: u64,
    pub rows_read: u64,
    pub rows_stored: u64,
    pub rows_rejected: u64,
    /// The first rejected rows' errors (`FILE:LINE: field "F": message`).
    pub errors: Vec<String>,
    /// How the stored rollouts were graded (the file's verdicts, caplens' verifier), over runs.
    #[serde(default)]
    pub verdicts: VerdictTally,
    pub runs: Vec<ImportedRun>,
    /// Why it failed, or what it duplicates.
    pub message: Option<String>,
    pub duplicate_of: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// Live counters of a running import, read by progress requests and the CLI's progress bar.
#[derive(Debug, Default)]
pub struct ImportProgress {
    pub bytes_total: u64,
    /// One counter per file (the files' `InputFile::progress`).
    pub file_bytes: Vec<Arc<AtomicU64>>,
    pub rows_read: AtomicU64,
    pub rows_stored: AtomicU64,
    pub rows_rejected: AtomicU64,
    pub errors: Mutex<Vec<String>>,
}

impl ImportProgress {
    pub fn for_files(files: &[InputFile]) -> Self {
        ImportProgress {
            bytes_total: files
                .iter()
                .map(|f| std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0))
                .sum(),
            file_bytes: files.iter().map(|f| f.progress.clone()).collect(),
            ..Default::default()
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.file_bytes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
            .min(self.bytes_total)
    }

    /// Counts a rejected row and keeps its error for the report when the import goes on
    /// (`skipped`); a row that stops the import becomes the report's message instead, so it is
    /// not listed twice.
    fn reject(&self, error: &InputError, skipped: bool) {
        self.rows_rejected.fetch_add(1, Ordering::Relaxed);
        if !skipped {
            return;
        }
        let mut errors = self.errors.lock().expect("progress lock");
        if errors.len() < ERRORS_KEPT {
            errors.push(error.to_string());
        }
    }

    fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("progress lock").clone()
    }
}

/// A file to import: where it is, how to name it, and its SHA-256 (computed while spooling an
/// upload; computed here otherwise).
#[derive(Debug, Clone)]
pub struct ImportFile {
    pub input: InputFile,
    pub sha256: Option<String>,
}

/// A new import id: `imp_` and 16 hex digits.
pub fn new_import_id() -> String {
    format!("imp_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
    Duplicate { of: String, runs: Vec<i64>, why: String },
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
        message: None,
        duplicate_of: None,
        created_at,
        finished_at: None,
    };
    let outcome = prepare_and_store(store, &mut report, files, &params, &progress, token_id).await;
    report.bytes_read = progress.bytes_read();
    report.rows_read = progress.rows_read.load(Ordering::Relaxed);
    report.rows_rejected = progress.rows_rejected.load(Ordering::Relaxed);
    report.errors = progress.errors();
    report.finished_at = Some(now_rfc3339());
    match outcome {
        Ok(()) => {
            report.status = ImportStatus::Completed;
            report.rows_stored = progress.rows_stored.load(Ordering::Relaxed);
            // The completed row was written inside the import's transaction.
            return report;
        }
        Err(Failure::Duplicate { of, runs, why }) => {
            report.status = ImportStatus::Duplicate;
            report.duplicate_of = Some(of.clone());
            report.message = Some(format!(
                "already imported as {why}, by {of} (runs {}); nothing was added",
                runs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
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
        .delete_prefix(&BlobStore::import_traces_prefix(id));
    if let Err(e) = save_finished_report(store, &report, token_id).await {
        tracing::error!(import = id, error = %e, "could not record the import's result");
    }
    report
}

/// Test hook for crash safety: with this variable set, an import stops after its first stored
/// batch, with its transaction open, says so on stderr and waits to be killed. Lets a test kill
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
    // Formats and hints first: a file that is not what it claims fails before any write. The
    // SHA-256 of files not hashed while uploading runs on its own thread beside the import (a
    // separate pass over the file first would lengthen a CLI import); it is needed only at the
    // end, for the duplicate check.
    let mut plans = Vec::with_capacity(files.len());
    let mut to_hash = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let format = match params.format() {
            Some(f) => f,
            None => detect(&file.input)?,
        };
        let hints = importer(format).hints(&file.input)?;
        if file.sha256.is_none() {
            to_hash.push((i, file.input.clone()));
        }
        report.files.push(ImportFileInfo {
            name: file.input.name.clone(),
            bytes: std::fs::metadata(&file.input.path)
                .map(|m| m.len())
                .unwrap_or(0),
            sha256: file.sha256.clone().unwrap_or_default(),
            format: Some(format.name().to_owned()),
        });
        plans.push(FilePlan {
            input: file.input,
            format,
            hints,
        });
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
    insert_processing_row(store, report, "", token_id).await?;

    let mut tx = store.begin_write().await?;
    let mut writer = Writer::new(store, &report.id, params);
    writer.file_names = report.files.iter().map(|f| f.name.clone()).collect();
    writer.hints = plans.iter().map(|p| p.hints.clone()).collect();
    let (sender, mut receiver) = mpsc::channel::<Vec<Prepared>>(CHANNEL_BATCHES);
    let parser_progress = progress.clone();
    let skip_invalid = params.skip_invalid.unwrap_or(false);
    // What each file says about its run (SourceInfo), collected by the parser.
    let parser = tokio::task::spawn_blocking(move || -> Result<Vec<SourceInfo>, ReadStop> {
        let mut sources = Vec::with_capacity(plans.len());
        for (file_index, plan) in plans.iter().enumerate() {
            let mut sink = PrepareSink {
                file_index,
                plan,
                sender: &sender,
                batch: Vec::new(),
                batch_bytes: 0,
                skip_invalid,
                source: SourceInfo::default(),
                progress: &parser_progress,
            };
            importer(plan.format).read(&plan.input, &mut sink)?;
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
    write_report(&mut tx, report).await?;
    db(
        sqlx::query("UPDATE imports SET content_hash = $1, files = $2 WHERE id = $3")
            .bind(&content_hash)
            .bind(serde_json::to_string(&report.files).expect("serialises"))
            .bind(&report.id)
            .execute(&mut *tx)
            .await,
    )?;
    db(tx.commit().await)?;
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

struct FilePlan {
    input: InputFile,
    format: Format,
    hints: FileHints,
}

/// A record made ready for storage on the parser thread.
struct Prepared {
    file_index: usize,
    line: u64,
    model: Option<String>,
    dataset: Option<String>,
    problem_id: String,
    prompt: Option<String>,
    reference: Option<String>,
    step: Option<i64>,
    sample: Option<u64>,
    kind: PreparedKind,
}

enum PreparedKind {
    Counts {
        n: u64,
        c: u64,
    },
    Rollout {
        /// The file's verdict.
        file_correct: Option<bool>,
        /// caplens' verdict against the file's reference; `None`: the file has no reference,
        /// graded by the writer against the stored one.
        caplens: Option<CaplensVerdict>,
        response: Option<String>,
        answer: Option<String>,
        finish_reason: Option<String>,
        checks: Option<QualityChecks>,
        token_count: Option<i64>,
        means: RolloutTokenMeans,
        trace: Option<Vec<u8>>,
        /// What the run's token statistics need from the trace (boxed: most rows have none).
        tokens: Option<Box<TraceTokens>>,
    },
}

struct PrepareSink<'a> {
    file_index: usize,
    plan: &'a FilePlan,
    sender: &'a mpsc::Sender<Vec<Prepared>>,
    batch: Vec<Prepared>,
    batch_bytes: usize,
    skip_invalid: bool,
    /// What the file says about its run.
    source: SourceInfo,
    progress: &'a ImportProgress,
}

impl PrepareSink<'_> {
    fn flush(&mut self) -> Result<(), ReadStop> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.sender
            .blocking_send(batch)
            .map_err(|_| ReadStop::Sink("the import stopped while reading".into()))
    }
}

impl RecordSink for PrepareSink<'_> {
    fn source(&mut self, info: SourceInfo) -> Result<(), ReadStop> {
        self.source = info;
        Ok(())
    }

    fn record(&mut self, record: RolloutRecord) -> Result<(), ReadStop> {
        self.progress.rows_read.fetch_add(1, Ordering::Relaxed);
        match prepare(record, self.file_index) {
            Ok((prepared, bytes)) => {
                self.batch.push(prepared);
                self.batch_bytes += bytes;
                if self.batch.len() >= BATCH_ROWS || self.batch_bytes >= BATCH_BYTES {
                    self.flush()?;
                }
                Ok(())
            }
            Err((line, field, message)) => {
                let e = self.plan.input.line_error(line, Some(field), message);
                self.reject(e)
            }
        }
    }

    fn reject(&mut self, error: InputError) -> Result<(), ReadStop> {
        self.progress.reject(&error, self.skip_invalid);
        if self.skip_invalid {
            Ok(())
        } else {
            Err(ReadStop::Input(error))
        }
    }
}

type PrepareError = (u64, &'static str, String);

/// Grades, checks and encodes one record (CPU work, off the async runtime).
fn prepare(record: RolloutRecord, file_index: usize) -> Result<(Prepared, usize), PrepareError> {
    let RolloutRecord {
        line,
        model,
        dataset,
        problem_id,
        prompt,
        reference,
        sample,
        outcome,
        response,
        answer,
        finish_reason,
        step,
        tokens,
    } = record;
    if problem_id.is_empty() {
        return Err((line, "problem_id", "must not be empty".into()));
    }
    let mut bytes = response.as_ref().map_or(0, String::len) + problem_id.len() + 64;
    let kind = match outcome {
        RecordOutcome::Counts { n, c } => PreparedKind::Counts { n, c },
        RecordOutcome::Graded(_) | RecordOutcome::Ungraded => {
            let answer = answer.or_else(|| {
                response
                    .as_deref()
                    .and_then(extract_answer)
                    .map(|e| e.answer)
            });
            let file_correct = match outcome {
                RecordOutcome::Graded(v) => Some(v),
                _ => None,
            };
            let caplens = reference
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .map(|r| caplens_verdict(answer.as_deref(), r));
            let checks = response.as_deref().map(QualityChecks::of);
            let (means, trace, digest, token_count) = match &tokens {
                Some(t) => {
                    let means = rollout_token_means(
                        t.entropies.as_deref(),
                        t.top_logprobs
                            .as_deref()
                            .map(|rows| rows.iter().map(|row| row.iter().map(|(_, lp)| *lp))),
                        Some(&t.logprobs),
                    );
                    let trace = token_trace(t).map_err(|m| (line, "tokens", m))?;
                    let digest = Box::new(TraceTokens::of(&trace));
                    let encoded = encode(&trace);
                    bytes += encoded.len() + digest.entropies.len() * 8;
                    (means, Some(encoded), Some(digest), Some(t.tokens.len() as i64))
                }
                None => (RolloutTokenMeans::default(), None, None, None),
            };
            PreparedKind::Rollout {
                file_correct,
                caplens,
                response,
                answer,
                finish_reason,
                checks,
                token_count,
                means,
                trace,
                tokens: digest,
            }
        }
    };
    Ok((
        Prepared {
            file_index,
            line,
            model,
            dataset,
            problem_id,
            prompt,
            reference,
            step,
            sample,
            kind,
        },
        bytes,
    ))
}

/// The verifier's verdict on an answer (none = wrong; unverifiable = wrong). The one grading
/// rule: imports, evaluation runs and interventions all use it.
pub fn grade(answer: Option<&str>, reference: &str) -> bool {
    caplens_verdict(answer, reference) == CaplensVerdict::Equal
}

/// caplens' verdict on an answer against a (non-empty) reference, keeping apart "no answer found"
/// and "could not decide" for the import report.
pub fn caplens_verdict(answer: Option<&str>, reference: &str) -> CaplensVerdict {
    match answer {
        None => CaplensVerdict::NoAnswer,
        Some(a) => match verify(a, reference) {
            Verdict::Equal => CaplensVerdict::Equal,
            Verdict::Different => CaplensVerdict::Different,
            Verdict::Unverifiable => CaplensVerdict::Unverifiable,
        },
    }
}

/// The token trace (analysis::trace, stored as CLTT) of a rollout's token data.
fn token_trace(t: &super::TokenData) -> Result<TokenTrace, String> {
    let logprobs: Vec<f32> = t
        .logprobs
        .iter()
        .map(|lp| lp.map_or(f32::NAN, |v| v as f32))
        .collect();
    if logprobs.len() != t.tokens.len() {
        return Err(format!(
            "{} tokens but {} logprobs",
            t.tokens.len(),
            logprobs.len()
        ));
    }
    let mut trace = TokenTrace::new(
        t.tokens.iter().map(|s| s.as_bytes().to_vec()).collect(),
        logprobs,
    )
    .map_err(|e| e.to_string())?;
    if let Some(rows) = &t.top_logprobs {
        trace = trace
            .with_top_alternatives(
                rows.iter()
                    .map(|row| {
                        row.iter()
                            .map(|(tok, lp)| TopAlternative {
                                token: tok.as_bytes().to_vec(),
                                logprob: *lp as f32,
                            })
                            .collect()
                    })
                    .collect(),
            )
            .map_err(|e| e.to_string())?;
    }
    if let Some(ent) = &t.entropies {
        trace = trace
            .with_entropies(
                ent.iter()
                    .map(|e| e.map_or(f32::NAN, |v| v as f32))
                    .collect(),
            )
            .map_err(|e| e.to_string())?;
    }
    // The RBF column is exact or absent: a partial one is dropped (the heatmap then estimates
    // every token from the top-K list).
    if let Some(rbf) = t.rbf.as_ref().and_then(|r| r.iter().copied().collect::<Option<Vec<u32>>>()) {
        trace = trace.with_rbf(rbf).map_err(|e| e.to_string())?;
    }
    if let Some(norms) = &t.hidden_norms {
        trace = trace
            .with_hidden_norms(
                norms
                    .iter()
                    .map(|n| n.map_or(f32::NAN, |v| v as f32))
                    .collect(),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(trace)
}

/// One run being written.
struct RunState {
    run_id: i64,
    model: String,
    dataset: String,
    dataset_id: i64,
    rollup: RunRollup,
    /// Database problem id -> dense index into `rollup.problems`.
    problem_index: HashMap<i64, usize>,
    problem_ids: Vec<i64>,
    pack: Option<TracePack>,
    pack_key: Option<String>,
    rollouts: u64,
    /// Records stored (rollouts and counts records): a run with none is not kept.
    rows: u64,
    /// The file the run was first seen in (its SourceInfo is the run's).
    file_index: usize,
    verdicts: VerdictTally,
    token_stats: TokenStatsAccumulator,
}

/// One rollout row waiting for the next multi-row INSERT.
struct RolloutRow {
    run_id: i64,
    problem_id: i64,
    sample_index: i64,
    response: Option<String>,
    answer: Option<String>,
    /// Under the run's default verdict source.
    correct: bool,
    verdicts: RolloutVerdicts,
    token_count: Option<i64>,
    finish_reason: Option<String>,
    means: RolloutTokenMeans,
    flags: i64,
    trace: Option<(String, u64, u64)>,
}

/// The database side of an import; holds the caches that keep lookups off the database.
struct Writer<'a> {
    store: &'a Store,
    import_id: &'a str,
    params: &'a ImportParams,
    runs: Vec<RunState>,
    run_index: HashMap<(String, String), usize>,
    datasets: HashMap<String, i64>,
    models: HashMap<String, i64>,
    /// (dataset id, problem key) -> (problem id, stored reference)
    problems: HashMap<(i64, String), (i64, String)>,
    rows: Vec<RolloutRow>,
    file_names: Vec<String>,
    /// What each file says about model, dataset and sampling (fallbacks after the params).
    hints: Vec<FileHints>,
    /// What each file says about its run (known once the files are read).
    sources: Vec<SourceInfo>,
    /// Whose verdicts the runs show by default: the file's, or caplens' when regrading.
    default_source: VerdictSource,
}

impl<'a> Writer<'a> {
    fn new(store: &'a Store, import_id: &'a str, params: &'a ImportParams) -> Self {
        Writer {
            store,
            import_id,
            params,
            runs: Vec::new(),
            run_index: HashMap::new(),
            datasets: HashMap::new(),
            models: HashMap::new(),
            problems: HashMap::new(),
            rows: Vec::new(),
            file_names: Vec::new(),
            hints: Vec::new(),
            sources: Vec::new(),
            default_source: if params.regrade.unwrap_or(false) {
                VerdictSource::Caplens
            } else {
                VerdictSource::File
            },
        }
    }

    async fn write_batch(
        &mut self,
        tx: &mut Tx<'_>,
        batch: Vec<Prepared>,
        progress: &ImportProgress,
    ) -> Result<(), Failure> {
        for p in batch {
            let line = p.line;
            match self.write_one(tx, p).await? {
                Ok(()) => {
                    progress.rows_stored.fetch_add(1, Ordering::Relaxed);
                }
                Err((file_index, field, message)) => {
                    let e = InputError {
                        file: self.file_name(file_index).unwrap_or_default(),
                        line: Some(line),
                        field: Some(field.to_owned()),
                        message,
                    };
                    progress.reject(&e, self.params.skip_invalid.unwrap_or(false));
                    if !self.params.skip_invalid.unwrap_or(false) {
                        return Err(Failure::Input(e));
                    }
                }
            }
            if self.rows.len() >= INSERT_ROWS {
                self.flush_rows(tx).await?;
            }
        }
        Ok(())
    }

    fn file_name(&self, index: usize) -> Option<String> {
        self.file_names.get(index).cloned()
    }

    /// Stores one prepared record. The outer error stops the import; the inner one rejects
    /// the record (file index, field, message).
    async fn write_one(
        &mut self,
        tx: &mut Tx<'_>,
        p: Prepared,
    ) -> Result<Result<(), (usize, &'static str, String)>, Failure> {
        // Fallbacks are cloned only when used: this runs once per row.
        let hints = self.hints.get(p.file_index);
        let named_per_record = self.params.model.is_none() && p.model.is_some();
        let model = self
            .params
            .model
            .clone()
            .or(p.model)
            .or_else(|| hints.and_then(|h| h.model.clone()));
        let Some(model) = model else {
            return Ok(Err((
                p.file_index,
                "model",
                "the file does not name the model; give one (model= / --model)".into(),
            )));
        };
        let dataset = p
            .dataset
            .or_else(|| self.params.dataset.clone())
            .or_else(|| hints.and_then(|h| h.dataset.clone()))
            .unwrap_or_default();
        let step = self.params.step.or(p.step).or(hints.and_then(|h| h.step));
        let run = self
            .run(tx, &model, &dataset, step, named_per_record, p.file_index)
            .await?;
        let (problem_id, stored_reference) = self
            .problem(
                tx,
                self.runs[run].dataset_id,
                &p.problem_id,
                p.prompt.as_deref(),
                p.reference.as_deref(),
            )
            .await?;
        let state = &mut self.runs[run];
        let index = match state.problem_index.get(&problem_id) {
            Some(&i) => i,
            None => {
                let i = state.problem_ids.len();
                state.problem_ids.push(problem_id);
                state.problem_index.insert(problem_id, i);
                i
            }
        };
        match p.kind {
            PreparedKind::Counts { n, c } => {
                state.rollup.problem(index).push_counts(n, c);
                state.rows += 1;
            }
            PreparedKind::Rollout {
                file_correct,
                caplens,
                response,
                answer,
                finish_reason,
                checks,
                token_count,
                means,
                trace,
                tokens,
            } => {
                let caplens = caplens.unwrap_or_else(|| {
                    if stored_reference.trim().is_empty() {
                        CaplensVerdict::NoReference
                    } else {
                        caplens_verdict(answer.as_deref(), &stored_reference)
                    }
                });
                let verdicts = RolloutVerdicts { file: file_correct, caplens };
                let (Some(by_file), Some(by_caplens)) =
                    (verdicts.under(VerdictSource::File), verdicts.under(VerdictSource::Caplens))
                else {
                    return Ok(Err((
                        p.file_index,
                        "reference",
                        format!(
                            "no verdict and no reference answer for problem {:?}: give the reference in the file, or import the dataset's problems first",
                            p.problem_id
                        ),
                    )));
                };
                let correct = match self.default_source {
                    VerdictSource::File => by_file,
                    VerdictSource::Caplens => by_caplens,
                };
                let sample_index = match state.rollup.problem(index).push_rollout_graded(
                    p.sample,
                    [by_file, by_caplens],
                    answer.as_deref(),
                ) {
                    Ok(s) => s,
                    Err(e) => return Ok(Err((p.file_index, "sample", e.to_string()))),
                };
                state.rollup.totals.push(
                    response.as_deref().zip(checks),
                    means.mean_entropy,
                    means.mean_rbf,
                    means.ppl,
                );
                state.token_stats.push_rollout(RolloutTokens {
                    correct,
                    mean_entropy: means.mean_entropy,
                    ppl: means.ppl,
                    trace: tokens.as_deref(),
                });
                let trace = match trace {
                    Some(bytes) => {
                        if state.pack.is_none() {
                            let key = BlobStore::trace_pack_key(self.import_id, state.run_id);
                            state.pack = Some(self.store.blobs.create_pack(&key)?);
                            state.pack_key = Some(key);
                        }
                        let (offset, len) = state.pack.as_mut().expect("created").append(&bytes)?;
                        Some((state.pack_key.clone().expect("created"), offset, len))
                    }
                    None => None,
                };
                state.rollouts += 1;
                state.rows += 1;
                state.verdicts.push(verdicts);
                self.rows.push(RolloutRow {
                    run_id: state.run_id,
                    problem_id,
                    sample_index: sample_index as i64,
                    flags: checks.map_or(0, quality_flags::of_checks),
                    response,
                    answer,
                    correct,
                    verdicts,
                    token_count,
                    finish_reason,
                    means,
                    trace,
                });
            }
        }
        Ok(Ok(()))
    }

    /// The run of (model, dataset), created on first sight.
    async fn run(
        &mut self,
        tx: &mut Tx<'_>,
        model: &str,
        dataset: &str,
        step: Option<i64>,
        named_per_record: bool,
        file_index: usize,
    ) -> Result<usize, Failure> {
        // A checkpoint known only by the file's step (a verl dump, uploaded as model=M) is its
        // own model "M@stepN" of family M; names the file gives per record, or a step given
        // by the uploader, are kept as they are.
        let model_name = match (self.params.step, step) {
            (None, Some(s)) if !named_per_record => format!("{model}@step{s}"),
            _ => model.to_owned(),
        };
        let key = (model_name.clone(), dataset.to_owned());
        if let Some(&i) = self.run_index.get(&key) {
            return Ok(i);
        }
        let dataset_id = self.dataset(tx, dataset).await?;
        let model_id = self.model(tx, &model_name, model, step).await?;
        let label = self.params.label.clone().unwrap_or_else(|| {
            self.file_names
                .get(file_index)
                .cloned()
                .unwrap_or_else(|| model_name.clone())
        });
        let hints = self.hints.get(file_index);
        let run_id = catalog::insert_run(
            tx,
            &NewRun {
                model_id,
                dataset_id,
                label: &label,
                temperature: self
                    .params
                    .temperature
                    .or(hints.and_then(|h| h.temperature)),
                top_p: self.params.top_p.or(hints.and_then(|h| h.top_p)),
                max_tokens: self.params.max_tokens.or(hints.and_then(|h| h.max_tokens)),
                n_per_problem: None,
                seed: self.params.seed,
                prompt_template: None,
                status: "importing",
                origin: "upload",
            },
        )
        .await?;
        db(sqlx::query("UPDATE runs SET import_id = $1 WHERE id = $2")
            .bind(self.import_id)
            .bind(run_id)
            .execute(&mut **tx)
            .await)?;
        self.runs.push(RunState {
            run_id,
            model: model_name,
            dataset: dataset.to_owned(),
            dataset_id,
            rollup: RunRollup::default(),
            problem_index: HashMap::new(),
            problem_ids: Vec::new(),
            pack: None,
            pack_key: None,
            rollouts: 0,
            rows: 0,
            file_index,
            verdicts: VerdictTally::default(),
            token_stats: TokenStatsAccumulator::new(),
        });
        self.run_index.insert(key, self.runs.len() - 1);
        Ok(self.runs.len() - 1)
    }

    async fn dataset(&mut self, tx: &mut Tx<'_>, name: &str) -> Result<i64, Failure> {
        if let Some(&id) = self.datasets.get(name) {
            return Ok(id);
        }
        let existing: Option<i64> = db(sqlx::query_scalar(
            "SELECT id FROM datasets WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&mut **tx)
        .await)?;
        let id = match existing {
            Some(id) => id,
            None => {
                let id = catalog::insert_dataset(tx, name, "", "upload").await?;
                catalog::set_dataset_project(tx, id, self.params.project.as_deref()).await?;
                id
            }
        };
        self.datasets.insert(name.to_owned(), id);
        Ok(id)
    }

    async fn model(
        &mut self,
        tx: &mut Tx<'_>,
        name: &str,
        family: &str,
        step: Option<i64>,
    ) -> Result<i64, Failure> {
        if let Some(&id) = self.models.get(name) {
            return Ok(id);
        }
        let parent_id = match &self.params.parent {
            Some(parent) => Some(
                db(sqlx::query_scalar::<_, i64>("SELECT id FROM models WHERE name = $1")
                    .bind(parent)
                    .fetch_optional(&mut **tx)
                    .await)?
                .ok_or_else(|| {
                    Failure::Invalid(format!(
                        "parent: no model named {parent:?}; import the parent model first or leave parent out"
                    ))
                })?,
            ),
            None => None,
        };
        let existing: Option<i64> =
            db(sqlx::query_scalar("SELECT id FROM models WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await)?;
        let id = match existing {
            Some(id) => {
                // Say-so from the uploader updates what we know about an existing model.
                if let Some(stage) = &self.params.stage {
                    db(sqlx::query("UPDATE models SET stage = $1 WHERE id = $2")
                        .bind(stage)
                        .bind(id)
                        .execute(&mut **tx)
                        .await)?;
                }
                if let Some(parent_id) = parent_id.filter(|&p| p != id) {
                    db(
                        sqlx::query("UPDATE models SET parent_id = $1 WHERE id = $2")
                            .bind(parent_id)
                            .bind(id)
                            .execute(&mut **tx)
                            .await,
                    )?;
                }
                if let Some(step) = step {
                    db(
                        sqlx::query("UPDATE models SET training_step = $1 WHERE id = $2")
                            .bind(step)
                            .bind(id)
                            .execute(&mut **tx)
                            .await,
                    )?;
                }
                id
            }
            None => {
                let stage = self
                    .params
                    .stage
                    .clone()
                    .unwrap_or_else(|| guess_stage(name).to_owned());
                catalog::insert_model(
                    tx,
                    &NewModel {
                        name,
                        family: if family != name { family } else { "" },
                        stage: &stage,
                        parent_id,
                        training_step: step,
                        notes: "",
                    },
                )
                .await?
            }
        };
        self.models.insert(name.to_owned(), id);
        Ok(id)
    }

    /// The problem `key` of a dataset: found, or created with what the file says. A stored
    /// problem with no prompt or reference gets them from the file.
    async fn problem(
        &mut self,
        tx: &mut Tx<'_>,
        dataset_id: i64,
        key: &str,
        prompt: Option<&str>,
        reference: Option<&str>,
    ) -> Result<(i64, String), Failure> {
        let cache_key = (dataset_id, key.to_owned());
        if let Some((id, stored)) = self.problems.get(&cache_key) {
            if !stored.is_empty() || reference.is_none() {
                return Ok((*id, stored.clone()));
            }
        }
        let existing: Option<(i64, String, String)> = db(sqlx::query_as(
            "SELECT id, prompt, reference_answer FROM problems WHERE dataset_id = $1 AND problem_key = $2",
        )
        .bind(dataset_id)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await)?;
        let (id, stored_reference) = match existing {
            Some((id, stored_prompt, stored_reference)) => {
                let fill_prompt = stored_prompt.is_empty() && prompt.is_some_and(|p| !p.is_empty());
                let fill_reference =
                    stored_reference.is_empty() && reference.is_some_and(|r| !r.is_empty());
                if fill_prompt || fill_reference {
                    db(sqlx::query(
                        "UPDATE problems SET prompt = CASE WHEN prompt = '' THEN $1 ELSE prompt END,
                                             reference_answer = CASE WHEN reference_answer = '' THEN $2 ELSE reference_answer END
                         WHERE id = $3",
                    )
                    .bind(prompt.unwrap_or(""))
                    .bind(reference.unwrap_or(""))
                    .bind(id)
                    .execute(&mut **tx)
                    .await)?;
                }
                let reference = if stored_reference.is_empty() {
                    reference.unwrap_or("").to_owned()
                } else {
                    stored_reference
                };
                (id, reference)
            }
            None => {
                let id = catalog::insert_problem(
                    tx,
                    dataset_id,
                    key,
                    prompt.unwrap_or(""),
                    reference.unwrap_or(""),
                    "upload",
                    &[],
                )
                .await?;
                (id, reference.unwrap_or("").to_owned())
            }
        };
        self.problems
            .insert(cache_key, (id, stored_reference.clone()));
        Ok((id, stored_reference))
    }

    async fn flush_rows(&mut self, tx: &mut Tx<'_>) -> Result<(), Failure> {
        let postgres = (**tx).backend_name() == "PostgreSQL";
        for chunk in self.rows.chunks(INSERT_ROWS) {
            let sql = format!(
                "INSERT INTO rollouts (run_id, problem_id, sample_index, response, extracted_answer,
                   correct, token_count, finish_reason, mean_entropy, mean_rbf, perplexity,
                   quality_flags, trace_key, trace_offset, trace_length, file_correct,
                   caplens_verdict) VALUES {}",
                catalog::values_placeholders(tx, chunk.len(), 17)
            );
            // Not a cached prepared statement on PostgreSQL: sqlx 0.8's Any driver binds a NULL
            // f64 as float4, and a statement prepared with that type then rejects a later
            // non-NULL f64 in the same position ("incorrect binary data format").
            let mut q = sqlx::query(&sql).persistent(!postgres);
            for r in chunk {
                q = q
                    .bind(r.run_id)
                    .bind(r.problem_id)
                    .bind(r.sample_index)
                    .bind(r.response.as_deref())
                    .bind(r.answer.as_deref())
                    .bind(r.correct as i64)
                    .bind(r.token_count)
                    .bind(r.finish_reason.as_deref())
                    .bind(finite(r.means.mean_entropy))
                    .bind(finite(r.means.mean_rbf))
                    .bind(finite(r.means.ppl))
                    .bind(r.flags)
                    .bind(r.trace.as_ref().map(|t| t.0.as_str()))
                    .bind(r.trace.as_ref().map(|t| t.1 as i64))
                    .bind(r.trace.as_ref().map(|t| t.2 as i64))
                    .bind(r.verdicts.file.map(i64::from))
                    .bind(r.verdicts.caplens.code());
            }
            db(q.execute(&mut **tx).await)?;
        }
        self.rows.clear();
        Ok(())
    }

    /// Writes the remaining rows, each run's per-problem stats and aggregates, links the runs
    /// to the experiment; fails with `Duplicate` when an earlier import stored the same files
    /// for one of these runs' model and dataset.
    async fn finish(
        &mut self,
        tx: &mut Tx<'_>,
        experiment: &str,
        content_hash: &str,
    ) -> Result<Vec<ImportedRun>, Failure> {
        self.flush_rows(tx).await?;
        let experiment_id = find_or_create_experiment(tx, experiment).await?;
        let mut out = Vec::new();
        for state in &mut self.runs {
            if state.rows == 0 {
                // Every record of this run was rejected (skipped): keep no empty run.
                if let Some(pack) = state.pack.take() {
                    pack.finish()?;
                }
                catalog::delete_run(tx, state.run_id).await?;
                continue;
            }
            let source = self.sources.get(state.file_index).cloned().unwrap_or_default();
            let earlier: Option<(i64, Option<String>, String)> = db(sqlx::query_as(
                "SELECT r.id, r.import_id, r.label FROM runs r JOIN runs me ON me.id = $1
                 WHERE r.model_id = me.model_id AND r.dataset_id = me.dataset_id
                   AND r.source_hash = $2 AND r.id <> me.id AND r.status = 'completed'
                 ORDER BY r.id LIMIT 1",
            )
            .bind(state.run_id)
            .bind(content_hash)
            .fetch_optional(&mut **tx)
            .await)?;
            if let Some((run, import, label)) = earlier {
                return Err(Failure::Duplicate {
                    of: import.unwrap_or_else(|| format!("run {run}")),
                    runs: vec![run],
                    why: format!(
                        "run {run} ({label:?}): the same files for the same model and dataset"
                    ),
                });
            }
            if let Some(identity) = &source.run_identity {
                if let Some((run, import, label)) =
                    catalog::run_with_source_identity(tx, identity, state.dataset_id, state.run_id)
                        .await?
                {
                    return Err(Failure::Duplicate {
                        of: import.unwrap_or_else(|| format!("run {run}")),
                        runs: vec![run],
                        why: format!(
                            "run {run} ({label:?}): the same {} run ({identity}), from another file of it (an Inspect .eval and its .json, a compressed copy, ...)",
                            source.tool.as_deref().unwrap_or("tool's")
                        ),
                    });
                }
            }
            if let Some(pack) = state.pack.take() {
                pack.finish()?;
            }
            let default = state.verdicts.default_source(self.default_source == VerdictSource::Caplens);
            let stats: Vec<catalog::ProblemStats> = state
                .rollup
                .problems
                .iter()
                .zip(&state.problem_ids)
                .enumerate()
                .map(|(position, (p, &problem_id))| {
                    catalog::ProblemStats::of_rollup(problem_id, position, p, default)
                })
                .collect();
            catalog::insert_problem_stats(tx, state.run_id, &stats).await?;
            let aggregates = state.rollup.aggregates_under(default);
            let [pass_file, pass_caplens] = VerdictSource::ALL
                .map(|s| state.rollup.aggregates_under(s).summary.pass_at_1);
            let max_n = stats.iter().map(|s| s.n).max();
            let token_stats = std::mem::take(&mut state.token_stats)
                .finish()
                .map(|t| serde_json::to_string(&t).expect("token stats serialise"));
            db(sqlx::query(
                "UPDATE runs SET status = 'completed', finished_at = $1, aggregates = $2, n_per_problem = $3, source_hash = $4, token_stats = $5 WHERE id = $6",
            )
            .bind(now_rfc3339())
            .bind(serde_json::to_string(&aggregates).expect("aggregates serialise"))
            .bind(max_n)
            .bind(content_hash)
            .bind(token_stats)
            .bind(state.run_id)
            .execute(&mut **tx)
            .await)?;
            catalog::set_run_verdicts(
                tx,
                state.run_id,
                default,
                &state.verdicts,
                &serde_json::to_string(&source).expect("source info serialises"),
                source.run_identity.as_deref(),
            )
            .await?;
            catalog::link_run(tx, experiment_id, state.run_id).await?;
            catalog::assign_project(
                tx,
                self.params.project.as_deref(),
                state.run_id,
                experiment_id,
                Some(self.import_id),
            )
            .await?;
            out.push(ImportedRun {
                id: state.run_id,
                model: state.model.clone(),
                dataset: state.dataset.clone(),
                problems: stats.len() as u64,
                rollouts: stats.iter().map(|s| s.n as u64).sum(),
                pass_at_1: aggregates.summary.pass_at_1,
                pass_at_1_file: pass_file,
                pass_at_1_caplens: pass_caplens,
                default_verdicts: default,
                verdicts: state.verdicts,
                source,
            });
        }
        Ok(out)
    }
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

async fn find_or_create_experiment(tx: &mut Tx<'_>, slug: &str) -> Result<i64, StoreError> {
    let existing: Option<i64> = db(sqlx::query_scalar(
        "SELECT id FROM experiments WHERE slug = $1",
    )
    .bind(slug)
    .fetch_optional(&mut **tx)
    .await)?;
    match existing {
        Some(id) => Ok(id),
        None => {
            let name = if slug == DEFAULT_EXPERIMENT {
                "Uploads".to_owned()
            } else {
                slug.to_owned()
            };
            catalog::insert_experiment(
                tx,
                slug,
                &name,
                "Created by an upload; rename or describe it in the experiment's settings.",
                false,
            )
            .await
        }
    }
}

async fn insert_processing_row(
    store: &Store,
    report: &ImportReport,
    content_hash: &str,
    token_id: Option<i64>,
) -> Result<(), StoreError> {
    db(sqlx::query(
        "INSERT INTO imports (id, status, format, files, params, content_hash, bytes_total, token_id, created_at, project_id)
         VALUES ($1, 'processing', $2, $3, $4, $5, $6, $7, $8, (SELECT id FROM projects WHERE slug = $9))",
    )
    .bind(&report.id)
    .bind(report.files.first().and_then(|f| f.format.clone()))
    .bind(serde_json::to_string(&report.files).expect("serialises"))
    .bind(serde_json::to_string(&report.params).expect("serialises"))
    .bind(content_hash)
    .bind(report.bytes_total as i64)
    .bind(token_id)
    .bind(&report.created_at)
    .bind(report.params.project.as_deref().unwrap_or(crate::storage::access::DEFAULT_PROJECT))
    .execute(&store.pool)
    .await)?;
    Ok(())
}

/// Updates the import row with the report (inside the import's transaction on success).
async fn write_report(tx: &mut Tx<'_>, r: &ImportReport) -> Result<(), StoreError> {
    db(sqlx::query(
        "UPDATE imports SET status = $1, rows_read = $2, rows_stored = $3, rows_rejected = $4,
                errors = $5, runs = $6, message = $7, duplicate_of = $8, finished_at = $9,
                bytes_total = $10
         WHERE id = $11",
    )
    .bind(r.status.as_str())
    .bind(r.rows_read as i64)
    .bind(r.rows_stored as i64)
    .bind(r.rows_rejected as i64)
    .bind(serde_json::to_string(&r.errors).expect("serialises"))
    .bind(serde_json::to_string(&r.runs).expect("serialises"))
    .bind(r.message.as_deref())
    .bind(r.duplicate_of.as_deref())
    .bind(r.finished_at.as_deref())
    .bind(r.bytes_total as i64)
    .bind(&r.id)
    .execute(&mut **tx)
    .await)?;
    Ok(())
}

/// Records a failed or duplicate import (the row may not exist yet when it failed early).
async fn save_finished_report(
    store: &Store,
    r: &ImportReport,
    token_id: Option<i64>,
) -> Result<(), StoreError> {
    let exists: Option<String> = db(sqlx::query_scalar("SELECT id FROM imports WHERE id = $1")
        .bind(&r.id)
        .fetch_optional(&store.pool)
        .await)?;
    if exists.is_none() {
        insert_processing_row(store, r, "", token_id).await?;
    }
    let mut tx = store.begin_write().await?;
    write_report(&mut tx, r).await?;
    db(tx.commit().await)?;
    Ok(())
}

/// Reads an import's stored report.
pub async fn load_report(store: &Store, id: &str) -> Result<Option<ImportReport>, StoreError> {
    type Row = (
        String,
        String,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    );
    let row: Option<Row> = db(sqlx::query_as(
        "SELECT i.id, i.status, i.files, i.params, i.bytes_total, i.rows_read, i.rows_stored,
                i.rows_rejected, i.errors, i.runs, i.message, i.duplicate_of, i.created_at, i.finished_at
         FROM imports i WHERE i.id = $1",
    )
    .bind(id)
    .fetch_optional(&store.pool)
    .await)?;
    let Some(row) = row else { return Ok(None) };
    let experiment: Option<String> = db(sqlx::query_scalar(
        "SELECT e.slug FROM experiments e JOIN experiment_runs er ON er.experiment_id = e.id
         JOIN runs r ON r.id = er.run_id WHERE r.import_id = $1 ORDER BY e.id LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&store.pool)
    .await)?;
    let params: ImportParams = serde_json::from_str(&row.3).unwrap_or_default();
    let status = ImportStatus::parse(&row.1);
    let runs: Vec<ImportedRun> = serde_json::from_str(&row.9).unwrap_or_default();
    let mut verdicts = VerdictTally::default();
    for run in &runs {
        verdicts.merge(&run.verdicts);
    }
    Ok(Some(ImportReport {
        id: row.0,
        status,
        files: serde_json::from_str(&row.2).unwrap_or_default(),
        experiment: experiment.or_else(|| {
            (status == ImportStatus::Completed).then(|| {
                params
                    .experiment
                    .clone()
                    .unwrap_or_else(|| DEFAULT_EXPERIMENT.to_owned())
            })
        }),
        params,
        bytes_total: row.4 as u64,
        bytes_read: if status.is_finished() {
            row.4 as u64
        } else {
            0
        },
        rows_read: row.5 as u64,
        rows_stored: row.6 as u64,
        rows_rejected: row.7 as u64,
        errors: serde_json::from_str(&row.8).unwrap_or_default(),
        verdicts,
        runs,
        message: row.10,
        duplicate_of: row.11,
        created_at: row.12,
        finished_at: row.13,
    }))
}

/// Imports left `processing` by a server that stopped mid-import: their transaction never
/// committed, so nothing of them is visible; mark them failed (with how to retry) and delete
/// their trace packs. Returns their ids.
pub async fn recover_interrupted(store: &Store) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = db(sqlx::query_scalar(
        "SELECT id FROM imports WHERE status = 'processing'",
    )
    .fetch_all(&store.pool)
    .await)?;
    for id in &ids {
        db(sqlx::query(
            "UPDATE imports SET status = 'failed', finished_at = $1,
                    message = 'interrupted: the server stopped during the import, so nothing of it was stored; retry it (POST /api/v1/imports/ID/retry, while its upload is kept) or upload the files again'
             WHERE id = $2",
        )
        .bind(now_rfc3339())
        .bind(id)
        .execute(&store.pool)
        .await)?;
        let _ = store
            .blobs
            .delete_prefix(&BlobStore::import_traces_prefix(id));
    }
    Ok(ids)
}
