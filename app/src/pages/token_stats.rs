//! Token statistics (paper figs. 5, 6, table 5): entropy by relative position (the U-shape)
//! split correct vs incorrect, the PPL distribution per run, intervention impact by position and
//! by PPL group when intervention data exists, token-category counts. State: `runs`, `hide`.

use leptos::prelude::*;

use crate::components::glossary::{DefinitionLink, Term};
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::get_token_stats_view;
use crate::components::analysis::{
    hidden_series, toggle_hidden, ExperimentMissing, FrameNotes, RunPicker, ViewTabs,
};
use crate::components::chart::{ChartView, TableExport};
use crate::components::common::{DemoBanner, ErrorBox, PageTitle};
use crate::views::{TokenStatsRequest, TokenStatsView};

#[component]
pub fn TokenStatsPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let request = move || query.with(|q| TokenStatsRequest::from_query(|k| q.get(k)));
    let data = Resource::new(
        move || (slug(), request()),
        |(slug, req)| get_token_stats_view(slug, req),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Reading token statistics…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                    Ok(Some(v)) => view! { <TokenStatsBody v /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn TokenStatsBody(v: TokenStatsView) -> impl IntoView {
    let slug = v.frame.experiment.slug.clone();
    let path = format!("/experiments/{slug}/token-stats");
    let hidden = hidden_series();
    let req = TokenStatsRequest {
        runs: v.frame.selected.clone(),
    };
    let picker_href = {
        let path = path.clone();
        Callback::new(move |ids: Vec<i64>| TokenStatsRequest { runs: ids }.query().href(&path))
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
    let export = |chart: &'static str| {
        let slug = slug.clone();
        let req = req.clone();
        Callback::new(move |ext: String| {
            req.query()
                .set("hide", hidden.get_untracked().join(","))
                .href(&format!(
                    "/export/experiments/{slug}/token-stats/{chart}.{ext}"
                ))
        })
    };
    let name = v.frame.experiment.name.clone();
    let sources = v
        .sources
        .iter()
        .map(|(run, src)| view! { <li><strong>{run.clone()}</strong>": "{src.clone()}</li> })
        .collect_view();
    let nothing = v.position.is_none() && v.ppl.is_none();
    let tables = v
        .tables
        .iter()
        .map(|(name, t)| {
            let t = t.clone();
            let (title, term) = table_title(name);
            let heading_id = format!("token-table-{name}-heading");
            view! {
                <h3 id=heading_id.clone()>{title} " " <DefinitionLink term /></h3>
                <div class="table-wrap">
                    <table class="data-table" aria-labelledby=heading_id data-testid=format!("token-table-{name}")>
                        <thead><tr>{t.headers.iter().map(|h| view! { <th scope="col">{h.clone()}</th> }).collect_view()}</tr></thead>
                        <tbody>
                            {t.rows.iter().map(|row| view! {
                                <tr>{row.iter().map(|c| view! { <td class="num">{c.clone()}</td> }).collect_view()}</tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
                <TableExport table=t.clone() name=format!("{slug}-token-{name}") />
            }
        })
        .collect_view();
    view! {
        <PageTitle text=format!("Token statistics · {name}") />
        <h1>{name.clone()}</h1>
        {v.frame.experiment.is_demo.then(|| view! { <DemoBanner /> })}
        <ViewTabs slug=slug.clone() current="token-stats" />
        <FrameNotes frame=v.frame.clone() />
        <div class="analysis-layout">
            <aside class="controls">
                <RunPicker runs=v.frame.runs.clone() selected=v.frame.selected.clone() href=picker_href max=3 />
                <p class="meta">"Up to three runs: each draws a correct and an incorrect line."</p>
            </aside>
            <section class="analysis-main">
                <ul class="meta" data-testid="entropy-sources">{sources}</ul>
                {nothing.then(|| view! {
                    <p class="notice" data-testid="no-token-data">
                        "None of the selected runs has token-level data. Upload rollouts with logprobs (vLLM/OpenAI "
                        <code>"logprobs"</code>", Inspect, or the native "<code>"token_logprobs"</code>" fields)."
                    </p>
                })}
                {v.position.clone().map(|spec| view! {
                    <ChartView definition=Term::RelativePosition spec title="Token entropy by relative position (fig. 6a), correct vs incorrect responses" hidden=hidden toggle_href=toggle export_href=export("position") testid="position-chart" />
                })}
                {v.ppl.clone().map(|spec| view! {
                    <ChartView definition=Term::Perplexity spec title="Perplexity of responses (fig. 5a): share of rollouts per PPL range" hidden=hidden toggle_href=toggle export_href=export("ppl") height=300 testid="ppl-chart" />
                })}
                {v.impact.clone().map(|spec| view! {
                    <ChartView definition=Term::Intervention spec title="Intervention impact by position (fig. 6b): mean |I_t|" hidden=hidden toggle_href=toggle export_href=export("impact") height=300 testid="impact-chart" />
                })}
                {tables}
            </section>
        </div>
    }
}

/// The heading of one of the view's tables (by its key) and the glossary entry behind it.
fn table_title(key: &str) -> (&'static str, Term) {
    match key {
        "categories" => (
            "Token categories: tokens of each kind per response (table 1)",
            Term::TokenCategories,
        ),
        "ppl-groups" => (
            "Low- and high-perplexity responses: the bottom and top 20 % by PPL (fig. 5a)",
            Term::Perplexity,
        ),
        _ => (
            "Per run: token traces, mean entropy and perplexity of correct and incorrect responses",
            Term::TokenEntropy,
        ),
    }
}
