//! Team review (issue 15), the operations the pages (`web::pages::StoreSource`) and the REST
//! API (`web::review`) share: comment threads, labels, verdict overrides, the review queue,
//! assignments, share links and experiment settings. Every operation asks `Access` first
//! (reads: `Read`; comments and labels: `Review`; overrides, assignments, renames, share links:
//! `Edit`; moving and deleting: `Administer`), then calls `Store` methods, then audits.

use std::collections::{HashMap, HashSet};

use caplens_analysis::review::{newly_unsolvable, popular_wrong_answer};
use caplens_analysis::verifier::normalize_answer;
use caplens_app::review::{
    CommentCounts, CommentTarget, CommentView, ExperimentSettings, InboxEntry, NewShareLink,
    OverrideRow, ProblemReview, QueueEntry, ReviewQueueView, ThreadFilter, ThreadView,
};

use super::{Access, OpError};
use crate::auth::{random_secret, sha256_hex, Action, PrincipalKind};
use crate::review::{
    markdown, parse_review_records, OverrideRequest, ReviewImportReport, ReviewRecord,
};
use crate::storage::access::Owned;
use crate::storage::review::{CommentRecord, ExperimentRef, OverrideTarget, ThreadRecord};

/// Default share of a run's rollouts a wrong answer needs to enter the queue.
pub const DEFAULT_MIN_SHARE: f64 = 0.3;
/// Longest override reason and label name (characters).
const MAX_REASON_CHARS: usize = 2_000;
const MAX_LABEL_CHARS: usize = 60;
/// Longest share-link lifetime: a year.
const MAX_SHARE_SECONDS: u64 = 366 * 86_400;

/// The experiment `slug`, if the principal may do `action` on it.
pub async fn experiment(
    access: &Access<'_>,
    slug: &str,
    action: Action,
) -> Result<ExperimentRef, OpError> {
    access
        .require(
            action,
            &Owned::Experiment(slug.to_owned()),
            &format!("experiment {slug:?}"),
        )
        .await?;
    access
        .store
        .experiment_ref(slug)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no experiment {slug:?}")))
}

fn actor(access: &Access<'_>) -> String {
    access.principal.name.clone()
}

async fn problem_in(access: &Access<'_>, e: ExperimentRef, problem_id: i64) -> Result<(), OpError> {
    if access.store.problem_in_experiment(e.id, problem_id).await? {
        Ok(())
    } else {
        Err(OpError::not_found(format!(
            "no problem {problem_id} in this experiment"
        )))
    }
}

// ---------- comments ----------

/// The users `@name` may notify in a project: its members (local mode: nobody).
async fn member_names(access: &Access<'_>, project: i64) -> Result<HashMap<String, i64>, OpError> {
    Ok(access
        .store
        .members(project)
        .await?
        .into_iter()
        .map(|m| (m.user, m.user_id))
        .collect())
}

fn check_body(body: &str) -> Result<&str, OpError> {
    let body = body.trim();
    if body.is_empty() {
        return Err(OpError::invalid("body: a comment needs some text"));
    }
    if body.len() > markdown::MAX_COMMENT_BYTES {
        return Err(OpError::invalid(format!(
            "body: {} bytes; a comment holds at most {}",
            body.len(),
            markdown::MAX_COMMENT_BYTES
        )));
    }
    Ok(body)
}

/// Renders a comment for the project: sanitised HTML and the mentioned members' ids.
async fn render(
    access: &Access<'_>,
    project: i64,
    body: &str,
) -> Result<(String, Vec<i64>), OpError> {
    let members = member_names(access, project).await?;
    let rendered = markdown::render_comment(body, &|n| members.contains_key(n));
    let ids = rendered
        .mentions
        .iter()
        .filter_map(|n| members.get(n).copied())
        .collect();
    Ok((rendered.html, ids))
}

/// Where a thread's target is, validated against the experiment; its problem.
async fn target_problem(
    access: &Access<'_>,
    e: ExperimentRef,
    target: &CommentTarget,
) -> Result<Option<i64>, OpError> {
    match target {
        CommentTarget::Experiment => Ok(None),
        CommentTarget::Problem { problem } => {
            problem_in(access, e, *problem).await?;
            Ok(Some(*problem))
        }
        CommentTarget::Rollout { rollout } | CommentTarget::Token { rollout, .. } => {
            if let CommentTarget::Token { index, .. } = target {
                if *index < 0 {
                    return Err(OpError::invalid(
                        "target.index: a token position is 0 or more",
                    ));
                }
            }
            access
                .store
                .rollout_problem_in_experiment(e.id, *rollout)
                .await?
                .map(Some)
                .ok_or_else(|| {
                    OpError::not_found(format!("no rollout {rollout} in this experiment"))
                })
        }
    }
}

/// Posts a comment on a target (its thread is made on the first comment).
pub async fn post_comment(
    access: &Access<'_>,
    slug: &str,
    target: &CommentTarget,
    body: &str,
) -> Result<ThreadView, OpError> {
    let e = experiment(access, slug, Action::Review).await?;
    let body = check_body(body)?;
    let problem = target_problem(access, e, target).await?;
    let thread = access
        .store
        .thread_for(e.id, target, problem, access.principal.user_id)
        .await?;
    let (html, mentions) = render(access, e.project_id, body).await?;
    access
        .store
        .add_comment(
            thread,
            access.principal.user_id,
            &actor(access),
            body,
            &html,
            &mentions,
        )
        .await?;
    access
        .audit(
            "comment",
            format!("thread {thread}"),
            Some(e.project_id),
            format!("on {}", target.kind()),
        )
        .await;
    thread_view(access, thread).await
}

/// Replies to a thread.
pub async fn reply(access: &Access<'_>, thread_id: i64, body: &str) -> Result<ThreadView, OpError> {
    let project = access
        .require(Action::Review, &Owned::Thread(thread_id), "thread")
        .await?;
    let body = check_body(body)?;
    let (html, mentions) = render(access, project, body).await?;
    access
        .store
        .add_comment(
            thread_id,
            access.principal.user_id,
            &actor(access),
            body,
            &html,
            &mentions,
        )
        .await?;
    access
        .audit(
            "comment",
            format!("thread {thread_id}"),
            Some(project),
            "reply",
        )
        .await;
    thread_view(access, thread_id).await
}

fn is_mine(access: &Access<'_>, c: &CommentRecord) -> bool {
    match access.principal.kind {
        PrincipalKind::Local => c.author_id.is_none(),
        PrincipalKind::Share { .. } | PrincipalKind::Anonymous => false,
        _ => c.author_id.is_some() && c.author_id == access.principal.user_id,
    }
}

/// Edits one's own comment.
pub async fn edit_comment(access: &Access<'_>, id: i64, body: &str) -> Result<ThreadView, OpError> {
    let project = access
        .require(Action::Review, &Owned::Comment(id), "comment")
        .await?;
    let comment = access
        .store
        .comment(id)
        .await?
        .ok_or_else(|| OpError::not_found("no comment"))?;
    if !is_mine(access, &comment) || comment.deleted_at.is_some() {
        return Err(OpError::forbidden("only its author may edit a comment"));
    }
    let body = check_body(body)?;
    let (html, mentions) = render(access, project, body).await?;
    access
        .store
        .edit_comment(id, body, &html, &mentions)
        .await?;
    access
        .audit("comment_edited", format!("comment {id}"), Some(project), "")
        .await;
    thread_view(access, comment.thread_id).await
}

/// Deletes one's own comment (project admins may delete any).
pub async fn delete_comment(access: &Access<'_>, id: i64) -> Result<ThreadView, OpError> {
    let project = access
        .require(Action::Review, &Owned::Comment(id), "comment")
        .await?;
    let comment = access
        .store
        .comment(id)
        .await?
        .ok_or_else(|| OpError::not_found("no comment"))?;
    if !is_mine(access, &comment) && !access.may(Action::Administer, project) {
        return Err(OpError::forbidden(
            "only its author or a project admin may delete a comment",
        ));
    }
    access.store.delete_comment(id).await?;
    access
        .audit(
            "comment_deleted",
            format!("comment {id}"),
            Some(project),
            format!("by {}", comment.author_name),
        )
        .await;
    thread_view(access, comment.thread_id).await
}

/// Resolves or reopens a thread.
pub async fn resolve_thread(
    access: &Access<'_>,
    id: i64,
    resolved: bool,
) -> Result<ThreadView, OpError> {
    let project = access
        .require(Action::Review, &Owned::Thread(id), "thread")
        .await?;
    let name = actor(access);
    access
        .store
        .set_thread_resolved(id, resolved.then_some(name.as_str()))
        .await?;
    access
        .audit(
            if resolved {
                "thread_resolved"
            } else {
                "thread_reopened"
            },
            format!("thread {id}"),
            Some(project),
            "",
        )
        .await;
    thread_view(access, id).await
}

fn target_text(t: &ThreadRecord) -> (String, String) {
    let slug = &t.experiment;
    let key = t.problem_key.clone().unwrap_or_default();
    match &t.target {
        CommentTarget::Experiment => (
            "the experiment".into(),
            format!("/experiments/{slug}/discussion"),
        ),
        CommentTarget::Problem { problem } => (
            format!("problem {key}"),
            format!("/problems/{problem}?experiment={slug}"),
        ),
        CommentTarget::Rollout { rollout } => (
            format!("rollout {rollout} of {key}"),
            format!("/rollouts/{rollout}?experiment={slug}"),
        ),
        CommentTarget::Token { rollout, index } => (
            format!("token {index} of rollout {rollout} ({key})"),
            format!("/rollouts/{rollout}?experiment={slug}&pos={index}"),
        ),
    }
}

fn views_of(
    access: &Access<'_>,
    threads: Vec<ThreadRecord>,
    mut comments: HashMap<i64, Vec<CommentRecord>>,
) -> Vec<ThreadView> {
    threads
        .into_iter()
        .map(|t| {
            let list = comments.remove(&t.id).unwrap_or_default();
            let last = list
                .iter()
                .map(|c| c.edited_at.clone().unwrap_or_else(|| c.created_at.clone()))
                .max()
                .unwrap_or_else(|| t.created_at.clone());
            let (target_label, link) = target_text(&t);
            ThreadView {
                id: t.id,
                experiment: t.experiment.clone(),
                problem_id: t.problem_id,
                problem_key: t.problem_key.clone(),
                target: t.target.clone(),
                target_label,
                link,
                resolved: t.resolved_at.is_some(),
                resolved_by: t.resolved_by.clone(),
                created_at: t.created_at.clone(),
                last_activity: last,
                comments: list
                    .iter()
                    .map(|c| CommentView {
                        id: c.id,
                        author: c.author_name.clone(),
                        body: if c.deleted_at.is_some() {
                            String::new()
                        } else {
                            c.body.clone()
                        },
                        html: c.body_html.clone(),
                        created_at: c.created_at.clone(),
                        edited_at: c.edited_at.clone(),
                        deleted: c.deleted_at.is_some(),
                        mine: is_mine(access, c),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// One thread with its comments.
pub async fn thread_view(access: &Access<'_>, id: i64) -> Result<ThreadView, OpError> {
    access
        .require(Action::Read, &Owned::Thread(id), "thread")
        .await?;
    let t = access
        .store
        .thread(id)
        .await?
        .ok_or_else(|| OpError::not_found("no thread"))?;
    let comments = access.store.comments_of(&[id]).await?;
    Ok(views_of(access, vec![t], comments).remove(0))
}

/// An experiment's threads, newest activity first, filtered.
pub async fn threads(
    access: &Access<'_>,
    slug: &str,
    filter: &ThreadFilter,
) -> Result<Vec<ThreadView>, OpError> {
    let e = experiment(access, slug, Action::Read).await?;
    let mut list = access.store.threads(e.id).await?;
    if filter.unresolved {
        list.retain(|t| t.resolved_at.is_none());
    }
    if let Some(target) = &filter.target {
        list.retain(|t| &t.target == target);
    }
    if let Some(problem) = filter.problem {
        list.retain(|t| t.problem_id == Some(problem));
    }
    if let Some(rollout) = filter.rollout {
        list.retain(|t| {
            matches!(t.target, CommentTarget::Rollout { rollout: r } | CommentTarget::Token { rollout: r, .. } if r == rollout)
        });
    }
    if let Some(label) = filter.label.as_deref().filter(|l| !l.is_empty()) {
        let labels = access.store.problem_labels(e).await?;
        list.retain(|t| {
            t.problem_id
                .and_then(|p| labels.get(&p))
                .is_some_and(|ls| ls.iter().any(|l| l.label == label))
        });
    }
    if filter.mentions_me {
        let Some(user) = access.principal.user_id else {
            return Ok(Vec::new());
        };
        let mut keep = HashSet::new();
        for t in &list {
            if access
                .store
                .mentioned_in_thread(t.id)
                .await?
                .contains(&user)
            {
                keep.insert(t.id);
            }
        }
        list.retain(|t| keep.contains(&t.id));
    }
    let ids: Vec<i64> = list.iter().map(|t| t.id).collect();
    let comments = access.store.comments_of(&ids).await?;
    Ok(views_of(access, list, comments))
}

/// Threads that mention the signed-in user or answer their comments, in projects they may read.
pub async fn inbox(access: &Access<'_>) -> Result<Vec<InboxEntry>, OpError> {
    access.require_signed_in(Action::Read, "inbox").await?;
    let Some(user) = access.principal.user_id else {
        return Ok(Vec::new());
    };
    let mut threads = Vec::new();
    let mut whys = Vec::new();
    for (t, why) in access.store.inbox_threads(user).await? {
        if access
            .require(Action::Read, &Owned::Thread(t.id), "thread")
            .await
            .is_ok()
        {
            threads.push(t);
            whys.push(why);
        }
    }
    let comments = access
        .store
        .comments_of(&threads.iter().map(|t| t.id).collect::<Vec<_>>())
        .await?;
    let mut entries: Vec<InboxEntry> = views_of(access, threads, comments)
        .into_iter()
        .zip(whys)
        .map(|(thread, why)| InboxEntry {
            why: why.into(),
            thread,
        })
        .collect();
    entries.sort_by(|a, b| b.thread.last_activity.cmp(&a.thread.last_activity));
    Ok(entries)
}

/// Comment counts per problem and rollout (badges).
pub async fn comment_counts(access: &Access<'_>, slug: &str) -> Result<CommentCounts, OpError> {
    let e = experiment(access, slug, Action::Read).await?;
    let (by_problem, by_rollout) = access.store.comment_counts(e.id).await?;
    Ok(CommentCounts {
        by_problem,
        by_rollout,
    })
}

/// The experiments (slugs) a rollout is in that the principal may read.
pub async fn rollout_experiments(
    access: &Access<'_>,
    rollout: i64,
) -> Result<Vec<String>, OpError> {
    access
        .require(Action::Read, &Owned::Rollout(rollout), "rollout")
        .await?;
    let mut out = Vec::new();
    for slug in access.store.rollout_experiments(rollout).await? {
        if access
            .require(Action::Read, &Owned::Experiment(slug.clone()), "experiment")
            .await
            .is_ok()
        {
            out.push(slug);
        }
    }
    Ok(out)
}

/// A fingerprint of the experiment's discussion (live updates).
pub async fn discussion_stamp(access: &Access<'_>, slug: &str) -> Result<String, OpError> {
    let e = experiment(access, slug, Action::Read).await?;
    Ok(access.store.discussion_stamp(e.id).await?)
}

// ---------- labels and overrides ----------

/// The review panel of a problem in an experiment.
pub async fn problem_review(
    access: &Access<'_>,
    slug: &str,
    problem_id: i64,
) -> Result<ProblemReview, OpError> {
    let e = experiment(access, slug, Action::Read).await?;
    problem_in(access, e, problem_id).await?;
    let labels = access
        .store
        .problem_labels(e)
        .await?
        .remove(&problem_id)
        .unwrap_or_default();
    Ok(ProblemReview {
        experiment: slug.to_owned(),
        labels,
        available_labels: access.store.label_defs(e.project_id).await?,
        overrides: access.store.overrides(e.id, Some(problem_id)).await?,
        assignee: access.store.assignments(e.id).await?.remove(&problem_id),
        can_review: access.may(Action::Edit, e.project_id),
        can_comment: access.may(Action::Review, e.project_id),
    })
}

/// Sets a problem's labels (names from the project's label list).
pub async fn set_labels(
    access: &Access<'_>,
    slug: &str,
    problem_id: i64,
    labels: &[String],
) -> Result<ProblemReview, OpError> {
    let e = experiment(access, slug, Action::Review).await?;
    problem_in(access, e, problem_id).await?;
    let defs = access.store.label_defs(e.project_id).await?;
    let mut wanted: Vec<String> = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let l = l.trim();
        if !defs.iter().any(|d| d.name == l) {
            let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            return Err(OpError::invalid(format!(
                "labels[{i}]: {l:?} is not a label of this project (one of: {}); a project admin adds labels",
                names.join(", ")
            )));
        }
        if !wanted.iter().any(|w| w == l) {
            wanted.push(l.to_owned());
        }
    }
    access
        .store
        .set_problem_labels(e.id, problem_id, &wanted, &actor(access))
        .await?;
    access
        .audit(
            "labels_set",
            format!("problem {problem_id} in {slug}"),
            Some(e.project_id),
            wanted.join(", "),
        )
        .await;
    problem_review(access, slug, problem_id).await
}

/// Sets the labels of the problem `key` (its id, or `dataset/key`, or a bare key) of an
/// experiment.
pub async fn set_labels_by_key(
    access: &Access<'_>,
    slug: &str,
    key: &str,
    labels: &[String],
) -> Result<ProblemReview, OpError> {
    let e = experiment(access, slug, Action::Review).await?;
    let problem = match key.parse::<i64>() {
        Ok(id) => Some(id),
        Err(_) => access.store.experiment_problem_by_key(e.id, key).await?,
    }
    .ok_or_else(|| OpError::not_found(format!("no problem {key:?} in experiment {slug:?}")))?;
    set_labels(access, slug, problem, labels).await
}

/// Opens thread `id` for `action` (its project, through the thread's experiment).
pub async fn open_thread(access: &Access<'_>, id: i64, action: Action) -> Result<i64, OpError> {
    access.require(action, &Owned::Thread(id), "thread").await
}

/// Adds a label to a project's list (project admins).
pub async fn add_label(
    access: &Access<'_>,
    project_slug: &str,
    name: &str,
    colour: &str,
) -> Result<(), OpError> {
    let project = access
        .require(
            Action::Administer,
            &Owned::Project(project_slug.to_owned()),
            "project",
        )
        .await?;
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_LABEL_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(OpError::invalid(format!(
            "name: 1 to {MAX_LABEL_CHARS} printable characters"
        )));
    }
    let colour = colour.trim();
    let valid = colour.len() == 7
        && colour.starts_with('#')
        && colour[1..].chars().all(|c| c.is_ascii_hexdigit());
    if !valid {
        return Err(OpError::invalid(format!(
            "colour: {colour:?} is not #rrggbb"
        )));
    }
    access.store.add_label_def(project, name, colour).await?;
    access
        .audit(
            "label_defined",
            format!("project {project_slug}"),
            Some(project),
            name,
        )
        .await;
    Ok(())
}

/// A project's labels and whether its viewers may comment (the project page).
pub async fn project_review(
    access: &Access<'_>,
    project_slug: &str,
) -> Result<caplens_app::review::ProjectReviewSettings, OpError> {
    let project = access
        .require(
            Action::Read,
            &Owned::Project(project_slug.to_owned()),
            "project",
        )
        .await?;
    let row = access
        .store
        .project_by_id(project)
        .await?
        .ok_or_else(|| OpError::not_found("no project"))?;
    Ok(caplens_app::review::ProjectReviewSettings {
        labels: access.store.label_defs(project).await?,
        viewers_comment: row.viewers_comment,
        can_administer: access.may(Action::Administer, project),
        engine_admins: row.engine_admins,
        can_set_engine_admins: (access.principal.site_admin && !access.principal.is_token())
            || access.principal.is_local(),
    })
}

/// Lets a project's viewers comment and label, or not (project admins).
pub async fn set_viewers_comment(
    access: &Access<'_>,
    project_slug: &str,
    allowed: bool,
) -> Result<(), OpError> {
    let project = access
        .require(
            Action::Administer,
            &Owned::Project(project_slug.to_owned()),
            "project",
        )
        .await?;
    access.store.set_viewers_comment(project, allowed).await?;
    access
        .audit(
            "viewers_comment",
            format!("project {project_slug}"),
            Some(project),
            if allowed { "on" } else { "off" },
        )
        .await;
    Ok(())
}

/// Records a verdict override; every view's reviewed numbers change with it.
pub async fn add_override(
    access: &Access<'_>,
    slug: &str,
    req: &OverrideRequest,
) -> Result<OverrideRow, OpError> {
    let e = experiment(access, slug, Action::Edit).await?;
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
    let (problem_id, target) = match (&req.rollout, &req.answer, &req.problem) {
        (Some(rollout), None, _) => {
            let problem = access
                .store
                .rollout_problem_in_experiment(e.id, *rollout)
                .await?
                .ok_or_else(|| OpError::not_found(format!("rollout: no rollout {rollout} in this experiment")))?;
            (problem, OverrideTarget::Rollout(*rollout))
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
        (None, Some(_), None) => return Err(OpError::invalid("problem: an answer override names its problem")),
        _ => {
            return Err(OpError::invalid(
                "give either {\"rollout\": ID} or {\"problem\": KEY, \"answer\": TEXT}, with verdict and reason",
            ))
        }
    };
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
    let e = experiment(access, slug, Action::Read).await?;
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

// ---------- export and import of review work ----------

/// An experiment's labels and overrides as records.
pub async fn export_review(access: &Access<'_>, slug: &str) -> Result<Vec<ReviewRecord>, OpError> {
    let e = experiment(access, slug, Action::Read).await?;
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
    let e = experiment(access, slug, Action::Edit).await?;
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

// ---------- review queue ----------

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
    let e = experiment(access, slug, Action::Read).await?;
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
    let labels = access.store.problem_labels(e).await?;
    let overrides = access.store.overrides(e.id, None).await?;
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
                link: format!("/problems/{problem}?experiment={slug}&runs={runs_param}"),
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
    let e = experiment(access, slug, Action::Edit).await?;
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

// ---------- share links and settings ----------

/// Makes a read-only link to `path` (a view of this experiment). Only the secret's hash is kept.
pub async fn create_share_link(
    access: &Access<'_>,
    slug: &str,
    path: &str,
    expires_in: Option<u64>,
    base_url: &str,
) -> Result<NewShareLink, OpError> {
    let e = experiment(access, slug, Action::Edit).await?;
    let own = format!("/experiments/{slug}");
    let path = path.trim();
    let path_only = path.split(['?', '#']).next().unwrap_or("");
    let inside = path_only == own || path_only.starts_with(&format!("{own}/"));
    if !inside || path.contains("//") || path.contains('\\') || path.chars().any(char::is_control) {
        return Err(OpError::invalid(format!(
            "path: {path:?} is not a view of this experiment (it starts with {own})"
        )));
    }
    if path_only.ends_with("/settings") {
        return Err(OpError::invalid("path: the settings page cannot be shared"));
    }
    if let Some(s) = expires_in {
        if s == 0 || s > MAX_SHARE_SECONDS {
            return Err(OpError::invalid(format!(
                "expires_in: between 1 and {MAX_SHARE_SECONDS} seconds"
            )));
        }
    }
    let expires_at =
        expires_in.map(|s| crate::storage::rfc3339_from_unix(crate::auth::now_unix() + s));
    let secret = random_secret("cls_");
    let id = access
        .store
        .create_share_link(
            e.id,
            &sha256_hex(&secret),
            path,
            &actor(access),
            expires_at.as_deref(),
        )
        .await?;
    access
        .audit(
            "share_link_created",
            format!("share link {id} of {slug}"),
            Some(e.project_id),
            path,
        )
        .await;
    Ok(NewShareLink {
        id,
        url: format!("{}/s/{secret}", base_url.trim_end_matches('/')),
        expires_at,
    })
}

pub async fn revoke_share_link(access: &Access<'_>, id: i64) -> Result<(), OpError> {
    let project = access
        .require(Action::Edit, &Owned::ShareLink(id), "share link")
        .await?;
    access.store.revoke_share_link(id).await?;
    access
        .audit(
            "share_link_revoked",
            format!("share link {id}"),
            Some(project),
            "",
        )
        .await;
    Ok(())
}

/// The settings page's data.
pub async fn settings(access: &Access<'_>, slug: &str) -> Result<ExperimentSettings, OpError> {
    let e = experiment(access, slug, Action::Read).await?;
    let detail = access
        .store
        .experiment(slug)
        .await?
        .ok_or_else(|| OpError::not_found("no experiment"))?;
    let can_edit = access.may(Action::Edit, e.project_id);
    let projects = access
        .store
        .projects()
        .await?
        .into_iter()
        .filter(|p| access.may(Action::Administer, p.id))
        .map(|p| p.slug)
        .collect();
    Ok(ExperimentSettings {
        slug: slug.to_owned(),
        name: detail.summary.name,
        description: detail.summary.description,
        project: detail.summary.project,
        share_links: if can_edit {
            access.store.share_links(e.id).await?
        } else {
            Vec::new()
        },
        projects,
        can_edit,
        can_administer: access.may(Action::Administer, e.project_id),
    })
}

/// Renames and describes an experiment (editors).
pub async fn update_experiment(
    access: &Access<'_>,
    slug: &str,
    name: &str,
    description: &str,
) -> Result<(), OpError> {
    let e = experiment(access, slug, Action::Edit).await?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(OpError::invalid("name: 1 to 200 characters"));
    }
    if description.chars().count() > 5_000 {
        return Err(OpError::invalid("description: at most 5000 characters"));
    }
    access
        .store
        .update_experiment(e.id, name, description.trim())
        .await?;
    access
        .audit(
            "experiment_renamed",
            format!("experiment {slug}"),
            Some(e.project_id),
            name,
        )
        .await;
    Ok(())
}

/// Moves an experiment to another project (admin of both).
pub async fn move_experiment(
    access: &Access<'_>,
    slug: &str,
    project_slug: &str,
) -> Result<(), OpError> {
    let e = experiment(access, slug, Action::Administer).await?;
    let target = access
        .require(
            Action::Administer,
            &Owned::Project(project_slug.to_owned()),
            "project",
        )
        .await?;
    access.store.move_experiment(e.id, target).await?;
    access
        .audit(
            "experiment_moved",
            format!("experiment {slug}"),
            Some(e.project_id),
            format!("to project {project_slug}"),
        )
        .await;
    Ok(())
}

/// Deletes an experiment (admins; `confirm` must repeat the slug). Its review data goes with
/// it, and its runs that no other experiment holds (their trace packs too).
pub async fn delete_experiment(
    access: &Access<'_>,
    slug: &str,
    confirm: &str,
) -> Result<(), OpError> {
    let e = experiment(access, slug, Action::Administer).await?;
    if confirm.trim() != slug {
        return Err(OpError::invalid(format!(
            "confirm: type the experiment's slug ({slug}) to delete it"
        )));
    }
    let keys = access.store.delete_experiment(e.id).await?;
    for key in keys {
        if let Err(err) = access.store.blobs.delete(&key).await {
            tracing::warn!(%key, error = %err, "could not delete a trace pack of a deleted experiment");
        }
    }
    access
        .audit(
            "experiment_deleted",
            format!("experiment {slug}"),
            Some(e.project_id),
            "",
        )
        .await;
    Ok(())
}
