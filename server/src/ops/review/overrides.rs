//! Verdict overrides: recording one (on a rollout, or on a normalised answer of a problem),
//! listing and deleting them; every view's reviewed numbers change with them.

use caplens_analysis::verifier::normalize_answer;
use caplens_app::review::OverrideRow;

use super::{actor, open_experiment, problem_in};
use crate::auth::Action;
use crate::ops::{Access, OpError};
use crate::review::OverrideRequest;
use crate::storage::access::Owned;
use crate::storage::review::{ExperimentRef, OverrideTarget};

/// Longest override reason (characters).
const MAX_REASON_CHARS: usize = 2_000;

/// Records a verdict override; every view's reviewed numbers change with it.
/// The problem and target (a rollout, or a normalised answer of a problem) a request names,
/// checked to be in experiment `e`: overrides and judgements name targets alike.
pub(super) async fn resolve_target(
    access: &Access<'_>,
    e: ExperimentRef,
    rollout: Option<i64>,
    answer: &Option<String>,
    problem: &Option<serde_json::Value>,
) -> Result<(i64, OverrideTarget), OpError> {
    Ok(match (rollout, answer, problem) {
        (Some(rollout), None, _) => {
            let problem = access
                .store
                .rollout_problem_in_experiment(e.id, rollout)
                .await?
                .ok_or_else(|| OpError::not_found(format!("rollout: no rollout {rollout} in this experiment")))?;
            (problem, OverrideTarget::Rollout(rollout))
        }
        (None, Some(answer), Some(problem)) => {
            let id = match problem {
                serde_json::Value::Number(n) => n.as_i64(),
                serde_json::Value::String(key) => access.store.experiment_problem_by_key(e.id, key).await?,
                _ => None,
            }
            .ok_or_else(|| OpError::not_found(format!("problem: no problem {problem} in this experiment")))?;
            problem_in(access, e, id).await?;
            let normalised = normalize_answer(answer);
            if normalised.is_empty() {
                return Err(OpError::invalid("answer: empty after normalisation"));
            }
            (id, OverrideTarget::Answer(normalised))
        }
        (None, Some(_), None) => return Err(OpError::invalid("problem: an answer's verdict names its problem")),
        _ => {
            return Err(OpError::invalid(
                "give either {\"rollout\": ID} or {\"problem\": KEY, \"answer\": TEXT}, with the verdict",
            ))
        }
    })
}

pub async fn add_override(
    access: &Access<'_>,
    slug: &str,
    req: &OverrideRequest,
) -> Result<OverrideRow, OpError> {
    let e = open_experiment(access, slug, Action::Edit).await?;
    let correct = match req.verdict.as_str() {
        "correct" => true,
        "wrong" => false,
        v => {
            return Err(OpError::invalid(format!(
                "verdict: {v:?} is not correct or wrong"
            )))
        }
    };
    let reason = req.reason.trim();
    if reason.is_empty() {
        return Err(OpError::invalid(
            "reason: say why the verdict is overridden",
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(OpError::invalid(format!(
            "reason: at most {MAX_REASON_CHARS} characters"
        )));
    }
    let (problem_id, target) =
        resolve_target(access, e, req.rollout, &req.answer, &req.problem).await?;
    let id = access
        .store
        .add_override(e.id, problem_id, &target, correct, reason, &actor(access))
        .await?;
    access
        .audit(
            "override_added",
            format!("override {id} in {slug}"),
            Some(e.project_id),
            format!("{} → {}", problem_id, req.verdict),
        )
        .await;
    access
        .store
        .overrides(e.id, Some(problem_id))
        .await?
        .into_iter()
        .find(|o| o.id == id)
        .ok_or_else(|| OpError::not_found("override"))
}

pub async fn list_overrides(access: &Access<'_>, slug: &str) -> Result<Vec<OverrideRow>, OpError> {
    let e = open_experiment(access, slug, Action::Read).await?;
    Ok(access.store.overrides(e.id, None).await?)
}

pub async fn delete_override(access: &Access<'_>, id: i64) -> Result<(), OpError> {
    let project = access
        .require(Action::Edit, &Owned::Override(id), "override")
        .await?;
    access.store.delete_override(id).await?;
    access
        .audit(
            "override_deleted",
            format!("override {id}"),
            Some(project),
            "",
        )
        .await;
    Ok(())
}
