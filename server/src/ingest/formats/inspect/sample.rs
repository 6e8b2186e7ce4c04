//! One sample of an Inspect log: its fields read within a budget ([`SlotSeed`]) and made a
//! [`RolloutRecord`] ([`to_record`]), or the rejection saying what is wrong with it.

use super::output::{read_output, OutputSeed, OutputSlot};
use super::scores::verdict;
use crate::ingest::formats::common::{
    id_string, kind, reference_text, KeptOrderedObject, OrderedObject,
};
use crate::ingest::formats::openai::LineError;
use crate::ingest::limits::{mib, KeptBudget, KeptKey, KeptValue};
use crate::ingest::RolloutRecord;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// The fields of an EvalSample that caplens reads; everything else is skipped unparsed.
#[derive(Debug, Default)]
pub(super) struct Sample {
    id: Option<Value>,
    epoch: Option<Value>,
    input: Option<Value>,
    target: Option<Value>,
    output: OutputSlot,
    scores: Option<OrderedObject>,
    pub(super) error: Option<Value>,
    attachments: Option<Value>,
}

/// A sample, or what stood in its place.
#[derive(Debug)]
pub(super) enum SampleSlot {
    Sample(Box<Sample>),
    NotObject(&'static str),
    /// A sample whose fields caplens reads took more than the budget (its limit), so it was
    /// skipped rather than kept.
    TooLarge(u64),
}

/// Reads one sample against a [`KeptBudget`]
/// ([`MAX_KEPT_BYTES`](crate::ingest::limits::MAX_KEPT_BYTES)).
#[derive(Clone, Copy)]
pub(super) struct SlotSeed<'b>(pub(super) &'b KeptBudget);

impl<'de> DeserializeSeed<'de> for SlotSeed<'_> {
    type Value = SampleSlot;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<SampleSlot, D::Error> {
        let slot = d.deserialize_any(self)?;
        Ok(if self.0.exceeded() {
            SampleSlot::TooLarge(self.0.limit())
        } else {
            slot
        })
    }
}

impl<'de> Visitor<'de> for SlotSeed<'_> {
    type Value = SampleSlot;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sample object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SampleSlot, A::Error> {
        let mut s = Sample::default();
        let kept = KeptValue(self.0);
        while let Some(key) = map.next_key_seed(KeptKey(self.0))? {
            match key.as_str() {
                "id" => s.id = Some(map.next_value_seed(kept)?),
                "epoch" => s.epoch = Some(map.next_value_seed(kept)?),
                "input" => s.input = Some(map.next_value_seed(kept)?),
                "target" => s.target = Some(map.next_value_seed(kept)?),
                "output" => s.output = map.next_value_seed(OutputSeed(self.0))?,
                "scores" => s.scores = Some(map.next_value_seed(KeptOrderedObject(self.0))?),
                "error" => s.error = Some(map.next_value_seed(kept)?),
                "attachments" => s.attachments = Some(map.next_value_seed(kept)?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(SampleSlot::Sample(Box::new(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SampleSlot, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(SampleSlot::NotObject("a list"))
    }
    fn visit_unit<E>(self) -> Result<SampleSlot, E> {
        Ok(SampleSlot::NotObject("null"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<SampleSlot, E> {
        Ok(SampleSlot::NotObject("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<SampleSlot, E> {
        Ok(SampleSlot::NotObject("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<SampleSlot, E> {
        Ok(SampleSlot::NotObject("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<SampleSlot, E> {
        Ok(SampleSlot::NotObject("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<SampleSlot, E> {
        Ok(SampleSlot::NotObject("a string"))
    }
}

pub(super) fn err(field: impl Into<String>, msg: impl Into<String>) -> LineError {
    (field.into(), msg.into())
}

/// Longest excerpt of a failed sample's error message in the rejection.
const ERROR_EXCERPT_CHARS: usize = 200;

/// The record of one sample (`line`: its position, for messages), and its first scorer's name
/// and kind of values when it gave a verdict.
pub(super) fn to_record(
    slot: SampleSlot,
    line: u64,
) -> Result<(RolloutRecord, Option<(String, &'static str)>), LineError> {
    let s = match slot {
        SampleSlot::Sample(s) => s,
        SampleSlot::NotObject(k) => {
            return Err(err("samples", format!("expected a sample object, got {k}")))
        }
        SampleSlot::TooLarge(limit) => {
            return Err(err(
                "samples",
                format!(
                    "the fields caplens reads of this sample (input, target, output, scores, error, attachments) take more than {} MiB in memory; caplens keeps up to that of one sample",
                    mib(limit)
                ),
            ))
        }
    };
    let mut s = s;
    if let Some(error) = s.error.as_ref().filter(|e| !e.is_null()) {
        // The message only (the traceback is kilobytes), cut to its first line.
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string());
        return Err(err(
            "error",
            format!(
                "the sample failed in Inspect ({}), so it has no rollout; --skip-invalid (skip_invalid=true) imports the other samples",
                excerpt(&message, ERROR_EXCERPT_CHARS)
            ),
        ));
    }
    let problem_id = match &s.id {
        None | Some(Value::Null) => return Err(err("id", "required (the sample id)")),
        Some(v) => id_string(v).map_err(|m| err("id", m))?,
    };
    let epoch = match &s.epoch {
        None | Some(Value::Null) => return Err(err("epoch", "required (the epoch, from 1)")),
        Some(v) => match v.as_u64() {
            Some(e) if e >= 1 => e,
            _ => {
                return Err(err(
                    "epoch",
                    format!("expected a positive integer, got {}", describe(v)),
                ))
            }
        },
    };
    let attachments = s.attachments.take();
    let attachments = attachments.as_ref().and_then(Value::as_object);
    // The text itself (moved, not copied: it may be most of the sample), or the attachment it
    // refers to.
    let resolve = |text: String| -> String {
        match text
            .strip_prefix("attachment://")
            .and_then(|key| attachments?.get(key)?.as_str())
        {
            Some(attached) => attached.to_owned(),
            None => text,
        }
    };
    let prompt = match s.input.take() {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(resolve(text)),
        // A list of chat messages: the last user message is the problem.
        Some(Value::Array(messages)) => messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .and_then(content_text)
            .map(resolve),
        Some(other) => {
            return Err(err(
                "input",
                format!(
                    "expected a string or a list of messages, got {}",
                    kind(&other)
                ),
            ))
        }
    };
    let reference = match s.target.as_ref().map(reference_text).unwrap_or(Ok(None)) {
        Ok(r) => r.map(resolve),
        Err(got) => {
            return Err(err(
                "target",
                format!("expected a string or a list of strings, got {got}"),
            ))
        }
    };
    let (response, finish_reason, tokens) = match std::mem::take(&mut s.output) {
        OutputSlot::Absent => (None, None, None),
        OutputSlot::Output(output) => read_output(*output)?,
        OutputSlot::NotObject(k) => {
            return Err(err(
                "output",
                format!("expected an object (ModelOutput), got {k}"),
            ))
        }
    };
    let (outcome, answer, scorer) = verdict(s.scores.as_ref())?;
    let record = RolloutRecord {
        line,
        problem_id,
        prompt,
        reference,
        sample: Some(epoch - 1),
        outcome,
        response: response.map(resolve),
        answer,
        finish_reason,
        tokens,
        ..RolloutRecord::default()
    };
    Ok((record, scorer))
}

/// The first line of `text`, at most `max` characters, with `…` when anything was cut. Inspect's
/// messages are Python reprs (`RuntimeError('…\n…')`), whose line breaks are the two characters
/// `\` and `n`: those end the first line too.
fn excerpt(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    let first = first.split("\\n").next().unwrap_or(first).trim_end();
    let mut out: String = first.chars().take(max).collect();
    if out.len() < text.trim_end().len() {
        out.push('…');
    }
    out
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{n}"),
        other => kind(other).to_string(),
    }
}

/// The text of a message `content`: a string, or the `text` of its `{"type": "text"}` parts
/// joined (reasoning, images and tool parts are left out).
pub(super) fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| {
                    p.get("type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t == "text")
                })
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            Some(texts.join(""))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_messages_are_cut_to_their_first_line() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("line one\nline two", 100), "line one…");
        assert_eq!(excerpt(r"E('line one\nline two')", 100), "E('line one…");
        assert_eq!(
            excerpt(&"é".repeat(300), 200),
            format!("{}…", "é".repeat(200))
        );
    }
}
