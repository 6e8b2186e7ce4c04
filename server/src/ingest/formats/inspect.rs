//! Inspect AI logs, `.eval` (zip) and `.json`, docs/formats/inspect.md.
//!
//! Each sample's epoch is one rollout: problem id = sample `id`, sample index = `epoch - 1`.
//! `.eval` archives are read member by member (`samples/{id}_epoch_{n}.json`), never all samples
//! at once; `.json` logs are streamed with serde_json (one sample at a time), so neither needs
//! memory for the whole log. Only the fields caplens uses are materialised; `messages`, `events`
//! and the rest are skipped while parsing.
//!
//! The verdict is the first scorer of `scores` in file order (serde_json's `Map` sorts keys, so
//! `scores` is read with [`OrderedObject`]).

use super::common::{
    head_records, id_string, kind, partial_object, per_problem_and_tokens, reference_text,
    OrderedObject,
};
use super::openai::{chat_token_data, LineError};
use crate::ingest::{
    open_text, FileHints, Format, InputError, InputFile, ReadStop, RecordOutcome, RecordSink,
    RolloutImporter, RolloutRecord, TokenData,
};
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value};
use std::fmt;
use std::io::{BufReader, Read};
use std::sync::atomic::Ordering;

pub struct InspectImporter;

/// Samples of the head that [`InspectImporter::hints`] reads.
const HINT_SAMPLES: usize = 200;

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

impl RolloutImporter for InspectImporter {
    fn format(&self) -> Format {
        Format::Inspect
    }

    fn sniff(&self, file_name: &str, head: &[u8]) -> bool {
        if head.starts_with(ZIP_MAGIC) {
            // A zip: an Inspect log by its extension, or by its member names (local headers
            // carry them in the clear).
            return file_name.to_ascii_lowercase().ends_with(".eval")
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
            let result = read_json(input, &mut header, &mut |_, _| {
                Err(ReadStop::Sink("header read".into()))
            });
            match result {
                Ok(()) | Err(ReadStop::Sink(_)) => {}
                Err(ReadStop::Input(e)) => return Err(e),
            }
            header
        };
        let records = head_records(self, input, HINT_SAMPLES)?;
        let (per_problem, has_tokens) = per_problem_and_tokens(&records);
        let eval = header.eval.as_ref();
        let config = |key: &str| -> Option<&Value> {
            let from_eval = eval
                .and_then(|e| e.get("model_generate_config"))
                .and_then(|c| c.get(key));
            let from_plan = header
                .plan
                .as_ref()
                .and_then(|p| p.get("config"))
                .and_then(|c| c.get(key));
            from_eval
                .filter(|v| !v.is_null())
                .or(from_plan.filter(|v| !v.is_null()))
        };
        Ok(FileHints {
            model: eval
                .and_then(|e| e.get("model"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            // `inspect_evals/gsm8k` → `gsm8k`.
            dataset: eval
                .and_then(|e| e.get("task"))
                .and_then(Value::as_str)
                .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
                .filter(|t| !t.is_empty()),
            step: None,
            temperature: config("temperature").and_then(Value::as_f64),
            top_p: config("top_p").and_then(Value::as_f64),
            max_tokens: config("max_tokens").and_then(Value::as_i64),
            n_per_problem: eval
                .and_then(|e| e.get("config"))
                .and_then(|c| c.get("epochs"))
                .and_then(Value::as_i64)
                .or(per_problem),
            has_tokens,
            records_in_head: records.len() as u64,
        })
    }

    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
        if is_zip(input)? {
            return read_eval(input, sink);
        }
        let mut header = Header::default();
        read_json(
            input,
            &mut header,
            &mut |position, slot| match to_record(slot, position) {
                Ok(record) => sink.record(record),
                Err((field, msg)) => sink.reject(input.line_error(
                    position,
                    Some(&field),
                    format!("sample {position} of \"samples\": {msg}"),
                )),
            },
        )
    }
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

/// The run description of a log: `eval` (EvalSpec) and `plan` (EvalPlan).
#[derive(Debug, Default)]
struct Header {
    eval: Option<Value>,
    plan: Option<Value>,
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
    output: Option<Value>,
    scores: Option<OrderedObject>,
    error: Option<Value>,
    attachments: Option<Value>,
}

/// A sample, or what stood in its place.
#[derive(Debug)]
enum SampleSlot {
    Sample(Box<Sample>),
    NotObject(&'static str),
}

impl<'de> serde::Deserialize<'de> for SampleSlot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SlotVisitor)
    }
}

struct SlotVisitor;

impl<'de> Visitor<'de> for SlotVisitor {
    type Value = SampleSlot;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sample object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SampleSlot, A::Error> {
        let mut s = Sample::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "id" => s.id = Some(map.next_value()?),
                "epoch" => s.epoch = Some(map.next_value()?),
                "input" => s.input = Some(map.next_value()?),
                "target" => s.target = Some(map.next_value()?),
                "output" => s.output = Some(map.next_value()?),
                "scores" => s.scores = Some(map.next_value()?),
                "error" => s.error = Some(map.next_value()?),
                "attachments" => s.attachments = Some(map.next_value()?),
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

/// The record of one sample (`line`: its position, for messages).
fn to_record(slot: SampleSlot, line: u64) -> Result<RolloutRecord, LineError> {
    let s = match slot {
        SampleSlot::Sample(s) => s,
        SampleSlot::NotObject(k) => {
            return Err(err("samples", format!("expected a sample object, got {k}")))
        }
    };
    if let Some(error) = s.error.as_ref().filter(|e| !e.is_null()) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string());
        return Err(err(
            "error",
            format!("the sample failed in Inspect, no rollout to import: {message}"),
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
    let attachments = s.attachments.as_ref().and_then(Value::as_object);
    let resolve = |text: &str| -> String {
        text.strip_prefix("attachment://")
            .and_then(|key| attachments?.get(key)?.as_str())
            .unwrap_or(text)
            .to_string()
    };
    let prompt = match &s.input {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(resolve(text)),
        // A list of chat messages: the last user message is the problem.
        Some(Value::Array(messages)) => messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .and_then(content_text)
            .map(|t| resolve(&t)),
        Some(other) => {
            return Err(err(
                "input",
                format!(
                    "expected a string or a list of messages, got {}",
                    kind(other)
                ),
            ))
        }
    };
    let reference = match s.target.as_ref().map(reference_text).unwrap_or(Ok(None)) {
        Ok(r) => r.map(|r| resolve(&r)),
        Err(got) => {
            return Err(err(
                "target",
                format!("expected a string or a list of strings, got {got}"),
            ))
        }
    };
    let (response, finish_reason, tokens) = match &s.output {
        None | Some(Value::Null) => (None, None, None),
        Some(Value::Object(output)) => read_output(output)?,
        Some(other) => {
            return Err(err(
                "output",
                format!("expected an object (ModelOutput), got {}", kind(other)),
            ))
        }
    };
    let (outcome, answer) = verdict(s.scores.as_ref())?;
    Ok(RolloutRecord {
        line,
        problem_id,
        prompt,
        reference,
        sample: Some(epoch - 1),
        outcome,
        response: response.map(|r| resolve(&r)),
        answer,
        finish_reason,
        tokens,
        ..RolloutRecord::default()
    })
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

/// Response text, stop reason and token data of `output.choices[0]` (`output.completion` when
/// there is no choice).
fn read_output(output: &Map<String, Value>) -> Result<Output, LineError> {
    let choice = match output.get("choices") {
        None | Some(Value::Null) => None,
        Some(Value::Array(choices)) => match choices.first() {
            None => None,
            Some(Value::Object(c)) => Some(c),
            Some(other) => {
                return Err(err(
                    "output.choices[0]",
                    format!("expected an object (a choice), got {}", kind(other)),
                ))
            }
        },
        Some(other) => {
            return Err(err(
                "output.choices",
                format!("expected a list, got {}", kind(other)),
            ))
        }
    };
    let completion = match output.get("completion") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.clone()),
        Some(other) => {
            return Err(err(
                "output.completion",
                format!("expected a string, got {}", kind(other)),
            ))
        }
    };
    let Some(choice) = choice else {
        return Ok((completion, None, None));
    };
    let response = match choice.get("message").and_then(|m| m.get("content")) {
        None | Some(Value::Null) => completion,
        Some(content) => match content_text(content) {
            Some(t) => Some(t),
            None => {
                return Err(err(
                    "output.choices[0].message.content",
                    format!(
                        "expected a string or a list of content parts, got {}",
                        kind(content)
                    ),
                ))
            }
        },
    };
    let finish_reason = choice
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tokens = match choice.get("logprobs") {
        None | Some(Value::Null) => None,
        Some(Value::Object(lp)) => match lp.get("content") {
            None | Some(Value::Null) => None,
            Some(Value::Array(entries)) => Some(chat_token_data(
                entries,
                "output.choices[0].logprobs.content",
            )?),
            Some(other) => {
                return Err(err(
                    "output.choices[0].logprobs.content",
                    format!("expected a list, got {}", kind(other)),
                ))
            }
        },
        Some(other) => {
            return Err(err(
                "output.choices[0].logprobs",
                format!("expected an object, got {}", kind(other)),
            ))
        }
    };
    Ok((response, finish_reason, tokens))
}

/// The verdict and extracted answer of the first scorer. `C` is correct; `I`, `P` (partial) and
/// `N` (no answer) are not; a number is correct when >= 1; a boolean is itself; `yes`/`true` and
/// `no`/`false` strings and numeric strings as those. A list or object value (multi-metric
/// scorers) or `null` gives no verdict: the rollout is imported ungraded.
fn verdict(scores: Option<&OrderedObject>) -> Result<(RecordOutcome, Option<String>), LineError> {
    let (name, score) = match scores {
        None | Some(OrderedObject::Null) => return Ok((RecordOutcome::Ungraded, None)),
        Some(OrderedObject::NotObject(k)) => {
            return Err(err(
                "scores",
                format!("expected an object of scorer name → score, got {k}"),
            ))
        }
        Some(OrderedObject::Object(entries)) => match entries.first() {
            None => return Ok((RecordOutcome::Ungraded, None)),
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
    let from_number = |x: f64| RecordOutcome::Graded(x >= 1.0);
    let outcome = match score.get("value") {
        None | Some(Value::Null) | Some(Value::Array(_)) | Some(Value::Object(_)) => RecordOutcome::Ungraded,
        Some(Value::Bool(b)) => RecordOutcome::Graded(*b),
        Some(Value::Number(n)) => from_number(n.as_f64().unwrap_or(0.0)),
        Some(Value::String(v)) => match v.trim() {
            "C" => RecordOutcome::Graded(true),
            "I" | "P" | "N" => RecordOutcome::Graded(false),
            other => match other.to_ascii_lowercase().as_str() {
                "yes" | "true" => RecordOutcome::Graded(true),
                "no" | "false" => RecordOutcome::Graded(false),
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
    Ok((outcome, answer))
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

fn read_eval(input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
    let mut archive = open_archive(input)?;
    for index in 0..archive.len() {
        let line = index as u64 + 1;
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
        let parsed = serde_json::from_reader::<_, SampleSlot>(BufReader::new(member));
        match parsed {
            Ok(slot) => match to_record(slot, line) {
                Ok(record) => sink.record(record)?,
                Err((field, msg)) => {
                    sink.reject(input.line_error(line, Some(&field), format!("{name}: {msg}")))?
                }
            },
            Err(e) if e.is_io() => {
                return Err(ReadStop::Input(input.error(format!(
                    "corrupt .eval archive: cannot read member {name}: {e}"
                ))))
            }
            Err(e) => {
                sink.reject(input.line_error(line, None, format!("{name}: invalid JSON: {e}")))?
            }
        }
    }
    if let Ok(meta) = std::fs::metadata(&input.path) {
        input.progress.fetch_max(meta.len(), Ordering::Relaxed);
    }
    Ok(())
}

/// `eval` and `plan` of `header.json` (or of `_journal/start.json` in a log still being
/// written, which has no header yet).
fn eval_header(input: &InputFile) -> Result<Header, InputError> {
    let mut archive = open_archive(input)?;
    for name in ["header.json", "_journal/start.json"] {
        let Some(index) = archive.index_for_name(name) else {
            continue;
        };
        let member = archive
            .by_index(index)
            .map_err(|e| input.error(format!("corrupt .eval archive: {name}: {e}")))?;
        let value: Value = serde_json::from_reader(BufReader::new(member))
            .map_err(|e| input.error(format!("{name}: not valid JSON: {e}")))?;
        return Ok(Header {
            eval: value.get("eval").cloned(),
            plan: value.get("plan").cloned(),
        });
    }
    Ok(Header::default())
}

// ---------------------------------------------------------------------------------------------
// .json (streamed)

type OnSample<'a> = dyn FnMut(u64, SampleSlot) -> Result<(), ReadStop> + 'a;

/// Streams a `.json` log: keeps `eval` and `plan` in `header` and hands each element of
/// `samples` to `on_sample` (with its 1-based position) as soon as it is parsed.
fn read_json(
    input: &InputFile,
    header: &mut Header,
    on_sample: &mut OnSample<'_>,
) -> Result<(), ReadStop> {
    let reader = open_text(input)?;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut log = JsonLog {
        header,
        on_sample,
        stopped: None,
    };
    let result = de
        .deserialize_any(LogVisitor(&mut log))
        .and_then(|()| de.end());
    if let Some(stop) = log.stopped.take() {
        return Err(stop);
    }
    result.map_err(|e| {
        ReadStop::Input(if e.is_io() {
            input.error(format!("cannot read: {e}"))
        } else {
            input.error(format!("not a valid Inspect JSON log: {e}"))
        })
    })
}

struct JsonLog<'h, 'f, 'a> {
    header: &'h mut Header,
    on_sample: &'f mut OnSample<'a>,
    /// Why `on_sample` stopped the read (the parse error that follows is ours).
    stopped: Option<ReadStop>,
}

struct LogVisitor<'l, 'h, 'f, 'a>(&'l mut JsonLog<'h, 'f, 'a>);

impl<'de> Visitor<'de> for LogVisitor<'_, '_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (an Inspect log with \"eval\" and \"samples\")")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "eval" => self.0.header.eval = Some(map.next_value()?),
                "plan" => self.0.header.plan = Some(map.next_value()?),
                "samples" => map.next_value_seed(SamplesSeed(&mut *self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
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
        let mut position = 0u64;
        while let Some(slot) = seq.next_element::<SampleSlot>()? {
            position += 1;
            if let Err(stop) = (self.0.on_sample)(position, slot) {
                self.0.stopped = Some(stop);
                return Err(de::Error::custom("read stopped"));
            }
        }
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
            ["log.eval:6: field \"error\": samples/3_epoch_1.json: the sample failed in Inspect, no rollout to import: RuntimeError: API timeout"]
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
            ["log.json:5: field \"error\": sample 5 of \"samples\": the sample failed in Inspect, no rollout to import: RuntimeError: API timeout"]
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
}
