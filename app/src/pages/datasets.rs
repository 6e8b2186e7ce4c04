//! Datasets and their sizes, and one dataset's problem index (`/datasets/:id`): its problems in
//! file order with prompt and reference, searchable (the full-text index), paged, each linking to
//! its problem page.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    api::{get_dataset_problems, list_datasets},
    components::common::{ErrorBox, ListLoader, PageTitle},
    components::detail::{set_not_found, MathAnswer, MathText},
    model::{DatasetProblemsView, DatasetRow},
    urlstate::Query,
};

#[component]
pub fn DatasetsPage() -> impl IntoView {
    let datasets = Resource::new(|| (), |_| list_datasets());
    let render_list = |list: Vec<DatasetRow>| {
        view! {
            <div class="table-wrap">
                <table class="data-table" data-testid="datasets-table">
                    <thead>
                        <tr>
                            <th scope="col">"Name"</th>
                            <th scope="col" class="num">"Problems"</th>
                            <th scope="col">"Source"</th>
                            <th scope="col">"Description"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {list
                            .into_iter()
                            .map(|d| {
                                view! {
                                    <tr>
                                        <td><a href=format!("/datasets/{}", d.id) data-testid="dataset-link">{d.name}</a></td>
                                        <td class="num">{d.problem_count}</td>
                                        <td>{d.source}</td>
                                        <td>{d.description}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        }
    };
    view! {
        <PageTitle text="Datasets" />
        <h1>"Datasets"</h1>
        <ListLoader
            resource=datasets
            loading="Loading datasets…"
            empty="No datasets yet."
            render=render_list
        />
    }
}

/// One dataset's problems: search, pages of 50, links to each problem.
#[component]
pub fn DatasetPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let q = move || query.with(|q| q.get("q").filter(|v| !v.trim().is_empty()));
    let offset = move || {
        query.with(|q| {
            q.get("offset")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
    };
    let data = Resource::new(
        move || (id(), q(), offset()),
        |(id, q, offset)| get_dataset_problems(id, q, offset),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading problems…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => {
                        set_not_found();
                        view! {
                            <PageTitle text="Dataset not found" />
                            <h1>"Dataset not found"</h1>
                            <p>"There is no such dataset, or it belongs to a project you cannot read. " <a href="/datasets">"All datasets"</a></p>
                        }
                        .into_any()
                    }
                    Ok(Some(v)) => view! { <DatasetProblems v /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn DatasetProblems(v: DatasetProblemsView) -> impl IntoView {
    let path = format!("/datasets/{}", v.dataset.id);
    let page_href = |offset: u64| {
        let mut state = Query::new();
        if let Some(q) = &v.q {
            state = state.set("q", q);
        }
        if offset > 0 {
            state = state.set("offset", offset);
        }
        state.href(&path)
    };
    let end = (v.offset + v.problems.len() as u64).min(v.total);
    let shown = if v.total == 0 {
        "No problem matches.".to_string()
    } else {
        format!("Problems {}–{end} of {}", v.offset + 1, v.total)
    };
    let previous = (v.offset > 0).then(|| page_href(v.offset.saturating_sub(v.limit)));
    let next = (end < v.total).then(|| page_href(end));
    let rows = v
        .problems
        .iter()
        .map(|p| {
            view! {
                <tr>
                    <th scope="row"><a href=format!("/problems/{}", p.id) data-testid="dataset-problem-link">{p.key.clone()}</a></th>
                    <td class="prompt-cell"><MathText text=p.prompt.clone() class="prompt-clamp" /></td>
                    <td><MathAnswer text=p.reference.clone() /></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <PageTitle text=format!("Dataset · {}", v.dataset.name) />
        <nav class="breadcrumbs" aria-label="Breadcrumbs"><a href="/datasets">"Datasets"</a></nav>
        <h1>{v.dataset.name.clone()}</h1>
        {(!v.dataset.description.is_empty()).then(|| view! { <p class="lede">{v.dataset.description.clone()}</p> })}
        <p class="meta">{format!("{} problems · source {}", v.dataset.problem_count, v.dataset.source)}</p>
        <form method="get" action=path.clone() class="problems-search" role="search" data-testid="dataset-search">
            <label>
                "Search prompt and key "
                <input type="search" name="q" value=v.q.clone().unwrap_or_default() placeholder="e.g. integer, aime24" data-testid="dataset-q" />
            </label>
            " "
            <button type="submit">"Search"</button>
        </form>
        <p class="meta" data-testid="dataset-count">{shown}</p>
        <div class="table-wrap">
            <table class="data-table" data-testid="dataset-problems">
                <thead>
                    <tr>
                        <th scope="col">"Problem"</th>
                        <th scope="col">"Prompt"</th>
                        <th scope="col">"Reference answer"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
        <nav class="pager" aria-label="Pages">
            {previous.map(|h| view! { <a href=h rel="prev" data-testid="dataset-prev">"← Previous"</a> })}
            " "
            {next.map(|h| view! { <a href=h rel="next" data-testid="dataset-next">"Next →"</a> })}
        </nav>
    }
}
