//! The pages' data source: the [`DataSource`] the app's server functions call, over the store.

use caplens_app::{
    data::{BoxFuture, DataError, DataSource},
    model::*,
    views::*,
};

use caplens_app::heat::{Metric, TokenDetail};
use caplens_app::review::{ReviewOp, ReviewReply};

use std::sync::Arc;

use caplens_analysis::trace::TokenTrace;

use crate::{
    auth::{Action, Auth},
    error::{ApiError, StoreError},
    heatmap,
    ingest::service::ImportService,
    review,
    storage::{
        access::Owned,
        rollouts::{TraceError, TraceRef},
        Store,
    },
    web::access::{Access, Caller},
};

type TraceCell = Arc<tokio::sync::OnceCell<Arc<TokenTrace>>>;

pub struct StoreSource {
    pub store: Store,
    pub imports: ImportService,
    pub views: crate::views::ViewService,
    pub auth: Auth,
    /// Who calls come from outside an HTTP request (nobody, unless a test says otherwise).
    outside_requests: crate::auth::Principal,
    /// The last trace decoded: the rollout page, its `pos=` token and the hover card's
    /// alternatives all read the same trace, which is megabytes for a long response. Requests
    /// arriving together (the page and its `pos=` token) share one read through the cell.
    last_trace: std::sync::Mutex<Option<(TraceRef, TraceCell)>>,
}

impl StoreSource {
    pub fn new(
        store: Store,
        imports: ImportService,
        views: crate::views::ViewService,
        auth: Auth,
    ) -> Self {
        StoreSource {
            store,
            imports,
            views,
            auth,
            outside_requests: crate::auth::Principal::anonymous(),
            last_trace: std::sync::Mutex::new(None),
        }
    }

    /// Acts as `principal` when called outside an HTTP request (tests and tools calling the
    /// data source directly). Inside a request the request's principal always decides.
    pub fn outside_requests(mut self, principal: crate::auth::Principal) -> Self {
        self.outside_requests = principal;
        self
    }

    /// The principal of the page or server function being answered, read from Leptos' context
    /// synchronously, before the method's future starts.
    fn caller(&self) -> Caller {
        match leptos::prelude::use_context::<axum::http::request::Parts>() {
            Some(_) => Caller {
                principal: crate::auth::current_principal(),
                peer: crate::auth::current_peer(),
            },
            None => Caller {
                principal: self.outside_requests.clone(),
                peer: None,
            },
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


/// A refusal as the pages show it (the API's message).
fn refused(e: ApiError) -> DataError {
    DataError(e.message)
}

/// `Ok(false)` when the resource is hidden from (or missing for) the principal: pages then show
/// their "not found", with a 404 status.
async fn may(access: &Access<'_>, action: Action, resource: &Owned, what: &str) -> Result<bool, DataError> {
    match access.require(action, resource, what).await {
        Ok(_) => Ok(true),
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => Ok(false),
        Err(e) => Err(refused(e)),
    }
}

/// Models shared across projects: those with a run the principal may read, and models with no
/// run yet.
pub async fn visible_models(access: &Access<'_>) -> Result<Vec<ModelRow>, StoreError> {
    let models = access.store.models().await?;
    let Some(readable) = access.readable() else {
        return Ok(models);
    };
    let mut with_runs = std::collections::HashSet::new();
    let mut visible = std::collections::HashSet::new();
    for (model, project) in access.store.model_projects().await? {
        with_runs.insert(model);
        if readable.contains(&project) {
            visible.insert(model);
        }
    }
    Ok(models
        .into_iter()
        .filter(|m| visible.contains(&m.id) || !with_runs.contains(&m.id))
        .collect())
}

/// The runs of a problem the principal may read, within `asked`: `Ok(None)` when the problem
/// is hidden (or missing), `Some(None)` for every run (local mode, site admins).
async fn readable_problem_runs(
    access: &Access<'_>,
    problem_id: i64,
    asked: Option<Vec<i64>>,
) -> Result<Option<Option<Vec<i64>>>, DataError> {
    // A share link reads the problem through its one experiment's runs.
    if let Some(experiment) = access.principal.shared_experiment() {
        if !access.store.problem_in_experiment(experiment, problem_id).await.map_err(user_error)? {
            return Ok(None);
        }
        let runs: Vec<i64> = access
            .store
            .experiment_run_ids(experiment)
            .await
            .map_err(user_error)?
            .into_iter()
            .filter(|run| asked.as_ref().is_none_or(|a| a.contains(run)))
            .collect();
        return Ok(Some(Some(runs)));
    }
    let Some(readable) = access.readable() else {
        return Ok(Some(asked));
    };
    let Some(projects) = access.store.problem_projects(problem_id).await.map_err(user_error)? else {
        return Ok(None);
    };
    if !projects.iter().any(|p| readable.contains(p)) {
        return Ok(None);
    }
    let runs: Vec<i64> = access
        .store
        .run_projects()
        .await
        .map_err(user_error)?
        .into_iter()
        .filter(|(run, p)| readable.contains(p) && asked.as_ref().is_none_or(|a| a.contains(run)))
        .map(|(run, _)| run)
        .collect();
    Ok(Some(Some(runs)))
}

fn user_error(e: StoreError) -> DataError {
    tracing::error!(error = %e, "storage error while rendering a page");
    DataError("caplens could not read its database; the server log has the details".into())
}

impl DataSource for StoreSource {
    fn review(&self, op: ReviewOp) -> BoxFuture<'_, Result<ReviewReply, DataError>> {
        Box::pin(async move {
            match self.review_op(op).await {
                Ok(reply) => Ok(reply),
                // Hidden or missing: the page shows its "not found".
                Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => Ok(ReviewReply::NotFound),
                Err(e) if e.status.is_server_error() => {
                    tracing::error!(error = %e.message, "review operation failed");
                    Err(DataError("caplens could not read its database; the server log has the details".into()))
                }
                Err(e) => Err(refused(e)),
            }
        })
    }

    fn experiments(&self) -> BoxFuture<'_, Result<Vec<ExperimentSummary>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            access.require_signed_in(Action::Read, "experiments").await.map_err(refused)?;
            let projects = self.store.experiment_projects().await.map_err(user_error)?;
            let all = self.store.experiments().await.map_err(user_error)?;
            Ok(access.keep(all, |e| e.slug.clone(), &projects))
        })
    }
    fn experiment(
        &self,
        slug: String,
    ) -> BoxFuture<'_, Result<Option<ExperimentDetail>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Experiment(slug.clone()), "experiment").await? {
                return Ok(None);
            }
            self.store.experiment(&slug).await.map_err(user_error)
        })
    }
    fn models(&self) -> BoxFuture<'_, Result<Vec<ModelRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            access.require_signed_in(Action::Read, "models").await.map_err(refused)?;
            visible_models(&access).await.map_err(user_error)
        })
    }
    fn datasets(&self) -> BoxFuture<'_, Result<Vec<DatasetRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            access.require_signed_in(Action::Read, "datasets").await.map_err(refused)?;
            let projects = self.store.dataset_projects().await.map_err(user_error)?;
            let all = self.store.datasets().await.map_err(user_error)?;
            Ok(access.keep(all, |d| d.name.clone(), &projects))
        })
    }
    fn runs(&self) -> BoxFuture<'_, Result<Vec<RunRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            access.require_signed_in(Action::Read, "runs").await.map_err(refused)?;
            let projects = self.store.run_projects().await.map_err(user_error)?;
            let all = self.store.runs().await.map_err(user_error)?;
            Ok(access.keep(all, |r| r.id, &projects))
        })
    }
    fn imports(&self) -> BoxFuture<'_, Result<Vec<ImportView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            access.require_signed_in(Action::Read, "imports").await.map_err(refused)?;
            let projects = self.store.import_projects().await.map_err(user_error)?;
            let all = self.imports.recent(if access.readable().is_some() { 1000 } else { 30 }).await.map_err(user_error)?;
            let mut reports = access.keep(all, |r| r.id.clone(), &projects);
            reports.truncate(30);
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
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            access.require_signed_in(Action::ManageOwnTokens, "tokens").await.map_err(refused)?;
            // Local mode and site admins see every token; others their own.
            let p = &caller.principal;
            let only = if p.is_local() || p.site_admin {
                None
            } else {
                Some(p.user_id.unwrap_or(-1))
            };
            self.store.tokens(only).await.map_err(user_error)
        })
    }
    fn create_token(
        &self,
        name: String,
        project: Option<String>,
        scope: Option<String>,
        expires_in_days: Option<u32>,
    ) -> BoxFuture<'_, Result<CreatedToken, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            crate::auth::tokens::create_token(
                &self.store,
                &caller,
                &name,
                project.as_deref(),
                scope.as_deref(),
                expires_in_days,
            )
            .await
            .map_err(refused)
        })
    }
    fn revoke_token(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            crate::auth::tokens::revoke_token(&self.store, &caller, id)
                .await
                .map_err(refused)
        })
    }
    fn eval_form(&self) -> BoxFuture<'_, Result<caplens_app::evals::EvalFormOptions, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            access.require_signed_in(Action::Read, "evaluations").await.map_err(refused)?;
            let mut options = crate::evals::form_options(&self.store)
                .await
                .map_err(user_error)?;
            // Only the engines and datasets this user may use.
            let engines = crate::web::evals::visible_engines(&access).await.map_err(refused)?;
            options.engines.retain(|e| engines.iter().any(|v| v.name == e.name));
            let projects = self.store.dataset_projects().await.map_err(user_error)?;
            options.datasets = access.keep(options.datasets, |d| d.name.clone(), &projects);
            Ok(options)
        })
    }
    fn evaluations(
        &self,
    ) -> BoxFuture<'_, Result<Vec<caplens_app::evals::EvaluationView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            access.require_signed_in(Action::Read, "evaluations").await.map_err(refused)?;
            crate::web::evals::visible_evaluations(&access, 50).await.map_err(refused)
        })
    }
    fn evaluation(
        &self,
        id: i64,
    ) -> BoxFuture<'_, Result<Option<caplens_app::evals::EvaluationView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Evaluation(id), "evaluation").await? {
                return Ok(None);
            }
            crate::evals::view(&self.store, id)
                .await
                .map_err(user_error)
        })
    }
    fn start_evaluation(
        &self,
        request: caplens_app::evals::EvalStartRequest,
    ) -> BoxFuture<'_, Result<Vec<i64>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let mut request = request;
            crate::web::evals::start_checked_with(&self.store, &self.auth, &caller, &mut request)
                .await
                .map_err(refused)
        })
    }
    fn cancel_evaluation(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            match crate::web::evals::transition_with(&self.store, &caller, id, crate::web::evals::Transition::Cancel).await {
                Ok(_) => Ok(true),
                Err(e) if e.status == axum::http::StatusCode::CONFLICT => Ok(false),
                Err(e) => Err(refused(e)),
            }
        })
    }
    fn resume_evaluation(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            match crate::web::evals::transition_with(&self.store, &caller, id, crate::web::evals::Transition::Resume).await {
                Ok(_) => Ok(true),
                Err(e) if e.status == axum::http::StatusCode::CONFLICT => Ok(false),
                Err(e) => Err(refused(e)),
            }
        })
    }
    fn queue_interventions(&self, rollout: i64, k: u32, top_entropy: u32) -> BoxFuture<'_, Result<i64, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            let project = access
                .require(Action::Edit, &Owned::Rollout(rollout), &format!("rollout {rollout}"))
                .await
                .map_err(refused)?;
            let request = crate::evals::interventions::InterventionRequest {
                k: Some(k),
                top_entropy: Some(top_entropy),
                ..Default::default()
            };
            let job = crate::evals::interventions::queue(&self.store, rollout, &request)
                .await
                .map_err(|e| match e {
                    crate::evals::EvalError::Store(s) => user_error(s),
                    other => DataError(other.to_string()),
                })?;
            access
                .audit("interventions_queued", format!("rollout {rollout}"), Some(project), format!("job {job}"))
                .await;
            Ok(job)
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
            use crate::evals::datasets;
            let access = caller.access(&self.store);
            let (_, project_id) = access
                .project_for_write(project.as_deref(), "datasets")
                .await
                .map_err(refused)?;
            let problems = datasets::parse(&file_name, &bytes, &fields)
                .map_err(|e| DataError(e.to_string()))?;
            datasets::store_dataset(&self.store, &name, &description, "upload", &problems)
                .await
                .map_err(|e| match e {
                    datasets::DatasetError::Store(s) => user_error(s),
                    other => DataError(other.to_string()),
                })?;
            self.store
                .claim_for_project(&Owned::Dataset(name.trim().to_owned()), project_id)
                .await
                .map_err(user_error)?;
            access
                .audit("dataset_uploaded", format!("dataset {}", name.trim()), Some(project_id), format!("{} problems", problems.len()))
                .await;
            Ok(problems.len())
        })
    }
    fn session(&self) -> BoxFuture<'_, Result<SessionView, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            crate::auth::admin::session_view(&self.store, &self.auth, &caller)
                .await
                .map_err(refused)
        })
    }
    fn users(&self) -> BoxFuture<'_, Result<Vec<UserRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move { crate::auth::admin::users(&self.store, &caller).await.map_err(refused) })
    }
    fn create_user(
        &self,
        name: String,
        password: String,
        admin: bool,
    ) -> BoxFuture<'_, Result<UserRow, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            crate::auth::admin::create_user(&self.store, &caller, &name, &password, admin)
                .await
                .map_err(refused)
        })
    }
    fn set_user_disabled(&self, id: i64, disabled: bool) -> BoxFuture<'_, Result<(), DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            crate::auth::admin::set_user_disabled(&self.store, &caller, id, disabled)
                .await
                .map_err(refused)
        })
    }
    fn projects(&self) -> BoxFuture<'_, Result<Vec<ProjectRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move { crate::auth::admin::projects(&self.store, &caller).await.map_err(refused) })
    }
    fn create_project(
        &self,
        slug: String,
        name: String,
        open_to_all: bool,
    ) -> BoxFuture<'_, Result<ProjectRow, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            crate::auth::admin::create_project(&self.store, &caller, &slug, &name, open_to_all)
                .await
                .map_err(refused)
        })
    }
    fn members(&self, project: String) -> BoxFuture<'_, Result<Vec<MemberRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            crate::auth::admin::members(&self.store, &caller, &project)
                .await
                .map_err(refused)
        })
    }
    fn set_member(
        &self,
        project: String,
        user: String,
        role: Option<Role>,
    ) -> BoxFuture<'_, Result<(), DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            crate::auth::admin::set_member(&self.store, &caller, &project, &user, role)
                .await
                .map_err(refused)
        })
    }
    fn audit(&self, before: Option<i64>) -> BoxFuture<'_, Result<Vec<AuditEntry>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            crate::auth::admin::audit(&self.store, &caller, 100, before)
                .await
                .map_err(refused)
        })
    }
    fn overview_view(
        &self,
        slug: String,
        verdicts: Option<caplens_analysis::verdicts::VerdictSource>,
        unreviewed: bool,
    ) -> BoxFuture<'_, Result<Option<OverviewView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Experiment(slug.clone()), "experiment").await? {
                return Ok(None);
            }
            self.views.overview(&slug, verdicts, unreviewed).await.map_err(user_error) })
    }
    fn passk_view(
        &self,
        slug: String,
        request: PasskRequest,
    ) -> BoxFuture<'_, Result<Option<PasskView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Experiment(slug.clone()), "experiment").await? {
                return Ok(None);
            }
            self.views.passk(&slug, request).await.map_err(user_error) })
    }
    fn unsolvable_view(
        &self,
        slug: String,
        request: UnsolvableRequest,
    ) -> BoxFuture<'_, Result<Option<UnsolvableView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Experiment(slug.clone()), "experiment").await? {
                return Ok(None);
            }
           
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
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Experiment(slug.clone()), "experiment").await? {
                return Ok(None);
            }
            self.views.compare(&slug, request).await.map_err(user_error) })
    }
    fn dynamics_view(
        &self,
        slug: String,
        request: DynamicsRequest,
    ) -> BoxFuture<'_, Result<Option<DynamicsView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Experiment(slug.clone()), "experiment").await? {
                return Ok(None);
            }
           
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
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Experiment(slug.clone()), "experiment").await? {
                return Ok(None);
            }
            self.views.rft(&slug, request).await.map_err(user_error) })
    }
    fn token_stats_view(
        &self,
        slug: String,
        request: TokenStatsRequest,
    ) -> BoxFuture<'_, Result<Option<TokenStatsView>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Experiment(slug.clone()), "experiment").await? {
                return Ok(None);
            }
           
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
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            let Some(runs) = readable_problem_runs(&access, id, runs).await? else {
                return Ok(None);
            };
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
        let caller = self.caller();
        Box::pin(async move {
            // The run: the one asked for when the problem has it (within `runs=`), else the
            // first in lineage order, as the page shows them; only runs the principal may read.
            let access = caller.access(&self.store);
            let asked = (!query.runs.is_empty()).then(|| query.runs.clone());
            let runs = readable_problem_runs(&access, problem_id, asked).await?.unwrap_or(Some(Vec::new()));
            let detail = self
                .store
                .problem_detail(problem_id, runs.as_deref())
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
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Rollout(id), "rollout").await? {
                return Ok(None);
            }
            rollout_view(self, id, metric).await
        })
    }
    fn rollout_token(
        &self,
        id: i64,
        pos: usize,
    ) -> BoxFuture<'_, Result<Option<TokenDetail>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            let access = caller.access(&self.store);
            if !may(&access, Action::Read, &Owned::Rollout(id), "rollout").await? {
                return Ok(None);
            }
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

impl StoreSource {
    /// One review operation for the request's principal (`DataSource::review`).
    async fn review_op(&self, op: ReviewOp) -> Result<ReviewReply, ApiError> {
        let caller = self.caller();
        let access = caller.access(&self.store);
        let a = &access;
        Ok(match op {
            ReviewOp::ProblemReview { slug, problem } => ReviewReply::ProblemReview(review::problem_review(a, &slug, problem).await?),
            ReviewOp::SetLabels { slug, problem, labels } => {
                ReviewReply::ProblemReview(review::set_labels(a, &slug, problem, &labels).await?)
            }
            ReviewOp::AddOverride { slug, input } => {
                let req = review::OverrideRequest::in_problem(
                    input.problem_id,
                    input.answer,
                    input.rollout,
                    input.verdict,
                    input.reason,
                );
                ReviewReply::Override(review::add_override(a, &slug, &req).await?)
            }
            ReviewOp::DeleteOverride { id } => {
                review::delete_override(a, id).await?;
                ReviewReply::Done
            }
            ReviewOp::Threads { slug, filter } => ReviewReply::Threads(review::threads(a, &slug, &filter).await?),
            ReviewOp::PostComment { slug, target, body } => {
                ReviewReply::Thread(review::post_comment(a, &slug, &target, &body).await?)
            }
            ReviewOp::Reply { thread, body } => ReviewReply::Thread(review::reply(a, thread, &body).await?),
            ReviewOp::EditComment { id, body } => ReviewReply::Thread(review::edit_comment(a, id, &body).await?),
            ReviewOp::DeleteComment { id } => ReviewReply::Thread(review::delete_comment(a, id).await?),
            ReviewOp::Resolve { thread, resolved } => ReviewReply::Thread(review::resolve_thread(a, thread, resolved).await?),
            ReviewOp::Inbox => ReviewReply::Inbox(review::inbox(a).await?),
            ReviewOp::CommentCounts { slug } => ReviewReply::CommentCounts(review::comment_counts(a, &slug).await?),
            ReviewOp::DiscussionStamp { slug } => ReviewReply::Stamp(review::discussion_stamp(a, &slug).await?),
            ReviewOp::Queue { slug, min_share, mine } => {
                let share = min_share.filter(|s| s.is_finite() && *s > 0.0 && *s <= 1.0).unwrap_or(review::DEFAULT_MIN_SHARE);
                ReviewReply::Queue(review::review_queue(a, &self.views, &slug, share, mine).await?)
            }
            ReviewOp::Assign { slug, problem, user } => {
                review::assign(a, &slug, problem, user.as_deref()).await?;
                ReviewReply::Done
            }
            ReviewOp::Settings { slug } => ReviewReply::Settings(review::settings(a, &slug).await?),
            ReviewOp::UpdateExperiment { slug, name, description } => {
                review::update_experiment(a, &slug, &name, &description).await?;
                ReviewReply::Done
            }
            ReviewOp::MoveExperiment { slug, project } => {
                review::move_experiment(a, &slug, &project).await?;
                ReviewReply::Done
            }
            ReviewOp::DeleteExperiment { slug, confirm } => {
                review::delete_experiment(a, &slug, &confirm).await?;
                ReviewReply::Done
            }
            ReviewOp::CreateShareLink { slug, path, expires_in } => {
                let headers = leptos::prelude::use_context::<axum::http::request::Parts>()
                    .map(|p| p.headers)
                    .unwrap_or_default();
                let base = super::review::base_url(self.auth.settings(), &headers);
                ReviewReply::ShareLink(review::create_share_link(a, &slug, &path, expires_in, &base).await?)
            }
            ReviewOp::ProjectReview { project } => ReviewReply::ProjectReview(review::project_review(a, &project).await?),
            ReviewOp::AddLabel { project, name, colour } => {
                review::add_label(a, &project, &name, &colour).await?;
                ReviewReply::Done
            }
            ReviewOp::SetViewersComment { project, allowed } => {
                review::set_viewers_comment(a, &project, allowed).await?;
                ReviewReply::Done
            }
            ReviewOp::RolloutExperiments { rollout } => {
                ReviewReply::Experiments(review::rollout_experiments(a, rollout).await?)
            }
            ReviewOp::RevokeShareLink { id } => {
                review::revoke_share_link(a, id).await?;
                ReviewReply::Done
            }
        })
    }
}
