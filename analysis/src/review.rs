//! Reviewed verdicts (issue 15): a reviewer's verdict overrides sit on top of the file's and
//! caplens' verdicts as a third source. This module recounts one (run, problem) group under the
//! overrides; pass@k and the unsolvable sets are then the usual estimators (paper-notes 1, 2) on
//! the corrected counts `c`.
//!
//! Also the review queue's rules over per-problem counts: newly unsolvable problems and answer
//! clusters that suggest a wrong reference.

use serde::{Deserialize, Serialize};

/// One rollout of a (run, problem) group, as the recount needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRollout {
    pub id: i64,
    /// Sampling order key (sample index; ties broken by the caller's order).
    pub order: i64,
    /// The normalised final answer (`verifier::normalize_answer`), if one was extracted.
    pub answer: Option<String>,
    /// The verdict under the chosen source (the file's or caplens').
    pub correct: bool,
}

/// A reviewer's verdict on one rollout, or on every rollout whose normalised answer is `answer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictOverride {
    pub rollout: Option<i64>,
    pub answer: Option<String>,
    pub correct: bool,
}

/// A group's counts under the overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReviewedCounts {
    /// Correct rollouts after review (the `c` of eq. 1).
    pub c: u64,
    /// 0-based position, in sampling order, of the first correct rollout after review.
    pub first_correct: Option<u64>,
    /// Rollouts whose verdict the overrides changed.
    pub changed: u64,
}

/// The reviewed verdict of one rollout: an override of the rollout itself wins over one of its
/// answer; without either, the source's verdict stands.
pub fn reviewed_verdict(r: &ReviewRollout, overrides: &[VerdictOverride]) -> bool {
    if let Some(o) = overrides.iter().find(|o| o.rollout == Some(r.id)) {
        return o.correct;
    }
    if let Some(answer) = &r.answer {
        if let Some(o) = overrides
            .iter()
            .find(|o| o.rollout.is_none() && o.answer.as_ref() == Some(answer))
        {
            return o.correct;
        }
    }
    r.correct
}

/// Recounts a (run, problem) group under `overrides`: c and the first correct position feed the
/// unbiased pass@k estimator (eq. 1) and the k-rollout unsolvable test (eq. 2) unchanged.
pub fn reviewed_counts(
    rollouts: &[ReviewRollout],
    overrides: &[VerdictOverride],
) -> ReviewedCounts {
    let mut ordered: Vec<&ReviewRollout> = rollouts.iter().collect();
    ordered.sort_by_key(|r| r.order);
    let mut out = ReviewedCounts::default();
    for (position, r) in ordered.iter().enumerate() {
        let verdict = reviewed_verdict(r, overrides);
        if verdict != r.correct {
            out.changed += 1;
        }
        if verdict {
            out.c += 1;
            out.first_correct.get_or_insert(position as u64);
        }
    }
    out
}

/// Is the problem newly unsolvable in the child: the parent solved it at least once in its
/// n samples, the child never did in its own (k = n for both).
pub fn newly_unsolvable(parent_c: u64, parent_n: u64, child_c: u64, child_n: u64) -> bool {
    parent_n > 0 && parent_c > 0 && child_n > 0 && child_c == 0
}

/// The most frequent wrong answer of a run on a problem when it reaches `min_share` of the run's
/// rollouts (answers: normalised answer, count, is it the reference).
pub fn popular_wrong_answer<'a>(
    answers: impl IntoIterator<Item = (&'a str, u64, bool)>,
    n: u64,
    min_share: f64,
) -> Option<(&'a str, u64)> {
    if n == 0 {
        return None;
    }
    answers
        .into_iter()
        .filter(|(a, _, correct)| !correct && !a.is_empty())
        .max_by(|x, y| x.1.cmp(&y.1).then_with(|| y.0.cmp(x.0)))
        .filter(|(_, count, _)| *count as f64 >= min_share * n as f64)
        .map(|(a, count, _)| (a, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passk::pass_at_k;

    fn r(id: i64, order: i64, answer: &str, correct: bool) -> ReviewRollout {
        ReviewRollout {
            id,
            order,
            answer: Some(answer.into()),
            correct,
        }
    }

    #[test]
    fn answer_overrides_flip_every_rollout_with_that_answer() {
        let group = vec![
            r(1, 0, "7", false),
            r(2, 1, "12", true),
            r(3, 2, "7", false),
            r(4, 3, "9", false),
        ];
        let none = reviewed_counts(&group, &[]);
        assert_eq!(
            none,
            ReviewedCounts {
                c: 1,
                first_correct: Some(1),
                changed: 0
            }
        );
        let o = [VerdictOverride {
            rollout: None,
            answer: Some("7".into()),
            correct: true,
        }];
        let got = reviewed_counts(&group, &o);
        assert_eq!(
            got,
            ReviewedCounts {
                c: 3,
                first_correct: Some(0),
                changed: 2
            }
        );
        // pass@2 on the corrected counts is the estimator's, nothing else.
        assert_eq!(pass_at_k(4, got.c, 2), pass_at_k(4, 3, 2));
    }

    #[test]
    fn a_rollout_override_beats_its_answer_override() {
        let group = vec![r(1, 0, "7", false), r(2, 1, "7", false)];
        let o = [
            VerdictOverride {
                rollout: None,
                answer: Some("7".into()),
                correct: true,
            },
            VerdictOverride {
                rollout: Some(1),
                answer: None,
                correct: false,
            },
        ];
        assert_eq!(
            reviewed_counts(&group, &o),
            ReviewedCounts {
                c: 1,
                first_correct: Some(1),
                changed: 1
            }
        );
    }

    #[test]
    fn marking_the_only_correct_answer_wrong_makes_it_unsolved() {
        let group = vec![r(1, 5, "3", false), r(2, 2, "4", true)];
        let o = [VerdictOverride {
            rollout: None,
            answer: Some("4".into()),
            correct: false,
        }];
        assert_eq!(
            reviewed_counts(&group, &o),
            ReviewedCounts {
                c: 0,
                first_correct: None,
                changed: 1
            }
        );
    }

    #[test]
    fn queue_rules() {
        assert!(newly_unsolvable(1, 64, 0, 64));
        assert!(!newly_unsolvable(0, 64, 0, 64));
        assert!(!newly_unsolvable(3, 64, 1, 64));
        let answers = [("5", 30, false), ("6", 10, true), ("7", 24, false)];
        assert_eq!(popular_wrong_answer(answers, 64, 0.3), Some(("5", 30)));
        assert_eq!(popular_wrong_answer(answers, 64, 0.5), None);
        assert_eq!(popular_wrong_answer([("", 60, false)], 64, 0.3), None);
    }
}

/// The verdicts reviewers' judgements decide (issue 27): one per target (a rollout, or an
/// answer) on which every judgement agrees and no editor's override (`overrides`) decides.
/// `judgements` holds one entry per reviewer and target.
pub fn unanimous_verdicts(
    overrides: &[VerdictOverride],
    judgements: &[VerdictOverride],
) -> Vec<VerdictOverride> {
    let mut targets: Vec<(Option<i64>, Option<&str>, Vec<bool>)> = Vec::new();
    for j in judgements {
        let key = (j.rollout, j.answer.as_deref());
        match targets.iter_mut().find(|t| (t.0, t.1) == key) {
            Some(t) => t.2.push(j.correct),
            None => targets.push((key.0, key.1, vec![j.correct])),
        }
    }
    targets
        .into_iter()
        .filter(|(rollout, answer, _)| {
            !overrides
                .iter()
                .any(|o| o.rollout == *rollout && o.answer.as_deref() == *answer)
        })
        .filter_map(|(rollout, answer, verdicts)| {
            let first = verdicts[0];
            verdicts
                .iter()
                .all(|&v| v == first)
                .then(|| VerdictOverride {
                    rollout,
                    answer: answer.map(str::to_owned),
                    correct: first,
                })
        })
        .collect()
}

#[cfg(test)]
mod judgement_tests {
    use super::*;

    fn v(rollout: Option<i64>, answer: Option<&str>, correct: bool) -> VerdictOverride {
        VerdictOverride {
            rollout,
            answer: answer.map(str::to_owned),
            correct,
        }
    }

    #[test]
    fn only_unanimous_undecided_targets_count() {
        let judgements = [
            v(None, Some("6"), true),
            v(None, Some("6"), true),
            v(None, Some("7"), true),
            v(None, Some("7"), false),
            v(Some(3), None, false),
            v(None, Some("8"), true),
        ];
        // An editor decided "8" already.
        let overrides = [v(None, Some("8"), false)];
        let decided = unanimous_verdicts(&overrides, &judgements);
        assert_eq!(
            decided,
            vec![v(None, Some("6"), true), v(Some(3), None, false)]
        );
    }
}
