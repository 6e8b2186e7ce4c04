//! Synthetic token traces of demo rollouts (step 8 of the generator's module doc): a pretend
//! tokenizer, two one-parameter families of "full" next-token distributions, and the entropy
//! shape of paper section 3 laid over a response. Pure and deterministic like the rest of
//! `generate`.

use caplens_analysis::rng::SplitMix64;
use caplens_analysis::trace::{PositionImpact, TokenTrace, TopAlternative};
use std::sync::OnceLock;

/// Vocabulary size of the pretend model (the `vocab_size` of Qwen2.5-7B's config).
pub(super) const VOCAB: usize = 152_064;
/// Alternatives listed per position, as a server returns with `top_logprobs = 5`.
pub(super) const LISTED: usize = 5;
/// Nucleus mass of the RBF and the slack of `caplens_analysis::tokens` (same rule).
const TOP_P: f64 = 0.95;
const NUCLEUS_SLACK: f64 = 1e-12;
/// The spread r = 1 - p(top token) starts here.
const SPREAD_MIN: f64 = 0.0004;
/// Points of the spread -> entropy table used to invert a family.
const TABLE_STEPS: usize = 1024;
/// Continuations per side of an intervention (eq. 6's k).
pub(super) const INTERVENTION_CONTINUATIONS: u32 = 32;
/// Interventions per intervened rollout: its highest-entropy positions.
pub(super) const INTERVENTIONS_PER_ROLLOUT: usize = 3;

// ---------------------------------------------------------------------------------------------
// ln and exp from exactly rounded operations only (see "Determinism" in the generator's doc).

/// Natural logarithm of a positive finite `x`: `x = m 2^e` with `m` in [sqrt(1/2), sqrt(2)),
/// `ln x = e ln 2 + 2 atanh(s)`, `s = (m - 1) / (m + 1)`, `|s| < 0.172`, by the odd series of
/// atanh (13 terms: the first omitted one is below 1e-20). Exponent and mantissa are split by
/// bit operations, which are exact.
pub(super) fn det_ln(x: f64) -> f64 {
    assert!(x > 0.0 && x.is_finite(), "det_ln of {x}");
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    if biased == 0 {
        // Subnormal: scale into the normal range first (exact).
        return det_ln(x * (1u64 << 54) as f64) - 54.0 * std::f64::consts::LN_2;
    }
    let mut exponent = biased - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        exponent += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut series = 0.0;
    for k in (0..13).rev() {
        series = series * s2 + 1.0 / (2 * k + 1) as f64;
    }
    exponent as f64 * std::f64::consts::LN_2 + 2.0 * s * series
}

/// `e^x` for `|x| < 700`: `x = k ln 2 + r`, `|r| <= ln 2 / 2` (ln 2 in two parts, fdlibm's, so
/// `k * ln2_hi` is exact), `e^r` by its Taylor series (22 terms), times `2^k` built from bits.
pub(super) fn det_exp(x: f64) -> f64 {
    // fdlibm's ln2_hi (its last 32 bits zero) and ln2_lo, bit for bit.
    let ln2_hi = f64::from_bits(0x3fe6_2e42_fee0_0000);
    let ln2_lo = f64::from_bits(0x3dea_39ef_3579_3c76);
    assert!(x.abs() < 700.0, "det_exp of {x}");
    let k = (x / std::f64::consts::LN_2).round();
    let r = (x - k * ln2_hi) - k * ln2_lo;
    let mut series = 1.0;
    for i in (1..=22).rev() {
        series = 1.0 + series * r / i as f64;
    }
    series * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

// ---------------------------------------------------------------------------------------------
// The distribution families

/// How a model spreads its next-token probability beyond the top token. Both keep the unlisted
/// tail below 5 % of the mass, so the top-p 0.95 nucleus never reaches the far tail (tier B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// Runners-up 50/22/17/11 % of 90 % of the spread; 7 % over 40 tail tokens (tier A), 3 %
    /// over all the rest (tier B). Many plausible candidates: a high RBF for its entropy (the
    /// sft model, paper fig. 1d).
    Broad,
    /// Runners-up 70/15/10/5 % of 94.4 %; 0.4 % over 10 tokens, 5.2 % over all the rest. Much
    /// of the entropy sits in a long thin tail: a low RBF for its entropy (base and rl).
    Peaked,
}

struct ShapeParams {
    runner_up_shares: [f64; 4],
    /// Fractions of the spread r held by tier A and tier B.
    tier_a_share: f64,
    tier_b_share: f64,
    tier_a_count: usize,
    /// r ranges over [SPREAD_MIN, SPREAD_MIN + spread_range], where entropy rises with r.
    spread_range: f64,
}

const BROAD: ShapeParams = ShapeParams {
    runner_up_shares: [0.5, 0.22, 0.17, 0.11],
    tier_a_share: 0.07,
    tier_b_share: 0.03,
    tier_a_count: 40,
    spread_range: 0.88,
};

const PEAKED: ShapeParams = ShapeParams {
    runner_up_shares: [0.7, 0.15, 0.1, 0.05],
    tier_a_share: 0.004,
    tier_b_share: 0.052,
    tier_a_count: 10,
    spread_range: 0.8,
};

impl Shape {
    fn params(self) -> &'static ShapeParams {
        match self {
            Shape::Broad => &BROAD,
            Shape::Peaked => &PEAKED,
        }
    }

    /// Entropy of the family at `u = i / TABLE_STEPS`, computed once per process (with
    /// `det_ln`, so every platform builds the same table).
    fn entropy_table(self) -> &'static [f64] {
        static BROAD_TABLE: OnceLock<Vec<f64>> = OnceLock::new();
        static PEAKED_TABLE: OnceLock<Vec<f64>> = OnceLock::new();
        let table = match self {
            Shape::Broad => &BROAD_TABLE,
            Shape::Peaked => &PEAKED_TABLE,
        };
        table.get_or_init(|| {
            (0..=TABLE_STEPS)
                .map(|i| distribution(self, i as f64 / TABLE_STEPS as f64).entropy)
                .collect()
        })
    }
}

/// One position's full next-token distribution, in the closed form of its family.
#[derive(Debug, Clone, Copy)]
pub(super) struct Distribution {
    /// The five most probable tokens' probabilities, descending.
    pub listed: [f64; LISTED],
    pub listed_ln: [f64; LISTED],
    /// Probability of each token of tier A and of tier B (both below `listed[4]`); read by the
    /// tests, which check the whole distribution.
    #[allow(dead_code)]
    pub tier_a: f64,
    #[allow(dead_code)]
    pub tier_b: f64,
    /// Exact entropy (nats) and RBF at top-p 0.95 of the whole distribution.
    pub entropy: f64,
    pub rbf: u32,
}

/// The distribution of spread parameter `u` in [0, 1] of a family: top token `1 - r`, the
/// runners-up, tier A and tier B their shares of r (see [`Shape`]), `r = 0.0004 + range u`.
/// Entropy rises with u: from about 0.005 nats to 2.2 (broad) or 1.87 (peaked).
pub(super) fn distribution(shape: Shape, u: f64) -> Distribution {
    let p = shape.params();
    let r = SPREAD_MIN + p.spread_range * u.clamp(0.0, 1.0);
    let runners = (1.0 - p.tier_a_share - p.tier_b_share) * r;
    let mut listed = [1.0 - r, 0.0, 0.0, 0.0, 0.0];
    for (slot, share) in listed[1..].iter_mut().zip(p.runner_up_shares) {
        *slot = runners * share;
    }
    listed.sort_by(|a, b| b.total_cmp(a));
    let (mass_a, mass_b) = (p.tier_a_share * r, p.tier_b_share * r);
    let tier_a = mass_a / p.tier_a_count as f64;
    let tier_b = mass_b / (VOCAB - LISTED - p.tier_a_count) as f64;
    let listed_ln = listed.map(det_ln);
    let mut entropy = -mass_a * det_ln(tier_a) - mass_b * det_ln(tier_b);
    for (p, lp) in listed.iter().zip(&listed_ln) {
        entropy -= p * lp;
    }
    // The nucleus: the smallest set of most probable tokens reaching top-p.
    let target = TOP_P - NUCLEUS_SLACK;
    let mut cumulative = 0.0;
    let mut rbf = None;
    for (i, p) in listed.iter().enumerate() {
        cumulative += p;
        if cumulative >= target {
            rbf = Some(i + 1);
            break;
        }
    }
    let rbf = rbf.unwrap_or_else(|| {
        let from_a = ((target - cumulative) / tier_a).ceil() as usize;
        if from_a <= p.tier_a_count {
            LISTED + from_a
        } else {
            let rest = target - cumulative - p.tier_a_count as f64 * tier_a;
            LISTED + p.tier_a_count + (rest / tier_b).ceil() as usize
        }
    });
    Distribution {
        listed,
        listed_ln,
        tier_a,
        tier_b,
        entropy,
        rbf: rbf as u32,
    }
}

/// The smallest and largest entropy a family can have.
pub(super) fn entropy_range(shape: Shape) -> (f64, f64) {
    let t = shape.entropy_table();
    (t[0], t[TABLE_STEPS])
}

/// The spread `u` whose distribution has (about) entropy `h`: linear interpolation in the
/// family's table, clamped to its range.
pub(super) fn spread_for_entropy(shape: Shape, h: f64) -> f64 {
    let t = shape.entropy_table();
    if h <= t[0] {
        return 0.0;
    }
    if h >= t[TABLE_STEPS] {
        return 1.0;
    }
    let i = t.partition_point(|&x| x <= h) - 1;
    let frac = (h - t[i]) / (t[i + 1] - t[i]);
    (i as f64 + frac) / TABLE_STEPS as f64
}

// ---------------------------------------------------------------------------------------------
// The pretend tokenizer

/// What a piece of text is, for its entropy weight and its alternatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PieceKind {
    /// Letters, with the leading space when there was one.
    Word,
    /// A later piece of a word split in several.
    WordContinuation,
    /// One decimal digit.
    Digit,
    /// A LaTeX command (`\frac`) or escape (`\{`).
    Command,
    /// One or two ASCII punctuation marks.
    Punct,
    /// A run of newlines.
    Newline,
    /// A run of spaces not attached to what follows.
    Space,
    /// One non-ASCII character (a CJK ideograph is one token).
    Other,
}

/// A piece: byte range of the text and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Piece {
    pub start: usize,
    pub end: usize,
    pub kind: PieceKind,
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() && c != '\\'
}

/// Splits text into BPE-like pieces, after the pre-tokenizer of Qwen2-style models: one
/// token per digit; a single space joins the word, command or punctuation after it; words of
/// up to 8 letters are one token, longer ones pieces of 5 letters (the last one up to 7); LaTeX
/// commands whole; punctuation in runs of at most 2; newlines in runs; one token
/// per non-ASCII character. The pieces cover the text exactly, in order.
pub(super) fn split_tokens(text: &str) -> Vec<Piece> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut out = Vec::with_capacity(text.len() / 3 + 1);
    let mut i = 0;
    while i < n {
        let c = chars[i].1;
        let next = chars.get(i + 1).map(|&(_, c)| c);
        let joins_next =
            c == ' ' && next.is_some_and(|d| d.is_ascii_alphabetic() || d == '\\' || is_punct(d));
        let j = if joins_next { i + 1 } else { i };
        let head = chars[j].1;
        let mut push = |from: usize, to: usize, kind: PieceKind| {
            out.push(Piece {
                start: at(from),
                end: at(to),
                kind,
            })
        };
        let end = if head.is_ascii_digit() {
            push(i, j + 1, PieceKind::Digit);
            j + 1
        } else if head.is_ascii_alphabetic() {
            let mut k = j;
            while k < n && chars[k].1.is_ascii_alphabetic() {
                k += 1;
            }
            let letters = k - j;
            if letters <= 8 {
                push(i, k, PieceKind::Word);
            } else {
                let mut from = i;
                let mut cut = j + 5;
                push(from, cut, PieceKind::Word);
                while cut < k {
                    from = cut;
                    cut = if k - cut < 8 { k } else { cut + 5 };
                    push(from, cut, PieceKind::WordContinuation);
                }
            }
            k
        } else if head == '\\' {
            let mut k = j + 1;
            while k < n && chars[k].1.is_ascii_alphabetic() {
                k += 1;
            }
            if k == j + 1 {
                k = (j + 2).min(n);
            }
            push(i, k, PieceKind::Command);
            k
        } else if head == '\n' {
            let mut k = j;
            while k < n && chars[k].1 == '\n' {
                k += 1;
            }
            push(i, k, PieceKind::Newline);
            k
        } else if head == ' ' {
            let mut k = j;
            while k < n && chars[k].1 == ' ' {
                k += 1;
            }
            // Leave the last space to join what follows, like the pre-tokenizer does.
            if k < n && k - j > 1 && chars[k].1.is_ascii_alphabetic() {
                k -= 1;
            }
            push(i, k, PieceKind::Space);
            k
        } else if is_punct(head) {
            let k = if chars.get(j + 1).is_some_and(|&(_, d)| is_punct(d)) {
                j + 2
            } else {
                j + 1
            };
            push(i, k, PieceKind::Punct);
            k
        } else {
            push(i, j + 1, PieceKind::Other);
            j + 1
        };
        i = end;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Entropy shape over a response

/// Words at which a reasoning path forks (paper sec. 3, "forking tokens").
const FORKING_WORDS: [&str; 22] = [
    "Wait",
    "So",
    "Let",
    "However",
    "But",
    "Therefore",
    "Then",
    "Hmm",
    "Alternatively",
    "Since",
    "Now",
    "Next",
    "First",
    "Okay",
    "Alright",
    "Thus",
    "Combining",
    "Putting",
    "Simplifying",
    "From",
    "By",
    "Yes",
];
/// Tokens shortly before a number that make it the result of a computation.
const RESULT_CUES: [&str; 7] = ["=", "\\equiv", "gives", "get", "to", "is", "\\boxed"];

/// Relative weight of a token's entropy before the position shape and the noise.
fn base_weight(pieces: &[Piece], text: &str, index: usize) -> f64 {
    let piece = pieces[index];
    let word = text[piece.start..piece.end].trim_start();
    match piece.kind {
        PieceKind::Word if FORKING_WORDS.contains(&word) => 5.0,
        PieceKind::Word if word.starts_with(|c: char| c.is_ascii_uppercase()) => 1.6,
        PieceKind::Word => 0.6,
        PieceKind::WordContinuation => 0.08,
        PieceKind::Digit => {
            let continues_number = index > 0 && pieces[index - 1].kind == PieceKind::Digit;
            if continues_number {
                return 0.9;
            }
            // A computed number: a result cue among the three pieces before it ("= $42",
            // "\boxed{42", "gives $42").
            let cue = pieces[index.saturating_sub(3)..index]
                .iter()
                .any(|p| RESULT_CUES.contains(&text[p.start..p.end].trim()));
            if cue {
                3.5
            } else {
                0.5
            }
        }
        PieceKind::Command => 0.5,
        PieceKind::Punct => 0.35,
        PieceKind::Newline => 1.0,
        PieceKind::Space => 0.3,
        PieceKind::Other => 1.5,
    }
}

/// Position shape (item 14): U-shaped, higher at both ends; incorrect responses get extra
/// entropy late (the model "senses" its error).
fn position_weight(l: f64, correct: bool) -> f64 {
    let centred = 2.0 * l - 1.0;
    let c2 = centred * centred;
    let u_shape = 0.8 + 1.2 * c2 * c2;
    if correct {
        u_shape
    } else {
        let l2 = l * l;
        u_shape + 0.6 * l2 * l2
    }
}

/// Per-token target entropies with mean `level`: weight x position x noise, rescaled to the
/// level and clamped to the family's range (twice, so clamping costs little of the mean).
fn target_entropies(
    pieces: &[Piece],
    text: &str,
    spec: &TraceSpec<'_>,
    rng: &mut SplitMix64,
) -> Vec<f64> {
    let (level, correct) = (spec.level, spec.correct);
    let len = pieces.len();
    let weights: Vec<f64> = (0..len)
        .map(|i| {
            let l = (i as f64 + 0.5) / len as f64;
            let u = rng.next_f64();
            // Heavy-ish noise: most tokens get a small share, a few a large one.
            let noise = 0.15 + 1.8 * u * u * u;
            base_weight(pieces, text, i) * position_weight(l, correct) * noise
        })
        .collect();
    let (lo, hi) = entropy_range(spec.shape);
    let mut targets = weights.clone();
    let mut scale = level * len as f64 / weights.iter().sum::<f64>();
    for _ in 0..2 {
        for (t, w) in targets.iter_mut().zip(&weights) {
            *t = (w * scale).clamp(lo, hi);
        }
        let total: f64 = targets.iter().sum();
        let free: f64 = targets.iter().filter(|&&t| t < hi).sum();
        if free <= 0.0 {
            break;
        }
        // Rescale the unclamped tokens so the mean comes back to the level.
        scale *= 1.0 + (level * len as f64 - total) / free;
        if scale <= 0.0 {
            break;
        }
    }
    targets
}

// ---------------------------------------------------------------------------------------------
// Alternatives

const WORD_FORKS: [&str; 16] = [
    "So",
    "Wait",
    "Let",
    "Now",
    "Then",
    "Therefore",
    "However",
    "But",
    "Hmm",
    "First",
    "Next",
    "Since",
    "Thus",
    "Alternatively",
    "The",
    "We",
];
const WORD_COMMON: [&str; 16] = [
    "the", "a", "this", "we", "it", "is", "of", "to", "and", "that", "our", "each", "all", "its",
    "for", "in",
];
const WORD_ENDINGS: [&str; 8] = ["s", "ing", "ed", "ly", "al", "er", "ation", "ity"];
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const COMMANDS: [&str; 14] = [
    "\\frac",
    "\\cdot",
    "\\times",
    "\\left",
    "\\sum",
    "\\binom",
    "\\equiv",
    "\\pmod",
    "\\lfloor",
    "\\boxed",
    "\\operatorname",
    "\\gcd",
    "\\ldots",
    "\\dfrac",
];
const PUNCT: [&str; 15] = [
    ".", ",", ":", ";", "$", "(", ")", "=", "+", "-", "}", "{", ".\n", "$.", "}$",
];
const NEWLINES: [&str; 5] = ["\n\n", "\n", " ", ".\n", "\n\n\n"];
const SPACES: [&str; 5] = [" ", "  ", "\n", "\t", "   "];
const OTHER: [&str; 8] = ["我", "的", "是", "这", "一", "个", "。", "，"];

/// Four different plausible alternatives to `token`, none equal to it.
fn alternatives(token: &str, kind: PieceKind, rng: &mut SplitMix64) -> [String; LISTED - 1] {
    let spaced = token.starts_with(' ');
    let bare = token.trim_start_matches(' ');
    let (pool, keep_space): (&[&str], bool) = match kind {
        PieceKind::Word if bare.starts_with(|c: char| c.is_ascii_uppercase()) => {
            (&WORD_FORKS, true)
        }
        PieceKind::Word => (&WORD_COMMON, true),
        PieceKind::WordContinuation => (&WORD_ENDINGS, false),
        PieceKind::Digit => (&DIGITS, true),
        PieceKind::Command => (&COMMANDS, true),
        PieceKind::Punct => (&PUNCT, true),
        PieceKind::Newline => (&NEWLINES, false),
        PieceKind::Space => (&SPACES, false),
        PieceKind::Other => (&OTHER, false),
    };
    let candidate = |s: &str| -> String {
        if keep_space && spaced {
            format!(" {s}")
        } else {
            s.to_string()
        }
    };
    let mut picked: Vec<String> = Vec::with_capacity(LISTED - 1);
    // Random picks first, then a sweep of the pool (every pool has at least 5 entries, so 4
    // differ from the token).
    let mut attempts = 0;
    while picked.len() < LISTED - 1 && attempts < 12 {
        attempts += 1;
        let s = candidate(pool[rng.below(pool.len() as u64) as usize]);
        if s != token && !picked.contains(&s) {
            picked.push(s);
        }
    }
    for s in pool {
        if picked.len() == LISTED - 1 {
            break;
        }
        let s = candidate(s);
        if s != token && !picked.contains(&s) {
            picked.push(s);
        }
    }
    picked.try_into().expect("pools hold enough alternatives")
}

// ---------------------------------------------------------------------------------------------
// The trace

/// What to synthesize for one rollout.
#[derive(Debug, Clone, Copy)]
pub(super) struct TraceSpec<'a> {
    pub response: &'a str,
    pub correct: bool,
    /// Target mean token entropy of the rollout (nats).
    pub level: f64,
    /// The model's distribution family.
    pub shape: Shape,
    /// With `Some(p)`, store intervention impacts at the highest-entropy positions; `p` is the
    /// chance that a continuation of the original prefix ends correct.
    pub intervention_accuracy: Option<f64>,
}

/// The token trace of one response: tokens covering the text exactly, the sampled token's
/// logprob, the top-5 alternatives (the sampled token among them), exact entropy and RBF of the
/// full distribution, hidden-state norms, and optionally intervention impacts.
pub(super) fn synthesize(spec: &TraceSpec<'_>, rng: &mut SplitMix64) -> TokenTrace {
    let pieces = split_tokens(spec.response);
    let targets = target_entropies(&pieces, spec.response, spec, rng);
    let n = pieces.len();
    let mut tokens = Vec::with_capacity(n);
    let mut logprobs = Vec::with_capacity(n);
    let mut tops = Vec::with_capacity(n);
    let mut entropies = Vec::with_capacity(n);
    let mut rbf = Vec::with_capacity(n);
    let mut norms = Vec::with_capacity(n);
    let mut nll = 0.0;
    for (piece, &target) in pieces.iter().zip(&targets) {
        let text = &spec.response[piece.start..piece.end];
        let d = distribution(spec.shape, spread_for_entropy(spec.shape, target));
        // The sampled rank, drawn with weights p^2 (sampling at temperature 0.5 among the five).
        let weights = d.listed.map(|p| p * p);
        let mut x = rng.next_f64() * weights.iter().sum::<f64>();
        let mut chosen = LISTED - 1;
        for (rank, w) in weights.iter().enumerate() {
            if x < *w {
                chosen = rank;
                break;
            }
            x -= w;
        }
        let others = alternatives(text, piece.kind, rng);
        let mut others = others.into_iter();
        let row: Vec<TopAlternative> = (0..LISTED)
            .map(|rank| TopAlternative {
                token: if rank == chosen {
                    text.as_bytes().to_vec()
                } else {
                    others.next().expect("four alternatives").into_bytes()
                },
                logprob: d.listed_ln[rank] as f32,
            })
            .collect();
        nll -= d.listed_ln[chosen];
        tokens.push(text.as_bytes().to_vec());
        logprobs.push(d.listed_ln[chosen] as f32);
        tops.push(row);
        entropies.push(d.entropy as f32);
        rbf.push(d.rbf);
        // ||h|| of the last layer: about 80, a little larger where the model hesitates.
        let wobble = rng.next_f64() + rng.next_f64() + rng.next_f64() - 1.5;
        norms.push((80.0 + 8.0 * wobble + 6.0 * d.entropy) as f32);
    }
    let mut trace = TokenTrace::new(tokens, logprobs)
        .and_then(|t| t.with_top_alternatives(tops))
        .and_then(|t| t.with_entropies(entropies.clone()))
        .and_then(|t| t.with_rbf(rbf))
        .and_then(|t| t.with_hidden_norms(norms))
        .expect("columns have one entry per token");
    if let (Some(accuracy), false) = (spec.intervention_accuracy, pieces.is_empty()) {
        let ppl = det_exp(nll / n as f64);
        let impacts = interventions(&entropies, ppl, accuracy, rng);
        trace = trace
            .with_impacts(impacts)
            .expect("positions increase and are in range");
    }
    trace
}

/// Impacts I_t (eq. 6) at the `INTERVENTIONS_PER_ROLLOUT` highest-entropy positions: k
/// continuations from each prefix, each correct with its side's chance. Swapping the token
/// moves the chance more at high entropy, early in the response (fig. 6b) and in high-PPL
/// responses (fig. 5b); mostly for the worse, sometimes for the better.
fn interventions(
    entropies: &[f32],
    ppl: f64,
    accuracy: f64,
    rng: &mut SplitMix64,
) -> Vec<PositionImpact> {
    let len = entropies.len();
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| entropies[b].total_cmp(&entropies[a]).then(a.cmp(&b)));
    let mut positions: Vec<usize> = order.into_iter().take(INTERVENTIONS_PER_ROLLOUT).collect();
    positions.sort_unstable();
    let ppl_factor = (0.4 + 6.0 * (ppl - 1.0)).clamp(0.4, 2.0);
    // Mid-range, so moves either way show (at 0 or 1 only one direction could).
    let original = accuracy.clamp(0.15, 0.85);
    let k = INTERVENTION_CONTINUATIONS;
    positions
        .into_iter()
        .map(|t| {
            let l = (t as f64 + 0.5) / len as f64;
            let shift = 0.16 * entropies[t] as f64 * (1.5 - l) * ppl_factor;
            let worse = rng.bernoulli(0.7);
            let substitute = if worse {
                original - shift
            } else {
                original + shift
            }
            .clamp(0.0, 1.0);
            let kept = (0..k).filter(|_| rng.bernoulli(original)).count() as f64;
            let swapped = (0..k).filter(|_| rng.bernoulli(substitute)).count() as f64;
            PositionImpact {
                position: t as u32,
                impact: ((kept - swapped) / k as f64) as f32,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use caplens_analysis::tokens::{uncertainty_top_k, DEFAULT_TOP_P};

    #[test]
    fn det_ln_and_det_exp_match_libm_closely() {
        for &x in &[
            1e-300, 1e-12, 3.3e-7, 0.001, 0.25, 0.5, 0.9999, 1.0, 1.5, 2.0, 10.0, 152_064.0,
        ] {
            let (ours, libm) = (det_ln(x), f64::ln(x));
            assert!(
                (ours - libm).abs() <= 4e-16 * libm.abs().max(1.0),
                "ln {x}: {ours} vs {libm}"
            );
        }
        assert_eq!(det_ln(1.0), 0.0);
        assert!((det_ln(f64::from_bits(1)) - (-744.4400719213812)).abs() < 1e-12);
        for &x in &[-30.0, -5.5, -1.0, -1e-9, 0.0, 0.3, 1.0, 2.2, 7.0] {
            let (ours, libm) = (det_exp(x), f64::exp(x));
            assert!(
                (ours - libm).abs() <= 4e-16 * libm,
                "exp {x}: {ours} vs {libm}"
            );
        }
    }

    #[test]
    fn the_families_are_normalised_ordered_and_monotone() {
        for shape in [Shape::Broad, Shape::Peaked] {
            let p = shape.params();
            let mut previous = -1.0;
            for i in 0..=200 {
                let u = i as f64 / 200.0;
                let d = distribution(shape, u);
                let mass: f64 = d.listed.iter().sum::<f64>()
                    + p.tier_a_count as f64 * d.tier_a
                    + (VOCAB - LISTED - p.tier_a_count) as f64 * d.tier_b;
                assert!((mass - 1.0).abs() < 1e-12, "{shape:?} {u}: mass {mass}");
                assert!(d.listed.windows(2).all(|w| w[0] >= w[1]));
                assert!(d.tier_a <= d.listed[4] && d.tier_b <= d.tier_a);
                assert!(d.entropy > previous, "{shape:?}: entropy rises with u");
                previous = d.entropy;
                // The nucleus never reaches tier B.
                assert!(
                    d.rbf >= 1 && d.rbf as usize <= LISTED + p.tier_a_count,
                    "{shape:?} {u}"
                );
            }
            let (lo, hi) = entropy_range(shape);
            assert!(lo < 0.01 && hi > 1.8, "{shape:?} {lo} {hi}");
            for h in [0.05, 0.3, 1.0, 1.8] {
                let back = distribution(shape, spread_for_entropy(shape, h)).entropy;
                assert!((back - h).abs() < 2e-3, "{shape:?} {h} -> {back}");
            }
        }
        // At equal entropy the broad family has the larger nucleus.
        let rbf_at = |shape, h| distribution(shape, spread_for_entropy(shape, h)).rbf;
        assert!(rbf_at(Shape::Broad, 1.5) > rbf_at(Shape::Peaked, 1.5));
    }

    /// The exact entropy is never below the top-5 bucket estimate, the exact RBF never below
    /// the top-5 lower bound, and both agree when the top 5 hold the nucleus.
    #[test]
    fn exact_columns_agree_with_the_truncated_view() {
        for (shape, i) in [Shape::Broad, Shape::Peaked]
            .into_iter()
            .flat_map(|s| (0..=100).map(move |i| (s, i)))
        {
            let d = distribution(shape, i as f64 / 100.0);
            let top: Vec<f64> = d.listed_ln.iter().map(|&l| l as f32 as f64).collect();
            let t = uncertainty_top_k(&top, DEFAULT_TOP_P).unwrap();
            assert!(
                d.entropy as f32 as f64 >= t.entropy - 1e-6,
                "{i}: {} < {}",
                d.entropy,
                t.entropy
            );
            assert!(d.rbf >= t.rbf, "{i}: rbf {} < {}", d.rbf, t.rbf);
            if t.rbf_bound == caplens_analysis::tokens::Bound::Exact {
                assert_eq!(d.rbf, t.rbf);
            }
        }
    }

    #[test]
    fn pieces_cover_the_text_in_plausible_units() {
        let text = "Okay, so the multiplicative order is $\\frac{12}{5}$.\nWait  we 我们 \\{x\\}";
        let pieces = split_tokens(text);
        let joined: String = pieces.iter().map(|p| &text[p.start..p.end]).collect();
        assert_eq!(joined, text);
        let shown: Vec<&str> = pieces.iter().map(|p| &text[p.start..p.end]).collect();
        assert_eq!(
            shown,
            [
                "Okay", ",", " so", " the", " multi", "plica", "tive", " order", " is", " $",
                "\\frac", "{", "1", "2", "}{", "5", "}$", ".", "\n", "Wait", " ", " we", " ", "我",
                "们", " \\{", "x", "\\}"
            ]
        );
        assert_eq!(pieces[5].kind, PieceKind::WordContinuation);
        assert!(split_tokens("").is_empty());
    }

    #[test]
    fn traces_are_consistent_and_shaped() {
        let response = "Let me solve this step by step.\nStep 1: Multiples of $2$: $\\lfloor 515/2 \\rfloor = 257$.\nWait, so the answer is $\\boxed{428}$.";
        let mut rng = SplitMix64::new(9);
        let spec = TraceSpec {
            response,
            correct: false,
            level: 0.5,
            shape: Shape::Broad,
            intervention_accuracy: Some(0.4),
        };
        let t = synthesize(&spec, &mut rng);
        let joined: Vec<u8> = t.tokens().concat();
        assert_eq!(joined, response.as_bytes());
        let h = t.entropies().unwrap();
        let mean = h.iter().map(|&x| x as f64).sum::<f64>() / h.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "mean entropy {mean}");
        for (i, row) in t.top_alternatives().unwrap().iter().enumerate() {
            assert_eq!(row.len(), LISTED);
            assert!(row.windows(2).all(|w| w[0].logprob >= w[1].logprob));
            let chosen: Vec<_> = row.iter().filter(|a| a.token == t.tokens()[i]).collect();
            assert_eq!(chosen.len(), 1, "the sampled token is listed once at {i}");
            assert_eq!(chosen[0].logprob.to_bits(), t.logprobs()[i].to_bits());
            let mut names: Vec<&Vec<u8>> = row.iter().map(|a| &a.token).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), LISTED, "alternatives differ at {i}");
        }
        let impacts = t.impacts().unwrap();
        assert_eq!(impacts.len(), INTERVENTIONS_PER_ROLLOUT);
        let top_entropy = h.iter().cloned().fold(f32::MIN, f32::max);
        assert!(impacts
            .iter()
            .any(|i| h[i.position as usize] == top_entropy));
        for i in impacts {
            assert!((-1.0..=1.0).contains(&i.impact));
            assert_eq!((i.impact * 32.0).fract(), 0.0, "a multiple of 1/k");
        }
        // "Wait" forks: far above the median token.
        let wait = t.tokens().iter().position(|t| t == b"Wait").unwrap();
        let mut sorted: Vec<f32> = h.to_vec();
        sorted.sort_by(f32::total_cmp);
        assert!(
            h[wait] > 3.0 * sorted[sorted.len() / 2],
            "{} vs median {}",
            h[wait],
            sorted[sorted.len() / 2]
        );
        let again = synthesize(&spec, &mut SplitMix64::new(9));
        assert_eq!(
            caplens_analysis::trace::encode(&again),
            caplens_analysis::trace::encode(&t)
        );
    }
}
