//! Training dynamics (paper figs. 3a, 3c, 8): for runs that carry a training step (a model's
//! checkpoints), accuracy and entropy over steps, the detected rising -> plateau transition, the
//! R = -a exp(H) + b fit with a, b, R² and b - a, and correct vs incorrect rollout entropy.
//! State: `dataset` and `hide` in the URL.

use leptos::prelude::*;

use crate::components::glossary::Term;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::get_dynamics_view;
use crate::components::analysis::{hidden_series, toggle_hidden, ExperimentMissing, ViewTabs};
use crate::components::chart::{ChartView, TableExport};
use crate::components::common::{DemoBanner, ErrorBox, PageTitle};
use crate::views::{DynamicsRequest, DynamicsView};

#[component]
pub fn DynamicsPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let request = move || query.with(|q| DynamicsRequest::from_query(|k| q.get(k)));
    let data = Resource::new(
        move || (slug(), request()),
        |(slug, req)| get_dynamics_view(slug, req),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Fitting the dynamics…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                    Ok(Some(v)) => view! { <DynamicsBody v /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn DynamicsBody(v: DynamicsView) -> impl IntoView {
    let slug = v.frame.experiment.slug.clone();
    let path = format!("/experiments/{slug}/dynamics");
    let hidden = hidden_series();
    let name = v.frame.experiment.name.clone();
    let req = v.request.clone();
    let export = |chart: &'static str| {
        let slug = slug.clone();
        let req = req.clone();
        Callback::new(move |ext: String| {
            req.query()
                .set("hide", hidden.get_untracked().join(","))
                .href(&format!(
                    "/export/experiments/{slug}/dynamics/{chart}.{ext}"
                ))
        })
    };
    let toggle = {
        let req = req.clone();
        let path = path.clone();
        Callback::new(move |key: String| {
            req.query()
                .set("hide", toggle_hidden(&hidden.get_untracked(), &key))
                .href(&path)
        })
    };
    let dataset_links = (v.datasets.len() > 1).then(|| {
        v.datasets
            .iter()
            .map(|d| {
                let on = Some(d) == v.request.dataset.as_ref()
                    || (v.request.dataset.is_none() && Some(d) == v.datasets.first());
                let href = DynamicsRequest {
                    dataset: Some(d.clone()),
                }
                .query()
                .href(&path);
                view! { <li><a href=href class:on=on>{d.clone()}</a></li> }
            })
            .collect_view()
    });
    let fit_text = match &v.fit {
        Ok(f) => format!(
            "R = −{:.4}·exp(H) + {:.4}; R² = {}; b − a = {:.4} (predicted accuracy at zero entropy){}; {} checkpoints.",
            f.a,
            f.b,
            f.r_squared.map(|r| format!("{r:.4}")).unwrap_or_else(|| "—".into()),
            f.ceiling,
            if f.holds { "" } else { " — the fitted signs do not match the law (a, b > 0)" },
            f.points
        ),
        Err(e) => format!("No fit: {e}."),
    };
    let transition_text = match &v.transition {
        Ok(t) => format!("Accuracy rises quickly, then plateaus from step {t} (hinge fit)."),
        Err(e) => format!("No transition detected: {e}."),
    };
    let empty = v.steps.is_empty();
    view! {
        <PageTitle text=format!("Training dynamics · {name}") />
        <h1>{name.clone()}</h1>
        {v.frame.experiment.is_demo.then(|| view! { <DemoBanner /> })}
        <ViewTabs slug=slug.clone() current="dynamics" />
        {if empty {
            view! {
                <p class="notice" data-testid="no-steps">
                    "No run in this experiment carries a training step. Upload checkpoints with "
                    <code>"--step N"</code>" (or a verl log), or open the demo "
                    <a href="/experiments/demo-rl-dynamics/dynamics">"training-dynamics experiment"</a>"."
                </p>
            }.into_any()
        } else {
            view! {
                <div class="analysis-layout">
                    <aside class="controls">
                        {dataset_links.map(|l| view! { <details open><summary>"Dataset"</summary><ul>{l}</ul></details> })}
                        <p class="meta">{format!("{} checkpoints", v.steps.len())}</p>
                    </aside>
                    <section class="analysis-main">
                        <p data-testid="law-fit">{fit_text}</p>
                        <p data-testid="transition">{transition_text}</p>
                        {v.accuracy.clone().map(|spec| view! {
                            <ChartView definition=Term::Transition spec title="Accuracy over training steps" hidden=hidden export_href=export("accuracy") height=300 testid="accuracy-chart" />
                        })}
                        {v.entropy.clone().map(|spec| view! {
                            <ChartView definition=Term::TokenEntropy spec title="Entropy over training steps: all, correct and incorrect rollouts" hidden=hidden toggle_href=toggle export_href=export("entropy") height=300 testid="entropy-chart" />
                        })}
                        {v.law.clone().map(|spec| view! {
                            <ChartView definition=Term::EntropyReward spec title="Entropy–reward law: accuracy against entropy" hidden=hidden toggle_href=toggle export_href=export("law") height=300 testid="law-chart" />
                        })}
                        <div class="table-wrap">
                            <table class="data-table" data-testid="dynamics-table">
                                <thead><tr>{v.table.headers.iter().map(|h| view! { <th scope="col">{h.clone()}</th> }).collect_view()}</tr></thead>
                                <tbody>
                                    {v.table.rows.iter().map(|row| view! {
                                        <tr>{row.iter().map(|c| view! { <td class="num">{c.clone()}</td> }).collect_view()}</tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                        <TableExport table=v.table.clone() name=format!("{slug}-dynamics") />
                    </section>
                </div>
            }.into_any()
        }}
    }
}
