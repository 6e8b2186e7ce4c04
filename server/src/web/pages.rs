//! The pages' data source: the [`DataSource`] the app's server functions call, over the store.

use caplens_app::{
    data::{BoxFuture, DataError, DataSource},
    model::*,
    views::*,
};

use caplens_app::heat::{Metric, TokenDetail};

use std::sync::Arc;

use caplens_analysis::trace::TokenTrace;

use crate::{
    error::StoreError,
    heatmap,
    ingest::service::ImportService,
    storage::{
        rollouts::{TraceError, TraceRef},
        Store,
    },
};

type TraceCell = Arc<tokio::sync::OnceCell<Arc<TokenTrace>>>;

pub struct StoreSource {
    pub store: Store,
    pub imports: ImportService,
    pub views: crate::views::ViewService,
    /// The last trace decoded: the rollout page, its `pos=` token and the hover card's
    /// alternatives all read the same trace, which is megabytes for a long response. Requests
    /// arriving together (the page and its `pos=` token) share one read through the cell.
    last_trace: std::sync::Mutex<Option<(TraceRef, TraceCell)>>,
}

impl StoreSource {
    pub fn new(store: Store, imports: ImportService, views: crate::views::ViewService) -> Self {
        StoreSource {
            store,
            imports,
            views,
            last_trace: std::sync::Mutex::new(None),
        }
    }

    /// A rollout's decoded trace, from the one-entry cache when it is the last one asked for
    /// (traces never change once stored: a key and byte range name one trace forever).
    async fn trace(&self, trace_ref: &TraceRef) -> Result<Arc<TokenTrace>, TraceError> {
        let cell = {
            let mut last = self.last_trace.lock().expect("not poisoned");
            match &*last {
                Some((r, cell)) if r == trace_ref => cell.clone(),
                _ => {
                    let cell = TraceCell::default();
                    *last = Some((trace_ref.clone(), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_try_init(|| async { self.store.read_trace(trace_ref).await.map(Arc::new) })
            .await
            .cloned()
    }
}

fn user_error(e: StoreError) -> DataError {
    tracing::error!(error = %e, "storage error while rendering a page");
    DataError("caplens could not read its database; the server log has the details".into())
}

impl DataSource for StoreSource {
    fn experiments(&self) -> BoxFuture<'_, Result<Vec<ExperimentSummary>, DataError>> {
        Box::pin(async move { self.store.experiments().await.map_err(user_error) })
    }
    fn experiment(
        &self,
        slug: String,
    ) -> BoxFuture<'_, Result<Option<ExperimentDetail>, DataError>> {
        Box::pin(async move { self.store.experiment(&slug).await.map_err(user_error) })
    }
    fn models(&self) -> BoxFuture<'_, Result<Vec<ModelRow>, DataError>> {
        Box::pin(async move { self.store.models().await.map_err(user_error) })
    }
    fn datasets(&self) -> BoxFuture<'_, Result<Vec<DatasetRow>, DataError>> {
        Box::pin(async move { self.store.datasets().await.map_err(user_error) })
    }
    fn runs(&self) -> BoxFuture<'_, Result<Vec<RunRow>, DataError>> {
        Box::pin(async move { self.store.runs().await.map_err(user_error) })
    }
    fn imports(&self) -> BoxFuture<'_, Result<Vec<ImportView>, DataError>> {
        Box::pin(async move {
            let reports = self.imports.recent(30).await.map_err(user_error)?;
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
    fn tokens(&self) -> BoxFuture<'_, Result<Vec<ApiTokenRow>, DataError>> {
        Box::pin(async move { self.store.tokens().await.map_err(user_error) })
    }
    fn create_token(&self, name: String) -> BoxFuture<'_, Result<CreatedToken, DataError>> {
        Box::pin(async move {
            self.store.create_token(&name).await.map_err(|e| match e {
                StoreError::Invalid(m) => DataError(m),
                e => user_error(e),
            })
        })
    }
    fn revoke_token(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>> {
        Box::pin(async move { self.store.revoke_token(id).await.map_err(user_error) })
    }
    fn eval_form(&self) -> BoxFuture<'_, Result<caplens_app::evals::EvalFormOptions, DataError>> {
        Box::pin(async move {
            crate::evals::form_options(&self.store)
                .await
                .map_err(user_error)
        })
    }
    fn evaluations(
        &self,
    ) -> BoxFuture<'_, Result<Vec<caplens_app::evals::EvaluationView>, DataError>> {
        Box::pin(async move {
            crate::evals::list(&self.store, 50)
                .await
                .map_err(user_error)
        })
    }
    fn evaluation(
        &self,
        id: i64,
    ) -> BoxFuture<'_, Result<Option<caplens_app::evals::EvaluationView>, DataError>> {
        Box::pin(async move {
            crate::evals::view(&self.store, id)
                .await
                .map_err(user_error)
        })
    }
    fn start_evaluation(
        &self,
        request: caplens_app::evals::EvalStartRequest,
    ) -> BoxFuture<'_, Result<Vec<i64>, DataError>> {
        Box::pin(async move {
            crate::evals::start(&self.store, &request)
                .await
                .map_err(|e| match e {
                    crate::evals::EvalError::Store(s) => user_error(s),
                    other => DataError(other.to_string()),
                })
        })
    }
    fn cancel_evaluation(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>> {
        Box::pin(async move { self.store.cancel_evaluation(id).await.map_err(user_error) })
    }
    fn resume_evaluation(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>> {
        Box::pin(async move { self.store.resume_evaluation(id).await.map_err(user_error) })
    }
    fn queue_interventions(&self, rollout: i64, k: u32, top_entropy: u32) -> BoxFuture<'_, Result<i64, DataError>> {
        Box::pin(async move {
            let request = crate::evals::interventions::InterventionRequest {
                k: Some(k),
                top_entropy: Some(top_entropy),
                ..Default::default()
            };
            crate::evals::interventions::queue(&self.store, rollout, &request)
                .await
                .map_err(|e| match e {
                    crate::evals::EvalError::Store(s) => user_error(s),
                    other => DataError(other.to_string()),
                })
        })
    }
    fn upload_dataset(
        &self,
        name: String,
        description: String,
        file_name: String,
        bytes: Vec<u8>,
        fields: caplens_app::evals::DatasetFields,
    ) -> BoxFuture<'_, Result<usize, DataError>> {
        Box::pin(async move {
            use crate::evals::datasets;
            let problems = datasets::parse(&file_name, &bytes, &fields)
                .map_err(|e| DataError(e.to_string()))?;
            datasets::store_dataset(&self.store, &name, &description, "upload", &problems)
                .await
                .map_err(|e| match e {
                    datasets::DatasetError::Store(s) => user_error(s),
                    other => DataError(other.to_string()),
                })?;
            Ok(problems.len())
        })
    }
    fn overview_view(
        &self,
        slug: String,
        verdicts: Option<caplens_analysis::verdicts::VerdictSource>,
    ) -> BoxFuture<'_, Result<Option<OverviewView>, DataError>> {
        Box::pin(async move { self.views.overview(&slug, verdicts).await.map_err(user_error) })
    }
    fn passk_view(
        &self,
        slug: String,
        request: PasskRequest,
    ) -> BoxFuture<'_, Result<Option<PasskView>, DataError>> {
        Box::pin(async move { self.views.passk(&slug, request).await.map_err(user_error) })
    }
    fn unsolvable_view(
        &self,
        slug: String,
        request: UnsolvableRequest,
    ) -> BoxFuture<'_, Result<Option<UnsolvableView>, DataError>> {
        Box::pin(async move {
            self.views
                .unsolvable(&slug, request)
                .await
                .map_err(user_error)
        })
    }
    fn compare_view(
        &self,
        slug: String,
        request: CompareRequest,
    ) -> BoxFuture<'_, Result<Option<CompareView>, DataError>> {
        Box::pin(async move { self.views.compare(&slug, request).await.map_err(user_error) })
    }
    fn dynamics_view(
        &self,
        slug: String,
        request: DynamicsRequest,
    ) -> BoxFuture<'_, Result<Option<DynamicsView>, DataError>> {
        Box::pin(async move {
            self.views
                .dynamics(&slug, request)
                .await
                .map_err(user_error)
        })
    }
    fn rft_view(
        &self,
        slug: String,
        request: RftRequest,
    ) -> BoxFuture<'_, Result<Option<RftView>, DataError>> {
        Box::pin(async move { self.views.rft(&slug, request).await.map_err(user_error) })
    }
    fn token_stats_view(
        &self,
        slug: String,
        request: TokenStatsRequest,
    ) -> BoxFuture<'_, Result<Option<TokenStatsView>, DataError>> {
        Box::pin(async move {
            self.views
                .token_stats(&slug, request)
                .await
                .map_err(user_error)
        })
    }
    fn problem(
        &self,
        id: i64,
        runs: Option<Vec<i64>>,
    ) -> BoxFuture<'_, Result<Option<ProblemDetail>, DataError>> {
        Box::pin(async move {
            self.store
                .problem_detail(id, runs.as_deref())
                .await
                .map_err(user_error)
        })
    }
    fn problem_rollouts(
        &self,
        problem_id: i64,
        query: RolloutListQuery,
    ) -> BoxFuture<'_, Result<RolloutList, DataError>> {
        Box::pin(async move {
            // The run: the one asked for when the problem has it (within `runs=`), else the
            // first in lineage order, as the page shows them.
            let runs = (!query.runs.is_empty()).then_some(query.runs.as_slice());
            let detail = self
                .store
                .problem_detail(problem_id, runs)
                .await
                .map_err(user_error)?;
            let ids: Vec<i64> = detail
                .map(|d| d.runs.iter().map(|r| r.run_id).collect())
                .unwrap_or_default();
            let run = query
                .run
                .filter(|r| ids.contains(r))
                .or_else(|| ids.first().copied());
            let Some(run) = run else {
                return Ok(RolloutList {
                    run_id: None,
                    total: 0,
                    page: 1,
                    per_page: caplens_app::api::ROLLOUTS_PER_PAGE,
                    items: Vec::new(),
                    responses: Vec::new(),
                });
            };
            self.store
                .problem_rollouts(
                    problem_id,
                    run,
                    query.page,
                    caplens_app::api::ROLLOUTS_PER_PAGE,
                    query.answer.as_deref(),
                    &query.open,
                )
                .await
                .map_err(user_error)
        })
    }
    fn rollout(
        &self,
        id: i64,
        metric: Option<Metric>,
    ) -> BoxFuture<'_, Result<Option<RolloutView>, DataError>> {
        Box::pin(async move { rollout_view(self, id, metric).await })
    }
    fn rollout_token(
        &self,
        id: i64,
        pos: usize,
    ) -> BoxFuture<'_, Result<Option<TokenDetail>, DataError>> {
        Box::pin(async move {
            let Some(rollout) = self.store.rollout(id).await.map_err(user_error)? else {
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
        TraceError::Store(e) => user_error(e),
        e => {
            tracing::warn!(error = %e, "unreadable token trace");
            DataError(e.to_string())
        }
    }
}

/// The rollout page's data: the rollout, and with a trace its heatmap.
pub async fn rollout_view(
    source: &StoreSource,
    id: i64,
    metric: Option<Metric>,
) -> Result<Option<RolloutView>, DataError> {
    let Some(r) = source.store.rollout(id).await.map_err(user_error)? else {
        return Ok(None);
    };
    let (mut heat, mut trace_error_text) = (None, None);
    if let Some(trace_ref) = &r.trace {
        match source.trace(trace_ref).await {
            Ok(trace) => {
                let metric = metric.unwrap_or_else(|| heatmap::default_metric(&trace));
                heat = Some(heatmap::heatmap(&trace, metric));
            }
            Err(TraceError::Store(e)) => return Err(user_error(e)),
            Err(e) => {
                tracing::warn!(rollout = id, error = %e, "unreadable token trace");
                trace_error_text = Some(e.to_string());
            }
        }
    }
    Ok(Some(RolloutView {
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
    }))
}
