//! Token-level reads for the token heatmap, token statistics and training-dynamics pages: a
//! run's stored [`TokenStats`] (`runs.token_stats`, written with the run's rollouts) and one
//! rollout's token trace (one byte range of its run's trace pack, never another rollout's).

use caplens_analysis::token_stats::TokenStats;
use caplens_analysis::trace::TokenTrace;
use sqlx::Row;

use super::rollouts::{TraceError, TraceRef};
use super::{db, Store};
use crate::error::StoreError;

/// The stored facts of one rollout, shown beside its token trace.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutTraceRow {
    pub rollout_id: i64,
    pub run_id: i64,
    pub problem_id: i64,
    /// The problem's user-facing id (`problems.problem_key`).
    pub problem_key: String,
    pub sample_index: i64,
    pub response: Option<String>,
    pub extracted_answer: Option<String>,
    pub correct: bool,
    pub token_count: Option<i64>,
    pub finish_reason: Option<String>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
    /// Bits of `catalog::quality_flags`.
    pub quality_flags: i64,
}

/// A rollout with its decoded token trace.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutTrace {
    pub row: RolloutTraceRow,
    /// `None` when the rollout has no trace, or when it could not be read (`trace_error`).
    pub trace: Option<TokenTrace>,
    /// Why a trace the row points to could not be read (blob missing, corrupt bytes).
    pub trace_error: Option<String>,
}

impl Store {
    /// The stored token statistics of the given runs, in the order given (each run once). Runs
    /// that do not exist are left out; a run without token-level data has `None` (as has one
    /// whose stored JSON this build cannot read, which is logged).
    pub async fn run_token_stats(
        &self,
        run_ids: &[i64],
    ) -> Result<Vec<(i64, Option<TokenStats>)>, StoreError> {
        let mut unique: Vec<i64> = Vec::with_capacity(run_ids.len());
        for &id in run_ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=unique.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, token_stats FROM runs WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in &unique {
            query = query.bind(*id);
        }
        let rows = db(query.fetch_all(&self.pool).await)?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let id: i64 = db(row.try_get("id"))?;
            let json: Option<String> = db(row.try_get("token_stats"))?;
            let stats = json.and_then(|j| match serde_json::from_str::<TokenStats>(&j) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(run = id, error = %e, "unreadable runs.token_stats; treated as absent");
                    None
                }
            });
            found.insert(id, stats);
        }
        Ok(unique
            .into_iter()
            .filter_map(|id| found.remove(&id).map(|stats| (id, stats)))
            .collect())
    }

    /// One rollout's row and decoded token trace; `None` when there is no such rollout. Reads
    /// only the rollout's byte range of its run's trace pack.
    pub async fn rollout_trace(&self, rollout_id: i64) -> Result<Option<RolloutTrace>, StoreError> {
        let Some(r) = db(sqlx::query(
            "SELECT r.id, r.run_id, r.problem_id, p.problem_key, r.sample_index, r.response,
                    r.extracted_answer, r.correct, r.token_count, r.finish_reason, r.mean_entropy,
                    r.mean_rbf, r.perplexity, r.quality_flags, r.trace_key, r.trace_offset,
                    r.trace_length
             FROM rollouts r JOIN problems p ON p.id = r.problem_id WHERE r.id = $1",
        )
        .bind(rollout_id)
        .fetch_optional(&self.pool)
        .await)?
        else {
            return Ok(None);
        };
        let row = db((|| {
            Ok::<_, sqlx::Error>(RolloutTraceRow {
                rollout_id: r.try_get("id")?,
                run_id: r.try_get("run_id")?,
                problem_id: r.try_get("problem_id")?,
                problem_key: r.try_get("problem_key")?,
                sample_index: r.try_get("sample_index")?,
                response: r.try_get("response")?,
                extracted_answer: r.try_get("extracted_answer")?,
                correct: r.try_get::<i64, _>("correct")? != 0,
                token_count: r.try_get("token_count")?,
                finish_reason: r.try_get("finish_reason")?,
                mean_entropy: r.try_get("mean_entropy")?,
                mean_rbf: r.try_get("mean_rbf")?,
                perplexity: r.try_get("perplexity")?,
                quality_flags: r.try_get("quality_flags")?,
            })
        })())?;
        let key: Option<String> = db(r.try_get("trace_key"))?;
        let offset: Option<i64> = db(r.try_get("trace_offset"))?;
        let length: Option<i64> = db(r.try_get("trace_length"))?;
        // One reader of traces: `Store::read_trace` (the rollout page uses it too).
        let (trace, trace_error) = match key {
            None => (None, None),
            Some(key) => {
                let at = TraceRef {
                    key,
                    offset: offset.filter(|o| *o >= 0).map(|o| o as u64),
                    length: length.filter(|l| *l >= 0).map(|l| l as u64),
                };
                match self.read_trace(&at).await {
                    Ok(t) => (Some(t), None),
                    Err(TraceError::Store(e)) => return Err(e),
                    Err(e) => (None, Some(e.to_string())),
                }
            }
        };
        Ok(Some(RolloutTrace {
            row,
            trace,
            trace_error,
        }))
    }
}
