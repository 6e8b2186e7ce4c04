//! Pieces every experiment analysis page shares: the view tabs, the run picker (links, so it
//! works without JavaScript and every choice is a permalink), the notice for runs a permalink
//! names that no longer exist, and the experiment-not-found page.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::components::common::{PageTitle, StageBadge};
use crate::urlstate::{join_ids, Query};
use crate::views::{RunChoice, VerdictFrame, ViewFrame};
use caplens_analysis::verdicts::VerdictSource;

/// The analysis views of an experiment, as tabs.
pub const VIEWS: [(&str, &str); 11] = [
    ("", "Overview"),
    ("passk", "pass@k curves"),
    ("unsolvable", "Unsolvable problems"),
    ("problems", "Problems"),
    ("compare", "SFT vs RL"),
    ("token-stats", "Token statistics"),
    ("dynamics", "Training dynamics"),
    ("rft", "RFT data & shaping"),
    ("review", "Review queue"),
    ("discussion", "Discussion"),
    ("settings", "Settings"),
];

#[component]
pub fn ViewTabs(#[prop(into)] slug: String, #[prop(into)] current: String) -> impl IntoView {
    // Carry the run selection and the verdict source from view to view.
    let query = use_query_map();
    let runs = move || query.with(|q| q.get("runs").unwrap_or_default());
    let verdicts = move || query.with(|q| q.get("verdicts").unwrap_or_default());
    let reviewed = move || query.with(|q| q.get("reviewed").unwrap_or_default());
    let share_slug = slug.clone();
    view! {
        <nav class="view-tabs" aria-label="Views of this experiment">
            {VIEWS
                .iter()
                .map(|&(path, label)| {
                    let base = if path.is_empty() { format!("/experiments/{slug}") } else { format!("/experiments/{slug}/{path}") };
                    let is_current = path == current;
                    view! {
                        <a
                            href=move || Query::new().set("runs", runs()).set("verdicts", verdicts()).set("reviewed", reviewed()).href(&base)
                            aria-current=is_current.then_some("page")
                            data-testid=format!("tab-{}", if path.is_empty() { "overview" } else { path })
                        >
                            {label}
                        </a>
                    }
                })
                .collect_view()}
        </nav>
        <crate::components::review::ShareButton slug=share_slug />
    }
}

/// Checkbox-like links over the experiment's runs; `href(ids)` is the view with that selection.
#[component]
pub fn RunPicker(
    runs: Vec<RunChoice>,
    selected: Vec<i64>,
    href: Callback<Vec<i64>, String>,
    #[prop(default = 7)] max: usize,
) -> impl IntoView {
    let items = runs
        .into_iter()
        .map(|run| {
            let on = selected.contains(&run.id);
            let mut next = selected.clone();
            if on {
                next.retain(|id| *id != run.id);
            } else if next.len() < max {
                next.push(run.id);
            }
            let target = href.run(next);
            let depth = run.lineage_depth.min(4);
            view! {
                <li class=format!("pick-depth-{depth}")>
                    <a
                        href=target
                        role="checkbox"
                        aria-checked=if on { "true" } else { "false" }
                        class="run-choice"
                        class:on=on
                        data-run-id=run.id
                    >
                        <span class="box" aria-hidden="true">{if on { "☑" } else { "☐" }}</span>
                        {run.label.clone()}
                        " "
                        <StageBadge stage=run.stage.clone() />
                    </a>
                </li>
            }
        })
        .collect_view();
    view! {
        <details class="run-picker" open>
            <summary>"Runs"</summary>
            <ul data-testid="run-picker">{items}</ul>
        </details>
    }
}

/// Says which runs of a permalink no longer exist (the rest of the view still shows).
#[component]
pub fn MissingRuns(frame: ViewFrame) -> impl IntoView {
    (!frame.missing_runs.is_empty()).then(|| {
        let ids = join_ids(&frame.missing_runs);
        let plural = if frame.missing_runs.len() == 1 { "run" } else { "runs" };
        view! {
            <p class="notice" role="status" data-testid="missing-runs">
                {format!("This link names {plural} {ids}, which {} not (or no longer) in this experiment; showing the rest.",
                    if frame.missing_runs.len() == 1 { "is" } else { "are" })}
            </p>
        }
    })
}

/// What a view's numbers rest on that a reader must know first: runs the link names that are
/// gone, and runs whose problems have different sample counts (issue 27).
#[component]
pub fn FrameNotes(frame: ViewFrame) -> impl IntoView {
    let uneven = (!frame.uneven.is_empty()).then(|| {
        let items = frame
            .uneven
            .iter()
            .map(|u| {
                let fewer = u.problems - u.at_max;
                view! {
                    <li>
                        <strong>{u.label.clone()}</strong>
                        {format!(
                            ": {fewer} of {} problems have fewer than {} samples (down to {}). pass@k for k > {} averages over the problems with at least k samples, and “unsolvable at k” is undecided for a problem with fewer than k.",
                            u.problems, u.max_n, u.min_n, u.min_n
                        )}
                    </li>
                }
            })
            .collect_view();
        view! {
            <div class="notice" role="note" data-testid="uneven-samples">
                <strong>"Uneven sample counts. "</strong>
                <ul>{items}</ul>
            </div>
        }
    });
    view! {
        <MissingRuns frame />
        {uneven}
    }
}

/// The whole page's experiment does not exist: say so, with a 404 status.
#[component]
pub fn ExperimentMissing(#[prop(into)] slug: String) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <PageTitle text="Experiment not found" />
        <h1>"Experiment not found"</h1>
        <p>
            "There is no experiment called “" {slug} "”. It may have been renamed or deleted. "
            <a href="/experiments">"All experiments"</a>
        </p>
    }
}

/// The `hide=` series keys of the current URL.
pub fn hidden_series() -> Signal<Vec<String>> {
    let query = use_query_map();
    Signal::derive(move || {
        query.with(|q| {
            q.get("hide")
                .map(|h| {
                    h.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        })
    })
}

/// `hide` with `key` toggled.
pub fn toggle_hidden(hidden: &[String], key: &str) -> String {
    let mut h: Vec<String> = hidden.to_vec();
    if let Some(i) = h.iter().position(|x| x == key) {
        h.remove(i);
    } else {
        h.push(key.to_string());
    }
    h.join(",")
}

/// The `verdicts=` switch (issue 13): count the file's verdicts or caplens' verifier's. Shown
/// only where some run carries both; says how often they disagree. `href(source)` is this view
/// with that source (`None`: each run's default).
#[component]
pub fn VerdictSwitch(
    frame: VerdictFrame,
    href: Callback<Option<VerdictSource>, String>,
    /// This view with (`false`) or without (`true`) the reviewers' verdict overrides.
    reviewed_href: Callback<bool, String>,
) -> impl IntoView {
    let reviewed = (frame.overrides > 0).then(|| {
        let on = frame.reviewed;
        let status = if on {
            format!(
                "{} verdict override{} by reviewers change{} {} rollout verdict{} in these numbers.",
                frame.overrides,
                if frame.overrides == 1 { "" } else { "s" },
                if frame.overrides == 1 { "s" } else { "" },
                frame.overridden_rollouts,
                if frame.overridden_rollouts == 1 { "" } else { "s" },
            )
        } else {
            format!(
                "Without the reviewers' {} verdict override{} ({} rollout{} would change).",
                frame.overrides,
                if frame.overrides == 1 { "" } else { "s" },
                frame.overridden_rollouts,
                if frame.overridden_rollouts == 1 { "" } else { "s" },
            )
        };
        view! {
            <p class="verdict-switch" data-testid="reviewed-switch">
                <span>"Reviewed verdicts: "</span>
                <a href=reviewed_href.run(false) class="verdict-choice" class:on=on aria-current=on.then_some("true") data-reviewed="1">"on"</a>
                <a href=reviewed_href.run(true) class="verdict-choice" class:on=!on aria-current=(!on).then_some("true") data-reviewed="0">"off"</a>
                <span class="meta" data-testid="override-count">{status}</span>
            </p>
        }
    });
    if frame.runs_with_both == 0 {
        return reviewed.into_any();
    }
    let options = [
        (None, "each run's default"),
        (Some(VerdictSource::File), "the file's"),
        (Some(VerdictSource::Caplens), "caplens' verifier"),
    ];
    let links = options
        .into_iter()
        .map(|(source, label)| {
            let on = frame.selected == source;
            view! {
                <a
                    href=href.run(source)
                    class="verdict-choice"
                    class:on=on
                    aria-current=on.then_some("true")
                    data-verdicts=source.map_or("default", VerdictSource::as_str)
                >
                    {label}
                </a>
            }
        })
        .collect_view();
    let share = if frame.graded_by_both > 0 {
        format!(
            "The file's verdicts and caplens' disagree on {} of {} rollouts ({:.1} %).",
            frame.disagreements,
            frame.graded_by_both,
            100.0 * frame.disagreements as f64 / frame.graded_by_both as f64
        )
    } else {
        String::new()
    };
    view! {
        <p class="verdict-switch" data-testid="verdict-switch">
            <span>"Verdicts: "</span>
            {links}
            <span class="meta" data-testid="verdict-disagreements">{share}</span>
        </p>
        {reviewed}
    }
    .into_any()
}
