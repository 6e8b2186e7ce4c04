#![no_main]
//! The inspect importer on arbitrary bytes (docs/fuzzing.md). A zip is named `.eval` and
//! anything else `.json`, the way Inspect names its logs.
use caplens_server::ingest::Format;
use libfuzzer_sys::fuzz_target;

#[path = "harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    let name = if data.starts_with(b"PK") { "log.eval" } else { "log.json" };
    harness::run_importer(Format::Inspect, name, data);
});
