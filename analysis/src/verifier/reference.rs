//! The answer inside a reference ("gold") text.
//!
//! Datasets ship references in three shapes besides a bare answer, and each must be reduced to
//! its answer before comparison, or a correct prediction is graded wrong:
//! 1. **`####`** (GSM8K; lm-eval's gsm8k `target` is the whole worked solution ending in
//!    `#### 72`): the text after the last `####`, trimmed, when it is the last line. lm-eval's
//!    regex takes only `-?[0-9.,]+`; a non-numeric answer after `####` is kept here too.
//! 2. **last box** (MATH `solution`): the content of the last `\boxed{...}` (else `\fbox{...}`),
//!    when the reference is a solution: it spans several lines, or has a word (two or more
//!    letters not part of a `\command`) outside the box, or the box is all there is (`$\boxed{5}$.`).
//!    A reference such as `x = \boxed{5}` or `\boxed{2}^2` stays whole (normalisation unwraps the
//!    box), because there the box is part of the answer.
//! 3. **trailing "answer is"** (chain-of-thought references ending "The answer is 18."): the
//!    answer captured after the last "answer is" (case-insensitive; a `$...$`, `\(...\)`,
//!    `\[...\]` group or the rest of the sentence), when nothing but `.`, `*` or whitespace
//!    follows it.
//!
//! Otherwise the reference is returned unchanged. In particular there is no last-number
//! fallback: a reference *is* an answer unless it says where its answer is (`x+1`, `\frac{1}{2}`,
//! `(1, 2)` stay as written). The rules repeat until nothing changes (`#### \boxed{5}` -> `5`),
//! so the function is idempotent; every rule's result lacks its own trigger, so this takes at most
//! four steps.
//!
//! Every position comes from an ASCII pattern, so no slice splits a multi-byte char; each step is
//! linear.

use super::extract::{capture_span, last_box, LastBox};

const GSM8K_MARKER: &str = "####";
const ANSWER_IS: &str = "answer is";
/// More than enough: each rule fires at most twice (a `\fbox` inside the last `\boxed`).
const MAX_STEPS: usize = 8;

/// See the module documentation. The answer is always a slice of the reference.
pub fn reference_answer(reference: &str) -> &str {
    let mut current = reference;
    for _ in 0..MAX_STEPS {
        match step(current) {
            // Every rule returns a strict sub-slice; the length check only makes progress obvious.
            Some(next) if next.len() < current.len() => current = next,
            _ => break,
        }
    }
    current
}

/// One application of the first rule that fires; `None` when none does.
fn step(text: &str) -> Option<&str> {
    after_gsm8k_marker(text)
        .or_else(|| solution_box(text))
        .or_else(|| trailing_answer_is(text))
}

fn after_gsm8k_marker(text: &str) -> Option<&str> {
    let pos = text.rfind(GSM8K_MARKER)?;
    let answer = text[pos + GSM8K_MARKER.len()..].trim();
    // `#### Step 2` followed by more lines is a markdown heading, not GSM8K's final line.
    (!answer.is_empty() && !answer.contains('\n')).then_some(answer)
}

fn solution_box(text: &str) -> Option<&str> {
    let LastBox::Found { content, span, .. } = last_box(text) else {
        return None;
    };
    let (before, after) = (&text[..span.start], &text[span.end..]);
    let decoration = |s: &str| s.chars().all(|c| c.is_whitespace() || c == '$' || c == '.');
    let is_solution = text.trim().contains('\n') || has_word(before) || has_word(after);
    (is_solution || (decoration(before) && decoration(after))).then_some(content)
}

/// A run of two or more ASCII letters that is not the name of a `\command`: prose.
fn has_word(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            if i - start >= 2 && (start == 0 || bytes[start - 1] != b'\\') {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

fn trailing_answer_is(text: &str) -> Option<&str> {
    // Case-insensitive without lower-casing a copy (`verify` runs this on every reference). The
    // match is ASCII, so its start is a char boundary.
    let pos = text
        .as_bytes()
        .windows(ANSWER_IS.len())
        .rposition(|w| w.eq_ignore_ascii_case(ANSWER_IS.as_bytes()))?;
    let after = &text[pos + ANSWER_IS.len()..];
    let (answer, end) = capture_span(after)?;
    let rest = &after[end..];
    rest.chars()
        .all(|c| c.is_whitespace() || c == '.' || c == '*')
        .then_some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_letter_runs_outside_commands() {
        assert!(has_word("so the answer"));
        assert!(!has_word("x = "));
        assert!(!has_word("\\quad "));
        assert!(has_word("\\quad cm"));
    }
}
