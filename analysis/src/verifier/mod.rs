//! Answer extraction, normalisation and equivalence (the verifier).

/// Canonical form of a final answer, used wherever answers are compared or counted
/// (answer diversity, majority vote, answer clusters).
///
/// Interim rule until the full verifier lands: trim, drop whitespace and a surrounding `$...$`.
pub fn normalize_answer(answer: &str) -> String {
    let t = answer.trim();
    let t = t.strip_prefix('$').and_then(|s| s.strip_suffix('$')).unwrap_or(t);
    t.chars().filter(|c| !c.is_whitespace()).collect()
}
