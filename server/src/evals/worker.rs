//! The evaluation worker: claims units, generates, grades, stages samples, finalises runs.
//!
//! Runs in the server process by default (`caplens serve`), and as `caplens worker` processes
//! for scale: any number of them against one PostgreSQL database (SQLite serialises writers,
//! so one machine). Guarantees (tests in server/tests/evals.rs):
//! - **exactly once**: a sample is staged under the primary key (evaluation, problem, sample);
//!   a worker generates only the samples of its unit that are not staged yet, so a unit picked
//!   up again after a crash continues where it stopped and never duplicates a sample;
//! - **crash recovery**: units and finalisations are held under leases that the holder renews;
//!   when a worker dies its lease runs out and another worker (or the restarted one) takes over;
//! - **isolation**: an engine failure fails its evaluation (or, when transient, delays its
//!   unit), never the worker or other evaluations.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caplens_analysis::verifier::extract_answer;
use serde_json::{json, Value};

use super::engines::EngineRegistry;
use super::{rfc3339_in, EvalSettings};
use crate::engine::{Completion, Engine, EngineError, GenerationRequest};
use crate::error::StoreError;
use crate::ingest::pipeline::{
    grade, new_import_id, run_import, ImportFile, ImportParams, ImportProgress, ImportStatus,
};
use crate::ingest::InputFile;
use crate::storage::evals::{ClaimedUnit, EvaluationRow, NewSample};
use crate::storage::Store;

/// Attempts of one unit before a transient engine error fails the evaluation.
const MAX_UNIT_ATTEMPTS: i64 = 4;

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique per worker (host, process, random part): leases are held in its name.
    pub id: String,
    /// Units processed at the same time (requests in flight against an OpenAI server).
    pub slots: usize,
    /// How long a claimed unit stays ours without renewal.
    pub lease: Duration,
    /// Sleep when there is nothing to do.
    pub idle_poll: Duration,
    /// Samples per engine request (the embedded engine's batch).
    pub batch: u32,
    /// Where finalisation writes the run's JSON Lines before importing it.
    pub spool_dir: PathBuf,
    /// Delay before a unit whose engine failed transiently is tried again, times its attempts.
    pub retry_delay: Duration,
}

impl WorkerConfig {
    pub fn new(spool_dir: PathBuf) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        WorkerConfig {
            id: format!(
                "{host}-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            slots: 2,
            lease: Duration::from_secs(
                std::env::var("CAPLENS_EVAL_LEASE_SECS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(60),
            ),
            idle_poll: Duration::from_millis(500),
            batch: 32,
            spool_dir,
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// One worker (cheap to clone: shared state behind `Arc`s).
#[derive(Clone)]
pub struct Worker {
    store: Store,
    engines: Arc<EngineRegistry>,
    config: Arc<WorkerConfig>,
    stop: Arc<AtomicBool>,
    /// Nanoseconds spent waiting on engines, summed over slots (the orchestration benchmark
    /// subtracts it from the wall time).
    engine_nanos: Arc<std::sync::atomic::AtomicU64>,
}

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Worked,
    Idle,
}

impl Worker {
    pub fn new(store: Store, engines: Arc<EngineRegistry>, config: WorkerConfig) -> Self {
        Worker {
            store,
            engines,
            config: Arc::new(config),
            stop: Arc::new(AtomicBool::new(false)),
            engine_nanos: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// Time spent waiting on engines so far.
    pub fn engine_time(&self) -> Duration {
        Duration::from_nanos(self.engine_nanos.load(Ordering::Relaxed))
    }

    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Asks the loops to end after their current batch.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Runs `slots` loops until [`Worker::stop`]. Errors of the database are logged and
    /// retried after a pause; they never end the worker.
    pub async fn run(self) {
        // A JoinSet: if this future is dropped (the task aborted), the slots end with it.
        let mut slots = tokio::task::JoinSet::new();
        for slot in 0..self.config.slots.max(1) {
            let worker = self.clone();
            slots.spawn(async move { worker.run_slot(slot).await });
        }
        while slots.join_next().await.is_some() {}
    }

    async fn run_slot(&self, slot: usize) {
        while !self.stop.load(Ordering::SeqCst) {
            match self.step().await {
                Ok(Step::Worked) => {}
                Ok(Step::Idle) => tokio::time::sleep(self.config.idle_poll).await,
                Err(e) => {
                    tracing::warn!(worker = %self.config.id, slot, error = %e, "evaluation worker: database error; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    /// Finalises what is ready, else claims and processes one unit.
    pub async fn step(&self) -> Result<Step, StoreError> {
        for id in self.store.finalizable_evaluations().await? {
            if self.finalize(id).await? {
                return Ok(Step::Worked);
            }
        }
        let lease_until = rfc3339_in(self.config.lease.as_secs() as i64);
        let Some(unit) = self.store.claim_unit(&self.config.id, &lease_until).await? else {
            // No sampling work: token interventions (eqs. 5-6) next.
            let lease = self.config.lease.as_secs().max(600) as i64;
            if let Some(job) =
                super::interventions::claim(&self.store, &self.config.id, lease).await?
            {
                super::interventions::run_job(&self.store, &self.engines, job).await?;
                return Ok(Step::Worked);
            }
            return Ok(Step::Idle);
        };
        self.process(unit).await?;
        Ok(Step::Worked)
    }

    async fn process(&self, unit: ClaimedUnit) -> Result<(), StoreError> {
        let Some(eval) = self.store.evaluation(unit.evaluation_id).await? else {
            return Ok(());
        };
        let settings: EvalSettings = match serde_json::from_str(&eval.settings) {
            Ok(s) => s,
            Err(e) => {
                self.store
                    .fail_evaluation(eval.id, &format!("unreadable settings: {e}"))
                    .await?;
                return Ok(());
            }
        };
        let Some((key, prompt, reference)) = self.store.problem_for_eval(unit.problem_id).await?
        else {
            // The problem was deleted: nothing to generate.
            self.store.complete_unit(unit, &self.config.id).await?;
            return Ok(());
        };
        let (engine, chat) = match self.engine_for(&eval).await {
            Ok(e) => e,
            Err(e) => return self.engine_failed(unit, &eval, &key, e).await,
        };
        let staged: BTreeSet<i64> = self
            .store
            .staged_samples(eval.id, unit.problem_id)
            .await?
            .into_iter()
            .collect();
        let missing: Vec<u32> = (0..settings.n)
            .filter(|i| !staged.contains(&(*i as i64)))
            .collect();
        for run in contiguous_runs(&missing, self.config.batch.max(1)) {
            // Cancelled, failed or deleted meanwhile: give the unit back and stop.
            match self.store.evaluation_status(eval.id).await?.as_deref() {
                Some("queued") | Some("running") => {}
                _ => {
                    self.store
                        .release_unit(unit, &self.config.id, None, None)
                        .await?;
                    return Ok(());
                }
            }
            let lease_until = rfc3339_in(self.config.lease.as_secs() as i64);
            if !self
                .store
                .renew_unit(unit, &self.config.id, &lease_until)
                .await?
            {
                return Ok(()); // another worker took it over after our lease ran out
            }
            let mut params = settings.sampling();
            // A distinct, reproducible seed per (problem, sample): sample i of the request
            // uses seed + i.
            params.seed = Some(
                settings
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((unit.problem_id as u64) << 20)
                    .wrapping_add(run[0] as u64),
            );
            let request = GenerationRequest {
                prompt: settings.prompt(&prompt, chat),
                continuation: None,
                n: run.len() as u32,
                params,
            };
            let engine = engine.clone();
            // Keep the lease while the engine works (a batch may outlast it).
            let heartbeat = AbortOnDrop({
                let (store, worker, lease) = (
                    self.store.clone(),
                    self.config.id.clone(),
                    self.config.lease,
                );
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(lease / 3).await;
                        let until = rfc3339_in(lease.as_secs() as i64);
                        if !matches!(store.renew_unit(unit, &worker, &until).await, Ok(true)) {
                            break;
                        }
                    }
                })
            });
            let started = std::time::Instant::now();
            let generated = tokio::task::spawn_blocking(move || engine.generate(&request))
                .await
                .unwrap_or_else(|e| Err(EngineError::Model(format!("the engine crashed: {e}"))));
            self.engine_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            drop(heartbeat);
            let generation = match generated {
                Ok(g) => g,
                Err(e) => return self.engine_failed(unit, &eval, &key, e).await,
            };
            if generation.completions.len() != run.len() {
                let e = EngineError::BadResponse {
                    url: eval.engine.clone(),
                    message: format!(
                        "asked for {} samples, got {}",
                        run.len(),
                        generation.completions.len()
                    ),
                };
                return self.engine_failed(unit, &eval, &key, e).await;
            }
            let records: Vec<(u32, bool, i64, String)> = run
                .iter()
                .zip(&generation.completions)
                .map(|(&sample, completion)| {
                    let (correct, record) =
                        sample_record(&eval, &key, &prompt, &reference, sample, completion);
                    let tokens = completion
                        .tokens
                        .as_ref()
                        .map(|t| t.len() as i64)
                        .unwrap_or_else(|| {
                            (generation.completion_tokens / generation.completions.len() as u64)
                                as i64
                        });
                    (sample, correct, tokens, record)
                })
                .collect();
            let samples: Vec<NewSample<'_>> = records
                .iter()
                .map(|(sample, correct, tokens, record)| NewSample {
                    problem_id: unit.problem_id,
                    sample_index: *sample as i64,
                    correct: *correct,
                    tokens: *tokens,
                    record,
                })
                .collect();
            self.store.stage_samples(eval.id, &samples).await?;
        }
        self.store.complete_unit(unit, &self.config.id).await?;
        Ok(())
    }

    /// The evaluation's engine and whether it takes chat messages (one read of its row).
    async fn engine_for(
        &self,
        eval: &EvaluationRow,
    ) -> Result<(Arc<dyn Engine>, bool), EngineError> {
        let row = self
            .store
            .engine_by_id(eval.engine_id)
            .await
            .map_err(|e| EngineError::Model(e.to_string()))?
            .ok_or_else(|| EngineError::Invalid(format!("engine {} was deleted", eval.engine)))?;
        let chat = row.view.api_mode == "chat";
        let engines = self.engines.clone();
        let engine = tokio::task::spawn_blocking(move || engines.build(&row))
            .await
            .unwrap_or_else(|e| Err(EngineError::Model(format!("loading crashed: {e}"))))?;
        Ok((engine, chat))
    }

    /// A failed generation: transient errors delay the unit (up to [`MAX_UNIT_ATTEMPTS`]), the
    /// rest fail the evaluation with the engine's message.
    async fn engine_failed(
        &self,
        unit: ClaimedUnit,
        eval: &EvaluationRow,
        problem_key: &str,
        error: EngineError,
    ) -> Result<(), StoreError> {
        let message = format!("problem {problem_key}: {error}");
        tracing::warn!(evaluation = eval.id, worker = %self.config.id, %message, "generation failed");
        if error.is_transient() && unit.attempts < MAX_UNIT_ATTEMPTS {
            let retry_at = rfc3339_in(self.config.retry_delay.as_secs() as i64 * unit.attempts);
            self.store
                .release_unit(unit, &self.config.id, Some(&retry_at), Some(&message))
                .await?;
        } else {
            self.store
                .release_unit(unit, &self.config.id, None, Some(&message))
                .await?;
            self.store.fail_evaluation(eval.id, &message).await?;
        }
        Ok(())
    }

    /// Turns a finished evaluation's staged samples into a run through the import pipeline.
    /// Returns false when another worker finalises it.
    async fn finalize(&self, id: i64) -> Result<bool, StoreError> {
        let Some(eval) = self.store.evaluation(id).await? else {
            return Ok(false);
        };
        // A series member waits for its parent checkpoint's run, so the lineage can be linked.
        let mut parent = eval.parent.clone();
        if let (Some(p), Some(series)) = (&eval.parent, &eval.series) {
            let pending = self.store.series_member_status(series, p, id).await?;
            match pending.as_deref() {
                Some("completed") | None => {}
                Some("failed") | Some("cancelled") => {
                    if !model_exists(&self.store, eval.project_id, p).await? {
                        parent = None;
                    }
                }
                Some(_) => return Ok(false),
            }
        } else if let Some(p) = &eval.parent {
            if !model_exists(&self.store, eval.project_id, p).await? {
                self.store
                    .fail_evaluation(id, &format!("parent model {p:?} does not exist"))
                    .await?;
                return Ok(true);
            }
        }
        let lease_until = rfc3339_in(self.config.lease.as_secs().max(600) as i64);
        if !self
            .store
            .claim_finalization(id, &self.config.id, &lease_until)
            .await?
        {
            return Ok(false);
        }
        let settings: EvalSettings = serde_json::from_str(&eval.settings)
            .map_err(|e| StoreError::Invalid(format!("evaluation {id}: settings: {e}")))?;
        // Stream the staged records into one native JSON Lines file.
        let dir = self.config.spool_dir.join(format!("evaluation-{id}"));
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Blob {
            path: dir.display().to_string(),
            source: e,
        })?;
        let path = dir.join("samples.jsonl");
        let blob_err = |e: std::io::Error| StoreError::Blob {
            path: path.display().to_string(),
            source: e,
        };
        {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(blob_err)?);
            let mut after = (-1i64, -1i64);
            loop {
                let page = self.store.staged_records(id, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.0;
                for (_, record) in &page {
                    out.write_all(record.as_bytes()).map_err(blob_err)?;
                    out.write_all(b"\n").map_err(blob_err)?;
                }
            }
            out.flush().map_err(blob_err)?;
        }
        let import_id = new_import_id();
        let input = InputFile::new(&path, format!("evaluation-{id}.jsonl"));
        let progress = Arc::new(ImportProgress::for_files(std::slice::from_ref(&input)));
        let params = ImportParams {
            experiment: Some(eval.experiment.clone()),
            model: Some(eval.model_name.clone()),
            stage: Some(eval.stage.clone()),
            parent,
            step: eval.step,
            dataset: Some(eval.dataset.clone()),
            format: Some("native".into()),
            label: Some(format!("evaluation #{id} ({})", eval.engine)),
            temperature: Some(settings.temperature),
            top_p: Some(settings.top_p),
            max_tokens: Some(settings.max_tokens as i64),
            seed: Some(settings.seed as i64),
            skip_invalid: None,
            regrade: Some(true),
            project: eval.project.clone(),
        };
        let report = run_import(
            &self.store,
            &import_id,
            vec![ImportFile {
                input,
                sha256: None,
            }],
            params,
            progress,
            None,
        )
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        match report.status {
            ImportStatus::Completed => {
                let run_id = report.runs.first().map(|r| r.id);
                self.store
                    .complete_evaluation(id, run_id, &import_id)
                    .await?;
            }
            ImportStatus::Duplicate => {
                // A finalisation that committed its import but died before recording it.
                let of = report.duplicate_of.clone().unwrap_or_default();
                let run_id = self.store.first_run_of_import(&of).await?;
                self.store.complete_evaluation(id, run_id, &of).await?;
            }
            _ => {
                let message = format!(
                    "storing the run failed: {}",
                    report.message.unwrap_or_else(|| "unknown error".into())
                );
                self.store.fail_evaluation(id, &message).await?;
            }
        }
        Ok(true)
    }
}

/// A task that ends with its owner (a cancelled unit must not keep renewing its lease).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether the evaluation's project has a model `name` (a lineage stays within a project).
async fn model_exists(
    store: &Store,
    project_id: Option<i64>,
    name: &str,
) -> Result<bool, StoreError> {
    let Some(project) = project_id else {
        return Ok(false);
    };
    Ok(store.model_id(project, name).await?.is_some())
}

/// Splits sorted sample indices into runs of consecutive indices of at most `batch` each (a
/// request's sample i uses seed + i, so a run keeps seeds tied to sample indices).
pub fn contiguous_runs(indices: &[u32], batch: u32) -> Vec<Vec<u32>> {
    let mut runs: Vec<Vec<u32>> = Vec::new();
    for &i in indices {
        match runs.last_mut() {
            Some(run) if run.len() < batch as usize && run.last() == Some(&(i.wrapping_sub(1))) => {
                run.push(i)
            }
            _ => runs.push(vec![i]),
        }
    }
    runs
}

/// The verifier's verdict (extracted answer equal to the reference) and the native JSON Lines
/// record of one sample (docs/formats/native.md). The record carries no `correct`: the import
/// grades it with the same verifier, and a "file's verdict" identical to caplens' would only
/// offer a verdict switch that changes nothing.
pub fn sample_record(
    eval: &EvaluationRow,
    problem_key: &str,
    prompt: &str,
    reference: &str,
    sample: u32,
    completion: &Completion,
) -> (bool, String) {
    let answer = extract_answer(&completion.text).map(|e| e.answer);
    let correct = grade(answer.as_deref(), reference);
    let mut record = json!({
        "model": eval.model_name,
        "dataset": eval.dataset,
        "problem_id": problem_key,
        "sample": sample,
        "prompt": prompt,
        "reference": reference,
        "response": completion.text,
        "finish_reason": completion.finish_reason,
    });
    if let Some(a) = answer {
        record["answer"] = Value::String(a);
    }
    if let Some(steps) = &completion.tokens {
        record["tokens"] = json!(steps.iter().map(|s| &s.token).collect::<Vec<_>>());
        record["token_logprobs"] = json!(steps
            .iter()
            .map(|s| s.logprob.is_finite().then_some(s.logprob))
            .collect::<Vec<_>>());
        if steps.iter().any(|s| !s.top.is_empty()) {
            record["top_logprobs"] = json!(steps
                .iter()
                .map(|s| s
                    .top
                    .iter()
                    .map(|a| json!([a.token, a.logprob]))
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>());
        }
        if steps.iter().any(|s| s.entropy.is_some()) {
            record["token_entropies"] = json!(steps.iter().map(|s| s.entropy).collect::<Vec<_>>());
        }
        if steps.iter().any(|s| s.rbf.is_some()) {
            record["token_rbf"] = json!(steps.iter().map(|s| s.rbf).collect::<Vec<_>>());
        }
        if steps.iter().any(|s| s.hidden_norm.is_some()) {
            record["token_hidden_norms"] =
                json!(steps.iter().map(|s| s.hidden_norm).collect::<Vec<_>>());
        }
    }
    (correct, record.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_consecutive_and_bounded() {
        assert_eq!(
            contiguous_runs(&[0, 1, 2, 5, 6, 9], 2),
            vec![vec![0, 1], vec![2], vec![5, 6], vec![9]]
        );
        assert!(contiguous_runs(&[], 4).is_empty());
    }
}
