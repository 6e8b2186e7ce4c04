//! The report documents of `caplens passk | unsolvable | summary --json` and of
//! `GET /api/v1/experiments/{slug}/passk | unsolvable | summary`: one definition of each JSON
//! shape, fed by the CLI from files and by the API from the aggregates stored at import, so
//! both print the same document for the same rollouts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use caplens_analysis::passk::{default_ks, pass_at_k_curve, CurvePoint, ProblemCounts};
use caplens_analysis::sets::{compare_unsolvable, ModelOutcomes, ProblemOutcome, UnsolvableReport};
use caplens_analysis::summary::{summary_from_parts, ModelSummary, ProblemPart, RolloutTotals};
use serde::ser::SerializeMap;
use serde::Serialize;

use crate::error::StoreError;
use crate::storage::analysis::ReportRows;
use crate::storage::Store;

/// The k values of `caplens passk --k`.
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

/// pass@k per model (eq. 2 averaged over problems with n >= k), models in the order given. The
/// k values are resolved per model, from its own largest n: a model with n = 200 beside one with
/// n = 2048 gets its pass@200, not a curve that stops at 128.
pub fn passk_doc(names: &[String], tables: &[Vec<ProblemCounts>], ks: &KSelection) -> PasskDoc {
    PasskDoc {
        models: names
            .iter()
            .zip(tables)
            .map(|(name, t)| {
                let ks = ks.clone().resolve(t.iter().map(|p| p.n).max().unwrap_or(0));
                PasskModel {
                    model: name.clone(),
                    problems: t.len(),
                    rollouts: t.iter().map(|p| p.n).sum(),
                    points: pass_at_k_curve(t, &ks),
                    ks,
                }
            })
            .collect(),
    }
}

/// A JSON object written in the given key order (serde_json's `Map` would sort the keys).
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

#[derive(Serialize)]
struct UnsolvableJson<'a> {
    k: Option<u64>,
    models: &'a [String],
    unsolvable: OrderedObject<'a, Vec<&'a str>>,
    regions: Vec<RegionJson<'a>>,
    missing: OrderedObject<'a, Vec<&'a str>>,
}

/// The `unsolvable --json` document (one line, no newline).
pub fn unsolvable_json(report: &UnsolvableReport) -> String {
    let names = &report.models;
    let doc = UnsolvableJson {
        k: report.k,
        models: names,
        unsolvable: OrderedObject(
            names
                .iter()
                .zip(&report.unsolvable)
                .map(|(m, list)| {
                    (
                        m.as_str(),
                        list.iter().map(|u| u.problem_id.as_str()).collect(),
                    )
                })
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
        missing: OrderedObject(
            names
                .iter()
                .zip(&report.missing)
                .map(|(m, list)| {
                    (
                        m.as_str(),
                        list.iter().map(|p| p.problem_id.as_str()).collect(),
                    )
                })
                .collect(),
        ),
    };
    serde_json::to_string(&doc).expect("the report serialises")
}

#[derive(Debug, Serialize)]
pub struct SummaryRow {
    pub model: String,
    #[serde(flatten)]
    pub summary: ModelSummary,
}

#[derive(Debug, Serialize)]
pub struct SummaryDoc {
    pub models: Vec<SummaryRow>,
}

pub fn summary_doc(rows: Vec<(String, ModelSummary)>) -> SummaryDoc {
    SummaryDoc {
        models: rows
            .into_iter()
            .map(|(model, summary)| SummaryRow { model, summary })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// From the database: an experiment's stored aggregates, grouped by model name like the CLI
// groups by the files' `model` field.

/// One problem of one model, merged over that model's runs in the experiment.
#[derive(Debug, Clone, Default)]
struct StoredProblem {
    n: u64,
    c: u64,
    /// Position of the first correct rollout; runs are taken one after the other.
    first_correct: Option<u64>,
    order_known: bool,
    answers: BTreeSet<String>,
}

/// The per-model tables of an experiment, in order of first appearance (runs by id, problems by
/// their first appearance in the run).
pub struct ExperimentTables {
    pub models: Vec<String>,
    problems: Vec<Vec<(String, StoredProblem)>>,
    totals: Vec<RolloutTotals>,
}

/// The stored aggregates of an experiment; `None` when there is no such experiment.
/// With `verdicts`, the correct counts are that source's (`None`: each run's default);
/// with `reviewed`, the reviewers' verdict overrides are applied on top (issue 15).
pub async fn experiment_tables(
    store: &Store,
    slug: &str,
    verdicts: Option<caplens_analysis::verdicts::VerdictSource>,
    reviewed: bool,
) -> Result<Option<ExperimentTables>, StoreError> {
    let Some(ReportRows { runs, stats }) = store.experiment_report_rows(slug, verdicts).await?
    else {
        return Ok(None);
    };
    let review = if reviewed {
        Some(store.reviewed_groups(slug, verdicts).await?)
    } else {
        None
    };
    let mut tables = ExperimentTables {
        models: Vec::new(),
        problems: Vec::new(),
        totals: Vec::new(),
    };
    let mut model_index: HashMap<String, usize> = HashMap::new();
    let mut run_model: HashMap<i64, usize> = HashMap::new();
    for (run_id, model, aggregates) in runs {
        let m = *model_index.entry(model.clone()).or_insert_with(|| {
            tables.models.push(model);
            tables.problems.push(Vec::new());
            tables.totals.push(RolloutTotals::default());
            tables.models.len() - 1
        });
        run_model.insert(run_id, m);
        if let Some(agg) = aggregates
            .as_deref()
            .and_then(|a| serde_json::from_str::<caplens_analysis::rollup::RunAggregates>(a).ok())
        {
            tables.totals[m].merge(&agg.totals);
        }
    }
    let mut problem_index: Vec<HashMap<String, usize>> = vec![HashMap::new(); tables.models.len()];
    for (run_id, problem_id, dataset, key, n, c, first, order_known, answers) in stats {
        let (c, first) = match review
            .as_ref()
            .and_then(|r| r.counts(run_id, problem_id, n.max(0) as u64))
        {
            Some(counts) => (counts.c as i64, counts.first_correct.map(|f| f as i64)),
            None => (c, first),
        };
        let Some(&m) = run_model.get(&run_id) else {
            continue;
        };
        let key = if dataset.is_empty() {
            key
        } else {
            format!("{dataset}/{key}")
        };
        let list = &mut tables.problems[m];
        let i = *problem_index[m].entry(key.clone()).or_insert_with(|| {
            list.push((
                key,
                StoredProblem {
                    order_known: true,
                    ..Default::default()
                },
            ));
            list.len() - 1
        });
        let p = &mut list[i].1;
        if p.first_correct.is_none() {
            p.first_correct = first.map(|f| p.n + f as u64);
        }
        p.n += n as u64;
        p.c += c as u64;
        p.order_known &= order_known != 0;
        let answers: BTreeMap<String, u64> = serde_json::from_str(&answers).unwrap_or_default();
        p.answers.extend(answers.into_keys());
    }
    Ok(Some(tables))
}

impl ExperimentTables {
    pub fn passk(&self, ks: KSelection) -> PasskDoc {
        let tables: Vec<Vec<ProblemCounts>> = self
            .problems
            .iter()
            .map(|list| {
                list.iter()
                    .map(|(_, p)| ProblemCounts { n: p.n, c: p.c })
                    .collect()
            })
            .collect();
        passk_doc(&self.models, &tables, &ks)
    }

    pub fn unsolvable(&self, k: Option<u64>) -> UnsolvableReport {
        let compared: Vec<ModelOutcomes> = self
            .models
            .iter()
            .zip(&self.problems)
            .map(|(model, list)| ModelOutcomes {
                model: model.clone(),
                problems: list
                    .iter()
                    .map(|(key, p)| {
                        // Without k only counts matter, as in `caplens unsolvable`.
                        let outcome = if k.is_none() || !p.order_known || p.n == 0 {
                            ProblemOutcome::from_counts(p.n, p.c)
                        } else {
                            ProblemOutcome {
                                n: p.n,
                                c: p.c,
                                first_correct_position: p.first_correct,
                                order_known: true,
                            }
                        };
                        (key.clone(), outcome)
                    })
                    .collect(),
            })
            .collect();
        compare_unsolvable(&compared, k)
    }

    pub fn summary(&self) -> SummaryDoc {
        summary_doc(
            self.models
                .iter()
                .zip(&self.problems)
                .zip(&self.totals)
                .map(|((model, list), totals)| {
                    let parts: Vec<ProblemPart> = list
                        .iter()
                        .map(|(_, p)| ProblemPart {
                            n: p.n,
                            c: p.c,
                            distinct_answers: p.answers.len(),
                        })
                        .collect();
                    (model.clone(), summary_from_parts(&parts, totals))
                })
                .collect(),
        )
    }
}
