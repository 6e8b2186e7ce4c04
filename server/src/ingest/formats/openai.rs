//! OpenAI-compatible responses with logprobs, one per line (vLLM, SGLang, OpenAI),
//! docs/formats/openai.md.
//!
//! Three line shapes:
//! - (a) batch output `{"id","custom_id","response":{"status_code","body":{…}},"error"}` (OpenAI's
//!   Batch API and vLLM's `run_batch`): the problem id is `custom_id`;
//! - (b) a wrapper `{"problem_id","dataset"?,"reference"?,"prompt"?,"correct"?,"response":{…}}`;
//! - (c) a bare response object with those caplens keys merged at its top level.
//!
//! Both completions (`choices[].text`, `logprobs.{tokens,token_logprobs,top_logprobs}`) and chat
//! completions (`choices[].message.content`, `logprobs.content[]`) are read. Each choice is one
//! rollout. vLLM writes -inf as -9999.0; it is kept as given (the token metrics read any
//! logprob <= -9999.0 as probability 0).

use super::common::{
    first_line_object, head_records, id_string, integer, kind, parse_object, reference_text,
};
use crate::ingest::{
    for_each_line, FileHints, FormatSpec, InputError, InputFile, ReadStop, RecordOutcome,
    RecordSink, RolloutImporter, RolloutRecord, TokenData,
};
use serde_json::{Map, Value};
use std::collections::HashMap;

pub struct OpenaiImporter;

const HINT_RECORDS: usize = 2000;

const NO_PROBLEM_ID: &str = "required: give the problem id as \"custom_id\" (batch output: {\"custom_id\", \"response\": {\"body\": {…}}}), as \"problem_id\" next to the response ({\"problem_id\", \"response\": {…}}), or as \"problem_id\" merged into the response object ({\"problem_id\", \"choices\": […], …})";

/// This format's row in the registry ([`super::ALL`]).
static SPEC: FormatSpec = FormatSpec {
    name: "openai",
    title: "OpenAI-compatible responses (vLLM, SGLang)",
    extensions: &[".jsonl"],
};

impl RolloutImporter for OpenaiImporter {
    fn spec(&self) -> &'static FormatSpec {
        &SPEC
    }

    fn sniff(&self, _file_name: &str, head: &[u8]) -> bool {
        let Some(line) = first_line_object(head) else {
            return false;
        };
        let response_object = line.get("response").is_some_and(|r| {
            r.get("choices").is_some() || r.get("body").is_some() || r.get("object").is_some()
        });
        (line.has("custom_id") && line.has("response"))
            || response_object
            // A response object cut off by the end of the head (a native line whose response
            // *text* is cut off is not one).
            || (line.has("response")
                && line.get("response").is_none()
                && line.has("problem_id")
                && value_starts_with(head, b"\"response\"", b'{'))
            || line.has("choices")
            || line
                .get("object")
                .and_then(Value::as_str)
                .is_some_and(|o| o == "text_completion" || o == "chat.completion")
    }

    fn hints(&self, input: &InputFile) -> Result<FileHints, InputError> {
        let head = head_records(self, input, HINT_RECORDS)?;
        let mut hints = FileHints {
            n_per_problem: head.per_problem,
            has_tokens: head.has_tokens,
            records_in_head: head.records,
            ..FileHints::default()
        };
        // The served model name, from the first response that has one.
        let mut sink = super::common::NullSink;
        let result = for_each_line(input, &mut sink, |line_no, text, _| {
            if line_no > 100 {
                return Err(ReadStop::Sink("no model in the head".into()));
            }
            if let Ok(line) = parse_object(text) {
                if let Some((body, _)) = body_of(&line) {
                    if let Some(model) = body.get("model").and_then(Value::as_str) {
                        hints.model = Some(model.to_string());
                        return Err(ReadStop::Sink("found".into()));
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) | Err(ReadStop::Sink(_)) => Ok(hints),
            Err(ReadStop::Input(e)) => Err(e),
        }
    }

    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop> {
        // Choices seen so far per problem: samples of later lines of the same problem follow.
        let mut seen = HashMap::<String, u64>::new();
        for_each_line(input, sink, |line_no, text, sink| {
            let line = match parse_object(text) {
                Ok(line) => line,
                Err(msg) => return sink.reject(input.line_error(line_no, None, msg)),
            };
            match records_of(&line, line_no, &mut seen) {
                Ok(records) => {
                    for record in records {
                        sink.record(record)?;
                    }
                    Ok(())
                }
                Err((field, msg)) => sink.reject(input.line_error(line_no, Some(&field), msg)),
            }
        })
    }
}

pub(super) type LineError = (String, String);

fn err(field: impl Into<String>, msg: impl Into<String>) -> LineError {
    (field.into(), msg.into())
}

/// The response object of a line and the field path that leads to it ("" for a bare response).
fn body_of(line: &Map<String, Value>) -> Option<(&Map<String, Value>, &'static str)> {
    match line.get("response") {
        Some(Value::Object(response)) => match response.get("body") {
            Some(Value::Object(body)) => Some((body, "response.body.")),
            _ => Some((response, "response.")),
        },
        _ if line.contains_key("choices") => Some((line, "")),
        _ => None,
    }
}

fn records_of(
    line: &Map<String, Value>,
    line_no: u64,
    seen: &mut HashMap<String, u64>,
) -> Result<Vec<RolloutRecord>, LineError> {
    // Batch output: a failed request carries `error` and no usable response.
    if line.contains_key("custom_id") {
        if let Some(error) = line.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            return Err(err("error", format!("the batch request failed: {message}")));
        }
        match line.get("response") {
            Some(Value::Object(response)) => {
                if let Some(status) = response.get("status_code").and_then(integer) {
                    if status != 200 {
                        let message = response
                            .get("body")
                            .and_then(|b| b.get("error"))
                            .and_then(|e| {
                                e.get("message")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                                    .or_else(|| Some(e.to_string()))
                            })
                            .unwrap_or_default();
                        return Err(err(
                            "response.status_code",
                            format!("the request failed with HTTP status {status}: {message}"),
                        ));
                    }
                }
            }
            None | Some(Value::Null) => {
                return Err(err(
                    "response",
                    "required (the batch output has neither a response nor an error)",
                ))
            }
            Some(other) => {
                return Err(err(
                    "response",
                    format!("expected an object (the response), got {}", kind(other)),
                ))
            }
        }
    }
    let problem_id = match (line.get("problem_id"), line.get("custom_id")) {
        (Some(v), _) if !v.is_null() => id_string(v).map_err(|m| err("problem_id", m))?,
        (_, Some(v)) if !v.is_null() => id_string(v).map_err(|m| err("custom_id", m))?,
        _ => return Err(err("problem_id", NO_PROBLEM_ID)),
    };
    let (body, path) = match body_of(line) {
        Some(b) => b,
        None => {
            return Err(match line.get("response") {
                Some(other) if !other.is_null() => {
                    err("response", format!("expected an object (the response), got {}", kind(other)))
                }
                _ => err(
                    "choices",
                    "required: a line is an OpenAI-compatible response ({\"choices\": […]}), a wrapper {\"problem_id\", \"response\": {…}}, or batch output {\"custom_id\", \"response\": {\"body\": {…}}}",
                ),
            })
        }
    };
    let choices = match body.get("choices") {
        Some(Value::Array(c)) => c,
        None => {
            return Err(err(
                format!("{path}choices"),
                "required (the list of generated choices)",
            ))
        }
        Some(other) => {
            return Err(err(
                format!("{path}choices"),
                format!("expected a list, got {}", kind(other)),
            ))
        }
    };
    let optional_text = |field: &str| -> Result<Option<String>, LineError> {
        match line.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(err(
                field,
                format!("expected a string, got {}", kind(other)),
            )),
        }
    };
    let dataset = optional_text("dataset")?;
    let prompt = optional_text("prompt")?;
    let reference = match line
        .get("reference")
        .map(reference_text)
        .unwrap_or(Ok(None))
    {
        Ok(r) => r,
        Err(got) => {
            return Err(err(
                "reference",
                format!("expected a string, a number or a list of them, got {got}"),
            ))
        }
    };
    let verdicts: Option<Vec<bool>> = match line.get("correct") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) if choices.len() <= 1 => Some(vec![*b; choices.len()]),
        Some(Value::Bool(_)) => {
            return Err(err(
                "correct",
                format!(
                    "one verdict for {} choices: give a list of booleans, one per choice",
                    choices.len()
                ),
            ))
        }
        Some(Value::Array(list)) => {
            let list: Option<Vec<bool>> = list.iter().map(Value::as_bool).collect();
            match list {
                Some(l) if l.len() == choices.len() => Some(l),
                Some(l) => {
                    return Err(err(
                        "correct",
                        format!("has {} verdicts but there are {} choices", l.len(), choices.len()),
                    ))
                }
                None => return Err(err("correct", "expected a boolean or a list of booleans, got a list containing something else")),
            }
        }
        Some(other) => {
            return Err(err(
                "correct",
                format!(
                    "expected a boolean or a list of booleans, got {}",
                    kind(other)
                ),
            ))
        }
    };
    let base = seen.get(&problem_id).copied().unwrap_or(0);
    let mut records = Vec::with_capacity(choices.len());
    for (position, choice) in choices.iter().enumerate() {
        let at = format!("{path}choices[{position}]");
        let Value::Object(choice) = choice else {
            return Err(err(
                at,
                format!("expected an object (a choice), got {}", kind(choice)),
            ));
        };
        let index = match choice.get("index") {
            None | Some(Value::Null) => position as u64,
            Some(v) => match v.as_u64() {
                Some(i) => i,
                None => {
                    return Err(err(
                        format!("{at}.index"),
                        format!("expected a non-negative integer, got {}", kind(v)),
                    ))
                }
            },
        };
        let response = match (choice.get("message"), choice.get("text")) {
            (Some(Value::Object(message)), _) => match message.get("content") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(err(
                        format!("{at}.message.content"),
                        format!("expected a string, got {}", kind(other)),
                    ))
                }
            },
            (Some(other), _) if !other.is_null() => {
                return Err(err(
                    format!("{at}.message"),
                    format!("expected an object, got {}", kind(other)),
                ))
            }
            (_, None | Some(Value::Null)) => None,
            (_, Some(Value::String(s))) => Some(s.clone()),
            (_, Some(other)) => {
                return Err(err(
                    format!("{at}.text"),
                    format!("expected a string, got {}", kind(other)),
                ))
            }
        };
        let finish_reason = match choice.get("finish_reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(err(
                    format!("{at}.finish_reason"),
                    format!("expected a string, got {}", kind(other)),
                ))
            }
        };
        let tokens = match choice.get("logprobs") {
            None | Some(Value::Null) => None,
            Some(Value::Object(lp)) => token_data(lp, &format!("{at}.logprobs"))?,
            Some(other) => {
                return Err(err(
                    format!("{at}.logprobs"),
                    format!("expected an object, got {}", kind(other)),
                ))
            }
        };
        records.push(RolloutRecord {
            line: line_no,
            dataset: dataset.clone(),
            problem_id: problem_id.clone(),
            prompt: prompt.clone(),
            reference: reference.clone(),
            sample: Some(base + index),
            outcome: match &verdicts {
                Some(v) => RecordOutcome::Graded(v[position]),
                None => RecordOutcome::Ungraded,
            },
            response,
            finish_reason,
            tokens,
            ..RolloutRecord::default()
        });
    }
    seen.insert(problem_id, base + choices.len() as u64);
    Ok(records)
}

/// The token data of a choice's `logprobs`: chat (`content[]`) or completions (`tokens`,
/// `token_logprobs`, `top_logprobs`). `None` when it has neither (e.g. `content: null`).
fn token_data(lp: &Map<String, Value>, at: &str) -> Result<Option<TokenData>, LineError> {
    if let Some(content) = lp.get("content") {
        let entries = match content {
            Value::Null => return Ok(None),
            Value::Array(e) => e,
            other => {
                return Err(err(
                    format!("{at}.content"),
                    format!("expected a list, got {}", kind(other)),
                ))
            }
        };
        return chat_token_data(entries, &format!("{at}.content")).map(Some);
    }
    let tokens = match lp.get("tokens") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(t)) => t
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                err(
                    format!("{at}.tokens"),
                    "expected a list of strings, got a list containing something else",
                )
            })?,
        Some(other) => {
            return Err(err(
                format!("{at}.tokens"),
                format!("expected a list of strings, got {}", kind(other)),
            ))
        }
    };
    let logprobs = match lp.get("token_logprobs") {
        None | Some(Value::Null) => vec![None; tokens.len()],
        Some(Value::Array(l)) => {
            let values = l
                .iter()
                .map(|v| match v {
                    Value::Null => Some(None),
                    Value::Number(n) => n.as_f64().map(Some),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    err(
                        format!("{at}.token_logprobs"),
                        "expected a list of numbers or nulls, got a list containing something else",
                    )
                })?;
            if values.len() != tokens.len() {
                return Err(err(
                    format!("{at}.token_logprobs"),
                    format!(
                        "has {} entries but \"tokens\" has {}: one per token",
                        values.len(),
                        tokens.len()
                    ),
                ));
            }
            values
        }
        Some(other) => {
            return Err(err(
                format!("{at}.token_logprobs"),
                format!("expected a list of numbers, got {}", kind(other)),
            ))
        }
    };
    let top_logprobs = match lp.get("top_logprobs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(rows)) => {
            if rows.len() != tokens.len() {
                return Err(err(
                    format!("{at}.top_logprobs"),
                    format!(
                        "has {} entries but \"tokens\" has {}: one per token",
                        rows.len(),
                        tokens.len()
                    ),
                ));
            }
            let mut out = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter().enumerate() {
                out.push(match row {
                    Value::Null => Vec::new(),
                    Value::Object(candidates) => {
                        let mut top = Vec::with_capacity(candidates.len());
                        for (token, lp) in candidates {
                            let Some(lp) = lp.as_f64() else {
                                return Err(err(
                                    format!("{at}.top_logprobs[{i}]"),
                                    format!("expected an object of token → logprob (a number), got {} for {token:?}", kind(lp)),
                                ));
                            };
                            top.push((token.clone(), lp));
                        }
                        // A JSON object has no order: most likely first.
                        top.sort_by(|a, b| b.1.total_cmp(&a.1));
                        top
                    }
                    other => {
                        return Err(err(
                            format!("{at}.top_logprobs[{i}]"),
                            format!("expected an object of token → logprob or null, got {}", kind(other)),
                        ))
                    }
                });
            }
            Some(out)
        }
        Some(other) => {
            return Err(err(
                format!("{at}.top_logprobs"),
                format!("expected a list, got {}", kind(other)),
            ))
        }
    };
    Ok(Some(TokenData {
        tokens,
        logprobs,
        top_logprobs,
        entropies: None,
        rbf: None,
        hidden_norms: None,
    }))
}

/// The token data of a chat `logprobs.content` list (`at` names the list in errors): entries
/// `{token, logprob, top_logprobs: [{token, logprob}]}` as OpenAI, vLLM and Inspect write them.
pub(super) fn chat_token_data(entries: &[Value], at: &str) -> Result<TokenData, LineError> {
    let mut data = TokenData::default();
    let mut top_rows = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let (token, logprob) = token_and_logprob(entry, &here)?;
        data.tokens.push(token);
        data.logprobs.push(logprob);
        let top = match entry.get("top_logprobs") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(top)) => top
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let there = format!("{here}.top_logprobs[{j}]");
                    match token_and_logprob(t, &there)? {
                        (token, Some(lp)) => Ok((token, lp)),
                        (_, None) => Err(err(
                            format!("{there}.logprob"),
                            "expected a number, got null",
                        )),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(err(
                    format!("{here}.top_logprobs"),
                    format!("expected a list, got {}", kind(other)),
                ))
            }
        };
        top_rows.push(top);
    }
    data.top_logprobs = Some(top_rows);
    Ok(data)
}

/// `{token, logprob}` of a chat logprob entry (`logprob` may be null).
fn token_and_logprob(entry: &Value, at: &str) -> Result<(String, Option<f64>), LineError> {
    let Value::Object(entry) = entry else {
        return Err(err(
            at,
            format!("expected an object {{token, logprob}}, got {}", kind(entry)),
        ));
    };
    let token = match entry.get("token") {
        Some(Value::String(t)) => t.clone(),
        None => return Err(err(format!("{at}.token"), "required")),
        Some(other) => {
            return Err(err(
                format!("{at}.token"),
                format!("expected a string, got {}", kind(other)),
            ))
        }
    };
    let logprob = match entry.get("logprob") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => {
            return Err(err(
                format!("{at}.logprob"),
                format!("expected a number, got {}", kind(other)),
            ))
        }
    };
    Ok((token, logprob))
}

/// Whether the first value of `key` (a quoted JSON key) in the first line of `head` starts
/// with `first` (`{`: an object), for a value the head cuts off.
fn value_starts_with(head: &[u8], key: &[u8], first: u8) -> bool {
    let line = head
        .split(|&b| b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace));
    let Some(line) = line else { return false };
    let Some(at) = line.windows(key.len()).position(|w| w == key) else {
        return false;
    };
    let mut rest = line[at + key.len()..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace());
    rest.next() == Some(&b':') && rest.find(|b| !b.is_ascii_whitespace()) == Some(&first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::formats::common::{fixture, read_all, temp_file};

    fn tops(rows: &[&[(&str, f64)]]) -> Vec<Vec<(String, f64)>> {
        rows.iter()
            .map(|row| row.iter().map(|(t, lp)| (t.to_string(), *lp)).collect())
            .collect()
    }

    #[test]
    fn completions_in_all_three_shapes() {
        let (sink, result) = read_all(
            &OpenaiImporter,
            &fixture("openai/completions.jsonl"),
            "completions.jsonl",
        );
        result.unwrap();
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            ["completions.jsonl:4: field \"error\": the batch request failed: engine stopped"]
        );
        let got: Vec<_> = sink
            .records
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.problem_id.as_str(),
                    r.dataset.as_deref(),
                    r.sample,
                    r.outcome,
                    r.reference.as_deref(),
                    r.response.as_deref(),
                    r.finish_reason.as_deref(),
                )
            })
            .collect();
        use RecordOutcome::*;
        assert_eq!(
            got,
            vec![
                (
                    1,
                    "aime24-0",
                    Some("aime24"),
                    Some(0),
                    Ungraded,
                    Some("204"),
                    Some(" \\boxed{204}"),
                    Some("stop")
                ),
                (
                    1,
                    "aime24-0",
                    Some("aime24"),
                    Some(1),
                    Ungraded,
                    Some("204"),
                    Some(" 20"),
                    Some("length")
                ),
                (
                    2,
                    "1",
                    None,
                    Some(0),
                    Graded(false),
                    Some("\\frac{1}{2}"),
                    Some("<script>alert(1)</script>"),
                    Some("stop")
                ),
                (
                    3,
                    "aime24-2",
                    None,
                    Some(0),
                    Ungraded,
                    None,
                    Some("So $x = 3$."),
                    Some("stop")
                ),
            ]
        );
        assert_eq!(
            sink.records[0].tokens,
            Some(TokenData {
                tokens: vec![
                    " ".into(),
                    "\\boxed".into(),
                    "{".into(),
                    "204".into(),
                    "}".into()
                ],
                logprobs: vec![
                    Some(-0.01),
                    Some(-0.2),
                    Some(-0.05),
                    Some(-0.3),
                    Some(-0.02)
                ],
                top_logprobs: Some(tops(&[
                    &[(" ", -0.01), ("\n", -4.7)],
                    &[("\\boxed", -0.2), ("The", -1.8)],
                    &[("{", -0.05), ("{{", -3.1)],
                    &[("204", -0.3), ("200", -1.5)],
                    &[("}", -0.02), ("}$", -4.2)],
                ])),
                entropies: None,
                rbf: None,
                hidden_norms: None,
            })
        );
        // vLLM's -inf (-9999.0) is kept; a null top_logprobs row is an empty list.
        let t = sink.records[1].tokens.as_ref().unwrap();
        assert_eq!(t.logprobs, vec![Some(-0.01), Some(-9999.0)]);
        assert_eq!(t.top_logprobs.as_ref().unwrap()[1], vec![]);
        let t = sink.records[2].tokens.as_ref().unwrap();
        assert_eq!(
            (t.logprobs.clone(), t.top_logprobs.clone()),
            (vec![None], Some(vec![vec![]]))
        );
        assert_eq!(
            sink.records[2].prompt.as_deref(),
            Some("Compute $\\frac{1}{4}+\\frac{1}{4}$.")
        );
        assert_eq!(sink.records[3].tokens, None);
        assert!(sink.records.iter().all(|r| r.model.is_none()));
    }

    #[test]
    fn chat_completions() {
        let (sink, result) = read_all(&OpenaiImporter, &fixture("openai/chat.jsonl"), "chat.jsonl");
        result.unwrap();
        assert!(sink.errors.is_empty(), "{:?}", sink.errors);
        use RecordOutcome::*;
        let got: Vec<_> = sink
            .records
            .iter()
            .map(|r| {
                (
                    r.line,
                    r.problem_id.as_str(),
                    r.sample,
                    r.outcome,
                    r.response.as_deref(),
                    r.finish_reason.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "p0", Some(0), Ungraded, Some("\\boxed{2}"), Some("stop")),
                (
                    2,
                    "p1",
                    Some(0),
                    Ungraded,
                    Some("ünïcödé: $\\sqrt{2}$"),
                    Some("length")
                ),
                (2, "p1", Some(1), Ungraded, None, Some("stop")),
                // p0 again on a later line: its samples follow the first line's.
                (
                    3,
                    "p0",
                    Some(1),
                    Graded(true),
                    Some("It is $\\boxed{2}$."),
                    Some("stop")
                ),
            ]
        );
        assert_eq!(
            sink.records[0].tokens,
            Some(TokenData {
                tokens: vec!["\\boxed".into(), "{".into(), "2".into(), "}".into()],
                logprobs: vec![Some(-0.01), Some(0.0), Some(-9999.0), Some(-0.001)],
                top_logprobs: Some(tops(&[
                    &[("\\boxed", -0.01), ("The", -4.6)],
                    &[("{", 0.0), ("{{", -12.5)],
                    &[("3", -0.02), ("2", -9999.0)],
                    &[],
                ])),
                entropies: None,
                rbf: None,
                hidden_norms: None,
            })
        );
        assert_eq!(
            sink.records[1].tokens.as_ref().unwrap().tokens,
            ["ün", "ïcödé"]
        );
        assert_eq!(sink.records[2].tokens, None);
        // `logprobs: {"content": null}`: no token data.
        assert_eq!(sink.records[3].tokens, None);
        assert_eq!(sink.records[0].reference.as_deref(), Some("2"));
    }

    #[test]
    fn hints() {
        let input = InputFile::new(fixture("openai/chat.jsonl"), "chat.jsonl");
        assert_eq!(
            OpenaiImporter.hints(&input).unwrap(),
            FileHints {
                model: Some("qwen3-8b".into()),
                n_per_problem: Some(2),
                has_tokens: true,
                records_in_head: 4,
                ..FileHints::default()
            }
        );
        let input = InputFile::new(fixture("openai/completions.jsonl"), "completions.jsonl");
        let hints = OpenaiImporter.hints(&input).unwrap();
        assert_eq!(
            (hints.model.as_deref(), hints.records_in_head),
            (Some("Qwen/Qwen2.5-Math-7B"), 4)
        );
    }

    #[test]
    fn bad_lines() {
        let ok_choice = r#"{"index":0,"text":"a"}"#;
        let lines = [
            format!(r#"{{"id":"x","object":"text_completion","choices":[{ok_choice}]}}"#),
            format!(r#"{{"response":{{"choices":[{ok_choice}]}}}}"#),
            r#"{"problem_id":"p","response":"text"}"#.to_string(),
            r#"{"problem_id":"p","text":"a"}"#.to_string(),
            r#"{"problem_id":"p","choices":{"a":1}}"#.to_string(),
            r#"{"problem_id":"p","choices":[{"index":0,"text":"a"},{"index":1,"text":"b"}],"correct":true}"#.to_string(),
            r#"{"problem_id":"p","choices":[{"index":0,"text":"a"}],"correct":[true,false]}"#.to_string(),
            r#"{"problem_id":"p","choices":[{"text":"a","logprobs":{"tokens":["a","b"],"token_logprobs":[-1]}}]}"#.to_string(),
            r#"{"problem_id":"p","choices":[{"text":"a","logprobs":{"tokens":["a"],"token_logprobs":["x"]}}]}"#.to_string(),
            r#"{"problem_id":"p","choices":[{"text":"a","logprobs":{"tokens":["a"],"top_logprobs":[{"a":"x"}]}}]}"#.to_string(),
            r#"{"problem_id":"p","choices":[{"message":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-1,"top_logprobs":[{"token":"a"}]}]}}]}"#.to_string(),
            r#"{"problem_id":"p","choices":[{"message":{"content":"a"},"logprobs":{"content":[{"logprob":-1}]}}]}"#.to_string(),
            r#"{"problem_id":"p","choices":[{"message":{"content":["a"]}}]}"#.to_string(),
            r#"{"problem_id":"p","choices":[{"index":-1,"text":"a"}]}"#.to_string(),
            r#"{"custom_id":"q","response":{"status_code":400,"body":{"error":{"message":"bad temperature"}}},"error":null}"#.to_string(),
            r#"{"custom_id":"q","response":null,"error":null}"#.to_string(),
            r#"{"problem_id":["p"],"choices":[]}"#.to_string(),
            r#"{"problem_id":"p","choices":["a"]}"#.to_string(),
            r#"{"problem_id":"p","dataset":1,"choices":[]}"#.to_string(),
        ];
        let (path, _dir) = temp_file("bad.jsonl", lines.join("\n").as_bytes());
        let (sink, result) = read_all(&OpenaiImporter, &path, "bad.jsonl");
        result.unwrap();
        let errors: Vec<String> = sink.errors.iter().map(|e| e.to_string()).collect();
        let expected = vec![
            format!("bad.jsonl:1: field \"problem_id\": {NO_PROBLEM_ID}"),
            format!("bad.jsonl:2: field \"problem_id\": {NO_PROBLEM_ID}"),
            "bad.jsonl:3: field \"response\": expected an object (the response), got a string".into(),
            "bad.jsonl:4: field \"choices\": required: a line is an OpenAI-compatible response ({\"choices\": […]}), a wrapper {\"problem_id\", \"response\": {…}}, or batch output {\"custom_id\", \"response\": {\"body\": {…}}}".into(),
            "bad.jsonl:5: field \"choices\": expected a list, got an object".into(),
            "bad.jsonl:6: field \"correct\": one verdict for 2 choices: give a list of booleans, one per choice".into(),
            "bad.jsonl:7: field \"correct\": has 2 verdicts but there are 1 choices".into(),
            "bad.jsonl:8: field \"choices[0].logprobs.token_logprobs\": has 1 entries but \"tokens\" has 2: one per token".into(),
            "bad.jsonl:9: field \"choices[0].logprobs.token_logprobs\": expected a list of numbers or nulls, got a list containing something else".into(),
            "bad.jsonl:10: field \"choices[0].logprobs.top_logprobs[0]\": expected an object of token → logprob (a number), got a string for \"a\"".into(),
            "bad.jsonl:11: field \"choices[0].logprobs.content[0].top_logprobs[0].logprob\": expected a number, got null".into(),
            "bad.jsonl:12: field \"choices[0].logprobs.content[0].token\": required".into(),
            "bad.jsonl:13: field \"choices[0].message.content\": expected a string, got a list".into(),
            "bad.jsonl:14: field \"choices[0].index\": expected a non-negative integer, got a number".into(),
            "bad.jsonl:15: field \"response.status_code\": the request failed with HTTP status 400: bad temperature".into(),
            "bad.jsonl:16: field \"response\": required (the batch output has neither a response nor an error)".into(),
            "bad.jsonl:17: field \"problem_id\": expected a string or an integer, got a list".into(),
            "bad.jsonl:18: field \"choices[0]\": expected an object (a choice), got a string".into(),
            "bad.jsonl:19: field \"dataset\": expected a string, got a number".into(),
        ];
        assert_eq!(errors, expected);
        assert!(sink.records.is_empty());
    }

    #[test]
    fn sniff() {
        for name in ["completions.jsonl", "chat.jsonl"] {
            let head = std::fs::read(fixture(&format!("openai/{name}"))).unwrap();
            assert!(OpenaiImporter.sniff(name, &head));
            assert!(
                OpenaiImporter.sniff(name, &head[..200]),
                "{name}: a head cut in the first line"
            );
        }
        assert!(OpenaiImporter.sniff(
            "x",
            br#"{"id":"b","custom_id":"1","response":{"status_code":200,"body":{"#
        ));
        assert!(OpenaiImporter.sniff(
            "x",
            br#"{"problem_id":"1","response":{"id":"c","choices":[]}}"#
        ));
        assert!(!OpenaiImporter.sniff("x", br#"{"model":"m","problem_id":"1","correct":true}"#));
        // Cut off in the response: an object is this format, a text is a native line.
        assert!(OpenaiImporter.sniff(
            "x",
            br#"{"problem_id":"1","response": {"id":"c","choices":[{"text":"lo"#
        ));
        assert!(!OpenaiImporter.sniff(
            "x",
            br#"{"model":"m","problem_id":"1","response":"think think th"#
        ));
        assert!(!OpenaiImporter.sniff(
            "x",
            br#"{"custom_id":"1","method":"POST","url":"/v1/completions","body":{}}"#
        ));
        assert!(!OpenaiImporter.sniff("x", br#"{"input":"q","output":"a","score":1}"#));
    }

    #[test]
    fn a_long_chat_response_with_many_tokens() {
        let n = 50_000;
        let content: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"token":"t{i}","logprob":-0.5,"top_logprobs":[{{"token":"t{i}","logprob":-0.5}}]}}"#))
            .collect();
        let text = format!(
            r#"{{"problem_id":"p","choices":[{{"index":0,"message":{{"content":"{}"}},"logprobs":{{"content":[{}]}}}}]}}"#,
            "x".repeat(1 << 20),
            content.join(",")
        );
        let (path, _dir) = temp_file("long.jsonl", text.as_bytes());
        let (sink, result) = read_all(&OpenaiImporter, &path, "long.jsonl");
        result.unwrap();
        let t = sink.records[0].tokens.as_ref().unwrap();
        assert_eq!(
            (
                t.tokens.len(),
                t.logprobs.len(),
                t.top_logprobs.as_ref().unwrap().len()
            ),
            (n, n, n)
        );
    }
}
