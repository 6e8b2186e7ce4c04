#![no_main]
//! The native importer on arbitrary bytes (docs/fuzzing.md).
use caplens_server::ingest::Format;
use libfuzzer_sys::fuzz_target;

#[path = "harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run_importer(Format::Native, "rollouts.jsonl", data);
});
