//! What a load hands the bulk writer: the models, runs and rollouts to create, the problems it
//! finds stored, the per-problem aggregate rows and what a finished run stores about itself.

use caplens_analysis::verdicts::{VerdictSource, VerdictTally};

/// A model to create.
pub struct NewModel<'a> {
    /// The project it belongs to (names are unique within a project).
    pub project_id: i64,
    pub name: &'a str,
    pub family: &'a str,
    pub stage: &'a str,
    pub parent_id: Option<i64>,
    pub training_step: Option<i64>,
    pub notes: &'a str,
}

/// A run to create.
pub struct NewRun<'a> {
    /// The project it belongs to: decided in the transaction that writes it.
    pub project_id: i64,
    pub model_id: i64,
    pub dataset_id: i64,
    pub label: &'a str,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
    pub n_per_problem: Option<i64>,
    pub seed: Option<i64>,
    pub prompt_template: Option<&'a str>,
    pub status: &'a str,
    pub origin: &'a str,
    /// The import that writes it.
    pub import_id: Option<&'a str>,
}

/// One rollout to store.
#[derive(Debug, Clone, Copy)]
pub struct NewRollout<'a> {
    pub run_id: i64,
    pub problem_id: i64,
    pub sample_index: i64,
    /// The response text, kept in the row (the demo); imports give `response_range` instead.
    pub response: Option<&'a str>,
    /// (offset, length) of the response text in the run's response pack
    /// (`RunCompletion::response_pack`).
    pub response_range: Option<(i64, i64)>,
    pub extracted_answer: Option<&'a str>,
    /// Under the run's default verdict source.
    pub correct: bool,
    pub token_count: Option<i64>,
    pub finish_reason: Option<&'a str>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
    pub quality_flags: i64,
    /// (blob key of the run's trace pack, offset, length) of the rollout's token trace.
    pub trace: Option<(&'a str, i64, i64)>,
    /// The file's verdict, when it gave one.
    pub file_correct: Option<bool>,
    /// caplens' verdict code (`CaplensVerdict::code`).
    pub caplens_verdict: Option<i64>,
}

/// A stored problem as a load sees it.
pub struct StoredProblem {
    pub id: i64,
    pub prompt: String,
    pub reference: String,
    /// The stored tags (a JSON array).
    pub tags: String,
}

/// Per (run, problem) aggregate row.
pub struct ProblemStats {
    pub problem_id: i64,
    /// Order of first appearance of the problem in the run.
    pub position: i64,
    pub n: i64,
    /// Correct samples under the run's default verdict source.
    pub c: i64,
    /// 0-based position of the first correct rollout in sampling order (default source).
    pub first_correct_sample: Option<i64>,
    /// `c` and `first_correct_sample` under the file's and under caplens' verdicts
    /// (`analysis::verdicts`), indexed like `VerdictSource::ALL`.
    pub by_source: [(i64, Option<i64>); 2],
    pub distinct_answers: i64,
    /// False when count-only data contributed (no order).
    pub order_known: bool,
    /// JSON object: normalised answer -> rollouts that gave it.
    pub answers: String,
}

impl ProblemStats {
    /// The stored row of one problem's rollup (the demo and imports write the same thing), with
    /// `default` the run's default verdict source.
    pub fn of_rollup(
        problem_id: i64,
        position: usize,
        p: &caplens_analysis::rollup::ProblemRollup,
        default: VerdictSource,
    ) -> Self {
        let by_source = VerdictSource::ALL.map(|source| {
            let outcome = p.outcome_under(source);
            (
                outcome.c as i64,
                outcome.first_correct_position.map(|x| x as i64),
            )
        });
        let outcome = p.outcome_under(default);
        ProblemStats {
            problem_id,
            position: position as i64,
            n: p.n() as i64,
            c: outcome.c as i64,
            first_correct_sample: outcome.first_correct_position.map(|x| x as i64),
            by_source,
            distinct_answers: p.answers().len() as i64,
            order_known: outcome.order_known,
            answers: serde_json::to_string(p.answers()).expect("a map of strings serialises"),
        }
    }
}

/// What a finished run stores about itself.
pub struct RunCompletion<'a> {
    /// JSON `analysis::rollup` aggregates under the default verdict source.
    pub aggregates: &'a str,
    pub n_per_problem: Option<i64>,
    /// The import's content hash (duplicate detection).
    pub source_hash: Option<&'a str>,
    /// JSON token statistics, when rollouts carried token data.
    pub token_stats: Option<&'a str>,
    pub default_verdicts: VerdictSource,
    pub verdicts: &'a VerdictTally,
    /// JSON: what the file said about its run.
    pub source_info: &'a str,
    pub source_identity: Option<&'a str>,
    /// The blob key of the run's response pack, when its responses are there.
    pub response_pack: Option<&'a str>,
}

/// An earlier run that a load would duplicate: (id, import id, label).
pub type EarlierRun = (i64, Option<String>, String);
