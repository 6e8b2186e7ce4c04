//! A sample's `scores`: the first scorer in file order as the rollout's verdict and extracted
//! answer ([`verdict`]).

use super::sample::err;
use crate::ingest::formats::common::{kind, OrderedObject};
use crate::ingest::formats::openai::LineError;
use crate::ingest::RecordOutcome;
use serde_json::Value;

type Verdict = (
    RecordOutcome,
    Option<String>,
    Option<(String, &'static str)>,
);

/// The verdict and extracted answer of the first scorer, and the scorer's name and kind of
/// values when it gave a verdict. `C` is correct; `I`, `P` (partial) and `N` (no answer) are
/// not; a number is correct when >= 1; a boolean is itself; `yes`/`true` and `no`/`false` strings
/// and numeric strings as those. A list or object value (multi-metric scorers) or `null` gives
/// no verdict: the rollout is imported ungraded.
pub(super) fn verdict(scores: Option<&OrderedObject>) -> Result<Verdict, LineError> {
    let (name, score) = match scores {
        None | Some(OrderedObject::Null) => return Ok((RecordOutcome::Ungraded, None, None)),
        Some(OrderedObject::NotObject(k)) => {
            return Err(err(
                "scores",
                format!("expected an object of scorer name → score, got {k}"),
            ))
        }
        Some(OrderedObject::Object(entries)) => match entries.first() {
            None => return Ok((RecordOutcome::Ungraded, None, None)),
            Some((name, score)) => (name, score),
        },
    };
    let field = format!("scores.{name}");
    let Value::Object(score) = score else {
        return Err(err(
            field,
            format!("expected an object (a Score), got {}", kind(score)),
        ));
    };
    let answer = score.get("answer").and_then(|a| match a {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    const NUMBERS: &str = "numbers, correct when >= 1";
    let from_number = |x: f64| (RecordOutcome::Graded(x >= 1.0), Some(NUMBERS));
    let (outcome, values) = match score.get("value") {
        None | Some(Value::Null) | Some(Value::Array(_)) | Some(Value::Object(_)) => {
            (RecordOutcome::Ungraded, None)
        }
        Some(Value::Bool(b)) => (RecordOutcome::Graded(*b), Some("true/false")),
        Some(Value::Number(n)) => from_number(n.as_f64().unwrap_or(0.0)),
        Some(Value::String(v)) => match v.trim() {
            "C" => (RecordOutcome::Graded(true), Some("C/I")),
            "I" | "P" | "N" => (RecordOutcome::Graded(false), Some("C/I")),
            other => match other.to_ascii_lowercase().as_str() {
                "yes" | "true" => (RecordOutcome::Graded(true), Some("yes/no")),
                "no" | "false" => (RecordOutcome::Graded(false), Some("yes/no")),
                lower => match lower.parse::<f64>() {
                    Ok(x) if x.is_finite() => from_number(x),
                    _ => {
                        return Err(err(
                            format!("{field}.value"),
                            format!("expected \"C\", \"I\", \"P\", \"N\", a number or a boolean, got the string {v:?}"),
                        ))
                    }
                },
            },
        },
    };
    Ok((outcome, answer, values.map(|v| (name.clone(), v))))
}
