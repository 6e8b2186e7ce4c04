//! The problems view (issue 27): every problem of the chosen runs with each run's c/n, the
//! change Δ from run A to run B, labels and comments; search, filters, sort and paging are all in
//! the URL (`runs`, `q`, `sort`, `change`, `min_delta`, `label`, `unsolvable`, `limit`,
//! `offset`), so a triage list is a link. The header gives the paired counts and the Wilcoxon
//! signed-rank test of the per-problem Δ.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::get_problems_view;
use crate::components::analysis::{
    ExperimentMissing, FrameNotes, RunPicker, VerdictSwitch, ViewTabs,
};
use crate::components::common::{DemoBanner, ErrorBox, PageTitle};
use crate::components::detail::MathText;
use crate::urlstate::{join_ids, Query};
use crate::views::{ProblemSort, ProblemSortField, ProblemsRequest, ProblemsView};
use caplens_analysis::paired::{Change, PairedSummary};

#[component]
pub fn ProblemsPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let parsed = move || query.with(|q| ProblemsRequest::try_from_query(|k| q.get(k)));
    let request = move || query.with(|q| ProblemsRequest::from_query(|k| q.get(k)));
    let data = Resource::new(
        move || (slug(), request()),
        |(slug, req)| get_problems_view(slug, req),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Reading the problems…"</p> }>
            {move || {
                let bad = parsed().err();
                Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                        Ok(None) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                        Ok(Some(v)) => {
                            let bad = bad.map(|b| format!("{}: {} — showing the default view.", b.0, b.1));
                            view! {
                                {bad.map(|b| view! { <p class="notice" role="status" data-testid="bad-parameter">{b}</p> })}
                                <ProblemsBody v />
                            }
                            .into_any()
                        }
                    }
                })
            }}
        </Suspense>
    }
}

fn percent(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn signed_points(d: f64) -> String {
    format!("{:+.1}", d * 100.0)
}

/// "12 improved · 5 regressed · 83 unchanged" with the test, A and B named.
#[component]
fn PairedHeader(paired: PairedSummary, a: String, b: String) -> impl IntoView {
    let threshold = if paired.threshold > 0.0 {
        format!("|Δ| > {} points", paired.threshold * 100.0)
    } else {
        "any change".to_string()
    };
    let test = match &paired.test {
        Some(t) => format!(
            "Wilcoxon signed-rank test of the per-problem Δ: p = {} (n = {} problems that changed, {} unchanged left out; {}).",
            if t.p_value < 0.0001 { "< 0.0001".to_string() } else { format!("{:.4}", t.p_value) },
            t.n,
            t.zeros,
            if t.exact { "exact" } else { "normal approximation" }
        ),
        None => "No problem changed: nothing to test.".to_string(),
    };
    let mean = paired
        .mean_delta
        .map(|d| {
            format!(
                "Mean Δ pass@1 {} points over {} problems both runs have.",
                signed_points(d),
                paired.problems
            )
        })
        .unwrap_or_default();
    view! {
        <section class="paired" data-testid="paired" aria-label="Run A against run B">
            <p class="paired-runs">
                <span class="badge">"A"</span>" "{a}" → "<span class="badge">"B"</span>" "{b}
            </p>
            <p class="paired-counts">
                <strong data-testid="paired-improved">{paired.improved}</strong>" improved · "
                <strong data-testid="paired-regressed">{paired.regressed}</strong>" regressed · "
                <strong data-testid="paired-unchanged">{paired.unchanged}</strong>" unchanged ("{threshold}")"
            </p>
            <p class="meta">{mean}" "{test}</p>
        </section>
    }
}

#[component]
fn ProblemsBody(v: ProblemsView) -> impl IntoView {
    let slug = v.frame.experiment.slug.clone();
    let path = format!("/experiments/{slug}/problems");
    let req = v.request.clone();
    let link = {
        let path = path.clone();
        let req = req.clone();
        move |f: &dyn Fn(&mut ProblemsRequest)| {
            let mut r = req.clone();
            f(&mut r);
            r.query().href(&path)
        }
    };
    let picker_href = {
        let link = link.clone();
        Callback::new(move |ids: Vec<i64>| {
            link(&|r| {
                r.runs = ids.clone();
                r.offset = 0;
                if let ProblemSortField::Rate(_) = r.sort.field {
                    r.sort = ProblemSort::default();
                }
            })
        })
    };
    let verdict_href = {
        let link = link.clone();
        Callback::new(move |source| link(&|r| r.verdicts = source))
    };
    let reviewed_href = {
        let link = link.clone();
        Callback::new(move |unreviewed| link(&|r| r.unreviewed = unreviewed))
    };
    let label_of = |id: i64| {
        v.frame
            .runs
            .iter()
            .find(|r| r.id == id)
            .map_or_else(|| format!("run {id}"), |r| r.label.clone())
    };
    let selected = v.frame.selected.clone();
    let two = selected.len() >= 2;
    let paired = v.paired.clone().map(|paired| {
        view! { <PairedHeader paired a=label_of(selected[0]) b=label_of(selected[1]) /> }
    });
    // Filter links.
    let change_links = two.then(|| {
        let items = [None, Some(Change::Improved), Some(Change::Regressed), Some(Change::Unchanged)]
            .into_iter()
            .map(|c| {
                let on = v.request.change == c;
                let href = link(&|r| {
                    r.change = c;
                    r.offset = 0;
                });
                let label = c.map_or("all", |c| c.as_str());
                view! { <li><a href=href class:on=on aria-current=on.then_some("true") data-testid=format!("change-{label}")>{label}</a></li> }
            })
            .collect_view();
        view! {
            <details open>
                <summary>"Change from A to B"</summary>
                <ul class="k-picker" data-testid="change-filter">{items}</ul>
            </details>
        }
    });
    let label_links = (!v.labels.is_empty()).then(|| {
        let mut choices: Vec<Option<String>> = vec![None];
        choices.extend(v.labels.iter().cloned().map(Some));
        let items = choices
            .into_iter()
            .map(|l| {
                let on = v.request.label == l;
                let href = link(&|r| {
                    r.label = l.clone();
                    r.offset = 0;
                });
                let text = l.clone().unwrap_or_else(|| "any".into());
                view! { <li><a href=href class:on=on aria-current=on.then_some("true")>{text}</a></li> }
            })
            .collect_view();
        view! {
            <details open>
                <summary>"Label"</summary>
                <ul class="k-picker" data-testid="label-filter">{items}</ul>
            </details>
        }
    });
    let unsolvable_links = {
        let mut ks: Vec<Option<u64>> = vec![None];
        let mut k = 1;
        while k <= v.max_n {
            ks.push(Some(k));
            k *= 2;
        }
        if v.max_n > 0 && !ks.contains(&Some(v.max_n)) {
            ks.push(Some(v.max_n));
        }
        let last = selected.last().map(|&id| label_of(id)).unwrap_or_default();
        let items = ks
            .into_iter()
            .map(|k| {
                let on = v.request.unsolvable == k;
                let href = link(&|r| {
                    r.unsolvable = k;
                    r.offset = 0;
                });
                let text = k.map_or("off".to_string(), |k| k.to_string());
                view! { <li><a href=href class:on=on aria-current=on.then_some("true")>{text}</a></li> }
            })
            .collect_view();
        view! {
            <details>
                <summary>{format!("Unsolvable by {last} at k")}</summary>
                <ul class="k-picker" data-testid="unsolvable-filter">{items}</ul>
            </details>
        }
    };
    // The search form keeps the rest of the state as hidden fields.
    let hidden = {
        let mut r = req.clone();
        r.q = None;
        r.offset = 0;
        r.min_delta = 0.0;
        r.query()
            .pairs()
            .iter()
            .map(|(k, val)| view! { <input type="hidden" name=k.clone() value=val.clone() /> })
            .collect_view()
    };
    let min_delta_points = if req.min_delta > 0.0 {
        req.min_delta.to_string()
    } else {
        String::new()
    };
    let search = view! {
        <form method="get" action=path.clone() class="problems-search" role="search" data-testid="problems-search">
            {hidden}
            <label>
                "Search prompt and key "
                <input type="search" name="q" value=req.q.clone().unwrap_or_default() placeholder="e.g. integer, aime24" data-testid="problems-q" />
            </label>
            {two.then(|| view! {
                <label>
                    " |Δ| threshold (0–1) "
                    <input type="number" name="min_delta" min="0" max="1" step="0.05" value=min_delta_points.clone() data-testid="problems-min-delta" />
                </label>
            })}
            " "
            <button type="submit">"Apply"</button>
        </form>
    };
    // Column headers that sort.
    let sort_link = {
        let link = link.clone();
        let current = req.sort;
        move |field: ProblemSortField, label: String, testid: String| {
            let on = current.field == field;
            let next = ProblemSort {
                field,
                descending: on && !current.descending,
            };
            let href = link(&|r| {
                r.sort = next;
                r.offset = 0;
            });
            let arrow = if on {
                if current.descending {
                    " ▼"
                } else {
                    " ▲"
                }
            } else {
                ""
            };
            let sort_state = if on {
                if current.descending {
                    "descending"
                } else {
                    "ascending"
                }
            } else {
                "none"
            };
            view! {
                <th scope="col" aria-sort=sort_state class="sortable">
                    <a href=href data-testid=testid>{label}{arrow}</a>
                </th>
            }
        }
    };
    let run_headers = selected
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let tag = match (two, i) {
                (true, 0) => " (A)",
                (true, 1) => " (B)",
                _ => "",
            };
            sort_link(
                ProblemSortField::Rate(id),
                format!("{}{tag}", label_of(id)),
                format!("sort-rate-{id}"),
            )
        })
        .collect_view();
    let runs_param = join_ids(&selected);
    // The list itself, carried to each problem: triage's previous / next and the way back.
    let from = req.query().to_string();
    let rows = v
        .rows
        .iter()
        .map(|row| {
            let problem_href = Query::new()
                .set("experiment", slug.clone())
                .set("runs", runs_param.clone())
                .set("reviewed", if req.unreviewed { "0" } else { "" })
                .set("from", from.clone())
                .href(&format!("/problems/{}", row.problem_id));
            let cells = row
                .cells
                .iter()
                .map(|c| match c {
                    Some((c, n)) if *n > 0 => view! {
                        <td class="num">{format!("{c}/{n}")}<span class="meta">{format!(" {}", percent(*c as f64 / *n as f64))}</span></td>
                    }.into_any(),
                    Some((c, n)) => view! { <td class="num">{format!("{c}/{n}")}</td> }.into_any(),
                    None => view! { <td class="num meta">"—"</td> }.into_any(),
                })
                .collect_view();
            let delta = two.then(|| {
                let (text, class) = match row.delta {
                    Some(d) if d > 0.0 => (signed_points(d), "num delta up"),
                    Some(d) if d < 0.0 => (signed_points(d), "num delta down"),
                    Some(d) => (signed_points(d), "num delta"),
                    None => ("—".to_string(), "num meta"),
                };
                view! { <td class=class>{text}</td> }
            });
            let labels = row
                .labels
                .iter()
                .map(|l| view! { <span class="badge label">{l.clone()}</span>" " })
                .collect_view();
            view! {
                <tr data-testid="problem-row" data-problem-id=row.problem_id>
                    <th scope="row"><a href=problem_href>{row.key.clone()}</a></th>
                    <td class="prompt-cell"><MathText text=row.prompt.clone() class="prompt-clamp" /></td>
                    {cells}
                    {delta}
                    <td>{labels}</td>
                    <td class="num">{(row.comments > 0).then(|| format!("💬 {}", row.comments))}</td>
                </tr>
            }
        })
        .collect_view();
    let shown_from = if v.total == 0 { 0 } else { req.offset + 1 };
    let shown_to = (req.offset + v.rows.len()).min(v.total as usize);
    let prev = (req.offset > 0).then(|| {
        let href = link(&|r| r.offset = r.offset.saturating_sub(r.limit));
        view! { <a href=href rel="prev" data-testid="page-prev">"← previous"</a> }
    });
    let next = (shown_to < v.total as usize).then(|| {
        let href = link(&|r| r.offset += r.limit);
        view! { <a href=href rel="next" data-testid="page-next">"next →"</a> }
    });
    let csv = {
        let mut r = req.clone();
        r.offset = 0;
        r.limit = crate::views::PROBLEMS_PER_PAGE;
        r.query()
            .href(&format!("/api/v1/experiments/{slug}/problems.csv"))
    };
    let name = v.frame.experiment.name.clone();
    let key_header = sort_link(ProblemSortField::Key, "Problem".into(), "sort-key".into());
    let delta_header = two.then(|| {
        sort_link(
            ProblemSortField::Delta,
            "Δ B − A (points)".into(),
            "sort-delta".into(),
        )
    });
    let comments_header = sort_link(
        ProblemSortField::Comments,
        "Comments".into(),
        "sort-comments".into(),
    );
    view! {
        <PageTitle text=format!("Problems · {name}") />
        <h1>{name.clone()}</h1>
        {v.frame.experiment.is_demo.then(|| view! { <DemoBanner /> })}
        <ViewTabs slug=slug.clone() current="problems" />
        <FrameNotes frame=v.frame.clone() />
        <VerdictSwitch frame=v.frame.verdicts.clone() href=verdict_href reviewed_href />
        <div class="analysis-layout">
            <aside class="controls">
                <RunPicker runs=v.frame.runs.clone() selected=v.frame.selected.clone() href=picker_href />
                {change_links}
                {label_links}
                {unsolvable_links}
            </aside>
            <section class="analysis-main">
                {paired}
                {search}
                <p class="meta" data-testid="problems-total">
                    {format!("Problems {shown_from}–{shown_to} of {}", v.total)}
                    " · "<a href=csv data-testid="problems-csv" download="">"CSV of all "{v.total}</a>
                </p>
                <div class="table-wrap wide" tabindex="0" aria-label="Problems table (scrolls sideways when wide)">
                    <table class="data-table problems-table" data-testid="problems-table">
                        <thead>
                            <tr>
                                {key_header}
                                <th scope="col">"Prompt"</th>
                                {run_headers}
                                {delta_header}
                                <th scope="col">"Labels"</th>
                                {comments_header}
                            </tr>
                        </thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
                <nav class="pager" aria-label="Pages">{prev}" "{next}</nav>
            </section>
        </div>
    }
}
