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
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the writer: its transaction, the background write it waits for, [`on_conn!`] |
//! | `native` | the database's own driver: the pool and the writer's connection |
//! | `rows` | what a load hands the writer: new models, runs, rollouts, aggregates |
//! | `catalog` | the catalogue a load writes: projects, datasets, models, problems, experiments |
//! | `runs` | runs, their per-problem aggregates and completion |
//! | `rollouts` | the rollout buffer and its write (COPY or multi-row INSERT) |
//! | `copy` | PostgreSQL's binary COPY encoding of rollout rows |
//! | `demo` | the demo's removal and its runs' aggregates |

mod catalog;
mod copy;
mod demo;
mod native;
mod rollouts;
mod rows;
mod runs;

use rollouts::RolloutBuffer;

use crate::error::StoreError;
use crate::{db, Store};
pub use copy::CopyBuffer;
pub(super) use native::Conn;
pub(crate) use native::NativePool;
pub use rows::{
    EarlierRun, NewModel, NewRollout, NewRun, ProblemStats, RunCompletion, StoredProblem,
};

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

    fn is_sqlite(&self) -> bool {
        // The buffer is made for the writer's database (the connection may be out writing).
        matches!(self.buffer, RolloutBuffer::Rows(..))
    }
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
}
