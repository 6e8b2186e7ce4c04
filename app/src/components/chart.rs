//! A chart on a page: the SVG from [`crate::charts::render`], focusable hit targets laid over it
//! (hover/focus readout of exact values, clickable regions), a legend whose entries toggle series
//! (a link: the hidden series are part of the URL), and export links (SVG, PNG).

use leptos::prelude::*;

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
                let show2 = move |_| readout.set(Some(text2.clone()));
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
                            tabindex="0"
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
                            tabindex="0"
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
    view! {
        <figure class="chart" data-testid=testid>
            <figcaption>{title}</figcaption>
            <div class="chart-canvas" style=format!("max-width:{width}px")>
                <div class="chart-svg" inner_html=move || rendered.get().svg></div>
                <svg class="chart-hits" viewBox=view_box.clone() preserveAspectRatio="xMidYMid meet"
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
