#![no_main]
//! Format detection on arbitrary bytes (docs/fuzzing.md): `detect_head` under the names
//! that change its answer (a neutral upload name, a .eval, a lighteval details name, a JSON
//! document name), and `detect` on the bytes as a file (decompression, the "what is this"
//! messages).
use caplens_server::ingest::{detect, detect_head, importer, SNIFF_BYTES};
use libfuzzer_sys::fuzz_target;

#[path = "harness.rs"]
mod harness;

const NAMES: [&str; 4] = [
    "upload",
    "log.eval",
    "details_aime24|0_2026-12-02T12-00-00.000000.parquet",
    "results_2026-12-02T12-29-34.363308.json",
];

fuzz_target!(|data: &[u8]| {
    let head = &data[..data.len().min(SNIFF_BYTES)];
    for name in NAMES {
        if let Some(format) = detect_head(name, head) {
            assert!(importer(format).sniff(name, head), "detect_head and sniff disagree");
        }
    }
    let input = harness::input_file("upload.jsonl", data);
    match detect(&input) {
        Ok(_) => {}
        Err(e) => assert!(e.to_string().starts_with("upload.jsonl"), "{e}"),
    }
    harness::remove(&input);
});
