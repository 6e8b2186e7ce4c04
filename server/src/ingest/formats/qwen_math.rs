//! Qwen2.5-Math evaluation / math-evaluation-harness JSONL, docs/formats/qwen-math.md.
//!
//! One line per problem: `idx`, `question`, `gt`, and parallel lists `code` (the generations),
//! `pred` (the extracted answers) and `score` (the tool's verdicts). Element `i` of the lists is
//! sample `i` of the problem.

use super::common::{
    file_stem, first_line_object, head_records, id_string, kind, parent_dir_name, parse_object,
    reference_text, scalar_text,
};
use crate::ingest::{
    for_each_line, FileHints, FormatSpec, InputError, InputFile, ReadStop, RecordOutcome,
    RecordSink, RolloutImporter, RolloutRecord,
};
use serde_json::Value;

pub struct QwenMathImporter;

const HINT_RECORDS: usize = 2000;

/// This format's row in the registry ([`super::ALL`]).
static SPEC: FormatSpec = FormatSpec {
    name: "qwen-math",
    title: "Qwen2.5-Math / math-evaluation-harness JSONL",
    extensions: &[".jsonl"],
};

impl RolloutImporter for QwenMathImporter {
    fn spec(&self) -> &'static FormatSpec {
        &SPEC
    }

    fn sniff(&self, file_name: &str, head: &[u8]) -> bool {
        let Some(line) = first_line_object(head) else {
            return false;
        };
        line.has("idx")
            && (line.has("gt") || line.has("gt_cot") || line.has("question"))
            && (line.has("code")
                || line.has("pred")
                || line.has("score")
                || temperature_from_file_name(file_name).is_some())
    }

    fn hints(&self, input: &InputFile) -> Result<FileHints, InputError> {
        let head = head_records(self, input, HINT_RECORDS)?;
        Ok(FileHints {
            dataset: parent_dir_name(input),
            temperature: temperature_from_file_name(&input.name),
            n_per_problem: head.per_problem,
            has_tokens: head.has_tokens,
            records_in_head: head.records,
            ..FileHints::default()
        })
    }

    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
        for_each_line(input, sink, |line_no, text, sink| {
            let reject = |sink: &mut dyn RecordSink, field: Option<&str>, msg: String| {
                sink.reject(input.line_error(line_no, field, msg))
            };
            let line = match parse_object(text) {
                Ok(line) => line,
                Err(msg) => return reject(sink, None, msg),
            };
            let problem_id = match line.get("idx") {
                None => return reject(sink, Some("idx"), "required (the problem index)".into()),
                Some(v) => match id_string(v) {
                    Ok(id) => id,
                    Err(msg) => return reject(sink, Some("idx"), msg),
                },
            };
            let code = match list(&line, "code", "strings (one generation per sample)", |v| {
                v.as_str().map(|s| Some(s.to_owned()))
            }) {
                Ok(Some(code)) => code,
                Ok(None) => {
                    return reject(
                        sink,
                        Some("code"),
                        "required (the list of generations)".into(),
                    )
                }
                Err(msg) => return reject(sink, Some("code"), msg),
            };
            // `pred` entries are answers as strings (numbers are accepted and written out);
            // null is a sample without an extracted answer.
            let pred = match list(
                &line,
                "pred",
                "strings (the extracted answers)",
                |v| match v {
                    Value::Null => Some(None),
                    other => scalar_text(other).map(Some),
                },
            ) {
                Ok(p) => p,
                Err(msg) => return reject(sink, Some("pred"), msg),
            };
            let score = match list(&line, "score", "booleans", |v| match v {
                Value::Bool(b) => Some(Some(*b)),
                // 0/1 as numbers, as some forks write them.
                Value::Number(n) if n.as_f64() == Some(1.0) => Some(Some(true)),
                Value::Number(n) if n.as_f64() == Some(0.0) => Some(Some(false)),
                _ => None,
            }) {
                Ok(s) => s,
                Err(msg) => return reject(sink, Some("score"), msg),
            };
            for (field, len) in [
                ("pred", pred.as_ref().map(Vec::len)),
                ("score", score.as_ref().map(Vec::len)),
            ] {
                if let Some(len) = len.filter(|&l| l != code.len()) {
                    return reject(
                        sink,
                        Some(field),
                        format!(
                            "has {len} entries but \"code\" has {}: the lists must be parallel (one entry per sample)",
                            code.len()
                        ),
                    );
                }
            }
            let reference = match line.get("gt").map(reference_text).unwrap_or(Ok(None)) {
                Ok(r) => r,
                Err(got) => {
                    return reject(
                        sink,
                        Some("gt"),
                        format!("expected a string, a number or a list of them, got {got}"),
                    )
                }
            };
            let prompt = match line.get("question") {
                None | Some(Value::Null) => None,
                Some(Value::String(q)) => Some(q.clone()),
                Some(other) => {
                    return reject(
                        sink,
                        Some("question"),
                        format!("expected a string, got {}", kind(other)),
                    )
                }
            };
            for (i, response) in code.into_iter().enumerate() {
                sink.record(RolloutRecord {
                    line: line_no,
                    problem_id: problem_id.clone(),
                    prompt: prompt.clone(),
                    reference: reference.clone(),
                    sample: Some(i as u64),
                    outcome: match score.as_ref().and_then(|s| s[i]) {
                        Some(correct) => RecordOutcome::Graded(correct),
                        None => RecordOutcome::Ungraded,
                    },
                    response,
                    answer: pred.as_ref().and_then(|p| p[i].clone()),
                    ..RolloutRecord::default()
                })?;
            }
            Ok(())
        })
    }
}

/// The list `field` of `line` with each element converted by `each` (`None` = wrong type);
/// `Ok(None)` when the field is absent or null.
fn list<T>(
    line: &serde_json::Map<String, Value>,
    field: &str,
    what: &str,
    each: impl Fn(&Value) -> Option<Option<T>>,
) -> Result<Option<Vec<Option<T>>>, String> {
    match line.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                each(v).ok_or_else(|| {
                    format!(
                        "expected a list of {what}, got a list containing {}",
                        kind(v)
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(format!("expected a list of {what}, got {}", kind(other))),
    }
}

/// The sampling temperature of a file named
/// `<split>_<prompt_type>_<num_test_sample>_seed<seed>_t<temp>_s<start>_e<end>.jsonl`.
pub(crate) fn temperature_from_file_name(name: &str) -> Option<f64> {
    let parts: Vec<&str> = file_stem(name).split('_').collect();
    parts.windows(2).find_map(|w| {
        let seed = w[0].strip_prefix("seed")?;
        if seed.is_empty() || !seed.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        w[1].strip_prefix('t')?
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::formats::common::{fixture, read_all, temp_file};

    const FILE: &str = "test_qwen25-math-cot_-1_seed0_t0.6_s0_e-1.jsonl";

    #[test]
    fn one_record_per_list_element() {
        let path = fixture(&format!("qwen-math/math500/{FILE}"));
        let (sink, result) = read_all(&QwenMathImporter, &path, FILE);
        result.unwrap();
        assert!(sink.errors.is_empty(), "{:?}", sink.errors);
        let got: Vec<_> = sink
            .records
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.problem_id.as_str(),
                    r.sample,
                    r.outcome,
                    r.answer.as_deref(),
                    r.reference.as_deref(),
                )
            })
            .collect();
        use RecordOutcome::*;
        assert_eq!(
            got,
            vec![
                (1, "0", Some(0), Graded(true), Some("204"), Some("204")),
                (1, "0", Some(1), Graded(false), Some("200"), Some("204")),
                (
                    2,
                    "1",
                    Some(0),
                    Graded(true),
                    Some("\\frac{1}{2}"),
                    Some("\\frac{1}{2}")
                ),
                (
                    2,
                    "1",
                    Some(1),
                    Graded(false),
                    Some(""),
                    Some("\\frac{1}{2}")
                ),
                (3, "2", Some(0), Ungraded, Some("3"), Some("3")),
                (3, "2", Some(1), Ungraded, None, Some("3")),
            ]
        );
        let r = &sink.records[3];
        assert_eq!(
            r.response.as_deref(),
            Some("<script>alert(1)</script><b>no answer</b>")
        );
        assert_eq!(
            r.prompt.as_deref(),
            Some("Compute $\\frac{1}{4}+\\frac{1}{4}$.")
        );
        assert_eq!(
            sink.records[0].response.as_deref(),
            Some("There are 204 pairs, so the answer is \\(\\boxed{204}\\).")
        );
        assert!(sink
            .records
            .iter()
            .all(|r| r.tokens.is_none() && r.model.is_none() && r.step.is_none()));
    }

    #[test]
    fn hints_from_directory_and_file_name() {
        let input = InputFile::new(fixture(&format!("qwen-math/math500/{FILE}")), FILE);
        assert_eq!(
            QwenMathImporter.hints(&input).unwrap(),
            FileHints {
                dataset: Some("math500".into()),
                temperature: Some(0.6),
                n_per_problem: Some(2),
                records_in_head: 6,
                ..FileHints::default()
            }
        );
        // An upload spooled under another name: the directory means nothing.
        let (path, _dir) = temp_file("spool-123", &std::fs::read(input.path).unwrap());
        let hints = QwenMathImporter.hints(&InputFile::new(path, FILE)).unwrap();
        assert_eq!((hints.dataset, hints.temperature), (None, Some(0.6)));
        // The user's name with a directory.
        let hints = QwenMathImporter
            .hints(&InputFile::new(
                fixture(&format!("qwen-math/math500/{FILE}")),
                format!("gsm8k/{FILE}"),
            ))
            .unwrap();
        assert_eq!(hints.dataset.as_deref(), Some("gsm8k"));
    }

    #[test]
    fn temperatures() {
        assert_eq!(
            temperature_from_file_name("test_cot_-1_seed0_t0.6_s0_e-1.jsonl"),
            Some(0.6)
        );
        assert_eq!(
            temperature_from_file_name("x/test_tool-integrated_500_seed12_t0.0_s0_e-1.jsonl.gz"),
            Some(0.0)
        );
        assert_eq!(temperature_from_file_name("test_cot.jsonl"), None);
        assert_eq!(temperature_from_file_name("seedx_t1.jsonl"), None);
    }

    #[test]
    fn bad_lines() {
        let text = [
            r#"{"idx":0,"code":["a","b"],"pred":["1"],"score":[true,false]}"#,
            r#"{"idx":1,"code":["a","b"],"pred":["1","2"],"score":[true]}"#,
            r#"{"idx":2,"code":"a"}"#,
            r#"{"idx":3,"pred":["1"]}"#,
            r#"{"code":["a"]}"#,
            r#"{"idx":4,"code":["a",3]}"#,
            r#"{"idx":5,"code":["a"],"score":["yes"]}"#,
            r#"{"idx":6,"code":["a"],"gt":{"x":1}}"#,
            r#"{"idx":7,"code":["a"],"question":["q"]}"#,
            r#"{"idx":8,"code":["a"],"pred":[[1]]}"#,
            r#"{"idx":9,"code":["a"],"score":[1],"pred":[7]}"#,
            "{\"idx\":10,",
        ]
        .join("\n");
        let (path, _dir) = temp_file("bad.jsonl", text.as_bytes());
        let (sink, result) = read_all(&QwenMathImporter, &path, "bad.jsonl");
        result.unwrap();
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            vec![
                "bad.jsonl:1: field \"pred\": has 1 entries but \"code\" has 2: the lists must be parallel (one entry per sample)",
                "bad.jsonl:2: field \"score\": has 1 entries but \"code\" has 2: the lists must be parallel (one entry per sample)",
                "bad.jsonl:3: field \"code\": expected a list of strings (one generation per sample), got a string",
                "bad.jsonl:4: field \"code\": required (the list of generations)",
                "bad.jsonl:5: field \"idx\": required (the problem index)",
                "bad.jsonl:6: field \"code\": expected a list of strings (one generation per sample), got a list containing a number",
                "bad.jsonl:7: field \"score\": expected a list of booleans, got a list containing a string",
                "bad.jsonl:8: field \"gt\": expected a string, a number or a list of them, got an object",
                "bad.jsonl:9: field \"question\": expected a string, got a list",
                "bad.jsonl:10: field \"pred\": expected a list of strings (the extracted answers), got a list containing a list",
                "bad.jsonl:12: invalid JSON: EOF while parsing a value at line 1 column 10",
            ]
        );
        assert_eq!(sink.records.len(), 1);
        assert_eq!(sink.records[0].outcome, RecordOutcome::Graded(true));
        assert_eq!(sink.records[0].answer.as_deref(), Some("7"));
    }

    #[test]
    fn sniff() {
        let head = std::fs::read(fixture(&format!("qwen-math/math500/{FILE}"))).unwrap();
        assert!(QwenMathImporter.sniff(FILE, &head));
        assert!(
            QwenMathImporter.sniff(FILE, &head[..40]),
            "a cut head with the file name pattern"
        );
        assert!(!QwenMathImporter.sniff("x.jsonl", &head[..40]));
        assert!(!QwenMathImporter.sniff("x.jsonl", br#"{"doc_id":0,"resps":[["a"]]}"#));
    }
}
