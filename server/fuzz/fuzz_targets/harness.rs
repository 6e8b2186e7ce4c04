//! What every importer target does with one input: the bytes become a file (importers read
//! paths), then sniff, hints and read run on it with a lenient sink (skips every bad record)
//! and a strict one (stops at the first). Nothing may panic, hang or allocate without bound
//! (libFuzzer's -timeout and -rss_limit_mb catch the last two).

// The detect target uses only `input_file`.
#![allow(dead_code)]

use caplens_server::ingest::{
    importer, Format, InputError, InputFile, ReadStop, RecordSink, RolloutRecord, SourceInfo,
    SNIFF_BYTES,
};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Counts what an importer sends; stops at the first reject when `strict`.
pub struct CountingSink {
    pub strict: bool,
    pub records: u64,
    pub rejects: u64,
    pub sources: u64,
}

impl CountingSink {
    pub fn new(strict: bool) -> Self {
        CountingSink {
            strict,
            records: 0,
            rejects: 0,
            sources: 0,
        }
    }
}

impl RecordSink for CountingSink {
    fn source(&mut self, info: SourceInfo) -> Result<(), ReadStop> {
        let _ = info;
        self.sources += 1;
        Ok(())
    }

    fn record(&mut self, record: RolloutRecord) -> Result<(), ReadStop> {
        assert!(record.line >= 1, "records are numbered from 1: {record:?}");
        self.records += 1;
        Ok(())
    }

    fn reject(&mut self, error: InputError) -> Result<(), ReadStop> {
        // Every message names its file; rendering it must not panic either.
        assert!(error.to_string().starts_with(&error.file), "{error}");
        self.rejects += 1;
        if self.strict {
            Err(ReadStop::Input(error))
        } else {
            Ok(())
        }
    }
}

/// `data` as a file that importers see as `name` (errors and hints use the name, not the path),
/// stored at one path per process under /dev/shm (a tmpfs, so the write costs no disk I/O),
/// overwritten by each run and removed after it ([`remove`]).
pub fn input_file(name: &str, data: &[u8]) -> InputFile {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("caplens-fuzz-{}", std::process::id()))
    });
    std::fs::write(path, data).expect("write the fuzz input");
    InputFile::new(path, name)
}

/// Removes the file of [`input_file`], so that no run leaves one behind.
pub fn remove(input: &InputFile) {
    let _ = std::fs::remove_file(&input.path);
}

/// Runs `format`'s importer on `data` stored as `name`. A panic that leaves the importer aborts
/// (a crash for libFuzzer); one the importer catches itself (the parquet crate's, turned into an
/// error by `ingest::parquet_rows`) is printed and allowed.
pub fn run_importer(format: Format, name: &str, data: &[u8]) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    // libfuzzer-sys installs a hook that aborts on every panic, even a caught one; taking it
    // leaves Rust's default hook (print, then unwind).
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_every_way(format, name, data)
    }));
    if run.is_err() {
        std::process::abort();
    }
}

fn read_every_way(format: Format, name: &str, data: &[u8]) {
    let importer = importer(format);
    let _ = importer.sniff(name, &data[..data.len().min(SNIFF_BYTES)]);
    let input = input_file(name, data);
    let _ = importer.hints(&input);
    let mut lenient = CountingSink::new(false);
    let _ = importer.read(&input, &mut lenient);
    let mut strict = CountingSink::new(true);
    let _ = importer.read(&input, &mut strict);
    assert!(strict.rejects <= 1, "a read went on after the sink stopped it");
    assert!(
        strict.records <= lenient.records,
        "stopping at the first reject gave more records ({} > {})",
        strict.records,
        lenient.records
    );
    assert!(lenient.sources <= 1 && strict.sources <= 1, "source sent more than once");
    remove(&input);
}
