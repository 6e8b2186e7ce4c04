//! What every view shares: the runs on offer (labels that tell them apart), which of them a
//! request selects, and the frame each view carries (the experiment, the selection, the
//! verdict switch's facts).

use std::collections::HashMap;

use caplens_analysis::passk::uneven_samples;
use caplens_app::views::*;

use super::Prepared;
use crate::storage::analysis::ExperimentData;

/// At most this many series in a chart (the palette has 7 colours).
const MAX_SERIES: usize = 7;

/// The runs on offer, each labelled so that no two look alike: the model, the dataset when the
/// experiment has several, the run's own label, and the id when that is not yet enough.
pub(super) fn run_choices(data: &ExperimentData) -> Vec<RunChoice> {
    let datasets: std::collections::BTreeSet<&str> =
        data.runs.iter().map(|r| r.row.dataset.as_str()).collect();
    let mut labels: Vec<String> = data
        .runs
        .iter()
        .map(|r| {
            let mut l = r.row.model.clone();
            if datasets.len() > 1 {
                l = format!("{l} · {}", r.row.dataset);
            }
            if !r.row.label.is_empty() && r.row.label != r.row.model {
                l = format!("{l} ({})", r.row.label);
            }
            l
        })
        .collect();
    // Two runs may still look alike (same model and dataset): tell them apart by id.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for l in &labels {
        *seen.entry(l.clone()).or_default() += 1;
    }
    for (l, r) in labels.iter_mut().zip(&data.runs) {
        if seen[l.as_str()] > 1 {
            *l = format!("{l} #{}", r.row.id);
        }
    }
    data.runs
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (r, label))| RunChoice {
            id: r.row.id,
            label,
            model: r.row.model.clone(),
            stage: r.row.stage.clone(),
            parent_model: r.row.parent_model.clone(),
            dataset: r.row.dataset.clone(),
            training_step: r.row.training_step,
            lineage_depth: r.row.lineage_depth,
            colour: i,
        })
        .collect()
}

/// The selected runs (in URL order) and the ids that are not in the experiment; `default` when
/// the URL names none that exist.
pub(super) fn select(
    p: &Prepared,
    asked: &[i64],
    default: impl Fn(&Prepared) -> Vec<i64>,
) -> (Vec<usize>, Vec<i64>) {
    let mut chosen = Vec::new();
    let mut missing = Vec::new();
    for id in asked {
        match p.data.runs.iter().position(|r| r.row.id == *id) {
            Some(i) if !chosen.contains(&i) => chosen.push(i),
            Some(_) => {}
            None => missing.push(*id),
        }
    }
    if chosen.is_empty() {
        let ids = default(p);
        chosen = ids
            .iter()
            .filter_map(|id| p.data.runs.iter().position(|r| r.row.id == *id))
            .collect();
    }
    chosen.truncate(MAX_SERIES);
    (chosen, missing)
}

/// The header every view carries: the experiment, the runs on offer, the chosen and the missing
/// ones, the verdict facts.
pub(super) fn frame(p: &Prepared, chosen: &[usize], missing: Vec<i64>) -> ViewFrame {
    ViewFrame {
        experiment: p.data.summary.clone(),
        runs: p.choices.clone(),
        selected: chosen.iter().map(|&i| p.data.runs[i].row.id).collect(),
        missing_runs: missing,
        verdicts: verdict_frame(p),
        uneven: chosen.iter().filter_map(|&i| uneven_run(p, i)).collect(),
    }
}

/// Run `i` when its problems' sample counts differ (eq. 2 needs n ≥ k, so its curve past the
/// smallest n covers fewer problems): the import report's test ([`uneven_samples`]).
fn uneven_run(p: &Prepared, i: usize) -> Option<UnevenRun> {
    let run = &p.data.runs[i];
    let u = uneven_samples(run.problems.iter().map(|s| (s.key.as_str(), s.n)))?;
    Some(UnevenRun {
        run: run.row.id,
        label: p.choices[i].label.clone(),
        min_n: u.min_n,
        max_n: u.max_n,
        problems: u.problems,
        at_max: u.at_max,
    })
}

/// The verdict switch's facts: which source the numbers count, and over the experiment's runs
/// how many carry both verdicts and how often they disagree.
fn verdict_frame(p: &Prepared) -> VerdictFrame {
    let review = p.data.review;
    let mut frame = VerdictFrame {
        selected: p.data.verdicts,
        reviewed: review.reviewed,
        overrides: review.overrides,
        overridden_rollouts: review.changed_rollouts,
        ..Default::default()
    };
    for tally in p
        .data
        .runs
        .iter()
        .filter_map(|r| r.row.verdicts.tally.as_ref())
    {
        if tally.graded_by_file > 0 && tally.graded_by_caplens > 0 {
            frame.runs_with_both += 1;
        }
        frame.disagreements += tally.disagree;
        frame.graded_by_both += tally.agree + tally.disagree;
    }
    frame
}
