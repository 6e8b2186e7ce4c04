//! Answer diversity (notes item 3, fig. 1b): how many distinct normalised final answers a model
//! gives per problem.
//!
//! Answers are compared by [`crate::verifier::normalize_answer`]. Rollouts with no answer do not
//! count. A problem where no rollout has an answer is left out of the mean (it has no answers to
//! be diverse about; counting it as 0 would mix "formatting failure", reported by the format
//! violation rate, into "low diversity"); [`DiversitySummary::problems`] says how many problems
//! the mean is over.

use crate::verifier::normalize_answer;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Number of distinct normalised answers among the given answers of one problem.
pub fn distinct_answers<'a>(answers: impl IntoIterator<Item = &'a str>) -> usize {
    answers
        .into_iter()
        .map(normalize_answer)
        .collect::<HashSet<String>>()
        .len()
}

/// The mean number of distinct answers per problem.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiversitySummary {
    /// Mean over the problems that have at least one answer.
    pub mean_distinct_answers: f64,
    /// How many problems that mean is over.
    pub problems: usize,
}

/// Mean distinct answers over problems, each given as its list of answers (`None` = no answer).
/// `None` when no problem has any answer.
pub fn answer_diversity<'a, P, A>(problems: P) -> Option<DiversitySummary>
where
    P: IntoIterator<Item = A>,
    A: IntoIterator<Item = Option<&'a str>>,
{
    let mut acc = DiversityAccumulator::default();
    for (i, answers) in problems.into_iter().enumerate() {
        for a in answers.into_iter().flatten() {
            acc.push(i, a);
        }
    }
    acc.finish()
}

/// Streaming form: push (problem index, answer) pairs one at a time. Memory is one 64-bit
/// fingerprint per distinct normalised answer (SipHash with fixed keys, so deterministic; a
/// collision between two different answers of one problem has probability about 2^-64).
#[derive(Debug, Clone, Default)]
pub struct DiversityAccumulator {
    per_problem: Vec<HashSet<u64>>,
}

impl DiversityAccumulator {
    /// Records one answer of problem `problem` (dense index chosen by the caller).
    pub fn push(&mut self, problem: usize, answer: &str) {
        if self.per_problem.len() <= problem {
            self.per_problem.resize_with(problem + 1, HashSet::new);
        }
        self.per_problem[problem].insert(fingerprint(&normalize_answer(answer)));
    }

    /// Distinct answers recorded for one problem so far.
    pub fn distinct(&self, problem: usize) -> usize {
        self.per_problem.get(problem).map_or(0, HashSet::len)
    }

    /// Mean over problems with at least one answer; `None` when there is none.
    pub fn finish(&self) -> Option<DiversitySummary> {
        let counts: Vec<usize> = self
            .per_problem
            .iter()
            .map(HashSet::len)
            .filter(|&n| n > 0)
            .collect();
        if counts.is_empty() {
            return None;
        }
        Some(DiversitySummary {
            mean_distinct_answers: counts.iter().sum::<usize>() as f64 / counts.len() as f64,
            problems: counts.len(),
        })
    }
}

fn fingerprint(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_normalised_answers_and_skips_missing() {
        assert_eq!(distinct_answers(["4", " 4 ", "$4$", "5"]), 2);
        let d = answer_diversity(vec![
            vec![Some("1"), Some("2"), None],
            vec![None, None],
            vec![Some("x"), Some("x")],
        ])
        .unwrap();
        assert_eq!(d.problems, 2);
        assert_eq!(d.mean_distinct_answers, 1.5);
        assert_eq!(answer_diversity(vec![vec![None::<&str>]]), None);
        assert_eq!(answer_diversity(Vec::<Vec<Option<&str>>>::new()), None);
    }

    proptest! {
        #[test]
        fn prop_accumulator_matches_direct_count(problems in proptest::collection::vec(proptest::collection::vec(proptest::option::of("[ab ]{0,3}"), 0..8), 0..8)) {
            let direct: Vec<usize> = problems.iter().map(|p| distinct_answers(p.iter().flatten().map(String::as_str))).collect();
            let summary = answer_diversity(problems.iter().map(|p| p.iter().map(|a| a.as_deref())));
            let nonzero: Vec<usize> = direct.iter().copied().filter(|&d| d > 0).collect();
            match summary {
                None => prop_assert!(nonzero.is_empty()),
                Some(s) => {
                    prop_assert_eq!(s.problems, nonzero.len());
                    let mean = nonzero.iter().sum::<usize>() as f64 / nonzero.len() as f64;
                    prop_assert!((s.mean_distinct_answers - mean).abs() < 1e-12);
                    // a problem cannot have more distinct answers than answers
                    for (p, d) in problems.iter().zip(&direct) {
                        prop_assert!(*d <= p.iter().flatten().count());
                    }
                }
            }
        }
    }
}
