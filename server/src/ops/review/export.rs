//! Export and import of review work: an experiment's labels and overrides as records, and those
//! records taken into another experiment over the same problems.

use std::collections::HashMap;

use super::{add_override, open_experiment, set_labels};
use crate::auth::Action;
use crate::ops::{Access, OpError};
use crate::review::{parse_review_records, OverrideRequest, ReviewImportReport, ReviewRecord};

/// An experiment's labels and overrides as records.
pub async fn export_review(access: &Access<'_>, slug: &str) -> Result<Vec<ReviewRecord>, OpError> {
    let e = open_experiment(access, slug, Action::Read).await?;
    let labels = access.store.problem_labels(e).await?;
    let keys = access
        .store
        .problem_keys(&labels.keys().copied().collect::<Vec<_>>())
        .await?;
    let mut out: Vec<ReviewRecord> = Vec::new();
    let mut labelled: Vec<(i64, Vec<caplens_app::review::ProblemLabel>)> =
        labels.into_iter().collect();
    labelled.sort_by_key(|(p, _)| *p);
    for (problem, ls) in labelled {
        for l in ls {
            out.push(ReviewRecord {
                kind: "label".into(),
                problem: keys.get(&problem).cloned().unwrap_or_default(),
                label: Some(l.label),
                answer: None,
                rollout: None,
                verdict: None,
                reason: None,
                by: l.set_by,
                at: l.set_at,
            });
        }
    }
    for o in access.store.overrides(e.id, None).await? {
        out.push(ReviewRecord {
            kind: "override".into(),
            problem: o.problem,
            label: None,
            answer: o.answer,
            rollout: o.rollout,
            verdict: Some(o.verdict),
            reason: Some(o.reason),
            by: o.created_by,
            at: o.created_at,
        });
    }
    Ok(out)
}

/// Takes labels and answer overrides (JSON Lines or CSV from [`export_review`]) into another
/// experiment over the same problems. Rollout overrides name rollouts of the source experiment
/// and are skipped unless the rollout is in this one too. Bad lines are reported by line and
/// field; good lines are kept.
pub async fn import_review(
    access: &Access<'_>,
    slug: &str,
    file_name: &str,
    text: &str,
) -> Result<ReviewImportReport, OpError> {
    let e = open_experiment(access, slug, Action::Edit).await?;
    let records = parse_review_records(file_name, text).map_err(OpError::Invalid)?;
    let mut report = ReviewImportReport::default();
    let mut labels_by_problem: HashMap<i64, Vec<String>> = HashMap::new();
    for (line, r) in records {
        let Some(problem) = access
            .store
            .experiment_problem_by_key(e.id, &r.problem)
            .await?
        else {
            report.skipped.push(format!(
                "{file_name}:{line}: problem: {:?} is not in this experiment",
                r.problem
            ));
            continue;
        };
        match r.kind.as_str() {
            "label" => {
                let Some(label) = r.label.filter(|l| !l.trim().is_empty()) else {
                    report
                        .skipped
                        .push(format!("{file_name}:{line}: label: missing"));
                    continue;
                };
                labels_by_problem.entry(problem).or_default().push(label);
            }
            "override" => {
                let req = OverrideRequest::in_problem(
                    problem,
                    r.answer.clone(),
                    if r.answer.is_some() { None } else { r.rollout },
                    r.verdict.clone().unwrap_or_default(),
                    r.reason.clone().unwrap_or_default(),
                );
                match add_override(access, slug, &req).await {
                    Ok(_) => report.overrides += 1,
                    Err(err) => report
                        .skipped
                        .push(format!("{file_name}:{line}: {}", err.public_message())),
                }
            }
            other => report.skipped.push(format!(
                "{file_name}:{line}: kind: {other:?} is not label or override"
            )),
        }
    }
    let existing = access.store.problem_labels(e).await?;
    for (problem, mut labels) in labels_by_problem {
        labels.extend(
            existing
                .get(&problem)
                .into_iter()
                .flatten()
                .map(|l| l.label.clone()),
        );
        let n = labels.len() as u64;
        match set_labels(access, slug, problem, &labels).await {
            Ok(_) => report.labels += n,
            Err(err) => report.skipped.push(format!(
                "{file_name}: problem {problem}: {}",
                err.public_message()
            )),
        }
    }
    Ok(report)
}
