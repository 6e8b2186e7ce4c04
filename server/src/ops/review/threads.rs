//! Comment threads (issue 15): posting, replying, editing, deleting and resolving comments
//! (mentions of project members rendered and recorded), a thread's and an experiment's threads
//! as views, the inbox, comment counts and the discussion's fingerprint.

use std::collections::{HashMap, HashSet};

use caplens_app::review::{
    CommentCounts, CommentTarget, CommentView, InboxEntry, ThreadFilter, ThreadView,
};

use super::{actor, member_names, open_experiment, problem_in};
use crate::auth::{Action, PrincipalKind};
use crate::ops::{Access, OpError};
use crate::review::markdown;
use crate::storage::access::Owned;
use crate::storage::review::{CommentRecord, ExperimentRef, ThreadRecord};

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
    let e = open_experiment(access, slug, Action::Review).await?;
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
    let e = open_experiment(access, slug, Action::Read).await?;
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
    let e = open_experiment(access, slug, Action::Read).await?;
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
        if open_experiment(access, &slug, Action::Read).await.is_ok() {
            out.push(slug);
        }
    }
    Ok(out)
}

/// A fingerprint of the experiment's discussion (live updates).
pub async fn discussion_stamp(access: &Access<'_>, slug: &str) -> Result<String, OpError> {
    let e = open_experiment(access, slug, Action::Read).await?;
    Ok(access.store.discussion_stamp(e.id).await?)
}

/// Opens thread `id` for `action` (its project, through the thread's experiment).
pub async fn open_thread(access: &Access<'_>, id: i64, action: Action) -> Result<i64, OpError> {
    access.require(action, &Owned::Thread(id), "thread").await
}
