//! RFT data selection (notes item 17, paper sec. 4.4.1, table 3).
//!
//! Rule filters, applied to every candidate in this order:
//! 1. the response has a `\boxed{...}` with balanced braces;
//! 2. it is cut right after the first such box ([`quality::truncate_after_first_boxed`]);
//! 3. the cut text contains an ASCII digit;
//! 4. the cut text's 3-gram redundancy is at most 0.31 ([`quality::REDUNDANCY_LIMIT`]).
//!
//! Correct survivors are the positives, incorrect survivors the negatives. Strategies:
//! - `rule`: `count` positives drawn uniformly at random (seeded);
//! - `noisy`: round(5% of count) negatives drawn at random, the rest positives drawn at random;
//! - `entropy`: the `count` positives with the highest mean token entropy;
//! - `rbf`: the `count` positives with the highest mean RBF;
//! - `noisy+rbf`: round(5% of count) random negatives plus the highest-RBF positives.
//!
//! Ranking ties go to the lower candidate index. When a pool is smaller than asked, all of it is
//! taken and nothing refills the gap (the result can be shorter than `count`). The result is
//! sorted by candidate index. Everything is deterministic given the seed (SplitMix64).

use crate::quality;
use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};

/// Fraction of negatives added by the noisy strategies.
pub const NOISE_FRACTION: f64 = 0.05;

/// One rollout offered to the selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RftCandidate<'a> {
    pub response: &'a str,
    pub correct: bool,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
}

/// A selection strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RftStrategy {
    #[serde(rename = "rule")]
    Rule,
    #[serde(rename = "noisy")]
    Noisy,
    #[serde(rename = "entropy")]
    Entropy,
    #[serde(rename = "rbf")]
    Rbf,
    #[serde(rename = "noisy+rbf")]
    NoisyRbf,
}

impl RftStrategy {
    /// The CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::Noisy => "noisy",
            Self::Entropy => "entropy",
            Self::Rbf => "rbf",
            Self::NoisyRbf => "noisy+rbf",
        }
    }
}

impl std::str::FromStr for RftStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Rule,
            Self::Noisy,
            Self::Entropy,
            Self::Rbf,
            Self::NoisyRbf,
        ]
        .into_iter()
        .find(|st| st.name() == s)
        .ok_or_else(|| {
            format!("unknown strategy {s:?}: expected rule, noisy, entropy, rbf or noisy+rbf")
        })
    }
}

/// One selected rollout: its index among the candidates and the text to train on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RftSelection<'a> {
    pub index: usize,
    /// The response cut after its first `\boxed{...}`.
    pub truncated: &'a str,
    pub correct: bool,
}

/// Why a selection cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RftError {
    /// The strategy ranks by a per-rollout value that this candidate (a filtered positive) lacks.
    MissingValue {
        strategy: RftStrategy,
        value: &'static str,
        index: usize,
    },
}

impl std::fmt::Display for RftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RftError::MissingValue {
                strategy,
                value,
                index,
            } => write!(
                f,
                "strategy {} needs the {value} of every candidate, but rollout #{index} has none \
                 (give token_entropies or top_logprobs in the input)",
                strategy.name()
            ),
        }
    }
}

impl std::error::Error for RftError {}

/// Applies the rule filters (module doc) to one response; `Some(cut text)` when it passes.
pub fn rule_filter(response: &str) -> Option<&str> {
    match rule_outcome(response) {
        RuleOutcome::Kept(cut) => Some(cut),
        _ => None,
    }
}

/// The first rule filter (module doc order) a response fails, or the cut text it keeps; lets a
/// caller count how many responses each filter removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOutcome<'a> {
    /// No `\boxed{...}` with balanced braces (filter 1).
    NoBoxed,
    /// The text cut after the first box has no ASCII digit (filter 3).
    NoDigit,
    /// The cut text's 3-gram redundancy exceeds [`quality::REDUNDANCY_LIMIT`] (filter 4).
    Redundant,
    /// Passed every filter: the response cut after its first box.
    Kept(&'a str),
}

/// Runs the rule filters on one response, in order, stopping at the first that fails.
pub fn rule_outcome(response: &str) -> RuleOutcome<'_> {
    let Some(cut) = quality::truncate_after_first_boxed(response) else {
        return RuleOutcome::NoBoxed;
    };
    if !quality::has_digit(cut) {
        RuleOutcome::NoDigit
    } else if quality::is_redundant(cut) {
        RuleOutcome::Redundant
    } else {
        RuleOutcome::Kept(cut)
    }
}

/// What the selection needs to know about one rollout, once the rule filters have run; lets a
/// caller stream its input and keep a few bytes per rollout instead of every response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RftFeatures {
    /// The response passed [`rule_filter`].
    pub passes_filter: bool,
    pub correct: bool,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
}

/// Selects up to `count` rollouts with `strategy` (module doc). Deterministic given `seed`.
pub fn select<'a>(
    candidates: &[RftCandidate<'a>],
    strategy: RftStrategy,
    count: usize,
    seed: u64,
) -> Result<Vec<RftSelection<'a>>, RftError> {
    let cut_text: Vec<Option<&'a str>> =
        candidates.iter().map(|c| rule_filter(c.response)).collect();
    let features: Vec<RftFeatures> = candidates
        .iter()
        .zip(&cut_text)
        .map(|(c, cut)| RftFeatures {
            passes_filter: cut.is_some(),
            correct: c.correct,
            mean_entropy: c.mean_entropy,
            mean_rbf: c.mean_rbf,
        })
        .collect();
    Ok(select_indices(&features, strategy, count, seed)?
        .into_iter()
        .map(|i| RftSelection {
            index: i,
            truncated: cut_text[i].expect("chosen only from filtered"),
            correct: candidates[i].correct,
        })
        .collect())
}

/// [`select`] over precomputed features: the chosen indices, ascending.
pub fn select_indices(
    features: &[RftFeatures],
    strategy: RftStrategy,
    count: usize,
    seed: u64,
) -> Result<Vec<usize>, RftError> {
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for (i, f) in features.iter().enumerate() {
        if f.passes_filter {
            if f.correct {
                positives.push(i)
            } else {
                negatives.push(i)
            }
        }
    }
    let noisy = matches!(strategy, RftStrategy::Noisy | RftStrategy::NoisyRbf);
    let negatives_wanted = if noisy {
        (count as f64 * NOISE_FRACTION).round() as usize
    } else {
        0
    };
    let positives_wanted = count - negatives_wanted;
    // Separate streams so the negative draw does not shift the positive one.
    let mut chosen = match strategy {
        RftStrategy::Rule | RftStrategy::Noisy => draw(
            &positives,
            positives_wanted,
            &mut SplitMix64::derive(seed, 1),
        ),
        RftStrategy::Entropy => top_by(
            features,
            &positives,
            positives_wanted,
            strategy,
            "mean token entropy",
            |c| c.mean_entropy,
        )?,
        RftStrategy::Rbf | RftStrategy::NoisyRbf => top_by(
            features,
            &positives,
            positives_wanted,
            strategy,
            "mean RBF",
            |c| c.mean_rbf,
        )?,
    };
    chosen.extend(draw(
        &negatives,
        negatives_wanted,
        &mut SplitMix64::derive(seed, 2),
    ));
    chosen.sort_unstable();
    Ok(chosen)
}

/// `want` distinct items drawn uniformly (partial Fisher-Yates); all of them when fewer.
fn draw(pool: &[usize], want: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut pool = pool.to_vec();
    let take = want.min(pool.len());
    for i in 0..take {
        let j = i + rng.below((pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(take);
    pool
}

fn top_by(
    candidates: &[RftFeatures],
    pool: &[usize],
    want: usize,
    strategy: RftStrategy,
    value_name: &'static str,
    value: fn(&RftFeatures) -> Option<f64>,
) -> Result<Vec<usize>, RftError> {
    let mut scored = Vec::with_capacity(pool.len());
    for &i in pool {
        match value(&candidates[i]).filter(|v| v.is_finite()) {
            Some(v) => scored.push((v, i)),
            None => {
                return Err(RftError::MissingValue {
                    strategy,
                    value: value_name,
                    index: i,
                })
            }
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(scored.into_iter().take(want).map(|(_, i)| i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cand(response: &str, correct: bool, e: Option<f64>, r: Option<f64>) -> RftCandidate<'_> {
        RftCandidate {
            response,
            correct,
            mean_entropy: e,
            mean_rbf: r,
        }
    }

    #[test]
    fn rule_filter_cases() {
        assert_eq!(
            rule_filter("x = 2, so \\boxed{2} and more"),
            Some("x = 2, so \\boxed{2}")
        );
        assert_eq!(rule_filter("no box 2"), None);
        assert_eq!(rule_filter("answer \\boxed{x}"), None); // no digit in the kept text
        assert_eq!(rule_filter("unclosed \\boxed{2"), None);
        let looping = format!("{} \\boxed{{1}}", "we try 1 again ".repeat(10));
        assert_eq!(rule_filter(&looping), None);
        assert_eq!(rule_outcome("no box 2"), RuleOutcome::NoBoxed);
        assert_eq!(rule_outcome("answer \\boxed{x} 2"), RuleOutcome::NoDigit);
        assert_eq!(rule_outcome(&looping), RuleOutcome::Redundant);
        assert_eq!(
            rule_outcome("1 \\boxed{1} more"),
            RuleOutcome::Kept("1 \\boxed{1}")
        );
    }

    #[test]
    fn strategies_rank_and_error() {
        let c = vec![
            cand("a 1 \\boxed{1}", true, Some(0.1), Some(1.5)),
            cand("b 2 \\boxed{2}", true, Some(0.9), Some(1.1)),
            cand("c 3 \\boxed{3}", false, Some(0.5), Some(3.0)),
            cand("d 4 \\boxed{4}", true, Some(0.4), Some(2.0)),
            cand("no box", true, None, None),
        ];
        let idx = |v: Vec<RftSelection>| v.into_iter().map(|s| s.index).collect::<Vec<_>>();
        assert_eq!(
            idx(select(&c, RftStrategy::Entropy, 2, 0).unwrap()),
            vec![1, 3]
        );
        assert_eq!(idx(select(&c, RftStrategy::Rbf, 2, 0).unwrap()), vec![0, 3]);
        // 5% of 20 = 1 negative (index 2) plus all 3 positives (pool smaller than 19)
        assert_eq!(
            idx(select(&c, RftStrategy::NoisyRbf, 20, 0).unwrap()),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            idx(select(&c, RftStrategy::Rule, 10, 7).unwrap()),
            vec![0, 1, 3]
        );
        let no_entropy = vec![cand("a 1 \\boxed{1}", true, None, Some(1.0))];
        let err = select(&no_entropy, RftStrategy::Entropy, 1, 0).unwrap_err();
        assert_eq!(
            err,
            RftError::MissingValue {
                strategy: RftStrategy::Entropy,
                value: "mean token entropy",
                index: 0
            }
        );
        assert!(err.to_string().contains("entropy"));
        assert!(select(&no_entropy, RftStrategy::Rule, 1, 0).is_ok());
        assert!(select(&c, RftStrategy::Rule, 1, 0).unwrap()[0]
            .truncated
            .ends_with('}'));
    }

    #[test]
    fn strategy_names_round_trip() {
        for s in [
            RftStrategy::Rule,
            RftStrategy::Noisy,
            RftStrategy::Entropy,
            RftStrategy::Rbf,
            RftStrategy::NoisyRbf,
        ] {
            assert_eq!(s.name().parse::<RftStrategy>(), Ok(s));
        }
        assert!("best".parse::<RftStrategy>().is_err());
    }

    proptest! {
        #[test]
        fn prop_deterministic_and_well_formed(
            items in proptest::collection::vec((0u8..4, any::<bool>(), 0.0f64..3.0), 0..60),
            count in 0usize..40,
            seed in any::<u64>(),
            strategy in prop_oneof![Just(RftStrategy::Rule), Just(RftStrategy::Noisy), Just(RftStrategy::Entropy), Just(RftStrategy::Rbf), Just(RftStrategy::NoisyRbf)],
        ) {
            let texts: Vec<String> = items.iter().enumerate().map(|(i, (kind, _, _))| match kind {
                0 => format!("step {i} gives \\boxed{{{i}}} extra"),
                1 => "no box here".to_string(),
                2 => format!("word {i} \\boxed{{x}}"),
                _ => format!("{i} \\boxed{{{i}}}"),
            }).collect();
            let c: Vec<RftCandidate> = items.iter().zip(&texts).map(|((_, ok, v), t)| cand(t, *ok, Some(*v), Some(*v))).collect();
            let a = select(&c, strategy, count, seed).unwrap();
            prop_assert_eq!(&a, &select(&c, strategy, count, seed).unwrap());
            prop_assert!(a.len() <= count);
            let negatives = a.iter().filter(|s| !s.correct).count();
            let allowed = if matches!(strategy, RftStrategy::Noisy | RftStrategy::NoisyRbf) { (count as f64 * NOISE_FRACTION).round() as usize } else { 0 };
            prop_assert!(negatives <= allowed);
            for w in a.windows(2) { prop_assert!(w[0].index < w[1].index); }
            for s in &a {
                prop_assert_eq!(Some(s.truncated), rule_filter(c[s.index].response));
            }
        }
    }
}
