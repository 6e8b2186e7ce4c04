//! Answer extraction, normalisation and equivalence (the verifier).
//!
//! Interim, minimal implementation: the public API below is the contract other modules code
//! against; the full verifier (fallback rules, LaTeX normalisation, numeric and symbolic
//! equivalence, hostile-input bounds) replaces the bodies.

/// How an answer was found in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractionRule {
    /// The last `\boxed{...}` (balanced braces).
    Boxed,
}

/// A final answer found in a response, with the rule that found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extracted {
    pub answer: String,
    pub rule: ExtractionRule,
}

/// Outcome of comparing a predicted answer with a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Equal,
    Different,
    /// The check could not be completed within its bounds (hostile or unparseable input).
    Unverifiable,
}

/// Canonical form of a final answer, used wherever answers are compared or counted
/// (answer diversity, majority vote, answer clusters).
pub fn normalize_answer(answer: &str) -> String {
    let t = answer.trim();
    let t = t.strip_prefix('$').and_then(|s| s.strip_suffix('$')).unwrap_or(t);
    t.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The final answer of a response: the content of the last `\boxed{...}` with balanced braces.
pub fn extract_answer(response: &str) -> Option<Extracted> {
    let start = response.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1usize;
    for (i, ch) in response[start..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(Extracted {
                        answer: response[start..start + i].to_string(),
                        rule: ExtractionRule::Boxed,
                    });
                }
            }
            _ => {}
        }
    }
    None
}

/// Compares a predicted answer with a reference answer.
pub fn verify(pred: &str, reference: &str) -> Verdict {
    if normalize_answer(pred) == normalize_answer(reference) {
        Verdict::Equal
    } else {
        Verdict::Different
    }
}
