//! Training dynamics (paper-notes items 7, 8): the entropy-reward law and the rising -> plateau
//! transition.
//!
//! # Entropy-reward law (sec. 3.1)
//! `R = -a * exp(H) + b` with `a, b > 0`. It is linear in `x = exp(H)`: `R = c x + b` with
//! `c = -a`, so ordinary least squares gives the closed form `c = Sxy / Sxx`,
//! `b = mean(R) - c mean(x)`. We fit without constraints and then *report* whether the law holds
//! (`a > 0` and `b > 0`); we never clamp a coefficient, because a clamped fit is not a least-squares
//! fit of anything and would hide that the data disagree with the law.
//!
//! # Transition detection (sec. 3.2.2)
//! A continuous two-segment ("hinge") least-squares fit of the metric (accuracy, usually) over
//! steps: `y = c + s1 * min(x - tau, 0) + s2 * max(x - tau, 0)`, i.e. a line of slope `s1` up to
//! `tau` and of slope `s2` after it, joined at `tau`. Every observed step with at least
//! `min_segment` points on each side (counting the breakpoint on both) is tried as `tau`; the one
//! with the smallest sum of squared errors wins, the earliest on a tie. The result also carries
//! the SSE of a single straight line so a caller can see whether two segments are warranted, and
//! `s2 / s1` (near 0 for a plateau after a rise).

/// Why a fit could not be computed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitError {
    /// Not enough points for the model (`needed` is the minimum).
    TooFewPoints { got: usize, needed: usize },
    /// A coordinate is NaN or infinite (or exp(H) overflows).
    NonFinite { index: usize },
    /// All x values are equal: the slope is undetermined.
    NoSpread,
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooFewPoints { got, needed } => {
                write!(f, "{got} points, at least {needed} needed")
            }
            Self::NonFinite { index } => write!(f, "non-finite value at point {index}"),
            Self::NoSpread => write!(f, "all x values are equal"),
        }
    }
}

impl std::error::Error for FitError {}

/// Whether a fitted `R = -a exp(H) + b` satisfies the law's sign constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LawStatus {
    /// a > 0 and b > 0.
    Holds,
    /// a <= 0: reward does not fall as entropy rises, so the law does not describe these data.
    NonPositiveA,
    /// a > 0 but b <= 0.
    NonPositiveB,
    /// a <= 0 and b <= 0.
    NonPositiveBoth,
}

/// Least-squares fit of the entropy-reward law (item 7).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EntropyRewardFit {
    pub a: f64,
    pub b: f64,
    /// `b - a`: the predicted reward at H = 0, the paper's ceiling.
    pub ceiling: f64,
    /// Coefficient of determination; `None` when every reward is the same (no variance to
    /// explain).
    pub r_squared: Option<f64>,
    pub points: usize,
    pub status: LawStatus,
}

impl EntropyRewardFit {
    /// Predicted reward at entropy `h`.
    pub fn predict(&self, h: f64) -> f64 {
        -self.a * h.exp() + self.b
    }
}

/// Fits `R = -a exp(H) + b` to `(entropy, reward)` points by least squares (closed form, see
/// the module doc). Needs two points with different entropies.
pub fn fit_entropy_reward(points: &[(f64, f64)]) -> Result<EntropyRewardFit, FitError> {
    if points.len() < 2 {
        return Err(FitError::TooFewPoints {
            got: points.len(),
            needed: 2,
        });
    }
    let mut xs = Vec::with_capacity(points.len());
    for (index, &(h, r)) in points.iter().enumerate() {
        let x = h.exp();
        if !x.is_finite() || !r.is_finite() {
            return Err(FitError::NonFinite { index });
        }
        xs.push(x);
    }
    let n = points.len() as f64;
    let mean_x = xs.iter().sum::<f64>() / n;
    let mean_r = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for (x, &(_, r)) in xs.iter().zip(points) {
        let (dx, dr) = (x - mean_x, r - mean_r);
        sxx += dx * dx;
        sxy += dx * dr;
        syy += dr * dr;
    }
    if sxx <= 0.0 {
        return Err(FitError::NoSpread);
    }
    let slope = sxy / sxx;
    let b = mean_r - slope * mean_x;
    let a = -slope;
    let sse: f64 = xs
        .iter()
        .zip(points)
        .map(|(x, &(_, r))| (r - (slope * x + b)).powi(2))
        .sum();
    let r_squared = (syy > 0.0).then(|| 1.0 - sse / syy);
    let status = match (a > 0.0, b > 0.0) {
        (true, true) => LawStatus::Holds,
        (false, true) => LawStatus::NonPositiveA,
        (true, false) => LawStatus::NonPositiveB,
        (false, false) => LawStatus::NonPositiveBoth,
    };
    Ok(EntropyRewardFit {
        a,
        b,
        ceiling: b - a,
        r_squared,
        points: points.len(),
        status,
    })
}

/// The rising -> plateau transition found by the hinge fit (item 8).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransitionFit {
    /// The breakpoint step `tau` (one of the observed steps).
    pub step: f64,
    /// Index of the breakpoint among the points sorted by step.
    pub index: usize,
    /// Fitted value at the breakpoint.
    pub value_at_step: f64,
    /// Slope before and after the breakpoint (per unit of step).
    pub slope_before: f64,
    pub slope_after: f64,
    /// `slope_after / slope_before` (`None` when slope_before is 0): near 0 means a plateau.
    pub slope_ratio: Option<f64>,
    /// Sum of squared errors of the hinge and of one straight line through all points.
    pub sse: f64,
    pub sse_single_line: f64,
}

/// Default minimum number of points on each side of a breakpoint.
pub const DEFAULT_MIN_SEGMENT: usize = 3;

/// Solves a 3x3 linear system by Gaussian elimination with partial pivoting; `None` if singular.
fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> Option<[f64; 3]> {
    let scale = m.iter().flatten().fold(0.0f64, |acc, x| acc.max(x.abs()));
    if scale == 0.0 {
        return None;
    }
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))?;
        if m[pivot][col].abs() <= 1e-12 * scale {
            return None;
        }
        m.swap(col, pivot);
        v.swap(col, pivot);
        for row in col + 1..3 {
            let f = m[row][col] / m[col][col];
            let pivot_row = m[col];
            for (cell, p) in m[row].iter_mut().zip(pivot_row).skip(col) {
                *cell -= f * p;
            }
            v[row] -= f * v[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| m[row][k] * x[k]).sum();
        x[row] = (v[row] - s) / m[row][row];
    }
    Some(x)
}

/// SSE of the least-squares line through the points.
fn single_line_sse(pts: &[(f64, f64)]) -> f64 {
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    pts.iter()
        .map(|p| (p.1 - my - slope * (p.0 - mx)).powi(2))
        .sum()
}

/// Finds the rising -> plateau transition of `(step, value)` points by the hinge fit of the
/// module doc. Points need not be sorted. `min_segment` (at least 2) points must lie on each
/// side of the breakpoint, the breakpoint counting on both sides.
pub fn detect_transition(
    points: &[(f64, f64)],
    min_segment: usize,
) -> Result<TransitionFit, FitError> {
    let min_segment = min_segment.max(2);
    let needed = 2 * min_segment - 1;
    if points.len() < needed {
        return Err(FitError::TooFewPoints {
            got: points.len(),
            needed,
        });
    }
    if let Some(index) = points
        .iter()
        .position(|p| !p.0.is_finite() || !p.1.is_finite())
    {
        return Err(FitError::NonFinite { index });
    }
    let mut pts = points.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    if pts[0].0 == pts[pts.len() - 1].0 {
        return Err(FitError::NoSpread);
    }
    let mut best: Option<(f64, usize, [f64; 3])> = None;
    for k in (min_segment - 1)..=(pts.len() - min_segment) {
        let tau = pts[k].0;
        // Normal equations for the regressors (1, u, v), u = min(x - tau, 0), v = max(x - tau, 0).
        let mut m = [[0.0; 3]; 3];
        let mut rhs = [0.0; 3];
        for &(x, y) in &pts {
            let r = [1.0, (x - tau).min(0.0), (x - tau).max(0.0)];
            for i in 0..3 {
                for j in 0..3 {
                    m[i][j] += r[i] * r[j];
                }
                rhs[i] += r[i] * y;
            }
        }
        let Some(beta) = solve3(m, rhs) else { continue };
        let sse: f64 = pts
            .iter()
            .map(|&(x, y)| {
                (y - beta[0] - beta[1] * (x - tau).min(0.0) - beta[2] * (x - tau).max(0.0)).powi(2)
            })
            .sum();
        if best.as_ref().is_none_or(|(s, _, _)| sse < *s) {
            best = Some((sse, k, beta));
        }
    }
    // Every candidate is singular only when one side holds a single distinct step.
    let (sse, index, beta) = best.ok_or(FitError::NoSpread)?;
    Ok(TransitionFit {
        step: pts[index].0,
        index,
        value_at_step: beta[0],
        slope_before: beta[1],
        slope_after: beta[2],
        slope_ratio: (beta[1] != 0.0).then(|| beta[2] / beta[1]),
        sse,
        sse_single_line: single_line_sse(&pts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use proptest::prelude::*;

    #[test]
    fn law_fit_recovers_known_coefficients() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| {
                let h = 0.1 + 0.08 * i as f64;
                (h, -0.2 * h.exp() + 0.9)
            })
            .collect();
        let fit = fit_entropy_reward(&pts).unwrap();
        assert!((fit.a - 0.2).abs() < 1e-12 && (fit.b - 0.9).abs() < 1e-12);
        assert!((fit.ceiling - 0.7).abs() < 1e-12);
        assert!((fit.r_squared.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(fit.status, LawStatus::Holds);
        assert!((fit.predict(0.0) - 0.7).abs() < 1e-12);
    }

    #[test]
    fn law_violations_are_reported_not_clamped() {
        // Reward rising with entropy: a < 0.
        let pts = [(0.1, 0.5), (0.5, 0.55), (0.9, 0.6)];
        let fit = fit_entropy_reward(&pts).unwrap();
        assert!(fit.a < 0.0);
        assert_eq!(fit.status, LawStatus::NonPositiveA);
        // A steep rise extrapolates below zero at exp(H) = 0 as well.
        let fit = fit_entropy_reward(&[(0.1, 0.2), (0.5, 0.4), (0.9, 0.7)]).unwrap();
        assert_eq!(fit.status, LawStatus::NonPositiveBoth);
        // Flat rewards: slope 0, so a = 0 and no R^2.
        let fit = fit_entropy_reward(&[(0.1, 0.5), (0.7, 0.5)]).unwrap();
        assert_eq!(fit.a, 0.0);
        assert_eq!(fit.r_squared, None);
        assert_eq!(fit.status, LawStatus::NonPositiveA);
        // Negative rewards everywhere with a > 0: b <= 0.
        let pts: Vec<(f64, f64)> = [0.1, 0.5, 0.9]
            .iter()
            .map(|&h: &f64| (h, -h.exp() - 1.0))
            .collect();
        assert_eq!(
            fit_entropy_reward(&pts).unwrap().status,
            LawStatus::NonPositiveB
        );
    }

    #[test]
    fn law_fit_errors() {
        assert_eq!(
            fit_entropy_reward(&[(0.1, 0.5)]),
            Err(FitError::TooFewPoints { got: 1, needed: 2 })
        );
        assert_eq!(
            fit_entropy_reward(&[(0.3, 0.5), (0.3, 0.6)]),
            Err(FitError::NoSpread)
        );
        assert_eq!(
            fit_entropy_reward(&[(0.3, f64::NAN), (0.4, 0.6)]),
            Err(FitError::NonFinite { index: 0 })
        );
        assert_eq!(
            fit_entropy_reward(&[(0.3, 0.5), (1000.0, 0.6)]),
            Err(FitError::NonFinite { index: 1 })
        );
    }

    /// Accuracy rising 0.002 per step to step 200, then 0.0001 per step, with noise of sd 0.01,
    /// logged every 10 steps for 1000 steps, as in the paper's fig. 3a.
    #[test]
    fn transition_found_near_step_200_in_noisy_curve() {
        let mut rng = SplitMix64::new(2024);
        let pts: Vec<(f64, f64)> = (0..=100)
            .map(|i| {
                let s = 10.0 * i as f64;
                let clean = if s < 200.0 {
                    0.3 + 0.002 * s
                } else {
                    0.7 + 0.0001 * (s - 200.0)
                };
                (s, clean + 0.01 * rng.normal())
            })
            .collect();
        let t = detect_transition(&pts, DEFAULT_MIN_SEGMENT).unwrap();
        assert!((t.step - 200.0).abs() <= 20.0, "{t:?}");
        assert!((t.slope_before - 0.002).abs() < 0.0003, "{t:?}");
        assert!(t.slope_after.abs() < 0.0003, "{t:?}");
        assert!(t.slope_ratio.unwrap() < 0.2);
        assert!(t.sse < 0.5 * t.sse_single_line);
    }

    #[test]
    fn transition_errors_and_unsorted_input() {
        assert_eq!(
            detect_transition(&[(0.0, 1.0); 4], 3),
            Err(FitError::TooFewPoints { got: 4, needed: 5 })
        );
        assert_eq!(
            detect_transition(&[(1.0, 1.0); 5], 3),
            Err(FitError::NoSpread)
        );
        assert!(matches!(
            detect_transition(&[(0.0, f64::NAN); 5], 3),
            Err(FitError::NonFinite { .. })
        ));
        // Reversed input gives the same answer as sorted input.
        let pts: Vec<(f64, f64)> = (0..12).map(|i| (i as f64, (i.min(5)) as f64)).collect();
        let mut rev = pts.clone();
        rev.reverse();
        let (a, b) = (
            detect_transition(&pts, 3).unwrap(),
            detect_transition(&rev, 3).unwrap(),
        );
        assert_eq!(a.step, 5.0);
        assert_eq!(a.step, b.step);
    }

    proptest! {
        #[test]
        fn law_fit_recovers_noiseless_a_b(a in 0.01f64..5.0, b in 0.01f64..10.0, hs in prop::collection::btree_set(0u32..300, 2..30)) {
            let pts: Vec<(f64, f64)> = hs.iter().map(|&h| { let h = h as f64 / 100.0; (h, -a * h.exp() + b) }).collect();
            let fit = fit_entropy_reward(&pts).unwrap();
            prop_assert!((fit.a - a).abs() <= 1e-7 * (1.0 + a), "{} vs {}", fit.a, a);
            prop_assert!((fit.b - b).abs() <= 1e-7 * (1.0 + b));
            prop_assert_eq!(fit.status, LawStatus::Holds);
            prop_assert!(fit.r_squared.unwrap() > 1.0 - 1e-9);
        }

        #[test]
        fn r_squared_at_most_one(pts in prop::collection::vec((0.0f64..3.0, -1.0f64..1.0), 3..40)) {
            if let Ok(fit) = fit_entropy_reward(&pts) {
                if let Some(r2) = fit.r_squared { prop_assert!((-1e-9..=1.0 + 1e-9).contains(&r2)); }
            }
        }

        #[test]
        fn noiseless_hinge_recovers_breakpoint(n in 10usize..80, frac in 0.2f64..0.8, s1 in 0.5f64..3.0, s2 in -0.2f64..0.2) {
            let k = ((n as f64 * frac) as usize).clamp(3, n - 4);
            let tau = k as f64 * 5.0;
            let pts: Vec<(f64, f64)> = (0..n).map(|i| {
                let x = i as f64 * 5.0;
                (x, 1.0 + s1 * (x - tau).min(0.0) + s2 * (x - tau).max(0.0))
            }).collect();
            let t = detect_transition(&pts, 3).unwrap();
            prop_assert_eq!(t.step, tau);
            prop_assert!((t.slope_before - s1).abs() < 1e-6);
            prop_assert!((t.slope_after - s2).abs() < 1e-6);
            prop_assert!(t.sse < 1e-12);
        }
    }
}
