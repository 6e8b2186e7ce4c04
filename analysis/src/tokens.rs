//! Token-level metrics: entropy, rollout branching factor, perplexity, gradient-norm proxy and
//! entropy by relative position (paper-notes items 4, 5, 10, 13, 14).
//!
//! All entropies are in nats (natural logarithm), so the maximum over a vocabulary of V tokens is
//! ln V.
//!
//! # Where the numbers come from
//! A token's uncertainty can be computed from
//! - the **full distribution** over the vocabulary (probabilities, logits or log-probabilities):
//!   the result is [`Bound::Exact`];
//! - the **top-K log-probabilities** an inference server returns (vLLM: K <= 20 by default): the
//!   result is a bound, and carries the missing mass `1 - sum(top-K)`.
//!
//! ## Truncated entropy estimator
//! From top-K we use the *bucket* estimator: the K listed terms plus the missing mass `m` treated
//! as one extra outcome,
//! `H_bucket = -sum_{i<=K} p_i ln p_i - m ln m`.
//! Merging outcomes never raises entropy (grouping rule: `H(p) = H(grouped) + m * H(inside the
//! bucket) >= H(grouped)`), so `H_bucket` is a **lower bound** on the true entropy whichever
//! tokens are listed, as long as their probabilities are right. When the vocabulary size V is
//! known, [`TokenUncertainty::entropy_upper_bound`] gives the matching upper bound
//! `H_bucket + m ln(V - K)` (the missing mass spread evenly). We prefer this over the entropy of
//! the renormalised top-K, which is neither a lower nor an upper bound.
//!
//! ## Truncated RBF
//! The nucleus at top-p is the smallest set of most probable tokens whose mass reaches p. From a
//! top-K list (assumed to be the K *most probable* tokens, as `top_logprobs` is) the RBF is exact
//! when the listed mass reaches p. Otherwise every unlisted token has probability at most the
//! smallest listed one, `p_min`, so at least `ceil((p - S) / p_min)` more tokens are needed:
//! the result is `K + ceil((p - S) / p_min)`, flagged [`Bound::LowerBound`].
//!
//! # Bad values
//! - `NaN`: invalid. In a top-K list or a perplexity it is skipped and counted; in a full
//!   distribution it is an error (one bad entry makes the whole distribution meaningless).
//! - `-inf` and anything `<= -9999.0` (vLLM serialises -inf as -9999.0): a probability of 0.
//! - a log-probability above 0 (a probability above 1): rounding noise up to
//!   [`POSITIVE_LOGPROB_TOLERANCE`] is clamped to 0; larger values, and `+inf`, are invalid.
//! - an empty distribution: an error ([`TokenMetricError::EmptyDistribution`]).

use std::cmp::Ordering;

/// The default nucleus mass for the rollout branching factor (the paper's decoding top-p).
pub const DEFAULT_TOP_P: f64 = 0.95;

/// vLLM's JSON encoding of a -inf log-probability. Any value at or below it means probability 0.
pub const VLLM_NEG_INF: f64 = -9999.0;

/// Positive log-probabilities up to this value are rounding noise and are read as 0.
pub const POSITIVE_LOGPROB_TOLERANCE: f64 = 1e-4;

/// A full distribution is accepted when its total mass is within this distance of 1.
pub const NORMALISATION_TOLERANCE: f64 = 1e-3;

/// Cumulative mass within this distance below p counts as reaching p, so that 0.95 written as a
/// sum of floats (0.9499999999999) does not add a spurious token to the nucleus.
const NUCLEUS_SLACK: f64 = 1e-12;

/// A top-K list whose mass is this close to 1 covers the whole distribution.
const COMPLETE_MASS_SLACK: f64 = 1e-9;

/// Whether a value is exact or a bound on the true value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Computed from the full distribution (or a top-K list holding all the mass).
    Exact,
    /// Computed from a truncated distribution; the true value is at least this.
    LowerBound,
}

/// Why a token metric could not be computed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenMetricError {
    /// No entries, or no entry with positive probability.
    EmptyDistribution,
    /// An entry of a full distribution is NaN, +inf, negative (probabilities) or a positive
    /// log-probability beyond the tolerance.
    InvalidEntry { index: usize, value: f64 },
    /// A full distribution whose mass is not 1 (within [`NORMALISATION_TOLERANCE`]).
    NotNormalised { mass: f64 },
    /// Top-K probabilities adding up to more than 1 (beyond the tolerance).
    MassAboveOne { mass: f64 },
    /// top-p must be in (0, 1].
    InvalidTopP { top_p: f64 },
    /// The chosen token index is outside the vocabulary.
    TokenOutOfRange { index: usize, vocab_size: usize },
    /// The hidden-state norm or the advantage coefficient is not a finite non-negative number.
    InvalidScale { value: f64 },
}

impl std::fmt::Display for TokenMetricError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EmptyDistribution => {
                write!(f, "empty distribution (no token with positive probability)")
            }
            Self::InvalidEntry { index, value } => {
                write!(f, "invalid entry {value} at index {index}")
            }
            Self::NotNormalised { mass } => write!(f, "distribution mass is {mass}, not 1"),
            Self::MassAboveOne { mass } => write!(f, "top-K probabilities add up to {mass} > 1"),
            Self::InvalidTopP { top_p } => write!(f, "top-p {top_p} is not in (0, 1]"),
            Self::TokenOutOfRange { index, vocab_size } => {
                write!(
                    f,
                    "token index {index} outside a vocabulary of {vocab_size}"
                )
            }
            Self::InvalidScale { value } => {
                write!(f, "{value} is not a finite non-negative number")
            }
        }
    }
}

impl std::error::Error for TokenMetricError {}

/// What a raw log-probability means after the guards of the module doc.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CleanLogprob {
    /// A usable value in (-9999, 0].
    Finite(f64),
    /// Probability exactly 0 (-inf or the vLLM placeholder).
    Zero,
    /// NaN, +inf or clearly above 0.
    Invalid,
}

fn clean_logprob(x: f64) -> CleanLogprob {
    if x.is_nan() {
        CleanLogprob::Invalid
    } else if x <= VLLM_NEG_INF {
        CleanLogprob::Zero
    } else if x > POSITIVE_LOGPROB_TOLERANCE {
        CleanLogprob::Invalid
    } else {
        CleanLogprob::Finite(x.min(0.0))
    }
}

/// A full next-token distribution over the vocabulary, in one of three encodings.
#[derive(Debug, Clone, Copy)]
pub enum FullDistribution<'a> {
    /// Probabilities, non-negative, summing to 1 (within [`NORMALISATION_TOLERANCE`]).
    Probabilities(&'a [f64]),
    /// Unnormalised logits; softmax is applied. `-inf` means probability 0.
    Logits(&'a [f64]),
    /// Log-probabilities whose exponentials sum to 1 (within the tolerance).
    Logprobs(&'a [f64]),
}

/// A validated, exactly normalised distribution: `probs[i]` and `logprobs[i] = ln probs[i]`
/// (`-inf` where the probability is 0). Build it once per token and reuse it for every metric.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalizedDistribution {
    probs: Vec<f64>,
    logprobs: Vec<f64>,
}

impl NormalizedDistribution {
    /// Validates and normalises a full distribution (see the module doc for the guards).
    pub fn new(dist: FullDistribution<'_>) -> Result<Self, TokenMetricError> {
        match dist {
            FullDistribution::Probabilities(p) => Self::from_probabilities(p),
            FullDistribution::Logits(z) => Self::from_logits(z),
            FullDistribution::Logprobs(l) => Self::from_logprobs(l),
        }
    }

    fn from_probabilities(p: &[f64]) -> Result<Self, TokenMetricError> {
        if p.is_empty() {
            return Err(TokenMetricError::EmptyDistribution);
        }
        for (index, &value) in p.iter().enumerate() {
            if !value.is_finite() || value < 0.0 {
                return Err(TokenMetricError::InvalidEntry { index, value });
            }
        }
        let mass: f64 = p.iter().sum();
        if mass == 0.0 {
            return Err(TokenMetricError::EmptyDistribution);
        }
        if (mass - 1.0).abs() > NORMALISATION_TOLERANCE {
            return Err(TokenMetricError::NotNormalised { mass });
        }
        let probs: Vec<f64> = p.iter().map(|&x| x / mass).collect();
        let logprobs = probs.iter().map(|&x| x.ln()).collect();
        Ok(Self { probs, logprobs })
    }

    fn from_logits(z: &[f64]) -> Result<Self, TokenMetricError> {
        if z.is_empty() {
            return Err(TokenMetricError::EmptyDistribution);
        }
        for (index, &value) in z.iter().enumerate() {
            if value.is_nan() || value == f64::INFINITY {
                return Err(TokenMetricError::InvalidEntry { index, value });
            }
        }
        Self::from_log_weights(z.to_vec())
    }

    fn from_logprobs(l: &[f64]) -> Result<Self, TokenMetricError> {
        if l.is_empty() {
            return Err(TokenMetricError::EmptyDistribution);
        }
        let mut weights = Vec::with_capacity(l.len());
        for (index, &value) in l.iter().enumerate() {
            match clean_logprob(value) {
                CleanLogprob::Finite(x) => weights.push(x),
                CleanLogprob::Zero => weights.push(f64::NEG_INFINITY),
                CleanLogprob::Invalid => {
                    return Err(TokenMetricError::InvalidEntry { index, value })
                }
            }
        }
        let log_mass = log_sum_exp(&weights);
        if log_mass == f64::NEG_INFINITY {
            return Err(TokenMetricError::EmptyDistribution);
        }
        let mass = log_mass.exp();
        if (mass - 1.0).abs() > NORMALISATION_TOLERANCE {
            return Err(TokenMetricError::NotNormalised { mass });
        }
        Self::from_log_weights(weights)
    }

    /// Softmax in log space (subtracting the log-sum-exp keeps it overflow-free).
    fn from_log_weights(mut w: Vec<f64>) -> Result<Self, TokenMetricError> {
        let lse = log_sum_exp(&w);
        if lse == f64::NEG_INFINITY {
            return Err(TokenMetricError::EmptyDistribution);
        }
        for x in &mut w {
            *x -= lse;
        }
        let probs = w.iter().map(|&x| x.exp()).collect();
        Ok(Self { probs, logprobs: w })
    }

    /// Probabilities, summing to 1.
    pub fn probs(&self) -> &[f64] {
        &self.probs
    }

    /// Natural-log probabilities (`-inf` for zero-probability tokens).
    pub fn logprobs(&self) -> &[f64] {
        &self.logprobs
    }

    /// Vocabulary size V.
    pub fn len(&self) -> usize {
        self.probs.len()
    }

    /// Never true for a constructed distribution (construction rejects empty input).
    pub fn is_empty(&self) -> bool {
        self.probs.is_empty()
    }

    /// Token entropy, eq. 3: `H = -sum_v p(v) ln p(v)`, in nats, with `0 ln 0 = 0`.
    pub fn entropy(&self) -> f64 {
        let h: f64 = self
            .probs
            .iter()
            .zip(&self.logprobs)
            .filter(|(&p, _)| p > 0.0)
            .map(|(&p, &lp)| -p * lp)
            .sum();
        h.max(0.0)
    }

    /// `sum_v p(v)^2`, the collision probability (used by the gradient-norm proxy).
    pub fn sum_of_squares(&self) -> f64 {
        self.probs.iter().map(|p| p * p).sum()
    }
}

/// `ln sum exp(x)`, stable; `-inf` when every entry is `-inf` or the slice is empty.
fn log_sum_exp(x: &[f64]) -> f64 {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    max + x.iter().map(|&v| (v - max).exp()).sum::<f64>().ln()
}

fn check_top_p(top_p: f64) -> Result<(), TokenMetricError> {
    if top_p > 0.0 && top_p <= 1.0 {
        Ok(())
    } else {
        Err(TokenMetricError::InvalidTopP { top_p })
    }
}

/// Size of the top-p nucleus of probabilities sorted in decreasing order, or `None` when their
/// mass does not reach p.
fn nucleus_size(sorted_desc: &[f64], top_p: f64) -> Option<usize> {
    let mut cumulative = 0.0;
    for (i, &p) in sorted_desc.iter().enumerate() {
        cumulative += p;
        if cumulative >= top_p - NUCLEUS_SLACK {
            return Some(i + 1);
        }
    }
    None
}

fn sort_desc(v: &mut [f64]) {
    v.sort_unstable_by(|a, b| b.partial_cmp(a).unwrap_or(Ordering::Equal));
}

/// Entropy and rollout branching factor of one generation step, with how much to trust them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokenUncertainty {
    /// Token entropy in nats (eq. 3); exact or the bucket lower bound (module doc).
    pub entropy: f64,
    pub entropy_bound: Bound,
    /// Rollout branching factor: size of the top-p nucleus (sec. 2.2). Always >= 1.
    pub rbf: u32,
    pub rbf_bound: Bound,
    /// Probability mass not covered by the input: 0 for a full distribution, `1 - sum(top-K)`
    /// for a top-K list (never negative).
    pub missing_mass: f64,
    /// Number of tokens with positive probability that were given (V' <= V, or K).
    pub listed: usize,
    /// Entries skipped because they were NaN or positive beyond the tolerance (top-K only).
    pub skipped_invalid: usize,
}

impl TokenUncertainty {
    /// Upper bound on the true entropy given the vocabulary size V: the missing mass spread
    /// evenly over the `V - K` unlisted tokens. Equals `entropy` when it is exact.
    pub fn entropy_upper_bound(&self, vocab_size: usize) -> f64 {
        match self.entropy_bound {
            Bound::Exact => self.entropy,
            Bound::LowerBound => {
                let unlisted = vocab_size.saturating_sub(self.listed).max(1);
                self.entropy + self.missing_mass * (unlisted as f64).ln()
            }
        }
    }
}

/// Exact entropy and RBF of a full distribution (items 4, 5).
pub fn uncertainty_full(
    dist: &NormalizedDistribution,
    top_p: f64,
) -> Result<TokenUncertainty, TokenMetricError> {
    check_top_p(top_p)?;
    let mut sorted: Vec<f64> = dist.probs().iter().copied().filter(|&p| p > 0.0).collect();
    sort_desc(&mut sorted);
    // The masses sum to 1 up to rounding, so the nucleus always closes; the fallback covers
    // top_p = 1 when rounding leaves the total a hair below 1.
    let rbf = nucleus_size(&sorted, top_p).unwrap_or(sorted.len()).max(1);
    Ok(TokenUncertainty {
        entropy: dist.entropy(),
        entropy_bound: Bound::Exact,
        rbf: rbf as u32,
        rbf_bound: Bound::Exact,
        missing_mass: 0.0,
        listed: sorted.len(),
        skipped_invalid: 0,
    })
}

/// Entropy and RBF from the top-K log-probabilities of one step (items 4, 5). The list should
/// hold the K most probable tokens (for the RBF bound); its order does not matter. See the
/// module doc for the estimator and the bounds.
pub fn uncertainty_top_k(
    top_logprobs: &[f64],
    top_p: f64,
) -> Result<TokenUncertainty, TokenMetricError> {
    check_top_p(top_p)?;
    let mut skipped_invalid = 0;
    let mut probs = Vec::with_capacity(top_logprobs.len());
    for &lp in top_logprobs {
        match clean_logprob(lp) {
            CleanLogprob::Finite(x) => {
                let p = x.exp();
                if p > 0.0 {
                    probs.push(p);
                }
            }
            CleanLogprob::Zero => {}
            CleanLogprob::Invalid => skipped_invalid += 1,
        }
    }
    if probs.is_empty() {
        return Err(TokenMetricError::EmptyDistribution);
    }
    sort_desc(&mut probs);
    let mass: f64 = probs.iter().sum();
    if mass > 1.0 + NORMALISATION_TOLERANCE {
        return Err(TokenMetricError::MassAboveOne { mass });
    }
    let complete = mass >= 1.0 - COMPLETE_MASS_SLACK;
    let missing_mass = if complete { 0.0 } else { 1.0 - mass };
    // When the list is complete up to rounding, normalise so it matches the exact computation.
    let scale = if complete { mass } else { 1.0 };
    let listed_entropy: f64 = probs.iter().map(|&p| p / scale).map(|p| -p * p.ln()).sum();
    let bucket = if missing_mass > 0.0 {
        -missing_mass * missing_mass.ln()
    } else {
        0.0
    };
    let entropy = (listed_entropy + bucket).max(0.0);
    let (rbf, rbf_bound) = match nucleus_size(&probs, top_p * scale) {
        Some(n) => (n, Bound::Exact),
        None => {
            let smallest = *probs.last().expect("non-empty");
            // Same slack as the nucleus rule, so the bound never exceeds the exact count.
            let more = ((top_p - NUCLEUS_SLACK - mass) / smallest).ceil().max(1.0);
            let more = if more.is_finite() {
                more.min(u32::MAX as f64) as usize
            } else {
                u32::MAX as usize
            };
            (probs.len().saturating_add(more), Bound::LowerBound)
        }
    };
    Ok(TokenUncertainty {
        entropy,
        entropy_bound: if complete {
            Bound::Exact
        } else {
            Bound::LowerBound
        },
        rbf: rbf.min(u32::MAX as usize) as u32,
        rbf_bound,
        missing_mass,
        listed: probs.len(),
        skipped_invalid,
    })
}

/// Instance perplexity (item 13) of one response.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Perplexity {
    /// `exp(-mean logprob)`; `+inf` when a token had probability 0.
    pub ppl: f64,
    /// `ln PPL = -mean logprob` (what PPL shaping, eq. 7, standardises).
    pub ln_ppl: f64,
    /// Tokens that entered the mean.
    pub tokens: usize,
    /// Tokens with probability 0 (-inf or <= -9999.0); any of them makes the PPL infinite.
    pub zero_probability_tokens: usize,
    /// Entries skipped: NaN, +inf, or positive beyond the tolerance.
    pub skipped_invalid: usize,
}

/// PPL(o) = exp(-(1/|o|) sum_t ln p(o_t)) over the chosen-token log-probabilities (item 13).
/// Returns `None` when no valid log-probability is left (empty response, all NaN).
pub fn perplexity<I>(logprobs: I) -> Option<Perplexity>
where
    I: IntoIterator,
    I::Item: Into<f64>,
{
    let (mut sum, mut tokens, mut zero, mut invalid) = (0.0f64, 0usize, 0usize, 0usize);
    for lp in logprobs {
        match clean_logprob(lp.into()) {
            CleanLogprob::Finite(x) => {
                sum += x;
                tokens += 1;
            }
            CleanLogprob::Zero => {
                zero += 1;
                tokens += 1;
            }
            CleanLogprob::Invalid => invalid += 1,
        }
    }
    if tokens == 0 {
        return None;
    }
    let ln_ppl = if zero > 0 {
        f64::INFINITY
    } else {
        (-sum / tokens as f64).max(0.0)
    };
    Some(Perplexity {
        ppl: ln_ppl.exp(),
        ln_ppl,
        tokens,
        zero_probability_tokens: zero,
        skipped_invalid: invalid,
    })
}

/// `||e(o_t) - p||_2` from `||e - p||^2 = 1 - 2 p(o_t) + sum_v p(v)^2` (appendix A.1).
pub fn one_hot_residual_norm(
    dist: &NormalizedDistribution,
    chosen: usize,
) -> Result<f64, TokenMetricError> {
    let p_chosen = *dist
        .probs()
        .get(chosen)
        .ok_or(TokenMetricError::TokenOutOfRange {
            index: chosen,
            vocab_size: dist.len(),
        })?;
    // Rounding can push the exact-zero case (a one-hot p on o_t) a hair below zero.
    Ok((1.0 - 2.0 * p_chosen + dist.sum_of_squares())
        .max(0.0)
        .sqrt())
}

/// Per-token gradient-norm proxy, eq. 4: `G_t = |alpha_t| * ||e(o_t) - p|| * ||h||`, the
/// Frobenius norm of the rank-one LM-head gradient `alpha_t (e(o_t) - p) h^T`. `alpha_t` is the
/// (clipped, ratio-weighted) advantage coefficient of the paper, `hidden_norm` is `||h||_2` of the
/// last transformer layer's output.
pub fn gradient_norm_proxy(
    dist: &NormalizedDistribution,
    chosen: usize,
    alpha: f64,
    hidden_norm: f64,
) -> Result<f64, TokenMetricError> {
    if !alpha.is_finite() {
        return Err(TokenMetricError::InvalidScale { value: alpha });
    }
    if !hidden_norm.is_finite() || hidden_norm < 0.0 {
        return Err(TokenMetricError::InvalidScale { value: hidden_norm });
    }
    Ok(alpha.abs() * one_hot_residual_norm(dist, chosen)? * hidden_norm)
}

/// Relative position of token `index` in a response of `len` tokens: `(index + 0.5) / len`, the
/// centre of the token's share of [0, 1]. Chosen over `index / (len - 1)` because it is defined
/// for one-token responses and puts every token in exactly one of B equal bins without the last
/// token landing on the edge 1.0. `len == 0` or `index >= len` give `None`.
pub fn relative_position(index: usize, len: usize) -> Option<f64> {
    (index < len).then(|| (index as f64 + 0.5) / len as f64)
}

/// The bin of a relative position `l` in (0, 1) among `bins` equal bins.
pub fn position_bin(l: f64, bins: usize) -> usize {
    ((l * bins as f64).floor() as usize).min(bins.saturating_sub(1))
}

/// Default number of relative-position bins (item 14).
pub const DEFAULT_POSITION_BINS: usize = 20;

/// Running sum and count of one bin.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeanAccumulator {
    pub sum: f64,
    pub count: u64,
}

impl MeanAccumulator {
    /// Adds one value.
    pub fn push(&mut self, x: f64) {
        self.sum += x;
        self.count += 1;
    }

    /// The mean, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Adds another accumulator's sum and count.
    pub fn merge(&mut self, other: &Self) {
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// Entropy by relative position (item 14, fig. 6a), split by correct vs incorrect responses.
/// Push one response at a time. Each token weighs the same (a token-weighted mean per bin, as
/// "average token entropy by position" reads); long responses therefore weigh more.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PositionEntropyProfile {
    correct: Vec<MeanAccumulator>,
    incorrect: Vec<MeanAccumulator>,
    responses_correct: u64,
    responses_incorrect: u64,
    skipped_non_finite: u64,
}

/// One bin of a [`PositionEntropyProfile`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PositionBinSummary {
    /// The bin covers relative positions `[start, end)`.
    pub start: f64,
    pub end: f64,
    pub correct: MeanAccumulator,
    pub incorrect: MeanAccumulator,
}

impl PositionBinSummary {
    /// Mean entropy of all tokens in the bin, correct and incorrect together.
    pub fn all_mean(&self) -> Option<f64> {
        let mut all = self.correct;
        all.merge(&self.incorrect);
        all.mean()
    }
}

impl PositionEntropyProfile {
    /// A profile with `bins` bins; `bins == 0` is treated as 1.
    pub fn new(bins: usize) -> Self {
        let bins = bins.max(1);
        Self {
            correct: vec![MeanAccumulator::default(); bins],
            incorrect: vec![MeanAccumulator::default(); bins],
            responses_correct: 0,
            responses_incorrect: 0,
            skipped_non_finite: 0,
        }
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.correct.len()
    }

    /// Adds one response's per-token entropies. Non-finite entropies are skipped (counted in
    /// [`Self::skipped_non_finite`]) but keep their position, so later tokens stay where they were.
    pub fn push_response(&mut self, entropies: &[f64], correct: bool) {
        let bins = self.bins();
        let target = if correct {
            &mut self.correct
        } else {
            &mut self.incorrect
        };
        let len = entropies.len();
        for (i, &h) in entropies.iter().enumerate() {
            if !h.is_finite() {
                self.skipped_non_finite += 1;
                continue;
            }
            let l = (i as f64 + 0.5) / len as f64;
            target[position_bin(l, bins)].push(h);
        }
        if correct {
            self.responses_correct += 1;
        } else {
            self.responses_incorrect += 1;
        }
    }

    /// Adds another profile with the same number of bins (e.g. one computed per file).
    /// Returns false, changing nothing, when the bin counts differ.
    pub fn merge(&mut self, other: &Self) -> bool {
        if other.bins() != self.bins() {
            return false;
        }
        for (a, b) in self.correct.iter_mut().zip(&other.correct) {
            a.merge(b);
        }
        for (a, b) in self.incorrect.iter_mut().zip(&other.incorrect) {
            a.merge(b);
        }
        self.responses_correct += other.responses_correct;
        self.responses_incorrect += other.responses_incorrect;
        self.skipped_non_finite += other.skipped_non_finite;
        true
    }

    /// (correct, incorrect) responses pushed so far.
    pub fn responses(&self) -> (u64, u64) {
        (self.responses_correct, self.responses_incorrect)
    }

    /// Token entropies that were NaN or infinite and so left out.
    pub fn skipped_non_finite(&self) -> u64 {
        self.skipped_non_finite
    }

    /// The bins in order of position.
    pub fn summary(&self) -> Vec<PositionBinSummary> {
        let b = self.bins() as f64;
        (0..self.bins())
            .map(|i| PositionBinSummary {
                start: i as f64 / b,
                end: (i + 1) as f64 / b,
                correct: self.correct[i],
                incorrect: self.incorrect[i],
            })
            .collect()
    }
}

impl Default for PositionEntropyProfile {
    fn default() -> Self {
        Self::new(DEFAULT_POSITION_BINS)
    }
}

/// What a rollout row stores about its tokens: the per-response means of entropy and RBF.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResponseTokenSummary {
    pub tokens: usize,
    pub mean_entropy: f64,
    /// Exact only when every token's entropy was exact.
    pub mean_entropy_bound: Bound,
    pub mean_rbf: f64,
    pub mean_rbf_bound: Bound,
    /// Tokens whose entropy or RBF is a truncated lower bound.
    pub truncated_tokens: usize,
    /// Mean and largest missing mass over the tokens.
    pub mean_missing_mass: f64,
    pub max_missing_mass: f64,
}

/// Per-response means of entropy and RBF; `None` for a response with no token.
pub fn summarize_response(tokens: &[TokenUncertainty]) -> Option<ResponseTokenSummary> {
    if tokens.is_empty() {
        return None;
    }
    let n = tokens.len() as f64;
    let all_exact = |f: fn(&TokenUncertainty) -> Bound| {
        if tokens.iter().all(|t| f(t) == Bound::Exact) {
            Bound::Exact
        } else {
            Bound::LowerBound
        }
    };
    Some(ResponseTokenSummary {
        tokens: tokens.len(),
        mean_entropy: tokens.iter().map(|t| t.entropy).sum::<f64>() / n,
        mean_entropy_bound: all_exact(|t| t.entropy_bound),
        mean_rbf: tokens.iter().map(|t| t.rbf as f64).sum::<f64>() / n,
        mean_rbf_bound: all_exact(|t| t.rbf_bound),
        truncated_tokens: tokens
            .iter()
            .filter(|t| t.entropy_bound == Bound::LowerBound || t.rbf_bound == Bound::LowerBound)
            .count(),
        mean_missing_mass: tokens.iter().map(|t| t.missing_mass).sum::<f64>() / n,
        max_missing_mass: tokens.iter().map(|t| t.missing_mass).fold(0.0, f64::max),
    })
}

/// What one rollout row stores about its tokens (items 4, 5, 13): computed once at import and by
/// `caplens summary`, so both give the same numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RolloutTokenMeans {
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub ppl: Option<f64>,
}

/// Per-rollout token means from the fields a file gives:
/// - entropy (item 4, eq. 3): the mean of `entropies` when given (exact, as the producer
///   computed them); otherwise the mean over tokens of the truncated bucket estimate from the
///   top-K rows (a lower bound, see the module doc);
/// - RBF (item 5): the mean top-p 0.95 nucleus size from the top-K rows (exact when the listed
///   mass reaches 0.95, else a lower bound); `None` without them;
/// - perplexity (item 13): exp(-mean logprob); a token of probability 0 makes it infinite.
///
/// `None` entries, and rows that are empty or invalid (all NaN, mass above 1), are skipped; a
/// rollout with no usable token has `None`.
pub fn rollout_token_means<R, I>(
    entropies: Option<&[Option<f64>]>,
    top_rows: Option<R>,
    logprobs: Option<&[Option<f64>]>,
) -> RolloutTokenMeans
where
    R: IntoIterator<Item = I>,
    I: IntoIterator<Item = f64>,
{
    let from_top_k = top_rows.and_then(|rows| {
        let mut row_buf = Vec::new();
        let per_token: Vec<TokenUncertainty> = rows
            .into_iter()
            .filter_map(|row| {
                row_buf.clear();
                row_buf.extend(row);
                uncertainty_top_k(&row_buf, DEFAULT_TOP_P).ok()
            })
            .collect();
        summarize_response(&per_token)
    });
    let mean_entropy = match entropies {
        Some(values) => mean_finite(&values.iter().flatten().copied().collect::<Vec<f64>>()),
        None => from_top_k.map(|s| s.mean_entropy),
    };
    RolloutTokenMeans {
        mean_entropy,
        mean_rbf: from_top_k.map(|s| s.mean_rbf),
        ppl: logprobs
            .and_then(|lps| perplexity(lps.iter().flatten().copied()))
            .map(|p| p.ppl),
    }
}

/// Mean of the finite values (e.g. a stored `token_entropies` column); `None` when there is none.
pub fn mean_finite(values: &[f64]) -> Option<f64> {
    let mut acc = MeanAccumulator::default();
    values
        .iter()
        .filter(|x| x.is_finite())
        .for_each(|&x| acc.push(x));
    acc.mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn probs(p: &[f64]) -> NormalizedDistribution {
        NormalizedDistribution::new(FullDistribution::Probabilities(p)).unwrap()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn uniform_entropy_is_ln_v_and_rbf_is_nucleus() {
        let d = probs(&[0.25; 4]);
        let u = uncertainty_full(&d, 0.95).unwrap();
        assert!(close(u.entropy, 4f64.ln(), 1e-12));
        // 0.25, 0.5, 0.75 < 0.95 <= 1.0
        assert_eq!(u.rbf, 4);
        assert_eq!(u.entropy_bound, Bound::Exact);
        assert_eq!(uncertainty_full(&d, 0.5).unwrap().rbf, 2);
    }

    #[test]
    fn rbf_counts_cumulative_mass_exactly_at_p() {
        // 0.9 + 0.05 = 0.95 reaches p even though the float sum is 0.9500000000000001 or below.
        let d = probs(&[0.05, 0.9, 0.03, 0.02]);
        assert_eq!(uncertainty_full(&d, 0.95).unwrap().rbf, 2);
        assert_eq!(uncertainty_full(&d, 0.96).unwrap().rbf, 3);
        assert_eq!(uncertainty_full(&d, 0.9).unwrap().rbf, 1);
    }

    #[test]
    fn logits_and_logprobs_give_the_same_distribution() {
        let logits = [2.0, 1.0, 0.0, -1.0, f64::NEG_INFINITY];
        let a = NormalizedDistribution::new(FullDistribution::Logits(&logits)).unwrap();
        let lps: Vec<f64> = a.logprobs().to_vec();
        let b = NormalizedDistribution::new(FullDistribution::Logprobs(&lps)).unwrap();
        for (x, y) in a.probs().iter().zip(b.probs()) {
            assert!(close(*x, *y, 1e-15));
        }
        assert_eq!(a.probs()[4], 0.0);
        // Huge logits do not overflow.
        let big = NormalizedDistribution::new(FullDistribution::Logits(&[1000.0, 1000.0])).unwrap();
        assert!(close(big.entropy(), 2f64.ln(), 1e-12));
    }

    #[test]
    fn full_distribution_guards() {
        use TokenMetricError::*;
        let nd = |d| NormalizedDistribution::new(d);
        assert_eq!(
            nd(FullDistribution::Probabilities(&[])),
            Err(EmptyDistribution)
        );
        assert_eq!(
            nd(FullDistribution::Probabilities(&[0.0, 0.0])),
            Err(EmptyDistribution)
        );
        assert!(matches!(
            nd(FullDistribution::Probabilities(&[0.5, f64::NAN])),
            Err(InvalidEntry { index: 1, .. })
        ));
        assert!(matches!(
            nd(FullDistribution::Probabilities(&[1.5, -0.5])),
            Err(InvalidEntry { index: 1, .. })
        ));
        assert!(matches!(
            nd(FullDistribution::Probabilities(&[0.5, 0.4])),
            Err(NotNormalised { .. })
        ));
        assert_eq!(
            nd(FullDistribution::Logits(&[f64::NEG_INFINITY; 3])),
            Err(EmptyDistribution)
        );
        assert!(matches!(
            nd(FullDistribution::Logits(&[0.0, f64::INFINITY])),
            Err(InvalidEntry { .. })
        ));
        assert!(matches!(
            nd(FullDistribution::Logprobs(&[0.5, -1.0])),
            Err(InvalidEntry { index: 0, .. })
        ));
        // vLLM's -9999.0 is a zero probability, not an error.
        let d = nd(FullDistribution::Logprobs(&[0.0, -9999.0])).unwrap();
        assert_eq!(d.entropy(), 0.0);
        assert_eq!(uncertainty_full(&d, 0.95).unwrap().rbf, 1);
        assert!(matches!(uncertainty_full(&d, 0.0), Err(InvalidTopP { .. })));
        assert!(matches!(uncertainty_full(&d, 1.5), Err(InvalidTopP { .. })));
    }

    #[test]
    fn top_k_bucket_entropy_and_missing_mass() {
        let lps = [0.5f64.ln(), 0.3f64.ln()];
        let u = uncertainty_top_k(&lps, 0.95).unwrap();
        assert!(close(u.missing_mass, 0.2, 1e-12));
        let expected = -(0.5 * 0.5f64.ln() + 0.3 * 0.3f64.ln() + 0.2 * 0.2f64.ln());
        assert!(close(u.entropy, expected, 1e-12));
        assert_eq!(u.entropy_bound, Bound::LowerBound);
        // Needs 0.15 more; each unlisted token has at most 0.3: at least 1 more token.
        assert_eq!((u.rbf, u.rbf_bound), (3, Bound::LowerBound));
        // The upper bound with V = 10 spreads 0.2 over 8 tokens.
        assert!(close(
            u.entropy_upper_bound(10),
            expected + 0.2 * 8f64.ln(),
            1e-12
        ));
    }

    #[test]
    fn top_k_rbf_exact_when_mass_reaches_p() {
        let lps = [0.9f64.ln(), 0.06f64.ln(), 0.01f64.ln()];
        let u = uncertainty_top_k(&lps, 0.95).unwrap();
        assert_eq!((u.rbf, u.rbf_bound), (2, Bound::Exact));
        assert_eq!(u.entropy_bound, Bound::LowerBound);
        // The lower bound grows with the gap: 0.5 listed, smallest 0.01, needs 45 more at least.
        let lps = [0.4f64.ln(), 0.09f64.ln(), 0.01f64.ln()];
        let u = uncertainty_top_k(&lps, 0.95).unwrap();
        assert_eq!((u.rbf, u.rbf_bound), (3 + 45, Bound::LowerBound));
    }

    #[test]
    fn top_k_guards() {
        assert_eq!(
            uncertainty_top_k(&[], 0.95),
            Err(TokenMetricError::EmptyDistribution)
        );
        assert_eq!(
            uncertainty_top_k(&[f64::NAN, -9999.0], 0.95),
            Err(TokenMetricError::EmptyDistribution)
        );
        let u = uncertainty_top_k(&[f64::NAN, 0.8f64.ln(), f64::NEG_INFINITY, 3.0], 0.95).unwrap();
        assert_eq!(u.skipped_invalid, 2);
        assert_eq!(u.listed, 1);
        assert!(matches!(
            uncertainty_top_k(&[0.0, 0.0], 0.95),
            Err(TokenMetricError::MassAboveOne { .. })
        ));
        // Rounding noise above 0 is read as probability 1.
        let u = uncertainty_top_k(&[1e-7], 0.95).unwrap();
        assert_eq!((u.entropy, u.rbf, u.entropy_bound), (0.0, 1, Bound::Exact));
    }

    #[test]
    fn perplexity_values_and_guards() {
        let p = perplexity([0.5f64.ln(), 0.5f64.ln()]).unwrap();
        assert!(close(p.ppl, 2.0, 1e-12));
        let p = perplexity([0.0f32, (0.25f32).ln()]).unwrap();
        assert!(close(p.ppl, 2.0, 1e-6));
        assert_eq!(perplexity(Vec::<f64>::new()), None);
        assert_eq!(perplexity([f64::NAN]), None);
        let p = perplexity([f64::NAN, 0.0, 5.0]).unwrap();
        assert_eq!((p.ppl, p.tokens, p.skipped_invalid), (1.0, 1, 2));
        let p = perplexity([-1.0, -9999.0]).unwrap();
        assert_eq!((p.ppl, p.zero_probability_tokens), (f64::INFINITY, 1));
    }

    #[test]
    fn gradient_proxy_matches_direct_norm() {
        let d = probs(&[0.7, 0.2, 0.1]);
        // e(0) - p = (0.3, -0.2, -0.1), norm sqrt(0.14)
        let g = gradient_norm_proxy(&d, 0, -2.0, 3.0).unwrap();
        assert!(close(g, 2.0 * 0.14f64.sqrt() * 3.0, 1e-12));
        assert!(matches!(
            gradient_norm_proxy(&d, 3, 1.0, 1.0),
            Err(TokenMetricError::TokenOutOfRange { .. })
        ));
        assert!(matches!(
            gradient_norm_proxy(&d, 0, 1.0, -1.0),
            Err(TokenMetricError::InvalidScale { .. })
        ));
        // A one-hot distribution on the chosen token gives no gradient.
        let one_hot = probs(&[0.0, 1.0]);
        assert_eq!(gradient_norm_proxy(&one_hot, 1, 1.0, 5.0).unwrap(), 0.0);
    }

    #[test]
    fn relative_position_bins() {
        assert_eq!(relative_position(0, 1), Some(0.5));
        assert_eq!(relative_position(1, 1), None);
        assert_eq!(relative_position(0, 0), None);
        assert_eq!(position_bin(relative_position(0, 40).unwrap(), 20), 0);
        assert_eq!(position_bin(relative_position(39, 40).unwrap(), 20), 19);
        assert_eq!(position_bin(relative_position(1, 40).unwrap(), 20), 0);
        assert_eq!(position_bin(relative_position(2, 40).unwrap(), 20), 1);
    }

    #[test]
    fn position_profile_splits_correct_and_incorrect() {
        let mut prof = PositionEntropyProfile::new(2);
        prof.push_response(&[1.0, 1.0, 3.0, 3.0], true);
        prof.push_response(&[5.0, f64::NAN, 7.0], false);
        let s = prof.summary();
        assert_eq!(s[0].correct.mean(), Some(1.0));
        assert_eq!(s[1].correct.mean(), Some(3.0));
        // Positions 1/6 -> bin 0, 3/6 (NaN, skipped) -> bin 1, 5/6 -> bin 1.
        assert_eq!(s[0].incorrect.mean(), Some(5.0));
        assert_eq!(s[1].incorrect.mean(), Some(7.0));
        assert_eq!(s[1].all_mean(), Some((3.0 + 3.0 + 7.0) / 3.0));
        assert_eq!(prof.skipped_non_finite(), 1);
        assert_eq!(prof.responses(), (1, 1));
        let mut other = PositionEntropyProfile::new(2);
        other.push_response(&[2.0], true);
        assert!(prof.merge(&other));
        assert_eq!(prof.summary()[1].correct.count, 3);
        assert!(!prof.merge(&PositionEntropyProfile::new(3)));
    }

    #[test]
    fn response_summary_flags_truncation() {
        let a = uncertainty_full(&probs(&[0.5, 0.5]), 0.95).unwrap();
        let b = uncertainty_top_k(&[0.5f64.ln()], 0.95).unwrap();
        let s = summarize_response(&[a, b]).unwrap();
        assert_eq!(s.mean_rbf, (2.0 + b.rbf as f64) / 2.0);
        assert_eq!(s.mean_entropy_bound, Bound::LowerBound);
        assert_eq!(s.truncated_tokens, 1);
        assert!(close(s.max_missing_mass, 0.5, 1e-12));
        assert_eq!(summarize_response(&[]), None);
        assert_eq!(
            summarize_response(&[a]).unwrap().mean_rbf_bound,
            Bound::Exact
        );
        assert_eq!(mean_finite(&[1.0, f64::NAN, 3.0]), Some(2.0));
        assert_eq!(mean_finite(&[]), None);
    }

    /// Random probability vectors of 1..40 entries, some of them zero.
    fn distribution() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(prop_oneof![Just(0.0), 1e-6f64..10.0], 1..40).prop_filter_map(
            "all zero",
            |w| {
                let s: f64 = w.iter().sum();
                (s > 0.0).then(|| w.iter().map(|x| x / s).collect())
            },
        )
    }

    proptest! {
        #[test]
        fn entropy_within_zero_and_ln_v(p in distribution()) {
            let d = probs(&p);
            let h = d.entropy();
            prop_assert!(h >= 0.0 && h <= (p.len() as f64).ln() + 1e-9, "{h}");
        }

        #[test]
        fn rbf_at_least_one_and_monotone_in_p(p in distribution(), a in 0.01f64..1.0, b in 0.01f64..1.0) {
            let d = probs(&p);
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            let r_lo = uncertainty_full(&d, lo).unwrap().rbf;
            let r_hi = uncertainty_full(&d, hi).unwrap().rbf;
            prop_assert!(r_lo >= 1 && r_lo <= r_hi);
            prop_assert!(r_hi as usize <= p.iter().filter(|&&x| x > 0.0).count());
        }

        #[test]
        fn top_k_equals_exact_when_k_covers_vocab(p in distribution(), top_p in 0.05f64..1.0) {
            let d = probs(&p);
            let exact = uncertainty_full(&d, top_p).unwrap();
            let trunc = uncertainty_top_k(d.logprobs(), top_p).unwrap();
            prop_assert!((exact.entropy - trunc.entropy).abs() < 1e-9);
            prop_assert_eq!(exact.rbf, trunc.rbf);
            prop_assert_eq!(trunc.entropy_bound, Bound::Exact);
            prop_assert_eq!(trunc.rbf_bound, Bound::Exact);
        }

        #[test]
        fn truncated_values_bound_the_truth(p in distribution(), k in 1usize..40, top_p in 0.05f64..1.0) {
            let d = probs(&p);
            let exact = uncertainty_full(&d, top_p).unwrap();
            let mut sorted = d.logprobs().to_vec();
            sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
            sorted.truncate(k);
            if let Ok(t) = uncertainty_top_k(&sorted, top_p) {
                prop_assert!(t.entropy <= exact.entropy + 1e-9, "{} > {}", t.entropy, exact.entropy);
                prop_assert!(t.entropy_upper_bound(p.len()) >= exact.entropy - 1e-9);
                prop_assert!(t.rbf <= exact.rbf, "{} > {}", t.rbf, exact.rbf);
                if t.rbf_bound == Bound::Exact { prop_assert_eq!(t.rbf, exact.rbf); }
                prop_assert!(t.missing_mass >= 0.0 && t.missing_mass <= 1.0);
            }
        }

        #[test]
        fn ppl_at_least_one_for_nonpositive_logprobs(lps in prop::collection::vec(-50.0f64..=0.0, 1..100)) {
            let p = perplexity(lps.iter().copied()).unwrap();
            prop_assert!(p.ppl >= 1.0);
            let min = lps.iter().copied().fold(0.0, f64::min);
            prop_assert!(p.ppl <= (-min).exp() * (1.0 + 1e-12));
        }

        #[test]
        fn gradient_residual_norm_is_direct_norm(p in distribution(), pick in 0usize..40, alpha in -5.0f64..5.0, h in 0.0f64..100.0) {
            let d = probs(&p);
            let chosen = pick % p.len();
            let direct: f64 = d.probs().iter().enumerate()
                .map(|(i, &q)| { let e = if i == chosen { 1.0 } else { 0.0 }; (e - q) * (e - q) })
                .sum::<f64>().sqrt();
            let g = gradient_norm_proxy(&d, chosen, alpha, h).unwrap();
            prop_assert!((g - alpha.abs() * direct * h).abs() <= 1e-6 * (1.0 + g));
            prop_assert!(direct <= 2f64.sqrt() + 1e-12);
        }

        #[test]
        fn position_profile_counts_every_finite_token(lens in prop::collection::vec(0usize..60, 0..20), bins in 1usize..30) {
            let mut prof = PositionEntropyProfile::new(bins);
            let mut total = 0u64;
            for (i, &len) in lens.iter().enumerate() {
                prof.push_response(&vec![1.0; len], i % 2 == 0);
                total += len as u64;
            }
            let s = prof.summary();
            let counted: u64 = s.iter().map(|b| b.correct.count + b.incorrect.count).sum();
            prop_assert_eq!(counted, total);
            for b in &s { if let Some(m) = b.all_mean() { prop_assert!((m - 1.0).abs() < 1e-12); } }
        }
    }
}
