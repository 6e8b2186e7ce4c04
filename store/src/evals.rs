//! The SQL of evaluation runs (issue 7): engines, evaluations, their work units and staged
//! samples. Logic (what to claim, when to finalise) lives in `crate::evals`.
//!
//! Claiming is one `UPDATE … WHERE key = (SELECT … LIMIT 1 [FOR UPDATE SKIP LOCKED]) RETURNING`:
//! on PostgreSQL any number of workers claim distinct units without waiting on each other; on
//! SQLite the single statement is atomic under the database's write lock.

use sqlx::Row;

use super::{db, now_rfc3339, Store};
use crate::config::Backend;
use crate::error::StoreError;
use caplens_model::evals::EngineView;

/// An engine row, with its key (server-side only).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineRow {
    pub view: EngineView,
    pub api_key: Option<String>,
    /// The project whose evaluations may use it (`None`: shared by every project).
    pub project_id: Option<i64>,
}

/// An evaluation row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationRow {
    pub id: i64,
    pub status: String,
    pub engine_id: i64,
    pub engine: String,
    pub engine_kind: String,
    pub dataset_id: i64,
    pub dataset: String,
    pub experiment: String,
    pub model_name: String,
    pub stage: String,
    pub parent: Option<String>,
    pub step: Option<i64>,
    pub series: Option<String>,
    pub settings: String,
    pub problems: i64,
    pub samples_total: i64,
    pub error: Option<String>,
    pub run_id: Option<i64>,
    pub import_id: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The project's slug (`None`: a row in no project).
    pub project: Option<String>,
    pub project_id: Option<i64>,
}

/// An OpenAI-compatible engine to create or update.
#[derive(Debug, Clone, Copy)]
pub struct NewEngine<'a> {
    /// `None`: every project's.
    pub project_id: Option<i64>,
    pub name: &'a str,
    pub base_url: &'a str,
    pub model: &'a str,
    /// `completions` or `chat`.
    pub api_mode: &'a str,
    /// `None`: keep the stored key, unless the address changes.
    pub api_key: Option<&'a str>,
    pub max_top_logprobs: u32,
}

/// A new evaluation.
pub struct NewEvaluation<'a> {
    pub engine_id: i64,
    pub dataset_id: i64,
    pub experiment: &'a str,
    pub model_name: &'a str,
    pub stage: &'a str,
    pub parent: Option<&'a str>,
    pub step: Option<i64>,
    pub series: Option<&'a str>,
    pub settings: &'a str,
    /// Problem ids in dataset order.
    pub problem_ids: &'a [i64],
    pub n: u32,
    /// The project it runs in (and its run goes to).
    pub project_id: i64,
}

/// A unit a worker holds: one problem of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedUnit {
    pub evaluation_id: i64,
    pub problem_id: i64,
    pub attempts: i64,
}

/// One staged, graded sample.
pub struct NewSample<'a> {
    pub problem_id: i64,
    pub sample_index: i64,
    pub correct: bool,
    pub tokens: i64,
    pub record: &'a str,
}

/// Counts behind the progress view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalCounts {
    pub samples: i64,
    pub correct: i64,
    pub tokens: i64,
    pub recent_tokens: i64,
    pub units_done: i64,
    /// (samples, correct) per problem with at least one sample.
    pub per_problem: Vec<(i64, i64)>,
}

const EVALUATION_COLUMNS: &str =
    "e.id, e.status, e.engine_id, g.name AS engine, g.kind AS engine_kind,
    e.dataset_id, d.name AS dataset, e.experiment, e.model_name, e.stage, e.parent, e.step,
    e.series, e.settings, e.problems, e.samples_total, e.error, e.run_id, e.import_id,
    e.created_at, e.started_at, e.finished_at, p.slug AS project, e.project_id";
const EVALUATION_FROM: &str =
    "FROM evaluations e JOIN engines g ON g.id = e.engine_id JOIN datasets d ON d.id = e.dataset_id
     LEFT JOIN projects p ON p.id = e.project_id";

fn evaluation_row(row: &sqlx::any::AnyRow) -> Result<EvaluationRow, sqlx::Error> {
    Ok(EvaluationRow {
        id: row.try_get("id")?,
        status: row.try_get("status")?,
        engine_id: row.try_get("engine_id")?,
        engine: row.try_get("engine")?,
        engine_kind: row.try_get("engine_kind")?,
        dataset_id: row.try_get("dataset_id")?,
        dataset: row.try_get("dataset")?,
        experiment: row.try_get("experiment")?,
        model_name: row.try_get("model_name")?,
        stage: row.try_get("stage")?,
        parent: row.try_get("parent")?,
        step: row.try_get("step")?,
        series: row.try_get("series")?,
        settings: row.try_get("settings")?,
        problems: row.try_get("problems")?,
        samples_total: row.try_get("samples_total")?,
        error: row.try_get("error")?,
        run_id: row.try_get("run_id")?,
        import_id: row.try_get("import_id")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        project: row.try_get("project")?,
        project_id: row.try_get("project_id")?,
    })
}

fn engine_row(row: &sqlx::any::AnyRow) -> Result<EngineRow, sqlx::Error> {
    let api_key: Option<String> = row.try_get("api_key")?;
    Ok(EngineRow {
        view: EngineView {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            kind: row.try_get("kind")?,
            base_url: row.try_get("base_url")?,
            model: row.try_get("model")?,
            api_mode: row.try_get("api_mode")?,
            has_api_key: api_key.as_deref().is_some_and(|k| !k.is_empty()),
            max_top_logprobs: row.try_get::<i64, _>("max_top_logprobs")?.clamp(0, 1000) as u32,
        },
        api_key,
        project_id: row.try_get("project_id")?,
    })
}

const ENGINE_COLUMNS: &str =
    "id, name, kind, base_url, model, api_mode, api_key, max_top_logprobs, project_id";

impl Store {
    pub async fn engines(&self) -> Result<Vec<EngineRow>, StoreError> {
        let rows = db(
            sqlx::query(&format!("SELECT {ENGINE_COLUMNS} FROM engines ORDER BY id"))
                .fetch_all(&self.pool)
                .await,
        )?;
        db(rows.iter().map(engine_row).collect())
    }

    /// The engine `name` as project `project_id` may use it: the project's own, else a shared
    /// one.
    pub async fn engine_for_project(
        &self,
        name: &str,
        project_id: i64,
    ) -> Result<Option<EngineRow>, StoreError> {
        let row = db(sqlx::query(&format!(
            "SELECT {ENGINE_COLUMNS} FROM engines WHERE name = $1 AND (project_id = $2 OR project_id IS NULL)
             ORDER BY CASE WHEN project_id IS NULL THEN 1 ELSE 0 END LIMIT 1"
        ))
        .bind(name)
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await)?;
        db(row.as_ref().map(engine_row).transpose())
    }

    pub async fn engine_by_id(&self, id: i64) -> Result<Option<EngineRow>, StoreError> {
        let row = db(sqlx::query(&format!(
            "SELECT {ENGINE_COLUMNS} FROM engines WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        db(row.as_ref().map(engine_row).transpose())
    }

    /// Creates or updates (by project and name) an OpenAI-compatible engine; returns its id.
    /// Without a new key (`api_key` `None`) the stored one is kept only while the address stays
    /// the same: a key never follows its engine to another server. A project engine may not
    /// take a shared engine's name (it would hide it).
    pub async fn upsert_engine(&self, e: &NewEngine<'_>) -> Result<i64, StoreError> {
        let NewEngine {
            project_id,
            name,
            base_url,
            model,
            api_mode,
            api_key,
            max_top_logprobs,
        } = *e;
        let mut tx = self.begin_write().await?;
        let existing: Option<(i64, String)> = db(sqlx::query_as(
            "SELECT id, kind FROM engines WHERE name = $1 AND COALESCE(project_id, 0) = $2",
        )
        .bind(name)
        .bind(project_id.unwrap_or(0))
        .fetch_optional(&mut *tx)
        .await)?;
        if existing.is_none() && project_id.is_some() {
            let shared: i64 = db(sqlx::query_scalar(
                "SELECT COUNT(*) FROM engines WHERE name = $1 AND project_id IS NULL",
            )
            .bind(name)
            .fetch_one(&mut *tx)
            .await)?;
            if shared > 0 {
                return Err(StoreError::Invalid(format!(
                    "engine {name:?} is the name of an engine every project shares; choose another name"
                )));
            }
        }
        let id = match existing {
            Some((_, kind)) if kind == "embedded" => {
                return Err(StoreError::Invalid(format!(
                    "engine {name:?} is the built-in embedded engine; choose another name"
                )))
            }
            Some((id, _)) => {
                db(sqlx::query(
                    "UPDATE engines SET api_key = CASE WHEN $5 IS NOT NULL THEN $5
                                                  WHEN base_url = $2 THEN api_key ELSE NULL END,
                        base_url = $2, model = $3, api_mode = $4, max_top_logprobs = $6 WHERE id = $1",
                )
                .bind(id)
                .bind(base_url)
                .bind(model)
                .bind(api_mode)
                .bind(api_key)
                .bind(max_top_logprobs as i64)
                .execute(&mut *tx)
                .await)?;
                id
            }
            None => db(sqlx::query_scalar(
                "INSERT INTO engines (name, kind, base_url, model, api_mode, api_key, max_top_logprobs, created_at, project_id)
                 VALUES ($1, 'openai', $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(name)
            .bind(base_url)
            .bind(model)
            .bind(api_mode)
            .bind(api_key)
            .bind(max_top_logprobs as i64)
            .bind(now_rfc3339())
            .bind(project_id)
            .fetch_one(&mut *tx)
            .await)?,
        };
        db(tx.commit().await)?;
        Ok(id)
    }

    /// Inserts evaluations and their units in one transaction; returns the ids in order.
    pub async fn insert_evaluations(
        &self,
        evaluations: &[NewEvaluation<'_>],
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut ids = Vec::with_capacity(evaluations.len());
        for e in evaluations {
            let id: i64 = db(sqlx::query_scalar(
                "INSERT INTO evaluations (status, engine_id, dataset_id, experiment, model_name, stage,
                    parent, step, series, settings, problems, samples_total, created_at, project_id)
                 VALUES ('queued', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            )
            .bind(e.engine_id)
            .bind(e.dataset_id)
            .bind(e.experiment)
            .bind(e.model_name)
            .bind(e.stage)
            .bind(e.parent)
            .bind(e.step)
            .bind(e.series)
            .bind(e.settings)
            .bind(e.problem_ids.len() as i64)
            .bind(e.problem_ids.len() as i64 * e.n as i64)
            .bind(now_rfc3339())
            .bind(e.project_id)
            .persistent(false)
            .fetch_one(&mut *tx)
            .await)?;
            for chunk in e.problem_ids.chunks(500).enumerate() {
                let (chunk_index, problems) = chunk;
                let mut sql = String::from(
                    "INSERT INTO eval_units (evaluation_id, problem_id, position, status) VALUES ",
                );
                for i in 0..problems.len() {
                    if i > 0 {
                        sql.push(',');
                    }
                    let b = i * 3;
                    sql.push_str(&format!("(${}, ${}, ${}, 'pending')", b + 1, b + 2, b + 3));
                }
                let mut q = sqlx::query(&sql);
                for (i, p) in problems.iter().enumerate() {
                    q = q.bind(id).bind(*p).bind((chunk_index * 500 + i) as i64);
                }
                db(q.persistent(false).execute(&mut *tx).await)?;
            }
            ids.push(id);
        }
        db(tx.commit().await)?;
        Ok(ids)
    }

    pub async fn evaluation(&self, id: i64) -> Result<Option<EvaluationRow>, StoreError> {
        let row = db(sqlx::query(&format!(
            "SELECT {EVALUATION_COLUMNS} {EVALUATION_FROM} WHERE e.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await)?;
        db(row.as_ref().map(evaluation_row).transpose())
    }

    /// The newest evaluations first.
    pub async fn evaluations(&self, limit: i64) -> Result<Vec<EvaluationRow>, StoreError> {
        let rows = db(sqlx::query(&format!(
            "SELECT {EVALUATION_COLUMNS} {EVALUATION_FROM} ORDER BY e.id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await)?;
        db(rows.iter().map(evaluation_row).collect())
    }

    /// Claims the next claimable unit: pending (and not waiting for a retry), or claimed by a
    /// worker whose lease ran out, of an evaluation that is queued or running.
    pub async fn claim_unit(
        &self,
        worker: &str,
        lease_until: &str,
    ) -> Result<Option<ClaimedUnit>, StoreError> {
        let now = now_rfc3339();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE OF u SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE eval_units SET status = 'claimed', worker = $1, lease_until = $2,
                attempts = attempts + 1
             WHERE (evaluation_id, problem_id) = (
                SELECT u.evaluation_id, u.problem_id FROM eval_units u
                JOIN evaluations e ON e.id = u.evaluation_id
                WHERE e.status IN ('queued', 'running')
                  AND ((u.status = 'pending' AND (u.lease_until IS NULL OR u.lease_until <= $3))
                       OR (u.status = 'claimed' AND u.lease_until < $3))
                ORDER BY u.evaluation_id, u.position LIMIT 1{lock})
             RETURNING evaluation_id, problem_id, attempts"
        );
        let row: Option<(i64, i64, i64)> = db(sqlx::query_as(&sql)
            .bind(worker)
            .bind(lease_until)
            .bind(&now)
            .fetch_optional(&self.pool)
            .await)?;
        let Some((evaluation_id, problem_id, attempts)) = row else {
            return Ok(None);
        };
        db(sqlx::query(
            "UPDATE evaluations SET status = 'running', started_at = $2 WHERE id = $1 AND status = 'queued'",
        )
        .bind(evaluation_id)
        .bind(&now)
        .execute(&self.pool)
        .await)?;
        Ok(Some(ClaimedUnit {
            evaluation_id,
            problem_id,
            attempts,
        }))
    }

    /// Extends a unit's lease; false when the unit is no longer this worker's.
    pub async fn renew_unit(
        &self,
        unit: ClaimedUnit,
        worker: &str,
        lease_until: &str,
    ) -> Result<bool, StoreError> {
        let done = db(sqlx::query(
            "UPDATE eval_units SET lease_until = $4
             WHERE evaluation_id = $1 AND problem_id = $2 AND worker = $3 AND status = 'claimed'",
        )
        .bind(unit.evaluation_id)
        .bind(unit.problem_id)
        .bind(worker)
        .bind(lease_until)
        .execute(&self.pool)
        .await)?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a unit back: claimable again at `retry_at` (now, or later after a transient error).
    pub async fn release_unit(
        &self,
        unit: ClaimedUnit,
        worker: &str,
        retry_at: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        db(sqlx::query(
            "UPDATE eval_units SET status = 'pending', worker = NULL, lease_until = $4, last_error = $5
             WHERE evaluation_id = $1 AND problem_id = $2 AND worker = $3 AND status = 'claimed'",
        )
        .bind(unit.evaluation_id)
        .bind(unit.problem_id)
        .bind(worker)
        .bind(retry_at)
        .bind(error)
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    pub async fn complete_unit(&self, unit: ClaimedUnit, worker: &str) -> Result<(), StoreError> {
        db(sqlx::query(
            "UPDATE eval_units SET status = 'done', lease_until = NULL, last_error = NULL
             WHERE evaluation_id = $1 AND problem_id = $2 AND worker = $3",
        )
        .bind(unit.evaluation_id)
        .bind(unit.problem_id)
        .bind(worker)
        .execute(&self.pool)
        .await)?;
        Ok(())
    }

    /// Sample indices of one problem already staged.
    pub async fn staged_samples(
        &self,
        evaluation_id: i64,
        problem_id: i64,
    ) -> Result<Vec<i64>, StoreError> {
        db(sqlx::query_scalar(
            "SELECT sample_index FROM eval_samples WHERE evaluation_id = $1 AND problem_id = $2",
        )
        .bind(evaluation_id)
        .bind(problem_id)
        .fetch_all(&self.pool)
        .await)
    }

    /// Stages samples; a sample already there (another worker, a replay) is kept as it was.
    /// Returns how many rows were new.
    pub async fn stage_samples(
        &self,
        evaluation_id: i64,
        samples: &[NewSample<'_>],
    ) -> Result<u64, StoreError> {
        if samples.is_empty() {
            return Ok(0);
        }
        let now = now_rfc3339();
        let mut tx = self.begin_write().await?;
        let mut added = 0;
        for chunk in samples.chunks(200) {
            let mut sql = String::from(
                "INSERT INTO eval_samples (evaluation_id, problem_id, sample_index, correct, tokens, record, created_at) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                let b = i * 7;
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7
                ));
            }
            sql.push_str(" ON CONFLICT DO NOTHING");
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q
                    .bind(evaluation_id)
                    .bind(s.problem_id)
                    .bind(s.sample_index)
                    .bind(s.correct as i64)
                    .bind(s.tokens)
                    .bind(s.record)
                    .bind(&now);
            }
            added += db(q.persistent(false).execute(&mut *tx).await)?.rows_affected();
        }
        db(tx.commit().await)?;
        Ok(added)
    }

    /// Marks an evaluation failed (if it is still queued or running) with a message.
    pub async fn fail_evaluation(&self, id: i64, message: &str) -> Result<bool, StoreError> {
        let done = db(sqlx::query(
            "UPDATE evaluations SET status = 'failed', error = $2, finished_at = $3, lease_owner = NULL
             WHERE id = $1 AND status IN ('queued', 'running', 'finalizing')",
        )
        .bind(id)
        .bind(message)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn cancel_evaluation(&self, id: i64) -> Result<bool, StoreError> {
        let done = db(sqlx::query(
            "UPDATE evaluations SET status = 'cancelled', finished_at = $2
             WHERE id = $1 AND status IN ('queued', 'running')",
        )
        .bind(id)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues a cancelled or failed evaluation again; staged samples are kept, so it continues
    /// where it stopped.
    pub async fn resume_evaluation(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = db(sqlx::query(
            "UPDATE evaluations SET status = 'queued', error = NULL, finished_at = NULL
             WHERE id = $1 AND status IN ('cancelled', 'failed')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await)?;
        if done.rows_affected() == 1 {
            db(sqlx::query(
                "UPDATE eval_units SET status = 'pending', worker = NULL, lease_until = NULL, attempts = 0
                 WHERE evaluation_id = $1 AND status <> 'done'",
            )
            .bind(id)
            .execute(&mut *tx)
            .await)?;
        }
        db(tx.commit().await)?;
        Ok(done.rows_affected() == 1)
    }

    /// Evaluations ready to finalise: queued or running with every unit done (a resumed
    /// evaluation whose storing failed is queued with all units done), or finalising under an
    /// expired lease (the finalising worker died).
    pub async fn finalizable_evaluations(&self) -> Result<Vec<i64>, StoreError> {
        db(sqlx::query_scalar(
            "SELECT e.id FROM evaluations e
             WHERE (e.status IN ('queued', 'running') AND NOT EXISTS (
                      SELECT 1 FROM eval_units u WHERE u.evaluation_id = e.id AND u.status <> 'done'))
                OR (e.status = 'finalizing' AND e.lease_until < $1)
             ORDER BY e.id",
        )
        .bind(now_rfc3339())
        .fetch_all(&self.pool)
        .await)
    }

    /// Takes the finalisation of an evaluation; false when another worker has it.
    pub async fn claim_finalization(
        &self,
        id: i64,
        worker: &str,
        lease_until: &str,
    ) -> Result<bool, StoreError> {
        let done = db(sqlx::query(
            "UPDATE evaluations SET status = 'finalizing', lease_owner = $2, lease_until = $3
             WHERE id = $1 AND (
               (status IN ('queued', 'running') AND NOT EXISTS (
                   SELECT 1 FROM eval_units u WHERE u.evaluation_id = $1 AND u.status <> 'done'))
               OR (status = 'finalizing' AND lease_until < $4))",
        )
        .bind(id)
        .bind(worker)
        .bind(lease_until)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await)?;
        Ok(done.rows_affected() == 1)
    }

    /// Staged records of an evaluation in dataset order, `limit` from `after` (position,
    /// sample) on, for streaming into the import file.
    pub async fn staged_records(
        &self,
        evaluation_id: i64,
        after: (i64, i64),
        limit: i64,
    ) -> Result<Vec<((i64, i64), String)>, StoreError> {
        let rows: Vec<(i64, i64, String)> = db(sqlx::query_as(
            "SELECT u.position, s.sample_index, s.record FROM eval_samples s
             JOIN eval_units u ON u.evaluation_id = s.evaluation_id AND u.problem_id = s.problem_id
             WHERE s.evaluation_id = $1 AND (u.position > $2 OR (u.position = $2 AND s.sample_index > $3))
             ORDER BY u.position, s.sample_index LIMIT $4",
        )
        .bind(evaluation_id)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await)?;
        Ok(rows.into_iter().map(|(p, s, r)| ((p, s), r)).collect())
    }

    /// Records the run an evaluation became and deletes its staged samples.
    pub async fn complete_evaluation(
        &self,
        id: i64,
        run_id: Option<i64>,
        import_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        db(sqlx::query(
            "UPDATE evaluations SET status = 'completed', run_id = $2, import_id = $3, finished_at = $4,
                lease_owner = NULL, lease_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(run_id)
        .bind(import_id)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await)?;
        if let Some(run_id) = run_id {
            db(
                sqlx::query("UPDATE runs SET origin = 'triggered' WHERE id = $1")
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await,
            )?;
            // An experiment this evaluation's import created says where it came from.
            db(sqlx::query(
                "UPDATE experiments SET description = $3 WHERE description = $2 AND id IN
                    (SELECT experiment_id FROM experiment_runs WHERE run_id = $1)",
            )
            .bind(run_id)
            .bind(crate::bulk::BulkWriter::CREATED_BY_UPLOAD)
            .bind(format!(
                "Created by evaluation #{id}; rename or describe it in the experiment's settings."
            ))
            .execute(&mut *tx)
            .await)?;
        }
        db(
            sqlx::query("DELETE FROM eval_samples WHERE evaluation_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await,
        )?;
        db(tx.commit().await)?;
        Ok(())
    }

    /// Status of an evaluation (cheap, for workers between batches).
    /// The status of the latest other evaluation of a series for `model` (a checkpoint's
    /// parent, which its run waits for).
    pub async fn series_member_status(
        &self,
        series: &str,
        model: &str,
        except: i64,
    ) -> Result<Option<String>, StoreError> {
        db(sqlx::query_scalar(
            "SELECT status FROM evaluations WHERE series = $1 AND model_name = $2 AND id <> $3
             ORDER BY id DESC LIMIT 1",
        )
        .bind(series)
        .bind(model)
        .bind(except)
        .fetch_optional(&self.pool)
        .await)
    }

    pub async fn evaluation_status(&self, id: i64) -> Result<Option<String>, StoreError> {
        db(
            sqlx::query_scalar("SELECT status FROM evaluations WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await,
        )
    }

    /// Counts for the progress view; `recent_since` bounds the tokens/s window.
    pub async fn evaluation_counts(
        &self,
        id: i64,
        recent_since: &str,
    ) -> Result<EvalCounts, StoreError> {
        let per_problem: Vec<(i64, i64, i64, i64)> = db(sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(correct), 0) AS BIGINT),
                    CAST(COALESCE(SUM(tokens), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN created_at >= $2 THEN tokens ELSE 0 END), 0) AS BIGINT)
             FROM eval_samples WHERE evaluation_id = $1 GROUP BY problem_id",
        )
        .bind(id)
        .bind(recent_since)
        .fetch_all(&self.pool)
        .await)?;
        let units_done: i64 = db(sqlx::query_scalar(
            "SELECT COUNT(*) FROM eval_units WHERE evaluation_id = $1 AND status = 'done'",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await)?;
        let mut counts = EvalCounts {
            units_done,
            ..EvalCounts::default()
        };
        for (n, c, t, r) in per_problem {
            counts.samples += n;
            counts.correct += c;
            counts.tokens += t;
            counts.recent_tokens += r;
            counts.per_problem.push((n, c));
        }
        Ok(counts)
    }

    /// A problem's prompt and reference answer (what a unit needs).
    pub async fn problem_for_eval(
        &self,
        problem_id: i64,
    ) -> Result<Option<(String, String, String)>, StoreError> {
        db(sqlx::query_as(
            "SELECT problem_key, prompt, reference_answer FROM problems WHERE id = $1",
        )
        .bind(problem_id)
        .fetch_optional(&self.pool)
        .await)
    }

    /// Problems of a dataset in id order: (id, prompt chars).
    pub async fn dataset_problem_ids(&self, dataset_id: i64) -> Result<Vec<i64>, StoreError> {
        db(sqlx::query_scalar(
            "SELECT id FROM problems WHERE dataset_id = $1 AND prompt <> '' AND reference_answer <> '' ORDER BY id",
        )
        .bind(dataset_id)
        .fetch_all(&self.pool)
        .await)
    }

    /// Datasets usable for evaluation (problems with prompt and answer).
    pub async fn eval_datasets(&self) -> Result<Vec<EvalDataset>, StoreError> {
        let rows = db(sqlx::query(
            "SELECT d.id, d.name, d.description, d.project_id, COUNT(p.id) AS problems,
                    CAST(COALESCE(AVG(LENGTH(p.prompt)), 0) AS DOUBLE PRECISION) AS chars
             FROM datasets d JOIN problems p ON p.dataset_id = d.id
             WHERE p.prompt <> '' AND p.reference_answer <> ''
             GROUP BY d.id, d.name, d.description, d.project_id ORDER BY d.name, d.id",
        )
        .fetch_all(&self.pool)
        .await)?;
        db(rows
            .iter()
            .map(|r| {
                Ok(EvalDataset {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    project_id: r.try_get("project_id")?,
                    problems: r.try_get("problems")?,
                    mean_prompt_chars: r.try_get("chars")?,
                })
            })
            .collect())
    }

    /// The evaluation dataset `name` as project `project_id` may use it: its own, else a
    /// shared one.
    pub async fn eval_dataset_for_project(
        &self,
        name: &str,
        project_id: i64,
    ) -> Result<Option<EvalDataset>, StoreError> {
        Ok(self
            .eval_datasets()
            .await?
            .into_iter()
            .filter(|d| d.name == name && d.project_id.is_none_or(|p| p == project_id))
            .min_by_key(|d| d.project_id.is_none()))
    }
}

/// A dataset an evaluation can use.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalDataset {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// `None`: shared by every project.
    pub project_id: Option<i64>,
    pub problems: i64,
    pub mean_prompt_chars: f64,
}
