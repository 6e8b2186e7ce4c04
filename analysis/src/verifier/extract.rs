//! Extraction of the final answer from a whole response.
//!
//! Rules, tried in this order (the first that finds something wins; see docs/verifier.md):
//! 1. the last `\boxed` (brace form `\boxed{...}` with balanced nesting, or space form
//!    `\boxed 5$` up to the next `$` or line end); if there is no `\boxed`, the last `\fbox{...}`.
//!    The *last* box is authoritative: when it is unclosed (a truncated response) there is no
//!    answer, and no later rule is tried, because any other pick would grade a guess.
//! 2. `final answer is <answer>` (Minerva's "Final Answer: The final answer is $X$. I hope...").
//! 3. `answer is <answer>` ("the answer is", "my answer is"), the last occurrence.
//! 4. the last line starting with `Answer:` / `Final answer:` (markdown `**` and `#` allowed).
//! 5. the last number in the text.
//!
//! When the response contains `</think>`, the rules run on the text after the last `</think>`
//! first; only when they find nothing there do they run on the whole response. `Extracted`
//! reports which text was used.
//!
//! All positions come from searching ASCII patterns, so every slice falls on a char boundary
//! whatever UTF-8 surrounds it; every scan is linear in the input.

use super::{Extracted, ExtractionRule};

const THINK_END: &str = "</think>";

enum Outcome {
    Found(String, ExtractionRule),
    /// The last box is unclosed: the response has no answer.
    Unclosed,
    NotFound,
}

/// See the module documentation for the rules and their order.
pub fn extract(response: &str) -> Option<Extracted> {
    if let Some(pos) = response.rfind(THINK_END) {
        match extract_from(&response[pos + THINK_END.len()..]) {
            Outcome::Found(answer, rule) => {
                return Some(Extracted {
                    answer,
                    rule,
                    after_think: true,
                })
            }
            Outcome::Unclosed => return None,
            Outcome::NotFound => {}
        }
    }
    match extract_from(response) {
        Outcome::Found(answer, rule) => Some(Extracted {
            answer,
            rule,
            after_think: false,
        }),
        _ => None,
    }
}

fn extract_from(text: &str) -> Outcome {
    match boxed(text) {
        Outcome::NotFound => {}
        other => return other,
    }
    let lower = text.to_ascii_lowercase(); // same byte offsets as `text`
    if let Some(pos) = lower.rfind("final answer is") {
        if let Some(a) = capture(&text[pos + "final answer is".len()..]) {
            return Outcome::Found(a, ExtractionRule::FinalAnswerIs);
        }
    }
    if let Some(pos) = lower.rfind("answer is") {
        if let Some(a) = capture(&text[pos + "answer is".len()..]) {
            return Outcome::Found(a, ExtractionRule::TheAnswerIs);
        }
    }
    if let Some(a) = answer_line(text) {
        return Outcome::Found(a, ExtractionRule::AnswerLine);
    }
    if let Some(a) = last_number(text) {
        return Outcome::Found(a, ExtractionRule::LastNumber);
    }
    Outcome::NotFound
}

/// Content of a `{...}` group starting at `open` (which must be `{`), balanced; `None` if unclosed.
/// The one brace matcher of the crate (the quality checks use it too).
pub(crate) fn braced(text: &str, open: usize) -> Option<&str> {
    let mut depth = 0usize;
    for (i, b) in text.as_bytes()[open..].iter().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[open + 1..open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

fn boxed(text: &str) -> Outcome {
    let (pos, cmd_len, rule_braced, rule_space) = match text.rfind("\\boxed") {
        Some(p) => (
            p,
            "\\boxed".len(),
            ExtractionRule::Boxed,
            ExtractionRule::BoxedSpace,
        ),
        None => match text.rfind("\\fbox") {
            Some(p) => (
                p,
                "\\fbox".len(),
                ExtractionRule::Fbox,
                ExtractionRule::Fbox,
            ),
            None => return Outcome::NotFound,
        },
    };
    let after = pos + cmd_len;
    let rest = &text[after..];
    let trimmed = rest.trim_start_matches([' ', '\t']);
    let open = after + (rest.len() - trimmed.len());
    if trimmed.starts_with('{') {
        return match braced(text, open) {
            Some(inner) if !inner.trim().is_empty() => {
                Outcome::Found(inner.trim().to_string(), rule_braced)
            }
            Some(_) => Outcome::NotFound, // `\boxed{}`: an empty box is no answer; try the fallbacks
            None => Outcome::Unclosed,
        };
    }
    // Space form: `\boxed 5$` -> up to the next `$` or line end.
    if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Outcome::NotFound; // `\boxedfoo`: a different command name, not a box
    }
    let end = trimmed.find(['$', '\n']).unwrap_or(trimmed.len());
    let answer = trimmed[..end].trim().trim_end_matches('.').trim();
    if answer.is_empty() {
        return Outcome::Unclosed; // `\boxed` with nothing after it: truncated
    }
    Outcome::Found(answer.to_string(), rule_space)
}

/// The answer that follows a phrase such as "the answer is": a `$...$`, `\(...\)` or `\[...\]`
/// group, else the rest of the sentence (up to a line end or a `. `).
fn capture(after: &str) -> Option<String> {
    let t = after.trim_start_matches(|c: char| c == ':' || c == '*' || c.is_whitespace());
    let delimited = [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")]
        .iter()
        .find_map(|(open, close)| {
            let inner = t.strip_prefix(open)?;
            inner.find(close).map(|end| inner[..end].to_string())
        });
    let answer = match delimited {
        Some(a) => a,
        None => {
            let line = &t[..t.find('\n').unwrap_or(t.len())];
            let sentence = match line.find(". ") {
                Some(p) => &line[..p],
                None => line,
            };
            sentence.to_string()
        }
    };
    let answer = answer.trim().trim_end_matches(['.', '*']).trim();
    if answer.is_empty() {
        None
    } else {
        Some(answer.to_string())
    }
}

fn answer_line(text: &str) -> Option<String> {
    for line in text.lines().rev() {
        let t = line.trim_start_matches(|c: char| c == '*' || c == '#' || c.is_whitespace());
        let lower_head: String = t.chars().take(14).collect::<String>().to_ascii_lowercase();
        for prefix in ["final answer:", "answer:"] {
            if lower_head.starts_with(prefix) {
                if let Some(a) = capture(&t[prefix.len()..]) {
                    return Some(a);
                }
            }
        }
    }
    None
}

/// The last number: optional minus, digits with optional thousands commas, optional decimals.
fn last_number(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let last_digit = bytes.iter().rposition(|b| b.is_ascii_digit())?;
    let mut start = last_digit;
    while start > 0
        && (bytes[start - 1].is_ascii_digit()
            || bytes[start - 1] == b'.'
            || bytes[start - 1] == b',')
    {
        start -= 1;
    }
    let mut token = text[start..=last_digit].trim_start_matches(['.', ',']);
    // `3,4` is a list, `1,234` a thousands-separated number: keep the last item of a list.
    if token.contains(',') {
        let groups: Vec<&str> = token.split('.').next().unwrap_or("").split(',').collect();
        let thousands = groups.len() >= 2
            && (1..=3).contains(&groups[0].len())
            && groups[1..].iter().all(|g| g.len() == 3);
        if !thousands {
            token = token.rsplit(',').next().unwrap_or(token);
        }
    }
    // A second dot (`1.2.3`) makes a version-like token: keep its last part.
    if token.matches('.').count() > 1 {
        token = token.rsplit('.').next().unwrap_or(token);
    }
    let token_start = last_digit + 1 - token.len();
    let negative = token_start > 0 && bytes[token_start - 1] == b'-';
    let cleaned = token.replace(',', "");
    Some(if negative {
        format!("-{cleaned}")
    } else {
        cleaned
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_space_form_stops_at_dollar() {
        let e = extract("so $\\boxed 42$ is it").unwrap();
        assert_eq!(
            (e.answer.as_str(), e.rule),
            ("42", ExtractionRule::BoxedSpace)
        );
    }

    #[test]
    fn last_number_handles_lists_and_thousands() {
        assert_eq!(last_number("we get 1,234 apples").as_deref(), Some("1234"));
        assert_eq!(last_number("pairs 3,4").as_deref(), Some("4"));
        assert_eq!(last_number("it is -7.").as_deref(), Some("-7"));
        assert_eq!(last_number("no digits"), None);
    }
}
