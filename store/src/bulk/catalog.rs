//! The catalogue a load reads and writes inside the bulk writer's transaction: the catalogue
//! lock, projects, datasets, models, problems and experiments.

use super::{on_conn, BulkWriter, Conn};
use super::{NewModel, StoredProblem};
use crate::error::StoreError;
use crate::{db, now_rfc3339};

/// The advisory-lock key of [`BulkWriter::lock_catalog`] (any constant of our own; "caplens"
/// in ASCII).
const CATALOG_LOCK_KEY: i64 = 0x63_61_70_6c_65_6e_73;

impl BulkWriter {
    /// Serialises the loads that create shared names (the built-in and uploaded evaluation
    /// datasets, the demo) across every process on this database, so that several replicas
    /// starting together on one PostgreSQL seed once: a transaction-scoped advisory lock,
    /// taken before the writer checks whether a name is free, and released at commit or
    /// rollback. On SQLite the writer's `BEGIN IMMEDIATE` already serialises writers.
    pub async fn lock_catalog(&mut self) -> Result<(), StoreError> {
        if self.is_sqlite() {
            return Ok(());
        }
        on_conn!(self, |c| sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CATALOG_LOCK_KEY)
            .execute(c)
            .await
            .map(|_| ()))
    }

    /// Experiments in the database (the demo loads into an empty one only).
    pub async fn experiment_count(&mut self) -> Result<i64, StoreError> {
        on_conn!(self, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM experiments"
        )
        .fetch_one(c)
        .await)
    }

    /// The id of a project by slug.
    pub async fn project_id(&mut self, slug: &str) -> Result<Option<i64>, StoreError> {
        on_conn!(self, |c| sqlx::query_scalar(
            "SELECT id FROM projects WHERE slug = $1"
        )
        .bind(slug)
        .fetch_optional(c)
        .await)
    }

    /// The dataset `name` as project `project_id` sees it: its own, else a shared one; with
    /// whether it is shared (read-only to the project).
    pub async fn dataset_for(
        &mut self,
        project_id: i64,
        name: &str,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        let row: Option<(i64, Option<i64>)> = on_conn!(self, |c| {
            sqlx::query_as(
            "SELECT id, project_id FROM datasets WHERE name = $1 AND (project_id = $2 OR project_id IS NULL)
             ORDER BY CASE WHEN project_id IS NULL THEN 1 ELSE 0 END LIMIT 1",
        )
        .bind(name)
        .bind(project_id)
        .fetch_optional(c)
        .await
        })?;
        Ok(row.map(|(id, p)| (id, p.is_none())))
    }

    /// The shared dataset (in no project) named `name`.
    pub async fn shared_dataset_id(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        on_conn!(self, |c| sqlx::query_scalar(
            "SELECT id FROM datasets WHERE name = $1 AND project_id IS NULL"
        )
        .bind(name)
        .fetch_optional(c)
        .await)
    }

    /// Creates a dataset in a project; `None`: shared by every project (the built-in one).
    pub async fn insert_dataset(
        &mut self,
        name: &str,
        description: &str,
        source: &str,
        project_id: Option<i64>,
    ) -> Result<i64, StoreError> {
        on_conn!(self, |c| sqlx::query_scalar(
            "INSERT INTO datasets (name, description, source, created_at, project_id)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(description)
        .bind(source)
        .bind(now_rfc3339())
        .bind(project_id)
        .fetch_one(c)
        .await)
    }

    /// The model `name` of project `project_id`.
    pub async fn model_id(
        &mut self,
        project_id: i64,
        name: &str,
    ) -> Result<Option<i64>, StoreError> {
        on_conn!(self, |c| sqlx::query_scalar(
            "SELECT id FROM models WHERE name = $1 AND project_id = $2"
        )
        .bind(name)
        .bind(project_id)
        .fetch_optional(c)
        .await)
    }

    pub async fn insert_model(&mut self, m: &NewModel<'_>) -> Result<i64, StoreError> {
        on_conn!(self, |c| {
            sqlx::query_scalar(
            "INSERT INTO models (name, family, stage, parent_id, training_step, notes, created_at, project_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(m.name)
        .bind(m.family)
        .bind(m.stage)
        .bind(m.parent_id)
        .bind(m.training_step)
        .bind(m.notes)
        .bind(now_rfc3339())
        .bind(m.project_id)
        .fetch_one(c)
        .await
        })
    }

    /// What an uploader says about an existing model (each `None` leaves the field as it is).
    pub async fn update_model(
        &mut self,
        id: i64,
        stage: Option<&str>,
        parent_id: Option<i64>,
        training_step: Option<i64>,
    ) -> Result<(), StoreError> {
        on_conn!(self, |c| sqlx::query(
            "UPDATE models SET stage = COALESCE($1, stage), parent_id = COALESCE($2, parent_id),
                               training_step = COALESCE($3, training_step)
             WHERE id = $4",
        )
        .bind(stage)
        .bind(parent_id)
        .bind(training_step)
        .bind(id)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    pub async fn problem(
        &mut self,
        dataset_id: i64,
        key: &str,
    ) -> Result<Option<StoredProblem>, StoreError> {
        let row: Option<(i64, String, String, String)> = on_conn!(self, |c| sqlx::query_as(
            "SELECT id, prompt, reference_answer, tags FROM problems
             WHERE dataset_id = $1 AND problem_key = $2",
        )
        .bind(dataset_id)
        .bind(key)
        .fetch_optional(c)
        .await)?;
        Ok(row.map(|(id, prompt, reference, tags)| StoredProblem {
            id,
            prompt,
            reference,
            tags,
        }))
    }

    /// Fills what a stored problem lacks (an empty prompt or reference, no tags) from a load;
    /// what it has is kept.
    pub async fn fill_problem(
        &mut self,
        id: i64,
        prompt: &str,
        reference: &str,
        tags: &[String],
    ) -> Result<(), StoreError> {
        let tags = serde_json::to_string(tags).expect("a list of strings serialises");
        on_conn!(self, |c| {
            sqlx::query(
            "UPDATE problems SET prompt = CASE WHEN prompt = '' THEN $1 ELSE prompt END,
                    reference_answer = CASE WHEN reference_answer = '' THEN $2 ELSE reference_answer END,
                    tags = CASE WHEN tags = '[]' THEN $3 ELSE tags END
             WHERE id = $4",
        )
        .bind(prompt)
        .bind(reference)
        .bind(tags)
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_problem(
        &mut self,
        dataset_id: i64,
        key: &str,
        prompt: &str,
        reference_answer: &str,
        source: &str,
        tags: &[String],
    ) -> Result<i64, StoreError> {
        let tags = serde_json::to_string(tags).expect("a list of strings serialises");
        on_conn!(self, |c| sqlx::query_scalar(
            "INSERT INTO problems (dataset_id, problem_key, prompt, reference_answer, source, tags)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(dataset_id)
        .bind(key)
        .bind(prompt)
        .bind(reference_answer)
        .bind(source)
        .bind(tags)
        .fetch_one(c)
        .await)
    }

    /// The experiment `slug` and its project.
    pub async fn experiment_for(
        &mut self,
        slug: &str,
    ) -> Result<Option<(i64, Option<i64>)>, StoreError> {
        on_conn!(self, |c| sqlx::query_as(
            "SELECT id, project_id FROM experiments WHERE slug = $1"
        )
        .bind(slug)
        .fetch_optional(c)
        .await)
    }

    /// The description of an experiment an import creates (an evaluation's completion replaces
    /// it while it still reads so).
    pub const CREATED_BY_UPLOAD: &'static str =
        "Created by an upload; rename or describe it in the experiment's settings.";

    pub async fn insert_experiment(
        &mut self,
        slug: &str,
        name: &str,
        description: &str,
        is_demo: bool,
        project_id: i64,
    ) -> Result<i64, StoreError> {
        on_conn!(self, |c| sqlx::query_scalar(
            "INSERT INTO experiments (slug, name, description, is_demo, created_at, project_id)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(slug)
        .bind(name)
        .bind(description)
        .bind(is_demo as i64)
        .bind(now_rfc3339())
        .bind(project_id)
        .fetch_one(c)
        .await)
    }
}
