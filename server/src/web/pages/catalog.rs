//! Catalogue reads for the pages: lists, one experiment, imports, a problem, its rollouts, one
//! rollout with its heatmap and one token of it.

use caplens_app::data::{BoxFuture, CatalogData, DataError};
use caplens_app::model::*;

use caplens_app::heat::{Metric, TokenDetail};

use super::{found, refused, StoreSource};
use crate::heatmap;
use crate::ops::{self, OpError};
use crate::storage::rollouts::TraceError;

impl CatalogData for StoreSource {
    fn experiments(&self) -> BoxFuture<'_, Result<Vec<ExperimentSummary>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::catalog::experiments(&caller.access(&self.store))
                .await
                .map_err(refused)
        })
    }
    fn experiment(
        &self,
        slug: String,
    ) -> BoxFuture<'_, Result<Option<ExperimentDetail>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            found(ops::catalog::experiment(&caller.access(&self.store), &slug).await)
        })
    }
    fn models(&self) -> BoxFuture<'_, Result<Vec<ModelRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::catalog::models(&caller.access(&self.store))
                .await
                .map_err(refused)
        })
    }
    fn datasets(&self) -> BoxFuture<'_, Result<Vec<DatasetRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::catalog::datasets(&caller.access(&self.store))
                .await
                .map_err(refused)
        })
    }
    fn runs(&self) -> BoxFuture<'_, Result<Vec<RunRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::catalog::runs(&caller.access(&self.store))
                .await
                .map_err(refused)
        })
    }
    fn imports(&self) -> BoxFuture<'_, Result<Vec<ImportView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let reports = ops::imports::imports(&caller.access(&self.store), &self.imports, 30)
                .await
                .map_err(refused)?;
            Ok(reports
                .into_iter()
                .map(|r| {
                    // The report and the view share field names; convert through JSON.
                    serde_json::from_value(serde_json::to_value(r).expect("serialises"))
                        .expect("an import report reads as an ImportView")
                })
                .collect())
        })
    }
    fn import_formats(&self) -> Vec<caplens_app::model::ImportFormat> {
        crate::ingest::Format::all()
            .map(|f| caplens_app::model::ImportFormat {
                name: f.name().to_string(),
                title: f.title().to_string(),
            })
            .collect()
    }
    fn document(&self, name: String) -> Option<caplens_app::model::DocumentView> {
        crate::docs::document(&name)
    }
    fn problem(
        &self,
        id: i64,
        runs: Option<Vec<i64>>,
        experiment: Option<String>,
        unreviewed: bool,
    ) -> BoxFuture<'_, Result<Option<ProblemDetail>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::views::problem(
                &caller.access(&self.store),
                id,
                runs,
                experiment,
                unreviewed,
            )
            .await
            .map_err(refused)
        })
    }
    fn dataset_problems(
        &self,
        id: i64,
        q: Option<String>,
        offset: u64,
    ) -> BoxFuture<'_, Result<Option<caplens_app::model::DatasetProblemsView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            match ops::catalog::dataset_problems(
                &caller.access(&self.store),
                id,
                q,
                caplens_app::model::DATASET_PROBLEMS_PER_PAGE,
                offset,
            )
            .await
            {
                Ok(view) => Ok(Some(view)),
                // Missing and hidden read the same: the page says "not found".
                Err(ops::OpError::NotFound(_)) => Ok(None),
                Err(e) => Err(refused(e)),
            }
        })
    }
    fn problem_rollouts(
        &self,
        problem_id: i64,
        query: RolloutListQuery,
    ) -> BoxFuture<'_, Result<RolloutList, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::views::problem_rollouts(&caller.access(&self.store), problem_id, query)
                .await
                .map_err(refused)
        })
    }
    fn rollout(
        &self,
        id: i64,
        metric: Option<Metric>,
    ) -> BoxFuture<'_, Result<Option<RolloutView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let Some(r) = ops::views::rollout(&caller.access(&self.store), id)
                .await
                .map_err(refused)?
            else {
                return Ok(None);
            };
            rollout_view(self, r, metric).await.map(Some)
        })
    }
    fn rollout_token(
        &self,
        id: i64,
        pos: usize,
    ) -> BoxFuture<'_, Result<Option<TokenDetail>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let Some(rollout) = ops::views::rollout(&caller.access(&self.store), id)
                .await
                .map_err(refused)?
            else {
                return Ok(None);
            };
            let Some(trace_ref) = rollout.trace else {
                return Ok(None);
            };
            match self.trace(&trace_ref).await {
                Ok(trace) => Ok(heatmap::token_detail(&trace, pos)),
                Err(e) => Err(trace_error(e)),
            }
        })
    }
}

fn trace_error(e: TraceError) -> DataError {
    match e {
        TraceError::Store(e) => refused(OpError::Store(e)),
        e => {
            tracing::warn!(error = %e, "unreadable token trace");
            DataError::new(500, e.to_string())
        }
    }
}

/// The rollout page's data: the rollout, and with a trace its heatmap.
async fn rollout_view(
    source: &StoreSource,
    r: crate::storage::rollouts::StoredRollout,
    metric: Option<Metric>,
) -> Result<RolloutView, DataError> {
    let id = r.row.id;
    let (mut heat, mut trace_error_text) = (None, None);
    if let Some(trace_ref) = &r.trace {
        match source.trace(trace_ref).await {
            Ok(trace) => {
                let metric = metric.unwrap_or_else(|| heatmap::default_metric(&trace));
                heat = Some(heatmap::heatmap(&trace, metric));
            }
            Err(TraceError::Store(e)) => return Err(refused(OpError::Store(e))),
            Err(e) => {
                tracing::warn!(rollout = id, error = %e, "unreadable token trace");
                trace_error_text = Some(e.to_string());
            }
        }
    }
    Ok(RolloutView {
        row: r.row,
        run_id: r.run_id,
        model: r.model,
        stage: r.stage,
        problem_id: r.problem_id,
        problem_key: r.problem_key,
        dataset: r.dataset,
        response: r.response,
        heatmap: heat,
        trace_error: trace_error_text,
    })
}
