//! One experiment: its runs, grouped by model lineage, with a live filter.

use leptos::prelude::*;

use crate::components::glossary::{Gloss, Term};

use crate::components::common::PageTitle;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    api::{get_experiment, get_overview_view},
    components::analysis::{FrameNotes, VerdictSwitch, ViewTabs},
    components::chart::TableExport,
    components::common::{opt, percent, DemoBanner, ErrorBox, StageBadge},
    model::{ExperimentDetail, RunRow, RunVerdicts},
    urlstate::Query,
    views::{unreviewed_from_query, verdicts_from_query, OverviewView},
};

#[component]
pub fn ExperimentPage() -> impl IntoView {
    let params = use_params_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let detail = Resource::new(slug, get_experiment);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading experiment…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => {
                        #[cfg(feature = "ssr")]
                        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
                            resp.set_status(http::StatusCode::NOT_FOUND);
                        }
                        view! {
                            <PageTitle text="Experiment not found" />
                            <h1>"Experiment not found"</h1>
                            <p>
                                "There is no experiment called “" {slug()}
                                "”. It may have been renamed or deleted. "
                                <a href="/experiments">"All experiments"</a>
                            </p>
                        }
                            .into_any()
                    }
                    Ok(Some(detail)) => view! { <ExperimentView detail /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// How a run was graded, in one line: whose verdicts count by default, pass@1 under each when
/// the file carries its own, and how often the file and caplens agree.
pub fn verdict_summary(v: &RunVerdicts) -> String {
    let Some(t) = v.tally.as_ref() else {
        return "—".into();
    };
    let by = v.verdict_name.as_deref().unwrap_or("the file");
    if t.graded_by_file == 0 {
        return format!(
            "caplens' verifier ({} graded, {} unverifiable)",
            t.graded_by_caplens, t.unverifiable
        );
    }
    if t.agree + t.disagree == 0 {
        return format!("{by} (no reference for caplens)");
    }
    format!(
        "{by}: {} · caplens: {} · agree on {} ({} differ)",
        percent(v.pass_at_1_file),
        percent(v.pass_at_1_caplens),
        percent(t.agreement()),
        t.disagree
    )
}

/// The run's status, with how the tool's own run ended when not normally.
pub fn run_status(run: &RunRow) -> String {
    match &run.verdicts.tool_status {
        Some(s) => format!("{} (the tool's run: {s})", run.status),
        None => run.status.clone(),
    }
}

/// Does a run match the filter text? Case-insensitive over model, stage, dataset and label.
pub fn run_matches(run: &RunRow, filter: &str) -> bool {
    let needle = filter.trim().to_lowercase();
    needle.is_empty()
        || [&run.model, &run.stage, &run.dataset, &run.label]
            .iter()
            .any(|field| field.to_lowercase().contains(&needle))
}

#[component]
fn ExperimentView(detail: ExperimentDetail) -> impl IntoView {
    let ExperimentDetail { summary, runs } = detail;
    let filter = RwSignal::new(String::new());
    let total = runs.len();
    let runs = StoredValue::new(runs);
    let shown = move || {
        let f = filter.get();
        runs.with_value(|rs| rs.iter().filter(|r| run_matches(r, &f)).count())
    };
    view! {
        <PageTitle text=summary.name.clone() />
        <h1>{summary.name.clone()}</h1>
        {summary.is_demo.then(|| view! { <DemoBanner /> })}
        <p class="description">{summary.description.clone()}</p>
        <ViewTabs slug=summary.slug.clone() current="" />
        <ModelOverview slug=summary.slug.clone() />
        <section aria-labelledby="runs-heading">
            <div class="section-head">
                <h2 id="runs-heading">"Runs"</h2>
                <label class="filter">
                    <span class="visually-hidden">"Filter runs"</span>
                    <input
                        type="search"
                        placeholder="Filter by model, stage, dataset…"
                        data-testid="run-filter"
                        prop:value=move || filter.get()
                        on:input:target=move |ev| filter.set(ev.target().value())
                    />
                </label>
            </div>
            <p class="meta" data-testid="run-count" aria-live="polite">
                {move || format!("{} of {} runs shown", shown(), total)}
            </p>
            <div class="table-wrap">
                <table class="data-table" data-testid="runs-table">
                    <thead>
                        <tr>
                            <th scope="col">"Model"</th>
                            <th scope="col">"Stage"</th>
                            <th scope="col">"Parent"</th>
                            <th scope="col">"Dataset"</th>
                            <th scope="col" class="num">"n / problem"</th>
                            <th scope="col" class="num">"Problems"</th>
                            <th scope="col" class="num">"Rollouts"</th>
                            <th scope="col" class="num">"pass@1"</th>
                            <th scope="col">"Verdicts"</th>
                            <th scope="col">"Sampling"</th>
                            <th scope="col">"Status"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {runs
                            .get_value()
                            .into_iter()
                            .map(|run| {
                                let hidden_run = run.clone();
                                let hidden = move || !run_matches(&hidden_run, &filter.get());
                                let depth = run.lineage_depth.min(4);
                                view! {
                                    <tr class:hidden=hidden data-run-id=run.id>
                                        <td class=format!("lineage depth-{depth}")>{run.model.clone()}</td>
                                        <td><StageBadge stage=run.stage.clone() /></td>
                                        <td>{run.parent_model.clone().unwrap_or_else(|| "—".into())}</td>
                                        <td>{run.dataset.clone()}</td>
                                        <td class="num">{opt(run.n_per_problem)}</td>
                                        <td class="num">{run.problems}</td>
                                        <td class="num">{run.rollouts}</td>
                                        <td class="num" data-testid="pass-at-1">{percent(run.pass_at_1)}</td>
                                        <td class="verdicts" data-testid="run-verdicts">{verdict_summary(&run.verdicts)}</td>
                                        <td class="sampling">
                                            {format!(
                                                "T={} · top-p={} · max {} tok",
                                                opt(run.temperature),
                                                opt(run.top_p),
                                                opt(run.max_tokens),
                                            )}
                                        </td>
                                        <td data-testid="run-status">{run_status(&run)}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

/// Per model (grouped by lineage): pass@1, pass@max-k, unsolvable count, answer diversity,
/// entropy and RBF when token data exists, quality-issue rates.
#[component]
fn ModelOverview(slug: String) -> impl IntoView {
    let query = use_query_map();
    let verdicts = move || query.with(|q| verdicts_from_query(&|k| q.get(k)));
    let unreviewed = move || query.with(|q| unreviewed_from_query(&|k| q.get(k)));
    let data = Resource::new(
        move || (slug.clone(), verdicts(), unreviewed()),
        |(slug, v, u)| get_overview_view(slug, v, u),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Computing the overview…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => ().into_any(),
                    Ok(Some(v)) => view! { <OverviewTable v /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn OverviewTable(v: OverviewView) -> impl IntoView {
    let slug = v.frame.experiment.slug.clone();
    let verdict_href = {
        let path = format!("/experiments/{slug}");
        let unreviewed = !v.frame.verdicts.reviewed;
        Callback::new(
            move |source: Option<caplens_analysis::verdicts::VerdictSource>| {
                Query::new()
                    .set("verdicts", source.map_or("", |s| s.as_str()))
                    .set("reviewed", if unreviewed { "0" } else { "" })
                    .href(&path)
            },
        )
    };
    let reviewed_href = {
        let path = format!("/experiments/{slug}");
        let verdicts = v.frame.verdicts.selected;
        Callback::new(move |unreviewed: bool| {
            Query::new()
                .set("verdicts", verdicts.map_or("", |s| s.as_str()))
                .set("reviewed", if unreviewed { "0" } else { "" })
                .href(&path)
        })
    };
    let verdicts_param = v.frame.verdicts.selected.map_or("", |s| s.as_str());
    let reviewed_param = if v.frame.verdicts.reviewed { "" } else { "0" };
    let num =
        |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_else(|| "—".into());
    let rows = v
        .rows
        .iter()
        .map(|r| {
            let depth = r.run.lineage_depth.min(4);
            let passk = Query::new()
                .set("runs", r.run.id)
                .set("verdicts", verdicts_param)
                .set("reviewed", reviewed_param)
                .href(&format!("/experiments/{slug}/passk"));
            view! {
                <tr data-run-id=r.run.id>
                    <td class=format!("lineage depth-{depth}")><a href=passk>{r.run.label.clone()}</a></td>
                    <td><StageBadge stage=r.run.stage.clone() /></td>
                    <td class="num">{r.problems}</td>
                    <td class="num" data-testid="overview-pass1">{percent(r.pass_at_1)}</td>
                    <td class="num" data-testid="overview-passmax">
                        {r.pass_at_max.map(|(k, p)| format!("{} @{}", percent(Some(p)), k)).unwrap_or_else(|| "—".into())}
                    </td>
                    <td class="num" data-testid="overview-unsolvable">{r.unsolvable}</td>
                    <td class="num">{num(r.diversity, 2)}</td>
                    <td class="num">{num(r.mean_entropy, 3)}</td>
                    <td class="num">{num(r.mean_rbf, 2)}</td>
                    <td class="num">{percent(r.format_violation_rate)}</td>
                    <td class="num">{percent(r.language_mixing_rate)}</td>
                    <td class="num">{percent(r.redundancy_rate)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="models-heading">
            <h2 id="models-heading">"Models"</h2>
            <FrameNotes frame=v.frame.clone() />
            <VerdictSwitch frame=v.frame.verdicts.clone() href=verdict_href reviewed_href />
            <p class="meta">
                "Grouped by lineage (children under their parent). pass@max-k is at the largest k every problem was sampled; "
                <Gloss term=Term::Unsolvable>"unsolvable"</Gloss> " = no correct rollout in all n; distinct answers per problem (" <Gloss term=Term::AnswerDiversity>"fig. 1b"</Gloss> "); "
                <Gloss term=Term::TokenEntropy>"entropy"</Gloss> " and " <Gloss term=Term::BranchingFactor>"RBF"</Gloss> " need token data."
            </p>
            <div class="table-wrap">
                <table class="data-table" data-testid="overview-table">
                    <thead>
                        <tr>
                            <th scope="col">"Run"</th>
                            <th scope="col">"Stage"</th>
                            <th scope="col" class="num">"Problems"</th>
                            <th scope="col" class="num">"pass@1"</th>
                            <th scope="col" class="num">"pass@max-k"</th>
                            <th scope="col" class="num">"Unsolvable"</th>
                            <th scope="col" class="num">"Distinct answers"</th>
                            <th scope="col" class="num">"Entropy (nats)"</th>
                            <th scope="col" class="num"><Gloss term=Term::BranchingFactor>"RBF"</Gloss></th>
                            <th scope="col" class="num">"Format violations"</th>
                            <th scope="col" class="num">"Language mixing"</th>
                            <th scope="col" class="num">"Redundant"</th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            <TableExport table=v.table.clone() name=format!("{slug}-overview") />
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: &str, stage: &str) -> RunRow {
        RunRow {
            id: 1,
            label: String::new(),
            model: model.into(),
            stage: stage.into(),
            parent_model: None,
            training_step: None,
            dataset: "demo".into(),
            temperature: None,
            top_p: None,
            max_tokens: None,
            n_per_problem: None,
            status: "completed".into(),
            origin: "demo".into(),
            created_at: String::new(),
            problems: 0,
            rollouts: 0,
            pass_at_1: None,
            lineage_depth: 0,
            verdicts: Default::default(),
        }
    }

    #[test]
    fn filter_matches_case_insensitively_on_any_field() {
        let r = run("Qwen-RL-7B", "rl");
        assert!(run_matches(&r, ""));
        assert!(run_matches(&r, "qwen"));
        assert!(run_matches(&r, " RL "));
        assert!(!run_matches(&r, "sft"));
    }
}
