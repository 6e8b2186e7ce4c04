//! Reviewers who can disagree (issue 27): each reviewer's independent judgement on an answer
//! cluster or a rollout, the agreement between reviewers (Cohen's κ per pair, Fleiss' κ), and a
//! project's blind mode, in which a reviewer sees only their own judgements (editors, who decide
//! disagreements, see all).

use std::collections::BTreeMap;

use caplens_analysis::agreement::{agreement as agreement_of, Judgement};
use caplens_app::review::{AgreementView, Disagreement, JudgementRow};

use super::overrides::resolve_target;
use super::{actor, open_experiment};
use crate::auth::Action;
use crate::ops::{Access, OpError};
use crate::review::JudgementRequest;
use crate::storage::access::Owned;
use crate::storage::review::ExperimentRef;

/// Records the caller's judgement (the Review right, like comments), replacing their earlier one
/// on the same target; returns the caller's judgements of that problem.
pub async fn set_judgement(
    access: &Access<'_>,
    slug: &str,
    req: &JudgementRequest,
) -> Result<Vec<JudgementRow>, OpError> {
    let e = open_experiment(access, slug, Action::Review).await?;
    let correct = match req.verdict.as_str() {
        "correct" => true,
        "wrong" => false,
        v => {
            return Err(OpError::invalid(format!(
                "verdict: {v:?} is not correct or wrong"
            )))
        }
    };
    let (problem_id, target) =
        resolve_target(access, e, req.rollout, &req.answer, &req.problem).await?;
    let me = actor(access);
    access
        .store
        .set_judgement(e.id, problem_id, &target, correct, &me)
        .await?;
    access
        .audit(
            "judgement",
            format!("problem {problem_id} in {slug}"),
            Some(e.project_id),
            req.verdict.clone(),
        )
        .await;
    Ok(access
        .store
        .judgements(e.id, Some(problem_id))
        .await?
        .into_iter()
        .filter(|j| j.reviewer == me)
        .collect())
}

/// Whether the caller sees every reviewer's judgements: not in a blind project, or as an editor.
async fn sees_all(access: &Access<'_>, e: ExperimentRef) -> Result<bool, OpError> {
    Ok(!access.store.blind_review(e.project_id).await? || access.may(Action::Edit, e.project_id))
}

/// The judgements of an experiment (optionally one problem) the caller may see: all of them,
/// or in blind mode (to a non-editor) their own.
pub async fn judgements(
    access: &Access<'_>,
    slug: &str,
    problem_id: Option<i64>,
) -> Result<Vec<JudgementRow>, OpError> {
    let e = open_experiment(access, slug, Action::Read).await?;
    let all = sees_all(access, e).await?;
    let me = actor(access);
    Ok(access
        .store
        .judgements(e.id, problem_id)
        .await?
        .into_iter()
        .filter(|j| all || j.reviewer == me)
        .collect())
}

/// Agreement between the experiment's reviewers: Cohen's κ per pair over the targets both
/// judged, Fleiss' κ over targets judged at least twice, and the disagreements (who said what
/// only when the caller sees all judgements).
pub async fn agreement(access: &Access<'_>, slug: &str) -> Result<AgreementView, OpError> {
    let e = open_experiment(access, slug, Action::Read).await?;
    let all = sees_all(access, e).await?;
    let rows = access.store.judgements(e.id, None).await?;
    let items: Vec<String> = rows.iter().map(JudgementRow::item).collect();
    let judgements: Vec<Judgement<'_>> = rows
        .iter()
        .zip(&items)
        .map(|(r, item)| Judgement {
            item,
            reviewer: &r.reviewer,
            correct: r.verdict == "correct",
        })
        .collect();
    let stats = agreement_of(&judgements);
    let overrides = access.store.overrides(e.id, None).await?;
    let mut by_item: BTreeMap<&str, Vec<&JudgementRow>> = BTreeMap::new();
    for (r, item) in rows.iter().zip(&items) {
        by_item.entry(item).or_default().push(r);
    }
    let disagreements = stats
        .disagreements
        .iter()
        .filter_map(|item| {
            let js = by_item.get(item.as_str())?;
            let first = js[0];
            Some(Disagreement {
                problem_id: first.problem_id,
                problem: first.problem.clone(),
                rollout: first.rollout,
                answer: first.answer.clone(),
                correct: js.iter().filter(|j| j.verdict == "correct").count() as u64,
                wrong: js.iter().filter(|j| j.verdict != "correct").count() as u64,
                judgements: if all {
                    js.iter()
                        .map(|j| (j.reviewer.clone(), j.verdict.clone()))
                        .collect()
                } else {
                    Vec::new()
                },
                decided: overrides.iter().any(|o| {
                    o.problem_id == first.problem_id
                        && o.rollout == first.rollout
                        && o.answer == first.answer
                }),
            })
        })
        .collect();
    let reviewers: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.reviewer.as_str()).collect();
    let name = access
        .store
        .experiment(slug)
        .await?
        .map(|d| d.summary.name)
        .unwrap_or_else(|| slug.to_owned());
    Ok(AgreementView {
        experiment: slug.to_owned(),
        experiment_name: name,
        blind: !all,
        agreement: stats,
        judgements: rows.len() as u64,
        reviewers: reviewers.len() as u64,
        disagreements,
    })
}

/// Makes judging blind in a project, or not (the project's admins).
pub async fn set_blind_review(
    access: &Access<'_>,
    project_slug: &str,
    blind: bool,
) -> Result<(), OpError> {
    let project = access
        .require(
            Action::Administer,
            &Owned::Project(project_slug.to_owned()),
            "project",
        )
        .await?;
    access.store.set_blind_review(project, blind).await?;
    access
        .audit(
            "blind_review",
            format!("project {project_slug}"),
            Some(project),
            if blind { "on" } else { "off" },
        )
        .await;
    Ok(())
}
