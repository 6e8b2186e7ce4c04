//! The parser side of an import: each record graded, checked and encoded on the parser thread
//! (CPU work, off the async runtime), and batched for the writer.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use caplens_analysis::quality::QualityChecks;
use caplens_analysis::token_stats::TraceTokens;
use caplens_analysis::tokens::{rollout_token_means, RolloutTokenMeans};
use caplens_analysis::trace::{encode, TokenTrace, TopAlternative};
use caplens_analysis::verdicts::CaplensVerdict;
use caplens_analysis::verifier::{final_answer, verify, Verdict};
use tokio::sync::mpsc;

use super::{ImportProgress, BATCH_BYTES, BATCH_ROWS};
use crate::ingest::{
    FileHints, Format, InputError, InputFile, ReadStop, RecordOutcome, RecordSink, RolloutRecord,
    SourceInfo, TokenData,
};

pub(super) struct FilePlan {
    pub(super) input: InputFile,
    pub(super) format: Format,
    pub(super) hints: FileHints,
}

/// A record made ready for storage on the parser thread.
pub(super) struct Prepared {
    pub(super) file_index: usize,
    pub(super) line: u64,
    pub(super) model: Option<String>,
    pub(super) dataset: Option<String>,
    pub(super) problem_id: String,
    pub(super) prompt: Option<String>,
    pub(super) tags: Vec<String>,
    pub(super) reference: Option<String>,
    pub(super) step: Option<i64>,
    pub(super) sample: Option<u64>,
    pub(super) kind: PreparedKind,
}

pub(super) enum PreparedKind {
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

pub(super) struct PrepareSink<'a> {
    pub(super) file_index: usize,
    pub(super) plan: &'a FilePlan,
    pub(super) sender: &'a mpsc::Sender<Vec<Prepared>>,
    pub(super) batch: Vec<Prepared>,
    pub(super) batch_bytes: usize,
    pub(super) skip_invalid: bool,
    /// What the file says about its run.
    pub(super) source: SourceInfo,
    pub(super) progress: &'a ImportProgress,
    /// Records read but not yet prepared, and their response bytes.
    pub(super) pending: Vec<RolloutRecord>,
    pub(super) pending_bytes: usize,
}

/// Records prepared together on all cores (grading and quality checks dominate an import's CPU
/// time; the database and the writer need the rest of the machine only part of the time).
const PREPARE_ROWS: usize = 1024;

impl PrepareSink<'_> {
    pub(super) fn new<'a>(
        file_index: usize,
        plan: &'a FilePlan,
        sender: &'a mpsc::Sender<Vec<Prepared>>,
        skip_invalid: bool,
        progress: &'a ImportProgress,
    ) -> PrepareSink<'a> {
        PrepareSink {
            file_index,
            plan,
            sender,
            batch: Vec::new(),
            batch_bytes: 0,
            skip_invalid,
            source: SourceInfo::default(),
            progress,
            pending: Vec::with_capacity(PREPARE_ROWS),
            pending_bytes: 0,
        }
    }

    /// Prepares the pending records in parallel, then takes their results in file order (so
    /// the first error is the first bad line's).
    fn prepare_pending(&mut self) -> Result<(), ReadStop> {
        if self.pending.is_empty() {
            return Ok(());
        }
        use rayon::prelude::*;
        let file_index = self.file_index;
        let records = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let prepared: Vec<_> = records
            .into_par_iter()
            .with_min_len(64)
            .map(|r| prepare(r, file_index))
            .collect();
        for result in prepared {
            match result {
                Ok((prepared, bytes)) => {
                    self.batch.push(prepared);
                    self.batch_bytes += bytes;
                    if self.batch.len() >= BATCH_ROWS || self.batch_bytes >= BATCH_BYTES {
                        self.send_batch()?;
                    }
                }
                Err((line, field, message)) => {
                    let e = self.plan.input.line_error(line, Some(field), message);
                    self.reject_prepared(e)?;
                }
            }
        }
        Ok(())
    }

    /// Prepares what is pending and sends what is batched (the end of a file).
    pub(super) fn flush(&mut self) -> Result<(), ReadStop> {
        self.prepare_pending()?;
        self.send_batch()
    }

    fn reject_prepared(&mut self, error: InputError) -> Result<(), ReadStop> {
        self.progress.reject(&error, self.skip_invalid);
        if self.skip_invalid {
            Ok(())
        } else {
            Err(ReadStop::Input(error))
        }
    }

    fn send_batch(&mut self) -> Result<(), ReadStop> {
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
        self.pending_bytes += record.response.as_ref().map_or(0, String::len)
            + record.tokens.as_ref().map_or(0, |t| t.tokens.len() * 64);
        self.pending.push(record);
        if self.pending.len() >= PREPARE_ROWS || self.pending_bytes >= BATCH_BYTES {
            self.prepare_pending()?;
        }
        Ok(())
    }

    /// A line the reader could not parse: the records before it are dealt with first, so
    /// errors come in file order.
    fn reject(&mut self, error: InputError) -> Result<(), ReadStop> {
        self.prepare_pending()?;
        self.reject_prepared(error)
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
        tags,
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
            let answer =
                final_answer(answer.map(Cow::Owned), response.as_deref()).map(Cow::into_owned);
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
                    (
                        means,
                        Some(encoded),
                        Some(digest),
                        Some(t.tokens.len() as i64),
                    )
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
            tags,
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
fn token_trace(t: &TokenData) -> Result<TokenTrace, String> {
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
    if let Some(rbf) = t
        .rbf
        .as_ref()
        .and_then(|r| r.iter().copied().collect::<Option<Vec<u32>>>())
    {
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
