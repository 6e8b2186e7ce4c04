//! The bulk writer: how imports and the demo store runs, rollouts and their aggregates.
//!
//! A [`BulkWriter`] is one write transaction on the database's own driver rather than sqlx's
//! `Any` (which has no COPY), so everything a load writes commits together or not at all, and a
//! killed process leaves nothing behind. Rollout rows are buffered and go in by each database's
//! fastest path:
//!
//! * PostgreSQL: `COPY rollouts (...) FROM STDIN (FORMAT binary)`, one COPY per buffer
//!   ([`CopyBuffer`] encodes the rows as they arrive, so a buffer holds bytes, not strings);
//! * SQLite: multi-row INSERTs through cached prepared statements, inside the writer's
//!   `BEGIN IMMEDIATE` transaction (statement journals in memory).
//!
//! A full buffer is written by a background task that owns the connection meanwhile, so the
//! caller's CPU work on the next rows overlaps the database's work on these; every other
//! statement first waits for that write ([`BulkWriter::settle`]), so statements keep their
//! order and a write's error is the next call's.
//!
//! Every other statement of a load is written once, in the SQL both dialects share, and run on
//! whichever connection the writer holds ([`on_conn!`]).

use std::str::FromStr;
use std::time::Duration;

use caplens_analysis::verdicts::{VerdictSource, VerdictTally};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

use super::{db, now_rfc3339, Store};
use crate::config::{Backend, DatabaseConfig};
use crate::error::StoreError;

/// The database's own driver, for the bulk writer (connections are opened when first needed).
#[derive(Clone)]
pub(crate) enum NativePool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl NativePool {
    /// A lazily connecting pool on the same database as the `Any` pool, with the same session
    /// settings (SQLite: WAL, foreign keys, busy timeout; a larger page cache for bulk loads).
    pub(crate) fn lazy(config: &DatabaseConfig) -> Result<NativePool, sqlx::Error> {
        Ok(match config.backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(&config.url)?
                    .foreign_keys(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    // 64 MB of page cache: a load's index pages stay in memory.
                    .pragma("cache_size", "-65536")
                    // Statement journals in memory: a multi-row INSERT journals the pages it
                    // touches, and on disk that was two write calls per row (half the load's
                    // time went to the kernel).
                    .pragma("temp_store", "memory");
                NativePool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(2)
                        .acquire_timeout(Duration::from_secs(30))
                        .connect_lazy_with(options),
                )
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(&config.url)?;
                NativePool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(4)
                        .acquire_timeout(Duration::from_secs(30))
                        .connect_lazy_with(options),
                )
            }
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            NativePool::Sqlite(p) => p.close().await,
            NativePool::Postgres(p) => p.close().await,
        }
    }
}

pub(super) enum Conn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$c` bound to the writer's connection, whichever database it is: the
/// statement is written once and type-checked for both drivers.
macro_rules! on_conn {
    ($w:expr, |$c:ident| $body:expr) => {{
        // A buffer still being written goes in first: statements keep their order.
        $w.settle().await?;
        match $w.conn.as_mut().ok_or_else(BulkWriter::lost)? {
            Conn::Sqlite(t) => {
                let $c = &mut **t;
                db($body)
            }
            Conn::Postgres(t) => {
                let $c = &mut **t;
                db($body)
            }
        }
    }};
}
pub(super) use on_conn;

/// A model to create.
pub struct NewModel<'a> {
    /// The project it belongs to (names are unique within a project).
    pub project_id: i64,
    pub name: &'a str,
    pub family: &'a str,
    pub stage: &'a str,
    pub parent_id: Option<i64>,
    pub training_step: Option<i64>,
    pub notes: &'a str,
}

/// A run to create.
pub struct NewRun<'a> {
    /// The project it belongs to: decided in the transaction that writes it.
    pub project_id: i64,
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
    /// The import that writes it.
    pub import_id: Option<&'a str>,
}

/// One rollout to store.
#[derive(Debug, Clone, Copy)]
pub struct NewRollout<'a> {
    pub run_id: i64,
    pub problem_id: i64,
    pub sample_index: i64,
    /// The response text, kept in the row (the demo); imports give `response_range` instead.
    pub response: Option<&'a str>,
    /// (offset, length) of the response text in the run's response pack
    /// (`RunCompletion::response_pack`).
    pub response_range: Option<(i64, i64)>,
    pub extracted_answer: Option<&'a str>,
    /// Under the run's default verdict source.
    pub correct: bool,
    pub token_count: Option<i64>,
    pub finish_reason: Option<&'a str>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
    pub quality_flags: i64,
    /// (blob key of the run's trace pack, offset, length) of the rollout's token trace.
    pub trace: Option<(&'a str, i64, i64)>,
    /// The file's verdict, when it gave one.
    pub file_correct: Option<bool>,
    /// caplens' verdict code (`CaplensVerdict::code`).
    pub caplens_verdict: Option<i64>,
}

/// A stored problem as a load sees it.
pub struct StoredProblem {
    pub id: i64,
    pub prompt: String,
    pub reference: String,
    /// The stored tags (a JSON array).
    pub tags: String,
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
            (
                outcome.c as i64,
                outcome.first_correct_position.map(|x| x as i64),
            )
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

/// What a finished run stores about itself.
pub struct RunCompletion<'a> {
    /// JSON `analysis::rollup` aggregates under the default verdict source.
    pub aggregates: &'a str,
    pub n_per_problem: Option<i64>,
    /// The import's content hash (duplicate detection).
    pub source_hash: Option<&'a str>,
    /// JSON token statistics, when rollouts carried token data.
    pub token_stats: Option<&'a str>,
    pub default_verdicts: VerdictSource,
    pub verdicts: &'a VerdictTally,
    /// JSON: what the file said about its run.
    pub source_info: &'a str,
    pub source_identity: Option<&'a str>,
    /// The blob key of the run's response pack, when its responses are there.
    pub response_pack: Option<&'a str>,
}

/// An earlier run that a load would duplicate: (id, import id, label).
pub type EarlierRun = (i64, Option<String>, String);

/// The columns of a stored rollout, in the order both rollout paths write them.
const ROLLOUT_COLUMNS: &str = "run_id, problem_id, sample_index, response, extracted_answer, \
     correct, token_count, finish_reason, mean_entropy, mean_rbf, perplexity, quality_flags, \
     trace_key, trace_offset, trace_length, file_correct, caplens_verdict, response_offset, \
     response_length";
const ROLLOUT_COLUMN_COUNT: usize = 19;

/// Rollouts buffered before they are written: bounded by rows and by bytes, so that a load's
/// memory does not grow with its responses' length.
const FLUSH_ROWS: usize = 4096;
const FLUSH_BYTES: usize = 8 << 20;

/// SQLite rows per INSERT: 19 columns x 256 rows stays far under SQLite's bound-parameter limit
/// while cutting the statements (and the hops to SQLite's worker thread) 256-fold.
const SQLITE_INSERT_ROWS: usize = 256;

/// The rollouts waiting for the next write.
enum RolloutBuffer {
    Copy(CopyBuffer),
    Rows(Vec<OwnedRollout>, usize),
}

/// A rollout kept for SQLite's multi-row INSERT (owned: the rows outlive the caller's batch).
struct OwnedRollout {
    run_id: i64,
    problem_id: i64,
    sample_index: i64,
    response: Option<String>,
    response_range: Option<(i64, i64)>,
    extracted_answer: Option<String>,
    correct: bool,
    token_count: Option<i64>,
    finish_reason: Option<String>,
    mean_entropy: Option<f64>,
    mean_rbf: Option<f64>,
    perplexity: Option<f64>,
    quality_flags: i64,
    trace: Option<(String, i64, i64)>,
    file_correct: Option<bool>,
    caplens_verdict: Option<i64>,
}

/// Rows encoded in PostgreSQL's binary COPY format as they arrive.
pub struct CopyBuffer {
    data: Vec<u8>,
    rows: usize,
}

impl CopyBuffer {
    const SIGNATURE: &'static [u8] = b"PGCOPY\n\xff\r\n\0";

    fn new() -> Self {
        let mut data = Vec::with_capacity(FLUSH_BYTES + (1 << 16));
        data.extend_from_slice(Self::SIGNATURE);
        data.extend_from_slice(&0i32.to_be_bytes()); // flags
        data.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        CopyBuffer { data, rows: 0 }
    }

    fn null(&mut self) {
        self.data.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn int8(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.data.extend_from_slice(&8i32.to_be_bytes());
                self.data.extend_from_slice(&v.to_be_bytes());
            }
            None => self.null(),
        }
    }

    fn int4(&mut self, v: Option<i64>) {
        match v.and_then(|v| i32::try_from(v).ok()) {
            Some(v) => {
                self.data.extend_from_slice(&4i32.to_be_bytes());
                self.data.extend_from_slice(&v.to_be_bytes());
            }
            None => self.null(),
        }
    }

    fn float8(&mut self, v: Option<f64>) {
        match v.filter(|x| x.is_finite()) {
            Some(v) => {
                self.data.extend_from_slice(&8i32.to_be_bytes());
                self.data.extend_from_slice(&v.to_bits().to_be_bytes());
            }
            None => self.null(),
        }
    }

    fn text(&mut self, v: Option<&str>) {
        match v {
            Some(s) => {
                let len = i32::try_from(s.len()).expect("a text field under 2 GiB");
                self.data.extend_from_slice(&len.to_be_bytes());
                self.data.extend_from_slice(s.as_bytes());
            }
            None => self.null(),
        }
    }

    /// Appends one row, columns in [`ROLLOUT_COLUMNS`] order and with the schema's types
    /// (`file_correct` and `caplens_verdict` are INTEGER, the rest BIGINT, DOUBLE PRECISION or
    /// TEXT).
    fn push(&mut self, r: &NewRollout<'_>) {
        self.data
            .extend_from_slice(&(ROLLOUT_COLUMN_COUNT as i16).to_be_bytes());
        self.int8(Some(r.run_id));
        self.int8(Some(r.problem_id));
        self.int8(Some(r.sample_index));
        self.text(r.response);
        self.text(r.extracted_answer);
        self.int8(Some(r.correct as i64));
        self.int8(r.token_count);
        self.text(r.finish_reason);
        self.float8(r.mean_entropy);
        self.float8(r.mean_rbf);
        self.float8(r.perplexity);
        self.int8(Some(r.quality_flags));
        self.text(r.trace.map(|t| t.0));
        self.int8(r.trace.map(|t| t.1));
        self.int8(r.trace.map(|t| t.2));
        self.int4(r.file_correct.map(i64::from));
        self.int4(r.caplens_verdict);
        self.int8(r.response_range.map(|r| r.0));
        self.int8(r.response_range.map(|r| r.1));
        self.rows += 1;
    }

    /// The buffer with its trailer, ready to send.
    fn finish(mut self) -> Vec<u8> {
        self.data.extend_from_slice(&(-1i16).to_be_bytes());
        self.data
    }
}

/// The advisory-lock key of [`BulkWriter::lock_catalog`] (any constant of our own; "caplens"
/// in ASCII).
const CATALOG_LOCK_KEY: i64 = 0x63_61_70_6c_65_6e_73;

/// One load's write transaction; see the module documentation.
pub struct BulkWriter {
    /// `None` while a full buffer is written in the background ([`BulkWriter::settle`] takes
    /// the connection back).
    pub(super) conn: Option<Conn>,
    /// The background write of a full buffer: the caller prepares the next buffer meanwhile,
    /// so the database and the CPU work of a load overlap.
    writing: Option<tokio::task::JoinHandle<(Conn, Result<(), StoreError>)>>,
    buffer: RolloutBuffer,
}

impl Store {
    /// Starts a bulk write (an import, the demo): one transaction, committed by
    /// [`BulkWriter::commit`] and rolled back when dropped.
    pub async fn begin_bulk(&self) -> Result<BulkWriter, StoreError> {
        let conn = match &self.native {
            NativePool::Sqlite(pool) => Conn::Sqlite(db(pool.begin_with("BEGIN IMMEDIATE").await)?),
            NativePool::Postgres(pool) => Conn::Postgres(db(pool.begin().await)?),
        };
        let buffer = match conn {
            Conn::Sqlite(_) => RolloutBuffer::Rows(Vec::new(), 0),
            Conn::Postgres(_) => RolloutBuffer::Copy(CopyBuffer::new()),
        };
        Ok(BulkWriter {
            conn: Some(conn),
            writing: None,
            buffer,
        })
    }
}

impl BulkWriter {
    /// Writes what is buffered and commits everything.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.flush_rollouts().await?;
        match self.conn.take().ok_or_else(BulkWriter::lost)? {
            Conn::Sqlite(t) => db(t.commit().await),
            Conn::Postgres(t) => db(t.commit().await),
        }
    }

    /// The error of a writer whose background write panicked (its connection went with it).
    pub(super) fn lost() -> StoreError {
        StoreError::Invalid("the bulk write lost its connection".into())
    }

    /// Waits for the background write of a buffer, if one runs, and takes the connection back;
    /// its error, if any, is this call's.
    pub(super) async fn settle(&mut self) -> Result<(), StoreError> {
        if let Some(writing) = self.writing.take() {
            let (conn, result) = writing
                .await
                .map_err(|e| StoreError::Invalid(format!("a bulk write stopped: {e}")))?;
            self.conn = Some(conn);
            result?;
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------- catalogue

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

    // ---------------------------------------------------------------------------------- runs

    pub async fn insert_run(&mut self, r: &NewRun<'_>) -> Result<i64, StoreError> {
        let now = now_rfc3339();
        on_conn!(self, |c| {
            sqlx::query_scalar(
            "INSERT INTO runs (model_id, dataset_id, label, temperature, top_p, max_tokens, n_per_problem,
                               seed, prompt_template, status, origin, created_at, finished_at, import_id, project_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
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
        .bind(&now)
        .bind((r.status == "completed").then_some(&now))
        .bind(r.import_id)
        .bind(r.project_id)
        .fetch_one(c)
        .await
        })
    }

    /// Removes a run written by this load (one whose every record was skipped).
    pub async fn delete_run(&mut self, run_id: i64) -> Result<(), StoreError> {
        self.flush_rollouts().await?;
        // Rollouts first: on PostgreSQL they keep no foreign key to their run (0008).
        on_conn!(self, |c| sqlx::query(
            "DELETE FROM rollouts WHERE run_id = $1"
        )
        .bind(run_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        on_conn!(self, |c| sqlx::query("DELETE FROM runs WHERE id = $1")
            .bind(run_id)
            .execute(c)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// A completed run of the same model and dataset as `run_id` stored from the same files
    /// (`source_hash`).
    pub async fn completed_run_with_hash(
        &mut self,
        run_id: i64,
        source_hash: &str,
    ) -> Result<Option<EarlierRun>, StoreError> {
        on_conn!(self, |c| sqlx::query_as(
            "SELECT r.id, r.import_id, r.label FROM runs r JOIN runs me ON me.id = $1
             WHERE r.model_id = me.model_id AND r.dataset_id = me.dataset_id
               AND r.source_hash = $2 AND r.id <> me.id AND r.status = 'completed'
             ORDER BY r.id LIMIT 1",
        )
        .bind(run_id)
        .bind(source_hash)
        .fetch_optional(c)
        .await)
    }

    /// A completed run of `dataset_id` other than `run_id` that came from the same tool run
    /// (`runs.source_identity`).
    pub async fn run_with_source_identity(
        &mut self,
        identity: &str,
        dataset_id: i64,
        run_id: i64,
    ) -> Result<Option<EarlierRun>, StoreError> {
        on_conn!(self, |c| sqlx::query_as(
            "SELECT id, import_id, label FROM runs
             WHERE source_identity = $1 AND dataset_id = $2 AND id <> $3 AND status = 'completed'
               AND project_id = (SELECT project_id FROM runs WHERE id = $3)
             ORDER BY id LIMIT 1",
        )
        .bind(identity)
        .bind(dataset_id)
        .bind(run_id)
        .fetch_optional(c)
        .await)
    }

    /// Stores a run's per-problem aggregates and what the run says about itself, and marks it
    /// completed.
    pub async fn complete_run(
        &mut self,
        run_id: i64,
        run: &RunCompletion<'_>,
        stats: &[ProblemStats],
    ) -> Result<(), StoreError> {
        self.insert_problem_stats(run_id, stats).await?;
        let tally = serde_json::to_string(run.verdicts).expect("tally serialises");
        on_conn!(self, |c| sqlx::query(
            "UPDATE runs SET status = 'completed', finished_at = COALESCE(finished_at, $1),
                    aggregates = $2, n_per_problem = COALESCE($3, n_per_problem),
                    source_hash = $4, token_stats = $5, default_verdicts = $6, verdict_tally = $7,
                    source_info = $8, source_identity = $9, response_pack = $10
             WHERE id = $11",
        )
        .bind(now_rfc3339())
        .bind(run.aggregates)
        .bind(run.n_per_problem)
        .bind(run.source_hash)
        .bind(run.token_stats)
        .bind(run.default_verdicts.as_str())
        .bind(tally)
        .bind(run.source_info)
        .bind(run.source_identity)
        .bind(run.response_pack)
        .bind(run_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Stores per-problem aggregate rows of a run.
    pub async fn insert_problem_stats(
        &mut self,
        run_id: i64,
        stats: &[ProblemStats],
    ) -> Result<(), StoreError> {
        const COLUMNS: usize = 13;
        for chunk in stats.chunks(SQLITE_INSERT_ROWS) {
            let sql = format!(
                "INSERT INTO run_problem_stats (run_id, problem_id, position, n, c, first_correct_sample,
                   distinct_answers, order_known, answers, c_file, first_correct_file, c_caplens,
                   first_correct_caplens) VALUES {}",
                placeholders(self.is_sqlite(), chunk.len(), COLUMNS)
            );
            macro_rules! bind_stats {
                ($q:expr) => {{
                    let mut q = $q;
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
                            .bind(c_file as i32)
                            .bind(first_file.map(|v| v as i32))
                            .bind(c_caplens as i32)
                            .bind(first_caplens.map(|v| v as i32));
                    }
                    q
                }};
            }
            on_conn!(self, |c| bind_stats!(sqlx::query(&sql))
                .execute(c)
                .await
                .map(|_| ()))?;
        }
        Ok(())
    }

    /// Puts a run into an experiment.
    pub async fn link_run(&mut self, experiment_id: i64, run_id: i64) -> Result<(), StoreError> {
        on_conn!(self, |c| sqlx::query(
            "INSERT INTO experiment_runs (experiment_id, run_id) VALUES ($1, $2)"
        )
        .bind(experiment_id)
        .bind(run_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Records the project an import wrote into.
    pub async fn set_import_project(
        &mut self,
        import_id: &str,
        project_id: i64,
    ) -> Result<(), StoreError> {
        on_conn!(self, |c| sqlx::query(
            "UPDATE imports SET project_id = $1 WHERE id = $2"
        )
        .bind(project_id)
        .bind(import_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    // ------------------------------------------------------------------------------ rollouts

    /// Buffers one rollout; the buffer is written when full and before any statement that
    /// reads rollouts back.
    pub async fn push_rollout(&mut self, r: &NewRollout<'_>) -> Result<(), StoreError> {
        let full = match &mut self.buffer {
            RolloutBuffer::Copy(copy) => {
                copy.push(r);
                copy.rows >= FLUSH_ROWS || copy.data.len() >= FLUSH_BYTES
            }
            RolloutBuffer::Rows(rows, bytes) => {
                *bytes += r.response.map_or(0, str::len) + 128;
                rows.push(OwnedRollout {
                    run_id: r.run_id,
                    problem_id: r.problem_id,
                    sample_index: r.sample_index,
                    response: r.response.map(str::to_owned),
                    response_range: r.response_range,
                    extracted_answer: r.extracted_answer.map(str::to_owned),
                    correct: r.correct,
                    token_count: r.token_count,
                    finish_reason: r.finish_reason.map(str::to_owned),
                    mean_entropy: r.mean_entropy,
                    mean_rbf: r.mean_rbf,
                    perplexity: r.perplexity,
                    quality_flags: r.quality_flags,
                    trace: r.trace.map(|(k, o, l)| (k.to_owned(), o, l)),
                    file_correct: r.file_correct,
                    caplens_verdict: r.caplens_verdict,
                });
                rows.len() >= FLUSH_ROWS || *bytes >= FLUSH_BYTES
            }
        };
        if full {
            self.start_flush().await?;
        }
        Ok(())
    }

    /// Writes the buffered rollouts, and waits until they are in the transaction.
    pub async fn flush_rollouts(&mut self) -> Result<(), StoreError> {
        self.start_flush().await?;
        self.settle().await
    }

    /// Hands the buffered rollouts to a background task that writes them on the connection
    /// (after the previous buffer's write has finished), and returns at once.
    async fn start_flush(&mut self) -> Result<(), StoreError> {
        self.settle().await?;
        let rows = match &mut self.buffer {
            RolloutBuffer::Copy(copy) if copy.rows > 0 => {
                RolloutBuffer::Copy(std::mem::replace(copy, CopyBuffer::new()))
            }
            RolloutBuffer::Rows(rows, bytes) if !rows.is_empty() => {
                *bytes = 0;
                RolloutBuffer::Rows(std::mem::take(rows), 0)
            }
            _ => return Ok(()),
        };
        let mut conn = self.conn.take().ok_or_else(BulkWriter::lost)?;
        self.writing = Some(tokio::spawn(async move {
            let result = write_rollouts(&mut conn, rows).await;
            (conn, result)
        }));
        Ok(())
    }

    // ---------------------------------------------------------------------------------- demo

    /// Trace packs of the stored demo runs.
    pub async fn demo_trace_packs(&mut self) -> Result<Vec<String>, StoreError> {
        on_conn!(self, |c| {
            sqlx::query_scalar(
            "SELECT DISTINCT ro.trace_key FROM rollouts ro JOIN runs r ON r.id = ro.run_id
             WHERE r.origin = 'demo' AND ro.trace_key IS NOT NULL AND r.id IN (
               SELECT er.run_id FROM experiment_runs er JOIN experiments e ON e.id = er.experiment_id
               WHERE e.is_demo = 1)",
        )
        .fetch_all(c)
        .await
        })
    }

    /// Removes the demo experiments and their runs (rollouts and aggregates cascade), then the
    /// named models (children first) and dataset when no other run uses them.
    pub async fn remove_demo(
        &mut self,
        models_children_first: &[&str],
        dataset: &str,
    ) -> Result<(), StoreError> {
        // Rollouts first: on PostgreSQL they keep no foreign key to their run (0008).
        on_conn!(self, |c| sqlx::query(
            "DELETE FROM rollouts WHERE run_id IN (SELECT r.id FROM runs r WHERE r.origin = 'demo'
               AND r.id IN (SELECT er.run_id FROM experiment_runs er
               JOIN experiments e ON e.id = er.experiment_id WHERE e.is_demo = 1))",
        )
        .execute(c)
        .await
        .map(|_| ()))?;
        on_conn!(self, |c| {
            sqlx::query(
            "DELETE FROM runs WHERE origin = 'demo' AND id IN (SELECT er.run_id FROM experiment_runs er
               JOIN experiments e ON e.id = er.experiment_id WHERE e.is_demo = 1)",
        )
        .execute(c)
        .await
        .map(|_| ())
        })?;
        on_conn!(self, |c| sqlx::query(
            "DELETE FROM experiments WHERE is_demo = 1"
        )
        .execute(c)
        .await
        .map(|_| ()))?;
        for model in models_children_first {
            on_conn!(self, |c| {
                sqlx::query(
                "DELETE FROM models WHERE name = $1 AND project_id = (SELECT id FROM projects WHERE slug = 'demo')
                   AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.model_id = models.id)",
            )
            .bind(model)
            .execute(c)
            .await
            .map(|_| ())
            })?;
        }
        on_conn!(self, |c| {
            sqlx::query(
            "DELETE FROM datasets WHERE name = $1 AND project_id = (SELECT id FROM projects WHERE slug = 'demo')
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.dataset_id = datasets.id)",
        )
        .bind(dataset)
        .execute(c)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Stores a run's aggregates and token statistics (the demo's runs are created completed).
    pub async fn set_run_aggregates(
        &mut self,
        run_id: i64,
        aggregates: &str,
        token_stats: Option<&str>,
    ) -> Result<(), StoreError> {
        on_conn!(self, |c| sqlx::query(
            "UPDATE runs SET aggregates = $1, token_stats = $2 WHERE id = $3"
        )
        .bind(aggregates)
        .bind(token_stats)
        .bind(run_id)
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    fn is_sqlite(&self) -> bool {
        // The buffer is made for the writer's database (the connection may be out writing).
        matches!(self.buffer, RolloutBuffer::Rows(..))
    }
}

/// Writes one buffer of rollouts on the connection: one binary COPY on PostgreSQL, multi-row
/// INSERTs on SQLite.
async fn write_rollouts(conn: &mut Conn, rows: RolloutBuffer) -> Result<(), StoreError> {
    match (conn, rows) {
        (Conn::Postgres(t), RolloutBuffer::Copy(copy)) => {
            let data = copy.finish();
            let mut sink = db((**t)
                .copy_in_raw(&format!(
                    "COPY rollouts ({ROLLOUT_COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .await)?;
            db(sink.send(data).await.map(|_| ()))?;
            db(sink.finish().await)?;
        }
        (Conn::Sqlite(t), RolloutBuffer::Rows(rows, _)) => {
            for chunk in rows.chunks(SQLITE_INSERT_ROWS) {
                let sql = format!(
                    "INSERT INTO rollouts ({ROLLOUT_COLUMNS}) VALUES {}",
                    placeholders(true, chunk.len(), ROLLOUT_COLUMN_COUNT)
                );
                let mut q = sqlx::query(&sql);
                for r in chunk {
                    q = q
                        .bind(r.run_id)
                        .bind(r.problem_id)
                        .bind(r.sample_index)
                        .bind(r.response.as_deref())
                        .bind(r.extracted_answer.as_deref())
                        .bind(r.correct as i64)
                        .bind(r.token_count)
                        .bind(r.finish_reason.as_deref())
                        .bind(r.mean_entropy.filter(|x| x.is_finite()))
                        .bind(r.mean_rbf.filter(|x| x.is_finite()))
                        .bind(r.perplexity.filter(|x| x.is_finite()))
                        .bind(r.quality_flags)
                        .bind(r.trace.as_ref().map(|t| t.0.as_str()))
                        .bind(r.trace.as_ref().map(|t| t.1))
                        .bind(r.trace.as_ref().map(|t| t.2))
                        .bind(r.file_correct.map(i64::from))
                        .bind(r.caplens_verdict)
                        .bind(r.response_range.map(|r| r.0))
                        .bind(r.response_range.map(|r| r.1));
                }
                db(q.execute(&mut **t).await)?;
            }
        }
        _ => unreachable!("the buffer is made for the writer's database"),
    }
    Ok(())
}

/// The VALUES list of a multi-row INSERT of `rows` rows of `columns` values: `(?, ?), (?, ?)`
/// on SQLite, `($1, $2), ($3, $4)` on PostgreSQL. SQLite gets anonymous `?`: sqlx binds each
/// parameter after asking SQLite for its name, a linear scan over the statement's named
/// parameters, which made a 7,000-parameter `$N` INSERT quadratic.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_every_cell_once() {
        assert_eq!(placeholders(false, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(false, 1, 1), "($1)");
        assert_eq!(placeholders(true, 2, 2), "(?, ?), (?, ?)");
    }

    #[test]
    fn copy_buffer_is_postgres_binary_format() {
        let mut b = CopyBuffer::new();
        b.push(&NewRollout {
            run_id: 1,
            problem_id: 2,
            sample_index: 3,
            response: Some("é"),
            response_range: None,
            extracted_answer: None,
            correct: true,
            token_count: None,
            finish_reason: None,
            mean_entropy: Some(0.5),
            mean_rbf: Some(f64::NAN),
            perplexity: None,
            quality_flags: 0,
            trace: None,
            file_correct: Some(false),
            caplens_verdict: Some(1),
        });
        let data = b.finish();
        // Signature, flags, extension length; then the field count of the one tuple.
        assert_eq!(&data[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&data[11..19], &[0u8; 8]);
        assert_eq!(&data[19..21], &19i16.to_be_bytes());
        // run_id: length 8, value 1.
        assert_eq!(&data[21..25], &8i32.to_be_bytes());
        assert_eq!(&data[25..33], &1i64.to_be_bytes());
        // The response (4th field) is its UTF-8 bytes with their length.
        let response = 21 + 3 * 12;
        assert_eq!(&data[response..response + 4], &2i32.to_be_bytes());
        assert_eq!(&data[response + 4..response + 6], "é".as_bytes());
        // A NaN is stored as NULL, like the INSERT path's `finite`.
        assert!(
            data.windows(4)
                .filter(|w| *w == (-1i32).to_be_bytes())
                .count()
                >= 8
        );
        // Trailer.
        assert_eq!(&data[data.len() - 2..], &(-1i16).to_be_bytes());
    }
}
