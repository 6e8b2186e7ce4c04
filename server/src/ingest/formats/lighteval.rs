//! lighteval details files, `details_<task>_<date_id>.parquet`, docs/formats/lighteval.md.
//!
//! One parquet file per task, one row per document. Two layouts, both written by
//! `datasets.Dataset.from_list([asdict(detail) ...]).to_parquet(...)`:
//! - **nested** (lighteval 0.11 to 0.13): struct columns `doc` (query, choices, gold_index, id,
//!   task_name, ...), `model_response` (input, `text`: one entry per sample, ...) and `metric`
//!   (per-document metric values such as `extractive_match` or `pass@k:k=1&n=4`);
//! - **flat** (lighteval 0.5 to 0.10): `example`, `full_prompt`, `predictions` (one entry per
//!   sample), `gold`, `metrics`, `specifics`, ...
//!
//! Each sample is one rollout. lighteval keeps no per-sample verdict; a document with a single
//! sample does have one in its 0/1 correctness metric (see [`VERDICT_METRICS`]), which becomes
//! the rollout's verdict. Documents with several samples are `Ungraded` (the pipeline grades each
//! with caplens' verifier). The file is read one row group at a time, only the columns used.

use super::common::{file_stem, head_records, id_string, integer, kind};
use crate::ingest::parquet_rows::{self, MAGIC};
use crate::ingest::{
    FileHints, FormatSpec, InputError, InputFile, ReadStop, RecordOutcome, RecordSink,
    RolloutImporter, RolloutRecord, SourceInfo,
};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::Type;
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;

pub struct LightevalImporter;

/// The per-document metrics that are one sample's verdict (0 or 1) when the document has one
/// sample, most trusted first: Math-Verify's extractive match (`Metrics.expr_gold_metric`), the
/// pass@1 family with one sample (`pass_at_k_math`, 0.10's `math_pass@1:1_samples`), then exact
/// and quasi-exact string match.
pub(crate) const VERDICT_METRICS: &[&str] = &[
    "extractive_match",
    "pass@k:k=1&n=1",
    "pass@k:k=1",
    "avg@n:n=1",
    "math_pass@1:1_samples",
    "gpqa_pass@1:1_samples",
    "pass@1:1_samples",
    "em",
    "exact_match",
    "qem",
    "quasi_exact_match",
];

/// Rows of the head that [`LightevalImporter::hints`] looks at.
const HINT_RECORDS: usize = 2000;

/// Which of lighteval's two details layouts a file has, with its column names.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    /// 0.11+: `doc`, `model_response`, `metric` (the docs spell them `__doc__`, ...).
    Nested {
        doc: String,
        response: String,
        metric: Option<String>,
    },
    /// 0.5 to 0.10: `example`, `full_prompt`, `predictions`, `gold`, `metrics`, ...
    Flat,
}

impl Layout {
    fn of(columns: &[&str]) -> Option<Layout> {
        let find = |names: &[&str]| {
            names
                .iter()
                .find(|n| columns.contains(n))
                .map(|n| n.to_string())
        };
        if let (Some(doc), Some(response)) = (
            find(&["doc", "__doc__"]),
            find(&["model_response", "__model_response__"]),
        ) {
            return Some(Layout::Nested {
                doc,
                response,
                metric: find(&["metric", "__metric__"]),
            });
        }
        (columns.contains(&"predictions")
            && (columns.contains(&"example") || columns.contains(&"full_prompt")))
        .then_some(Layout::Flat)
    }

    /// The metric struct's column.
    fn metric_column(&self) -> Option<&str> {
        match self {
            Layout::Nested { metric, .. } => metric.as_deref(),
            Layout::Flat => Some("metrics"),
        }
    }

    /// The columns read (with the struct members read), for the projection.
    fn wanted(&self) -> Vec<(&str, Option<&'static [&'static str]>)> {
        match self {
            Layout::Nested {
                doc,
                response,
                metric,
            } => {
                let mut w: Vec<(&str, Option<&'static [&'static str]>)> = vec![
                    (
                        doc.as_str(),
                        Some(&[
                            "query",
                            "choices",
                            "gold_index",
                            "id",
                            "task_name",
                            "generation_size",
                        ]),
                    ),
                    (response.as_str(), Some(&["input", "text"])),
                ];
                if let Some(m) = metric {
                    w.push((m.as_str(), None));
                }
                w
            }
            Layout::Flat => vec![
                ("example", None),
                ("full_prompt", None),
                ("predictions", None),
                ("gold", None),
                ("metrics", None),
            ],
        }
    }
}

/// An open details file: its reader, layout and the metric that gives verdicts.
struct Details {
    reader: SerializedFileReader<std::fs::File>,
    /// The file again, for the page headers the rows reader checks before the crate reads.
    source: std::fs::File,
    /// Bytes of the file, for the progress after the last row group (the footer).
    file_len: u64,
    layout: Layout,
    projection: Option<Type>,
    verdict_metric: Option<String>,
}

impl Details {
    fn open(input: &InputFile) -> Result<Details, InputError> {
        let mut file = std::fs::File::open(&input.path)
            .map_err(|e| input.error(format!("cannot open: {e}")))?;
        let mut magic = [0u8; 4];
        use std::io::Read;
        let got = file
            .read(&mut magic)
            .map_err(|e| input.error(format!("cannot read: {e}")))?;
        if &magic[..got] != MAGIC {
            return Err(input.error(
                "not a parquet file (lighteval details are parquet; a compressed .parquet.gz must be decompressed first)",
            ));
        }
        let file_len = file
            .metadata()
            .map_err(|e| input.error(format!("cannot read: {e}")))?
            .len();
        let source = file
            .try_clone()
            .map_err(|e| input.error(format!("cannot read: {e}")))?;
        let reader = parquet_rows::open(file).map_err(|e| input.error(e))?;
        let schema = reader.metadata().file_metadata().schema();
        let columns: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
        let Some(layout) = Layout::of(&columns) else {
            return Err(input.error(format!(
                "not a lighteval details file: its columns are {}; expected doc, model_response and metric (lighteval 0.11 and later) or example, full_prompt, predictions, gold and metrics (lighteval 0.5 to 0.10)",
                columns.join(", ")
            )));
        };
        let projection = parquet_rows::projection(schema, &layout.wanted());
        let metric_keys: Vec<String> = layout
            .metric_column()
            .and_then(|m| schema.get_fields().iter().find(|f| f.name() == m))
            .filter(|f| f.is_group())
            .map(|f| f.get_fields().iter().map(|k| k.name().to_owned()).collect())
            .unwrap_or_default();
        let verdict_metric = VERDICT_METRICS
            .iter()
            .find(|m| metric_keys.iter().any(|k| k == *m))
            .map(|m| m.to_string());
        Ok(Details {
            reader,
            source,
            file_len,
            layout,
            projection,
            verdict_metric,
        })
    }

    /// Calls `each(row_number, row)` for every row (1-based across the file), one row group at a
    /// time; counts each row group's bytes (and at the end the footer's) into `input.progress`.
    fn for_each_row(
        &self,
        input: &InputFile,
        each: impl FnMut(u64, Map<String, Value>) -> Result<(), ReadStop>,
    ) -> Result<(), ReadStop> {
        let mut counted = 0u64;
        parquet_rows::for_each_row(
            &self.reader,
            &self.source,
            self.projection.as_ref(),
            |size| {
                input.progress.fetch_add(size, Ordering::Relaxed);
                counted += size;
            },
            each,
            |row, message| ReadStop::Input(input.line_error(row, None, message)),
        )?;
        input
            .progress
            .fetch_add(self.file_len.saturating_sub(counted), Ordering::Relaxed);
        Ok(())
    }
}

/// One document (row) as caplens needs it.
#[derive(Debug)]
struct Document {
    problem_id: String,
    prompt: Option<String>,
    reference: Option<String>,
    responses: Vec<String>,
    metrics: Map<String, Value>,
    generation_size: Option<i64>,
}

/// A row's problem: the field at fault (dotted path) and the message.
type RowError = (String, String);

fn row_error(field: &str, message: impl Into<String>) -> RowError {
    (field.to_owned(), message.into())
}

/// Reads one row of `layout`; `row_no` is 1-based (the problem id of a row without `doc.id` is
/// its 0-based index, as lighteval numbers documents).
fn document(layout: &Layout, row_no: u64, row: &Map<String, Value>) -> Result<Document, RowError> {
    match layout {
        Layout::Nested {
            doc,
            response,
            metric,
        } => {
            let doc_name = doc;
            let doc = struct_column(row, doc_name)?;
            let response_name = response;
            let response = struct_column(row, response_name)?;
            let problem_id = match doc.get("id") {
                None | Some(Value::Null) => (row_no - 1).to_string(),
                Some(Value::String(s)) if s.trim().is_empty() => (row_no - 1).to_string(),
                Some(v) => id_string(v).map_err(|m| row_error(&format!("{doc_name}.id"), m))?,
            };
            let query = doc.get("query").and_then(Value::as_str);
            let input = response.get("input").and_then(Value::as_str);
            let prompt = input.or(query).filter(|p| !p.is_empty()).map(str::to_owned);
            let reference = nested_reference(doc, doc_name)?;
            let responses = responses(response.get("text"), &format!("{response_name}.text"))?;
            let metrics = match metric.as_deref().and_then(|m| row.get(m).map(|v| (m, v))) {
                None | Some((_, Value::Null)) => Map::new(),
                Some((_, Value::Object(m))) => m.clone(),
                Some((name, other)) => {
                    return Err(row_error(
                        name,
                        format!("expected a struct of metric values, got {}", kind(other)),
                    ))
                }
            };
            Ok(Document {
                problem_id,
                prompt,
                reference,
                responses,
                metrics,
                generation_size: doc.get("generation_size").and_then(integer),
            })
        }
        Layout::Flat => {
            let text = |name: &str| {
                row.get(name)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let reference = match row.get("gold") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(items)) => match items.first() {
                    None => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => {
                        return Err(row_error(
                            "gold",
                            format!(
                                "expected a list of strings, got a list of {}",
                                plural(other)
                            ),
                        ))
                    }
                },
                Some(other) => {
                    return Err(row_error(
                        "gold",
                        format!("expected a list of strings, got {}", kind(other)),
                    ))
                }
            };
            let metrics = match row.get("metrics") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(other) => {
                    return Err(row_error(
                        "metrics",
                        format!("expected a struct of metric values, got {}", kind(other)),
                    ))
                }
            };
            Ok(Document {
                problem_id: (row_no - 1).to_string(),
                prompt: text("full_prompt").or_else(|| text("example")),
                reference: reference.map(|r| reference_text(&r)),
                responses: responses(row.get("predictions"), "predictions")?,
                metrics,
                generation_size: None,
            })
        }
    }
}

fn struct_column<'a>(
    row: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a Map<String, Value>, RowError> {
    match row.get(name) {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Err(row_error(name, "missing (null)")),
        Some(other) => Err(row_error(
            name,
            format!("expected a struct, got {}", kind(other)),
        )),
    }
}

/// `doc.choices[doc.gold_index]` (the first gold when `gold_index` is a list).
fn nested_reference(doc: &Map<String, Value>, doc_name: &str) -> Result<Option<String>, RowError> {
    let index_field = format!("{doc_name}.gold_index");
    let index = match doc.get("gold_index") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => match items.first() {
            None => return Ok(None),
            Some(first) => first,
        },
        Some(other) => other,
    };
    let Some(index) = integer(index).filter(|i| *i >= 0) else {
        return Err(row_error(
            &index_field,
            format!(
                "expected a non-negative integer or a list of them, got {}",
                kind(index)
            ),
        ));
    };
    let choices = match doc.get("choices") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Ok(None),
        Some(other) => {
            return Err(row_error(
                &format!("{doc_name}.choices"),
                format!("expected a list of strings, got {}", kind(other)),
            ))
        }
    };
    match choices.get(index as usize) {
        Some(Value::String(s)) => Ok(Some(reference_text(s))),
        Some(other) => Err(row_error(
            &format!("{doc_name}.choices"),
            format!(
                "expected a list of strings, got a list of {}",
                plural(other)
            ),
        )),
        None => Err(row_error(
            &index_field,
            format!(
                "{index} is not an index of doc.choices ({} choices)",
                choices.len()
            ),
        )),
    }
}

/// A gold as the reference answer: trimmed; a worked solution gives its final answer (gsm8k's
/// gold is the whole solution ending in `#### 72`, which lighteval's own metric extracts), by the
/// verifier's one rule for references.
fn reference_text(gold: &str) -> String {
    caplens_analysis::verifier::reference_answer(gold)
        .trim()
        .to_owned()
}

fn plural(v: &Value) -> &'static str {
    match v {
        Value::Null => "nulls",
        Value::Bool(_) => "booleans",
        Value::Number(_) => "numbers",
        Value::String(_) => "strings",
        Value::Array(_) => "lists",
        Value::Object(_) => "structs",
    }
}

/// The samples of `model_response.text` / `predictions`: a non-empty list of strings.
fn responses(v: Option<&Value>, field: &str) -> Result<Vec<String>, RowError> {
    const EXPECTED: &str = "expected a list of generated texts";
    let items = match v {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Err(row_error(field, format!("{EXPECTED}, got null"))),
        Some(other) => return Err(row_error(field, format!("{EXPECTED}, got {}", kind(other)))),
    };
    if items.is_empty() {
        return Err(row_error(
            field,
            format!("{EXPECTED}, got an empty list (a loglikelihood or multiple-choice task has no generations to import)"),
        ));
    }
    items
        .iter()
        .map(|s| match s {
            Value::String(s) => Ok(s.clone()),
            other => Err(row_error(
                field,
                format!(
                    "{EXPECTED}, got a list of {} (a loglikelihood or multiple-choice task has no generations to import)",
                    plural(other)
                ),
            )),
        })
        .collect()
}

/// The verdict of a one-sample document from `metric`: `Ok(None)` when the value is null or
/// NaN (lighteval had no score).
fn verdict(value: Option<&Value>) -> Result<Option<bool>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(1.0) => Ok(Some(true)),
            Some(0.0) => Ok(Some(false)),
            _ => Err(format!(
                "expected 0 or 1 (the one sample's verdict), got {n}"
            )),
        },
        Some(other) => Err(format!("expected 0 or 1, got {}", kind(other))),
    }
}

/// `details_<task>_<date_id>.parquet` → (task, date_id). The date id is lighteval's
/// `datetime.now().isoformat()` with `:` replaced by `-` (`2025-06-01T12-00-00.123456`): the
/// last `_`-part that starts with a four-digit year and `-`. Task names may contain `_` and `|`.
pub(crate) fn task_and_date(name: &str) -> Option<(String, Option<String>)> {
    let base = file_stem(name);
    let base = base.strip_suffix(".parquet").unwrap_or(base);
    let rest = base.strip_prefix("details_")?;
    for (i, _) in rest
        .match_indices('_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let tail = &rest[i + 1..];
        let b = tail.as_bytes();
        if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && i > 0 {
            return Some((rest[..i].to_owned(), Some(tail.to_owned())));
        }
    }
    (!rest.is_empty()).then(|| (rest.to_owned(), None))
}

/// The dataset a task name stands for: `lighteval|aime24|0` (0.10: suite|task|few-shots) and
/// `aime24|0` (0.11+: task|few-shots) give `aime24`.
pub(crate) fn dataset_of_task(task: &str) -> String {
    let mut parts: Vec<&str> = task.split('|').collect();
    if parts.len() > 1
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
    {
        parts.pop();
    }
    if parts.len() > 1 {
        parts.remove(0);
    }
    parts.join("|")
}

/// The model of a local file where lighteval put it, `details/<model>/<date_id>/details_…`: the
/// directory above the one named like the file's date id (for an `org/model` name, `model`).
fn model_from_path(input: &InputFile, date_id: &str) -> Option<String> {
    let base = input.name.rsplit(['/', '\\']).next()?;
    if input.path.file_name()?.to_string_lossy() != base {
        return None; // an upload spooled under another name: its directories are not the user's
    }
    let date_dir = input.path.parent()?;
    if date_dir.file_name()?.to_string_lossy() != date_id {
        return None;
    }
    let model = date_dir
        .parent()?
        .file_name()?
        .to_string_lossy()
        .into_owned();
    (!model.is_empty() && model != "details").then_some(model)
}

/// Whether `name` looks like a lighteval details file name.
fn details_name(name: &str) -> bool {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.starts_with("details_") && base.ends_with(".parquet")
}

/// This format's row in the registry ([`super::ALL`]).
static SPEC: FormatSpec = FormatSpec {
    name: "lighteval",
    title: "lighteval details (details_<task>_<date>.parquet)",
    extensions: &["details_<task>_<date>.parquet"],
};

impl RolloutImporter for LightevalImporter {
    fn spec(&self) -> &'static FormatSpec {
        &SPEC
    }

    /// The parquet magic plus either the file name lighteval gives (`details_*.parquet`) or, for
    /// a file small enough that the head holds its footer, the footer's column names. A large
    /// parquet under another name must be named with `--format lighteval`.
    fn sniff(&self, file_name: &str, head: &[u8]) -> bool {
        if !head.starts_with(MAGIC) {
            return false;
        }
        if details_name(file_name) {
            return true;
        }
        let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
        head.ends_with(MAGIC)
            && ((has(b"model_response") && has(b"doc"))
                || (has(b"predictions") && has(b"full_prompt")))
    }

    fn hints(&self, input: &InputFile) -> Result<FileHints, InputError> {
        let head = head_records(self, input, HINT_RECORDS)?;
        let details = Details::open(input)?;
        let mut max_tokens = None;
        let result = details.for_each_row(input, |row_no, row| {
            if let Ok(doc) = document(&details.layout, row_no, &row) {
                max_tokens = doc.generation_size;
            }
            Err(ReadStop::Sink("first row read".into()))
        });
        if let Err(ReadStop::Input(e)) = result {
            return Err(e);
        }
        let name = task_and_date(&input.name);
        Ok(FileHints {
            model: name
                .as_ref()
                .and_then(|(_, date)| model_from_path(input, date.as_deref()?)),
            dataset: name.map(|(task, _)| dataset_of_task(&task)),
            max_tokens,
            n_per_problem: head.per_problem,
            has_tokens: head.has_tokens,
            records_in_head: head.records,
            ..FileHints::default()
        })
    }

    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
        let details = Details::open(input)?;
        let name = task_and_date(&input.name);
        let run_identity = match &name {
            Some((task, Some(date))) => Some(format!("lighteval:task={task};date_id={date}")),
            _ => None,
        };
        let mut source = Some(SourceInfo {
            tool: Some("lighteval".into()),
            run_identity,
            status: None,
            verdict: None,
        });
        let verdict_metric = details.verdict_metric.clone();
        details.for_each_row(input, |row_no, row| {
            let doc = match document(&details.layout, row_no, &row) {
                Ok(doc) => doc,
                Err((field, message)) => {
                    return sink.reject(input.line_error(row_no, Some(&field), message))
                }
            };
            let single = doc.responses.len() == 1;
            if let Some(mut info) = source.take() {
                // The file's verdicts are used when its documents have one sample each.
                if single {
                    info.verdict = verdict_metric.as_ref().map(|m| format!("lighteval {m}"));
                }
                sink.source(info)?;
            }
            let outcome = match (&verdict_metric, single) {
                (Some(metric), true) => match verdict(doc.metrics.get(metric)) {
                    Ok(Some(correct)) => RecordOutcome::Graded(correct),
                    Ok(None) => RecordOutcome::Ungraded,
                    Err(message) => {
                        let column = details.layout.metric_column().unwrap_or("metric");
                        return sink.reject(input.line_error(
                            row_no,
                            Some(&format!("{column}.{metric}")),
                            message,
                        ));
                    }
                },
                _ => RecordOutcome::Ungraded,
            };
            for (sample, response) in doc.responses.into_iter().enumerate() {
                sink.record(RolloutRecord {
                    line: row_no,
                    problem_id: doc.problem_id.clone(),
                    prompt: doc.prompt.clone(),
                    reference: doc.reference.clone(),
                    sample: Some(sample as u64),
                    outcome,
                    response: Some(response),
                    ..RolloutRecord::default()
                })?;
            }
            Ok(())
        })?;
        if let Some(info) = source.take() {
            sink.source(info)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::formats::common::{fixture, read_all, temp_file, VecSink};
    use crate::ingest::{read_head, SNIFF_BYTES};

    const DATE: &str = "2026-12-02T12-00-00.000000";

    fn name(task: &str) -> String {
        format!("details_{task}_{DATE}.parquet")
    }

    /// A sink that also keeps what `source` got.
    #[derive(Default)]
    struct SourceSink {
        inner: VecSink,
        sources: Vec<SourceInfo>,
    }

    impl RecordSink for SourceSink {
        fn source(&mut self, info: SourceInfo) -> Result<(), ReadStop> {
            self.sources.push(info);
            Ok(())
        }
        fn record(&mut self, record: RolloutRecord) -> Result<(), ReadStop> {
            self.inner.record(record)
        }
        fn reject(&mut self, error: InputError) -> Result<(), ReadStop> {
            self.inner.reject(error)
        }
    }

    fn read(task: &str) -> SourceSink {
        let file = name(task);
        let mut sink = SourceSink::default();
        LightevalImporter
            .read(
                &InputFile::new(fixture(&format!("lighteval/{file}")), &file),
                &mut sink,
            )
            .unwrap();
        sink
    }

    #[test]
    fn nested_layout_with_several_samples_is_ungraded() {
        let sink = read("aime24|0");
        assert!(sink.inner.errors.is_empty(), "{:?}", sink.inner.errors);
        assert_eq!(
            sink.sources,
            [SourceInfo {
                tool: Some("lighteval".into()),
                run_identity: Some(format!("lighteval:task=aime24|0;date_id={DATE}")),
                status: None,
                verdict: None,
            }]
        );
        let records = &sink.inner.records;
        let got: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.problem_id.as_str(),
                    r.sample,
                    r.reference.as_deref(),
                )
            })
            .collect();
        let mut want = Vec::new();
        for (line, reference) in [(1, "204"), (2, "\\frac{5}{6}"), (3, "2")] {
            for sample in 0..4 {
                want.push((line, (line - 1).to_string(), Some(sample), Some(reference)));
            }
        }
        let want: Vec<_> = want
            .iter()
            .map(|(l, id, s, r)| (*l, id.as_str(), *s, *r))
            .collect();
        assert_eq!(got, want);
        assert!(records.iter().all(|r| r.outcome == RecordOutcome::Ungraded));
        assert!(records[0].prompt.as_deref().unwrap().ends_with(
            "Find the number of ordered pairs $(x,y)$ of positive integers with $x+y=205$."
        ));
        assert_eq!(
            records[5].response.as_deref(),
            Some("<script>alert('x')</script> Therefore, the final answer is: $\\boxed{\\frac{2}{5}}$. I hope it is correct")
        );
    }

    #[test]
    fn one_sample_per_doc_takes_the_files_verdict() {
        let sink = read("gsm8k|0");
        assert!(sink.inner.errors.is_empty(), "{:?}", sink.inner.errors);
        assert_eq!(
            sink.sources[0].verdict.as_deref(),
            Some("lighteval extractive_match")
        );
        let got: Vec<_> = sink
            .inner
            .records
            .iter()
            .map(|r| (r.problem_id.as_str(), r.reference.as_deref(), r.outcome))
            .collect();
        // The gold is gsm8k's worked solution; its final answer (after ####) is the reference.
        assert_eq!(
            got,
            [
                ("0", Some("72"), RecordOutcome::Graded(true)),
                ("1", Some("10"), RecordOutcome::Graded(false)),
                ("2", Some("5"), RecordOutcome::Graded(true)),
            ]
        );
        assert_eq!(
            sink.inner.records[0].prompt.as_deref(),
            Some("Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?\nAnswer:")
        );
    }

    #[test]
    fn flat_layout_of_older_versions() {
        let sink = read("lighteval|math_500|0");
        assert!(sink.inner.errors.is_empty(), "{:?}", sink.inner.errors);
        assert_eq!(
            sink.sources[0].verdict.as_deref(),
            Some("lighteval math_pass@1:1_samples")
        );
        assert_eq!(
            sink.sources[0].run_identity.as_deref(),
            Some(format!("lighteval:task=lighteval|math_500|0;date_id={DATE}").as_str())
        );
        let got: Vec<_> = sink
            .inner
            .records
            .iter()
            .map(|r| (r.problem_id.as_str(), r.reference.as_deref(), r.outcome))
            .collect();
        assert_eq!(
            got,
            [
                ("0", Some("4"), RecordOutcome::Graded(true)),
                ("1", Some("\\frac{3}{4}"), RecordOutcome::Graded(true)),
                ("2", Some("3"), RecordOutcome::Graded(false)),
                ("3", Some("6"), RecordOutcome::Graded(true)),
            ]
        );
        assert!(sink.inner.records[0]
            .prompt
            .as_deref()
            .unwrap()
            .ends_with("What is $\\sqrt{16}$?"));
    }

    #[test]
    fn bad_rows_are_rejected_with_file_row_and_field() {
        let sink = read("bad|0");
        let file = name("bad|0");
        let errors: Vec<String> = sink.inner.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                format!("{file}:2: field \"doc.gold_index\": 3 is not an index of doc.choices (1 choices)"),
                format!("{file}:3: field \"model_response.text\": expected a list of generated texts, got an empty list (a loglikelihood or multiple-choice task has no generations to import)"),
                format!("{file}:4: field \"metric.extractive_match\": expected 0 or 1 (the one sample's verdict), got 0.5"),
            ]
        );
        let got: Vec<_> = sink
            .inner
            .records
            .iter()
            .map(|r| (r.line, r.problem_id.as_str(), r.outcome))
            .collect();
        assert_eq!(
            got,
            [
                (1, "0", RecordOutcome::Graded(true)),
                (5, "4", RecordOutcome::Ungraded)
            ]
        );
    }

    #[test]
    fn files_that_are_not_lighteval_details_get_a_clear_error() {
        // A parquet file with other columns (a MATH-500 dataset export).
        let path = fixture("../datasets/math500-sample.parquet");
        let (_, result) = read_all(&LightevalImporter, &path, "details_x.parquet");
        let Err(ReadStop::Input(e)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            e.to_string(),
            "details_x.parquet: not a lighteval details file: its columns are problem, solution, answer, subject, level, unique_id; expected doc, model_response and metric (lighteval 0.11 and later) or example, full_prompt, predictions, gold and metrics (lighteval 0.5 to 0.10)"
        );
        // Not parquet at all, and a truncated parquet.
        let (path, _dir) = temp_file("details_y.parquet", b"{\"doc\":1}\n");
        let (_, result) = read_all(&LightevalImporter, &path, "details_y.parquet");
        assert!(
            matches!(&result, Err(ReadStop::Input(e)) if e.to_string().starts_with("details_y.parquet: not a parquet file")),
            "{result:?}"
        );
        let whole = std::fs::read(fixture(&format!("lighteval/{}", name("gsm8k|0")))).unwrap();
        let (path, _dir) = temp_file("details_z.parquet", &whole[..whole.len() / 2]);
        let (_, result) = read_all(&LightevalImporter, &path, "details_z.parquet");
        assert!(
            matches!(&result, Err(ReadStop::Input(e)) if e.to_string().starts_with("details_z.parquet: not a readable parquet file")),
            "{result:?}"
        );
    }

    #[test]
    fn sniff_and_hints() {
        let file = name("aime24|0");
        let path = fixture(&format!("lighteval/{file}"));
        let input = InputFile::new(&path, &file);
        let head = read_head(&input, SNIFF_BYTES).unwrap();
        assert!(LightevalImporter.sniff(&file, &head));
        // A large file's head has no footer: the name decides.
        assert!(LightevalImporter.sniff(&file, &head[..100]));
        assert!(!LightevalImporter.sniff("upload", &head[..100]));
        assert!(!LightevalImporter.sniff(&file, b"{\"doc\":{}}"));
        let dataset = std::fs::read(fixture("../datasets/math500-sample.parquet")).unwrap();
        assert!(!LightevalImporter.sniff("math500.parquet", &dataset));
        assert_eq!(
            LightevalImporter.hints(&input).unwrap(),
            FileHints {
                dataset: Some("aime24".into()),
                max_tokens: Some(32768),
                n_per_problem: Some(4),
                records_in_head: 12,
                ..FileHints::default()
            }
        );
    }

    #[test]
    fn the_model_is_the_directory_above_the_date() {
        let file = name("gsm8k|0");
        let bytes = std::fs::read(fixture(&format!("lighteval/{file}"))).unwrap();
        let rel = format!("details/Qwen/Qwen2.5-Math-1.5B/{DATE}/{file}");
        let (path, _dir) = temp_file(&rel, &bytes);
        let hints = LightevalImporter
            .hints(&InputFile::new(&path, &file))
            .unwrap();
        assert_eq!(hints.model.as_deref(), Some("Qwen2.5-Math-1.5B"));
        assert_eq!(hints.dataset.as_deref(), Some("gsm8k"));
        // Not under a date directory, or spooled under another name: no model.
        let (path, _dir) = temp_file(&format!("m/{file}"), &bytes);
        assert_eq!(
            LightevalImporter
                .hints(&InputFile::new(&path, &file))
                .unwrap()
                .model,
            None
        );
        let (path, _dir) = temp_file(&format!("m/{DATE}/upload"), &bytes);
        assert_eq!(
            LightevalImporter
                .hints(&InputFile::new(&path, &file))
                .unwrap()
                .model,
            None
        );
    }

    #[test]
    fn task_names_and_dates() {
        assert_eq!(
            task_and_date("out/details/m/2025-01-01T00-00-00.1/details_lighteval|aime24|0_2025-01-01T00-00-00.123456.parquet"),
            Some(("lighteval|aime24|0".into(), Some("2025-01-01T00-00-00.123456".into())))
        );
        assert_eq!(
            task_and_date("details_mmlu_pro|0_2025-06-01T12-00-00.000000.parquet"),
            Some((
                "mmlu_pro|0".into(),
                Some("2025-06-01T12-00-00.000000".into())
            ))
        );
        assert_eq!(
            task_and_date("details_gsm8k.parquet"),
            Some(("gsm8k".into(), None))
        );
        assert_eq!(task_and_date("results.parquet"), None);
        assert_eq!(dataset_of_task("lighteval|aime24|0"), "aime24");
        assert_eq!(dataset_of_task("aime24|0"), "aime24");
        assert_eq!(dataset_of_task("gsm8k"), "gsm8k");
        assert_eq!(
            dataset_of_task("mmlu:abstract_algebra|5"),
            "mmlu:abstract_algebra"
        );
    }
}
