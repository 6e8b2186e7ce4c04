//! Token interventions (paper-notes item 11, eqs. 5-6) on stored rollouts.
//!
//! For each chosen position t of a rollout's token trace: the prefix up to t with the original
//! token o_t, and the same prefix with the most probable *other* token (eq. 5); k continuations
//! from each, graded by the verifier against the problem's reference; I_t = accuracy(original) -
//! accuracy(substitute) (eq. 6, `analysis::intervention::PairedContinuations::impact`).
//! Positions: given, or the `top_entropy` highest-entropy positions that have an alternative.
//!
//! Results land in the rollout's token trace (its impacts column; the heatmap shows them) and the
//! run's token statistics are recomputed from its traces, so the token-statistics page's impact
//! by position and by PPL group include them. Jobs are rows in `interventions`, run by the same
//! workers as evaluations.

use caplens_analysis::intervention::PairedContinuations;
use caplens_analysis::token_stats::{RolloutTokens, TokenStatsAccumulator, TraceTokens};
use caplens_analysis::trace::{encode, PositionImpact, TokenTrace};
use caplens_analysis::verifier::extract_answer;
use serde::{Deserialize, Serialize};

use super::{rfc3339_in, EvalError, EvalSettings};
use crate::engine::{Engine, EngineError, GenerationRequest};
use crate::error::StoreError;
use crate::storage::Store;

/// What to intervene on (`POST /api/v1/rollouts/{id}/interventions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterventionRequest {
    /// Engine that continues the prefixes (default: the one that generated the run, else
    /// `embedded`).
    #[serde(default)]
    pub engine: Option<String>,
    /// Continuations per prefix (default 8).
    #[serde(default)]
    pub k: Option<u32>,
    /// Token positions (0-based); default: the `top_entropy` most uncertain ones.
    #[serde(default)]
    pub positions: Option<Vec<u32>>,
    /// How many highest-entropy positions when `positions` is not given (default 4).
    #[serde(default)]
    pub top_entropy: Option<u32>,
    /// Tokens per continuation (default: the run's max_tokens minus the prefix, at least 16).
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// One position's outcome, as stored in `interventions.result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterventionOutcome {
    pub position: u32,
    pub original: String,
    pub substitute: String,
    pub counts: PairedContinuations,
    /// I_t (eq. 6).
    pub impact: f64,
}

/// Most continuations per prefix.
pub const MAX_K: u32 = 256;

/// Queues an intervention job on a stored rollout; returns its id. `engine`: the engine (id)
/// the request named, already checked usable by the rollout's project; `None`: the engine that
/// generated the run, else the built-in one.
pub async fn queue(
    store: &Store,
    rollout_id: i64,
    engine: Option<i64>,
    request: &InterventionRequest,
) -> Result<i64, EvalError> {
    let k = request.k.unwrap_or(8);
    if k == 0 || k > MAX_K {
        return Err(EvalError::Invalid {
            field: "k",
            message: format!("must be between 1 and {MAX_K}, got {k}"),
        });
    }
    let Some(stored) = store.rollout_trace(rollout_id).await? else {
        return Err(EvalError::NotFound(format!("no rollout {rollout_id}")));
    };
    let Some(trace) = stored.trace else {
        return Err(EvalError::Invalid {
            field: "rollout",
            message: format!(
                "rollout {rollout_id} has no token trace{}; interventions need its tokens and alternatives",
                stored.trace_error.map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        });
    };
    if trace.top_alternatives().is_none() {
        return Err(EvalError::Invalid {
            field: "rollout",
            message: format!("rollout {rollout_id}'s trace has no top alternatives, so there is no substitute token"),
        });
    }
    if let Some(positions) = &request.positions {
        if let Some(bad) = positions.iter().find(|p| **p as usize >= trace.len()) {
            return Err(EvalError::Invalid {
                field: "positions",
                message: format!(
                    "position {bad} is outside the response ({} tokens)",
                    trace.len()
                ),
            });
        }
    }
    let engine_id = match engine {
        Some(id) => id,
        None => match store.run_engine_id(stored.rollout.run_id).await? {
            Some(id) => id,
            None => store.embedded_engine_id().await?.ok_or_else(|| {
                EvalError::NotFound("the built-in engine is missing; run `caplens migrate`".into())
            })?,
        },
    };
    let request = serde_json::to_string(request).expect("request serialises");
    Ok(store
        .insert_intervention(rollout_id, engine_id, &request)
        .await?)
}

/// Queues jobs for `count` rollouts of a run spread evenly over it (automatic mode: each job
/// takes the top-entropy positions of its rollout). Returns the job ids.
pub async fn queue_for_run(
    store: &Store,
    run_id: i64,
    count: u32,
    engine: Option<i64>,
    request: &InterventionRequest,
) -> Result<Vec<i64>, EvalError> {
    if count == 0 || count > 1000 {
        return Err(EvalError::Invalid {
            field: "rollouts",
            message: format!("must be between 1 and 1000, got {count}"),
        });
    }
    if request.positions.is_some() {
        return Err(EvalError::Invalid {
            field: "positions",
            message: "give positions per rollout (POST /api/v1/rollouts/{id}/interventions); a run-wide request uses top_entropy".into(),
        });
    }
    let ids = store.traced_rollout_ids(run_id).await?;
    if ids.is_empty() {
        return Err(EvalError::NotFound(format!(
            "run {run_id} has no rollout with a token trace"
        )));
    }
    let count = (count as usize).min(ids.len());
    let mut jobs = Vec::with_capacity(count);
    for i in 0..count {
        // Evenly spaced, deterministic: the same request picks the same rollouts.
        let rollout = ids[i * ids.len() / count];
        jobs.push(queue(store, rollout, engine, request).await?);
    }
    Ok(jobs)
}

/// An intervention job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterventionView {
    pub id: i64,
    pub rollout_id: i64,
    pub engine: String,
    pub status: String,
    pub request: InterventionRequest,
    pub result: Option<Vec<InterventionOutcome>>,
    pub error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

pub async fn view(store: &Store, id: i64) -> Result<Option<InterventionView>, StoreError> {
    let row = store.intervention(id).await?;
    Ok(row.map(|r| InterventionView {
        id: r.id,
        rollout_id: r.rollout_id,
        engine: r.engine,
        status: r.status,
        request: serde_json::from_str(&r.request).unwrap_or_default(),
        result: r.result.and_then(|s| serde_json::from_str(&s).ok()),
        error: r.error,
        created_at: r.created_at,
        finished_at: r.finished_at,
    }))
}

/// Claims the next queued job (or one whose worker's lease ran out).
pub async fn claim(
    store: &Store,
    worker: &str,
    lease_secs: i64,
) -> Result<Option<i64>, StoreError> {
    store
        .claim_intervention(worker, &rfc3339_in(lease_secs))
        .await
}

async fn finish(
    store: &Store,
    id: i64,
    result: Result<Vec<InterventionOutcome>, String>,
) -> Result<(), StoreError> {
    let (status, result, error) = match result {
        Ok(r) => (
            "completed",
            Some(serde_json::to_string(&r).expect("serialises")),
            None,
        ),
        Err(e) => ("failed", None, Some(e)),
    };
    store
        .finish_intervention(id, status, result.as_deref(), error.as_deref())
        .await
}

/// Positions to intervene on: the given ones, or the `m` highest-entropy positions with a
/// substitute (ties: earlier first).
pub fn choose_positions(trace: &TokenTrace, given: Option<&[u32]>, m: usize) -> Vec<u32> {
    if let Some(p) = given {
        let mut p = p.to_vec();
        p.sort_unstable();
        p.dedup();
        return p;
    }
    let digest = TraceTokens::of(trace);
    let mut scored: Vec<(u32, f64)> = (0..trace.len())
        .filter(|&t| substitute(trace, t).is_some())
        .map(|t| {
            (
                t as u32,
                digest.entropies.get(t).copied().unwrap_or(f64::NAN),
            )
        })
        .filter(|(_, e)| e.is_finite())
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<u32> = scored.into_iter().take(m).map(|(t, _)| t).collect();
    chosen.sort_unstable();
    chosen
}

/// The most probable token at position t other than the one sampled (eq. 5).
pub fn substitute(trace: &TokenTrace, t: usize) -> Option<Vec<u8>> {
    let original = trace.tokens().get(t)?;
    let alts = trace.top_alternatives()?.get(t)?;
    alts.iter()
        .filter(|a| &a.token != original)
        .max_by(|a, b| a.logprob.total_cmp(&b.logprob))
        .map(|a| a.token.clone())
}

/// Whether a full response (prefix + token + continuation) is correct: the import's rule.
fn graded(text: &str, reference: &str) -> bool {
    crate::ingest::pipeline::grade(extract_answer(text).map(|e| e.answer).as_deref(), reference)
}

/// Runs one job to its end (the caller claimed it).
pub async fn run_job(
    store: &Store,
    engines: &std::sync::Arc<super::engines::EngineRegistry>,
    id: i64,
) -> Result<(), StoreError> {
    let outcome = run_job_inner(store, engines, id).await;
    match outcome {
        Ok(r) => finish(store, id, Ok(r)).await,
        Err(JobError::Store(e)) => {
            finish(store, id, Err(format!("database: {e}"))).await?;
            Err(e)
        }
        Err(JobError::Failed(m)) => finish(store, id, Err(m)).await,
    }
}

enum JobError {
    Store(StoreError),
    Failed(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Store(e)
    }
}

impl From<EngineError> for JobError {
    fn from(e: EngineError) -> Self {
        JobError::Failed(e.to_string())
    }
}

async fn run_job_inner(
    store: &Store,
    engines: &std::sync::Arc<super::engines::EngineRegistry>,
    id: i64,
) -> Result<Vec<InterventionOutcome>, JobError> {
    let (rollout_id, engine_id, request) = store.intervention_job(id).await?;
    let request: InterventionRequest =
        serde_json::from_str(&request).map_err(|e| JobError::Failed(format!("request: {e}")))?;
    let stored = store
        .rollout_trace(rollout_id)
        .await?
        .ok_or_else(|| JobError::Failed(format!("rollout {rollout_id} was deleted")))?;
    let trace = stored
        .trace
        .ok_or_else(|| JobError::Failed(format!("rollout {rollout_id} has no readable trace")))?;
    let (_, prompt, reference) = store
        .problem_for_eval(stored.rollout.problem_id)
        .await?
        .ok_or_else(|| JobError::Failed("the problem was deleted".into()))?;
    let settings: EvalSettings = match store.run_eval_settings(stored.rollout.run_id).await? {
        Some(s) => {
            serde_json::from_str(&s).map_err(|e| JobError::Failed(format!("settings: {e}")))?
        }
        // An imported run: its prompt is the problem's text as is.
        None => EvalSettings {
            n: 1,
            temperature: 0.7,
            top_p: 0.95,
            max_tokens: 256,
            seed: 0,
            stop: Vec::new(),
            top_logprobs: 0,
            prompt_template: "{prompt}".into(),
            system_prompt: None,
        },
    };
    let engine_row = store
        .engine_by_id(engine_id)
        .await?
        .ok_or_else(|| JobError::Failed("the engine was deleted".into()))?;
    let chat = engine_row.view.api_mode == "chat";
    let engine: std::sync::Arc<dyn Engine> = {
        let (registry, row) = (engines.clone(), engine_row.clone());
        tokio::task::spawn_blocking(move || registry.build(&row))
            .await
            .map_err(|e| JobError::Failed(format!("loading the engine crashed: {e}")))??
    };
    let positions = choose_positions(
        &trace,
        request.positions.as_deref(),
        request.top_entropy.unwrap_or(4) as usize,
    );
    if positions.is_empty() {
        return Err(JobError::Failed(
            "no position with a substitute token to intervene on".into(),
        ));
    }
    let k = request.k.unwrap_or(8);
    let token_text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut outcomes = Vec::new();
    for &t in &positions {
        let t_us = t as usize;
        let Some(sub) = substitute(&trace, t_us) else {
            continue;
        };
        let prefix: Vec<u8> = trace.tokens()[..t_us].concat();
        let prefix = token_text(&prefix);
        let original = token_text(&trace.tokens()[t_us]);
        let substitute_text = token_text(&sub);
        let max_tokens = request
            .max_tokens
            .unwrap_or_else(|| settings.max_tokens.saturating_sub(t + 1).max(16));
        let mut counts = [(0u32, 0u32); 2];
        for (side, token) in [&original, &substitute_text].into_iter().enumerate() {
            let head = format!("{prefix}{token}");
            let mut params = settings.sampling();
            params.max_tokens = max_tokens;
            params.top_logprobs = None;
            params.seed = Some(
                settings
                    .seed
                    .wrapping_add(rollout_id as u64 * 7919 + t as u64),
            );
            let generation = GenerationRequest {
                prompt: settings.prompt(&prompt, chat),
                continuation: Some(head.clone()),
                n: k,
                params,
            };
            let engine = engine.clone();
            let g = tokio::task::spawn_blocking(move || engine.generate(&generation))
                .await
                .map_err(|e| JobError::Failed(format!("the engine crashed: {e}")))??;
            let correct = g
                .completions
                .iter()
                .filter(|c| graded(&format!("{head}{}", c.text), &reference))
                .count() as u32;
            counts[side] = (correct, g.completions.len() as u32);
        }
        let paired = PairedContinuations {
            original_correct: counts[0].0,
            original_total: counts[0].1,
            substitute_correct: counts[1].0,
            substitute_total: counts[1].1,
        };
        let impact = paired
            .impact()
            .map_err(|e| JobError::Failed(format!("position {t}: {e}")))?;
        outcomes.push(InterventionOutcome {
            position: t,
            original,
            substitute: substitute_text,
            counts: paired,
            impact,
        });
    }
    // Merge into the trace (a position measured again replaces the earlier value).
    let mut impacts: Vec<PositionImpact> = trace.impacts().map(<[_]>::to_vec).unwrap_or_default();
    for o in &outcomes {
        impacts.retain(|i| i.position != o.position);
        impacts.push(PositionImpact {
            position: o.position,
            impact: o.impact as f32,
        });
    }
    impacts.sort_by_key(|i| i.position);
    let trace = trace
        .with_impacts(impacts)
        .map_err(|e| JobError::Failed(format!("trace: {e}")))?;
    let bytes = encode(&trace);
    let key = format!("traces/interventions/rollout-{rollout_id}-job-{id}.trace");
    store.blobs.put(&key, &bytes).await?;
    store
        .set_rollout_trace(rollout_id, &key, bytes.len() as i64)
        .await?;
    recompute_token_stats(store, stored.rollout.run_id).await?;
    Ok(outcomes)
}

/// Recomputes a run's token statistics from its stored traces (after an intervention changed
/// one) and marks the run updated, so cached views are rebuilt.
pub async fn recompute_token_stats(store: &Store, run_id: i64) -> Result<(), StoreError> {
    let rows = store.run_rollout_means(run_id).await?;
    let mut acc = TokenStatsAccumulator::new();
    for (id, correct, mean_entropy, ppl) in rows {
        let digest = match store.rollout_trace(id).await? {
            Some(t) => t.trace.as_ref().map(TraceTokens::of),
            None => None,
        };
        acc.push_rollout(RolloutTokens {
            correct: correct == 1,
            mean_entropy,
            ppl,
            trace: digest.as_ref(),
        });
    }
    let stats = acc
        .finish()
        .map(|s| serde_json::to_string(&s).expect("token stats serialise"));
    store.set_run_token_stats(run_id, stats.as_deref()).await
}
