//! The experiments list (home page).

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

use crate::{
    api::list_experiments,
    components::common::{ListLoader, PageTitle},
    model::ExperimentSummary,
};

#[component]
pub fn ExperimentsPage() -> impl IntoView {
    // `?project=SLUG`: only that project's experiments (the project page links here).
    let query = use_query_map();
    let only = move || query.with(|q| q.get("project"));
    let experiments = Resource::new(only, |only| async move {
        list_experiments().await.map(|list| {
            list.into_iter()
                .filter(|e| only.as_ref().is_none_or(|p| e.project.as_ref() == Some(p)))
                .collect::<Vec<_>>()
        })
    });
    let render_list = move |list: Vec<ExperimentSummary>| {
        view! {
            <ul class="card-list" data-testid="experiment-list">
                {list
                    .into_iter()
                    .map(|e| {
                        let href = format!("/experiments/{}", e.slug);
                        view! {
                            <li class="card">
                                <h2>
                                    <A href=href>{e.name.clone()}</A>
                                    {e.is_demo.then(|| view! { <span class="badge demo">"demo"</span> })}
                                    {e.project.clone().map(|p| view! {
                                        <a class="badge project" data-testid="experiment-project" href=format!("/projects/{p}")>{format!("project {p}")}</a>
                                    })}
                                </h2>
                                <p class="description">{e.description.clone()}</p>
                                <p class="meta">
                                    {format!("{} runs · {} models · created {}", e.run_count, e.model_count, e.created_at)}
                                </p>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        }
    };
    view! {
        <PageTitle text="Experiments" />
        <h1>"Experiments"</h1>
        {move || query.with(|q| q.get("deleted")).map(|slug| view! { <p class="notice" role="status" data-testid="deleted-notice">"Deleted the experiment " <code>{slug}</code> "."</p> })}
        {move || only().map(|p| view! { <p class="notice" data-testid="project-filter">"Experiments of project " <code>{p}</code> ". " <A href="/experiments">"All experiments"</A></p> })}
        <p class="lede">
            "An experiment is a named set of evaluation runs — typically one base, SFT and RL "
            "checkpoint sampled many times on the same problems."
        </p>
        <ListLoader
            resource=experiments
            loading="Loading experiments…"
            empty="No experiments yet. Upload rollouts, or load the demo with `caplens demo --reset`."
            render=render_list
        />
    }
}
