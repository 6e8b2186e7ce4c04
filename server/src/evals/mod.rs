//! Evaluation runs (issue 7): start them, follow them, cancel and resume them.
//!
//! ```text
//! start (UI form / POST /api/v1/evals / caplens eval)
//!   → validate against engine + dataset → evaluations row (queued) + one eval_units row per problem
//! worker (in-process by default, `caplens worker` for more; any number against one database)
//!   claim a unit (row lock, SKIP LOCKED on PostgreSQL; lease) → samples not yet staged
//!   → engine.generate in batches → grade (verifier) → eval_samples (primary key = exactly once)
//!   → unit done → when every unit is done: finalise once (claimed with a lease)
//! finalise: staged records → native JSON Lines → the import pipeline (grading, token stats,
//!   traces, aggregates) → run in the experiment; staged rows deleted
//! ```
//! Progress is computed from the database (any worker, any process), so the SSE stream and the
//! CLI see the same numbers.

pub mod arithmetic;
pub mod datasets;
pub mod engines;
pub mod interventions;
pub mod worker;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use caplens_analysis::passk::pass_at_k;
use caplens_app::evals::{
    EvalDatasetView, EvalDefaults, EvalFormOptions, EvalStartRequest, EvaluationView,
    RunningPassAtK, DEFAULT_DATASET, DEFAULT_ENGINE, DEFAULT_EXPERIMENT,
};
use serde::{Deserialize, Serialize};

use crate::engine::{ChatMessage, Prompt, SamplingParams};
use crate::error::StoreError;
use crate::ingest::pipeline::{guess_stage, is_slug, STAGES};
use crate::storage::evals::{EvaluationRow, NewEvaluation};
use crate::storage::{rfc3339_from_unix, unix_from_rfc3339, Store};

/// Most samples per problem one evaluation may ask for.
pub const MAX_N: u32 = 4096;

/// How an evaluation samples, stored as JSON in `evaluations.settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    pub n: u32,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    pub seed: u64,
    #[serde(default)]
    pub stop: Vec<String>,
    /// Alternatives per token (0 = no token data).
    pub top_logprobs: u32,
    pub prompt_template: String,
    #[serde(default)]
    pub system_prompt: Option<String>,
}

impl EvalSettings {
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            seed: Some(self.seed),
            stop: self.stop.clone(),
            top_logprobs: (self.top_logprobs > 0).then_some(self.top_logprobs),
        }
    }

    /// The prompt of one problem: the template with `{prompt}` filled in, as chat messages
    /// or as raw text depending on the engine's mode.
    pub fn prompt(&self, problem_prompt: &str, chat: bool) -> Prompt {
        let text = self.prompt_template.replace("{prompt}", problem_prompt);
        if chat {
            let mut messages = Vec::new();
            if let Some(system) = self.system_prompt.as_ref().filter(|s| !s.trim().is_empty()) {
                messages.push(ChatMessage {
                    role: "system".into(),
                    content: system.clone(),
                });
            }
            messages.push(ChatMessage {
                role: "user".into(),
                content: text,
            });
            Prompt::Chat(messages)
        } else {
            Prompt::Text(text)
        }
    }
}

/// Why a start request was refused: the field and what is wrong, for the API (400), the form and
/// the CLI.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> EvalError {
    EvalError::Invalid {
        field,
        message: message.into(),
    }
}

/// Seconds since the epoch, `secs` from now, as RFC 3339.
pub fn rfc3339_in(secs: i64) -> String {
    rfc3339_from_unix((unix_now() + secs).max(0) as u64)
}

/// Validates a start request and queues its evaluations (several for a checkpoint series) in
/// project `project_id`: every engine and the dataset are looked up as that project sees them
/// (its own, else a shared one). The caller has authorised the project (`ops::evals::start`).
pub async fn start(
    store: &Store,
    project_id: i64,
    request: &EvalStartRequest,
) -> Result<Vec<i64>, EvalError> {
    let defaults = EvalDefaults::default();
    let engine_name = request
        .engine
        .clone()
        .unwrap_or_else(|| DEFAULT_ENGINE.into());
    let dataset_name = request
        .dataset
        .clone()
        .unwrap_or_else(|| DEFAULT_DATASET.into());
    if dataset_name == DEFAULT_DATASET {
        datasets::ensure_builtin(store).await?;
    }
    let experiment = request
        .experiment
        .clone()
        .unwrap_or_else(|| DEFAULT_EXPERIMENT.into());
    if !is_slug(&experiment) {
        return Err(invalid(
            "experiment",
            format!("{experiment:?} is not a valid slug (lower-case letters, digits and -)"),
        ));
    }
    let n = request.n.unwrap_or(defaults.n);
    if n == 0 || n > MAX_N {
        return Err(invalid(
            "n",
            format!("must be between 1 and {MAX_N}, got {n}"),
        ));
    }
    let settings = EvalSettings {
        n,
        temperature: request.temperature.unwrap_or(defaults.temperature),
        top_p: request.top_p.unwrap_or(defaults.top_p),
        max_tokens: request.max_tokens.unwrap_or(defaults.max_tokens),
        seed: request.seed.unwrap_or(0),
        stop: request.stop.clone().unwrap_or_default(),
        top_logprobs: request.top_logprobs.unwrap_or(defaults.top_logprobs),
        prompt_template: request
            .prompt_template
            .clone()
            .unwrap_or(defaults.prompt_template),
        system_prompt: request.system_prompt.clone(),
    };
    if !settings.prompt_template.contains("{prompt}") {
        return Err(invalid(
            "prompt_template",
            "must contain {prompt}, where the problem's text goes",
        ));
    }
    if let Some(stage) = &request.stage {
        if !STAGES.contains(&stage.as_str()) {
            return Err(invalid(
                "stage",
                format!("must be one of {}, got {stage:?}", STAGES.join(", ")),
            ));
        }
    }
    let dataset = store
        .eval_dataset_for_project(&dataset_name, project_id)
        .await?
        .ok_or_else(|| {
            EvalError::NotFound(format!(
                "dataset {dataset_name:?} does not exist or has no problems with a prompt and an answer; upload one (POST /api/v1/datasets, `caplens dataset upload`, or the Evaluations page)"
            ))
        })?;
    let mut problem_ids = store.dataset_problem_ids(dataset.id).await?;
    if let Some(limit) = request.limit {
        if limit == 0 {
            return Err(invalid("limit", "must be at least 1"));
        }
        problem_ids.truncate(limit as usize);
    }

    // One evaluation, or one per checkpoint of a series.
    struct Plan {
        engine: String,
        model: Option<String>,
        step: Option<i64>,
    }
    let plans: Vec<Plan> = match &request.series {
        Some(series) if !series.is_empty() => {
            let mut sorted = series.clone();
            sorted.sort_by_key(|c| c.step);
            sorted
                .into_iter()
                .map(|c| Plan {
                    engine: c.engine.unwrap_or_else(|| engine_name.clone()),
                    model: c.model,
                    step: Some(c.step),
                })
                .collect()
        }
        Some(_) => return Err(invalid("series", "is empty: give at least one checkpoint")),
        None => vec![Plan {
            engine: engine_name.clone(),
            model: request.model.clone(),
            step: request.step,
        }],
    };
    let series_name = request.series.as_ref().map(|_| {
        request
            .series_name
            .clone()
            .unwrap_or_else(|| experiment.clone())
    });
    let settings_json = serde_json::to_string(&settings).expect("settings serialise");
    let mut rows = Vec::new();
    let mut parent = request.parent.clone();
    for plan in &plans {
        let engine = store.engine_for_project(&plan.engine, project_id).await?.ok_or_else(|| {
            EvalError::NotFound(format!(
                "engine: no engine named {:?} in this project; a site admin adds engines (POST /api/v1/engines or `caplens engine add`)",
                plan.engine
            ))
        })?;
        if settings.top_logprobs > engine.view.max_top_logprobs {
            return Err(invalid(
                "top_logprobs",
                format!(
                    "is {} but engine {:?} returns at most {} alternatives per token",
                    settings.top_logprobs, engine.view.name, engine.view.max_top_logprobs
                ),
            ));
        }
        settings
            .sampling()
            .validate(engine.view.max_top_logprobs)
            .map_err(|e| {
                invalid(
                    "sampling",
                    e.to_string()
                        .trim_start_matches("invalid setting: ")
                        .to_owned(),
                )
            })?;
        let model = match (&plan.model, plan.step, &request.series) {
            (Some(m), _, _) => m.clone(),
            (None, Some(step), Some(_)) => format!(
                "{}@step-{step}",
                request
                    .model
                    .clone()
                    .unwrap_or_else(|| engine.view.model.clone())
            ),
            (None, _, _) => engine.view.model.clone(),
        };
        if model.trim().is_empty() {
            return Err(invalid("model", "must not be empty"));
        }
        let stage = request
            .stage
            .clone()
            .unwrap_or_else(|| guess_stage(&model).to_owned());
        rows.push((
            engine.view.id,
            model.clone(),
            stage,
            parent.clone(),
            plan.step,
        ));
        if request.series.is_some() {
            // A series is a lineage: each checkpoint was trained from the previous one.
            parent = Some(model);
        }
    }
    let news: Vec<NewEvaluation<'_>> = rows
        .iter()
        .map(|(engine_id, model, stage, parent, step)| NewEvaluation {
            engine_id: *engine_id,
            dataset_id: dataset.id,
            experiment: &experiment,
            model_name: model,
            stage,
            parent: parent.as_deref(),
            step: *step,
            series: series_name.as_deref(),
            settings: &settings_json,
            problem_ids: &problem_ids,
            n,
            project_id,
        })
        .collect();
    Ok(store.insert_evaluations(&news).await?)
}

/// The progress view of one evaluation.
pub async fn view(store: &Store, id: i64) -> Result<Option<EvaluationView>, StoreError> {
    let Some(row) = store.evaluation(id).await? else {
        return Ok(None);
    };
    Ok(Some(view_of(store, row).await?))
}

/// The newest evaluations.
pub async fn list(store: &Store, limit: i64) -> Result<Vec<EvaluationView>, StoreError> {
    let mut out = Vec::new();
    for row in store.evaluations(limit).await? {
        out.push(view_of(store, row).await?);
    }
    Ok(out)
}

/// Window of the tokens/s figure.
const RATE_WINDOW_SECS: i64 = 60;

async fn view_of(store: &Store, row: EvaluationRow) -> Result<EvaluationView, StoreError> {
    let settings: EvalSettings = serde_json::from_str(&row.settings).map_err(|e| {
        StoreError::Invalid(format!("evaluation {}: unreadable settings: {e}", row.id))
    })?;
    let finished = matches!(row.status.as_str(), "completed" | "failed" | "cancelled");
    let counts = if row.status == "completed" {
        None // staged samples are gone; the run holds them
    } else {
        Some(
            store
                .evaluation_counts(row.id, &rfc3339_in(-RATE_WINDOW_SECS))
                .await?,
        )
    };
    let (samples_done, correct, tokens, units_done, recent, per_problem) = match &counts {
        Some(c) => (
            c.samples,
            c.correct,
            c.tokens,
            c.units_done,
            c.recent_tokens,
            c.per_problem.clone(),
        ),
        None => {
            let done = completed_run_counts(store, row.run_id).await?;
            (done.0, done.1, done.2, row.problems, 0, done.3)
        }
    };
    let tokens_per_second = if finished {
        0.0
    } else {
        let window = match &row.started_at {
            Some(started) => elapsed_secs(started).clamp(1, RATE_WINDOW_SECS),
            None => RATE_WINDOW_SECS,
        };
        recent as f64 / window as f64
    };
    let remaining = (row.samples_total - samples_done).max(0);
    let eta_seconds = if finished || samples_done == 0 || tokens_per_second <= 0.0 {
        None
    } else {
        let tokens_per_sample = tokens as f64 / samples_done as f64;
        Some(remaining as f64 * tokens_per_sample / tokens_per_second)
    };
    Ok(EvaluationView {
        id: row.id,
        status: row.status,
        engine: row.engine,
        engine_kind: row.engine_kind,
        dataset: row.dataset,
        experiment: row.experiment,
        model: row.model_name,
        stage: row.stage,
        step: row.step,
        series: row.series,
        n: settings.n,
        temperature: settings.temperature,
        top_p: settings.top_p,
        max_tokens: settings.max_tokens,
        top_logprobs: settings.top_logprobs,
        problems: row.problems,
        problems_done: units_done,
        samples_total: row.samples_total,
        samples_done,
        correct,
        tokens,
        tokens_per_second,
        eta_seconds,
        pass_at_k: running_pass_at_k(&per_problem, settings.n),
        error: row.error,
        run_id: row.run_id,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
    })
}

/// (samples, correct, tokens, per-problem (n, c)) of a completed evaluation's run.
async fn completed_run_counts(
    store: &Store,
    run_id: Option<i64>,
) -> Result<(i64, i64, i64, Vec<(i64, i64)>), StoreError> {
    let Some(run_id) = run_id else {
        return Ok((0, 0, 0, Vec::new()));
    };
    let (per_problem, tokens) = store.run_counts(run_id).await?;
    let samples = per_problem.iter().map(|p| p.0).sum();
    let correct = per_problem.iter().map(|p| p.1).sum();
    Ok((samples, correct, tokens, per_problem))
}

/// Seconds since one of our timestamps (0 for an unreadable one).
fn elapsed_secs(rfc3339: &str) -> i64 {
    secs_from_to(rfc3339, unix_now())
}

/// Seconds from one of our timestamps to `now` (Unix seconds); 0 for an unreadable timestamp.
fn secs_from_to(rfc3339: &str, now: i64) -> i64 {
    unix_from_rfc3339(rfc3339).map_or(0, |t| now - t as i64)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

/// pass@k (paper eq. 1, unbiased estimator) at powers of two up to n, over the problems with at
/// least k samples so far.
pub fn running_pass_at_k(per_problem: &[(i64, i64)], n: u32) -> Vec<RunningPassAtK> {
    let mut out = Vec::new();
    let mut k = 1u32;
    while k <= n.max(1) {
        let values: Vec<f64> = per_problem
            .iter()
            .filter(|(samples, _)| *samples >= k as i64)
            .filter_map(|(samples, c)| pass_at_k(*samples as u64, *c as u64, k as u64))
            .collect();
        if !values.is_empty() {
            out.push(RunningPassAtK {
                k,
                value: values.iter().sum::<f64>() / values.len() as f64,
                problems: values.len() as u32,
            });
        }
        if k > n / 2 {
            break;
        }
        k *= 2;
    }
    out
}

/// What the "new evaluation" form offers: every engine and dataset, with the project each
/// belongs to (`None`: shared), for the caller's filter (`ops::evals::form_options`).
pub async fn form_options(
    store: &Store,
) -> Result<(EvalFormOptions, Vec<Option<i64>>, Vec<Option<i64>>), StoreError> {
    datasets::ensure_builtin(store).await?;
    let engine_rows = store.engines().await?;
    let engine_projects = engine_rows.iter().map(|e| e.project_id).collect();
    let dataset_rows = store.eval_datasets().await?;
    let dataset_projects = dataset_rows.iter().map(|d| d.project_id).collect();
    let datasets = dataset_rows
        .into_iter()
        .map(|d| EvalDatasetView {
            name: d.name,
            problems: d.problems,
            description: d.description,
            mean_prompt_chars: d.mean_prompt_chars,
        })
        .collect();
    Ok((
        EvalFormOptions {
            engines: engine_rows.into_iter().map(|e| e.view).collect(),
            datasets,
            defaults: EvalDefaults::default(),
        },
        engine_projects,
        dataset_projects,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_pass_at_k_uses_problems_with_enough_samples() {
        // Problem A: 4 samples, 1 correct; problem B: 2 samples, 2 correct.
        let rows = [(4, 1), (2, 2)];
        let curve = running_pass_at_k(&rows, 4);
        assert_eq!(curve[0].k, 1);
        assert!((curve[0].value - (0.25 + 1.0) / 2.0).abs() < 1e-12);
        assert_eq!(curve[0].problems, 2);
        let k4 = curve.iter().find(|p| p.k == 4).unwrap();
        assert_eq!(k4.problems, 1);
        assert!((k4.value - 1.0).abs() < 1e-12);
    }

    #[test]
    fn prompt_templates_fill_the_problem() {
        let s = EvalSettings {
            n: 1,
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 8,
            seed: 0,
            stop: vec![],
            top_logprobs: 0,
            prompt_template: "Q: {prompt}\nA:".into(),
            system_prompt: Some("Be brief.".into()),
        };
        assert_eq!(s.prompt("1+1?", false), Prompt::Text("Q: 1+1?\nA:".into()));
        match s.prompt("1+1?", true) {
            Prompt::Chat(m) => {
                assert_eq!(m[0].role, "system");
                assert_eq!(m[1].content, "Q: 1+1?\nA:");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn elapsed_seconds_of_our_timestamps() {
        let t = rfc3339_from_unix(1_795_737_600);
        assert_eq!(secs_from_to(&t, 1_795_737_642), 42);
        assert_eq!(secs_from_to("not a time", 1_795_737_642), 0);
    }
}
