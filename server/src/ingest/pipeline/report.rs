//! What an import is told and what it answers: parameters (REST query, JSON metadata, CLI
//! flags), status, report and live progress.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use caplens_analysis::verdicts::{VerdictSource, VerdictTally};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ERRORS_KEPT;
use crate::ingest::{Format, InputError, InputFile, SourceInfo};
use crate::storage::hex;

/// What the uploader says about the files: the one definition of the import parameters. The
/// REST query parameters and JSON metadata part (serde), the CLI flags of `import` and `push`
/// (clap) and the query `push` sends all come from it. Every field is optional; see docs/api.md
/// "Imports".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// Project the runs go to (default: `default`; an API token's own project). Checked
    /// against the caller's rights before anything is read.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Experiment slug to add the runs to (created if new; default "uploads").
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// Model name (overrides the model named in the file).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Training stage of the model: base, sft, rl, tir or other (default: from its name).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(STAGES))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The model this one was trained from (must already exist).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Training step of the checkpoint.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i64>,
    /// Dataset name, when the file does not name one.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Input format (default: detected from the content).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::ingest::Format::names()))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Run label (default: the file name).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Sampling temperature of the run.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling top-p of the run.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Generation length limit of the run.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// Sampling seed of the run.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Skip invalid rows (counted and reported) instead of failing the import.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_invalid: Option<bool>,
    /// Show caplens' verifier's verdicts by default instead of the file's (both are stored
    /// either way; `verdicts=` switches any view).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regrade: Option<bool>,
}

pub const STAGES: [&str; 5] = ["base", "sft", "rl", "tir", "other"];

impl ImportParams {
    /// These parameters with the unset ones taken from `fallback` (an upload's query
    /// parameters win over its JSON metadata part).
    pub fn or(self, fallback: ImportParams) -> ImportParams {
        let (serde_json::Value::Object(mut merged), serde_json::Value::Object(first)) = (
            serde_json::to_value(fallback).expect("parameters serialise"),
            serde_json::to_value(self).expect("parameters serialise"),
        ) else {
            unreachable!("a struct serialises to an object")
        };
        merged.extend(first);
        serde_json::from_value(serde_json::Value::Object(merged)).expect("parameters round-trip")
    }

    /// The parameters as a URL query (what `caplens push` sends).
    pub fn to_query(&self) -> String {
        serde_urlencoded::to_string(self).expect("parameters encode as a query")
    }

    /// Parses a URL query; `filename` (the name of a raw upload body) is returned apart. An
    /// unknown parameter is an error that names it and lists the known ones.
    pub fn from_query(query: &str) -> Result<(ImportParams, Option<String>), String> {
        let mut pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| e.to_string())?;
        let filename = pairs
            .iter()
            .position(|(k, _)| k == "filename")
            .map(|i| pairs.remove(i).1);
        let rest = serde_urlencoded::to_string(&pairs).map_err(|e| e.to_string())?;
        let params = serde_urlencoded::from_str(&rest).map_err(|e| e.to_string())?;
        Ok((params, filename))
    }

    /// Checks the values; the error names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(f) = &self.format {
            if Format::from_name(f).is_none() {
                let names = Format::names();
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

    pub(super) fn format(&self) -> Option<Format> {
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
    /// Problems whose sample count differs from the run's usual n (issue 27).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uneven: Option<caplens_analysis::passk::UnevenSamples>,
}

/// What a finished import warns about, one sentence each: runs with uneven sample counts.
pub fn warnings_of(runs: &[ImportedRun]) -> Vec<String> {
    runs.iter()
        .filter_map(|r| {
            r.uneven
                .as_ref()
                .map(|u| format!("run {} ({}): {}", r.id, r.model, u.describe()))
        })
        .collect()
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
    /// What the import stored but warns about (uneven sample counts), one sentence each.
    #[serde(default)]
    pub warnings: Vec<String>,
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
    pub(super) fn reject(&self, error: &InputError, skipped: bool) {
        self.rows_rejected.fetch_add(1, Ordering::Relaxed);
        if !skipped {
            return;
        }
        let mut errors = self.errors.lock().expect("progress lock");
        if errors.len() < ERRORS_KEPT {
            errors.push(error.to_string());
        }
    }

    pub(super) fn errors(&self) -> Vec<String> {
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
