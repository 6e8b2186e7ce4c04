//! Token-level reads for the token heatmap, token statistics and training-dynamics pages: a
//! run's stored [`TokenStats`] (`runs.token_stats`, written with the run's rollouts) and one
//! rollout's token trace (one byte range of its run's trace pack, never another rollout's).

use caplens_analysis::token_stats::TokenStats;
use caplens_analysis::trace::TokenTrace;
use sqlx::Row;

use super::rollouts::{StoredRollout, TraceError};
use super::{db, Store};
use crate::error::StoreError;

/// A rollout with its decoded token trace.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutTrace {
    pub rollout: StoredRollout,
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

    /// One rollout (`Store::rollout`) and its decoded token trace (`Store::read_trace`: one
    /// byte range of its run's pack); `None` when there is no such rollout.
    pub async fn rollout_trace(&self, rollout_id: i64) -> Result<Option<RolloutTrace>, StoreError> {
        let Some(rollout) = self.rollout(rollout_id).await? else {
            return Ok(None);
        };
        let (trace, trace_error) = match &rollout.trace {
            None => (None, None),
            Some(at) => match self.read_trace(at).await {
                Ok(t) => (Some(t), None),
                Err(TraceError::Store(e)) => return Err(e),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        Ok(Some(RolloutTrace {
            rollout,
            trace,
            trace_error,
        }))
    }
}
