//! The token heatmap's numbers, from one decoded trace (issue 6, page 6). Pure: every per-token
//! metric comes from `caplens_analysis::tokens`, per-response numbers from the same
//! `rollout_token_means` the import stores, so the page and the rollout row agree.
//!
//! Where values come from:
//! - entropy (eq. 3): the trace's exact column when present, else the truncated bucket estimate
//!   from the top-K log-probabilities (`uncertainty_top_k`, a lower bound);
//! - RBF (sec. 2.2): the exact column, else from top-K (exact when the listed mass reaches 0.95,
//!   else a lower bound);
//! - logprob: the chosen token's;
//! - intervention impact I_t (eq. 6): the trace's impact column, at the positions measured;
//! - gradient-norm proxy G_t (eq. 4): `gradient_norm_proxy` with |α_t| = 1 and the trace's
//!   hidden-state norm (1 when absent). The distribution is the top-K list plus the chosen token
//!   plus the missing mass as one extra outcome: that overstates `sum p^2`, so from a truncated
//!   list G_t is an upper bound (exact when the list covers the whole mass).

use caplens_analysis::{
    tokens::{
        gradient_norm_proxy, mean_finite, perplexity, summarize_response, uncertainty_top_k, Bound,
        FullDistribution, NormalizedDistribution, TokenUncertainty, DEFAULT_TOP_P, VLLM_NEG_INF,
    },
    trace::{TokenTrace, TopAlternative},
};
use caplens_app::heat::{
    token_display, Alternative, F32Column, HeatScale, Metric, MetricValue, TokenDetail,
    TokenHeatmap, TraceSummary,
};

/// Top-K mass counted as complete (the rest is rounding).
const COMPLETE_MASS: f64 = 1e-9;

fn alternatives(trace: &TokenTrace, i: usize) -> Option<&[TopAlternative]> {
    trace
        .top_alternatives()
        .and_then(|alts| alts.get(i))
        .map(Vec::as_slice)
        .filter(|a| !a.is_empty())
}

fn uncertainty(trace: &TokenTrace, i: usize, buf: &mut Vec<f64>) -> Option<TokenUncertainty> {
    let alts = alternatives(trace, i)?;
    buf.clear();
    buf.extend(alts.iter().map(|a| a.logprob as f64));
    uncertainty_top_k(buf, DEFAULT_TOP_P).ok()
}

fn entropy_at(trace: &TokenTrace, i: usize, u: Option<&TokenUncertainty>) -> Option<MetricValue> {
    if let Some(h) = trace.entropies() {
        let v = h.get(i).copied().filter(|v| v.is_finite())?;
        return Some(MetricValue {
            value: v as f64,
            exact: true,
        });
    }
    u.map(|u| MetricValue {
        value: u.entropy,
        exact: u.entropy_bound == Bound::Exact,
    })
}

fn rbf_at(trace: &TokenTrace, i: usize, u: Option<&TokenUncertainty>) -> Option<MetricValue> {
    if let Some(r) = trace.rbf() {
        return r.get(i).map(|&v| MetricValue {
            value: v as f64,
            exact: true,
        });
    }
    u.map(|u| MetricValue {
        value: u.rbf as f64,
        exact: u.rbf_bound == Bound::Exact,
    })
}

/// Every token's top-K entropy and RBF (`None` without a usable list), computed once per page.
fn uncertainties(trace: &TokenTrace) -> Vec<Option<TokenUncertainty>> {
    let mut buf = Vec::new();
    (0..trace.len())
        .map(|i| uncertainty(trace, i, &mut buf))
        .collect()
}

fn impact_at(trace: &TokenTrace, i: usize) -> Option<f64> {
    let impacts = trace.impacts()?;
    let at = impacts
        .binary_search_by_key(&(i as u32), |p| p.position)
        .ok()?;
    Some(impacts[at].impact as f64).filter(|v| v.is_finite())
}

fn hidden_norm_at(trace: &TokenTrace, i: usize) -> Option<f64> {
    trace
        .hidden_norms()?
        .get(i)
        .map(|&h| h as f64)
        .filter(|h| h.is_finite() && *h >= 0.0)
}

/// A probability from a stored log-probability: `None` for NaN or a value above 1.
fn prob_of(lp: f32) -> Option<f64> {
    let lp = lp as f64;
    if lp.is_nan() || lp > 1e-4 {
        None
    } else if lp <= VLLM_NEG_INF {
        Some(0.0)
    } else {
        Some(lp.min(0.0).exp())
    }
}

fn gradnorm_at(trace: &TokenTrace, i: usize) -> Option<MetricValue> {
    let alts = alternatives(trace, i)?;
    let chosen = &trace.tokens()[i];
    let mut probs: Vec<f64> = Vec::with_capacity(alts.len() + 2);
    let mut chosen_index = None;
    for a in alts {
        let Some(p) = prob_of(a.logprob) else {
            continue;
        };
        if chosen_index.is_none() && &a.token == chosen {
            chosen_index = Some(probs.len());
        }
        probs.push(p);
    }
    let chosen_index = match chosen_index {
        Some(i) => i,
        None => {
            // Sampled outside the top-K: the chosen token is one more listed outcome.
            probs.push(prob_of(*trace.logprobs().get(i)?)?);
            probs.len() - 1
        }
    };
    let mass: f64 = probs.iter().sum();
    let missing = 1.0 - mass;
    if missing > COMPLETE_MASS {
        probs.push(missing);
    }
    let dist = NormalizedDistribution::new(FullDistribution::Probabilities(&probs)).ok()?;
    let h = hidden_norm_at(trace, i).unwrap_or(1.0);
    gradient_norm_proxy(&dist, chosen_index, 1.0, h)
        .ok()
        .map(|value| MetricValue {
            value,
            exact: missing <= COMPLETE_MASS,
        })
}

/// Metrics this trace has the columns for.
pub fn available_metrics(trace: &TokenTrace) -> Vec<Metric> {
    let top_k = trace
        .top_alternatives()
        .is_some_and(|a| a.iter().any(|l| !l.is_empty()));
    Metric::ALL
        .into_iter()
        .filter(|m| match m {
            Metric::Entropy => trace.entropies().is_some() || top_k,
            Metric::Rbf => trace.rbf().is_some() || top_k,
            Metric::Logprob => trace.logprobs().iter().any(|x| x.is_finite()),
            Metric::Impact => trace.impacts().is_some_and(|i| !i.is_empty()),
            Metric::GradNorm => top_k,
        })
        .collect()
}

/// The metric shown when the URL names none: entropy, else the first one the trace has.
pub fn default_metric(trace: &TokenTrace) -> Metric {
    let available = available_metrics(trace);
    if available.contains(&Metric::Entropy) || available.is_empty() {
        Metric::Entropy
    } else {
        available[0]
    }
}

/// One metric's value at every token (NaN where it has none), and whether any is an estimate.
pub fn metric_values(trace: &TokenTrace, metric: Metric) -> (Vec<f32>, bool) {
    values_from(trace, metric, &uncertainties(trace))
}

fn values_from(
    trace: &TokenTrace,
    metric: Metric,
    us: &[Option<TokenUncertainty>],
) -> (Vec<f32>, bool) {
    let mut truncated = false;
    let values = (0..trace.len())
        .map(|i| {
            let v = match metric {
                Metric::Entropy => entropy_at(trace, i, us[i].as_ref()),
                Metric::Rbf => rbf_at(trace, i, us[i].as_ref()),
                Metric::GradNorm => gradnorm_at(trace, i),
                Metric::Logprob => {
                    return trace.logprobs()[i];
                }
                Metric::Impact => {
                    return impact_at(trace, i).map_or(f32::NAN, |v| v as f32);
                }
            };
            match v {
                Some(v) => {
                    truncated |= !v.exact;
                    v.value as f32
                }
                None => f32::NAN,
            }
        })
        .collect();
    (values, truncated)
}

/// Perplexity, mean entropy and mean RBF of the trace, by the rules of the stored means
/// (`rollout_token_means`: exact entropy column when present, else the mean over tokens with a
/// usable top-K list; PPL over the valid log-probabilities). `summary_matches_the_stored_means`
/// and the server tests hold the two together.
pub fn trace_summary(trace: &TokenTrace) -> TraceSummary {
    summary_from(trace, &uncertainties(trace))
}

fn summary_from(trace: &TokenTrace, us: &[Option<TokenUncertainty>]) -> TraceSummary {
    let listed: Vec<TokenUncertainty> = us.iter().flatten().copied().collect();
    let top_k = summarize_response(&listed);
    let mean_entropy = match trace.entropies() {
        Some(h) => mean_finite(&h.iter().map(|&v| v as f64).collect::<Vec<f64>>()),
        None => top_k.map(|s| s.mean_entropy),
    };
    let mean_rbf = match trace.rbf() {
        Some(r) if !r.is_empty() => Some(r.iter().map(|&x| x as f64).sum::<f64>() / r.len() as f64),
        _ => top_k.map(|s| s.mean_rbf),
    };
    let truncated_tokens = listed
        .iter()
        .filter(|u| {
            (trace.entropies().is_none() && u.entropy_bound == Bound::LowerBound)
                || (trace.rbf().is_none() && u.rbf_bound == Bound::LowerBound)
        })
        .count();
    TraceSummary {
        tokens: trace.len(),
        perplexity: perplexity(trace.logprobs().iter().map(|&x| x as f64)).map(|p| p.ppl),
        mean_entropy,
        mean_rbf,
        truncated_tokens,
    }
}

/// The heatmap of one metric over a trace.
pub fn heatmap(trace: &TokenTrace, metric: Metric) -> TokenHeatmap {
    let available = available_metrics(trace);
    let us = uncertainties(trace);
    let (values, truncated) = if available.contains(&metric) {
        values_from(trace, metric, &us)
    } else {
        (vec![f32::NAN; trace.len()], false)
    };
    let with_value = values.iter().filter(|v| !v.is_nan()).count();
    let note = match metric {
        Metric::GradNorm if trace.hidden_norms().is_none() => Some(
            "‖h‖ is not in this trace: values are |α_t|·‖e(o_t) − p‖ (‖h‖ taken as 1)".to_string(),
        ),
        Metric::GradNorm => Some("‖h‖ from the trace".to_string()),
        Metric::Impact => Some(format!(
            "measured at {with_value} of {} positions",
            trace.len()
        )),
        _ => None,
    };
    TokenHeatmap {
        metric,
        available,
        tokens: trace.tokens().iter().map(|t| token_display(t)).collect(),
        scale: HeatScale::for_values(metric, &values),
        values: F32Column(values),
        logprobs: F32Column(trace.logprobs().to_vec()),
        truncated,
        with_value,
        note,
        summary: summary_from(trace, &us),
    }
}

/// Everything about one position (the hover card and `pos=`); `None` past the end.
pub fn token_detail(trace: &TokenTrace, pos: usize) -> Option<TokenDetail> {
    let token = trace.tokens().get(pos)?;
    let mut buf = Vec::new();
    let alts = alternatives(trace, pos).unwrap_or_default();
    let mut alternatives: Vec<Alternative> = alts
        .iter()
        .map(|a| Alternative {
            token: token_display(&a.token),
            logprob: a.logprob as f64,
        })
        .collect();
    alternatives.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
    let u = uncertainty(trace, pos, &mut buf);
    let lp = trace.logprobs()[pos];
    Some(TokenDetail {
        pos,
        token: token_display(token),
        logprob: lp.is_finite().then_some(lp as f64),
        alternatives,
        missing_mass: u.map(|u| u.missing_mass),
        entropy: entropy_at(trace, pos, u.as_ref()),
        rbf: rbf_at(trace, pos, u.as_ref()),
        impact: impact_at(trace, pos),
        gradnorm: gradnorm_at(trace, pos),
        hidden_norm: hidden_norm_at(trace, pos),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caplens_analysis::{
        tokens::{one_hot_residual_norm, uncertainty_full},
        trace::PositionImpact,
    };

    fn alt(token: &str, p: f64) -> TopAlternative {
        TopAlternative {
            token: token.as_bytes().to_vec(),
            logprob: p.ln() as f32,
        }
    }

    /// Three tokens; top-K lists: complete at 0, truncated at 1, chosen outside the list at 2.
    fn trace() -> TokenTrace {
        TokenTrace::new(
            vec![b"A".to_vec(), b" b".to_vec(), b"\xFF".to_vec()],
            vec![0.5f64.ln() as f32, 0.6f64.ln() as f32, 0.05f64.ln() as f32],
        )
        .unwrap()
        .with_top_alternatives(vec![
            vec![alt("A", 0.5), alt("B", 0.3), alt("C", 0.2)],
            vec![alt(" b", 0.6), alt(" c", 0.2)],
            vec![alt("x", 0.9)],
        ])
        .unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn entropy_and_rbf_come_from_top_k_with_their_bounds() {
        let t = trace();
        let (h, truncated) = metric_values(&t, Metric::Entropy);
        let exact = -(0.5f64 * 0.5f64.ln() + 0.3 * 0.3f64.ln() + 0.2 * 0.2f64.ln());
        assert!(close(h[0] as f64, exact), "{h:?}");
        // Bucket estimate at 1: listed terms plus the missing 0.2 as one outcome.
        let bucket = -(0.6f64 * 0.6f64.ln() + 0.2 * 0.2f64.ln() + 0.2 * 0.2f64.ln());
        assert!(close(h[1] as f64, bucket), "{h:?}");
        assert!(truncated, "positions 1 and 2 are truncated estimates");
        let (r, _) = metric_values(&t, Metric::Rbf);
        assert_eq!(r[0], 3.0);
        let u = uncertainty_top_k(&[0.6f64.ln(), 0.2f64.ln()], DEFAULT_TOP_P).unwrap();
        assert_eq!(r[1], u.rbf as f32);
        assert_eq!(u.rbf_bound, Bound::LowerBound);
    }

    #[test]
    fn exact_columns_win_over_top_k() {
        let t = trace()
            .with_entropies(vec![0.1, f32::NAN, 0.3])
            .unwrap()
            .with_rbf(vec![1, 2, 3])
            .unwrap();
        let (h, truncated) = metric_values(&t, Metric::Entropy);
        assert_eq!(h[0], 0.1);
        assert!(h[1].is_nan());
        assert!(!truncated);
        assert_eq!(metric_values(&t, Metric::Rbf).0, vec![1.0, 2.0, 3.0]);
        assert_eq!(trace_summary(&t).mean_rbf, Some(2.0));
    }

    #[test]
    fn gradient_norm_is_eq_4_over_the_listed_distribution() {
        let t = trace().with_hidden_norms(vec![2.0, 3.0, 4.0]).unwrap();
        let (g, truncated) = metric_values(&t, Metric::GradNorm);
        // Position 0: complete list, exact: ||e - p|| * ||h||.
        let dist =
            NormalizedDistribution::new(FullDistribution::Probabilities(&[0.5, 0.3, 0.2])).unwrap();
        let expected = one_hot_residual_norm(&dist, 0).unwrap() * 2.0;
        assert!(close(g[0] as f64, expected), "{g:?}");
        // Position 2: chosen token (p = 0.05) outside the list, missing mass 0.05 as a bucket.
        let dist = NormalizedDistribution::new(FullDistribution::Probabilities(&[0.9, 0.05, 0.05]))
            .unwrap();
        let expected = one_hot_residual_norm(&dist, 1).unwrap() * 4.0;
        assert!(close(g[2] as f64, expected), "{g:?}");
        assert!(truncated);
        // Without hidden norms, ||h|| = 1 and the legend says so.
        let plain = heatmap(&trace(), Metric::GradNorm);
        assert!(close(
            plain.values.0[0] as f64,
            expected_unit(&[0.5, 0.3, 0.2], 0)
        ));
        assert!(plain.note.unwrap().contains("not in this trace"));
        let _ = uncertainty_full;
    }

    fn expected_unit(p: &[f64], i: usize) -> f64 {
        one_hot_residual_norm(
            &NormalizedDistribution::new(FullDistribution::Probabilities(p)).unwrap(),
            i,
        )
        .unwrap()
    }

    #[test]
    fn impacts_sit_at_their_positions_and_other_metrics_are_unavailable_without_columns() {
        let t = TokenTrace::new(vec![b"a".to_vec(), b"b".to_vec()], vec![-0.1, -0.2])
            .unwrap()
            .with_impacts(vec![PositionImpact {
                position: 1,
                impact: -0.5,
            }])
            .unwrap();
        assert_eq!(available_metrics(&t), [Metric::Logprob, Metric::Impact]);
        assert_eq!(default_metric(&t), Metric::Logprob);
        let (v, _) = metric_values(&t, Metric::Impact);
        assert!(v[0].is_nan());
        assert_eq!(v[1], -0.5);
        let h = heatmap(&t, Metric::Entropy);
        assert_eq!(h.with_value, 0, "an unavailable metric colours nothing");
        assert_eq!(
            heatmap(&t, Metric::Impact).note.unwrap(),
            "measured at 1 of 2 positions"
        );
    }

    #[test]
    fn summary_matches_the_stored_means() {
        let t = trace();
        let s = trace_summary(&t);
        let ppl = perplexity(t.logprobs().iter().map(|&x| x as f64))
            .unwrap()
            .ppl;
        assert!(close(s.perplexity.unwrap(), ppl));
        let (h, _) = metric_values(&t, Metric::Entropy);
        let mean = h.iter().map(|&x| x as f64).sum::<f64>() / 3.0;
        assert!(close(s.mean_entropy.unwrap(), mean));
        // Even the list of position 0, whose probabilities sum to 1, misses ~1e-8 of mass once
        // stored as f32: every top-K position counts as truncated.
        assert_eq!(s.truncated_tokens, 3);
    }

    #[test]
    fn token_detail_lists_alternatives_and_shows_bytes_safely() {
        let t = trace();
        let d = token_detail(&t, 2).unwrap();
        assert_eq!(d.token, "\\xFF");
        assert_eq!(d.alternatives.len(), 1);
        assert!(close(d.missing_mass.unwrap(), 0.1));
        assert!(!d.entropy.unwrap().exact);
        let d0 = token_detail(&t, 0).unwrap();
        let names: Vec<&str> = d0.alternatives.iter().map(|a| a.token.as_str()).collect();
        assert_eq!(names, ["A", "B", "C"]);
        let exact = -(0.5f64 * 0.5f64.ln() + 0.3 * 0.3f64.ln() + 0.2 * 0.2f64.ln());
        assert!(close(d0.entropy.unwrap().value, exact));
        assert!(token_detail(&t, 3).is_none());
    }
}
