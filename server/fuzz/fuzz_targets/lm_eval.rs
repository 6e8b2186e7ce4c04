#![no_main]
//! The lm-eval importer on arbitrary bytes (docs/fuzzing.md).
use caplens_server::ingest::Format;
use libfuzzer_sys::fuzz_target;

#[path = "harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run_importer(Format::LmEval, "samples_aime24_2025-06-01T12-00-00.000000.jsonl", data);
});
