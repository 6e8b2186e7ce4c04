//! The experiments list (home page).

use leptos::prelude::*;
use leptos_router::components::A;

use crate::{
    api::list_experiments,
    components::common::{ListLoader, PageTitle},
    model::ExperimentSummary,
};

#[component]
pub fn ExperimentsPage() -> impl IntoView {
    let experiments = Resource::new(|| (), |_| list_experiments());
    let render_list = |list: Vec<ExperimentSummary>| {
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
