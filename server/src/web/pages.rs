//! The pages' data source: the [`DataSource`] the app's server functions call, over the store.

use caplens_app::{
    data::{BoxFuture, DataError, DataSource},
    model::*,
};

use crate::{error::StoreError, storage::Store};

pub struct StoreSource(pub Store);

fn user_error(e: StoreError) -> DataError {
    tracing::error!(error = %e, "storage error while rendering a page");
    DataError("caplens could not read its database; the server log has the details".into())
}

impl DataSource for StoreSource {
    fn experiments(&self) -> BoxFuture<'_, Result<Vec<ExperimentSummary>, DataError>> {
        Box::pin(async move { self.0.experiments().await.map_err(user_error) })
    }
    fn experiment(
        &self,
        slug: String,
    ) -> BoxFuture<'_, Result<Option<ExperimentDetail>, DataError>> {
        Box::pin(async move { self.0.experiment(&slug).await.map_err(user_error) })
    }
    fn models(&self) -> BoxFuture<'_, Result<Vec<ModelRow>, DataError>> {
        Box::pin(async move { self.0.models().await.map_err(user_error) })
    }
    fn datasets(&self) -> BoxFuture<'_, Result<Vec<DatasetRow>, DataError>> {
        Box::pin(async move { self.0.datasets().await.map_err(user_error) })
    }
    fn runs(&self) -> BoxFuture<'_, Result<Vec<RunRow>, DataError>> {
        Box::pin(async move { self.0.runs().await.map_err(user_error) })
    }
}
