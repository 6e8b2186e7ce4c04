//! Builds the analysis views (overview, pass@k, unsolvable, compare, training dynamics, token
//! statistics, RFT) from an experiment's stored aggregates ([`ExperimentData`]) with the analysis
//! crate. The builders are plain functions of the data and the request (no I/O), one file per
//! view; [`ViewService`], here, loads the data, caches it per experiment until the experiment
//! changes (a cheap stamp query), hands it to them and caches what they build (`cache.rs`).
//! `frame.rs` holds what every builder shares (run labels, the URL's run selection, the frame).

use std::collections::HashMap;
use std::sync::Arc;

use caplens_analysis::verdicts::VerdictSource;
use caplens_app::views::*;

use crate::error::StoreError;
use crate::storage::analysis::{ExperimentData, RunData};
use crate::storage::Store;

mod cache;
mod compare;
mod dynamics;
mod frame;
mod overview;
mod passk;
mod problem_review;
mod problems;
mod rft;
mod token_stats;
mod unsolvable;

pub use compare::{compare_view, default_lineage};
pub use dynamics::{dynamics_view, EntropySplit};
pub use overview::overview_view;
pub use passk::{passk_view, BAND_RESAMPLES};
pub use problem_review::{apply_overrides, mark_rollouts};
pub use problems::{problems_table, problems_view, ProblemInputs};
pub use rft::*;
pub use token_stats::token_stats_view;
pub use unsolvable::unsolvable_view;

use cache::Cache;
use frame::run_choices;

/// Loads experiment data and caches it until the experiment changes.
#[derive(Clone)]
pub struct ViewService {
    store: Store,
    /// Prepared data by (experiment, verdict source, unreviewed), valid while the experiment's
    /// stamp holds.
    data: Cache<String, (String, Arc<Prepared>)>,
    /// Built views by (experiment, view, request), valid while the experiment's stamp holds: a
    /// shared link opened by a whole team is computed once.
    results: Cache<String, (String, Arc<dyn std::any::Any + Send + Sync>)>,
    /// RFT selection features per (run id, rollout count): one pass over a run's rollouts.
    rft_features: Cache<(i64, i64), Arc<RunFeatures>>,
}

/// Experiments' prepared data kept at most (then the cache starts over): it starts over once it
/// holds more than 64, so 65.
const MAX_CACHED_EXPERIMENTS: usize = 65;
/// Built views kept at most (then the cache starts over).
const MAX_CACHED_VIEWS: usize = 512;
/// Runs' RFT features kept at most (then the cache starts over).
const MAX_CACHED_FEATURES: usize = 8;

/// Experiment data plus what every view derives from it once.
pub struct Prepared {
    pub data: ExperimentData,
    pub choices: Vec<RunChoice>,
}

impl ViewService {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            data: Cache::new(MAX_CACHED_EXPERIMENTS),
            results: Cache::new(MAX_CACHED_VIEWS),
            rft_features: Cache::new(MAX_CACHED_FEATURES),
        }
    }

    /// The experiment's prepared data and its stamp; `None` when there is no such experiment.
    async fn prepared_with_stamp(
        &self,
        slug: &str,
        verdicts: Option<VerdictSource>,
        unreviewed: bool,
    ) -> Result<Option<(String, Arc<Prepared>)>, StoreError> {
        let Some(stamp) = self.store.experiment_stamp(slug).await? else {
            return Ok(None);
        };
        let key = format!(
            "{slug}\u{0}{}\u{0}{unreviewed}",
            verdicts.map_or("", VerdictSource::as_str)
        );
        if let Some(p) = self.data.get_fresh(&key, &stamp) {
            return Ok(Some((stamp, p)));
        }
        let Some(data) = self
            .store
            .experiment_data(slug, verdicts, !unreviewed)
            .await?
        else {
            return Ok(None);
        };
        let prepared = Arc::new(Prepared {
            choices: run_choices(&data),
            data,
        });
        self.data.insert(key, (stamp.clone(), prepared.clone()));
        Ok(Some((stamp, prepared)))
    }

    /// The experiment's data with each run's default verdicts.
    pub async fn prepared(&self, slug: &str) -> Result<Option<Arc<Prepared>>, StoreError> {
        Ok(self
            .prepared_with_stamp(slug, None, false)
            .await?
            .map(|(_, p)| p))
    }

    /// The same without the reviewers' overrides: the review queue's membership must not change
    /// when a problem is reviewed (only its "reviewed" mark does).
    pub async fn prepared_unreviewed(
        &self,
        slug: &str,
    ) -> Result<Option<Arc<Prepared>>, StoreError> {
        Ok(self
            .prepared_with_stamp(slug, None, true)
            .await?
            .map(|(_, p)| p))
    }

    /// A view built by `build` from the experiment's data, reused while the data is unchanged.
    async fn view<T: Clone + Send + Sync + 'static>(
        &self,
        slug: &str,
        verdicts: Option<VerdictSource>,
        unreviewed: bool,
        key: String,
        build: impl FnOnce(&Prepared) -> T,
    ) -> Result<Option<T>, StoreError> {
        let Some((stamp, p)) = self.prepared_with_stamp(slug, verdicts, unreviewed).await? else {
            return Ok(None);
        };
        let key = format!("{slug}\u{0}{key}");
        if let Some(v) = self.results.get_fresh(&key, &stamp) {
            if let Some(v) = v.downcast_ref::<T>() {
                return Ok(Some(v.clone()));
            }
        }
        let v = build(&p);
        self.results.insert(key, (stamp, Arc::new(v.clone())));
        Ok(Some(v))
    }

    pub async fn overview(
        &self,
        slug: &str,
        verdicts: Option<VerdictSource>,
        unreviewed: bool,
    ) -> Result<Option<OverviewView>, StoreError> {
        self.view(
            slug,
            verdicts,
            unreviewed,
            format!("overview {verdicts:?} {unreviewed}"),
            overview_view,
        )
        .await
    }
    pub async fn passk(
        &self,
        slug: &str,
        req: PasskRequest,
    ) -> Result<Option<PasskView>, StoreError> {
        self.view(
            slug,
            req.verdicts,
            req.unreviewed,
            format!("passk {req:?}"),
            |p| passk_view(p, req),
        )
        .await
    }
    pub async fn unsolvable(
        &self,
        slug: &str,
        req: UnsolvableRequest,
    ) -> Result<Option<UnsolvableView>, StoreError> {
        self.view(
            slug,
            req.verdicts,
            req.unreviewed,
            format!("unsolvable {req:?}"),
            |p| unsolvable_view(p, req),
        )
        .await
    }
    pub async fn compare(
        &self,
        slug: &str,
        req: CompareRequest,
    ) -> Result<Option<CompareView>, StoreError> {
        self.view(
            slug,
            req.verdicts,
            req.unreviewed,
            format!("compare {req:?}"),
            |p| compare_view(p, req),
        )
        .await
    }
    pub async fn dynamics(
        &self,
        slug: &str,
        req: DynamicsRequest,
    ) -> Result<Option<DynamicsView>, StoreError> {
        let Some(p) = self.prepared(slug).await? else {
            return Ok(None);
        };
        let stats = self.token_stats_of(&p).await?;
        let split: HashMap<i64, EntropySplit> = stats
            .iter()
            .map(|(&id, s)| {
                (
                    id,
                    (
                        s.mean_entropy.all.mean(),
                        s.mean_entropy.correct.mean(),
                        s.mean_entropy.incorrect.mean(),
                    ),
                )
            })
            .collect();
        Ok(Some(dynamics_view(&p, req, &split)))
    }
    pub async fn token_stats(
        &self,
        slug: &str,
        req: TokenStatsRequest,
    ) -> Result<Option<TokenStatsView>, StoreError> {
        let Some(p) = self.prepared(slug).await? else {
            return Ok(None);
        };
        let stats = self.token_stats_of(&p).await?;
        Ok(Some(token_stats_view(&p, req, &stats)))
    }
    /// The problems view: every matching problem, sorted (all pages; the caller pages it). The
    /// search runs in the database's full-text index; labels and comments are the caller's.
    pub async fn problems(
        &self,
        slug: &str,
        experiment_id: i64,
        req: ProblemsRequest,
        mut inputs: ProblemInputs,
    ) -> Result<Option<ProblemsView>, StoreError> {
        let Some((_, p)) = self
            .prepared_with_stamp(slug, req.verdicts, req.unreviewed)
            .await?
        else {
            return Ok(None);
        };
        if let Some(q) = &req.q {
            inputs.matches = self.store.search_problems(experiment_id, q).await?;
        }
        Ok(Some(problems_view(&p, req, &inputs)))
    }

    /// The stored token statistics of the experiment's runs that have them.
    async fn token_stats_of(
        &self,
        p: &Prepared,
    ) -> Result<HashMap<i64, caplens_analysis::token_stats::TokenStats>, StoreError> {
        let ids: Vec<i64> = p.data.runs.iter().map(|r| r.row.id).collect();
        Ok(self
            .store
            .run_token_stats(&ids)
            .await?
            .into_iter()
            .filter_map(|(id, s)| Some((id, s?)))
            .collect())
    }

    /// The RFT data & advantage-shaping view: the run's selection (features from one streamed
    /// pass over its rollouts, cached), one preview page, and one problem's group.
    pub async fn rft(&self, slug: &str, req: RftRequest) -> Result<Option<RftView>, StoreError> {
        let Some(p) = self.prepared(slug).await? else {
            return Ok(None);
        };
        let (run, missing_runs) = rft_run(&p, &req);
        let mut input = RftInputs {
            run,
            missing_runs,
            ..Default::default()
        };
        if let Some(i) = run {
            let data = &p.data.runs[i];
            let features = self.run_features(data).await?;
            let selection = features.select(&req);
            if let Ok(chosen) = &selection {
                let (page, _) = rft_page(chosen.len(), req.page);
                input.page_rows = self
                    .store
                    .rollouts_by_id(&rft_page_ids(&features, chosen, page))
                    .await?;
            }
            let (problem, problem_missing) = rft_problem(data, &req);
            if let Some(s) = problem {
                input.group = self.store.problem_group(data.row.id, s.problem_id).await?;
                input.problem_text = self
                    .store
                    .problem_text(s.problem_id)
                    .await?
                    .unwrap_or_default();
            }
            input.problem = problem.cloned();
            input.problem_missing = problem_missing;
            input.features = Some(features);
            input.selection = Some(selection);
        }
        Ok(Some(rft_view(&p, req, input)))
    }

    /// What the JSON Lines export writes: the chosen run's model and id and the selected rollout
    /// ids in order, or why the strategy cannot select (`Err`). `None`: no such experiment.
    pub async fn rft_export(
        &self,
        slug: &str,
        req: &RftRequest,
    ) -> Result<Option<Result<RftExport, String>>, StoreError> {
        let Some(p) = self.prepared(slug).await? else {
            return Ok(None);
        };
        let (run, missing) = rft_run(&p, req);
        let Some(i) = run.filter(|_| missing.is_empty()) else {
            let what = req
                .run
                .map(|id| format!("run {id} is not in this experiment"))
                .unwrap_or_else(|| "this experiment has no completed run".into());
            return Ok(Some(Err(what)));
        };
        let data = &p.data.runs[i];
        let features = self.run_features(data).await?;
        Ok(Some(match features.select(req) {
            Ok(chosen) => Ok(RftExport {
                run_id: data.row.id,
                model: data.row.model.clone(),
                ids: chosen.iter().map(|&k| features.ids[k]).collect(),
            }),
            Err(e) => Err(e.to_string()),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn run_features(&self, run: &RunData) -> Result<Arc<RunFeatures>, StoreError> {
        let key = (run.row.id, run.row.rollouts);
        if let Some(f) = self.rft_features.get(&key) {
            return Ok(f);
        }
        let mut features = RunFeatures::default();
        self.store
            .for_each_run_rollout(run.row.id, |r| features.push(&r))
            .await?;
        let features = Arc::new(features);
        self.rft_features.insert(key, features.clone());
        Ok(features)
    }
}

/// The selection the JSON Lines export streams.
#[derive(Debug, Clone, PartialEq)]
pub struct RftExport {
    pub run_id: i64,
    pub model: String,
    pub ids: Vec<i64>,
}

#[cfg(test)]
mod tests;
