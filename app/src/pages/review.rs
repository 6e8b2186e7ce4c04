//! Team review pages (issue 15): the review queue, the Discussion tab, the inbox, and
//! experiment settings with share links. The panels they share with other pages (threads,
//! comment boxes, the share button) are components (`components/review.rs`).

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::components::analysis::{ExperimentMissing, ViewTabs};
use crate::components::common::{ErrorBox, PageTitle};
use crate::components::review::*;
use crate::review::*;
use crate::urlstate::Query;

// ---------- pages ----------

fn slug_param() -> impl Fn() -> String + Copy + Send + Sync + 'static {
    let params = use_params_map();
    move || params.read().get("slug").unwrap_or_default()
}

/// `/experiments/:slug/discussion`: every thread of the experiment, newest activity first.
#[component]
pub fn DiscussionPage() -> impl IntoView {
    let slug = slug_param();
    let query = use_query_map();
    let filter = move || {
        query.with(|q| ThreadFilter {
            unresolved: q.get("unresolved").as_deref() == Some("1"),
            mentions_me: q.get("mentions").as_deref() == Some("1"),
            label: q.get("label").filter(|l| !l.is_empty()),
            ..Default::default()
        })
    };
    // Whether the experiment exists for this reader (404 otherwise), before the browser-side
    // thread list loads.
    let exists = Resource::new(slug, |slug| async move {
        crate::api::get_experiment(slug)
            .await
            .map(|e| e.map(|e| e.summary.name))
    });
    view! {
        {move || view! { <PageTitle text=format!("Discussion · {}", slug()) /> }}
        <Suspense fallback=|| ()>
        {move || Suspend::new(async move {
            let slug = slug();
            let name = match exists.await {
                Err(e) => return view! { <ErrorBox message=e.to_string() /> }.into_any(),
                Ok(None) => return view! { <ExperimentMissing slug /> }.into_any(),
                Ok(Some(name)) => name,
            };
            let f = filter();
            let base = format!("/experiments/{slug}/discussion");
            let link = |unresolved: bool, mentions: bool| {
                Query::new().set("unresolved", if unresolved { "1" } else { "" }).set("mentions", if mentions { "1" } else { "" }).href(&base)
            };
            view! {
                <h1>{name}</h1>
                <ViewTabs slug=slug.clone() current="discussion" />
                <h2>"Discussion"</h2>
                <nav class="filters" aria-label="Filter threads">
                    <a href=link(false, false) class:on=!f.unresolved && !f.mentions_me>"All threads"</a>
                    <a href=link(true, false) class:on=f.unresolved data-testid="filter-unresolved">"Unresolved"</a>
                    <a href=link(false, true) class:on=f.mentions_me data-testid="filter-mentions">"Mentions me"</a>
                    {BUILTIN_LABELS.iter().map(|(label, colour)| {
                        let on = f.label.as_deref() == Some(*label);
                        let href = Query::new().set("label", if on { "" } else { *label }).href(&base);
                        view! { <a href=href class="label-chip" class:on=on style=format!("--label: {colour}")>{*label}</a> }
                    }).collect_view()}
                </nav>
                <ThreadsPanel slug=slug.clone() filter=f new_target=CommentTarget::Experiment new_label="Start a thread on the experiment" show_target=true />
            }
            .into_any()
        })}
        </Suspense>
    }
}

/// `/experiments/:slug/agreement` (issue 27): how far the experiment's reviewers agree —
/// Cohen's κ per pair over the targets both judged, Fleiss' κ over all, and the disagreements
/// an editor still has to decide.
#[component]
pub fn AgreementPage() -> impl IntoView {
    let slug = slug_param();
    let data = Resource::new(slug, |slug| call(ReviewOp::Agreement { slug }));
    view! {
        {move || view! { <PageTitle text=format!("Agreement · {}", slug()) /> }}
        <Suspense fallback=|| view! { <p class="loading">"Comparing judgements…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e /> }.into_any(),
                    Ok(ReviewReply::Agreement(a)) => view! { <AgreementBody a /> }.into_any(),
                    Ok(ReviewReply::NotFound) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                    Ok(other) => view! { <ErrorBox message=unexpected(other) /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn kappa_text(k: Option<f64>) -> String {
    k.map_or("—".to_string(), |k| format!("{k:.3}"))
}

#[component]
fn AgreementBody(a: AgreementView) -> impl IntoView {
    let slug = a.experiment.clone();
    let pairs = a
        .agreement
        .pairs
        .iter()
        .map(|p| {
            view! {
                <tr data-testid="agreement-pair">
                    <th scope="row">{format!("{} · {}", p.reviewers[0], p.reviewers[1])}</th>
                    <td class="num">{p.items}</td>
                    <td class="num">{p.agreed}</td>
                    <td class="num" data-testid="pair-kappa">{kappa_text(p.kappa)}</td>
                </tr>
            }
        })
        .collect_view();
    let disagreements = a
        .disagreements
        .iter()
        .map(|d| {
            let what = match (&d.answer, d.rollout) {
                (Some(answer), _) => format!("answer “{answer}”"),
                (None, Some(r)) => format!("rollout {r}"),
                _ => String::new(),
            };
            let who = if d.judgements.is_empty() {
                format!("{} correct, {} wrong", d.correct, d.wrong)
            } else {
                d.judgements.iter().map(|(r, v)| format!("{r}: {v}")).collect::<Vec<_>>().join(", ")
            };
            let href = Query::new().set("experiment", slug.clone()).href(&format!("/problems/{}", d.problem_id));
            view! {
                <li data-testid="disagreement">
                    <a href=href>{d.problem.clone()}</a>" · "{what}" · "{who}
                    {d.decided.then(|| view! { " " <span class="badge">"decided by an editor"</span> })}
                </li>
            }
        })
        .collect_view();
    view! {
        <h1>{a.experiment_name.clone()}</h1>
        <ViewTabs slug=slug.clone() current="review" />
        <h2>"Agreement between reviewers"</h2>
        <p class="lede">
            {format!("{} judgements by {} reviewers; {} answers or rollouts judged by two or more. ", a.judgements, a.reviewers, a.agreement.items)}
            {a.blind.then_some("Judging is blind in this project: who said what stays hidden until an editor decides. ")}
        </p>
        <p data-testid="fleiss">
            <strong>"Fleiss' κ over all reviewers: "</strong>
            <span data-testid="fleiss-kappa">{kappa_text(a.agreement.fleiss_kappa)}</span>
            {format!(" (n = {} items)", a.agreement.items)}
        </p>
        <p class="meta">
            "κ corrects agreement for chance: 1 is perfect agreement, 0 what chance alone gives. "
            "Cohen's κ compares two reviewers over the items both judged; Fleiss' κ all reviewers over items judged at least twice (" <a href="/docs/review#reviewers-who-can-disagree">"reviewers who can disagree"</a> ")."
        </p>
        <div class="table-wrap">
            <table class="data-table" data-testid="agreement-pairs">
                <thead><tr><th scope="col">"Reviewers"</th><th scope="col" class="num">"Items both judged"</th><th scope="col" class="num">"Agreed"</th><th scope="col" class="num">"Cohen's κ"</th></tr></thead>
                <tbody>{pairs}</tbody>
            </table>
        </div>
        <h3>"Disagreements"</h3>
        {if a.disagreements.is_empty() {
            view! { <p class="empty">"None: every item judged twice or more got the same verdict."</p> }.into_any()
        } else {
            view! { <ul data-testid="disagreements">{disagreements}</ul> }.into_any()
        }}
    }
}

/// `/inbox`: threads that mention me, and replies to my comments.
#[component]
pub fn InboxPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let data = Resource::new(move || version.get(), |_| call(ReviewOp::Inbox));
    view! {
        <PageTitle text="Inbox" />
        <h1>"Inbox"</h1>
        <p class="lede">"Threads that mention you, and replies to your comments, newest first."</p>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e /> }.into_any(),
                    Ok(ReviewReply::Inbox(list)) if list.is_empty() => view! { <p class="meta" data-testid="inbox-empty">"Nothing for you yet."</p> }.into_any(),
                    Ok(ReviewReply::Inbox(list)) => list.into_iter().map(|e| view! {
                        <div class="inbox-entry" data-testid="inbox-entry" data-why=e.why.clone()>
                            <p class="meta">{if e.why == "mention" { "You were mentioned" } else { "A reply to your comment" }}
                                {format!(" · {}", e.thread.experiment)}</p>
                            <ThreadCard thread=e.thread version show_target=true />
                        </div>
                    }).collect_view().into_any(),
                    Ok(other) => view! { <ErrorBox message=unexpected(other) /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// `/experiments/:slug/review`: the review queue.
#[component]
pub fn ReviewQueuePage() -> impl IntoView {
    let slug = slug_param();
    let query = use_query_map();
    let mine = move || query.with(|q| q.get("assigned").as_deref() == Some("me"));
    let reason = move || query.with(|q| q.get("reason").filter(|r| !r.is_empty()));
    let share = move || {
        query.with(|q| {
            q.get("share")
                .and_then(|s| s.parse::<f64>().ok())
                .map(|p| p / 100.0)
        })
    };
    let version = RwSignal::new(0u32);
    let data = Resource::new(
        move || (slug(), mine(), share(), version.get()),
        |(slug, mine, min_share, _)| {
            call(ReviewOp::Queue {
                slug,
                min_share,
                mine,
            })
        },
    );
    let assign = Action::new(move |(slug, problem, user): &(String, i64, String)| {
        let op = ReviewOp::Assign {
            slug: slug.clone(),
            problem: *problem,
            user: Some(user.clone()).filter(|u| !u.is_empty()),
        };
        async move { call(op).await }
    });
    Effect::new(move |_| {
        if assign.value().get().is_some_and(|r| r.is_ok()) {
            version.update(|v| *v += 1);
        }
    });
    view! {
        {move || view! { <PageTitle text=format!("Review queue · {}", slug()) /> }}
        {move || assign.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=e /> })}
        <Transition fallback=|| view! { <p class="loading">"Building the queue…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e /> }.into_any(),
                    Ok(ReviewReply::Queue(q)) => view! { <QueueTable q assign mine=mine() reason=reason() /> }.into_any(),
                    Ok(ReviewReply::NotFound) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                    Ok(other) => view! { <ErrorBox message=unexpected(other) /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn QueueTable(
    q: ReviewQueueView,
    assign: Action<(String, i64, String), Result<ReviewReply, String>>,
    mine: bool,
    reason: Option<String>,
) -> impl IntoView {
    let base = format!("/experiments/{}/review", q.experiment);
    // The reasons present, for the filter; then only the entries with the chosen one.
    let mut kinds: Vec<String> = q
        .entries
        .iter()
        .flat_map(|e| e.kinds.iter().cloned())
        .collect();
    kinds.sort();
    kinds.dedup();
    let reason_links = {
        let base = base.clone();
        let mut choices: Vec<Option<String>> = vec![None];
        choices.extend(kinds.into_iter().map(Some));
        choices
            .into_iter()
            .map(|k| {
                let on = k == reason;
                let href = Query::new()
                    .set("assigned", if mine { "me" } else { "" })
                    .set("reason", k.clone().unwrap_or_default())
                    .href(&base);
                let text = k.as_deref().map_or("every reason", queue_reason_title);
                view! { <a href=href class:on=on data-testid=format!("reason-{}", k.as_deref().unwrap_or("all"))>{text}</a> }
            })
            .collect_view()
    };
    let mut q = q;
    if let Some(r) = &reason {
        q.entries.retain(|e| e.kinds.contains(r));
    }
    let pct = if q.total > 0 {
        100.0 * q.reviewed as f64 / q.total as f64
    } else {
        100.0
    };
    // Problems opened from the queue keep it (and its reason filter), for previous / next.
    let from = crate::urlstate::encode_component(
        &crate::views::TriageList::Queue {
            reason: reason.clone(),
        }
        .encode(),
    );
    let rows = q
        .entries
        .iter()
        .map(|e| {
            let slug = q.experiment.clone();
            let problem = e.problem_id;
            let members = q.members.clone();
            let assignee = e.assignee.clone().unwrap_or_default();
            let labels = e.labels.iter().map(|l| view! { <span class="label-chip" style=format!("--label: {}", l.colour)>{l.label.clone()}</span> }).collect_view();
            view! {
                <tr data-testid="queue-entry" data-problem-id=problem data-reviewed=e.reviewed.to_string() data-kinds=e.kinds.join(" ")>
                    <th scope="row"><a href=format!("{}&from={from}", e.link) data-testid="queue-link">{e.key.clone()}</a>
                        {(e.comments > 0).then(|| view! { " " <span class="badge comments" title="comments" data-testid="comment-badge">{format!("💬 {}", e.comments)}</span> })}
                    </th>
                    <td class="prompt-cell"><crate::components::detail::MathText text=e.prompt.clone() class="prompt-clamp" /></td>
                    <td><ul class="reasons">{e.reasons.iter().map(|r| view! { <li>{r.clone()}</li> }).collect_view()}</ul></td>
                    <td>{if e.reviewed { "reviewed" } else { "to review" }} " " {labels}
                        {(e.overrides > 0).then(|| format!(" · {} override{}", e.overrides, if e.overrides == 1 { "" } else { "s" }))}</td>
                    <td>{if q.can_review && !members.is_empty() {
                        view! {
                            <select data-testid="assign" on:change=move |ev| { assign.dispatch((slug.clone(), problem, event_target_value(&ev))); }>
                                <option value="" selected=assignee.is_empty()>"nobody"</option>
                                {members.into_iter().map(|m| { let sel = m == assignee; view! { <option value=m.clone() selected=sel>{m.clone()}</option> } }).collect_view()}
                            </select>
                        }.into_any()
                    } else {
                        view! { <span>{if assignee.is_empty() { "—".to_owned() } else { assignee }}</span> }.into_any()
                    }}</td>
                </tr>
            }
        })
        .collect_view();
    let empty = q.entries.is_empty();
    view! {
        <h1>{q.experiment_name.clone()}</h1>
        <ViewTabs slug=q.experiment.clone() current="review" />
        <h2>"Review queue"</h2>
        <p class="progress-line" data-testid="queue-progress">
            <strong>{format!("{} of {} reviewed", q.reviewed, q.total)}</strong>
            <progress max="100" value=format!("{pct:.0}")></progress>
        </p>
        <p class="meta">
            "Problems newly unsolvable in a child model (its parent solved them at k = n), problems where one wrong answer is given by at least "
            {format!("{:.0} %", q.min_share * 100.0)}
            " of a run's rollouts (the reference may be wrong), problems the verifier could not decide, where caplens and the file disagree, where the extracted answer is missing or not maths, and where reviewers' judgements differ. A label or a verdict override marks a problem reviewed. "
            <a href=format!("/experiments/{}/agreement", q.experiment) data-testid="agreement-link">"Agreement between reviewers"</a>
        </p>
        <nav class="filters">
            <a href=base.clone() class:on=!mine>"All"</a>
            <a href=format!("{base}?assigned=me") class:on=mine data-testid="filter-mine">"Assigned to me"</a>
        </nav>
        <nav class="filters" aria-label="Filter by reason" data-testid="reason-filter">{reason_links}</nav>
        {if empty {
            view! { <p class="meta" data-testid="queue-empty">"Nothing to review here."</p> }.into_any()
        } else {
            view! {
                <div class="table-wrap">
                    <table class="data-table" data-testid="queue">
                        <thead><tr><th>"Problem"</th><th>"Prompt"</th><th>"Why"</th><th>"State"</th><th>"Assigned to"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
            }.into_any()
        }}
    }
}

/// A queue reason's name in words.
fn queue_reason_title(kind: &str) -> &'static str {
    match kind {
        "newly-unsolvable" => "newly unsolvable",
        "popular-wrong-answer" => "popular wrong answer",
        "unverifiable" => "verifier could not decide",
        "verdicts-disagree" => "caplens and the file disagree",
        "not-maths" => "answer missing or not maths",
        "reviewers-disagree" => "reviewers disagree",
        _ => "other",
    }
}

/// `/experiments/:slug/settings`: rename, describe, move, share links, delete.
#[component]
pub fn ExperimentSettingsPage() -> impl IntoView {
    let slug = slug_param();
    let version = RwSignal::new(0u32);
    let data = Resource::new(
        move || (slug(), version.get()),
        |(slug, _)| call(ReviewOp::Settings { slug }),
    );
    view! {
        {move || view! { <PageTitle text=format!("Settings · {}", slug()) /> }}
        <h1>"Experiment settings"</h1>
        <ViewTabs slug=slug() current="settings" />
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e /> }.into_any(),
                    Ok(ReviewReply::Settings(s)) => view! { <SettingsForms s version /> }.into_any(),
                    Ok(ReviewReply::NotFound) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                    Ok(other) => view! { <ErrorBox message=unexpected(other) /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn SettingsForms(s: ExperimentSettings, version: RwSignal<u32>) -> impl IntoView {
    let slug = s.slug.clone();
    let name = RwSignal::new(s.name.clone());
    let description = RwSignal::new(s.description.clone());
    let target = RwSignal::new(s.project.clone().unwrap_or_default());
    let confirm = RwSignal::new(String::new());
    let act = Action::new(move |op: &ReviewOp| {
        let op = op.clone();
        async move { call(op).await }
    });
    let deleted = RwSignal::new(false);
    let navigate = leptos_router::hooks::use_navigate();
    let deleted_slug = slug.clone();
    Effect::new(move |_| {
        if let Some(Ok(_)) = act.value().get() {
            if deleted.get_untracked() {
                // The experiment is gone: re-reading its settings would only say "not found".
                navigate(
                    &format!(
                        "/experiments?deleted={}",
                        crate::urlstate::encode_component(&deleted_slug)
                    ),
                    Default::default(),
                );
            } else {
                version.update(|v| *v += 1);
            }
        }
    });
    let links = s
        .share_links
        .iter()
        .map(|l| {
            let id = l.id;
            let active = l.state == "active";
            view! {
                <tr data-testid="share-link" data-state=l.state.clone()>
                    <td><code>{l.path.clone()}</code></td>
                    <td>{format!("{} · {}", l.created_by, when(&l.created_at))}</td>
                    <td>{l.expires_at.as_deref().map(when).unwrap_or_else(|| "never".into())}</td>
                    <td>{format!("{} time{}", l.opened, if l.opened == 1 { "" } else { "s" })}</td>
                    <td>{l.state.clone()}</td>
                    <td>{active.then(|| view! {
                        <button type="button" data-testid="share-revoke" on:click=move |_| { act.dispatch(ReviewOp::RevokeShareLink { id }); }>"Revoke"</button>
                    })}</td>
                </tr>
            }
        })
        .collect_view();
    let (s1, s2, s3) = (slug.clone(), slug.clone(), slug.clone());
    view! {
        {move || act.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=e /> })}
        <section>
            <h2>"Name and description"</h2>
            <form class="stacked-form" on:submit=move |ev| {
                ev.prevent_default();
                act.dispatch(ReviewOp::UpdateExperiment { slug: s1.clone(), name: name.get_untracked(), description: description.get_untracked() });
            }>
                <label><span>"Name"</span><input type="text" data-testid="settings-name" disabled=!s.can_edit
                    prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) /></label>
                <label><span>"Description"</span><textarea rows="3" disabled=!s.can_edit
                    prop:value=move || description.get() on:input=move |ev| description.set(event_target_value(&ev))></textarea></label>
                {s.can_edit.then(|| view! { <button type="submit" class="primary" data-testid="settings-save">"Save"</button> })}
            </form>
        </section>
        <section>
            <h2>"Review data"</h2>
            <p class="meta">
                "Labels and verdict overrides, to re-use in another experiment over the same problems ("
                <code>{"POST /api/v1/experiments/{slug}/review".to_string()}</code>"): "
                <a href=format!("/api/v1/experiments/{slug}/review.jsonl") rel="external" data-testid="review-export-jsonl">"JSON Lines"</a>
                " · "
                <a href=format!("/api/v1/experiments/{slug}/review.csv") rel="external" data-testid="review-export-csv">"CSV"</a>
            </p>
        </section>
        <section>
            <h2>"Share links"</h2>
            <p class="meta">"Read-only links to one view of this experiment for people without an account. Make one with “Share read-only link” on any view."</p>
            {if s.share_links.is_empty() {
                view! { <p class="meta">"No share links."</p> }.into_any()
            } else {
                view! {
                    <table class="data-table" data-testid="share-links">
                        <thead><tr><th>"View"</th><th>"Made by"</th><th>"Expires"</th><th>"Opened"</th><th>"State"</th><th></th></tr></thead>
                        <tbody>{links}</tbody>
                    </table>
                }.into_any()
            }}
        </section>
        {s.can_administer.then(|| view! {
            <section>
                <h2>"Move to another project"</h2>
                <form class="inline-form" on:submit=move |ev| {
                    ev.prevent_default();
                    act.dispatch(ReviewOp::MoveExperiment { slug: s2.clone(), project: target.get_untracked() });
                }>
                    <select data-testid="settings-project" on:change=move |ev| target.set(event_target_value(&ev))>
                        {s.projects.iter().map(|p| { let sel = Some(p) == s.project.as_ref(); view! { <option value=p.clone() selected=sel>{p.clone()}</option> } }).collect_view()}
                    </select>
                    <button type="submit">"Move"</button>
                </form>
            </section>
            <section class="danger">
                <h2>"Delete"</h2>
                <p>"Deletes the experiment, its comments, labels, overrides and share links, and the runs no other experiment holds. This cannot be undone."</p>
                <form class="inline-form" on:submit=move |ev| {
                    ev.prevent_default();
                    deleted.set(true);
                    act.dispatch(ReviewOp::DeleteExperiment { slug: s3.clone(), confirm: confirm.get_untracked() });
                }>
                    <label><span>{format!("Type {} to confirm", slug)}</span>
                        <input type="text" data-testid="settings-confirm" prop:value=move || confirm.get() on:input=move |ev| confirm.set(event_target_value(&ev)) /></label>
                    <button type="submit" class="danger" data-testid="settings-delete">"Delete experiment"</button>
                </form>
            </section>
        })}
    }
}
