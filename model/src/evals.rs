//! Evaluation runs as the pages and the REST API see them (issue 7): what a user asks for
//! ([`EvalStartRequest`]), what the form offers ([`EvalFormOptions`]) and how far a run got
//! ([`EvaluationView`]). Plain data, serde on both sides; the server fills them.

use serde::{Deserialize, Serialize};

/// Start one evaluation, or a checkpoint series when `series` lists several checkpoints.
/// Every field but `dataset` has a default (docs/api.md "Evaluations").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalStartRequest {
    /// Project the evaluation runs in and its run goes to (default `default`).
    #[serde(default)]
    pub project: Option<String>,
    /// Engine name (default `embedded`).
    #[serde(default)]
    pub engine: Option<String>,
    /// Dataset name (default: the built-in `arith-calibrated`).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Experiment slug the run joins (default `evaluations`).
    #[serde(default)]
    pub experiment: Option<String>,
    /// Model name the run is recorded under (default: the engine's model).
    #[serde(default)]
    pub model: Option<String>,
    /// base, sft, rl, tir or other (default: guessed from the model name).
    #[serde(default)]
    pub stage: Option<String>,
    /// Model this one was trained from.
    #[serde(default)]
    pub parent: Option<String>,
    /// Training step of the checkpoint.
    #[serde(default)]
    pub step: Option<i64>,
    /// Samples per problem (default 16).
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Option<Vec<String>>,
    /// Alternatives per token (0 = no token data; default 5, at most the engine's cap).
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    /// Prompt template with `{prompt}` (default `{prompt}`): the user message in chat mode,
    /// the whole prompt in completions mode.
    #[serde(default)]
    pub prompt_template: Option<String>,
    /// Optional system message (chat mode).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Only the first `limit` problems of the dataset.
    #[serde(default)]
    pub limit: Option<u32>,
    /// A checkpoint series: one evaluation per entry, in one experiment, models chained as
    /// parent → child in step order.
    #[serde(default)]
    pub series: Option<Vec<SeriesCheckpoint>>,
    /// Name of the series (default: the experiment slug).
    #[serde(default)]
    pub series_name: Option<String>,
}

/// One checkpoint of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesCheckpoint {
    /// Engine serving this checkpoint (default: the request's engine).
    #[serde(default)]
    pub engine: Option<String>,
    /// Model name recorded for this checkpoint (default `<model>@step-<step>`).
    #[serde(default)]
    pub model: Option<String>,
    pub step: i64,
}

/// One engine as the form lists it (never its API key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineView {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub model: String,
    pub api_mode: String,
    pub has_api_key: bool,
    pub max_top_logprobs: u32,
}

/// One dataset a run can use: problems with prompts and reference answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalDatasetView {
    pub name: String,
    pub problems: i64,
    pub description: String,
    /// Mean prompt length in characters (for the token estimate).
    pub mean_prompt_chars: f64,
}

/// What the "new evaluation" form offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalFormOptions {
    pub engines: Vec<EngineView>,
    pub datasets: Vec<EvalDatasetView>,
    pub defaults: EvalDefaults,
}

/// The form's defaults (the same the API applies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalDefaults {
    pub engine: String,
    pub dataset: String,
    pub experiment: String,
    pub n: u32,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    pub top_logprobs: u32,
    pub prompt_template: String,
}

pub const DEFAULT_ENGINE: &str = "embedded";
pub const DEFAULT_DATASET: &str = "arith-calibrated";
pub const DEFAULT_EXPERIMENT: &str = "evaluations";

impl Default for EvalDefaults {
    fn default() -> Self {
        EvalDefaults {
            engine: DEFAULT_ENGINE.into(),
            dataset: DEFAULT_DATASET.into(),
            experiment: DEFAULT_EXPERIMENT.into(),
            n: 16,
            temperature: 0.7,
            top_p: 0.95,
            max_tokens: 96,
            top_logprobs: 5,
            prompt_template: "{prompt}".into(),
        }
    }
}

/// Upper bound of tokens a run generates: problems x n x max_tokens (the form shows it).
pub fn estimated_tokens(problems: u64, n: u64, max_tokens: u64) -> u64 {
    problems.saturating_mul(n).saturating_mul(max_tokens)
}

/// pass@k so far, over the problems with at least k samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningPassAtK {
    pub k: u32,
    pub value: f64,
    pub problems: u32,
}

/// One evaluation and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationView {
    pub id: i64,
    /// queued, running, finalizing, completed, failed, cancelled.
    pub status: String,
    pub engine: String,
    pub engine_kind: String,
    pub dataset: String,
    pub experiment: String,
    pub model: String,
    pub stage: String,
    pub step: Option<i64>,
    pub series: Option<String>,
    pub n: u32,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    pub top_logprobs: u32,
    pub problems: i64,
    pub problems_done: i64,
    pub samples_total: i64,
    pub samples_done: i64,
    pub correct: i64,
    pub tokens: i64,
    /// Generated tokens per second over the last minute (0 when idle).
    pub tokens_per_second: f64,
    /// Seconds left at the recent pace, when it can be told.
    pub eta_seconds: Option<f64>,
    pub pass_at_k: Vec<RunningPassAtK>,
    pub error: Option<String>,
    /// The run its samples became (completed evaluations).
    pub run_id: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl EvaluationView {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }

    /// Fraction of samples done, 0..=1.
    pub fn fraction(&self) -> f64 {
        if self.samples_total <= 0 {
            0.0
        } else {
            (self.samples_done as f64 / self.samples_total as f64).clamp(0.0, 1.0)
        }
    }
}

/// Which field of an uploaded dataset's records is the problem's id, prompt, answer and tags.
/// `None` = detected from the common names (docs/formats/dataset.md): `id`/`unique_id`/`idx`,
/// `prompt`/`problem`/`question`, `answer`/`final_answer`/`solution`, `tags`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetFields {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub tags: Option<String>,
}

impl DatasetFields {
    /// The roles a field can be mapped to, as `ROLE=FIELD` names them.
    pub const ROLES: [&'static str; 4] = ["id", "prompt", "answer", "tags"];

    /// Sets one mapping from `ROLE=FIELD` (`prompt=question`), as the CLI's `--field` gives it.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (role, field) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected ROLE=FIELD, e.g. prompt=question"))?;
        self.set_role(role.trim(), field)
    }

    /// Sets the field of `role` (one of [`Self::ROLES`]); an empty field clears the mapping.
    pub fn set_role(&mut self, role: &str, field: &str) -> Result<(), String> {
        let field = Some(field.trim().to_owned()).filter(|f| !f.is_empty());
        let slot = match role {
            "id" => &mut self.id,
            "prompt" => &mut self.prompt,
            "answer" => &mut self.answer,
            "tags" => &mut self.tags,
            other => {
                return Err(format!(
                    "{other:?} is not a dataset role; one of: {}",
                    Self::ROLES.join(", ")
                ))
            }
        };
        *slot = field;
        Ok(())
    }
}
