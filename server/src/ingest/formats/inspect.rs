//! Inspect AI logs, `.eval` (zip) and `.json`, docs/formats/inspect.md.
//!
//! Each sample's epoch is one rollout: problem id = sample `id`, sample index = `epoch - 1`.
//! `.eval` archives are read member by member (`samples/{id}_epoch_{n}.json`), never all samples
//! at once; `.json` logs are streamed with serde_json (one sample at a time), so neither needs
//! memory for the whole log. Only the fields caplens uses are materialised, typed where they can
//! be large (the header, `output` and its token data); `messages`, `events` and the rest are
//! skipped while parsing. Untrusted logs are read within `ingest::limits`: a header of at most
//! [`MAX_INSPECT_HEADER_BYTES`] and samples of at most [`MAX_INSPECT_SAMPLE_BYTES`] decompressed,
//! of which at most [`MAX_KEPT_BYTES`] are kept; an archive inflates within
//! [`crate::ingest::limits::MAX_INFLATION_RATIO`].
//!
//! The verdict is the first scorer of `scores` in file order (serde_json's `Map` sorts keys, so
//! `scores` is read with [`OrderedObject`]).
//!
//! Inspect is Python: its JSON may hold `NaN`/`Infinity` (metric values), read as `null`
//! ([`PythonJson`]). `.eval` members are stored, deflated (older Inspect) or zstd-compressed
//! (ZIP method 93, current Inspect). What the log says about the run (Inspect version, `eval_id`,
//! `status`, scorer) goes to [`RecordSink::source`] after the samples.

use super::common::{
    head_records, id_string, kind, partial_object, reference_text, KeptOrderedObject,
    OrderedObject, PythonJson,
};
use super::openai::LineError;
use crate::ingest::limits::{
    inflation_exceeded, mib, KeptBudget, KeptKey, KeptValue, LimitError, Limited, Tallied, Tally,
    MAX_INSPECT_HEADER_BYTES, MAX_INSPECT_SAMPLE_BYTES, MAX_KEPT_BYTES, VALUE_COST,
};
use crate::ingest::{
    open_text, FileHints, FormatSpec, InputError, InputFile, ReadStop, RecordOutcome, RecordSink,
    RolloutImporter, RolloutRecord, SourceInfo, TokenData,
};
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::Value;
use std::cell::Cell;
use std::fmt;
use std::io::{BufReader, Read};
use std::rc::Rc;
use std::sync::atomic::Ordering;

pub struct InspectImporter;

/// Samples of the head that [`InspectImporter::hints`] reads.
const HINT_SAMPLES: usize = 200;

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// This format's row in the registry ([`super::ALL`]).
static SPEC: FormatSpec = FormatSpec {
    name: "inspect",
    title: "Inspect AI log (.eval or .json)",
    extensions: &[".eval", ".json"],
};

impl RolloutImporter for InspectImporter {
    fn spec(&self) -> &'static FormatSpec {
        &SPEC
    }

    fn sniff(&self, file_name: &str, head: &[u8]) -> bool {
        if head.starts_with(ZIP_MAGIC) {
            // A zip: an Inspect log by its extension, or by its member names (local headers
            // carry them in the clear).
            // Names are stored uncompressed whatever the members' compression; every Inspect
            // since the journal was added starts with `_journal/start.json`.
            return file_name.to_ascii_lowercase().ends_with(".eval")
                || contains(head, b"_journal/start.json")
                || contains(head, b"header.json")
                || (contains(head, b"samples/") && contains(head, b"_epoch_"));
        }
        let Some(log) = partial_object(head) else {
            return false;
        };
        log.has("eval")
            && (log.has("samples") || log.has("version") || log.has("plan"))
            && log.get("eval").is_none_or(Value::is_object)
    }

    fn hints(&self, input: &InputFile) -> Result<FileHints, InputError> {
        let header = if is_zip(input)? {
            eval_header(input)?
        } else {
            let mut header = Header::default();
            let result = read_json(input, &mut header, &mut |_, _, _| {
                Err(ReadStop::Sink("header read".into()))
            });
            match result {
                Ok(()) | Err(ReadStop::Sink(_)) => {}
                Err(ReadStop::Input(e)) => return Err(e),
            }
            header
        };
        let head = head_records(self, input, HINT_SAMPLES)?;
        let eval = &header.eval;
        // A setting of the eval's generation config, else of the plan's (older logs).
        let setting = |of: fn(&GenerateConfig) -> &Option<Scalar>| {
            of(&eval.generate)
                .as_ref()
                .or(of(&header.plan.config).as_ref())
        };
        Ok(FileHints {
            model: eval.model.clone(),
            // `inspect_evals/gsm8k` → `gsm8k`.
            dataset: eval
                .task
                .as_deref()
                .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
                .filter(|t| !t.is_empty()),
            step: None,
            temperature: setting(|c| &c.temperature).and_then(Scalar::number),
            top_p: setting(|c| &c.top_p).and_then(Scalar::number),
            max_tokens: setting(|c| &c.max_tokens).and_then(Scalar::integer),
            n_per_problem: eval.epochs.or(head.per_problem),
            has_tokens: head.has_tokens,
            records_in_head: head.records,
        })
    }

    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
        let mut seen = Seen::default();
        let header = if is_zip(input)? {
            let header = eval_header(input)?;
            read_eval(input, &header, &mut seen, sink)?;
            header
        } else {
            let mut header = Header::default();
            read_json(input, &mut header, &mut |position, slot, header| match seen
                .sample(slot, position, header)
            {
                Ok(Some(record)) => sink.record(record),
                Ok(None) => Ok(()),
                Err((field, msg)) => sink.reject(input.line_error(
                    position,
                    Some(&field),
                    format!("sample {position} of \"samples\": {msg}"),
                )),
            })?;
            header
        };
        let status = header.status.as_deref().unwrap_or("not given");
        if seen.samples == 0 {
            return Err(ReadStop::Input(input.error(format!(
                "this Inspect log has no samples (status: {status}){}",
                if status == "success" {
                    "; was it run with --no-log-samples?"
                } else {
                    ""
                }
            ))));
        }
        if seen.interrupted == seen.samples {
            return Err(ReadStop::Input(input.error(format!(
                "this Inspect log has no completed sample (status: {status}; the run's end cut short all {} of its samples)",
                seen.samples
            ))));
        }
        sink.source(source_info(&header, seen.scorer.as_ref()))
    }
}

/// What the log says about the run as a whole.
fn source_info(header: &Header, scorer: Option<&(String, &'static str)>) -> SourceInfo {
    let eval = &header.eval;
    let text = |field: &Option<String>| field.clone().filter(|s| !s.is_empty());
    // `eval_id` names one task's evaluation and survives `inspect log convert`; logs older than
    // it have `run_id` (shared by the tasks of one `eval()` call) and `task_id`.
    let run_identity = match (text(&eval.eval_id), text(&eval.run_id), text(&eval.task_id)) {
        (Some(eval_id), _, _) => Some(format!("inspect:{eval_id}")),
        (None, Some(run_id), Some(task_id)) => Some(format!("inspect:{run_id}/{task_id}")),
        _ => None,
    };
    SourceInfo {
        tool: Some(match &eval.inspect_version {
            Some(v) => format!("inspect_ai {v}"),
            None => "inspect_ai".to_string(),
        }),
        run_identity,
        status: header.status.clone().filter(|s| s != "success"),
        verdict: scorer.map(|(name, values)| format!("Inspect scorer {name} ({values})")),
    }
}

/// What the samples of a log showed so far.
#[derive(Debug, Default)]
struct Seen {
    /// Sample slots in the log (whatever became of them).
    samples: u64,
    /// Samples left out because the run's end cut them short.
    interrupted: u64,
    /// The first scorer that gave a verdict, and what its values are.
    scorer: Option<(String, &'static str)>,
}

impl Seen {
    /// The record of one sample; `Ok(None)` for a sample the run's end interrupted (its
    /// `CancelledError` says nothing about the sample, and the run's status is sent).
    fn sample(
        &mut self,
        slot: SampleSlot,
        line: u64,
        header: &Header,
    ) -> Result<Option<RolloutRecord>, LineError> {
        self.samples += 1;
        if interrupted_by_run_end(&slot, header) {
            self.interrupted += 1;
            return Ok(None);
        }
        let (record, scorer) = to_record(slot, line)?;
        if self.scorer.is_none() {
            self.scorer = scorer;
        }
        Ok(Some(record))
    }
}

/// Whether the sample's error is the cancellation of a run that did not succeed (Ctrl-C, or
/// another sample's error stopping the run): Inspect records the samples in flight with a
/// `CancelledError`.
fn interrupted_by_run_end(slot: &SampleSlot, header: &Header) -> bool {
    let SampleSlot::Sample(s) = slot else {
        return false;
    };
    let cancelled = s
        .error
        .as_ref()
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with("CancelledError"));
    cancelled && matches!(header.status.as_deref(), Some("cancelled" | "error"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn is_zip(input: &InputFile) -> Result<bool, InputError> {
    let mut file =
        std::fs::File::open(&input.path).map_err(|e| input.error(format!("cannot open: {e}")))?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(input.error(format!("cannot read: {e}"))),
        }
    }
    Ok(got == 4 && magic == ZIP_MAGIC)
}

/// The run description of a log, as much of it as caplens uses: `eval` (EvalSpec), `plan`'s
/// generation config and `status` (`success`, `cancelled`, `error`, `started`). Read field by
/// field; the rest of the header (the plan's steps, results, stats) is skipped unparsed.
#[derive(Debug, Default)]
struct Header {
    eval: EvalSpec,
    plan: Plan,
    status: Option<String>,
}

/// What caplens reads of an EvalSpec.
#[derive(Debug, Default)]
struct EvalSpec {
    model: Option<String>,
    task: Option<String>,
    eval_id: Option<String>,
    run_id: Option<String>,
    task_id: Option<String>,
    /// `packages.inspect_ai`.
    inspect_version: Option<String>,
    /// `model_generate_config`.
    generate: GenerateConfig,
    /// `config.epochs`.
    epochs: Option<i64>,
}

/// Generation settings as given: `None` when absent or null. A setting of another type is kept
/// (and reads as no value), so that an older `plan.config` does not stand in for it.
#[derive(Debug, Default)]
struct GenerateConfig {
    temperature: Option<Scalar>,
    top_p: Option<Scalar>,
    max_tokens: Option<Scalar>,
}

#[derive(Debug, Default)]
struct Plan {
    config: GenerateConfig,
}

#[derive(Debug, Default)]
struct Packages {
    inspect_ai: Option<String>,
}

#[derive(Debug, Default)]
struct EvalConfig {
    epochs: Option<i64>,
}

impl Fields for Header {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        match key {
            "eval" => self.eval = map.next_value_seed(object(budget))?,
            "plan" => self.plan = map.next_value_seed(object(budget))?,
            "status" => self.status = map.next_value_seed(ScalarSeed(budget))?.text(),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Fields for EvalSpec {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        let text = |map: &mut A| Ok::<_, A::Error>(map.next_value_seed(ScalarSeed(budget))?.text());
        match key {
            "model" => self.model = text(map)?,
            "task" => self.task = text(map)?,
            "eval_id" => self.eval_id = text(map)?,
            "run_id" => self.run_id = text(map)?,
            "task_id" => self.task_id = text(map)?,
            "packages" => {
                self.inspect_version = map.next_value_seed(object::<Packages>(budget))?.inspect_ai
            }
            "model_generate_config" => self.generate = map.next_value_seed(object(budget))?,
            "config" => self.epochs = map.next_value_seed(object::<EvalConfig>(budget))?.epochs,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Fields for GenerateConfig {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        let slot = match key {
            "temperature" => &mut self.temperature,
            "top_p" => &mut self.top_p,
            "max_tokens" => &mut self.max_tokens,
            _ => return Ok(false),
        };
        *slot = Some(map.next_value_seed(ScalarSeed(budget))?).filter(|v| *v != Scalar::Null);
        Ok(true)
    }
}

impl Fields for Plan {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        if key != "config" {
            return Ok(false);
        }
        self.config = map.next_value_seed(object(budget))?;
        Ok(true)
    }
}

impl Fields for Packages {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        if key != "inspect_ai" {
            return Ok(false);
        }
        self.inspect_ai = map.next_value_seed(ScalarSeed(budget))?.text();
        Ok(true)
    }
}

impl Fields for EvalConfig {
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error> {
        if key != "epochs" {
            return Ok(false);
        }
        self.epochs = map.next_value_seed(ScalarSeed(budget))?.integer();
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------------
// Typed parsing: what caplens keeps of a log, without a `Value` tree of the rest

/// A JSON leaf as a typed field sees it: the leaf, or the kind of the list or object found
/// instead (skipped unparsed). Text is charged to the record's [`KeptBudget`].
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
    List,
    Object,
}

impl Scalar {
    fn text(self) -> Option<String> {
        match self {
            Scalar::Text(t) => Some(t),
            _ => None,
        }
    }
    /// As `Value::as_f64`.
    fn number(&self) -> Option<f64> {
        match *self {
            Scalar::Int(i) => Some(i as f64),
            Scalar::UInt(u) => Some(u as f64),
            Scalar::Float(f) => Some(f),
            _ => None,
        }
    }
    /// As `Value::as_i64`.
    fn integer(&self) -> Option<i64> {
        match *self {
            Scalar::Int(i) => Some(i),
            Scalar::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }
    /// As [`kind`] says of a `Value`.
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_) => "a number",
            Scalar::Text(_) => "a string",
            Scalar::List => "a list",
            Scalar::Object => "an object",
        }
    }
}

/// Reads a [`Scalar`], charging its text to the budget (`Null` once the budget is spent).
#[derive(Clone, Copy)]
struct ScalarSeed<'b>(&'b KeptBudget);

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_> {
    type Value = Scalar;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_> {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(if self.0.charge(VALUE_COST + v.len() as u64) {
            Scalar::Text(v.to_owned())
        } else {
            Scalar::Null
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

/// An object of which a type keeps some fields ([`Fields::field`]) and skips the others
/// unparsed. Anything but an object reads as the type's default (as `Value::get` finds nothing
/// in it).
trait Fields: Default {
    /// Reads the value of `key` when the type keeps it; `false` to have it skipped.
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error>;
}

struct ObjectSeed<'b, T>(&'b KeptBudget, std::marker::PhantomData<T>);

fn object<T: Fields>(budget: &KeptBudget) -> ObjectSeed<'_, T> {
    ObjectSeed(budget, std::marker::PhantomData)
}

impl<'de, T: Fields> DeserializeSeed<'de> for ObjectSeed<'_, T> {
    type Value = T;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Fields> Visitor<'de> for ObjectSeed<'_, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut fields = T::default();
        while let Some(key) = map.next_key_seed(KeptKey(self.0))? {
            if !fields.field(&key, &mut map, self.0)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(fields)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(T::default())
    }
    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<T, E> {
        Ok(T::default())
    }
}

// ---------------------------------------------------------------------------------------------
// One sample

/// The fields of an EvalSample that caplens reads; everything else is skipped unparsed.
#[derive(Debug, Default)]
struct Sample {
    id: Option<Value>,
    epoch: Option<Value>,
    input: Option<Value>,
    target: Option<Value>,
    output: OutputSlot,
    scores: Option<OrderedObject>,
    error: Option<Value>,
    attachments: Option<Value>,
}

/// A sample, or what stood in its place.
#[derive(Debug)]
enum SampleSlot {
    Sample(Box<Sample>),
    NotObject(&'static str),
    /// A sample whose fields caplens reads took more than the budget (its limit), so it was
    /// skipped rather than kept.
    TooLarge(u64),
}

/// Reads one sample against a [`KeptBudget`] ([`MAX_KEPT_BYTES`]).
#[derive(Clone, Copy)]
struct SlotSeed<'b>(&'b KeptBudget);

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

fn err(field: impl Into<String>, msg: impl Into<String>) -> LineError {
    (field.into(), msg.into())
}

/// Longest excerpt of a failed sample's error message in the rejection.
const ERROR_EXCERPT_CHARS: usize = 200;

/// The record of one sample (`line`: its position, for messages), and its first scorer's name
/// and kind of values when it gave a verdict.
fn to_record(
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
fn content_text(content: &Value) -> Option<String> {
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

type Output = (Option<String>, Option<String>, Option<TokenData>);

/// `output` of a sample as read: absent or null, a ModelOutput, or another kind of value.
#[derive(Debug, Default)]
enum OutputSlot {
    #[default]
    Absent,
    Output(Box<OutputRead>),
    NotObject(&'static str),
}

/// What caplens reads of a ModelOutput: its first choice and `completion`, parsed as they stream
/// rather than as a `Value` tree (token data as a tree costs about forty times its text: an
/// object per top logprob). Type problems are kept for [`read_output`] to report in its order.
#[derive(Debug, Default)]
struct OutputRead {
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
enum Logprobs {
    /// Absent or null, or without `content` (or with a null one).
    #[default]
    None,
    NotObject(&'static str),
    ContentNotList(&'static str),
    /// `logprobs.content`: the token data, or the first entry's problem.
    Tokens(Result<TokenData, LineError>),
}

/// Where a sample's token data is, for messages.
const TOKENS_AT: &str = "output.choices[0].logprobs.content";

/// The kind of value a typed visitor got instead of the one it reads (as [`kind`] names it);
/// lists and objects are skipped.
macro_rules! other_kinds {
    ($value:ty, $wrap:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$value, E> {
            Ok($wrap("a boolean"))
        }
        fn visit_i64<E>(self, _: i64) -> Result<$value, E> {
            Ok($wrap("a number"))
        }
        fn visit_u64<E>(self, _: u64) -> Result<$value, E> {
            Ok($wrap("a number"))
        }
        fn visit_f64<E>(self, _: f64) -> Result<$value, E> {
            Ok($wrap("a number"))
        }
        fn visit_str<E>(self, _: &str) -> Result<$value, E> {
            Ok($wrap("a string"))
        }
    };
}

#[derive(Clone, Copy)]
struct OutputSeed<'b>(&'b KeptBudget);

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

/// `logprobs.content`: one entry `{token, logprob, top_logprobs: [{token, logprob}]}` per token
/// (as OpenAI, vLLM and Inspect write it), read into [`TokenData`] entry by entry. After the
/// first bad entry the rest is skipped: the sample is rejected with that entry's problem.
#[derive(Clone, Copy)]
struct TokensSeed<'b>(&'b KeptBudget);

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

/// Response text, stop reason and token data of `output.choices[0]` (`output.completion` when
/// there is no choice).
fn read_output(output: OutputRead) -> Result<Output, LineError> {
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
fn verdict(scores: Option<&OrderedObject>) -> Result<Verdict, LineError> {
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

// ---------------------------------------------------------------------------------------------
// .eval (zip)

type Archive = zip::ZipArchive<BufReader<std::fs::File>>;

/// The archive of `input`. Opening reads the central directory at the end of the file, so
/// progress is not counted by bytes read but by members done ([`read_eval`]).
fn open_archive(input: &InputFile) -> Result<Archive, InputError> {
    let file =
        std::fs::File::open(&input.path).map_err(|e| input.error(format!("cannot open: {e}")))?;
    zip::ZipArchive::new(BufReader::with_capacity(256 * 1024, file)).map_err(|e| {
        input.error(format!(
            "not a readable .eval archive (truncated or corrupt zip): {e}"
        ))
    })
}

/// Whether a member is one sample: `samples/{id}_epoch_{n}.json`.
fn is_sample_member(name: &str) -> bool {
    name.strip_prefix("samples/")
        .and_then(|rest| rest.strip_suffix(".json"))
        .is_some_and(|stem| stem.contains("_epoch_") && !stem.contains('/'))
}

/// The compression methods of the members Inspect has written: stored, deflate (older
/// versions) and zstd (ZIP method 93, current versions).
fn readable_method(method: zip::CompressionMethod) -> bool {
    use zip::CompressionMethod as M;
    matches!(method, M::Stored | M::Deflated | M::Zstd)
}

/// The error for a member whose compression caplens cannot read (the whole archive, since
/// Inspect compresses every member alike).
fn unreadable_method(input: &InputFile, name: &str, method: zip::CompressionMethod) -> InputError {
    let shown = match method.to_string() {
        n if n == "Unknown" => format!("{method:?}"),
        n => n,
    };
    input.error(format!(
        "member {name} of the .eval archive is compressed with ZIP method {shown}, which caplens cannot read (it reads stored, deflate and zstd members: what Inspect writes)"
    ))
}

fn read_eval(
    input: &InputFile,
    header: &Header,
    seen: &mut Seen,
    sink: &mut dyn RecordSink,
) -> Result<(), ReadStop> {
    let mut archive = open_archive(input)?;
    let archive_bytes = std::fs::metadata(&input.path).map_or(0, |m| m.len());
    // Bytes the sample members inflated to, together (against the archive's size).
    let inflated = Tally::default();
    for index in 0..archive.len() {
        let line = index as u64 + 1;
        if inflation_exceeded(inflated.get(), archive_bytes) {
            return Err(ReadStop::Input(input.error(format!(
                "the .eval archive {}",
                LimitError::Inflation {
                    inflated: inflated.get(),
                    compressed: archive_bytes,
                }
            ))));
        }
        let member = archive.by_index(index).map_err(|e| {
            ReadStop::Input(input.error(format!("corrupt .eval archive at member {line}: {e}")))
        })?;
        let name = member.name().map(|n| n.into_owned()).unwrap_or_default();
        // Progress: the end of this member's data in the file.
        let member_end = member
            .header_start()
            .saturating_add(member.compressed_size());
        input.progress.fetch_max(member_end, Ordering::Relaxed);
        if !is_sample_member(&name) {
            continue;
        }
        if !readable_method(member.compression()) {
            return Err(ReadStop::Input(unreadable_method(
                input,
                &name,
                member.compression(),
            )));
        }
        let member = Limited::new(
            Tallied {
                inner: member,
                tally: inflated.clone(),
            },
            MAX_INSPECT_SAMPLE_BYTES,
        );
        let budget = KeptBudget::new(MAX_KEPT_BYTES);
        let mut de = serde_json::Deserializer::from_reader(BufReader::new(PythonJson::new(member)));
        let parsed = SlotSeed(&budget)
            .deserialize(&mut de)
            .and_then(|slot| de.end().map(|()| slot));
        match parsed.map_err(LimitError::in_json) {
            Ok(slot) => match seen.sample(slot, line, header) {
                Ok(Some(record)) => sink.record(record)?,
                Ok(None) => {}
                Err((field, msg)) => {
                    sink.reject(input.line_error(line, Some(&field), format!("{name}: {msg}")))?
                }
            },
            Err(Ok(limit)) => {
                seen.samples += 1;
                sink.reject(input.line_error(
                    line,
                    None,
                    format!(
                        "{name}: {limit} decompressed; caplens reads Inspect samples up to {} MiB",
                        mib(MAX_INSPECT_SAMPLE_BYTES)
                    ),
                ))?
            }
            Err(Err(e)) if e.is_io() => {
                return Err(ReadStop::Input(input.error(format!(
                    "corrupt .eval archive: cannot read member {name}: {e}"
                ))))
            }
            Err(Err(e)) => {
                seen.samples += 1;
                sink.reject(input.line_error(line, None, format!("{name}: invalid JSON: {e}")))?
            }
        }
    }
    if let Ok(meta) = std::fs::metadata(&input.path) {
        input.progress.fetch_max(meta.len(), Ordering::Relaxed);
    }
    Ok(())
}

/// `eval`, `plan` and `status` of `header.json`, or of `_journal/start.json` in a log still
/// being written (status `started`), which has no header yet. Either is read up to
/// [`MAX_INSPECT_HEADER_BYTES`] decompressed.
fn eval_header(input: &InputFile) -> Result<Header, InputError> {
    let mut archive = open_archive(input)?;
    for name in ["header.json", "_journal/start.json"] {
        let Some(index) = archive.index_for_name(name) else {
            continue;
        };
        let member = archive
            .by_index(index)
            .map_err(|e| input.error(format!("corrupt .eval archive: {name}: {e}")))?;
        if !readable_method(member.compression()) {
            return Err(unreadable_method(input, name, member.compression()));
        }
        let member = Limited::new(member, MAX_INSPECT_HEADER_BYTES);
        let budget = KeptBudget::new(MAX_INSPECT_HEADER_BYTES);
        let mut de = serde_json::Deserializer::from_reader(BufReader::new(PythonJson::new(member)));
        let mut header = object::<Header>(&budget)
            .deserialize(&mut de)
            .and_then(|header| de.end().map(|()| header))
            .map_err(|e| match LimitError::in_json(e) {
                Ok(limit) => input.error(format!(
                    "member {name} of the .eval archive is {limit} decompressed; caplens reads an Inspect header up to that size"
                )),
                Err(e) if e.is_io() => input.error(format!(
                    "corrupt .eval archive: cannot read member {name}: {e}"
                )),
                Err(e) => input.error(format!("{name}: not valid JSON: {e}")),
            })?;
        if budget.exceeded() {
            return Err(input.error(format!(
                "member {name} of the .eval archive holds more than {} MiB of fields caplens reads; caplens reads an Inspect header up to that size",
                mib(MAX_INSPECT_HEADER_BYTES)
            )));
        }
        if name != "header.json" {
            header.status = Some("started".to_string());
        }
        return Ok(header);
    }
    Ok(Header::default())
}

// ---------------------------------------------------------------------------------------------
// .json (streamed)

type OnSample<'a> = dyn FnMut(u64, SampleSlot, &Header) -> Result<(), ReadStop> + 'a;

/// Streams a `.json` log: keeps `eval`, `plan` and `status` in `header` and hands each element
/// of `samples` to `on_sample` (with its 1-based position and the header read so far: Inspect
/// writes `status`, `eval` and `plan` before `samples`) as soon as it is parsed. Each top-level
/// key and each kept header field is read up to [`MAX_INSPECT_HEADER_BYTES`], each sample up to
/// [`MAX_INSPECT_SAMPLE_BYTES`] ([`Parts`]); a sample whose kept fields outgrow
/// [`MAX_KEPT_BYTES`] is rejected and the read goes on.
fn read_json(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::formats::common::{fixture, read_all, temp_file};

    type Row<'a> = (
        u64,
        &'a str,
        Option<u64>,
        RecordOutcome,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );

    fn rows(records: &[RolloutRecord]) -> Vec<Row<'_>> {
        records
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.problem_id.as_str(),
                    r.sample,
                    r.outcome,
                    r.answer.as_deref(),
                    r.response.as_deref(),
                    r.finish_reason.as_deref(),
                )
            })
            .collect()
    }

    fn expected(lines: [u64; 6]) -> Vec<Row<'static>> {
        use RecordOutcome::*;
        vec![
            (
                lines[0],
                "1",
                Some(0),
                Graded(true),
                Some("204"),
                Some("The answer is \\boxed{204}."),
                Some("stop"),
            ),
            (
                lines[1],
                "1",
                Some(1),
                Graded(false),
                Some("200"),
                Some("So \\boxed{200}"),
                Some("max_tokens"),
            ),
            (
                lines[2],
                "p-2",
                Some(0),
                Graded(true),
                Some("2"),
                Some("<script>alert(1)</script> 2"),
                None,
            ),
            (
                lines[3],
                "p-2",
                Some(1),
                Graded(false),
                Some("3"),
                Some("A long answer, $\\frac{6}{2}$, so \\boxed{3}"),
                Some("stop"),
            ),
            (
                lines[4],
                "4",
                Some(0),
                Ungraded,
                None,
                Some("7"),
                Some("stop"),
            ),
            (
                lines[5],
                "4",
                Some(1),
                Graded(false),
                None,
                Some(""),
                Some("stop"),
            ),
        ]
    }

    fn check_common(records: &[RolloutRecord]) {
        let refs: Vec<_> = records.iter().map(|r| r.reference.as_deref()).collect();
        assert_eq!(
            refs,
            [
                Some("204"),
                Some("204"),
                Some("2"),
                Some("2"),
                Some("2"),
                Some("2")
            ]
        );
        assert_eq!(
            records[0].prompt.as_deref(),
            Some("Find the number of ordered pairs.")
        );
        assert_eq!(records[2].prompt.as_deref(), Some("What is $1+1$?"));
        assert_eq!(
            records[1].tokens,
            Some(TokenData {
                tokens: vec!["So".into(), " \\boxed{200}".into()],
                logprobs: vec![Some(-0.25), Some(-9999.0)],
                top_logprobs: Some(vec![
                    vec![("So".into(), -0.25), ("Thus".into(), -1.5)],
                    vec![(" \\boxed{204}".into(), -0.1)],
                ]),
                entropies: None,
                rbf: None,
                hidden_norms: None,
            })
        );
        assert!(records
            .iter()
            .enumerate()
            .all(|(i, r)| (i == 1) == r.tokens.is_some()));
        assert!(records
            .iter()
            .all(|r| r.model.is_none() && r.dataset.is_none()));
    }

    #[test]
    fn reads_an_eval_archive_member_by_member() {
        let (sink, result) = read_all(&InspectImporter, &fixture("inspect/log.eval"), "log.eval");
        result.unwrap();
        assert_eq!(rows(&sink.records), expected([2, 3, 4, 5, 7, 8]));
        check_common(&sink.records);
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            ["log.eval:6: field \"error\": samples/3_epoch_1.json: the sample failed in Inspect (RuntimeError: API timeout), so it has no rollout; --skip-invalid (skip_invalid=true) imports the other samples"]
        );
    }

    #[test]
    fn reads_a_json_log() {
        let (sink, result) = read_all(&InspectImporter, &fixture("inspect/log.json"), "log.json");
        result.unwrap();
        assert_eq!(rows(&sink.records), expected([1, 2, 3, 4, 6, 7]));
        check_common(&sink.records);
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            ["log.json:5: field \"error\": sample 5 of \"samples\": the sample failed in Inspect (RuntimeError: API timeout), so it has no rollout; --skip-invalid (skip_invalid=true) imports the other samples"]
        );
    }

    #[test]
    fn reads_a_gzipped_json_log() {
        use std::io::Write;
        let plain = std::fs::read(fixture("inspect/log.json")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let (path, _dir) = temp_file("log.json.gz", &gz.finish().unwrap());
        let (sink, result) = read_all(&InspectImporter, &path, "log.json.gz");
        result.unwrap();
        assert_eq!(rows(&sink.records), expected([1, 2, 3, 4, 6, 7]));
    }

    #[test]
    fn hints_of_both_encodings() {
        for name in ["log.eval", "log.json"] {
            let input = InputFile::new(fixture(&format!("inspect/{name}")), name);
            assert_eq!(
                InspectImporter.hints(&input).unwrap(),
                FileHints {
                    model: Some("openai/gpt-4o-mini".into()),
                    dataset: Some("aime2024".into()),
                    step: None,
                    temperature: Some(0.7),
                    top_p: Some(0.95),
                    max_tokens: Some(2048),
                    n_per_problem: Some(2),
                    has_tokens: true,
                    records_in_head: 6,
                },
                "{name}"
            );
            assert!(
                input.progress.load(Ordering::Relaxed) > 0,
                "{name}: progress counted"
            );
        }
    }

    #[test]
    fn sniff() {
        let eval = std::fs::read(fixture("inspect/log.eval")).unwrap();
        let json = std::fs::read(fixture("inspect/log.json")).unwrap();
        assert!(InspectImporter.sniff("log.eval", &eval));
        assert!(
            InspectImporter.sniff("upload.bin", &eval),
            "by member names"
        );
        assert!(InspectImporter.sniff("log.json", &json));
        assert!(
            InspectImporter.sniff("log.json", &json[..300]),
            "a cut head"
        );
        assert!(!InspectImporter.sniff("x.zip", b"PK\x03\x04\x14\x00other.txt"));
        assert!(!InspectImporter.sniff(
            "x.json",
            br#"{"model":"m","problem_id":"1","correct":true}"#
        ));
        assert!(!InspectImporter.sniff("x.json", br#"{"eval":"not an object","version":1}"#));
    }

    #[test]
    fn corrupt_archives_stop_the_read() {
        let eval = std::fs::read(fixture("inspect/log.eval")).unwrap();
        // Truncated: no central directory.
        let (path, _dir) = temp_file("cut.eval", &eval[..eval.len() / 2]);
        let (sink, result) = read_all(&InspectImporter, &path, "cut.eval");
        let Err(ReadStop::Input(e)) = result else {
            panic!("{result:?}")
        };
        assert!(
            e.to_string()
                .starts_with("cut.eval: not a readable .eval archive (truncated or corrupt zip): "),
            "{e}"
        );
        assert!(sink.records.is_empty());
        assert!(InspectImporter
            .hints(&InputFile::new(&path, "cut.eval"))
            .is_err());
        // Damaged compressed data inside a sample member.
        let mut damaged = eval.clone();
        let at = find(&damaged, b"samples/1_epoch_2.json").unwrap() + 40;
        for b in &mut damaged[at..at + 30] {
            *b ^= 0x5a;
        }
        let (path, _dir2) = temp_file("damaged.eval", &damaged);
        let (sink, result) = read_all(&InspectImporter, &path, "damaged.eval");
        assert_eq!(sink.records.len(), 1, "the first sample was read");
        match result {
            Err(ReadStop::Input(e)) => assert!(
                e.to_string()
                    .contains("damaged.eval: corrupt .eval archive"),
                "{e}"
            ),
            // The damage may also surface as a JSON error in that member.
            Ok(()) => assert_eq!(sink.errors[0].line, Some(3)),
            Err(other) => panic!("{other:?}"),
        }
        // Not a zip and not JSON.
        let (path, _dir3) = temp_file("x.eval", b"<html><script>alert(1)</script>");
        let (_, result) = read_all(&InspectImporter, &path, "x.eval");
        let Err(ReadStop::Input(e)) = result else {
            panic!()
        };
        assert!(
            e.to_string()
                .starts_with("x.eval: not a valid Inspect JSON log: "),
            "{e}"
        );
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn bad_samples() {
        let samples = [
            r#"{"epoch":1}"#,
            r#"{"id":1}"#,
            r#"{"id":1,"epoch":0}"#,
            r#"{"id":[1],"epoch":1}"#,
            r#"{"id":1,"epoch":1,"scores":[1]}"#,
            r#"{"id":1,"epoch":1,"scores":{"m":{"value":"maybe"}}}"#,
            r#"{"id":1,"epoch":1,"scores":{"m":"C"}}"#,
            r#"{"id":1,"epoch":1,"output":{"choices":[{"message":{"content":5}}]}}"#,
            r#"{"id":1,"epoch":1,"output":{"choices":[{"message":{"content":"a"},"logprobs":{"content":[{"token":1}]}}]}}"#,
            r#"{"id":1,"epoch":1,"output":"text"}"#,
            r#"{"id":1,"epoch":1,"target":{"a":1}}"#,
            r#"{"id":1,"epoch":1,"input":7}"#,
            r#""a string""#,
            r#"{"id":"ok","epoch":3,"scores":{"m":{"value":"0.99"},"n":{"value":"C"}},"output":{"choices":[]}}"#,
        ];
        let text = format!(
            r#"{{"version":2,"eval":{{"task":"t"}},"samples":[{}],"reductions":null}}"#,
            samples.join(",\n")
        );
        let (path, _dir) = temp_file("bad.json", text.as_bytes());
        let (sink, result) = read_all(&InspectImporter, &path, "bad.json");
        result.unwrap();
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        let s = |i: u64, field: &str, msg: &str| {
            format!("bad.json:{i}: field \"{field}\": sample {i} of \"samples\": {msg}")
        };
        assert_eq!(
            errors,
            vec![
                s(1, "id", "required (the sample id)"),
                s(2, "epoch", "required (the epoch, from 1)"),
                s(3, "epoch", "expected a positive integer, got 0"),
                s(4, "id", "expected a string or an integer, got a list"),
                s(5, "scores", "expected an object of scorer name → score, got a list"),
                s(6, "scores.m.value", "expected \"C\", \"I\", \"P\", \"N\", a number or a boolean, got the string \"maybe\""),
                s(7, "scores.m", "expected an object (a Score), got a string"),
                s(8, "output.choices[0].message.content", "expected a string or a list of content parts, got a number"),
                s(9, "output.choices[0].logprobs.content[0].token", "expected a string, got a number"),
                s(10, "output", "expected an object (ModelOutput), got a string"),
                s(11, "target", "expected a string or a list of strings, got an object"),
                s(12, "input", "expected a string or a list of messages, got a number"),
                s(13, "samples", "expected a sample object, got a string"),
            ]
        );
        assert_eq!(sink.records.len(), 1);
        let r = &sink.records[0];
        assert_eq!(
            (
                r.problem_id.as_str(),
                r.sample,
                r.outcome,
                r.response.as_deref()
            ),
            ("ok", Some(2), RecordOutcome::Graded(false), None)
        );
    }

    #[test]
    fn a_json_syntax_error_mid_file_stops_after_the_samples_before_it() {
        let text = r#"{"eval":{},"samples":[{"id":1,"epoch":1},{"id":2,"epoch":1,"#;
        let (path, _dir) = temp_file("cut.json", text.as_bytes());
        let (sink, result) = read_all(&InspectImporter, &path, "cut.json");
        assert_eq!(sink.records.len(), 1);
        let Err(ReadStop::Input(e)) = result else {
            panic!("{result:?}")
        };
        assert!(
            e.to_string()
                .starts_with("cut.json: not a valid Inspect JSON log: EOF while parsing"),
            "{e}"
        );
    }

    #[test]
    fn an_eval_with_bad_members() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            z.start_file("samples/1_epoch_1.json", opts).unwrap();
            z.write_all(b"{not json").unwrap();
            z.start_file("samples/2_epoch_1.json", opts).unwrap();
            z.write_all(b"\xff\xfe").unwrap();
            z.start_file("samples/3_epoch_1.json", opts).unwrap();
            let long = "y".repeat(2 << 20);
            z.write_all(
                format!(r#"{{"id":3,"epoch":1,"output":{{"completion":"{long}"}}}}"#).as_bytes(),
            )
            .unwrap();
            z.finish().unwrap();
        }
        let (path, _dir) = temp_file("m.eval", buf.get_ref());
        let (sink, result) = read_all(&InspectImporter, &path, "m.eval");
        result.unwrap();
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "m.eval:1: samples/1_epoch_1.json: invalid JSON: key must be a string"
            ),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("m.eval:2: samples/2_epoch_1.json: invalid JSON: "),
            "{}",
            errors[1]
        );
        assert_eq!(sink.records.len(), 1);
        assert_eq!(sink.records[0].response.as_ref().unwrap().len(), 2 << 20);
    }

    /// The logs written by Inspect itself (tests/fixtures/real/inspect, see its README).
    fn real(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/real/inspect")
            .join(name)
    }

    /// (problem, sample, verdict, answer) of each record.
    fn verdicts(records: &[RolloutRecord]) -> Vec<(String, u64, RecordOutcome, Option<String>)> {
        let mut v: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.problem_id.clone(),
                    r.sample.unwrap(),
                    r.outcome,
                    r.answer.clone(),
                )
            })
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    #[test]
    fn real_zstd_eval_and_its_json_conversion_read_alike() {
        let (eval, result) = read_all(
            &InspectImporter,
            &real("arith_match_epochs3.eval"),
            "arith_match_epochs3.eval",
        );
        result.unwrap();
        let (json, result) = read_all(
            &InspectImporter,
            &real("arith_match_epochs3.json"),
            "arith_match_epochs3.json",
        );
        result.unwrap();
        assert!(eval.errors.is_empty() && json.errors.is_empty());
        assert_eq!(eval.records.len(), 12);
        assert_eq!(verdicts(&eval.records), verdicts(&json.records));
        // 7 of 12 correct: Inspect's accuracy in the log is 0.5833.
        let correct = eval
            .records
            .iter()
            .filter(|r| r.outcome == RecordOutcome::Graded(true))
            .count();
        assert_eq!(correct, 7);
        let r = &eval.records[0];
        assert_eq!(
            (
                r.prompt.as_deref(),
                r.reference.as_deref(),
                r.response.as_deref()
            ),
            (
                Some("What is 2+2? Answer with a number."),
                Some("4"),
                Some("4")
            )
        );
        assert_eq!(eval.sources, json.sources);
        assert_eq!(eval.sources.len(), 1);
        let source = &eval.sources[0];
        assert_eq!(source.tool.as_deref(), Some("inspect_ai 0.3.285"));
        assert!(source
            .run_identity
            .as_deref()
            .is_some_and(|id| id.starts_with("inspect:") && id.len() > 10));
        assert_eq!(source.status, None);
        assert_eq!(
            source.verdict.as_deref(),
            Some("Inspect scorer match (C/I)")
        );
    }

    #[test]
    fn real_nan_metrics_read_in_both_containers() {
        for name in ["arith_nan_metric.eval", "arith_nan_metric.json"] {
            let bytes = std::fs::read(real(name)).unwrap();
            if name.ends_with(".json") {
                assert!(find(&bytes, b"NaN").is_some(), "the log holds a NaN");
            }
            let (sink, result) = read_all(&InspectImporter, &real(name), name);
            result.unwrap();
            assert_eq!(sink.records.len(), 4, "{name}");
            let input = InputFile::new(real(name), name);
            let hints = InspectImporter.hints(&input).unwrap();
            assert_eq!(hints.dataset.as_deref(), Some("arith_nan"), "{name}");
        }
    }

    #[test]
    fn real_failed_sample_is_reported_once_and_short() {
        let name = "arith_sample_error.eval";
        let (sink, result) = read_all(&InspectImporter, &real(name), name);
        result.unwrap();
        assert_eq!(sink.records.len(), 3);
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            ["arith_sample_error.eval:6: field \"error\": samples/3_epoch_1.json: the sample failed in Inspect (RuntimeError('tool backend unavailable: connection refused (127.0.0.1:9)…), so it has no rollout; --skip-invalid (skip_invalid=true) imports the other samples"]
        );
    }

    #[test]
    fn real_cancelled_and_failed_runs_import_with_their_status() {
        for (name, status, records, errors) in [
            ("arith_cancelled.eval", "cancelled", 2, 0),
            ("arith_cancelled.json", "cancelled", 2, 0),
            // The failing sample is reported; the one cancelled by the failure is not.
            ("arith_run_error.eval", "error", 2, 1),
            // Killed: no header.json, the journal says the run started.
            ("arith_killed.eval", "started", 2, 0),
        ] {
            let (sink, result) = read_all(&InspectImporter, &real(name), name);
            result.unwrap();
            assert_eq!(
                (sink.records.len(), sink.errors.len()),
                (records, errors),
                "{name}"
            );
            assert_eq!(sink.sources[0].status.as_deref(), Some(status), "{name}");
        }
        let name = "arith_cancelled_header_only.eval";
        let (sink, result) = read_all(&InspectImporter, &real(name), name);
        let Err(ReadStop::Input(e)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            e.to_string(),
            "arith_cancelled_header_only.eval: this Inspect log has no samples (status: cancelled)"
        );
        assert!(sink.records.is_empty());
        assert_eq!(
            InspectImporter
                .hints(&InputFile::new(real(name), name))
                .unwrap_err()
                .to_string(),
            e.to_string()
        );
    }

    #[test]
    fn a_log_whose_every_sample_was_cut_short_says_so() {
        let text = r#"{"version":2,"status":"cancelled","eval":{"eval_id":"e"},"samples":[{"id":1,"epoch":1,"error":{"message":"CancelledError('Cancelled by SIGINT')","traceback":"..."}}]}"#;
        let (path, _dir) = temp_file("c.json", text.as_bytes());
        let (sink, result) = read_all(&InspectImporter, &path, "c.json");
        let Err(ReadStop::Input(e)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            e.to_string(),
            "c.json: this Inspect log has no completed sample (status: cancelled; the run's end cut short all 1 of its samples)"
        );
        assert!(sink.errors.is_empty());
        // In a run that succeeded, a CancelledError is the sample's own failure.
        let text = text.replace("cancelled", "success");
        let (path, _dir) = temp_file("s.json", text.as_bytes());
        let (sink, result) = read_all(&InspectImporter, &path, "s.json");
        result.unwrap();
        assert_eq!(sink.errors.len(), 1);
        assert_eq!(sink.errors[0].field.as_deref(), Some("error"));
    }

    #[test]
    fn real_logs_are_detected_under_any_name() {
        for name in [
            "arith_match_epochs3.eval",
            "arith_cancelled_header_only.eval",
        ] {
            let head = std::fs::read(real(name)).unwrap();
            assert!(
                InspectImporter.sniff("upload", &head[..2000.min(head.len())]),
                "{name}"
            );
            let input = InputFile::new(real(name), "upload");
            assert_eq!(
                crate::ingest::detect(&input).unwrap(),
                crate::ingest::Format::named("inspect"),
                "{name}"
            );
        }
    }

    #[test]
    fn every_member_compression_inspect_writes_is_read_and_others_are_named() {
        use std::io::Write;
        let sample = br#"{"id":1,"epoch":1,"target":"4","output":{"completion":"4"},"scores":{"match":{"value":"C","answer":"4"}},"metrics":{"x":NaN}}"#;
        let header = br#"{"version":2,"status":"success","eval":{"eval_id":"e1","task":"t","packages":{"inspect_ai":"0.3.285"}}}"#;
        let archive = |method: zip::CompressionMethod| {
            let mut buf = std::io::Cursor::new(Vec::new());
            let mut z = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default().compression_method(method);
            z.start_file("_journal/start.json", opts).unwrap();
            z.write_all(br#"{"version":2,"eval":{}}"#).unwrap();
            z.start_file("samples/1_epoch_1.json", opts).unwrap();
            z.write_all(sample).unwrap();
            z.start_file("header.json", opts).unwrap();
            z.write_all(header).unwrap();
            z.finish().unwrap();
            buf.into_inner()
        };
        for method in [
            zip::CompressionMethod::Stored,
            zip::CompressionMethod::Deflated,
            zip::CompressionMethod::Zstd,
        ] {
            let (path, _dir) = temp_file("x.eval", &archive(method));
            let (sink, result) = read_all(&InspectImporter, &path, "x.eval");
            result.unwrap();
            assert_eq!(sink.records.len(), 1, "{method}");
            assert_eq!(sink.sources[0].run_identity.as_deref(), Some("inspect:e1"));
            assert!(
                InspectImporter.sniff("upload", &archive(method)),
                "{method}"
            );
        }
        // A method Inspect never wrote (bzip2, 12): stored bytes relabelled in the local and
        // central headers.
        let mut bytes = archive(zip::CompressionMethod::Stored);
        let mut at = 0;
        while let Some(i) = find(&bytes[at..], b"PK\x03\x04") {
            bytes[at + i + 8] = 12;
            at += i + 4;
        }
        at = 0;
        while let Some(i) = find(&bytes[at..], b"PK\x01\x02") {
            bytes[at + i + 10] = 12;
            at += i + 4;
        }
        let (path, _dir) = temp_file("bz.eval", &bytes);
        let (_, result) = read_all(&InspectImporter, &path, "bz.eval");
        let Err(ReadStop::Input(e)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            e.to_string(),
            "bz.eval: member header.json of the .eval archive is compressed with ZIP method Bzip2, which caplens cannot read (it reads stored, deflate and zstd members: what Inspect writes)"
        );
    }

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
