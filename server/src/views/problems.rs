//! The problems view (issue 27): problem by problem, each chosen run's c/n, the change in solve
//! rate from run A to run B (Δ, `analysis::paired`), labels and comments; filters (search
//! matches, change at a threshold, label, unsolvable at k), sort, the paired counts and test.
//! Pure: the search matches, labels and comment counts come in as [`ProblemInputs`].

use std::collections::{BTreeSet, HashMap, HashSet};

use caplens_analysis::paired::{paired_summary, solve_rate_delta, Change};
use caplens_app::tables::TableData;
use caplens_app::views::*;

use super::frame::{frame, select};
use super::Prepared;
use crate::storage::analysis::ProblemStat;

/// What the view reads besides the experiment's aggregates.
#[derive(Debug, Default)]
pub struct ProblemInputs {
    /// Problems the search matched (`None`: no search).
    pub matches: Option<HashSet<i64>>,
    /// Review labels per problem.
    pub labels: HashMap<i64, Vec<String>>,
    /// Comments per problem.
    pub comments: HashMap<i64, u64>,
}

/// The default pair when the URL names no run: the last two runs in lineage order (usually a
/// parent and the model trained from it).
fn last_two(p: &Prepared) -> Vec<i64> {
    let n = p.data.runs.len();
    p.data.runs[n.saturating_sub(2)..]
        .iter()
        .map(|r| r.row.id)
        .collect()
}

/// Not solved within the first `k` samples: `Some(true/false)`, or `None` when the samples'
/// order is unknown and some are correct (which of them came first is not known) or there are
/// fewer than k samples.
fn unsolved_within(s: &ProblemStat, k: u64) -> Option<bool> {
    if s.n < k {
        return None;
    }
    if s.c == 0 {
        return Some(true);
    }
    if !s.order_known {
        return None;
    }
    Some(s.first_correct.is_none_or(|f| f >= k))
}

/// Every problem matching the request, sorted (all pages), with the paired summary.
pub fn problems_view(
    p: &Prepared,
    mut req: ProblemsRequest,
    inputs: &ProblemInputs,
) -> ProblemsView {
    let (chosen, missing) = select(p, &req.runs, last_two);
    req.runs.retain(|id| !missing.contains(id));
    let runs: Vec<HashMap<i64, &ProblemStat>> = chosen
        .iter()
        .map(|&i| {
            p.data.runs[i]
                .problems
                .iter()
                .map(|s| (s.problem_id, s))
                .collect()
        })
        .collect();
    // The union of the chosen runs' problems, each once, with its key.
    let mut keys: HashMap<i64, &str> = HashMap::new();
    for run in &runs {
        for (id, s) in run {
            keys.entry(*id).or_insert(s.key.as_str());
        }
    }
    let mut rows: Vec<ProblemsRow> = Vec::with_capacity(keys.len());
    let mut paired_deltas: Vec<f64> = Vec::new();
    for (&id, key) in &keys {
        if inputs.matches.as_ref().is_some_and(|m| !m.contains(&id)) {
            continue;
        }
        let labels = inputs.labels.get(&id).cloned().unwrap_or_default();
        if let Some(l) = &req.label {
            if !labels.contains(l) {
                continue;
            }
        }
        let cells: Vec<Option<(u64, u64)>> = runs
            .iter()
            .map(|r| r.get(&id).map(|s| (s.c, s.n)))
            .collect();
        let delta = match (cells.first(), cells.get(1)) {
            (Some(Some(a)), Some(Some(b))) => solve_rate_delta(*a, *b),
            _ => None,
        };
        if let Some(d) = delta {
            paired_deltas.push(d);
        }
        if let Some(change) = req.change {
            if delta.is_none_or(|d| Change::of(d, req.min_delta) != change) {
                continue;
            }
        }
        if let Some(k) = req.unsolvable {
            let last = runs.last().and_then(|r| r.get(&id));
            if last.and_then(|s| unsolved_within(s, k)) != Some(true) {
                continue;
            }
        }
        rows.push(ProblemsRow {
            problem_id: id,
            key: key.to_string(),
            prompt: String::new(),
            cells,
            delta,
            labels,
            comments: inputs.comments.get(&id).copied().unwrap_or(0),
        });
    }
    sort_rows(&mut rows, &req.sort, &p_selected(p, &chosen));
    let paired = (chosen.len() >= 2).then(|| paired_summary(&paired_deltas, req.min_delta));
    let labels: BTreeSet<String> = inputs.labels.values().flatten().cloned().collect();
    let max_n = chosen
        .iter()
        .flat_map(|&i| p.data.runs[i].problems.iter().map(|s| s.n))
        .max()
        .unwrap_or(0);
    ProblemsView {
        frame: frame(p, &chosen, missing),
        total: rows.len() as u64,
        paired,
        rows,
        labels: labels.into_iter().collect(),
        max_n,
        request: req,
    }
}

fn p_selected(p: &Prepared, chosen: &[usize]) -> Vec<i64> {
    chosen.iter().map(|&i| p.data.runs[i].row.id).collect()
}

/// Sorts by the field, ties (and missing values, always last) by key.
fn sort_rows(rows: &mut [ProblemsRow], sort: &ProblemSort, selected: &[i64]) {
    let column = match sort.field {
        ProblemSortField::Rate(run) => selected.iter().position(|&r| r == run),
        _ => None,
    };
    let value = |r: &ProblemsRow| -> Option<f64> {
        match sort.field {
            ProblemSortField::Key => None,
            ProblemSortField::Delta => r.delta,
            ProblemSortField::Comments => Some(r.comments as f64),
            ProblemSortField::Rate(_) => column
                .and_then(|c| r.cells[c])
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| c as f64 / n as f64),
        }
    };
    rows.sort_by(|a, b| {
        let by_key = a.key.cmp(&b.key);
        if sort.field == ProblemSortField::Key {
            return if sort.descending {
                by_key.reverse()
            } else {
                by_key
            };
        }
        match (value(a), value(b)) {
            (Some(x), Some(y)) => {
                let o = x.total_cmp(&y);
                (if sort.descending { o.reverse() } else { o }).then(by_key)
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => by_key,
        }
    });
}

/// The view's rows (all of them, not a page) as a table: the CSV export.
pub fn problems_table(view: &ProblemsView) -> TableData {
    let names: Vec<String> = view
        .frame
        .selected
        .iter()
        .map(|id| {
            view.frame
                .runs
                .iter()
                .find(|r| r.id == *id)
                .map_or_else(|| id.to_string(), |r| r.label.clone())
        })
        .collect();
    let mut headers = vec!["problem".to_string()];
    let mut numeric = vec![false];
    for name in &names {
        for what in ["c", "n", "rate"] {
            headers.push(format!("{name} {what}"));
            numeric.push(true);
        }
    }
    if names.len() >= 2 {
        headers.push("delta".into());
        numeric.push(true);
    }
    headers.extend(["labels".to_string(), "comments".to_string()]);
    numeric.extend([false, true]);
    let rows = view
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![r.key.clone()];
            for cell in &r.cells {
                match cell {
                    Some((c, n)) => {
                        row.push(c.to_string());
                        row.push(n.to_string());
                        row.push(if *n > 0 {
                            format!("{:.4}", *c as f64 / *n as f64)
                        } else {
                            String::new()
                        });
                    }
                    None => row.extend([String::new(), String::new(), String::new()]),
                }
            }
            if names.len() >= 2 {
                row.push(r.delta.map(|d| format!("{d:.4}")).unwrap_or_default());
            }
            row.push(r.labels.join("; "));
            row.push(r.comments.to_string());
            row
        })
        .collect();
    TableData {
        headers,
        rows,
        numeric,
    }
}
