//! The overview: one row per run of the experiment (problems, rollouts, pass@1, pass@k at the
//! largest common k, unsolvable problems, diversity, entropy, RBF, PPL, quality rates) and the
//! same as a table.

use caplens_analysis::passk::pass_at_k_curve;
use caplens_analysis::summary::{summary_from_parts, ProblemPart, RolloutTotals};
use caplens_app::tables::TableData;
use caplens_app::views::*;

use super::frame::frame;
use super::passk::{all, common_n, counts};
use super::Prepared;

pub fn overview_view(p: &Prepared) -> OverviewView {
    let all_ids: Vec<usize> = (0..p.data.runs.len()).collect();
    let mut rows = Vec::new();
    for (i, run) in p.data.runs.iter().enumerate() {
        let problems = all(run);
        let parts: Vec<ProblemPart> = problems
            .iter()
            .map(|s| ProblemPart {
                n: s.n,
                c: s.c,
                distinct_answers: s.distinct_answers as usize,
            })
            .collect();
        let totals = run
            .aggregates
            .as_ref()
            .map(|a| a.totals)
            .unwrap_or_else(RolloutTotals::default);
        let summary = summary_from_parts(&parts, &totals);
        let k = common_n(&problems);
        let pass_at_max = (k > 0)
            .then(|| {
                pass_at_k_curve(&counts(&problems), &[k])
                    .first()
                    .map(|pt| (k, pt.pass_at_k))
            })
            .flatten();
        rows.push(OverviewRow {
            run: p.choices[i].clone(),
            problems: problems.len() as u64,
            rollouts: problems.iter().map(|s| s.n).sum(),
            max_n: problems.iter().map(|s| s.n).max().unwrap_or(0),
            pass_at_1: summary.pass_at_1,
            pass_at_max,
            unsolvable: problems.iter().filter(|s| s.n > 0 && s.c == 0).count() as u64,
            diversity: summary.answer_diversity,
            mean_entropy: summary.mean_entropy,
            mean_rbf: summary.mean_rbf,
            mean_ppl: summary.mean_ppl,
            format_violation_rate: summary.format_violation_rate,
            language_mixing_rate: summary.language_mixing_rate,
            redundancy_rate: summary.redundancy_rate,
        });
    }
    let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_default();
    let table = TableData {
        headers: [
            "run",
            "model",
            "stage",
            "parent",
            "dataset",
            "problems",
            "rollouts",
            "pass@1 (%)",
            "k max",
            "pass@k max (%)",
            "unsolvable",
            "distinct answers",
            "entropy (nats)",
            "RBF",
            "PPL",
            "format violations (%)",
            "language mixing (%)",
            "redundant (%)",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.run.id.to_string(),
                    r.run.model.clone(),
                    r.run.stage.clone(),
                    r.run.parent_model.clone().unwrap_or_default(),
                    r.run.dataset.clone(),
                    r.problems.to_string(),
                    r.rollouts.to_string(),
                    f(r.pass_at_1.map(|v| v * 100.0), 1),
                    r.pass_at_max
                        .map(|(k, _)| k.to_string())
                        .unwrap_or_default(),
                    f(r.pass_at_max.map(|(_, v)| v * 100.0), 1),
                    r.unsolvable.to_string(),
                    f(r.diversity, 2),
                    f(r.mean_entropy, 3),
                    f(r.mean_rbf, 2),
                    f(r.mean_ppl, 3),
                    f(r.format_violation_rate.map(|v| v * 100.0), 1),
                    f(r.language_mixing_rate.map(|v| v * 100.0), 1),
                    f(r.redundancy_rate.map(|v| v * 100.0), 1),
                ]
            })
            .collect(),
        numeric: [
            false, false, false, false, false, true, true, true, true, true, true, true, true,
            true, true, true, true, true,
        ]
        .to_vec(),
    };
    OverviewView {
        frame: frame(p, &all_ids, Vec::new()),
        rows,
        table,
    }
}
