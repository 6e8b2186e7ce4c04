//! The unsolvable-sets view (sec. 2.1): which problems each chosen run never solves in k
//! attempts, the regions of their overlap (Venn chart and table), set size against k, and the
//! problems of one selected region.

use std::collections::{BTreeMap, HashMap};

use caplens_analysis::passk::default_ks;
use caplens_analysis::sets::{compare_unsolvable, status, ModelOutcomes, ProblemOutcome, Status};
use caplens_app::charts::{ChartSpec, LineChart, Series, SetChart, SetRegion, XScale};
use caplens_app::tables::TableData;
use caplens_app::views::*;

use super::frame::{frame, select};
use super::passk::{all, common_n};
use super::Prepared;
use crate::storage::analysis::{ProblemStat, RunData};

/// The default selection when the URL names no run (compare falls back to it too).
pub(super) fn first_three(p: &Prepared) -> Vec<i64> {
    p.data.runs.iter().take(3).map(|r| r.row.id).collect()
}

fn outcome(s: &ProblemStat, with_order: bool) -> ProblemOutcome {
    if with_order && s.order_known {
        ProblemOutcome {
            n: s.n,
            c: s.c,
            first_correct_position: s.first_correct,
            order_known: true,
        }
    } else {
        ProblemOutcome::from_counts(s.n, s.c)
    }
}

fn model_outcomes(run: &RunData, name: &str, with_order: bool) -> ModelOutcomes {
    ModelOutcomes {
        model: name.to_string(),
        problems: run
            .problems
            .iter()
            .map(|s| (s.key.clone(), outcome(s, with_order)))
            .collect(),
    }
}

pub fn unsolvable_view(p: &Prepared, mut req: UnsolvableRequest) -> UnsolvableView {
    let (chosen, missing) = select(p, &req.runs, first_three);
    req.runs.retain(|id| !missing.contains(id));
    let max_k = chosen
        .iter()
        .map(|&i| common_n(&all(&p.data.runs[i])))
        .min()
        .unwrap_or(0);
    if req.k.is_some_and(|k| k >= max_k) {
        req.k = None;
    }
    let labels: Vec<String> = chosen.iter().map(|&i| p.choices[i].label.clone()).collect();
    let compared: Vec<ModelOutcomes> = chosen
        .iter()
        .zip(&labels)
        .map(|(&i, l)| model_outcomes(&p.data.runs[i], l, req.k.is_some()))
        .collect();
    // Sec. 2.1: a problem is k-unsolvable when none of its first k rollouts is correct.
    let report = compare_unsolvable(&compared, req.k);
    let ids: Vec<i64> = chosen.iter().map(|&i| p.data.runs[i].row.id).collect();
    let members_of = |ids_sel: &[i64]| -> Vec<usize> {
        let mut m: Vec<usize> = ids_sel
            .iter()
            .filter_map(|id| ids.iter().position(|x| x == id))
            .collect();
        m.sort();
        m.dedup();
        m
    };
    let selected_members = members_of(&req.region);
    let by_members: BTreeMap<Vec<usize>, &Vec<String>> = report
        .regions
        .iter()
        .map(|r| (r.models.clone(), &r.problems))
        .collect();
    let path = format!("/experiments/{}/unsolvable", p.data.summary.slug);
    let region_href = |members: &[usize]| {
        let mut r = req.clone();
        r.region = members.iter().map(|&m| ids[m]).collect();
        r.query().href(&path)
    };
    let n = chosen.len();
    let mut regions = Vec::new();
    if n <= 3 {
        for mask in 1u32..(1u32 << n) {
            let members: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
            let count = by_members.get(&members).map(|v| v.len()).unwrap_or(0);
            regions.push(SetRegion {
                href: region_href(&members),
                selected: members == selected_members,
                members,
                count,
            });
        }
    } else {
        for r in &report.regions {
            regions.push(SetRegion {
                href: region_href(&r.models),
                selected: r.models == selected_members,
                members: r.models.clone(),
                count: r.problems.len(),
            });
        }
    }
    let set_sizes: Vec<usize> = report.unsolvable.iter().map(Vec::len).collect();
    let chart = ChartSpec::Sets(SetChart {
        sets: labels.clone(),
        set_sizes: set_sizes.clone(),
        regions,
        colours: chosen.iter().map(|&i| p.choices[i].colour).collect(),
    });

    // Set size against k, per run (each over its own problems).
    let ks = default_ks(max_k.max(1));
    let mut series = Vec::new();
    for &i in &chosen {
        let run = &p.data.runs[i];
        let choice = &p.choices[i];
        let points: Vec<(f64, f64)> = ks
            .iter()
            .map(|&k| {
                let k_arg = if k >= common_n(&all(run)) {
                    None
                } else {
                    Some(k)
                };
                let count = run
                    .problems
                    .iter()
                    .filter(|s| status(&outcome(s, true), k_arg) == Status::Unsolvable)
                    .count();
                (k as f64, count as f64)
            })
            .collect();
        series.push(Series {
            key: choice.id.to_string(),
            label: choice.label.clone(),
            readouts: points
                .iter()
                .map(|&(k, c)| {
                    format!(
                        "{}: {} problems unsolvable in {} attempts",
                        choice.label, c, k
                    )
                })
                .collect(),
            points,
            band: Vec::new(),
            colour: choice.colour,
        });
    }
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let set_size_chart = ChartSpec::Line(LineChart {
        x_label: "k (attempts, log2 scale)".into(),
        y_label: "unsolvable problems".into(),
        x_scale: XScale::Log2,
        x_range: (1.0, max_k.max(2) as f64),
        y_range: (0.0, (y_max * 1.1).ceil()),
        y_percent: false,
        series,
        markers: Vec::new(),
    });

    let table = TableData {
        headers: vec!["region (unsolvable by exactly)".into(), "problems".into()],
        rows: report
            .regions
            .iter()
            .map(|r| {
                vec![
                    r.models
                        .iter()
                        .map(|&m| labels[m].clone())
                        .collect::<Vec<_>>()
                        .join(" ∩ "),
                    r.problems.len().to_string(),
                ]
            })
            .collect(),
        numeric: vec![false, true],
    };

    let region = (!selected_members.is_empty()).then(|| {
        let keys: Vec<String> = by_members
            .get(&selected_members)
            .map(|v| (*v).clone())
            .unwrap_or_default();
        let stats: Vec<HashMap<&str, &ProblemStat>> = chosen
            .iter()
            .map(|&i| {
                p.data.runs[i]
                    .problems
                    .iter()
                    .map(|s| (s.key.as_str(), s))
                    .collect()
            })
            .collect();
        let bounds: Vec<HashMap<&str, f64>> = report
            .unsolvable
            .iter()
            .map(|list| {
                list.iter()
                    .map(|u| (u.problem_id.as_str(), u.solve_rate_upper_95))
                    .collect()
            })
            .collect();
        let problems: Vec<RegionProblem> = keys
            .iter()
            .map(|key| RegionProblem {
                problem_id: stats
                    .iter()
                    .find_map(|m| m.get(key.as_str()).map(|s| s.problem_id))
                    .unwrap_or(0),
                key: key.clone(),
                cells: (0..n)
                    .map(|m| {
                        let s = stats[m].get(key.as_str());
                        RegionCell {
                            c: s.map(|s| s.c).unwrap_or(0),
                            n: s.map(|s| s.n).unwrap_or(0),
                            upper_95: bounds[m].get(key.as_str()).copied(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let names: Vec<&str> = selected_members
            .iter()
            .map(|&m| labels[m].as_str())
            .collect();
        let title = format!(
            "{} problem{} unsolvable by {}{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            names.join(" and "),
            if selected_members.len() < n {
                " only"
            } else {
                ""
            }
        );
        let mut headers = vec!["problem".to_string()];
        for l in &labels {
            headers.push(format!("{l} c/n"));
            headers.push(format!("{l} solve rate ≤ (95 %)"));
        }
        let rows = problems
            .iter()
            .map(|pr| {
                let mut row = vec![pr.key.clone()];
                for c in &pr.cells {
                    row.push(format!("{}/{}", c.c, c.n));
                    row.push(
                        c.upper_95
                            .map(|u| format!("{:.2}", u * 100.0))
                            .unwrap_or_default(),
                    );
                }
                row
            })
            .collect();
        RegionDetail {
            title,
            columns: labels.clone(),
            table: TableData {
                numeric: (0..headers.len()).map(|i| i > 0).collect(),
                headers,
                rows,
            },
            problems,
        }
    });
    let undetermined = labels
        .iter()
        .zip(&report.missing)
        .map(|(l, m)| (l.clone(), m.len()))
        .filter(|(_, c)| *c > 0)
        .collect();
    UnsolvableView {
        frame: frame(p, &chosen, missing),
        request: req,
        max_k,
        ks,
        chart,
        set_sizes: set_size_chart,
        table,
        region,
        undetermined,
    }
}
