//! Agreement between reviewers who judge the same items independently (issue 27): Cohen's κ for
//! each pair of reviewers over the items both judged, and Fleiss' κ over all reviewers.
//!
//! Not in the paper: these are the standard chance-corrected agreement statistics. Cohen (1960):
//! κ = (p_o − p_e) / (1 − p_e), p_o the share of common items the two agree on, p_e = Σ_c
//! p_A(c)·p_B(c) from each reviewer's own category shares over those items. Fleiss (1971), in its
//! usual generalisation to items judged by different numbers of reviewers: for item i with n_i ≥ 2
//! judgements of which n_ic fall in category c, P_i = (Σ_c n_ic² − n_i) / (n_i (n_i − 1)); P̄ the
//! mean of P_i; p_c = Σ_i n_ic / Σ_i n_i; P_e = Σ_c p_c²; κ = (P̄ − P_e) / (1 − P_e). Both are
//! undefined (`None`) when chance agreement is total (p_e = 1: every judgement the same
//! category), and for fewer than one common item.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One reviewer's verdict on one item (`correct`: true / false).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement<'a> {
    pub item: &'a str,
    pub reviewer: &'a str,
    pub correct: bool,
}

/// Cohen's κ of one pair of reviewers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairAgreement {
    pub reviewers: [String; 2],
    /// Items both judged.
    pub items: u64,
    /// Items both judged alike.
    pub agreed: u64,
    pub kappa: Option<f64>,
}

/// The agreement over an experiment's judgements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub pairs: Vec<PairAgreement>,
    /// Fleiss' κ over the items judged by at least two reviewers.
    pub fleiss_kappa: Option<f64>,
    /// Items judged by at least two reviewers (the n behind Fleiss' κ).
    pub items: u64,
    /// Items whose judgements differ, in item order.
    pub disagreements: Vec<String>,
}

/// Cohen's κ from the (A, B) verdict pairs of the items both judged.
pub fn cohen_kappa(pairs: &[(bool, bool)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let agree = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let a_yes = pairs.iter().filter(|(a, _)| *a).count() as f64 / n;
    let b_yes = pairs.iter().filter(|(_, b)| *b).count() as f64 / n;
    let chance = a_yes * b_yes + (1.0 - a_yes) * (1.0 - b_yes);
    if (1.0 - chance).abs() < 1e-12 {
        return None;
    }
    Some((agree - chance) / (1.0 - chance))
}

/// Fleiss' κ from each item's (correct, wrong) judgement counts; items with fewer than two
/// judgements are left out.
pub fn fleiss_kappa(items: &[(u64, u64)]) -> Option<f64> {
    let rated: Vec<(f64, f64)> = items
        .iter()
        .filter(|(c, w)| c + w >= 2)
        .map(|&(c, w)| (c as f64, w as f64))
        .collect();
    if rated.is_empty() {
        return None;
    }
    let p_bar = rated
        .iter()
        .map(|(c, w)| {
            let n = c + w;
            (c * c + w * w - n) / (n * (n - 1.0))
        })
        .sum::<f64>()
        / rated.len() as f64;
    let total: f64 = rated.iter().map(|(c, w)| c + w).sum();
    let p_correct = rated.iter().map(|(c, _)| c).sum::<f64>() / total;
    let p_e = p_correct * p_correct + (1.0 - p_correct) * (1.0 - p_correct);
    if (1.0 - p_e).abs() < 1e-12 {
        return None;
    }
    Some((p_bar - p_e) / (1.0 - p_e))
}

/// Agreement over `judgements` (one per item and reviewer; a later one for the same pair
/// replaces an earlier).
pub fn agreement(judgements: &[Judgement<'_>]) -> Agreement {
    let mut by_item: BTreeMap<&str, BTreeMap<&str, bool>> = BTreeMap::new();
    for j in judgements {
        by_item
            .entry(j.item)
            .or_default()
            .insert(j.reviewer, j.correct);
    }
    let reviewers: BTreeSet<&str> = judgements.iter().map(|j| j.reviewer).collect();
    let reviewers: Vec<&str> = reviewers.into_iter().collect();
    let mut pairs = Vec::new();
    for (i, a) in reviewers.iter().enumerate() {
        for b in &reviewers[i + 1..] {
            let common: Vec<(bool, bool)> = by_item
                .values()
                .filter_map(|v| Some((*v.get(a)?, *v.get(b)?)))
                .collect();
            if common.is_empty() {
                continue;
            }
            pairs.push(PairAgreement {
                reviewers: [a.to_string(), b.to_string()],
                items: common.len() as u64,
                agreed: common.iter().filter(|(x, y)| x == y).count() as u64,
                kappa: cohen_kappa(&common),
            });
        }
    }
    let counts: Vec<(u64, u64)> = by_item
        .values()
        .map(|v| {
            let c = v.values().filter(|&&x| x).count() as u64;
            (c, v.len() as u64 - c)
        })
        .collect();
    Agreement {
        pairs,
        fleiss_kappa: fleiss_kappa(&counts),
        items: counts.iter().filter(|(c, w)| c + w >= 2).count() as u64,
        disagreements: by_item
            .iter()
            .filter(|(_, v)| v.values().any(|&x| x) && v.values().any(|&x| !x))
            .map(|(item, _)| item.to_string())
            .collect(),
    }
}

/// The reviewers' verdict on an item: `Some` when every judgement on it agrees.
pub fn unanimous<'a>(verdicts: impl IntoIterator<Item = &'a bool>) -> Option<bool> {
    let mut it = verdicts.into_iter();
    let first = *it.next()?;
    it.all(|&v| v == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    /// Cohen's worked example shape: 50 items, A yes/B yes 20, A yes/B no 5, A no/B yes 10,
    /// both no 15 → p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5, κ = 0.4.
    #[test]
    fn cohen_matches_the_textbook_example() {
        let mut pairs = Vec::new();
        pairs.extend(std::iter::repeat_n((true, true), 20));
        pairs.extend(std::iter::repeat_n((true, false), 5));
        pairs.extend(std::iter::repeat_n((false, true), 10));
        pairs.extend(std::iter::repeat_n((false, false), 15));
        assert!(close(cohen_kappa(&pairs), 0.4));
        assert!(close(cohen_kappa(&[(true, true), (false, false)]), 1.0));
        assert_eq!(
            cohen_kappa(&[(true, true), (true, true)]),
            None,
            "chance agreement is total"
        );
        assert_eq!(cohen_kappa(&[]), None);
    }

    /// With exactly two reviewers on every item, Fleiss' κ is Scott's π: here computed by hand.
    #[test]
    fn fleiss_by_hand() {
        // 4 items, 2 raters: (2,0), (0,2), (1,1), (2,0). P_i = 1, 1, 0, 1 → P̄ = 0.75.
        // p_correct = 5/8 → P_e = 25/64 + 9/64 = 34/64; κ = (0.75 − 0.53125)/(1 − 0.53125).
        let k = fleiss_kappa(&[(2, 0), (0, 2), (1, 1), (2, 0)]);
        assert!(close(k, (0.75 - 34.0 / 64.0) / (1.0 - 34.0 / 64.0)));
        // Items with one judgement do not count; three raters on one item.
        let k = fleiss_kappa(&[(1, 0), (3, 0), (0, 3), (2, 1)]);
        // P_i: 1, 1, (4+1−3)/6 = 1/3 → P̄ = 7/9; p = 5/9 → P_e = 25/81 + 16/81 = 41/81.
        assert!(close(k, (7.0 / 9.0 - 41.0 / 81.0) / (1.0 - 41.0 / 81.0)));
        assert_eq!(fleiss_kappa(&[(1, 0)]), None);
    }

    #[test]
    fn agreement_lists_pairs_and_disagreements() {
        let j = |item, reviewer, correct| Judgement {
            item,
            reviewer,
            correct,
        };
        let all = [
            j("a", "ann", true),
            j("a", "bob", true),
            j("b", "ann", false),
            j("b", "bob", true),
            j("c", "ann", false),
            j("c", "bob", false),
            j("c", "cat", true),
            j("d", "cat", true),
        ];
        let a = agreement(&all);
        assert_eq!(a.disagreements, vec!["b", "c"]);
        assert_eq!(a.items, 3);
        let ann_bob = &a.pairs[0];
        assert_eq!(ann_bob.reviewers, ["ann".to_string(), "bob".to_string()]);
        assert_eq!((ann_bob.items, ann_bob.agreed), (3, 2));
        assert!(close(
            ann_bob.kappa,
            cohen_kappa(&[(true, true), (false, true), (false, false)]).unwrap()
        ));
        assert_eq!(a.pairs.len(), 3, "ann-bob, ann-cat, bob-cat");
        assert_eq!(unanimous(&[true, true]), Some(true));
        assert_eq!(unanimous(&[true, false]), None);
    }
}
