//! RFT data & advantage shaping (paper section 4; paper-notes items 15-17): pick a run and an
//! RFT selection strategy, see what the rule filters and the strategy keep, preview the selected
//! rollouts and download them as JSON Lines; for one problem's group, the GRPO advantages
//! (eq. 10), the PPL-shaped ones (eqs. 7, 11) and the position-shaped ones per token (eq. 12),
//! and the position-bonus curve (eq. 8) with its parameters editable.
//! State in the URL: `run`, `strategy`, `count`, `seed`, `page`, `problem`, `sample`, `alpha`,
//! `gamma`, `d`, `m`, `n`, `std`, `hide`. Parameters are GET forms, so they work without JS.

use leptos::prelude::*;

use crate::components::glossary::{Gloss, Term};
use leptos_router::components::Form;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::get_rft_view;
use crate::components::analysis::{
    hidden_series, toggle_hidden, ExperimentMissing, FrameNotes, ViewTabs,
};
use crate::components::chart::{ChartView, TableExport};
use crate::components::common::{DemoBanner, ErrorBox, PageTitle};
use crate::tables::TableData;
use crate::views::{strategy_description, RftRequest, RftView, StdKind, RFT_STRATEGIES};

#[component]
pub fn RftPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let request = move || query.with(|q| RftRequest::from_query(|k| q.get(k)));
    let data = Resource::new(
        move || (slug(), request()),
        |(slug, req)| get_rft_view(slug, req),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Selecting rollouts and shaping advantages…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => view! { <ExperimentMissing slug=slug() /> }.into_any(),
                    Ok(Some(v)) => view! { <RftBody v /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Hidden inputs carrying the rest of the view state through a GET form (`skip`: the keys the
/// form edits).
fn hidden_inputs(req: &RftRequest, skip: &[&str]) -> impl IntoView {
    req.query()
        .pairs()
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| view! { <input type="hidden" name=k.clone() value=v.clone() /> })
        .collect_view()
}

fn data_table(table: &TableData, testid: &'static str) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data-table" data-testid=testid>
                <thead><tr>{table.headers.iter().map(|h| view! { <th scope="col">{h.clone()}</th> }).collect_view()}</tr></thead>
                <tbody>
                    {table.rows.iter().map(|row| view! {
                        <tr>{row.iter().zip(&table.numeric).map(|(c, &num)| view! { <td class:num=num>{c.clone()}</td> }).collect_view()}</tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "—".into())
}

#[component]
fn RftBody(v: RftView) -> impl IntoView {
    let slug = v.frame.experiment.slug.clone();
    let path = format!("/experiments/{slug}/rft");
    let hidden = hidden_series();
    let req = v.request.clone();
    let link = {
        let path = path.clone();
        let req = req.clone();
        move |f: &dyn Fn(&mut RftRequest)| {
            let mut r = req.clone();
            f(&mut r);
            r.query()
                .set("hide", hidden.get_untracked().join(","))
                .href(&path)
        }
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
                .href(&format!("/export/experiments/{slug}/rft/{chart}.{ext}"))
        })
    };
    let name = v.frame.experiment.name.clone();

    // ---- controls
    let run_links = v
        .frame
        .runs
        .iter()
        .map(|run| {
            let on = Some(run.id) == req.run;
            let id = run.id;
            let href = link(&|r| {
                r.run = Some(id);
                r.problem = None;
                r.sample = None;
                r.page = 1;
            });
            view! { <li><a href=href class:on=on aria-current=on.then_some("true") data-run-id=run.id>{run.label.clone()}</a></li> }
        })
        .collect_view();
    let strategy_links = RFT_STRATEGIES
        .iter()
        .map(|&s| {
            let on = s == req.strategy;
            let href = link(&|r| {
                r.strategy = s;
                r.page = 1;
            });
            view! {
                <li>
                    <a href=href class:on=on aria-current=on.then_some("true") data-strategy=s.name() title=strategy_description(s)>
                        <code>{s.name()}</code>
                    </a>
                    <span class="meta">{strategy_description(s)}</span>
                </li>
            }
        })
        .collect_view();
    let run_meta = v.run.as_ref().map(|r| {
        format!(
            "{} rollouts; mean token entropy on {}, mean RBF on {}, perplexity on {}.",
            r.rollouts, r.with_entropy, r.with_rbf, r.with_ppl
        )
    });
    let invalid = (!req.invalid.is_empty()).then(|| {
        view! {
            <p class="notice" role="status" data-testid="invalid-params">
                {format!("This link has values caplens cannot use ({}); the defaults are shown instead.", req.invalid.join(", "))}
            </p>
        }
    });
    let problem_missing = v.problem_missing.clone().map(|p| {
        view! {
            <p class="notice" role="status" data-testid="missing-problem">
                {format!("Problem “{p}” is not in this run; showing the first problem with mixed rewards instead.")}
            </p>
        }
    });

    // ---- selection
    let selection = match &v.selection {
        Err(why) => view! { <p class="notice" data-testid="rft-selection-error">{why.clone()}</p> }
            .into_any(),
        Ok(sel) => {
            let page = sel.page;
            let pages = sel.pages;
            let prev = (page > 1).then(|| link(&|r| r.page = page - 1));
            let next = (page < pages).then(|| link(&|r| r.page = page + 1));
            let first = (page - 1) * crate::views::RFT_PAGE_SIZE;
            let items = sel
                .rows
                .iter()
                .enumerate()
                .map(|(k, row)| {
                    let head = format!(
                        "#{} · {} · sample {} · {} · entropy {} · RBF {} · PPL {}",
                        first + k + 1,
                        row.problem,
                        row.sample,
                        if row.correct { "correct" } else { "incorrect" },
                        num(row.mean_entropy, 3),
                        num(row.mean_rbf, 2),
                        num(row.perplexity, 3)
                    );
                    view! {
                        <li>
                            <details>
                                <summary data-testid="rft-preview-head">{head}</summary>
                                <pre class="rft-text" data-testid="rft-preview-text">{row.text.clone()}</pre>
                                {(row.cut_chars > 0).then(|| view! {
                                    <p class="meta">{format!("{} characters after the first box were cut.", row.cut_chars)}</p>
                                })}
                            </details>
                        </li>
                    }
                })
                .collect_view();
            view! {
                <p data-testid="rft-selected">
                    {format!("{} rollouts selected ({} correct, {} incorrect). ", sel.selected, v.counts.selected_correct, v.counts.selected_incorrect)}
                    <a href=v.download_href.clone() download data-testid="rft-download" rel="external">"Download as JSON Lines"</a>
                </p>
                <ol class="rft-preview" data-testid="rft-preview" start=first + 1>{items}</ol>
                <nav class="pager" aria-label="Preview pages" data-testid="rft-pages">
                    {prev.map(|h| view! { <a href=h rel="prev">"← previous"</a> " " })}
                    <span>{format!("page {page} of {pages}")}</span>
                    {next.map(|h| view! { " " <a href=h rel="next">"next →"</a> })}
                </nav>
            }
            .into_any()
        }
    };

    // ---- shaping form
    let group_problems = v
        .group
        .as_ref()
        .map(|g| g.problems.clone())
        .unwrap_or_default();
    let current_problem = v.group.as_ref().map(|g| g.problem.clone());
    let shaping_hidden = hidden_inputs(&req, &["problem", "alpha", "gamma", "d", "m", "n", "std"]);
    let (alpha, gamma, d, m, n, std) = (
        req.alpha.to_string(),
        req.gamma.to_string(),
        req.d.to_string(),
        req.m.to_string(),
        req.n.to_string(),
        req.std,
    );
    let shaping_form = view! {
        <Form method="get" action=path.clone() replace=true>
            <div class="rft-form" data-testid="rft-shaping-form">
                {shaping_hidden}
                {(!group_problems.is_empty()).then(|| view! {
                    <label>"Problem (correct / rollouts) "
                        <select name="problem" data-testid="rft-problem">
                            {group_problems.iter().map(|(key, n, c)| {
                                let selected = Some(key) == current_problem.as_ref();
                                view! { <option value=key.clone() selected=selected>{format!("{key} ({c}/{n})")}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                })}
                <label>"α (PPL, " <Gloss term=Term::Shaping>"eq. 11"</Gloss> ") " <input type="number" step="any" name="alpha" value=alpha data-testid="param-alpha" /></label>
                <label>"γ (bonus scale) " <input type="number" step="any" name="gamma" value=gamma data-testid="param-gamma" /></label>
                <label>"d (direction) " <input type="number" step="any" name="d" value=d data-testid="param-d" /></label>
                <label>"m (slope) " <input type="number" step="any" name="m" value=m data-testid="param-m" /></label>
                <label>"n (shift: printed −0.5, ramp 0.5) " <input type="number" step="any" name="n" value=n data-testid="param-n" /></label>
                <label>"std "
                    <select name="std" data-testid="param-std">
                        <option value="sample" selected=std == StdKind::Sample>"sample (G − 1)"</option>
                        <option value="population" selected=std == StdKind::Population>"population (G)"</option>
                    </select>
                </label>
                <button type="submit" data-testid="rft-apply">"Apply"</button>
            </div>
        </Form>
    };
    let n_links = view! {
        <p class="meta">
            "Eq. 8's shift n: "
            <a href=link(&|r| r.n = -0.5) data-testid="n-printed">"n = −0.5 (as printed)"</a>
            " · "
            <a href=link(&|r| r.n = 0.5) data-testid="n-ramp">"n = 0.5 (ramps over the response)"</a>
        </p>
    };

    // ---- group
    let group = match v.group.clone() {
        None => view! { <p class="notice" data-testid="rft-no-group">"This run has no problem with stored rollouts."</p> }.into_any(),
        Some(g) => {
            let rows = g
                .rows
                .iter()
                .zip(&g.table.rows)
                .map(|(row, cells)| {
                    let sample = row.sample;
                    let on = Some(sample) == g.sample;
                    let href = link(&|r| r.sample = Some(sample));
                    view! {
                        <tr class:on=on>
                            <td class="num"><a href=href data-testid="rft-sample-link" aria-current=on.then_some("true")>{cells[0].clone()}</a></td>
                            {cells[1..].iter().enumerate().map(|(j, c)| view! { <td class:num=j != 0>{c.clone()}</td> }).collect_view()}
                        </tr>
                    }
                })
                .collect_view();
            let headers = g.table.headers.clone();
            view! {
                <h3>{g.problem.clone()}</h3>
                <details class="rft-problem">
                    <summary>"Prompt and reference answer"</summary>
                    <pre class="rft-text" data-testid="rft-prompt">{g.prompt.clone()}</pre>
                    <p>"Reference answer: " <code>{g.reference.clone()}</code></p>
                </details>
                <p data-testid="rft-group-summary">{g.summary.clone()}</p>
                {g.ppl_note.clone().map(|n| view! { <p class="notice" data-testid="rft-ppl-note">{n}</p> })}
                <div class="table-wrap scroll">
                    <table class="data-table" data-testid="rft-group-table">
                        <thead><tr>{headers.iter().map(|h| view! { <th scope="col">{h.clone()}</th> }).collect_view()}</tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
                <TableExport table=g.table.clone() name=format!("{slug}-rft-group") />
                {g.token_note.clone().map(|n| view! { <p class="notice" data-testid="rft-token-note">{n}</p> })}
                {g.tokens.clone().map(|spec| view! {
                    <ChartView definition=Term::Shaping spec title="Advantage per token position of the chosen rollout (eqs. 10, 11, 12)" hidden=hidden toggle_href=toggle export_href=export("tokens") height=320 testid="rft-token-chart" />
                })}
                {(!g.token_table.rows.is_empty()).then(|| view! {
                    {data_table(&g.token_table, "rft-token-table")}
                    <TableExport table=g.token_table.clone() name=format!("{slug}-rft-tokens") />
                })}
            }
            .into_any()
        }
    };

    // ---- bonus
    let b = &v.bonus;
    let bonus_note = if req.gamma == 0.0 {
        "γ = 0: there is no position bonus.".to_string()
    } else if b.nearly_constant {
        format!(
            "b(0) = {:.5}, b(1) = {:.5}: with n = {} the bonus is nearly constant across the response — every token's |A| grows by about {:.4}, and late tokens are not favoured. \
             The paper prints n = −0.5, but its text says the bonus increases toward the end, which needs n inside [0, 1] (n = 0.5 ramps from {:.5} to {:.5}).",
            b.at_start,
            b.at_end,
            req.n,
            (b.at_start + b.at_end) / 2.0,
            RftRequest { n: 0.5, ..req.clone() }.position_bonus().bonus(0.0),
            RftRequest { n: 0.5, ..req.clone() }.position_bonus().bonus(1.0),
        )
    } else {
        format!(
            "b(0) = {:.5}, b(1) = {:.5}: the bonus {} across the response.",
            b.at_start,
            b.at_end,
            if b.at_end > b.at_start {
                "rises"
            } else {
                "falls"
            }
        )
    };

    let selection_hidden = hidden_inputs(&req, &["count", "seed", "page"]);
    let (count, seed) = (req.count.to_string(), req.seed.to_string());
    view! {
        <PageTitle text=format!("RFT data & shaping · {name}") />
        <h1>{name.clone()}</h1>
        {v.frame.experiment.is_demo.then(|| view! { <DemoBanner /> })}
        <ViewTabs slug=slug.clone() current="rft" />
        <FrameNotes frame=v.frame.clone() />
        {invalid}
        {problem_missing}
        <div class="analysis-layout">
            <aside class="controls">
                <details open>
                    <summary>"Run"</summary>
                    <ul data-testid="rft-runs">{run_links}</ul>
                </details>
                {run_meta.map(|m| view! { <p class="meta" data-testid="rft-run-meta">{m}</p> })}
                <details open>
                    <summary>"Strategy"</summary>
                    <ul data-testid="rft-strategies">{strategy_links}</ul>
                </details>
                <Form method="get" action=path.clone()>
                    <div class="rft-form" data-testid="rft-selection-form">
                        {selection_hidden}
                        <label>"Rollouts to select " <input type="number" min="0" step="1" name="count" value=count data-testid="param-count" /></label>
                        <label>"Seed " <input type="number" min="0" step="1" name="seed" value=seed data-testid="param-seed" /></label>
                        <button type="submit">"Select"</button>
                    </div>
                </Form>
            </aside>
            <section class="analysis-main">
                <h2>"RFT data selection (" <Gloss term=Term::RftSelection>"sec. 4.4.1"</Gloss> ")"</h2>
                <p class="meta">
                    "Rule filters first: a " <code>"\\boxed{…}"</code> " answer, the text cut after the first box, a digit, "
                    "3-gram redundancy at most 0.31 (1 − distinct word 3-grams / all word 3-grams). Then the strategy chooses."
                </p>
                {data_table(&v.counts_table, "rft-counts")}
                <TableExport table=v.counts_table.clone() name=format!("{slug}-rft-counts") />
                {selection}
                <h2>"Advantages of one problem's group (" <Gloss term=Term::Shaping>"eqs. 10, 7, 11, 12"</Gloss> ")"</h2>
                {shaping_form}
                {n_links}
                {group}
                <h2>"Position bonus (" <Gloss term=Term::Shaping>"eq. 8"</Gloss> ")"</h2>
                <p data-testid="rft-bonus-note">{bonus_note}</p>
                <ChartView definition=Term::Shaping spec=b.chart.clone() title="Position bonus b(l) = γ·sigmoid(d·m·(l − n)) over the relative token position" hidden=hidden toggle_href=toggle export_href=export("bonus") height=300 testid="rft-bonus-chart" />
                {data_table(&b.table, "rft-bonus-table")}
                <TableExport table=b.table.clone() name=format!("{slug}-rft-bonus") />
            </section>
        </div>
    }
}
