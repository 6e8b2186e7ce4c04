//! The per-model summary of `caplens summary` (issue 3) from its parts: per-problem counts and
//! distinct answers (a run's [`crate::rollup`], merged per model by [`crate::tables`]) and
//! rollout totals that add up across rollouts and runs; memory grows with the number of problems
//! and distinct answers, never with the number of rollouts.
//!
//! Definitions:
//! - `problems`: distinct problem ids seen; `rollouts`: sum of n (a counts record adds its n).
//! - `pass_at_1`: mean over problems with n >= 1 of c/n (pass@1 of eq. 2); `None` if none.
//! - `answer_diversity`: see [`crate::diversity`] (mean distinct normalised answers over problems
//!   with at least one answer; the answer is the given one, else extracted from the response).
//! - `format_violation_rate`, `language_mixing_rate`, `redundancy_rate`: fractions of the rollouts
//!   that have a response (items 9 and 17, see [`crate::quality`]; redundancy is measured on the
//!   whole response against the 0.31 limit); `None` when no rollout has a response.
//! - `mean_response_chars`: mean Unicode scalar values per response, over rollouts with one.
//! - `mean_entropy`, `mean_rbf`, `mean_ppl`: means over rollouts of the per-rollout values given
//!   by the caller (items 4, 5, 13); non-finite values are ignored; `None` when there is none.

use crate::quality::QualityChecks;
use serde::{Deserialize, Serialize};

/// The summary of one model. Field names are the `--json` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub problems: usize,
    pub rollouts: u64,
    pub pass_at_1: Option<f64>,
    pub answer_diversity: Option<f64>,
    pub format_violation_rate: Option<f64>,
    pub language_mixing_rate: Option<f64>,
    pub redundancy_rate: Option<f64>,
    pub mean_response_chars: Option<f64>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub mean_ppl: Option<f64>,
}

/// A running mean that can be stored and merged (sum and count of the finite values pushed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mean {
    pub sum: f64,
    pub count: u64,
}

impl Mean {
    pub fn push(&mut self, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.sum += v;
            self.count += 1;
        }
    }
    pub fn merge(&mut self, other: &Mean) {
        self.sum += other.sum;
        self.count += other.count;
    }
    pub fn get(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// The per-rollout part of a summary: totals that add up across rollouts and across runs, so an
/// import stores them once per run and a report merges runs without rereading rollouts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutTotals {
    pub with_response: u64,
    pub format_violations: u64,
    pub language_mixing: u64,
    pub redundant: u64,
    pub response_chars: u64,
    pub entropy: Mean,
    pub rbf: Mean,
    pub ppl: Mean,
}

impl RolloutTotals {
    /// Adds one rollout; `checks` are the quality checks of its response (when it has one).
    pub fn push(
        &mut self,
        response: Option<(&str, QualityChecks)>,
        mean_entropy: Option<f64>,
        mean_rbf: Option<f64>,
        ppl: Option<f64>,
    ) {
        if let Some((r, checks)) = response {
            self.with_response += 1;
            self.format_violations += checks.format_violation as u64;
            self.language_mixing += checks.language_mixing as u64;
            self.redundant += checks.redundant as u64;
            self.response_chars += r.chars().count() as u64;
        }
        self.entropy.push(mean_entropy);
        self.rbf.push(mean_rbf);
        self.ppl.push(ppl);
    }

    pub fn merge(&mut self, other: &RolloutTotals) {
        self.with_response += other.with_response;
        self.format_violations += other.format_violations;
        self.language_mixing += other.language_mixing;
        self.redundant += other.redundant;
        self.response_chars += other.response_chars;
        self.entropy.merge(&other.entropy);
        self.rbf.merge(&other.rbf);
        self.ppl.merge(&other.ppl);
    }
}

/// One problem's part of a summary: samples, correct ones, distinct normalised answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProblemPart {
    pub n: u64,
    pub c: u64,
    pub distinct_answers: usize,
}

/// The summary of a model from its parts (the definitions are in the module doc).
pub fn summary_from_parts(problems: &[ProblemPart], totals: &RolloutTotals) -> ModelSummary {
    let rate = |x: u64| (totals.with_response > 0).then(|| x as f64 / totals.with_response as f64);
    let mut pass = Mean::default();
    let mut diversity = Mean::default();
    for p in problems {
        if p.n > 0 {
            pass.push(Some(p.c as f64 / p.n as f64));
        }
        if p.distinct_answers > 0 {
            diversity.push(Some(p.distinct_answers as f64));
        }
    }
    ModelSummary {
        problems: problems.len(),
        rollouts: problems.iter().map(|p| p.n).sum(),
        pass_at_1: pass.get(),
        answer_diversity: diversity.get(),
        format_violation_rate: rate(totals.format_violations),
        language_mixing_rate: rate(totals.language_mixing),
        redundancy_rate: rate(totals.redundant),
        mean_response_chars: rate(totals.response_chars),
        mean_entropy: totals.entropy.get(),
        mean_rbf: totals.rbf.get(),
        mean_ppl: totals.ppl.get(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::RunRollup;
    use crate::tables::ModelTables;
    use crate::verifier::final_answer;
    use proptest::prelude::*;
    use std::borrow::Cow;

    /// One model's rollouts, rolled up as an import and `caplens summary` do.
    #[derive(Default)]
    struct Model {
        keys: Vec<String>,
        rollup: RunRollup,
    }

    impl Model {
        fn problem(&mut self, key: &str) -> &mut crate::rollup::ProblemRollup {
            let i = match self.keys.iter().position(|k| k == key) {
                Some(i) => i,
                None => {
                    self.keys.push(key.to_string());
                    self.keys.len() - 1
                }
            };
            self.rollup.problem(i)
        }

        fn rollout(
            &mut self,
            key: &str,
            correct: bool,
            answer: Option<&str>,
            response: Option<&str>,
        ) {
            self.rollout_with(key, correct, answer, response, None, None);
        }

        /// A rollout with its mean entropy and perplexity.
        fn rollout_with(
            &mut self,
            key: &str,
            correct: bool,
            answer: Option<&str>,
            response: Option<&str>,
            entropy: Option<f64>,
            ppl: Option<f64>,
        ) {
            let answer = final_answer(answer.map(Cow::Borrowed), response);
            self.problem(key)
                .push_rollout(None, correct, answer.as_deref())
                .unwrap();
            self.rollup.totals.push(
                response.map(|r| (r, QualityChecks::of(r))),
                entropy,
                None,
                ppl,
            );
        }

        fn summary(&self) -> ModelSummary {
            let mut t = ModelTables::new();
            t.add_rollup("m", &self.keys, &self.rollup);
            t.summary().models.remove(0).summary
        }
    }

    #[test]
    fn empty_model_has_nulls() {
        let s = Model::default().summary();
        assert_eq!(s.problems, 0);
        assert_eq!(s.rollouts, 0);
        assert!(
            s.pass_at_1.is_none()
                && s.answer_diversity.is_none()
                && s.format_violation_rate.is_none()
        );
        assert!(s.mean_response_chars.is_none() && s.mean_entropy.is_none());
    }

    #[test]
    fn mixed_counts_and_rollouts() {
        let mut m = Model::default();
        m.problem("p1").push_counts(3, 1);
        m.rollout("p1", true, None, Some("so \\boxed{2}"));
        let twice = "答 \\boxed{5} \\boxed{5}";
        m.rollout_with("p2", false, Some("5"), Some(twice), Some(0.5), None);
        m.rollout_with("p2", false, None, None, Some(f64::NAN), Some(2.0));
        m.problem("p3").push_counts(0, 0);
        let s = m.summary();
        assert_eq!(s.problems, 3);
        assert_eq!(s.rollouts, 6);
        // p1: 2/4, p2: 0/2, p3 has no samples and is left out
        assert_eq!(s.pass_at_1, Some(0.25));
        // p1 has one answer ("2", extracted), p2 one ("5")
        assert_eq!(s.answer_diversity, Some(1.0));
        assert_eq!(s.format_violation_rate, Some(0.5));
        assert_eq!(s.language_mixing_rate, Some(0.5));
        assert_eq!(s.redundancy_rate, Some(0.0));
        let chars = ("so \\boxed{2}".chars().count() + "答 \\boxed{5} \\boxed{5}".chars().count())
            as f64
            / 2.0;
        assert_eq!(s.mean_response_chars, Some(chars));
        assert_eq!(s.mean_entropy, Some(0.5)); // NaN ignored
        assert_eq!(s.mean_rbf, None);
        assert_eq!(s.mean_ppl, Some(2.0));
    }

    proptest! {
        #[test]
        fn prop_pass_at_1_is_mean_of_ratios(rollouts in proptest::collection::vec((0usize..5, any::<bool>()), 1..60)) {
            let mut m = Model::default();
            let mut table = [(0u64, 0u64); 5];
            for (p, correct) in &rollouts {
                m.rollout(&format!("p{p}"), *correct, None, None);
                table[*p].0 += 1;
                table[*p].1 += *correct as u64;
            }
            let seen: Vec<_> = table.iter().filter(|(n, _)| *n > 0).collect();
            let expected = seen.iter().map(|(n, c)| *c as f64 / *n as f64).sum::<f64>() / seen.len() as f64;
            let s = m.summary();
            prop_assert_eq!(s.problems, seen.len());
            prop_assert_eq!(s.rollouts, rollouts.len() as u64);
            prop_assert!((s.pass_at_1.unwrap() - expected).abs() < 1e-12);
            prop_assert!(s.format_violation_rate.is_none());
        }
    }
}
