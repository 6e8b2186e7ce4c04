//! Parsing one native line: the fast scanner for the core fields, serde_json with a
//! field-naming visitor for everything else (and the authority on errors), grading of lines
//! without a verdict.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::{fast, NativeLine, Needs, Outcome, TopLogprob, MAX_SAMPLES_PER_LINE};

/// Parses and validates one line. On failure: the field at fault (if any) and the message.
pub fn parse_line(
    text: &str,
    needs: Needs,
) -> Result<NativeLine<'_>, (Option<&'static str>, String)> {
    let core_only = needs
        == Needs {
            sample: needs.sample,
            grade: needs.grade,
            ..Needs::default()
        };
    if core_only {
        if let Some(core) = fast::scan_core(text, needs.sample) {
            return Ok(NativeLine {
                model: core.model,
                problem_id: core.problem_id,
                dataset: core.dataset,
                outcome: core.outcome,
                sample: core.sample,
                ..NativeLine::default()
            });
        }
    }
    parse_line_serde(text, needs)
}

/// The general path: serde_json with a field-naming visitor. The authority on errors.
pub(super) fn parse_line_serde(
    text: &str,
    needs: Needs,
) -> Result<NativeLine<'_>, (Option<&'static str>, String)> {
    let current = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let mut line = de
        .deserialize_map(LineVisitor {
            needs,
            current: &current,
        })
        .and_then(|raw| de.end().map(|_| raw))
        .map_err(|e| describe_json_error(text, &e, current.get()))?;
    line.finish()?;
    if needs.grade && line.outcome == Outcome::Ungraded {
        return graded(text, line, needs);
    }
    Ok(line)
}

/// A line without a verdict graded by the verifier against its `reference` (the one grading
/// rule, `pipeline::grade`): the answer given, else the one extracted from the response.
pub(super) fn graded<'a>(
    text: &'a str,
    mut line: NativeLine<'a>,
    needs: Needs,
) -> Result<NativeLine<'a>, (Option<&'static str>, String)> {
    let (answer, response, reference) = if needs.answer && needs.response && needs.reference {
        (
            line.answer.clone(),
            line.response.clone(),
            line.reference.clone(),
        )
    } else {
        // Parsed again with the fields grading needs (rare: lines without verdicts only).
        let full = parse_line_serde(
            text,
            Needs {
                answer: true,
                response: true,
                reference: true,
                ..Needs::default()
            },
        )?;
        (full.answer, full.response, full.reference)
    };
    let Some(reference) = reference.filter(|r| !r.trim().is_empty()) else {
        return Err((
            Some("reference"),
            "missing: a line without \"correct\" is graded against its \"reference\"".into(),
        ));
    };
    let answer = caplens_analysis::verifier::final_answer(answer, response.as_deref());
    line.outcome = Outcome::Rollout {
        correct: crate::ingest::pipeline::grade(answer.as_deref(), &reference),
    };
    Ok(line)
}

pub(super) fn describe_json_error(
    text: &str,
    e: &serde_json::Error,
    field: Option<&'static str>,
) -> (Option<&'static str>, String) {
    use serde_json::error::Category;
    match (e.classify(), field) {
        (Category::Data, Some(f)) => (Some(f), expected_for(f).to_string()),
        (Category::Data, None) => (None, strip_position(e)),
        (Category::Syntax | Category::Eof, f) => {
            // Point out NaN / Infinity, which Python's json module writes but JSON forbids.
            let col = e.column().saturating_sub(1);
            let rest = text.get(col..).unwrap_or("");
            let rest = rest.trim_start_matches(['[', ',', ' ', '-']);
            let msg = if rest.starts_with("NaN") || rest.starts_with("Infinity") {
                format!("NaN and Infinity are not valid JSON (column {}); write null for a missing value", e.column())
            } else {
                format!("invalid JSON: {}", e)
            };
            (f, msg)
        }
        (Category::Io, f) => (f, e.to_string()),
    }
}

pub(super) fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub(super) fn expected_for(field: &str) -> &'static str {
    match field {
        "model" | "problem_id" => "expected a string (or an integer for problem_id)",
        "correct" => "expected a boolean",
        "n" | "c" | "sample" => "expected a non-negative integer",
        "step" => "expected an integer",
        "dataset" | "response" | "answer" | "reference" | "finish_reason" | "prompt" => {
            "expected a string or null"
        }
        "tokens" | "tags" => "expected an array of strings",
        "token_logprobs" | "token_entropies" | "token_hidden_norms" => {
            "expected an array of numbers (null for a missing value)"
        }
        "token_rbf" => "expected an array of non-negative integers (null for a missing value)",
        "top_logprobs" => "expected an array (one per token) of [token, logprob] pairs",
        _ => "unexpected value",
    }
}

/// A string that borrows from the input when it has no escapes.
pub(super) struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// `problem_id` may be a string or an integer (many eval tools number their problems).
pub(super) struct IdStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for IdStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(IdStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IdStr(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(IdStr(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(IdStr(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[token, logprob]` pairs of one position; `null` gives an empty list.
pub(super) struct TopRow<'a>(Vec<TopLogprob<'a>>);

impl<'de> Deserialize<'de> for TopRow<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs: Option<Vec<(CowStr<'de>, f64)>> = Option::deserialize(d)?;
        Ok(TopRow(
            pairs
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p)| (t.0, p))
                .collect(),
        ))
    }
}

impl NativeLine<'_> {
    /// Checks the required fields and sets `outcome`.
    fn finish(&mut self) -> Result<(), (Option<&'static str>, String)> {
        let missing = |f: &'static str| (Some(f), "missing (required)".to_string());
        if self.seen & 1 == 0 {
            return Err(missing("model"));
        }
        if self.seen & 2 == 0 {
            return Err(missing("problem_id"));
        }
        self.outcome = match (self.correct, self.n, self.c) {
            (Some(correct), None, None) => Outcome::Rollout { correct },
            (Some(_), _, _) => {
                let f = if self.n.is_some() { "n" } else { "c" };
                return Err((
                    Some(f),
                    "a line gives either \"correct\" or \"n\" and \"c\", not both".into(),
                ));
            }
            (None, Some(n), Some(c)) => {
                if n > MAX_SAMPLES_PER_LINE {
                    return Err((
                        Some("n"),
                        format!("{n} exceeds the limit of {MAX_SAMPLES_PER_LINE} samples per line"),
                    ));
                }
                if c > n {
                    return Err((Some("c"), format!("{c} is greater than n = {n}")));
                }
                Outcome::Counts { n, c }
            }
            (None, Some(_), None) => return Err(missing("c")),
            (None, None, Some(_)) => return Err(missing("n")),
            // A rollout without a verdict: graded by caplens against the reference.
            (None, None, None) if self.seen & (RESPONSE_BIT | ANSWER_BIT) != 0 => Outcome::Ungraded,
            (None, None, None) => {
                return Err((
                    Some("correct"),
                    "missing (give \"correct\", or \"n\" and \"c\", or a \"response\" and its \"reference\" for caplens to grade)".into(),
                ))
            }
        };
        // Parse state only: cleared so that a line reads the same whichever path parsed it.
        (self.correct, self.n, self.c, self.seen) = (None, None, None, 0);
        Ok(())
    }
}

/// `seen` bits of `response` and `answer` (their indices in FIELDS).
pub(super) const RESPONSE_BIT: u32 = 1 << 7;
pub(super) const ANSWER_BIT: u32 = 1 << 8;

pub(super) const FIELDS: [&str; 20] = [
    "model",
    "problem_id",
    "dataset",
    "correct",
    "n",
    "c",
    "sample",
    "response",
    "answer",
    "reference",
    "tokens",
    "token_logprobs",
    "top_logprobs",
    "token_entropies",
    "finish_reason",
    "step",
    "token_rbf",
    "token_hidden_norms",
    "prompt",
    "tags",
];

pub(super) struct LineVisitor<'c> {
    needs: Needs,
    /// The field whose value is being parsed, so that an error can name it.
    current: &'c Cell<Option<&'static str>>,
}

impl<'de> Visitor<'de> for LineVisitor<'_> {
    type Value = NativeLine<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NativeLine<'de>, A::Error> {
        let mut raw = NativeLine::default();
        let needs = self.needs;
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let Some(idx) = FIELDS.iter().position(|f| *f == key.0) else {
                self.current.set(None);
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let name = FIELDS[idx];
            self.current.set(Some(name));
            if raw.seen & (1 << idx) != 0 {
                return Err(de::Error::custom(format!("field \"{name}\" given twice")));
            }
            raw.seen |= 1 << idx;
            macro_rules! take {
                ($need:expr, $slot:expr, $conv:expr) => {
                    if $need {
                        $slot = $conv(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                };
            }
            match name {
                "model" => raw.model = map.next_value::<CowStr>()?.0,
                "problem_id" => raw.problem_id = map.next_value::<IdStr>()?.0,
                "dataset" => raw.dataset = map.next_value::<Option<CowStr>>()?.map(|s| s.0),
                "correct" => raw.correct = Some(map.next_value()?),
                "n" => raw.n = Some(map.next_value()?),
                "c" => raw.c = Some(map.next_value()?),
                "sample" => take!(needs.sample, raw.sample, |v: Option<u64>| v),
                "response" => take!(needs.response, raw.response, |v: Option<CowStr<'de>>| v
                    .map(|s| s.0)),
                "answer" => take!(needs.answer, raw.answer, |v: Option<CowStr<'de>>| v
                    .map(|s| s.0)),
                "reference" => take!(needs.reference, raw.reference, |v: Option<CowStr<'de>>| v
                    .map(|s| s.0)),
                "tokens" => take!(needs.tokens, raw.tokens, |v: Option<Vec<CowStr<'de>>>| v
                    .map(|t| t.into_iter().map(|s| s.0).collect())),
                "token_logprobs" => take!(
                    needs.token_logprobs,
                    raw.token_logprobs,
                    |v: Option<Vec<Option<f64>>>| v
                ),
                "top_logprobs" => take!(needs.top_logprobs, raw.top_logprobs, |v: Option<
                    Vec<TopRow<'de>>,
                >| v
                    .map(|rows| rows.into_iter().map(|r| r.0).collect())),
                "token_entropies" => take!(
                    needs.token_entropies,
                    raw.token_entropies,
                    |v: Option<Vec<Option<f64>>>| v
                ),
                "finish_reason" => take!(
                    needs.finish_reason,
                    raw.finish_reason,
                    |v: Option<CowStr<'de>>| v.map(|s| s.0)
                ),
                "step" => take!(needs.step, raw.step, |v: Option<i64>| v),
                "token_rbf" => take!(needs.token_rbf, raw.token_rbf, |v: Option<
                    Vec<Option<u32>>,
                >| v),
                "token_hidden_norms" => take!(
                    needs.token_hidden_norms,
                    raw.token_hidden_norms,
                    |v: Option<Vec<Option<f64>>>| v
                ),
                "prompt" => take!(needs.prompt, raw.prompt, |v: Option<CowStr<'de>>| v
                    .map(|s| s.0)),
                "tags" => take!(needs.tags, raw.tags, |v: Option<Vec<CowStr<'de>>>| v
                    .map(|t| t.into_iter().map(|s| s.0).collect())),
                _ => unreachable!("every name of FIELDS is handled"),
            }
            self.current.set(None);
        }
        Ok(raw)
    }
}
