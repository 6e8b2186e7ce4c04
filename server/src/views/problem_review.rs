//! The problem page under an experiment's verdict overrides (issue 27): its per-run numbers,
//! answer clusters and rollout marks recounted the way every analysis view recounts
//! (`analysis::review`: a rollout's override beats its answer's, which beats the source's
//! verdict). Pure: the rollouts and overrides come from the caller.

use std::collections::HashMap;

use caplens_analysis::review::{reviewed_counts, reviewed_verdict, ReviewRollout, VerdictOverride};
use caplens_analysis::verifier::normalize_answer;
use caplens_app::model::{ProblemDetail, RolloutList};

use crate::storage::analysis::rollout_verdict;
use crate::storage::review::ReviewRolloutRow;
use crate::storage::rollouts::pass_at_powers_of_two;

/// Recounts each run of `detail` that has rollouts in `rollouts` (the experiment's runs) under
/// `overrides`; returns how many rollouts' verdicts they change. Answer clusters carry an
/// answer override's verdict beside the verifier's. A recounted run's per-source split (`c_file`, `c_caplens`) is dropped:
/// it counts the sources, not the review.
pub fn apply_overrides(
    detail: &mut ProblemDetail,
    rollouts: &[ReviewRolloutRow],
    overrides: &[VerdictOverride],
) -> u64 {
    let mut groups: HashMap<i64, Vec<ReviewRollout>> = HashMap::new();
    for r in rollouts {
        groups.entry(r.run_id).or_default().push(ReviewRollout {
            id: r.id,
            order: r.sample_index,
            answer: r.answer.as_deref().map(normalize_answer),
            correct: rollout_verdict(r, None),
        });
    }
    let mut changed = 0;
    for run in &mut detail.runs {
        let Some(group) = groups.get(&run.run_id) else {
            continue;
        };
        let counts = reviewed_counts(group, overrides);
        if counts.changed > 0 {
            run.c = counts.c as i64;
            run.pass_at = pass_at_powers_of_two(run.n.max(0) as u64, counts.c);
            run.c_file = None;
            run.c_caplens = None;
            changed += counts.changed;
        }
        for cluster in &mut run.answers {
            if let Some(o) = overrides.iter().find(|o| {
                o.rollout.is_none() && o.answer.as_deref() == Some(cluster.answer.as_str())
            }) {
                cluster.reviewed = Some(o.correct);
            }
        }
    }
    changed
}

/// Marks each listed rollout with its reviewed verdict (`overridden` where an override decided
/// it).
pub fn mark_rollouts(list: &mut RolloutList, overrides: &[VerdictOverride]) {
    for row in &mut list.items {
        let r = ReviewRollout {
            id: row.id,
            order: row.sample_index,
            answer: row.answer.as_deref().map(normalize_answer),
            correct: row.correct,
        };
        let verdict = reviewed_verdict(&r, overrides);
        let decided = overrides.iter().any(|o| {
            o.rollout == Some(row.id)
                || (o.rollout.is_none() && o.answer.is_some() && o.answer == r.answer)
        });
        if decided {
            row.overridden = true;
            row.correct = verdict;
        }
    }
}
