//! A sample's `output` (ModelOutput), parsed as it streams: the first choice's message text,
//! stop reason and logprobs ([`read_output`]), or `completion` when there is no choice.

use super::sample::{content_text, err};
use super::tokens::TokensSeed;
use super::typed::{object, other_kinds, Fields, Scalar, ScalarSeed};
use crate::ingest::formats::common::kind;
use crate::ingest::formats::openai::LineError;
use crate::ingest::limits::{KeptBudget, KeptKey, KeptValue};
use crate::ingest::TokenData;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

type Output = (Option<String>, Option<String>, Option<TokenData>);

/// `output` of a sample as read: absent or null, a ModelOutput, or another kind of value.
#[derive(Debug, Default)]
pub(super) enum OutputSlot {
    #[default]
    Absent,
    Output(Box<OutputRead>),
    NotObject(&'static str),
}

/// What caplens reads of a ModelOutput: its first choice and `completion`, parsed as they stream
/// rather than as a `Value` tree (token data as a tree costs about forty times its text: an
/// object per top logprob). Type problems are kept for [`read_output`] to report in its order.
#[derive(Debug, Default)]
pub(super) struct OutputRead {
    choices: Choices,
    completion: Option<Scalar>,
}

/// `choices` as read.
#[derive(Debug, Default)]
enum Choices {
    /// Absent, null or empty.
    #[default]
    None,
    First(ChoiceRead),
    FirstNotObject(&'static str),
    NotList(&'static str),
}

/// What caplens reads of the first choice.
#[derive(Debug, Default)]
struct ChoiceRead {
    /// `message.content`.
    content: Option<Value>,
    stop_reason: Option<String>,
    logprobs: Logprobs,
}

/// `logprobs` of the first choice as read.
#[derive(Debug, Default)]
pub(super) enum Logprobs {
    /// Absent or null, or without `content` (or with a null one).
    #[default]
    None,
    NotObject(&'static str),
    ContentNotList(&'static str),
    /// `logprobs.content`: the token data, or the first entry's problem.
    Tokens(Result<TokenData, LineError>),
}

/// Where a sample's token data is, for messages.
pub(super) const TOKENS_AT: &str = "output.choices[0].logprobs.content";

#[derive(Clone, Copy)]
pub(super) struct OutputSeed<'b>(pub(super) &'b KeptBudget);

impl<'de> DeserializeSeed<'de> for OutputSeed<'_> {
    type Value = OutputSlot;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<OutputSlot, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OutputSeed<'_> {
    type Value = OutputSlot;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a ModelOutput")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OutputSlot, A::Error> {
        let mut output = OutputRead::default();
        while let Some(key) = map.next_key_seed(KeptKey(self.0))? {
            match key.as_str() {
                "choices" => output.choices = map.next_value_seed(ChoicesSeed(self.0))?,
                "completion" => output.completion = Some(map.next_value_seed(ScalarSeed(self.0))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OutputSlot::Output(Box::new(output)))
    }
    fn visit_unit<E>(self) -> Result<OutputSlot, E> {
        Ok(OutputSlot::Absent)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OutputSlot, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(OutputSlot::NotObject("a list"))
    }
    other_kinds!(OutputSlot, OutputSlot::NotObject);
}

#[derive(Clone, Copy)]
struct ChoicesSeed<'b>(&'b KeptBudget);

impl<'de> DeserializeSeed<'de> for ChoicesSeed<'_> {
    type Value = Choices;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Choices, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChoicesSeed<'_> {
    type Value = Choices;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of choices")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices, A::Error> {
        // The first choice is the rollout; the others are skipped unparsed.
        let first = seq.next_element_seed(ChoiceSeed(self.0))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first.unwrap_or(Choices::None))
    }
    fn visit_unit<E>(self) -> Result<Choices, E> {
        Ok(Choices::None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Choices, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Choices::NotList("an object"))
    }
    other_kinds!(Choices, Choices::NotList);
}

#[derive(Clone, Copy)]
struct ChoiceSeed<'b>(&'b KeptBudget);

impl<'de> DeserializeSeed<'de> for ChoiceSeed<'_> {
    type Value = Choices;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Choices, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ChoiceSeed<'_> {
    type Value = Choices;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a choice")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Choices, A::Error> {
        let mut choice = ChoiceRead::default();
        while let Some(key) = map.next_key_seed(KeptKey(self.0))? {
            match key.as_str() {
                "message" => {
                    choice.content = map.next_value_seed(object::<Message>(self.0))?.content
                }
                "stop_reason" => {
                    choice.stop_reason = map.next_value_seed(ScalarSeed(self.0))?.text()
                }
                "logprobs" => choice.logprobs = map.next_value_seed(LogprobsSeed(self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Choices::First(choice))
    }
    fn visit_unit<E>(self) -> Result<Choices, E> {
        Ok(Choices::FirstNotObject("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Choices::FirstNotObject("a list"))
    }
    other_kinds!(Choices, Choices::FirstNotObject);
}

/// A chat message, of which caplens reads `content`.
#[derive(Debug, Default)]
struct Message {
    content: Option<Value>,
}

impl Fields for Message {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        if key != "content" {
            return Ok(false);
        }
        self.content = Some(map.next_value_seed(KeptValue(budget))?);
        Ok(true)
    }
}

#[derive(Clone, Copy)]
struct LogprobsSeed<'b>(&'b KeptBudget);

impl<'de> DeserializeSeed<'de> for LogprobsSeed<'_> {
    type Value = Logprobs;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Logprobs, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LogprobsSeed<'_> {
    type Value = Logprobs;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("logprobs")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Logprobs, A::Error> {
        let mut logprobs = Logprobs::None;
        while let Some(key) = map.next_key_seed(KeptKey(self.0))? {
            if key == "content" {
                logprobs = map.next_value_seed(TokensSeed(self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(logprobs)
    }
    fn visit_unit<E>(self) -> Result<Logprobs, E> {
        Ok(Logprobs::None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Logprobs, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Logprobs::NotObject("a list"))
    }
    other_kinds!(Logprobs, Logprobs::NotObject);
}

/// Response text, stop reason and token data of `output.choices[0]` (`output.completion` when
/// there is no choice).
pub(super) fn read_output(output: OutputRead) -> Result<Output, LineError> {
    let choice = match output.choices {
        Choices::None => None,
        Choices::First(c) => Some(c),
        Choices::FirstNotObject(k) => {
            return Err(err(
                "output.choices[0]",
                format!("expected an object (a choice), got {k}"),
            ))
        }
        Choices::NotList(k) => {
            return Err(err("output.choices", format!("expected a list, got {k}")))
        }
    };
    let completion = match output.completion {
        None | Some(Scalar::Null) => None,
        Some(Scalar::Text(c)) => Some(c),
        Some(other) => {
            return Err(err(
                "output.completion",
                format!("expected a string, got {}", other.kind()),
            ))
        }
    };
    let Some(choice) = choice else {
        return Ok((completion, None, None));
    };
    let response = match choice.content {
        None | Some(Value::Null) => completion,
        Some(content) => match content_text(&content) {
            Some(t) => Some(t),
            None => {
                return Err(err(
                    "output.choices[0].message.content",
                    format!(
                        "expected a string or a list of content parts, got {}",
                        kind(&content)
                    ),
                ))
            }
        },
    };
    let tokens = match choice.logprobs {
        Logprobs::None => None,
        Logprobs::Tokens(tokens) => Some(tokens?),
        Logprobs::ContentNotList(k) => {
            return Err(err(TOKENS_AT, format!("expected a list, got {k}")))
        }
        Logprobs::NotObject(k) => {
            return Err(err(
                "output.choices[0].logprobs",
                format!("expected an object, got {k}"),
            ))
        }
    };
    Ok((response, choice.stop_reason, tokens))
}
