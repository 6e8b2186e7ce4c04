#![no_main]
//! The qwen-math importer on arbitrary bytes (docs/fuzzing.md).
use caplens_server::ingest::Format;
use libfuzzer_sys::fuzz_target;

#[path = "harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run_importer(Format::QwenMath, "test_qwen25-math-cot_-1_seed0_t0.6_s0_e-1.jsonl", data);
});
