//! Pass@k curves (paper fig. 1a, fig. 2): any set of runs, log2 k from 1 to n, the problem count
//! behind each point, a bootstrap band, crossover points, a tag filter. State: `runs`, `tag`,
//! `band`, `hide` in the URL.

use leptos::prelude::*;

use crate::components::glossary::Term;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::get_passk_view;
use crate::components::analysis::{
    hidden_series, toggle_hidden, ExperimentMissing, FrameNotes, RunPicker, VerdictSwitch, ViewTabs,
};
use crate::components::chart::{ChartView, TableExport};
use crate::components::common::{DemoBanner, ErrorBox, PageTitle};
use crate::views::{PasskRequest, PasskView};

#[component]
pub fn PasskPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let request = move || query.with(|q| PasskRequest::from_query(|k| q.get(k)));
    let data = Resource::new(
        move || (slug(), request()),
        |(slug, req)| get_passk_view(slug, req),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Computing pass@k…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                    Ok(Some(v)) => view! { <PasskBody v /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn PasskBody(v: PasskView) -> impl IntoView {
    let slug = v.frame.experiment.slug.clone();
    let path = format!("/experiments/{slug}/passk");
    let hidden = hidden_series();
    let req = v.request.clone();
    let link = {
        let path = path.clone();
        let req = req.clone();
        move |f: &dyn Fn(&mut PasskRequest), hide: String| {
            let mut r = req.clone();
            f(&mut r);
            r.query().set("hide", hide).href(&path)
        }
    };
    let picker_href = {
        let link = link.clone();
        Callback::new(move |ids: Vec<i64>| {
            link(&|r| r.runs = ids.clone(), hidden.get_untracked().join(","))
        })
    };
    let toggle_href = {
        let link = link.clone();
        Callback::new(move |key: String| {
            link(&|_| {}, toggle_hidden(&hidden.get_untracked(), &key))
        })
    };
    let export_href = {
        let slug = slug.clone();
        let req = req.clone();
        Callback::new(move |ext: String| {
            req.query()
                .set("hide", hidden.get_untracked().join(","))
                .href(&format!("/export/experiments/{slug}/passk/passk.{ext}"))
        })
    };
    let band_href = link(&|r| r.band = !r.band, hidden.get_untracked().join(","));
    let verdict_href = {
        let link = link.clone();
        Callback::new(move |source| {
            link(&|r| r.verdicts = source, hidden.get_untracked().join(","))
        })
    };
    let reviewed_href = {
        let link = link.clone();
        Callback::new(move |unreviewed| {
            link(
                &|r| r.unreviewed = unreviewed,
                hidden.get_untracked().join(","),
            )
        })
    };
    let tag_links = {
        let mut all = vec![(None::<String>, "all problems".to_string())];
        all.extend(v.tags.iter().map(|t| (Some(t.clone()), t.clone())));
        all.into_iter()
            .map(|(tag, label)| {
                let on = tag == v.request.tag;
                let href = link(&|r| r.tag = tag.clone(), hidden.get_untracked().join(","));
                view! { <li><a href=href aria-current=on.then_some("true") class:on=on>{label}</a></li> }
            })
            .collect_view()
    };
    let name = v.frame.experiment.name.clone();
    let crossovers = v
        .crossovers
        .iter()
        .map(|c| {
            let ks: Vec<String> = c.ks.iter().map(u64::to_string).collect();
            view! { <li>{format!("{} and {} cross at k = {}", c.a, c.b, ks.join(", "))}</li> }
        })
        .collect_view();
    let no_cross = v.crossovers.is_empty();
    let table = v.table.clone();
    view! {
        <PageTitle text=format!("pass@k · {name}") />
        <h1>{name.clone()}</h1>
        {v.frame.experiment.is_demo.then(|| view! { <DemoBanner /> })}
        <ViewTabs slug=slug.clone() current="passk" />
        <FrameNotes frame=v.frame.clone() />
        <VerdictSwitch frame=v.frame.verdicts.clone() href=verdict_href reviewed_href />
        {v.tag_missing.then(|| view! {
            <p class="notice" role="status" data-testid="missing-tag">
                {format!("No problem has the tag “{}”; showing all problems.", v.request.tag.clone().unwrap_or_default())}
            </p>
        })}
        <div class="analysis-layout">
            <aside class="controls">
                <RunPicker runs=v.frame.runs.clone() selected=v.frame.selected.clone() href=picker_href />
                <details class="tag-filter" open>
                    <summary>"Problems"</summary>
                    <ul data-testid="tag-filter">{tag_links}</ul>
                </details>
                <p>
                    <a href=band_href data-testid="band-toggle" role="switch" aria-checked=if v.request.band { "true" } else { "false" }>
                        {if v.request.band { "☑ " } else { "☐ " }}
                        {format!("95 % bootstrap band ({} resamples of problems)", v.resamples)}
                    </a>
                </p>
            </aside>
            <section class="analysis-main">
                <ChartView
                    definition=Term::PassAtK
                    spec=v.chart.clone()
                    title="Unbiased pass@k (eq. 2), mean over problems with at least k samples"
                    hidden=hidden
                    toggle_href=toggle_href
                    export_href=export_href
                    testid="passk-chart"
                />
                <h2>"Crossovers"</h2>
                {if no_cross {
                    view! { <p data-testid="crossovers">"No two selected curves cross."</p> }.into_any()
                } else {
                    view! { <ul data-testid="crossovers">{crossovers}</ul> }.into_any()
                }}
                <h2>"Values"</h2>
                <div class="table-wrap">
                    <table class="data-table" data-testid="passk-table">
                        <thead><tr>{table.headers.iter().map(|h| view! { <th scope="col" class="num">{h.clone()}</th> }).collect_view()}</tr></thead>
                        <tbody>
                            {table.rows.iter().map(|row| view! {
                                <tr>{row.iter().map(|c| view! { <td class="num">{c.clone()}</td> }).collect_view()}</tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
                <TableExport table=table.clone() name=format!("{slug}-passk") />
            </section>
        </div>
    }
}
