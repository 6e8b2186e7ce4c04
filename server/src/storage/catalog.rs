//! The catalog: experiments, models, datasets, runs and their per-problem aggregates.
//!
//! Reads return the app's view models (`caplens_app::model`), so pages, the REST API and the
//! CLI show the same rows. Writes used by loaders (demo, importers) take plain structs and run
//! inside a caller's transaction, so a load either fully appears or not at all.

use std::collections::HashMap;

use caplens_app::model::{
    lineage_forest, DatasetRow, ExperimentDetail, ExperimentSummary, LineageNode, ModelRow, RunRow,
    RunVerdicts,
};
use sqlx::{any::AnyRow, Any, Row, Transaction};
use caplens_analysis::verdicts::{VerdictSource, VerdictTally};

use super::{db, Store};
use crate::error::StoreError;

const RUN_SELECT: &str = "
    SELECT r.id, r.label, m.id AS model_id, m.name AS model, m.stage, p.name AS parent_model,
           m.training_step, d.name AS dataset, r.temperature, r.top_p, r.max_tokens,
           r.n_per_problem, r.status, r.origin, r.created_at,
           (SELECT COUNT(*) FROM run_problem_stats s WHERE s.run_id = r.id) AS problems,
           (SELECT CAST(COALESCE(SUM(s.n), 0) AS BIGINT) FROM run_problem_stats s
             WHERE s.run_id = r.id) AS rollouts,
           (SELECT AVG(CAST(s.c AS DOUBLE PRECISION) / s.n) FROM run_problem_stats s
             WHERE s.run_id = r.id AND s.n > 0) AS pass_at_1,
           (SELECT AVG(CAST(COALESCE(s.c_file, s.c) AS DOUBLE PRECISION) / s.n) FROM run_problem_stats s
             WHERE s.run_id = r.id AND s.n > 0) AS pass_at_1_file,
           (SELECT AVG(CAST(COALESCE(s.c_caplens, s.c) AS DOUBLE PRECISION) / s.n) FROM run_problem_stats s
             WHERE s.run_id = r.id AND s.n > 0) AS pass_at_1_caplens,
           r.default_verdicts, r.verdict_tally, r.source_info
    FROM runs r
    JOIN models m ON m.id = r.model_id
    LEFT JOIN models p ON p.id = m.parent_id
    JOIN datasets d ON d.id = r.dataset_id";

fn run_row(row: &AnyRow) -> Result<RunRow, sqlx::Error> {
    Ok(RunRow {
        id: row.try_get("id")?,
        label: row.try_get("label")?,
        model: row.try_get("model")?,
        stage: row.try_get("stage")?,
        parent_model: row.try_get("parent_model")?,
        training_step: row.try_get("training_step")?,
        dataset: row.try_get("dataset")?,
        temperature: row.try_get("temperature")?,
        top_p: row.try_get("top_p")?,
        max_tokens: row.try_get("max_tokens")?,
        n_per_problem: row.try_get("n_per_problem")?,
        status: row.try_get("status")?,
        origin: row.try_get("origin")?,
        created_at: row.try_get("created_at")?,
        problems: row.try_get("problems")?,
        rollouts: row.try_get("rollouts")?,
        pass_at_1: row.try_get("pass_at_1")?,
        lineage_depth: 0,
        verdicts: run_verdicts(row)?,
    })
}

/// The verdict columns of a run row (`RUN_SELECT`).
fn run_verdicts(row: &AnyRow) -> Result<RunVerdicts, sqlx::Error> {
    #[derive(serde::Deserialize, Default)]
    struct Source {
        tool: Option<String>,
        status: Option<String>,
        verdict: Option<String>,
    }
    let source: Source = row
        .try_get::<Option<String>, _>("source_info")?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    Ok(RunVerdicts {
        default: row
            .try_get::<Option<String>, _>("default_verdicts")?
            .and_then(|s| VerdictSource::parse(&s))
            .unwrap_or_default(),
        tally: row
            .try_get::<Option<String>, _>("verdict_tally")?
            .and_then(|s| serde_json::from_str(&s).ok()),
        pass_at_1_file: row.try_get("pass_at_1_file")?,
        pass_at_1_caplens: row.try_get("pass_at_1_caplens")?,
        tool: source.tool,
        tool_status: source.status,
        verdict_name: source.verdict,
    })
}

fn experiment_summary(row: &AnyRow) -> Result<ExperimentSummary, sqlx::Error> {
    Ok(ExperimentSummary {
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        is_demo: row.try_get::<i64, _>("is_demo")? != 0,
        run_count: row.try_get("run_count")?,
        model_count: row.try_get("model_count")?,
        created_at: row.try_get("created_at")?,
        project: row.try_get("project")?,
    })
}

const EXPERIMENT_SELECT: &str = "
    SELECT e.id, e.slug, e.name, e.description, e.is_demo, e.created_at,
           (SELECT COUNT(*) FROM experiment_runs er WHERE er.experiment_id = e.id) AS run_count,
           (SELECT COUNT(DISTINCT r.model_id) FROM experiment_runs er
              JOIN runs r ON r.id = er.run_id WHERE er.experiment_id = e.id) AS model_count,
           (SELECT p.slug FROM projects p WHERE p.id = e.project_id) AS project
    FROM experiments e";

impl Store {
    pub async fn experiments(&self) -> Result<Vec<ExperimentSummary>, StoreError> {
        let sql = format!("{EXPERIMENT_SELECT} ORDER BY e.created_at DESC, e.id DESC");
        let rows = db(sqlx::query(&sql).fetch_all(&self.pool).await)?;
        db(rows.iter().map(experiment_summary).collect())
    }

    pub async fn experiment(&self, slug: &str) -> Result<Option<ExperimentDetail>, StoreError> {
        let sql = format!("{EXPERIMENT_SELECT} WHERE e.slug = $1");
        let Some(row) = db(sqlx::query(&sql)
            .bind(slug)
            .fetch_optional(&self.pool)
            .await)?
        else {
            return Ok(None);
        };
        let id: i64 = db(row.try_get("id"))?;
        let summary = db(experiment_summary(&row))?;
        let sql = format!(
            "{RUN_SELECT} JOIN experiment_runs er ON er.run_id = r.id WHERE er.experiment_id = $1 ORDER BY r.id"
        );
        let rows = db(sqlx::query(&sql).bind(id).fetch_all(&self.pool).await)?;
        let mut runs = self.with_lineage(&rows).await?;
        runs.sort_by_key(|(rank, run)| (*rank, run.id));
        Ok(Some(ExperimentDetail {
            summary,
            runs: runs.into_iter().map(|(_, r)| r).collect(),
        }))
    }

    pub async fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let sql = format!("{RUN_SELECT} ORDER BY r.created_at DESC, r.id DESC");
        let rows = db(sqlx::query(&sql).fetch_all(&self.pool).await)?;
        Ok(self
            .with_lineage(&rows)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Decodes run rows and fills in each run's lineage depth, paired with its model's rank in
    /// lineage order (for sorting).
    async fn with_lineage(&self, rows: &[AnyRow]) -> Result<Vec<(usize, RunRow)>, StoreError> {
        let lineage = lineage_positions(&self.models().await?);
        rows.iter()
            .map(|row| {
                let mut run = db(run_row(row))?;
                let model_id: i64 = db(row.try_get("model_id"))?;
                let (rank, depth) = lineage.get(&model_id).copied().unwrap_or((usize::MAX, 0));
                run.lineage_depth = depth;
                Ok((rank, run))
            })
            .collect()
    }

    pub async fn models(&self) -> Result<Vec<ModelRow>, StoreError> {
        let rows = db(sqlx::query(
            "SELECT m.id, m.name, m.family, m.stage, m.parent_id, m.training_step, m.notes,
                    (SELECT COUNT(*) FROM runs r WHERE r.model_id = m.id) AS run_count
             FROM models m ORDER BY m.id",
        )
        .fetch_all(&self.pool)
        .await)?;
        db(rows
            .iter()
            .map(|row| {
                Ok(ModelRow {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    family: row.try_get("family")?,
                    stage: row.try_get("stage")?,
                    parent_id: row.try_get("parent_id")?,
                    training_step: row.try_get("training_step")?,
                    notes: row.try_get("notes")?,
                    run_count: row.try_get("run_count")?,
                })
            })
            .collect())
    }

    pub async fn datasets(&self) -> Result<Vec<DatasetRow>, StoreError> {
        let rows = db(sqlx::query(
            "SELECT d.id, d.name, d.description, d.source, d.created_at,
                    (SELECT COUNT(*) FROM problems p WHERE p.dataset_id = d.id) AS problem_count
             FROM datasets d ORDER BY d.name",
        )
        .fetch_all(&self.pool)
        .await)?;
        db(rows
            .iter()
            .map(|row| {
                Ok(DatasetRow {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    source: row.try_get("source")?,
                    problem_count: row.try_get("problem_count")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect())
    }

    /// Number of experiments (0 on a fresh database).
    pub async fn experiment_count(&self) -> Result<i64, StoreError> {
        db(sqlx::query_scalar("SELECT COUNT(*) FROM experiments")
            .fetch_one(&self.pool)
            .await)
    }
}

/// Each model's (rank, depth) in lineage order: roots first, each child right after its parent
/// (depth-first), so runs of base -> sft -> rl list in that order; depth counts generations.
pub(super) fn lineage_positions(models: &[ModelRow]) -> HashMap<i64, (usize, u32)> {
    fn walk(node: &LineageNode, depth: u32, out: &mut HashMap<i64, (usize, u32)>) {
        let rank = out.len();
        out.insert(node.model.id, (rank, depth));
        for child in &node.children {
            walk(child, depth + 1, out);
        }
    }
    let mut out = HashMap::new();
    for root in lineage_forest(models) {
        walk(&root, 0, &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Writes. Each takes the caller's transaction.

pub type Tx<'a> = Transaction<'a, Any>;

/// A model to create (or find by name).
pub struct NewModel<'a> {
    pub name: &'a str,
    pub family: &'a str,
    pub stage: &'a str,
    pub parent_id: Option<i64>,
    pub training_step: Option<i64>,
    pub notes: &'a str,
}

/// A run to create.
pub struct NewRun<'a> {
    pub model_id: i64,
    pub dataset_id: i64,
    pub label: &'a str,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
    pub n_per_problem: Option<i64>,
    pub seed: Option<i64>,
    pub prompt_template: Option<&'a str>,
    pub status: &'a str,
    pub origin: &'a str,
}

/// One rollout to store.
pub struct NewRollout<'a> {
    pub problem_id: i64,
    pub sample_index: i64,
    pub response: Option<&'a str>,
    pub extracted_answer: Option<&'a str>,
    pub correct: bool,
    pub token_count: Option<i64>,
    pub quality_flags: i64,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
    /// (blob key of the run's trace pack, offset, length) of the rollout's token trace.
    pub trace: Option<(&'a str, i64, i64)>,
}

/// Per (run, problem) aggregate row.
pub struct ProblemStats {
    pub problem_id: i64,
    /// Order of first appearance of the problem in the run.
    pub position: i64,
    pub n: i64,
    /// Correct samples under the run's default verdict source.
    pub c: i64,
    /// 0-based position of the first correct rollout in sampling order (default source).
    pub first_correct_sample: Option<i64>,
    /// `c` and `first_correct_sample` under the file's and under caplens' verdicts
    /// (`analysis::verdicts`), indexed like `VerdictSource::ALL`.
    pub by_source: [(i64, Option<i64>); 2],
    pub distinct_answers: i64,
    /// False when count-only data contributed (no order).
    pub order_known: bool,
    /// JSON object: normalised answer -> rollouts that gave it.
    pub answers: String,
}

impl ProblemStats {
    /// The stored row of one problem's rollup (the demo and imports write the same thing), with
    /// `default` the run's default verdict source.
    pub fn of_rollup(
        problem_id: i64,
        position: usize,
        p: &caplens_analysis::rollup::ProblemRollup,
        default: VerdictSource,
    ) -> Self {
        let by_source = VerdictSource::ALL.map(|source| {
            let outcome = p.outcome_under(source);
            (outcome.c as i64, outcome.first_correct_position.map(|x| x as i64))
        });
        let outcome = p.outcome_under(default);
        ProblemStats {
            problem_id,
            position: position as i64,
            n: p.n() as i64,
            c: outcome.c as i64,
            first_correct_sample: outcome.first_correct_position.map(|x| x as i64),
            by_source,
            distinct_answers: p.answers().len() as i64,
            order_known: outcome.order_known,
            answers: serde_json::to_string(p.answers()).expect("a map of strings serialises"),
        }
    }
}

/// Bits of `rollouts.quality_flags` (paper-notes items 9 and 17).
pub mod quality_flags {
    pub const FORMAT_VIOLATION: i64 = 1 << 0;
    pub const LANGUAGE_MIXING: i64 = 1 << 1;
    pub const REDUNDANT: i64 = 1 << 2;
    pub const NO_DIGIT: i64 = 1 << 3;

    /// The flags of one response, by the checks in `caplens_analysis::quality`.
    pub fn of_response(response: &str) -> i64 {
        of_checks(caplens_analysis::quality::QualityChecks::of(response))
    }

    pub fn of_checks(checks: caplens_analysis::quality::QualityChecks) -> i64 {
        let mut flags = 0;
        if checks.format_violation {
            flags |= FORMAT_VIOLATION;
        }
        if checks.language_mixing {
            flags |= LANGUAGE_MIXING;
        }
        if checks.redundant {
            flags |= REDUNDANT;
        }
        if checks.no_digit {
            flags |= NO_DIGIT;
        }
        flags
    }
}

pub async fn insert_dataset(
    tx: &mut Tx<'_>,
    name: &str,
    description: &str,
    source: &str,
) -> Result<i64, StoreError> {
    db(sqlx::query_scalar(
        "INSERT INTO datasets (name, description, source, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(description)
    .bind(source)
    .bind(super::now_rfc3339())
    .fetch_one(&mut **tx)
    .await)
}

/// Gives a dataset created by a load the load's project (by slug; `default` when none).
/// Datasets without a project are shared by every project (the built-in dataset).
pub async fn set_dataset_project(
    tx: &mut Tx<'_>,
    dataset_id: i64,
    project: Option<&str>,
) -> Result<(), StoreError> {
    db(sqlx::query(
        "UPDATE datasets SET project_id = (SELECT id FROM projects WHERE slug = $1) WHERE id = $2",
    )
    .bind(project.unwrap_or(super::access::DEFAULT_PROJECT))
    .bind(dataset_id)
    .execute(&mut **tx)
    .await)?;
    Ok(())
}

pub async fn insert_problem(
    tx: &mut Tx<'_>,
    dataset_id: i64,
    key: &str,
    prompt: &str,
    reference_answer: &str,
    source: &str,
    tags: &[String],
) -> Result<i64, StoreError> {
    let tags = serde_json::to_string(tags).expect("a list of strings serialises");
    db(sqlx::query_scalar(
        "INSERT INTO problems (dataset_id, problem_key, prompt, reference_answer, source, tags)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(dataset_id)
    .bind(key)
    .bind(prompt)
    .bind(reference_answer)
    .bind(source)
    .bind(tags)
    .fetch_one(&mut **tx)
    .await)
}

pub async fn insert_model(tx: &mut Tx<'_>, m: &NewModel<'_>) -> Result<i64, StoreError> {
    db(sqlx::query_scalar(
        "INSERT INTO models (name, family, stage, parent_id, training_step, notes, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(m.name)
    .bind(m.family)
    .bind(m.stage)
    .bind(m.parent_id)
    .bind(m.training_step)
    .bind(m.notes)
    .bind(super::now_rfc3339())
    .fetch_one(&mut **tx)
    .await)
}

pub async fn insert_experiment(
    tx: &mut Tx<'_>,
    slug: &str,
    name: &str,
    description: &str,
    is_demo: bool,
) -> Result<i64, StoreError> {
    db(sqlx::query_scalar(
        "INSERT INTO experiments (slug, name, description, is_demo, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(slug)
    .bind(name)
    .bind(description)
    .bind(is_demo as i64)
    .bind(super::now_rfc3339())
    .fetch_one(&mut **tx)
    .await)
}

pub async fn insert_run(tx: &mut Tx<'_>, r: &NewRun<'_>) -> Result<i64, StoreError> {
    // Not a cached prepared statement: sqlx 0.8's Any driver binds a NULL f64 (temperature,
    // top_p) as float4 on PostgreSQL, and a cached statement would then reject a real value.
    db(sqlx::query_scalar(
        "INSERT INTO runs (model_id, dataset_id, label, temperature, top_p, max_tokens, n_per_problem,
                           seed, prompt_template, status, origin, created_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(r.model_id)
    .bind(r.dataset_id)
    .bind(r.label)
    .bind(r.temperature)
    .bind(r.top_p)
    .bind(r.max_tokens)
    .bind(r.n_per_problem)
    .bind(r.seed)
    .bind(r.prompt_template)
    .bind(r.status)
    .bind(r.origin)
    .bind(super::now_rfc3339())
    .bind((r.status == "completed").then(super::now_rfc3339))
    .persistent(false)
    .fetch_one(&mut **tx)
    .await)
}

/// Removes a run written in this transaction (an import whose every record of it was skipped).
pub async fn delete_run(tx: &mut Tx<'_>, run_id: i64) -> Result<(), StoreError> {
    db(sqlx::query("DELETE FROM runs WHERE id = $1").bind(run_id).execute(&mut **tx).await)?;
    Ok(())
}

/// A completed run of `dataset_id` other than `run_id` that came from the same tool run
/// (`runs.source_identity`): (id, import id, label).
pub async fn run_with_source_identity(
    tx: &mut Tx<'_>,
    identity: &str,
    dataset_id: i64,
    run_id: i64,
) -> Result<Option<(i64, Option<String>, String)>, StoreError> {
    db(sqlx::query_as(
        "SELECT id, import_id, label FROM runs
         WHERE source_identity = $1 AND dataset_id = $2 AND id <> $3 AND status = 'completed'
         ORDER BY id LIMIT 1",
    )
    .bind(identity)
    .bind(dataset_id)
    .bind(run_id)
    .fetch_optional(&mut **tx)
    .await)
}

/// Stores how a run was graded: its default verdict source, the tally of both verdicts, what
/// its file said about it (JSON) and the tool's identity of the run.
pub async fn set_run_verdicts(
    tx: &mut Tx<'_>,
    run_id: i64,
    default: VerdictSource,
    tally: &VerdictTally,
    source_info: &str,
    source_identity: Option<&str>,
) -> Result<(), StoreError> {
    db(sqlx::query(
        "UPDATE runs SET default_verdicts = $1, verdict_tally = $2, source_info = $3, source_identity = $4 WHERE id = $5",
    )
    .bind(default.as_str())
    .bind(serde_json::to_string(tally).expect("tally serialises"))
    .bind(source_info)
    .bind(source_identity)
    .bind(run_id)
    .execute(&mut **tx)
    .await)?;
    Ok(())
}

/// Puts a run a load wrote into a project (by slug; `default` when none), with its experiment
/// when that has no project yet (an experiment keeps the project it was created in), and the
/// import that made it. (Datasets get their project when created: `set_dataset_project`.)
pub async fn assign_project(
    tx: &mut Tx<'_>,
    project: Option<&str>,
    run_id: i64,
    experiment_id: i64,
    import_id: Option<&str>,
) -> Result<(), StoreError> {
    let slug = project.unwrap_or(super::access::DEFAULT_PROJECT);
    let project_id: Option<i64> = db(sqlx::query_scalar("SELECT id FROM projects WHERE slug = $1")
        .bind(slug)
        .fetch_optional(&mut **tx)
        .await)?;
    let Some(project_id) = project_id else {
        return Err(StoreError::Invalid(format!("project: there is no project {slug:?}")));
    };
    db(sqlx::query("UPDATE runs SET project_id = $1 WHERE id = $2")
        .bind(project_id)
        .bind(run_id)
        .execute(&mut **tx)
        .await)?;
    db(sqlx::query("UPDATE experiments SET project_id = $1 WHERE id = $2 AND project_id IS NULL")
        .bind(project_id)
        .bind(experiment_id)
        .execute(&mut **tx)
        .await)?;
    if let Some(import_id) = import_id {
        db(sqlx::query("UPDATE imports SET project_id = $1 WHERE id = $2")
            .bind(project_id)
            .bind(import_id)
            .execute(&mut **tx)
            .await)?;
    }
    Ok(())
}

pub async fn link_run(tx: &mut Tx<'_>, experiment_id: i64, run_id: i64) -> Result<(), StoreError> {
    db(
        sqlx::query("INSERT INTO experiment_runs (experiment_id, run_id) VALUES ($1, $2)")
            .bind(experiment_id)
            .bind(run_id)
            .execute(&mut **tx)
            .await,
    )?;
    Ok(())
}

/// The VALUES list of a multi-row INSERT of `rows` rows of `columns` values, in the
/// placeholder style of the transaction's database: `($1, $2), ($3, $4)` on PostgreSQL,
/// `(?, ?), (?, ?)` on SQLite. SQLite must get anonymous `?`: sqlx binds each parameter after
/// asking SQLite for its name, a linear scan over the statement's named parameters, which made
/// a 7,000-parameter `$N` INSERT quadratic (60 % of an import's time).
pub fn values_placeholders(tx: &Tx<'_>, rows: usize, columns: usize) -> String {
    let sqlite = (**tx).backend_name() == "SQLite";
    placeholders(sqlite, rows, columns)
}

fn placeholders(sqlite: bool, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..columns {
            if col > 0 {
                sql.push_str(", ");
            }
            if sqlite {
                sql.push('?');
            } else {
                sql.push_str(&format!("${}", row * columns + col + 1));
            }
        }
        sql.push(')');
    }
    sql
}

/// Rows per multi-row INSERT: 14 columns x 400 rows stays under SQLite's and PostgreSQL's
/// bound-parameter limits while cutting round trips 400-fold.
const ROLLOUT_BATCH: usize = 400;

pub async fn insert_rollouts(
    tx: &mut Tx<'_>,
    run_id: i64,
    rollouts: &[NewRollout<'_>],
) -> Result<(), StoreError> {
    let postgres = (**tx).backend_name() == "PostgreSQL";
    for chunk in rollouts.chunks(ROLLOUT_BATCH) {
        let sql = format!(
            "INSERT INTO rollouts (run_id, problem_id, sample_index, response, extracted_answer,
                                   correct, token_count, quality_flags, mean_entropy, mean_rbf,
                                   perplexity, trace_key, trace_offset, trace_length) VALUES {}",
            values_placeholders(tx, chunk.len(), 14)
        );
        // Not a cached prepared statement on PostgreSQL: sqlx 0.8's Any driver binds a NULL f64
        // as float4, and a statement prepared with that type rejects a later real f64.
        let mut q = sqlx::query(&sql).persistent(!postgres);
        for r in chunk {
            q = q
                .bind(run_id)
                .bind(r.problem_id)
                .bind(r.sample_index)
                .bind(r.response)
                .bind(r.extracted_answer)
                .bind(r.correct as i64)
                .bind(r.token_count)
                .bind(r.quality_flags)
                .bind(r.mean_entropy.filter(|x| x.is_finite()))
                .bind(r.mean_rbf.filter(|x| x.is_finite()))
                .bind(r.perplexity.filter(|x| x.is_finite()))
                .bind(r.trace.map(|t| t.0))
                .bind(r.trace.map(|t| t.1))
                .bind(r.trace.map(|t| t.2));
        }
        db(q.execute(&mut **tx).await)?;
    }
    Ok(())
}

pub async fn insert_problem_stats(
    tx: &mut Tx<'_>,
    run_id: i64,
    stats: &[ProblemStats],
) -> Result<(), StoreError> {
    for chunk in stats.chunks(ROLLOUT_BATCH) {
        let sql = format!(
            "INSERT INTO run_problem_stats (run_id, problem_id, position, n, c, first_correct_sample, distinct_answers, order_known, answers, c_file, first_correct_file, c_caplens, first_correct_caplens) VALUES {}",
            values_placeholders(tx, chunk.len(), 13)
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            let [(c_file, first_file), (c_caplens, first_caplens)] = s.by_source;
            q = q
                .bind(run_id)
                .bind(s.problem_id)
                .bind(s.position)
                .bind(s.n)
                .bind(s.c)
                .bind(s.first_correct_sample)
                .bind(s.distinct_answers)
                .bind(s.order_known as i64)
                .bind(&s.answers)
                .bind(c_file)
                .bind(first_file)
                .bind(c_caplens)
                .bind(first_caplens);
        }
        db(q.execute(&mut **tx).await)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_placeholders_number_every_cell_once() {
        assert_eq!(
            super::placeholders(false, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(super::placeholders(false, 1, 1), "($1)");
        assert_eq!(super::placeholders(true, 2, 2), "(?, ?), (?, ?)");
    }
}
