//! The one chart helper: every chart of caplens is a [`ChartSpec`] (data only, sent from the
//! server) rendered to SVG by [`render`] with plotters' SVG backend. The same code runs on the
//! server (first paint, no-JS readers, SVG/PNG export) and in the browser (re-render when a
//! series is toggled).
//!
//! Besides the SVG, [`render`] returns the pixel position of every data point or region
//! ([`Hit`]), computed with the chart's own coordinate mapping; the page lays focusable hit
//! targets over the picture from them, which gives hover/focus readouts and clickable regions
//! without parsing the SVG.
//!
//! Colours: the Okabe–Ito colour-blind-safe palette, plus a marker shape per series. Text and
//! axes are drawn in sentinel colours that [`render`] rewrites to `currentColor` on a page (so the
//! chart follows the light/dark theme) and to black/grey in an export (a paper figure on white).
//! Labels are escaped by plotters' SVG backend (`<`, `>`, `&`, quotes), so untrusted model names
//! cannot inject markup.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Okabe & Ito (2008), without yellow (unreadable on white) and with grey for black (unreadable
/// on the dark theme).
pub const PALETTE: [&str; 7] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#999999",
];

/// The colour of series `i`.
pub fn series_colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn rgb(hex: &str) -> RGBColor {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

// Sentinel colours, rewritten after drawing (see the module doc).
const FG: RGBColor = RGBColor(1, 2, 3);
const GRID: RGBColor = RGBColor(4, 5, 6);
const FONT: &str = "sans-serif";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum XScale {
    Linear,
    /// x values are plotted at log2(x); ticks read as powers of two.
    Log2,
}

/// One line of a line chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Stable key (a run id): what the URL's `hide=` names.
    pub key: String,
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// The readout of each point (same length as `points`), e.g. "rl: pass@8 = 61.2 % (80 problems)".
    pub readouts: Vec<String>,
    /// A confidence band: (x, lower, upper).
    pub band: Vec<(f64, f64, f64)>,
    /// Index into the palette (stable across toggling).
    pub colour: usize,
}

/// A vertical marker line, e.g. a crossover at k = 24.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VMarker {
    pub x: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineChart {
    pub x_label: String,
    pub y_label: String,
    pub x_scale: XScale,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    /// y values are fractions shown as percentages.
    pub y_percent: bool,
    pub series: Vec<Series>,
    pub markers: Vec<VMarker>,
}

/// Grouped vertical bars: one group per category, one bar per series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarChart {
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
    pub y_percent: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarSeries {
    pub key: String,
    pub label: String,
    /// One value per category (None: no bar).
    pub values: Vec<Option<f64>>,
    pub colour: usize,
}

/// A region of a Venn or UpSet chart: the problems unsolvable by exactly `members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRegion {
    /// Indices into the chart's sets, ascending.
    pub members: Vec<usize>,
    pub count: usize,
    /// Where clicking the region goes (the same view with this region selected).
    pub href: String,
    pub selected: bool,
}

/// Venn diagram of 2 or 3 sets, or UpSet chart of any number (chosen by [`render`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetChart {
    pub sets: Vec<String>,
    pub set_sizes: Vec<usize>,
    /// Non-empty and empty regions alike; render shows every one it has room for.
    pub regions: Vec<SetRegion>,
    pub colours: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChartSpec {
    Line(LineChart),
    Bars(BarChart),
    Sets(SetChart),
}

impl ChartSpec {
    /// Series that can be toggled: (key, label, palette index).
    pub fn legend(&self) -> Vec<(String, String, usize)> {
        match self {
            ChartSpec::Line(c) => c
                .series
                .iter()
                .map(|s| (s.key.clone(), s.label.clone(), s.colour))
                .collect(),
            ChartSpec::Bars(c) => c
                .series
                .iter()
                .map(|s| (s.key.clone(), s.label.clone(), s.colour))
                .collect(),
            ChartSpec::Sets(_) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Inline in a page: theme colours, no legend inside the picture (the page has one).
    Page,
    /// A standalone figure: black on white, legend drawn inside.
    Export,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    pub width: u32,
    pub height: u32,
    /// Keys of series not to draw.
    pub hidden: Vec<String>,
    pub target: Target,
}

impl RenderOptions {
    pub fn page(width: u32, height: u32, hidden: Vec<String>) -> Self {
        Self {
            width,
            height,
            hidden,
            target: Target::Page,
        }
    }
    /// A paper-figure size: 7 x 4.4 inches at 96 px per inch (PNG export scales it up).
    pub fn export(hidden: Vec<String>) -> Self {
        Self {
            width: 672,
            height: 420,
            hidden,
            target: Target::Export,
        }
    }
}

/// A focusable spot on the chart: a data point (circle) or a region (rectangle).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub x: f64,
    pub y: f64,
    /// Width and height; a point when both are 0.
    pub w: f64,
    pub h: f64,
    pub text: String,
    pub href: Option<String>,
    pub colour: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedChart {
    pub svg: String,
    pub width: u32,
    pub height: u32,
    pub hits: Vec<Hit>,
}

/// Draws `spec`. Never fails: a drawing error becomes an SVG that says so.
pub fn render(spec: &ChartSpec, opts: &RenderOptions) -> RenderedChart {
    let mut svg = String::new();
    let mut hits = Vec::new();
    let result = {
        let root = SVGBackend::with_string(&mut svg, (opts.width, opts.height)).into_drawing_area();
        let drawn = match spec {
            ChartSpec::Line(c) => draw_line(c, opts, &root, &mut hits),
            ChartSpec::Bars(c) => draw_bars(c, opts, &root, &mut hits),
            ChartSpec::Sets(c) if c.sets.len() <= 3 => draw_venn(c, opts, &root, &mut hits),
            ChartSpec::Sets(c) => draw_upset(c, opts, &root, &mut hits),
        };
        drawn.and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    if let Err(e) = result {
        svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}"><text x="10" y="20" fill="{FG_HEX}">chart error: {}</text></svg>"#,
            crate::escape::escape_html(&e),
            w = opts.width,
            h = opts.height,
        );
        hits.clear();
    }
    let svg = recolour(&svg, opts.target);
    RenderedChart {
        svg,
        width: opts.width,
        height: opts.height,
        hits,
    }
}

const FG_HEX: &str = "#010203";
const GRID_HEX: &str = "#040506";

fn recolour(svg: &str, target: Target) -> String {
    let (fg, grid) = match target {
        Target::Page => ("currentColor", "currentColor\" stroke-opacity=\"0.18"),
        Target::Export => ("#000000", "#d0d0d0"),
    };
    let mut out = svg
        .replace(&format!("\"{FG_HEX}\""), &format!("\"{fg}\""))
        .replace(&format!("\"{GRID_HEX}\""), &format!("\"{grid}\""));
    if target == Target::Export {
        // A standalone figure gets a white background (transparent PNGs read badly in papers).
        if let Some(end) = out.find('>') {
            let (w, h) = (attr(&out, "width"), attr(&out, "height"));
            out.insert_str(
                end + 1,
                &format!("\n<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>"),
            );
        }
    }
    out
}

fn attr(svg: &str, name: &str) -> String {
    let pat = format!("{name}=\"");
    svg.find(&pat)
        .and_then(|i| svg[i + pat.len()..].split('"').next())
        .unwrap_or("0")
        .to_string()
}

type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&FG)
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Formats a fraction as a percentage with one decimal.
pub fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

fn draw_line(
    c: &LineChart,
    opts: &RenderOptions,
    root: &Root,
    hits: &mut Vec<Hit>,
) -> Result<(), String> {
    let tx = |x: f64| match c.x_scale {
        XScale::Linear => x,
        XScale::Log2 => x.max(f64::MIN_POSITIVE).log2(),
    };
    let (mut x0, mut x1) = (tx(c.x_range.0), tx(c.x_range.1));
    // One x value (a single training step, say): centre it with a symmetric margin and three
    // ticks, rather than an axis from x to x + 1.
    let single_x = !(x1 > x0);
    if single_x {
        let pad = (x0.abs() * 0.1).max(1.0);
        x1 = x0 + pad;
        x0 -= pad;
    }
    let (y0, mut y1) = c.y_range;
    if !(y1 > y0) {
        y1 = y0 + 1.0;
    }
    let export = opts.target == Target::Export;
    let mut chart = ChartBuilder::on(root)
        .margin_top(14)
        .margin_right(24)
        .margin_left(8)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let x_fmt = |x: &f64| match c.x_scale {
        XScale::Linear => trim_number(*x),
        XScale::Log2 => trim_number(2f64.powf(*x).round()),
    };
    let y_fmt = |y: &f64| {
        if c.y_percent {
            format!("{:.0}%", y * 100.0)
        } else {
            trim_number(*y)
        }
    };
    let x_ticks = match c.x_scale {
        _ if single_x => 3,
        XScale::Log2 => ((x1 - x0).ceil() as usize + 1).max(2),
        XScale::Linear => 8,
    };
    draw_axes(
        &mut chart,
        (&c.x_label, &c.y_label),
        (x_ticks, 6),
        (&x_fmt, &y_fmt),
        true,
    )?;
    let visible: Vec<&Series> = c
        .series
        .iter()
        .filter(|s| !opts.hidden.contains(&s.key))
        .collect();
    for s in &visible {
        if s.band.is_empty() {
            continue;
        }
        let colour = rgb(series_colour(s.colour));
        let mut poly: Vec<(f64, f64)> = s.band.iter().map(|&(x, _, hi)| (tx(x), hi)).collect();
        poly.extend(s.band.iter().rev().map(|&(x, lo, _)| (tx(x), lo)));
        chart
            .draw_series(std::iter::once(Polygon::new(
                poly,
                colour.mix(0.16).filled(),
            )))
            .map_err(err)?;
    }
    for m in &c.markers {
        let x = tx(m.x);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, y0), (x, y1)],
                FG.mix(0.55).stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                m.label.clone(),
                (x, y1),
                font(12).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Top,
                )),
            )))
            .map_err(err)?;
    }
    for s in &visible {
        let colour = rgb(series_colour(s.colour));
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (tx(x), y)).collect();
        let drawn = chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(err)?;
        if export {
            let label_colour = colour;
            drawn.label(s.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 22, y)], label_colour.stroke_width(2))
            });
        }
        // A marker shape per series (circle, triangle, cross), so lines differ by more than colour.
        match s.colour % 3 {
            0 => drop(
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(err)?,
            ),
            1 => drop(
                chart
                    .draw_series(
                        pts.iter()
                            .map(|&p| TriangleMarker::new(p, 4, colour.filled())),
                    )
                    .map_err(err)?,
            ),
            _ => drop(
                chart
                    .draw_series(
                        pts.iter()
                            .map(|&p| Cross::new(p, 4, colour.stroke_width(2))),
                    )
                    .map_err(err)?,
            ),
        }
        for (i, &p) in pts.iter().enumerate() {
            let (px, py) = chart.backend_coord(&p);
            hits.push(Hit {
                x: px as f64,
                y: py as f64,
                w: 0.0,
                h: 0.0,
                text: s.readouts.get(i).cloned().unwrap_or_default(),
                href: None,
                colour: s.colour,
            });
        }
    }
    if export && !visible.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(FG)
            .label_font(font(13))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

type Axes<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The axes of every cartesian chart: descriptions, tick labels, theme-sentinel colours, a grid
/// on the major ticks only (`x_grid: false` leaves out the vertical grid lines).
fn draw_axes(
    chart: &mut Axes<'_, '_>,
    (x_desc, y_desc): (&str, &str),
    (x_labels, y_labels): (usize, usize),
    (x_fmt, y_fmt): (&dyn Fn(&f64) -> String, &dyn Fn(&f64) -> String),
    x_grid: bool,
) -> Result<(), String> {
    let mut mesh = chart.configure_mesh();
    if !x_grid {
        mesh.disable_x_mesh();
    }
    mesh.x_labels(x_labels)
        .y_labels(y_labels)
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_style(FG.stroke_width(1))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .label_style(font(15))
        .axis_desc_style(font(16))
        .draw()
        .map_err(err)
}

/// 3 -> "3", 0.25 -> "0.25", 1234.5 -> "1234.5".
pub fn trim_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn draw_bars(
    c: &BarChart,
    opts: &RenderOptions,
    root: &Root,
    hits: &mut Vec<Hit>,
) -> Result<(), String> {
    let visible: Vec<&BarSeries> = c
        .series
        .iter()
        .filter(|s| !opts.hidden.contains(&s.key))
        .collect();
    let max = visible
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let y1 = if c.y_percent {
        1.0f64.min(max * 1.1).max(0.05)
    } else {
        (max * 1.1).max(1.0)
    };
    let n = c.categories.len().max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .margin_top(14)
        .margin_right(16)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n, 0f64..y1)
        .map_err(err)?;
    let cats = c.categories.clone();
    let every = label_stride(&c.categories, opts.width.saturating_sub(80) as f64);
    let x_fmt = move |x: &f64| {
        let i = (*x - 0.5).round();
        if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize).is_multiple_of(every) {
            cats.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let y_fmt = |y: &f64| {
        if c.y_percent {
            format!("{:.0}%", y * 100.0)
        } else {
            trim_number(*y)
        }
    };
    // 10 y labels: plotters' default, which the bar charts have always used.
    draw_axes(
        &mut chart,
        (&c.x_label, &c.y_label),
        (c.categories.len() * 2 + 1, 10),
        (&x_fmt, &y_fmt),
        false,
    )?;
    let k = visible.len().max(1) as f64;
    let width = 0.8 / k;
    for (j, s) in visible.iter().enumerate() {
        let colour = rgb(series_colour(s.colour));
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = *v else { continue };
            let left = i as f64 + 0.1 + j as f64 * width;
            let rect = [(left, 0.0), (left + width * 0.92, v)];
            chart
                .draw_series(std::iter::once(Rectangle::new(rect, colour.filled())))
                .map_err(err)?;
            let (ax, ay) = chart.backend_coord(&rect[0]);
            let (bx, by) = chart.backend_coord(&rect[1]);
            let value = if c.y_percent { pct(v) } else { trim_number(v) };
            hits.push(Hit {
                x: ax.min(bx) as f64,
                y: ay.min(by) as f64,
                w: (bx - ax).abs().max(2) as f64,
                h: (by - ay).abs().max(2) as f64,
                text: format!(
                    "{} · {}: {}",
                    s.label,
                    c.categories.get(i).cloned().unwrap_or_default(),
                    value
                ),
                href: None,
                colour: s.colour,
            });
        }
    }
    Ok(())
}

/// Every how many categories a bar chart labels its x axis so that the labels (15 px text,
/// about 8.5 px a character) do not overlap in `plot_width` pixels; the hover readout still
/// names every bar.
fn label_stride(categories: &[String], plot_width: f64) -> usize {
    let n = categories.len().max(1);
    let widest = categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0) as f64
        * 8.5
        + 10.0;
    let per_category = plot_width / n as f64;
    ((widest / per_category.max(1.0)).ceil() as usize).clamp(1, n)
}

fn region_text(c: &SetChart, r: &SetRegion) -> String {
    let names: Vec<&str> = r
        .members
        .iter()
        .filter_map(|&m| c.sets.get(m).map(String::as_str))
        .collect();
    let others: Vec<&str> = (0..c.sets.len())
        .filter(|m| !r.members.contains(m))
        .filter_map(|m| c.sets.get(m).map(String::as_str))
        .collect();
    let plural = if r.count == 1 { "problem" } else { "problems" };
    if others.is_empty() {
        format!(
            "{} {plural} unsolvable by all of {}",
            r.count,
            names.join(", ")
        )
    } else {
        format!(
            "{} {plural} unsolvable by {} only (solved by {})",
            r.count,
            names.join(" and "),
            others.join(", ")
        )
    }
}

fn draw_venn(
    c: &SetChart,
    opts: &RenderOptions,
    root: &Root,
    hits: &mut Vec<Hit>,
) -> Result<(), String> {
    let (w, h) = (opts.width as f64, opts.height as f64);
    // Three circles span 2r + 0.87d vertically (d = 1.05 r): fit that, with room for labels.
    let r = if c.sets.len() == 3 {
        ((h - 40.0) / 2.92).min(w * 0.2)
    } else {
        ((h - 40.0) / 2.0).min(w * 0.22)
    };
    let d = r * 1.05;
    let (cx, cy) = (
        w / 2.0,
        h / 2.0 - if c.sets.len() == 3 { 0.145 * d } else { 0.0 },
    );
    let centres: Vec<(f64, f64)> = match c.sets.len() {
        0 => Vec::new(),
        1 => vec![(cx, cy)],
        2 => vec![(cx - d / 2.0, cy), (cx + d / 2.0, cy)],
        _ => vec![
            (cx - d / 2.0, cy - d * 0.29),
            (cx + d / 2.0, cy - d * 0.29),
            (cx, cy + d * 0.58),
        ],
    };
    for (i, &(x, y)) in centres.iter().enumerate() {
        let colour = rgb(series_colour(c.colours.get(i).copied().unwrap_or(i)));
        root.draw(&Circle::new(
            (x as i32, y as i32),
            r as i32,
            colour.mix(0.22).filled(),
        ))
        .map_err(err)?;
        root.draw(&Circle::new(
            (x as i32, y as i32),
            r as i32,
            colour.stroke_width(2),
        ))
        .map_err(err)?;
        // Set name and size outside its circle.
        // Left circle: name on the left; right circle: on the right; bottom one: lower right.
        let dir = if (x - cx).abs() < 1.0 {
            (0.8, 0.6)
        } else {
            (x - cx, 0.0)
        };
        let len = (dir.0 * dir.0 + dir.1 * dir.1).sqrt().max(1.0);
        let (lx, ly) = (
            x + dir.0 / len * r * 1.04,
            y + dir.1 / len * r * 1.04 - if dir.1 == 0.0 { r * 0.8 } else { 0.0 },
        );
        // The text runs away from its circle: the bottom circle's label (to its lower right)
        // starts at the circle's edge instead of centring on it.
        let anchor = if dir.0 < -0.5 {
            HPos::Right
        } else if dir.0 > 0.5 {
            HPos::Left
        } else {
            HPos::Center
        };
        let label = format!(
            "{} ({})",
            c.sets[i],
            c.set_sizes.get(i).copied().unwrap_or(0)
        );
        root.draw(&Text::new(
            label,
            (lx as i32, ly as i32),
            font(14).pos(Pos::new(anchor, VPos::Center)),
        ))
        .map_err(err)?;
    }
    // Label spots: the centroid of each exact region, from the circles' geometry.
    for region in &c.regions {
        let inside: Vec<(f64, f64)> = region
            .members
            .iter()
            .filter_map(|&m| centres.get(m).copied())
            .collect();
        if inside.is_empty() {
            continue;
        }
        let mean = |v: &[(f64, f64)]| {
            let n = v.len() as f64;
            (
                v.iter().map(|p| p.0).sum::<f64>() / n,
                v.iter().map(|p| p.1).sum::<f64>() / n,
            )
        };
        let (mx, my) = mean(&inside);
        // Push single-set and pair labels away from the sets they are not in.
        let (px, py) = if region.members.len() < centres.len() {
            let outside: Vec<(f64, f64)> = (0..centres.len())
                .filter(|m| !region.members.contains(m))
                .map(|m| centres[m])
                .collect();
            let (ox, oy) = mean(&outside);
            let (dx, dy) = (mx - ox, my - oy);
            let len = (dx * dx + dy * dy).sqrt().max(1.0);
            let push = if region.members.len() == 1 {
                r * 0.45
            } else {
                r * 0.12
            };
            (mx + dx / len * push, my + dy / len * push)
        } else {
            (mx, my)
        };
        let style = if region.selected {
            (FONT, 20, FontStyle::Bold).into_font().color(&FG)
        } else {
            font(18)
        };
        root.draw(&Text::new(
            region.count.to_string(),
            (px as i32, py as i32),
            style.pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(err)?;
        hits.push(Hit {
            x: px - 22.0,
            y: py - 16.0,
            w: 44.0,
            h: 32.0,
            text: region_text(c, region),
            href: Some(region.href.clone()),
            colour: 0,
        });
    }
    Ok(())
}

use plotters::style::text_anchor::{HPos, Pos, VPos};

fn draw_upset(
    c: &SetChart,
    opts: &RenderOptions,
    root: &Root,
    hits: &mut Vec<Hit>,
) -> Result<(), String> {
    let (w, h) = (opts.width as f64, opts.height as f64);
    let mut regions: Vec<&SetRegion> = c.regions.iter().filter(|r| r.count > 0).collect();
    regions.sort_by(|a, b| b.count.cmp(&a.count).then(a.members.cmp(&b.members)));
    let max_cols = ((w - 180.0) / 22.0).floor().max(1.0) as usize;
    regions.truncate(max_cols);
    let rows = c.sets.len();
    let left = 170.0;
    let row_h = ((h * 0.45) / rows.max(1) as f64).min(22.0);
    let matrix_top = h - 12.0 - row_h * rows as f64;
    let bar_bottom = matrix_top - 10.0;
    let bar_top = 24.0;
    let col_w = ((w - left - 12.0) / regions.len().max(1) as f64).min(36.0);
    let max = regions.iter().map(|r| r.count).max().unwrap_or(1).max(1) as f64;
    // Axis line under the bars.
    root.draw(&PathElement::new(
        vec![
            (left as i32, bar_bottom as i32),
            ((w - 8.0) as i32, bar_bottom as i32),
        ],
        FG.stroke_width(1),
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        "problems in the intersection".to_string(),
        (8, (bar_top - 8.0) as i32),
        font(13),
    ))
    .map_err(err)?;
    for (row, name) in c.sets.iter().enumerate() {
        let y = matrix_top + row_h * (row as f64 + 0.5);
        if row % 2 == 0 {
            root.draw(&Rectangle::new(
                [
                    (left as i32 - 4, (y - row_h / 2.0) as i32),
                    ((w - 8.0) as i32, (y + row_h / 2.0) as i32),
                ],
                GRID.mix(0.5).filled(),
            ))
            .map_err(err)?;
        }
        let label = format!("{} ({})", name, c.set_sizes.get(row).copied().unwrap_or(0));
        root.draw(&Text::new(
            label,
            ((left - 10.0) as i32, y as i32),
            font(13).pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(err)?;
    }
    for (col, region) in regions.iter().enumerate() {
        let x = left + col_w * (col as f64 + 0.5);
        let top = bar_bottom - (bar_bottom - bar_top) * region.count as f64 / max;
        let colour = if region.selected {
            rgb(series_colour(1))
        } else {
            FG
        };
        root.draw(&Rectangle::new(
            [
                ((x - col_w * 0.35) as i32, top as i32),
                ((x + col_w * 0.35) as i32, bar_bottom as i32),
            ],
            colour.filled(),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            region.count.to_string(),
            (x as i32, (top - 3.0) as i32),
            font(11).pos(Pos::new(HPos::Center, VPos::Bottom)),
        ))
        .map_err(err)?;
        let ys: Vec<f64> = region
            .members
            .iter()
            .map(|&m| matrix_top + row_h * (m as f64 + 0.5))
            .collect();
        if let (Some(lo), Some(hi)) = (
            ys.iter().cloned().reduce(f64::min),
            ys.iter().cloned().reduce(f64::max),
        ) {
            root.draw(&PathElement::new(
                vec![(x as i32, lo as i32), (x as i32, hi as i32)],
                FG.stroke_width(2),
            ))
            .map_err(err)?;
        }
        for row in 0..rows {
            let y = matrix_top + row_h * (row as f64 + 0.5);
            let member = region.members.contains(&row);
            let dot = if member { FG.filled() } else { GRID.filled() };
            root.draw(&Circle::new(
                (x as i32, y as i32),
                (row_h * 0.3) as i32,
                dot,
            ))
            .map_err(err)?;
        }
        hits.push(Hit {
            x: x - col_w / 2.0,
            y: top.min(bar_bottom - 12.0),
            w: col_w,
            h: h - 12.0 - top.min(bar_bottom - 12.0),
            text: region_text(c, region),
            href: Some(region.href.clone()),
            colour: 0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> ChartSpec {
        ChartSpec::Line(LineChart {
            x_label: "k".into(),
            y_label: "pass@k".into(),
            x_scale: XScale::Log2,
            x_range: (1.0, 64.0),
            y_range: (0.0, 1.0),
            y_percent: true,
            series: vec![
                Series {
                    key: "1".into(),
                    label: "<script>alert(1)</script>".into(),
                    points: vec![(1.0, 0.2), (8.0, 0.5), (64.0, 0.7)],
                    readouts: vec!["a".into(), "b".into(), "c".into()],
                    band: vec![(1.0, 0.1, 0.3), (64.0, 0.6, 0.8)],
                    colour: 0,
                },
                Series {
                    key: "2".into(),
                    label: "rl".into(),
                    points: vec![(1.0, 0.4), (64.0, 0.6)],
                    readouts: vec!["d".into(), "e".into()],
                    band: vec![],
                    colour: 1,
                },
            ],
            markers: vec![VMarker {
                x: 24.0,
                label: "k = 24".into(),
            }],
        })
    }

    #[test]
    fn line_chart_points_follow_the_data_and_hidden_series_vanish() {
        let all = render(&line(), &RenderOptions::page(600, 360, vec![]));
        assert!(all.svg.starts_with("<svg"), "{}", &all.svg[..80]);
        assert_eq!(all.hits.len(), 5);
        // Higher values are higher up (smaller y); x grows with k.
        assert!(all.hits[1].y < all.hits[0].y && all.hits[1].x > all.hits[0].x);
        // k = 8 sits at log2 position 3 of 6: half-way between k = 1 and k = 64.
        let mid = (all.hits[0].x + all.hits[2].x) / 2.0;
        assert!(
            (all.hits[1].x - mid).abs() <= 1.0,
            "{} vs {}",
            all.hits[1].x,
            mid
        );
        let hidden = render(&line(), &RenderOptions::page(600, 360, vec!["2".into()]));
        assert_eq!(hidden.hits.len(), 3);
        assert!(all.svg.contains("currentColor") && !all.svg.contains(FG_HEX));
    }

    #[test]
    fn export_has_legend_white_background_and_escaped_labels() {
        let out = render(&line(), &RenderOptions::export(vec![]));
        assert!(out.svg.contains("fill=\"#ffffff\""));
        assert!(!out.svg.contains("<script>"));
        assert!(out.svg.contains("&lt;script&gt;"));
        assert!(!out.svg.contains("currentColor"));
    }

    fn sets(n: usize) -> ChartSpec {
        let mut regions = Vec::new();
        for mask in 1u32..(1 << n) {
            let members: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
            regions.push(SetRegion {
                members,
                count: mask as usize,
                href: format!("?region={mask}"),
                selected: mask == 3,
            });
        }
        ChartSpec::Sets(SetChart {
            sets: (0..n).map(|i| format!("m{i}")).collect(),
            set_sizes: vec![5; n],
            regions,
            colours: (0..n).collect(),
        })
    }

    #[test]
    fn venn_and_upset_have_one_clickable_region_each() {
        for n in [2usize, 3, 4, 5] {
            let out = render(&sets(n), &RenderOptions::page(640, 400, vec![]));
            let expected = (1usize << n) - 1;
            assert_eq!(out.hits.len(), expected.min((640 - 180) / 22), "n = {n}");
            assert!(out.hits.iter().all(|h| h.href.is_some() && h.w > 0.0));
            assert!(out.hits[0].x >= 0.0 && out.hits[0].x < 640.0);
        }
    }

    #[test]
    fn bars_have_a_hit_per_value() {
        let spec = ChartSpec::Bars(BarChart {
            x_label: "category".into(),
            y_label: "tokens".into(),
            categories: vec!["a".into(), "b".into()],
            series: vec![BarSeries {
                key: "1".into(),
                label: "base".into(),
                values: vec![Some(3.0), None],
                colour: 0,
            }],
            y_percent: false,
        });
        let out = render(&spec, &RenderOptions::page(400, 300, vec![]));
        assert_eq!(out.hits.len(), 1);
        assert!(out.hits[0].text.contains("base · a: 3"));
    }

    #[test]
    fn numbers_trim() {
        assert_eq!(trim_number(3.0), "3");
        assert_eq!(trim_number(0.25), "0.25");
        assert_eq!(pct(0.1234), "12.3 %");
    }

    #[test]
    fn crowded_bar_labels_thin_out_and_one_x_value_is_centred() {
        let cats: Vec<String> = (0..10)
            .map(|i| format!("{}–{} %", i * 10, i * 10 + 10))
            .collect();
        assert_eq!(label_stride(&cats, 560.0), 2);
        assert_eq!(label_stride(&cats[..3], 560.0), 1);
        let spec = ChartSpec::Line(LineChart {
            x_label: "step".into(),
            y_label: "accuracy".into(),
            x_scale: XScale::Linear,
            x_range: (1000.0, 1000.0),
            y_range: (0.0, 1.0),
            y_percent: true,
            series: vec![Series {
                key: "a".into(),
                label: "a".into(),
                points: vec![(1000.0, 0.5)],
                readouts: vec!["a".into()],
                band: Vec::new(),
                colour: 0,
            }],
            markers: Vec::new(),
        });
        let r = render(&spec, &RenderOptions::page(640, 380, Vec::new()));
        let labels: Vec<&str> = r
            .svg
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .map(str::trim)
            .collect();
        assert!(
            labels.contains(&"1000"),
            "the step is a tick label: {labels:?}"
        );
        assert!(!labels.contains(&"1001"), "{labels:?}");
        // The point sits in the middle of the plot.
        let x = r.hits[0].x;
        assert!(x > 640.0 * 0.4 && x < 640.0 * 0.65, "{x}");
    }
}
