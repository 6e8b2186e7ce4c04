//! The SFT vs RL comparison: a lineage of up to three runs (base -> sft -> rl by default) side
//! by side (pass@k, diversity, unsolvable Venn, RBF) and the takeaways of each step, each
//! linking to the view that shows it.

use std::collections::HashMap;

use caplens_analysis::passk::{crossover_ks, default_ks, pass_at_k_curve, CurvePoint};
use caplens_analysis::summary::{summary_from_parts, ProblemPart, RolloutTotals};
use caplens_app::charts::{BarChart, BarSeries, ChartSpec};
use caplens_app::views::*;

use super::frame::{frame, select};
use super::overview::overview_view;
use super::passk::{all, common_n, counts, passk_view};
use super::unsolvable::{first_three, unsolvable_view};
use super::Prepared;
use crate::storage::analysis::{ProblemStat, RunData};

/// A base -> sft -> rl chain if the experiment has one, else the first three runs.
pub fn default_lineage(p: &Prepared) -> Vec<i64> {
    let runs = &p.data.runs;
    for rl in runs.iter().filter(|r| r.row.stage == "rl") {
        let Some(sft) = runs.iter().find(|r| {
            Some(&r.row.model) == rl.row.parent_model.as_ref() && r.row.dataset == rl.row.dataset
        }) else {
            continue;
        };
        let base = runs.iter().find(|r| {
            Some(&r.row.model) == sft.row.parent_model.as_ref() && r.row.dataset == rl.row.dataset
        });
        let mut chain: Vec<i64> = base.into_iter().map(|b| b.row.id).collect();
        chain.extend([sft.row.id, rl.row.id]);
        return chain;
    }
    first_three(p)
}

pub fn compare_view(p: &Prepared, req: CompareRequest) -> CompareView {
    let (mut chosen, missing) = select(p, &req.runs, default_lineage);
    chosen.truncate(3);
    let ids: Vec<i64> = chosen.iter().map(|&i| p.data.runs[i].row.id).collect();
    let slug = &p.data.summary.slug;
    let passk = passk_view(
        p,
        PasskRequest {
            runs: ids.clone(),
            tag: None,
            band: true,
            verdicts: p.data.verdicts,
            unreviewed: !p.data.review.reviewed,
        },
    );
    let unsolvable = unsolvable_view(
        p,
        UnsolvableRequest {
            runs: ids.clone(),
            k: None,
            region: Vec::new(),
            verdicts: p.data.verdicts,
            unreviewed: !p.data.review.reviewed,
        },
    );
    let overview = overview_view(p);
    let row_of = |i: usize| {
        overview
            .rows
            .iter()
            .find(|r| r.run.id == p.data.runs[i].row.id)
    };
    let labels: Vec<String> = chosen.iter().map(|&i| p.choices[i].label.clone()).collect();
    let diversity = ChartSpec::Bars(BarChart {
        x_label: "run".into(),
        y_label: "distinct answers per problem".into(),
        categories: labels.clone(),
        series: vec![BarSeries {
            key: "diversity".into(),
            label: "mean distinct final answers".into(),
            values: chosen
                .iter()
                .map(|&i| row_of(i).and_then(|r| r.diversity))
                .collect(),
            colour: 0,
        }],
        y_percent: false,
    });
    let rbf_values: Vec<Option<f64>> = chosen
        .iter()
        .map(|&i| row_of(i).and_then(|r| r.mean_rbf))
        .collect();
    let rbf = rbf_values.iter().any(Option::is_some).then(|| {
        ChartSpec::Bars(BarChart {
            x_label: "run".into(),
            y_label: "mean rollout branching factor".into(),
            categories: labels.clone(),
            series: vec![BarSeries {
                key: "rbf".into(),
                label: "RBF".into(),
                values: rbf_values,
                colour: 2,
            }],
            y_percent: false,
        })
    });
    let takeaways = takeaways(p, slug, &chosen);
    CompareView {
        frame: frame(p, &chosen, missing),
        passk: passk.chart,
        diversity,
        venn: unsolvable.chart,
        rbf,
        takeaways,
    }
}

/// Findings for each step of the chain (parent -> child), each only when the data supports it.
fn takeaways(p: &Prepared, slug: &str, chosen: &[usize]) -> Vec<Takeaway> {
    let mut out = Vec::new();
    let base = format!("/experiments/{slug}");
    for w in chosen.windows(2) {
        let (a, b) = (&p.data.runs[w[0]], &p.data.runs[w[1]]);
        let (la, lb) = (&p.choices[w[0]].label, &p.choices[w[1]].label);
        let (pa, pb) = (all(a), all(b));
        let ids = [a.row.id, b.row.id];
        let passk_href = PasskRequest {
            runs: ids.to_vec(),
            tag: None,
            band: true,
            verdicts: p.data.verdicts,
            unreviewed: !p.data.review.reviewed,
        }
        .query()
        .href(&format!("{base}/passk"));
        let k_max = common_n(&pa).min(common_n(&pb));
        if k_max >= 1 {
            let ca = pass_at_k_curve(&counts(&pa), &default_ks(k_max));
            let cb = pass_at_k_curve(&counts(&pb), &default_ks(k_max));
            let at =
                |c: &[CurvePoint], k: u64| c.iter().find(|pt| pt.k == k).map(|pt| pt.pass_at_k);
            if let (Some(a1), Some(b1), Some(am), Some(bm)) =
                (at(&ca, 1), at(&cb, 1), at(&ca, k_max), at(&cb, k_max))
            {
                let d1 = (b1 - a1) * 100.0;
                let dm = (bm - am) * 100.0;
                let mut text = format!("{lb}: pass@1 {:+.1} pts over {la}", d1);
                if k_max > 1 {
                    let join = if (d1 > 0.0) != (dm > 0.0) && dm.abs() >= 0.05 {
                        ", but"
                    } else {
                        ";"
                    };
                    text.push_str(&format!("{join} pass@{k_max} {:+.1} pts", dm));
                }
                let cross = crossover_ks(&ca, &cb);
                if !cross.is_empty() {
                    let ks: Vec<String> = cross.iter().map(u64::to_string).collect();
                    text.push_str(&format!("; curves cross at k = {}", ks.join(", ")));
                }
                out.push(Takeaway {
                    text,
                    href: passk_href.clone(),
                });
            }
        }
        // Problems the parent solves at least once that the child never solves.
        let solved_a: HashMap<&str, &ProblemStat> = pa
            .iter()
            .filter(|s| s.c > 0)
            .map(|s| (s.key.as_str(), *s))
            .collect();
        let lost = pb
            .iter()
            .filter(|s| s.n > 0 && s.c == 0 && solved_a.contains_key(s.key.as_str()))
            .count();
        let solved_b: HashMap<&str, &ProblemStat> = pb
            .iter()
            .filter(|s| s.c > 0)
            .map(|s| (s.key.as_str(), *s))
            .collect();
        let gained = pa
            .iter()
            .filter(|s| s.n > 0 && s.c == 0 && solved_b.contains_key(s.key.as_str()))
            .count();
        let region = |id: i64| {
            UnsolvableRequest {
                runs: ids.to_vec(),
                k: None,
                region: vec![id],
                verdicts: p.data.verdicts,
                unreviewed: !p.data.review.reviewed,
            }
            .query()
            .href(&format!("{base}/unsolvable"))
        };
        if lost > 0 {
            out.push(Takeaway {
                text: format!(
                    "{lost} problem{} solvable by {la} {} unsolvable after {lb}",
                    if lost == 1 { "" } else { "s" },
                    if lost == 1 { "is" } else { "are" }
                ),
                href: region(b.row.id),
            });
        }
        if gained > 0 {
            out.push(Takeaway {
                text: format!(
                    "{gained} problem{} unsolvable by {la} {} solved by {lb}",
                    if gained == 1 { "" } else { "s" },
                    if gained == 1 { "is" } else { "are" }
                ),
                href: region(a.row.id),
            });
        }
        let div = |r: &RunData| {
            let parts: Vec<ProblemPart> = r
                .problems
                .iter()
                .map(|s| ProblemPart {
                    n: s.n,
                    c: s.c,
                    distinct_answers: s.distinct_answers as usize,
                })
                .collect();
            summary_from_parts(&parts, &RolloutTotals::default()).answer_diversity
        };
        if let (Some(da), Some(db)) = (div(a), div(b)) {
            if (db - da).abs() >= 0.05 {
                out.push(Takeaway {
                    text: format!(
                        "{lb} gives {:.2} distinct answers per problem, {} than {la} ({:.2})",
                        db,
                        if db < da { "fewer" } else { "more" },
                        da
                    ),
                    href: CompareRequest {
                        runs: chosen.iter().map(|&i| p.data.runs[i].row.id).collect(),
                        verdicts: p.data.verdicts,
                        unreviewed: !p.data.review.reviewed,
                    }
                    .query()
                    .href(&format!("{base}/compare")),
                });
            }
        }
    }
    out
}
