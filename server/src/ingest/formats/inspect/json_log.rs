//! `.json` logs, streamed: the header's fields kept and each sample handed on as soon as it is
//! parsed, each part of the log read within its limit ([`Parts`]).

use super::header::Header;
use super::sample::{SampleSlot, SlotSeed};
use super::typed::{object, ScalarSeed};
use crate::ingest::formats::common::PythonJson;
use crate::ingest::limits::{
    mib, KeptBudget, KeptKey, LimitError, MAX_INSPECT_HEADER_BYTES, MAX_INSPECT_SAMPLE_BYTES,
    MAX_KEPT_BYTES,
};
use crate::ingest::{open_text, InputFile, ReadStop};
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use std::cell::Cell;
use std::fmt;
use std::io::{BufReader, Read};
use std::rc::Rc;

type OnSample<'a> = dyn FnMut(u64, SampleSlot, &Header) -> Result<(), ReadStop> + 'a;

/// Streams a `.json` log: keeps `eval`, `plan` and `status` in `header` and hands each element
/// of `samples` to `on_sample` (with its 1-based position and the header read so far: Inspect
/// writes `status`, `eval` and `plan` before `samples`) as soon as it is parsed. Each top-level
/// key and each kept header field is read up to [`MAX_INSPECT_HEADER_BYTES`], each sample up to
/// [`MAX_INSPECT_SAMPLE_BYTES`] ([`Parts`]); a sample whose kept fields outgrow
/// [`MAX_KEPT_BYTES`] is rejected and the read goes on.
pub(super) fn read_json(
    input: &InputFile,
    header: &mut Header,
    on_sample: &mut OnSample<'_>,
) -> Result<(), ReadStop> {
    let parts = Parts::default();
    let metered = Metered {
        inner: PythonJson::new(open_text(input)?),
        parts: parts.clone(),
    };
    let reader = BufReader::with_capacity(JSON_BUFFER_BYTES, metered);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut log = JsonLog {
        header,
        on_sample,
        stopped: None,
        parts: parts.clone(),
    };
    let result = de
        .deserialize_any(LogVisitor(&mut log))
        .and_then(|()| de.end());
    if let Some(stop) = log.stopped.take() {
        return Err(stop);
    }
    result.map_err(|e| {
        ReadStop::Input(match LimitError::in_json(e) {
            Ok(limit @ LimitError::TooLong { .. }) => match parts.part.get() {
                Part::Sample(position) => input.line_error(
                    position,
                    None,
                    format!(
                        "sample {position} of \"samples\" is {limit}; caplens reads Inspect samples up to that size"
                    ),
                ),
                _ => input.error(format!(
                    "the log's header (before \"samples\") has a field {limit}; caplens reads an Inspect header up to that size"
                )),
            },
            Ok(limit) => input.error(format!("the file {limit}")),
            Err(e) if e.is_io() => input.error(format!("cannot read: {e}")),
            Err(e) => input.error(format!("not a valid Inspect JSON log: {e}")),
        })
    })
}

/// The buffer serde_json reads a `.json` log through.
const JSON_BUFFER_BYTES: usize = 64 * 1024;

/// Which part of a `.json` log is being read, for the limit it is held to.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Part {
    /// Skipped unparsed (no limit: nothing is kept).
    #[default]
    Skipped,
    /// A top-level key or a header field caplens keeps.
    Header,
    /// The sample at this 1-based position of `samples`.
    Sample(u64),
}

/// The limit the part of a `.json` log being read is held to, shared by the visitors (which
/// start each part) and the reader under serde_json's buffer ([`Metered`]), which counts the
/// bytes. The buffer reads ahead of the parse by up to [`JSON_BUFFER_BYTES`], so a part's limit
/// is counted from the bytes read so far less one buffer: a part never gets more than its
/// limit, and always at least its limit less one buffer.
#[derive(Clone, Default)]
struct Parts(Rc<PartsState>);

#[derive(Default)]
struct PartsState {
    read: Cell<u64>,
    /// Bytes read at which the current part goes over its limit (`None`: no limit).
    end: Cell<Option<u64>>,
    limit: Cell<u64>,
    part: Cell<Part>,
}

impl std::ops::Deref for Parts {
    type Target = PartsState;
    fn deref(&self) -> &PartsState {
        &self.0
    }
}

impl Parts {
    fn start(&self, part: Part) {
        self.part.set(part);
        let limit = match part {
            Part::Skipped => {
                self.end.set(None);
                return;
            }
            Part::Header => MAX_INSPECT_HEADER_BYTES,
            Part::Sample(_) => MAX_INSPECT_SAMPLE_BYTES,
        };
        self.limit.set(limit);
        let already = self.read.get();
        self.end.set(Some(
            already.saturating_add(limit - JSON_BUFFER_BYTES as u64),
        ));
    }
}

/// Counts the bytes serde_json's buffer takes from the log and fails with
/// [`LimitError::TooLong`] past the current part's end ([`Parts`]).
struct Metered<R> {
    inner: R,
    parts: Parts,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.parts.read.get();
        let room = match self.parts.end.get() {
            // One byte past the end is asked for, to tell "exactly the limit" from "longer".
            Some(end) => (end.saturating_sub(read) + 1).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..room])?;
        self.parts.read.set(read + n as u64);
        if self
            .parts
            .end
            .get()
            .is_some_and(|end| read + n as u64 > end)
        {
            return Err(LimitError::TooLong {
                limit: self.parts.limit.get(),
            }
            .into_io());
        }
        Ok(n)
    }
}

struct JsonLog<'h, 'f, 'a> {
    header: &'h mut Header,
    on_sample: &'f mut OnSample<'a>,
    /// Why `on_sample` stopped the read (the parse error that follows is ours).
    stopped: Option<ReadStop>,
    parts: Parts,
}

struct LogVisitor<'l, 'h, 'f, 'a>(&'l mut JsonLog<'h, 'f, 'a>);

impl<'de> Visitor<'de> for LogVisitor<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (an Inspect log with \"eval\" and \"samples\")")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let parts = self.0.parts.clone();
        let budget = KeptBudget::new(MAX_INSPECT_HEADER_BYTES);
        loop {
            parts.start(Part::Header);
            let Some(key) = map.next_key_seed(KeptKey(&budget))? else {
                break;
            };
            match key.as_str() {
                "eval" => {
                    parts.start(Part::Header);
                    self.0.header.eval = map.next_value_seed(object(&budget))?;
                }
                "plan" => {
                    parts.start(Part::Header);
                    self.0.header.plan = map.next_value_seed(object(&budget))?;
                }
                "status" => {
                    parts.start(Part::Header);
                    self.0.header.status = map.next_value_seed(ScalarSeed(&budget))?.text();
                }
                "samples" => {
                    parts.start(Part::Skipped);
                    map.next_value_seed(SamplesSeed(&mut *self.0))?
                }
                _ => {
                    parts.start(Part::Skipped);
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        parts.start(Part::Skipped);
        if budget.exceeded() {
            return Err(de::Error::custom(format_args!(
                "the header's fields that caplens reads take more than {} MiB",
                mib(MAX_INSPECT_HEADER_BYTES)
            )));
        }
        Ok(())
    }
}

struct SamplesSeed<'l, 'h, 'f, 'a>(&'l mut JsonLog<'h, 'f, 'a>);

impl<'de> DeserializeSeed<'de> for SamplesSeed<'_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SamplesSeed<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of samples")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let parts = self.0.parts.clone();
        let mut position = 0u64;
        loop {
            parts.start(Part::Sample(position + 1));
            let budget = KeptBudget::new(MAX_KEPT_BYTES);
            let Some(slot) = seq.next_element_seed(SlotSeed(&budget))? else {
                break;
            };
            position += 1;
            if let Err(stop) = (self.0.on_sample)(position, slot, self.0.header) {
                self.0.stopped = Some(stop);
                return Err(de::Error::custom("read stopped"));
            }
        }
        parts.start(Part::Skipped);
        Ok(())
    }
}
