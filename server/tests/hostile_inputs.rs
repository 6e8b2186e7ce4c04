//! Hostile inputs for every importer and for format detection: the regression cases of the
//! importer fuzz targets (server/fuzz, docs/fuzzing.md) and the shapes a fuzzer reaches slowly,
//! on stable, deterministic and fast. Every importer reads every input (the wrong formats too):
//! nothing may panic, and each read ends in an error naming the file or in records / rejected
//! lines; a sink that stops at the first reject stops the read.
//!
//! The inputs: the real logs and format fixtures cut at several points and with bytes flipped at
//! fixed offsets, zip archives whose members lie about their sizes and methods, parquet files
//! with corrupt footers, deeply nested JSON, invalid UTF-8, megabyte lines, compressed garbage,
//! and the inputs the fuzzers found ([`fuzz_findings`]).

use caplens_server::ingest::{
    detect, detect_head, importer, importers, Format, InputError, InputFile, ReadStop, RecordSink,
    RolloutRecord, SourceInfo, MAX_LINE_BYTES, SNIFF_BYTES,
};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Case {
    /// What the input is, for failure messages.
    label: String,
    /// The file name importers and detection see (it matters for .eval and lighteval names).
    name: String,
    bytes: Vec<u8>,
}

fn case(label: impl Into<String>, name: &str, bytes: impl Into<Vec<u8>>) -> Case {
    Case {
        label: label.into(),
        name: name.to_string(),
        bytes: bytes.into(),
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The real logs and format fixtures (tests/fixtures/real, formats, datasets), except READMEs
/// and the scripts that made them.
fn fixture_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("md" | "py" | "sh")
            ) {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for sub in ["real", "formats", "datasets"] {
        walk(&fixtures().join(sub), &mut files);
    }
    assert!(files.len() >= 30, "fixtures not found: {files:?}");
    files
}

/// Larger fixtures are garbled in their first 64 KiB only (the whole file is read intact too):
/// the test stays fast and the cut still lands inside the samples.
const GARBLE_PREFIX: usize = 64 * 1024;

/// Each fixture intact, cut at several points, and with bytes flipped at fixed offsets.
fn garbled_fixtures() -> Vec<Case> {
    let mut cases = Vec::new();
    for path in fixture_files() {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let whole = std::fs::read(&path).unwrap();
        let bytes = &whole[..whole.len().min(GARBLE_PREFIX)];
        let len = bytes.len();
        cases.push(case(format!("{name} intact"), &name, whole.clone()));
        for cut in [1, 7, 30, len / 4, len / 2, len * 3 / 4, len - 1] {
            if cut > 0 && cut < len {
                cases.push(case(format!("{name} cut at {cut}"), &name, &bytes[..cut]));
            }
        }
        let offsets: Vec<usize> = (1..=16).map(|i| len * i / 17).collect();
        for (i, &at) in offsets.iter().enumerate().step_by(4) {
            let mut flipped = bytes.to_vec();
            flipped[at] ^= 0xa5;
            cases.push(case(format!("{name} byte {at} flipped ({i})"), &name, flipped));
        }
        let mut flipped = bytes.to_vec();
        for &at in &offsets {
            flipped[at] = flipped[at].wrapping_add(0x81);
        }
        cases.push(case(format!("{name} 16 bytes changed"), &name, flipped));
        // The end of the file garbled: zip central directories and parquet footers live there.
        let mut tail = whole.clone();
        let n = tail.len();
        for at in [n.saturating_sub(3), n.saturating_sub(9), n.saturating_sub(40)] {
            tail[at] ^= 0xff;
        }
        cases.push(case(format!("{name} end garbled"), &name, tail));
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// Zip archives that lie

/// A stored-member .eval archive with a header and one sample, as Inspect lays it out.
fn small_eval() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("header.json", stored).unwrap();
    zip.write_all(br#"{"status":"success","eval":{"task":"t","model":"m","eval_id":"e"}}"#)
        .unwrap();
    zip.start_file("samples/1_epoch_1.json", stored).unwrap();
    zip.write_all(
        br#"{"id":1,"epoch":1,"input":"1+1?","target":"2","output":{"completion":"2"},"scores":{"match":{"value":"C","answer":"2"}}}"#,
    )
    .unwrap();
    zip.finish().unwrap().into_inner()
}

fn find(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Overwrites a little-endian field of every record with signature `sig` at `offset` into it.
fn patch(bytes: &mut [u8], sig: &[u8], offset: usize, value: &[u8]) {
    let at = find(bytes, sig);
    assert!(!at.is_empty(), "no {sig:?} record");
    for start in at {
        bytes[start + offset..start + offset + value.len()].copy_from_slice(value);
    }
}

const LOCAL: &[u8] = b"PK\x03\x04";
const CENTRAL: &[u8] = b"PK\x01\x02";
const END: &[u8] = b"PK\x05\x06";

fn lying_zips() -> Vec<Case> {
    let eval = small_eval();
    let mut cases = vec![case("small .eval", "log.eval", eval.clone())];
    let mut variant = |label: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = eval.clone();
        edit(&mut bytes);
        cases.push(case(label, "log.eval", bytes));
    };
    // Sizes: local header +18 compressed, +22 uncompressed; central +20, +24.
    variant("zip: members declare a 4 GB uncompressed size", &|b| {
        patch(b, LOCAL, 22, &0xffff_fffeu32.to_le_bytes());
        patch(b, CENTRAL, 24, &0xffff_fffeu32.to_le_bytes());
    });
    variant("zip: members declare a 4 GB compressed size", &|b| {
        patch(b, LOCAL, 18, &0xffff_fffeu32.to_le_bytes());
        patch(b, CENTRAL, 20, &0xffff_fffeu32.to_le_bytes());
    });
    variant("zip: sizes are the zip64 marker without a zip64 field", &|b| {
        patch(b, CENTRAL, 20, &[0xff; 8]);
    });
    // Method: local +8, central +10.
    for (method, label) in [(93u16, "zstd"), (8, "deflate"), (12, "bzip2"), (99, "AES")] {
        variant(
            &format!("zip: stored bytes declared as {label}"),
            &|b: &mut Vec<u8>| {
                patch(b, LOCAL, 8, &method.to_le_bytes());
                patch(b, CENTRAL, 10, &method.to_le_bytes());
            },
        );
    }
    variant("zip: the central directory claims 65535 members", &|b| {
        patch(b, END, 8, &[0xff, 0xff, 0xff, 0xff]);
    });
    variant("zip: the central directory is said to start past the end", &|b| {
        patch(b, END, 16, &0x7fff_ffffu32.to_le_bytes());
    });
    variant("zip: member names of 65535 bytes", &|b| {
        patch(b, CENTRAL, 28, &[0xff, 0xff]);
    });
    variant("zip: the end record only", &|b| {
        let end = find(b, END)[0];
        b.drain(..end);
    });
    // A member that inflates to 8 MB of spaces (a small zip bomb, 8 KB stored): read as a
    // stream, it must not be held in memory whole.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflate = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file("samples/1_epoch_1.json", deflate).unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..8 {
        zip.write_all(&spaces).unwrap();
    }
    zip.write_all(b"{}").unwrap();
    let bomb = zip.finish().unwrap().into_inner();
    assert!(bomb.len() < 1 << 20);
    cases.push(case("zip: a sample member of 8 MB of spaces", "log.eval", bomb));
    cases
}

// ---------------------------------------------------------------------------------------------
// Parquet files with corrupt footers

fn corrupt_parquets() -> Vec<Case> {
    let name = "details_aime24|0_2026-12-02T12-00-00.000000.parquet";
    let good = std::fs::read(fixtures().join("formats/lighteval").join(name)).unwrap();
    let n = good.len();
    let footer_len = u32::from_le_bytes(good[n - 8..n - 4].try_into().unwrap()) as usize;
    let mut cases = Vec::new();
    let mut variant = |label: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        edit(&mut bytes);
        cases.push(case(format!("parquet: {label}"), name, bytes));
    };
    variant("footer length 2 GB", &|b| {
        b[n - 8..n - 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes())
    });
    variant("footer length 0", &|b| b[n - 8..n - 4].copy_from_slice(&[0; 4]));
    variant("footer length longer than the file by one", &|b| {
        b[n - 8..n - 4].copy_from_slice(&((n - 7) as u32).to_le_bytes())
    });
    variant("footer metadata zeroed", &|b| {
        b[n - 8 - footer_len..n - 8].fill(0)
    });
    variant("footer metadata all 0xff", &|b| {
        b[n - 8 - footer_len..n - 8].fill(0xff)
    });
    for (i, step) in [3usize, 7, 13, 29].into_iter().enumerate() {
        variant(&format!("footer metadata garbled ({i})"), &|b| {
            for at in (n - 8 - footer_len..n - 8).step_by(step) {
                b[at] = b[at].wrapping_mul(31).wrapping_add(7);
            }
        });
    }
    variant("data pages garbled, footer intact", &|b| {
        for at in (4..n - 8 - footer_len).step_by(11) {
            b[at] ^= 0x5a;
        }
    });
    variant("magic only", &|b| {
        b.truncate(4);
        b.extend_from_slice(b"PAR1");
    });
    cases
}

// ---------------------------------------------------------------------------------------------
// JSON that is deep, wide, long or not UTF-8

fn hostile_json() -> Vec<Case> {
    let mut cases = Vec::new();
    let deep = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n));
    let native_prefix = r#"{"model":"m","problem_id":"1","correct":true,"response":"#;
    for depth in [200, 100_000] {
        let nested = deep("[", "]", depth);
        cases.push(case(
            format!("native line with a response nested {depth} deep"),
            "rollouts.jsonl",
            format!("{native_prefix}{nested}}}\n"),
        ));
        cases.push(case(
            format!("an array nested {depth} deep"),
            "rollouts.jsonl",
            nested.clone(),
        ));
        cases.push(case(
            format!("objects nested {depth} deep"),
            "upload",
            deep("{\"a\":", "}", depth),
        ));
        cases.push(case(
            format!("Inspect log with a sample nested {depth} deep"),
            "log.json",
            format!(r#"{{"version":2,"status":"success","eval":{{"task":"t","model":"m"}},"samples":[{{"id":1,"epoch":1,"input":{nested},"target":"1"}}]}}"#),
        ));
        cases.push(case(
            format!("Inspect log with samples nested {depth} deep"),
            "log.json",
            format!(r#"{{"eval":{{}},"samples":{nested}}}"#),
        ));
        cases.push(case(
            format!("lm-eval line with resps nested {depth} deep"),
            "samples_t_2025-06-01T12-00-00.000000.jsonl",
            format!(r#"{{"doc_id":0,"doc":{{}},"target":"1","resps":{nested},"filtered_resps":[]}}"#),
        ));
    }
    // Invalid UTF-8: inside a JSON string, as a whole line, in an Inspect document.
    let mut bad_utf8 = br#"{"model":"m","problem_id":"1","correct":true,"response":""#.to_vec();
    bad_utf8.extend_from_slice(b"\xff\xfe\xc3\x28\xed\xa0\x80\"}\n");
    bad_utf8.extend_from_slice(b"\xf0\x28\x8c\x28\n");
    bad_utf8.extend_from_slice(br#"{"model":"m","problem_id":"2","correct":false}"#);
    cases.push(case("invalid UTF-8 in a native string", "rollouts.jsonl", bad_utf8.clone()));
    let mut inspect_bad = br#"{"eval":{"task":"t","model":"m"},"samples":[{"id":1,"epoch":1,"input":""#.to_vec();
    inspect_bad.extend_from_slice(b"\xff\xfe\"}]}");
    cases.push(case("invalid UTF-8 in an Inspect log", "log.json", inspect_bad));
    cases.push(case("UTF-16 with a BOM", "upload", b"\xff\xfe{\x00\"\x00a\x00\"\x00:\x001\x00}\x00".to_vec()));
    cases.push(case("UTF-8 BOM before JSON", "rollouts.jsonl", b"\xef\xbb\xbf{\"model\":\"m\",\"problem_id\":\"1\",\"correct\":true}\n".to_vec()));
    cases.push(case("lone surrogate escapes", "rollouts.jsonl", r#"{"model":"\ud800","problem_id":"\udfff","correct":true,"response":"\ud83d"}"#));
    // Megabyte lines: a valid 2 MB response, 2 MB without a newline, a quarter million newlines,
    // a megabyte of NaN words split across read boundaries.
    let long = "x".repeat(2 << 20);
    cases.push(case(
        "native line with a 2 MB response",
        "rollouts.jsonl",
        format!("{native_prefix}\"{long}\"}}\n"),
    ));
    cases.push(case("2 MB without a newline", "upload", long.clone()));
    cases.push(case("2 MB unterminated string", "upload", format!("{{\"model\":\"{long}")));
    cases.push(case("256 KB of newlines", "upload", "\n".repeat(1 << 18)));
    cases.push(case("1 MB of NaN words", "log.json", format!("[{}0]", "NaN,-Infinity,".repeat(1 << 16))));
    cases.push(case("cut inside -Infinity", "log.json", "{\"eval\":{},\"samples\":[-Infinit"));
    cases.push(case(
        "Inspect log with 100,000 empty samples",
        "log.json",
        format!(r#"{{"eval":{{"task":"t"}},"samples":[{}{{}}]}}"#, "{},".repeat(100_000)),
    ));
    cases.push(case("openai line with 100,000 choices", "chat.jsonl", format!(r#"{{"custom_id":"1","response":{{"body":{{"choices":[{}{{}}]}}}}}}"#, "{},".repeat(100_000))));
    cases.push(case("native line with a huge n", "rollouts.jsonl", r#"{"model":"m","problem_id":"1","n":18446744073709551615,"c":1}"#));
    cases.push(case("native line with a negative sample", "rollouts.jsonl", r#"{"model":"m","problem_id":"1","sample":-1,"correct":true}"#));
    cases.push(case("numbers of 10,000 digits", "rollouts.jsonl", format!(r#"{{"model":"m","problem_id":{0},"correct":true,"step":{0}}}"#, "9".repeat(10_000))));
    cases
}

// ---------------------------------------------------------------------------------------------
// Odd bytes and compressed garbage

fn odd_bytes() -> Vec<Case> {
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let lines = br#"{"model":"m","problem_id":"1","correct":true}
"#;
    let good_gz = gz(lines);
    let zeros_gz = gz(&vec![0u8; 4 << 20]);
    let mut cases = vec![
        case("empty", "upload", Vec::new()),
        case("one NUL", "upload", vec![0]),
        case("NUL bytes", "rollouts.jsonl", vec![0; 4096]),
        case("whitespace only", "rollouts.jsonl", " \t\r\n\n  \n"),
        case("a JSON string", "rollouts.jsonl", "\"hello\"\n"),
        case("gzip magic then garbage", "rollouts.jsonl.gz", b"\x1f\x8b\x08\x00garbage".to_vec()),
        case("zstd magic then garbage", "rollouts.jsonl.zst", b"\x28\xb5\x2f\xfdgarbage".to_vec()),
        case("zip magic then garbage", "log.eval", b"PK\x03\x04garbage".to_vec()),
        case("parquet magic then garbage", "details_x|0_2026-01-01T00-00-00.000000.parquet", b"PAR1garbagePAR1".to_vec()),
        case("gzip cut in its trailer", "rollouts.jsonl.gz", good_gz[..good_gz.len() - 3].to_vec()),
        case("gzip of 4 MB of NUL bytes", "rollouts.jsonl.gz", zeros_gz),
    ];
    // Concatenated gzip members (valid; read as one stream) then garbage.
    let mut multi = good_gz.clone();
    multi.extend_from_slice(&good_gz);
    multi.extend_from_slice(b"trailing garbage");
    cases.push(case("two gzip members then garbage", "rollouts.jsonl.gz", multi));
    cases
}

/// Inputs the fuzz targets found (server/fuzz; docs/fuzzing.md), as edits of a fixture.
fn fuzz_findings() -> Vec<Case> {
    let lighteval = "details_aime24|0_2026-12-02T12-00-00.000000.parquet";
    let fixture = std::fs::read(fixtures().join("formats/lighteval").join(lighteval)).unwrap();
    // `lighteval` target, 1,484th run: seven bytes changed, one of them in the footer, give a
    // column chunk a negative offset; the parquet crate's `ColumnChunkMetaData::byte_range`
    // panicked ("column start and length should not be negative") where it opens the column.
    let mut negative_column_offset = fixture.clone();
    for (at, byte) in [
        (2389, 195),
        (8513, 117),
        (9352, 67),
        (13519, 30),
        (17855, 91),
        (19770, 51),
        (19771, 48),
    ] {
        negative_column_offset[at] = byte;
    }
    // `lighteval` target, after the fix above: the parquet crate's row reader asserts that a
    // LIST's inner group is repeated (`record/reader.rs`, "Invalid list type"). Minimised by
    // hand to one byte: the first `list` group of the footer's schema made REQUIRED.
    let mut required_list = fixture.clone();
    assert_eq!(&required_list[5699..5707], b"\x35\x04\x18\x04list");
    required_list[5700] = 0;
    // Three more panics of the crate's row reader, caught since; libFuzzer's inputs as found
    // (tests/fixtures/hostile/README.md).
    let mut found: Vec<Case> = [
        "parquet-dict-decoder-unset.parquet",
        "parquet-triplet-levels.parquet",
        "parquet-bit-reader-short.parquet",
    ]
    .into_iter()
    .map(|file| {
        let bytes = std::fs::read(fixtures().join("hostile").join(file)).unwrap();
        case(format!("lighteval fuzz crash: {file}"), lighteval, bytes)
    })
    .collect();
    found.extend([
        case(
            "lighteval fuzz crash: a column chunk with a negative offset",
            lighteval,
            negative_column_offset,
        ),
        case(
            "lighteval fuzz crash: a LIST whose inner group is not repeated",
            lighteval,
            required_list,
        ),
    ]);
    found
}

/// The parquet crashes are errors naming the file (and the row, when it is a row's data), saying
/// it is corrupt.
#[test]
fn corrupt_parquet_found_by_the_fuzzer_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for case in fuzz_findings() {
        let path = dir.path().join(&case.name);
        std::fs::write(&path, &case.bytes).unwrap();
        let input = InputFile::new(&path, &case.name);
        let mut sink = CountingSink::new(false);
        let result = importer(Format::Lighteval).read(&input, &mut sink);
        let Err(ReadStop::Input(e)) = result else {
            panic!("{}: {result:?}", case.label)
        };
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("{}:", case.name)) && message.contains("corrupt"),
            "{}: {message}",
            case.label
        );
    }
}

// ---------------------------------------------------------------------------------------------

/// Counts what an importer sends; stops at the first reject when `strict`.
struct CountingSink {
    strict: bool,
    records: u64,
    rejects: u64,
    sources: u64,
    /// The first reject, to check it names the file.
    first_reject: Option<InputError>,
}

impl CountingSink {
    fn new(strict: bool) -> Self {
        CountingSink {
            strict,
            records: 0,
            rejects: 0,
            sources: 0,
            first_reject: None,
        }
    }
}

impl RecordSink for CountingSink {
    fn source(&mut self, _: SourceInfo) -> Result<(), ReadStop> {
        self.sources += 1;
        Ok(())
    }
    fn record(&mut self, record: RolloutRecord) -> Result<(), ReadStop> {
        assert!(record.line >= 1, "record without a line: {record:?}");
        self.records += 1;
        Ok(())
    }
    fn reject(&mut self, error: InputError) -> Result<(), ReadStop> {
        self.rejects += 1;
        if self.first_reject.is_none() {
            self.first_reject = Some(error.clone());
        }
        if self.strict {
            Err(ReadStop::Input(error))
        } else {
            Ok(())
        }
    }
}

/// Every importer and detection on one input.
fn check(case: &Case, path: &Path) {
    let name = &case.name;
    let input = InputFile::new(path, name);
    let names_file = |e: &InputError, what: &str| {
        assert!(
            e.to_string().starts_with(name.as_str()),
            "{what}: the error does not name the file: {e}"
        )
    };
    let head = &case.bytes[..case.bytes.len().min(SNIFF_BYTES)];
    let _ = detect_head(name, head);
    let _ = detect_head("upload", head);
    if let Err(e) = detect(&input) {
        names_file(&e, "detect");
    }
    let has_content = case.bytes.iter().any(|b| !b.is_ascii_whitespace());
    for importer in importers() {
        let format = importer.format();
        let _ = importer.sniff(name, head);
        if let Err(e) = importer.hints(&input) {
            names_file(&e, &format!("{format} hints"));
        }
        let mut lenient = CountingSink::new(false);
        match importer.read(&input, &mut lenient) {
            Ok(()) => assert!(
                !has_content || lenient.records + lenient.rejects > 0 || lenient.sources > 0,
                "{format}: read it without an error, a record or a rejected line"
            ),
            Err(ReadStop::Input(e)) => names_file(&e, &format!("{format} read")),
            Err(ReadStop::Sink(m)) => panic!("{format}: a sink that never stops stopped: {m}"),
        }
        if let Some(e) = &lenient.first_reject {
            names_file(e, &format!("{format} reject"));
        }
        assert!(lenient.sources <= 1, "{format}: run described twice");
        let mut strict = CountingSink::new(true);
        let result = importer.read(&input, &mut strict);
        assert!(strict.rejects <= 1, "{format}: read on after the sink stopped it");
        if strict.rejects == 1 {
            assert!(result.is_err(), "{format}: the sink's stop was dropped");
        }
        assert!(
            strict.records <= lenient.records,
            "{format}: stopping at the first reject gave more records"
        );
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

fn run(cases: Vec<Case>) {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for (i, case) in cases.iter().enumerate() {
        // One directory per case: the file keeps its name (names steer detection).
        let sub = dir.path().join(i.to_string());
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join(&case.name);
        std::fs::write(&path, &case.bytes).unwrap();
        let start = Instant::now();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(case, &path))) {
            failures.push(format!("{}: {}", case.label, panic_message(&*panic)));
        }
        if start.elapsed() > slowest.0 {
            slowest = (start.elapsed(), case.label.clone());
        }
        std::fs::remove_dir_all(&sub).unwrap();
    }
    eprintln!(
        "{} inputs; slowest: {} ({:?})",
        cases.len(),
        slowest.1,
        slowest.0
    );
    assert!(failures.is_empty(), "{} of {} inputs failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn garbled_real_logs_and_fixtures() {
    run(garbled_fixtures());
}

#[test]
fn zip_archives_that_lie() {
    run(lying_zips());
}

#[test]
fn parquet_files_with_corrupt_footers() {
    run(corrupt_parquets());
}

#[test]
fn deep_long_and_invalid_json() {
    run(hostile_json());
}

#[test]
fn odd_bytes_and_compressed_garbage() {
    run(odd_bytes());
}

#[test]
fn fuzz_findings_stay_fixed() {
    run(fuzz_findings());
}

/// A zstd bomb: under 64 KB that decompress to one line longer than [`MAX_LINE_BYTES`], then a valid
/// line. The JSON Lines importers reject the long line (holding at most the limit, not the
/// line) and read on; before the limit, the line was buffered whole, so a small upload could
/// make the server allocate gigabytes.
#[test]
fn a_decompressed_line_longer_than_the_limit_is_rejected_and_skipped() {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..(MAX_LINE_BYTES >> 20) + 8 {
        encoder.write_all(&chunk).unwrap();
    }
    encoder
        .write_all(b"\n{\"model\":\"m\",\"problem_id\":\"1\",\"correct\":true}\n")
        .unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollouts.jsonl.zst");
    std::fs::write(&path, &bomb).unwrap();
    let input = InputFile::new(&path, "rollouts.jsonl.zst");
    let mut sink = CountingSink::new(false);
    importer(Format::Native).read(&input, &mut sink).unwrap();
    assert_eq!((sink.records, sink.rejects), (1, 1));
    assert_eq!(
        sink.first_reject.unwrap().to_string(),
        "rollouts.jsonl.zst:1: line longer than 256 MiB; caplens reads lines up to that length"
    );
}
