//! The SQL of review labels: a project's label definitions (after the built-in ones) and the
//! labels problems carry in an experiment.

use std::collections::HashMap;

use caplens_model::review::{LabelDef, ProblemLabel, BUILTIN_LABELS};

use super::ExperimentRef;
use crate::error::StoreError;
use crate::{db, now_rfc3339, Store};

impl Store {
    /// The labels a project's problems may carry: the built-in ones, then the project's own.
    pub async fn label_defs(&self, project_id: i64) -> Result<Vec<LabelDef>, StoreError> {
        let own: Vec<(String, String)> = db(sqlx::query_as(
            "SELECT name, colour FROM review_labels WHERE project_id = $1 ORDER BY name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await)?;
        let mut out: Vec<LabelDef> = BUILTIN_LABELS
            .iter()
            .map(|(n, c)| LabelDef {
                name: (*n).into(),
                colour: (*c).into(),
                builtin: true,
            })
            .collect();
        out.extend(own.into_iter().map(|(name, colour)| LabelDef {
            name,
            colour,
            builtin: false,
        }));
        Ok(out)
    }

    pub async fn add_label_def(
        &self,
        project_id: i64,
        name: &str,
        colour: &str,
    ) -> Result<(), StoreError> {
        db(sqlx::query(
            "INSERT INTO review_labels (project_id, name, colour, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, name) DO UPDATE SET colour = excluded.colour",
        )
        .bind(project_id)
        .bind(name)
        .bind(colour)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    /// Sets a problem's labels in an experiment to exactly `labels` (kept labels keep who set
    /// them and when).
    pub async fn set_problem_labels(
        &self,
        experiment_id: i64,
        problem_id: i64,
        labels: &[String],
        by: &str,
    ) -> Result<(), StoreError> {
        let mut tx = db(self.pool.begin().await)?;
        let existing: Vec<String> = db(sqlx::query_scalar(
            "SELECT label FROM problem_labels WHERE experiment_id = $1 AND problem_id = $2",
        )
        .bind(experiment_id)
        .bind(problem_id)
        .fetch_all(&mut *tx)
        .await)?;
        for old in existing.iter().filter(|l| !labels.contains(l)) {
            db(sqlx::query("DELETE FROM problem_labels WHERE experiment_id = $1 AND problem_id = $2 AND label = $3")
                .bind(experiment_id)
                .bind(problem_id)
                .bind(old)
                .execute(&mut *tx)
                .await)?;
        }
        let now = now_rfc3339();
        for new in labels.iter().filter(|l| !existing.contains(l)) {
            db(sqlx::query(
                "INSERT INTO problem_labels (experiment_id, problem_id, label, set_by, set_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(experiment_id)
            .bind(problem_id)
            .bind(new)
            .bind(by)
            .bind(&now)
            .execute(&mut *tx)
            .await)?;
        }
        db(tx.commit().await)?;
        Ok(())
    }

    /// Every labelled problem of an experiment with its labels (colours from the definitions).
    pub async fn problem_labels(
        &self,
        experiment: ExperimentRef,
    ) -> Result<HashMap<i64, Vec<ProblemLabel>>, StoreError> {
        let defs = self.label_defs(experiment.project_id).await?;
        let rows: Vec<(i64, String, String, String)> = db(sqlx::query_as(
            "SELECT problem_id, label, set_by, set_at FROM problem_labels WHERE experiment_id = $1 ORDER BY set_at, label",
        )
        .bind(experiment.id)
        .fetch_all(&self.pool)
        .await)?;
        let mut out: HashMap<i64, Vec<ProblemLabel>> = HashMap::new();
        for (problem, label, set_by, set_at) in rows {
            let colour = defs
                .iter()
                .find(|d| d.name == label)
                .map_or("#999999".into(), |d| d.colour.clone());
            out.entry(problem).or_default().push(ProblemLabel {
                label,
                colour,
                set_by,
                set_at,
            });
        }
        Ok(out)
    }
}
