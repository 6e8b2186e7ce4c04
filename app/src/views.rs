//! View models of the experiment analysis pages (overview, pass@k, unsolvable, compare) and the
//! requests that select them. A request is parsed from, and written back to, the page's query
//! string ([`crate::urlstate`]): the URL is the whole view state. The server builds the views
//! (`server/src/views.rs`) from stored aggregates; pages only present them.

use serde::{Deserialize, Serialize};

use caplens_analysis::verdicts::VerdictSource;

use crate::charts::ChartSpec;
use crate::model::ExperimentSummary;
use crate::tables::TableData;
use crate::urlstate::{join_ids, parse_ids, Query};

/// A run as the pickers and legends show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunChoice {
    pub id: i64,
    /// The model name, with the dataset (and label) when the experiment has several.
    pub label: String,
    pub model: String,
    pub stage: String,
    pub parent_model: Option<String>,
    pub dataset: String,
    pub training_step: Option<i64>,
    pub lineage_depth: u32,
    /// Palette index, stable for the run within the experiment.
    pub colour: usize,
}

/// What every analysis view carries: the experiment, its runs, which were asked for but do not
/// exist (a stale permalink), and which are shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewFrame {
    pub experiment: ExperimentSummary,
    pub runs: Vec<RunChoice>,
    pub selected: Vec<i64>,
    /// Run ids in the URL that are not (or no longer) in this experiment.
    pub missing_runs: Vec<i64>,
    /// Whose verdicts the numbers count, and whether the choice matters here.
    #[serde(default)]
    pub verdicts: VerdictFrame,
    /// The chosen runs whose problems do not all have the same number of samples (issue 27).
    #[serde(default)]
    pub uneven: Vec<UnevenRun>,
}

/// A run whose problems have different sample counts: pass@k at k > `min_n` averages over fewer
/// problems, and "unsolvable at k" is undecided for problems with fewer than k samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnevenRun {
    pub run: i64,
    pub label: String,
    pub min_n: u64,
    pub max_n: u64,
    pub problems: u64,
    /// Problems with `max_n` samples.
    pub at_max: u64,
}

/// The `verdicts=file|caplens` switch of a view (issue 13): the file's verdicts and caplens'
/// verifier are kept side by side and every view can count either.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VerdictFrame {
    /// The source in the URL; `None`: each run's default (the file's verdicts where it has them).
    pub selected: Option<VerdictSource>,
    /// Runs of the experiment that carry the file's verdicts besides caplens' (the switch matters).
    pub runs_with_both: u64,
    /// Rollouts on which the file's verdict and caplens' differ, over the experiment's runs.
    pub disagreements: u64,
    /// Rollouts graded by both, over the experiment's runs.
    pub graded_by_both: u64,
    /// The numbers include the reviewers' verdict overrides (`reviewed=1`, the default).
    #[serde(default)]
    pub reviewed: bool,
    /// Verdict overrides recorded on the experiment.
    #[serde(default)]
    pub overrides: u64,
    /// Rollouts whose verdict the overrides change under the chosen source.
    #[serde(default)]
    pub overridden_rollouts: u64,
}

/// The `reviewed=0|1` switch (issue 15): `reviewed=0` counts without the reviewers' verdict
/// overrides; absent or `1` counts with them.
pub fn unreviewed_from_query(get: &impl Fn(&str) -> Option<String>) -> bool {
    get("reviewed").is_some_and(|v| v == "0")
}

/// The `verdicts=` query value.
pub fn verdicts_from_query(get: &impl Fn(&str) -> Option<String>) -> Option<VerdictSource> {
    get("verdicts").and_then(|v| VerdictSource::parse(&v))
}

fn verdicts_query(v: Option<VerdictSource>) -> &'static str {
    v.map_or("", VerdictSource::as_str)
}

// ---------- overview ----------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewView {
    pub frame: ViewFrame,
    pub rows: Vec<OverviewRow>,
    pub table: TableData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewRow {
    pub run: RunChoice,
    pub problems: u64,
    pub rollouts: u64,
    pub max_n: u64,
    pub pass_at_1: Option<f64>,
    /// pass@k at k = the run's largest common n (every problem has at least k samples).
    pub pass_at_max: Option<(u64, f64)>,
    pub unsolvable: u64,
    /// Mean distinct final answers per problem (paper fig. 1b).
    pub diversity: Option<f64>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub mean_ppl: Option<f64>,
    pub format_violation_rate: Option<f64>,
    pub language_mixing_rate: Option<f64>,
    pub redundancy_rate: Option<f64>,
}

// ---------- pass@k ----------

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PasskRequest {
    pub runs: Vec<i64>,
    /// Only problems with this tag (e.g. a dataset split such as `aime24`).
    pub tag: Option<String>,
    /// Draw the bootstrap band (default on).
    pub band: bool,
    /// Whose verdicts count (`None`: each run's default).
    #[serde(default)]
    pub verdicts: Option<VerdictSource>,
    /// Ignore the reviewers' verdict overrides (`reviewed=0`; issue 15).
    #[serde(default)]
    pub unreviewed: bool,
}

impl PasskRequest {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            runs: get("runs").map(|s| parse_ids(&s)).unwrap_or_default(),
            tag: get("tag").filter(|t| !t.is_empty()),
            band: get("band").map(|b| b != "0").unwrap_or(true),
            verdicts: verdicts_from_query(&get),
            unreviewed: unreviewed_from_query(&get),
        }
    }
    pub fn query(&self) -> Query {
        Query::new()
            .set("runs", join_ids(&self.runs))
            .set("tag", self.tag.clone().unwrap_or_default())
            .set("band", if self.band { "" } else { "0" })
            .set("verdicts", verdicts_query(self.verdicts))
            .set("reviewed", if self.unreviewed { "0" } else { "" })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskView {
    pub frame: ViewFrame,
    pub request: PasskRequest,
    /// Tags present on the experiment's problems, for the filter.
    pub tags: Vec<String>,
    /// The tag in the URL matches no problem.
    pub tag_missing: bool,
    pub chart: ChartSpec,
    pub table: TableData,
    /// Where two curves cross: "rl × sft at k = 24".
    pub crossovers: Vec<Crossover>,
    pub resamples: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossover {
    pub a: String,
    pub b: String,
    pub ks: Vec<u64>,
}

// ---------- unsolvable ----------

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UnsolvableRequest {
    pub runs: Vec<i64>,
    /// Attempts that count (None: all n).
    pub k: Option<u64>,
    /// The selected region: the run ids whose unsolvable sets it is exactly the intersection of.
    pub region: Vec<i64>,
    /// Whose verdicts count (`None`: each run's default).
    #[serde(default)]
    pub verdicts: Option<VerdictSource>,
    /// Ignore the reviewers' verdict overrides (`reviewed=0`; issue 15).
    #[serde(default)]
    pub unreviewed: bool,
}

impl UnsolvableRequest {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            runs: get("runs").map(|s| parse_ids(&s)).unwrap_or_default(),
            k: get("k")
                .and_then(|k| k.parse().ok())
                .filter(|&k: &u64| k > 0),
            region: get("region").map(|s| parse_ids(&s)).unwrap_or_default(),
            verdicts: verdicts_from_query(&get),
            unreviewed: unreviewed_from_query(&get),
        }
    }
    pub fn query(&self) -> Query {
        Query::new()
            .set("runs", join_ids(&self.runs))
            .set("k", self.k.map(|k| k.to_string()).unwrap_or_default())
            .set("region", join_ids(&self.region))
            .set("verdicts", verdicts_query(self.verdicts))
            .set("reviewed", if self.unreviewed { "0" } else { "" })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsolvableView {
    pub frame: ViewFrame,
    pub request: UnsolvableRequest,
    /// Largest k every selected run can answer (the smallest n).
    pub max_k: u64,
    pub ks: Vec<u64>,
    pub chart: ChartSpec,
    pub set_sizes: ChartSpec,
    pub table: TableData,
    pub region: Option<RegionDetail>,
    /// Problems left out per run (absent, too few samples, order unknown), with reasons.
    pub undetermined: Vec<(String, usize)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionDetail {
    pub title: String,
    pub columns: Vec<String>,
    pub problems: Vec<RegionProblem>,
    pub table: TableData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionProblem {
    pub problem_id: i64,
    pub key: String,
    /// Per selected run: "c/n", and for runs that cannot solve it the 95 % upper bound of the
    /// solve rate ("unlucky vs unsolvable").
    pub cells: Vec<RegionCell>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionCell {
    pub c: u64,
    pub n: u64,
    pub upper_95: Option<f64>,
}

// ---------- problems ----------

/// Problems per page of the problems view unless `limit=` says otherwise.
pub const PROBLEMS_PER_PAGE: usize = 50;
/// Largest `limit=` of the problems view and its REST document.
pub const MAX_PROBLEMS_PER_PAGE: usize = 500;

/// What the problems view sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum ProblemSortField {
    /// `dataset/problem_id`.
    #[default]
    Key,
    /// Δ = rate(B) − rate(A).
    Delta,
    /// One run's solve rate c/n.
    Rate(i64),
    /// Comments on the problem.
    Comments,
}

/// `sort=`: `key`, `delta`, `rate:RUN`, `comments`, each descending with a leading `-`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ProblemSort {
    pub field: ProblemSortField,
    pub descending: bool,
}

impl ProblemSort {
    pub fn parse(s: &str) -> Option<ProblemSort> {
        let (descending, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let field = match name {
            "key" => ProblemSortField::Key,
            "delta" => ProblemSortField::Delta,
            "comments" => ProblemSortField::Comments,
            _ => ProblemSortField::Rate(name.strip_prefix("rate:")?.parse().ok()?),
        };
        Some(ProblemSort { field, descending })
    }
    pub fn as_string(&self) -> String {
        let name = match self.field {
            ProblemSortField::Key => "key".to_string(),
            ProblemSortField::Delta => "delta".to_string(),
            ProblemSortField::Rate(run) => format!("rate:{run}"),
            ProblemSortField::Comments => "comments".to_string(),
        };
        if self.descending {
            format!("-{name}")
        } else {
            name
        }
    }
}

/// The problems view (issue 27): every problem of the chosen runs with each run's c/n, Δ between
/// the first two, labels and comments; filtered, sorted and paged by the URL.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProblemsRequest {
    /// The runs shown; Δ and the paired counts compare the first two (A, then B).
    pub runs: Vec<i64>,
    /// Full-text search over prompt and key.
    pub q: Option<String>,
    pub sort: ProblemSort,
    pub change: Option<caplens_analysis::paired::Change>,
    /// Threshold on |Δ| for improved / regressed (default 0: any change).
    pub min_delta: f64,
    /// Only problems carrying this review label.
    pub label: Option<String>,
    /// Only problems the last chosen run does not solve in its first k samples.
    pub unsolvable: Option<u64>,
    pub verdicts: Option<VerdictSource>,
    pub unreviewed: bool,
    /// Page size (default [`PROBLEMS_PER_PAGE`], at most [`MAX_PROBLEMS_PER_PAGE`]).
    pub limit: usize,
    pub offset: usize,
}

/// A query parameter of the problems view that does not parse: the parameter and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadParameter(pub &'static str, pub String);

impl ProblemsRequest {
    /// Reads the query string; a value that does not parse is an error naming the parameter
    /// (the REST API answers 400 with it; the page shows it).
    pub fn try_from_query(get: impl Fn(&str) -> Option<String>) -> Result<Self, BadParameter> {
        let nonempty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let number = |k: &'static str| -> Result<Option<u64>, BadParameter> {
            nonempty(k)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| {
                        BadParameter(k, format!("{v:?} is not a non-negative integer"))
                    })
                })
                .transpose()
        };
        let sort = match nonempty("sort") {
            None => ProblemSort::default(),
            Some(s) => ProblemSort::parse(s.trim()).ok_or_else(|| {
                BadParameter(
                    "sort",
                    format!("{s:?} is not one of key, delta, rate:RUN, comments (each with an optional leading -)"),
                )
            })?,
        };
        let change = match nonempty("change") {
            None => None,
            Some(c) => Some(
                caplens_analysis::paired::Change::parse(c.trim()).ok_or_else(|| {
                    BadParameter(
                        "change",
                        format!("{c:?} is not one of improved, regressed, unchanged"),
                    )
                })?,
            ),
        };
        let min_delta = match nonempty("min_delta") {
            None => 0.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && (0.0..=1.0).contains(&x) => x,
                _ => {
                    return Err(BadParameter(
                        "min_delta",
                        format!("{v:?} is not a number from 0 to 1"),
                    ))
                }
            },
        };
        let verdicts = match nonempty("verdicts") {
            None => None,
            Some(v) => Some(VerdictSource::parse(&v).ok_or_else(|| {
                BadParameter("verdicts", format!("{v:?} is not one of file, caplens"))
            })?),
        };
        let unreviewed = match nonempty("reviewed").as_deref() {
            None | Some("1") => false,
            Some("0") => true,
            Some(v) => return Err(BadParameter("reviewed", format!("{v:?} is not 0 or 1"))),
        };
        let limit = number("limit")?.map_or(PROBLEMS_PER_PAGE, |l| l as usize);
        if limit == 0 || limit > MAX_PROBLEMS_PER_PAGE {
            return Err(BadParameter(
                "limit",
                format!("{limit} is not from 1 to {MAX_PROBLEMS_PER_PAGE}"),
            ));
        }
        let unsolvable = number("unsolvable")?;
        if unsolvable == Some(0) {
            return Err(BadParameter("unsolvable", "k must be at least 1".into()));
        }
        Ok(Self {
            runs: get("runs").map(|s| parse_ids(&s)).unwrap_or_default(),
            q: nonempty("q"),
            sort,
            change,
            min_delta,
            label: nonempty("label"),
            unsolvable,
            verdicts,
            unreviewed,
            limit,
            offset: number("offset")?.unwrap_or(0) as usize,
        })
    }
    /// The page's reading: what does not parse falls back to the default (the page says so).
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Self::try_from_query(&get).unwrap_or_else(|_| Self {
            runs: get("runs").map(|s| parse_ids(&s)).unwrap_or_default(),
            limit: PROBLEMS_PER_PAGE,
            ..Default::default()
        })
    }
    pub fn query(&self) -> Query {
        let sort = if self.sort == ProblemSort::default() {
            String::new()
        } else {
            self.sort.as_string()
        };
        Query::new()
            .set("runs", join_ids(&self.runs))
            .set("q", self.q.clone().unwrap_or_default())
            .set("sort", sort)
            .set("change", self.change.map_or("", |c| c.as_str()))
            .set(
                "min_delta",
                if self.min_delta > 0.0 {
                    self.min_delta.to_string()
                } else {
                    String::new()
                },
            )
            .set("label", self.label.clone().unwrap_or_default())
            .set(
                "unsolvable",
                self.unsolvable.map(|k| k.to_string()).unwrap_or_default(),
            )
            .set("verdicts", verdicts_query(self.verdicts))
            .set("reviewed", if self.unreviewed { "0" } else { "" })
            .set(
                "limit",
                if self.limit == PROBLEMS_PER_PAGE {
                    String::new()
                } else {
                    self.limit.to_string()
                },
            )
            .set(
                "offset",
                if self.offset == 0 {
                    String::new()
                } else {
                    self.offset.to_string()
                },
            )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemsView {
    pub frame: ViewFrame,
    pub request: ProblemsRequest,
    /// Problems that match the filters (before paging).
    pub total: u64,
    /// Run A vs run B over the problems both have that match the search and label filters
    /// (before the change and unsolvable filters); `None` with fewer than two runs.
    pub paired: Option<caplens_analysis::paired::PairedSummary>,
    /// This page, in order.
    pub rows: Vec<ProblemsRow>,
    /// Labels used on the experiment's problems (the label filter's choices).
    pub labels: Vec<String>,
    /// The largest sample count of the chosen runs (the unsolvable filter's largest k).
    pub max_n: u64,
}

/// The list a problem was opened from, kept in the problem page's `from=` (triage): the problems
/// view (`from=` is its query), a region of the unsolvable view (`unsolvable?` and its query) or
/// the review queue (`review?`, optionally `reason=KIND`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TriageList {
    Problems(ProblemsRequest),
    Region(UnsolvableRequest),
    Queue { reason: Option<String> },
}

impl TriageList {
    /// Reads a `from=` value.
    pub fn parse(from: &str) -> TriageList {
        let (kind, query) = match from.split_once('?') {
            Some((kind @ ("unsolvable" | "review"), query)) => (kind, query),
            _ if from == "review" => ("review", ""),
            _ => ("problems", from),
        };
        let pairs = crate::urlstate::parse_query(query);
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match kind {
            "unsolvable" => TriageList::Region(UnsolvableRequest::from_query(get)),
            "review" => TriageList::Queue {
                reason: get("reason").filter(|r| !r.is_empty()),
            },
            _ => TriageList::Problems(ProblemsRequest::from_query(get)),
        }
    }

    /// The `from=` value for this list.
    pub fn encode(&self) -> String {
        match self {
            TriageList::Problems(req) => req.query().to_string(),
            TriageList::Region(req) => format!("unsolvable?{}", req.query()),
            TriageList::Queue { reason } => match reason {
                Some(r) => format!("review?{}", Query::new().set("reason", r)),
                None => "review".to_string(),
            },
        }
    }

    /// The list's own page in experiment `slug`.
    pub fn href(&self, slug: &str) -> String {
        match self {
            TriageList::Problems(req) => req.query().href(&format!("/experiments/{slug}/problems")),
            TriageList::Region(req) => req.query().href(&format!("/experiments/{slug}/unsolvable")),
            TriageList::Queue { reason } => Query::new()
                .set("reason", reason.clone().unwrap_or_default())
                .href(&format!("/experiments/{slug}/review")),
        }
    }

    /// What the breadcrumb calls it.
    pub fn title(&self) -> &'static str {
        match self {
            TriageList::Problems(_) => "Problems",
            TriageList::Region(_) => "Unsolvable region",
            TriageList::Queue { .. } => "Review queue",
        }
    }
}

/// Where a problem stands in the list it was opened from (triage: previous / next).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemNeighbours {
    /// 1-based position of the problem in the list; `None` when it is not (or no longer) in it.
    pub position: Option<u64>,
    pub total: u64,
    /// (problem id, key) before and after it.
    pub previous: Option<(i64, String)>,
    pub next: Option<(i64, String)>,
    /// The experiment's name, for the breadcrumb.
    pub experiment_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemsRow {
    pub problem_id: i64,
    /// `dataset/problem_id`.
    pub key: String,
    pub prompt: String,
    /// Per chosen run (the frame's `selected` order): (c, n), `None` when the run lacks it.
    pub cells: Vec<Option<(u64, u64)>>,
    /// rate(B) − rate(A), when both runs have the problem.
    pub delta: Option<f64>,
    pub labels: Vec<String>,
    pub comments: u64,
}

// ---------- compare ----------

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CompareRequest {
    pub runs: Vec<i64>,
    /// Whose verdicts count (`None`: each run's default).
    #[serde(default)]
    pub verdicts: Option<VerdictSource>,
    /// Ignore the reviewers' verdict overrides (`reviewed=0`; issue 15).
    #[serde(default)]
    pub unreviewed: bool,
}

impl CompareRequest {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            runs: get("runs").map(|s| parse_ids(&s)).unwrap_or_default(),
            verdicts: verdicts_from_query(&get),
            unreviewed: unreviewed_from_query(&get),
        }
    }
    pub fn query(&self) -> Query {
        Query::new()
            .set("runs", join_ids(&self.runs))
            .set("verdicts", verdicts_query(self.verdicts))
            .set("reviewed", if self.unreviewed { "0" } else { "" })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareView {
    pub frame: ViewFrame,
    pub passk: ChartSpec,
    pub diversity: ChartSpec,
    pub venn: ChartSpec,
    /// None when no compared run has token data.
    pub rbf: Option<ChartSpec>,
    pub takeaways: Vec<Takeaway>,
}

/// One finding, with a link to the view that shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Takeaway {
    pub text: String,
    pub href: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_triage_list_survives_its_from_value() {
        let lists = [
            TriageList::Problems(ProblemsRequest::from_query(q(
                "runs=3,4&sort=-delta&q=prime",
            ))),
            TriageList::Region(UnsolvableRequest::from_query(q("runs=1,2,3&k=8&region=3"))),
            TriageList::Queue {
                reason: Some("not-maths".into()),
            },
            TriageList::Queue { reason: None },
        ];
        for list in lists {
            assert_eq!(TriageList::parse(&list.encode()), list, "{}", list.encode());
        }
        // A `from=` written before queues and regions had one is a problems-view query.
        assert!(
            matches!(TriageList::parse("sort=delta"), TriageList::Problems(r) if r.sort.field == ProblemSortField::Delta)
        );
        assert_eq!(
            TriageList::Queue {
                reason: Some("unverifiable".into())
            }
            .href("x"),
            "/experiments/x/review?reason=unverifiable"
        );
    }

    fn q(s: &'static str) -> impl Fn(&str) -> Option<String> {
        move |key| {
            s.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == key).then(|| v.to_string())
            })
        }
    }

    #[test]
    fn requests_round_trip_through_the_query() {
        let r = PasskRequest::from_query(q("runs=3,1&tag=aime&band=0"));
        assert_eq!(
            r,
            PasskRequest {
                runs: vec![3, 1],
                tag: Some("aime".into()),
                band: false,
                verdicts: None,
                unreviewed: false
            }
        );
        assert_eq!(r.query().to_string(), "runs=3,1&tag=aime&band=0");
        assert!(PasskRequest::from_query(q("")).band);
        let u = UnsolvableRequest::from_query(q("runs=1,2&k=0&region=2"));
        assert_eq!(u.k, None);
        assert_eq!(u.query().to_string(), "runs=1,2&region=2");
    }
}

// ---------- training dynamics ----------

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DynamicsRequest {
    /// Which dataset's checkpoints (when the experiment has several).
    pub dataset: Option<String>,
}

impl DynamicsRequest {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            dataset: get("dataset").filter(|d| !d.is_empty()),
        }
    }
    pub fn query(&self) -> Query {
        Query::new().set("dataset", self.dataset.clone().unwrap_or_default())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicsView {
    pub frame: ViewFrame,
    pub request: DynamicsRequest,
    pub datasets: Vec<String>,
    /// One row per checkpoint run, by training step.
    pub steps: Vec<DynamicsStep>,
    pub accuracy: Option<ChartSpec>,
    pub entropy: Option<ChartSpec>,
    pub law: Option<ChartSpec>,
    /// R = -a exp(H) + b over the checkpoints (paper-notes item 7), or why it cannot be fitted.
    pub fit: Result<LawFit, String>,
    /// The rising -> plateau breakpoint of accuracy over steps (item 8), or why not.
    pub transition: Result<u64, String>,
    pub table: TableData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicsStep {
    pub run_id: i64,
    pub model: String,
    pub step: i64,
    pub accuracy: f64,
    pub entropy: Option<f64>,
    pub entropy_correct: Option<f64>,
    pub entropy_incorrect: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LawFit {
    pub a: f64,
    pub b: f64,
    pub ceiling: f64,
    pub r_squared: Option<f64>,
    pub points: usize,
    pub holds: bool,
}

// ---------- RFT data & advantage shaping ----------

pub use caplens_analysis::rft::RftStrategy;
pub use caplens_analysis::shaping::StdKind;

/// Every selection strategy of `analysis::rft`, in the order the page lists them.
pub const RFT_STRATEGIES: [RftStrategy; 5] = [
    RftStrategy::Rule,
    RftStrategy::Noisy,
    RftStrategy::Entropy,
    RftStrategy::Rbf,
    RftStrategy::NoisyRbf,
];

/// What a strategy keeps (paper-notes item 17).
pub fn strategy_description(s: RftStrategy) -> &'static str {
    match s {
        RftStrategy::Rule => "correct rollouts drawn at random (seeded)",
        RftStrategy::Noisy => {
            "5 % random incorrect rollouts (“noisy data”), the rest correct ones at random"
        }
        RftStrategy::Entropy => "the correct rollouts with the highest mean token entropy",
        RftStrategy::Rbf => "the correct rollouts with the highest mean RBF",
        RftStrategy::NoisyRbf => "5 % random incorrect rollouts plus the highest-RBF correct ones",
    }
}

/// Rollouts per preview page.
pub const RFT_PAGE_SIZE: usize = 20;
/// Default number of rollouts to select.
pub const RFT_DEFAULT_COUNT: usize = 1000;

/// The RFT page's state. Defaults (left out of the URL): the experiment's first run, strategy
/// `rule`, 1000 rollouts, seed 0, page 1, the first problem with mixed rewards, the paper's
/// shaping parameters (alpha 0.01; gamma 0.1, d 1, m 15, n -0.5 as printed) and the sample
/// standard deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RftRequest {
    pub run: Option<i64>,
    pub strategy: RftStrategy,
    pub count: usize,
    pub seed: u64,
    /// Preview page, from 1.
    pub page: usize,
    /// Problem key of the group whose advantages are shown.
    pub problem: Option<String>,
    /// Sample index of the rollout whose per-token advantages are charted.
    pub sample: Option<i64>,
    /// PPL shaping strength (eq. 11).
    pub alpha: f64,
    /// Position bonus (eq. 8): b(l) = gamma * sigmoid(d * m * (l - n)).
    pub gamma: f64,
    pub d: f64,
    pub m: f64,
    pub n: f64,
    pub std: StdKind,
    /// `key=value` pairs of the URL that were not valid and were replaced by defaults.
    pub invalid: Vec<String>,
}

impl Default for RftRequest {
    fn default() -> Self {
        let bonus = caplens_analysis::shaping::PositionBonus::paper_printed();
        Self {
            run: None,
            strategy: RftStrategy::Rule,
            count: RFT_DEFAULT_COUNT,
            seed: 0,
            page: 1,
            problem: None,
            sample: None,
            alpha: caplens_analysis::shaping::DEFAULT_PPL_ALPHA,
            gamma: bonus.gamma,
            d: bonus.d,
            m: bonus.m,
            n: bonus.n,
            std: StdKind::Sample,
            invalid: Vec::new(),
        }
    }
}

impl RftRequest {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut r = Self::default();
        let mut invalid = Vec::new();
        let mut parse = |key: &str, ok: &mut dyn FnMut(&str) -> bool| {
            if let Some(v) = get(key).filter(|v| !v.trim().is_empty()) {
                if !ok(v.trim()) {
                    invalid.push(format!("{key}={v}"));
                }
            }
        };
        // The view tabs carry `runs`; its first id picks the run when `run` is absent.
        let runs = get("runs").map(|s| parse_ids(&s)).unwrap_or_default();
        parse("run", &mut |v| v.parse().map(|x| r.run = Some(x)).is_ok());
        if r.run.is_none() {
            r.run = runs.first().copied();
        }
        parse("strategy", &mut |v| {
            v.parse().map(|s| r.strategy = s).is_ok()
        });
        parse("count", &mut |v| v.parse().map(|c| r.count = c).is_ok());
        parse("seed", &mut |v| v.parse().map(|s| r.seed = s).is_ok());
        parse("page", &mut |v| {
            v.parse::<usize>()
                .ok()
                .filter(|&p| p >= 1)
                .map(|p| r.page = p)
                .is_some()
        });
        r.problem = get("problem").filter(|p| !p.is_empty());
        parse("sample", &mut |v| {
            v.parse().map(|s| r.sample = Some(s)).is_ok()
        });
        let mut float = |key: &str, slot: &mut f64| {
            parse(key, &mut |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map(|x| *slot = x)
                    .is_some()
            })
        };
        float("alpha", &mut r.alpha);
        float("gamma", &mut r.gamma);
        float("d", &mut r.d);
        float("m", &mut r.m);
        float("n", &mut r.n);
        parse("std", &mut |v| match v {
            "sample" => {
                r.std = StdKind::Sample;
                true
            }
            "population" => {
                r.std = StdKind::Population;
                true
            }
            _ => false,
        });
        r.invalid = invalid;
        r
    }

    pub fn query(&self) -> Query {
        let d = Self::default();
        let num = |x: f64, default: f64| {
            if x == default {
                String::new()
            } else {
                x.to_string()
            }
        };
        Query::new()
            .set("run", self.run.map(|r| r.to_string()).unwrap_or_default())
            .set(
                "strategy",
                if self.strategy == d.strategy {
                    ""
                } else {
                    self.strategy.name()
                },
            )
            .set(
                "count",
                if self.count == d.count {
                    String::new()
                } else {
                    self.count.to_string()
                },
            )
            .set(
                "seed",
                if self.seed == d.seed {
                    String::new()
                } else {
                    self.seed.to_string()
                },
            )
            .set(
                "page",
                if self.page <= 1 {
                    String::new()
                } else {
                    self.page.to_string()
                },
            )
            .set("problem", self.problem.clone().unwrap_or_default())
            .set(
                "sample",
                self.sample.map(|s| s.to_string()).unwrap_or_default(),
            )
            .set("alpha", num(self.alpha, d.alpha))
            .set("gamma", num(self.gamma, d.gamma))
            .set("d", num(self.d, d.d))
            .set("m", num(self.m, d.m))
            .set("n", num(self.n, d.n))
            .set(
                "std",
                if self.std == StdKind::Population {
                    "population"
                } else {
                    ""
                },
            )
    }

    /// The query of the selection alone (what the JSON Lines export needs).
    pub fn selection_query(&self) -> Query {
        Query::new()
            .set("run", self.run.map(|r| r.to_string()).unwrap_or_default())
            .set("strategy", self.strategy.name())
            .set("count", self.count.to_string())
            .set("seed", self.seed.to_string())
    }

    pub fn position_bonus(&self) -> caplens_analysis::shaping::PositionBonus {
        caplens_analysis::shaping::PositionBonus {
            gamma: self.gamma,
            d: self.d,
            m: self.m,
            n: self.n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RftView {
    pub frame: ViewFrame,
    /// The request as shown: run and problem resolved, invalid values replaced.
    pub request: RftRequest,
    /// None when the experiment has no completed run.
    pub run: Option<RftRun>,
    pub counts: RftCounts,
    pub counts_table: TableData,
    /// The selected rollouts (one preview page), or why the strategy cannot select on this run.
    pub selection: Result<RftPreview, String>,
    /// `GET /export/experiments/{slug}/rft.jsonl?…`: the whole selection as JSON Lines.
    pub download_href: String,
    /// The problem in the URL is not in this run (the default problem is shown instead).
    pub problem_missing: Option<String>,
    /// None when the run has no problem with rollouts.
    pub group: Option<RftGroup>,
    pub bonus: RftBonus,
}

/// The chosen run and which per-rollout values it has (strategies and shaping need them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RftRun {
    pub choice: RunChoice,
    pub rollouts: u64,
    pub with_entropy: u64,
    pub with_rbf: u64,
    pub with_ppl: u64,
}

/// How the rule filters and the strategy thin out a run's rollouts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RftCounts {
    pub rollouts: u64,
    pub no_response: u64,
    pub no_boxed: u64,
    pub no_digit: u64,
    pub redundant: u64,
    pub kept_correct: u64,
    pub kept_incorrect: u64,
    pub selected_correct: u64,
    pub selected_incorrect: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RftPreview {
    pub selected: usize,
    pub page: usize,
    pub pages: usize,
    pub rows: Vec<RftPreviewRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RftPreviewRow {
    pub problem: String,
    pub sample: i64,
    pub correct: bool,
    /// The response cut after its first `\boxed{…}`: the training text. Untrusted.
    pub text: String,
    /// Characters removed by the cut.
    pub cut_chars: usize,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
}

/// One problem's GRPO group: advantages before and after shaping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RftGroup {
    /// The run's problems: (key, n, c), for the picker.
    pub problems: Vec<(String, u64, u64)>,
    pub problem: String,
    pub prompt: String,
    pub reference: String,
    /// Eq. 10 in words: mean and std of the rewards, or why every advantage is 0.
    pub summary: String,
    pub has_signal: bool,
    /// Why PPL shaping is not shown (no PPL in the run, some rollouts without one, …).
    pub ppl_note: Option<String>,
    pub rows: Vec<RftGroupRow>,
    pub table: TableData,
    /// The rollout whose per-token advantages are charted.
    pub sample: Option<i64>,
    pub tokens: Option<ChartSpec>,
    pub token_table: TableData,
    pub token_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RftGroupRow {
    pub sample: i64,
    pub correct: bool,
    pub tokens: Option<u64>,
    pub perplexity: Option<f64>,
    /// Eq. 7 weight w_i.
    pub weight: Option<f64>,
    /// Eq. 10 advantage A_i.
    pub advantage: f64,
    /// Eq. 11: A_i (1 - alpha w_i).
    pub ppl_advantage: Option<f64>,
    /// Eq. 12 at the first and last token.
    pub first_token: Option<f64>,
    pub last_token: Option<f64>,
}

/// The position-bonus curve (eq. 8) for the parameters in the URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RftBonus {
    pub chart: ChartSpec,
    pub at_start: f64,
    pub at_end: f64,
    /// The bonus hardly changes over the response (as with the printed n = -0.5).
    pub nearly_constant: bool,
    pub table: TableData,
}

#[cfg(test)]
mod rft_tests {
    use super::*;

    fn q(s: &'static str) -> impl Fn(&str) -> Option<String> {
        move |key| {
            s.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == key).then(|| v.to_string())
            })
        }
    }

    #[test]
    fn rft_request_round_trips_and_reports_bad_values() {
        let r = RftRequest::from_query(q("run=4&strategy=noisy+rbf&count=50&seed=9&page=3&problem=p7&sample=2&alpha=0.02&n=0.5&std=population"));
        assert_eq!(
            (r.run, r.strategy, r.count, r.seed, r.page),
            (Some(4), RftStrategy::NoisyRbf, 50, 9, 3)
        );
        assert_eq!(
            (r.problem.as_deref(), r.sample, r.alpha, r.n, r.std),
            (Some("p7"), Some(2), 0.02, 0.5, StdKind::Population)
        );
        assert_eq!(
            RftRequest::from_query(|k| r
                .query()
                .pairs()
                .iter()
                .find(|(x, _)| x == k)
                .map(|(_, v)| v.clone())),
            r
        );
        // Defaults stay out of the URL.
        assert_eq!(RftRequest::default().query().to_string(), "");
        let bad = RftRequest::from_query(q("strategy=best&alpha=NaN&page=0&gamma=x&runs=7,8"));
        assert_eq!(
            bad.invalid,
            vec!["strategy=best", "page=0", "alpha=NaN", "gamma=x"]
        );
        assert_eq!(
            (bad.strategy, bad.alpha, bad.page, bad.run),
            (RftStrategy::Rule, 0.01, 1, Some(7))
        );
        assert_eq!(
            RftRequest::default().selection_query().to_string(),
            "strategy=rule&count=1000&seed=0"
        );
    }
}

// ---------- token statistics ----------

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenStatsRequest {
    pub runs: Vec<i64>,
}

impl TokenStatsRequest {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            runs: get("runs").map(|s| parse_ids(&s)).unwrap_or_default(),
        }
    }
    pub fn query(&self) -> Query {
        Query::new().set("runs", join_ids(&self.runs))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenStatsView {
    pub frame: ViewFrame,
    /// Per selected run: how its token entropies are known ("exact", "top-20 lower bound", none).
    pub sources: Vec<(String, String)>,
    /// Entropy by relative position, correct vs incorrect (fig. 6a).
    pub position: Option<ChartSpec>,
    /// Share of rollouts per PPL bin (fig. 5a).
    pub ppl: Option<ChartSpec>,
    /// Mean |I_t| by relative position (fig. 6b), when intervention data exists.
    pub impact: Option<ChartSpec>,
    pub tables: Vec<(String, TableData)>,
}
