//! pass@k: the unbiased estimator, whole curves, bootstrap bands and curve crossovers.
//!
//! Paper eq. 2 (notes item 1): from n samples of which c are correct,
//! pass@k = 1 - C(n-c, k) / C(n, k), averaged over problems.
//! The binomials are never formed: C(n-c, k) / C(n, k) = prod_{j=0..k-1} (n-c-j) / (n-j), a product of
//! factors in [0, 1], so it cannot overflow and at worst underflows to 0 (where pass@k is 1 anyway).

use crate::rng::SplitMix64;
use serde::{Deserialize, Serialize};

/// Outcome counts of one problem: `n` samples, of which `c` are correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemCounts {
    pub n: u64,
    pub c: u64,
}

/// One point of an averaged pass@k curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub k: u64,
    /// Mean pass@k over the problems that have at least k samples; in [0, 1].
    pub pass_at_k: f64,
    /// How many problems the mean is over (those with n >= k).
    pub problems: usize,
}

/// A bootstrap confidence band at one k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandPoint {
    pub k: u64,
    pub lower: f64,
    pub upper: f64,
}

/// Unbiased pass@k of one problem (eq. 2).
///
/// `None` when the value is undefined: `k == 0`, `n < k` (too few samples to estimate it) or
/// `c > n` (inconsistent counts). Equals 1 when `n - c < k` and 0 when `c == 0`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> Option<f64> {
    if k == 0 || n < k || c > n {
        return None;
    }
    let failures = n - c;
    if failures < k {
        return Some(1.0);
    }
    if c == 0 {
        return Some(0.0);
    }
    if k == 1 {
        // Exactly c/n (the product form would round 1 - (n-c)/n).
        return Some(c as f64 / n as f64);
    }
    // Two equivalent products; take the one with fewer factors.
    let all_fail = if k <= c {
        // prod_{j=0..k-1} (n-c-j)/(n-j)
        (0..k).fold(1.0f64, |acc, j| {
            acc * ((failures - j) as f64 / (n - j) as f64)
        })
    } else {
        // prod_{i=n-c+1..n} (1 - k/i)   (the human-eval form)
        (failures + 1..=n).fold(1.0f64, |acc, i| acc * (1.0 - k as f64 / i as f64))
    };
    Some((1.0 - all_fail).clamp(0.0, 1.0))
}

/// pass@k of one problem for every k = 1..=min(n, max_k), in one pass:
/// ratio_k = ratio_{k-1} * (n-c-k+1) / (n-k+1) with ratio_0 = 1, pass@k = 1 - ratio_k.
/// Element `k-1` holds pass@k. Empty when `n == 0` or `c > n`.
pub fn pass_at_k_all(n: u64, c: u64, max_k: u64) -> Vec<f64> {
    let mut out = Vec::new();
    fill_problem_curve(n, c, max_k, &mut out);
    out
}

fn fill_problem_curve(n: u64, c: u64, max_k: u64, out: &mut Vec<f64>) {
    out.clear();
    if c > n {
        return;
    }
    let last = n.min(max_k);
    out.reserve(last as usize);
    let failures = n - c;
    let mut ratio = 1.0f64;
    for k in 1..=last {
        if k > failures {
            ratio = 0.0;
        } else {
            ratio *= (failures - k + 1) as f64 / (n - k + 1) as f64;
        }
        // At k = 1 store c/n exactly rather than 1 - (n-c)/n, which rounds.
        let value = if k == 1 {
            c as f64 / n as f64
        } else {
            1.0 - ratio
        };
        out.push(value.clamp(0.0, 1.0));
    }
}

/// The k values asked for, cleaned: zeros dropped, sorted ascending, duplicates removed.
fn clean_ks(ks: &[u64]) -> Vec<u64> {
    let mut ks: Vec<u64> = ks.iter().copied().filter(|&k| k > 0).collect();
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// Per-problem pass@k at each of the (cleaned) ks; `None` where the problem has n < k.
/// Computed with one incremental pass per problem.
fn per_problem_values(problems: &[ProblemCounts], ks: &[u64]) -> Vec<Vec<Option<f64>>> {
    let max_k = ks.last().copied().unwrap_or(0);
    let mut scratch = Vec::new();
    problems
        .iter()
        .map(|p| {
            fill_problem_curve(p.n, p.c, max_k, &mut scratch);
            ks.iter()
                .map(|&k| scratch.get((k - 1) as usize).copied())
                .collect()
        })
        .collect()
}

/// The pass@k curve averaged over problems (eq. 2, item 1).
///
/// `ks` is cleaned first (k = 0 dropped, sorted, deduplicated). A problem counts at k only when
/// n >= k (and c <= n); a k at which no problem counts is omitted from the result, so every
/// returned point has `problems >= 1` and a finite `pass_at_k` in [0, 1].
pub fn pass_at_k_curve(problems: &[ProblemCounts], ks: &[u64]) -> Vec<CurvePoint> {
    let ks = clean_ks(ks);
    let max_k = ks.last().copied().unwrap_or(0);
    let mut sums = vec![0.0f64; ks.len()];
    let mut counts = vec![0usize; ks.len()];
    let mut scratch = Vec::new();
    for p in problems {
        fill_problem_curve(p.n, p.c, max_k, &mut scratch);
        for (i, &k) in ks.iter().enumerate() {
            if let Some(&v) = scratch.get((k - 1) as usize) {
                sums[i] += v;
                counts[i] += 1;
            }
        }
    }
    ks.iter()
        .zip(sums.iter().zip(&counts))
        .filter(|(_, (_, &count))| count > 0)
        .map(|(&k, (&sum, &count))| CurvePoint {
            k,
            pass_at_k: (sum / count as f64).clamp(0.0, 1.0),
            problems: count,
        })
        .collect()
}

/// The default k grid: 1, 2, 4, ... (powers of two up to `max_n`), plus `max_n` itself.
/// Empty when `max_n == 0`.
pub fn default_ks(max_n: u64) -> Vec<u64> {
    let mut ks = Vec::new();
    let mut k = 1u64;
    while k <= max_n {
        ks.push(k);
        match k.checked_mul(2) {
            Some(next) => k = next,
            None => break,
        }
    }
    if max_n > 0 && ks.last() != Some(&max_n) {
        ks.push(max_n);
    }
    ks
}

/// Percentile bootstrap band of the averaged pass@k curve, resampling problems with replacement.
///
/// Deterministic: the same inputs and `seed` give the same band (SplitMix64). `level` is the
/// coverage, e.g. 0.95 gives the 2.5% and 97.5% percentiles (linear interpolation between order
/// statistics). At each k a resample's value is the mean over the drawn problems with n >= k;
/// a resample that drew no such problem has no value at that k and is left out there.
/// The band is widened, if needed, to contain the point estimate of [`pass_at_k_curve`]
/// (a very skewed bootstrap distribution can otherwise exclude it). Points follow the curve:
/// one per k of `pass_at_k_curve(problems, ks)`; empty when `resamples == 0`.
pub fn bootstrap_band(
    problems: &[ProblemCounts],
    ks: &[u64],
    resamples: usize,
    seed: u64,
    level: f64,
) -> Vec<BandPoint> {
    let curve = pass_at_k_curve(problems, ks);
    if resamples == 0 || curve.is_empty() {
        return Vec::new();
    }
    let curve_ks: Vec<u64> = curve.iter().map(|p| p.k).collect();
    // Precompute every problem's value at every k once; resampling then only adds numbers.
    let values = per_problem_values(problems, &curve_ks);
    let mut rng = SplitMix64::new(seed);
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); curve_ks.len()];
    let mut sums = vec![0.0f64; curve_ks.len()];
    let mut counts = vec![0usize; curve_ks.len()];
    let problem_count = problems.len() as u64;
    for _ in 0..resamples {
        sums.iter_mut().for_each(|s| *s = 0.0);
        counts.iter_mut().for_each(|c| *c = 0);
        for _ in 0..problem_count {
            let row = &values[rng.below(problem_count) as usize];
            for (i, v) in row.iter().enumerate() {
                if let Some(v) = v {
                    sums[i] += v;
                    counts[i] += 1;
                }
            }
        }
        for i in 0..curve_ks.len() {
            if counts[i] > 0 {
                draws[i].push(sums[i] / counts[i] as f64);
            }
        }
    }
    let level = if level.is_finite() {
        level.clamp(0.0, 1.0)
    } else {
        0.95
    };
    let tail = (1.0 - level) / 2.0;
    curve
        .iter()
        .zip(draws.iter_mut())
        .map(|(point, samples)| {
            samples.sort_by(|a, b| a.total_cmp(b));
            let (lower, upper) = if samples.is_empty() {
                (point.pass_at_k, point.pass_at_k)
            } else {
                (quantile(samples, tail), quantile(samples, 1.0 - tail))
            };
            BandPoint {
                k: point.k,
                lower: lower.min(point.pass_at_k).clamp(0.0, 1.0),
                upper: upper.max(point.pass_at_k).clamp(0.0, 1.0),
            }
        })
        .collect()
}

/// Quantile of sorted, non-empty data with linear interpolation between order statistics.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Differences smaller than this count as a tie (floating-point noise, not a lead).
pub const CROSSOVER_TIE_TOLERANCE: f64 = 1e-12;

/// The k values at which curve `a` and curve `b` cross (item 6: where an RL model's curve is
/// overtaken by its parent's).
///
/// Only the ks present in both curves are compared, in ascending order. The sign of a - b is
/// taken with ties (|a - b| <= [`CROSSOVER_TIE_TOLERANCE`]) as 0. A crossover is recorded at a k
/// whose sign is strictly opposite to the last non-zero sign before it; so touching (+, 0, +) is
/// not a crossover, and passing through a tie (+, 0, -) reports the first k where the new sign
/// holds. Leading ties are not crossovers.
pub fn crossover_ks(curve_a: &[CurvePoint], curve_b: &[CurvePoint]) -> Vec<u64> {
    let mut b_sorted: Vec<&CurvePoint> = curve_b.iter().collect();
    b_sorted.sort_by_key(|p| p.k);
    let mut a_sorted: Vec<&CurvePoint> = curve_a.iter().collect();
    a_sorted.sort_by_key(|p| p.k);
    let mut last_sign = 0i8;
    let mut out = Vec::new();
    for a in a_sorted {
        let Ok(j) = b_sorted.binary_search_by_key(&a.k, |p| p.k) else {
            continue;
        };
        let d = a.pass_at_k - b_sorted[j].pass_at_k;
        let sign = if d > CROSSOVER_TIE_TOLERANCE {
            1
        } else if d < -CROSSOVER_TIE_TOLERANCE {
            -1
        } else {
            0
        };
        if sign != 0 {
            if last_sign != 0 && sign != last_sign {
                out.push(a.k);
            }
            last_sign = sign;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Exact rational reference for small n: 1 - C(n-c,k)/C(n,k) with u128 binomials.
    fn binom(n: u64, k: u64) -> u128 {
        if k > n {
            return 0;
        }
        let k = k.min(n - k);
        let mut r: u128 = 1;
        for i in 0..k {
            r = r * (n - i) as u128 / (i + 1) as u128;
        }
        r
    }

    fn reference(n: u64, c: u64, k: u64) -> f64 {
        1.0 - binom(n - c, k) as f64 / binom(n, k) as f64
    }

    #[test]
    fn small_cases_match_binomial_definition() {
        assert_eq!(pass_at_k(10, 3, 1), Some(0.3));
        // 1 - C(7,2)/C(10,2) = 1 - 21/45
        assert!((pass_at_k(10, 3, 2).unwrap() - (1.0 - 21.0 / 45.0)).abs() < 1e-15);
        assert_eq!(pass_at_k(10, 3, 8), Some(1.0)); // n - c = 7 < 8
        assert_eq!(pass_at_k(10, 0, 10), Some(0.0));
        assert_eq!(pass_at_k(10, 10, 1), Some(1.0));
    }

    #[test]
    fn undefined_cases_are_none() {
        assert_eq!(pass_at_k(4, 1, 5), None);
        assert_eq!(pass_at_k(4, 1, 0), None);
        assert_eq!(pass_at_k(4, 5, 1), None);
        assert_eq!(pass_at_k(0, 0, 1), None);
        assert!(pass_at_k_all(3, 4, 3).is_empty());
    }

    #[test]
    fn large_n_is_finite_and_stable() {
        // n = 5000 would overflow any binomial; the product stays finite.
        for &c in &[0u64, 1, 2, 50, 2500, 4999, 5000] {
            let curve = pass_at_k_all(5000, c, 5000);
            assert_eq!(curve.len(), 5000);
            assert!(curve
                .iter()
                .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
            if c > 0 {
                assert!((curve[0] - c as f64 / 5000.0).abs() < 1e-12);
            }
        }
        // One correct out of 640: pass@k = k/n exactly.
        let v = pass_at_k(640, 1, 320).unwrap();
        assert!((v - 0.5).abs() < 1e-12, "{v}");
    }

    #[test]
    fn curve_excludes_problems_with_too_few_samples() {
        let problems = [ProblemCounts { n: 4, c: 2 }, ProblemCounts { n: 2, c: 0 }];
        let curve = pass_at_k_curve(&problems, &[1, 2, 4, 8, 0, 2]);
        assert_eq!(curve.len(), 3); // k = 8 has no problem, 0 dropped, 2 deduplicated
        assert_eq!(
            curve[0],
            CurvePoint {
                k: 1,
                pass_at_k: 0.25,
                problems: 2
            }
        );
        assert_eq!(curve[1].problems, 2);
        assert!((curve[1].pass_at_k - (1.0 - 1.0 / 6.0) / 2.0).abs() < 1e-15);
        assert_eq!(
            curve[2],
            CurvePoint {
                k: 4,
                pass_at_k: 1.0,
                problems: 1
            }
        );
    }

    #[test]
    fn default_ks_grid() {
        assert_eq!(default_ks(0), Vec::<u64>::new());
        assert_eq!(default_ks(1), vec![1]);
        assert_eq!(default_ks(8), vec![1, 2, 4, 8]);
        assert_eq!(
            default_ks(640),
            vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 640]
        );
    }

    #[test]
    fn crossover_rules() {
        let mk = |vals: &[f64]| -> Vec<CurvePoint> {
            vals.iter()
                .enumerate()
                .map(|(i, &v)| CurvePoint {
                    k: 1 << i,
                    pass_at_k: v,
                    problems: 1,
                })
                .collect()
        };
        let b = mk(&[0.5, 0.5, 0.5, 0.5, 0.5]);
        assert_eq!(
            crossover_ks(&mk(&[0.6, 0.4, 0.4, 0.6, 0.6]), &b),
            vec![2, 8]
        );
        assert_eq!(
            crossover_ks(&mk(&[0.6, 0.5, 0.6, 0.6, 0.6]), &b),
            Vec::<u64>::new()
        ); // touch
        assert_eq!(crossover_ks(&mk(&[0.6, 0.5, 0.4, 0.4, 0.4]), &b), vec![4]); // through a tie
        assert_eq!(crossover_ks(&mk(&[0.5, 0.5, 0.4, 0.6, 0.6]), &b), vec![8]); // leading ties
                                                                                // ks missing from one curve are not compared
        let partial = vec![
            CurvePoint {
                k: 1,
                pass_at_k: 0.6,
                problems: 1,
            },
            CurvePoint {
                k: 16,
                pass_at_k: 0.4,
                problems: 1,
            },
        ];
        assert_eq!(crossover_ks(&partial, &b), vec![16]);
    }

    #[test]
    fn bootstrap_band_is_deterministic_and_brackets_the_estimate() {
        let problems: Vec<ProblemCounts> = (0..40)
            .map(|i| ProblemCounts {
                n: 16,
                c: (i * 7) % 17,
            })
            .collect();
        let ks = default_ks(16);
        let a = bootstrap_band(&problems, &ks, 300, 42, 0.95);
        let b = bootstrap_band(&problems, &ks, 300, 42, 0.95);
        let c = bootstrap_band(&problems, &ks, 300, 43, 0.95);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let curve = pass_at_k_curve(&problems, &ks);
        for (band, point) in a.iter().zip(&curve) {
            assert_eq!(band.k, point.k);
            assert!(band.lower <= point.pass_at_k && point.pass_at_k <= band.upper);
            assert!(
                band.upper - band.lower > 0.0,
                "non-degenerate data gives a non-empty band"
            );
        }
        // A narrower level gives a band no wider than the 95% one.
        let narrow = bootstrap_band(&problems, &ks, 300, 42, 0.5);
        for (n, w) in narrow.iter().zip(&a) {
            assert!(n.lower >= w.lower - 1e-15 && n.upper <= w.upper + 1e-15);
        }
        assert!(bootstrap_band(&problems, &ks, 0, 42, 0.95).is_empty());
    }

    fn counts() -> impl Strategy<Value = (u64, u64)> {
        (1u64..300).prop_flat_map(|n| (Just(n), 0..=n))
    }

    proptest! {
        #[test]
        fn prop_bounds_monotone_and_endpoints((n, c) in counts()) {
            let curve = pass_at_k_all(n, c, n);
            prop_assert_eq!(curve.len() as u64, n);
            prop_assert!((curve[0] - c as f64 / n as f64).abs() < 1e-12);
            for w in curve.windows(2) {
                prop_assert!(w[1] >= w[0] - 1e-12);
            }
            for (i, v) in curve.iter().enumerate() {
                let k = i as u64 + 1;
                prop_assert!((0.0..=1.0).contains(v));
                if n - c < k { prop_assert_eq!(*v, 1.0); }
                if c == 0 { prop_assert_eq!(*v, 0.0); }
            }
        }

        #[test]
        fn prop_curve_equals_per_k_and_reference((n, c) in counts(), k in 1u64..300) {
            let single = pass_at_k(n, c, k);
            if k > n {
                prop_assert!(single.is_none());
            } else {
                let single = single.unwrap();
                let from_curve = pass_at_k_all(n, c, n)[(k - 1) as usize];
                prop_assert!((single - from_curve).abs() < 1e-9, "{} vs {}", single, from_curve);
                if n <= 60 {
                    prop_assert!((single - reference(n, c, k)).abs() < 1e-9);
                }
            }
        }

        #[test]
        fn prop_averaged_curve_is_mean_of_per_problem(
            problems in proptest::collection::vec(counts(), 1..20),
            ks in proptest::collection::vec(1u64..400, 1..8),
        ) {
            let problems: Vec<ProblemCounts> = problems.into_iter().map(|(n, c)| ProblemCounts { n, c }).collect();
            let curve = pass_at_k_curve(&problems, &ks);
            for point in &curve {
                let vals: Vec<f64> = problems.iter().filter_map(|p| pass_at_k(p.n, p.c, point.k)).collect();
                prop_assert_eq!(vals.len(), point.problems);
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                prop_assert!((mean - point.pass_at_k).abs() < 1e-9);
            }
            // every requested k with at least one eligible problem is present
            let max_n = problems.iter().map(|p| p.n).max().unwrap();
            let expected = clean_ks(&ks).into_iter().filter(|&k| k <= max_n).count();
            prop_assert_eq!(curve.len(), expected);
        }

        #[test]
        fn prop_band_contains_estimate_and_is_reproducible(
            problems in proptest::collection::vec(counts(), 1..15),
            seed in any::<u64>(),
        ) {
            let problems: Vec<ProblemCounts> = problems.into_iter().map(|(n, c)| ProblemCounts { n, c }).collect();
            let ks = default_ks(problems.iter().map(|p| p.n).max().unwrap());
            let band = bootstrap_band(&problems, &ks, 50, seed, 0.9);
            prop_assert_eq!(&band, &bootstrap_band(&problems, &ks, 50, seed, 0.9));
            let curve = pass_at_k_curve(&problems, &ks);
            prop_assert_eq!(band.len(), curve.len());
            for (b, p) in band.iter().zip(&curve) {
                prop_assert!(b.lower <= p.pass_at_k && p.pass_at_k <= b.upper);
                prop_assert!(0.0 <= b.lower && b.upper <= 1.0);
            }
        }

        #[test]
        fn prop_crossovers_alternate(vals in proptest::collection::vec(0.0f64..1.0, 1..12)) {
            let a: Vec<CurvePoint> = vals.iter().enumerate().map(|(i, &v)| CurvePoint { k: i as u64 + 1, pass_at_k: v, problems: 1 }).collect();
            let b: Vec<CurvePoint> = a.iter().map(|p| CurvePoint { pass_at_k: 0.5, ..*p }).collect();
            let ks = crossover_ks(&a, &b);
            // at each reported k, the sign differs from the sign at the previous non-tie point
            for &k in &ks {
                let here = vals[(k - 1) as usize] - 0.5;
                let before = vals[..(k - 1) as usize].iter().rev().map(|v| v - 0.5).find(|d| d.abs() > CROSSOVER_TIE_TOLERANCE).unwrap();
                prop_assert!(here * before < 0.0);
            }
            // symmetric in its arguments
            prop_assert_eq!(ks, crossover_ks(&b, &a));
        }
    }
}

/// A run whose problems do not all have the same number of samples (issue 27): pass@k at k is a
/// mean over the problems with n ≥ k (eq. 2 is undefined for k > n), so past the smallest n the
/// curve is over fewer problems, and the unsolvable view stops at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnevenSamples {
    /// The most common sample count (the larger on a tie).
    pub usual_n: u64,
    /// Problems whose count differs from it.
    pub differing: u64,
    pub problems: u64,
    /// The first few differing problems (in the given order) with their n.
    pub examples: Vec<(String, u64)>,
    pub min_n: u64,
    /// The largest sample count, and how many problems have it (pass@k at k = `max_n` is over
    /// those only).
    #[serde(default)]
    pub max_n: u64,
    #[serde(default)]
    pub at_max: u64,
}

/// Differing problems [`uneven_samples`] names at most.
pub const UNEVEN_EXAMPLES: usize = 10;

/// `None` when every problem has the same n (or there is none).
pub fn uneven_samples<'a>(
    problems: impl IntoIterator<Item = (&'a str, u64)>,
) -> Option<UnevenSamples> {
    let problems: Vec<(&str, u64)> = problems.into_iter().collect();
    let mut counts: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for (_, n) in &problems {
        *counts.entry(*n).or_default() += 1;
    }
    if counts.len() <= 1 {
        return None;
    }
    let usual_n = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
        .map(|(&n, _)| n)?;
    let differing: Vec<(String, u64)> = problems
        .iter()
        .filter(|(_, n)| *n != usual_n)
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
    Some(UnevenSamples {
        usual_n,
        differing: differing.len() as u64,
        problems: problems.len() as u64,
        min_n: *counts.keys().next()?,
        max_n: *counts.keys().next_back()?,
        at_max: *counts.values().next_back()?,
        examples: differing.into_iter().take(UNEVEN_EXAMPLES).collect(),
    })
}

impl UnevenSamples {
    /// One sentence for a report: "1 of 40 problems has not the usual 128 samples: a/7 (80)".
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .examples
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        let more = self.differing.saturating_sub(self.examples.len() as u64);
        format!(
            "{} of {} problems {} not the usual {} samples: {}{}; pass@k at k > {} averages over fewer problems",
            self.differing,
            self.problems,
            if self.differing == 1 { "has" } else { "have" },
            self.usual_n,
            names.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() },
            self.min_n,
        )
    }
}

#[cfg(test)]
mod uneven_tests {
    use super::*;

    #[test]
    fn uneven_names_the_odd_problems() {
        assert_eq!(uneven_samples([("a", 4), ("b", 4)]), None);
        let u = uneven_samples([("a", 128), ("b", 80), ("c", 128)]).unwrap();
        assert_eq!((u.usual_n, u.differing, u.min_n), (128, 1, 80));
        assert_eq!((u.max_n, u.at_max), (128, 2));
        assert_eq!(u.examples, vec![("b".to_string(), 80)]);
        assert!(u
            .describe()
            .starts_with("1 of 3 problems has not the usual 128 samples: b (80)"));
        let u = uneven_samples([("a", 8), ("b", 5), ("c", 5), ("d", 5)]).unwrap();
        assert_eq!((u.usual_n, u.min_n, u.max_n, u.at_max), (5, 5, 8, 1));
        // A tie takes the larger n.
        assert_eq!(uneven_samples([("a", 2), ("b", 3)]).unwrap().usual_n, 3);
    }
}
