//! Unsolvable problems (paper fig. 1c): 2–3 runs as a Venn diagram, 4 or more as an UpSet chart;
//! a k selector (attempts that count); a clicked region lists its problems with per-run c/n and
//! the 95 % upper bound of the solve rate (unlucky vs unsolvable); set size against k.
//! State: `runs`, `k`, `region` in the URL.

use leptos::prelude::*;

use crate::components::glossary::Term;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::get_unsolvable_view;
use crate::components::analysis::{
    hidden_series, toggle_hidden, ExperimentMissing, FrameNotes, RunPicker, VerdictSwitch, ViewTabs,
};
use crate::components::chart::{ChartView, TableExport};
use crate::components::common::{DemoBanner, ErrorBox, PageTitle};
use crate::views::{UnsolvableRequest, UnsolvableView};

#[component]
pub fn UnsolvablePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let request = move || query.with(|q| UnsolvableRequest::from_query(|k| q.get(k)));
    let data = Resource::new(
        move || (slug(), request()),
        |(slug, req)| get_unsolvable_view(slug, req),
    );
    // Comment counts per problem (badges in the region list).
    let counts = Resource::new(slug, |slug| async move {
        match crate::api::review(crate::review::ReviewOp::CommentCounts { slug }).await {
            Ok(crate::review::ReviewReply::CommentCounts(c)) => c,
            _ => Default::default(),
        }
    });
    provide_context(counts);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Comparing unsolvable sets…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                    Ok(Some(v)) => view! { <UnsolvableBody v /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn UnsolvableBody(v: UnsolvableView) -> impl IntoView {
    let slug = v.frame.experiment.slug.clone();
    let path = format!("/experiments/{slug}/unsolvable");
    let hidden = hidden_series();
    let req = v.request.clone();
    let link = {
        let path = path.clone();
        let req = req.clone();
        move |f: &dyn Fn(&mut UnsolvableRequest)| {
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
                r.region.clear();
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
    let export = |chart: &'static str| {
        let slug = slug.clone();
        let req = req.clone();
        Callback::new(move |ext: String| {
            req.query().href(&format!(
                "/export/experiments/{slug}/unsolvable/{chart}.{ext}"
            ))
        })
    };
    let toggle_href = {
        let req = req.clone();
        let path = path.clone();
        Callback::new(move |key: String| {
            req.query()
                .set("hide", toggle_hidden(&hidden.get_untracked(), &key))
                .href(&path)
        })
    };
    let k_links = {
        let mut ks: Vec<Option<u64>> =
            v.ks.iter()
                .copied()
                .filter(|&k| k < v.max_k)
                .map(Some)
                .collect();
        ks.push(None);
        ks.into_iter()
            .map(|k| {
                let on = k == v.request.k;
                let label = match k {
                    Some(k) => k.to_string(),
                    None => format!("all ({})", v.max_k),
                };
                let href = link(&|r| r.k = k);
                view! { <li><a href=href class:on=on aria-current=on.then_some("true")>{label}</a></li> }
            })
            .collect_view()
    };
    let name = v.frame.experiment.name.clone();
    let kind = if v.frame.selected.len() <= 3 {
        "Venn diagram"
    } else {
        "UpSet chart"
    };
    let k_text = match v.request.k {
        Some(k) => format!("no correct answer in the first {k} attempts"),
        None => format!("no correct answer in any attempt (up to {})", v.max_k),
    };
    let region_list = {
        let chart = v.chart.clone();
        match chart {
            crate::charts::ChartSpec::Sets(sets) => sets
                .regions
                .iter()
                .map(|r| {
                    let names: Vec<String> =
                        r.members.iter().map(|&m| sets.sets[m].clone()).collect();
                    let only = if r.members.len() < sets.sets.len() {
                        " only"
                    } else {
                        ""
                    };
                    view! {
                        <li>
                            <a href=r.href.clone() class:on=r.selected data-testid="region-link">
                                {format!("{}{}: {}", names.join(" ∩ "), only, r.count)}
                            </a>
                        </li>
                    }
                })
                .collect_view()
                .into_any(),
            _ => ().into_any(),
        }
    };
    let counts = use_context::<Resource<crate::review::CommentCounts>>();
    let runs_param = crate::urlstate::join_ids(&v.frame.selected);
    // Problems opened from the region keep it, for previous / next (triage).
    let from = crate::views::TriageList::Region(v.request.clone()).encode();
    let region = v.region.clone().map(|d| {
        let table = d.table.clone();
        let rows = d
            .problems
            .iter()
            .map(|p| {
                let id = p.problem_id;
                let badge = move || {
                    let n = counts.and_then(|c| c.get()).map_or(0, |c| c.problem(id));
                    (n > 0).then(|| view! { " " <span class="badge comments" title="comments" data-testid="comment-badge">{format!("💬 {n}")}</span> })
                };
                let href = crate::urlstate::Query::new()
                    .set("experiment", slug.clone())
                    .set("runs", runs_param.clone())
                    .set("from", from.clone())
                    .href(&format!("/problems/{id}"));
                view! {
                    <tr>
                        <th scope="row"><a href=href>{p.key.clone()}</a>{badge}</th>
                        {p.cells.iter().map(|c| view! {
                            <td class="num">{format!("{}/{}", c.c, c.n)}</td>
                            <td class="num">{c.upper_95.map(|u| format!("≤ {:.2} %", u * 100.0)).unwrap_or_default()}</td>
                        }).collect_view()}
                    </tr>
                }
            })
            .collect_view();
        view! {
            <section class="region-detail" data-testid="region-detail">
                <h2>{d.title.clone()}</h2>
                <p class="meta">
                    "c/n: correct of sampled. “solve rate ≤” is the 95 % upper bound on the true solve rate after that many failures "
                    "(1 − 0.05^(1/m)): a small bound means unsolvable, not unlucky."
                </p>
                <div class="table-wrap">
                    <table class="data-table" data-testid="region-table">
                        <thead>
                            <tr>
                                <th scope="col">"Problem"</th>
                                {d.columns.iter().map(|c| view! {
                                    <th scope="col" class="num">{format!("{c} c/n")}</th>
                                    <th scope="col" class="num">{format!("{c} solve rate")}</th>
                                }).collect_view()}
                            </tr>
                        </thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
                <TableExport table=table name=format!("{slug}-region") />
            </section>
        }
    });
    let undetermined = (!v.undetermined.is_empty()).then(|| {
        let parts: Vec<String> = v.undetermined.iter().map(|(l, c)| format!("{l}: {c}")).collect();
        view! {
            <p class="meta" data-testid="undetermined">
                {format!("Left out (no record, too few samples or unknown order at this k): {}", parts.join("; "))}
            </p>
        }
    });
    view! {
        <PageTitle text=format!("Unsolvable · {name}") />
        <h1>{name.clone()}</h1>
        {v.frame.experiment.is_demo.then(|| view! { <DemoBanner /> })}
        <ViewTabs slug=slug.clone() current="unsolvable" />
        <FrameNotes frame=v.frame.clone() />
        <VerdictSwitch frame=v.frame.verdicts.clone() href=verdict_href reviewed_href />
        <div class="analysis-layout">
            <aside class="controls">
                <RunPicker runs=v.frame.runs.clone() selected=v.frame.selected.clone() href=picker_href />
                <details open>
                    <summary>"Attempts that count (k)"</summary>
                    <ul class="k-picker" data-testid="k-picker">{k_links}</ul>
                </details>
            </aside>
            <section class="analysis-main">
                <ChartView
                    definition=Term::Unsolvable
                    spec=v.chart.clone()
                    title=format!("Problems each run cannot solve: {k_text} ({kind}; click a region)")
                    hidden=Signal::derive(Vec::new)
                    export_href=export("sets")
                    testid="sets-chart"
                />
                <ul class="region-list" data-testid="region-list">{region_list}</ul>
                {undetermined}
                {region}
                <ChartView
                    definition=Term::Unsolvable
                    spec=v.set_sizes.clone()
                    title="Unsolvable set size against k (attempts)"
                    hidden=hidden
                    toggle_href=toggle_href
                    export_href=export("set-sizes")
                    height=300
                    testid="set-size-chart"
                />
                <TableExport table=v.table.clone() name=format!("{slug}-unsolvable-regions") />
            </section>
        </div>
    }
}
