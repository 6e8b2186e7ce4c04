//! One problem (`/problems/:id`): prompt and reference answer with maths, per run c/n and pass@k,
//! answer clusters, and the selected run's rollouts, paginated and expandable.
//!
//! View state in the query string: `runs=1,2` (restrict to runs), `run=` (the run whose rollouts
//! are listed), `answer=` (only rollouts with this normalised answer), `page=`, `open=` (expanded
//! rollout ids). Every control is a plain link to the new URL, so it works without JavaScript and
//! each state is a permalink.

use crate::views::{ProblemNeighbours, TriageList};
use leptos::prelude::*;

use crate::components::glossary::{Gloss, Term};
use leptos_router::{hooks::use_params_map, hooks::use_query_map, params::ParamsMap};

use crate::{
    api::{get_problem, get_problem_neighbours, get_problem_rollouts},
    components::{
        common::{percent, ErrorBox, PageTitle, StageBadge},
        detail::{fixed, href, parse_ids, set_not_found, MathAnswer, MathText},
    },
    model::{ProblemDetail, ProblemRunStats, RolloutList, RolloutListQuery, RolloutRow},
    urlstate::join_ids,
};

/// The problem page's view state, as in its URL.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProblemQuery {
    pub runs: Vec<i64>,
    pub run: Option<i64>,
    pub answer: Option<String>,
    pub page: i64,
    pub open: Vec<i64>,
    /// The experiment the problem is reviewed in (issue 15): labels, overrides, discussion.
    pub experiment: Option<String>,
    /// Leave the experiment's verdict overrides out (`reviewed=0`; issue 27).
    pub unreviewed: bool,
    /// The problems-view list this problem was opened from (its query string): triage's
    /// previous / next and the way back.
    pub from: Option<String>,
}

impl ProblemQuery {
    pub fn from_map(q: &ParamsMap) -> Self {
        ProblemQuery {
            runs: parse_ids(q.get("runs")),
            run: q.get("run").and_then(|r| r.trim().parse().ok()),
            answer: q.get("answer").filter(|a| !a.is_empty()),
            page: q
                .get("page")
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(1)
                .max(1),
            open: parse_ids(q.get("open")),
            experiment: q.get("experiment").filter(|e| !e.is_empty()),
            unreviewed: q.get("reviewed").is_some_and(|r| r == "0"),
            from: q.get("from").filter(|f| !f.is_empty()),
        }
    }

    /// The URL of this state for problem `id`.
    pub fn href(&self, id: i64) -> String {
        href(
            &format!("/problems/{id}"),
            &[
                ("runs", join_ids(&self.runs)),
                ("run", self.run.map(|r| r.to_string()).unwrap_or_default()),
                ("answer", self.answer.clone().unwrap_or_default()),
                (
                    "page",
                    if self.page > 1 {
                        self.page.to_string()
                    } else {
                        String::new()
                    },
                ),
                ("open", join_ids(&self.open)),
                ("experiment", self.experiment.clone().unwrap_or_default()),
                (
                    "reviewed",
                    if self.unreviewed {
                        "0".into()
                    } else {
                        String::new()
                    },
                ),
                ("from", self.from.clone().unwrap_or_default()),
            ],
        )
    }

    /// The same state with rollout `id` expanded or collapsed.
    pub fn toggled(&self, id: i64) -> Self {
        let mut next = self.clone();
        if next.open.contains(&id) {
            next.open.retain(|&o| o != id);
        } else {
            next.open.push(id);
        }
        next
    }

    /// The rollouts of `run`, filtered by `answer`, from page 1, nothing expanded.
    pub fn listing(&self, run: i64, answer: Option<String>) -> Self {
        ProblemQuery {
            runs: self.runs.clone(),
            run: Some(run),
            answer,
            page: 1,
            open: Vec::new(),
            experiment: self.experiment.clone(),
            unreviewed: self.unreviewed,
            from: self.from.clone(),
        }
    }
}

#[component]
pub fn ProblemPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok());
    let state = Memo::new(move |_| ProblemQuery::from_map(&query.read()));
    // Bumped when a verdict override changes here: the numbers are read again.
    let overrides_changed = RwSignal::new(0u32);
    provide_context(crate::components::review::OverridesChanged(
        overrides_changed,
    ));
    // The counter is part of the sources' values: a resource refetches when its source changes.
    let runs_filter = move || {
        let s = state.read();
        let runs = s.runs.clone();
        (
            (!runs.is_empty()).then_some(runs),
            s.experiment.clone(),
            s.unreviewed,
            overrides_changed.get(),
        )
    };
    // Both resources are created here, once: resources created inside a Suspense's content are
    // re-created on every server render pass, and their ids then no longer match the browser's.
    let detail = Resource::new(
        move || (id(), runs_filter()),
        |(id, (runs, experiment, unreviewed, _))| async move {
            match id {
                Some(id) => get_problem(id, runs, experiment, unreviewed).await,
                None => Ok(None),
            }
        },
    );
    let list = Resource::new(
        move || {
            let changed = overrides_changed.get();
            let s = state.get();
            let query = RolloutListQuery {
                runs: s.runs,
                run: s.run,
                page: s.page,
                answer: s.answer,
                open: s.open,
                experiment: s.experiment,
                unreviewed: s.unreviewed,
            };
            (id(), query, changed)
        },
        |(id, query, _)| async move {
            match id {
                Some(id) => get_problem_rollouts(id, query).await.map(Some),
                None => Ok(None),
            }
        },
    );
    // Comment counts of the experiment under review (badges on rollout rows).
    let counts = Resource::new(
        move || state.read().experiment.clone(),
        |slug| async move {
            match slug {
                Some(slug) => {
                    match crate::api::review(crate::review::ReviewOp::CommentCounts { slug }).await
                    {
                        Ok(crate::review::ReviewReply::CommentCounts(c)) => c,
                        _ => Default::default(),
                    }
                }
                None => Default::default(),
            }
        },
    );
    provide_context(CommentCountsResource(counts));
    // The list this problem was opened from (triage): its place, previous and next.
    let neighbours = Resource::new(
        move || {
            let s = state.read();
            (id(), s.experiment.clone(), s.from.clone())
        },
        |(id, experiment, from)| async move {
            match (id, experiment, from) {
                (Some(id), Some(slug), Some(from)) => {
                    get_problem_neighbours(slug, TriageList::parse(&from), id)
                        .await
                        .ok()
                        .flatten()
                }
                _ => None,
            }
        },
    );
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let n = neighbours.await;
                let s = state.get_untracked();
                n.map(|n| view! { <TriageNav n state=s /> })
            })}
        </Suspense>
        <Suspense fallback=|| view! { <p class="loading">"Loading problem…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => {
                        set_not_found();
                        let raw = params.read_untracked().get("id").unwrap_or_default();
                        view! {
                            <PageTitle text="Problem not found" />
                            <h1>"Problem not found"</h1>
                            <p data-testid="problem-missing">
                                "There is no problem with id “" {raw}
                                "”. It may have been deleted with its dataset. "
                                <a href="/experiments">"All experiments"</a>
                            </p>
                        }
                            .into_any()
                    }
                    Ok(Some(detail)) => view! { <ProblemView detail state list /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

type ListResource = Resource<Result<Option<RolloutList>, ServerFnError>>;

/// The comment counts of the experiment the problem is reviewed in.
#[derive(Clone, Copy)]
struct CommentCountsResource(Resource<crate::review::CommentCounts>);

/// Breadcrumbs back to the list the problem was opened from, and its previous / next.
#[component]
fn TriageNav(n: ProblemNeighbours, state: ProblemQuery) -> impl IntoView {
    let slug = state.experiment.clone().unwrap_or_default();
    let list = TriageList::parse(&state.from.clone().unwrap_or_default());
    let list_href = list.href(&slug);
    let to =
        |(id, key): (i64, String), rel: &'static str, testid: &'static str, arrow_first: bool| {
            let q = ProblemQuery {
                runs: state.runs.clone(),
                experiment: state.experiment.clone(),
                unreviewed: state.unreviewed,
                from: state.from.clone(),
                page: 1,
                ..Default::default()
            };
            let text = if arrow_first {
                format!("← {key}")
            } else {
                format!("{key} →")
            };
            view! { <a href=q.href(id) rel=rel data-testid=testid>{text}</a> }
        };
    let position = match n.position {
        Some(p) => format!("{p} of {}", n.total),
        None => format!("not in this list ({} problems)", n.total),
    };
    view! {
        <nav class="triage" aria-label="Triage" data-testid="triage-nav">
            <ol class="breadcrumbs">
                <li><a href=format!("/experiments/{slug}")>{n.experiment_name.clone()}</a></li>
                <li><a href=list_href data-testid="triage-list">{list.title()}</a></li>
            </ol>
            <span class="triage-steps">
                {n.previous.map(|p| to(p, "prev", "triage-prev", true))}
                " "<span class="meta" data-testid="triage-position">{position}</span>" "
                {n.next.map(|p| to(p, "next", "triage-next", false))}
            </span>
        </nav>
    }
}

/// Says whether the numbers below include the experiment's verdict overrides, with the switch.
fn review_note(
    r: crate::model::ProblemReviewApplied,
    id: i64,
    state: Memo<ProblemQuery>,
) -> impl IntoView {
    (r.overrides > 0).then(|| {
        let text = if r.reviewed {
            format!(
                "Counted with the {} verdict override{} of experiment “{}” ({} rollout verdict{} changed): c/n, pass@k, answer marks and rollout marks below are the reviewed ones.",
                r.overrides,
                if r.overrides == 1 { "" } else { "s" },
                r.experiment,
                r.changed_rollouts,
                if r.changed_rollouts == 1 { "" } else { "s" },
            )
        } else {
            format!(
                "Counted without the {} verdict override{} of experiment “{}” (the stored verdicts).",
                r.overrides,
                if r.overrides == 1 { "" } else { "s" },
                r.experiment
            )
        };
        let switch_label = if r.reviewed { "Show the stored verdicts" } else { "Show with the overrides" };
        let unreviewed = r.reviewed;
        view! {
            <p class="notice" role="status" data-testid="problem-review-note">
                {text}" "
                <a href=move || ProblemQuery { unreviewed, page: 1, ..state.get() }.href(id)>{switch_label}</a>
            </p>
        }
    })
}

#[component]
fn ProblemView(
    detail: ProblemDetail,
    state: Memo<ProblemQuery>,
    list: ListResource,
) -> impl IntoView {
    let ProblemDetail {
        id,
        key,
        dataset,
        prompt,
        reference_answer,
        tags,
        runs,
        missing_runs,
        review,
    } = detail;
    let max_n = runs.iter().map(|r| r.n).max().unwrap_or(0).max(0) as u64;
    let ks: Vec<u64> = std::iter::successors(Some(1u64), |k| k.checked_mul(2))
        .take_while(|&k| k <= max_n)
        .collect();
    // Distinct answers over the runs shown, for verdict overrides per answer cluster.
    let mut distinct: Vec<(String, bool)> = Vec::new();
    for a in runs.iter().flat_map(|r| r.answers.iter()) {
        if !distinct.iter().any(|(d, _)| *d == a.answer) {
            distinct.push((a.answer.clone(), a.correct));
        }
    }
    let review_panel = state.get_untracked().experiment.map(|slug| {
        view! { <crate::components::review::ProblemReviewPanel slug problem=id answers=distinct /> }
    });
    let runs = StoredValue::new(runs);
    let missing = (!missing_runs.is_empty()).then(|| {
        view! {
            <p class="notice" role="note" data-testid="missing-runs">
                {format!(
                    "{} {} not found or {} no rollouts of this problem: {}. The rest of the page shows the runs that do.",
                    if missing_runs.len() == 1 { "Run" } else { "Runs" },
                    join_ids(&missing_runs).replace(',', ", "),
                    if missing_runs.len() == 1 { "has" } else { "have" },
                    if missing_runs.len() == 1 { "it may have been deleted" } else { "they may have been deleted" },
                )}
                " "
                <a href=move || ProblemQuery { runs: Vec::new(), ..state.get() }.href(id)>"Show all runs"</a>
            </p>
        }
    });
    // The run whose rollouts are listed: `run=` when it is on the page, else the first run
    // (the server picks the same for the list).
    let selected = Memo::new(move |_| {
        let wanted = state.read().run;
        runs.with_value(|rs| match wanted {
            Some(w) if rs.iter().any(|r| r.run_id == w) => Some(w),
            _ => rs.first().map(|r| r.run_id),
        })
    });
    let stats_header = ks
        .iter()
        .map(|k| view! { <th scope="col" class="num">{format!("pass@{k}")}</th> })
        .collect_view();
    let stats_rows = runs
        .get_value()
        .into_iter()
        .map(|r| stats_row(&r, &ks, id, state))
        .collect_view();
    view! {
        <PageTitle text=format!("Problem {key}") />
        <p class="meta">
            <span>{format!("{dataset} · problem ")}</span>
            <code>{key.clone()}</code>
            {(!tags.is_empty()).then(|| format!(" · {}", tags.join(", ")))}
        </p>
        <h1>{format!("Problem {key}")}</h1>
        {missing}
        <section aria-labelledby="prompt-heading" class="panel">
            <h2 id="prompt-heading">"Prompt"</h2>
            {if prompt.trim().is_empty() {
                view! { <p class="empty">"No prompt was stored for this problem."</p> }.into_any()
            } else {
                view! { <div class="prompt" data-testid="prompt"><MathText text=prompt /></div> }.into_any()
            }}
            <p class="reference" data-testid="reference">
                <strong>"Reference answer: "</strong>
                <MathAnswer text=reference_answer />
            </p>
        </section>
        {review.map(|r| review_note(r, id, state))}
        <section aria-labelledby="stats-heading">
            <h2 id="stats-heading">"Per run"</h2>
            <p class="meta">
                "c/n: correct of sampled rollouts. " <Gloss term=Term::PassAtK>"pass@k"</Gloss> ": unbiased estimate 1 − C(n−c, k)/C(n, k) (" <Gloss term=Term::PassAtK>"eq. 2"</Gloss> "), at k = 1, 2, 4, … up to n."
            </p>
            {if runs.with_value(Vec::is_empty) {
                view! { <p class="empty">"No run has rollouts of this problem."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table class="data-table" data-testid="problem-stats">
                            <thead>
                                <tr>
                                    <th scope="col">"Model"</th>
                                    <th scope="col">"Stage"</th>
                                    <th scope="col" class="num">"c/n"</th>
                                    {stats_header}
                                    <th scope="col" class="num">"Answers"</th>
                                </tr>
                            </thead>
                            <tbody>{stats_rows}</tbody>
                        </table>
                    </div>
                }
                    .into_any()
            }}
        </section>
        <section aria-labelledby="answers-heading">
            <h2 id="answers-heading">"Final answers"</h2>
            <p class="meta">"Distinct normalised final answers and how many rollouts gave each; ✓ marks the one equal to the reference. Click one to list its rollouts."</p>
            <div class="answer-groups" data-testid="answer-clusters">
                {runs
                    .get_value()
                    .into_iter()
                    .map(|r| answer_group(r, id, state))
                    .collect_view()}
            </div>
        </section>
        {review_panel}
        <section aria-labelledby="rollouts-heading">
            <h2 id="rollouts-heading">"Rollouts"</h2>
            {move || {
                let wanted = state.read().run;
                let shown = selected.get();
                (wanted.is_some() && wanted != shown)
                    .then(|| {
                        view! {
                            <p class="notice" role="note" data-testid="missing-run">
                                {format!(
                                    "Run {} has no rollouts of this problem here (it may have been deleted); showing {}.",
                                    wanted.unwrap_or_default(),
                                    shown.map(|s| format!("run {s}")).unwrap_or_else(|| "nothing".into()),
                                )}
                            </p>
                        }
                    })
            }}
            <nav class="run-tabs" aria-label="Run" data-testid="run-tabs">
                {runs
                    .get_value()
                    .into_iter()
                    .map(|r| {
                        let run_id = r.run_id;
                        view! {
                            <a
                                href=move || state.get().listing(run_id, None).href(id)
                                data-noscroll=""
                                aria-current=move || (selected.get() == Some(run_id)).then_some("true")
                            >
                                {r.model.clone()}
                            </a>
                        }
                    })
                    .collect_view()}
            </nav>
            <Transition fallback=|| view! { <p class="loading">"Loading rollouts…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                        Ok(Some(list)) if list.run_id.is_some() => {
                            view! { <RolloutPageView list problem_id=id state /> }.into_any()
                        }
                        Ok(_) => ().into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn stats_row(r: &ProblemRunStats, ks: &[u64], id: i64, state: Memo<ProblemQuery>) -> impl IntoView {
    let run_id = r.run_id;
    let cells = ks
        .iter()
        .map(|k| {
            let value = r.pass_at.iter().find(|(kk, _)| kk == k).map(|(_, p)| *p);
            view! {
                <td class="num" data-k=*k data-value=value.map(|v| v.to_string())>
                    {percent(value)}
                </td>
            }
        })
        .collect_view();
    let depth = r.lineage_depth.min(4);
    view! {
        <tr data-run-id=run_id>
            <td class=format!("lineage depth-{depth}")>
                <a href=move || state.get().listing(run_id, None).href(id) data-noscroll="">
                    {r.model.clone()}
                </a>
            </td>
            <td><StageBadge stage=r.stage.clone() /></td>
            <td class="num" data-testid="cn">
                {format!("{}/{}", r.c, r.n)}
                {match (r.c_file, r.c_caplens) {
                    (Some(f), Some(c)) if f != c => Some(view! {
                        <span class="verdict-split" data-testid="cn-split" title="correct under the file's verdicts / under caplens' verifier">
                            {format!(" (file {f} · caplens {c})")}
                        </span>
                    }),
                    _ => None,
                }}
            </td>
            {cells}
            <td class="num">{r.answers.len()}</td>
        </tr>
    }
}

fn answer_group(r: ProblemRunStats, id: i64, state: Memo<ProblemQuery>) -> impl IntoView {
    let run_id = r.run_id;
    let empty = r.answers.is_empty();
    view! {
        <div class="answer-group" data-run-id=run_id>
            <h3>{r.model.clone()} " " <StageBadge stage=r.stage.clone() /></h3>
            {empty.then(|| view! { <p class="empty">"No final answers (count-only data, or no rollout gave one)."</p> })}
            <ul class="answer-chips">
                {r
                    .answers
                    .into_iter()
                    .map(|a| {
                        let answer = a.answer.clone();
                        let link = move || state.get().listing(run_id, Some(answer.clone())).href(id);
                        let correct = a.reviewed.unwrap_or(a.correct);
                        let title = match a.reviewed {
                            Some(_) => "a reviewer marked this answer correct",
                            None => "equals the reference",
                        };
                        view! {
                            <li class:correct=correct data-reviewed=a.reviewed.map(|r| r.to_string())>
                                <a href=link data-noscroll="" data-answer=a.answer.clone()>
                                    <MathAnswer text=a.answer.clone() />
                                    <span class="count">{format!("×{}", a.count)}</span>
                                    {correct.then(|| view! { <span class="mark" title=title>"✓"</span> })}
                                </a>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </div>
    }
}

#[component]
fn RolloutPageView(list: RolloutList, problem_id: i64, state: Memo<ProblemQuery>) -> impl IntoView {
    let RolloutList {
        run_id,
        total,
        page,
        per_page,
        items,
        responses,
    } = list;
    let run_id = run_id.unwrap_or_default();
    let pages = ((total + per_page - 1) / per_page).max(1);
    let answer = state.read_untracked().answer.clone();
    let filter = answer.clone().map(|a| {
        view! {
            <p class="filter-line" data-testid="answer-filter">
                "Only rollouts answering "
                <MathAnswer text=a />
                " · "
                <a href=move || state.get().listing(run_id, None).href(problem_id) data-noscroll="">
                    "show all"
                </a>
            </p>
        }
    });
    let goto = move |p: i64| {
        move || {
            ProblemQuery {
                page: p,
                open: Vec::new(),
                ..state.get()
            }
            .href(problem_id)
        }
    };
    let pager = view! {
        <nav class="pager" aria-label="Pages" data-testid="pager">
            {(page > 1).then(|| view! { <a href=goto(page - 1) data-noscroll="" rel="prev">"← Previous"</a> })}
            <span data-testid="page-info">{format!("Page {page} of {pages} · {total} rollouts")}</span>
            {(page < pages).then(|| view! { <a href=goto(page + 1) data-noscroll="" rel="next">"Next →"</a> })}
        </nav>
    };
    let body = if items.is_empty() {
        view! {
            <p class="empty" data-testid="no-rollouts">
                {if page > 1 && total > 0 {
                    format!("Page {page} is past the end ({total} rollouts).")
                } else {
                    "No stored rollouts here (count-only data, or none matches the filter).".to_string()
                }}
            </p>
        }
        .into_any()
    } else {
        view! {
            <ol class="rollout-list" data-testid="rollout-list">
                {items
                    .into_iter()
                    .map(|row| {
                        let response = responses.iter().find(|(id, _)| *id == row.id).map(|(_, r)| r.clone());
                        view! { <RolloutItem row response problem_id state /> }
                    })
                    .collect_view()}
            </ol>
        }
        .into_any()
    };
    view! {
        {filter}
        {pager}
        {body}
    }
}

#[component]
fn RolloutItem(
    row: RolloutRow,
    /// `Some` when the rollout is expanded (its response, if one was stored).
    response: Option<Option<String>>,
    problem_id: i64,
    state: Memo<ProblemQuery>,
) -> impl IntoView {
    let id = row.id;
    let open = response.is_some();
    let toggle = move || state.get().toggled(id).href(problem_id);
    let flags = row.quality_flags.join(", ");
    let experiment = state.get_untracked().experiment;
    let heatmap_href = match &experiment {
        Some(slug) => format!(
            "/rollouts/{id}?experiment={}",
            crate::urlstate::encode_component(slug)
        ),
        None => format!("/rollouts/{id}"),
    };
    let counts = use_context::<CommentCountsResource>();
    let badge = move || {
        let n = counts.and_then(|c| c.0.get()).map_or(0, |c| c.rollout(id));
        (n > 0).then(|| view! { <span class="badge comments" title="comments" data-testid="comment-badge">{format!("💬 {n}")}</span> })
    };
    view! {
        <li class="rollout" class:open=open data-rollout-id=id>
            <div class="rollout-head">
                <a
                    class="toggle"
                    href=toggle
                    data-noscroll=""
                    aria-expanded=if open { "true" } else { "false" }
                    data-testid="rollout-toggle"
                >
                    <span class="sample">{format!("#{}", row.sample_index)}</span>
                    <span
                        class=if row.correct { "verdict correct" } else { "verdict wrong" }
                        title=row.overridden.then_some("a reviewer's verdict override decided this")
                        data-testid="rollout-verdict"
                    >
                        {match (row.correct, row.overridden) {
                            (true, false) => "✓ correct",
                            (false, false) => "✗ wrong",
                            (true, true) => "✓ correct (reviewed)",
                            (false, true) => "✗ wrong (reviewed)",
                        }}
                    </span>
                    {verdict_disagreement(&row).map(|text| view! {
                        <span class="verdict disagree" data-testid="verdict-disagree">{text}</span>
                    })}
                </a>
                <span class="answer-cell">
                    {match row.answer.clone() {
                        Some(a) => view! { <MathAnswer text=a /> }.into_any(),
                        None => view! { <span class="muted">"no answer"</span> }.into_any(),
                    }}
                </span>
                <span class="facts">
                    <span title="tokens">{row.token_count.map(|t| format!("{t} tok")).unwrap_or_else(|| "— tok".into())}</span>
                    {row.finish_reason.clone().map(|f| view! { <span title="finish reason">{f}</span> })}
                    <span title="mean token entropy (nats)">{format!("H {}", fixed(row.mean_entropy, 3))}</span>
                    <span title="perplexity">{format!("PPL {}", fixed(row.perplexity, 3))}</span>
                    {(!flags.is_empty()).then(|| view! { <span class="flags" title="quality flags">{flags.clone()}</span> })}
                    {badge}
                    {row.has_trace.then(|| view! { <a href=heatmap_href.clone() data-testid="heatmap-link">"token heatmap →"</a> })}
                </span>
            </div>
            {response.map(|response| view! { <RolloutBody row=row.clone() response /> })}
        </li>
    }
}

#[component]
fn RolloutBody(row: RolloutRow, response: Option<String>) -> impl IntoView {
    view! {
        <div class="rollout-body" data-testid="rollout-body">
            <dl class="facts-grid">
                <dt>"Answer"</dt>
                <dd>{row.answer.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Tokens"</dt>
                <dd>{row.token_count.map(|t| t.to_string()).unwrap_or_else(|| "—".into())}</dd>
                <dt>"Finish reason"</dt>
                <dd>{row.finish_reason.clone().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Quality flags"</dt>
                <dd>{if row.quality_flags.is_empty() { "none".to_string() } else { row.quality_flags.join(", ") }}</dd>
                <dt><Gloss term=Term::TokenEntropy>"Mean entropy"</Gloss></dt>
                <dd>{fixed(row.mean_entropy, 4)}</dd>
                <dt><Gloss term=Term::BranchingFactor>"Mean RBF"</Gloss></dt>
                <dd>{fixed(row.mean_rbf, 3)}</dd>
                <dt><Gloss term=Term::Perplexity>"PPL"</Gloss></dt>
                <dd>{fixed(row.perplexity, 4)}</dd>
            </dl>
            {match response {
                None => view! { <p class="empty">"No response text was stored."</p> }.into_any(),
                Some(text) => view! {
                    <div class="response" data-testid="response"><MathText text /></div>
                }
                .into_any(),
            }}
        </div>
    }
}

/// "file ✓ · caplens ✗ (different)" when the file's verdict and caplens' differ on a rollout.
fn verdict_disagreement(row: &RolloutRow) -> Option<String> {
    let file = row.file_correct?;
    let caplens = row.caplens_verdict?;
    let by_caplens = caplens.correct()?;
    (file != by_caplens).then(|| {
        let mark = |ok: bool| if ok { "✓" } else { "✗" };
        format!(
            "file {} · caplens {} ({})",
            mark(file),
            mark(by_caplens),
            caplens.as_str().replace('_', " ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips_through_its_href() {
        let q = ProblemQuery {
            runs: vec![1, 2],
            run: Some(2),
            answer: Some("\\frac{1}{2}".into()),
            page: 3,
            open: vec![7, 9],
            experiment: Some("exp-a".into()),
            unreviewed: true,
            from: None,
        };
        let url = q.href(5);
        assert_eq!(
            url,
            "/problems/5?runs=1%2C2&run=2&answer=%5Cfrac%7B1%7D%7B2%7D&page=3&open=7%2C9&experiment=exp-a&reviewed=0"
        );
        let map: ParamsMap = [
            ("runs", "1,2"),
            ("run", "2"),
            ("answer", "\\frac{1}{2}"),
            ("page", "3"),
            ("open", "7,9"),
            ("experiment", "exp-a"),
            ("reviewed", "0"),
        ]
        .into_iter()
        .collect();
        assert_eq!(ProblemQuery::from_map(&map), q);
        assert_eq!(q.toggled(7).open, [9]);
        assert_eq!(q.toggled(8).open, [7, 9, 8]);
        let l = q.listing(1, None);
        assert_eq!(
            (l.run, l.page, l.open.len(), l.runs.len()),
            (Some(1), 1, 0, 2)
        );
        let bad: ParamsMap = [("page", "-4"), ("run", "x")].into_iter().collect();
        let b = ProblemQuery::from_map(&bad);
        assert_eq!((b.page, b.run), (1, None));
    }
}
