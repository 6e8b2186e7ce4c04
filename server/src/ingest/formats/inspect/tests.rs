//! Tests of the Inspect importer as a whole: fixtures and logs written by Inspect, through
//! `sniff`, `hints` and `read`, in both containers.

use super::*;
use crate::ingest::formats::common::{fixture, read_all, temp_file};
use crate::ingest::{RecordOutcome, TokenData};
use std::sync::atomic::Ordering;

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
        errors[0]
            .starts_with("m.eval:1: samples/1_epoch_1.json: invalid JSON: key must be a string"),
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
