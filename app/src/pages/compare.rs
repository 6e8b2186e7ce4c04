//! SFT vs RL (paper fig. 1 a–d): a lineage (base -> sft -> rl, or any three runs) in four panels
//! — pass@k, answer diversity, unsolvable Venn, rollout branching factor — and takeaways computed
//! from the data, each linking to the view that shows it. State: `runs` in the URL.

use leptos::prelude::*;

use crate::components::glossary::Term;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::get_compare_view;
use crate::components::analysis::{
    ExperimentMissing, FrameNotes, RunPicker, VerdictSwitch, ViewTabs,
};
use crate::components::chart::ChartView;
use crate::components::common::{DemoBanner, ErrorBox, PageTitle};
use crate::views::{CompareRequest, CompareView};

#[component]
pub fn ComparePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let request = move || query.with(|q| CompareRequest::from_query(|k| q.get(k)));
    let data = Resource::new(
        move || (slug(), request()),
        |(slug, req)| get_compare_view(slug, req),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Comparing…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                    Ok(Some(v)) => view! { <CompareBody v /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn CompareBody(v: CompareView) -> impl IntoView {
    let slug = v.frame.experiment.slug.clone();
    let path = format!("/experiments/{slug}/compare");
    let verdicts = v.frame.verdicts.selected;
    let unreviewed = !v.frame.verdicts.reviewed;
    let picker_href = {
        let path = path.clone();
        Callback::new(move |ids: Vec<i64>| {
            CompareRequest {
                runs: ids,
                verdicts,
                unreviewed,
            }
            .query()
            .href(&path)
        })
    };
    let verdict_href = {
        let path = path.clone();
        let runs = v.frame.selected.clone();
        Callback::new(move |verdicts| {
            CompareRequest {
                runs: runs.clone(),
                verdicts,
                unreviewed,
            }
            .query()
            .href(&path)
        })
    };
    let reviewed_href = {
        let path = path.clone();
        let runs = v.frame.selected.clone();
        Callback::new(move |unreviewed| {
            CompareRequest {
                runs: runs.clone(),
                verdicts,
                unreviewed,
            }
            .query()
            .href(&path)
        })
    };
    let query = CompareRequest {
        runs: v.frame.selected.clone(),
        verdicts,
        unreviewed,
    }
    .query();
    let export = |chart: &'static str| {
        let slug = slug.clone();
        let query = query.clone();
        Callback::new(move |ext: String| {
            query.href(&format!("/export/experiments/{slug}/compare/{chart}.{ext}"))
        })
    };
    let name = v.frame.experiment.name.clone();
    let no_hidden = Signal::derive(Vec::new);
    let takeaways = v
        .takeaways
        .iter()
        .map(|t| view! { <li><a href=t.href.clone()>{t.text.clone()}</a></li> })
        .collect_view();
    let no_takeaways = v.takeaways.is_empty();
    view! {
        <PageTitle text=format!("SFT vs RL · {name}") />
        <h1>{name.clone()}</h1>
        {v.frame.experiment.is_demo.then(|| view! { <DemoBanner /> })}
        <ViewTabs slug=slug.clone() current="compare" />
        <FrameNotes frame=v.frame.clone() />
        <VerdictSwitch frame=v.frame.verdicts.clone() href=verdict_href reviewed_href />
        <div class="analysis-layout">
            <aside class="controls">
                <RunPicker runs=v.frame.runs.clone() selected=v.frame.selected.clone() href=picker_href max=3 />
                <p class="meta">"Pick up to three runs, parent first (base → sft → rl)."</p>
            </aside>
            <section class="analysis-main">
                <h2>"Takeaways"</h2>
                {if no_takeaways {
                    view! { <p data-testid="takeaways">"Nothing to report: pick at least two runs with rollouts."</p> }.into_any()
                } else {
                    view! { <ul class="takeaways" data-testid="takeaways">{takeaways}</ul> }.into_any()
                }}
                <div class="panels">
                    <ChartView definition=Term::PassAtK spec=v.passk.clone() title="(a) pass@k" hidden=no_hidden export_href=export("passk") width=520 height=330 testid="compare-passk" />
                    <ChartView definition=Term::AnswerDiversity spec=v.diversity.clone() title="(b) answer diversity" hidden=no_hidden export_href=export("diversity") width=520 height=330 testid="compare-diversity" />
                    <ChartView definition=Term::Unsolvable spec=v.venn.clone() title="(c) unsolvable problems (all samples)" hidden=no_hidden export_href=export("venn") width=520 height=330 testid="compare-venn" />
                    {match v.rbf.clone() {
                        Some(spec) => view! {
                            <ChartView definition=Term::BranchingFactor spec title="(d) rollout branching factor" hidden=no_hidden export_href=export("rbf") width=520 height=330 testid="compare-rbf" />
                        }.into_any(),
                        None => view! {
                            <figure class="chart empty" data-testid="compare-rbf">
                                <figcaption>"(d) rollout branching factor"</figcaption>
                                <p>"None of these runs has token-level data (logprobs), so RBF cannot be computed."</p>
                            </figure>
                        }.into_any(),
                    }}
                </div>
            </section>
        </div>
    }
}
