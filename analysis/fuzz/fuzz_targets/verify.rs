//! `verify` never panics or hangs (libFuzzer's -timeout flags a slow input), both ways round.
#![no_main]
use caplens_analysis::verifier::{verify, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Split at the first tab, as in `caplens verify --tsv`.
    let (pred, reference) = text.split_once('\t').unwrap_or((&text, "42"));
    let forward = verify(pred, reference);
    let _ = verify(reference, pred);
    // Byte-identical non-blank answers are always equal; the fuzzer checks nothing else breaks it.
    if pred == reference && !pred.trim().is_empty() {
        assert_eq!(forward, Verdict::Equal);
    }
});
