//! Evaluation runs for the pages: the form, evaluations, their transitions, interventions,
//! dataset uploads.

use caplens_app::data::{BoxFuture, DataError, EvalData};

use super::{found, refused, StoreSource};
use crate::ops::{self, OpError};

impl EvalData for StoreSource {
    fn eval_form(&self) -> BoxFuture<'_, Result<caplens_app::evals::EvalFormOptions, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::evals::form_options(&caller.access(&self.store))
                .await
                .map_err(refused)
        })
    }
    fn evaluations(
        &self,
    ) -> BoxFuture<'_, Result<Vec<caplens_app::evals::EvaluationView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::evals::evaluations(&caller.access(&self.store), 50)
                .await
                .map_err(refused)
        })
    }
    fn evaluation(
        &self,
        id: i64,
    ) -> BoxFuture<'_, Result<Option<caplens_app::evals::EvaluationView>, DataError>> {
        let caller = self.caller();
        Box::pin(
            async move { found(ops::evals::evaluation(&caller.access(&self.store), id).await) },
        )
    }
    fn start_evaluation(
        &self,
        request: caplens_app::evals::EvalStartRequest,
    ) -> BoxFuture<'_, Result<Vec<i64>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let mut request = request;
            ops::evals::start(
                &caller.access(&self.store),
                self.auth.limits(),
                &mut request,
            )
            .await
            .map_err(refused)
        })
    }
    fn cancel_evaluation(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>> {
        self.transition(id, ops::evals::Transition::Cancel)
    }
    fn resume_evaluation(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>> {
        self.transition(id, ops::evals::Transition::Resume)
    }
    fn queue_interventions(
        &self,
        rollout: i64,
        k: u32,
        top_entropy: u32,
    ) -> BoxFuture<'_, Result<i64, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let request = crate::evals::interventions::InterventionRequest {
                k: Some(k),
                top_entropy: Some(top_entropy),
                ..Default::default()
            };
            let view =
                ops::evals::intervene_rollout(&caller.access(&self.store), rollout, &request)
                    .await
                    .map_err(refused)?;
            Ok(view.id)
        })
    }
    fn upload_dataset(
        &self,
        name: String,
        description: String,
        file_name: String,
        bytes: Vec<u8>,
        fields: caplens_app::evals::DatasetFields,
        project: Option<String>,
    ) -> BoxFuture<'_, Result<usize, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let (_, problems) = ops::evals::upload_dataset(
                &caller.access(&self.store),
                project.as_deref(),
                &name,
                &description,
                &file_name,
                &bytes,
                &fields,
            )
            .await
            .map_err(refused)?;
            Ok(problems)
        })
    }
}

impl StoreSource {
    fn transition(
        &self,
        id: i64,
        change: ops::evals::Transition,
    ) -> BoxFuture<'_, Result<bool, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            match ops::evals::transition(&caller.access(&self.store), id, change).await {
                Ok(_) => Ok(true),
                Err(OpError::Conflict(_)) => Ok(false),
                Err(e) => Err(refused(e)),
            }
        })
    }
}
