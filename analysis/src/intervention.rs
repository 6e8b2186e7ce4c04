//! Token intervention impact (paper-notes item 11, eqs. 5-6).
//!
//! At position t the token o_t is replaced by the most probable other token (eq. 5); k
//! continuations are sampled from each prefix and graded. Eq. 6:
//! `I_t = (1/k) sum_j Acc_j(original) - (1/k) sum_j Acc_j(substitute)`, i.e. the accuracy with
//! the original token minus the accuracy with the substitute, in [-1, 1]. The two sides may have
//! different numbers of continuations (a failed generation); each side uses its own count.
//!
//! Aggregations: by relative position of t in the response (fig. 6b; position
//! `(t + 0.5) / L` as everywhere in caplens) and by PPL group (fig. 5b).
//!
//! # PPL groups
//! Responses are ranked by PPL, ascending, ties broken by input order (stable, deterministic).
//! With N responses and fraction f (0.2 in the paper), each group holds `floor(f * N)`
//! responses: the first ones are the low-PPL group, the last ones the high-PPL group. Flooring
//! keeps the groups disjoint for f <= 0.5; fewer than `ceil(1 / f)` responses is an error
//! rather than a group of zero. When responses with equal PPL straddle a cut, the split follows
//! input order and the result says so (`tie_at_low_cut`, `tie_at_high_cut`).
//!
//! # Two kinds of input
//! The aggregations take any [`InterventionSource`]: [`ResponseInterventions`] (the graded
//! continuations of both prefixes, from which eq. 6 is computed here) or [`MeasuredImpacts`]
//! (I_t values already computed, as a token trace stores them).

use crate::tokens::{position_bin, relative_position};

/// Graded continuations from both prefixes at one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PairedContinuations {
    /// Correct continuations out of `original_total` after the original token.
    pub original_correct: u32,
    pub original_total: u32,
    /// Correct continuations out of `substitute_total` after the substitute token.
    pub substitute_correct: u32,
    pub substitute_total: u32,
}

/// Why an impact or an aggregation could not be computed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterventionError {
    /// One side has zero continuations.
    NoContinuations,
    /// More correct continuations than continuations.
    CorrectExceedsTotal,
    /// An intervention position outside its response.
    PositionOutOfRange {
        response: usize,
        position: usize,
        length: usize,
    },
    /// A response PPL is NaN.
    NanPpl { response: usize },
    /// Too few responses for non-empty PPL groups.
    TooFewResponses { got: usize, needed: usize },
    /// The group fraction must be in (0, 0.5].
    InvalidFraction { fraction: f64 },
    /// A measured I_t that is NaN, infinite or outside [-1, 1].
    InvalidImpact { response: usize, value: f64 },
}

impl std::fmt::Display for InterventionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoContinuations => write!(f, "a side of the intervention has no continuations"),
            Self::CorrectExceedsTotal => write!(f, "more correct continuations than continuations"),
            Self::PositionOutOfRange {
                response,
                position,
                length,
            } => {
                write!(
                    f,
                    "response {response}: position {position} outside length {length}"
                )
            }
            Self::NanPpl { response } => write!(f, "response {response}: PPL is NaN"),
            Self::TooFewResponses { got, needed } => {
                write!(f, "{got} responses, at least {needed} needed")
            }
            Self::InvalidFraction { fraction } => {
                write!(f, "group fraction {fraction} not in (0, 0.5]")
            }
            Self::InvalidImpact { response, value } => {
                write!(f, "response {response}: impact {value} not in [-1, 1]")
            }
        }
    }
}

impl std::error::Error for InterventionError {}

impl PairedContinuations {
    /// Eq. 6: accuracy with the original token minus accuracy with the substitute.
    pub fn impact(&self) -> Result<f64, InterventionError> {
        if self.original_total == 0 || self.substitute_total == 0 {
            return Err(InterventionError::NoContinuations);
        }
        if self.original_correct > self.original_total
            || self.substitute_correct > self.substitute_total
        {
            return Err(InterventionError::CorrectExceedsTotal);
        }
        Ok(self.original_correct as f64 / self.original_total as f64
            - self.substitute_correct as f64 / self.substitute_total as f64)
    }
}

/// One intervention inside a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InterventionPoint {
    /// Token index t, 0-based.
    pub position: usize,
    pub result: PairedContinuations,
}

/// A response with its length, its PPL and the interventions made on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResponseInterventions {
    /// Number of tokens.
    pub length: usize,
    pub ppl: f64,
    pub points: Vec<InterventionPoint>,
}

/// Mean impact over a set of interventions.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImpactSummary {
    /// Interventions counted.
    pub interventions: u64,
    /// Mean signed I_t (`None` when there is none).
    pub mean_impact: Option<f64>,
    /// Mean |I_t|: how much the outcome moves either way (fig. 5b, 6b plot changes).
    pub mean_abs_impact: Option<f64>,
}

#[derive(Default)]
struct ImpactAcc {
    n: u64,
    sum: f64,
    abs_sum: f64,
}

impl ImpactAcc {
    fn push(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.abs_sum += x.abs();
    }

    fn summary(&self) -> ImpactSummary {
        let n = self.n as f64;
        ImpactSummary {
            interventions: self.n,
            mean_impact: (self.n > 0).then(|| self.sum / n),
            mean_abs_impact: (self.n > 0).then(|| self.abs_sum / n),
        }
    }
}

/// A response the aggregations can read: its length, its PPL and its (position, I_t) pairs.
pub trait InterventionSource {
    /// Number of tokens.
    fn length(&self) -> usize;
    fn ppl(&self) -> f64;
    /// `(position, I_t)` of every intervention, or why one is invalid (`response` is the
    /// response's index, for the error).
    fn impacts(&self, response: usize) -> Result<Vec<(usize, f64)>, InterventionError>;
}

impl InterventionSource for ResponseInterventions {
    fn length(&self) -> usize {
        self.length
    }

    fn ppl(&self) -> f64 {
        self.ppl
    }

    fn impacts(&self, _response: usize) -> Result<Vec<(usize, f64)>, InterventionError> {
        self.points
            .iter()
            .map(|p| Ok((p.position, p.result.impact()?)))
            .collect()
    }
}

/// A response whose impacts were measured elsewhere: the I_t values of eq. 6 as a token trace
/// stores them (`trace::PositionImpact`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeasuredImpacts {
    /// Number of tokens.
    pub length: usize,
    pub ppl: f64,
    /// `(position, I_t)`, I_t in [-1, 1].
    pub points: Vec<(usize, f64)>,
}

impl InterventionSource for MeasuredImpacts {
    fn length(&self) -> usize {
        self.length
    }

    fn ppl(&self) -> f64 {
        self.ppl
    }

    fn impacts(&self, response: usize) -> Result<Vec<(usize, f64)>, InterventionError> {
        self.points
            .iter()
            .map(|&(position, value)| {
                if (-1.0..=1.0).contains(&value) {
                    Ok((position, value))
                } else {
                    Err(InterventionError::InvalidImpact { response, value })
                }
            })
            .collect()
    }
}

/// Checks every point of a response and returns (relative position, impact) pairs.
fn response_impacts<R: InterventionSource>(
    index: usize,
    r: &R,
) -> Result<Vec<(f64, f64)>, InterventionError> {
    r.impacts(index)?
        .into_iter()
        .map(|(position, impact)| {
            let length = r.length();
            let l = relative_position(position, length).ok_or(
                InterventionError::PositionOutOfRange {
                    response: index,
                    position,
                    length,
                },
            )?;
            Ok((l, impact))
        })
        .collect()
}

/// One relative-position bin of impacts.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PositionImpactBin {
    /// Relative positions `[start, end)`.
    pub start: f64,
    pub end: f64,
    pub summary: ImpactSummary,
}

/// Mean impact by relative position in `bins` equal bins (fig. 6b). `bins == 0` is treated as 1.
pub fn impact_by_position<R: InterventionSource>(
    responses: &[R],
    bins: usize,
) -> Result<Vec<PositionImpactBin>, InterventionError> {
    let bins = bins.max(1);
    let mut acc: Vec<ImpactAcc> = (0..bins).map(|_| ImpactAcc::default()).collect();
    for (i, r) in responses.iter().enumerate() {
        for (l, impact) in response_impacts(i, r)? {
            acc[position_bin(l, bins)].push(impact);
        }
    }
    let b = bins as f64;
    Ok(acc
        .iter()
        .enumerate()
        .map(|(i, a)| PositionImpactBin {
            start: i as f64 / b,
            end: (i + 1) as f64 / b,
            summary: a.summary(),
        })
        .collect())
}

/// Impact in the low- and high-PPL groups (fig. 5b).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PplGroupImpact {
    /// Responses per group, `floor(fraction * N)`.
    pub group_size: usize,
    pub low: ImpactSummary,
    pub high: ImpactSummary,
    /// Indices (into the input) of the responses in each group, by increasing PPL.
    pub low_responses: Vec<usize>,
    pub high_responses: Vec<usize>,
    /// Largest PPL in the low group and smallest in the high group.
    pub low_max_ppl: f64,
    pub high_min_ppl: f64,
    /// Equal PPLs on both sides of a cut (the split then follows input order).
    pub tie_at_low_cut: bool,
    pub tie_at_high_cut: bool,
}

/// Mean impact in the bottom and top `fraction` of responses by PPL (0.2 in the paper). See
/// the module doc for group sizes and ties. An infinite PPL (a zero-probability token) ranks last.
pub fn impact_by_ppl_group<R: InterventionSource>(
    responses: &[R],
    fraction: f64,
) -> Result<PplGroupImpact, InterventionError> {
    if !(fraction > 0.0 && fraction <= 0.5) {
        return Err(InterventionError::InvalidFraction { fraction });
    }
    if let Some(response) = responses.iter().position(|r| r.ppl().is_nan()) {
        return Err(InterventionError::NanPpl { response });
    }
    let n = responses.len();
    let group_size = (fraction * n as f64 + 1e-9).floor() as usize;
    if group_size == 0 {
        return Err(InterventionError::TooFewResponses {
            got: n,
            needed: (1.0 / fraction - 1e-9).ceil() as usize,
        });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| responses[a].ppl().total_cmp(&responses[b].ppl())); // stable: ties by index
    let low_responses = order[..group_size].to_vec();
    let high_responses = order[n - group_size..].to_vec();
    let summarize = |idx: &[usize]| -> Result<ImpactSummary, InterventionError> {
        let mut acc = ImpactAcc::default();
        for &i in idx {
            for (_, impact) in response_impacts(i, &responses[i])? {
                acc.push(impact);
            }
        }
        Ok(acc.summary())
    };
    let ppl = |k: usize| responses[order[k]].ppl();
    Ok(PplGroupImpact {
        group_size,
        low: summarize(&low_responses)?,
        high: summarize(&high_responses)?,
        low_max_ppl: ppl(group_size - 1),
        high_min_ppl: ppl(n - group_size),
        tie_at_low_cut: group_size < n && ppl(group_size - 1) == ppl(group_size),
        tie_at_high_cut: n - group_size > 0 && ppl(n - group_size - 1) == ppl(n - group_size),
        low_responses,
        high_responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pc(oc: u32, ot: u32, sc: u32, st: u32) -> PairedContinuations {
        PairedContinuations {
            original_correct: oc,
            original_total: ot,
            substitute_correct: sc,
            substitute_total: st,
        }
    }

    fn resp(
        length: usize,
        ppl: f64,
        points: &[(usize, PairedContinuations)],
    ) -> ResponseInterventions {
        ResponseInterventions {
            length,
            ppl,
            points: points
                .iter()
                .map(|&(position, result)| InterventionPoint { position, result })
                .collect(),
        }
    }

    #[test]
    fn impact_is_accuracy_difference() {
        assert_eq!(pc(6, 8, 2, 8).impact(), Ok(0.5));
        assert_eq!(pc(1, 4, 3, 6).impact(), Ok(0.25 - 0.5));
        assert_eq!(
            pc(0, 0, 1, 2).impact(),
            Err(InterventionError::NoContinuations)
        );
        assert_eq!(
            pc(3, 2, 1, 2).impact(),
            Err(InterventionError::CorrectExceedsTotal)
        );
    }

    #[test]
    fn position_bins_split_early_and_late() {
        let rs = [
            resp(10, 1.2, &[(0, pc(4, 4, 0, 4)), (9, pc(2, 4, 2, 4))]),
            resp(2, 1.5, &[(0, pc(0, 4, 4, 4))]),
        ];
        let bins = impact_by_position(&rs, 2).unwrap();
        // Bin 0: +1 (pos 0.05) and -1 (pos 0.25): mean 0, mean |I| 1. Bin 1: 0 (pos 0.95).
        assert_eq!(bins[0].summary.interventions, 2);
        assert_eq!(bins[0].summary.mean_impact, Some(0.0));
        assert_eq!(bins[0].summary.mean_abs_impact, Some(1.0));
        assert_eq!(bins[1].summary.mean_impact, Some(0.0));
        assert_eq!(bins[1].summary.interventions, 1);
        let bad = [resp(3, 1.0, &[(3, pc(1, 1, 1, 1))])];
        assert!(matches!(
            impact_by_position(&bad, 5),
            Err(InterventionError::PositionOutOfRange { .. })
        ));
    }

    #[test]
    fn ppl_groups_take_bottom_and_top_fifths() {
        // Ten responses with PPL 1.0 .. 1.9 given in reverse; each has one point whose impact
        // encodes its rank.
        let rs: Vec<ResponseInterventions> = (0..10)
            .rev()
            .map(|i| resp(4, 1.0 + i as f64 / 10.0, &[(1, pc(i, 10, 0, 10))]))
            .collect();
        let g = impact_by_ppl_group(&rs, 0.2).unwrap();
        assert_eq!(g.group_size, 2);
        assert_eq!(g.low_responses, vec![9, 8]);
        assert_eq!(g.high_responses, vec![1, 0]);
        assert!((g.low.mean_impact.unwrap() - 0.05).abs() < 1e-12);
        assert!((g.high.mean_impact.unwrap() - 0.85).abs() < 1e-12);
        assert!(!g.tie_at_low_cut && !g.tie_at_high_cut);
    }

    #[test]
    fn measured_impacts_aggregate_like_graded_continuations() {
        let graded = [
            resp(10, 1.2, &[(0, pc(4, 4, 0, 4)), (9, pc(2, 4, 2, 4))]),
            resp(2, 1.5, &[(0, pc(0, 4, 4, 4))]),
        ];
        let measured = [
            MeasuredImpacts {
                length: 10,
                ppl: 1.2,
                points: vec![(0, 1.0), (9, 0.0)],
            },
            MeasuredImpacts {
                length: 2,
                ppl: 1.5,
                points: vec![(0, -1.0)],
            },
        ];
        assert_eq!(
            impact_by_position(&graded, 4).unwrap(),
            impact_by_position(&measured, 4).unwrap()
        );
        let bad = [MeasuredImpacts {
            length: 3,
            ppl: 1.0,
            points: vec![(1, 1.5)],
        }];
        assert_eq!(
            impact_by_position(&bad, 2),
            Err(InterventionError::InvalidImpact {
                response: 0,
                value: 1.5
            })
        );
        let nan = [MeasuredImpacts {
            length: 3,
            ppl: 1.0,
            points: vec![(1, f64::NAN)],
        }];
        assert!(impact_by_position(&nan, 2).is_err());
    }

    #[test]
    fn ppl_group_ties_small_groups_and_nan() {
        let rs = vec![
            resp(2, 2.0, &[]),
            resp(2, 1.0, &[]),
            resp(2, 1.0, &[]),
            resp(2, 3.0, &[]),
            resp(2, f64::INFINITY, &[]),
        ];
        let g = impact_by_ppl_group(&rs, 0.2).unwrap();
        assert_eq!(g.group_size, 1);
        assert_eq!(g.low_responses, vec![1]);
        assert!(g.tie_at_low_cut);
        assert_eq!(g.high_responses, vec![4]);
        assert_eq!(g.high_min_ppl, f64::INFINITY);
        assert_eq!(g.low.mean_impact, None);
        assert_eq!(
            impact_by_ppl_group(&rs[..4], 0.2),
            Err(InterventionError::TooFewResponses { got: 4, needed: 5 })
        );
        assert!(matches!(
            impact_by_ppl_group(&rs, 0.6),
            Err(InterventionError::InvalidFraction { .. })
        ));
        let nan = vec![resp(1, f64::NAN, &[]); 5];
        assert_eq!(
            impact_by_ppl_group(&nan, 0.2),
            Err(InterventionError::NanPpl { response: 0 })
        );
    }

    proptest! {
        #[test]
        fn impact_in_unit_range(oc in 0u32..20, ot in 1u32..20, sc in 0u32..20, st in 1u32..20) {
            let r = pc(oc.min(ot), ot, sc.min(st), st).impact().unwrap();
            prop_assert!((-1.0..=1.0).contains(&r));
        }

        #[test]
        fn ppl_groups_are_disjoint_ordered_and_sized(ppls in prop::collection::vec(0.5f64..5.0, 0..60), fraction in 0.05f64..=0.5) {
            let rs: Vec<_> = ppls.iter().map(|&p| resp(1, p, &[])).collect();
            match impact_by_ppl_group(&rs, fraction) {
                Ok(g) => {
                    prop_assert_eq!(g.group_size, (fraction * rs.len() as f64 + 1e-9).floor() as usize);
                    prop_assert!(g.low_responses.iter().all(|i| !g.high_responses.contains(i)));
                    prop_assert!(g.low_max_ppl <= g.high_min_ppl);
                    let low_max = g.low_responses.iter().map(|&i| ppls[i]).fold(f64::MIN, f64::max);
                    let rest_min = (0..rs.len()).filter(|i| !g.low_responses.contains(i)).map(|i| ppls[i]).fold(f64::MAX, f64::min);
                    prop_assert!(low_max <= rest_min);
                }
                Err(e) => {
                    let too_few = matches!(e, InterventionError::TooFewResponses { .. });
                    prop_assert!(too_few);
                }
            }
        }

        #[test]
        fn position_bins_count_every_intervention(lens in prop::collection::vec(1usize..50, 1..10), bins in 1usize..25) {
            let rs: Vec<_> = lens.iter().map(|&l| resp(l, 1.0, &(0..l).map(|t| (t, pc(1, 2, 0, 2))).collect::<Vec<_>>())).collect();
            let out = impact_by_position(&rs, bins).unwrap();
            let total: u64 = out.iter().map(|b| b.summary.interventions).sum();
            prop_assert_eq!(total, lens.iter().sum::<usize>() as u64);
        }
    }
}
