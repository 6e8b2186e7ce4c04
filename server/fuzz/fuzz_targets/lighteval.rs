#![no_main]
//! The lighteval importer on arbitrary bytes (docs/fuzzing.md).
use caplens_server::ingest::Format;
use libfuzzer_sys::fuzz_target;

#[path = "harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run_importer(Format::Lighteval, "details_aime24|0_2026-12-02T12-00-00.000000.parquet", data);
});
