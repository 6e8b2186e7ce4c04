//! The one read model of the per-model reports: pass@k, unsolvable sets and summaries
//! (issue 26). The CLI reading files, the REST read API and the experiment pages' stored rows
//! all end here: each source adds per-run problem records ([`ModelTables::add_problem`],
//! [`ModelTables::add_rollup`]) and run totals, and the documents come from one place.
//!
//! Runs of the same model name merge: problems keyed `dataset/problem_id` add their samples,
//! the first correct position of a later run counts after every sample of the earlier ones,
//! and answers are a union (so answer diversity stays "distinct answers per problem").

use std::collections::{BTreeSet, HashMap};

use serde::ser::SerializeMap;
use serde::Serialize;

use crate::passk::{default_ks, pass_at_k_curve, CurvePoint, ProblemCounts};
use crate::rollup::RunRollup;
use crate::sets::{compare_unsolvable, ModelOutcomes, ProblemOutcome, UnsolvableReport};
use crate::summary::{summary_from_parts, ModelSummary, ProblemPart, RolloutTotals};

/// The k values of a pass@k report (`caplens passk --k`, `?k=`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KSelection {
    /// Powers of two up to the model's largest n, plus that n.
    #[default]
    Default,
    /// Every k from 1 to the model's largest n.
    All,
    /// The listed values (0 is rejected when parsing).
    List(Vec<u64>),
}

impl std::str::FromStr for KSelection {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "all" {
            return Ok(Self::All);
        }
        let ks = s
            .split(',')
            .map(|part| match part.trim().parse::<u64>() {
                Ok(0) => Err("k must be at least 1".to_string()),
                Ok(k) => Ok(k),
                Err(_) => Err(format!(
                    "{:?} is not a positive integer (expected a comma-separated list or \"all\")",
                    part.trim()
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::List(ks))
    }
}

impl KSelection {
    /// The k values for inputs whose largest n is `max_n`.
    pub fn resolve(self, max_n: u64) -> Vec<u64> {
        match self {
            KSelection::Default => default_ks(max_n),
            KSelection::All => (1..=max_n).collect(),
            KSelection::List(list) => list,
        }
    }
}

/// One problem of one model: its outcome (counts and, when known, the order of the first
/// correct sample) and its distinct normalised answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemRecord {
    pub outcome: ProblemOutcome,
    pub answers: BTreeSet<String>,
}

impl ProblemRecord {
    /// Adds a later run's record of the same problem: its samples follow this one's.
    fn merge(&mut self, later: ProblemRecord) {
        let o = &mut self.outcome;
        if o.first_correct_position.is_none() {
            o.first_correct_position = later.outcome.first_correct_position.map(|f| o.n + f);
        }
        o.n = o.n.saturating_add(later.outcome.n);
        o.c = o.c.saturating_add(later.outcome.c);
        o.order_known &= later.outcome.order_known;
        self.answers.extend(later.answers);
    }
}

/// One model's problems in order of first appearance, and its rollout totals.
#[derive(Debug, Clone, Default)]
struct ModelTable {
    model: String,
    problems: Vec<(String, ProblemRecord)>,
    index: HashMap<String, usize>,
    totals: RolloutTotals,
}

/// Per-model tables, models in order of first appearance.
#[derive(Debug, Clone, Default)]
pub struct ModelTables {
    models: Vec<ModelTable>,
    index: HashMap<String, usize>,
}

impl ModelTables {
    pub fn new() -> Self {
        Self::default()
    }

    fn model(&mut self, model: &str) -> &mut ModelTable {
        let i = match self.index.get(model) {
            Some(&i) => i,
            None => {
                self.index.insert(model.to_owned(), self.models.len());
                self.models.push(ModelTable {
                    model: model.to_owned(),
                    ..ModelTable::default()
                });
                self.models.len() - 1
            }
        };
        &mut self.models[i]
    }

    /// Adds one run's record of `key` for `model` (after the model's earlier runs).
    pub fn add_problem(&mut self, model: &str, key: &str, record: ProblemRecord) {
        let table = self.model(model);
        match table.index.get(key) {
            Some(&i) => table.problems[i].1.merge(record),
            None => {
                table.index.insert(key.to_owned(), table.problems.len());
                table.problems.push((key.to_owned(), record));
            }
        }
    }

    /// Adds one run's rollout totals for `model` (the model appears even with no problems).
    pub fn add_totals(&mut self, model: &str, totals: &RolloutTotals) {
        self.model(model).totals.merge(totals);
    }

    /// Adds a run rolled up as at import ([`RunRollup`]); `keys[i]` names `rollup.problems[i]`.
    pub fn add_rollup(&mut self, model: &str, keys: &[String], rollup: &RunRollup) {
        self.add_totals(model, &rollup.totals);
        for (key, problem) in keys.iter().zip(&rollup.problems) {
            self.add_problem(
                model,
                key,
                ProblemRecord {
                    outcome: problem.outcome(),
                    answers: problem.answers().keys().cloned().collect(),
                },
            );
        }
    }

    /// The model names, in order of first appearance.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(|m| m.model.as_str())
    }

    /// Each model's problems (key and record), in order of first appearance.
    pub fn problems(&self) -> impl Iterator<Item = (&str, &[(String, ProblemRecord)])> {
        self.models
            .iter()
            .map(|m| (m.model.as_str(), m.problems.as_slice()))
    }

    /// pass@k per model (eq. 2 averaged over problems with n >= k). The k values are resolved
    /// per model, from its own largest n: a model with n = 200 beside one with n = 2048 gets
    /// its pass@200, not a curve that stops at 128.
    pub fn passk(&self, ks: &KSelection) -> PasskDoc {
        PasskDoc {
            models: self
                .models
                .iter()
                .map(|m| {
                    let counts: Vec<ProblemCounts> = m
                        .problems
                        .iter()
                        .map(|(_, p)| ProblemCounts {
                            n: p.outcome.n,
                            c: p.outcome.c,
                        })
                        .collect();
                    let ks = ks
                        .clone()
                        .resolve(counts.iter().map(|p| p.n).max().unwrap_or(0));
                    PasskModel {
                        model: m.model.clone(),
                        problems: counts.len(),
                        rollouts: counts.iter().map(|p| p.n).sum(),
                        points: pass_at_k_curve(&counts, &ks),
                        ks,
                    }
                })
                .collect(),
        }
    }

    /// The unsolvable comparison at `k` (eq. 2's "never solved in k tries"; without k, among
    /// all samples, where only counts matter).
    pub fn unsolvable(&self, k: Option<u64>) -> UnsolvableReport {
        let compared: Vec<ModelOutcomes> = self
            .models
            .iter()
            .map(|m| ModelOutcomes {
                model: m.model.clone(),
                problems: m
                    .problems
                    .iter()
                    .map(|(key, p)| {
                        let o = p.outcome;
                        let outcome = if k.is_none() || !o.order_known || o.n == 0 {
                            ProblemOutcome::from_counts(o.n, o.c)
                        } else {
                            o
                        };
                        (key.clone(), outcome)
                    })
                    .collect(),
            })
            .collect();
        compare_unsolvable(&compared, k)
    }

    /// The summary of each model (definitions in [`crate::summary`]).
    pub fn summary(&self) -> SummaryDoc {
        SummaryDoc {
            models: self
                .models
                .iter()
                .map(|m| {
                    let parts: Vec<ProblemPart> = m
                        .problems
                        .iter()
                        .map(|(_, p)| ProblemPart {
                            n: p.outcome.n,
                            c: p.outcome.c,
                            distinct_answers: p.answers.len(),
                        })
                        .collect();
                    SummaryRow {
                        model: m.model.clone(),
                        summary: summary_from_parts(&parts, &m.totals),
                    }
                })
                .collect(),
        }
    }
}

/// `caplens passk --json` and `GET …/passk`.
#[derive(Debug, Serialize)]
pub struct PasskDoc {
    pub models: Vec<PasskModel>,
}

#[derive(Debug, Serialize)]
pub struct PasskModel {
    pub model: String,
    pub problems: usize,
    pub rollouts: u64,
    pub points: Vec<CurvePoint>,
    /// The k values asked of this model (points are those some problem has n >= k for).
    #[serde(skip)]
    pub ks: Vec<u64>,
}

/// `caplens summary --json` and `GET …/summary`.
#[derive(Debug, Serialize)]
pub struct SummaryDoc {
    pub models: Vec<SummaryRow>,
}

#[derive(Debug, Serialize)]
pub struct SummaryRow {
    pub model: String,
    #[serde(flatten)]
    pub summary: ModelSummary,
}

/// A JSON object written in the given key order (a map type would sort the keys).
struct OrderedObject<'a, V>(Vec<(&'a str, V)>);

impl<V: Serialize> Serialize for OrderedObject<'_, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct RegionJson<'a> {
    models: Vec<&'a str>,
    problems: &'a [String],
}

/// The `caplens unsolvable --json` and `GET …/unsolvable` document of a report: models by
/// name, keys in the models' order.
#[derive(Serialize)]
pub struct UnsolvableDoc<'a> {
    k: Option<u64>,
    models: &'a [String],
    unsolvable: OrderedObject<'a, Vec<&'a str>>,
    regions: Vec<RegionJson<'a>>,
    missing: OrderedObject<'a, Vec<&'a str>>,
}

impl<'a> UnsolvableDoc<'a> {
    pub fn of(report: &'a UnsolvableReport) -> Self {
        let names = &report.models;
        let by_model = |lists: Vec<Vec<&'a str>>| {
            OrderedObject(names.iter().map(String::as_str).zip(lists).collect())
        };
        UnsolvableDoc {
            k: report.k,
            models: names,
            unsolvable: by_model(
                report
                    .unsolvable
                    .iter()
                    .map(|list| list.iter().map(|u| u.problem_id.as_str()).collect())
                    .collect(),
            ),
            regions: report
                .regions
                .iter()
                .map(|r| RegionJson {
                    models: r.models.iter().map(|&i| names[i].as_str()).collect(),
                    problems: &r.problems,
                })
                .collect(),
            missing: by_model(
                report
                    .missing
                    .iter()
                    .map(|list| list.iter().map(|p| p.problem_id.as_str()).collect())
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64, c: u64, first: Option<u64>, answers: &[&str]) -> ProblemRecord {
        ProblemRecord {
            outcome: ProblemOutcome {
                n,
                c,
                first_correct_position: first,
                order_known: true,
            },
            answers: answers.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn runs_of_one_model_merge_in_order() {
        let mut t = ModelTables::new();
        t.add_problem("rl", "aime/1", record(4, 0, None, &["3"]));
        t.add_problem("base", "aime/1", record(4, 1, Some(2), &["7"]));
        t.add_problem("rl", "aime/1", record(4, 2, Some(1), &["3", "5"]));
        assert_eq!(t.models().collect::<Vec<_>>(), ["rl", "base"]);
        let rl = &t.models[0].problems[0].1;
        // The later run's first correct sample (its position 1) follows the earlier run's 4.
        assert_eq!(rl.outcome.first_correct_position, Some(5));
        assert_eq!((rl.outcome.n, rl.outcome.c), (8, 2));
        assert_eq!(rl.answers.len(), 2);
        // Solved only after the first 4 samples: unsolvable at k = 4, solved at k = 8.
        let at4 = t.unsolvable(Some(4));
        assert_eq!(at4.unsolvable[0].len(), 1);
        assert_eq!(t.unsolvable(Some(8)).unsolvable[0].len(), 0);
        let summary = t.summary();
        assert_eq!(summary.models[0].summary.answer_diversity, Some(2.0));
        assert_eq!(summary.models[0].summary.pass_at_1, Some(0.25));
    }

    #[test]
    fn counts_without_order_are_undecided_below_n() {
        let mut t = ModelTables::new();
        t.add_problem(
            "m",
            "p",
            ProblemRecord {
                outcome: ProblemOutcome::from_counts(8, 1),
                answers: BTreeSet::new(),
            },
        );
        let report = t.unsolvable(Some(2));
        assert!(report.unsolvable[0].is_empty());
        assert_eq!(report.missing[0].len(), 1);
    }

    #[test]
    fn k_values_resolve_per_model() {
        let mut t = ModelTables::new();
        t.add_problem("small", "p", record(3, 1, Some(0), &[]));
        t.add_problem("large", "p", record(16, 1, Some(0), &[]));
        let doc = t.passk(&KSelection::Default);
        assert_eq!(doc.models[0].ks, [1, 2, 3]);
        assert_eq!(doc.models[1].ks, [1, 2, 4, 8, 16]);
    }
}
