//! The pages' data source: the [`DataSource`] the app's server functions call, over the store.

use caplens_app::{
    data::{BoxFuture, DataError, DataSource},
    model::*,
    views::*,
};

use crate::{error::StoreError, ingest::service::ImportService, storage::Store};

pub struct StoreSource {
    pub store: Store,
    pub imports: ImportService,
    pub views: crate::views::ViewService,
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
    fn overview_view(&self, slug: String) -> BoxFuture<'_, Result<Option<OverviewView>, DataError>> {
        Box::pin(async move { self.views.overview(&slug).await.map_err(user_error) })
    }
    fn passk_view(&self, slug: String, request: PasskRequest) -> BoxFuture<'_, Result<Option<PasskView>, DataError>> {
        Box::pin(async move { self.views.passk(&slug, request).await.map_err(user_error) })
    }
    fn unsolvable_view(
        &self,
        slug: String,
        request: UnsolvableRequest,
    ) -> BoxFuture<'_, Result<Option<UnsolvableView>, DataError>> {
        Box::pin(async move { self.views.unsolvable(&slug, request).await.map_err(user_error) })
    }
    fn compare_view(&self, slug: String, request: CompareRequest) -> BoxFuture<'_, Result<Option<CompareView>, DataError>> {
        Box::pin(async move { self.views.compare(&slug, request).await.map_err(user_error) })
    }
    fn dynamics_view(&self, slug: String, request: DynamicsRequest) -> BoxFuture<'_, Result<Option<DynamicsView>, DataError>> {
        Box::pin(async move { self.views.dynamics(&slug, request).await.map_err(user_error) })
    }
    fn rft_view(&self, slug: String, request: RftRequest) -> BoxFuture<'_, Result<Option<RftView>, DataError>> {
        Box::pin(async move { self.views.rft(&slug, request).await.map_err(user_error) })
    }
    fn token_stats_view(
        &self,
        slug: String,
        request: TokenStatsRequest,
    ) -> BoxFuture<'_, Result<Option<TokenStatsView>, DataError>> {
        Box::pin(async move { self.views.token_stats(&slug, request).await.map_err(user_error) })
    }
}
