//! View models of the experiment analysis pages (overview, pass@k, unsolvable, compare) and the
//! requests that select them. A request is parsed from, and written back to, the page's query
//! string ([`crate::urlstate`]): the URL is the whole view state. The server builds the views
//! (`server/src/views.rs`) from stored aggregates; pages only present them.

use serde::{Deserialize, Serialize};

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
}

impl PasskRequest {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            runs: get("runs").map(|s| parse_ids(&s)).unwrap_or_default(),
            tag: get("tag").filter(|t| !t.is_empty()),
            band: get("band").map(|b| b != "0").unwrap_or(true),
        }
    }
    pub fn query(&self) -> Query {
        Query::new()
            .set("runs", join_ids(&self.runs))
            .set("tag", self.tag.clone().unwrap_or_default())
            .set("band", if self.band { "" } else { "0" })
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
}

impl UnsolvableRequest {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            runs: get("runs").map(|s| parse_ids(&s)).unwrap_or_default(),
            k: get("k").and_then(|k| k.parse().ok()).filter(|&k: &u64| k > 0),
            region: get("region").map(|s| parse_ids(&s)).unwrap_or_default(),
        }
    }
    pub fn query(&self) -> Query {
        Query::new()
            .set("runs", join_ids(&self.runs))
            .set("k", self.k.map(|k| k.to_string()).unwrap_or_default())
            .set("region", join_ids(&self.region))
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

// ---------- compare ----------

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CompareRequest {
    pub runs: Vec<i64>,
}

impl CompareRequest {
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Self {
        Self { runs: get("runs").map(|s| parse_ids(&s)).unwrap_or_default() }
    }
    pub fn query(&self) -> Query {
        Query::new().set("runs", join_ids(&self.runs))
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
        assert_eq!(r, PasskRequest { runs: vec![3, 1], tag: Some("aime".into()), band: false });
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
        Self { dataset: get("dataset").filter(|d| !d.is_empty()) }
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
