//! A chart on a page: the SVG from [`crate::charts::render`], focusable hit targets laid over it
//! (hover/focus readout of exact values, clickable regions), a legend whose entries toggle series
//! (a link: the hidden series are part of the URL), and export links (SVG, PNG).

use leptos::prelude::*;

use super::glossary::{DefinitionLink, Term};
use crate::charts::{render, series_colour, ChartSpec, RenderOptions};
use crate::tables::{data_url, TableData};

/// `toggle_href(key)` is the URL of the same view with series `key` toggled; `export_href(ext)`
/// the URL of the server-side export of this chart (`svg` or `png`).
#[component]
pub fn ChartView(
    spec: ChartSpec,
    #[prop(into)] title: String,
    #[prop(into)] hidden: Signal<Vec<String>>,
    #[prop(optional, into)] toggle_href: Option<Callback<String, String>>,
    #[prop(optional, into)] export_href: Option<Callback<String, String>>,
    #[prop(default = 640)] width: u32,
    #[prop(default = 380)] height: u32,
    #[prop(optional, into)] testid: String,
    /// The glossary entry that defines what the chart shows (a "definition" link by the title).
    #[prop(optional)]
    definition: Option<Term>,
) -> impl IntoView {
    let legend = spec.legend();
    let hint = match &spec {
        ChartSpec::Sets(_) => {
            "Hover or focus a region for what it holds; click it to list its problems."
        }
        _ => "Hover or focus a point for its exact value.",
    };
    let spec = StoredValue::new(spec);
    let rendered = Memo::new(move |_| {
        let hidden = hidden.get();
        spec.with_value(|s| render(s, &RenderOptions::page(width, height, hidden)))
    });
    let readout = RwSignal::new(None::<String>);
    // One tab stop per chart (the point or region last focused); the arrow keys, Home and End
    // move between its points, so a chart with 200 points is not 200 stops of the tab order.
    let active = RwSignal::new(0usize);
    let navigate = leptos_router::hooks::use_navigate();
    let hits = move || {
        let navigate = navigate.clone();
        rendered
            .get()
            .hits
            .into_iter()
            .enumerate()
            .map(|(i, hit)| {
                let text = hit.text.clone();
                let text2 = hit.text.clone();
                let show = move |_| readout.set(Some(text.clone()));
                let show2 = move |_| {
                    active.set(i);
                    readout.set(Some(text2.clone()));
                };
                let tabindex = move || if active.get() == i { "0" } else { "-1" };
                let href = hit.href.clone();
                let navigate = navigate.clone();
                let go = move |_| {
                    if let Some(h) = &href {
                        navigate(h, Default::default());
                    }
                };
                if hit.w > 0.0 {
                    view! {
                        <rect
                            class="hit region"
                            x=hit.x y=hit.y width=hit.w height=hit.h
                            tabindex=tabindex
                            role=if hit.href.is_some() { "link" } else { "img" }
                            aria-label=hit.text.clone()
                            data-hit=i
                            on:mouseenter=show
                            on:focus=show2
                            on:click=go
                        />
                    }
                    .into_any()
                } else {
                    view! {
                        <circle
                            class="hit point"
                            cx=hit.x cy=hit.y r="7"
                            tabindex=tabindex
                            role="img"
                            aria-label=hit.text.clone()
                            data-hit=i
                            on:mouseenter=show
                            on:focus=show2
                        />
                    }
                    .into_any()
                }
            })
            .collect_view()
    };
    let view_box = format!("0 0 {width} {height}");
    let legend_view = (!legend.is_empty()).then(|| {
        let items = legend
            .into_iter()
            .map(|(key, label, colour)| {
                let k2 = key.clone();
                let off = move || hidden.get().contains(&k2);
                let href = toggle_href.map(|f| f.run(key.clone())).unwrap_or_default();
                view! {
                    <li>
                        <a
                            href=href
                            class="legend-item"
                            class:off=off.clone()
                            aria-pressed=move || if off() { "false" } else { "true" }
                            title="Show or hide this series"
                        >
                            <span class="swatch" style=format!("background:{}", series_colour(colour))></span>
                            {label}
                        </a>
                    </li>
                }
            })
            .collect_view();
        view! { <ul class="chart-legend" aria-label="Series (click to show or hide)">{items}</ul> }
    });
    let exports = export_href.map(|f| {
        let svg = f.run("svg".into());
        let png = f.run("png".into());
        view! {
            <span class="exports">
                "Export: " <a href=svg download rel="external" data-testid="export-svg">"SVG"</a> " · "
                <a href=png download rel="external" data-testid="export-png">"PNG"</a>
            </span>
        }
    });
    let hit_count = move || rendered.with(|r| r.hits.len());
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let n = hit_count();
        if n == 0 {
            return;
        }
        let current = active.get_untracked().min(n - 1);
        let next = match ev.key().as_str() {
            "ArrowRight" | "ArrowDown" => (current + 1).min(n - 1),
            "ArrowLeft" | "ArrowUp" => current.saturating_sub(1),
            "Home" => 0,
            "End" => n - 1,
            _ => return,
        };
        ev.prevent_default();
        active.set(next);
        focus_hit(&ev, next);
    };
    let canvas_label = title.clone();
    let hits_label = format!("{title}: its points (arrow keys move between them)");
    view! {
        <figure class="chart" data-testid=testid>
            <figcaption>
                {title}
                {definition.map(|term| view! { " " <DefinitionLink term /> })}
            </figcaption>
            <div class="chart-canvas" style=format!("max-width:{width}px")>
                <div class="chart-svg" role="img" aria-label=canvas_label inner_html=move || rendered.get().svg></div>
                <svg class="chart-hits" viewBox=view_box.clone() preserveAspectRatio="xMidYMid meet"
                    role="group" aria-label=hits_label
                    on:keydown=on_key
                    on:mouseleave=move |_| readout.set(None)>
                    {hits}
                </svg>
            </div>
            {legend_view}
            <p class="chart-readout" aria-live="polite" data-testid="chart-readout">
                {move || readout.get().unwrap_or_else(|| hint.into())}
            </p>
            {exports}
        </figure>
    }
}

/// CSV and LaTeX download links for a table (data URLs: they work without JavaScript).
#[component]
pub fn TableExport(table: TableData, #[prop(into)] name: String) -> impl IntoView {
    let csv = data_url("text/csv", &table.to_csv());
    let tex = data_url("application/x-tex", &table.to_latex());
    view! {
        <p class="exports table-exports">
            "Export table: "
            <a href=csv download=format!("{name}.csv") data-testid="export-csv">"CSV"</a>
            " · "
            <a href=tex download=format!("{name}.tex") data-testid="export-latex">"LaTeX"</a>
        </p>
    }
}

/// Moves the keyboard focus to the chart's hit number `index` (a sibling of the event's target).
fn focus_hit(ev: &leptos::ev::KeyboardEvent, index: usize) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let group = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok());
        if let Some(el) = group
            .and_then(|g| {
                g.query_selector(&format!("[data-hit=\"{index}\"]"))
                    .ok()
                    .flatten()
            })
            .and_then(|el| el.dyn_into::<web_sys::SvgElement>().ok())
        {
            let _ = el.focus();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (ev, index);
}
