//! Links from the pages' terms and paper references ("eq. 2", "fig. 6a", RBF, PPL ...) to their
//! definitions on the glossary page (`/glossary`, made from docs/metrics.md and
//! docs/token-metrics.md). The anchors are the docs' headings; a server test checks that each
//! one exists, so renaming a heading cannot leave a dead link.

use leptos::prelude::*;

/// A defined term: one section of the glossary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    PassAtK,
    MajorityAtK,
    Unsolvable,
    AnswerDiversity,
    QualityChecks,
    RftSelection,
    TokenEntropy,
    BranchingFactor,
    Perplexity,
    GradientNorm,
    RelativePosition,
    TokenCategories,
    Shaping,
    EntropyReward,
    Transition,
    Intervention,
}

impl Term {
    pub const ALL: [Term; 16] = [
        Term::PassAtK,
        Term::MajorityAtK,
        Term::Unsolvable,
        Term::AnswerDiversity,
        Term::QualityChecks,
        Term::RftSelection,
        Term::TokenEntropy,
        Term::BranchingFactor,
        Term::Perplexity,
        Term::GradientNorm,
        Term::RelativePosition,
        Term::TokenCategories,
        Term::Shaping,
        Term::EntropyReward,
        Term::Transition,
        Term::Intervention,
    ];

    /// The glossary anchor (GitHub's heading rule applied to the docs' headings).
    pub fn anchor(self) -> &'static str {
        match self {
            Term::PassAtK => "passk-item-1-eq-2-passk",
            Term::MajorityAtK => "avgk-majk-item-18-majority",
            Term::Unsolvable => "unsolvable-sets-item-2-sets",
            Term::AnswerDiversity => "answer-diversity-item-3-diversity",
            Term::QualityChecks => "quality-checks-items-9-17-quality",
            Term::RftSelection => "rft-data-selection-item-17-rft",
            Term::TokenEntropy => "token-entropy-item-4-eq-3",
            Term::BranchingFactor => "rollout-branching-factor-item-5-sec-22",
            Term::Perplexity => "perplexity-item-13",
            Term::GradientNorm => "gradient-norm-proxy-item-10-eq-4-appendix-a1",
            Term::RelativePosition => "relative-position-and-entropy-by-position-item-14",
            Term::TokenCategories => "token-categories-item-12-tables-1-and-5",
            Term::Shaping => "grpo-advantages-and-shaping-items-15-16",
            Term::EntropyReward => "entropy-reward-law-item-7",
            Term::Transition => "rising---plateau-transition-item-8",
            Term::Intervention => "intervention-impact-item-11-eqs-5-6",
        }
    }

    /// The glossary entry's address.
    pub fn href(self) -> String {
        format!("/glossary#{}", self.anchor())
    }
}

/// The glossary entry that defines a heatmap metric (the log-probability needs none).
pub fn term_of_metric(metric: crate::heat::Metric) -> Option<Term> {
    use crate::heat::Metric;
    match metric {
        Metric::Entropy => Some(Term::TokenEntropy),
        Metric::Rbf => Some(Term::BranchingFactor),
        Metric::Logprob => None,
        Metric::Impact => Some(Term::Intervention),
        Metric::GradNorm => Some(Term::GradientNorm),
    }
}

/// `children` (a term or "eq. 2") as a link to `term`'s definition.
#[component]
pub fn Gloss(term: Term, children: Children) -> impl IntoView {
    view! {
        <a class="gloss" href=term.href() title="Definition in the glossary">{children()}</a>
    }
}

/// A small "definition" link after a heading or caption.
#[component]
pub fn DefinitionLink(term: Term) -> impl IntoView {
    view! {
        <a class="definition-link" href=term.href() title="Definition in the glossary">"definition"</a>
    }
}
