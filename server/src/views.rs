//! Builds the analysis views (overview, pass@k, unsolvable, compare) from an experiment's stored
//! aggregates ([`ExperimentData`]) with the analysis crate. The builders are plain functions of
//! the data and the request (no I/O); [`ViewService`] loads the data, caches it per experiment
//! until the experiment changes (a cheap stamp query), and hands it to them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use caplens_analysis::passk::{
    bootstrap_band, crossover_ks, default_ks, pass_at_k_curve, CurvePoint, ProblemCounts,
};
use caplens_analysis::sets::{compare_unsolvable, status, ModelOutcomes, ProblemOutcome, Status};
use caplens_analysis::summary::{summary_from_parts, ProblemPart, RolloutTotals};
use caplens_analysis::verdicts::VerdictSource;
use caplens_app::charts::{
    pct, BarChart, BarSeries, ChartSpec, LineChart, Series, SetChart, SetRegion, VMarker, XScale,
};
use caplens_app::tables::TableData;
use caplens_app::views::*;

use crate::error::StoreError;
use crate::storage::analysis::{ExperimentData, ProblemStat, RunData};
use crate::storage::Store;

mod rft;
pub use rft::*;

/// Bootstrap resamples behind the pass@k band.
pub const BAND_RESAMPLES: usize = 200;
const BAND_SEED: u64 = 0x5EED_BA4D;
/// At most this many series in a chart (the palette has 7 colours).
const MAX_SERIES: usize = 7;

/// Loads experiment data and caches it until the experiment changes.
#[derive(Clone)]
pub struct ViewService {
    store: Store,
    cache: Arc<Mutex<HashMap<String, (String, Arc<Prepared>)>>>,
    /// Built views by (experiment, view, request), valid while the experiment's stamp holds: a
    /// shared link opened by a whole team is computed once.
    results: Arc<Mutex<HashMap<String, (String, Arc<dyn std::any::Any + Send + Sync>)>>>,
    /// RFT selection features per (run id, rollout count): one pass over a run's rollouts.
    rft_features: Arc<Mutex<RftFeatureCache>>,
}

/// Built views kept at most (then the cache starts over).
const MAX_CACHED_VIEWS: usize = 512;

/// Experiment data plus what every view derives from it once.
pub struct Prepared {
    pub data: ExperimentData,
    pub choices: Vec<RunChoice>,
}

impl ViewService {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: Arc::default(),
            results: Arc::default(),
            rft_features: Arc::default(),
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
        if let Some((s, p)) = self.cache.lock().unwrap().get(&key) {
            if *s == stamp {
                return Ok(Some((stamp, p.clone())));
            }
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
        let mut cache = self.cache.lock().unwrap();
        if cache.len() > 64 {
            cache.clear();
        }
        cache.insert(key, (stamp.clone(), prepared.clone()));
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
        if let Some((s, v)) = self.results.lock().unwrap().get(&key) {
            if *s == stamp {
                if let Some(v) = v.downcast_ref::<T>() {
                    return Ok(Some(v.clone()));
                }
            }
        }
        let v = build(&p);
        let mut results = self.results.lock().unwrap();
        if results.len() >= MAX_CACHED_VIEWS {
            results.clear();
        }
        results.insert(key, (stamp, Arc::new(v.clone())));
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
        if let Some(f) = self.rft_features.lock().unwrap().get(&key) {
            return Ok(f.clone());
        }
        let mut features = RunFeatures::default();
        self.store
            .for_each_run_rollout(run.row.id, |r| features.push(&r))
            .await?;
        let features = Arc::new(features);
        let mut cache = self.rft_features.lock().unwrap();
        if cache.len() >= 8 {
            cache.clear();
        }
        cache.insert(key, features.clone());
        Ok(features)
    }
}

type RftFeatureCache = HashMap<(i64, i64), Arc<RunFeatures>>;

/// The selection the JSON Lines export streams.
#[derive(Debug, Clone, PartialEq)]
pub struct RftExport {
    pub run_id: i64,
    pub model: String,
    pub ids: Vec<i64>,
}

fn run_choices(data: &ExperimentData) -> Vec<RunChoice> {
    let datasets: std::collections::BTreeSet<&str> =
        data.runs.iter().map(|r| r.row.dataset.as_str()).collect();
    let mut labels: Vec<String> = data
        .runs
        .iter()
        .map(|r| {
            let mut l = r.row.model.clone();
            if datasets.len() > 1 {
                l = format!("{l} · {}", r.row.dataset);
            }
            if !r.row.label.is_empty() && r.row.label != r.row.model {
                l = format!("{l} ({})", r.row.label);
            }
            l
        })
        .collect();
    // Two runs may still look alike (same model and dataset): tell them apart by id.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for l in &labels {
        *seen.entry(l.clone()).or_default() += 1;
    }
    for (l, r) in labels.iter_mut().zip(&data.runs) {
        if seen[l.as_str()] > 1 {
            *l = format!("{l} #{}", r.row.id);
        }
    }
    data.runs
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (r, label))| RunChoice {
            id: r.row.id,
            label,
            model: r.row.model.clone(),
            stage: r.row.stage.clone(),
            parent_model: r.row.parent_model.clone(),
            dataset: r.row.dataset.clone(),
            training_step: r.row.training_step,
            lineage_depth: r.row.lineage_depth,
            colour: i,
        })
        .collect()
}

/// The selected runs (in URL order) and the ids that are not in the experiment; `default` when
/// the URL names none that exist.
fn select(
    p: &Prepared,
    asked: &[i64],
    default: impl Fn(&Prepared) -> Vec<i64>,
) -> (Vec<usize>, Vec<i64>) {
    let mut chosen = Vec::new();
    let mut missing = Vec::new();
    for id in asked {
        match p.data.runs.iter().position(|r| r.row.id == *id) {
            Some(i) if !chosen.contains(&i) => chosen.push(i),
            Some(_) => {}
            None => missing.push(*id),
        }
    }
    if chosen.is_empty() {
        let ids = default(p);
        chosen = ids
            .iter()
            .filter_map(|id| p.data.runs.iter().position(|r| r.row.id == *id))
            .collect();
    }
    chosen.truncate(MAX_SERIES);
    (chosen, missing)
}

fn frame(p: &Prepared, chosen: &[usize], missing: Vec<i64>) -> ViewFrame {
    ViewFrame {
        experiment: p.data.summary.clone(),
        runs: p.choices.clone(),
        selected: chosen.iter().map(|&i| p.data.runs[i].row.id).collect(),
        missing_runs: missing,
        verdicts: verdict_frame(p),
    }
}

/// The verdict switch's facts: which source the numbers count, and over the experiment's runs
/// how many carry both verdicts and how often they disagree.
fn verdict_frame(p: &Prepared) -> VerdictFrame {
    let review = p.data.review;
    let mut frame = VerdictFrame {
        selected: p.data.verdicts,
        reviewed: review.reviewed,
        overrides: review.overrides,
        overridden_rollouts: review.changed_rollouts,
        ..Default::default()
    };
    for tally in p
        .data
        .runs
        .iter()
        .filter_map(|r| r.row.verdicts.tally.as_ref())
    {
        if tally.graded_by_file > 0 && tally.graded_by_caplens > 0 {
            frame.runs_with_both += 1;
        }
        frame.disagreements += tally.disagree;
        frame.graded_by_both += tally.agree + tally.disagree;
    }
    frame
}

fn counts(problems: &[&ProblemStat]) -> Vec<ProblemCounts> {
    problems
        .iter()
        .map(|p| ProblemCounts { n: p.n, c: p.c })
        .collect()
}

/// The largest k every problem of the run can answer (its smallest n), 0 without problems.
fn common_n(problems: &[&ProblemStat]) -> u64 {
    problems
        .iter()
        .map(|p| p.n)
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0)
}

fn all(run: &RunData) -> Vec<&ProblemStat> {
    run.problems.iter().collect()
}

// ---------------------------------------------------------------- overview

pub fn overview_view(p: &Prepared) -> OverviewView {
    let all_ids: Vec<usize> = (0..p.data.runs.len()).collect();
    let mut rows = Vec::new();
    for (i, run) in p.data.runs.iter().enumerate() {
        let problems = all(run);
        let parts: Vec<ProblemPart> = problems
            .iter()
            .map(|s| ProblemPart {
                n: s.n,
                c: s.c,
                distinct_answers: s.distinct_answers as usize,
            })
            .collect();
        let totals = run
            .aggregates
            .as_ref()
            .map(|a| a.totals)
            .unwrap_or_else(RolloutTotals::default);
        let summary = summary_from_parts(&parts, &totals);
        let k = common_n(&problems);
        let pass_at_max = (k > 0)
            .then(|| {
                pass_at_k_curve(&counts(&problems), &[k])
                    .first()
                    .map(|pt| (k, pt.pass_at_k))
            })
            .flatten();
        rows.push(OverviewRow {
            run: p.choices[i].clone(),
            problems: problems.len() as u64,
            rollouts: problems.iter().map(|s| s.n).sum(),
            max_n: problems.iter().map(|s| s.n).max().unwrap_or(0),
            pass_at_1: summary.pass_at_1,
            pass_at_max,
            unsolvable: problems.iter().filter(|s| s.n > 0 && s.c == 0).count() as u64,
            diversity: summary.answer_diversity,
            mean_entropy: summary.mean_entropy,
            mean_rbf: summary.mean_rbf,
            mean_ppl: summary.mean_ppl,
            format_violation_rate: summary.format_violation_rate,
            language_mixing_rate: summary.language_mixing_rate,
            redundancy_rate: summary.redundancy_rate,
        });
    }
    let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_default();
    let table = TableData {
        headers: [
            "run",
            "model",
            "stage",
            "parent",
            "dataset",
            "problems",
            "rollouts",
            "pass@1 (%)",
            "k max",
            "pass@k max (%)",
            "unsolvable",
            "distinct answers",
            "entropy (nats)",
            "RBF",
            "PPL",
            "format violations (%)",
            "language mixing (%)",
            "redundant (%)",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.run.id.to_string(),
                    r.run.model.clone(),
                    r.run.stage.clone(),
                    r.run.parent_model.clone().unwrap_or_default(),
                    r.run.dataset.clone(),
                    r.problems.to_string(),
                    r.rollouts.to_string(),
                    f(r.pass_at_1.map(|v| v * 100.0), 1),
                    r.pass_at_max
                        .map(|(k, _)| k.to_string())
                        .unwrap_or_default(),
                    f(r.pass_at_max.map(|(_, v)| v * 100.0), 1),
                    r.unsolvable.to_string(),
                    f(r.diversity, 2),
                    f(r.mean_entropy, 3),
                    f(r.mean_rbf, 2),
                    f(r.mean_ppl, 3),
                    f(r.format_violation_rate.map(|v| v * 100.0), 1),
                    f(r.language_mixing_rate.map(|v| v * 100.0), 1),
                    f(r.redundancy_rate.map(|v| v * 100.0), 1),
                ]
            })
            .collect(),
        numeric: [
            false, false, false, false, false, true, true, true, true, true, true, true, true,
            true, true, true, true, true,
        ]
        .to_vec(),
    };
    OverviewView {
        frame: frame(p, &all_ids, Vec::new()),
        rows,
        table,
    }
}

// ---------------------------------------------------------------- pass@k

fn all_runs(p: &Prepared) -> Vec<i64> {
    p.data.runs.iter().map(|r| r.row.id).collect()
}

pub fn passk_view(p: &Prepared, mut req: PasskRequest) -> PasskView {
    let (chosen, missing) = select(p, &req.runs, all_runs);
    req.runs.retain(|id| !missing.contains(id));
    let mut tags: Vec<String> = p
        .data
        .runs
        .iter()
        .flat_map(|r| r.problems.iter().flat_map(|s| s.tags.iter().cloned()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    tags.retain(|t| !t.is_empty());
    let tag_missing = req.tag.as_ref().is_some_and(|t| !tags.contains(t));
    let filter = |s: &&ProblemStat| match &req.tag {
        Some(t) if !tag_missing => s.tags.contains(t),
        _ => true,
    };
    let max_n = chosen
        .iter()
        .flat_map(|&i| p.data.runs[i].problems.iter().filter(filter).map(|s| s.n))
        .max()
        .unwrap_or(1)
        .max(1);
    let ks = default_ks(max_n);
    let mut series = Vec::new();
    let mut curves: Vec<(String, Vec<CurvePoint>)> = Vec::new();
    for &i in &chosen {
        let run = &p.data.runs[i];
        let choice = &p.choices[i];
        let problems: Vec<&ProblemStat> = run.problems.iter().filter(filter).collect();
        let table = counts(&problems);
        let curve = pass_at_k_curve(&table, &ks);
        // Eq. 2 per problem, averaged; the band resamples problems (paper-notes item 1).
        let band = if req.band {
            bootstrap_band(&table, &ks, BAND_RESAMPLES, BAND_SEED, 0.95)
        } else {
            Vec::new()
        };
        series.push(Series {
            key: choice.id.to_string(),
            label: choice.label.clone(),
            points: curve.iter().map(|pt| (pt.k as f64, pt.pass_at_k)).collect(),
            readouts: curve
                .iter()
                .map(|pt| {
                    format!(
                        "{}: pass@{} = {} ({} problems)",
                        choice.label,
                        pt.k,
                        pct(pt.pass_at_k),
                        pt.problems
                    )
                })
                .collect(),
            band: band
                .iter()
                .map(|b| (b.k as f64, b.lower, b.upper))
                .collect(),
            colour: choice.colour,
        });
        curves.push((choice.label.clone(), curve));
    }
    let mut crossovers = Vec::new();
    let mut markers = Vec::new();
    for a in 0..curves.len() {
        for b in a + 1..curves.len() {
            let ks = crossover_ks(&curves[a].1, &curves[b].1);
            if ks.is_empty() {
                continue;
            }
            for &k in &ks {
                markers.push(VMarker {
                    x: k as f64,
                    label: format!("k = {k}"),
                });
            }
            crossovers.push(Crossover {
                a: curves[a].0.clone(),
                b: curves[b].0.clone(),
                ks,
            });
        }
    }
    markers.dedup_by(|x, y| x.x == y.x);
    let mut headers = vec!["k".to_string()];
    for (label, _) in &curves {
        headers.push(format!("{label} pass@k (%)"));
        headers.push(format!("{label} problems"));
    }
    let rows = ks
        .iter()
        .map(|&k| {
            let mut row = vec![k.to_string()];
            for (_, curve) in &curves {
                match curve.iter().find(|pt| pt.k == k) {
                    Some(pt) => {
                        row.push(format!("{:.2}", pt.pass_at_k * 100.0));
                        row.push(pt.problems.to_string());
                    }
                    None => {
                        row.push(String::new());
                        row.push("0".into());
                    }
                }
            }
            row
        })
        .collect();
    let numeric = vec![true; headers.len()];
    let chart = ChartSpec::Line(LineChart {
        x_label: "k (samples per problem, log2 scale)".into(),
        y_label: "pass@k (% of problems)".into(),
        x_scale: XScale::Log2,
        x_range: (1.0, max_n as f64),
        y_range: (0.0, 1.0),
        y_percent: true,
        series,
        markers,
    });
    PasskView {
        frame: frame(p, &chosen, missing),
        request: req,
        tags,
        tag_missing,
        chart,
        table: TableData {
            headers,
            rows,
            numeric,
        },
        crossovers,
        resamples: BAND_RESAMPLES,
    }
}

// ---------------------------------------------------------------- unsolvable

fn first_three(p: &Prepared) -> Vec<i64> {
    p.data.runs.iter().take(3).map(|r| r.row.id).collect()
}

fn outcome(s: &ProblemStat, with_order: bool) -> ProblemOutcome {
    if with_order && s.order_known {
        ProblemOutcome {
            n: s.n,
            c: s.c,
            first_correct_position: s.first_correct,
            order_known: true,
        }
    } else {
        ProblemOutcome::from_counts(s.n, s.c)
    }
}

fn model_outcomes(run: &RunData, name: &str, with_order: bool) -> ModelOutcomes {
    ModelOutcomes {
        model: name.to_string(),
        problems: run
            .problems
            .iter()
            .map(|s| (s.key.clone(), outcome(s, with_order)))
            .collect(),
    }
}

pub fn unsolvable_view(p: &Prepared, mut req: UnsolvableRequest) -> UnsolvableView {
    let (chosen, missing) = select(p, &req.runs, first_three);
    req.runs.retain(|id| !missing.contains(id));
    let max_k = chosen
        .iter()
        .map(|&i| common_n(&all(&p.data.runs[i])))
        .min()
        .unwrap_or(0);
    if req.k.is_some_and(|k| k >= max_k) {
        req.k = None;
    }
    let labels: Vec<String> = chosen.iter().map(|&i| p.choices[i].label.clone()).collect();
    let compared: Vec<ModelOutcomes> = chosen
        .iter()
        .zip(&labels)
        .map(|(&i, l)| model_outcomes(&p.data.runs[i], l, req.k.is_some()))
        .collect();
    // Sec. 2.1: a problem is k-unsolvable when none of its first k rollouts is correct.
    let report = compare_unsolvable(&compared, req.k);
    let ids: Vec<i64> = chosen.iter().map(|&i| p.data.runs[i].row.id).collect();
    let members_of = |ids_sel: &[i64]| -> Vec<usize> {
        let mut m: Vec<usize> = ids_sel
            .iter()
            .filter_map(|id| ids.iter().position(|x| x == id))
            .collect();
        m.sort();
        m.dedup();
        m
    };
    let selected_members = members_of(&req.region);
    let by_members: BTreeMap<Vec<usize>, &Vec<String>> = report
        .regions
        .iter()
        .map(|r| (r.models.clone(), &r.problems))
        .collect();
    let path = format!("/experiments/{}/unsolvable", p.data.summary.slug);
    let region_href = |members: &[usize]| {
        let mut r = req.clone();
        r.region = members.iter().map(|&m| ids[m]).collect();
        r.query().href(&path)
    };
    let n = chosen.len();
    let mut regions = Vec::new();
    if n <= 3 {
        for mask in 1u32..(1u32 << n) {
            let members: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
            let count = by_members.get(&members).map(|v| v.len()).unwrap_or(0);
            regions.push(SetRegion {
                href: region_href(&members),
                selected: members == selected_members,
                members,
                count,
            });
        }
    } else {
        for r in &report.regions {
            regions.push(SetRegion {
                href: region_href(&r.models),
                selected: r.models == selected_members,
                members: r.models.clone(),
                count: r.problems.len(),
            });
        }
    }
    let set_sizes: Vec<usize> = report.unsolvable.iter().map(Vec::len).collect();
    let chart = ChartSpec::Sets(SetChart {
        sets: labels.clone(),
        set_sizes: set_sizes.clone(),
        regions,
        colours: chosen.iter().map(|&i| p.choices[i].colour).collect(),
    });

    // Set size against k, per run (each over its own problems).
    let ks = default_ks(max_k.max(1));
    let mut series = Vec::new();
    for &i in &chosen {
        let run = &p.data.runs[i];
        let choice = &p.choices[i];
        let points: Vec<(f64, f64)> = ks
            .iter()
            .map(|&k| {
                let k_arg = if k >= common_n(&all(run)) {
                    None
                } else {
                    Some(k)
                };
                let count = run
                    .problems
                    .iter()
                    .filter(|s| status(&outcome(s, true), k_arg) == Status::Unsolvable)
                    .count();
                (k as f64, count as f64)
            })
            .collect();
        series.push(Series {
            key: choice.id.to_string(),
            label: choice.label.clone(),
            readouts: points
                .iter()
                .map(|&(k, c)| {
                    format!(
                        "{}: {} problems unsolvable in {} attempts",
                        choice.label, c, k
                    )
                })
                .collect(),
            points,
            band: Vec::new(),
            colour: choice.colour,
        });
    }
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let set_size_chart = ChartSpec::Line(LineChart {
        x_label: "k (attempts, log2 scale)".into(),
        y_label: "unsolvable problems".into(),
        x_scale: XScale::Log2,
        x_range: (1.0, max_k.max(2) as f64),
        y_range: (0.0, (y_max * 1.1).ceil()),
        y_percent: false,
        series,
        markers: Vec::new(),
    });

    let table = TableData {
        headers: vec!["region (unsolvable by exactly)".into(), "problems".into()],
        rows: report
            .regions
            .iter()
            .map(|r| {
                vec![
                    r.models
                        .iter()
                        .map(|&m| labels[m].clone())
                        .collect::<Vec<_>>()
                        .join(" ∩ "),
                    r.problems.len().to_string(),
                ]
            })
            .collect(),
        numeric: vec![false, true],
    };

    let region = (!selected_members.is_empty()).then(|| {
        let keys: Vec<String> = by_members
            .get(&selected_members)
            .map(|v| (*v).clone())
            .unwrap_or_default();
        let stats: Vec<HashMap<&str, &ProblemStat>> = chosen
            .iter()
            .map(|&i| {
                p.data.runs[i]
                    .problems
                    .iter()
                    .map(|s| (s.key.as_str(), s))
                    .collect()
            })
            .collect();
        let bounds: Vec<HashMap<&str, f64>> = report
            .unsolvable
            .iter()
            .map(|list| {
                list.iter()
                    .map(|u| (u.problem_id.as_str(), u.solve_rate_upper_95))
                    .collect()
            })
            .collect();
        let problems: Vec<RegionProblem> = keys
            .iter()
            .map(|key| RegionProblem {
                problem_id: stats
                    .iter()
                    .find_map(|m| m.get(key.as_str()).map(|s| s.problem_id))
                    .unwrap_or(0),
                key: key.clone(),
                cells: (0..n)
                    .map(|m| {
                        let s = stats[m].get(key.as_str());
                        RegionCell {
                            c: s.map(|s| s.c).unwrap_or(0),
                            n: s.map(|s| s.n).unwrap_or(0),
                            upper_95: bounds[m].get(key.as_str()).copied(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let names: Vec<&str> = selected_members
            .iter()
            .map(|&m| labels[m].as_str())
            .collect();
        let title = format!(
            "{} problem{} unsolvable by {}{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            names.join(" and "),
            if selected_members.len() < n {
                " only"
            } else {
                ""
            }
        );
        let mut headers = vec!["problem".to_string()];
        for l in &labels {
            headers.push(format!("{l} c/n"));
            headers.push(format!("{l} solve rate ≤ (95 %)"));
        }
        let rows = problems
            .iter()
            .map(|pr| {
                let mut row = vec![pr.key.clone()];
                for c in &pr.cells {
                    row.push(format!("{}/{}", c.c, c.n));
                    row.push(
                        c.upper_95
                            .map(|u| format!("{:.2}", u * 100.0))
                            .unwrap_or_default(),
                    );
                }
                row
            })
            .collect();
        RegionDetail {
            title,
            columns: labels.clone(),
            table: TableData {
                numeric: (0..headers.len()).map(|i| i > 0).collect(),
                headers,
                rows,
            },
            problems,
        }
    });
    let undetermined = labels
        .iter()
        .zip(&report.missing)
        .map(|(l, m)| (l.clone(), m.len()))
        .filter(|(_, c)| *c > 0)
        .collect();
    UnsolvableView {
        frame: frame(p, &chosen, missing),
        request: req,
        max_k,
        ks,
        chart,
        set_sizes: set_size_chart,
        table,
        region,
        undetermined,
    }
}

// ---------------------------------------------------------------- compare

/// A base -> sft -> rl chain if the experiment has one, else the first three runs.
pub fn default_lineage(p: &Prepared) -> Vec<i64> {
    let runs = &p.data.runs;
    for rl in runs.iter().filter(|r| r.row.stage == "rl") {
        let Some(sft) = runs.iter().find(|r| {
            Some(&r.row.model) == rl.row.parent_model.as_ref() && r.row.dataset == rl.row.dataset
        }) else {
            continue;
        };
        let base = runs.iter().find(|r| {
            Some(&r.row.model) == sft.row.parent_model.as_ref() && r.row.dataset == rl.row.dataset
        });
        let mut chain: Vec<i64> = base.into_iter().map(|b| b.row.id).collect();
        chain.extend([sft.row.id, rl.row.id]);
        return chain;
    }
    first_three(p)
}

pub fn compare_view(p: &Prepared, req: CompareRequest) -> CompareView {
    let (mut chosen, missing) = select(p, &req.runs, default_lineage);
    chosen.truncate(3);
    let ids: Vec<i64> = chosen.iter().map(|&i| p.data.runs[i].row.id).collect();
    let slug = &p.data.summary.slug;
    let passk = passk_view(
        p,
        PasskRequest {
            runs: ids.clone(),
            tag: None,
            band: true,
            verdicts: p.data.verdicts,
            unreviewed: !p.data.review.reviewed,
        },
    );
    let unsolvable = unsolvable_view(
        p,
        UnsolvableRequest {
            runs: ids.clone(),
            k: None,
            region: Vec::new(),
            verdicts: p.data.verdicts,
            unreviewed: !p.data.review.reviewed,
        },
    );
    let overview = overview_view(p);
    let row_of = |i: usize| {
        overview
            .rows
            .iter()
            .find(|r| r.run.id == p.data.runs[i].row.id)
    };
    let labels: Vec<String> = chosen.iter().map(|&i| p.choices[i].label.clone()).collect();
    let diversity = ChartSpec::Bars(BarChart {
        x_label: "run".into(),
        y_label: "distinct answers per problem".into(),
        categories: labels.clone(),
        series: vec![BarSeries {
            key: "diversity".into(),
            label: "mean distinct final answers".into(),
            values: chosen
                .iter()
                .map(|&i| row_of(i).and_then(|r| r.diversity))
                .collect(),
            colour: 0,
        }],
        y_percent: false,
    });
    let rbf_values: Vec<Option<f64>> = chosen
        .iter()
        .map(|&i| row_of(i).and_then(|r| r.mean_rbf))
        .collect();
    let rbf = rbf_values.iter().any(Option::is_some).then(|| {
        ChartSpec::Bars(BarChart {
            x_label: "run".into(),
            y_label: "mean rollout branching factor".into(),
            categories: labels.clone(),
            series: vec![BarSeries {
                key: "rbf".into(),
                label: "RBF".into(),
                values: rbf_values,
                colour: 2,
            }],
            y_percent: false,
        })
    });
    let takeaways = takeaways(p, slug, &chosen);
    CompareView {
        frame: frame(p, &chosen, missing),
        passk: passk.chart,
        diversity,
        venn: unsolvable.chart,
        rbf,
        takeaways,
    }
}

/// Findings for each step of the chain (parent -> child), each only when the data supports it.
fn takeaways(p: &Prepared, slug: &str, chosen: &[usize]) -> Vec<Takeaway> {
    let mut out = Vec::new();
    let base = format!("/experiments/{slug}");
    for w in chosen.windows(2) {
        let (a, b) = (&p.data.runs[w[0]], &p.data.runs[w[1]]);
        let (la, lb) = (&p.choices[w[0]].label, &p.choices[w[1]].label);
        let (pa, pb) = (all(a), all(b));
        let ids = [a.row.id, b.row.id];
        let passk_href = PasskRequest {
            runs: ids.to_vec(),
            tag: None,
            band: true,
            verdicts: p.data.verdicts,
            unreviewed: !p.data.review.reviewed,
        }
        .query()
        .href(&format!("{base}/passk"));
        let k_max = common_n(&pa).min(common_n(&pb));
        if k_max >= 1 {
            let ca = pass_at_k_curve(&counts(&pa), &default_ks(k_max));
            let cb = pass_at_k_curve(&counts(&pb), &default_ks(k_max));
            let at =
                |c: &[CurvePoint], k: u64| c.iter().find(|pt| pt.k == k).map(|pt| pt.pass_at_k);
            if let (Some(a1), Some(b1), Some(am), Some(bm)) =
                (at(&ca, 1), at(&cb, 1), at(&ca, k_max), at(&cb, k_max))
            {
                let d1 = (b1 - a1) * 100.0;
                let dm = (bm - am) * 100.0;
                let mut text = format!("{lb}: pass@1 {:+.1} pts over {la}", d1);
                if k_max > 1 {
                    let join = if (d1 > 0.0) != (dm > 0.0) && dm.abs() >= 0.05 {
                        ", but"
                    } else {
                        ";"
                    };
                    text.push_str(&format!("{join} pass@{k_max} {:+.1} pts", dm));
                }
                let cross = crossover_ks(&ca, &cb);
                if !cross.is_empty() {
                    let ks: Vec<String> = cross.iter().map(u64::to_string).collect();
                    text.push_str(&format!("; curves cross at k = {}", ks.join(", ")));
                }
                out.push(Takeaway {
                    text,
                    href: passk_href.clone(),
                });
            }
        }
        // Problems the parent solves at least once that the child never solves.
        let solved_a: HashMap<&str, &ProblemStat> = pa
            .iter()
            .filter(|s| s.c > 0)
            .map(|s| (s.key.as_str(), *s))
            .collect();
        let lost = pb
            .iter()
            .filter(|s| s.n > 0 && s.c == 0 && solved_a.contains_key(s.key.as_str()))
            .count();
        let solved_b: HashMap<&str, &ProblemStat> = pb
            .iter()
            .filter(|s| s.c > 0)
            .map(|s| (s.key.as_str(), *s))
            .collect();
        let gained = pa
            .iter()
            .filter(|s| s.n > 0 && s.c == 0 && solved_b.contains_key(s.key.as_str()))
            .count();
        let region = |id: i64| {
            UnsolvableRequest {
                runs: ids.to_vec(),
                k: None,
                region: vec![id],
                verdicts: p.data.verdicts,
                unreviewed: !p.data.review.reviewed,
            }
            .query()
            .href(&format!("{base}/unsolvable"))
        };
        if lost > 0 {
            out.push(Takeaway {
                text: format!(
                    "{lost} problem{} solvable by {la} {} unsolvable after {lb}",
                    if lost == 1 { "" } else { "s" },
                    if lost == 1 { "is" } else { "are" }
                ),
                href: region(b.row.id),
            });
        }
        if gained > 0 {
            out.push(Takeaway {
                text: format!(
                    "{gained} problem{} unsolvable by {la} {} solved by {lb}",
                    if gained == 1 { "" } else { "s" },
                    if gained == 1 { "is" } else { "are" }
                ),
                href: region(a.row.id),
            });
        }
        let div = |r: &RunData| {
            let parts: Vec<ProblemPart> = r
                .problems
                .iter()
                .map(|s| ProblemPart {
                    n: s.n,
                    c: s.c,
                    distinct_answers: s.distinct_answers as usize,
                })
                .collect();
            summary_from_parts(&parts, &RolloutTotals::default()).answer_diversity
        };
        if let (Some(da), Some(db)) = (div(a), div(b)) {
            if (db - da).abs() >= 0.05 {
                out.push(Takeaway {
                    text: format!(
                        "{lb} gives {:.2} distinct answers per problem, {} than {la} ({:.2})",
                        db,
                        if db < da { "fewer" } else { "more" },
                        da
                    ),
                    href: CompareRequest {
                        runs: chosen.iter().map(|&i| p.data.runs[i].row.id).collect(),
                        verdicts: p.data.verdicts,
                        unreviewed: !p.data.review.reviewed,
                    }
                    .query()
                    .href(&format!("{base}/compare")),
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------- training dynamics

/// Mean entropy of a run's rollouts, and of its correct / incorrect ones, when stored.
pub type EntropySplit = (Option<f64>, Option<f64>, Option<f64>);

pub fn dynamics_view(
    p: &Prepared,
    mut req: DynamicsRequest,
    split: &HashMap<i64, EntropySplit>,
) -> DynamicsView {
    let stepped: Vec<usize> = (0..p.data.runs.len())
        .filter(|&i| p.data.runs[i].row.training_step.is_some())
        .collect();
    let mut datasets: Vec<String> = stepped
        .iter()
        .map(|&i| p.data.runs[i].row.dataset.clone())
        .collect();
    datasets.sort();
    datasets.dedup();
    if req.dataset.as_ref().is_some_and(|d| !datasets.contains(d)) {
        req.dataset = None;
    }
    let dataset = req.dataset.clone().or_else(|| datasets.first().cloned());
    let mut chosen: Vec<usize> = stepped
        .into_iter()
        .filter(|&i| Some(&p.data.runs[i].row.dataset) == dataset.as_ref())
        .collect();
    chosen.sort_by_key(|&i| (p.data.runs[i].row.training_step, p.data.runs[i].row.id));
    let steps: Vec<DynamicsStep> = chosen
        .iter()
        .map(|&i| {
            let run = &p.data.runs[i];
            let parts: Vec<ProblemPart> = run
                .problems
                .iter()
                .map(|s| ProblemPart {
                    n: s.n,
                    c: s.c,
                    distinct_answers: 0,
                })
                .collect();
            let totals = run
                .aggregates
                .as_ref()
                .map(|a| a.totals)
                .unwrap_or_default();
            let summary = summary_from_parts(&parts, &totals);
            let (h, hc, hi) =
                split
                    .get(&run.row.id)
                    .copied()
                    .unwrap_or((summary.mean_entropy, None, None));
            DynamicsStep {
                run_id: run.row.id,
                model: run.row.model.clone(),
                step: run.row.training_step.unwrap_or(0),
                accuracy: summary.pass_at_1.unwrap_or(0.0),
                entropy: summary.mean_entropy.or(h),
                entropy_correct: hc,
                entropy_incorrect: hi,
            }
        })
        .collect();
    let line = |key: &str,
                label: &str,
                colour: usize,
                pts: Vec<(f64, f64)>,
                fmt: &dyn Fn(f64, f64) -> String| Series {
        key: key.into(),
        label: label.into(),
        readouts: pts.iter().map(|&(x, y)| fmt(x, y)).collect(),
        points: pts,
        band: Vec::new(),
        colour,
    };
    let max_step = steps.iter().map(|s| s.step).max().unwrap_or(1).max(1) as f64;
    let min_step = steps.iter().map(|s| s.step).min().unwrap_or(0) as f64;
    let acc_pts: Vec<(f64, f64)> = steps.iter().map(|s| (s.step as f64, s.accuracy)).collect();
    // Item 8: hinge fit of accuracy over steps.
    let transition = caplens_analysis::dynamics::detect_transition(&acc_pts, 3)
        .map(|t| t.step as u64)
        .map_err(|e| e.to_string());
    let accuracy = (!steps.is_empty()).then(|| {
        ChartSpec::Line(LineChart {
            x_label: "training step".into(),
            y_label: "accuracy (pass@1, %)".into(),
            x_scale: XScale::Linear,
            x_range: (min_step, max_step),
            y_range: (0.0, 1.0),
            y_percent: true,
            series: vec![line("acc", "accuracy", 0, acc_pts.clone(), &|x, y| {
                format!("step {x}: accuracy {}", pct(y))
            })],
            markers: transition
                .as_ref()
                .map(|&t| {
                    vec![VMarker {
                        x: t as f64,
                        label: format!("plateau from step {t}"),
                    }]
                })
                .unwrap_or_default(),
        })
    });
    let ent = |f: fn(&DynamicsStep) -> Option<f64>| -> Vec<(f64, f64)> {
        steps
            .iter()
            .filter_map(|s| f(s).map(|h| (s.step as f64, h)))
            .collect()
    };
    let (all_h, pos_h, neg_h) = (
        ent(|s| s.entropy),
        ent(|s| s.entropy_correct),
        ent(|s| s.entropy_incorrect),
    );
    let h_max = all_h
        .iter()
        .chain(&pos_h)
        .chain(&neg_h)
        .map(|p| p.1)
        .fold(0.0f64, f64::max);
    let entropy = (!all_h.is_empty()).then(|| {
        let mut series = vec![line("all", "all rollouts", 0, all_h.clone(), &|x, y| {
            format!("step {x}: entropy {y:.3} nats")
        })];
        if !pos_h.is_empty() {
            series.push(line(
                "pos",
                "correct rollouts",
                2,
                pos_h.clone(),
                &|x, y| format!("step {x}: correct rollouts {y:.3} nats"),
            ));
        }
        if !neg_h.is_empty() {
            series.push(line(
                "neg",
                "incorrect rollouts",
                1,
                neg_h.clone(),
                &|x, y| format!("step {x}: incorrect rollouts {y:.3} nats"),
            ));
        }
        ChartSpec::Line(LineChart {
            x_label: "training step".into(),
            y_label: "mean token entropy (nats)".into(),
            x_scale: XScale::Linear,
            x_range: (min_step, max_step),
            y_range: (0.0, (h_max * 1.15).max(0.1)),
            y_percent: false,
            series,
            markers: Vec::new(),
        })
    });
    // Item 7: R = -a exp(H) + b over (entropy, accuracy) of the checkpoints.
    let law_pts: Vec<(f64, f64)> = steps
        .iter()
        .filter_map(|s| s.entropy.map(|h| (h, s.accuracy)))
        .collect();
    let fit = caplens_analysis::dynamics::fit_entropy_reward(&law_pts).map_err(|e| e.to_string());
    let law = match (&fit, law_pts.is_empty()) {
        (Ok(f), false) => {
            let (lo, hi) = law_pts.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
                (lo.min(p.0), hi.max(p.0))
            });
            let curve: Vec<(f64, f64)> = (0..=40)
                .map(|i| lo + (hi - lo) * i as f64 / 40.0)
                .map(|h| (h, f.predict(h)))
                .collect();
            Some(ChartSpec::Line(LineChart {
                x_label: "mean token entropy H (nats)".into(),
                y_label: "accuracy R (%)".into(),
                x_scale: XScale::Linear,
                x_range: (lo, hi.max(lo + 1e-3)),
                y_range: (0.0, 1.0),
                y_percent: true,
                series: vec![
                    line(
                        "fit",
                        &format!("R = -{:.3}·exp(H) + {:.3}", f.a, f.b),
                        1,
                        curve,
                        &|x, y| format!("fit at H = {x:.3}: {}", pct(y)),
                    ),
                    line("obs", "checkpoints", 0, law_pts.clone(), &|x, y| {
                        format!("H = {x:.3}: accuracy {}", pct(y))
                    }),
                ],
                markers: Vec::new(),
            }))
        }
        _ => None,
    };
    let fmt = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
    let table = TableData {
        headers: [
            "step",
            "model",
            "accuracy (%)",
            "entropy (nats)",
            "entropy correct",
            "entropy incorrect",
        ]
        .map(String::from)
        .to_vec(),
        rows: steps
            .iter()
            .map(|s| {
                vec![
                    s.step.to_string(),
                    s.model.clone(),
                    format!("{:.2}", s.accuracy * 100.0),
                    fmt(s.entropy),
                    fmt(s.entropy_correct),
                    fmt(s.entropy_incorrect),
                ]
            })
            .collect(),
        numeric: vec![true, false, true, true, true, true],
    };
    DynamicsView {
        frame: frame(p, &chosen, Vec::new()),
        request: req,
        datasets,
        steps,
        accuracy,
        entropy,
        law,
        fit: fit.map(|f| LawFit {
            a: f.a,
            b: f.b,
            ceiling: f.ceiling,
            r_squared: f.r_squared,
            points: f.points,
            holds: f.status == caplens_analysis::dynamics::LawStatus::Holds,
        }),
        transition,
        table,
    }
}

// ---------------------------------------------------------------- token statistics

/// Runs with token-level data by default (up to three: each has a correct and an incorrect line).
pub fn token_stats_view(
    p: &Prepared,
    mut req: TokenStatsRequest,
    stats: &HashMap<i64, caplens_analysis::token_stats::TokenStats>,
) -> TokenStatsView {
    let with_data = |p: &Prepared| -> Vec<i64> {
        p.data
            .runs
            .iter()
            .map(|r| r.row.id)
            .filter(|id| stats.contains_key(id))
            .take(3)
            .collect()
    };
    let (mut chosen, missing) = select(p, &req.runs, with_data);
    chosen.truncate(3);
    req.runs.retain(|id| !missing.contains(id));
    let mut sources = Vec::new();
    let mut pos_series = Vec::new();
    let mut ppl_series = Vec::new();
    let mut impact_series = Vec::new();
    let mut ppl_categories: Vec<String> = Vec::new();
    let mut impact_categories: Vec<String> = Vec::new();
    let mut summary_rows = Vec::new();
    let mut category_rows = Vec::new();
    let mut group_rows = Vec::new();
    let mean = |m: &caplens_analysis::tokens::MeanAccumulator| m.mean();
    let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_default();
    for (slot, &i) in chosen.iter().enumerate() {
        let choice = &p.choices[i];
        let Some(s) = stats.get(&choice.id) else {
            sources.push((choice.label.clone(), "no token-level data".into()));
            continue;
        };
        let src = &s.entropy_source;
        let source = if src.exact > 0 && src.truncated == 0 {
            "exact (full distribution)".to_string()
        } else if src.truncated > 0 {
            format!(
                "truncated estimate from top-{} logprobs (a lower bound)",
                src.max_top_k
            )
        } else {
            "no per-token entropies".to_string()
        };
        sources.push((choice.label.clone(), source));
        // Fig. 6a: entropy by relative position, correct and incorrect responses apart.
        let bins = s.position_entropy.summary();
        let (c_corr, c_inc) = ((2 * slot) % 7, (2 * slot + 1) % 7);
        for (key, label, colour, pick) in [
            ("c", "correct", c_corr, true),
            ("i", "incorrect", c_inc, false),
        ] {
            let pts: Vec<(f64, f64)> = bins
                .iter()
                .filter_map(|b| {
                    mean(if pick { &b.correct } else { &b.incorrect })
                        .map(|m| ((b.start + b.end) / 2.0, m))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            pos_series.push(Series {
                key: format!("{}{key}", choice.id),
                label: format!("{} · {label}", choice.label),
                readouts: pts
                    .iter()
                    .map(|&(x, y)| {
                        format!(
                            "{} {label}: entropy {y:.3} nats at position {:.0} %",
                            choice.label,
                            x * 100.0
                        )
                    })
                    .collect(),
                points: pts,
                band: Vec::new(),
                colour,
            });
        }
        // Fig. 5a: PPL distribution (share of rollouts per log-spaced bin).
        let h = &s.perplexity.histogram;
        let total: u64 =
            h.correct.iter().chain(&h.incorrect).sum::<u64>() + h.above_correct + h.above_incorrect;
        if total > 0 {
            // Merge the 16-per-octave bins into whole octaves to keep the chart readable.
            let octaves = (h.edges.len().saturating_sub(1)).div_ceil(16);
            if ppl_categories.is_empty() {
                ppl_categories = (0..octaves)
                    .map(|o| format!("{}–{}", 1u64 << o, 1u64 << (o + 1)))
                    .collect();
                ppl_categories.push(format!("≥ {}", 1u64 << octaves));
            }
            let mut values: Vec<Option<f64>> = (0..octaves)
                .map(|o| {
                    let lo = o * 16;
                    let hi = (lo + 16).min(h.correct.len());
                    let n: u64 = h.correct[lo..hi].iter().chain(&h.incorrect[lo..hi]).sum();
                    Some(n as f64 / total as f64)
                })
                .collect();
            values.push(Some(
                (h.above_correct + h.above_incorrect) as f64 / total as f64,
            ));
            ppl_series.push(BarSeries {
                key: choice.id.to_string(),
                label: choice.label.clone(),
                values,
                colour: choice.colour,
            });
        }
        if let Some(g) = &s.perplexity.groups {
            for (name, grp) in [("bottom", &g.low), ("top", &g.high)] {
                group_rows.push(vec![
                    choice.label.clone(),
                    format!("{name} {:.0} %", g.fraction * 100.0),
                    grp.rollouts.to_string(),
                    f(
                        (grp.rollouts > 0)
                            .then(|| grp.correct as f64 / grp.rollouts as f64 * 100.0),
                        1,
                    ),
                    f(mean(&grp.mean_entropy), 3),
                    format!("{:.3}–{:.3}", grp.min_ppl, grp.max_ppl),
                ]);
            }
        }
        // Fig. 6b: intervention impact by position.
        if let Some(iv) = &s.interventions {
            if impact_categories.is_empty() {
                impact_categories = iv
                    .by_position
                    .iter()
                    .map(|b| format!("{:.0}–{:.0} %", b.start * 100.0, b.end * 100.0))
                    .collect();
            }
            impact_series.push(BarSeries {
                key: choice.id.to_string(),
                label: choice.label.clone(),
                values: iv
                    .by_position
                    .iter()
                    .map(|b| b.summary.mean_abs_impact)
                    .collect(),
                colour: choice.colour,
            });
            if let Some(g) = &iv.by_ppl_group {
                for (name, sm) in [("bottom PPL", &g.low), ("top PPL", &g.high)] {
                    group_rows.push(vec![
                        choice.label.clone(),
                        format!("interventions, {name} {:.0} %", g.fraction * 100.0),
                        sm.interventions.to_string(),
                        String::new(),
                        f(sm.mean_abs_impact, 4),
                        String::new(),
                    ]);
                }
            }
        }
        let per = |x: u64| {
            if s.categories.responses > 0 {
                format!("{:.1}", x as f64 / s.categories.responses as f64)
            } else {
                String::new()
            }
        };
        let t = &s.categories.tokens;
        category_rows.push(vec![
            choice.label.clone(),
            s.categories.responses.to_string(),
            per(t.formal_reasoning),
            per(t.logical_structuring),
            per(t.metacognitive),
            per(t.semantic_support),
        ]);
        summary_rows.push(vec![
            choice.label.clone(),
            s.rollouts.to_string(),
            s.traced_rollouts.to_string(),
            s.trace_tokens.to_string(),
            f(mean(&s.mean_entropy.correct), 4),
            f(mean(&s.mean_entropy.incorrect), 4),
            f(mean(&s.perplexity.mean.correct), 4),
            f(mean(&s.perplexity.mean.incorrect), 4),
        ]);
    }
    let y_max = pos_series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let position = (!pos_series.is_empty()).then(|| {
        ChartSpec::Line(LineChart {
            x_label: "relative position in the response (0 = start, 1 = end)".into(),
            y_label: "mean token entropy (nats)".into(),
            x_scale: XScale::Linear,
            x_range: (0.0, 1.0),
            y_range: (0.0, (y_max * 1.15).max(0.1)),
            y_percent: false,
            series: pos_series,
            markers: Vec::new(),
        })
    });
    let ppl = (!ppl_series.is_empty()).then(|| {
        ChartSpec::Bars(BarChart {
            x_label: "perplexity (octaves)".into(),
            y_label: "share of rollouts".into(),
            categories: ppl_categories,
            series: ppl_series,
            y_percent: true,
        })
    });
    let impact = (!impact_series.is_empty()).then(|| {
        ChartSpec::Bars(BarChart {
            x_label: "relative position of the intervened token".into(),
            y_label: "mean |I_t| (accuracy change)".into(),
            categories: impact_categories,
            series: impact_series,
            y_percent: false,
        })
    });
    let table = |headers: &[&str], rows: Vec<Vec<String>>| TableData {
        numeric: (0..headers.len()).map(|i| i > 0).collect(),
        headers: headers.iter().map(|h| h.to_string()).collect(),
        rows,
    };
    let mut tables = vec![(
        "summary".to_string(),
        table(
            &[
                "run",
                "rollouts",
                "with trace",
                "trace tokens",
                "entropy correct",
                "entropy incorrect",
                "PPL correct",
                "PPL incorrect",
            ],
            summary_rows,
        ),
    )];
    if !category_rows.is_empty() {
        tables.push((
            "categories".into(),
            table(
                &[
                    "run",
                    "responses",
                    "formal reasoning / response",
                    "logical structuring",
                    "metacognitive",
                    "semantic support",
                ],
                category_rows,
            ),
        ));
    }
    if !group_rows.is_empty() {
        tables.push((
            "ppl-groups".into(),
            table(
                &[
                    "run",
                    "group",
                    "rollouts",
                    "accuracy (%)",
                    "mean entropy / |I_t|",
                    "PPL range",
                ],
                group_rows,
            ),
        ));
    }
    TokenStatsView {
        frame: frame(p, &chosen, missing),
        sources,
        position,
        ppl,
        impact,
        tables,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caplens_app::model::{ExperimentSummary, RunRow};

    fn run(
        id: i64,
        model: &str,
        step: Option<i64>,
        counts: &[(u64, u64)],
        entropy: Option<f64>,
    ) -> RunData {
        let mut totals = RolloutTotals::default();
        if let Some(h) = entropy {
            totals.entropy.push(Some(h));
        }
        RunData {
            row: RunRow {
                id,
                label: String::new(),
                model: model.into(),
                stage: "rl".into(),
                parent_model: None,
                training_step: step,
                dataset: "d".into(),
                temperature: None,
                top_p: None,
                max_tokens: None,
                n_per_problem: None,
                status: "completed".into(),
                origin: "upload".into(),
                created_at: String::new(),
                problems: counts.len() as i64,
                rollouts: 0,
                pass_at_1: None,
                lineage_depth: 0,
                verdicts: Default::default(),
            },
            problems: counts
                .iter()
                .enumerate()
                .map(|(i, &(n, c))| ProblemStat {
                    problem_id: i as i64 + 1,
                    key: format!("d/p{i}"),
                    tags: vec![],
                    n,
                    c,
                    first_correct: (c > 0).then_some(0),
                    order_known: true,
                    distinct_answers: 1,
                })
                .collect(),
            aggregates: entropy.map(|_| caplens_analysis::rollup::RunAggregates {
                totals,
                pass_at_k: vec![],
                summary: summary_from_parts(&[], &RolloutTotals::default()),
            }),
        }
    }

    fn prepared(runs: Vec<RunData>) -> Prepared {
        let data = ExperimentData {
            summary: ExperimentSummary {
                slug: "x".into(),
                name: "x".into(),
                description: String::new(),
                is_demo: false,
                run_count: runs.len() as i64,
                model_count: runs.len() as i64,
                created_at: String::new(),
                project: None,
            },
            runs,
            verdicts: None,
            review: Default::default(),
        };
        Prepared {
            choices: run_choices(&data),
            data,
        }
    }

    #[test]
    fn dynamics_fits_the_law_over_checkpoints_in_step_order() {
        // Accuracy = -0.2 exp(H) + 1.0 exactly, on 4 problems x 10 samples (c = 10 R).
        let hs = [1.5f64, 1.2, 0.9, 0.7, 0.6, 0.55];
        let runs: Vec<RunData> = hs
            .iter()
            .enumerate()
            .rev() // stored out of order: the view sorts by step
            .map(|(i, &h)| {
                let r = -0.2 * h.exp() + 1.0;
                let c = (r * 10.0).round() as u64;
                run(
                    i as i64 + 1,
                    &format!("m@{}", i * 50),
                    Some(i as i64 * 50),
                    &[(10, c); 4],
                    Some(h),
                )
            })
            .collect();
        let p = prepared(runs);
        let v = dynamics_view(&p, DynamicsRequest::default(), &HashMap::new());
        assert_eq!(
            v.steps.iter().map(|s| s.step).collect::<Vec<_>>(),
            vec![0, 50, 100, 150, 200, 250]
        );
        let pts: Vec<(f64, f64)> = v
            .steps
            .iter()
            .map(|s| (s.entropy.unwrap(), s.accuracy))
            .collect();
        let want = caplens_analysis::dynamics::fit_entropy_reward(&pts).unwrap();
        let got = v.fit.clone().unwrap();
        assert!((got.a - want.a).abs() < 1e-12 && (got.b - want.b).abs() < 1e-12);
        assert!(
            (got.a - 0.2).abs() < 0.02 && (got.b - 1.0).abs() < 0.05,
            "{got:?}"
        );
        assert!(got.holds);
        assert!(v.accuracy.is_some() && v.law.is_some());
        assert_eq!(v.table.rows.len(), 6);
    }

    #[test]
    fn dynamics_without_steps_is_empty_not_an_error() {
        let p = prepared(vec![run(1, "a", None, &[(4, 1)], None)]);
        let v = dynamics_view(&p, DynamicsRequest::default(), &HashMap::new());
        assert!(v.steps.is_empty() && v.accuracy.is_none() && v.fit.is_err());
    }

    #[test]
    fn labels_tell_same_model_runs_apart() {
        let p = prepared(vec![
            run(1, "a", None, &[(4, 1)], None),
            run(2, "a", None, &[(4, 1)], None),
        ]);
        assert_eq!(p.choices[0].label, "a #1");
        assert_eq!(p.choices[1].label, "a #2");
    }
}
