//! The analysis pages' reads, authorised: an experiment's views (overview, pass@k, unsolvable
//! sets, SFT vs RL, training dynamics, RFT selection, token statistics), a problem with every
//! readable run on it, a page of its rollouts, one rollout and its token trace. `Ok(None)`
//! means "not found" to the page: missing, or hidden from the caller (it says the same).

use caplens_app::model::{ProblemDetail, RolloutList, RolloutListQuery};
use caplens_app::views::*;

use super::catalog::open_experiment;
use super::{Access, OpError};
use crate::auth::Action;
use crate::storage::access::Owned;
use crate::storage::review::ExperimentRef;
use crate::storage::rollouts::StoredRollout;
use crate::views::ViewService;
use caplens_analysis::review::VerdictOverride;

/// `Ok(false)` when the experiment is missing or hidden; refusals other than "hidden" are
/// errors.
async fn readable(access: &Access<'_>, slug: &str) -> Result<bool, OpError> {
    match open_experiment(access, slug, Action::Read).await {
        Ok(_) => Ok(true),
        Err(OpError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One of an experiment's analysis views, built by `ViewService` once the caller may read it.
pub enum ViewRequest {
    Overview {
        verdicts: Option<caplens_analysis::verdicts::VerdictSource>,
        unreviewed: bool,
    },
    Passk(PasskRequest),
    Unsolvable(UnsolvableRequest),
    Compare(CompareRequest),
    Dynamics(DynamicsRequest),
    Rft(RftRequest),
    TokenStats(TokenStatsRequest),
}

/// What [`view`] answers, one variant per request (boxed: the views differ much in size).
pub enum View {
    Overview(Box<OverviewView>),
    Passk(Box<PasskView>),
    Unsolvable(Box<UnsolvableView>),
    Compare(Box<CompareView>),
    Dynamics(Box<DynamicsView>),
    Rft(Box<RftView>),
    TokenStats(Box<TokenStatsView>),
}

/// An analysis view of experiment `slug`.
pub async fn view(
    access: &Access<'_>,
    views: &ViewService,
    slug: &str,
    request: ViewRequest,
) -> Result<Option<View>, OpError> {
    if !readable(access, slug).await? {
        return Ok(None);
    }
    Ok(match request {
        ViewRequest::Overview {
            verdicts,
            unreviewed,
        } => views
            .overview(slug, verdicts, unreviewed)
            .await?
            .map(|v| View::Overview(Box::new(v))),
        ViewRequest::Passk(r) => views
            .passk(slug, r)
            .await?
            .map(|v| View::Passk(Box::new(v))),
        ViewRequest::Unsolvable(r) => views
            .unsolvable(slug, r)
            .await?
            .map(|v| View::Unsolvable(Box::new(v))),
        ViewRequest::Compare(r) => views
            .compare(slug, r)
            .await?
            .map(|v| View::Compare(Box::new(v))),
        ViewRequest::Dynamics(r) => views
            .dynamics(slug, r)
            .await?
            .map(|v| View::Dynamics(Box::new(v))),
        ViewRequest::Rft(r) => views.rft(slug, r).await?.map(|v| View::Rft(Box::new(v))),
        ViewRequest::TokenStats(r) => views
            .token_stats(slug, r)
            .await?
            .map(|v| View::TokenStats(Box::new(v))),
    })
}

/// The problems view of experiment `slug` with every matching row (`page` false: the CSV
/// export) or one page of them with their prompts (`page` true). `Ok(None)`: not found.
pub async fn problems(
    access: &Access<'_>,
    views: &ViewService,
    slug: &str,
    request: ProblemsRequest,
    page: bool,
) -> Result<Option<ProblemsView>, OpError> {
    let experiment = match open_experiment(access, slug, Action::Read).await {
        Ok(e) => e,
        Err(OpError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let labels = access
        .store
        .problem_labels(experiment)
        .await?
        .into_iter()
        .map(|(id, ls)| (id, ls.into_iter().map(|l| l.label).collect()))
        .collect();
    let comments = access
        .store
        .comment_counts(experiment.id)
        .await?
        .0
        .into_iter()
        .collect();
    let inputs = crate::views::ProblemInputs {
        matches: None,
        labels,
        comments,
    };
    let Some(mut view) = views.problems(slug, experiment.id, request, inputs).await? else {
        return Ok(None);
    };
    if page {
        let (offset, limit) = (view.request.offset, view.request.limit);
        view.rows = view.rows.into_iter().skip(offset).take(limit).collect();
        let ids: Vec<i64> = view.rows.iter().map(|r| r.problem_id).collect();
        let mut prompts = access.store.problem_prompts(&ids).await?;
        for row in &mut view.rows {
            row.prompt = prompts.remove(&row.problem_id).unwrap_or_default();
        }
    }
    Ok(Some(view))
}

/// Where problem `problem_id` stands in the list it was opened from: the problems view, a
/// region of the unsolvable view, or the review queue (by reason). `Ok(None)`: not found.
pub async fn problem_neighbours(
    access: &Access<'_>,
    views: &ViewService,
    slug: &str,
    list: TriageList,
    problem_id: i64,
) -> Result<Option<ProblemNeighbours>, OpError> {
    let (entries, experiment_name): (Vec<(i64, String)>, String) = match list {
        TriageList::Problems(request) => {
            let Some(view) = problems(access, views, slug, request, false).await? else {
                return Ok(None);
            };
            (
                view.rows
                    .iter()
                    .map(|r| (r.problem_id, r.key.clone()))
                    .collect(),
                view.frame.experiment.name.clone(),
            )
        }
        TriageList::Region(request) => {
            let Some(View::Unsolvable(view)) =
                self::view(access, views, slug, ViewRequest::Unsolvable(request)).await?
            else {
                return Ok(None);
            };
            (
                view.region
                    .iter()
                    .flat_map(|r| r.problems.iter())
                    .map(|p| (p.problem_id, p.key.clone()))
                    .collect(),
                view.frame.experiment.name.clone(),
            )
        }
        TriageList::Queue { reason } => {
            let queue = match super::review::review_queue(
                access,
                views,
                slug,
                super::review::DEFAULT_MIN_SHARE,
                false,
            )
            .await
            {
                Ok(queue) => queue,
                Err(OpError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            (
                queue
                    .entries
                    .iter()
                    .filter(|e| reason.as_ref().is_none_or(|r| e.kinds.contains(r)))
                    .map(|e| (e.problem_id, e.key.clone()))
                    .collect(),
                queue.experiment_name,
            )
        }
    };
    let at = entries.iter().position(|(id, _)| *id == problem_id);
    let entry = |i: usize| entries.get(i).cloned();
    Ok(Some(ProblemNeighbours {
        position: at.map(|i| i as u64 + 1),
        total: entries.len() as u64,
        previous: at.and_then(|i| i.checked_sub(1)).and_then(entry),
        next: at.and_then(|i| entry(i + 1)),
        experiment_name,
    }))
}

/// The runs of a problem the caller may read, within `asked`: `None` when the problem is
/// missing or hidden. A problem is readable with its dataset's project (a shared dataset's
/// problems by everyone signed in); the runs shown are those of projects the caller reads. A
/// share link reads a problem through its one experiment's runs only.
async fn readable_problem_runs(
    access: &Access<'_>,
    problem_id: i64,
    asked: Option<Vec<i64>>,
) -> Result<Option<Vec<i64>>, OpError> {
    let keep = |runs: Vec<i64>| -> Vec<i64> {
        runs.into_iter()
            .filter(|run| asked.as_ref().is_none_or(|a| a.contains(run)))
            .collect()
    };
    if let Some(experiment) = access.principal.shared_experiment() {
        if !access
            .store
            .problem_in_experiment(experiment, problem_id)
            .await?
        {
            return Ok(None);
        }
        return Ok(Some(keep(
            access.store.experiment_run_ids(experiment).await?,
        )));
    }
    let Some(project) = access.store.project_of(&Owned::Problem(problem_id)).await? else {
        return Ok(None);
    };
    match access
        .require_project(Action::Read, project, "problem")
        .await
    {
        Ok(()) => {}
        Err(OpError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    }
    let runs = access.store.problem_run_projects(problem_id).await?;
    let readable = access.readable();
    Ok(Some(keep(
        runs.into_iter()
            .filter(|(_, p)| readable.as_ref().is_none_or(|r| r.contains(p)))
            .map(|(run, _)| run)
            .collect(),
    )))
}

/// A problem with the numbers of every run on it the caller may read (within `runs`). Runs
/// asked for that the caller may not read are reported missing, like runs that do not exist.
pub async fn problem(
    access: &Access<'_>,
    problem_id: i64,
    runs: Option<Vec<i64>>,
    experiment: Option<String>,
    unreviewed: bool,
) -> Result<Option<ProblemDetail>, OpError> {
    let asked = runs.clone();
    let Some(readable) = readable_problem_runs(access, problem_id, runs).await? else {
        return Ok(None);
    };
    let Some(mut detail) = access
        .store
        .problem_detail(problem_id, Some(&readable))
        .await?
    else {
        return Ok(None);
    };
    if let Some(asked) = asked {
        detail.missing_runs = asked
            .into_iter()
            .filter(|id| !detail.runs.iter().any(|r| r.run_id == *id))
            .collect();
    }
    if let Some(slug) = experiment {
        if let Some((experiment, overrides)) = problem_overrides(access, &slug, problem_id).await? {
            let mut changed = 0;
            if !unreviewed && !overrides.is_empty() {
                let rollouts = access
                    .store
                    .review_rollouts(experiment.id, &[problem_id])
                    .await?;
                changed = crate::views::apply_overrides(&mut detail, &rollouts, &overrides);
            }
            detail.review = Some(caplens_app::model::ProblemReviewApplied {
                experiment: slug,
                reviewed: !unreviewed,
                overrides: overrides.len() as u64,
                changed_rollouts: changed,
            });
        }
    }
    Ok(Some(detail))
}

/// The verdicts experiment `slug`'s reviewers decided on `problem_id` (editors' overrides and
/// unanimous judgements), when the caller reads the experiment (`None` when it is missing or hidden: the page then shows the stored verdicts).
async fn problem_overrides(
    access: &Access<'_>,
    slug: &str,
    problem_id: i64,
) -> Result<Option<(ExperimentRef, Vec<VerdictOverride>)>, OpError> {
    let experiment = match open_experiment(access, slug, Action::Read).await {
        Ok(e) => e,
        Err(OpError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let overrides = access
        .store
        .decided_verdicts(experiment.id, Some(problem_id))
        .await?
        .remove(&problem_id)
        .unwrap_or_default();
    Ok(Some((experiment, overrides)))
}

/// One page of a run's rollouts of a problem: the run asked for when the caller reads it,
/// else the first in lineage order.
pub async fn problem_rollouts(
    access: &Access<'_>,
    problem_id: i64,
    query: RolloutListQuery,
) -> Result<RolloutList, OpError> {
    let asked = (!query.runs.is_empty()).then(|| query.runs.clone());
    let runs = readable_problem_runs(access, problem_id, asked)
        .await?
        .unwrap_or_default();
    let detail = access.store.problem_detail(problem_id, Some(&runs)).await?;
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
    let mut list = access
        .store
        .problem_rollouts(
            problem_id,
            run,
            query.page,
            caplens_app::api::ROLLOUTS_PER_PAGE,
            query.answer.as_deref(),
            &query.open,
        )
        .await?;
    if let (Some(slug), false) = (&query.experiment, query.unreviewed) {
        if let Some((experiment, overrides)) = problem_overrides(access, slug, problem_id).await? {
            // Overrides hold only for the experiment's runs.
            if access
                .store
                .experiment_run_ids(experiment.id)
                .await?
                .contains(&run)
            {
                crate::views::mark_rollouts(&mut list, &overrides);
            }
        }
    }
    Ok(list)
}

/// A rollout the caller may read (`None`: missing or hidden).
pub async fn rollout(access: &Access<'_>, id: i64) -> Result<Option<StoredRollout>, OpError> {
    match access
        .require(Action::Read, &Owned::Rollout(id), "rollout")
        .await
    {
        Ok(_) => Ok(access.store.rollout(id).await?),
        Err(OpError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
