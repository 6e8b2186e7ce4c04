//! `reference_answer` never panics or hangs, returns a slice of its input and is idempotent; and
//! `verify` against a whole reference grades like `verify` against its reduced answer.
#![no_main]
use caplens_analysis::verifier::{reference_answer, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Split at the first tab: a prediction, then the reference text.
    let (pred, reference) = text.split_once('\t').unwrap_or(("42", &text));
    let answer = reference_answer(reference);
    assert!(reference.contains(answer));
    assert_eq!(
        reference_answer(answer),
        answer,
        "not idempotent on {reference:?}"
    );
    // Byte-identical inputs are equal before any reduction, so they are the one exception.
    if pred.trim() != reference.trim() {
        let reduced = reference_answer(reference.trim()).trim();
        assert_eq!(
            verify(pred, reference),
            verify(pred, reduced),
            "{pred:?} vs {reference:?}"
        );
    }
});
