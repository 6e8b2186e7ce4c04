//! Per-run token statistics (paper-notes items 4, 11-14; figs. 5 and 6, table 5), computed once
//! while a run's rollouts are stored and kept as JSON (`runs.token_stats`), so the token
//! statistics and training-dynamics pages never scan rollouts or open trace blobs.
//!
//! # Flow
//! 1. Where a rollout's token trace is at hand (an import's parser thread, the demo generator),
//!    [`TraceTokens::of`] digests it: per-token entropies, token categories, intervention impacts.
//! 2. [`TokenStatsAccumulator::push_rollout`] adds every rollout of the run — with its digest
//!    when it has a trace, and its per-rollout means (`rollouts.mean_entropy`, `perplexity`)
//!    either way — once its verdict is known. Accumulators of parts of a run [`merge`].
//! 3. [`TokenStatsAccumulator::finish`] gives the [`TokenStats`] to store (`None` when no rollout
//!    carried any token-level number: the column stays NULL).
//!
//! # What is counted where
//! - `mean_entropy`: the per-rollout mean entropies of **every** rollout that has one (traced or
//!   not), split by correctness: positive vs negative rollout entropy for training dynamics
//!   (item 8), also for runs that store only per-rollout means.
//! - `perplexity`: per-rollout PPL (item 13) of every rollout with a finite one: means, a
//!   histogram over fixed log-spaced bins (the same bins for every run, so models overlay) and
//!   the bottom / top [`PPL_GROUP_FRACTION`] groups by the rule of `intervention` (floor of
//!   fraction x N, stable order).
//! - `position_entropy`: token entropy by relative position (item 14), traced rollouts only,
//!   [`DEFAULT_POSITION_BINS`] bins, correct vs incorrect (`tokens::PositionEntropyProfile`).
//! - `categories`: tokens per category (table 1 / table 5, `categories::categorize_tokens`) over
//!   traced rollouts, with the mean entropy of each category's tokens.
//! - `interventions`: impacts I_t stored in traces (eq. 6), by relative position and by PPL
//!   group (`intervention::{impact_by_position, impact_by_ppl_group}`, fig. 6b and 5b).
//! - `entropy_source`: for how many traces the per-token entropies were exact (the producer
//!   knew the full distribution), a truncated top-K lower bound (`tokens` module doc), or
//!   missing; `max_top_k` is the largest K seen.
//!
//! Non-finite values never enter a sum (JSON has no infinity): an infinite PPL is only counted
//! (`perplexity.infinite`).
//!
//! [`merge`]: TokenStatsAccumulator::merge

use serde::{Deserialize, Serialize};

use crate::categories::{categorize_tokens, CategoryCounts, TokenCategory};
use crate::intervention::{
    impact_by_position, impact_by_ppl_group, ImpactSummary, MeasuredImpacts, PositionImpactBin,
};
use crate::tokens::{
    uncertainty_top_k, MeanAccumulator, PositionEntropyProfile, DEFAULT_POSITION_BINS,
    DEFAULT_TOP_P,
};
use crate::trace::TokenTrace;

/// Version of the [`TokenStats`] JSON; bump it when a field changes meaning.
pub const TOKEN_STATS_VERSION: u32 = 1;
/// Share of rollouts in each of the low- and high-PPL groups (paper: bottom / top 20 %).
pub const PPL_GROUP_FRACTION: f64 = 0.2;
/// PPL histogram bins per doubling of PPL: edges `2^(i / 16)`.
pub const PPL_BINS_PER_DOUBLING: u32 = 16;
/// PPL histogram bins: edges from 1 to `2^(80 / 16) = 32`.
pub const PPL_HISTOGRAM_BINS: u32 = 80;

/// The bars a PPL chart (fig. 5a) shows: groups of the fine histogram bins, each a range of bin
/// indices, and whether an overflow bar (PPL at or above the last edge) follows.
#[derive(Debug, Clone, PartialEq)]
pub struct PplGrouping {
    pub groups: Vec<std::ops::Range<usize>>,
    pub overflow: bool,
}

/// Most bars a PPL chart shows before it falls back to coarser groups.
const PPL_MAX_BARS: usize = 12;

/// Chooses the bars for histograms shown side by side: whole octaves with an overflow bar when
/// some PPL lies beyond the last edge (or nothing was counted); otherwise the finest of 1, 2, 4
/// or 8 sixteenths of an octave that shows the occupied range in at most [`PPL_MAX_BARS`] bars,
/// so responses whose PPL all lies between 1.1 and 1.4 (usual for a trained reasoning model) are
/// several bars, not one.
pub fn ppl_grouping(histograms: &[&PplHistogram]) -> PplGrouping {
    let bins = PPL_HISTOGRAM_BINS as usize;
    let per_octave = PPL_BINS_PER_DOUBLING as usize;
    let occupied = |i: usize| histograms.iter().any(|h| h.count(i) > 0);
    let overflow = histograms
        .iter()
        .any(|h| h.above_correct + h.above_incorrect > 0);
    let whole_octaves = || PplGrouping {
        groups: (0..bins.div_ceil(per_octave))
            .map(|o| o * per_octave..((o + 1) * per_octave).min(bins))
            .collect(),
        overflow: true,
    };
    let (Some(lo), Some(hi)) = (
        (0..bins).find(|&i| occupied(i)),
        (0..bins).rfind(|&i| occupied(i)),
    ) else {
        return whole_octaves();
    };
    if overflow {
        return whole_octaves();
    }
    for width in [1, 2, 4, 8] {
        let start = lo / width * width;
        let end = (hi / width + 1) * width;
        if (end - start) / width <= PPL_MAX_BARS {
            return PplGrouping {
                groups: (start..end.min(bins))
                    .step_by(width)
                    .map(|a| a..(a + width).min(bins))
                    .collect(),
                overflow: false,
            };
        }
    }
    whole_octaves()
}

/// How a trace's per-token entropies were known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntropyKind {
    /// An entropy column computed by the producer from the full distribution.
    Exact,
    /// The bucket lower bound from the top-K log-probabilities (`tokens` module doc).
    Truncated,
    /// Neither: only the chosen tokens' log-probabilities.
    Missing,
}

/// What the statistics need from one rollout's token trace, computed where the trace is (so the
/// rollout's verdict may still be unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceTokens {
    /// Tokens in the trace.
    pub len: usize,
    /// Per-token entropy in nats (NaN where unknown); empty when `entropy_kind` is `Missing`.
    pub entropies: Vec<f64>,
    pub entropy_kind: EntropyKind,
    /// Most alternatives listed at one position (0 without top-K).
    pub top_k: u32,
    /// Tokens per category (whitespace-only tokens are in none).
    pub categories: CategoryCounts,
    /// Mean entropy of the tokens of each category (empty without entropies).
    pub category_entropy: CategoryEntropy,
    /// `(position, I_t)` of the interventions stored in the trace.
    pub impacts: Vec<(usize, f64)>,
}

impl TraceTokens {
    /// Digests a trace: the exact entropy column when present, else the truncated top-K
    /// estimate per token (as `tokens::rollout_token_means` does for the rollout's mean).
    pub fn of(trace: &TokenTrace) -> TraceTokens {
        let top_k = trace.top_alternatives().map_or(0, |rows| {
            rows.iter().map(Vec::len).max().unwrap_or(0) as u32
        });
        let (entropies, entropy_kind) = match (trace.entropies(), trace.top_alternatives()) {
            (Some(exact), _) => (
                exact.iter().map(|&h| h as f64).collect(),
                EntropyKind::Exact,
            ),
            (None, Some(rows)) if rows.iter().any(|row| !row.is_empty()) => {
                let mut row_buf = Vec::new();
                let entropies = rows
                    .iter()
                    .map(|row| {
                        row_buf.clear();
                        row_buf.extend(row.iter().map(|a| a.logprob as f64));
                        uncertainty_top_k(&row_buf, DEFAULT_TOP_P).map_or(f64::NAN, |u| u.entropy)
                    })
                    .collect();
                (entropies, EntropyKind::Truncated)
            }
            _ => (Vec::new(), EntropyKind::Missing),
        };
        let texts: Vec<std::borrow::Cow<'_, str>> = trace
            .tokens()
            .iter()
            .map(|t| String::from_utf8_lossy(t))
            .collect();
        let mut categories = CategoryCounts::default();
        let mut category_entropy = CategoryEntropy::default();
        for (i, category) in categorize_tokens(&texts).into_iter().enumerate() {
            if let Some(category) = category {
                categories.add(category);
                if let Some(&h) = entropies.get(i).filter(|h| h.is_finite()) {
                    category_entropy.get_mut(category).push(h);
                }
            }
        }
        TraceTokens {
            len: trace.len(),
            entropies,
            entropy_kind,
            top_k,
            categories,
            category_entropy,
            impacts: trace
                .impacts()
                .unwrap_or_default()
                .iter()
                .map(|i| (i.position as usize, i.impact as f64))
                .collect(),
        }
    }
}

/// One rollout as the accumulator sees it.
#[derive(Debug, Clone, Copy)]
pub struct RolloutTokens<'a> {
    pub correct: bool,
    /// The rollout's mean token entropy (`rollouts.mean_entropy`).
    pub mean_entropy: Option<f64>,
    /// The rollout's perplexity (`rollouts.perplexity`).
    pub ppl: Option<f64>,
    /// The digest of its trace, when it has one.
    pub trace: Option<&'a TraceTokens>,
}

/// A mean over all rollouts and over the correct and the incorrect ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CorrectSplit {
    pub all: MeanAccumulator,
    pub correct: MeanAccumulator,
    pub incorrect: MeanAccumulator,
}

impl CorrectSplit {
    /// Adds a value when it is finite.
    pub fn push(&mut self, value: f64, correct: bool) {
        if value.is_finite() {
            self.all.push(value);
            if correct {
                self.correct.push(value)
            } else {
                self.incorrect.push(value)
            }
        }
    }

    pub fn merge(&mut self, other: &Self) {
        self.all.merge(&other.all);
        self.correct.merge(&other.correct);
        self.incorrect.merge(&other.incorrect);
    }
}

/// Mean token entropy per category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryEntropy {
    pub formal_reasoning: MeanAccumulator,
    pub logical_structuring: MeanAccumulator,
    pub metacognitive: MeanAccumulator,
    pub semantic_support: MeanAccumulator,
}

impl CategoryEntropy {
    pub fn get(&self, category: TokenCategory) -> &MeanAccumulator {
        match category {
            TokenCategory::FormalReasoning => &self.formal_reasoning,
            TokenCategory::LogicalStructuring => &self.logical_structuring,
            TokenCategory::Metacognitive => &self.metacognitive,
            TokenCategory::SemanticSupport => &self.semantic_support,
        }
    }

    fn get_mut(&mut self, category: TokenCategory) -> &mut MeanAccumulator {
        match category {
            TokenCategory::FormalReasoning => &mut self.formal_reasoning,
            TokenCategory::LogicalStructuring => &mut self.logical_structuring,
            TokenCategory::Metacognitive => &mut self.metacognitive,
            TokenCategory::SemanticSupport => &mut self.semantic_support,
        }
    }

    fn merge(&mut self, other: &Self) {
        self.formal_reasoning.merge(&other.formal_reasoning);
        self.logical_structuring.merge(&other.logical_structuring);
        self.metacognitive.merge(&other.metacognitive);
        self.semantic_support.merge(&other.semantic_support);
    }
}

/// Token categories over the traced rollouts (table 5: divide by `responses` for per-response
/// counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryStats {
    /// Traced rollouts counted.
    pub responses: u64,
    pub tokens: CategoryCounts,
    pub entropy: CategoryEntropy,
}

/// How the traces' per-token entropies were known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntropySource {
    /// Traces with an exact entropy column.
    pub exact: u64,
    /// Traces whose entropies are top-K lower bounds.
    pub truncated: u64,
    /// Traces with neither.
    pub missing: u64,
    /// Largest number of alternatives listed at one position (the K of top-K; 0 without).
    pub max_top_k: u32,
}

/// Histogram of per-rollout PPL over fixed log-spaced bins, correct and incorrect apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PplHistogram {
    /// Bin i covers `[edges[i], edges[i + 1])`; `edges[i] = 2^(i / 16)`, from 1 to 32. A PPL
    /// below 1 (impossible for log-probabilities <= 0) falls in bin 0.
    pub edges: Vec<f64>,
    pub correct: Vec<u64>,
    pub incorrect: Vec<u64>,
    /// Finite PPLs at or above the last edge.
    pub above_correct: u64,
    pub above_incorrect: u64,
}

impl Default for PplHistogram {
    fn default() -> Self {
        let edges: Vec<f64> = (0..=PPL_HISTOGRAM_BINS)
            .map(|i| 2f64.powf(i as f64 / PPL_BINS_PER_DOUBLING as f64))
            .collect();
        let bins = PPL_HISTOGRAM_BINS as usize;
        PplHistogram {
            edges,
            correct: vec![0; bins],
            incorrect: vec![0; bins],
            above_correct: 0,
            above_incorrect: 0,
        }
    }
}

impl PplHistogram {
    /// Adds a finite PPL.
    fn push(&mut self, ppl: f64, correct: bool) {
        let bins = self.correct.len();
        // Index of the last edge <= ppl (bin 0 for values below the first edge).
        let bin = self.edges.partition_point(|&e| e <= ppl).saturating_sub(1);
        match (bin < bins, correct) {
            (true, true) => self.correct[bin] += 1,
            (true, false) => self.incorrect[bin] += 1,
            (false, true) => self.above_correct += 1,
            (false, false) => self.above_incorrect += 1,
        }
    }

    /// Rollouts in fine bin `i`, correct and incorrect together.
    pub fn count(&self, i: usize) -> u64 {
        self.correct.get(i).copied().unwrap_or(0) + self.incorrect.get(i).copied().unwrap_or(0)
    }

    fn merge(&mut self, other: &Self) {
        for (a, b) in self.correct.iter_mut().zip(&other.correct) {
            *a += b;
        }
        for (a, b) in self.incorrect.iter_mut().zip(&other.incorrect) {
            *a += b;
        }
        self.above_correct += other.above_correct;
        self.above_incorrect += other.above_incorrect;
    }
}

/// One PPL group of rollouts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PplGroupSummary {
    pub rollouts: u64,
    pub correct: u64,
    /// Mean of the group's per-rollout mean entropies.
    pub mean_entropy: MeanAccumulator,
    pub min_ppl: f64,
    pub max_ppl: f64,
}

/// The bottom and top [`PPL_GROUP_FRACTION`] of rollouts by PPL (item 13, fig. 5).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PplGroups {
    pub fraction: f64,
    /// Rollouts per group: `floor(fraction * N)` of the N rollouts with a finite PPL.
    pub group_size: u64,
    pub low: PplGroupSummary,
    pub high: PplGroupSummary,
}

/// Per-rollout PPL: means, histogram, groups.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PplStats {
    pub mean: CorrectSplit,
    pub histogram: PplHistogram,
    /// `None` with fewer than `ceil(1 / fraction)` rollouts with a finite PPL.
    pub groups: Option<PplGroups>,
    /// Rollouts whose PPL is infinite (a zero-probability token); in no mean, bin or group.
    pub infinite: u64,
}

/// Impact in the low- and high-PPL groups of the intervened rollouts (fig. 5b); the fields of
/// `intervention::PplGroupImpact` without the response indices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PplGroupImpactSummary {
    pub fraction: f64,
    pub group_size: u64,
    pub low: ImpactSummary,
    pub high: ImpactSummary,
    pub low_max_ppl: f64,
    pub high_min_ppl: f64,
    pub tie_at_low_cut: bool,
    pub tie_at_high_cut: bool,
}

/// Intervention impacts stored in the run's traces (item 11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterventionStats {
    /// Rollouts with at least one intervention.
    pub responses: u64,
    pub interventions: u64,
    /// [`DEFAULT_POSITION_BINS`] bins of relative position (fig. 6b).
    pub by_position: Vec<PositionImpactBin>,
    /// Over the intervened rollouts with a finite PPL; `None` when there are too few.
    pub by_ppl_group: Option<PplGroupImpactSummary>,
    /// Why an aggregation could not be computed (e.g. an impact outside [-1, 1]).
    pub error: Option<String>,
}

/// The stored token statistics of one run (`runs.token_stats`). See the module doc for what
/// each part counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenStats {
    pub version: u32,
    /// Rollouts pushed (with or without token data).
    pub rollouts: u64,
    /// Rollouts with a token trace, and the tokens in those traces.
    pub traced_rollouts: u64,
    pub trace_tokens: u64,
    pub entropy_source: EntropySource,
    /// Per-rollout mean entropy (nats), every rollout that has one.
    pub mean_entropy: CorrectSplit,
    pub perplexity: PplStats,
    /// Token entropy by relative position, traced rollouts, correct vs incorrect.
    pub position_entropy: PositionEntropyProfile,
    pub categories: CategoryStats,
    /// `None` when no trace holds an intervention.
    pub interventions: Option<InterventionStats>,
}

/// Builds a run's [`TokenStats`] from its rollouts, one at a time.
#[derive(Debug, Clone)]
pub struct TokenStatsAccumulator {
    rollouts: u64,
    with_token_data: u64,
    traced: u64,
    trace_tokens: u64,
    entropy_source: EntropySource,
    mean_entropy: CorrectSplit,
    ppl_mean: CorrectSplit,
    histogram: PplHistogram,
    infinite_ppl: u64,
    /// (finite PPL, correct, mean entropy) of every rollout with a finite PPL, in push order.
    ppl_rollouts: Vec<(f64, bool, Option<f64>)>,
    position: PositionEntropyProfile,
    categories: CategoryStats,
    interventions: Vec<MeasuredImpacts>,
}

impl Default for TokenStatsAccumulator {
    fn default() -> Self {
        TokenStatsAccumulator {
            rollouts: 0,
            with_token_data: 0,
            traced: 0,
            trace_tokens: 0,
            entropy_source: EntropySource::default(),
            mean_entropy: CorrectSplit::default(),
            ppl_mean: CorrectSplit::default(),
            histogram: PplHistogram::default(),
            infinite_ppl: 0,
            ppl_rollouts: Vec::new(),
            position: PositionEntropyProfile::new(DEFAULT_POSITION_BINS),
            categories: CategoryStats::default(),
            interventions: Vec::new(),
        }
    }
}

impl TokenStatsAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one rollout of the run.
    pub fn push_rollout(&mut self, r: RolloutTokens<'_>) {
        self.rollouts += 1;
        let mean_entropy = r.mean_entropy.filter(|h| h.is_finite());
        let ppl = r.ppl.filter(|p| !p.is_nan());
        if mean_entropy.is_some() || ppl.is_some() || r.trace.is_some() {
            self.with_token_data += 1;
        }
        if let Some(h) = mean_entropy {
            self.mean_entropy.push(h, r.correct);
        }
        match ppl {
            Some(p) if p.is_finite() => {
                self.ppl_mean.push(p, r.correct);
                self.histogram.push(p, r.correct);
                self.ppl_rollouts.push((p, r.correct, mean_entropy));
            }
            Some(_) => self.infinite_ppl += 1,
            None => {}
        }
        let Some(t) = r.trace else { return };
        self.traced += 1;
        self.trace_tokens += t.len as u64;
        match t.entropy_kind {
            EntropyKind::Exact => self.entropy_source.exact += 1,
            EntropyKind::Truncated => self.entropy_source.truncated += 1,
            EntropyKind::Missing => self.entropy_source.missing += 1,
        }
        self.entropy_source.max_top_k = self.entropy_source.max_top_k.max(t.top_k);
        if !t.entropies.is_empty() {
            self.position.push_response(&t.entropies, r.correct);
        }
        self.categories.responses += 1;
        add_counts(&mut self.categories.tokens, &t.categories);
        self.categories.entropy.merge(&t.category_entropy);
        if !t.impacts.is_empty() {
            self.interventions.push(MeasuredImpacts {
                length: t.len,
                // A rollout without a PPL stays out of the PPL groups (NaN marks it).
                ppl: ppl.unwrap_or(f64::NAN),
                points: t.impacts.clone(),
            });
        }
    }

    /// Adds the rollouts of another accumulator (pushed after this one's).
    pub fn merge(&mut self, other: TokenStatsAccumulator) {
        self.rollouts += other.rollouts;
        self.with_token_data += other.with_token_data;
        self.traced += other.traced;
        self.trace_tokens += other.trace_tokens;
        self.entropy_source.exact += other.entropy_source.exact;
        self.entropy_source.truncated += other.entropy_source.truncated;
        self.entropy_source.missing += other.entropy_source.missing;
        self.entropy_source.max_top_k = self
            .entropy_source
            .max_top_k
            .max(other.entropy_source.max_top_k);
        self.mean_entropy.merge(&other.mean_entropy);
        self.ppl_mean.merge(&other.ppl_mean);
        self.histogram.merge(&other.histogram);
        self.infinite_ppl += other.infinite_ppl;
        self.ppl_rollouts.extend(other.ppl_rollouts);
        // Both profiles have DEFAULT_POSITION_BINS bins, so this always merges.
        self.position.merge(&other.position);
        self.categories.responses += other.categories.responses;
        add_counts(&mut self.categories.tokens, &other.categories.tokens);
        self.categories.entropy.merge(&other.categories.entropy);
        self.interventions.extend(other.interventions);
    }

    /// The statistics, or `None` when no rollout carried a mean entropy, a PPL or a trace.
    pub fn finish(self) -> Option<TokenStats> {
        if self.with_token_data == 0 {
            return None;
        }
        let groups = ppl_groups(&self.ppl_rollouts);
        Some(TokenStats {
            version: TOKEN_STATS_VERSION,
            rollouts: self.rollouts,
            traced_rollouts: self.traced,
            trace_tokens: self.trace_tokens,
            entropy_source: self.entropy_source,
            mean_entropy: self.mean_entropy,
            perplexity: PplStats {
                mean: self.ppl_mean,
                histogram: self.histogram,
                groups,
                infinite: self.infinite_ppl,
            },
            position_entropy: self.position,
            categories: self.categories,
            interventions: intervention_stats(&self.interventions),
        })
    }
}

fn add_counts(total: &mut CategoryCounts, more: &CategoryCounts) {
    total.formal_reasoning += more.formal_reasoning;
    total.logical_structuring += more.logical_structuring;
    total.metacognitive += more.metacognitive;
    total.semantic_support += more.semantic_support;
}

/// The low and high PPL groups, with the group rule of `intervention::impact_by_ppl_group`
/// (applied to impact-free responses, so only its grouping is used).
fn ppl_groups(rollouts: &[(f64, bool, Option<f64>)]) -> Option<PplGroups> {
    let as_responses: Vec<MeasuredImpacts> = rollouts
        .iter()
        .map(|&(ppl, _, _)| MeasuredImpacts {
            length: 1,
            ppl,
            points: Vec::new(),
        })
        .collect();
    let grouping = impact_by_ppl_group(&as_responses, PPL_GROUP_FRACTION).ok()?;
    let summarize = |indices: &[usize]| {
        let mut s = PplGroupSummary {
            min_ppl: f64::INFINITY,
            max_ppl: f64::NEG_INFINITY,
            ..PplGroupSummary::default()
        };
        for &i in indices {
            let (ppl, correct, entropy) = rollouts[i];
            s.rollouts += 1;
            s.correct += correct as u64;
            if let Some(h) = entropy {
                s.mean_entropy.push(h);
            }
            s.min_ppl = s.min_ppl.min(ppl);
            s.max_ppl = s.max_ppl.max(ppl);
        }
        s
    };
    Some(PplGroups {
        fraction: PPL_GROUP_FRACTION,
        group_size: grouping.group_size as u64,
        low: summarize(&grouping.low_responses),
        high: summarize(&grouping.high_responses),
    })
}

fn intervention_stats(responses: &[MeasuredImpacts]) -> Option<InterventionStats> {
    if responses.is_empty() {
        return None;
    }
    let mut error = None;
    let by_position = impact_by_position(responses, DEFAULT_POSITION_BINS).unwrap_or_else(|e| {
        error = Some(e.to_string());
        Vec::new()
    });
    let with_ppl: Vec<MeasuredImpacts> = responses
        .iter()
        .filter(|r| !r.ppl.is_nan())
        .cloned()
        .collect();
    let by_ppl_group = match impact_by_ppl_group(&with_ppl, PPL_GROUP_FRACTION) {
        Ok(g) => Some(PplGroupImpactSummary {
            fraction: PPL_GROUP_FRACTION,
            group_size: g.group_size as u64,
            low: g.low,
            high: g.high,
            low_max_ppl: g.low_max_ppl,
            high_min_ppl: g.high_min_ppl,
            tie_at_low_cut: g.tie_at_low_cut,
            tie_at_high_cut: g.tie_at_high_cut,
        }),
        Err(crate::intervention::InterventionError::TooFewResponses { .. }) => None,
        Err(e) => {
            error.get_or_insert(e.to_string());
            None
        }
    };
    Some(InterventionStats {
        responses: responses.len() as u64,
        interventions: responses.iter().map(|r| r.points.len() as u64).sum(),
        by_position,
        by_ppl_group,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{PositionImpact, TopAlternative};

    fn trace(tokens: &[&str], entropies: Option<&[f32]>, impacts: &[(u32, f32)]) -> TokenTrace {
        let mut t = TokenTrace::new(
            tokens.iter().map(|s| s.as_bytes().to_vec()).collect(),
            vec![-0.1; tokens.len()],
        )
        .unwrap();
        if let Some(h) = entropies {
            t = t.with_entropies(h.to_vec()).unwrap();
        }
        if !impacts.is_empty() {
            t = t
                .with_impacts(
                    impacts
                        .iter()
                        .map(|&(position, impact)| PositionImpact { position, impact })
                        .collect(),
                )
                .unwrap();
        }
        t
    }

    #[test]
    fn digest_uses_exact_entropies_then_top_k_then_nothing() {
        let exact = TraceTokens::of(&trace(&["Wait", ",", " 2"], Some(&[1.5, 0.25, 0.5]), &[]));
        assert_eq!(exact.entropy_kind, EntropyKind::Exact);
        assert_eq!(exact.entropies, vec![1.5, 0.25, 0.5]);
        assert_eq!(exact.categories.metacognitive, 1);
        assert_eq!(exact.categories.formal_reasoning, 1);
        assert_eq!(exact.category_entropy.metacognitive.mean(), Some(1.5));

        let lp = |p: f64| p.ln() as f32;
        let top = trace(&["a", "b"], None, &[])
            .with_top_alternatives(vec![
                vec![
                    TopAlternative {
                        token: b"a".to_vec(),
                        logprob: lp(0.5),
                    },
                    TopAlternative {
                        token: b"c".to_vec(),
                        logprob: lp(0.5),
                    },
                ],
                vec![TopAlternative {
                    token: b"b".to_vec(),
                    logprob: lp(0.9),
                }],
            ])
            .unwrap();
        let d = TraceTokens::of(&top);
        assert_eq!((d.entropy_kind, d.top_k), (EntropyKind::Truncated, 2));
        assert!(
            (d.entropies[0] - 2f64.ln()).abs() < 1e-6,
            "{:?}",
            d.entropies
        );
        let bucket = -(0.9 * 0.9f64.ln() + 0.1 * 0.1f64.ln());
        assert!((d.entropies[1] - bucket).abs() < 1e-6);

        let none = TraceTokens::of(&trace(&["x"], None, &[]));
        assert_eq!(none.entropy_kind, EntropyKind::Missing);
        assert!(none.entropies.is_empty());
        // Top-K rows that list nothing (a `null` row in an OpenAI response) give no entropy.
        let empty_rows = trace(&["x"], None, &[])
            .with_top_alternatives(vec![Vec::new()])
            .unwrap();
        assert_eq!(
            TraceTokens::of(&empty_rows).entropy_kind,
            EntropyKind::Missing
        );
    }

    #[test]
    fn nothing_token_level_gives_none() {
        let mut acc = TokenStatsAccumulator::new();
        for correct in [true, false] {
            acc.push_rollout(RolloutTokens {
                correct,
                mean_entropy: None,
                ppl: None,
                trace: None,
            });
        }
        assert_eq!(acc.finish(), None);
    }

    #[test]
    fn means_split_by_correctness_without_traces() {
        let mut acc = TokenStatsAccumulator::new();
        for (correct, h) in [(true, 0.2), (true, 0.4), (false, 0.9), (false, f64::NAN)] {
            acc.push_rollout(RolloutTokens {
                correct,
                mean_entropy: Some(h),
                ppl: None,
                trace: None,
            });
        }
        let s = acc.finish().unwrap();
        assert_eq!(s.rollouts, 4);
        assert_eq!(s.traced_rollouts, 0);
        assert!((s.mean_entropy.correct.mean().unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(s.mean_entropy.incorrect.mean(), Some(0.9));
        assert_eq!(s.mean_entropy.all.count, 3);
        assert_eq!(s.interventions, None);
        assert_eq!(s.perplexity.groups, None);
    }

    #[test]
    fn ppl_histogram_groups_and_infinity() {
        let mut acc = TokenStatsAccumulator::new();
        // Ten rollouts with PPL 1.0, 1.1, ... 1.9; the three lowest are correct.
        for i in 0..10 {
            acc.push_rollout(RolloutTokens {
                correct: i < 3,
                mean_entropy: Some(i as f64),
                ppl: Some(1.0 + i as f64 / 10.0),
                trace: None,
            });
        }
        acc.push_rollout(RolloutTokens {
            correct: false,
            mean_entropy: None,
            ppl: Some(f64::INFINITY),
            trace: None,
        });
        acc.push_rollout(RolloutTokens {
            correct: false,
            mean_entropy: None,
            ppl: Some(100.0),
            trace: None,
        });
        let s = acc.finish().unwrap();
        let p = &s.perplexity;
        assert_eq!(p.infinite, 1);
        assert_eq!(p.histogram.edges.len(), 81);
        assert_eq!(p.histogram.edges[0], 1.0);
        assert!((p.histogram.edges[16] - 2.0).abs() < 1e-12);
        assert_eq!(p.histogram.correct.iter().sum::<u64>(), 3);
        assert_eq!(p.histogram.incorrect.iter().sum::<u64>(), 7);
        assert_eq!(p.histogram.above_incorrect, 1);
        // 1.0 is in bin 0; 1.9 < 2 = edge 16 is in bin 14 or 15.
        assert_eq!(p.histogram.correct[0], 1);
        let bin_of = |x: f64| p.histogram.edges.iter().rposition(|&e| e <= x).unwrap();
        assert_eq!(p.histogram.incorrect[bin_of(1.9)], 1);
        let g = p.groups.unwrap();
        // 11 finite PPLs: groups of floor(0.2 * 11) = 2.
        assert_eq!(g.group_size, 2);
        assert_eq!((g.low.rollouts, g.low.correct), (2, 2));
        assert_eq!((g.low.min_ppl, g.low.max_ppl), (1.0, 1.1));
        assert_eq!((g.high.min_ppl, g.high.max_ppl), (1.9, 100.0));
        assert_eq!(g.high.mean_entropy.mean(), Some(9.0));
        let json = serde_json::to_string(&s).unwrap();
        let back: TokenStats = serde_json::from_str(&json).unwrap();
        // serde_json parses floats to within an ulp, not always bit-exactly.
        assert_eq!(back.perplexity.histogram.correct, p.histogram.correct);
        assert_eq!(back.perplexity.groups.unwrap().group_size, 2);
        assert!(back
            .perplexity
            .histogram
            .edges
            .iter()
            .zip(&p.histogram.edges)
            .all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn traces_feed_position_profile_categories_and_interventions() {
        let mut acc = TokenStatsAccumulator::new();
        let mut parts = Vec::new();
        for i in 0..6u32 {
            let t = trace(
                &["Wait", ",", " so", " 2", "+", "2"],
                Some(&[2.0, 0.1, 1.0, 0.5, 0.1, 0.3]),
                &[(0, 0.5), (5, -0.25 * (i % 2) as f32)],
            );
            parts.push((TraceTokens::of(&t), i % 2 == 0, 1.0 + i as f64));
        }
        let mut second = TokenStatsAccumulator::new();
        for (k, (t, correct, ppl)) in parts.iter().enumerate() {
            let r = RolloutTokens {
                correct: *correct,
                mean_entropy: Some(0.5),
                ppl: Some(*ppl),
                trace: Some(t),
            };
            if k < 3 {
                acc.push_rollout(r)
            } else {
                second.push_rollout(r)
            }
        }
        acc.merge(second);
        let s = acc.finish().unwrap();
        assert_eq!((s.traced_rollouts, s.trace_tokens), (6, 36));
        assert_eq!(
            s.entropy_source,
            EntropySource {
                exact: 6,
                truncated: 0,
                missing: 0,
                max_top_k: 0
            }
        );
        assert_eq!(s.position_entropy.responses(), (3, 3));
        let bins = s.position_entropy.summary();
        // Token 0 ("Wait", 2.0 nats) is at l = 1/12: bin 1 of 20.
        assert_eq!(bins[1].correct.mean(), Some(2.0));
        assert_eq!(s.categories.responses, 6);
        assert_eq!(s.categories.tokens.metacognitive, 6);
        assert_eq!(s.categories.entropy.metacognitive.mean(), Some(2.0));
        let iv = s.interventions.unwrap();
        assert_eq!((iv.responses, iv.interventions), (6, 12));
        assert_eq!(iv.error, None);
        let first = iv.by_position[1].summary;
        assert_eq!((first.interventions, first.mean_impact), (6, Some(0.5)));
        // Token 5 is at l = 5.5 / 6: bin 18.
        let last = iv.by_position[18].summary;
        assert_eq!(last.interventions, 6);
        assert!((last.mean_impact.unwrap() + 0.125).abs() < 1e-12);
        let g = iv.by_ppl_group.unwrap();
        // Six responses: groups of one; the lowest PPL (1.0) is even (impact 0 at the end).
        assert_eq!(g.group_size, 1);
        assert_eq!(g.low.mean_impact, Some(0.25));
        assert_eq!(g.high.mean_impact, Some(0.125));
    }

    #[test]
    fn a_bad_impact_is_reported_not_fatal() {
        let t = trace(&["a", "b"], Some(&[0.1, 0.2]), &[(1, 3.0)]);
        let d = TraceTokens::of(&t);
        let mut acc = TokenStatsAccumulator::new();
        acc.push_rollout(RolloutTokens {
            correct: true,
            mean_entropy: Some(0.15),
            ppl: Some(1.1),
            trace: Some(&d),
        });
        let iv = acc.finish().unwrap().interventions.unwrap();
        assert!(iv.error.unwrap().contains("not in [-1, 1]"));
        assert!(iv.by_position.is_empty());
    }

    #[test]
    fn ppl_bars_follow_the_occupied_range() {
        let mut narrow = PplHistogram::default();
        for ppl in [1.10, 1.15, 1.2, 1.3, 1.38] {
            narrow.push(ppl, true);
        }
        let g = ppl_grouping(&[&narrow]);
        assert!(!g.overflow);
        assert!(
            g.groups.len() > 1 && g.groups.len() <= PPL_MAX_BARS,
            "{g:?}"
        );
        let total: u64 = g
            .groups
            .iter()
            .map(|r| r.clone().map(|i| narrow.count(i)).sum::<u64>())
            .sum();
        assert_eq!(total, 5, "every rollout is in a bar");
        // Contiguous, each of one width.
        for w in g.groups.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        // A wide spread (1.05 to 20) takes half octaves, from 1; one PPL beyond 32 whole
        // octaves and an overflow bar.
        let mut wide = PplHistogram::default();
        wide.push(1.05, true);
        wide.push(20.0, false);
        let g = ppl_grouping(&[&narrow, &wide]);
        assert_eq!(g.groups.len(), 9);
        assert_eq!((g.groups[0].clone(), g.groups[8].clone()), (0..8, 64..72));
        wide.push(40.0, false);
        let g = ppl_grouping(&[&wide]);
        assert!(g.overflow);
        assert_eq!(g.groups.len(), 5);
        assert_eq!(g.groups[0], 0..16);
        // Nothing at all: whole octaves.
        assert_eq!(ppl_grouping(&[]).groups.len(), 5);
    }
}
