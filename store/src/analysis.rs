//! The one read model of an experiment: its runs with their per-problem aggregates
//! (`run_problem_stats`, problem tags) and stored run aggregates ([`Store::experiment_data`]),
//! which the pages read per run and the REST reports read merged per model
//! ([`Store::model_tables`], the same [`ModelTables`] `caplens passk|unsolvable|summary` builds
//! from files). Never the rollouts, except the few groups a reviewer's override recounts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use caplens_analysis::review::{
    reviewed_counts, unanimous_verdicts, ReviewRollout, ReviewedCounts, VerdictOverride,
};
use caplens_analysis::rollup::RunAggregates;
use caplens_analysis::sets::ProblemOutcome;
use caplens_analysis::tables::{ModelTables, ProblemRecord};
use caplens_analysis::verdicts::{CaplensVerdict, RolloutVerdicts, VerdictSource};
use caplens_analysis::verifier::normalize_answer;
use caplens_model::model::{ExperimentSummary, RunRow};

use super::review::ReviewRolloutRow;
use super::{db, Store};
use crate::error::StoreError;

/// One problem of one run, as stored at import.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemStat {
    pub problem_id: i64,
    /// `dataset/key`, the key `caplens unsolvable` uses.
    pub key: String,
    pub tags: Vec<String>,
    pub n: u64,
    pub c: u64,
    /// 0-based position of the first correct sample in sampling order.
    pub first_correct: Option<u64>,
    pub order_known: bool,
    pub distinct_answers: u64,
    /// The distinct normalised answers; read only for [`Store::model_tables`] (empty otherwise).
    pub answers: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct RunData {
    pub row: RunRow,
    /// In order of first appearance in the run.
    pub problems: Vec<ProblemStat>,
    pub aggregates: Option<RunAggregates>,
}

/// An experiment's completed runs, in lineage order, with everything the views compute from.
#[derive(Debug, Clone)]
pub struct ExperimentData {
    pub summary: ExperimentSummary,
    pub runs: Vec<RunData>,
    /// Whose verdicts `ProblemStat::c` counts (`None`: each run's default).
    pub verdicts: Option<VerdictSource>,
    /// The reviewers' verdict overrides and whether the counts include them.
    pub review: ReviewApplied,
}

/// How the reviewers' verdict overrides (issue 15) entered an experiment's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReviewApplied {
    /// The counts include the overrides (`reviewed=1`).
    pub reviewed: bool,
    /// Overrides recorded on the experiment.
    pub overrides: u64,
    /// Rollouts whose verdict the overrides change (under the chosen source).
    pub changed_rollouts: u64,
}

/// A rollout's verdict under `source` as `run_problem_stats` counts it (`None`: the run's
/// default, the `correct` column; rows without per-source verdicts fall back to it too).
pub fn rollout_verdict(r: &ReviewRolloutRow, source: Option<VerdictSource>) -> bool {
    match source {
        Some(source) if r.file_correct.is_some() || r.caplens_verdict.is_some() => {
            RolloutVerdicts {
                file: r.file_correct,
                caplens: CaplensVerdict::from_code(r.caplens_verdict),
            }
            .under(source)
            .unwrap_or(false)
        }
        _ => r.correct,
    }
}

/// The `run_problem_stats` expressions (alias `s`) of the correct count and the first correct
/// sample under `verdicts` (`None`: the run's default, columns `c` / `first_correct_sample`).
/// Rows written before verdicts were kept apart have NULL per-source columns: `c` is both.
pub fn verdict_columns(verdicts: Option<VerdictSource>) -> (&'static str, &'static str) {
    match verdicts {
        None => ("s.c", "s.first_correct_sample"),
        Some(VerdictSource::File) => (
            "COALESCE(s.c_file, s.c)",
            "CASE WHEN s.c_file IS NULL THEN s.first_correct_sample ELSE s.first_correct_file END",
        ),
        Some(VerdictSource::Caplens) => (
            "COALESCE(s.c_caplens, s.c)",
            "CASE WHEN s.c_caplens IS NULL THEN s.first_correct_sample ELSE s.first_correct_caplens END",
        ),
    }
}

impl Store {
    /// A cheap fingerprint of an experiment's data: it changes whenever a run is added to,
    /// removed from or finished in the experiment, so cached views can be reused until then.
    pub async fn experiment_stamp(&self, slug: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(i64, i64, i64, Option<String>, i64)> = db(sqlx::query_as(
            "SELECT e.id,
                    (SELECT COUNT(*) FROM experiment_runs er WHERE er.experiment_id = e.id),
                    (SELECT COALESCE(MAX(er.run_id), 0) FROM experiment_runs er WHERE er.experiment_id = e.id),
                    (SELECT MAX(r.status || r.finished_at || COALESCE(r.updated_at, '')) FROM experiment_runs er JOIN runs r ON r.id = er.run_id
                      WHERE er.experiment_id = e.id),
                    e.review_version
             FROM experiments e WHERE e.slug = $1",
        )
        .bind(slug)
        .fetch_optional(&self.pool)
        .await)?;
        Ok(row.map(|(id, count, max, fin, review)| {
            format!("{id}:{count}:{max}:{}:{review}", fin.unwrap_or_default())
        }))
    }

    /// An experiment's runs and per-problem aggregates, with each run's correct counts under
    /// `verdicts` (`None`: each run's default source), and under the reviewers' verdict
    /// overrides when `reviewed`.
    pub async fn experiment_data(
        &self,
        slug: &str,
        verdicts: Option<VerdictSource>,
        reviewed: bool,
    ) -> Result<Option<ExperimentData>, StoreError> {
        self.read_experiment(slug, verdicts, reviewed, false).await
    }

    /// The per-model tables of an experiment's completed runs (runs taken in id order, models
    /// and problems in order of first appearance), under `verdicts` and, when `reviewed`, the
    /// reviewers' overrides: the REST read API's pass@k, unsolvable and summary documents.
    /// `None` when there is no such experiment.
    pub async fn model_tables(
        &self,
        slug: &str,
        verdicts: Option<VerdictSource>,
        reviewed: bool,
    ) -> Result<Option<ModelTables>, StoreError> {
        let Some(mut data) = self.read_experiment(slug, verdicts, reviewed, true).await? else {
            return Ok(None);
        };
        data.runs.sort_by_key(|r| r.row.id);
        let mut tables = ModelTables::new();
        for run in data.runs {
            let model = &run.row.model;
            tables.add_totals(model, &run.aggregates.map(|a| a.totals).unwrap_or_default());
            for p in run.problems {
                let outcome = ProblemOutcome {
                    n: p.n,
                    c: p.c,
                    first_correct_position: p.first_correct,
                    order_known: p.order_known,
                };
                tables.add_problem(
                    model,
                    &p.key,
                    ProblemRecord {
                        outcome,
                        answers: p.answers,
                    },
                );
            }
        }
        Ok(Some(tables))
    }

    /// [`Self::experiment_data`], with each problem's answers when `answers`.
    async fn read_experiment(
        &self,
        slug: &str,
        verdicts: Option<VerdictSource>,
        reviewed: bool,
        answers: bool,
    ) -> Result<Option<ExperimentData>, StoreError> {
        let Some(detail) = self.experiment(slug).await? else {
            return Ok(None);
        };
        let runs: Vec<RunRow> = detail
            .runs
            .into_iter()
            .filter(|r| r.status == "completed")
            .collect();
        type StatRow = (
            i64,
            i64,
            String,
            String,
            String,
            i64,
            i64,
            Option<i64>,
            i64,
            i64,
            String,
        );
        let (c, first) = verdict_columns(verdicts);
        let answers_column = if answers { "s.answers" } else { "''" };
        let sql = format!(
            "SELECT s.run_id, s.problem_id, d.name, p.problem_key, p.tags, s.n, {c},
                    {first}, s.order_known, s.distinct_answers, {answers_column}
             FROM run_problem_stats s JOIN problems p ON p.id = s.problem_id
             JOIN datasets d ON d.id = p.dataset_id
             JOIN experiment_runs er ON er.run_id = s.run_id
             JOIN experiments e ON e.id = er.experiment_id
             WHERE e.slug = $1
             ORDER BY s.run_id, s.position, s.problem_id"
        );
        let stats: Vec<StatRow> = db(sqlx::query_as(&sql).bind(slug).fetch_all(&self.pool).await)?;
        let aggregates: Vec<(i64, Option<String>)> = db(sqlx::query_as(
            "SELECT r.id, r.aggregates FROM runs r JOIN experiment_runs er ON er.run_id = r.id
             JOIN experiments e ON e.id = er.experiment_id WHERE e.slug = $1",
        )
        .bind(slug)
        .fetch_all(&self.pool)
        .await)?;
        let mut aggregates: HashMap<i64, RunAggregates> = aggregates
            .into_iter()
            .filter_map(|(id, a)| Some((id, serde_json::from_str(a.as_deref()?).ok()?)))
            .collect();
        let mut by_run: HashMap<i64, Vec<ProblemStat>> = HashMap::new();
        let mut tag_cache: HashMap<String, Vec<String>> = HashMap::new();
        for (run_id, problem_id, dataset, key, tags, n, c, first, order_known, distinct, answers) in
            stats
        {
            // The dataset is a filter too ("dataset:aime24"), next to the problem's own tags.
            let tags = tag_cache
                .entry(format!("{dataset}\u{0}{tags}"))
                .or_insert_with(|| {
                    let mut t: Vec<String> = serde_json::from_str(&tags).unwrap_or_default();
                    t.push(format!("dataset:{dataset}"));
                    t
                })
                .clone();
            by_run.entry(run_id).or_default().push(ProblemStat {
                problem_id,
                key: if dataset.is_empty() {
                    key
                } else {
                    format!("{dataset}/{key}")
                },
                tags,
                n: n.max(0) as u64,
                c: c.max(0) as u64,
                first_correct: first.map(|f| f.max(0) as u64),
                order_known: order_known != 0,
                distinct_answers: distinct.max(0) as u64,
                answers: if answers.is_empty() {
                    BTreeSet::new()
                } else {
                    // normalised answer -> rollouts that gave it (`bulk::rows`)
                    serde_json::from_str::<BTreeMap<String, u64>>(&answers)
                        .unwrap_or_default()
                        .into_keys()
                        .collect()
                },
            });
        }
        let review = self
            .apply_overrides(slug, verdicts, reviewed, &mut by_run)
            .await?;
        Ok(Some(ExperimentData {
            verdicts,
            review,
            summary: detail.summary,
            runs: runs
                .into_iter()
                .map(|row| RunData {
                    problems: by_run.remove(&row.id).unwrap_or_default(),
                    aggregates: aggregates.remove(&row.id),
                    row,
                })
                .collect(),
        }))
    }

    /// Recounts the (run, problem) groups the experiment's overrides touch (only those: the
    /// rest keep their stored counts) and says how the overrides entered.
    async fn apply_overrides(
        &self,
        slug: &str,
        verdicts: Option<VerdictSource>,
        reviewed: bool,
        by_run: &mut HashMap<i64, Vec<ProblemStat>>,
    ) -> Result<ReviewApplied, StoreError> {
        let groups = self.reviewed_groups(slug, verdicts).await?;
        let mut applied = ReviewApplied {
            reviewed,
            overrides: groups.overrides,
            changed_rollouts: 0,
        };
        for (run_id, stats) in by_run.iter_mut() {
            for stat in stats.iter_mut() {
                let Some(counts) = groups.counts(*run_id, stat.problem_id, stat.n) else {
                    continue;
                };
                applied.changed_rollouts += counts.changed;
                if reviewed {
                    stat.c = counts.c;
                    stat.first_correct = counts.first_correct;
                }
            }
        }
        Ok(applied)
    }

    /// The reviewed counts of every (run, problem) group of the experiment that an override
    /// touches, under `verdicts`: reads only those groups' rollouts.
    pub async fn reviewed_groups(
        &self,
        slug: &str,
        verdicts: Option<VerdictSource>,
    ) -> Result<ReviewedGroups, StoreError> {
        let mut out = ReviewedGroups::default();
        let Some(experiment) = self.experiment_ref(slug).await? else {
            return Ok(out);
        };
        let by_problem = self.decided_verdicts(experiment.id, None).await?;
        out.overrides = by_problem.values().map(|v| v.len() as u64).sum();
        if by_problem.is_empty() {
            return Ok(out);
        }
        let problems: Vec<i64> = by_problem.keys().copied().collect();
        let mut groups: HashMap<(i64, i64), Vec<ReviewRollout>> = HashMap::new();
        for r in self.review_rollouts(experiment.id, &problems).await? {
            groups
                .entry((r.run_id, r.problem_id))
                .or_default()
                .push(ReviewRollout {
                    id: r.id,
                    order: r.sample_index,
                    answer: r.answer.as_deref().map(normalize_answer),
                    correct: rollout_verdict(&r, verdicts),
                });
        }
        out.groups = groups
            .into_iter()
            .map(|(key, group)| {
                (
                    key,
                    (
                        group.len() as u64,
                        reviewed_counts(&group, &by_problem[&key.1]),
                    ),
                )
            })
            .collect();
        Ok(out)
    }
}

impl Store {
    /// What reviewers decided in an experiment, per problem (optionally one): the editors'
    /// verdict overrides, then the targets on which every reviewer's judgement agrees and no
    /// override decides (`analysis::review::unanimous_verdicts`; issue 27).
    pub async fn decided_verdicts(
        &self,
        experiment_id: i64,
        problem_id: Option<i64>,
    ) -> Result<HashMap<i64, Vec<VerdictOverride>>, StoreError> {
        let mut by_problem: HashMap<i64, Vec<VerdictOverride>> = HashMap::new();
        for o in self.overrides(experiment_id, problem_id).await? {
            by_problem
                .entry(o.problem_id)
                .or_default()
                .push(VerdictOverride {
                    rollout: o.rollout,
                    answer: o.answer,
                    correct: o.verdict == "correct",
                });
        }
        let mut judged: HashMap<i64, Vec<VerdictOverride>> = HashMap::new();
        for j in self.judgements(experiment_id, problem_id).await? {
            judged
                .entry(j.problem_id)
                .or_default()
                .push(VerdictOverride {
                    rollout: j.rollout,
                    answer: j.answer,
                    correct: j.verdict == "correct",
                });
        }
        for (problem, judgements) in judged {
            let overrides = by_problem.entry(problem).or_default();
            let decided = unanimous_verdicts(overrides, &judgements);
            overrides.extend(decided);
        }
        by_problem.retain(|_, v| !v.is_empty());
        Ok(by_problem)
    }
}

/// Reviewed counts of the (run, problem) groups an experiment's overrides touch.
#[derive(Debug, Clone, Default)]
pub struct ReviewedGroups {
    pub overrides: u64,
    /// (run, problem) → (rollouts stored, counts under the overrides).
    pub groups: HashMap<(i64, i64), (u64, ReviewedCounts)>,
}

impl ReviewedGroups {
    /// The group's reviewed counts, when its rollouts are all stored (`n` of them): runs
    /// stored as counts only have nothing to recount.
    pub fn counts(&self, run_id: i64, problem_id: i64, n: u64) -> Option<ReviewedCounts> {
        self.groups
            .get(&(run_id, problem_id))
            .filter(|(rollouts, _)| *rollouts == n)
            .map(|(_, c)| *c)
    }
}
