//! View models: what pages show, as sent from server to browser (serde on both sides).

use caplens_analysis::verdicts::{VerdictSource, VerdictTally};
use serde::{Deserialize, Serialize};

/// One experiment in the experiments list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSummary {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub is_demo: bool,
    pub run_count: i64,
    pub model_count: i64,
    pub created_at: String,
    /// The project it belongs to (slug).
    #[serde(default)]
    pub project: Option<String>,
}

/// An experiment with its runs, runs ordered by model lineage (roots first, children after
/// their parent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentDetail {
    pub summary: ExperimentSummary,
    pub runs: Vec<RunRow>,
}

/// One evaluation run with its model and headline numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub id: i64,
    pub label: String,
    pub model: String,
    pub stage: String,
    pub parent_model: Option<String>,
    pub training_step: Option<i64>,
    pub dataset: String,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
    pub n_per_problem: Option<i64>,
    pub status: String,
    pub origin: String,
    pub created_at: String,
    /// Problems with at least one rollout.
    pub problems: i64,
    pub rollouts: i64,
    /// Mean over problems of c/n (unbiased pass@1), when the run has rollouts.
    pub pass_at_1: Option<f64>,
    /// Generations from the lineage root to the run's model (base 0, sft 1, rl 2, ...).
    pub lineage_depth: u32,
    /// How the run was graded: the file's verdicts and caplens' side by side.
    #[serde(default)]
    pub verdicts: RunVerdicts,
}

/// How a run was graded (issue 13): whose verdicts it shows by default, how often the file's
/// verdicts and caplens' verifier agree, pass@1 under each, and what the file said about its run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunVerdicts {
    pub default: VerdictSource,
    /// `None` for runs stored before verdicts were kept apart (and the demo).
    pub tally: Option<VerdictTally>,
    pub pass_at_1_file: Option<f64>,
    pub pass_at_1_caplens: Option<f64>,
    /// The tool that wrote the file (`inspect_ai 0.3.285`).
    pub tool: Option<String>,
    /// How the tool's run ended when not normally (`cancelled`, `error`).
    pub tool_status: Option<String>,
    /// What the file's verdicts are (`lm-eval exact_match`).
    pub verdict_name: Option<String>,
}

/// One model with its place in the lineage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRow {
    pub id: i64,
    pub name: String,
    pub family: String,
    pub stage: String,
    pub parent_id: Option<i64>,
    pub training_step: Option<i64>,
    pub notes: String,
    pub run_count: i64,
}

/// One dataset with its size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub source: String,
    pub problem_count: i64,
    pub created_at: String,
}

/// A model lineage as a forest: each node with its children, for the models page.
#[derive(Debug, Clone, PartialEq)]
pub struct LineageNode {
    pub model: ModelRow,
    pub children: Vec<LineageNode>,
}

/// Builds the lineage forest from a flat model list. Models whose parent is unknown are roots;
/// a parent cycle (which the server never writes) cannot loop: each model is placed once.
pub fn lineage_forest(models: &[ModelRow]) -> Vec<LineageNode> {
    use std::collections::{HashMap, HashSet};
    let ids: HashSet<i64> = models.iter().map(|m| m.id).collect();
    let mut children: HashMap<i64, Vec<&ModelRow>> = HashMap::new();
    let mut roots = Vec::new();
    for m in models {
        match m.parent_id.filter(|p| ids.contains(p) && *p != m.id) {
            Some(p) => children.entry(p).or_default().push(m),
            None => roots.push(m),
        }
    }
    let mut placed = HashSet::new();
    fn build<'a>(
        m: &'a ModelRow,
        children: &HashMap<i64, Vec<&'a ModelRow>>,
        placed: &mut HashSet<i64>,
    ) -> LineageNode {
        placed.insert(m.id);
        let kids = children
            .get(&m.id)
            .map(|v| {
                v.iter()
                    .filter(|c| !placed.contains(&c.id))
                    .copied()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        LineageNode {
            model: m.clone(),
            children: kids
                .into_iter()
                .map(|c| build(c, children, placed))
                .collect(),
        }
    }
    let mut forest: Vec<LineageNode> = roots
        .into_iter()
        .map(|r| build(r, &children, &mut placed))
        .collect();
    // Models only reachable through a cycle become roots of their own.
    for m in models {
        if !placed.contains(&m.id) {
            forest.push(build(m, &children, &mut placed));
        }
    }
    forest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: i64, parent: Option<i64>) -> ModelRow {
        ModelRow {
            id,
            name: format!("m{id}"),
            family: String::new(),
            stage: "base".into(),
            parent_id: parent,
            training_step: None,
            notes: String::new(),
            run_count: 0,
        }
    }

    #[test]
    fn lineage_places_children_under_parents() {
        let forest = lineage_forest(&[model(3, Some(2)), model(1, None), model(2, Some(1))]);
        assert_eq!(forest.len(), 1);
        assert_eq!(forest[0].model.id, 1);
        assert_eq!(forest[0].children[0].model.id, 2);
        assert_eq!(forest[0].children[0].children[0].model.id, 3);
    }

    #[test]
    fn lineage_survives_cycles_and_unknown_parents() {
        let forest = lineage_forest(&[model(1, Some(2)), model(2, Some(1)), model(3, Some(99))]);
        let mut count = 0;
        fn walk(n: &LineageNode, count: &mut usize) {
            *count += 1;
            n.children.iter().for_each(|c| walk(c, count));
        }
        forest.iter().for_each(|n| walk(n, &mut count));
        assert_eq!(count, 3, "every model placed exactly once");
    }
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenRow {
    pub id: i64,
    pub name: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The user it acts for (`None`: made before accounts existed; works in local mode only).
    pub user: Option<String>,
    /// The project it may act in.
    pub project: Option<String>,
    /// `read` or `write`.
    pub scope: String,
    pub expires_at: Option<String>,
}

/// A token just created: the only time its secret is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: ApiTokenRow,
    pub secret: String,
}

/// A format caplens imports, as the upload page offers it (from the server's registry of
/// importers; `GET /api/v1/formats` is the same list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportFormat {
    /// The value of `format=` / `--format`.
    pub name: String,
    /// What it is, for people.
    pub title: String,
}

/// A dataset's problem index (`/datasets/{id}`, `GET /api/v1/datasets/{id}/problems`): one page
/// of its problems in file order, those whose prompt or key holds every term of `q` when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetProblemsView {
    pub dataset: DatasetRow,
    pub q: Option<String>,
    /// Problems that match (before paging).
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
    pub problems: Vec<DatasetProblemRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetProblemRow {
    pub id: i64,
    /// The problem's id in its dataset ("aime24-7").
    pub key: String,
    pub prompt: String,
    pub reference: String,
}

/// Problems a dataset index page shows by default, and at most.
pub const DATASET_PROBLEMS_PER_PAGE: u64 = 50;
pub const MAX_DATASET_PROBLEMS_PER_PAGE: u64 = 500;

/// One of caplens' documents as the app serves it (`/docs/{name}`, and the glossary built from
/// the metric definitions): HTML written by the server's allow-list markdown writer from our own
/// docs/*.md, with its sections for a table of contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentView {
    /// `api`, `formats/native`, `glossary`.
    pub name: String,
    pub title: String,
    pub html: String,
    pub sections: Vec<DocumentSection>,
}

/// A heading of a document: the anchor it has in the page, its level (2 = a section) and text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentSection {
    pub anchor: String,
    pub level: u8,
    pub title: String,
}

/// The part of an import's report (`GET /api/v1/imports/{id}`) the pages show. Unknown fields
/// of the report are ignored, so this is also what the browser parses while following one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImportView {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub files: Vec<ImportFileView>,
    pub experiment: Option<String>,
    pub bytes_total: u64,
    pub bytes_read: u64,
    pub rows_read: u64,
    pub rows_stored: u64,
    pub rows_rejected: u64,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub runs: Vec<ImportedRunView>,
    /// What the import stored but warns about (uneven sample counts).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// How the stored rollouts were graded (absent in reports of older versions).
    #[serde(default)]
    pub verdicts: Option<VerdictTally>,
    pub message: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImportFileView {
    pub name: String,
    pub bytes: u64,
    pub format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImportedRunView {
    pub id: i64,
    pub model: String,
    pub dataset: String,
    pub problems: u64,
    pub rollouts: u64,
    pub pass_at_1: Option<f64>,
    #[serde(default)]
    pub pass_at_1_file: Option<f64>,
    #[serde(default)]
    pub pass_at_1_caplens: Option<f64>,
    #[serde(default)]
    pub default_verdicts: VerdictSource,
    /// What the file said about its run (`status`: how the tool's run ended).
    #[serde(default)]
    pub source: ImportedSourceView,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImportedSourceView {
    pub tool: Option<String>,
    pub status: Option<String>,
}

/// How rollouts were graded, in one line (import reports in the browser and the CLI).
pub fn verdict_tally_text(t: &VerdictTally) -> String {
    let mut parts = vec![
        format!("{} by the file's own verdicts", t.graded_by_file),
        format!("{} by caplens' verifier", t.graded_by_caplens),
    ];
    if t.unverifiable > 0 {
        parts.push(format!("{} unverifiable (counted wrong)", t.unverifiable));
    }
    if t.no_answer > 0 {
        parts.push(format!(
            "{} with no answer found (counted wrong)",
            t.no_answer
        ));
    }
    if t.ungraded > 0 {
        parts.push(format!("{} graded by neither", t.ungraded));
    }
    let mut line = parts.join(", ");
    if t.agree + t.disagree > 0 {
        line.push_str(&format!(
            "; where both graded, they agree on {} and differ on {}",
            t.agree, t.disagree
        ));
    }
    line
}

// ---------------------------------------------------------------------------------------------
// Problem page and rollout page (issue 6, pages 5 and 6).

/// One problem with its per-run numbers (from `run_problem_stats`, never from rollouts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemDetail {
    pub id: i64,
    pub key: String,
    pub dataset: String,
    pub prompt: String,
    pub reference_answer: String,
    pub tags: Vec<String>,
    /// Runs with this problem, in model lineage order (restricted to `runs=` when given).
    pub runs: Vec<ProblemRunStats>,
    /// Run ids asked for (`runs=`) that do not exist or have no rollouts of this problem.
    pub missing_runs: Vec<i64>,
    /// The reviewers' verdict overrides of the experiment the problem is opened in, and
    /// whether the numbers, answer clusters and rollout marks include them (issue 27).
    #[serde(default)]
    pub review: Option<ProblemReviewApplied>,
}

/// How an experiment's verdict overrides entered a problem page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemReviewApplied {
    pub experiment: String,
    /// The numbers include the overrides (`reviewed=0` leaves them out).
    pub reviewed: bool,
    /// Overrides on this problem in the experiment.
    pub overrides: u64,
    /// Rollouts of this problem (in the experiment's runs) whose verdict they change.
    pub changed_rollouts: u64,
}

/// One run's numbers on one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemRunStats {
    pub run_id: i64,
    pub label: String,
    pub model: String,
    pub stage: String,
    pub lineage_depth: u32,
    pub n: i64,
    /// Correct under the run's default verdicts.
    pub c: i64,
    /// Correct under the file's and under caplens' verdicts (`None`: stored before verdicts
    /// were kept apart, the same as `c`).
    #[serde(default)]
    pub c_file: Option<i64>,
    #[serde(default)]
    pub c_caplens: Option<i64>,
    /// (k, pass@k) at k = 1, 2, 4, ... up to n (`analysis::passk::pass_at_k`).
    pub pass_at: Vec<(u64, f64)>,
    /// Distinct normalised final answers, most frequent first.
    pub answers: Vec<AnswerCluster>,
}

/// One distinct normalised final answer and how many rollouts gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerCluster {
    pub answer: String,
    pub count: i64,
    /// The verifier says it equals the reference answer.
    pub correct: bool,
    /// A reviewer's verdict on this answer in the experiment the page is opened in (issue 27).
    #[serde(default)]
    pub reviewed: Option<bool>,
}

/// Which rollouts of a problem to list (the problem page's query string).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RolloutListQuery {
    /// Restrict to these runs (empty: all).
    pub runs: Vec<i64>,
    /// The run to list; when absent or not among the problem's runs, the first run in lineage
    /// order.
    pub run: Option<i64>,
    /// 1-based.
    pub page: i64,
    /// Only rollouts whose normalised final answer equals this.
    pub answer: Option<String>,
    /// Expanded rollouts: their responses come with the page.
    pub open: Vec<i64>,
    /// The experiment whose verdict overrides mark the rollouts (issue 27).
    #[serde(default)]
    pub experiment: Option<String>,
    /// Leave the overrides out (`reviewed=0`).
    #[serde(default)]
    pub unreviewed: bool,
}

/// One page of a run's rollouts of one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutList {
    /// The run listed; `None` when the problem has no run (within the filter).
    pub run_id: Option<i64>,
    /// Rollouts matching the filter, over all pages.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    pub items: Vec<RolloutRow>,
    /// Responses of the expanded rollouts on this page.
    pub responses: Vec<(i64, Option<String>)>,
}

/// A rollout as listed (its response comes separately: responses can be long).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRow {
    pub id: i64,
    pub sample_index: i64,
    /// Under the run's default verdicts, or the reviewers' verdict when an override of the
    /// experiment the page is opened in changes it (`overridden`).
    pub correct: bool,
    /// A reviewer's override decided `correct` (issue 27).
    #[serde(default)]
    pub overridden: bool,
    /// The file's verdict, when it gave one.
    #[serde(default)]
    pub file_correct: Option<bool>,
    /// caplens' verifier (`analysis::verdicts::CaplensVerdict`), when stored.
    #[serde(default)]
    pub caplens_verdict: Option<caplens_analysis::verdicts::CaplensVerdict>,
    pub answer: Option<String>,
    pub token_count: Option<i64>,
    pub finish_reason: Option<String>,
    /// Names of the quality flags set (`storage::catalog::quality_flags`).
    pub quality_flags: Vec<String>,
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
    pub has_trace: bool,
}

/// The rollout page: the rollout, its run and problem, and (with a trace) the token heatmap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutView {
    pub row: RolloutRow,
    pub run_id: i64,
    pub model: String,
    pub stage: String,
    pub problem_id: i64,
    pub problem_key: String,
    pub dataset: String,
    pub response: Option<String>,
    pub heatmap: Option<crate::heat::TokenHeatmap>,
    /// Why the trace could not be shown (missing blob, corrupt bytes).
    pub trace_error: Option<String>,
}

/// A role in a project, weakest first: viewers read, editors also upload, start and cancel
/// evaluations, queue interventions and edit experiments; admins also manage members, tokens and
/// deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A user account as listed (never its password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// Site admin: manages users and projects.
    pub is_admin: bool,
    pub disabled: bool,
    /// Signs in through the OpenID provider.
    pub single_sign_on: bool,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

/// A project: experiments, datasets, engines and evaluation runs belong to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRow {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    /// Readable by every signed-in user.
    pub open_to_all: bool,
    /// Its viewers may comment and label (issue 15).
    #[serde(default)]
    pub viewers_comment: bool,
    /// Its admins may add and change its engines (otherwise only site admins may).
    #[serde(default)]
    pub engine_admins: bool,
}

/// A member of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRow {
    pub user_id: i64,
    pub user: String,
    pub role: Role,
    pub added_at: String,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub project: Option<String>,
    /// `ok` or `refused`.
    pub outcome: String,
    pub detail: String,
    pub address: Option<String>,
}

/// Who is looking, as the pages need it: the header (mode, name, sign out) and which controls
/// to show. The server decides every request again; this only hides what would be refused.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SessionView {
    /// No accounts: one implicit local user with every right.
    pub local_mode: bool,
    /// The signed-in user's name (`None` in local mode and when signed out).
    pub user: Option<String>,
    pub site_admin: bool,
    /// Projects the user may see, with their role (`None`: readable because open to all).
    pub projects: Vec<ProjectAccess>,
    /// Single sign-on is configured (the sign-in page shows its button).
    pub single_sign_on: bool,
    /// Password sign-in is possible.
    pub passwords: bool,
    /// A share-link visitor: the one experiment (slug) the link opens, read-only (issue 27).
    #[serde(default)]
    pub shared_experiment: Option<String>,
}

impl SessionView {
    /// Reads only: a share-link visitor or someone not signed in. Pages offer such a reader no
    /// form (the server would refuse it anyway).
    pub fn read_only(&self) -> bool {
        self.shared_experiment.is_some() || (!self.local_mode && self.user.is_none())
    }
    /// May upload, start evaluations etc. in at least one project.
    pub fn can_edit_somewhere(&self) -> bool {
        self.local_mode
            || self.site_admin
            || self.projects.iter().any(|p| p.role >= Some(Role::Editor))
    }
    /// May edit in this project.
    pub fn can_edit(&self, project: &str) -> bool {
        self.local_mode
            || self.site_admin
            || self
                .projects
                .iter()
                .any(|p| p.slug == project && p.role >= Some(Role::Editor))
    }
    /// Administers at least one project (members, tokens).
    pub fn administers_somewhere(&self) -> bool {
        self.local_mode
            || self.site_admin
            || self.projects.iter().any(|p| p.role == Some(Role::Admin))
    }
}

/// A project as the signed-in user sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectAccess {
    pub slug: String,
    pub name: String,
    pub role: Option<Role>,
    pub open_to_all: bool,
}
