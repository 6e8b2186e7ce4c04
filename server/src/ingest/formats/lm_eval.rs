//! lm-evaluation-harness `samples_<task>_<date>.jsonl` (`--log_samples`), docs/formats/lm-eval.md.
//!
//! One line per document *per filter*; every filter's line repeats the same `resps`, so only the
//! lines of one filter are imported: the filter of the first line (a JSON object) of the file.
//! Lines of other filters are skipped without a message. Each of `resps[0]` (requests x repeats,
//! or the flattened list) is one rollout; lm-eval keeps no per-repeat verdict, so every rollout
//! is `Ungraded` and the pipeline grades it against `target`.
//!
//! What the file says about the run goes to [`RecordSink::source`]: the metrics and filter of the
//! imported lines, and an identity from the file name's task and date and the first line's
//! hashes ([`run_identity`]).

use super::common::{
    file_stem, first_line_object, head_records, id_string, integer, kind, number, parse_object,
    reference_text,
};
use crate::ingest::{
    for_each_line, FileHints, FormatSpec, InputError, InputFile, ReadStop, RecordOutcome,
    RecordSink, RolloutImporter, RolloutRecord, SourceInfo,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

pub struct LmEvalImporter;

/// Records of the head that [`LmEvalImporter::hints`] looks at.
const HINT_RECORDS: usize = 2000;

/// This format's row in the registry ([`super::ALL`]).
static SPEC: FormatSpec = FormatSpec {
    name: "lm-eval",
    title: "lm-evaluation-harness samples (--log_samples)",
    extensions: &["samples_<task>_<date>.jsonl", ".jsonl.gz"],
};

impl RolloutImporter for LmEvalImporter {
    fn spec(&self) -> &'static FormatSpec {
        &SPEC
    }

    fn sniff(&self, file_name: &str, head: &[u8]) -> bool {
        let Some(line) = first_line_object(head) else {
            return false;
        };
        line.has("doc_id")
            && (line.has("resps")
                || line.has("filtered_resps")
                || line.has("arguments")
                || file_stem(file_name).starts_with("samples_"))
    }

    fn hints(&self, input: &InputFile) -> Result<FileHints, InputError> {
        let head = head_records(self, input, HINT_RECORDS)?;
        let mut hints = FileHints {
            dataset: task_from_file_name(&input.name),
            n_per_problem: head.per_problem,
            has_tokens: head.has_tokens,
            records_in_head: head.records,
            ..FileHints::default()
        };
        // Sampling parameters: from the first line that has them.
        let mut sink = super::common::NullSink;
        let result = for_each_line(input, &mut sink, |line_no, text, _| {
            if line_no > 100 {
                return Err(ReadStop::Sink("no generation arguments in the head".into()));
            }
            if let Some(kwargs) = parse_object(text).ok().as_ref().and_then(gen_kwargs) {
                let temperature = kwargs.get("temperature").and_then(number);
                let do_sample = kwargs.get("do_sample").and_then(|v| match v {
                    Value::Bool(b) => Some(*b),
                    Value::String(s) => Some(s == "True" || s == "true"),
                    _ => None,
                });
                hints.temperature = temperature.or(match do_sample {
                    Some(false) => Some(0.0),
                    _ => None,
                });
                hints.top_p = kwargs.get("top_p").and_then(number);
                hints.max_tokens = kwargs.get("max_gen_toks").and_then(integer);
                return Err(ReadStop::Sink("found".into()));
            }
            Ok(())
        });
        match result {
            Ok(()) | Err(ReadStop::Sink(_)) => Ok(hints),
            Err(ReadStop::Input(e)) => Err(e),
        }
    }

    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
        // The filter whose lines are imported (`Some(None)`: the first line had no filter key).
        let mut chosen: Option<Option<String>> = None;
        let mut seen_docs = HashSet::<String>::new();
        let mut first_line: Option<Map<String, Value>> = None;
        for_each_line(input, sink, |line_no, text, sink| {
            let reject = |sink: &mut dyn RecordSink, field: Option<&str>, msg: String| {
                sink.reject(input.line_error(line_no, field, msg))
            };
            let line = match parse_object(text) {
                Ok(line) => line,
                Err(msg) => return reject(sink, None, msg),
            };
            let filter = match line.get("filter") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return reject(
                        sink,
                        Some("filter"),
                        format!("expected a string (the filter name), got {}", kind(other)),
                    )
                }
            };
            match &chosen {
                None => {
                    chosen = Some(filter.clone());
                    first_line = Some(line.clone());
                }
                Some(c) if *c != filter => return Ok(()),
                Some(_) => {}
            }
            let problem_id = match line.get("doc_id") {
                None => {
                    return reject(sink, Some("doc_id"), "required (the document index)".into())
                }
                Some(v) => match id_string(v) {
                    Ok(id) => id,
                    Err(msg) => return reject(sink, Some("doc_id"), msg),
                },
            };
            let responses = match line.get("resps") {
                None => return reject(sink, Some("resps"), "required (the generations)".into()),
                Some(v) => match responses(v) {
                    Ok(r) => r,
                    Err(msg) => return reject(sink, Some("resps"), msg),
                },
            };
            let reference = match line.get("target").map(reference_text).unwrap_or(Ok(None)) {
                Ok(r) => r,
                Err(got) => {
                    return reject(
                        sink,
                        Some("target"),
                        format!("expected a string, a number or a list of them, got {got}"),
                    )
                }
            };
            if !seen_docs.insert(problem_id.clone()) {
                return reject(
                    sink,
                    Some("doc_id"),
                    format!(
                        "doc_id {problem_id} appears a second time for filter {} (lm-eval appends to samples files: was a second run written into this one?)",
                        filter.as_deref().map(|f| format!("\"{f}\"")).unwrap_or_else(|| "(none)".into())
                    ),
                );
            }
            let prompt = prompt(&line);
            let verdict = file_verdict(&line, responses.len());
            for (sample, response) in responses.into_iter().enumerate() {
                sink.record(RolloutRecord {
                    line: line_no,
                    problem_id: problem_id.clone(),
                    prompt: prompt.clone(),
                    reference: reference.clone(),
                    sample: Some(sample as u64),
                    outcome: match verdict {
                        Some(v) if sample == 0 => RecordOutcome::Graded(v),
                        _ => RecordOutcome::Ungraded,
                    },
                    response: Some(response),
                    ..RolloutRecord::default()
                })?;
            }
            Ok(())
        })?;
        sink.source(source_info(&input.name, first_line.as_ref()))
    }
}

/// lm-eval's own verdict on a line: its first metric (`exact_match`, `acc`, ...), when the value is
/// 0 or 1 and the filter kept one response (`filtered_resps` of one entry: a `take_first` filter,
/// or a single repeat). That response is the first repeat, so the verdict is sample 0's; the other
/// repeats have none from the file (caplens grades them). A metric over several filtered
/// responses (majority vote) or a partial score grades no single rollout: `None`.
fn file_verdict(line: &Map<String, Value>, repeats: usize) -> Option<bool> {
    let metric = line.get("metrics")?.as_array()?.first()?.as_str()?;
    let filtered_one = match line.get("filtered_resps") {
        Some(Value::Array(items)) => items.len() == 1 || repeats == 1,
        Some(Value::String(_)) => true,
        _ => repeats == 1,
    };
    if !filtered_one {
        return None;
    }
    match line.get(metric)? {
        Value::Bool(b) => Some(*b),
        v => match number(v)? {
            1.0 => Some(true),
            0.0 => Some(false),
            _ => None,
        },
    }
}

/// What the samples file says about the run: lm-eval wrote it; its verdicts are the metrics of
/// the imported filter; its identity is [`run_identity`].
fn source_info(file_name: &str, first_line: Option<&Map<String, Value>>) -> SourceInfo {
    let verdict = first_line.and_then(|line| {
        let metrics: Vec<&str> = line
            .get("metrics")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if metrics.is_empty() {
            return None;
        }
        let filter = match line.get("filter").and_then(Value::as_str) {
            Some(f) => format!(" (filter {f})"),
            None => String::new(),
        };
        Some(format!("lm-eval {}{filter}", metrics[0]))
    });
    SourceInfo {
        tool: Some("lm-eval".into()),
        run_identity: first_line.and_then(|line| run_identity(file_name, line)),
        status: None,
        verdict,
    }
}

/// The run's identity, `lm-eval:<task>@<date>#<hash>`: lm-eval names a samples file by its task
/// and the date (to the microsecond) its run started, which tells runs apart, and the same file
/// keeps that name whatever container it comes in (`.jsonl`, `.jsonl.gz`). The hash (16 hex
/// digits of SHA-256) over the first line's `doc_hash`, `prompt_hash` and `target_hash` (what the
/// task's first document, prompt and target were) adds the task's configuration, so two files
/// that share a name but not a task configuration stay apart. `None` without the date (a file
/// renamed: nothing in it tells its run from another run of the same task).
fn run_identity(file_name: &str, first_line: &Map<String, Value>) -> Option<String> {
    let (task, date) = task_and_date(file_name)?;
    let date = date?;
    let hashes: Vec<&str> = ["doc_hash", "prompt_hash", "target_hash"]
        .iter()
        .filter_map(|k| first_line.get(*k).and_then(Value::as_str))
        .collect();
    let mut identity = format!("lm-eval:{task}@{date}");
    if !hashes.is_empty() {
        let digest = Sha256::digest(hashes.join("\n").as_bytes());
        identity.push('#');
        identity.push_str(&crate::storage::hex(&digest[..8]));
    }
    Some(identity)
}

/// The rollouts of `resps`: `[[s1..sN]]` (one request x N repeats) or the flattened `[s1..sN]`.
fn responses(v: &Value) -> Result<Vec<String>, String> {
    const EXPECTED: &str = "expected a list of lists of strings ([[response, ...]])";
    let items = match v {
        Value::Array(items) => items,
        other => return Err(format!("{EXPECTED}, got {}", kind(other))),
    };
    let strings = |list: &[Value]| -> Option<Vec<String>> {
        list.iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
    };
    if items.is_empty() {
        return Err(format!("{EXPECTED}, got an empty list"));
    }
    if let Some(flat) = strings(items) {
        return Ok(flat);
    }
    let nested: Option<Vec<&Vec<Value>>> = items.iter().map(Value::as_array).collect();
    let Some(requests) = nested else {
        let bad = items
            .iter()
            .find(|i| !i.is_string() && !i.is_array())
            .unwrap_or(&items[0]);
        return Err(format!("{EXPECTED}, got a list containing {}", kind(bad)));
    };
    if requests.iter().any(|r| r.iter().any(Value::is_array)) {
        return Err(format!(
            "{EXPECTED}, got lists of lists of lists: a loglikelihood (multiple-choice) task, which has no generations to import"
        ));
    }
    if requests.len() != 1 {
        return Err(format!(
            "{EXPECTED} with one request per document (a generate_until task), got {} requests",
            requests.len()
        ));
    }
    strings(requests[0]).ok_or_else(|| {
        let bad = requests[0]
            .iter()
            .find(|s| !s.is_string())
            .unwrap_or(&Value::Null);
        format!("{EXPECTED}, got a response that is {}", kind(bad))
    })
}

/// `arguments.gen_args_0` (current lm-eval) or `arguments[0]` (older: a list of argument lists).
fn first_arguments(line: &Map<String, Value>) -> Option<(Option<&Value>, Option<&Value>)> {
    match line.get("arguments")? {
        Value::Object(args) => {
            let first = args.get("gen_args_0")?.as_object()?;
            Some((first.get("arg_0"), first.get("arg_1")))
        }
        Value::Array(args) => {
            let first = args.first()?.as_array()?;
            Some((first.first(), first.get(1)))
        }
        _ => None,
    }
}

fn prompt(line: &Map<String, Value>) -> Option<String> {
    first_arguments(line)?.0?.as_str().map(str::to_owned)
}

/// The generation kwargs (`arg_1`) of the first request.
fn gen_kwargs(line: &Map<String, Value>) -> Option<Map<String, Value>> {
    first_arguments(line)?.1?.as_object().cloned()
}

/// The task of `samples_<task>_<date>.jsonl`: `samples_aime24_2025-01-01T00-00-00.123456.jsonl`
/// gives `aime24` (task names may contain `_`; the date is the last `_`-part that starts with a
/// four-digit year and `-`).
pub(crate) fn task_from_file_name(name: &str) -> Option<String> {
    task_and_date(name).map(|(task, _)| task.to_string())
}

/// The task and the date of `samples_<task>_<date>.jsonl` (`None` date: the name has none).
fn task_and_date(name: &str) -> Option<(&str, Option<&str>)> {
    let rest = file_stem(name).strip_prefix("samples_")?;
    let mut task = rest;
    let mut date = None;
    for (i, _) in rest
        .match_indices('_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let tail = &rest.as_bytes()[i + 1..];
        if tail.len() >= 5 && tail[..4].iter().all(u8::is_ascii_digit) && tail[4] == b'-' {
            task = &rest[..i];
            date = Some(&rest[i + 1..]);
            break;
        }
    }
    (!task.is_empty()).then_some((task, date))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::formats::common::{fixture, read_all, temp_file};

    const FILE: &str = "samples_aime24_2025-06-01T12-00-00.000000.jsonl";

    fn check_fixture_records(records: &[RolloutRecord]) {
        let got: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.problem_id.as_str(),
                    r.sample,
                    r.reference.as_deref(),
                    r.response.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    1,
                    "0",
                    Some(0),
                    Some("204"),
                    Some("The answer is $\\boxed{204}$.")
                ),
                (
                    1,
                    "0",
                    Some(1),
                    Some("204"),
                    Some("I think it is \\boxed{200}.")
                ),
                (1, "0", Some(2), Some("204"), Some("\\boxed{204}")),
                (
                    2,
                    "1",
                    Some(0),
                    Some("1"),
                    Some("So $\\frac{1}{2}+\\frac{1}{2}=\\boxed{1}$.")
                ),
                (
                    2,
                    "1",
                    Some(1),
                    Some("1"),
                    Some("<script>alert('x')</script> \\boxed{2}")
                ),
                (2, "1", Some(2), Some("1"), Some("ünïcödé ∑ \\boxed{1}")),
                (
                    5,
                    "2",
                    Some(0),
                    Some("0.5"),
                    Some("Half of 1 is \\boxed{0.5}")
                ),
                (5, "2", Some(1), Some("0.5"), Some("\\boxed{\\frac{1}{2}}")),
                (5, "2", Some(2), Some("0.5"), Some("\\boxed{2}")),
            ]
        );
        for r in records {
            // lm-eval's exact_match grades the filtered (first) response only: sample 0.
            let expected = match (r.sample, r.problem_id.as_str()) {
                (Some(0), "2") => RecordOutcome::Graded(false),
                (Some(0), _) => RecordOutcome::Graded(true),
                _ => RecordOutcome::Ungraded,
            };
            assert_eq!(r.outcome, expected, "{r:?}");
            assert!(r.prompt.as_deref().unwrap().starts_with("Problem:\n"));
            assert_eq!(
                (r.model.as_ref(), r.dataset.as_ref(), r.answer.as_ref()),
                (None, None, None)
            );
            assert!(r.tokens.is_none());
        }
    }

    #[test]
    fn reads_the_first_filter_and_both_resps_shapes() {
        let (sink, result) = read_all(&LmEvalImporter, &fixture(&format!("lm-eval/{FILE}")), FILE);
        result.unwrap();
        assert!(sink.errors.is_empty(), "{:?}", sink.errors);
        check_fixture_records(&sink.records);
        assert_eq!(
            sink.records[0].prompt.as_deref(),
            Some("Problem:\nFind the number of ordered pairs.\n\nSolution:")
        );
    }

    #[test]
    fn reads_gzip() {
        let name = format!("{FILE}.gz");
        let (sink, result) = read_all(&LmEvalImporter, &fixture(&format!("lm-eval/{name}")), &name);
        result.unwrap();
        check_fixture_records(&sink.records);
    }

    #[test]
    fn reads_zstd() {
        let plain = std::fs::read(fixture(&format!("lm-eval/{FILE}"))).unwrap();
        let compressed = zstd::encode_all(&plain[..], 3).unwrap();
        let (path, _dir) = temp_file("x.jsonl.zst", &compressed);
        let (sink, result) = read_all(&LmEvalImporter, &path, "x.jsonl.zst");
        result.unwrap();
        check_fixture_records(&sink.records);
    }

    #[test]
    fn hints() {
        let input = InputFile::new(fixture(&format!("lm-eval/{FILE}")), FILE);
        let hints = LmEvalImporter.hints(&input).unwrap();
        assert_eq!(
            hints,
            FileHints {
                dataset: Some("aime24".into()),
                temperature: Some(0.6),
                top_p: Some(0.95),
                max_tokens: Some(4096),
                n_per_problem: Some(3),
                records_in_head: 9,
                ..FileHints::default()
            }
        );
    }

    #[test]
    fn task_names() {
        assert_eq!(
            task_from_file_name("samples_aime24_2025-01-01T00-00-00.123456.jsonl").as_deref(),
            Some("aime24")
        );
        assert_eq!(
            task_from_file_name(
                "out/samples_minerva_math_algebra_2024-12-31T23-59-59.000001.jsonl.gz"
            )
            .as_deref(),
            Some("minerva_math_algebra")
        );
        assert_eq!(
            task_from_file_name("samples_gsm8k.jsonl").as_deref(),
            Some("gsm8k")
        );
        assert_eq!(task_from_file_name("results.jsonl"), None);
    }

    #[test]
    fn bad_lines_are_rejected_with_file_line_and_field() {
        let lines = [
            r#"{"doc_id":0,"filter":"none","resps":[["a"]],"target":"1"}"#,
            r#"{"doc_id":1,"filter":"none","resps":5}"#,
            r#"{"doc_id":2,"filter":"none","resps":[[["-1.2","False"]],[["-0.3","True"]]]}"#,
            r#"{"doc_id":3,"filter":"none","resps":[["a"],["b"]]}"#,
            r#"{"doc_id":4,"filter":"none","resps":[[1,2]]}"#,
            r#"{"filter":"none","resps":[["a"]]}"#,
            r#"{"doc_id":{"x":1},"filter":"none","resps":[["a"]]}"#,
            r#"{"doc_id":0,"filter":"none","resps":[["again"]]}"#,
            r#"{"doc_id":5,"filter":7,"resps":[["a"]]}"#,
            r#"{"doc_id":6,"filter":"none","resps":[["a"]],"target":{"a":1}}"#,
            r#"{"doc_id":7,"filter":"none","resps":[]}"#,
            r#"{"doc_id":8,"filter":"none""#,
            "[1,2]",
            r#"{"doc_id":9,"filter":"none","resps":["ok"],"exact_match":NaN}"#,
        ];
        let mut text = lines.join("\n").into_bytes();
        text.extend_from_slice(b"\n{\"doc_id\":10,\"resps\":[\"\xff\"]}\n");
        let (path, _dir) = temp_file("bad.jsonl", &text);
        let (sink, result) = read_all(&LmEvalImporter, &path, "bad.jsonl");
        result.unwrap();
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            vec![
                "bad.jsonl:2: field \"resps\": expected a list of lists of strings ([[response, ...]]), got a number",
                "bad.jsonl:3: field \"resps\": expected a list of lists of strings ([[response, ...]]), got lists of lists of lists: a loglikelihood (multiple-choice) task, which has no generations to import",
                "bad.jsonl:4: field \"resps\": expected a list of lists of strings ([[response, ...]]) with one request per document (a generate_until task), got 2 requests",
                "bad.jsonl:5: field \"resps\": expected a list of lists of strings ([[response, ...]]), got a response that is a number",
                "bad.jsonl:6: field \"doc_id\": required (the document index)",
                "bad.jsonl:7: field \"doc_id\": expected a string or an integer, got an object",
                "bad.jsonl:8: field \"doc_id\": doc_id 0 appears a second time for filter \"none\" (lm-eval appends to samples files: was a second run written into this one?)",
                "bad.jsonl:9: field \"filter\": expected a string (the filter name), got a number",
                "bad.jsonl:10: field \"target\": expected a string, a number or a list of them, got an object",
                "bad.jsonl:11: field \"resps\": expected a list of lists of strings ([[response, ...]]), got an empty list",
                "bad.jsonl:12: invalid JSON: EOF while parsing an object at line 1 column 27",
                "bad.jsonl:13: expected a JSON object, got a list",
                "bad.jsonl:15: invalid UTF-8 at byte 24 of the line",
            ]
        );
        // Line 1 and line 14 (NaN read as null) are imported.
        let ids: Vec<&str> = sink.records.iter().map(|r| r.problem_id.as_str()).collect();
        assert_eq!(ids, ["0", "9"]);
    }

    #[test]
    fn a_megabyte_line() {
        let long = "x".repeat(3 << 20);
        let text = format!("{{\"doc_id\":0,\"filter\":\"none\",\"resps\":[[\"{long}\",\"<script>\"]],\"target\":\"1\"}}\n");
        let (path, _dir) = temp_file("long.jsonl", text.as_bytes());
        let (sink, result) = read_all(&LmEvalImporter, &path, "long.jsonl");
        result.unwrap();
        assert_eq!(sink.records.len(), 2);
        assert_eq!(sink.records[0].response.as_ref().unwrap().len(), 3 << 20);
        // A head cut inside the long line still sniffs.
        assert!(LmEvalImporter.sniff("long.jsonl", &text.as_bytes()[..1000]));
    }

    #[test]
    fn sniff() {
        assert!(LmEvalImporter.sniff("x.jsonl", br#"{"doc_id":0,"doc":{},"resps":[["a"]]}"#));
        assert!(LmEvalImporter.sniff(
            "samples_x_2025-01-01.jsonl",
            br#"{"doc_id":0,"doc":{"q":"cut"#
        ));
        assert!(!LmEvalImporter.sniff("x.jsonl", br#"{"doc_id":0,"doc":{"q":"cut"#));
        assert!(!LmEvalImporter.sniff(
            "x.jsonl",
            br#"{"model":"m","problem_id":"1","correct":true}"#
        ));
        assert!(!LmEvalImporter.sniff("x.jsonl", b"not json"));
    }

    #[test]
    fn source_names_the_metrics_filter_and_run() {
        let expected = SourceInfo {
            tool: Some("lm-eval".into()),
            // sha256("a0\nb0\nc0"): the first line's doc, prompt and target hashes.
            run_identity: Some("lm-eval:aime24@2025-06-01T12-00-00.000000#f80c88a159b76a22".into()),
            status: None,
            verdict: Some("lm-eval exact_match (filter none)".into()),
        };
        for name in [FILE.to_string(), format!("{FILE}.gz")] {
            let (sink, result) =
                read_all(&LmEvalImporter, &fixture(&format!("lm-eval/{name}")), &name);
            result.unwrap();
            assert_eq!(sink.sources, std::slice::from_ref(&expected), "{name}");
        }
        // Renamed: nothing tells this run from another run of the task.
        let (sink, _) = read_all(
            &LmEvalImporter,
            &fixture(&format!("lm-eval/{FILE}")),
            "samples_aime24.jsonl",
        );
        assert_eq!(sink.sources[0].run_identity, None);
        // Another task configuration at the same date is another run.
        let text = std::fs::read_to_string(fixture(&format!("lm-eval/{FILE}")))
            .unwrap()
            .replacen("\"b0\"", "\"b9\"", 1);
        let (path, _dir) = temp_file(FILE, text.as_bytes());
        let (sink, _) = read_all(&LmEvalImporter, &path, FILE);
        assert_ne!(sink.sources[0].run_identity, expected.run_identity);
        assert!(sink.sources[0]
            .run_identity
            .as_deref()
            .unwrap()
            .starts_with("lm-eval:aime24@2025-06-01T12-00-00.000000#"));
    }

    #[test]
    fn a_results_file_or_a_json_document_is_named_for_what_it_is() {
        let results = "{\n  \"results\": {\n    \"aime24\": {\n      \"exact_match,none\": 0.5,\n      \"exact_match_stderr,none\": NaN\n    }\n  },\n  \"versions\": {\"aime24\": 1}\n}\n";
        let (path, _dir) = temp_file(
            "results_2025-06-01T12-00-00.000000.json",
            results.as_bytes(),
        );
        let name = "results_2025-06-01T12-00-00.000000.json";
        let (sink, result) = read_all(&LmEvalImporter, &path, name);
        let Err(ReadStop::Input(e)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            e.to_string(),
            "results_2025-06-01T12-00-00.000000.json:1: this looks like an lm-eval results file (results_*.json), not samples; upload the samples_*.jsonl written with --log_samples"
        );
        assert!(sink.errors.is_empty() && sink.records.is_empty());
        let input = InputFile::new(&path, name);
        assert_eq!(
            LmEvalImporter.hints(&input).unwrap_err().to_string(),
            e.to_string()
        );
        assert_eq!(crate::ingest::detect(&input).unwrap_err().to_string(), "results_2025-06-01T12-00-00.000000.json: this looks like an lm-eval results file (results_*.json), not samples; upload the samples_*.jsonl written with --log_samples");
        // The samples of a file as one indented JSON list.
        let pretty = "\n[\n  {\n    \"doc_id\": 0,\n    \"resps\": [[\"a\"]]\n  }\n]\n";
        let (path, _dir) = temp_file("samples.json", pretty.as_bytes());
        let (_, result) = read_all(&LmEvalImporter, &path, "samples.json");
        let Err(ReadStop::Input(e)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(
            e.to_string(),
            "samples.json:2: this is a JSON document spread over several lines, not JSON Lines (one record per line)"
        );
    }
}
