//! Answer extraction, normalisation and equivalence (the verifier).
//!
//! Every correctness figure in caplens rests on "was this rollout correct?". This module answers
//! it the way the trusted Python checkers do (Hendrycks MATH `is_equiv`, Qwen2.5-Math
//! `math_equal`, Hugging Face Math-Verify), written from their documented behaviour, with the
//! cases where they disagree decided by [`VerifierConfig`]. The full rules are in
//! `docs/verifier.md`; each submodule documents its part:
//! - `extract.rs` for [`extract_answer`] (boxed, then documented fallbacks, `</think>` preferred);
//! - `reference.rs` for [`reference_answer`] (the answer inside a reference: GSM8K `#### 72`,
//!   the last box of a MATH solution, a trailing "The answer is 18."), applied by [`verify`];
//! - `normalize.rs` for [`normalize_answer`] (canonical string, also used for answer diversity,
//!   majority vote and answer clusters);
//! - `equiv.rs` for [`verify`] (shapes, exact rationals, numeric tolerance, random-point checks)
//!   over `expr.rs` (a small bounded parser/evaluator; no CAS).
//!
//! Safety: every function is total on any `&str` and bounded in work. Inputs longer than
//! [`MAX_INPUT_BYTES`] are not analysed (only byte-identical inputs are `Equal`), canonical forms
//! longer than [`VerifierConfig::max_answer_len`] are not parsed, the parser has a depth bound so
//! recursion cannot overflow the stack, and overflow or undefined values give `Unverifiable`.

mod equiv;
mod expr;
mod extract;
pub(crate) use extract::braced;
mod normalize;
mod reference;

#[cfg(test)]
mod tests;

/// Raw answers longer than this (bytes) are not normalised or parsed by [`verify_with`].
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

/// How an answer was found in a response, in the order the rules are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractionRule {
    /// The last `\boxed{...}` (balanced braces).
    Boxed,
    /// The last `\boxed` in its space form, `\boxed 5$`: up to the next `$` or line end.
    BoxedSpace,
    /// The last `\fbox{...}`, used only when there is no `\boxed`.
    Fbox,
    /// Fallback: "final answer is $...$" (Minerva's prompt format).
    FinalAnswerIs,
    /// Fallback: "the answer is ..." (any "answer is").
    TheAnswerIs,
    /// Fallback: the last line starting with `Answer:` or `Final answer:`.
    AnswerLine,
    /// Fallback: the last number in the text.
    LastNumber,
    /// Last resort: a short response (one line, at most 100 chars and 8 words) with nothing else
    /// to extract is its own answer (`Yes`, `Paris`), trailing `.` / `!` dropped.
    WholeResponse,
}

impl ExtractionRule {
    /// The snake_case name used in serde, the CLI and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtractionRule::Boxed => "boxed",
            ExtractionRule::BoxedSpace => "boxed_space",
            ExtractionRule::Fbox => "fbox",
            ExtractionRule::FinalAnswerIs => "final_answer_is",
            ExtractionRule::TheAnswerIs => "the_answer_is",
            ExtractionRule::AnswerLine => "answer_line",
            ExtractionRule::LastNumber => "last_number",
            ExtractionRule::WholeResponse => "whole_response",
        }
    }

    /// True for the fallbacks (anything but a box), which users may want to see flagged.
    pub fn is_fallback(self) -> bool {
        !matches!(
            self,
            ExtractionRule::Boxed | ExtractionRule::BoxedSpace | ExtractionRule::Fbox
        )
    }
}

/// A final answer found in a response, with the rule that found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extracted {
    /// The answer as written (not normalised).
    pub answer: String,
    /// The rule that found it.
    pub rule: ExtractionRule,
    /// True when the answer came from the text after the last `</think>`.
    #[serde(default)]
    pub after_think: bool,
}

/// Outcome of comparing a predicted answer with a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Equal,
    Different,
    /// The check could not be completed within its bounds (hostile or unparseable input).
    Unverifiable,
}

impl Verdict {
    /// `equal`, `different`, `unverifiable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Equal => "equal",
            Verdict::Different => "different",
            Verdict::Unverifiable => "unverifiable",
        }
    }
}

/// How a percent sign is read when comparing numbers (the checkers disagree on `75` vs `0.75`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PercentPolicy {
    /// `%` is decoration: `75\%` = `75`, and `75\%` != `0.75` (Hendrycks: it deletes `\%`).
    IgnoreSign,
    /// Default. A side written with `%` may also stand for its hundredth: `75\%` = `75` =
    /// `0.75`-if-the-other-side-has-no-`%`; plain `75` != `0.75` (Math-Verify's percent handling).
    SignAware,
    /// Qwen2.5-Math `math_equal`: the prediction may equal ref, ref/100 or ref*100, sign or not.
    AnyScale,
}

/// Switches where reasonable teams differ. `Default` is caplens' documented policy
/// (docs/verifier.md, "Disagreement policy").
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VerifierConfig {
    /// Relative tolerance for numbers: equal when `|a-b| <= rel_tol * max(|a|,|b|)`.
    /// Default 1e-6 (Math-Verify rounds to 6 digits; Qwen uses 1e-4, which accepts `3.1416` for
    /// `\pi`; we prefer not to accept a rounded decimal for an exact answer).
    pub rel_tol: f64,
    /// Absolute tolerance, for values near zero. Default 1e-9.
    pub abs_tol: f64,
    /// Percent reading; default [`PercentPolicy::SignAware`].
    pub percent: PercentPolicy,
    /// `\frac{2}{4}` = `\frac{1}{2}`? Default true (Qwen, Math-Verify); false gives rllm's
    /// stricter reading where an unreduced fraction (or `\frac{4}{1}`) is wrong.
    pub unreduced_fractions_equal: bool,
    /// `1,000` = `1000`? Default true (Minerva, DAPO, Math-Verify); false is Hendrycks.
    pub thousands_separators: bool,
    /// Random points at which expressions with variables are compared. Default 8.
    pub sample_points: usize,
    /// Seed of the sample points (SplitMix64), so verdicts are reproducible.
    pub seed: u64,
    /// Canonical answers longer than this (bytes) are not parsed: `Unverifiable` unless equal
    /// as strings. Default 1,000.
    pub max_answer_len: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            rel_tol: 1e-6,
            abs_tol: 1e-9,
            percent: PercentPolicy::SignAware,
            unreduced_fractions_equal: true,
            thousands_separators: true,
            sample_points: 8,
            seed: 0x5EED_CA91_E25E_u64,
            max_answer_len: 1_000,
        }
    }
}

/// Canonical form of a final answer, used wherever answers are compared or counted
/// (answer diversity, majority vote, answer clusters). Idempotent. Default config.
pub fn normalize_answer(answer: &str) -> String {
    normalize::normalize_with(answer, &VerifierConfig::default())
}

/// A rollout's final answer as imports, reports and the CLI take it: the one the input gives,
/// else the one extracted from the response ([`extract_answer`]). A given answer comes back as
/// it was passed (borrowed stays borrowed, owned stays owned).
pub fn final_answer<'a>(
    given: Option<std::borrow::Cow<'a, str>>,
    response: Option<&str>,
) -> Option<std::borrow::Cow<'a, str>> {
    given.or_else(|| {
        response
            .and_then(extract_answer)
            .map(|e| std::borrow::Cow::Owned(e.answer))
    })
}

/// The final answer of a response and the rule that found it; `None` when there is none (or the
/// last box is unclosed). Rules and order: see `extract.rs` / docs/verifier.md.
/// An extracted answer that reads as prose, not maths (two or more words of three letters or
/// more that are not LaTeX commands): the review queue lists such answers (issue 27).
pub fn is_prose(answer: &str) -> bool {
    extract::prose_words(answer) >= 2
}

pub fn extract_answer(response: &str) -> Option<Extracted> {
    extract::extract(response)
}

/// The answer inside a reference text: after GSM8K's last `####`, the last box of a MATH
/// solution, a trailing "The answer is ..."; otherwise the reference unchanged (no last-number
/// fallback: `x+1` stays `x+1`). Idempotent. [`verify`] applies it to its reference side, so
/// callers pass dataset references as they are. Rules: `reference.rs` / docs/verifier.md.
pub fn reference_answer(reference: &str) -> &str {
    reference::reference_answer(reference)
}

/// Compares a predicted answer with a reference answer under the default policy.
pub fn verify(pred: &str, reference: &str) -> Verdict {
    verify_with(pred, reference, &VerifierConfig::default())
}

/// Compares a predicted answer with a reference answer under `config`. The reference is first
/// reduced by [`reference_answer`] (`#### 72` -> `72`); the prediction is taken as an answer
/// already ([`extract_answer`] finds it in a response). Symmetric except where documented (the
/// reference reduction; a predicted chain `a=b=5` matches `5`, not the reverse; `AnyScale`
/// scales only the reference).
pub fn verify_with(pred: &str, reference: &str, config: &VerifierConfig) -> Verdict {
    let (p, r) = (pred.trim(), reference.trim());
    if p == r && !p.is_empty() {
        return Verdict::Equal;
    }
    let r = reference_answer(r).trim();
    if p == r && !p.is_empty() {
        return Verdict::Equal;
    }
    // Fast path for the AIME case: two plain integers.
    if normalize::is_plain_integer(p) && normalize::is_plain_integer(r) {
        return match (p.parse::<i128>(), r.parse::<i128>()) {
            (Ok(a), Ok(b)) if a == b => Verdict::Equal,
            (Ok(_), Ok(_)) => Verdict::Different,
            _ => Verdict::Unverifiable,
        };
    }
    if p.len() > MAX_INPUT_BYTES || r.len() > MAX_INPUT_BYTES {
        return Verdict::Unverifiable;
    }
    let (np, nr) = (
        normalize::normalize_with(p, config),
        normalize::normalize_with(r, config),
    );
    if np.is_empty() || nr.is_empty() {
        return Verdict::Different; // an empty answer never matches (nor does an empty reference)
    }
    if np == nr {
        return Verdict::Equal;
    }
    if np.len() > config.max_answer_len || nr.len() > config.max_answer_len {
        return Verdict::Unverifiable;
    }
    let ctx = equiv::Context {
        config,
        pred_percent: normalize::has_percent(p),
        ref_percent: normalize::has_percent(r),
    };
    let verdict = equiv::compare(&np, &nr, &ctx, 0);
    if verdict != Verdict::Different || !(p.contains('=') || r.contains('=')) {
        return verdict;
    }
    // `y=2x+3` was shortened to `2x+3`; compare the equations as written too.
    let (kp, kr) = (
        normalize::normalize_full(p, config, false),
        normalize::normalize_full(r, config, false),
    );
    if (kp == np && kr == nr)
        || kp.len() > config.max_answer_len
        || kr.len() > config.max_answer_len
    {
        return verdict;
    }
    match equiv::compare(&kp, &kr, &ctx, 0) {
        Verdict::Equal => Verdict::Equal,
        _ => verdict,
    }
}
