//! Unit tests of the builders on hand-made experiments: run labels and the training-dynamics
//! view (step order, the law's fit, no steps).

use std::collections::HashMap;

use caplens_analysis::summary::{summary_from_parts, RolloutTotals};
use caplens_app::model::{ExperimentSummary, RunRow};
use caplens_app::views::DynamicsRequest;

use super::frame::run_choices;
use super::{dynamics_view, Prepared};
use crate::storage::analysis::{ExperimentData, ProblemStat, RunData};

fn run(
    id: i64,
    model: &str,
    step: Option<i64>,
    counts: &[(u64, u64)],
    entropy: Option<f64>,
) -> RunData {
    let mut totals = RolloutTotals::default();
    if let Some(h) = entropy {
        totals.entropy.push(Some(h));
    }
    RunData {
        row: RunRow {
            id,
            label: String::new(),
            model: model.into(),
            stage: "rl".into(),
            parent_model: None,
            training_step: step,
            dataset: "d".into(),
            temperature: None,
            top_p: None,
            max_tokens: None,
            n_per_problem: None,
            status: "completed".into(),
            origin: "upload".into(),
            created_at: String::new(),
            problems: counts.len() as i64,
            rollouts: 0,
            pass_at_1: None,
            lineage_depth: 0,
            verdicts: Default::default(),
        },
        problems: counts
            .iter()
            .enumerate()
            .map(|(i, &(n, c))| ProblemStat {
                problem_id: i as i64 + 1,
                key: format!("d/p{i}"),
                tags: vec![],
                n,
                c,
                first_correct: (c > 0).then_some(0),
                order_known: true,
                distinct_answers: 1,
                answers: Default::default(),
            })
            .collect(),
        aggregates: entropy.map(|_| caplens_analysis::rollup::RunAggregates {
            totals,
            pass_at_k: vec![],
            summary: summary_from_parts(&[], &RolloutTotals::default()),
        }),
    }
}

fn prepared(runs: Vec<RunData>) -> Prepared {
    let data = ExperimentData {
        summary: ExperimentSummary {
            slug: "x".into(),
            name: "x".into(),
            description: String::new(),
            is_demo: false,
            run_count: runs.len() as i64,
            model_count: runs.len() as i64,
            created_at: String::new(),
            project: None,
        },
        runs,
        verdicts: None,
        review: Default::default(),
    };
    Prepared {
        choices: run_choices(&data),
        data,
    }
}

#[test]
fn dynamics_fits_the_law_over_checkpoints_in_step_order() {
    // Accuracy = -0.2 exp(H) + 1.0 exactly, on 4 problems x 10 samples (c = 10 R).
    let hs = [1.5f64, 1.2, 0.9, 0.7, 0.6, 0.55];
    let runs: Vec<RunData> = hs
        .iter()
        .enumerate()
        .rev() // stored out of order: the view sorts by step
        .map(|(i, &h)| {
            let r = -0.2 * h.exp() + 1.0;
            let c = (r * 10.0).round() as u64;
            run(
                i as i64 + 1,
                &format!("m@{}", i * 50),
                Some(i as i64 * 50),
                &[(10, c); 4],
                Some(h),
            )
        })
        .collect();
    let p = prepared(runs);
    let v = dynamics_view(&p, DynamicsRequest::default(), &HashMap::new());
    assert_eq!(
        v.steps.iter().map(|s| s.step).collect::<Vec<_>>(),
        vec![0, 50, 100, 150, 200, 250]
    );
    let pts: Vec<(f64, f64)> = v
        .steps
        .iter()
        .map(|s| (s.entropy.unwrap(), s.accuracy))
        .collect();
    let want = caplens_analysis::dynamics::fit_entropy_reward(&pts).unwrap();
    let got = v.fit.clone().unwrap();
    assert!((got.a - want.a).abs() < 1e-12 && (got.b - want.b).abs() < 1e-12);
    assert!(
        (got.a - 0.2).abs() < 0.02 && (got.b - 1.0).abs() < 0.05,
        "{got:?}"
    );
    assert!(got.holds);
    assert!(v.accuracy.is_some() && v.law.is_some());
    assert_eq!(v.table.rows.len(), 6);
}

#[test]
fn dynamics_without_steps_is_empty_not_an_error() {
    let p = prepared(vec![run(1, "a", None, &[(4, 1)], None)]);
    let v = dynamics_view(&p, DynamicsRequest::default(), &HashMap::new());
    assert!(v.steps.is_empty() && v.accuracy.is_none() && v.fit.is_err());
}

#[test]
fn labels_tell_same_model_runs_apart() {
    let p = prepared(vec![
        run(1, "a", None, &[(4, 1)], None),
        run(2, "a", None, &[(4, 1)], None),
    ]);
    assert_eq!(p.choices[0].label, "a #1");
    assert_eq!(p.choices[1].label, "a #2");
}
