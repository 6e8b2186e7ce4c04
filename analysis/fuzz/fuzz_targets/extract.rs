//! Extraction and normalisation never panic and normalisation is idempotent on any UTF-8.
#![no_main]
use caplens_analysis::verifier::{extract_answer, normalize_answer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Lossy conversion puts U+FFFD at invalid UTF-8 boundaries: multi-byte chars everywhere.
    let text = String::from_utf8_lossy(data);
    if let Some(found) = extract_answer(&text) {
        assert!(text.contains(found.answer.as_str()) || found.rule.is_fallback());
    }
    let once = normalize_answer(&text);
    assert_eq!(normalize_answer(&once), once);
});
