//! Problem-by-problem comparison of two runs (issue 27): each problem's change in solve rate,
//! the paired counts (improved / regressed / unchanged at a threshold) and a paired test of the
//! difference in pass@1 over problems.
//!
//! Not a formula of the paper: the paper compares models by mean pass@k (eq. 2); here the unit is
//! the problem, so two runs over the same problems form paired observations
//! d_i = c_B,i / n_B,i − c_A,i / n_A,i (the per-problem pass@1 of eq. 2 with k = 1). The test is
//! the Wilcoxon signed-rank test (Wilcoxon 1945) — chosen over a paired t-test because solve-rate
//! differences are bounded, lumpy and far from normal — with Wilcoxon's handling of zeros (dropped)
//! and mid-ranks for ties: the exact null distribution (conditional on the tie pattern) for up to
//! [`EXACT_MAX_N`] non-zero differences, the normal approximation with tie and continuity
//! correction beyond.

use serde::{Deserialize, Serialize};

/// Up to this many non-zero differences the p-value is exact (a dynamic programme over the
/// doubled ranks, O(n³) steps: 10⁶ at n = 100).
pub const EXACT_MAX_N: usize = 100;

/// How one problem's solve rate moved from run A to run B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Improved,
    Regressed,
    Unchanged,
}

impl Change {
    /// `delta` > `threshold`: improved; < −`threshold`: regressed; else unchanged. With the
    /// default threshold 0 any change counts.
    pub fn of(delta: f64, threshold: f64) -> Change {
        let t = threshold.abs();
        if delta > t {
            Change::Improved
        } else if delta < -t {
            Change::Regressed
        } else {
            Change::Unchanged
        }
    }
    pub fn parse(s: &str) -> Option<Change> {
        match s {
            "improved" => Some(Change::Improved),
            "regressed" => Some(Change::Regressed),
            "unchanged" => Some(Change::Unchanged),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Improved => "improved",
            Change::Regressed => "regressed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// Per-problem pass@1 difference B − A (eq. 2 at k = 1 for each run); `None` when either run
/// has no sample of the problem.
pub fn solve_rate_delta(a: (u64, u64), b: (u64, u64)) -> Option<f64> {
    let ((ca, na), (cb, nb)) = (a, b);
    if na == 0 || nb == 0 {
        return None;
    }
    Some(cb as f64 / nb as f64 - ca as f64 / na as f64)
}

/// The paired comparison of two runs over the problems both have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedSummary {
    pub improved: u64,
    pub regressed: u64,
    pub unchanged: u64,
    /// The threshold on |Δ| the counts use.
    pub threshold: f64,
    /// Problems both runs have (the n behind the counts and the test).
    pub problems: u64,
    /// Mean of Δ over those problems: pass@1(B) − pass@1(A) on the common problems.
    pub mean_delta: Option<f64>,
    pub test: Option<SignedRankTest>,
}

/// Counts and test over the per-problem differences `deltas` (B − A).
pub fn paired_summary(deltas: &[f64], threshold: f64) -> PairedSummary {
    let mut s = PairedSummary {
        improved: 0,
        regressed: 0,
        unchanged: 0,
        threshold: threshold.abs(),
        problems: deltas.len() as u64,
        mean_delta: None,
        test: signed_rank_test(deltas),
    };
    for &d in deltas {
        match Change::of(d, threshold) {
            Change::Improved => s.improved += 1,
            Change::Regressed => s.regressed += 1,
            Change::Unchanged => s.unchanged += 1,
        }
    }
    if !deltas.is_empty() {
        s.mean_delta = Some(deltas.iter().sum::<f64>() / deltas.len() as f64);
    }
    s
}

/// The Wilcoxon signed-rank test of "the differences are symmetric about 0", two-sided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedRankTest {
    /// Non-zero differences ranked (the test's n).
    pub n: u64,
    /// Differences equal to zero, dropped before ranking.
    pub zeros: u64,
    /// Sum of the ranks of the positive differences (B better).
    pub w_plus: f64,
    /// Sum of the ranks of the negative differences (A better).
    pub w_minus: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// The p-value is exact (else the normal approximation).
    pub exact: bool,
}

/// Differences closer to zero than this are zero (rates are ratios of counts: a difference that
/// should be 0 may come out as 1e-17).
const ZERO: f64 = 1e-12;

/// Wilcoxon signed-rank test of `deltas`; `None` when every difference is zero (or there are
/// none): nothing to test.
pub fn signed_rank_test(deltas: &[f64]) -> Option<SignedRankTest> {
    let mut nonzero: Vec<f64> = deltas
        .iter()
        .copied()
        .filter(|d| d.is_finite() && d.abs() > ZERO)
        .collect();
    let zeros = (deltas.len() - nonzero.len()) as u64;
    if nonzero.is_empty() {
        return None;
    }
    nonzero.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Mid-ranks, doubled so they stay integers: a tie group over positions i..j (1-based) gets
    // rank (i + j) / 2, doubled i + j.
    let n = nonzero.len();
    let mut doubled = vec![0u64; n];
    let mut tie_term = 0.0; // Σ (t³ − t) over tie groups
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && (nonzero[j + 1].abs() - nonzero[i].abs()).abs() <= ZERO {
            j += 1;
        }
        for r in doubled.iter_mut().take(j + 1).skip(i) {
            *r = (i + 1 + j + 1) as u64;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let plus2: u64 = nonzero
        .iter()
        .zip(&doubled)
        .filter(|(d, _)| **d > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total2: u64 = doubled.iter().sum();
    let w_plus = plus2 as f64 / 2.0;
    let w_minus = (total2 - plus2) as f64 / 2.0;
    let (p_value, exact) = if n <= EXACT_MAX_N {
        (exact_two_sided(&doubled, plus2), true)
    } else {
        (normal_two_sided(n as f64, w_plus, tie_term), false)
    };
    Some(SignedRankTest {
        n: n as u64,
        zeros,
        w_plus,
        w_minus,
        p_value,
        exact,
    })
}

/// Exact two-sided p-value: under H0 each rank's sign is + or − with probability ½, so the
/// distribution of the (doubled) positive rank sum is the subset-sum count over the ranks / 2ⁿ;
/// p = P(|W⁺ − E| ≥ |w⁺ − E|).
fn exact_two_sided(doubled: &[u64], plus2: u64) -> f64 {
    let total: u64 = doubled.iter().sum();
    // Probabilities (not counts: 2¹⁰⁰ overflows) of each doubled sum.
    let mut dist = vec![0.0f64; total as usize + 1];
    dist[0] = 1.0;
    let mut reach = 0usize;
    for &r in doubled {
        let r = r as usize;
        for s in (0..=reach).rev() {
            let p = dist[s] * 0.5;
            dist[s] = p;
            dist[s + r] += p;
        }
        reach += r;
    }
    // |2·W⁺ − total| is the distance from the mean in doubled units.
    let observed = (2 * plus2 as i64 - total as i64).abs();
    let p: f64 = dist
        .iter()
        .enumerate()
        .filter(|(s, _)| (2 * *s as i64 - total as i64).abs() >= observed)
        .map(|(_, p)| p)
        .sum();
    p.min(1.0)
}

/// Normal approximation: E[W⁺] = n(n+1)/4, Var = n(n+1)(2n+1)/24 − Σ(t³−t)/48, with a continuity
/// correction of ½.
fn normal_two_sided(n: f64, w_plus: f64, tie_term: f64) -> f64 {
    let mean = n * (n + 1.0) / 4.0;
    let var = n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - tie_term / 48.0;
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((w_plus - mean).abs() - 0.5).max(0.0) / var.sqrt();
    (2.0 * normal_upper_tail(z)).min(1.0)
}

/// P(Z > z) for a standard normal, via erfc (W. J. Cody's rational approximation as in
/// Numerical Recipes' `erfcc`, relative error < 1.2e-7).
fn normal_upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398
                                    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    let erfc = if x >= 0.0 { y } else { 2.0 - y };
    erfc / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn change_follows_the_threshold() {
        assert_eq!(Change::of(0.01, 0.0), Change::Improved);
        assert_eq!(Change::of(-0.01, 0.0), Change::Regressed);
        assert_eq!(Change::of(0.0, 0.0), Change::Unchanged);
        assert_eq!(Change::of(-0.55, 0.5), Change::Regressed);
        assert_eq!(Change::of(0.3, 0.5), Change::Unchanged);
        assert_eq!(Change::parse("regressed"), Some(Change::Regressed));
        assert_eq!(Change::parse("x"), None);
    }

    #[test]
    fn delta_is_b_minus_a() {
        // 60 % → 5 %: Δ = −0.55.
        let d = solve_rate_delta((60, 100), (5, 100)).unwrap();
        assert!(close(d, -0.55, 1e-12));
        assert_eq!(solve_rate_delta((0, 0), (1, 2)), None);
    }

    /// Darwin's Zea mays differences (Fisher, *The Design of Experiments*), the textbook case:
    /// R's `wilcox.test(d, exact = TRUE)` gives V = 96, p-value = 0.04126 (2 × 676 / 2¹⁵).
    #[test]
    fn exact_p_value_matches_the_reference() {
        let d = [
            6.0, 8.0, 14.0, 16.0, 23.0, 24.0, 28.0, 29.0, 41.0, -48.0, 49.0, 56.0, 60.0, -67.0,
            75.0,
        ];
        let t = signed_rank_test(&d).unwrap();
        assert_eq!(t.n, 15);
        assert_eq!(t.w_plus, 96.0);
        assert_eq!(t.w_minus, 24.0);
        assert!(t.exact);
        assert!(close(t.p_value, 0.04126, 5e-5), "{}", t.p_value);
    }

    /// The exact distribution by brute force over all 2ⁿ sign patterns, with ties and zeros.
    #[test]
    fn exact_p_value_equals_enumeration_with_ties() {
        let d = [0.0, 0.25, -0.25, 0.5, 0.5, -0.75, 1.0, 0.125, -0.125, 0.125];
        let t = signed_rank_test(&d).unwrap();
        assert_eq!(t.zeros, 1);
        assert_eq!(t.n, 9);
        // Ranks by hand: |0.125|×3 → 2 each; |0.25|×2 → 4.5; |0.5|×2 → 6.5; 0.75 → 8; 1 → 9.
        let ranks = [4.5, 4.5, 6.5, 6.5, 8.0, 9.0, 2.0, 2.0, 2.0];
        let signs = [1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0];
        let w: f64 = ranks
            .iter()
            .zip(signs)
            .filter(|(_, s)| *s > 0.0)
            .map(|(r, _)| r)
            .sum();
        assert_eq!(t.w_plus, w);
        let total: f64 = ranks.iter().sum();
        let mut extreme = 0u32;
        for mask in 0u32..(1 << 9) {
            let wp: f64 = (0..9)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| ranks[i])
                .sum();
            if (wp - total / 2.0).abs() >= (w - total / 2.0).abs() - 1e-9 {
                extreme += 1;
            }
        }
        assert!(close(t.p_value, extreme as f64 / 512.0, 1e-12));
    }

    /// Past the exact range the normal approximation agrees with the exact value closely.
    #[test]
    fn normal_approximation_is_close_to_exact() {
        let d: Vec<f64> = (1..=60)
            .map(|i| {
                if i % 3 == 0 {
                    -(i as f64)
                } else {
                    i as f64 * 0.9
                }
            })
            .collect();
        let t = signed_rank_test(&d).unwrap();
        let approx = normal_two_sided(60.0, t.w_plus, 0.0);
        assert!(t.exact);
        assert!(close(approx, t.p_value, 0.01), "{approx} vs {}", t.p_value);
        // A large sample uses the approximation.
        let big: Vec<f64> = (1..=500)
            .map(|i| if i % 2 == 0 { 1.0 } else { -0.5 } * i as f64)
            .collect();
        let t = signed_rank_test(&big).unwrap();
        assert!(!t.exact);
        assert!(t.p_value > 0.0 && t.p_value < 1.0);
    }

    #[test]
    fn nothing_to_test_when_all_zero() {
        assert_eq!(signed_rank_test(&[0.0, 0.0]), None);
        let s = paired_summary(&[0.0, 0.5, -0.25, 0.0], 0.0);
        assert_eq!((s.improved, s.regressed, s.unchanged), (1, 1, 2));
        assert_eq!(s.problems, 4);
        assert!(close(s.mean_delta.unwrap(), 0.0625, 1e-12));
        assert_eq!(s.test.unwrap().n, 2);
    }
}
