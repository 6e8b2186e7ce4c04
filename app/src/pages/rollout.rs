//! One rollout (`/rollouts/:id`): its response as tokens coloured by a metric (the token
//! heatmap), with a legend, a hover card, a rendered-text view, the token at `pos=`, and the
//! response's quality flags, PPL, mean entropy and RBF.
//!
//! View state in the query string: `metric=entropy|rbf|logprob|impact|gradnorm`,
//! `view=tokens|text`, `pos=N` (one token, highlighted and scrolled into view).
//!
//! Speed on a 32k-token response: the server sends compact columns ([`crate::heat::F32Column`]);
//! tokens are drawn as blocks of [`CHUNK`] spans (one `inner_html` each, not hydrated node by
//! node, `content-visibility: auto` in the stylesheet so off-screen blocks cost no layout); one
//! listener on the container finds the token under the pointer from its block's `data-start`.
//! A token's alternatives are fetched when its card is shown, not sent for every token.

use leptos::prelude::*;

use crate::components::glossary::{term_of_metric, DefinitionLink, Gloss, Term};
use leptos_router::{hooks::use_params_map, hooks::use_query_map, params::ParamsMap};

use crate::{
    api::{get_rollout, get_rollout_token},
    components::{
        common::{ErrorBox, PageTitle, StageBadge},
        detail::{fixed, href, set_not_found, MathAnswer, MathText},
    },
    heat::{chunk_html, fmt_value, Metric, TokenDetail, TokenHeatmap, BUCKETS, CHUNK},
    model::{RolloutRow, RolloutView},
};

/// The rollout page's view state, as in its URL.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RolloutQuery {
    pub metric: Option<Metric>,
    /// A `metric=` value that names no metric (the page says so).
    pub unknown_metric: Option<String>,
    pub text_view: bool,
    pub pos: Option<usize>,
}

impl RolloutQuery {
    pub fn from_map(q: &ParamsMap) -> Self {
        let raw = q.get("metric").filter(|m| !m.is_empty());
        let metric = raw.as_deref().and_then(Metric::parse);
        RolloutQuery {
            metric,
            unknown_metric: raw.filter(|_| metric.is_none()),
            text_view: q.get("view").as_deref() == Some("text"),
            pos: q.get("pos").and_then(|p| p.trim().parse().ok()),
        }
    }

    pub fn href(&self, id: i64) -> String {
        href(
            &format!("/rollouts/{id}"),
            &[
                (
                    "metric",
                    self.metric
                        .map(|m| m.as_str().to_string())
                        .unwrap_or_default(),
                ),
                (
                    "view",
                    if self.text_view {
                        "text".into()
                    } else {
                        String::new()
                    },
                ),
                ("pos", self.pos.map(|p| p.to_string()).unwrap_or_default()),
            ],
        )
    }
}

#[component]
pub fn RolloutPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").and_then(|s| s.parse::<i64>().ok());
    let state = Memo::new(move |_| RolloutQuery::from_map(&query.read()));
    // Resources are created here, once (not inside Suspense content, which the server renders
    // more than once): the heatmap per metric, and the token at `pos=`.
    let data = Resource::new(
        move || (id(), state.read().metric),
        |(id, metric)| async move {
            match id {
                Some(id) => get_rollout(id, metric).await,
                None => Ok(None),
            }
        },
    );
    let selected = Resource::new(
        move || (id(), state.read().pos),
        |(id, pos)| async move {
            match (id, pos) {
                (Some(id), Some(pos)) => get_rollout_token(id, pos).await,
                _ => Ok(None),
            }
        },
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading rollout…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    Ok(None) => {
                        set_not_found();
                        let raw = params.read_untracked().get("id").unwrap_or_default();
                        view! {
                            <PageTitle text="Rollout not found" />
                            <h1>"Rollout not found"</h1>
                            <p data-testid="rollout-missing">
                                "There is no rollout with id “" {raw}
                                "”. It may have been deleted with its run. "
                                <a href="/experiments">"All experiments"</a>
                            </p>
                        }
                            .into_any()
                    }
                    Ok(Some(view)) => view! { <RolloutPageView data=view state selected /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

type TokenResource = Resource<Result<Option<TokenDetail>, ServerFnError>>;

#[component]
fn RolloutPageView(
    data: RolloutView,
    state: Memo<RolloutQuery>,
    selected: TokenResource,
) -> impl IntoView {
    let RolloutView {
        row,
        run_id,
        model,
        stage,
        problem_id,
        problem_key,
        dataset,
        response,
        heatmap,
        trace_error,
    } = data;
    let id = row.id;
    let title = format!("Rollout #{} of problem {problem_key}", row.sample_index);
    let experiment =
        use_query_map().with_untracked(|q| q.get("experiment").filter(|e| !e.is_empty()));
    let problem_link = href(
        &format!("/problems/{problem_id}"),
        &[
            ("run", run_id.to_string()),
            ("open", id.to_string()),
            ("experiment", experiment.clone().unwrap_or_default()),
        ],
    );
    let summary = heatmap.as_ref().map(|h| h.summary);
    let main = match heatmap {
        Some(h) => {
            view! { <HeatmapSection id heatmap=h response=response.clone() state selected /> }
                .into_any()
        }
        None => {
            let why = match trace_error {
                Some(e) => view! { <p class="error-box" role="alert" data-testid="trace-error">{e}</p> }.into_any(),
                None => view! {
                    <p class="notice" role="note" data-testid="no-trace">
                        "This rollout has no token trace (its file had no per-token log-probabilities), so there is no heatmap. Its response:"
                    </p>
                }
                .into_any(),
            };
            view! {
                {why}
                {match response.clone() {
                    Some(text) => view! { <div class="response panel" data-testid="response"><MathText text /></div> }.into_any(),
                    None => view! { <p class="empty">"No response text was stored."</p> }.into_any(),
                }}
            }
            .into_any()
        }
    };
    view! {
        <PageTitle text=title.clone() />
        <p class="meta">
            {format!("{dataset} · ")}
            <a href=problem_link data-testid="problem-link">{format!("problem {problem_key}")}</a>
            {format!(" · run {run_id} · {model} ")}
            <StageBadge stage=stage />
        </p>
        <h1>{title}</h1>
        <RolloutFacts row=row.clone() />
        {main}
        {move || {
            // The discussion follows the selected token (pos=): comment on it from here.
            let pos = state.read().pos.map(|p| p as i64);
            let experiment = experiment.clone();
            view! { <crate::components::review::RolloutReviewPanel rollout=id experiment pos /> }
        }}
        {summary.is_some().then(|| {
            // Readers who cannot queue jobs (share-link visitors, the signed out) get no form.
            let session = crate::components::layout::use_session();
            let id = row.id;
            view! {
                <Suspense fallback=|| ()>
                    {move || session.get().and_then(|s| s.ok()).filter(|s| !s.read_only()).map(|_| view! { <InterventionPanel id /> })}
                </Suspense>
            }
        })}
        <section class="panel" aria-labelledby="quality-heading" data-testid="quality">
            <h2 id="quality-heading">"Quality and per-response numbers"</h2>
            <dl class="facts-grid">
                <dt><Gloss term=Term::QualityChecks>"Quality flags"</Gloss></dt>
                <dd data-testid="quality-flags">
                    {if row.quality_flags.is_empty() { "none".to_string() } else { row.quality_flags.join(", ") }}
                </dd>
                <dt><Gloss term=Term::Perplexity>"PPL"</Gloss></dt>
                <dd data-testid="ppl">{fixed(row.perplexity, 4)}</dd>
                <dt><Gloss term=Term::TokenEntropy>"Mean entropy (nats)"</Gloss></dt>
                <dd data-testid="mean-entropy">{fixed(row.mean_entropy, 4)}</dd>
                <dt><Gloss term=Term::BranchingFactor>"Mean RBF"</Gloss></dt>
                <dd data-testid="mean-rbf">{fixed(row.mean_rbf, 3)}</dd>
                {summary.map(|s| view! {
                    <dt>"From the trace"</dt>
                    <dd data-testid="trace-summary">
                        {format!(
                            "{} tokens · PPL {} · mean entropy {} · mean RBF {} · {} of {} tokens truncated top-K estimates",
                            s.tokens,
                            fixed(s.perplexity, 4),
                            fixed(s.mean_entropy, 4),
                            fixed(s.mean_rbf, 3),
                            s.truncated_tokens,
                            s.tokens,
                        )}
                    </dd>
                })}
            </dl>
            <p class="meta">
                "Flags: format violation (\\boxed{ not exactly once), language mixing (CJK ideographs), 3-gram redundancy above 0.31, no digit."
            </p>
        </section>
    }
}

#[component]
fn RolloutFacts(row: RolloutRow) -> impl IntoView {
    view! {
        <dl class="facts-grid" data-testid="rollout-facts">
            <dt>"Verdict"</dt>
            <dd class=if row.correct { "verdict correct" } else { "verdict wrong" }>
                {if row.correct { "✓ correct" } else { "✗ wrong" }}
            </dd>
            <dt>"Answer"</dt>
            <dd>
                {match row.answer {
                    Some(a) => view! { <MathAnswer text=a /> }.into_any(),
                    None => view! { <span class="muted">"none"</span> }.into_any(),
                }}
            </dd>
            <dt>"Tokens"</dt>
            <dd>{row.token_count.map(|t| t.to_string()).unwrap_or_else(|| "—".into())}</dd>
            <dt>"Finish reason"</dt>
            <dd>{row.finish_reason.unwrap_or_else(|| "—".into())}</dd>
        </dl>
    }
}

#[component]
fn HeatmapSection(
    id: i64,
    heatmap: TokenHeatmap,
    response: Option<String>,
    state: Memo<RolloutQuery>,
    selected: TokenResource,
) -> impl IntoView {
    let metric = heatmap.metric;
    let available = heatmap.available.clone();
    let unavailable = !available.contains(&metric);
    let n = heatmap.tokens.len();
    let h = StoredValue::new(heatmap);
    let tabs = Metric::ALL
        .into_iter()
        .map(|m| {
            if available.contains(&m) {
                view! {
                    <a
                        href=move || RolloutQuery { metric: Some(m), unknown_metric: None, ..state.get() }.href(id)
                        data-noscroll=""
                        aria-current=(m == metric).then_some("true")
                        data-metric=m.as_str()
                    >
                        {m.label()}
                    </a>
                }
                .into_any()
            } else {
                view! {
                    <span class="disabled" aria-disabled="true" data-metric=m.as_str() title="this trace has no data for it">
                        {m.label()}
                    </span>
                }
                .into_any()
            }
        })
        .collect_view();
    let view_link = move |text: bool| {
        move || {
            RolloutQuery {
                text_view: text,
                ..state.get()
            }
            .href(id)
        }
    };
    let text_view = move || state.read().text_view;
    view! {
        <section aria-labelledby="heatmap-heading" class="heatmap-section">
            <div class="section-head">
                <h2 id="heatmap-heading">"Tokens"</h2>
                <nav class="view-toggle" aria-label="View" data-testid="view-toggle">
                    <a href=view_link(false) data-noscroll="" aria-current=move || (!text_view()).then_some("true")>"Raw tokens"</a>
                    <a href=view_link(true) data-noscroll="" aria-current=move || text_view().then_some("true")>"Rendered text"</a>
                </nav>
            </div>
            <nav class="metric-tabs" aria-label="Metric" data-testid="metric-tabs">{tabs}</nav>
            {move || state.read().unknown_metric.clone().map(|m| view! {
                <p class="notice" role="note" data-testid="unknown-metric">
                    {format!("“{m}” is not a metric; showing {}. Metrics: entropy, rbf, logprob, impact, gradnorm.", metric.label())}
                </p>
            })}
            {unavailable.then(|| view! {
                <p class="notice" role="note" data-testid="metric-unavailable">
                    {format!("This trace has no data for {}; tokens are shown uncoloured. Pick another metric above.", metric.label())}
                </p>
            })}
            <Legend h n />
            {move || if text_view() {
                let text = response.clone().unwrap_or_else(|| h.with_value(|h| h.tokens.concat()));
                view! { <div class="response panel" data-testid="response"><MathText text /></div> }.into_any()
            } else {
                view! { <TokenGrid id h state /> }.into_any()
            }}
            <SelectedToken id h state detail=selected />
        </section>
    }
}

#[component]
fn Legend(h: StoredValue<TokenHeatmap>, n: usize) -> impl IntoView {
    h.with_value(|h| {
        let metric = h.metric;
        let stops = h.scale.stops();
        let swatches = stops
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let last = i + 1 == BUCKETS;
                let label = if last && h.scale.clamped && !h.scale.low_is_hot {
                    format!("{}+", fmt_value(metric, *v))
                } else {
                    fmt_value(metric, *v)
                };
                view! { <span class=format!("sw h{i}")>{label}</span> }
            })
            .collect_view();
        let ends = if h.scale.low_is_hot {
            format!(
                "{} (likely) … {}{} (unlikely)",
                fmt_value(metric, h.scale.hi),
                if h.scale.clamped { "≤ " } else { "" },
                fmt_value(metric, h.scale.lo)
            )
        } else {
            format!(
                "{} … {}{}",
                fmt_value(metric, h.scale.lo),
                if h.scale.clamped { "≥ " } else { "" },
                fmt_value(metric, h.scale.hi)
            )
        };
        view! {
            <div class="legend" data-testid="legend" data-metric=metric.as_str()>
                <p class="legend-title">
                    <strong>{metric.label()}</strong>
                    {format!(": {}. Scale {ends}. ", metric.unit())}
                    {term_of_metric(metric).map(|term| view! { <DefinitionLink term /> })}
                </p>
                <div class="swatches" aria-hidden="true">
                    {swatches}
                    <span class="sw hn">"no value"</span>
                </div>
                {h.truncated.then(|| view! {
                    <p class="truncated" data-testid="truncated">
                        <strong>"Truncated estimate (top-K). "</strong>
                        {match metric {
                            Metric::GradNorm => "Computed from the top-K log-probabilities with the missing mass as one token: an upper bound.",
                            _ => "Computed from the top-K log-probabilities, not exact columns: a lower bound on the true value.",
                        }}
                    </p>
                })}
                {h.note.clone().map(|note| view! { <p class="meta">{note}</p> })}
                <p class="meta" data-testid="value-count">{format!("{} of {n} tokens have a value.", h.with_value)}</p>
            </div>
        }
    })
}

/// The tokens, in blocks, with the hover card.
#[component]
fn TokenGrid(id: i64, h: StoredValue<TokenHeatmap>, state: Memo<RolloutQuery>) -> impl IntoView {
    let _ = id; // used by the browser-only handlers
    let n = h.with_value(|h| h.tokens.len());
    // The block HTML is built once per heatmap: the highlight of `pos` follows in the DOM
    // (below), so a click does not rebuild 32k spans.
    let initial = state.get_untracked().pos;
    let chunks = (0..n)
        .step_by(CHUNK)
        .map(|start| {
            let html = h.with_value(|h| {
                let colour = h.available.contains(&h.metric);
                chunk_html(
                    &h.tokens,
                    &h.values.0,
                    &h.scale,
                    colour,
                    start,
                    start + CHUNK,
                    initial,
                )
            });
            view! { <div class="chunk" data-start=start inner_html=html></div> }
        })
        .collect_view();
    // The token under the pointer (or moved to with the arrow keys) and where its card goes.
    let active = RwSignal::new(None::<usize>);
    let card_at = RwSignal::new((0.0f64, 0.0f64));
    let details = RwSignal::new(std::collections::HashMap::<usize, TokenDetail>::new());
    let grid = NodeRef::<leptos::html::Div>::new();

    #[cfg(feature = "hydrate")]
    {
        // Highlight `pos` (also after a click changed it); scroll to it once, as soon as the
        // grid is in the DOM.
        Effect::new(move |prev: Option<(Option<usize>, bool)>| {
            let pos = state.get().pos;
            let (prev_pos, scrolled) = prev.unwrap_or((None, false));
            match grid.get() {
                Some(el) => {
                    hydrate_only::highlight(&el, prev_pos, pos, !scrolled);
                    (pos, true)
                }
                None => (prev_pos, scrolled),
            }
        });
    }

    let show = move |i: usize| {
        active.set(Some(i));
        #[cfg(feature = "hydrate")]
        if let Some(el) = grid.get_untracked() {
            if let Some(at) = hydrate_only::card_position(&el, i) {
                card_at.set(at);
            }
            hydrate_only::want_detail(id, i, active, details);
        }
    };
    // Clicking (or Enter on) a token selects it: the URL gets `pos=` (replaced, not pushed).
    #[cfg(feature = "hydrate")]
    let navigate = leptos_router::hooks::use_navigate();
    let select = move |i: usize| {
        #[cfg(feature = "hydrate")]
        navigate(
            &RolloutQuery {
                pos: Some(i),
                ..state.get_untracked()
            }
            .href(id),
            leptos_router::NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
        let _ = i;
    };
    // A copy on the server, a clone in the browser (there it holds the navigate function).
    #[allow(clippy::clone_on_copy)]
    let select_on_key = select.clone();

    view! {
        <div class="heatmap-wrap">
            <div
                class="heatmap"
                node_ref=grid
                tabindex="0"
                role="application"
                aria-label="Response tokens coloured by the metric. Arrow keys move between tokens, Enter selects one."
                data-testid="heatmap"
                data-tokens=n
                on:mouseover=move |ev| {
                    #[cfg(feature = "hydrate")]
                    if let Some(i) = hydrate_only::index_of_event(&ev) {
                        show(i);
                    }
                    let _ = ev;
                }
                on:click=move |ev| {
                    #[cfg(feature = "hydrate")]
                    if let Some(i) = hydrate_only::index_of_event(&ev) {
                        select(i);
                    }
                    let _ = ev;
                }
                on:mouseleave=move |_| active.set(None)
                on:keydown=move |ev| {
                    let key = ev.key();
                    let current = active.get_untracked().or(state.get_untracked().pos);
                    let next = match key.as_str() {
                        "ArrowRight" => Some(current.map_or(0, |i| (i + 1).min(n.saturating_sub(1)))),
                        "ArrowLeft" => Some(current.map_or(0, |i| i.saturating_sub(1))),
                        "Enter" => {
                            if let Some(i) = current {
                                select_on_key(i);
                            }
                            None
                        }
                        "Escape" => {
                            active.set(None);
                            None
                        }
                        _ => None,
                    };
                    if let Some(i) = next {
                        ev.prevent_default();
                        show(i);
                    }
                }
            >
                {chunks}
            </div>
            {move || active.get().map(|i| view! { <HoverCard i h details at=card_at /> })}
        </div>
    }
}

#[component]
fn HoverCard(
    i: usize,
    h: StoredValue<TokenHeatmap>,
    details: RwSignal<std::collections::HashMap<usize, TokenDetail>>,
    at: RwSignal<(f64, f64)>,
) -> impl IntoView {
    let (token, logprob, value, metric, colour) = h.with_value(|h| {
        (
            h.tokens.get(i).cloned().unwrap_or_default(),
            h.logprobs.0.get(i).copied().unwrap_or(f32::NAN),
            h.values.0.get(i).copied().unwrap_or(f32::NAN),
            h.metric,
            h.available.contains(&h.metric),
        )
    });
    let style = move || {
        let (x, y) = at.get();
        format!("left:{x:.0}px;top:{y:.0}px")
    };
    view! {
        <div class="token-card" role="status" style=style data-testid="token-card" data-pos=i>
            <p class="token-text"><code>{token}</code> <span class="muted">{format!("position {i}")}</span></p>
            <dl class="facts-grid">
                <dt>"Probability"</dt>
                <dd data-testid="card-prob">
                    {if logprob.is_finite() {
                        format!("{:.4} (ln p = {:.4})", (logprob as f64).exp(), logprob)
                    } else {
                        "—".to_string()
                    }}
                </dd>
                <dt>{metric.label()}</dt>
                <dd data-testid="card-value" data-value=(colour && !value.is_nan()).then(|| value.to_string())>
                    {if colour && !value.is_nan() { fmt_value(metric, value as f64) } else { "no value".to_string() }}
                    {move || details.read().get(&i).and_then(|d| d.value(metric)).filter(|v| !v.exact).map(|_| " (top-K estimate)")}
                </dd>
            </dl>
            {move || match details.read().get(&i) {
                None => view! { <p class="muted">"Loading alternatives…"</p> }.into_any(),
                Some(d) => view! { <Alternatives d=d.clone() limit=8 /> }.into_any(),
            }}
            <p class="muted hint">"Click to select (permalink)."</p>
        </div>
    }
}

#[component]
fn Alternatives(d: TokenDetail, limit: usize) -> impl IntoView {
    if d.alternatives.is_empty() {
        return view! { <p class="muted">"No alternatives stored for this token."</p> }.into_any();
    }
    let more = d.alternatives.len().saturating_sub(limit);
    view! {
        <table class="alternatives" data-testid="alternatives">
            <thead>
                <tr><th scope="col">"Alternative"</th><th scope="col" class="num">"p"</th></tr>
            </thead>
            <tbody>
                {d.alternatives
                    .iter()
                    .take(limit)
                    .map(|a| {
                        let chosen = a.token == d.token;
                        view! {
                            <tr class:chosen=chosen>
                                <td><code>{a.token.clone()}</code></td>
                                <td class="num">{format!("{:.4}", a.logprob.exp())}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        {(more > 0).then(|| view! { <p class="muted">{format!("… and {more} more")}</p> })}
        {d.missing_mass.map(|m| view! { <p class="muted">{format!("Mass not listed (top-K): {m:.4}")}</p> })}
    }
    .into_any()
}

/// The token at `pos=`: everything known about it, server-rendered (readable without JS).
#[component]
fn SelectedToken(
    id: i64,
    h: StoredValue<TokenHeatmap>,
    state: Memo<RolloutQuery>,
    detail: TokenResource,
) -> impl IntoView {
    let n = h.with_value(|h| h.tokens.len());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let pos = state.read_untracked().pos;
                match (pos, detail.await) {
                    (None, _) => ().into_any(),
                    (Some(_), Err(e)) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
                    (Some(p), Ok(None)) => view! {
                        <p class="notice" role="note" data-testid="pos-missing">
                            {format!("Position {p} is past the end of this response ({n} tokens).")}
                        </p>
                    }
                    .into_any(),
                    (Some(_), Ok(Some(d))) => {
                        let metric = h.with_value(|h| h.metric);
                        let permalink = format!("{}#sel-token", state.get_untracked().href(id));
                        let row = |label: &'static str, v: Option<crate::heat::MetricValue>, m: Metric| {
                            view! {
                                <dt>{label}</dt>
                                <dd>{match v {
                                    Some(v) => format!("{}{}", fmt_value(m, v.value), if v.exact { "" } else { " (top-K estimate)" }),
                                    None => "—".into(),
                                }}</dd>
                            }
                        };
                        view! {
                            <aside class="panel selected-token" data-testid="selected-token" data-pos=d.pos>
                                <h3>
                                    {format!("Token {} ", d.pos)}
                                    <code>{d.token.clone()}</code>
                                </h3>
                                <dl class="facts-grid">
                                    <dt>"Probability"</dt>
                                    <dd data-testid="selected-prob">{d.logprob.map(|lp| format!("{:.4} (ln p = {lp:.4})", lp.exp())).unwrap_or_else(|| "—".into())}</dd>
                                    {row("Entropy (nats)", d.entropy, Metric::Entropy)}
                                    {row("RBF", d.rbf, Metric::Rbf)}
                                    {row("Gradient-norm proxy", d.gradnorm, Metric::GradNorm)}
                                    <dt><Gloss term=Term::Intervention>"Intervention impact"</Gloss></dt>
                                    <dd>{d.impact.map(|v| fmt_value(Metric::Impact, v)).unwrap_or_else(|| "—".into())}</dd>
                                    <dt><Gloss term=Term::GradientNorm>"‖h‖"</Gloss></dt>
                                    <dd>{d.hidden_norm.map(|v| format!("{v:.3}")).unwrap_or_else(|| "not in trace".into())}</dd>
                                </dl>
                                <p class="meta">{format!("Colouring by {}.", metric.label())} " " <a href=permalink data-testid="permalink">"Permalink to this token"</a></p>
                                <Alternatives d=d.clone() limit=20 />
                            </aside>
                        }
                        .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[cfg(feature = "hydrate")]
mod hydrate_only {
    use super::*;
    use leptos::wasm_bindgen::JsCast;
    use leptos::web_sys::{Element, HtmlElement};

    /// The token index of the span an event happened on.
    pub fn index_of_event(ev: &leptos::ev::MouseEvent) -> Option<usize> {
        let target: Element = ev.target()?.dyn_into().ok()?;
        let span = target.closest("span").ok().flatten()?;
        let chunk = span.parent_element()?;
        let start: usize = chunk.get_attribute("data-start")?.parse().ok()?;
        let mut index = 0;
        let mut prev = span.previous_element_sibling();
        while let Some(p) = prev {
            index += 1;
            prev = p.previous_element_sibling();
        }
        Some(start + index)
    }

    /// The span of token `i` inside the grid.
    pub fn span_at(grid: &HtmlElement, i: usize) -> Option<Element> {
        grid.children()
            .item((i / CHUNK) as u32)?
            .children()
            .item((i % CHUNK) as u32)
    }

    /// Where the card of token `i` goes, relative to the grid's wrapper: below the token.
    pub fn card_position(grid: &HtmlElement, i: usize) -> Option<(f64, f64)> {
        let span = span_at(grid, i)?;
        let wrap = grid.parent_element()?;
        let (r, w) = (
            span.get_bounding_client_rect(),
            wrap.get_bounding_client_rect(),
        );
        let width = w.width();
        let left = (r.left() - w.left()).clamp(0.0, (width - 320.0).max(0.0));
        Some((left, r.bottom() - w.top() + 6.0))
    }

    /// Moves the highlight from `prev` to `pos`; scrolls it into view on the first run.
    pub fn highlight(grid: &HtmlElement, prev: Option<usize>, pos: Option<usize>, first: bool) {
        if let Some(old) = prev.and_then(|p| span_at(grid, p)) {
            let _ = old.class_list().remove_1("sel");
            old.remove_attribute("id").ok();
        }
        if let Some(el) = pos.and_then(|p| span_at(grid, p)) {
            let _ = el.class_list().add_1("sel");
            let _ = el.set_attribute("id", "sel-token");
            if first {
                let options = leptos::web_sys::ScrollIntoViewOptions::new();
                options.set_block(leptos::web_sys::ScrollLogicalPosition::Center);
                el.scroll_into_view_with_scroll_into_view_options(&options);
            }
        }
    }

    /// Fetches token `i`'s alternatives once the pointer has rested on it a moment.
    pub fn want_detail(
        id: i64,
        i: usize,
        active: RwSignal<Option<usize>>,
        details: RwSignal<std::collections::HashMap<usize, TokenDetail>>,
    ) {
        if details.with_untracked(|d| d.contains_key(&i)) {
            return;
        }
        set_timeout(
            move || {
                // The heatmap may have been replaced (another metric) in the meantime: its
                // signals are then disposed, and the answer is dropped.
                if active.try_get_untracked().flatten() != Some(i) {
                    return;
                }
                leptos::task::spawn_local(async move {
                    if let Ok(Some(d)) = get_rollout_token(id, i).await {
                        details.try_update(|m| {
                            m.insert(i, d);
                        });
                    }
                });
            },
            std::time::Duration::from_millis(120),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips_and_reports_unknown_metrics() {
        let map: ParamsMap = [("metric", "rbf"), ("view", "text"), ("pos", "12")]
            .into_iter()
            .collect();
        let q = RolloutQuery::from_map(&map);
        assert_eq!(
            q,
            RolloutQuery {
                metric: Some(Metric::Rbf),
                unknown_metric: None,
                text_view: true,
                pos: Some(12)
            }
        );
        assert_eq!(q.href(4), "/rollouts/4?metric=rbf&view=text&pos=12");
        let bad: ParamsMap = [("metric", "<script>"), ("pos", "-1")]
            .into_iter()
            .collect();
        let b = RolloutQuery::from_map(&bad);
        assert_eq!(b.metric, None);
        assert_eq!(b.unknown_metric.as_deref(), Some("<script>"));
        assert_eq!(b.pos, None);
        assert_eq!(RolloutQuery::default().href(4), "/rollouts/4");
    }
}

/// Queue token interventions (paper eqs. 5-6) on this rollout: its most uncertain tokens are
/// each swapped for the runner-up and both versions continued k times by the engine; I_t then
/// shows as the heatmap's impact metric.
#[component]
fn InterventionPanel(id: i64) -> impl IntoView {
    let k = RwSignal::new("8".to_string());
    let positions = RwSignal::new("4".to_string());
    let queue = Action::new(move |(k, m): &(u32, u32)| {
        let (k, m) = (*k, *m);
        async move { crate::api::queue_interventions(id, k, m).await }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let k = k.get_untracked().trim().parse().unwrap_or(8);
        let m = positions.get_untracked().trim().parse().unwrap_or(4);
        queue.dispatch((k, m));
    };
    view! {
        <section class="panel" aria-labelledby="intervene-h" data-testid="interventions">
            <h2 id="intervene-h">"Which tokens decide the outcome?"</h2>
            <p>"Swap each of this response's most uncertain tokens for the most probable other token, continue both versions k times with the engine that generated the run, and grade them: the impact I"<sub>"t"</sub>" is the accuracy with the original token minus the accuracy with the substitute (paper eqs. 5-6). It appears as the heatmap's impact metric when done."</p>
            <form class="inline-form" on:submit=submit>
                <label><span>"Tokens (highest entropy)"</span>
                    <input type="text" inputmode="numeric" data-testid="intervene-positions" prop:value=move || positions.get() on:input=move |ev| positions.set(event_target_value(&ev)) /></label>
                <label><span>"Continuations k"</span>
                    <input type="text" inputmode="numeric" data-testid="intervene-k" prop:value=move || k.get() on:input=move |ev| k.set(event_target_value(&ev)) /></label>
                <button type="submit" data-testid="intervene" disabled=move || queue.pending().get()>"Measure impacts"</button>
            </form>
            {move || queue.value().get().map(|r| match r {
                Ok(Ok(job)) => view! {
                    <p class="notice" data-testid="intervene-queued">
                        {format!("Queued as intervention {job}; reload this page when it is done (")}
                        <a href=format!("/api/v1/interventions/{job}") rel="external">"status"</a>")."
                    </p>
                }.into_any(),
                Ok(Err(m)) => view! { <ErrorBox message=m /> }.into_any(),
                Err(e) => view! { <ErrorBox message=e.to_string() /> }.into_any(),
            })}
        </section>
    }
}
