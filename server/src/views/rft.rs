//! The RFT data & advantage-shaping view (paper section 4; paper-notes items 15-17): which
//! rollouts of one run an RFT selection strategy keeps, and one problem's GRPO advantages before
//! and after PPL and position shaping. Every number comes from `analysis::rft` and
//! `analysis::shaping`; these functions only choose inputs and lay the results out. They are
//! pure: [`super::ViewService::rft`] reads the run (one streamed pass, cached per run), the preview
//! page's rollouts and the chosen group, and hands them over.

use caplens_analysis::rft::{rule_outcome, select_indices, RftError, RftFeatures, RuleOutcome};
use caplens_analysis::shaping::{shape_group, GroupAdvantages, PositionBonus, ShapingConfig};
use caplens_analysis::tokens::relative_position;
use caplens_app::charts::{ChartSpec, LineChart, Series, XScale};
use caplens_app::tables::TableData;
use caplens_app::views::*;
use serde::Serialize;

use super::frame::frame;
use super::Prepared;
use crate::storage::analysis::{ProblemStat, RunData};
use crate::storage::rft::{quality_flag_names, GroupRollout, RolloutCandidate, RolloutRecord};

/// Points of a per-token chart at most (a response can have 32k tokens).
const MAX_TOKEN_POINTS: usize = 240;
/// Points of the position-bonus curve.
const BONUS_POINTS: usize = 51;

/// What the selection needs of every rollout of one run, from one pass over it: a few bytes per
/// rollout, so it is kept (cached) instead of rereading 100k responses for every preview page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFeatures {
    /// Rollout ids, in candidate order (stored order).
    pub ids: Vec<i64>,
    pub features: Vec<RftFeatures>,
    /// Filter counts (the `selected_*` fields stay 0 here).
    pub counts: RftCounts,
    pub with_entropy: u64,
    pub with_rbf: u64,
    pub with_ppl: u64,
}

impl RunFeatures {
    /// Adds one rollout: the rule filters (`analysis::rft::rule_outcome`) run on its response.
    pub fn push(&mut self, r: &RolloutCandidate) {
        let c = &mut self.counts;
        c.rollouts += 1;
        let passes = match r.response.as_deref().map(rule_outcome) {
            None => {
                c.no_response += 1;
                false
            }
            Some(RuleOutcome::NoBoxed) => {
                c.no_boxed += 1;
                false
            }
            Some(RuleOutcome::NoDigit) => {
                c.no_digit += 1;
                false
            }
            Some(RuleOutcome::Redundant) => {
                c.redundant += 1;
                false
            }
            Some(RuleOutcome::Kept(_)) => {
                if r.correct {
                    c.kept_correct += 1;
                } else {
                    c.kept_incorrect += 1;
                }
                true
            }
        };
        self.with_entropy += r.mean_entropy.is_some() as u64;
        self.with_rbf += r.mean_rbf.is_some() as u64;
        self.with_ppl += r.perplexity.is_some() as u64;
        self.ids.push(r.id);
        self.features.push(RftFeatures {
            passes_filter: passes,
            correct: r.correct,
            mean_entropy: r.mean_entropy,
            mean_rbf: r.mean_rbf,
        });
    }

    /// The strategy's choice: indices into `ids`, ascending (`analysis::rft::select_indices`).
    pub fn select(&self, req: &RftRequest) -> Result<Vec<usize>, RftError> {
        select_indices(&self.features, req.strategy, req.count, req.seed)
    }
}

/// The run the request names (or the experiment's first run) and the run ids of the URL that
/// are not in the experiment.
pub fn rft_run(p: &Prepared, req: &RftRequest) -> (Option<usize>, Vec<i64>) {
    match req.run {
        Some(id) => match p.data.runs.iter().position(|r| r.row.id == id) {
            Some(i) => (Some(i), Vec::new()),
            None => ((!p.data.runs.is_empty()).then_some(0), vec![id]),
        },
        None => ((!p.data.runs.is_empty()).then_some(0), Vec::new()),
    }
}

/// The problem the request names (its `dataset/key`, or the bare key), else the first problem
/// with mixed rewards (0 < c < n), else the first problem; and the name when it is not in the run.
pub fn rft_problem<'a>(
    run: &'a RunData,
    req: &RftRequest,
) -> (Option<&'a ProblemStat>, Option<String>) {
    let default = || {
        run.problems
            .iter()
            .find(|s| s.c > 0 && s.c < s.n)
            .or(run.problems.first())
    };
    match &req.problem {
        None => (default(), None),
        Some(want) => {
            let bare = format!("/{want}");
            match run
                .problems
                .iter()
                .find(|s| s.key == *want)
                .or_else(|| run.problems.iter().find(|s| s.key.ends_with(&bare)))
            {
                Some(s) => (Some(s), None),
                None => (default(), Some(want.clone())),
            }
        }
    }
}

/// Number of preview pages of a selection and the page shown (the request's, at most the last).
pub fn rft_page(selected: usize, asked: usize) -> (usize, usize) {
    let pages = selected.div_ceil(RFT_PAGE_SIZE).max(1);
    (asked.clamp(1, pages), pages)
}

/// The rollout ids of one preview page.
pub fn rft_page_ids(features: &RunFeatures, chosen: &[usize], page: usize) -> Vec<i64> {
    chosen
        .iter()
        .skip((page - 1) * RFT_PAGE_SIZE)
        .take(RFT_PAGE_SIZE)
        .map(|&i| features.ids[i])
        .collect()
}

/// Everything [`rft_view`] needs that comes from the database.
#[derive(Debug, Clone, Default)]
pub struct RftInputs {
    pub run: Option<usize>,
    pub missing_runs: Vec<i64>,
    pub features: Option<std::sync::Arc<RunFeatures>>,
    /// Indices into `features.ids` (None without a run).
    pub selection: Option<Result<Vec<usize>, RftError>>,
    /// The preview page's rollouts.
    pub page_rows: Vec<RolloutRecord>,
    pub problem: Option<ProblemStat>,
    pub problem_missing: Option<String>,
    pub group: Vec<GroupRollout>,
    /// Prompt and reference answer of the problem.
    pub problem_text: (String, String),
}

pub fn rft_view(p: &Prepared, mut req: RftRequest, input: RftInputs) -> RftView {
    let slug = &p.data.summary.slug;
    let chosen: Vec<usize> = input.run.into_iter().collect();
    let run = input.run.map(|i| &p.data.runs[i]);
    req.run = run.map(|r| r.row.id);
    let features = input.features.clone().unwrap_or_default();
    let mut counts = features.counts.clone();
    let selection = match &input.selection {
        None => Err("This experiment has no completed run to select from.".to_string()),
        Some(Err(e)) => Err(format!("{e}.")),
        Some(Ok(sel)) => {
            counts.selected_correct = sel
                .iter()
                .filter(|&&i| features.features[i].correct)
                .count() as u64;
            counts.selected_incorrect = sel.len() as u64 - counts.selected_correct;
            let (page, pages) = rft_page(sel.len(), req.page);
            req.page = page;
            Ok(RftPreview {
                selected: sel.len(),
                page,
                pages,
                rows: input.page_rows.iter().map(preview_row).collect(),
            })
        }
    };
    if let Some(s) = &input.problem {
        req.problem = Some(s.key.clone());
    }
    let group = match (run, &input.problem) {
        (Some(run), Some(problem)) => Some(group_view(run, problem, &input, &mut req)),
        _ => None,
    };
    RftView {
        frame: frame(p, &chosen, input.missing_runs.clone()),
        run: input.run.map(|i| RftRun {
            choice: p.choices[i].clone(),
            rollouts: features.counts.rollouts,
            with_entropy: features.with_entropy,
            with_rbf: features.with_rbf,
            with_ppl: features.with_ppl,
        }),
        counts_table: counts_table(&counts),
        counts,
        selection,
        download_href: req
            .selection_query()
            .href(&format!("/export/experiments/{slug}/rft.jsonl")),
        problem_missing: input.problem_missing.clone(),
        group,
        bonus: bonus_view(&req),
        request: req,
    }
}

fn preview_row(r: &RolloutRecord) -> RftPreviewRow {
    let full = r.response.as_deref().unwrap_or_default();
    // Selected rollouts passed the rule filters, so the cut exists.
    let text = caplens_analysis::rft::rule_filter(full).unwrap_or(full);
    RftPreviewRow {
        problem: qualified_key(r),
        sample: r.sample_index,
        correct: r.correct,
        text: text.to_string(),
        cut_chars: full.chars().count() - text.chars().count(),
        mean_entropy: r.mean_entropy,
        mean_rbf: r.mean_rbf,
        perplexity: r.perplexity,
    }
}

fn qualified_key(r: &RolloutRecord) -> String {
    if r.dataset.is_empty() {
        r.problem_key.clone()
    } else {
        format!("{}/{}", r.dataset, r.problem_key)
    }
}

fn counts_table(c: &RftCounts) -> TableData {
    let rows = [
        ("rollouts in the run", c.rollouts),
        ("dropped: no response text", c.no_response),
        (
            "dropped: no \\boxed{…} with balanced braces (filter 1)",
            c.no_boxed,
        ),
        (
            "dropped: no digit up to the first box (filter 3)",
            c.no_digit,
        ),
        ("dropped: 3-gram redundancy > 0.31 (filter 4)", c.redundant),
        ("kept: correct", c.kept_correct),
        ("kept: incorrect", c.kept_incorrect),
        ("selected: correct", c.selected_correct),
        ("selected: incorrect", c.selected_incorrect),
        ("selected: total", c.selected_correct + c.selected_incorrect),
    ];
    TableData {
        headers: vec!["step".into(), "rollouts".into()],
        rows: rows
            .iter()
            .map(|(k, v)| vec![k.to_string(), v.to_string()])
            .collect(),
        numeric: vec![false, true],
    }
}

fn f4(x: f64) -> String {
    format!("{x:.4}")
}

fn opt4(x: Option<f64>) -> String {
    x.map(f4).unwrap_or_default()
}

fn group_view(
    run: &RunData,
    problem: &ProblemStat,
    input: &RftInputs,
    req: &mut RftRequest,
) -> RftGroup {
    let g = &input.group;
    let rewards: Vec<f64> = g
        .iter()
        .map(|r| if r.correct { 1.0 } else { 0.0 })
        .collect();
    let lengths: Vec<usize> = g
        .iter()
        .map(|r| r.token_count.unwrap_or(0).max(0) as usize)
        .collect();
    let with_ppl = g.iter().filter(|r| r.perplexity.is_some()).count();
    let ln_ppl: Option<Vec<f64>> = (with_ppl == g.len() && !g.is_empty()).then(|| {
        g.iter()
            .map(|r| r.perplexity.unwrap_or(f64::NAN).ln())
            .collect()
    });
    let bonus = req.position_bonus();
    // The charted rollout: the one asked for, else the first with a positive advantage.
    let chosen = req
        .sample
        .and_then(|s| g.iter().position(|r| r.sample_index == s))
        .or_else(|| g.iter().position(|r| r.correct))
        .or((!g.is_empty()).then_some(0));
    req.sample = chosen.map(|i| g[i].sample_index);
    // Per-token advantages are expanded for the charted rollout only (a group can hold
    // 640 x 32k tokens); the others get length 0, which changes none of their advantages.
    let chart_lengths: Vec<usize> = (0..g.len())
        .map(|i| if Some(i) == chosen { lengths[i] } else { 0 })
        .collect();
    let config = |ppl: bool, position: bool| ShapingConfig {
        std_kind: req.std,
        ppl_alpha: ppl.then_some(req.alpha),
        position: position.then_some(bonus),
    };
    let plain = shape_group(&rewards, &chart_lengths, None, &config(false, false));
    let positioned = shape_group(&rewards, &chart_lengths, None, &config(false, true));
    let mut ppl_note = None;
    let (ppl_shaped, both) = match &ln_ppl {
        None if with_ppl == 0 => {
            ppl_note = Some(
                "This run has no perplexity (rollouts.perplexity is empty: its upload carried no token logprobs), \
                 so the PPL-shaped advantages of eqs. 7 and 11 cannot be computed."
                    .to_string(),
            );
            (None, None)
        }
        None => {
            ppl_note = Some(format!(
                "{} of the {} rollouts of this group have no perplexity; PPL shaping (eqs. 7, 11) standardises over the whole group, so it is not shown.",
                g.len() - with_ppl,
                g.len()
            ));
            (None, None)
        }
        Some(ln) => {
            let shaped = shape_group(&rewards, &chart_lengths, Some(ln), &config(true, false));
            let both = shape_group(&rewards, &chart_lengths, Some(ln), &config(true, true));
            match (shaped, both) {
                (Ok(s), Ok(b)) => (Some(s), Some(b)),
                (Err(e), _) | (_, Err(e)) => {
                    ppl_note = Some(format!(
                        "PPL shaping cannot be computed for this group: {e}."
                    ));
                    (None, None)
                }
            }
        }
    };
    let (summary, has_signal, advantages) = match &plain {
        Err(e) => (
            format!("The advantages cannot be computed: {e}."),
            false,
            vec![0.0; g.len()],
        ),
        Ok(s) => {
            let text = match &s.group {
                GroupAdvantages::Empty => "This problem has no stored rollouts in this run.".to_string(),
                GroupAdvantages::ZeroVariance { size, reward } => format!(
                    "All {size} rollouts got reward {reward}: the group carries no learning signal, so every advantage is 0 \
                     (eq. 10 is not divided by a zero standard deviation), and so is every shaped one (the position bonus is signed by the advantage)."
                ),
                GroupAdvantages::Normalized { mean, std, .. } => format!(
                    "{} rollouts, {} correct: mean reward {:.4}, {} standard deviation {:.4}; A_i = (R_i − mean) / std (eq. 10).",
                    g.len(),
                    g.iter().filter(|r| r.correct).count(),
                    mean,
                    if req.std == caplens_analysis::shaping::StdKind::Sample { "sample" } else { "population" },
                    std
                ),
            };
            (text, s.group.has_signal(), s.response_advantages.clone())
        }
    };
    let weights: Option<Vec<f64>> = ppl_shaped
        .as_ref()
        .and_then(|s| s.ppl_weights.as_ref().map(|w| w.weights()));
    let rows: Vec<RftGroupRow> = g
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let a = advantages[i];
            let len = lengths[i];
            let at = |t: usize| relative_position(t, len).map(|l| bonus.apply(a, l));
            RftGroupRow {
                sample: r.sample_index,
                correct: r.correct,
                tokens: r.token_count.map(|t| t.max(0) as u64),
                perplexity: r.perplexity,
                weight: weights.as_ref().map(|w| w[i]),
                advantage: a,
                ppl_advantage: ppl_shaped.as_ref().map(|s| s.response_advantages[i]),
                first_token: at(0),
                last_token: if len > 0 { at(len - 1) } else { None },
            }
        })
        .collect();
    let table = TableData {
        headers: [
            "sample",
            "correct",
            "tokens",
            "PPL",
            "w_i (eq. 7)",
            "A_i (eq. 10)",
            "A'_i PPL (eq. 11)",
            "A'_t first token (eq. 12)",
            "A'_t last token (eq. 12)",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.sample.to_string(),
                    if r.correct { "yes" } else { "no" }.to_string(),
                    r.tokens.map(|t| t.to_string()).unwrap_or_default(),
                    opt4(r.perplexity),
                    opt4(r.weight),
                    f4(r.advantage),
                    opt4(r.ppl_advantage),
                    opt4(r.first_token),
                    opt4(r.last_token),
                ]
            })
            .collect(),
        numeric: vec![true, false, true, true, true, true, true, true, true],
    };
    // Per-token chart and table of the charted rollout.
    let mut token_note = None;
    let mut tokens = None;
    let mut token_table = TableData {
        headers: vec![
            "t".into(),
            "l_t".into(),
            "b_t (eq. 8)".into(),
            "A_i (eq. 10)".into(),
            "A'_t position (eq. 12)".into(),
        ],
        rows: Vec::new(),
        numeric: vec![true; 5],
    };
    if ppl_shaped.is_some() {
        token_table.headers.push("A'_i PPL (eq. 11)".into());
        token_table.headers.push("A'_t PPL + position".into());
        token_table.numeric.extend([true, true]);
    }
    match (chosen, &positioned) {
        (None, _) => {}
        (Some(_), Err(_)) => {}
        (Some(i), Ok(pos)) => {
            let len = lengths[i];
            let sample = g[i].sample_index;
            if len == 0 {
                token_note = Some(format!("Sample {sample} has no token count, so its per-token advantages cannot be laid out."));
            } else if !has_signal {
                token_note = Some("Every advantage of this group is 0, so there is no per-token advantage to chart.".into());
            } else {
                let ts = sample_positions(len, MAX_TOKEN_POINTS);
                let a = advantages[i];
                let series_of =
                    |key: &str, label: String, colour: usize, value: &dyn Fn(usize) -> f64| {
                        let points: Vec<(f64, f64)> =
                            ts.iter().map(|&t| (t as f64, value(t))).collect();
                        Series {
                            key: key.into(),
                            readouts: points
                                .iter()
                                .map(|&(t, v)| {
                                    format!(
                                        "{label}: token {t} (l = {:.3}): {v:.4}",
                                        (t + 0.5) / len as f64
                                    )
                                })
                                .collect(),
                            label,
                            points,
                            band: Vec::new(),
                            colour,
                        }
                    };
                let mut series = vec![
                    series_of("grpo", "GRPO A_i (eq. 10)".into(), 6, &|_| a),
                    series_of(
                        "position",
                        "position-shaped A'_t (eq. 12)".into(),
                        0,
                        &|t| pos.per_token[i][t],
                    ),
                ];
                if let (Some(s), Some(b)) = (&ppl_shaped, &both) {
                    let ap = s.response_advantages[i];
                    series.push(series_of(
                        "ppl",
                        format!("PPL-shaped A'_i (eq. 11, alpha = {})", req.alpha),
                        1,
                        &|_| ap,
                    ));
                    series.push(series_of("both", "PPL then position".into(), 2, &|t| {
                        b.per_token[i][t]
                    }));
                }
                let (lo, hi) = series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| p.1))
                    .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
                // The data's own range (not from 0): the bonus is small next to the advantage.
                let pad = ((hi - lo) * 0.15).max(0.02);
                tokens = Some(ChartSpec::Line(LineChart {
                    x_label: format!("token position t (sample {sample}, {len} tokens)"),
                    y_label: "advantage".into(),
                    x_scale: XScale::Linear,
                    x_range: (0.0, (len - 1).max(1) as f64),
                    y_range: (lo - pad, hi + pad),
                    y_percent: false,
                    series,
                    markers: Vec::new(),
                }));
                for &t in &sample_positions(len, 21) {
                    let l = relative_position(t, len).unwrap_or(0.0);
                    let mut row = vec![
                        t.to_string(),
                        format!("{l:.4}"),
                        f4(bonus.bonus(l)),
                        f4(a),
                        f4(pos.per_token[i][t]),
                    ];
                    if let (Some(s), Some(b)) = (&ppl_shaped, &both) {
                        row.push(f4(s.response_advantages[i]));
                        row.push(f4(b.per_token[i][t]));
                    }
                    token_table.rows.push(row);
                }
            }
        }
    }
    RftGroup {
        problems: run
            .problems
            .iter()
            .map(|s| (s.key.clone(), s.n, s.c))
            .collect(),
        problem: problem.key.clone(),
        prompt: input.problem_text.0.clone(),
        reference: input.problem_text.1.clone(),
        summary,
        has_signal,
        ppl_note,
        rows,
        table,
        sample: req.sample,
        tokens,
        token_table,
        token_note,
    }
}

/// At most `points` token positions from 0 to len - 1, both ends included, ascending.
fn sample_positions(len: usize, points: usize) -> Vec<usize> {
    if len <= points {
        return (0..len).collect();
    }
    let mut out: Vec<usize> = (0..points)
        .map(|k| ((k as f64) * (len - 1) as f64 / (points - 1) as f64).round() as usize)
        .collect();
    out.dedup();
    out
}

fn bonus_view(req: &RftRequest) -> RftBonus {
    let current = req.position_bonus();
    // The other reading of n (paper-notes item 16), for comparison.
    let (other_n, other_label) = if current.n == 0.5 {
        (-0.5, "n = −0.5 (as printed)")
    } else {
        (0.5, "n = 0.5 (the ramp reading)")
    };
    let other = PositionBonus {
        n: other_n,
        ..current
    };
    let curve = |b: &PositionBonus, key: &str, label: String, colour: usize| {
        let points = b.curve(BONUS_POINTS);
        Series {
            key: key.into(),
            readouts: points
                .iter()
                .map(|&(l, v)| format!("{label}: b({l:.2}) = {v:.5}"))
                .collect(),
            label,
            points,
            band: Vec::new(),
            colour,
        }
    };
    let current_label = format!(
        "gamma = {}, d = {}, m = {}, n = {}",
        current.gamma, current.d, current.m, current.n
    );
    let series = vec![
        curve(&current, "current", current_label, 0),
        curve(&other, "other", other_label.to_string(), 1),
    ];
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let span = (hi - lo).max(1e-3);
    let at_start = current.bonus(0.0);
    let at_end = current.bonus(1.0);
    let table = TableData {
        headers: vec![
            "l".into(),
            "b(l) (eq. 8)".into(),
            format!("b(l), {other_label}"),
        ],
        rows: (0..=10)
            .map(|i| {
                let l = i as f64 / 10.0;
                vec![
                    format!("{l:.1}"),
                    format!("{:.5}", current.bonus(l)),
                    format!("{:.5}", other.bonus(l)),
                ]
            })
            .collect(),
        numeric: vec![true, true, true],
    };
    RftBonus {
        chart: ChartSpec::Line(LineChart {
            x_label: "relative position l of the token in the response".into(),
            y_label: "position bonus b(l)".into(),
            x_scale: XScale::Linear,
            x_range: (0.0, 1.0),
            y_range: (lo - span * 0.05, hi + span * 0.1),
            y_percent: false,
            series,
            markers: Vec::new(),
        }),
        at_start,
        at_end,
        nearly_constant: (at_end - at_start).abs() <= 0.01 * current.gamma.abs(),
        table,
    }
}

/// One line of the JSON Lines export. The fields of the native format (`model`, `dataset`,
/// `problem_id`, `sample`, `correct`, `response`, `answer`, `reference`), so the file imports
/// back into caplens, plus the prompt and the rollout's stored metrics.
#[derive(Debug, Serialize)]
pub struct RftExportLine<'a> {
    pub problem_id: &'a str,
    pub dataset: &'a str,
    pub prompt: &'a str,
    /// Cut after the first `\boxed{…}` (the training text).
    pub response: &'a str,
    /// Extracted final answer.
    pub answer: Option<&'a str>,
    /// Reference answer of the problem.
    pub reference: &'a str,
    pub correct: bool,
    pub model: &'a str,
    pub sample: i64,
    /// Whether the cut removed text after the first box.
    pub truncated: bool,
    /// Of the full response.
    pub token_count: Option<i64>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
    pub quality_flags: Vec<&'static str>,
    pub strategy: &'static str,
    pub run_id: i64,
    pub rollout_id: i64,
}

/// The JSON line (no newline) of one selected rollout.
pub fn rft_export_line(
    r: &RolloutRecord,
    model: &str,
    run_id: i64,
    strategy: RftStrategy,
) -> String {
    let full = r.response.as_deref().unwrap_or_default();
    let cut = caplens_analysis::rft::rule_filter(full).unwrap_or(full);
    let line = RftExportLine {
        problem_id: &r.problem_key,
        dataset: &r.dataset,
        prompt: &r.prompt,
        response: cut,
        answer: r.extracted_answer.as_deref(),
        reference: &r.reference_answer,
        correct: r.correct,
        model,
        sample: r.sample_index,
        truncated: cut.len() < full.len(),
        token_count: r.token_count,
        mean_entropy: r.mean_entropy,
        mean_rbf: r.mean_rbf,
        perplexity: r.perplexity,
        quality_flags: quality_flag_names(r.quality_flags),
        strategy: strategy.name(),
        run_id,
        rollout_id: r.id,
    };
    serde_json::to_string(&line).expect("an export line serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_cover_both_ends() {
        assert_eq!(sample_positions(3, 21), vec![0, 1, 2]);
        let s = sample_positions(1000, 21);
        assert_eq!((s[0], *s.last().unwrap(), s.len()), (0, 999, 21));
    }

    #[test]
    fn pages_clamp() {
        assert_eq!(rft_page(0, 3), (1, 1));
        assert_eq!(rft_page(41, 3), (3, 3));
        assert_eq!(rft_page(41, 9), (3, 3));
    }

    #[test]
    fn printed_bonus_is_flagged_nearly_constant() {
        let v = bonus_view(&RftRequest::default());
        assert!(v.nearly_constant);
        let ramp = bonus_view(&RftRequest {
            n: 0.5,
            ..RftRequest::default()
        });
        assert!(!ramp.nearly_constant);
        assert!((ramp.at_end - PositionBonus::ramp_reading().bonus(1.0)).abs() < 1e-15);
    }

    #[test]
    fn features_count_each_filter() {
        let mut f = RunFeatures::default();
        let r = |id, correct, text: Option<&str>| RolloutCandidate {
            id,
            correct,
            response: text.map(String::from),
            mean_entropy: None,
            mean_rbf: None,
            perplexity: Some(1.5),
        };
        f.push(&r(1, true, Some("so 2 \\boxed{2} tail")));
        f.push(&r(2, false, Some("so \\boxed{3}")));
        f.push(&r(3, true, Some("no box 4")));
        f.push(&r(4, true, Some("x \\boxed{x}")));
        f.push(&r(5, true, None));
        let c = &f.counts;
        assert_eq!(
            (
                c.rollouts,
                c.kept_correct,
                c.kept_incorrect,
                c.no_boxed,
                c.no_digit,
                c.no_response
            ),
            (5, 1, 1, 1, 1, 1)
        );
        assert_eq!(f.with_ppl, 5);
        assert_eq!(f.select(&RftRequest::default()).unwrap(), vec![0]);
    }
}
