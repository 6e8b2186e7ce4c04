//! Team review as pages and API see it (issue 15): comment threads, review labels, verdict
//! overrides, the review queue, share links, the inbox. Shared by server and browser.

use serde::{Deserialize, Serialize};

/// The labels every project has; a project admin adds more (name, colour).
pub const BUILTIN_LABELS: [(&str, &str); 5] = [
    ("real failure", "#D55E00"),
    ("verifier wrong", "#0072B2"),
    ("reference wrong", "#CC79A7"),
    ("ambiguous problem", "#E69F00"),
    ("needs tool use", "#009E73"),
];

/// What a thread is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommentTarget {
    Experiment,
    Problem {
        problem: i64,
    },
    Rollout {
        rollout: i64,
    },
    /// One token position (0-based) of a rollout's trace.
    Token {
        rollout: i64,
        index: i64,
    },
}

impl CommentTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            CommentTarget::Experiment => "experiment",
            CommentTarget::Problem { .. } => "problem",
            CommentTarget::Rollout { .. } => "rollout",
            CommentTarget::Token { .. } => "token",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentView {
    pub id: i64,
    pub author: String,
    /// The author's markdown (for editing).
    pub body: String,
    /// The sanitised HTML rendering (server-side; no raw HTML, inert links, MathML).
    pub html: String,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub deleted: bool,
    /// The viewer wrote it (may edit and delete it).
    pub mine: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadView {
    pub id: i64,
    pub experiment: String,
    pub target: CommentTarget,
    /// Problem the thread is under (problem, rollout and token threads).
    pub problem_id: Option<i64>,
    /// `dataset/key` of that problem.
    pub problem_key: Option<String>,
    /// A short text naming the target ("token 17 of rollout 12").
    pub target_label: String,
    /// Where the target is shown.
    pub link: String,
    pub resolved: bool,
    pub resolved_by: Option<String>,
    pub created_at: String,
    pub last_activity: String,
    pub comments: Vec<CommentView>,
}

/// A thread list with the filters of the Discussion tab.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThreadFilter {
    pub unresolved: bool,
    pub mentions_me: bool,
    /// Only threads on problems with this label.
    pub label: Option<String>,
    /// Only threads on this target (and, for a problem, nothing below it).
    pub target: Option<CommentTarget>,
    /// Every thread under this problem (its own, its rollouts', their tokens').
    pub problem: Option<i64>,
    /// The threads of this rollout and of its tokens.
    #[serde(default)]
    pub rollout: Option<i64>,
}

/// A label in use on a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemLabel {
    pub label: String,
    pub colour: String,
    pub set_by: String,
    pub set_at: String,
}

/// A label one may put on a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelDef {
    pub name: String,
    pub colour: String,
    pub builtin: bool,
}

/// A reviewer's verdict on a rollout or an answer of a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideRow {
    pub id: i64,
    pub experiment: String,
    pub problem_id: i64,
    pub problem: String,
    pub rollout: Option<i64>,
    pub answer: Option<String>,
    /// `correct` or `wrong`.
    pub verdict: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: String,
}

/// The review state of one problem in an experiment (problem page panel).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProblemReview {
    pub experiment: String,
    pub labels: Vec<ProblemLabel>,
    pub available_labels: Vec<LabelDef>,
    pub overrides: Vec<OverrideRow>,
    pub assignee: Option<String>,
    /// May the viewer label, override, comment.
    pub can_review: bool,
    pub can_comment: bool,
    /// Reviewers' judgements of this problem the viewer may see (issue 27): all of them, or in a
    /// blind project (to a non-editor) the viewer's own.
    #[serde(default)]
    pub judgements: Vec<JudgementRow>,
    /// Judging is blind here for the viewer.
    #[serde(default)]
    pub blind: bool,
    /// The viewer's name (their own judgements carry it).
    #[serde(default)]
    pub me: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub problem_id: i64,
    pub key: String,
    /// Why it is in the queue, in words.
    pub reasons: Vec<String>,
    /// `newly-unsolvable`, `popular-wrong-answer`, `unverifiable`, `verdicts-disagree`,
    /// `not-maths`, `reviewers-disagree`.
    pub kinds: Vec<String>,
    /// The problem page with the comparison preselected.
    pub link: String,
    /// The problem's prompt (LaTeX as written; the page renders it).
    #[serde(default)]
    pub prompt: String,
    pub reviewed: bool,
    pub labels: Vec<ProblemLabel>,
    pub overrides: u64,
    pub comments: u64,
    pub assignee: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewQueueView {
    pub experiment: String,
    pub experiment_name: String,
    pub entries: Vec<QueueEntry>,
    pub reviewed: u64,
    pub total: u64,
    /// Members one may assign entries to (user names).
    pub members: Vec<String>,
    pub can_review: bool,
    /// The share of a run's rollouts a wrong answer needs to count as a possible reference error.
    pub min_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLinkRow {
    pub id: i64,
    pub path: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub opened: i64,
    pub last_opened_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

/// A newly made share link: the URL is shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewShareLink {
    pub id: i64,
    pub url: String,
    pub expires_at: Option<String>,
}

/// The experiment settings page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSettings {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub project: Option<String>,
    pub share_links: Vec<ShareLinkRow>,
    /// Projects the experiment may move to (slugs the viewer administers).
    pub projects: Vec<String>,
    pub can_edit: bool,
    pub can_administer: bool,
}

/// A thread that concerns the viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// `mention` or `reply`.
    pub why: String,
    pub thread: ThreadView,
}

/// Comment counts per problem and per rollout (badges).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CommentCounts {
    pub by_problem: Vec<(i64, u64)>,
    pub by_rollout: Vec<(i64, u64)>,
}

impl CommentCounts {
    pub fn problem(&self, id: i64) -> u64 {
        self.by_problem
            .iter()
            .find(|(p, _)| *p == id)
            .map_or(0, |(_, n)| *n)
    }
    pub fn rollout(&self, id: i64) -> u64 {
        self.by_rollout
            .iter()
            .find(|(r, _)| *r == id)
            .map_or(0, |(_, n)| *n)
    }
}

/// An override as the pages ask for it (the REST body names the problem by key instead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideInput {
    pub problem_id: i64,
    /// A normalised final answer (an answer cluster), or…
    pub answer: Option<String>,
    /// …one rollout.
    pub rollout: Option<i64>,
    /// `correct` or `wrong`.
    pub verdict: String,
    pub reason: String,
}

/// Every review operation the pages perform, through one server function (`api::review`) and
/// one `DataSource` method; the server authorises each (`server/src/review`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ReviewOp {
    ProblemReview {
        slug: String,
        problem: i64,
    },
    SetLabels {
        slug: String,
        problem: i64,
        labels: Vec<String>,
    },
    AddOverride {
        slug: String,
        input: OverrideInput,
    },
    DeleteOverride {
        id: i64,
    },
    /// The caller's own judgement (issue 27); `input.reason` is unused.
    Judge {
        slug: String,
        input: OverrideInput,
    },
    /// The judgements of a problem the caller may see.
    Judgements {
        slug: String,
        problem: i64,
    },
    Agreement {
        slug: String,
    },
    Threads {
        slug: String,
        filter: ThreadFilter,
    },
    PostComment {
        slug: String,
        target: CommentTarget,
        body: String,
    },
    Reply {
        thread: i64,
        body: String,
    },
    EditComment {
        id: i64,
        body: String,
    },
    DeleteComment {
        id: i64,
    },
    Resolve {
        thread: i64,
        resolved: bool,
    },
    Inbox,
    CommentCounts {
        slug: String,
    },
    DiscussionStamp {
        slug: String,
    },
    Queue {
        slug: String,
        min_share: Option<f64>,
        mine: bool,
    },
    Assign {
        slug: String,
        problem: i64,
        user: Option<String>,
    },
    Settings {
        slug: String,
    },
    UpdateExperiment {
        slug: String,
        name: String,
        description: String,
    },
    MoveExperiment {
        slug: String,
        project: String,
    },
    DeleteExperiment {
        slug: String,
        confirm: String,
    },
    CreateShareLink {
        slug: String,
        path: String,
        expires_in: Option<u64>,
    },
    RevokeShareLink {
        id: i64,
    },
    /// The experiments a rollout is in (its page's discussion needs one).
    RolloutExperiments {
        rollout: i64,
    },
    /// A project's review settings: its labels, whether viewers may comment.
    ProjectReview {
        project: String,
    },
    AddLabel {
        project: String,
        name: String,
        colour: String,
    },
    SetViewersComment {
        project: String,
        allowed: bool,
    },
    SetEngineAdmins {
        project: String,
        allowed: bool,
    },
}

/// A project's review settings (the project page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectReviewSettings {
    pub labels: Vec<LabelDef>,
    pub viewers_comment: bool,
    pub can_administer: bool,
    /// The project's admins may add and change its engines (else only site admins).
    #[serde(default)]
    pub engine_admins: bool,
    /// The caller may change that (site admins).
    #[serde(default)]
    pub can_set_engine_admins: bool,
}

/// What a [`ReviewOp`] answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "value", rename_all = "snake_case")]
pub enum ReviewReply {
    Done,
    /// The experiment or problem is not there (or hidden).
    NotFound,
    ProblemReview(ProblemReview),
    Override(OverrideRow),
    Thread(ThreadView),
    Threads(Vec<ThreadView>),
    Inbox(Vec<InboxEntry>),
    CommentCounts(CommentCounts),
    Stamp(String),
    Queue(ReviewQueueView),
    Settings(ExperimentSettings),
    ShareLink(NewShareLink),
    Experiments(Vec<String>),
    ProjectReview(ProjectReviewSettings),
    Judgements(Vec<JudgementRow>),
    Agreement(AgreementView),
}

/// One reviewer's independent judgement on an answer cluster or a rollout (issue 27).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgementRow {
    pub id: i64,
    pub problem_id: i64,
    /// `dataset/key`.
    pub problem: String,
    pub rollout: Option<i64>,
    /// The normalised final answer judged.
    pub answer: Option<String>,
    pub reviewer: String,
    /// `correct` or `wrong`.
    pub verdict: String,
    pub created_at: String,
}

impl JudgementRow {
    /// The target, as one string: `problem|answer:TEXT` or `problem|rollout:ID`.
    pub fn item(&self) -> String {
        match (&self.answer, self.rollout) {
            (Some(a), _) => format!("{}|answer:{a}", self.problem),
            (None, Some(r)) => format!("{}|rollout:{r}", self.problem),
            (None, None) => self.problem.clone(),
        }
    }
}

/// The agreement page and `GET /api/v1/experiments/{slug}/agreement` (issue 27).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgreementView {
    pub experiment: String,
    pub experiment_name: String,
    /// Judging is blind in the experiment's project: who said what stays hidden.
    pub blind: bool,
    pub agreement: caplens_analysis::agreement::Agreement,
    /// Judgements recorded, and reviewers who recorded any.
    pub judgements: u64,
    pub reviewers: u64,
    /// Each disagreement with its counts (and, when not blind, who said what).
    pub disagreements: Vec<Disagreement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disagreement {
    pub problem_id: i64,
    pub problem: String,
    pub rollout: Option<i64>,
    pub answer: Option<String>,
    pub correct: u64,
    pub wrong: u64,
    /// (reviewer, verdict); empty when judging is blind.
    pub judgements: Vec<(String, String)>,
    /// An editor's verdict override decides it.
    pub decided: bool,
}
