//! k-rollout unsolvable sets and their exclusive regions (notes item 2, paper sec. 2.1, fig. 1c).
//!
//! A problem is *unsolvable at k* for a model when none of its first k rollouts (ordered by
//! sample index) is correct; *unsolvable* (k = `None`) when none of all its rollouts is.
//!
//! What can be decided (see [`status`]):
//! - no samples (n = 0): undetermined ([`MissingReason::NoSamples`]);
//! - n < k: undetermined ([`MissingReason::TooFewSamples`]) — k attempts were never made;
//! - c = 0: unsolvable at every k <= n;
//! - c > 0 and (k = `None` or k >= n): solved (every sample is among the first k);
//! - c > 0 and k < n: solved iff the first correct rollout's position is < k. This needs the
//!   order of the samples; count-only data (n, c) has none, so such a problem is undetermined
//!   ([`MissingReason::OrderUnknown`]) rather than guessed.
//!
//! Undetermined problems are never silently counted: they are listed per model in `missing`
//! together with problems the model lacks altogether, and regions are built only over problems
//! every compared model has with a decided status.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Everything known about one model on one problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemOutcome {
    /// Samples.
    pub n: u64,
    /// Correct samples.
    pub c: u64,
    /// 0-based position of the first correct sample in sample-index order, when known.
    pub first_correct_position: Option<u64>,
    /// Whether the order of all n samples is known (false when count-only data contributed).
    pub order_known: bool,
}

impl ProblemOutcome {
    /// Outcome known only through counts (no order).
    pub fn from_counts(n: u64, c: u64) -> Self {
        Self {
            n,
            c,
            first_correct_position: None,
            order_known: false,
        }
    }

    /// Outcome of ordered rollouts: the grades in sample-index order.
    pub fn from_ordered(grades: &[bool]) -> Self {
        Self {
            n: grades.len() as u64,
            c: grades.iter().filter(|&&g| g).count() as u64,
            first_correct_position: grades.iter().position(|&g| g).map(|p| p as u64),
            order_known: true,
        }
    }
}

/// Why a problem is left out of the comparison for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingReason {
    /// The model has no record of the problem.
    Absent,
    /// The model has the problem with zero samples.
    NoSamples,
    /// The model has fewer than k samples.
    TooFewSamples,
    /// Some correct sample exists but the sample order is unknown (count-only data) and k < n.
    OrderUnknown,
}

/// Decided or undetermined status of one problem for one model at k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Solved,
    Unsolvable,
    Undetermined(MissingReason),
}

/// Status of a problem at k (`None` = all samples). Rules in the module doc. k = `Some(0)`
/// (zero attempts) makes every problem with samples vacuously unsolvable.
pub fn status(outcome: &ProblemOutcome, k: Option<u64>) -> Status {
    let ProblemOutcome {
        n,
        c,
        first_correct_position,
        order_known,
    } = *outcome;
    if n == 0 {
        return Status::Undetermined(MissingReason::NoSamples);
    }
    if let Some(k) = k {
        if n < k {
            return Status::Undetermined(MissingReason::TooFewSamples);
        }
    }
    if c == 0 {
        return Status::Unsolvable;
    }
    match k {
        None => Status::Solved,
        Some(k) if k >= n => Status::Solved,
        Some(k) => match (order_known, first_correct_position) {
            (true, Some(p)) if p < k => Status::Solved,
            (true, Some(_)) => Status::Unsolvable,
            _ => Status::Undetermined(MissingReason::OrderUnknown),
        },
    }
}

/// 95% upper confidence bound on the true solve rate after `failures` attempts with 0 correct:
/// 1 - 0.05^(1/m) (exact binomial, about 3/m: the "rule of three"). 1 when m = 0.
pub fn solve_rate_upper_bound_95(failures: u64) -> f64 {
    if failures == 0 {
        return 1.0;
    }
    // -expm1(ln(0.05)/m) is 1 - 0.05^(1/m) without cancellation for large m.
    -(0.05f64.ln() / failures as f64).exp_m1()
}

/// One model's outcomes, keyed by problem id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutcomes {
    pub model: String,
    pub problems: BTreeMap<String, ProblemOutcome>,
}

/// An unsolvable problem of one model, with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsolvableProblem {
    pub problem_id: String,
    pub n: u64,
    pub c: u64,
    /// Failed attempts the bound is based on: n when c = 0; k when the problem is unsolvable at
    /// k but solved later (then only the first k attempts are known failures).
    pub failed_attempts: u64,
    /// [`solve_rate_upper_bound_95`] of `failed_attempts`: tells "unsolvable" from "unlucky".
    pub solve_rate_upper_95: f64,
}

/// A problem left out of the comparison for one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingProblem {
    pub problem_id: String,
    pub reason: MissingReason,
}

/// A cell of the Venn / UpSet chart: problems unsolvable by exactly these models (indices into
/// [`UnsolvableReport::models`], ascending) and solved by every other compared model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub models: Vec<usize>,
    pub problems: Vec<String>,
}

/// Unsolvable sets, exclusive regions and missing problems of several models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsolvableReport {
    pub k: Option<u64>,
    pub models: Vec<String>,
    /// Per model (same order as `models`), sorted by problem id (byte order).
    pub unsolvable: Vec<Vec<UnsolvableProblem>>,
    /// Non-empty regions only; ordered by number of models descending, then by model indices.
    pub regions: Vec<Region>,
    /// Per model: problems of the union over models that this model lacks or cannot decide at k,
    /// sorted by problem id.
    pub missing: Vec<Vec<MissingProblem>>,
}

/// Builds the unsolvable sets and regions of any number of models at k (`None` = all samples).
/// The per-model unsolvable lists include problems other models lack; regions do not.
pub fn compare_unsolvable(models: &[ModelOutcomes], k: Option<u64>) -> UnsolvableReport {
    let all_problems: BTreeSet<&str> = models
        .iter()
        .flat_map(|m| m.problems.keys().map(String::as_str))
        .collect();
    let mut unsolvable = vec![Vec::new(); models.len()];
    let mut missing = vec![Vec::new(); models.len()];
    let mut regions: BTreeMap<Vec<usize>, Vec<String>> = BTreeMap::new();
    for &pid in &all_problems {
        let mut unsolved_by = Vec::new();
        let mut decided_by_all = true;
        for (mi, m) in models.iter().enumerate() {
            let st = match m.problems.get(pid) {
                None => Status::Undetermined(MissingReason::Absent),
                Some(o) => status(o, k),
            };
            match st {
                Status::Solved => {}
                Status::Unsolvable => {
                    let o = &m.problems[pid];
                    let failed = if o.c == 0 { o.n } else { k.unwrap_or(o.n) };
                    unsolvable[mi].push(UnsolvableProblem {
                        problem_id: pid.to_string(),
                        n: o.n,
                        c: o.c,
                        failed_attempts: failed,
                        solve_rate_upper_95: solve_rate_upper_bound_95(failed),
                    });
                    unsolved_by.push(mi);
                }
                Status::Undetermined(reason) => {
                    decided_by_all = false;
                    missing[mi].push(MissingProblem {
                        problem_id: pid.to_string(),
                        reason,
                    });
                }
            }
        }
        if decided_by_all && !unsolved_by.is_empty() {
            regions
                .entry(unsolved_by)
                .or_default()
                .push(pid.to_string());
        }
    }
    let mut regions: Vec<Region> = regions
        .into_iter()
        .map(|(models, problems)| Region { models, problems })
        .collect();
    regions.sort_by(|a, b| {
        b.models
            .len()
            .cmp(&a.models.len())
            .then_with(|| a.models.cmp(&b.models))
    });
    UnsolvableReport {
        k,
        models: models.iter().map(|m| m.model.clone()).collect(),
        unsolvable,
        regions,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model(name: &str, problems: &[(&str, ProblemOutcome)]) -> ModelOutcomes {
        ModelOutcomes {
            model: name.into(),
            problems: problems.iter().map(|(p, o)| (p.to_string(), *o)).collect(),
        }
    }

    #[test]
    fn status_rules() {
        let ordered = ProblemOutcome::from_ordered(&[false, false, true, false]);
        assert_eq!(status(&ordered, Some(2)), Status::Unsolvable);
        assert_eq!(status(&ordered, Some(3)), Status::Solved);
        assert_eq!(status(&ordered, None), Status::Solved);
        assert_eq!(
            status(&ordered, Some(5)),
            Status::Undetermined(MissingReason::TooFewSamples)
        );
        let counts = ProblemOutcome::from_counts(4, 1);
        assert_eq!(
            status(&counts, Some(2)),
            Status::Undetermined(MissingReason::OrderUnknown)
        );
        assert_eq!(status(&counts, Some(4)), Status::Solved);
        assert_eq!(status(&counts, None), Status::Solved);
        let zero = ProblemOutcome::from_counts(4, 0);
        assert_eq!(status(&zero, Some(2)), Status::Unsolvable);
        assert_eq!(status(&zero, None), Status::Unsolvable);
        assert_eq!(
            status(&ProblemOutcome::from_counts(0, 0), None),
            Status::Undetermined(MissingReason::NoSamples)
        );
    }

    #[test]
    fn upper_bound_is_about_three_over_n() {
        assert_eq!(solve_rate_upper_bound_95(0), 1.0);
        assert!((solve_rate_upper_bound_95(1) - 0.95).abs() < 1e-12);
        let b = solve_rate_upper_bound_95(640);
        assert!((b - (1.0 - 0.05f64.powf(1.0 / 640.0))).abs() < 1e-15);
        // m * bound tends to ln 20 = 3.0 from below ("about 3/n")
        assert!(b * 640.0 < 20f64.ln() && b * 640.0 > 2.98, "{b}");
    }

    #[test]
    fn three_models_regions_and_missing() {
        let u = ProblemOutcome::from_counts(8, 0);
        let s = ProblemOutcome::from_counts(8, 3);
        let a = model(
            "A",
            &[("p1", u), ("p2", u), ("p3", s), ("p4", u), ("p5", u)],
        );
        let b = model("B", &[("p1", u), ("p2", s), ("p3", u), ("p4", s)]);
        let c = model(
            "C",
            &[("p1", u), ("p2", s), ("p3", s), ("p4", s), ("p5", s)],
        );
        let r = compare_unsolvable(&[a, b, c], None);
        assert_eq!(r.models, ["A", "B", "C"]);
        let ids =
            |v: &Vec<UnsolvableProblem>| v.iter().map(|p| p.problem_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&r.unsolvable[0]), ["p1", "p2", "p4", "p5"]);
        assert_eq!(
            r.regions,
            vec![
                Region {
                    models: vec![0, 1, 2],
                    problems: vec!["p1".into()]
                },
                Region {
                    models: vec![0],
                    problems: vec!["p2".into(), "p4".into()]
                },
                Region {
                    models: vec![1],
                    problems: vec!["p3".into()]
                },
            ]
        );
        // p5 is absent for B: missing, and in no region even though A fails it.
        assert_eq!(
            r.missing[1],
            vec![MissingProblem {
                problem_id: "p5".into(),
                reason: MissingReason::Absent
            }]
        );
        assert!(r.missing[0].is_empty() && r.missing[2].is_empty());
        assert_eq!(r.unsolvable[0][0].failed_attempts, 8);
    }

    #[test]
    fn unsolvable_at_k_but_solved_later_bounds_on_k() {
        let m = model(
            "A",
            &[(
                "p",
                ProblemOutcome::from_ordered(&[false, false, false, true]),
            )],
        );
        let r = compare_unsolvable(&[m], Some(2));
        assert_eq!(r.unsolvable[0][0].failed_attempts, 2);
        assert_eq!(r.regions.len(), 1);
        let empty = compare_unsolvable(&[], None);
        assert!(empty.regions.is_empty() && empty.models.is_empty());
    }

    fn outcome() -> impl Strategy<Value = Option<ProblemOutcome>> {
        prop_oneof![
            Just(None),
            proptest::collection::vec(any::<bool>(), 0..6)
                .prop_map(|g| Some(ProblemOutcome::from_ordered(&g))),
            (0u64..6)
                .prop_flat_map(|n| (Just(n), 0..=n))
                .prop_map(|(n, c)| Some(ProblemOutcome::from_counts(n, c))),
        ]
    }

    proptest! {
        #[test]
        fn prop_regions_partition_common_unsolvable(
            table in proptest::collection::vec(proptest::collection::vec(outcome(), 4), 1..10),
            k in proptest::option::of(1u64..6),
        ) {
            // table[p][m]: outcome of model m on problem p
            let models: Vec<ModelOutcomes> = (0..4).map(|m| ModelOutcomes {
                model: format!("m{m}"),
                problems: table.iter().enumerate().filter_map(|(p, row)| row[m].map(|o| (format!("p{p}"), o))).collect(),
            }).collect();
            let r = compare_unsolvable(&models, k);
            let missing_any: BTreeSet<&str> = r.missing.iter().flatten().map(|m| m.problem_id.as_str()).collect();
            let mut seen = BTreeSet::new();
            for region in &r.regions {
                prop_assert!(!region.problems.is_empty() && !region.models.is_empty());
                for p in &region.problems {
                    prop_assert!(seen.insert(p.clone()), "problem in two regions");
                    prop_assert!(!missing_any.contains(p.as_str()));
                    for (mi, m) in models.iter().enumerate() {
                        let st = status(&m.problems[p], k);
                        prop_assert_eq!(st == Status::Unsolvable, region.models.contains(&mi));
                        prop_assert!(st != Status::Unsolvable || r.unsolvable[mi].iter().any(|u| &u.problem_id == p));
                    }
                }
            }
            // the union of unsolvable sets, restricted to decided-by-all problems, is covered
            for list in &r.unsolvable {
                for u in list {
                    prop_assert!(missing_any.contains(u.problem_id.as_str()) || seen.contains(&u.problem_id));
                    prop_assert!(u.solve_rate_upper_95 > 0.0 && u.solve_rate_upper_95 <= 1.0);
                }
            }
        }
    }
}
