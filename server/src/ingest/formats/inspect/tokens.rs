//! A sample's token data, `output.choices[0].logprobs.content`: each entry (token, logprob, top
//! logprobs) read into [`TokenData`] and checked, or the first bad entry's problem.

use super::output::{Logprobs, TOKENS_AT};
use super::sample::err;
use super::typed::{other_kinds, Scalar, ScalarSeed};
use crate::ingest::formats::openai::LineError;
use crate::ingest::limits::{KeptBudget, KeptKey, VALUE_COST};
use crate::ingest::TokenData;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// `logprobs.content`: one entry `{token, logprob, top_logprobs: [{token, logprob}]}` per token
/// (as OpenAI, vLLM and Inspect write it), read into [`TokenData`] entry by entry. After the
/// first bad entry the rest is skipped: the sample is rejected with that entry's problem.
#[derive(Clone, Copy)]
pub(super) struct TokensSeed<'b>(pub(super) &'b KeptBudget);

impl<'de> DeserializeSeed<'de> for TokensSeed<'_> {
    type Value = Logprobs;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Logprobs, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TokensSeed<'_> {
    type Value = Logprobs;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of token logprobs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Logprobs, A::Error> {
        let mut data = TokenData::default();
        let mut top_rows = Vec::new();
        let mut index = 0usize;
        let mut failed = None;
        while failed.is_none() {
            let seed = EntrySeed {
                budget: self.0,
                top: true,
            };
            let Some(entry) = seq.next_element_seed(seed)? else {
                break;
            };
            match entry.checked() {
                Ok((token, logprob, top)) => {
                    data.tokens.push(token);
                    data.logprobs.push(logprob);
                    top_rows.push(top);
                }
                Err(problem) => failed = Some(problem.at(&format!("{TOKENS_AT}[{index}]"))),
            }
            index += 1;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Logprobs::Tokens(match failed {
            Some(e) => Err(e),
            None => {
                data.top_logprobs = Some(top_rows);
                Ok(data)
            }
        }))
    }
    fn visit_unit<E>(self) -> Result<Logprobs, E> {
        Ok(Logprobs::None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Logprobs, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Logprobs::ContentNotList("an object"))
    }
    other_kinds!(Logprobs, Logprobs::ContentNotList);
}

/// One token entry (or one of its top logprobs) as read: `None` fields were absent.
#[derive(Debug, Default)]
struct EntryRead {
    not_object: Option<&'static str>,
    token: Option<Scalar>,
    logprob: Option<Scalar>,
    top: Option<TopRead>,
}

/// `top_logprobs` of an entry as read.
#[derive(Debug)]
enum TopRead {
    Null,
    NotList(&'static str),
    Entries(Vec<EntryRead>),
}

/// What is wrong with a token entry, relative to the entry (its place is added by
/// [`EntryProblem::at`]).
#[derive(Debug)]
enum EntryProblem {
    NotObject(&'static str),
    TokenMissing,
    Token(&'static str),
    Logprob(&'static str),
    TopNotList(&'static str),
    Top(usize, Box<EntryProblem>),
}

impl EntryProblem {
    fn at(self, at: &str) -> LineError {
        match self {
            EntryProblem::NotObject(k) => err(
                at,
                format!("expected an object {{token, logprob}}, got {k}"),
            ),
            EntryProblem::TokenMissing => err(format!("{at}.token"), "required"),
            EntryProblem::Token(k) => {
                err(format!("{at}.token"), format!("expected a string, got {k}"))
            }
            EntryProblem::Logprob(k) => err(
                format!("{at}.logprob"),
                format!("expected a number, got {k}"),
            ),
            EntryProblem::TopNotList(k) => err(
                format!("{at}.top_logprobs"),
                format!("expected a list, got {k}"),
            ),
            EntryProblem::Top(j, problem) => problem.at(&format!("{at}.top_logprobs[{j}]")),
        }
    }
}

type CheckedEntry = (String, Option<f64>, Vec<(String, f64)>);

impl EntryRead {
    /// `{token, logprob}` of an entry (`logprob` may be null or absent).
    fn token_and_logprob(&mut self) -> Result<(String, Option<f64>), EntryProblem> {
        if let Some(k) = self.not_object {
            return Err(EntryProblem::NotObject(k));
        }
        let token = match self.token.take() {
            Some(Scalar::Text(t)) => t,
            None => return Err(EntryProblem::TokenMissing),
            Some(other) => return Err(EntryProblem::Token(other.kind())),
        };
        let logprob = match &self.logprob {
            None | Some(Scalar::Null) => None,
            Some(number @ (Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_))) => number.number(),
            Some(other) => return Err(EntryProblem::Logprob(other.kind())),
        };
        Ok((token, logprob))
    }

    /// The entry's token, logprob and top logprobs (each with a logprob), or its first problem
    /// in the order the fields are checked: the token, its logprob, then each top logprob.
    fn checked(mut self) -> Result<CheckedEntry, EntryProblem> {
        let (token, logprob) = self.token_and_logprob()?;
        let top = match self.top.take() {
            None | Some(TopRead::Null) => Vec::new(),
            Some(TopRead::NotList(k)) => return Err(EntryProblem::TopNotList(k)),
            Some(TopRead::Entries(entries)) => entries
                .into_iter()
                .enumerate()
                .map(|(j, mut t)| match t.token_and_logprob() {
                    Ok((token, Some(lp))) => Ok((token, lp)),
                    Ok((_, None)) => Err(EntryProblem::Top(
                        j,
                        Box::new(EntryProblem::Logprob("null")),
                    )),
                    Err(problem) => Err(EntryProblem::Top(j, Box::new(problem))),
                })
                .collect::<Result<_, _>>()?,
        };
        Ok((token, logprob, top))
    }
}

/// Reads one token entry; `top`: whether its `top_logprobs` are read (those of a top logprob
/// are skipped).
#[derive(Clone, Copy)]
struct EntrySeed<'b> {
    budget: &'b KeptBudget,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = EntryRead;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<EntryRead, D::Error> {
        d.deserialize_any(self)
    }
}

impl EntrySeed<'_> {
    fn not_object(kind: &'static str) -> EntryRead {
        EntryRead {
            not_object: Some(kind),
            ..EntryRead::default()
        }
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = EntryRead;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a token logprob")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntryRead, A::Error> {
        let mut entry = EntryRead::default();
        // What a kept token costs beside its text: its logprob and its places in the lists.
        self.budget.charge(VALUE_COST);
        while let Some(key) = map.next_key_seed(KeptKey(self.budget))? {
            match key.as_str() {
                "token" => entry.token = Some(map.next_value_seed(ScalarSeed(self.budget))?),
                "logprob" => entry.logprob = Some(map.next_value_seed(ScalarSeed(self.budget))?),
                "top_logprobs" if self.top => {
                    entry.top = Some(map.next_value_seed(TopSeed(self.budget))?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(entry)
    }
    fn visit_unit<E>(self) -> Result<EntryRead, E> {
        Ok(EntrySeed::not_object("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EntryRead, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(EntrySeed::not_object("a list"))
    }
    other_kinds!(EntryRead, EntrySeed::not_object);
}

/// Reads `top_logprobs` of an entry: entries whose own `top_logprobs`, if any, are skipped.
#[derive(Clone, Copy)]
struct TopSeed<'b>(&'b KeptBudget);

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = TopRead;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<TopRead, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = TopRead;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of top logprobs")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopRead, A::Error> {
        let mut entries = Vec::new();
        let seed = EntrySeed {
            budget: self.0,
            top: false,
        };
        while let Some(entry) = seq.next_element_seed(seed)? {
            entries.push(entry);
        }
        Ok(TopRead::Entries(entries))
    }
    fn visit_unit<E>(self) -> Result<TopRead, E> {
        Ok(TopRead::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopRead, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(TopRead::NotList("an object"))
    }
    other_kinds!(TopRead, TopRead::NotList);
}
