//! verl validation / rollout dumps `<global_step>.jsonl`, docs/formats/verl.md.
//!
//! One line per sample: `{"input", "output", "gts", "score", "step", ...reward_extra_info}`.
//! verl dumps no problem id, so samples are grouped by their `input` text: the problem id is a
//! short hash of it, and the sample index counts the lines with that input so far.
//!
//! Verdict: `acc` when the line has it (math_dapo's reward gives `acc`), else `score > 0.5`
//! (rule-based math rewards give 1/0 or 1/-1; a partial format reward such as 0.1 is not a
//! correct answer); no `acc` and no `score`: ungraded.

use super::common::{
    file_stem, first_line_object, head_records, integer, kind, parse_object, reference_text,
    scalar_text,
};
use crate::ingest::{
    for_each_line, FileHints, FormatSpec, InputError, InputFile, ReadStop, RecordOutcome,
    RecordSink, RolloutImporter, RolloutRecord,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub struct VerlImporter;

const HINT_RECORDS: usize = 2000;

/// This format's row in the registry ([`super::ALL`]).
static SPEC: FormatSpec = FormatSpec {
    name: "verl",
    title: "verl validation dump (<step>.jsonl)",
    extensions: &["<step>.jsonl"],
};

impl RolloutImporter for VerlImporter {
    fn spec(&self) -> &'static FormatSpec {
        &SPEC
    }

    fn sniff(&self, file_name: &str, head: &[u8]) -> bool {
        let Some(line) = first_line_object(head) else {
            return false;
        };
        // A head cut inside a long `input` shows only that key: the `<step>.jsonl` name decides.
        line.has("input")
            && ((line.has("output") && (line.has("gts") || line.has("score") || line.has("step")))
                || step_from_file_name(file_name).is_some())
    }

    fn hints(&self, input: &InputFile) -> Result<FileHints, InputError> {
        let head = head_records(self, input, HINT_RECORDS)?;
        Ok(FileHints {
            step: head.step.or_else(|| step_from_file_name(&input.name)),
            n_per_problem: head.per_problem,
            has_tokens: head.has_tokens,
            records_in_head: head.records,
            ..FileHints::default()
        })
    }

    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
        let file_step = step_from_file_name(&input.name);
        let mut samples = HashMap::<String, u64>::new();
        for_each_line(input, sink, |line_no, text, sink| {
            let reject = |sink: &mut dyn RecordSink, field: Option<&str>, msg: String| {
                sink.reject(input.line_error(line_no, field, msg))
            };
            let line = match parse_object(text) {
                Ok(line) => line,
                Err(msg) => return reject(sink, None, msg),
            };
            let text_field = |field: &str, what: &str| -> Result<String, String> {
                match line.get(field) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    None => Err(format!("required ({what})")),
                    Some(other) => Err(format!("expected a string ({what}), got {}", kind(other))),
                }
            };
            let prompt = match text_field("input", "the prompt as verl decoded it") {
                Ok(p) => p,
                Err(msg) => return reject(sink, Some("input"), msg),
            };
            let response = match text_field("output", "the generated response") {
                Ok(r) => r,
                Err(msg) => return reject(sink, Some("output"), msg),
            };
            let score = match line.get("score") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
                Some(Value::Number(n)) => n.as_f64(),
                Some(other) => {
                    return reject(
                        sink,
                        Some("score"),
                        format!("expected a number (the reward), got {}", kind(other)),
                    )
                }
            };
            let acc = match line.get("acc") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(Value::Number(n)) => n.as_f64().map(|x| x > 0.5),
                Some(other) => {
                    return reject(
                        sink,
                        Some("acc"),
                        format!("expected a boolean (or a number), got {}", kind(other)),
                    )
                }
            };
            let step = match line.get("step") {
                None | Some(Value::Null) => file_step,
                Some(v) => match integer(v) {
                    Some(s) => Some(s),
                    None => {
                        return reject(
                            sink,
                            Some("step"),
                            format!("expected an integer (the training step), got {}", kind(v)),
                        )
                    }
                },
            };
            // An object (a structured ground truth) is kept as its JSON text.
            let reference = match line.get("gts") {
                None => None,
                Some(v) => reference_text(v).unwrap_or_else(|_| Some(v.to_string())),
            };
            let answer = match line.get("pred") {
                None | Some(Value::Null) => None,
                Some(v) => match scalar_text(v) {
                    Some(a) => Some(a),
                    None => {
                        return reject(
                            sink,
                            Some("pred"),
                            format!("expected a string (the extracted answer), got {}", kind(v)),
                        )
                    }
                },
            };
            let problem_id = input_hash(&prompt);
            let sample = samples.entry(problem_id.clone()).or_insert(0);
            let this = *sample;
            *sample += 1;
            sink.record(RolloutRecord {
                line: line_no,
                problem_id,
                prompt: Some(prompt),
                reference,
                sample: Some(this),
                outcome: match (acc, score) {
                    (Some(acc), _) => RecordOutcome::Graded(acc),
                    (None, Some(score)) => RecordOutcome::Graded(score > 0.5),
                    (None, None) => RecordOutcome::Ungraded,
                },
                response: Some(response),
                answer,
                step,
                ..RolloutRecord::default()
            })
        })
    }
}

/// The problem id of a prompt: the first 16 hex digits of the SHA-256 of its text.
pub(crate) fn input_hash(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The global step of a file named `<step>.jsonl`.
pub(crate) fn step_from_file_name(name: &str) -> Option<i64> {
    let stem = file_stem(name);
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::formats::common::{fixture, read_all, temp_file};

    #[test]
    fn groups_by_input_and_grades_by_acc_then_score() {
        let (sink, result) = read_all(&VerlImporter, &fixture("verl/100.jsonl"), "100.jsonl");
        result.unwrap();
        assert!(sink.errors.is_empty(), "{:?}", sink.errors);
        let a = input_hash("system\nPlease reason step by step, and put your final answer within \\boxed{}.\nuser\nWhat is $1+1$?\nassistant\n");
        let b = input_hash("user\nSolve the following math problem step by step. The last line of your response should be of the form Answer: $Answer\n\nHow many primes are below 12?\n\nRemember to put your answer on its own line after \"Answer:\".\nassistant\n");
        let c = input_hash("user\nWhat is $\\sqrt{9}$?\nassistant\n");
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|x| x.is_ascii_hexdigit()));
        use RecordOutcome::*;
        let got: Vec<_> = sink
            .records
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.problem_id.clone(),
                    r.sample,
                    r.outcome,
                    r.reference.as_deref(),
                    r.answer.as_deref(),
                    r.step,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    1,
                    a.clone(),
                    Some(0),
                    Graded(true),
                    Some("2"),
                    None,
                    Some(100)
                ),
                (
                    2,
                    a.clone(),
                    Some(1),
                    Graded(false),
                    Some("2"),
                    None,
                    Some(100)
                ),
                (
                    3,
                    b.clone(),
                    Some(0),
                    Graded(true),
                    Some("5"),
                    Some("5"),
                    Some(100)
                ),
                (
                    4,
                    b.clone(),
                    Some(1),
                    Graded(false),
                    Some("5"),
                    Some("4"),
                    Some(100)
                ),
                (
                    5,
                    c.clone(),
                    Some(0),
                    Graded(false),
                    Some("3"),
                    None,
                    Some(100)
                ),
                (
                    6,
                    a.clone(),
                    Some(2),
                    Graded(true),
                    Some("2"),
                    None,
                    Some(100)
                ),
            ]
        );
        assert_eq!(
            sink.records[3].response.as_deref(),
            Some("<script>alert(1)</script>\nAnswer: 4")
        );
        assert!(sink.records[0]
            .prompt
            .as_deref()
            .unwrap()
            .ends_with("What is $1+1$?\nassistant\n"));
    }

    #[test]
    fn hints() {
        let input = InputFile::new(fixture("verl/100.jsonl"), "100.jsonl");
        assert_eq!(
            VerlImporter.hints(&input).unwrap(),
            FileHints {
                step: Some(100),
                n_per_problem: Some(3),
                records_in_head: 6,
                ..FileHints::default()
            }
        );
        assert_eq!(step_from_file_name("rollouts/250.jsonl.gz"), Some(250));
        assert_eq!(step_from_file_name("val.jsonl"), None);
    }

    #[test]
    fn step_from_the_file_name_when_lines_have_none() {
        let (path, _dir) = temp_file("7.jsonl", br#"{"input":"q","output":"a"}"#);
        let (sink, result) = read_all(&VerlImporter, &path, "7.jsonl");
        result.unwrap();
        assert_eq!(sink.records[0].step, Some(7));
        assert_eq!(sink.records[0].outcome, RecordOutcome::Ungraded);
        assert_eq!(sink.records[0].reference, None);
    }

    #[test]
    fn bad_lines() {
        let text = [
            r#"{"output":"a","score":1}"#,
            r#"{"input":3,"output":"a"}"#,
            r#"{"input":"q"}"#,
            r#"{"input":"q","output":"a","score":"1.0"}"#,
            r#"{"input":"q","output":"a","acc":"yes"}"#,
            r#"{"input":"q","output":"a","step":"x"}"#,
            r#"{"input":"q","output":"a","pred":[1]}"#,
            r#"{"input":"q","output":"a","score":NaN,"gts":{"target":[1,2]}}"#,
            "not json",
        ]
        .join("\n");
        let (path, _dir) = temp_file("bad.jsonl", text.as_bytes());
        let (sink, result) = read_all(&VerlImporter, &path, "bad.jsonl");
        result.unwrap();
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            vec![
                "bad.jsonl:1: field \"input\": required (the prompt as verl decoded it)",
                "bad.jsonl:2: field \"input\": expected a string (the prompt as verl decoded it), got a number",
                "bad.jsonl:3: field \"output\": required (the generated response)",
                "bad.jsonl:4: field \"score\": expected a number (the reward), got a string",
                "bad.jsonl:5: field \"acc\": expected a boolean (or a number), got a string",
                "bad.jsonl:6: field \"step\": expected an integer (the training step), got a string",
                "bad.jsonl:7: field \"pred\": expected a string (the extracted answer), got a list",
                "bad.jsonl:9: invalid JSON: expected ident at line 1 column 2",
            ]
        );
        // NaN score: read as missing (ungraded); an object gts is kept as JSON.
        assert_eq!(sink.records.len(), 1);
        assert_eq!(sink.records[0].outcome, RecordOutcome::Ungraded);
        assert_eq!(
            sink.records[0].reference.as_deref(),
            Some(r#"{"target":[1,2]}"#)
        );
        assert_eq!(sink.records[0].sample, Some(0));
    }

    #[test]
    fn sniff() {
        let head = std::fs::read(fixture("verl/100.jsonl")).unwrap();
        assert!(VerlImporter.sniff("100.jsonl", &head));
        assert!(
            VerlImporter.sniff("100.jsonl", &head[..30]),
            "cut inside input, integer stem"
        );
        assert!(!VerlImporter.sniff("val.jsonl", &head[..30]));
        assert!(!VerlImporter.sniff("x.jsonl", br#"{"idx":0,"code":["a"]}"#));
    }
}
