//! The review queue: an experiment's problems worth a look (newly unsolvable, a popular wrong
//! answer, rollouts the verifier could not decide) with their review state, and assigning them.

use std::collections::HashMap;

use caplens_analysis::review::{newly_unsolvable, popular_wrong_answer};
use caplens_analysis::verifier::is_prose;
use caplens_app::review::{QueueEntry, ReviewQueueView};

use super::{actor, member_names, open_experiment, problem_in};
use crate::auth::Action;
use crate::ops::{Access, OpError};

/// Default share of a run's rollouts a wrong answer needs to enter the queue.
pub const DEFAULT_MIN_SHARE: f64 = 0.3;

/// The review queue of an experiment: newly unsolvable problems (parent solved at k = n, child
/// never), problems with a popular wrong answer (≥ `min_share` of a run's rollouts), and
/// problems with rollouts caplens' verifier could not decide. A label or an override marks an
/// entry reviewed.
pub async fn review_queue(
    access: &Access<'_>,
    views: &crate::views::ViewService,
    slug: &str,
    min_share: f64,
    assigned_to_me: bool,
) -> Result<ReviewQueueView, OpError> {
    let e = open_experiment(access, slug, Action::Read).await?;
    let prepared = views
        .prepared_unreviewed(slug)
        .await?
        .ok_or_else(|| OpError::not_found("no experiment"))?;
    let runs = &prepared.data.runs;
    let mut reasons: HashMap<i64, (String, Vec<String>, Vec<String>, String)> = HashMap::new();
    let mut note = |problem: i64, key: &str, kind: &str, text: String, runs_param: String| {
        let entry = reasons
            .entry(problem)
            .or_insert_with(|| (key.to_owned(), Vec::new(), Vec::new(), runs_param));
        if !entry.2.iter().any(|k| k == kind) {
            entry.2.push(kind.to_owned());
        }
        entry.1.push(text);
    };
    // Newly unsolvable: each run against its parent model's run on the same dataset.
    for child in runs {
        let Some(parent) = runs.iter().find(|p| {
            Some(&p.row.model) == child.row.parent_model.as_ref()
                && p.row.dataset == child.row.dataset
        }) else {
            continue;
        };
        let parent_stats: HashMap<i64, (u64, u64)> = parent
            .problems
            .iter()
            .map(|s| (s.problem_id, (s.c, s.n)))
            .collect();
        for s in &child.problems {
            if let Some(&(pc, pn)) = parent_stats.get(&s.problem_id) {
                if newly_unsolvable(pc, pn, s.c, s.n) {
                    note(
                        s.problem_id,
                        &s.key,
                        "newly-unsolvable",
                        format!(
                            "{} solved it ({pc}/{pn}); {} never did ({}/{})",
                            parent.row.label, child.row.label, s.c, s.n
                        ),
                        format!("{},{}", parent.row.id, child.row.id),
                    );
                }
            }
        }
    }
    // Popular wrong answers and unverifiable rollouts.
    let keys: HashMap<i64, &str> = runs
        .iter()
        .flat_map(|r| r.problems.iter().map(|s| (s.problem_id, s.key.as_str())))
        .collect();
    let labels_of_run: HashMap<i64, &str> = runs
        .iter()
        .map(|r| (r.row.id, r.row.label.as_str()))
        .collect();
    for (run, problem, answers, reference, n) in access.store.experiment_answer_stats(e.id).await? {
        let clusters = crate::storage::rollouts::answer_clusters(&answers, &reference);
        let wrong = popular_wrong_answer(
            clusters
                .iter()
                .map(|c| (c.answer.as_str(), c.count.max(0) as u64, c.correct)),
            n,
            min_share,
        );
        // Extracted answers that read as prose: an extraction (or grading) to check (issue 27).
        if let Some(key) = keys.get(&problem) {
            for c in clusters
                .iter()
                .filter(|c| !c.correct && is_prose(&c.answer))
            {
                note(
                    problem,
                    key,
                    "not-maths",
                    format!(
                        "{}: {} rollout{} answer “{}”, which is not maths (extraction to check)",
                        labels_of_run.get(&run).copied().unwrap_or("a run"),
                        c.count,
                        if c.count == 1 { "" } else { "s" },
                        c.answer
                    ),
                    run.to_string(),
                );
            }
        }
        if let (Some((answer, count)), Some(key)) = (wrong, keys.get(&problem)) {
            note(
                problem,
                key,
                "popular-wrong-answer",
                format!(
                    "{}: {count} of {n} rollouts answer “{answer}”, not the reference “{reference}”",
                    labels_of_run.get(&run).copied().unwrap_or("a run")
                ),
                run.to_string(),
            );
        }
    }
    let unverifiable_runs: Vec<i64> = runs
        .iter()
        .filter(|r| {
            r.row
                .verdicts
                .tally
                .as_ref()
                .is_some_and(|t| t.unverifiable > 0)
        })
        .map(|r| r.row.id)
        .collect();
    for (run, problem, count) in access.store.unverifiable_counts(&unverifiable_runs).await? {
        if let Some(key) = keys.get(&problem) {
            note(
                problem,
                key,
                "unverifiable",
                format!(
                    "{}: caplens' verifier could not decide {count} rollout{}",
                    labels_of_run.get(&run).copied().unwrap_or("a run"),
                    if count == 1 { "" } else { "s" }
                ),
                run.to_string(),
            );
        }
    }
    // Where the file's verdicts and caplens' disagree (issue 27).
    let disagreeing_runs: Vec<i64> = runs
        .iter()
        .filter(|r| {
            r.row
                .verdicts
                .tally
                .as_ref()
                .is_some_and(|t| t.disagree > 0)
        })
        .map(|r| r.row.id)
        .collect();
    for (run, problem, count) in access
        .store
        .verdict_disagreement_counts(&disagreeing_runs)
        .await?
    {
        if let Some(key) = keys.get(&problem) {
            note(
                problem,
                key,
                "verdicts-disagree",
                format!(
                    "{}: caplens and the file disagree on {count} rollout{}",
                    labels_of_run.get(&run).copied().unwrap_or("a run"),
                    if count == 1 { "" } else { "s" }
                ),
                run.to_string(),
            );
        }
    }
    // Reviewers' judgements that differ on a target no editor has decided.
    let overrides = access.store.overrides(e.id, None).await?;
    let mut judged: HashMap<(i64, Option<i64>, Option<String>), (u64, u64)> = HashMap::new();
    for j in access.store.judgements(e.id, None).await? {
        let c = judged
            .entry((j.problem_id, j.rollout, j.answer))
            .or_default();
        if j.verdict == "correct" {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    for ((problem, rollout, answer), (correct, wrong)) in judged {
        let decided = overrides
            .iter()
            .any(|o| o.problem_id == problem && o.rollout == rollout && o.answer == answer);
        if correct == 0 || wrong == 0 || decided {
            continue;
        }
        if let Some(key) = keys.get(&problem) {
            let what = match (&answer, rollout) {
                (Some(a), _) => format!("answer “{a}”"),
                (None, Some(r)) => format!("rollout {r}"),
                _ => "it".into(),
            };
            note(
                problem,
                key,
                "reviewers-disagree",
                format!("Reviewers disagree on {what}: {correct} judge it correct, {wrong} wrong; an editor decides"),
                String::new(),
            );
        }
    }
    let labels = access.store.problem_labels(e).await?;
    let assignments = access.store.assignments(e.id).await?;
    let (comment_counts, _) = access.store.comment_counts(e.id).await?;
    let comment_counts: HashMap<i64, u64> = comment_counts.into_iter().collect();
    let mut entries: Vec<QueueEntry> = reasons
        .into_iter()
        .map(|(problem, (key, texts, kinds, runs_param))| {
            let labels = labels.get(&problem).cloned().unwrap_or_default();
            let n_overrides = overrides.iter().filter(|o| o.problem_id == problem).count() as u64;
            QueueEntry {
                problem_id: problem,
                prompt: String::new(),
                link: if runs_param.is_empty() {
                    format!("/problems/{problem}?experiment={slug}")
                } else {
                    format!("/problems/{problem}?experiment={slug}&runs={runs_param}")
                },
                key,
                reasons: texts,
                kinds,
                reviewed: !labels.is_empty() || n_overrides > 0,
                labels,
                overrides: n_overrides,
                comments: comment_counts.get(&problem).copied().unwrap_or(0),
                assignee: assignments.get(&problem).cloned(),
            }
        })
        .collect();
    // Unreviewed first; among them the problems RL lost (the queue's main question) first.
    let lost = |q: &QueueEntry| !q.kinds.iter().any(|k| k == "newly-unsolvable");
    entries.sort_by(|a, b| {
        a.reviewed
            .cmp(&b.reviewed)
            .then_with(|| lost(a).cmp(&lost(b)))
            .then_with(|| a.key.cmp(&b.key))
    });
    let total = entries.len() as u64;
    let reviewed = entries.iter().filter(|q| q.reviewed).count() as u64;
    let ids: Vec<i64> = entries.iter().map(|q| q.problem_id).collect();
    let mut prompts = access.store.problem_prompts(&ids).await?;
    for q in &mut entries {
        q.prompt = prompts.remove(&q.problem_id).unwrap_or_default();
    }
    if assigned_to_me {
        let me = access.principal.name.clone();
        entries.retain(|q| q.assignee.as_deref() == Some(me.as_str()));
    }
    let can_assign =
        access.may(Action::Edit, e.project_id) && access.principal.shared_experiment().is_none();
    Ok(ReviewQueueView {
        experiment: slug.to_owned(),
        experiment_name: prepared.data.summary.name.clone(),
        entries,
        reviewed,
        total,
        // Who the project's members are is for those who assign the queue, not every reader
        // (a share-link visitor is no member).
        members: if can_assign {
            access
                .store
                .members(e.project_id)
                .await?
                .into_iter()
                .map(|m| m.user)
                .collect()
        } else {
            Vec::new()
        },
        can_review: can_assign,
        min_share,
    })
}

/// Assigns a queue entry to a project member (`None`: unassign).
pub async fn assign(
    access: &Access<'_>,
    slug: &str,
    problem_id: i64,
    user: Option<&str>,
) -> Result<(), OpError> {
    let e = open_experiment(access, slug, Action::Edit).await?;
    problem_in(access, e, problem_id).await?;
    let user_id = match user.filter(|u| !u.is_empty()) {
        None => None,
        Some(name) => Some(
            member_names(access, e.project_id)
                .await?
                .get(name)
                .copied()
                .ok_or_else(|| {
                    OpError::invalid(format!("user: {name:?} is not a member of this project"))
                })?,
        ),
    };
    access
        .store
        .assign_problem(e.id, problem_id, user_id, &actor(access))
        .await?;
    access
        .audit(
            "review_assigned",
            format!("problem {problem_id} in {slug}"),
            Some(e.project_id),
            user.unwrap_or("nobody"),
        )
        .await;
    Ok(())
}
