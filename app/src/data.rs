//! The boundary between the UI and the server's operations: one trait per feature (catalogue,
//! analysis views, review, evaluations, access), together [`DataSource`]. The server implements
//! them over its authorised operations and provides the source as context; server functions in
//! [`crate::api`] call it. Keeping the traits here lets the UI crate stay free of database code.

#[cfg(feature = "ssr")]
pub use ssr_only::*;

#[cfg(feature = "ssr")]
mod ssr_only {
    use crate::model::*;
    use crate::views::*;
    use std::{future::Future, pin::Pin, sync::Arc};

    pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    /// A failure reading data, already phrased for a user, with the HTTP status its server
    /// function answers (a refusal is a 403 with its message, never a 500).
    #[derive(Debug, Clone, thiserror::Error)]
    #[error("{message}")]
    pub struct DataError {
        pub message: String,
        pub status: u16,
    }

    impl DataError {
        pub fn new(status: u16, message: impl Into<String>) -> Self {
            DataError {
                message: message.into(),
                status,
            }
        }
    }

    /// The catalogue: experiments, models, datasets, runs, imports, problems and rollouts.
    pub trait CatalogData: Send + Sync + 'static {
        fn experiments(&self) -> BoxFuture<'_, Result<Vec<ExperimentSummary>, DataError>>;
        fn experiment(
            &self,
            slug: String,
        ) -> BoxFuture<'_, Result<Option<ExperimentDetail>, DataError>>;
        fn models(&self) -> BoxFuture<'_, Result<Vec<ModelRow>, DataError>>;
        fn datasets(&self) -> BoxFuture<'_, Result<Vec<DatasetRow>, DataError>>;
        fn runs(&self) -> BoxFuture<'_, Result<Vec<RunRow>, DataError>>;
        /// Imports, newest first (running ones with live progress).
        fn imports(&self) -> BoxFuture<'_, Result<Vec<ImportView>, DataError>>;
        /// The formats caplens imports (the importers' registry), in detection order.
        fn import_formats(&self) -> Vec<ImportFormat>;
        /// One of caplens' documents (`api`, `formats/native`, `glossary`), or `None`. Public:
        /// the same text is in the repository.
        fn document(&self, name: String) -> Option<DocumentView>;
        /// A problem with its runs' numbers (`runs` restricts to those run ids); opened in `experiment`, under its reviewers'
        /// verdict overrides unless `unreviewed`.
        fn problem(
            &self,
            id: i64,
            runs: Option<Vec<i64>>,
            experiment: Option<String>,
            unreviewed: bool,
        ) -> BoxFuture<'_, Result<Option<ProblemDetail>, DataError>>;
        /// One page of a dataset's problem index (`None`: no such dataset, or hidden).
        fn dataset_problems(
            &self,
            id: i64,
            q: Option<String>,
            offset: u64,
        ) -> BoxFuture<'_, Result<Option<DatasetProblemsView>, DataError>>;
        /// One page of a run's rollouts of a problem (see [`RolloutListQuery`]).
        fn problem_rollouts(
            &self,
            problem_id: i64,
            query: RolloutListQuery,
        ) -> BoxFuture<'_, Result<RolloutList, DataError>>;
        /// The rollout page: the rollout and, with a trace, the heatmap of `metric` (default:
        /// entropy, else the first the trace has).
        fn rollout(
            &self,
            id: i64,
            metric: Option<crate::heat::Metric>,
        ) -> BoxFuture<'_, Result<Option<RolloutView>, DataError>>;
        /// One token of a rollout's trace (the hover card).
        fn rollout_token(
            &self,
            id: i64,
            pos: usize,
        ) -> BoxFuture<'_, Result<Option<crate::heat::TokenDetail>, DataError>>;
    }

    /// The analysis views of one experiment (`None`: no such experiment, or hidden).
    pub trait ViewData: Send + Sync + 'static {
        fn overview_view(
            &self,
            slug: String,
            verdicts: Option<caplens_analysis::verdicts::VerdictSource>,
            unreviewed: bool,
        ) -> BoxFuture<'_, Result<Option<OverviewView>, DataError>>;
        fn passk_view(
            &self,
            slug: String,
            request: PasskRequest,
        ) -> BoxFuture<'_, Result<Option<PasskView>, DataError>>;
        fn unsolvable_view(
            &self,
            slug: String,
            request: UnsolvableRequest,
        ) -> BoxFuture<'_, Result<Option<UnsolvableView>, DataError>>;
        /// A problem's place in the list it was opened from (`None`: no such experiment).
        fn problem_neighbours(
            &self,
            slug: String,
            list: TriageList,
            problem_id: i64,
        ) -> BoxFuture<'_, Result<Option<ProblemNeighbours>, DataError>>;
        /// One page of the problems view (prompts filled in).
        fn problems_view(
            &self,
            slug: String,
            request: ProblemsRequest,
        ) -> BoxFuture<'_, Result<Option<ProblemsView>, DataError>>;
        fn compare_view(
            &self,
            slug: String,
            request: CompareRequest,
        ) -> BoxFuture<'_, Result<Option<CompareView>, DataError>>;
        fn dynamics_view(
            &self,
            slug: String,
            request: DynamicsRequest,
        ) -> BoxFuture<'_, Result<Option<DynamicsView>, DataError>>;
        fn rft_view(
            &self,
            slug: String,
            request: RftRequest,
        ) -> BoxFuture<'_, Result<Option<RftView>, DataError>>;
        fn token_stats_view(
            &self,
            slug: String,
            request: TokenStatsRequest,
        ) -> BoxFuture<'_, Result<Option<TokenStatsView>, DataError>>;
    }

    /// Team review (issue 15).
    pub trait ReviewData: Send + Sync + 'static {
        /// Team review (issue 15): every operation of `crate::review::ReviewOp`, authorised by
        /// the server per operation.
        fn review(
            &self,
            op: crate::review::ReviewOp,
        ) -> BoxFuture<'_, Result<crate::review::ReviewReply, DataError>>;
    }

    /// Evaluation runs (issue 7): the form, evaluations, interventions, datasets.
    pub trait EvalData: Send + Sync + 'static {
        fn eval_form(&self) -> BoxFuture<'_, Result<crate::evals::EvalFormOptions, DataError>>;
        fn evaluations(
            &self,
        ) -> BoxFuture<'_, Result<Vec<crate::evals::EvaluationView>, DataError>>;
        fn evaluation(
            &self,
            id: i64,
        ) -> BoxFuture<'_, Result<Option<crate::evals::EvaluationView>, DataError>>;
        fn start_evaluation(
            &self,
            request: crate::evals::EvalStartRequest,
        ) -> BoxFuture<'_, Result<Vec<i64>, DataError>>;
        fn cancel_evaluation(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>>;
        fn resume_evaluation(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>>;
        fn queue_interventions(
            &self,
            rollout: i64,
            k: u32,
            top_entropy: u32,
        ) -> BoxFuture<'_, Result<i64, DataError>>;
        /// Stores a dataset file (JSON Lines or parquet) read with `fields`.
        fn upload_dataset(
            &self,
            name: String,
            description: String,
            file_name: String,
            bytes: Vec<u8>,
            fields: crate::evals::DatasetFields,
            project: Option<String>,
        ) -> BoxFuture<'_, Result<usize, DataError>>;
    }

    /// Access control (issue 14): the session, API tokens, users, projects, members, the audit log.
    pub trait AccessData: Send + Sync + 'static {
        /// Who is looking: mode, user, projects with roles.
        fn session(&self) -> BoxFuture<'_, Result<SessionView, DataError>>;
        fn tokens(&self) -> BoxFuture<'_, Result<Vec<ApiTokenRow>, DataError>>;
        /// A token for the signed-in user in `project` (default `default`) with `scope`
        /// (`read`/`write`, default `write`), expiring after `expires_in_days` (default never).
        fn create_token(
            &self,
            name: String,
            project: Option<String>,
            scope: Option<String>,
            expires_in_days: Option<u32>,
        ) -> BoxFuture<'_, Result<CreatedToken, DataError>>;
        /// `false` when there is no such active token.
        fn revoke_token(&self, id: i64) -> BoxFuture<'_, Result<bool, DataError>>;
        fn users(&self) -> BoxFuture<'_, Result<Vec<UserRow>, DataError>>;
        fn create_user(
            &self,
            name: String,
            password: String,
            admin: bool,
        ) -> BoxFuture<'_, Result<UserRow, DataError>>;
        fn set_user_disabled(
            &self,
            id: i64,
            disabled: bool,
        ) -> BoxFuture<'_, Result<(), DataError>>;
        fn projects(&self) -> BoxFuture<'_, Result<Vec<ProjectRow>, DataError>>;
        fn create_project(
            &self,
            slug: String,
            name: String,
            open_to_all: bool,
        ) -> BoxFuture<'_, Result<ProjectRow, DataError>>;
        fn members(&self, project: String) -> BoxFuture<'_, Result<Vec<MemberRow>, DataError>>;
        /// Adds a member, changes a role, or (`role` `None`) removes a member.
        fn set_member(
            &self,
            project: String,
            user: String,
            role: Option<Role>,
        ) -> BoxFuture<'_, Result<(), DataError>>;
        /// The audit log, newest first (`before`: entries older than this id).
        fn audit(&self, before: Option<i64>) -> BoxFuture<'_, Result<Vec<AuditEntry>, DataError>>;
    }

    /// Everything the pages read and do, one trait per feature; the server implements each
    /// over its operations, and server functions in [`crate::api`] call them.
    pub trait DataSource: CatalogData + ViewData + ReviewData + EvalData + AccessData {}

    impl<T: CatalogData + ViewData + ReviewData + EvalData + AccessData> DataSource for T {}

    /// How the server hands its data source to the pages (Leptos context).
    pub type SharedDataSource = Arc<dyn DataSource>;
}
