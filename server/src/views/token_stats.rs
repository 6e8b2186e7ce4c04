//! The token-statistics view from the stored per-run token statistics: entropy by position
//! (fig. 6a), the PPL distribution (fig. 5a), intervention impact by position (fig. 6b), and
//! their tables.

use std::collections::HashMap;

use caplens_app::charts::{BarChart, BarSeries, ChartSpec, LineChart, Series, XScale};
use caplens_app::tables::TableData;
use caplens_app::views::*;

use super::frame::{frame, select};
use super::Prepared;

/// Runs with token-level data by default (up to three: each has a correct and an incorrect line).
pub fn token_stats_view(
    p: &Prepared,
    mut req: TokenStatsRequest,
    stats: &HashMap<i64, caplens_analysis::token_stats::TokenStats>,
) -> TokenStatsView {
    let with_data = |p: &Prepared| -> Vec<i64> {
        p.data
            .runs
            .iter()
            .map(|r| r.row.id)
            .filter(|id| stats.contains_key(id))
            .take(3)
            .collect()
    };
    let (mut chosen, missing) = select(p, &req.runs, with_data);
    chosen.truncate(3);
    req.runs.retain(|id| !missing.contains(id));
    let mut sources = Vec::new();
    let mut pos_series = Vec::new();
    let mut ppl_series = Vec::new();
    let mut impact_series = Vec::new();
    // The PPL bars (fig. 5a) are shared by the runs shown: octaves, or finer where all their
    // rollouts' PPL lies in a narrow range.
    let histograms: Vec<_> = chosen
        .iter()
        .filter_map(|&i| stats.get(&p.choices[i].id))
        .map(|s| &s.perplexity.histogram)
        .collect();
    let ppl_bars = caplens_analysis::token_stats::ppl_grouping(&histograms);
    let ppl_categories = ppl_labels(&ppl_bars, histograms.first().map(|h| h.edges.as_slice()));
    let ppl_axis = if ppl_bars.groups.iter().all(|g| g.len() == 16) {
        "perplexity (octaves)"
    } else {
        "perplexity"
    };
    let mut impact_categories: Vec<String> = Vec::new();
    let mut summary_rows = Vec::new();
    let mut category_rows = Vec::new();
    let mut group_rows = Vec::new();
    let mean = |m: &caplens_analysis::tokens::MeanAccumulator| m.mean();
    let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_default();
    for (slot, &i) in chosen.iter().enumerate() {
        let choice = &p.choices[i];
        let Some(s) = stats.get(&choice.id) else {
            sources.push((choice.label.clone(), "no token-level data".into()));
            continue;
        };
        let src = &s.entropy_source;
        let source = if src.exact > 0 && src.truncated == 0 {
            "exact (full distribution)".to_string()
        } else if src.truncated > 0 {
            format!(
                "truncated estimate from top-{} logprobs (a lower bound)",
                src.max_top_k
            )
        } else {
            "no per-token entropies".to_string()
        };
        sources.push((choice.label.clone(), source));
        // Fig. 6a: entropy by relative position, correct and incorrect responses apart.
        let bins = s.position_entropy.summary();
        let (c_corr, c_inc) = ((2 * slot) % 7, (2 * slot + 1) % 7);
        for (key, label, colour, pick) in [
            ("c", "correct", c_corr, true),
            ("i", "incorrect", c_inc, false),
        ] {
            let pts: Vec<(f64, f64)> = bins
                .iter()
                .filter_map(|b| {
                    mean(if pick { &b.correct } else { &b.incorrect })
                        .map(|m| ((b.start + b.end) / 2.0, m))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            pos_series.push(Series {
                key: format!("{}{key}", choice.id),
                label: format!("{} · {label}", choice.label),
                readouts: pts
                    .iter()
                    .map(|&(x, y)| {
                        format!(
                            "{} {label}: entropy {y:.3} nats at position {:.0} %",
                            choice.label,
                            x * 100.0
                        )
                    })
                    .collect(),
                points: pts,
                band: Vec::new(),
                colour,
            });
        }
        // Fig. 5a: PPL distribution (share of rollouts per log-spaced bin).
        let h = &s.perplexity.histogram;
        let total: u64 =
            h.correct.iter().chain(&h.incorrect).sum::<u64>() + h.above_correct + h.above_incorrect;
        if total > 0 {
            let mut values: Vec<Option<f64>> = ppl_bars
                .groups
                .iter()
                .map(|g| {
                    let n: u64 = g.clone().map(|i| h.count(i)).sum();
                    Some(n as f64 / total as f64)
                })
                .collect();
            if ppl_bars.overflow {
                values.push(Some(
                    (h.above_correct + h.above_incorrect) as f64 / total as f64,
                ));
            }
            ppl_series.push(BarSeries {
                key: choice.id.to_string(),
                label: choice.label.clone(),
                values,
                colour: choice.colour,
            });
        }
        if let Some(g) = &s.perplexity.groups {
            for (name, grp) in [("bottom", &g.low), ("top", &g.high)] {
                group_rows.push(vec![
                    choice.label.clone(),
                    format!("{name} {:.0} %", g.fraction * 100.0),
                    grp.rollouts.to_string(),
                    f(
                        (grp.rollouts > 0)
                            .then(|| grp.correct as f64 / grp.rollouts as f64 * 100.0),
                        1,
                    ),
                    f(mean(&grp.mean_entropy), 3),
                    format!("{:.3}–{:.3}", grp.min_ppl, grp.max_ppl),
                ]);
            }
        }
        // Fig. 6b: intervention impact by position.
        if let Some(iv) = &s.interventions {
            if impact_categories.is_empty() {
                impact_categories = iv
                    .by_position
                    .iter()
                    .map(|b| format!("{:.0}–{:.0} %", b.start * 100.0, b.end * 100.0))
                    .collect();
            }
            impact_series.push(BarSeries {
                key: choice.id.to_string(),
                label: choice.label.clone(),
                values: iv
                    .by_position
                    .iter()
                    .map(|b| b.summary.mean_abs_impact)
                    .collect(),
                colour: choice.colour,
            });
            if let Some(g) = &iv.by_ppl_group {
                for (name, sm) in [("bottom PPL", &g.low), ("top PPL", &g.high)] {
                    group_rows.push(vec![
                        choice.label.clone(),
                        format!("interventions, {name} {:.0} %", g.fraction * 100.0),
                        sm.interventions.to_string(),
                        String::new(),
                        f(sm.mean_abs_impact, 4),
                        String::new(),
                    ]);
                }
            }
        }
        let per = |x: u64| {
            if s.categories.responses > 0 {
                format!("{:.1}", x as f64 / s.categories.responses as f64)
            } else {
                String::new()
            }
        };
        let t = &s.categories.tokens;
        category_rows.push(vec![
            choice.label.clone(),
            s.categories.responses.to_string(),
            per(t.formal_reasoning),
            per(t.logical_structuring),
            per(t.metacognitive),
            per(t.semantic_support),
        ]);
        summary_rows.push(vec![
            choice.label.clone(),
            s.rollouts.to_string(),
            s.traced_rollouts.to_string(),
            s.trace_tokens.to_string(),
            f(mean(&s.mean_entropy.correct), 4),
            f(mean(&s.mean_entropy.incorrect), 4),
            f(mean(&s.perplexity.mean.correct), 4),
            f(mean(&s.perplexity.mean.incorrect), 4),
        ]);
    }
    let y_max = pos_series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let position = (!pos_series.is_empty()).then(|| {
        ChartSpec::Line(LineChart {
            x_label: "relative position in the response (0 = start, 1 = end)".into(),
            y_label: "mean token entropy (nats)".into(),
            x_scale: XScale::Linear,
            x_range: (0.0, 1.0),
            y_range: (0.0, (y_max * 1.15).max(0.1)),
            y_percent: false,
            series: pos_series,
            markers: Vec::new(),
        })
    });
    let ppl = (!ppl_series.is_empty()).then(|| {
        ChartSpec::Bars(BarChart {
            x_label: ppl_axis.into(),
            y_label: "share of rollouts".into(),
            categories: ppl_categories,
            series: ppl_series,
            y_percent: true,
        })
    });
    let impact = (!impact_series.is_empty()).then(|| {
        ChartSpec::Bars(BarChart {
            x_label: "relative position of the intervened token".into(),
            y_label: "mean |I_t| (accuracy change)".into(),
            categories: impact_categories,
            series: impact_series,
            y_percent: false,
        })
    });
    let table = |headers: &[&str], rows: Vec<Vec<String>>| TableData {
        numeric: (0..headers.len()).map(|i| i > 0).collect(),
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows,
    };
    let mut tables = vec![(
        "summary".to_string(),
        table(
            &[
                "run",
                "rollouts",
                "with trace",
                "trace tokens",
                "entropy correct",
                "entropy incorrect",
                "PPL correct",
                "PPL incorrect",
            ],
            summary_rows,
        ),
    )];
    if !category_rows.is_empty() {
        tables.push((
            "categories".into(),
            table(
                &[
                    "run",
                    "responses",
                    "formal reasoning / response",
                    "logical structuring",
                    "metacognitive",
                    "semantic support",
                ],
                category_rows,
            ),
        ));
    }
    if !group_rows.is_empty() {
        tables.push((
            "ppl-groups".into(),
            table(
                &[
                    "run",
                    "group",
                    "rollouts",
                    "accuracy (%)",
                    "mean entropy / |I_t|",
                    "PPL range",
                ],
                group_rows,
            ),
        ));
    }
    TokenStatsView {
        frame: frame(p, &chosen, missing),
        sources,
        position,
        ppl,
        impact,
        tables,
    }
}

/// The PPL bars' labels: "1–2" for a whole octave, "1.09–1.19" for a finer group, "≥ 32" for
/// the overflow.
fn ppl_labels(
    bars: &caplens_analysis::token_stats::PplGrouping,
    edges: Option<&[f64]>,
) -> Vec<String> {
    let Some(edges) = edges else {
        return Vec::new();
    };
    let edge = |i: usize| edges.get(i).copied().unwrap_or(f64::INFINITY);
    let whole = |x: f64| (x - x.round()).abs() < 1e-9;
    let mut labels: Vec<String> = bars
        .groups
        .iter()
        .map(|g| {
            let (lo, hi) = (edge(g.start), edge(g.end));
            if whole(lo) && whole(hi) {
                format!("{lo:.0}–{hi:.0}")
            } else {
                format!("{lo:.2}–{hi:.2}")
            }
        })
        .collect();
    if bars.overflow {
        labels.push(format!("≥ {:.0}", edge(edges.len() - 1)));
    }
    labels
}
