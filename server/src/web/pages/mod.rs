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
    auth::Auth,
    heatmap,
    ingest::service::ImportService,
    ops::{self, review, views::View, views::ViewRequest, Caller, OpError},
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
                principal: super::middleware::current_principal(),
                peer: super::middleware::current_peer(),
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

/// A refusal or failure as the pages show it: storage failures are logged and said plainly.
fn refused(e: OpError) -> DataError {
    if let OpError::Store(s) = &e {
        tracing::error!(error = %s, "storage error while rendering a page");
    }
    DataError(e.public_message())
}

/// Hidden and missing read the same to a page: `None` (its "not found", with a 404 status).
fn found<T>(r: Result<T, OpError>) -> Result<Option<T>, DataError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(OpError::NotFound(_)) => Ok(None),
        Err(e) => Err(refused(e)),
    }
}

impl StoreSource {
    /// One of an experiment's analysis views for the request's caller.
    async fn view(
        &self,
        caller: Caller,
        slug: String,
        request: ViewRequest,
    ) -> Result<Option<View>, DataError> {
        ops::views::view(&caller.access(&self.store), &self.views, &slug, request)
            .await
            .map_err(refused)
    }
}

macro_rules! view_method {
    ($name:ident, $request:ty, $variant:ident, $out:ty) => {
        fn $name(
            &self,
            slug: String,
            request: $request,
        ) -> BoxFuture<'_, Result<Option<$out>, DataError>> {
            let caller = self.caller();
            Box::pin(async move {
                Ok(
                    match self
                        .view(caller, slug, ViewRequest::$variant(request))
                        .await?
                    {
                        Some(View::$variant(v)) => Some(*v),
                        _ => None,
                    },
                )
            })
        }
    };
}

impl DataSource for StoreSource {
    fn review(&self, op: ReviewOp) -> BoxFuture<'_, Result<ReviewReply, DataError>> {
        Box::pin(async move {
            match self.review_op(op).await {
                Ok(reply) => Ok(reply),
                // Hidden or missing: the page shows its "not found".
                Err(OpError::NotFound(_)) => Ok(ReviewReply::NotFound),
                Err(e) => Err(refused(e)),
            }
        })
    }

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
    fn tokens(&self) -> BoxFuture<'_, Result<Vec<ApiTokenRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::tokens::tokens(&self.store, &caller)
                .await
                .map_err(refused)
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
            ops::tokens::create_token(
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
            ops::tokens::revoke_token(&self.store, &caller, id)
                .await
                .map_err(refused)
        })
    }
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
    fn session(&self) -> BoxFuture<'_, Result<SessionView, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::session_view(&self.store, &self.auth, &caller)
                .await
                .map_err(refused)
        })
    }
    fn users(&self) -> BoxFuture<'_, Result<Vec<UserRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::users(&self.store, &caller)
                .await
                .map_err(refused)
        })
    }
    fn create_user(
        &self,
        name: String,
        password: String,
        admin: bool,
    ) -> BoxFuture<'_, Result<UserRow, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::create_user(&self.store, &caller, &name, &password, admin)
                .await
                .map_err(refused)
        })
    }
    fn set_user_disabled(&self, id: i64, disabled: bool) -> BoxFuture<'_, Result<(), DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::set_user_disabled(&self.store, &caller, id, disabled)
                .await
                .map_err(refused)
        })
    }
    fn projects(&self) -> BoxFuture<'_, Result<Vec<ProjectRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::projects(&self.store, &caller)
                .await
                .map_err(refused)
        })
    }
    fn create_project(
        &self,
        slug: String,
        name: String,
        open_to_all: bool,
    ) -> BoxFuture<'_, Result<ProjectRow, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::create_project(&self.store, &caller, &slug, &name, open_to_all)
                .await
                .map_err(refused)
        })
    }
    fn members(&self, project: String) -> BoxFuture<'_, Result<Vec<MemberRow>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::members(&self.store, &caller, &project)
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
            ops::admin::set_member(&self.store, &caller, &project, &user, role)
                .await
                .map_err(refused)
        })
    }
    fn audit(&self, before: Option<i64>) -> BoxFuture<'_, Result<Vec<AuditEntry>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::admin::audit(&self.store, &caller, 100, before)
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
            Ok(
                match self
                    .view(
                        caller,
                        slug,
                        ViewRequest::Overview {
                            verdicts,
                            unreviewed,
                        },
                    )
                    .await?
                {
                    Some(View::Overview(v)) => Some(*v),
                    _ => None,
                },
            )
        })
    }
    view_method!(passk_view, PasskRequest, Passk, PasskView);
    view_method!(
        unsolvable_view,
        UnsolvableRequest,
        Unsolvable,
        UnsolvableView
    );
    view_method!(compare_view, CompareRequest, Compare, CompareView);
    view_method!(dynamics_view, DynamicsRequest, Dynamics, DynamicsView);
    view_method!(rft_view, RftRequest, Rft, RftView);
    view_method!(
        token_stats_view,
        TokenStatsRequest,
        TokenStats,
        TokenStatsView
    );
    fn problem(
        &self,
        id: i64,
        runs: Option<Vec<i64>>,
    ) -> BoxFuture<'_, Result<Option<ProblemDetail>, DataError>> {
        let caller = self.caller();
        Box::pin(async move {
            ops::views::problem(&caller.access(&self.store), id, runs)
                .await
                .map_err(refused)
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

fn trace_error(e: TraceError) -> DataError {
    match e {
        TraceError::Store(e) => refused(OpError::Store(e)),
        e => {
            tracing::warn!(error = %e, "unreadable token trace");
            DataError(e.to_string())
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

impl StoreSource {
    /// One review operation for the request's principal (`DataSource::review`).
    async fn review_op(&self, op: ReviewOp) -> Result<ReviewReply, OpError> {
        let caller = self.caller();
        let access = caller.access(&self.store);
        let a = &access;
        Ok(match op {
            ReviewOp::ProblemReview { slug, problem } => {
                ReviewReply::ProblemReview(review::problem_review(a, &slug, problem).await?)
            }
            ReviewOp::SetLabels {
                slug,
                problem,
                labels,
            } => ReviewReply::ProblemReview(review::set_labels(a, &slug, problem, &labels).await?),
            ReviewOp::AddOverride { slug, input } => {
                let req = crate::review::OverrideRequest::in_problem(
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
            ReviewOp::Threads { slug, filter } => {
                ReviewReply::Threads(review::threads(a, &slug, &filter).await?)
            }
            ReviewOp::PostComment { slug, target, body } => {
                ReviewReply::Thread(review::post_comment(a, &slug, &target, &body).await?)
            }
            ReviewOp::Reply { thread, body } => {
                ReviewReply::Thread(review::reply(a, thread, &body).await?)
            }
            ReviewOp::EditComment { id, body } => {
                ReviewReply::Thread(review::edit_comment(a, id, &body).await?)
            }
            ReviewOp::DeleteComment { id } => {
                ReviewReply::Thread(review::delete_comment(a, id).await?)
            }
            ReviewOp::Resolve { thread, resolved } => {
                ReviewReply::Thread(review::resolve_thread(a, thread, resolved).await?)
            }
            ReviewOp::Inbox => ReviewReply::Inbox(review::inbox(a).await?),
            ReviewOp::CommentCounts { slug } => {
                ReviewReply::CommentCounts(review::comment_counts(a, &slug).await?)
            }
            ReviewOp::DiscussionStamp { slug } => {
                ReviewReply::Stamp(review::discussion_stamp(a, &slug).await?)
            }
            ReviewOp::Queue {
                slug,
                min_share,
                mine,
            } => {
                let share = min_share
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 1.0)
                    .unwrap_or(review::DEFAULT_MIN_SHARE);
                ReviewReply::Queue(review::review_queue(a, &self.views, &slug, share, mine).await?)
            }
            ReviewOp::Assign {
                slug,
                problem,
                user,
            } => {
                review::assign(a, &slug, problem, user.as_deref()).await?;
                ReviewReply::Done
            }
            ReviewOp::Settings { slug } => ReviewReply::Settings(review::settings(a, &slug).await?),
            ReviewOp::UpdateExperiment {
                slug,
                name,
                description,
            } => {
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
            ReviewOp::CreateShareLink {
                slug,
                path,
                expires_in,
            } => {
                let headers = leptos::prelude::use_context::<axum::http::request::Parts>()
                    .map(|p| p.headers)
                    .unwrap_or_default();
                let base = super::review::base_url(self.auth.settings(), &headers);
                ReviewReply::ShareLink(
                    review::create_share_link(a, &slug, &path, expires_in, &base).await?,
                )
            }
            ReviewOp::ProjectReview { project } => {
                ReviewReply::ProjectReview(review::project_review(a, &project).await?)
            }
            ReviewOp::AddLabel {
                project,
                name,
                colour,
            } => {
                review::add_label(a, &project, &name, &colour).await?;
                ReviewReply::Done
            }
            ReviewOp::SetEngineAdmins { project, allowed } => {
                ops::admin::set_engine_admins(&self.store, &caller, &project, allowed).await?;
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
