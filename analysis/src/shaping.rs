//! GRPO group advantages and the paper's two advantage-shaping schemes (paper-notes items 15, 16;
//! eqs. 7, 8, 10, 11, 12).
//!
//! # Standard deviation
//! Eq. 10 divides by `std` without saying which. The default here is the **sample** standard
//! deviation (divide by G - 1), because that is what the common GRPO trainers compute
//! (`torch.std` is unbiased by default, and TRL and verl call it), so caplens reproduces the
//! advantages a real run used. [`StdKind::Population`] (divide by G) is available. Trainers also
//! add a small epsilon (1e-6) to the denominator; we do not, and treat a group with all-equal
//! rewards explicitly instead (the epsilon changes other advantages by less than 1e-6 relative).
//!
//! # Relative position
//! Position shaping needs `l_t` in [0, 1]; we use the crate-wide definition
//! [`crate::tokens::relative_position`], `(t + 0.5) / L`.

use crate::tokens::relative_position;

/// Which standard deviation normalises advantages and log-PPLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdKind {
    /// Divide by G - 1 (unbiased variance), as `torch.std` does. The default.
    #[default]
    Sample,
    /// Divide by G.
    Population,
}

/// Why shaping could not be computed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapingError {
    /// A reward or log-PPL is NaN or infinite (an infinite PPL comes from a zero-probability
    /// token; such a response cannot be standardised).
    NonFinite { index: usize, value: f64 },
    /// The per-response inputs of one group have different lengths.
    LengthMismatch { rewards: usize, other: usize },
}

impl std::fmt::Display for ShapingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NonFinite { index, value } => {
                write!(f, "non-finite value {value} at response {index}")
            }
            Self::LengthMismatch { rewards, other } => {
                write!(
                    f,
                    "{rewards} rewards but {other} entries in another per-response input"
                )
            }
        }
    }
}

impl std::error::Error for ShapingError {}

/// Mean and standard deviation of a slice, or which values made it impossible.
fn mean_std(values: &[f64], kind: StdKind) -> Result<(f64, f64), ShapingError> {
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ShapingError::NonFinite { index, value });
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    let denom = match kind {
        StdKind::Sample => n - 1.0,
        StdKind::Population => n,
    };
    Ok((
        mean,
        if denom > 0.0 {
            (ss / denom).sqrt()
        } else {
            0.0
        },
    ))
}

/// True when every value equals the first (the variance is exactly zero).
fn all_equal(values: &[f64]) -> bool {
    values.windows(2).all(|w| w[0] == w[1])
}

/// GRPO advantages of one group (eq. 10).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupAdvantages {
    /// No rollouts.
    Empty,
    /// Every rollout got the same reward (including a group of one): the group carries no
    /// learning signal and every advantage is 0 — by definition, not by dividing by zero.
    ZeroVariance { size: usize, reward: f64 },
    /// `A_i = (R_i - mean) / std`.
    Normalized {
        advantages: Vec<f64>,
        mean: f64,
        std: f64,
    },
}

impl GroupAdvantages {
    /// The per-rollout advantages (zeros for a zero-variance group, empty for an empty one).
    pub fn advantages(&self) -> Vec<f64> {
        match self {
            Self::Empty => Vec::new(),
            Self::ZeroVariance { size, .. } => vec![0.0; *size],
            Self::Normalized { advantages, .. } => advantages.clone(),
        }
    }

    /// Whether the group gives any learning signal.
    pub fn has_signal(&self) -> bool {
        matches!(self, Self::Normalized { .. })
    }
}

/// Group-relative advantages, eq. 10: `A_i = (R_i - mean(R)) / std(R)`.
pub fn group_advantages(
    rewards: &[f64],
    std_kind: StdKind,
) -> Result<GroupAdvantages, ShapingError> {
    if rewards.is_empty() {
        return Ok(GroupAdvantages::Empty);
    }
    let (mean, std) = mean_std(rewards, std_kind)?;
    if all_equal(rewards) || std == 0.0 {
        return Ok(GroupAdvantages::ZeroVariance {
            size: rewards.len(),
            reward: rewards[0],
        });
    }
    let advantages = rewards.iter().map(|r| (r - mean) / std).collect();
    Ok(GroupAdvantages::Normalized {
        advantages,
        mean,
        std,
    })
}

/// Standardised log-PPL weights of one group, eq. 7.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PplWeights {
    Empty,
    /// All responses have the same log-PPL: every weight is 0 (no re-weighting).
    ZeroVariance {
        size: usize,
    },
    /// `w_i = (ln PPL_i - mu) / sigma`.
    Standardized {
        weights: Vec<f64>,
        mu: f64,
        sigma: f64,
    },
}

impl PplWeights {
    /// The per-response weights (zeros when the group has no spread).
    pub fn weights(&self) -> Vec<f64> {
        match self {
            Self::Empty => Vec::new(),
            Self::ZeroVariance { size } => vec![0.0; *size],
            Self::Standardized { weights, .. } => weights.clone(),
        }
    }
}

/// Eq. 7: `w_ppl(o_i) = (ln PPL(o_i) - mu) / sigma` over the responses to one query.
pub fn ppl_weights(ln_ppl: &[f64], std_kind: StdKind) -> Result<PplWeights, ShapingError> {
    if ln_ppl.is_empty() {
        return Ok(PplWeights::Empty);
    }
    let (mu, sigma) = mean_std(ln_ppl, std_kind)?;
    if all_equal(ln_ppl) || sigma == 0.0 {
        return Ok(PplWeights::ZeroVariance { size: ln_ppl.len() });
    }
    Ok(PplWeights::Standardized {
        weights: ln_ppl.iter().map(|x| (x - mu) / sigma).collect(),
        mu,
        sigma,
    })
}

/// The paper's PPL-shaping strength (sec. 4.4.2).
pub const DEFAULT_PPL_ALPHA: f64 = 0.01;

/// Eq. 11: `A'_i = A_i * (1 - alpha * w_i)`. alpha > 0 favours low-PPL responses (the paper's
/// winning variant); a negative alpha gives the opposite scheme of fig. 5c.
pub fn ppl_shaped_advantage(advantage: f64, weight: f64, alpha: f64) -> f64 {
    advantage * (1.0 - alpha * weight)
}

/// Numerically stable logistic sigmoid.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Position bonus parameters, eq. 8 with `r_t = m (l_t - n)`:
/// `b_t = gamma * sigmoid(d * m * (l_t - n))`.
///
/// The defaults are the values printed in sec. 4.4.2: gamma 0.1, d 1, m 15, n -0.5. Note that with
/// n = -0.5, `r_t` runs from 7.5 to 22.5 and the sigmoid from 0.99945 to 1: the bonus is almost a
/// constant `gamma`. With n = 0.5 it ramps from 0.00055 to 0.99945 across the response, which
/// matches the paper's stated intent ("this bonus increases toward the end"). We keep the printed
/// value as the default and let callers choose; [`PositionBonus::curve`] shows the difference.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PositionBonus {
    /// Scale of the bonus.
    pub gamma: f64,
    /// Direction: 1 rewards late tokens, -1 early ones.
    pub d: f64,
    /// Slope of the relative-position score.
    pub m: f64,
    /// Shift of the relative-position score.
    pub n: f64,
}

impl Default for PositionBonus {
    fn default() -> Self {
        Self {
            gamma: 0.1,
            d: 1.0,
            m: 15.0,
            n: -0.5,
        }
    }
}

impl PositionBonus {
    /// The parameters as the paper prints them (same as `default()`).
    pub fn paper_printed() -> Self {
        Self::default()
    }

    /// The printed parameters with n = 0.5, the reading under which the bonus actually ramps.
    pub fn ramp_reading() -> Self {
        Self {
            n: 0.5,
            ..Self::default()
        }
    }

    /// `b(l) = gamma * sigmoid(d * m * (l - n))` for a relative position `l` in [0, 1].
    pub fn bonus(&self, l: f64) -> f64 {
        self.gamma * sigmoid(self.d * self.m * (l - self.n))
    }

    /// Eq. 12: `A'_t = A_t + sign(A_t) * b_t`. A zero advantage stays zero (sign(0) = 0).
    pub fn apply(&self, advantage: f64, l: f64) -> f64 {
        if advantage == 0.0 {
            advantage
        } else {
            advantage + advantage.signum() * self.bonus(l)
        }
    }

    /// `points` evenly spaced `(l, b(l))` pairs over [0, 1] (both ends included) for display.
    /// `points < 2` gives the two ends.
    pub fn curve(&self, points: usize) -> Vec<(f64, f64)> {
        let points = points.max(2);
        (0..points)
            .map(|i| {
                let l = i as f64 / (points - 1) as f64;
                (l, self.bonus(l))
            })
            .collect()
    }
}

/// Which shaping to apply on top of GRPO advantages.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShapingConfig {
    pub std_kind: StdKind,
    /// PPL shaping strength alpha (eq. 11); `None` to skip it.
    pub ppl_alpha: Option<f64>,
    /// Position bonus (eq. 12); `None` to skip it.
    pub position: Option<PositionBonus>,
}

impl Default for ShapingConfig {
    /// Plain GRPO: no shaping.
    fn default() -> Self {
        Self {
            std_kind: StdKind::default(),
            ppl_alpha: None,
            position: None,
        }
    }
}

/// One group's advantages before and after shaping.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShapedGroup {
    /// Eq. 10 advantages (says explicitly when the group has zero variance).
    pub group: GroupAdvantages,
    /// Eq. 7 weights, when PPL shaping ran.
    pub ppl_weights: Option<PplWeights>,
    /// Per-response advantage after PPL shaping (equal to the eq. 10 advantage without it).
    pub response_advantages: Vec<f64>,
    /// Per-token advantages, `per_token[i][t]`, after the position bonus (when configured).
    pub per_token: Vec<Vec<f64>>,
}

/// Per-token shaped advantages of a whole group.
///
/// `rewards[i]` and `lengths[i]` (tokens) describe response i; `ln_ppl` is needed when PPL shaping
/// is on. The two schemes are separate methods in the paper; when both are configured they
/// compose as `A'_t = A_i (1 - alpha w_i) + sign(.) * b_t` (PPL scaling at the response level,
/// then the token-level bonus). A zero-variance group gets zero advantages everywhere: the bonus
/// is signed by the advantage, and sign(0) = 0.
pub fn shape_group(
    rewards: &[f64],
    lengths: &[usize],
    ln_ppl: Option<&[f64]>,
    config: &ShapingConfig,
) -> Result<ShapedGroup, ShapingError> {
    if lengths.len() != rewards.len() {
        return Err(ShapingError::LengthMismatch {
            rewards: rewards.len(),
            other: lengths.len(),
        });
    }
    let group = group_advantages(rewards, config.std_kind)?;
    let mut response_advantages = group.advantages();
    let mut weights_out = None;
    if let (Some(alpha), Some(ln_ppl)) = (config.ppl_alpha, ln_ppl) {
        if ln_ppl.len() != rewards.len() {
            return Err(ShapingError::LengthMismatch {
                rewards: rewards.len(),
                other: ln_ppl.len(),
            });
        }
        let w = ppl_weights(ln_ppl, config.std_kind)?;
        for (a, wi) in response_advantages.iter_mut().zip(w.weights()) {
            *a = ppl_shaped_advantage(*a, wi, alpha);
        }
        weights_out = Some(w);
    }
    let per_token = response_advantages
        .iter()
        .zip(lengths)
        .map(|(&a, &len)| {
            (0..len)
                .map(|t| match (&config.position, relative_position(t, len)) {
                    (Some(bonus), Some(l)) => bonus.apply(a, l),
                    _ => a,
                })
                .collect()
        })
        .collect();
    Ok(ShapedGroup {
        group,
        ppl_weights: weights_out,
        response_advantages,
        per_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn binary_group_advantages_sample_and_population() {
        // Rewards 1, 0, 0, 0: mean 0.25; sample var = 0.75/3 = 0.25, std 0.5.
        let g = group_advantages(&[1.0, 0.0, 0.0, 0.0], StdKind::Sample).unwrap();
        assert_eq!(g.advantages(), vec![1.5, -0.5, -0.5, -0.5]);
        // Population var = 0.75/4, std = sqrt(3)/4.
        let g = group_advantages(&[1.0, 0.0, 0.0, 0.0], StdKind::Population).unwrap();
        let s = 3f64.sqrt() / 4.0;
        assert!((g.advantages()[0] - 0.75 / s).abs() < 1e-12);
    }

    #[test]
    fn zero_variance_and_empty_groups_are_explicit() {
        let g = group_advantages(&[1.0, 1.0, 1.0], StdKind::Sample).unwrap();
        assert_eq!(
            g,
            GroupAdvantages::ZeroVariance {
                size: 3,
                reward: 1.0
            }
        );
        assert!(!g.has_signal());
        assert_eq!(g.advantages(), vec![0.0; 3]);
        let single = group_advantages(&[0.0], StdKind::Sample).unwrap();
        assert_eq!(
            single,
            GroupAdvantages::ZeroVariance {
                size: 1,
                reward: 0.0
            }
        );
        assert_eq!(
            group_advantages(&[], StdKind::Sample).unwrap(),
            GroupAdvantages::Empty
        );
        assert!(matches!(
            group_advantages(&[1.0, f64::NAN], StdKind::Sample),
            Err(ShapingError::NonFinite { index: 1, .. })
        ));
    }

    #[test]
    fn ppl_shaping_favours_low_ppl() {
        let w = ppl_weights(&[1.0, 2.0, 3.0], StdKind::Sample).unwrap();
        assert_eq!(w.weights(), vec![-1.0, 0.0, 1.0]);
        // Positive advantage: the low-PPL response gains, the high-PPL one loses.
        assert!((ppl_shaped_advantage(1.0, -1.0, 0.01) - 1.01).abs() < 1e-15);
        assert!((ppl_shaped_advantage(1.0, 1.0, 0.01) - 0.99).abs() < 1e-15);
        assert_eq!(
            ppl_weights(&[2.0, 2.0], StdKind::Sample).unwrap(),
            PplWeights::ZeroVariance { size: 2 }
        );
        assert!(matches!(
            ppl_weights(&[f64::INFINITY, 1.0], StdKind::Sample),
            Err(ShapingError::NonFinite { .. })
        ));
    }

    #[test]
    fn printed_position_bonus_is_nearly_constant_and_ramp_reading_ramps() {
        let printed = PositionBonus::default();
        assert_eq!(
            (printed.gamma, printed.d, printed.m, printed.n),
            (0.1, 1.0, 15.0, -0.5)
        );
        // sigmoid(7.5) = 0.999447...
        assert!((printed.bonus(0.0) - 0.1 * 0.999_447).abs() < 1e-6);
        assert!(printed.bonus(1.0) - printed.bonus(0.0) < 6e-5);
        let ramp = PositionBonus::ramp_reading();
        assert!((ramp.bonus(0.0) - 0.1 * 0.000_553).abs() < 1e-6);
        assert!((ramp.bonus(0.5) - 0.05).abs() < 1e-15);
        assert!((ramp.bonus(1.0) - 0.1 * 0.999_447).abs() < 1e-6);
        let c = ramp.curve(11);
        assert_eq!(c.len(), 11);
        assert_eq!(c[0].0, 0.0);
        assert_eq!(c[10].0, 1.0);
        assert_eq!(ramp.curve(0).len(), 2);
    }

    #[test]
    fn position_bonus_follows_the_advantage_sign() {
        let b = PositionBonus::ramp_reading();
        assert!((b.apply(1.0, 0.5) - 1.05).abs() < 1e-15);
        assert!((b.apply(-1.0, 0.5) + 1.05).abs() < 1e-15);
        assert_eq!(b.apply(0.0, 0.9), 0.0);
        // d = -1 rewards early tokens.
        let early = PositionBonus { d: -1.0, ..b };
        assert!(early.bonus(0.1) > early.bonus(0.9));
    }

    #[test]
    fn shape_group_composes_and_checks_lengths() {
        let cfg = ShapingConfig {
            ppl_alpha: Some(0.01),
            position: Some(PositionBonus::ramp_reading()),
            ..Default::default()
        };
        let s = shape_group(&[1.0, 0.0], &[2, 1], Some(&[0.5, 1.5]), &cfg).unwrap();
        // Sample std of (1, 0) is sqrt(0.5): advantages +-0.7071; weights -0.7071, +0.7071.
        let a = 0.5f64.sqrt();
        assert!((s.response_advantages[0] - a * (1.0 + 0.01 * a)).abs() < 1e-12);
        assert!((s.response_advantages[1] + a * (1.0 - 0.01 * a)).abs() < 1e-12);
        assert_eq!(s.per_token[0].len(), 2);
        let b = PositionBonus::ramp_reading();
        assert!((s.per_token[0][1] - (s.response_advantages[0] + b.bonus(0.75))).abs() < 1e-12);
        assert!((s.per_token[1][0] - (s.response_advantages[1] - b.bonus(0.5))).abs() < 1e-12);
        assert!(matches!(
            shape_group(&[1.0], &[1, 2], None, &cfg),
            Err(ShapingError::LengthMismatch { .. })
        ));
        assert!(matches!(
            shape_group(&[1.0, 0.0], &[1, 2], Some(&[1.0]), &cfg),
            Err(ShapingError::LengthMismatch { .. })
        ));
        // Plain GRPO: every token carries its response's advantage.
        let plain = shape_group(&[1.0, 0.0], &[3, 1], None, &ShapingConfig::default()).unwrap();
        assert_eq!(plain.per_token[0].len(), 3);
        assert!(plain.per_token[0]
            .iter()
            .all(|&t| t == plain.response_advantages[0] && (t - a).abs() < 1e-12));
    }

    proptest! {
        #[test]
        fn zero_variance_groups_give_zero_shaped_advantages(r in -5.0f64..5.0, g in 1usize..16, len in 0usize..50, alpha in -1.0f64..1.0) {
            let cfg = ShapingConfig { ppl_alpha: Some(alpha), position: Some(PositionBonus::default()), ..Default::default() };
            let ln_ppl: Vec<f64> = (0..g).map(|i| i as f64 * 0.1).collect();
            let s = shape_group(&vec![r; g], &vec![len; g], Some(&ln_ppl), &cfg).unwrap();
            prop_assert!(!s.group.has_signal());
            prop_assert!(s.per_token.iter().flatten().all(|&a| a == 0.0));
        }

        #[test]
        fn advantages_have_zero_mean_and_unit_std(rewards in prop::collection::vec(-10.0f64..10.0, 2..40)) {
            if let GroupAdvantages::Normalized { advantages, .. } = group_advantages(&rewards, StdKind::Sample).unwrap() {
                let n = advantages.len() as f64;
                let mean = advantages.iter().sum::<f64>() / n;
                let var = advantages.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
                prop_assert!(mean.abs() < 1e-9);
                prop_assert!((var - 1.0).abs() < 1e-9);
            }
        }

        #[test]
        fn position_bonus_monotone_in_l(m in 0.01f64..50.0, n in -1.0f64..1.5, gamma in 0.0f64..2.0, a in 0.0f64..1.0, b in 0.0f64..1.0) {
            let p = PositionBonus { gamma, d: 1.0, m, n };
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            prop_assert!(p.bonus(lo) <= p.bonus(hi));
            prop_assert!(p.bonus(lo) >= 0.0 && p.bonus(hi) <= gamma);
        }

        #[test]
        fn position_bonus_moves_away_from_zero(adv in -5.0f64..5.0, l in 0.0f64..1.0) {
            let p = PositionBonus::default();
            let shaped = p.apply(adv, l);
            prop_assert!(shaped.abs() >= adv.abs());
            prop_assert!(adv == 0.0 || shaped.signum() == adv.signum());
        }
    }
}
