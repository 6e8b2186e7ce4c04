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
//!
//! Decompression bombs ([`bombs`]) are measured: this binary counts every allocation
//! ([`Counting`]), the tests run one at a time ([`serial`]), and each bomb must leave detection,
//! hints, a read and a whole import under [`BOMB_PEAK_BYTES`] of allocation.

mod common;

use caplens_server::ingest::{
    detect, detect_head, Format, InputError, InputFile, ReadStop, RecordSink, RolloutRecord,
    SourceInfo, MAX_LINE_BYTES, SNIFF_BYTES,
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
            cases.push(case(
                format!("{name} byte {at} flipped ({i})"),
                &name,
                flipped,
            ));
        }
        let mut flipped = bytes.to_vec();
        for &at in &offsets {
            flipped[at] = flipped[at].wrapping_add(0x81);
        }
        cases.push(case(format!("{name} 16 bytes changed"), &name, flipped));
        // The end of the file garbled: zip central directories and parquet footers live there.
        let mut tail = whole.clone();
        let n = tail.len();
        for at in [
            n.saturating_sub(3),
            n.saturating_sub(9),
            n.saturating_sub(40),
        ] {
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
    variant(
        "zip: sizes are the zip64 marker without a zip64 field",
        &|b| {
            patch(b, CENTRAL, 20, &[0xff; 8]);
        },
    );
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
    variant(
        "zip: the central directory is said to start past the end",
        &|b| {
            patch(b, END, 16, &0x7fff_ffffu32.to_le_bytes());
        },
    );
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
    cases.push(case(
        "zip: a sample member of 8 MB of spaces",
        "log.eval",
        bomb,
    ));
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
    variant("footer length 0", &|b| {
        b[n - 8..n - 4].copy_from_slice(&[0; 4])
    });
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
            format!(
                r#"{{"doc_id":0,"doc":{{}},"target":"1","resps":{nested},"filtered_resps":[]}}"#
            ),
        ));
    }
    // Invalid UTF-8: inside a JSON string, as a whole line, in an Inspect document.
    let mut bad_utf8 = br#"{"model":"m","problem_id":"1","correct":true,"response":""#.to_vec();
    bad_utf8.extend_from_slice(b"\xff\xfe\xc3\x28\xed\xa0\x80\"}\n");
    bad_utf8.extend_from_slice(b"\xf0\x28\x8c\x28\n");
    bad_utf8.extend_from_slice(br#"{"model":"m","problem_id":"2","correct":false}"#);
    cases.push(case(
        "invalid UTF-8 in a native string",
        "rollouts.jsonl",
        bad_utf8.clone(),
    ));
    let mut inspect_bad =
        br#"{"eval":{"task":"t","model":"m"},"samples":[{"id":1,"epoch":1,"input":""#.to_vec();
    inspect_bad.extend_from_slice(b"\xff\xfe\"}]}");
    cases.push(case(
        "invalid UTF-8 in an Inspect log",
        "log.json",
        inspect_bad,
    ));
    cases.push(case(
        "UTF-16 with a BOM",
        "upload",
        b"\xff\xfe{\x00\"\x00a\x00\"\x00:\x001\x00}\x00".to_vec(),
    ));
    cases.push(case(
        "UTF-8 BOM before JSON",
        "rollouts.jsonl",
        b"\xef\xbb\xbf{\"model\":\"m\",\"problem_id\":\"1\",\"correct\":true}\n".to_vec(),
    ));
    cases.push(case(
        "lone surrogate escapes",
        "rollouts.jsonl",
        r#"{"model":"\ud800","problem_id":"\udfff","correct":true,"response":"\ud83d"}"#,
    ));
    // Megabyte lines: a valid 2 MB response, 2 MB without a newline, a quarter million newlines,
    // a megabyte of NaN words split across read boundaries.
    let long = "x".repeat(2 << 20);
    cases.push(case(
        "native line with a 2 MB response",
        "rollouts.jsonl",
        format!("{native_prefix}\"{long}\"}}\n"),
    ));
    cases.push(case("2 MB without a newline", "upload", long.clone()));
    cases.push(case(
        "2 MB unterminated string",
        "upload",
        format!("{{\"model\":\"{long}"),
    ));
    cases.push(case("256 KB of newlines", "upload", "\n".repeat(1 << 18)));
    cases.push(case(
        "1 MB of NaN words",
        "log.json",
        format!("[{}0]", "NaN,-Infinity,".repeat(1 << 16)),
    ));
    cases.push(case(
        "cut inside -Infinity",
        "log.json",
        "{\"eval\":{},\"samples\":[-Infinit",
    ));
    cases.push(case(
        "Inspect log with 100,000 empty samples",
        "log.json",
        format!(
            r#"{{"eval":{{"task":"t"}},"samples":[{}{{}}]}}"#,
            "{},".repeat(100_000)
        ),
    ));
    cases.push(case(
        "openai line with 100,000 choices",
        "chat.jsonl",
        format!(
            r#"{{"custom_id":"1","response":{{"body":{{"choices":[{}{{}}]}}}}}}"#,
            "{},".repeat(100_000)
        ),
    ));
    cases.push(case(
        "native line with a huge n",
        "rollouts.jsonl",
        r#"{"model":"m","problem_id":"1","n":18446744073709551615,"c":1}"#,
    ));
    cases.push(case(
        "native line with a negative sample",
        "rollouts.jsonl",
        r#"{"model":"m","problem_id":"1","sample":-1,"correct":true}"#,
    ));
    cases.push(case(
        "numbers of 10,000 digits",
        "rollouts.jsonl",
        format!(
            r#"{{"model":"m","problem_id":{0},"correct":true,"step":{0}}}"#,
            "9".repeat(10_000)
        ),
    ));
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
        case(
            "gzip magic then garbage",
            "rollouts.jsonl.gz",
            b"\x1f\x8b\x08\x00garbage".to_vec(),
        ),
        case(
            "zstd magic then garbage",
            "rollouts.jsonl.zst",
            b"\x28\xb5\x2f\xfdgarbage".to_vec(),
        ),
        case(
            "zip magic then garbage",
            "log.eval",
            b"PK\x03\x04garbage".to_vec(),
        ),
        case(
            "parquet magic then garbage",
            "details_x|0_2026-01-01T00-00-00.000000.parquet",
            b"PAR1garbagePAR1".to_vec(),
        ),
        case(
            "gzip cut in its trailer",
            "rollouts.jsonl.gz",
            good_gz[..good_gz.len() - 3].to_vec(),
        ),
        case("gzip of 4 MB of NUL bytes", "rollouts.jsonl.gz", zeros_gz),
    ];
    // Concatenated gzip members (valid; read as one stream) then garbage.
    let mut multi = good_gz.clone();
    multi.extend_from_slice(&good_gz);
    multi.extend_from_slice(b"trailing garbage");
    cases.push(case(
        "two gzip members then garbage",
        "rollouts.jsonl.gz",
        multi,
    ));
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
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for case in fuzz_findings() {
        let path = dir.path().join(&case.name);
        std::fs::write(&path, &case.bytes).unwrap();
        let input = InputFile::new(&path, &case.name);
        let mut sink = CountingSink::new(false);
        let result = Format::named("lighteval")
            .importer()
            .read(&input, &mut sink);
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
    for format in Format::all() {
        let importer = format.importer();
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
        assert!(
            strict.rejects <= 1,
            "{format}: read on after the sink stopped it"
        );
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
    let _serial = serial();
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
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
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
    let _serial = serial();
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
    Format::named("native")
        .importer()
        .read(&input, &mut sink)
        .unwrap();
    assert_eq!((sink.records, sink.rejects), (1, 1));
    assert_eq!(
        sink.first_reject.unwrap().to_string(),
        "rollouts.jsonl.zst:1: line longer than 256 MiB; caplens reads lines up to that length"
    );
}

// ---------------------------------------------------------------------------------------------
// Decompression bombs, measured
//
// Each bomb is small on disk and inflates to a gigabyte or more (or, for parquet, declares
// gigabytes). Detection, hints, a read and a whole import through the pipeline must each end in
// a clear error naming the file (or in the records that fit) while the allocation this binary
// counts grows by less than `BOMB_PEAK_BYTES`. The issue that asked for this (#25) measured a
// 32 KB `.eval` making the server allocate 1.1 GB.

use caplens_server::ingest::pipeline::{
    new_import_id, run_import, ImportFile, ImportParams, ImportProgress, ImportStatus,
};
use caplens_server::ingest::read_head;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Counts the bytes this test binary has allocated (live and the peak since [`measure`] reset
/// it), and refuses an allocation that would take the live total past [`CEILING`], as a server
/// under a memory limit would die: the process aborts ("memory allocation of N bytes failed")
/// instead of swapping the machine.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Live bytes at which an allocation fails (the issue's server ran under a 3 GB limit).
const CEILING: usize = 3 << 30;

impl Counting {
    fn grow(by: usize) -> bool {
        let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
        if live > CEILING {
            LIVE.fetch_sub(by, Ordering::Relaxed);
            return false;
        }
        PEAK.fetch_max(live, Ordering::Relaxed);
        true
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Counting::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Counting::grow(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !Counting::grow(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        let moved = System.realloc(ptr, layout, new_size);
        if moved.is_null() {
            if new_size > layout.size() {
                LIVE.fetch_sub(new_size - layout.size(), Ordering::Relaxed);
            }
        } else if new_size < layout.size() {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Every test of this binary holds this lock, so a bomb's peak is its own.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Restarts the peak at the live bytes now; [`peak_growth`] is then what the work in between
/// added at most.
fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

fn peak_growth(start: usize) -> usize {
    PEAK.load(Ordering::Relaxed).saturating_sub(start)
}

/// What one hostile upload may make caplens allocate, in detection, hints, a read or an import
/// (the limits of `ingest::limits` are 256 MiB at most, and no two are held at once).
const BOMB_PEAK_BYTES: usize = 300_000_000;

/// What detection may allocate: it reads a fixed budget (`SNIFF_BYTES`) whatever the file.
const SNIFF_PEAK_BYTES: usize = 8 << 20;

/// A gibibyte: what each bomb inflates to (or more).
const GIB: u64 = 1 << 30;

struct Bomb {
    label: &'static str,
    /// The file name detection and the importers see.
    name: &'static str,
    bytes: Vec<u8>,
    format: Format,
    /// What the bomb holds beside the bomb itself: valid records that must still be read
    /// (with `skip_invalid`), or 0 when the whole file is refused.
    records_that_fit: u64,
    /// What the error (or the bomb's rejected record) must say: the limit that stopped it.
    limit: &'static str,
}

/// Writes `prefix`, `len` bytes of `fill` and `suffix` through `encoder`, a chunk at a time
/// (the gigabyte is never in memory).
fn stream_into(w: &mut impl Write, prefix: &[u8], fill: u8, len: u64, suffix: &[u8]) {
    w.write_all(prefix).unwrap();
    let chunk = vec![fill; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    w.write_all(suffix).unwrap();
}

fn zstd_of(prefix: &[u8], fill: u8, len: u64, suffix: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    stream_into(&mut encoder, prefix, fill, len, suffix);
    encoder.finish().unwrap()
}

fn gzip_of(prefix: &[u8], fill: u8, len: u64, suffix: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    stream_into(&mut encoder, prefix, fill, len, suffix);
    encoder.finish().unwrap()
}

/// An `.eval` archive: `members` as (name, prefix, fill bytes, suffix), compressed with `method`.
fn eval_archive(method: zip::CompressionMethod, members: &[(&str, &[u8], u64, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .compression_level(Some(if method == zip::CompressionMethod::Zstd {
            1
        } else {
            9
        }))
        .large_file(true);
    for (name, prefix, fill, suffix) in members {
        zip.start_file(*name, options).unwrap();
        stream_into(&mut zip, prefix, b'a', *fill, suffix);
    }
    zip.finish().unwrap().into_inner()
}

const HEADER_OK: &[u8] =
    br#"{"version":2,"status":"success","eval":{"task":"t","model":"m","eval_id":"e"}}"#;
const SAMPLE_OK: &[u8] = br#"{"id":2,"epoch":1,"input":"1+1?","target":"2","output":{"completion":"2"},"scores":{"match":{"value":"C","answer":"2"}}}"#;
const HEADER_BOMB: &[u8] = br#"{"version":2,"status":"success","eval":{"task":"t","model":""#;
const SAMPLE_BOMB: &[u8] = br#"{"id":1,"epoch":1,"target":"2","input":""#;
const NATIVE_OK: &[u8] = b"{\"model\":\"m\",\"problem_id\":\"2\",\"correct\":true}\n";
const NATIVE_BOMB: &[u8] = br#"{"model":"m","problem_id":"1","correct":true,"response":""#;

fn eval_header_bomb(method: zip::CompressionMethod, label: &'static str) -> Bomb {
    Bomb {
        label,
        name: "log.eval",
        bytes: eval_archive(
            method,
            &[
                ("header.json", HEADER_BOMB, GIB, b"\"}}"),
                ("samples/2_epoch_1.json", SAMPLE_OK, 0, b""),
            ],
        ),
        format: Format::named("inspect"),
        records_that_fit: 0,
        limit: "64 MiB",
    }
}

/// Runs detection, hints, a read and an import of `bomb`, each measured; prints what each did,
/// and fails after printing them all when one allocated too much or ended unclearly.
// The lock is held across the import's awaits on purpose: the peak must be this bomb's alone
// (each test has its own current-thread runtime, so nothing else waits for it there).
#[allow(clippy::await_holding_lock)]
async fn check_bomb(bomb: Bomb) {
    let _serial = serial();
    assert!(
        bomb.bytes.len() <= 4_200_000,
        "{}: {} bytes is no small file",
        bomb.label,
        bomb.bytes.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(bomb.name);
    std::fs::write(&path, &bomb.bytes).unwrap();
    let input = InputFile::new(&path, bomb.name);
    let mut failures = Vec::new();
    let mut report = |stage: &str, peak: usize, limit: usize, outcome: String| {
        eprintln!(
            "bomb {}: {stage}: peak +{:.1} MB; {outcome}",
            bomb.label,
            peak as f64 / 1e6
        );
        if peak >= limit {
            failures.push(format!(
                "{stage} allocated {:.1} MB (limit {:.1} MB)",
                peak as f64 / 1e6,
                limit as f64 / 1e6
            ));
        }
    };
    let names_file = |e: &str| e.starts_with(bomb.name);
    let names_limit = |e: &str| names_file(e) && e.contains(bomb.limit);
    let mut unclear = Vec::new();

    let start = reset_peak();
    let head = read_head(&input, SNIFF_BYTES);
    let detected = detect(&input);
    report(
        "detection",
        peak_growth(start),
        SNIFF_PEAK_BYTES,
        format!("{detected:?}"),
    );
    let head = head.unwrap();
    assert!(head.len() <= SNIFF_BYTES);
    if detected.as_ref().ok() != Some(&bomb.format)
        || detect_head(bomb.name, &head) != Some(bomb.format)
    {
        unclear.push(format!("detection: {detected:?}, expected {}", bomb.format));
    }

    let start = reset_peak();
    let hints = bomb.format.importer().hints(&input);
    report(
        "hints",
        peak_growth(start),
        BOMB_PEAK_BYTES,
        format!("{hints:?}"),
    );
    match &hints {
        Err(e) if !names_file(&e.to_string()) => unclear.push(format!("hints: {e}")),
        Ok(h) if h.records_in_head != bomb.records_that_fit => {
            unclear.push(format!("hints read {} records", h.records_in_head))
        }
        _ => {}
    }

    let start = reset_peak();
    let mut sink = CountingSink::new(false);
    let read = bomb.format.importer().read(&input, &mut sink);
    report(
        "read",
        peak_growth(start),
        BOMB_PEAK_BYTES,
        format!(
            "{} records, {} rejected ({:?}); {read:?}",
            sink.records,
            sink.rejects,
            sink.first_reject.as_ref().map(|e| e.to_string())
        ),
    );
    match &read {
        Err(ReadStop::Input(e)) if names_limit(&e.to_string()) => {}
        Ok(())
            if sink.records == bomb.records_that_fit
                && sink.rejects == 1
                && sink
                    .first_reject
                    .as_ref()
                    .is_some_and(|e| names_limit(&e.to_string())) => {}
        other => unclear.push(format!(
            "read: {other:?} with {} records and {} rejected",
            sink.records, sink.rejects
        )),
    }

    let db = common::TestDb::sqlite().await;
    let progress = Arc::new(ImportProgress::for_files(std::slice::from_ref(&input)));
    let params = ImportParams {
        skip_invalid: Some(true),
        ..ImportParams::default()
    };
    let start = reset_peak();
    let imported = run_import(
        &db.store,
        &new_import_id(),
        vec![ImportFile {
            input: input.clone(),
            sha256: None,
        }],
        params,
        progress,
        None,
    )
    .await;
    report(
        "import",
        peak_growth(start),
        BOMB_PEAK_BYTES,
        format!(
            "{}, {} rows, message {:?}, errors {:?}",
            imported.status.as_str(),
            imported.rows_stored,
            imported.message,
            imported.errors
        ),
    );
    let cleanly = match imported.status {
        ImportStatus::Completed => {
            imported.rows_stored == bomb.records_that_fit
                && imported.errors.iter().all(|e| names_file(e))
                && imported.errors.iter().any(|e| names_limit(e))
        }
        ImportStatus::Failed => {
            bomb.records_that_fit == 0 && imported.message.as_deref().is_some_and(names_limit)
        }
        _ => false,
    };
    if !cleanly {
        unclear.push(format!(
            "import: {} with {} rows: {:?} {:?}",
            imported.status.as_str(),
            imported.rows_stored,
            imported.message,
            imported.errors
        ));
    }
    db.cleanup().await;
    failures.extend(unclear);
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        bomb.label,
        failures.join("\n")
    );
}

#[tokio::test]
async fn bomb_eval_header_member_deflate() {
    check_bomb(eval_header_bomb(
        zip::CompressionMethod::Deflated,
        ".eval whose header.json deflates from 1 MB to 1 GiB",
    ))
    .await;
}

#[tokio::test]
async fn bomb_eval_header_member_zstd() {
    check_bomb(eval_header_bomb(
        zip::CompressionMethod::Zstd,
        ".eval whose header.json (zstd, method 93) inflates to 1 GiB",
    ))
    .await;
}

#[tokio::test]
async fn bomb_eval_sample_member_zstd() {
    check_bomb(Bomb {
        label: ".eval with a zstd sample of 1 GiB beside a good one",
        name: "log.eval",
        bytes: eval_archive(
            zip::CompressionMethod::Zstd,
            &[
                (
                    "_journal/start.json",
                    b"{\"version\":2,\"eval\":{}}",
                    0,
                    b"",
                ),
                ("samples/1_epoch_1.json", SAMPLE_BOMB, GIB, b"\"}"),
                ("samples/2_epoch_1.json", SAMPLE_OK, 0, b""),
                ("header.json", HEADER_OK, 0, b""),
            ],
        ),
        format: Format::named("inspect"),
        records_that_fit: 1,
        limit: "128 MiB",
    })
    .await;
}

#[tokio::test]
async fn bomb_eval_sample_member_deflate() {
    check_bomb(Bomb {
        label: ".eval with a deflated sample of 1 GiB beside a good one",
        name: "log.eval",
        bytes: eval_archive(
            zip::CompressionMethod::Deflated,
            &[
                ("samples/1_epoch_1.json", SAMPLE_BOMB, GIB, b"\"}"),
                ("samples/2_epoch_1.json", SAMPLE_OK, 0, b""),
                ("header.json", HEADER_OK, 0, b""),
            ],
        ),
        format: Format::named("inspect"),
        records_that_fit: 1,
        limit: "128 MiB",
    })
    .await;
}

/// Not one long string but a JSON tree: `[0,0,0,...]` costs 32 bytes of `serde_json::Value` per
/// two bytes of text, so 1 GiB of it would be 16 GiB of tree.
#[tokio::test]
async fn bomb_eval_sample_member_json_tree() {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let zstd = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Zstd)
        .compression_level(Some(1))
        .large_file(true);
    zip.start_file("header.json", zstd).unwrap();
    zip.write_all(HEADER_OK).unwrap();
    zip.start_file("samples/1_epoch_1.json", zstd).unwrap();
    zip.write_all(br#"{"id":1,"epoch":1,"input":["#).unwrap();
    let zeros = "0,".repeat(1 << 19);
    for _ in 0..(GIB >> 20) {
        zip.write_all(zeros.as_bytes()).unwrap();
    }
    zip.write_all(b"0]}").unwrap();
    zip.start_file("samples/2_epoch_1.json", zstd).unwrap();
    zip.write_all(SAMPLE_OK).unwrap();
    check_bomb(Bomb {
        label: ".eval with a sample whose input is 1 GiB of [0,0,...]",
        name: "log.eval",
        bytes: zip.finish().unwrap().into_inner(),
        format: Format::named("inspect"),
        records_that_fit: 1,
        limit: "128 MiB",
    })
    .await;
}

#[tokio::test]
async fn bomb_inspect_json_log_zstd() {
    check_bomb(Bomb {
        label: "Inspect .json log, zstd, whose eval.model is 1 GiB",
        name: "log.json",
        bytes: zstd_of(HEADER_BOMB, b'a', GIB, br#""},"samples":[]}"#),
        format: Format::named("inspect"),
        records_that_fit: 0,
        limit: "64 MiB",
    })
    .await;
}

#[tokio::test]
async fn bomb_gzip_upload() {
    check_bomb(Bomb {
        label: "gzip JSON Lines upload with a 1 GiB line",
        name: "rollouts.jsonl.gz",
        bytes: gzip_of(
            NATIVE_BOMB,
            b'a',
            GIB,
            &[b"\"}\n".as_slice(), NATIVE_OK].concat(),
        ),
        format: Format::named("native"),
        records_that_fit: 1,
        limit: "256 MiB",
    })
    .await;
}

#[tokio::test]
async fn bomb_zstd_upload() {
    check_bomb(Bomb {
        label: "zstd JSON Lines upload with a 4 GiB line",
        name: "rollouts.jsonl.zst",
        bytes: zstd_of(
            NATIVE_BOMB,
            b'a',
            4 * GIB,
            &[b"\"}\n".as_slice(), NATIVE_OK].concat(),
        ),
        format: Format::named("native"),
        // The line after 4 GiB is past what the file may inflate to.
        records_that_fit: 0,
        limit: "2048 times",
    })
    .await;
}

// Parquet files are written here byte by byte (footer and page headers in thrift's compact
// protocol), so that they can declare what no writer would.

/// Thrift compact protocol: just what these files need.
struct Thrift {
    out: Vec<u8>,
    /// The last field id of each open struct (ids are written as deltas).
    last: Vec<i16>,
}

const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_STRUCT: u8 = 12;

impl Thrift {
    fn new() -> Self {
        Thrift {
            out: Vec::new(),
            last: vec![0],
        }
    }
    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.out.push(byte);
                return;
            }
            self.out.push(byte | 0x80);
        }
    }
    fn field(&mut self, id: i16, ty: u8) {
        let last = self.last.last_mut().unwrap();
        let delta = id - *last;
        *last = id;
        if (1..=15).contains(&delta) {
            self.out.push(((delta as u8) << 4) | ty);
        } else {
            self.out.push(ty);
            self.varint(((id << 1) ^ (id >> 15)) as u16 as u64);
        }
    }
    fn i32(&mut self, id: i16, v: i32) -> &mut Self {
        self.field(id, T_I32);
        self.varint(((v << 1) ^ (v >> 31)) as u32 as u64);
        self
    }
    fn i64(&mut self, id: i16, v: i64) -> &mut Self {
        self.field(id, T_I64);
        self.varint(((v << 1) ^ (v >> 63)) as u64);
        self
    }
    fn binary(&mut self, id: i16, bytes: &[u8]) -> &mut Self {
        self.field(id, T_BINARY);
        self.varint(bytes.len() as u64);
        self.out.extend_from_slice(bytes);
        self
    }
    fn begin(&mut self, id: i16) -> &mut Self {
        self.field(id, T_STRUCT);
        self.last.push(0);
        self
    }
    fn end(&mut self) -> &mut Self {
        self.out.push(0);
        self.last.pop();
        self
    }
    fn list(&mut self, id: i16, element: u8, n: usize) -> &mut Self {
        self.field(id, T_LIST);
        if n < 15 {
            self.out.push(((n as u8) << 4) | element);
        } else {
            self.out.push(0xf0 | element);
            self.varint(n as u64);
        }
        self
    }
    /// A struct as an element of a list (no field header).
    fn item(&mut self) -> &mut Self {
        self.last.push(0);
        self
    }
    fn item_i32(&mut self, v: i32) -> &mut Self {
        self.varint(((v << 1) ^ (v >> 31)) as u32 as u64);
        self
    }
    fn item_binary(&mut self, bytes: &[u8]) -> &mut Self {
        self.varint(bytes.len() as u64);
        self.out.extend_from_slice(bytes);
        self
    }
}

const CODEC_NONE: i32 = 0;
const CODEC_ZSTD: i32 = 6;
const PAGE_DATA: i32 = 0;
const PAGE_DICTIONARY: i32 = 2;
const ENC_PLAIN: i32 = 0;
const ENC_RLE: i32 = 3;
const ENC_RLE_DICTIONARY: i32 = 8;

/// One page as stored: its header (with what it declares) and body.
struct Page {
    kind: i32,
    /// The declared uncompressed size; `None`: the true one.
    declared_size: Option<i32>,
    /// The declared compressed size; `None`: the true one.
    declared_compressed: Option<i32>,
    num_values: i32,
    encoding: i32,
    /// Uncompressed body.
    body: Vec<u8>,
}

impl Page {
    fn plain(values: &[&[u8]]) -> Page {
        let mut body = Vec::new();
        for v in values {
            body.extend_from_slice(&(v.len() as u32).to_le_bytes());
            body.extend_from_slice(v);
        }
        Page {
            kind: PAGE_DATA,
            declared_size: None,
            declared_compressed: None,
            num_values: values.len() as i32,
            encoding: ENC_PLAIN,
            body,
        }
    }
    fn stored(&self, codec: i32) -> Vec<u8> {
        let body = if codec == CODEC_ZSTD {
            zstd::encode_all(&self.body[..], 19).unwrap()
        } else {
            self.body.clone()
        };
        let mut t = Thrift::new();
        t.i32(1, self.kind)
            .i32(2, self.declared_size.unwrap_or(self.body.len() as i32))
            .i32(3, self.declared_compressed.unwrap_or(body.len() as i32));
        if self.kind == PAGE_DICTIONARY {
            t.begin(7).i32(1, self.num_values).i32(2, ENC_PLAIN).end();
        } else {
            t.begin(5)
                .i32(1, self.num_values)
                .i32(2, self.encoding)
                .i32(3, ENC_RLE)
                .i32(4, ENC_RLE)
                .end();
        }
        t.out.push(0);
        [t.out, body].concat()
    }
}

/// One BYTE_ARRAY (UTF8) column of the file's single row group.
struct Column {
    name: &'static str,
    repeated: bool,
    codec: i32,
    pages: Vec<Page>,
    /// Declared compressed size of the chunk; `None`: the true one.
    declared_chunk: Option<i64>,
}

fn parquet_file(columns: &[Column], rows: i64) -> Vec<u8> {
    let mut file = b"PAR1".to_vec();
    let mut chunks = Vec::new();
    for c in columns {
        let start = file.len() as i64;
        let (mut dictionary_at, mut data_at) = (None, None);
        let (mut values, mut uncompressed) = (0i64, 0i64);
        for page in &c.pages {
            let at = Some(file.len() as i64);
            if page.kind == PAGE_DICTIONARY {
                dictionary_at = at;
            } else {
                data_at = data_at.or(at);
                values += page.num_values as i64;
            }
            uncompressed += page.body.len() as i64;
            file.extend_from_slice(&page.stored(c.codec));
        }
        let compressed = file.len() as i64 - start;
        let data_at = data_at.expect("a column has a data page");
        chunks.push((
            start,
            dictionary_at,
            data_at,
            values,
            uncompressed,
            compressed,
        ));
    }
    let mut t = Thrift::new();
    t.i32(1, 1).list(2, T_STRUCT, 1 + columns.len());
    t.item()
        .binary(4, b"schema")
        .i32(5, columns.len() as i32)
        .end();
    for c in columns {
        t.item()
            .i32(1, 6)
            .i32(3, if c.repeated { 2 } else { 0 })
            .binary(4, c.name.as_bytes())
            .i32(6, 0)
            .end();
    }
    t.i64(3, rows).list(4, T_STRUCT, 1).item();
    t.list(1, T_STRUCT, columns.len());
    for (c, &(start, dictionary_at, data_at, values, uncompressed, compressed)) in
        columns.iter().zip(&chunks)
    {
        t.item().i64(2, start).begin(3).i32(1, 6).list(2, T_I32, 3);
        t.item_i32(ENC_PLAIN)
            .item_i32(ENC_RLE)
            .item_i32(ENC_RLE_DICTIONARY);
        t.list(3, T_BINARY, 1).item_binary(c.name.as_bytes());
        t.i32(4, c.codec)
            .i64(5, values)
            .i64(6, uncompressed)
            .i64(7, c.declared_chunk.unwrap_or(compressed))
            .i64(9, data_at);
        if let Some(at) = dictionary_at {
            t.i64(11, at);
        }
        t.end().end();
    }
    let total: i64 = chunks.iter().map(|c| c.4).sum();
    t.i64(2, total).i64(3, rows).end();
    t.out.push(0);
    file.extend_from_slice(&t.out);
    file.extend_from_slice(&(t.out.len() as u32).to_le_bytes());
    file.extend_from_slice(b"PAR1");
    file
}

/// A run of the RLE/bit-packed hybrid encoding: `count` times `value` (one byte wide).
fn rle_run(out: &mut Vec<u8>, count: u64, value: u8) {
    let mut header = count << 1;
    loop {
        let byte = (header & 0x7f) as u8;
        header >>= 7;
        if header == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.push(value);
}

const LIGHTEVAL_NAME: &str = "details_bomb|0_2026-12-02T12-00-00.000000.parquet";

/// A lighteval details file of the 0.5-0.10 layout (`example`, `predictions`): `example` one
/// plain value per row, `predictions` as given.
fn lighteval_bomb(
    label: &'static str,
    predictions: Column,
    rows: i64,
    limit: &'static str,
) -> Bomb {
    let example = Column {
        name: "example",
        repeated: false,
        codec: CODEC_NONE,
        pages: vec![Page::plain(&[b"What is 1+1?"])],
        declared_chunk: None,
    };
    Bomb {
        label,
        name: LIGHTEVAL_NAME,
        bytes: parquet_file(&[example, predictions], rows),
        format: Format::named("lighteval"),
        records_that_fit: 0,
        limit,
    }
}

/// The parquet bombs also go to dataset uploads (the same rows reader), measured.
fn check_dataset_upload(label: &str, bytes: &[u8]) {
    let _serial = serial();
    let fields = caplens_server::evals::datasets::DatasetFields {
        prompt: Some("example".into()),
        answer: Some("predictions".into()),
        ..Default::default()
    };
    let start = reset_peak();
    let parsed = caplens_server::evals::datasets::parse("bomb.parquet", bytes, &fields);
    let peak = peak_growth(start);
    let outcome = parsed.as_ref().map(|p| p.len()).map_err(|e| e.to_string());
    eprintln!(
        "bomb {label}: dataset upload: peak +{:.1} MB; {outcome:?}",
        peak as f64 / 1e6
    );
    assert!(
        peak < BOMB_PEAK_BYTES,
        "{label}: the dataset upload allocated {peak} bytes"
    );
    assert!(
        outcome
            .as_ref()
            .is_err_and(|e| e.starts_with("bomb.parquet")),
        "{label}: {outcome:?}"
    );
}

#[tokio::test]
async fn bomb_parquet_page_declaring_2_gib() {
    let mut page = Page::plain(&[b"2"]);
    page.declared_size = Some(i32::MAX);
    let bomb = lighteval_bomb(
        "parquet page (zstd) declaring 2 GiB uncompressed",
        Column {
            name: "predictions",
            repeated: false,
            codec: CODEC_ZSTD,
            pages: vec![page],
            declared_chunk: None,
        },
        1,
        "up to 64 MiB",
    );
    check_dataset_upload(bomb.label, &bomb.bytes);
    check_bomb(bomb).await;
}

#[tokio::test]
async fn bomb_parquet_column_chunk_past_the_end() {
    let mut page = Page::plain(&[b"2"]);
    page.declared_compressed = Some(i32::MAX - 64);
    let bomb = lighteval_bomb(
        "parquet column chunk and page declaring 2 GiB past the end of the file",
        Column {
            name: "predictions",
            repeated: false,
            codec: CODEC_NONE,
            pages: vec![page],
            declared_chunk: Some(i32::MAX as i64),
        },
        1,
        "past the end of the file",
    );
    check_dataset_upload(bomb.label, &bomb.bytes);
    check_bomb(bomb).await;
}

#[tokio::test]
async fn bomb_parquet_dictionary_of_2_billion_values() {
    let mut dictionary = Page::plain(&[b"2"]);
    dictionary.kind = PAGE_DICTIONARY;
    dictionary.num_values = i32::MAX;
    let mut indices = vec![1u8];
    rle_run(&mut indices, 1, 0);
    let data = Page {
        kind: PAGE_DATA,
        declared_size: None,
        declared_compressed: None,
        num_values: 1,
        encoding: ENC_RLE_DICTIONARY,
        body: indices,
    };
    let bomb = lighteval_bomb(
        "parquet dictionary page declaring 2^31 values",
        Column {
            name: "predictions",
            repeated: false,
            codec: CODEC_NONE,
            pages: vec![dictionary, data],
            declared_chunk: None,
        },
        1,
        "2097152 values",
    );
    check_dataset_upload(bomb.label, &bomb.bytes);
    check_bomb(bomb).await;
}

/// A lighteval details file (`example`, `predictions`) of one row whose `predictions` list
/// repeats one dictionary entry of `entry` bytes `n` times: written by the parquet crate's own
/// writer (zstd, dictionary encoding), a dictionary page of one entry and a few bytes of
/// levels and indices, which the row reader makes `n` copies of the entry.
fn row_repeating_a_dictionary_entry(entry: usize, n: usize) -> Vec<u8> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::file::writer::SerializedFileWriter;
    let schema = parquet::schema::parser::parse_message_type(
        "message schema { required binary example (UTF8); repeated binary predictions (UTF8); }",
    )
    .unwrap();
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(Default::default()))
        .set_dictionary_page_size_limit(2 * entry + 1024)
        .set_statistics_enabled(EnabledStatistics::None)
        .build();
    let mut file = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut file, Arc::new(schema), Arc::new(properties)).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut example = group.next_column().unwrap().unwrap();
    example
        .typed::<ByteArrayType>()
        .write_batch(&[ByteArray::from("What is 1+1?")], None, None)
        .unwrap();
    example.close().unwrap();
    let mut predictions = group.next_column().unwrap().unwrap();
    let values = vec![ByteArray::from(vec![b'a'; entry]); n];
    let definition = vec![1i16; n];
    let mut repetition = vec![1i16; n];
    repetition[0] = 0;
    predictions
        .typed::<ByteArrayType>()
        .write_batch(&values, Some(&definition), Some(&repetition))
        .unwrap();
    predictions.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
    file
}

/// One row whose list repeats a 1 MiB dictionary entry 4,096 times: a few hundred bytes of
/// indices that the row reader would make 4 GiB of strings.
#[tokio::test]
async fn bomb_parquet_row_repeating_a_dictionary_entry() {
    let bomb = Bomb {
        label: "parquet row repeating a 1 MiB dictionary entry 4096 times",
        name: LIGHTEVAL_NAME,
        bytes: row_repeating_a_dictionary_entry(1 << 20, 4096),
        format: Format::named("lighteval"),
        records_that_fit: 0,
        limit: "2048 times",
    };
    check_dataset_upload(bomb.label, &bomb.bytes);
    check_bomb(bomb).await;
}

#[tokio::test]
async fn bomb_parquet_row_group_declaring_a_trillion_rows() {
    let bomb = lighteval_bomb(
        "parquet row group declaring 2^40 rows",
        Column {
            name: "predictions",
            repeated: false,
            codec: CODEC_NONE,
            pages: vec![Page::plain(&[b"2"])],
            declared_chunk: None,
        },
        1 << 40,
        "16777216 rows",
    );
    check_dataset_upload(bomb.label, &bomb.bytes);
    check_bomb(bomb).await;
}

/// A footer whose list of row groups declares four million of them in 4 MB (each an empty
/// struct, one byte): a reader that sizes the list by its declaration allocates four million row
/// groups' metadata (about 100 bytes each) before it finds the first one invalid. Not
/// compressed, so larger on disk than the other bombs.
#[tokio::test]
async fn bomb_parquet_footer_declaring_four_million_row_groups() {
    let n = 4_000_000;
    let mut t = Thrift::new();
    t.i32(1, 1).list(2, T_STRUCT, 2);
    t.item().binary(4, b"schema").i32(5, 1).end();
    t.item()
        .i32(1, 6)
        .i32(3, 0)
        .binary(4, b"predictions")
        .i32(6, 0)
        .end();
    t.i64(3, 1).list(4, T_STRUCT, n);
    t.out.extend(std::iter::repeat_n(0u8, n));
    t.out.push(0);
    let mut file = b"PAR1".to_vec();
    file.extend_from_slice(&t.out);
    file.extend_from_slice(&(t.out.len() as u32).to_le_bytes());
    file.extend_from_slice(b"PAR1");
    let bomb = Bomb {
        label: "parquet footer declaring four million row groups",
        name: LIGHTEVAL_NAME,
        bytes: file,
        format: Format::named("lighteval"),
        records_that_fit: 0,
        limit: "footers up to 2 MiB",
    };
    check_dataset_upload(bomb.label, &bomb.bytes);
    check_bomb(bomb).await;
}

/// Below the file's inflation ratio, a row's own limit: one row whose list repeats a 1 MiB
/// dictionary entry 200 times (200 MiB of strings) is refused before the row reader builds it.
#[test]
fn a_parquet_row_over_the_row_limit_is_refused_before_it_is_built() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LIGHTEVAL_NAME);
    std::fs::write(&path, row_repeating_a_dictionary_entry(1 << 20, 200)).unwrap();
    let input = InputFile::new(&path, LIGHTEVAL_NAME);
    let start = reset_peak();
    let mut sink = CountingSink::new(false);
    let result = Format::named("lighteval")
        .importer()
        .read(&input, &mut sink);
    let peak = peak_growth(start);
    let Err(ReadStop::Input(e)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(
        e.to_string(),
        format!("{LIGHTEVAL_NAME}:1: row 1: its column \"predictions\" would take more than 128 MiB in memory (a list of many values, or of long dictionary entries repeated); caplens reads parquet rows up to that size")
    );
    assert!(peak < 64 << 20, "the refused row allocated {peak} bytes");
}

/// A dataset upload is not compressed, but JSON is a tree: 32 MB of `[0,0,...]` in a field
/// caplens does not read is a gigabyte of `serde_json::Value`.
#[test]
fn bomb_dataset_json_lines_tree() {
    let _serial = serial();
    let mut body = Vec::new();
    for i in 0..4 {
        body.extend_from_slice(
            format!(r#"{{"id":{i},"problem":"1+1?","answer":"2","noise":["#).as_bytes(),
        );
        body.extend_from_slice("0,".repeat(4 << 20).as_bytes());
        body.extend_from_slice(b"0]}\n");
    }
    let start = reset_peak();
    let parsed = caplens_server::evals::datasets::parse(
        "tree.jsonl",
        &body,
        &caplens_server::evals::datasets::DatasetFields::default(),
    );
    let peak = peak_growth(start);
    eprintln!(
        "bomb dataset JSON Lines with 32 MB of [0,0,...]: peak +{:.1} MB; {:?}",
        peak as f64 / 1e6,
        parsed.as_ref().map(|p| p.len()).map_err(|e| e.to_string())
    );
    assert_eq!(parsed.unwrap().len(), 4);
    assert!(
        peak < BOMB_PEAK_BYTES / 4,
        "the upload allocated {peak} bytes"
    );
}

/// Writes the fuzz targets' bomb seeds (server/fuzz/seeds/, committed; docs/fuzzing.md): the
/// bombs above, small enough for the targets' `-max_len` (so a line of 300 MiB rather than 4
/// GiB). Run by hand when the bombs change:
/// `cargo test -p caplens-server --test hostile_inputs write_fuzz_seeds -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = |target: &str, name: &str, bytes: &[u8], max_len: usize| {
        assert!(
            bytes.len() <= max_len,
            "{target}/{name}: {} bytes",
            bytes.len()
        );
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    const LINE_TARGETS: usize = 16 << 10;
    const ARCHIVE_TARGETS: usize = 64 << 10;
    let long_line = 300 << 20;
    let zstd_line = zstd_of(
        NATIVE_BOMB,
        b'a',
        long_line,
        &[b"\"}\n".as_slice(), NATIVE_OK].concat(),
    );
    let gzip_line = gzip_of(
        NATIVE_BOMB,
        b'a',
        15 << 20,
        &[b"\"}\n".as_slice(), NATIVE_OK].concat(),
    );
    for target in ["native", "lm_eval", "qwen_math", "verl", "openai", "detect"] {
        write(
            target,
            "bomb-line-300MiB.jsonl.zst",
            &zstd_line,
            LINE_TARGETS,
        );
        write(target, "bomb-line-15MiB.jsonl.gz", &gzip_line, LINE_TARGETS);
    }
    let zstd = zip::CompressionMethod::Zstd;
    let header = eval_archive(zstd, &[("header.json", HEADER_BOMB, 300 << 20, b"\"}}")]);
    let sample = eval_archive(
        zstd,
        &[
            ("samples/1_epoch_1.json", SAMPLE_BOMB, 300 << 20, b"\"}"),
            ("samples/2_epoch_1.json", SAMPLE_OK, 0, b""),
            ("header.json", HEADER_OK, 0, b""),
        ],
    );
    let json = zstd_of(HEADER_BOMB, b'a', 300 << 20, br#""},"samples":[]}"#);
    for target in ["inspect", "detect"] {
        write(target, "bomb-header-300MiB.eval", &header, ARCHIVE_TARGETS);
        write(target, "bomb-sample-300MiB.eval", &sample, ARCHIVE_TARGETS);
        write(
            target,
            "bomb-header-300MiB.json.zst",
            &json,
            ARCHIVE_TARGETS,
        );
    }
    let mut huge_page = Page::plain(&[b"2"]);
    huge_page.declared_size = Some(i32::MAX);
    let column = |pages: Vec<Page>, repeated: bool, codec: i32| Column {
        name: "predictions",
        repeated,
        codec,
        pages,
        declared_chunk: None,
    };
    let mut dictionary = Page::plain(&[b"2"]);
    dictionary.kind = PAGE_DICTIONARY;
    dictionary.num_values = i32::MAX;
    let mut indices = vec![1u8];
    rle_run(&mut indices, 1, 0);
    let indices = Page {
        kind: PAGE_DATA,
        declared_size: None,
        declared_compressed: None,
        num_values: 1,
        encoding: ENC_RLE_DICTIONARY,
        body: indices,
    };
    for (name, predictions, rows) in [
        (
            "bomb-page-2GiB.parquet",
            column(vec![huge_page], false, CODEC_ZSTD),
            1,
        ),
        (
            "bomb-dictionary-2pow31-values.parquet",
            column(vec![dictionary, indices], false, CODEC_NONE),
            1,
        ),
        (
            "bomb-2pow40-rows.parquet",
            column(vec![Page::plain(&[b"2"])], false, CODEC_NONE),
            1 << 40,
        ),
    ] {
        let bomb = lighteval_bomb("seed", predictions, rows, "");
        write("lighteval", name, &bomb.bytes, ARCHIVE_TARGETS);
    }
    write(
        "lighteval",
        "bomb-row-of-4096-MiB-entries.parquet",
        &row_repeating_a_dictionary_entry(1 << 20, 4096),
        ARCHIVE_TARGETS,
    );
}
