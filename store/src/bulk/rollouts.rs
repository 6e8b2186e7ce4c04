//! The rollouts of a load: buffered as they arrive (COPY bytes on PostgreSQL, owned rows on
//! SQLite), handed to a background write when full, and written by each database's fastest path.

use super::copy::CopyBuffer;
use super::{placeholders, BulkWriter, Conn, NewRollout};
use crate::db;
use crate::error::StoreError;

/// The columns of a stored rollout, in the order both rollout paths write them.
const ROLLOUT_COLUMNS: &str = "run_id, problem_id, sample_index, response, extracted_answer, \
     correct, token_count, finish_reason, mean_entropy, mean_rbf, perplexity, quality_flags, \
     trace_key, trace_offset, trace_length, file_correct, caplens_verdict, response_offset, \
     response_length";
pub(super) const ROLLOUT_COLUMN_COUNT: usize = 19;

/// Rollouts buffered before they are written: bounded by rows and by bytes, so that a load's
/// memory does not grow with its responses' length.
const FLUSH_ROWS: usize = 4096;
pub(super) const FLUSH_BYTES: usize = 8 << 20;

/// SQLite rows per INSERT: 19 columns x 256 rows stays far under SQLite's bound-parameter limit
/// while cutting the statements (and the hops to SQLite's worker thread) 256-fold.
pub(super) const SQLITE_INSERT_ROWS: usize = 256;

/// The rollouts waiting for the next write.
pub(super) enum RolloutBuffer {
    Copy(CopyBuffer),
    Rows(Vec<OwnedRollout>, usize),
}

/// A rollout kept for SQLite's multi-row INSERT (owned: the rows outlive the caller's batch).
pub(super) struct OwnedRollout {
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

impl BulkWriter {
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
