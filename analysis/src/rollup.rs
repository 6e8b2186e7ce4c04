//! Per-run aggregates computed while rollouts stream in (issue 5): everything the reports need
//! (pass@k, unsolvable at k, summary) in memory that grows with problems and distinct answers,
//! not with rollouts, so an import computes them once and pages never rescan rollouts.
//!
//! Sample order follows the rule of `caplens unsolvable` (docs/formats/native.md): rollouts are
//! ordered by their sample index when every rollout of the problem gives one, else by order of
//! appearance; count-only data has no order. A rollout without a sample index is given the
//! smallest index not yet used by that problem, so stored indices are unique.

use crate::passk::{default_ks, pass_at_k_curve, CurvePoint, ProblemCounts};
use crate::sets::ProblemOutcome;
use crate::summary::{summary_from_parts, ModelSummary, ProblemPart, RolloutTotals};
use crate::verdicts::VerdictSource;
use crate::verifier::normalize_answer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The largest sample index accepted (the set of used indices is a bitset).
pub const MAX_SAMPLE_INDEX: u64 = 1 << 24;

/// Why a rollout cannot be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollupError {
    /// The problem already has a rollout with this sample index.
    DuplicateSample(u64),
    /// The sample index is above [`MAX_SAMPLE_INDEX`].
    SampleTooLarge(u64),
}

impl std::fmt::Display for RollupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollupError::DuplicateSample(s) => write!(
                f,
                "sample {s} of this problem was already given (each sample index may appear once per model and problem)"
            ),
            RollupError::SampleTooLarge(s) => {
                write!(f, "sample index {s} is above the limit {MAX_SAMPLE_INDEX}")
            }
        }
    }
}

/// The correct rollouts of one problem under one verdict source.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct CorrectTrack {
    correct: u64,
    first_correct_appearance: Option<u64>,
    min_correct_sample: Option<u64>,
}

impl CorrectTrack {
    fn push(&mut self, correct: bool, sample: Option<u64>, appearance: u64) {
        if correct {
            if self.first_correct_appearance.is_none() {
                self.first_correct_appearance = Some(appearance);
            }
            if let Some(s) = sample {
                self.min_correct_sample = Some(self.min_correct_sample.map_or(s, |m| m.min(s)));
            }
        }
        self.correct += correct as u64;
    }
}

/// One (run, problem): counts, order of the first correct rollout, answers. Correctness is
/// kept under both verdict sources (the file's and caplens', [`crate::verdicts`]); a rollout
/// added with one verdict counts the same under both.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemRollup {
    rollouts: u64,
    /// Indexed by [`track`]: the file's verdicts, caplens' verdicts.
    tracks: [CorrectTrack; 2],
    counts_n: u64,
    counts_c: u64,
    all_given: bool,
    /// Bitset of used sample indices.
    used: Vec<u64>,
    next_free: u64,
    /// Normalised answer -> how many rollouts gave it.
    answers: BTreeMap<String, u64>,
}

fn track(source: VerdictSource) -> usize {
    match source {
        VerdictSource::File => 0,
        VerdictSource::Caplens => 1,
    }
}

impl Default for ProblemRollup {
    fn default() -> Self {
        ProblemRollup {
            rollouts: 0,
            tracks: [CorrectTrack::default(); 2],
            counts_n: 0,
            counts_c: 0,
            all_given: true,
            used: Vec::new(),
            next_free: 0,
            answers: BTreeMap::new(),
        }
    }
}

impl ProblemRollup {
    fn is_used(&self, s: u64) -> bool {
        self.used
            .get((s / 64) as usize)
            .is_some_and(|w| w & (1 << (s % 64)) != 0)
    }

    fn mark(&mut self, s: u64) {
        let word = (s / 64) as usize;
        if self.used.len() <= word {
            self.used.resize(word + 1, 0);
        }
        self.used[word] |= 1 << (s % 64);
    }

    /// Adds one rollout; returns the sample index it is stored under. `answer` is the final
    /// answer (given or extracted), normalised here for diversity.
    pub fn push_rollout(
        &mut self,
        sample: Option<u64>,
        correct: bool,
        answer: Option<&str>,
    ) -> Result<u64, RollupError> {
        self.push_rollout_graded(sample, [correct, correct], answer)
    }

    /// [`Self::push_rollout`] with the verdict under each source: `[file's, caplens']` (each
    /// already falling back to the other, `RolloutVerdicts::under`).
    pub fn push_rollout_graded(
        &mut self,
        sample: Option<u64>,
        correct: [bool; 2],
        answer: Option<&str>,
    ) -> Result<u64, RollupError> {
        let index = match sample {
            Some(s) if s > MAX_SAMPLE_INDEX => return Err(RollupError::SampleTooLarge(s)),
            Some(s) if self.is_used(s) => return Err(RollupError::DuplicateSample(s)),
            Some(s) => s,
            None => {
                while self.is_used(self.next_free) {
                    self.next_free += 1;
                }
                if self.next_free > MAX_SAMPLE_INDEX {
                    return Err(RollupError::SampleTooLarge(self.next_free));
                }
                self.next_free
            }
        };
        self.mark(index);
        self.all_given &= sample.is_some();
        for (t, c) in self.tracks.iter_mut().zip(correct) {
            t.push(c, sample, self.rollouts);
        }
        self.rollouts += 1;
        if let Some(a) = answer {
            *self.answers.entry(normalize_answer(a)).or_default() += 1;
        }
        Ok(index)
    }

    /// Adds a counts record (n samples, c correct, no order).
    pub fn push_counts(&mut self, n: u64, c: u64) {
        self.counts_n = self.counts_n.saturating_add(n);
        self.counts_c = self.counts_c.saturating_add(c);
    }

    /// Samples and correct ones, rollouts and counts together.
    pub fn n(&self) -> u64 {
        self.counts_n.saturating_add(self.rollouts)
    }

    /// Correct samples under the file's verdicts (the same as caplens' when each rollout was
    /// added with one verdict).
    pub fn c(&self) -> u64 {
        self.c_under(VerdictSource::File)
    }

    /// Correct samples under `source`'s verdicts.
    pub fn c_under(&self, source: VerdictSource) -> u64 {
        self.counts_c
            .saturating_add(self.tracks[track(source)].correct)
    }

    /// The outcome for the unsolvable comparison, by the ordering rule of the module doc.
    pub fn outcome(&self) -> ProblemOutcome {
        self.outcome_under(VerdictSource::File)
    }

    /// [`Self::outcome`] under `source`'s verdicts.
    pub fn outcome_under(&self, source: VerdictSource) -> ProblemOutcome {
        let t = &self.tracks[track(source)];
        if self.counts_n > 0 || self.rollouts == 0 {
            return ProblemOutcome::from_counts(self.n(), self.c_under(source));
        }
        let first_correct_position = if self.all_given {
            // Position in sample-index order = how many used indices lie below the first
            // correct one.
            t.min_correct_sample.map(|s| {
                let (word, bit) = ((s / 64) as usize, s % 64);
                let below: u64 = self.used[..word]
                    .iter()
                    .map(|w| w.count_ones() as u64)
                    .sum();
                below + (self.used[word] & ((1u64 << bit) - 1)).count_ones() as u64
            })
        } else {
            t.first_correct_appearance
        };
        ProblemOutcome {
            n: self.n(),
            c: self.c_under(source),
            first_correct_position,
            order_known: true,
        }
    }

    /// Normalised answers with their counts.
    pub fn answers(&self) -> &BTreeMap<String, u64> {
        &self.answers
    }
}

/// What a run stores about itself at import (`runs.aggregates`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunAggregates {
    pub totals: RolloutTotals,
    /// pass@k at the default ks (powers of two up to the largest n).
    pub pass_at_k: Vec<CurvePoint>,
    pub summary: ModelSummary,
}

/// A run's problems (dense indices chosen by the caller) and rollout totals.
#[derive(Debug, Clone, Default)]
pub struct RunRollup {
    pub problems: Vec<ProblemRollup>,
    pub totals: RolloutTotals,
}

impl RunRollup {
    /// The problem at `index`, created (empty) if needed.
    pub fn problem(&mut self, index: usize) -> &mut ProblemRollup {
        if self.problems.len() <= index {
            self.problems.resize_with(index + 1, ProblemRollup::default);
        }
        &mut self.problems[index]
    }

    pub fn aggregates(&self) -> RunAggregates {
        self.aggregates_under(VerdictSource::File)
    }

    /// The run's aggregates under `source`'s verdicts.
    pub fn aggregates_under(&self, source: VerdictSource) -> RunAggregates {
        let counts: Vec<ProblemCounts> = self
            .problems
            .iter()
            .map(|p| ProblemCounts {
                n: p.n(),
                c: p.c_under(source),
            })
            .collect();
        let max_n = counts.iter().map(|p| p.n).max().unwrap_or(0);
        let parts: Vec<ProblemPart> = self
            .problems
            .iter()
            .map(|p| ProblemPart {
                n: p.n(),
                c: p.c_under(source),
                distinct_answers: p.answers.len(),
            })
            .collect();
        RunAggregates {
            totals: self.totals,
            pass_at_k: pass_at_k_curve(&counts, &default_ks(max_n)),
            summary: summary_from_parts(&parts, &self.totals),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn given_samples_order_by_index() {
        let mut p = ProblemRollup::default();
        assert_eq!(p.push_rollout(Some(5), true, Some("2")), Ok(5));
        assert_eq!(p.push_rollout(Some(1), false, Some("3")), Ok(1));
        assert_eq!(p.push_rollout(Some(3), true, Some("2.0")), Ok(3));
        let o = p.outcome();
        // Order 1 (wrong), 3 (right), 5 (right): first correct at position 1.
        assert_eq!(
            (o.n, o.c, o.first_correct_position, o.order_known),
            (3, 2, Some(1), true)
        );
        assert_eq!(
            p.answers().len(),
            2,
            "2 and 2.0 normalise alike: {:?}",
            p.answers()
        );
    }

    #[test]
    fn missing_samples_order_by_appearance_and_get_free_indices() {
        let mut p = ProblemRollup::default();
        assert_eq!(p.push_rollout(Some(1), true, None), Ok(1));
        assert_eq!(p.push_rollout(None, false, None), Ok(0));
        assert_eq!(p.push_rollout(None, false, None), Ok(2));
        // Appearance order: the correct one came first.
        assert_eq!(p.outcome().first_correct_position, Some(0));
    }

    #[test]
    fn duplicate_and_huge_samples_are_errors() {
        let mut p = ProblemRollup::default();
        p.push_rollout(Some(0), false, None).unwrap();
        assert_eq!(
            p.push_rollout(Some(0), true, None),
            Err(RollupError::DuplicateSample(0))
        );
        assert_eq!(
            p.push_rollout(Some(MAX_SAMPLE_INDEX + 1), true, None),
            Err(RollupError::SampleTooLarge(MAX_SAMPLE_INDEX + 1))
        );
        assert_eq!((p.n(), p.c()), (1, 0), "rejected rollouts leave no trace");
    }

    #[test]
    fn the_two_verdict_sources_are_counted_apart() {
        let mut p = ProblemRollup::default();
        // Sample 2: the file says right, caplens wrong; sample 0: the reverse; sample 1: both wrong.
        p.push_rollout_graded(Some(2), [true, false], Some("5"))
            .unwrap();
        p.push_rollout_graded(Some(0), [false, true], Some("6"))
            .unwrap();
        p.push_rollout_graded(Some(1), [false, false], None)
            .unwrap();
        assert_eq!(
            (
                p.c_under(VerdictSource::File),
                p.c_under(VerdictSource::Caplens)
            ),
            (1, 1)
        );
        assert_eq!(
            p.outcome_under(VerdictSource::File).first_correct_position,
            Some(2)
        );
        assert_eq!(
            p.outcome_under(VerdictSource::Caplens)
                .first_correct_position,
            Some(0)
        );
        assert_eq!(p.outcome(), p.outcome_under(VerdictSource::File));
    }

    #[test]
    fn counts_make_order_unknown() {
        let mut p = ProblemRollup::default();
        p.push_rollout(Some(0), true, None).unwrap();
        p.push_counts(4, 1);
        let o = p.outcome();
        assert_eq!((o.n, o.c, o.order_known), (5, 2, false));
    }

    proptest! {
        /// With every sample given (any order, any gaps), the first-correct position equals the
        /// index of the first correct grade after sorting by sample, as `caplens unsolvable` does.
        #[test]
        fn position_matches_sorting(samples in proptest::collection::btree_set(0u64..5000, 1..60),
                                    seed in any::<u64>()) {
            let mut rows: Vec<(u64, bool)> = samples.iter().enumerate()
                .map(|(i, &s)| (s, (seed >> (i % 64)) & 1 == 1 && (s + seed) % 3 == 0)).collect();
            // Feed in a scrambled order.
            rows.sort_by_key(|&(s, _)| s.wrapping_mul(seed | 1) % 7919);
            let mut p = ProblemRollup::default();
            for &(s, g) in &rows {
                p.push_rollout(Some(s), g, None).unwrap();
            }
            let mut sorted = rows.clone();
            sorted.sort();
            let grades: Vec<bool> = sorted.iter().map(|r| r.1).collect();
            prop_assert_eq!(p.outcome(), ProblemOutcome::from_ordered(&grades));
        }
    }
}
