//! Team review panels (issue 15) that pages embed: comment threads (problem, rollout, token,
//! experiment) with live updates, the problem's labels and verdict overrides, the project's
//! review settings, and the "Share read-only link" button. Every operation is one `ReviewOp`
//! through the `review` server fn; the review pages themselves are in `pages/review.rs`.
//!
//! Comment HTML is rendered and sanitised on the server (`server/src/review/markdown.rs`); it is
//! the only HTML this module inserts as HTML.

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::api::review;
use crate::components::common::ErrorBox;
use crate::review::*;

pub(crate) async fn call(op: ReviewOp) -> Result<ReviewReply, String> {
    review(op).await.map_err(|e| {
        let text = e.to_string();
        text.strip_prefix("error running server function: ")
            .unwrap_or(&text)
            .to_owned()
    })
}

/// `true` once the page has hydrated. The review panels render only then: their data is
/// fetched in the browser (`LocalResource`), so the server renders nothing for hydration to
/// match, and a live thread list never disagrees with the server's HTML.
fn hydrated() -> ReadSignal<bool> {
    let (mounted, set_mounted) = signal(false);
    Effect::new(move |_| set_mounted.set(true));
    mounted
}

pub(crate) fn unexpected(r: ReviewReply) -> String {
    match r {
        ReviewReply::NotFound => "not found (or not visible to you)".into(),
        other => format!("unexpected answer from the server: {other:?}"),
    }
}

/// Short date-time for a comment ("2026-12-02 14:03").
pub(crate) fn when(t: &str) -> String {
    t.get(..16).unwrap_or(t).replace('T', " ")
}

// ---------- live updates ----------

/// Bumps `version` whenever the experiment's discussion changes (server-sent events).
#[component]
fn DiscussionLive(slug: String, version: RwSignal<u32>) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    {
        let stream = StoredValue::new_local(None::<crate::browser::EventStream>);
        let url = format!("/api/v1/experiments/{slug}/comments/events");
        let seen = StoredValue::new(None::<String>);
        Effect::new(move |_| {
            if stream.with_value(|s| s.is_some()) {
                return;
            }
            let opened = crate::browser::follow_events(&url, &["discussion"], move |stamp| {
                let changed = seen.with_value(|s| s.as_ref().is_some_and(|old| *old != stamp));
                seen.set_value(Some(stamp));
                if changed {
                    version.update(|v| *v += 1);
                }
            });
            stream.set_value(opened);
        });
        on_cleanup(move || stream.set_value(None));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (slug, version);
    view! { <span hidden data-testid="discussion-live"></span> }
}

// ---------- threads ----------

#[component]
fn CommentItem(comment: CommentView, version: RwSignal<u32>) -> impl IntoView {
    let editing = RwSignal::new(false);
    let text = RwSignal::new(comment.body.clone());
    let id = comment.id;
    let save = Action::new(move |body: &String| {
        let body = body.clone();
        async move { call(ReviewOp::EditComment { id, body }).await }
    });
    let remove =
        Action::new(move |_: &()| async move { call(ReviewOp::DeleteComment { id }).await });
    Effect::new(move |_| {
        let saved = save.value().get().is_some_and(|r| r.is_ok());
        let removed = remove.value().get().is_some_and(|r| r.is_ok());
        if saved || removed {
            editing.set(false);
            version.update(|v| *v += 1);
        }
    });
    let error = move || {
        save.value()
            .get()
            .and_then(|r| r.err())
            .or_else(|| remove.value().get().and_then(|r| r.err()))
            .map(|e| view! { <ErrorBox message=e /> })
    };
    let html = comment.html.clone();
    view! {
        <li class="comment" data-testid="comment" data-comment-id=id>
            <p class="meta">
                <strong class="author">{comment.author.clone()}</strong>
                " · " {when(&comment.created_at)}
                {comment.edited_at.is_some().then_some(" · edited")}
            </p>
            {if comment.deleted {
                view! { <p class="meta deleted">"(deleted)"</p> }.into_any()
            } else {
                view! {
                    <Show when=move || editing.get() fallback=move || {
                        let html = html.clone();
                        view! { <div class="comment-body" data-testid="comment-body" inner_html=html></div> }
                    }>
                        <form class="comment-form" on:submit=move |ev| {
                            ev.prevent_default();
                            save.dispatch(text.get_untracked());
                        }>
                            <textarea rows="3" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
                            <button type="submit">"Save"</button>
                            <button type="button" on:click=move |_| editing.set(false)>"Cancel"</button>
                        </form>
                    </Show>
                    {comment.mine.then(|| view! {
                        <p class="comment-actions">
                            <button type="button" class="link" on:click=move |_| editing.set(true) data-testid="comment-edit">"Edit"</button>
                            <button type="button" class="link" on:click=move |_| { remove.dispatch(()); } data-testid="comment-delete">"Delete"</button>
                        </p>
                    })}
                }.into_any()
            }}
            {error}
        </li>
    }
}

/// A markdown text box with a submit button; `send(text)` posts it.
#[component]
fn CommentBox(
    #[prop(into)] label: String,
    #[prop(into)] testid: String,
    send: Action<String, Result<ReviewReply, String>>,
) -> impl IntoView {
    let text = RwSignal::new(String::new());
    Effect::new(move |_| {
        if send.value().get().is_some_and(|r| r.is_ok()) {
            text.set(String::new());
        }
    });
    view! {
        <form class="comment-form" data-testid=testid on:submit=move |ev| {
            ev.prevent_default();
            let body = text.get_untracked();
            if !body.trim().is_empty() {
                send.dispatch(body);
            }
        }>
            <textarea
                rows="3"
                placeholder="Markdown, $maths$, @name to notify a member"
                aria-label=label.clone()
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            ></textarea>
            <button type="submit" class="primary" disabled=move || send.pending().get()>{label}</button>
        </form>
        {move || send.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=e /> })}
    }
}

#[component]
pub fn ThreadCard(
    thread: ThreadView,
    version: RwSignal<u32>,
    #[prop(optional)] show_target: bool,
) -> impl IntoView {
    let id = thread.id;
    let resolved = thread.resolved;
    let reply = Action::new(move |body: &String| {
        let body = body.clone();
        async move { call(ReviewOp::Reply { thread: id, body }).await }
    });
    let toggle = Action::new(move |_: &()| async move {
        call(ReviewOp::Resolve {
            thread: id,
            resolved: !resolved,
        })
        .await
    });
    Effect::new(move |_| {
        let r = reply.value().get().is_some_and(|r| r.is_ok());
        let t = toggle.value().get().is_some_and(|r| r.is_ok());
        if r || t {
            version.update(|v| *v += 1);
        }
    });
    let comments = thread
        .comments
        .iter()
        .cloned()
        .map(|comment| view! { <CommentItem comment version /> })
        .collect_view();
    view! {
        <article class="thread" class:resolved=resolved data-testid="thread" data-thread-id=id data-target=thread.target.kind()>
            <header class="thread-head">
                {show_target.then(|| view! { <a href=thread.link.clone() class="thread-target">{thread.target_label.clone()}</a> })}
                {(!show_target).then(|| view! { <span class="thread-target">{thread.target_label.clone()}</span> })}
                {resolved.then(|| view! {
                    <span class="badge" data-testid="thread-resolved">
                        {format!("resolved by {}", thread.resolved_by.clone().unwrap_or_default())}
                    </span>
                })}
                <button type="button" class="link" data-testid="thread-resolve" on:click=move |_| { toggle.dispatch(()); }>
                    {if resolved { "Reopen" } else { "Resolve" }}
                </button>
            </header>
            <ol class="comments">{comments}</ol>
            <CommentBox label="Reply" testid="reply-form" send=reply />
            {move || toggle.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=e /> })}
        </article>
    }
}

/// The threads matching `filter`, live; with a form starting a thread on `new_target` when
/// given (and none exists yet: then one replies in the thread).
#[component]
pub fn ThreadsPanel(
    slug: String,
    filter: ThreadFilter,
    #[prop(optional)] new_target: Option<CommentTarget>,
    #[prop(optional, into)] new_label: Option<String>,
    #[prop(optional)] show_target: bool,
    #[prop(optional)] can_comment: Option<bool>,
) -> impl IntoView {
    let version = RwSignal::new(0u32);
    // Fetched in the browser only: this panel sits inside other pages' Suspense, where a
    // serialised resource would not find its id again on hydration.
    let threads = {
        let slug = slug.clone();
        LocalResource::new(move || {
            version.track();
            let op = ReviewOp::Threads {
                slug: slug.clone(),
                filter: filter.clone(),
            };
            async move { call(op).await }
        })
    };
    let post = {
        let slug = slug.clone();
        let target = new_target.clone();
        Action::new(move |body: &String| {
            let op = target.clone().map(|target| ReviewOp::PostComment {
                slug: slug.clone(),
                target,
                body: body.clone(),
            });
            async move {
                match op {
                    Some(op) => call(op).await,
                    None => Err("nothing to comment on".to_owned()),
                }
            }
        })
    };
    Effect::new(move |_| {
        if post.value().get().is_some_and(|r| r.is_ok()) {
            version.update(|v| *v += 1);
        }
    });
    let label = new_label.unwrap_or_else(|| "Comment".into());
    let mounted = hydrated();
    let reader = crate::components::layout::use_session();
    let read_only = move || {
        reader
            .get()
            .and_then(|s| s.ok())
            .is_none_or(|s| s.read_only())
    };
    let form = (new_target.is_some() && can_comment != Some(false)).then(|| {
        let label = label.clone();
        view! {
            <Suspense fallback=|| ()>
                {move || (!read_only()).then(|| view! { <CommentBox label=label.clone() testid="new-thread-form" send=post /> })}
            </Suspense>
        }
    });
    let live = view! { <DiscussionLive slug=slug.clone() version /> };
    let body = move || {
        mounted.get().then(|| view! {
        <Transition fallback=|| view! { <p class="loading">"Loading comments…"</p> }>
            {move || Suspend::new(async move {
                match threads.await {
                    Err(e) => view! { <ErrorBox message=e /> }.into_any(),
                    Ok(ReviewReply::Threads(list)) => {
                        let empty = list.is_empty();
                        view! {
                            <div class="threads" data-testid="threads">
                                {empty.then(|| view! { <p class="meta" data-testid="no-threads">"No comments yet."</p> })}
                                {list.into_iter().map(|thread| view! { <ThreadCard thread version show_target /> }).collect_view()}
                            </div>
                        }
                        .into_any()
                    }
                    Ok(other) => view! { <ErrorBox message=unexpected(other) /> }.into_any(),
                }
            })}
        </Transition>
    })
    };
    view! {
        {live}
        {body}
        {form}
    }
}

// ---------- the problem's review panel ----------

/// Labels, verdict overrides (per answer cluster) and the discussion of a problem in an
/// experiment; `answers`: the problem's distinct normalised answers (answer, the verifier says
/// correct).
/// Bumped by the problem review panel whenever a verdict override is added or removed, so the
/// page that holds it (the problem page) reads its reviewed numbers again (issue 27).
#[derive(Clone, Copy)]
pub struct OverridesChanged(pub RwSignal<u32>);

#[component]
pub fn ProblemReviewPanel(
    slug: String,
    problem: i64,
    answers: Vec<(String, bool)>,
) -> impl IntoView {
    let version = RwSignal::new(0u32);
    let data = {
        let slug = slug.clone();
        LocalResource::new(move || {
            version.track();
            let op = ReviewOp::ProblemReview {
                slug: slug.clone(),
                problem,
            };
            async move { call(op).await }
        })
    };
    let reason = RwSignal::new(String::new());
    let set_labels = {
        let slug = slug.clone();
        Action::new(move |labels: &Vec<String>| {
            let op = ReviewOp::SetLabels {
                slug: slug.clone(),
                problem,
                labels: labels.clone(),
            };
            async move { call(op).await }
        })
    };
    let add_override = {
        let slug = slug.clone();
        Action::new(move |(answer, verdict): &(String, &'static str)| {
            let op = ReviewOp::AddOverride {
                slug: slug.clone(),
                input: OverrideInput {
                    problem_id: problem,
                    answer: Some(answer.clone()),
                    rollout: None,
                    verdict: (*verdict).into(),
                    reason: reason.get_untracked(),
                },
            };
            async move { call(op).await }
        })
    };
    let judge = {
        let slug = slug.clone();
        Action::new(move |(answer, verdict): &(String, &'static str)| {
            let op = ReviewOp::Judge {
                slug: slug.clone(),
                input: OverrideInput {
                    problem_id: problem,
                    answer: Some(answer.clone()),
                    rollout: None,
                    verdict: (*verdict).into(),
                    reason: String::new(),
                },
            };
            async move { call(op).await }
        })
    };
    let delete_override = Action::new(move |id: &i64| {
        let id = *id;
        async move { call(ReviewOp::DeleteOverride { id }).await }
    });
    let page_overrides = use_context::<OverridesChanged>();
    Effect::new(move |_| {
        let a = set_labels.value().get().is_some_and(|r| r.is_ok());
        let b = add_override.value().get().is_some_and(|r| r.is_ok());
        let c = delete_override.value().get().is_some_and(|r| r.is_ok());
        let d = judge.value().get().is_some_and(|r| r.is_ok());
        if a || b || c || d {
            version.update(|v| *v += 1);
        }
        if b || c || d {
            if let Some(OverridesChanged(changed)) = page_overrides {
                changed.update(|v| *v += 1);
            }
        }
    });
    let errors = move || {
        [
            set_labels.value().get(),
            add_override.value().get(),
            judge.value().get(),
            delete_override.value().get(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|r| r.err())
        .next_back()
        .map(|e| view! { <ErrorBox message=e /> })
    };
    let answers = StoredValue::new(answers);
    let mounted = hydrated();
    view! {
        <section class="review-panel" data-testid="review-panel">
            <h2>"Review"</h2>
            {move || mounted.get().then(|| view! {
            <Transition fallback=|| view! { <p class="loading">"Loading review…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <ErrorBox message=e /> }.into_any(),
                        Ok(ReviewReply::ProblemReview(r)) => {
                            let current: Vec<String> = r.labels.iter().map(|l| l.label.clone()).collect();
                            let label_boxes = r.available_labels.iter().map(|d| {
                                let name = d.name.clone();
                                let on = current.contains(&name);
                                let current = current.clone();
                                let who = r.labels.iter().find(|l| l.label == name).map(|l| format!("{} · {}", l.set_by, when(&l.set_at)));
                                view! {
                                    <label class="label-choice" style=format!("--label: {}", d.colour)>
                                        <input type="checkbox" checked=on disabled=!r.can_comment data-testid="label-box" data-label=name.clone()
                                            on:change=move |_| {
                                                let mut next = current.clone();
                                                if on { next.retain(|l| *l != name); } else { next.push(name.clone()); }
                                                set_labels.dispatch(next);
                                            } />
                                        <span class="label-chip">{d.name.clone()}</span>
                                        {who.map(|w| view! { <span class="meta">{w}</span> })}
                                    </label>
                                }
                            }).collect_view();
                            let overrides = r.overrides.iter().map(|o| {
                                let id = o.id;
                                let what = match (&o.answer, o.rollout) {
                                    (Some(a), _) => format!("answer {a:?}"),
                                    (None, Some(r)) => format!("rollout {r}"),
                                    _ => String::new(),
                                };
                                view! {
                                    <li data-testid="override" data-verdict=o.verdict.clone()>
                                        <strong>{format!("{what} → {}", o.verdict)}</strong>
                                        " " <span class="meta">{format!("{} · {} · ", o.created_by, when(&o.created_at))}</span>
                                        <span class="reason">{o.reason.clone()}</span>
                                        {r.can_review.then(|| view! {
                                            " " <button type="button" class="link" on:click=move |_| { delete_override.dispatch(id); }>"Remove"</button>
                                        })}
                                    </li>
                                }
                            }).collect_view();
                            let can_review = r.can_review;
                            let can_judge = r.can_comment;
                            let judgements = r.judgements.clone();
                            let me = r.me.clone();
                            let blind = r.blind;
                            let overridden: Vec<(String, String)> = r.overrides.iter().filter_map(|o| Some((o.answer.clone()?, o.verdict.clone()))).collect();
                            let answer_rows = answers.get_value().into_iter().map(|(answer, correct)| {
                                let a1 = answer.clone();
                                let a2 = answer.clone();
                                let state = overridden.iter().find(|(a, _)| *a == answer).map(|(_, v)| v.clone());
                                let on_answer: Vec<&JudgementRow> = judgements.iter().filter(|j| j.answer.as_deref() == Some(answer.as_str())).collect();
                                let mine = on_answer.iter().find(|j| j.reviewer == me).map(|j| j.verdict.clone());
                                let others: Vec<String> = on_answer.iter().filter(|j| j.reviewer != me).map(|j| format!("{}: {}", j.reviewer, j.verdict)).collect();
                                let (j1, j2) = (answer.clone(), answer.clone());
                                view! {
                                    <tr data-testid="override-answer" data-answer=answer.clone()>
                                        <td><code>{answer.clone()}</code></td>
                                        <td>{if correct { "correct (verifier)" } else { "wrong (verifier)" }}</td>
                                        <td>{state.map(|v| format!("reviewed: {v}")).unwrap_or_default()}</td>
                                        <td data-testid="judgement-cell">
                                            {mine.clone().map(|v| view! { <span data-testid="my-judgement">{format!("you: {v}")}</span>" " })}
                                            {(!others.is_empty()).then(|| view! { <span class="meta" data-testid="other-judgements">{others.join(", ")}</span>" " })}
                                            {(blind && mine.is_some()).then(|| view! { <span class="meta">"(blind: others' judgements hidden)"</span>" " })}
                                            {can_judge.then(|| view! {
                                                <button type="button" class="link" data-testid="judge-correct" aria-pressed=if mine.as_deref() == Some("correct") { "true" } else { "false" } on:click=move |_| { judge.dispatch((j1.clone(), "correct")); }>"I judge correct"</button>
                                                " "
                                                <button type="button" class="link" data-testid="judge-wrong" aria-pressed=if mine.as_deref() == Some("wrong") { "true" } else { "false" } on:click=move |_| { judge.dispatch((j2.clone(), "wrong")); }>"I judge wrong"</button>
                                            })}
                                        </td>
                                        <td>{can_review.then(|| view! {
                                            <button type="button" data-testid="mark-correct" on:click=move |_| { add_override.dispatch((a1.clone(), "correct")); }>"Mark correct"</button>
                                            " "
                                            <button type="button" data-testid="mark-wrong" on:click=move |_| { add_override.dispatch((a2.clone(), "wrong")); }>"Mark wrong"</button>
                                        })}</td>
                                    </tr>
                                }
                            }).collect_view();
                            view! {
                                <div class="labels" data-testid="labels">
                                    <h3>"Labels"</h3>
                                    {label_boxes}
                                </div>
                                {r.assignee.clone().map(|a| view! { <p class="meta" data-testid="assignee">{format!("Assigned to {a}.")}</p> })}
                                <div class="overrides">
                                    <h3>"Verdicts: editors' overrides and reviewers' judgements"</h3>
                                    <p class="meta">
                                        "An editor's override decides an answer. Any reviewer may judge it independently; where every judgement agrees and no editor decided, that is the reviewers' verdict (counted like an override); where they differ it waits in the review queue. "
                                        <a href=format!("/experiments/{}/agreement", r.experiment)>"Agreement between reviewers"</a>
                                    </p>
                                    <ul data-testid="overrides">{overrides}</ul>
                                    {can_review.then(|| view! {
                                        <label class="reason-input">
                                            <span>"Reason (required)"</span>
                                            <input type="text" data-testid="override-reason" placeholder="e.g. 0.5 equals 1/2; the verifier missed it"
                                                prop:value=move || reason.get() on:input=move |ev| reason.set(event_target_value(&ev)) />
                                        </label>
                                    })}
                                    <table class="data-table compact"><tbody>{answer_rows}</tbody></table>
                                </div>
                            }
                            .into_any()
                        }
                        Ok(other) => view! { <ErrorBox message=unexpected(other) /> }.into_any(),
                    }
                })}
            </Transition>
            })}
            {errors}
            <h3>"Discussion"</h3>
            <ThreadsPanel
                slug=slug.clone()
                filter=ThreadFilter { problem: Some(problem), ..Default::default() }
                new_target=CommentTarget::Problem { problem }
                new_label="Comment on this problem"
                show_target=true
            />
        </section>
    }
}

// ---------- rollout page ----------

/// The rollout's threads and its tokens', with forms for the rollout and the selected token.
#[component]
pub fn RolloutReviewPanel(
    rollout: i64,
    #[prop(into)] experiment: Option<String>,
    pos: Option<i64>,
) -> impl IntoView {
    async fn experiment_of_rollout(
        given: Option<String>,
        rollout: i64,
    ) -> Result<Option<String>, String> {
        match given {
            Some(s) => Ok(Some(s)),
            None => match call(ReviewOp::RolloutExperiments { rollout }).await? {
                ReviewReply::Experiments(list) => Ok(list.into_iter().next()),
                _ => Ok(None),
            },
        }
    }
    let experiment_of =
        LocalResource::new(move || experiment_of_rollout(experiment.clone(), rollout));
    let mounted = hydrated();
    view! {
        <section class="review-panel" data-testid="rollout-discussion">
            <h2>"Discussion"</h2>
            {move || mounted.get().then(|| view! {
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match experiment_of.await {
                        Err(e) => view! { <ErrorBox message=e /> }.into_any(),
                        Ok(None) => view! { <p class="meta">"This rollout is in no experiment you can read: nothing to discuss here."</p> }.into_any(),
                        Ok(Some(slug)) => {
                            let (target, label) = match pos {
                                Some(index) => (CommentTarget::Token { rollout, index }, format!("Comment on token {index}")),
                                None => (CommentTarget::Rollout { rollout }, "Comment on this rollout".to_owned()),
                            };
                            view! {
                                <p class="meta">{format!("In experiment {slug}. Select a token in the heatmap to comment on it.")}</p>
                                <ThreadsPanel slug=slug filter=ThreadFilter { rollout: Some(rollout), ..Default::default() }
                                    new_target=target new_label=label show_target=true />
                            }
                            .into_any()
                        }
                    }
                })}
            </Suspense>
            })}
        </section>
    }
}

// ---------- share button ----------

/// "Share read-only link": a link to exactly this view for someone without an account.
/// A read-only text field with a "Copy" button (the browser's clipboard; the field stays
/// selectable where the clipboard is not available).
#[component]
pub fn CopyField(value: Signal<String>, testid: &'static str) -> impl IntoView {
    let copied = RwSignal::new(false);
    let copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            let text = value.get_untracked();
            if let Some(w) = web_sys::window() {
                let _ = w.navigator().clipboard().write_text(&text);
                copied.set(true);
            }
        }
    };
    view! {
        <span class="copy-field">
            <input type="text" readonly data-testid=testid prop:value=move || value.get() size="60" />
            " "
            <button type="button" data-testid=format!("{testid}-copy") on:click=copy>
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
        </span>
    }
}

#[component]
pub fn ShareButton(slug: String) -> impl IntoView {
    let open = RwSignal::new(false);
    let expires = RwSignal::new(String::from("604800"));
    let location = use_location();
    let create = Action::new(move |slug: &String| {
        // The router's `search` has no leading '?'.
        let search = location.search.get_untracked();
        let search = search.trim_start_matches('?');
        let path = if search.is_empty() {
            location.pathname.get_untracked()
        } else {
            format!("{}?{search}", location.pathname.get_untracked())
        };
        let expires_in = expires.get_untracked().parse::<u64>().ok();
        let op = ReviewOp::CreateShareLink {
            slug: slug.clone(),
            path,
            expires_in,
        };
        async move { call(op).await }
    });
    let session = crate::components::layout::use_session();
    // Share-link visitors and signed-out readers see no button; the server decides the rest.
    let visible = move || {
        session
            .get()
            .and_then(|s| s.ok())
            .is_some_and(|s| s.local_mode || s.user.is_some())
    };
    let local = move || {
        session
            .get()
            .and_then(|s| s.ok())
            .is_some_and(|s| s.local_mode)
    };
    view! {
        <div class="share" data-testid="share">
            // The session is a resource: read it inside Suspense, as the header does.
            <Suspense fallback=|| ()>
                {move || visible().then(|| view! {
                    <button type="button" class="link" data-testid="share-open" on:click=move |_| open.update(|o| *o = !*o)>
                        {if local() { "Share…" } else { "Share read-only link" }}
                    </button>
                })}
            </Suspense>
            // Local mode has no accounts: a link to this loopback server is neither shareable nor
            // read-only, so nothing is created; say so plainly.
            <Show when=move || open.get() && local() fallback=|| ()>
                <p class="notice" role="note" data-testid="share-local">
                    <strong>"Local mode: no read-only links. "</strong>
                    "This server listens on this machine only and has no accounts: anyone who can open its address has every right, and nobody else can reach it. To share a read-only view, run caplens in team mode (accounts, a public URL; " <a href="/docs/deploy">"deploying caplens"</a> ") and create the link there. This view's address, for use on this machine: "
                    <CopyField value=Signal::derive(move || location.pathname.get() + &{ let s = location.search.get(); if s.is_empty() || s.starts_with('?') { s } else { format!("?{s}") } }) testid="share-permalink" />
                </p>
            </Show>
            <Show when=move || open.get() && !local() fallback=|| ()>
                <form class="inline-form" on:submit={
                    let slug = slug.clone();
                    move |ev| {
                        ev.prevent_default();
                        create.dispatch(slug.clone());
                    }
                }>
                    <label>
                        <span>"Expires"</span>
                        <select data-testid="share-expires" on:change=move |ev| expires.set(event_target_value(&ev))>
                            <option value="86400">"in a day"</option>
                            <option value="604800" selected>"in a week"</option>
                            <option value="2592000">"in 30 days"</option>
                            <option value="">"never"</option>
                        </select>
                    </label>
                    <button type="submit" data-testid="share-create">"Create link"</button>
                </form>
                {move || create.value().get().map(|r| match r {
                    Ok(ReviewReply::ShareLink(link)) => view! {
                        <p class="notice">
                            "Anyone with this link sees this view of the experiment, read-only"
                            {link.expires_at.clone().map(|e| format!(", until {}", when(&e)))}
                            ". Revoke it in the experiment's settings: "
                            <CopyField value=Signal::stored(link.url.clone()) testid="share-url" />
                        </p>
                    }.into_any(),
                    Ok(other) => view! { <ErrorBox message=unexpected(other) /> }.into_any(),
                    Err(e) => view! { <ErrorBox message=e /> }.into_any(),
                })}
            </Show>
        </div>
    }
}

/// The project page's review settings: labels (with a form for admins) and whether viewers may
/// comment and label.
#[component]
pub fn ProjectReviewPanel(project: String) -> impl IntoView {
    let version = RwSignal::new(0u32);
    let data = {
        let project = project.clone();
        LocalResource::new(move || {
            version.track();
            let op = ReviewOp::ProjectReview {
                project: project.clone(),
            };
            async move { call(op).await }
        })
    };
    let act = Action::new(move |op: &ReviewOp| {
        let op = op.clone();
        async move { call(op).await }
    });
    Effect::new(move |_| {
        if let Some(Ok(_)) = act.value().get() {
            version.update(|v| *v += 1);
        }
    });
    let name = RwSignal::new(String::new());
    let colour = RwSignal::new(String::from("#56B4E9"));
    let mounted = hydrated();
    let project = StoredValue::new(project);
    view! {
        <section data-testid="project-review">
            <h2>"Review and engines"</h2>
            {move || act.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=e /> })}
            {move || mounted.get().then(|| view! {
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match data.await {
                            Ok(ReviewReply::ProjectReview(r)) => {
                                let allowed = r.viewers_comment;
                                view! {
                                    <p>"Labels: " {r.labels.iter().map(|l| view! {
                                        <span class="label-chip" style=format!("--label: {}", l.colour) data-testid="project-label">{l.name.clone()}</span>
                                    }).collect_view()}</p>
                                    <label class="label-choice">
                                        <input type="checkbox" checked=allowed disabled=!r.can_administer data-testid="viewers-comment"
                                            on:change=move |_| { act.dispatch(ReviewOp::SetViewersComment { project: project.get_value(), allowed: !allowed }); } />
                                        "Viewers may comment and label problems"
                                    </label>
                                    <label class="label-choice">
                                        <input type="checkbox" checked=r.engine_admins disabled=!r.can_set_engine_admins data-testid="engine-admins"
                                            on:change={
                                                let allowed = r.engine_admins;
                                                move |_| { act.dispatch(ReviewOp::SetEngineAdmins { project: project.get_value(), allowed: !allowed }); }
                                            } />
                                        "Project admins may add and change its engines (a site admin decides: an engine makes the server open connections)"
                                    </label>
                                    {r.can_administer.then(|| view! {
                                        <form class="inline-form" data-testid="add-label" on:submit=move |ev| {
                                            ev.prevent_default();
                                            act.dispatch(ReviewOp::AddLabel { project: project.get_value(), name: name.get_untracked(), colour: colour.get_untracked() });
                                        }>
                                            <label><span>"New label"</span>
                                                <input type="text" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) /></label>
                                            <label><span>"Colour"</span>
                                                <input type="color" prop:value=move || colour.get() on:input=move |ev| colour.set(event_target_value(&ev)) /></label>
                                            <button type="submit">"Add label"</button>
                                        </form>
                                    })}
                                }
                                .into_any()
                            }
                            Ok(_) => ().into_any(),
                            Err(e) => view! { <ErrorBox message=e /> }.into_any(),
                        }
                    })}
                </Transition>
            })}
        </section>
    }
}
