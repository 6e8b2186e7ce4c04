//! The pass@k view: each chosen run's curve (eq. 2, with a bootstrap band over problems), where
//! two curves cross, and the table behind the chart. Also the per-problem (n, c) helpers the
//! other views take pass@k with.

use caplens_analysis::passk::{
    bootstrap_band, crossover_ks, default_ks, pass_at_k_curve, CurvePoint, ProblemCounts,
};
use caplens_app::charts::{pct, ChartSpec, LineChart, Series, VMarker, XScale};
use caplens_app::tables::TableData;
use caplens_app::views::*;

use super::frame::{frame, select};
use super::Prepared;
use crate::storage::analysis::{ProblemStat, RunData};

/// Bootstrap resamples behind the pass@k band.
pub const BAND_RESAMPLES: usize = 200;
const BAND_SEED: u64 = 0x5EED_BA4D;

/// The (n, c) table pass@k is computed from.
pub(super) fn counts(problems: &[&ProblemStat]) -> Vec<ProblemCounts> {
    problems
        .iter()
        .map(|p| ProblemCounts { n: p.n, c: p.c })
        .collect()
}

/// The largest k every problem of the run can answer (its smallest n), 0 without problems.
pub(super) fn common_n(problems: &[&ProblemStat]) -> u64 {
    problems
        .iter()
        .map(|p| p.n)
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0)
}

/// Every problem of the run, in the shape the helpers above take.
pub(super) fn all(run: &RunData) -> Vec<&ProblemStat> {
    run.problems.iter().collect()
}

fn all_runs(p: &Prepared) -> Vec<i64> {
    p.data.runs.iter().map(|r| r.row.id).collect()
}

pub fn passk_view(p: &Prepared, mut req: PasskRequest) -> PasskView {
    let (chosen, missing) = select(p, &req.runs, all_runs);
    req.runs.retain(|id| !missing.contains(id));
    let mut tags: Vec<String> = p
        .data
        .runs
        .iter()
        .flat_map(|r| r.problems.iter().flat_map(|s| s.tags.iter().cloned()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    tags.retain(|t| !t.is_empty());
    let tag_missing = req.tag.as_ref().is_some_and(|t| !tags.contains(t));
    let filter = |s: &&ProblemStat| match &req.tag {
        Some(t) if !tag_missing => s.tags.contains(t),
        _ => true,
    };
    let max_n = chosen
        .iter()
        .flat_map(|&i| p.data.runs[i].problems.iter().filter(filter).map(|s| s.n))
        .max()
        .unwrap_or(1)
        .max(1);
    let ks = default_ks(max_n);
    let mut series = Vec::new();
    let mut curves: Vec<(String, Vec<CurvePoint>)> = Vec::new();
    for &i in &chosen {
        let run = &p.data.runs[i];
        let choice = &p.choices[i];
        let problems: Vec<&ProblemStat> = run.problems.iter().filter(filter).collect();
        let table = counts(&problems);
        let curve = pass_at_k_curve(&table, &ks);
        // Eq. 2 per problem, averaged; the band resamples problems (paper-notes item 1).
        let band = if req.band {
            bootstrap_band(&table, &ks, BAND_RESAMPLES, BAND_SEED, 0.95)
        } else {
            Vec::new()
        };
        series.push(Series {
            key: choice.id.to_string(),
            label: choice.label.clone(),
            points: curve.iter().map(|pt| (pt.k as f64, pt.pass_at_k)).collect(),
            readouts: curve
                .iter()
                .map(|pt| {
                    format!(
                        "{}: pass@{} = {} ({} problems)",
                        choice.label,
                        pt.k,
                        pct(pt.pass_at_k),
                        pt.problems
                    )
                })
                .collect(),
            band: band
                .iter()
                .map(|b| (b.k as f64, b.lower, b.upper))
                .collect(),
            colour: choice.colour,
        });
        curves.push((choice.label.clone(), curve));
    }
    let mut crossovers = Vec::new();
    let mut markers = Vec::new();
    for a in 0..curves.len() {
        for b in a + 1..curves.len() {
            let ks = crossover_ks(&curves[a].1, &curves[b].1);
            if ks.is_empty() {
                continue;
            }
            for &k in &ks {
                markers.push(VMarker {
                    x: k as f64,
                    label: format!("k = {k}"),
                });
            }
            crossovers.push(Crossover {
                a: curves[a].0.clone(),
                b: curves[b].0.clone(),
                ks,
            });
        }
    }
    markers.dedup_by(|x, y| x.x == y.x);
    let mut headers = vec!["k".to_string()];
    for (label, _) in &curves {
        headers.push(format!("{label} pass@k (%)"));
        headers.push(format!("{label} problems"));
    }
    let rows = ks
        .iter()
        .map(|&k| {
            let mut row = vec![k.to_string()];
            for (_, curve) in &curves {
                match curve.iter().find(|pt| pt.k == k) {
                    Some(pt) => {
                        row.push(format!("{:.2}", pt.pass_at_k * 100.0));
                        row.push(pt.problems.to_string());
                    }
                    None => {
                        row.push(String::new());
                        row.push("0".into());
                    }
                }
            }
            row
        })
        .collect();
    let numeric = vec![true; headers.len()];
    let chart = ChartSpec::Line(LineChart {
        x_label: "k (samples per problem, log2 scale)".into(),
        y_label: "pass@k (% of problems)".into(),
        x_scale: XScale::Log2,
        x_range: (1.0, max_n as f64),
        y_range: (0.0, 1.0),
        y_percent: true,
        series,
        markers,
    });
    PasskView {
        frame: frame(p, &chosen, missing),
        request: req,
        tags,
        tag_missing,
        chart,
        table: TableData {
            headers,
            rows,
            numeric,
        },
        crossovers,
        resamples: BAND_RESAMPLES,
    }
}
