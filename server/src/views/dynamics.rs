//! The training-dynamics view: the checkpoints of one dataset in step order, accuracy over steps
//! with its plateau (item 8), entropy over steps, and the entropy-reward law fitted over them
//! (item 7).

use std::collections::HashMap;

use caplens_analysis::summary::{summary_from_parts, ProblemPart};
use caplens_app::charts::{pct, ChartSpec, LineChart, Series, VMarker, XScale};
use caplens_app::tables::TableData;
use caplens_app::views::*;

use super::frame::frame;
use super::Prepared;

/// Mean entropy of a run's rollouts, and of its correct / incorrect ones, when stored.
pub type EntropySplit = (Option<f64>, Option<f64>, Option<f64>);

pub fn dynamics_view(
    p: &Prepared,
    mut req: DynamicsRequest,
    split: &HashMap<i64, EntropySplit>,
) -> DynamicsView {
    let stepped: Vec<usize> = (0..p.data.runs.len())
        .filter(|&i| p.data.runs[i].row.training_step.is_some())
        .collect();
    let mut datasets: Vec<String> = stepped
        .iter()
        .map(|&i| p.data.runs[i].row.dataset.clone())
        .collect();
    datasets.sort();
    datasets.dedup();
    if req.dataset.as_ref().is_some_and(|d| !datasets.contains(d)) {
        req.dataset = None;
    }
    let dataset = req.dataset.clone().or_else(|| datasets.first().cloned());
    let mut chosen: Vec<usize> = stepped
        .into_iter()
        .filter(|&i| Some(&p.data.runs[i].row.dataset) == dataset.as_ref())
        .collect();
    chosen.sort_by_key(|&i| (p.data.runs[i].row.training_step, p.data.runs[i].row.id));
    let steps: Vec<DynamicsStep> = chosen
        .iter()
        .map(|&i| {
            let run = &p.data.runs[i];
            let parts: Vec<ProblemPart> = run
                .problems
                .iter()
                .map(|s| ProblemPart {
                    n: s.n,
                    c: s.c,
                    distinct_answers: 0,
                })
                .collect();
            let totals = run
                .aggregates
                .as_ref()
                .map(|a| a.totals)
                .unwrap_or_default();
            let summary = summary_from_parts(&parts, &totals);
            let (h, hc, hi) =
                split
                    .get(&run.row.id)
                    .copied()
                    .unwrap_or((summary.mean_entropy, None, None));
            DynamicsStep {
                run_id: run.row.id,
                model: run.row.model.clone(),
                step: run.row.training_step.unwrap_or(0),
                accuracy: summary.pass_at_1.unwrap_or(0.0),
                entropy: summary.mean_entropy.or(h),
                entropy_correct: hc,
                entropy_incorrect: hi,
            }
        })
        .collect();
    let line = |key: &str,
                label: &str,
                colour: usize,
                pts: Vec<(f64, f64)>,
                fmt: &dyn Fn(f64, f64) -> String| Series {
        key: key.into(),
        label: label.into(),
        readouts: pts.iter().map(|&(x, y)| fmt(x, y)).collect(),
        points: pts,
        band: Vec::new(),
        colour,
    };
    let max_step = steps.iter().map(|s| s.step).max().unwrap_or(1).max(1) as f64;
    let min_step = steps.iter().map(|s| s.step).min().unwrap_or(0) as f64;
    let acc_pts: Vec<(f64, f64)> = steps.iter().map(|s| (s.step as f64, s.accuracy)).collect();
    // Item 8: hinge fit of accuracy over steps.
    let transition = caplens_analysis::dynamics::detect_transition(&acc_pts, 3)
        .map(|t| t.step as u64)
        .map_err(|e| e.to_string());
    let accuracy = (!steps.is_empty()).then(|| {
        ChartSpec::Line(LineChart {
            x_label: "training step".into(),
            y_label: "accuracy (pass@1, %)".into(),
            x_scale: XScale::Linear,
            x_range: (min_step, max_step),
            y_range: (0.0, 1.0),
            y_percent: true,
            series: vec![line("acc", "accuracy", 0, acc_pts.clone(), &|x, y| {
                format!("step {x}: accuracy {}", pct(y))
            })],
            markers: transition
                .as_ref()
                .map(|&t| {
                    vec![VMarker {
                        x: t as f64,
                        label: format!("plateau from step {t}"),
                    }]
                })
                .unwrap_or_default(),
        })
    });
    let ent = |f: fn(&DynamicsStep) -> Option<f64>| -> Vec<(f64, f64)> {
        steps
            .iter()
            .filter_map(|s| f(s).map(|h| (s.step as f64, h)))
            .collect()
    };
    let (all_h, pos_h, neg_h) = (
        ent(|s| s.entropy),
        ent(|s| s.entropy_correct),
        ent(|s| s.entropy_incorrect),
    );
    let h_max = all_h
        .iter()
        .chain(&pos_h)
        .chain(&neg_h)
        .map(|p| p.1)
        .fold(0.0f64, f64::max);
    let entropy = (!all_h.is_empty()).then(|| {
        let mut series = vec![line("all", "all rollouts", 0, all_h.clone(), &|x, y| {
            format!("step {x}: entropy {y:.3} nats")
        })];
        if !pos_h.is_empty() {
            series.push(line(
                "pos",
                "correct rollouts",
                2,
                pos_h.clone(),
                &|x, y| format!("step {x}: correct rollouts {y:.3} nats"),
            ));
        }
        if !neg_h.is_empty() {
            series.push(line(
                "neg",
                "incorrect rollouts",
                1,
                neg_h.clone(),
                &|x, y| format!("step {x}: incorrect rollouts {y:.3} nats"),
            ));
        }
        ChartSpec::Line(LineChart {
            x_label: "training step".into(),
            y_label: "mean token entropy (nats)".into(),
            x_scale: XScale::Linear,
            x_range: (min_step, max_step),
            y_range: (0.0, (h_max * 1.15).max(0.1)),
            y_percent: false,
            series,
            markers: Vec::new(),
        })
    });
    // Item 7: R = -a exp(H) + b over (entropy, accuracy) of the checkpoints.
    let law_pts: Vec<(f64, f64)> = steps
        .iter()
        .filter_map(|s| s.entropy.map(|h| (h, s.accuracy)))
        .collect();
    let fit = caplens_analysis::dynamics::fit_entropy_reward(&law_pts).map_err(|e| e.to_string());
    let law = match (&fit, law_pts.is_empty()) {
        (Ok(f), false) => {
            let (lo, hi) = law_pts.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
                (lo.min(p.0), hi.max(p.0))
            });
            let curve: Vec<(f64, f64)> = (0..=40)
                .map(|i| lo + (hi - lo) * i as f64 / 40.0)
                .map(|h| (h, f.predict(h)))
                .collect();
            Some(ChartSpec::Line(LineChart {
                x_label: "mean token entropy H (nats)".into(),
                y_label: "accuracy R (%)".into(),
                x_scale: XScale::Linear,
                x_range: (lo, hi.max(lo + 1e-3)),
                y_range: (0.0, 1.0),
                y_percent: true,
                series: vec![
                    line(
                        "fit",
                        &format!("R = -{:.3}·exp(H) + {:.3}", f.a, f.b),
                        1,
                        curve,
                        &|x, y| format!("fit at H = {x:.3}: {}", pct(y)),
                    ),
                    line("obs", "checkpoints", 0, law_pts.clone(), &|x, y| {
                        format!("H = {x:.3}: accuracy {}", pct(y))
                    }),
                ],
                markers: Vec::new(),
            }))
        }
        _ => None,
    };
    let fmt = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
    let table = TableData {
        headers: [
            "step",
            "model",
            "accuracy (%)",
            "entropy (nats)",
            "entropy correct",
            "entropy incorrect",
        ]
        .map(String::from)
        .to_vec(),
        rows: steps
            .iter()
            .map(|s| {
                vec![
                    s.step.to_string(),
                    s.model.clone(),
                    format!("{:.2}", s.accuracy * 100.0),
                    fmt(s.entropy),
                    fmt(s.entropy_correct),
                    fmt(s.entropy_incorrect),
                ]
            })
            .collect(),
        numeric: vec![true, false, true, true, true, true],
    };
    DynamicsView {
        frame: frame(p, &chosen, Vec::new()),
        request: req,
        datasets,
        steps,
        accuracy,
        entropy,
        law,
        fit: fit.map(|f| LawFit {
            a: f.a,
            b: f.b,
            ceiling: f.ceiling,
            r_squared: f.r_squared,
            points: f.points,
            holds: f.status == caplens_analysis::dynamics::LawStatus::Holds,
        }),
        transition,
        table,
    }
}
