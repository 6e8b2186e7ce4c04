//! The catalog: experiments, models, datasets, runs and their per-problem aggregates.
//!
//! Reads return the app's view models (`caplens_model::model`), so pages, the REST API and the
//! CLI show the same rows. Writes used by loaders (demo, importers) take plain structs and run
//! inside a caller's transaction, so a load either fully appears or not at all.

use std::collections::HashMap;

use caplens_analysis::verdicts::VerdictSource;
use caplens_model::model::{
    lineage_forest, DatasetRow, ExperimentDetail, ExperimentSummary, LineageNode, ModelRow, RunRow,
    RunVerdicts,
};
use sqlx::{any::AnyRow, Any, Row, Transaction};

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

    /// The id of the shared dataset (in no project) named `name`.
    pub async fn shared_dataset_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        db(
            sqlx::query_scalar("SELECT id FROM datasets WHERE name = $1 AND project_id IS NULL")
                .bind(name)
                .fetch_optional(&self.pool)
                .await,
        )
    }

    /// The id of the model `name` of project `project_id`.
    pub async fn model_id(&self, project_id: i64, name: &str) -> Result<Option<i64>, StoreError> {
        db(
            sqlx::query_scalar("SELECT id FROM models WHERE name = $1 AND project_id = $2")
                .bind(name)
                .bind(project_id)
                .fetch_optional(&self.pool)
                .await,
        )
    }

    /// The first run an import stored.
    pub async fn first_run_of_import(&self, import_id: &str) -> Result<Option<i64>, StoreError> {
        db(
            sqlx::query_scalar("SELECT id FROM runs WHERE import_id = $1 ORDER BY id LIMIT 1")
                .bind(import_id)
                .fetch_optional(&self.pool)
                .await,
        )
    }

    /// Per problem (n, c) of a run, and the tokens of its rollouts.
    pub async fn run_counts(&self, run_id: i64) -> Result<(Vec<(i64, i64)>, i64), StoreError> {
        let per_problem: Vec<(i64, i64)> = db(sqlx::query_as(
            "SELECT n, c FROM run_problem_stats WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await)?;
        let tokens: i64 = db(sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(token_count), 0) AS BIGINT) FROM rollouts WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_one(&self.pool)
        .await)?;
        Ok((per_problem, tokens))
    }

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

/// Bits of `rollouts.quality_flags` (paper-notes items 9 and 17).
pub mod quality_flags {
    pub const FORMAT_VIOLATION: i64 = 1 << 0;
    pub const LANGUAGE_MIXING: i64 = 1 << 1;
    pub const REDUNDANT: i64 = 1 << 2;
    pub const NO_DIGIT: i64 = 1 << 3;

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
