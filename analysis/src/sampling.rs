//! Next-token sampling from a full distribution: temperature-scaled softmax, nucleus (top-p)
//! sampling, greedy decoding and the top-K alternatives, for the embedded engine (issue 7).
//!
//! Pure maths, deterministic given the seed: the only randomness is [`SplitMix64`], one generator
//! per sample (see [`sample_rng`]), so a sample never depends on which other samples share its
//! batch.
//!
//! # Exactness
//! [`StepDistribution`] computes its probabilities with the same arithmetic, in the same order, as
//! [`crate::tokens::NormalizedDistribution`] from logits, so [`StepDistribution::entropy`] and
//! [`StepDistribution::rbf`] equal [`crate::tokens::uncertainty_full`] on the same (scaled) logits
//! (items 4 and 5 of the paper notes) — the tests check it — without sorting the vocabulary.
//!
//! # Speed
//! The vocabulary is large (49,152 for SmolLM2) and this runs once per generated token per
//! sample. Nothing here sorts the whole vocabulary unless the nucleus itself is that large
//! (top-p = 1): the most probable tokens are found with `select_nth_unstable`, a small candidate
//! set is sorted, and the candidate set grows geometrically only when the nucleus needs more.

use std::cmp::Ordering;

use crate::rng::SplitMix64;
use crate::tokens::{FullDistribution, NormalizedDistribution, TokenMetricError};

/// Cumulative mass within this distance below p counts as reaching p: the same slack as
/// [`crate::tokens::uncertainty_full`], so the nucleus here is the nucleus there.
const NUCLEUS_SLACK: f64 = 1e-12;

/// First candidate-set size when looking for the most probable tokens.
const FIRST_CANDIDATES: usize = 64;

/// The generator of sample `index` of a request seeded with `seed`: sample i is seeded with
/// `seed + i` (wrapping), as the OpenAI-style `seed` of the engine contract says, whatever the
/// batch it runs in.
pub fn sample_rng(seed: u64, index: u64) -> SplitMix64 {
    SplitMix64::new(seed.wrapping_add(index))
}

/// One step's full next-token distribution: `probs[i]` and `logprobs[i] = ln probs[i]`, the
/// same normalised distribution the token metrics use (`tokens::NormalizedDistribution`), plus
/// what decoding needs (greedy, nucleus, sampling).
#[derive(Debug, Clone, PartialEq)]
pub struct StepDistribution {
    dist: NormalizedDistribution,
}

/// The top-p nucleus of a [`StepDistribution`]: token indices, most probable first, and their
/// total probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Nucleus {
    /// Token indices in decreasing probability (ties: lower index first).
    pub indices: Vec<usize>,
    /// Sum of their probabilities.
    pub mass: f64,
}

impl Nucleus {
    /// Rollout branching factor: the nucleus size, at least 1 (paper-notes item 5).
    pub fn rbf(&self) -> u32 {
        self.indices.len().max(1) as u32
    }

    /// Draws a token from the nucleus renormalised to mass 1 (nucleus sampling, Holtzman et al.
    /// 2020). One uniform draw per call.
    pub fn sample(&self, dist: &StepDistribution, rng: &mut SplitMix64) -> usize {
        let u = rng.next_f64() * self.mass;
        let mut cumulative = 0.0;
        for &i in &self.indices {
            cumulative += dist.probs()[i];
            if u < cumulative {
                return i;
            }
        }
        // u is below the mass, so only rounding can get here: the least probable member.
        *self.indices.last().expect("a nucleus is never empty")
    }
}

impl StepDistribution {
    /// Softmax of `logits / temperature`, computed in f64 exactly as
    /// [`crate::tokens::NormalizedDistribution`] computes it from logits: `z_i = logit_i / T`,
    /// `ln p_i = z_i - logsumexp(z)`, `p_i = exp(ln p_i)`.
    ///
    /// `temperature` must be finite and > 0 (greedy decoding is [`Self::greedy`] on the
    /// temperature-1 distribution). Errors: an empty slice or only `-inf` logits
    /// (`EmptyDistribution`), a NaN or `+inf` logit (`InvalidEntry`), a bad temperature
    /// (`InvalidScale`).
    pub fn from_logits(logits: &[f32], temperature: f64) -> Result<Self, TokenMetricError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(TokenMetricError::InvalidScale { value: temperature });
        }
        let mut z = Vec::with_capacity(logits.len());
        for (index, &l) in logits.iter().enumerate() {
            if l.is_nan() || l == f32::INFINITY {
                return Err(TokenMetricError::InvalidEntry {
                    index,
                    value: l as f64,
                });
            }
            z.push(if temperature == 1.0 {
                l as f64
            } else {
                l as f64 / temperature
            });
        }
        Self::from_scaled_logits(z)
    }

    /// Softmax of already scaled f64 logits (`tokens::NormalizedDistribution`, eq. 3's p).
    fn from_scaled_logits(z: Vec<f64>) -> Result<Self, TokenMetricError> {
        Ok(Self {
            dist: NormalizedDistribution::new(FullDistribution::Logits(&z))?,
        })
    }

    /// Probabilities, summing to 1.
    pub fn probs(&self) -> &[f64] {
        self.dist.probs()
    }

    /// Natural-log probabilities (`-inf` for zero-probability tokens).
    pub fn logprobs(&self) -> &[f64] {
        self.dist.logprobs()
    }

    /// Vocabulary size.
    pub fn len(&self) -> usize {
        self.dist.len()
    }

    /// Never true for a constructed distribution.
    pub fn is_empty(&self) -> bool {
        self.dist.is_empty()
    }

    /// Token entropy (paper eq. 3) in nats, with `0 ln 0 = 0`.
    pub fn entropy(&self) -> f64 {
        self.dist.entropy()
    }

    /// Most probable token (ties: the lower index). Greedy decoding.
    pub fn greedy(&self) -> usize {
        let mut best = 0;
        for (i, &p) in self.probs().iter().enumerate().skip(1) {
            if p > self.probs()[best] {
                best = i;
            }
        }
        best
    }

    /// Decreasing probability, ties by increasing index: a total order, so every method here
    /// agrees on which tokens come first.
    fn order(&self, a: usize, b: usize) -> Ordering {
        self.probs()[b].total_cmp(&self.probs()[a]).then(a.cmp(&b))
    }

    /// Indices of the `k` most probable tokens with positive probability, most probable first.
    fn top_indices(&self, candidates: &mut [usize], k: usize) -> Vec<usize> {
        let k = k.min(candidates.len());
        if k == 0 {
            return Vec::new();
        }
        if k < candidates.len() {
            candidates.select_nth_unstable_by(k - 1, |&a, &b| self.order(a, b));
        }
        let mut top = candidates[..k].to_vec();
        top.sort_unstable_by(|&a, &b| self.order(a, b));
        top
    }

    fn positive_indices(&self) -> Vec<usize> {
        (0..self.probs().len())
            .filter(|&i| self.probs()[i] > 0.0)
            .collect()
    }

    /// The `k` most probable tokens with their log-probabilities, most probable first (ties: the
    /// lower index). Fewer when fewer tokens have positive probability.
    pub fn top(&self, k: usize) -> Vec<(usize, f64)> {
        if k == 0 {
            return Vec::new();
        }
        let mut candidates = self.positive_indices();
        self.top_indices(&mut candidates, k)
            .into_iter()
            .map(|i| (i, self.logprobs()[i]))
            .collect()
    }

    /// The top-p nucleus: the smallest set of most probable tokens whose mass reaches `top_p`
    /// (within 1e-12, as in [`crate::tokens::uncertainty_full`]); every positive-probability
    /// token when rounding keeps the total a hair below `top_p`. `top_p` outside (0, 1] is
    /// clamped into it.
    pub fn nucleus(&self, top_p: f64) -> Nucleus {
        let top_p = if top_p.is_nan() {
            1.0
        } else {
            top_p.clamp(f64::MIN_POSITIVE, 1.0)
        };
        let mut candidates = self.positive_indices();
        let n = candidates.len();
        let mut k = FIRST_CANDIDATES.min(n);
        loop {
            let top = self.top_indices(&mut candidates, k);
            let mut cumulative = 0.0;
            for (j, &i) in top.iter().enumerate() {
                cumulative += self.probs()[i];
                if cumulative >= top_p - NUCLEUS_SLACK {
                    let mut indices = top;
                    indices.truncate(j + 1);
                    return Nucleus {
                        indices,
                        mass: cumulative,
                    };
                }
            }
            if k >= n {
                return Nucleus {
                    indices: top,
                    mass: cumulative,
                };
            }
            k = (k * 4).min(n);
        }
    }

    /// Exact rollout branching factor at `top_p` (paper-notes item 5).
    pub fn rbf(&self, top_p: f64) -> u32 {
        self.nucleus(top_p).rbf()
    }

    /// Nucleus sampling at `top_p`. With top-p = 1 every token is a candidate and no ordering is
    /// needed: the draw walks the vocabulary in index order.
    pub fn sample(&self, top_p: f64, rng: &mut SplitMix64) -> usize {
        if top_p >= 1.0 {
            let u = rng.next_f64();
            let mut cumulative = 0.0;
            let mut last_positive = self.greedy();
            for (i, &p) in self.probs().iter().enumerate() {
                if p > 0.0 {
                    cumulative += p;
                    last_positive = i;
                    if u < cumulative {
                        return i;
                    }
                }
            }
            return last_positive;
        }
        self.nucleus(top_p).sample(self, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{uncertainty_full, FullDistribution, NormalizedDistribution};

    fn pseudo_logits(n: usize, seed: u64, scale: f64) -> Vec<f32> {
        let mut g = SplitMix64::new(seed);
        (0..n).map(|_| (g.normal() * scale) as f32).collect()
    }

    #[test]
    fn softmax_sums_to_one_and_matches_the_formula() {
        let logits = [1.0f32, 2.0, 3.0, f32::NEG_INFINITY];
        for t in [0.3, 1.0, 2.5] {
            let d = StepDistribution::from_logits(&logits, t).unwrap();
            let sum: f64 = d.probs().iter().sum();
            assert!((sum - 1.0).abs() < 1e-12, "{sum}");
            let z: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|x| (x / t).exp()).collect();
            let total: f64 = z.iter().sum();
            for (i, zi) in z.iter().enumerate() {
                assert!((d.probs()[i] - zi / total).abs() < 1e-12);
                assert!((d.logprobs()[i] - (zi / total).ln()).abs() < 1e-12);
            }
            assert_eq!(d.probs()[3], 0.0);
            assert_eq!(d.logprobs()[3], f64::NEG_INFINITY);
        }
        // Lower temperature sharpens: the top token gains mass.
        let cold = StepDistribution::from_logits(&logits, 0.5).unwrap();
        let hot = StepDistribution::from_logits(&logits, 2.0).unwrap();
        assert!(cold.probs()[2] > hot.probs()[2]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            StepDistribution::from_logits(&[], 1.0),
            Err(TokenMetricError::EmptyDistribution)
        );
        assert_eq!(
            StepDistribution::from_logits(&[f32::NEG_INFINITY], 1.0),
            Err(TokenMetricError::EmptyDistribution)
        );
        assert!(matches!(
            StepDistribution::from_logits(&[0.0, f32::NAN], 1.0),
            Err(TokenMetricError::InvalidEntry { index: 1, .. })
        ));
        assert!(matches!(
            StepDistribution::from_logits(&[0.0], 0.0),
            Err(TokenMetricError::InvalidScale { .. })
        ));
    }

    #[test]
    fn greedy_is_argmax_with_lowest_index_on_ties() {
        let logits = pseudo_logits(5000, 3, 3.0);
        let d = StepDistribution::from_logits(&logits, 1.0).unwrap();
        let argmax = logits
            .iter()
            .enumerate()
            .fold(0, |b, (i, &x)| if x > logits[b] { i } else { b });
        assert_eq!(d.greedy(), argmax);
        assert_eq!(d.top(1)[0].0, argmax);
        let tied = StepDistribution::from_logits(&[0.0, 5.0, 5.0, 1.0], 1.0).unwrap();
        assert_eq!(tied.greedy(), 1);
        assert_eq!(
            tied.top(3).iter().map(|t| t.0).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn tiny_top_p_always_samples_the_argmax() {
        let logits = pseudo_logits(2000, 9, 1.0);
        let d = StepDistribution::from_logits(&logits, 1.0).unwrap();
        let mut rng = SplitMix64::new(1);
        for _ in 0..200 {
            assert_eq!(d.sample(1e-9, &mut rng), d.greedy());
        }
        assert_eq!(d.rbf(1e-9), 1);
    }

    #[test]
    fn sampling_frequencies_match_probabilities() {
        let probs = [0.5f64, 0.3, 0.15, 0.05];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln() as f32).collect();
        let d = StepDistribution::from_logits(&logits, 1.0).unwrap();
        let draws = 40_000;
        for top_p in [1.0, 0.99] {
            let mut rng = SplitMix64::new(2024);
            let mut counts = [0usize; 4];
            for _ in 0..draws {
                counts[d.sample(top_p, &mut rng)] += 1;
            }
            for (c, p) in counts.iter().zip(probs) {
                let f = *c as f64 / draws as f64;
                // 4 standard errors at most (sd <= 0.0025 here).
                assert!((f - p).abs() < 0.01, "top_p {top_p}: {counts:?}");
            }
        }
        // top-p 0.8 keeps {0.5, 0.3}: renormalised to 0.625 / 0.375, never the others.
        let mut rng = SplitMix64::new(7);
        let mut counts = [0usize; 4];
        for _ in 0..draws {
            counts[d.sample(0.8, &mut rng)] += 1;
        }
        assert_eq!(counts[2] + counts[3], 0, "{counts:?}");
        let f0 = counts[0] as f64 / draws as f64;
        assert!((f0 - 0.625).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn same_seed_same_samples_and_samples_are_independent_of_each_other() {
        let logits = pseudo_logits(49152, 5, 2.0);
        let d = StepDistribution::from_logits(&logits, 0.7).unwrap();
        let draw = |seed: u64, index: u64| {
            let mut rng = sample_rng(seed, index);
            (0..20)
                .map(|_| d.sample(0.95, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42, 3), draw(42, 3));
        assert_eq!(draw(42, 3), draw(45, 0), "sample i is seeded with seed + i");
        assert_ne!(draw(42, 0), draw(42, 1));
    }

    #[test]
    fn entropy_and_rbf_equal_the_exact_reference() {
        for (seed, scale, t) in [
            (1u64, 1.0, 1.0),
            (2, 4.0, 0.6),
            (3, 0.1, 1.3),
            (4, 8.0, 1.0),
        ] {
            let mut logits = pseudo_logits(49152, seed, scale);
            logits[17] = f32::NEG_INFINITY;
            let d = StepDistribution::from_logits(&logits, t).unwrap();
            let scaled: Vec<f64> = logits
                .iter()
                .map(|&l| if t == 1.0 { l as f64 } else { l as f64 / t })
                .collect();
            let reference = NormalizedDistribution::new(FullDistribution::Logits(&scaled)).unwrap();
            assert_eq!(d.probs(), reference.probs());
            for top_p in [0.1, 0.5, 0.95, 1.0] {
                let u = uncertainty_full(&reference, top_p).unwrap();
                assert_eq!(d.rbf(top_p), u.rbf, "seed {seed} top_p {top_p}");
                assert!((d.entropy() - u.entropy).abs() < 1e-12);
            }
            assert!(d.entropy() > 0.0 && d.entropy() <= (49152f64).ln());
        }
        // A peaked distribution: nucleus of one.
        let d = StepDistribution::from_logits(&[30.0, 0.0, 0.0], 1.0).unwrap();
        assert_eq!(d.rbf(0.95), 1);
    }

    #[test]
    fn top_k_is_sorted_and_matches_a_full_sort() {
        let logits = pseudo_logits(49152, 11, 2.0);
        let d = StepDistribution::from_logits(&logits, 1.0).unwrap();
        let top = d.top(20);
        assert_eq!(top.len(), 20);
        let mut all: Vec<usize> = (0..d.len()).collect();
        all.sort_by(|&a, &b| d.probs()[b].total_cmp(&d.probs()[a]).then(a.cmp(&b)));
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), all[..20]);
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(top.iter().all(|t| t.1 <= 0.0 && t.1 == d.logprobs()[t.0]));
        // More than the tokens with positive probability: only those.
        let small = StepDistribution::from_logits(&[0.0, f32::NEG_INFINITY, 1.0], 1.0).unwrap();
        assert_eq!(small.top(5).iter().map(|t| t.0).collect::<Vec<_>>(), [2, 0]);
        assert!(d.top(0).is_empty());
    }

    #[test]
    fn nucleus_is_the_smallest_prefix_reaching_p() {
        let probs = [0.1f64, 0.4, 0.2, 0.3];
        let logits: Vec<f32> = probs.iter().map(|p| p.ln() as f32).collect();
        let d = StepDistribution::from_logits(&logits, 1.0).unwrap();
        let n = d.nucleus(0.65);
        assert_eq!(n.indices, [1, 3]);
        assert!((n.mass - 0.7).abs() < 1e-6);
        assert_eq!(d.nucleus(0.69).indices, [1, 3]);
        assert_eq!(d.nucleus(0.75).indices, [1, 3, 2]);
        assert_eq!(d.rbf(1.0), 4);
    }
}
