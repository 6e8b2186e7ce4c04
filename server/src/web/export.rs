//! Chart export: `GET /export/experiments/{slug}/{view}/{chart}.{svg|png}?<the view's query>`.
//! The same builder as the page and the same chart code ([`caplens_app::charts::render`]) make
//! the figure, sized for a paper (7 x 4.4 in), black on white with the legend inside; PNG is the
//! SVG rasterised at 3x (about 290 dpi) with an embedded DejaVu Sans, so no system fonts are
//! needed.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use caplens_app::charts::{render, ChartSpec, RenderOptions};
use caplens_app::views::{CompareRequest, PasskRequest, UnsolvableRequest};

use super::error::ApiError;
use super::AppState;
use crate::ops::{self, Action, Caller};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const PNG_SCALE: f32 = 3.0;

pub(super) async fn export_chart(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, view, file)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) =
        ops::catalog::open_experiment(&caller.access(&state.store), &slug, Action::Read).await
    {
        return ApiError::from(e).into_response();
    }
    let Some((chart, ext)) = file.rsplit_once('.') else {
        return ApiError::not_found("export file must be CHART.svg or CHART.png").into_response();
    };
    if ext != "svg" && ext != "png" {
        return ApiError::bad_request(format!("unknown export format “{ext}”: use svg or png"))
            .into_response();
    }
    let get = |k: &str| query.get(k).cloned();
    let views = &state.views;
    let spec: Result<Option<Option<ChartSpec>>, _> = match view.as_str() {
        "passk" => views
            .passk(&slug, PasskRequest::from_query(get))
            .await
            .map(|v| v.map(|v| (chart == "passk").then_some(v.chart))),
        "unsolvable" => views
            .unsolvable(&slug, UnsolvableRequest::from_query(get))
            .await
            .map(|v| {
                v.map(|v| match chart {
                    "sets" => Some(v.chart),
                    "set-sizes" => Some(v.set_sizes),
                    _ => None,
                })
            }),
        "compare" => views
            .compare(&slug, CompareRequest::from_query(get))
            .await
            .map(|v| {
                v.map(|v| match chart {
                    "passk" => Some(v.passk),
                    "diversity" => Some(v.diversity),
                    "venn" => Some(v.venn),
                    "rbf" => v.rbf,
                    _ => None,
                })
            }),
        "dynamics" => views
            .dynamics(&slug, caplens_app::views::DynamicsRequest::from_query(get))
            .await
            .map(|v| {
                v.map(|v| match chart {
                    "accuracy" => v.accuracy,
                    "entropy" => v.entropy,
                    "law" => v.law,
                    _ => None,
                })
            }),
        "rft" => views
            .rft(&slug, caplens_app::views::RftRequest::from_query(get))
            .await
            .map(|v| {
                v.map(|v| match chart {
                    "bonus" => Some(v.bonus.chart),
                    "tokens" => v.group.and_then(|g| g.tokens),
                    _ => None,
                })
            }),
        "token-stats" => views
            .token_stats(
                &slug,
                caplens_app::views::TokenStatsRequest::from_query(get),
            )
            .await
            .map(|v| {
                v.map(|v| match chart {
                    "position" => v.position,
                    "ppl" => v.ppl,
                    "impact" => v.impact,
                    _ => None,
                })
            }),
        other => {
            return ApiError::not_found(format!("no view “{other}” has charts to export"))
                .into_response()
        }
    };
    let spec = match spec {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(None) => return ApiError::not_found(format!("no experiment “{slug}”")).into_response(),
        Ok(Some(None)) => {
            return ApiError::not_found(format!("the {view} view has no chart “{chart}”"))
                .into_response()
        }
        Ok(Some(Some(spec))) => spec,
    };
    let hidden: Vec<String> = get("hide")
        .map(|h| h.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let svg = render(&spec, &RenderOptions::export(hidden)).svg;
    let filename = format!("{slug}-{view}-{chart}.{ext}");
    let disposition = format!(
        "attachment; filename=\"{}\"",
        filename.replace(['"', '\\'], "_")
    );
    if ext == "svg" {
        return (
            [
                (
                    header::CONTENT_TYPE,
                    "image/svg+xml; charset=utf-8".to_string(),
                ),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            svg,
        )
            .into_response();
    }
    match tokio::task::spawn_blocking(move || svg_to_png(&svg)).await {
        Ok(Ok(png)) => (
            [
                (header::CONTENT_TYPE, "image/png".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            png,
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not rasterise the chart: {e}"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not rasterise the chart: {e}"),
        )
            .into_response(),
    }
}

fn fontdb() -> Arc<resvg::usvg::fontdb::Database> {
    static DB: OnceLock<Arc<resvg::usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = resvg::usvg::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        Arc::new(db)
    })
    .clone()
}

/// Rasterises a chart's SVG at [`PNG_SCALE`].
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, String> {
    let options = resvg::usvg::Options {
        fontdb: fontdb(),
        font_family: "DejaVu Sans".into(),
        ..Default::default()
    };
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| e.to_string())?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(PNG_SCALE)
        .ok_or("chart too large")?;
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("chart too large")?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(PNG_SCALE, PNG_SCALE),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| e.to_string())
}

/// `GET /export/experiments/{slug}/rft.jsonl?run=&strategy=&count=&seed=`: the RFT selection of
/// the page as JSON Lines (one selected rollout per line, [`crate::views::RftExportLine`]),
/// streamed: rollouts are read by id in chunks while the body goes out, so memory stays flat.
/// `x-caplens-selected` carries the number of lines.
pub(super) async fn export_rft(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) =
        ops::catalog::open_experiment(&caller.access(&state.store), &slug, Action::Read).await
    {
        return ApiError::from(e).into_response();
    }
    let req = caplens_app::views::RftRequest::from_query(|k| query.get(k).cloned());
    if !req.invalid.is_empty() {
        return ApiError::bad_request(format!("invalid parameters: {}", req.invalid.join(", ")))
            .into_response();
    }
    let export = match state.views.rft_export(&slug, &req).await {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(None) => return ApiError::not_found(format!("no experiment “{slug}”")).into_response(),
        Ok(Some(Err(why))) => return ApiError::bad_request(why).into_response(),
        Ok(Some(Ok(export))) => export,
    };
    let selected = export.ids.len();
    let filename = format!(
        "{slug}-run{}-{}.jsonl",
        export.run_id,
        req.strategy.name().replace('+', "-")
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(4);
    let store = state.views.store().clone();
    let strategy = req.strategy;
    tokio::spawn(async move {
        for chunk in export.ids.chunks(500) {
            match store.rollouts_by_id(chunk).await {
                Ok(rows) => {
                    let mut text = String::new();
                    for r in &rows {
                        text.push_str(&crate::views::rft_export_line(
                            r,
                            &export.model,
                            export.run_id,
                            strategy,
                        ));
                        text.push('\n');
                    }
                    if tx.send(Ok(text.into())).await.is_err() {
                        return; // the client went away
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "storage error while exporting an RFT selection");
                    // Cut the body short: the client sees a failed download, not a silent partial file.
                    let _ = tx.send(Err(std::io::Error::other("database error"))).await;
                    return;
                }
            }
        }
    });
    // poll_fn over the receiver may be polled again after it ended (the compression layer
    // does), unlike `stream::unfold`, which panics then.
    let mut rx = rx;
    let body =
        axum::body::Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (
        [
            (
                header::CONTENT_TYPE,
                "application/jsonl; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}\"",
                    filename.replace(['"', '\\'], "_")
                ),
            ),
            (
                header::HeaderName::from_static("x-caplens-selected"),
                selected.to_string(),
            ),
        ],
        body,
    )
        .into_response()
}
