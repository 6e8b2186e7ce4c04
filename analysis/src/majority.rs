//! avg@k and maj@k (notes item 18, paper table 4).
//!
//! Both look at the first k samples of a problem, in the order given (the caller sorts by sample
//! index). A problem with fewer than k samples does not count at k, as for pass@k.
//!
//! Tie rule of maj@k (deterministic): among the most frequent normalised answers, the winner is
//! the one whose first occurrence has the lowest sample position. Samples without an answer do
//! not vote; if none of the first k samples has an answer, the vote has no winner and the problem
//! scores 0. The vote is correct when the winning answer's first occurrence is a correct sample
//! (answers are grouped by [`crate::verifier::normalize_answer`], so all members of a group share
//! one normalised string; the first one's grade stands for the group).

use crate::verifier::normalize_answer;
use std::collections::HashMap;

/// One sample of a problem: its final answer (if any) and its grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    pub answer: Option<&'a str>,
    pub correct: bool,
}

/// Outcome of the majority vote over the first k samples of one problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MajorityVote {
    /// The winning normalised answer; `None` when no sample had an answer.
    pub answer: Option<String>,
    /// How many of the first k samples gave it.
    pub votes: usize,
    /// Position (0-based, within the slice) of its first occurrence.
    pub first_position: Option<usize>,
    pub correct: bool,
}

/// A value averaged over problems, with the number of problems it is over.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Averaged {
    pub value: f64,
    pub problems: usize,
}

/// avg@k of one problem: the fraction of correct samples among the first k.
/// `None` when k == 0 or the problem has fewer than k samples.
pub fn avg_at_k(samples: &[Sample], k: usize) -> Option<f64> {
    if k == 0 || samples.len() < k {
        return None;
    }
    Some(samples[..k].iter().filter(|s| s.correct).count() as f64 / k as f64)
}

/// The majority vote over the first k samples (tie rule in the module doc).
/// `None` when k == 0 or the problem has fewer than k samples.
pub fn majority_vote(samples: &[Sample], k: usize) -> Option<MajorityVote> {
    if k == 0 || samples.len() < k {
        return None;
    }
    // normalised answer -> (votes, first position)
    let mut tally: HashMap<String, (usize, usize)> = HashMap::new();
    for (pos, s) in samples[..k].iter().enumerate() {
        if let Some(a) = s.answer {
            tally.entry(normalize_answer(a)).or_insert((0, pos)).0 += 1;
        }
    }
    let best = tally
        .into_iter()
        // more votes first, then earlier first occurrence
        .max_by(|(_, (va, pa)), (_, (vb, pb))| va.cmp(vb).then(pb.cmp(pa)));
    Some(match best {
        None => MajorityVote {
            answer: None,
            votes: 0,
            first_position: None,
            correct: false,
        },
        Some((answer, (votes, pos))) => MajorityVote {
            answer: Some(answer),
            votes,
            first_position: Some(pos),
            correct: samples[pos].correct,
        },
    })
}

/// maj@k of one problem: 1 when the majority vote is correct, else 0.
pub fn maj_at_k(samples: &[Sample], k: usize) -> Option<f64> {
    majority_vote(samples, k).map(|v| if v.correct { 1.0 } else { 0.0 })
}

/// Mean of a per-problem metric over the problems where it is defined; `None` when none is.
pub fn mean_over_problems<'p, 's: 'p>(
    problems: impl IntoIterator<Item = &'p [Sample<'s>]>,
    k: usize,
    metric: fn(&[Sample], usize) -> Option<f64>,
) -> Option<Averaged> {
    let (sum, count) = problems
        .into_iter()
        .filter_map(|p| metric(p, k))
        .fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    (count > 0).then(|| Averaged {
        value: sum / count as f64,
        problems: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(answer: Option<&str>, correct: bool) -> Sample<'_> {
        Sample { answer, correct }
    }

    #[test]
    fn avg_at_k_uses_first_k() {
        let p = [
            s(Some("1"), true),
            s(Some("2"), false),
            s(Some("1"), true),
            s(None, false),
        ];
        assert_eq!(avg_at_k(&p, 2), Some(0.5));
        assert_eq!(avg_at_k(&p, 4), Some(0.5));
        assert_eq!(avg_at_k(&p, 5), None);
        assert_eq!(avg_at_k(&p, 0), None);
    }

    #[test]
    fn majority_and_tie_rule() {
        let p = [
            s(Some("7"), false),
            s(Some("3"), true),
            s(Some(" 3 "), true),
            s(Some("7"), false),
        ];
        // k = 2: "7" and "3" tie with one vote; "7" occurs first and is wrong.
        let v = majority_vote(&p, 2).unwrap();
        assert_eq!(
            (v.answer.as_deref(), v.votes, v.correct),
            (Some("7"), 1, false)
        );
        // k = 3: "3" (normalised from " 3 ") has two votes.
        let v = majority_vote(&p, 3).unwrap();
        assert_eq!(
            (v.answer.as_deref(), v.votes, v.first_position, v.correct),
            (Some("3"), 2, Some(1), true)
        );
        // k = 4: 2-2 tie, "7" first -> wrong.
        assert_eq!(maj_at_k(&p, 4), Some(0.0));
        // no answers at all: no winner, scores 0
        let none = [s(None, true), s(None, false)];
        assert_eq!(majority_vote(&none, 2).unwrap().answer, None);
        assert_eq!(maj_at_k(&none, 2), Some(0.0));
    }

    #[test]
    fn averaging_skips_short_problems() {
        let a = [s(Some("1"), true), s(Some("1"), true)];
        let b = [s(Some("2"), false)];
        let r = mean_over_problems([&a[..], &b[..]], 2, maj_at_k).unwrap();
        assert_eq!((r.value, r.problems), (1.0, 1));
        let r = mean_over_problems([&a[..], &b[..]], 1, avg_at_k).unwrap();
        assert_eq!((r.value, r.problems), (0.5, 2));
        assert_eq!(mean_over_problems([&b[..]], 2, avg_at_k), None);
    }

    proptest! {
        #[test]
        fn prop_vote_is_a_most_frequent_earliest_answer(items in proptest::collection::vec((proptest::option::of(0u8..4), any::<bool>()), 1..20), k_frac in 0.0f64..1.0) {
            let answers: Vec<Option<String>> = items.iter().map(|(a, _)| a.map(|x| x.to_string())).collect();
            let samples: Vec<Sample> = items.iter().zip(&answers).map(|((_, c), a)| Sample { answer: a.as_deref(), correct: *c }).collect();
            let k = 1 + (k_frac * samples.len() as f64) as usize;
            let k = k.min(samples.len());
            let vote = majority_vote(&samples, k).unwrap();
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for a in answers[..k].iter().flatten() { *counts.entry(a.as_str()).or_default() += 1; }
            let max = counts.values().copied().max().unwrap_or(0);
            prop_assert_eq!(vote.votes, max);
            if let Some(win) = &vote.answer {
                // no answer with as many votes occurs earlier
                let pos = vote.first_position.unwrap();
                prop_assert_eq!(answers[pos].as_deref(), Some(win.as_str()));
                for a in answers[..pos].iter().flatten() { prop_assert!(counts[a.as_str()] < max); }
                prop_assert_eq!(vote.correct, samples[pos].correct);
            }
            let avg = avg_at_k(&samples, k).unwrap();
            prop_assert!((0.0..=1.0).contains(&avg));
        }
    }
}
