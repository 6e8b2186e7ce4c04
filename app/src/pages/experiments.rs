//! The experiments list (home page).

use leptos::prelude::*;

use crate::components::common::PageTitle;
use leptos_router::components::A;

use crate::{api::list_experiments, components::common::ErrorBox};

#[component]
pub fn ExperimentsPage() -> impl IntoView {
    let experiments = Resource::new(|| (), |_| list_experiments());
    view! {
        <PageTitle text="Experiments" />
        <h1>"Experiments"</h1>
        <p class="lede">
            "An experiment is a named set of evaluation runs — typically one base, SFT and RL "
            "checkpoint sampled many times on the same problems."
        </p>
        <Suspense fallback=|| view! { <p class="loading">"Loading experiments…"</p> }>
            {move || Suspend::new(async move {
                match experiments.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(list) if list.is_empty() => {
                        view! {
                            <p class="empty">
                                "No experiments yet. Load the demo with "
                                <code>"caplens demo --reset"</code>
                                "."
                            </p>
                        }
                            .into_any()
                    }
                    Ok(list) => {
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
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}
