use super::parse::*;
use super::read::*;
use super::*;
use caplens_analysis::rng::SplitMix64;
use std::io::Write;
use std::path::PathBuf;

fn parse(text: &str) -> Result<NativeLine<'_>, (Option<&'static str>, String)> {
    parse_line(text, Needs::all())
}

#[test]
fn parses_rollout_and_counts_lines() {
    let l = parse(r#"{"model":"m","problem_id":"p1","correct":true,"sample":3,"response":"so \\boxed{2}","extra":{"x":[1]}}"#).unwrap();
    assert_eq!(l.outcome, Outcome::Rollout { correct: true });
    assert_eq!(l.sample, Some(3));
    assert_eq!(l.response.as_deref(), Some("so \\boxed{2}"));
    assert!(matches!(l.model, Cow::Borrowed("m")));
    let l = parse(r#"{"model":"m","problem_id":7,"dataset":"aime","n":10,"c":3}"#).unwrap();
    assert_eq!(l.outcome, Outcome::Counts { n: 10, c: 3 });
    assert_eq!(l.problem_key(), "aime/7");
    let l = parse(r#"{"model":"m","problem_id":"p","n":0,"c":0}"#).unwrap();
    assert_eq!(l.samples(), 0);
}

#[test]
fn lines_without_a_verdict_are_graded_against_their_reference() {
    let right =
        r#"{"model":"m","problem_id":"1","reference":"\\frac{1}{2}","response":"so \\boxed{0.5}"}"#;
    let wrong = r#"{"model":"m","problem_id":"1","reference":"7","answer":"8"}"#;
    // Imports keep the line ungraded (graded later, also against a stored reference) ...
    assert_eq!(parse(right).unwrap().outcome, Outcome::Ungraded);
    assert_eq!(parse(right).unwrap().samples(), 1);
    // ... the analysis commands grade it with the verifier, whatever fields they read.
    let core = Needs {
        grade: true,
        ..Needs::default()
    };
    assert_eq!(
        parse_line(right, core).unwrap().outcome,
        Outcome::Rollout { correct: true }
    );
    assert_eq!(
        parse_line(wrong, core).unwrap().outcome,
        Outcome::Rollout { correct: false }
    );
    let graded_all = Needs {
        grade: true,
        ..Needs::all()
    };
    assert_eq!(
        parse_line(right, graded_all).unwrap().outcome,
        Outcome::Rollout { correct: true }
    );
    // Without a reference there is nothing to grade against: the error names the field.
    let (field, message) = parse_line(
        r#"{"model":"m","problem_id":"1","response":"\\boxed{3}"}"#,
        core,
    )
    .unwrap_err();
    assert_eq!(field, Some("reference"));
    assert!(message.contains("graded against"), "{message}");
    // Neither a verdict nor anything to grade.
    let (field, message) = parse(r#"{"model":"m","problem_id":"1"}"#).unwrap_err();
    assert_eq!(field, Some("correct"));
    assert!(message.contains("response"), "{message}");
}

#[test]
fn prompt_and_tags_are_read() {
    let l = parse(r#"{"model":"m","problem_id":"1","correct":true,"prompt":"What is 1+1?","tags":["arith","easy"]}"#).unwrap();
    assert_eq!(l.prompt.as_deref(), Some("What is 1+1?"));
    assert_eq!(
        l.tags
            .unwrap()
            .iter()
            .map(|t| t.as_ref())
            .collect::<Vec<_>>(),
        ["arith", "easy"]
    );
    let (field, _) =
        parse(r#"{"model":"m","problem_id":"1","correct":true,"tags":"arith"}"#).unwrap_err();
    assert_eq!(field, Some("tags"));
}

#[test]
fn exact_rbf_and_hidden_norms_are_read() {
    let l = parse(r#"{"model":"m","problem_id":"p","correct":true,"tokens":["a","b"],"token_rbf":[3,null],"token_hidden_norms":[12.5,null]}"#).unwrap();
    assert_eq!(l.token_rbf, Some(vec![Some(3), None]));
    assert_eq!(l.token_hidden_norms, Some(vec![Some(12.5), None]));
    let (field, message) =
        parse(r#"{"model":"m","problem_id":"p","correct":true,"token_rbf":[-1]}"#).unwrap_err();
    assert_eq!(field, Some("token_rbf"), "{message}");
}

#[test]
fn token_fields() {
    let l = parse(r#"{"model":"m","problem_id":"p","correct":false,"tokens":["a","b"],"token_logprobs":[null,-0.5],"top_logprobs":[[["a",-0.1],["c",-2.5]],null],"token_entropies":[0.3,null]}"#).unwrap();
    assert_eq!(l.token_logprobs, Some(vec![None, Some(-0.5)]));
    assert_eq!(
        l.top_logprobs.as_ref().unwrap()[0],
        vec![(Cow::Borrowed("a"), -0.1), (Cow::Borrowed("c"), -2.5)]
    );
    assert!(l.top_logprobs.as_ref().unwrap()[1].is_empty());
    // not needed: skipped
    let l = parse_line(
        r#"{"model":"m","problem_id":"p","correct":false,"response":"long","token_logprobs":[1]}"#,
        Needs::default(),
    )
    .unwrap();
    assert!(l.response.is_none() && l.token_logprobs.is_none());
}

#[test]
fn errors_name_the_field() {
    let err = |t: &str| parse(t).unwrap_err();
    assert_eq!(
        err(r#"{"model":"m","problem_id":"p","correct":"yes"}"#),
        (Some("correct"), "expected a boolean".into())
    );
    assert_eq!(err(r#"{"problem_id":"p","correct":true}"#).0, Some("model"));
    assert_eq!(err(r#"{"model":"m","correct":true}"#).0, Some("problem_id"));
    assert_eq!(err(r#"{"model":"m","problem_id":"p"}"#).0, Some("correct"));
    assert_eq!(
        err(r#"{"model":"m","problem_id":"p","n":3,"c":5}"#),
        (Some("c"), "5 is greater than n = 3".into())
    );
    assert_eq!(
        err(r#"{"model":"m","problem_id":"p","n":1000000000000000000,"c":0}"#),
        (
            Some("n"),
            "1000000000000000000 exceeds the limit of 1000000 samples per line".into()
        )
    );
    assert_eq!(err(r#"{"model":"m","problem_id":"p","n":3}"#).0, Some("c"));
    assert_eq!(
        err(r#"{"model":"m","problem_id":"p","n":-1,"c":0}"#),
        (Some("n"), "expected a non-negative integer".into())
    );
    assert_eq!(
        err(r#"{"model":"m","problem_id":"p","correct":true,"n":1,"c":1}"#).0,
        Some("n")
    );
    assert_eq!(
        err(r#"{"model":"m","model":"x","problem_id":"p","correct":true}"#).0,
        Some("model")
    );
    let (field, msg) =
        err(r#"{"model":"m","problem_id":"p","correct":true,"token_logprobs":[-0.1,NaN]}"#);
    assert_eq!(field, Some("token_logprobs"));
    assert!(msg.contains("NaN"), "{msg}");
    // NaN is rejected even in a field the caller skips: the line is not JSON
    assert!(parse_line(
        r#"{"model":"m","problem_id":"p","correct":true,"token_logprobs":[NaN]}"#,
        Needs::default()
    )
    .is_err());
    assert!(
        err(r#"{"model":"m","problem_id":"p","correct":true} trailing"#)
            .1
            .contains("invalid JSON")
    );
    assert!(err(r#"[1,2]"#).1.contains("object"));
}

#[test]
fn fast_path_agrees_with_serde_path() {
    let lines = [
        r#"{"model":"m","problem_id":"p","correct":true}"#,
        r#" { "model" : "m" , "problem_id" : 12 , "dataset" : null , "n" : 10 , "c" : 0 , "sample" : null } "#,
        r#"{"model":"m\u00e9","problem_id":"p","correct":false}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"x":{"a":[1,-2.5e-3,true,null,"q\"\n",{}],"b":[]}}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"x":[1,2}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"x":01}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"x":1.}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"x":[NaN]}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"x":"\q"}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"x":tru}"#,
        r#"{"model":"m","problem_id":"p","correct":true,}"#,
        r#"{"model":"m","problem_id":"p","correct":true} x"#,
        r#"{"model":"m","problem_id":"p","n":5,"c":7}"#,
        r#"{"model":"m","problem_id":"p","n":5.0,"c":1}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"sample":3}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"correct":true}"#,
        r#"{}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"answer":"1","answer":"2"}"#,
        r#"{"model":"m","problem_id":"p","correct":true,"sample":1,"sample":2}"#,
        r#"{"model":"m","problem_id":0,"correct":true}"#,
        r#"{"model":"m","problem_id":-1,"correct":true}"#,
    ];
    for line in lines {
        for sample in [false, true] {
            let needs = Needs {
                sample,
                ..Needs::default()
            };
            let fast = parse_line(line, needs);
            let slow = parse_line_serde(line, needs);
            assert_eq!(fast, slow, "{line}");
        }
    }
}

/// A random line built from pieces: mostly valid records, with odd spacing, escaped and
/// non-ASCII strings, duplicates, wrong types, NaN, huge numbers, and byte-level damage.
fn generated_line(rng: &mut SplitMix64) -> String {
    fn pick<'a>(rng: &mut SplitMix64, items: &[&'a str]) -> &'a str {
        items[rng.below(items.len() as u64) as usize]
    }
    const STRINGS: &[&str] = &[
        r#""m""#,
        r#""p0001""#,
        r#""aime/24""#,
        r#""é模型""#,
        r#""a\"b""#,
        r#""\u00e9""#,
        "\"\u{1}\"",
        r#""""#,
        r#""\\""#,
    ];
    const NUMBERS: &[&str] = &[
        "0",
        "7",
        "12",
        "007",
        "-3",
        "-0",
        "1.5",
        "1e3",
        "2E-2",
        "18446744073709551615",
        "9999999999999999999",
        "99999999999999999999",
        "NaN",
        "-Infinity",
    ];
    const OTHER: &[&str] = &[
        "true",
        "false",
        "null",
        "tru",
        "nul",
        "[]",
        "[1,[2,{}]]",
        r#"{"a":[null,"x"]}"#,
        "[1,]",
        "{",
        "[NaN]",
    ];
    let value = |rng: &mut SplitMix64| match rng.below(3) {
        0 => pick(rng, STRINGS),
        1 => pick(rng, NUMBERS),
        _ => pick(rng, OTHER),
    };
    let mut fields: Vec<(String, String)> = Vec::new();
    let valid = |rng: &mut SplitMix64, key: &str| -> String {
        match key {
            "model" => pick(
                rng,
                &[
                    r#""m""#,
                    r#""qwen-7b""#,
                    r#""é模型""#,
                    r#""m""#,
                    r#""m\u00e9""#,
                ],
            )
            .into(),
            "dataset" => pick(
                rng,
                &[r#""d""#, r#""aime""#, r#""é模型""#, r#""m\u00e9""#, "null"],
            )
            .into(),
            "problem_id" => pick(
                rng,
                &[
                    r#""p1""#,
                    r#""p2""#,
                    "3",
                    "0",
                    "18446744073709551615",
                    "-4",
                    r#""p1""#,
                    r#""p3""#,
                ],
            )
            .into(),
            "correct" => pick(rng, &["true", "false"]).into(),
            "n" | "c" | "sample" => rng.below(12).to_string(),
            _ => pick(rng, &[r#""so \\boxed{2}""#, "[1,2]", "null", r#""4""#]).into(),
        }
    };
    // Half the lines are plain records with only harmless variation (the fast path's diet).
    let hostile = rng.bernoulli(0.5);
    let mut keys = vec!["model", "problem_id"];
    if rng.bernoulli(0.7) {
        keys.push("correct")
    } else {
        keys.extend(["n", "c"])
    }
    for extra in [
        "dataset",
        "sample",
        "answer",
        "response",
        "finish_reason",
        "x",
        "mod\\u0065l",
        "step",
        "tokens",
        "correct",
    ] {
        if rng.bernoulli(if hostile || extra == "dataset" || extra == "sample" {
            0.25
        } else {
            0.05
        }) && (hostile || extra != "correct")
        {
            keys.push(extra);
        }
    }
    if hostile && rng.bernoulli(0.1) {
        keys.remove(rng.below(keys.len() as u64) as usize);
    }
    if hostile && rng.bernoulli(0.05) {
        let again = keys[rng.below(keys.len() as u64) as usize];
        keys.push(again);
    }
    rng.shuffle(&mut keys);
    for key in keys {
        let v = if !hostile || rng.bernoulli(0.85) {
            valid(rng, key)
        } else {
            value(rng).to_string()
        };
        fields.push((format!("\"{key}\""), v));
    }
    let space = |rng: &mut SplitMix64| pick(rng, &["", "", "", " ", "\t", "  ", "\r"]).to_string();
    let mut line = space(rng) + "{";
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            line += &(space(rng) + ",");
        }
        line += &format!(
            "{}{k}{}:{}{v}{}",
            space(rng),
            space(rng),
            space(rng),
            space(rng)
        );
    }
    line += "}";
    line += &space(rng);
    // Byte-level damage, kept at char boundaries so the line stays a &str.
    if hostile && rng.bernoulli(0.3) {
        let cuts: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
        let at = cuts[rng.below(cuts.len() as u64) as usize];
        match rng.below(4) {
            0 => line.truncate(at),
            1 => {
                line.remove(at);
            }
            2 => line.insert_str(
                at,
                pick(
                    rng,
                    &["{", "}", "[", "]", "\"", ",", ":", "\\", "0", "a", " x"],
                ),
            ),
            _ => line.push_str(pick(rng, &[",", " x", "}", "{}"])),
        }
    }
    line
}

#[test]
fn fast_scanner_agrees_with_serde_on_generated_lines() {
    let mut rng = SplitMix64::new(0x5eed);
    let (mut fast_hits, mut total) = (0, 0);
    // Carried from line to line as in a block: a wrong prediction must never change a result.
    let mut warm_order = [fast::KeyOrder::default(), fast::KeyOrder::default()];
    for _ in 0..40_000 {
        let line = generated_line(&mut rng);
        for sample in [false, true] {
            let needs = Needs {
                sample,
                ..Needs::default()
            };
            let warm = fast::scan_line(&line, 0, sample, &mut warm_order[sample as usize]);
            let warm = warm.and_then(|(core, end)| (end == line.len()).then_some(core));
            assert_eq!(warm, fast::scan_core(&line, sample), "{line}");
            let slow = parse_line_serde(&line, needs);
            // The public entry point (fast path first) gives exactly serde's answer...
            assert_eq!(parse_line(&line, needs), slow, "{line}");
            // ...and whatever the scanner accepts, serde accepts with the same core fields.
            if let Some(fast) = fast::scan_core(&line, sample) {
                let slow = slow
                    .as_ref()
                    .unwrap_or_else(|e| panic!("fast path accepted a bad line {line}: {e:?}"));
                assert_eq!(fast, CoreLine::of(slow), "{line}");
                assert!(
                    matches!(fast.model, Cow::Borrowed(_))
                        && matches!(fast.problem_id, Cow::Borrowed(_))
                );
                fast_hits += 1;
            }
            total += 1;
        }
    }
    // The generator must exercise both paths.
    assert!(
        fast_hits > total / 5 && fast_hits < total * 9 / 10,
        "{fast_hits} of {total}"
    );
}

/// Collects what `read_core_parallel` hands over, in input order (sorted by position).
fn read_parallel(
    files: &[PathBuf],
    threads: usize,
    skip: bool,
) -> Result<(Vec<String>, ReadStats), InputError> {
    let mut shards: Vec<Vec<(InputPosition, String)>> = vec![Vec::new(); threads];
    let stats = read_core_parallel(files, true, skip, &mut shards, |shard, l, at| {
        shard.push((at, format!("{l:?}")))
    })?;
    let mut all: Vec<(InputPosition, String)> = shards.into_iter().flatten().collect();
    all.sort();
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "positions are unique"
    );
    Ok((all.into_iter().map(|r| r.1).collect(), stats))
}

fn read_sequential(files: &[PathBuf], skip: bool) -> Result<(Vec<String>, ReadStats), InputError> {
    let mut seen = Vec::new();
    let needs = Needs {
        sample: true,
        ..Needs::default()
    };
    let stats = read_files::<InputError>(files, needs, skip, |l, _| {
        seen.push(format!("{:?}", CoreLine::of(l)));
        Ok(())
    })?;
    Ok((seen, stats))
}

/// Several blocks' worth of lines: fast-path lines, escaped ones (slow path), blank and CRLF
/// lines, one line longer than a block, and `bad` lines at the given line numbers.
fn multi_block_text(lines: usize, bad: &[usize]) -> Vec<u8> {
    let mut rng = SplitMix64::new(7);
    let mut text = Vec::new();
    for i in 1..=lines {
        let line = if bad.contains(&i) {
            match i % 3 {
                0 => b"{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":\"yes\"}".to_vec(),
                1 => b"{\"model\":\"m\xff\",\"problem_id\":\"p\",\"correct\":true}".to_vec(),
                _ => b"{\"model\":\"m\",\"problem_id\":\"p\",\"n\":2,\"c\":3}".to_vec(),
            }
        } else if i % 997 == 0 {
            format!(
                "{{\"model\":\"m{}\",\"problem_id\":\"p\",\"correct\":true,\"response\":\"{}\"}}",
                i % 5,
                "y".repeat(BLOCK_BYTES + 10)
            )
            .into_bytes()
        } else if i % 101 == 0 {
            Vec::new()
        } else if i % 37 == 0 {
            format!(
                "{{\"model\":\"m\\u00e9{}\",\"problem_id\":{i},\"n\":{},\"c\":1}}\r",
                i % 3,
                1 + i % 4
            )
            .into_bytes()
        } else {
            // Random letters: the gzip copy must stay larger than two blocks.
            let pad: String = (0..rng.below(200))
                .map(|_| (b'a' + rng.below(26) as u8) as char)
                .collect();
            format!("{{\"model\":\"m{}\",\"dataset\":\"d\",\"problem_id\":\"p{}\",\"sample\":{i},\"correct\":{},\"answer\":\"{pad}\"}}", i % 5, i % 61, i % 2 == 0).into_bytes()
        };
        text.extend_from_slice(&line);
        if i < lines {
            text.push(b'\n');
        }
    }
    text
}

#[test]
fn parallel_reader_matches_sequential_reader() {
    let dir = tempfile::tempdir().unwrap();
    let text = multi_block_text(12_000, &[]);
    assert!(
        text.len() > 8 * BLOCK_BYTES,
        "several blocks: {}",
        text.len()
    );
    let plain = write_file(&dir, "a.jsonl", &text);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text[..text.len() / 2]).unwrap();
    let mut bytes = gz.finish().unwrap();
    // a second gzip member continues the stream
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text[text.len() / 2..]).unwrap();
    bytes.extend(gz.finish().unwrap());
    let zipped = write_file(&dir, "b.gz", &bytes);
    assert!(
        bytes.len() > 2 * BLOCK_BYTES,
        "large enough to be read by several threads"
    );
    let empty = write_file(&dir, "e.jsonl", b"");
    let files = vec![plain.clone(), empty, zipped];
    let expected = read_sequential(&files, false).unwrap();
    assert!(expected.0.len() > 20_000);
    for threads in [1, 2, 3, 5] {
        assert_eq!(
            read_parallel(&files, threads, false).unwrap(),
            expected,
            "{threads} threads"
        );
    }
    let missing = dir.path().join("nope.jsonl");
    assert_eq!(
        read_parallel(&[plain, missing.clone()], 2, true).unwrap_err(),
        read_sequential(&[missing], true).unwrap_err()
    );
}

#[test]
fn parallel_reader_errors_carry_exact_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let bad: Vec<usize> = vec![
        4_000, 4_001, 6_002, 9_000, 9_001, 9_002, 9_500, 9_600, 9_700, 9_800, 9_900, 11_000, 11_999,
    ];
    let path = write_file(&dir, "rollouts.jsonl", &multi_block_text(12_000, &bad));
    for threads in [1, 2, 4] {
        let err = read_parallel(std::slice::from_ref(&path), threads, false).unwrap_err();
        assert_eq!(
            err,
            read_sequential(std::slice::from_ref(&path), false).unwrap_err()
        );
        assert_eq!(err.line, Some(4_000));
        let (records, stats) = read_parallel(std::slice::from_ref(&path), threads, true).unwrap();
        let expected = read_sequential(std::slice::from_ref(&path), true).unwrap();
        assert_eq!((records, &stats), (expected.0, &expected.1));
        assert_eq!(stats.skipped, bad.len() as u64);
        let lines: Vec<Option<u64>> = stats.first_skipped.iter().map(|e| e.line).collect();
        let first: Vec<Option<u64>> = bad[..SKIPPED_ERRORS_KEPT]
            .iter()
            .map(|&l| Some(l as u64))
            .collect();
        assert_eq!(lines, first);
    }
    // Errors are only reported from the first bad line on: a bad line in an early block wins
    // even when a later block finishes first.
    let path = write_file(&dir, "late.jsonl", &multi_block_text(12_000, &[11_998]));
    assert_eq!(
        read_parallel(&[path], 2, false).unwrap_err().line,
        Some(11_998)
    );
}

#[test]
fn byte_finders_match_naive_search() {
    let hay: Vec<u8> = (0..300u32)
        .map(|i| [b'a', 0xc3, 0xa9, b'x', b' '][(i * 7 % 5) as usize])
        .collect();
    for special in [b'"', b'\\', 0x01, b'\n'] {
        for at in [0usize, 3, 7, 8, 15, 64, 299] {
            let mut h = hay.clone();
            h[at] = special;
            let naive = h.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            assert_eq!(fast::find_string_special(&h), naive, "{special} at {at}");
            assert_eq!(find_newline(&h), h.iter().position(|&c| c == b'\n'));
        }
    }
    assert_eq!(fast::find_string_special(&hay), None);
    assert_eq!(find_newline(&hay), None);
}

fn write_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn reads_plain_and_gzip_files_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write_file(&dir, "a.jsonl", b"{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":true}\r\n\n  \n{\"model\":\"m\",\"problem_id\":\"q\",\"n\":4,\"c\":1}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"{\"model\":\"z\",\"problem_id\":\"p\",\"correct\":false}\n")
        .unwrap();
    let gz_path = write_file(&dir, "b.data", &gz.finish().unwrap());
    let mut seen = Vec::new();
    let stats = read_files::<InputError>(&[plain, gz_path], Needs::default(), false, |l, info| {
        seen.push((info.file_index, info.line, l.model.to_string(), l.samples()));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (0, 1, "m".into(), 1),
            (0, 4, "m".into(), 4),
            (1, 1, "z".into(), 1)
        ]
    );
    assert_eq!(stats.records, 3);
    assert_eq!(stats.skipped, 0);
}

#[test]
fn lines_longer_than_the_read_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(3 << 20);
    let text = format!(
        "{{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":true,\"response\":\"{long}\"}}\n{{\"model\":\"m\",\"problem_id\":\"q\",\"correct\":false,\"response\":\"{long}\"}}"
    );
    let path = write_file(&dir, "long.jsonl", text.as_bytes());
    let mut seen = Vec::new();
    let stats = read_files::<InputError>(
        &[path],
        Needs {
            response: true,
            ..Needs::default()
        },
        false,
        |l, info| {
            seen.push((
                info.line,
                l.problem_id.to_string(),
                l.response.as_ref().unwrap().len(),
            ));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        seen,
        vec![(1, "p".into(), 3 << 20), (2, "q".into(), 3 << 20)]
    );
    assert_eq!(stats.bytes, text.len() as u64);
}

#[test]
fn bad_lines_stop_or_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":true}\n{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":1}\n".to_vec();
    bytes.extend_from_slice(b"{\"model\":\"m\xff\",\"problem_id\":\"p\",\"correct\":true}\n");
    let path = write_file(&dir, "rollouts.jsonl", &bytes);
    let err = read_files::<InputError>(
        std::slice::from_ref(&path),
        Needs::default(),
        false,
        |_, _| Ok(()),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: field \"correct\": expected a boolean",
            path.display()
        )
    );
    let stats = read_files::<InputError>(
        std::slice::from_ref(&path),
        Needs::default(),
        true,
        |_, _| Ok(()),
    )
    .unwrap();
    assert_eq!((stats.records, stats.skipped), (1, 2));
    assert!(
        stats.first_skipped[1]
            .to_string()
            .contains(":3: invalid UTF-8"),
        "{}",
        stats.first_skipped[1]
    );
    let missing = dir.path().join("nope.jsonl");
    let err =
        read_files::<InputError>(&[missing], Needs::default(), true, |_, _| Ok(())).unwrap_err();
    assert!(err.to_string().contains("cannot open"));
    let empty = write_file(&dir, "empty.jsonl", b"");
    let stats = read_files::<InputError>(&[empty], Needs::default(), false, |_, _| Ok(())).unwrap();
    assert_eq!(stats.records, 0);
}
