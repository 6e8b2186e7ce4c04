//! Models and their lineage (base -> sft -> rl ...), as a tree.

use leptos::prelude::*;

use crate::{
    api::list_models,
    components::common::{ListLoader, PageTitle, StageBadge},
    model::{lineage_forest, LineageNode, ModelRow},
};

#[component]
pub fn ModelsPage() -> impl IntoView {
    let models = Resource::new(|| (), |_| list_models());
    let render_list = |list: Vec<ModelRow>| {
        let forest = lineage_forest(&list);
        view! {
            <ul class="lineage" data-testid="lineage">
                {forest.into_iter().map(|n| view! { <LineageItem node=n /> }).collect_view()}
            </ul>
        }
    };
    view! {
        <PageTitle text="Models" />
        <h1>"Models"</h1>
        <p class="lede">"Checkpoints and where they come from. Children are trained from their parent."</p>
        <ListLoader
            resource=models
            loading="Loading models…"
            empty="No models yet."
            render=render_list
        />
    }
}

#[component]
fn LineageItem(node: LineageNode) -> AnyView {
    let m = node.model;
    let step = m
        .training_step
        .map(|s| format!(" · step {s}"))
        .unwrap_or_default();
    view! {
        <li>
            <div class="lineage-node" data-model=m.name.clone()>
                <StageBadge stage=m.stage.clone() />
                <strong>{m.name.clone()}</strong>
                <span class="meta">
                    {format!("{}{} · {} runs", if m.family.is_empty() { "—" } else { &m.family }, step, m.run_count)}
                </span>
                {(!m.notes.is_empty()).then(|| view! { <p class="notes">{m.notes.clone()}</p> })}
            </div>
            {(!node.children.is_empty())
                .then(|| {
                    view! {
                        <ul>
                            {node.children.into_iter().map(|c| view! { <LineageItem node=c /> }).collect_view()}
                        </ul>
                    }
                })}
        </li>
    }
    .into_any()
}
