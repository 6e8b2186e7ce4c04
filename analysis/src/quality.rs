//! Response quality checks (notes items 9 and 17): `\boxed{` count and format violations,
//! language mixing, 3-gram redundancy, digit presence, truncation after the first `\boxed{...}`.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// The marker whose count decides a format violation (item 9).
pub const BOXED_MARKER: &str = "\\boxed{";

/// Responses whose 3-gram redundancy exceeds this are dropped by the RFT rule filter (item 17).
pub const REDUNDANCY_LIMIT: f64 = 0.31;

/// Number of (non-overlapping) occurrences of `\boxed{` in a response.
pub fn boxed_count(response: &str) -> usize {
    response.matches(BOXED_MARKER).count()
}

/// Item 9: a format violation is a response in which `\boxed{` occurs zero times or more than once.
pub fn is_format_violation(response: &str) -> bool {
    boxed_count(response) != 1
}

/// Whether a character is a CJK unified ideograph. Ranges (Unicode 15.1 blocks):
/// U+3400-U+4DBF (Extension A), U+4E00-U+9FFF (the main block), and all of planes 2 and 3,
/// U+20000-U+3FFFF (Extensions B to I, and the compatibility supplement that lives among them).
/// Not counted: kana, hangul, CJK punctuation, the BMP compatibility block U+F900-U+FAFF.
pub fn is_cjk_ideograph(ch: char) -> bool {
    matches!(ch as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0x20000..=0x3FFFF)
}

/// Item 9: language mixing = the response contains at least one CJK unified ideograph.
pub fn has_language_mixing(response: &str) -> bool {
    // Most responses are ASCII: a vectorised byte check spares decoding every character.
    !response.is_ascii() && response.chars().any(is_cjk_ideograph)
}

/// Item 17: 3-gram redundancy = 1 - (distinct word 3-grams / all word 3-grams), words being the
/// whitespace-separated pieces. A text with fewer than 3 words has no 3-gram, hence nothing
/// repeated: its redundancy is defined as 0. The value is in [0, 1).
pub fn trigram_redundancy(text: &str) -> f64 {
    // Words are compared through 64-bit fingerprints (two different words of one response
    // collide with probability about 2^-64): the set then holds integers, not string triples.
    let fingerprint = |w: &str| {
        let mut h = WordHasher::default();
        h.write(w.as_bytes());
        h.finish()
    };
    let words: Vec<u64> = if text.is_ascii() {
        // Same pieces as split_whitespace on ASCII text, without decoding characters.
        text.split_ascii_whitespace().map(fingerprint).collect()
    } else {
        text.split_whitespace().map(fingerprint).collect()
    };
    if words.len() < 3 {
        return 0.0;
    }
    let total = words.len() - 2;
    let mut distinct: HashSet<(u64, u64, u64), BuildHasherDefault<WordHasher>> =
        HashSet::with_capacity_and_hasher(total, Default::default());
    distinct.extend(words.windows(3).map(|w| (w[0], w[1], w[2])));
    1.0 - distinct.len() as f64 / total as f64
}

/// A fast multiplicative hasher for the 3-gram set: the words come from one response, so
/// SipHash's flooding resistance buys nothing, and hashing was a visible share of import time.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Item 17: redundant when the 3-gram redundancy exceeds [`REDUNDANCY_LIMIT`] (0.31).
pub fn is_redundant(text: &str) -> bool {
    trigram_redundancy(text) > REDUNDANCY_LIMIT
}

/// Item 17: the text contains at least one ASCII digit 0-9.
pub fn has_digit(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit())
}

/// The quality checks of one response, computed once and shared by the stored quality flags
/// and the summary rates (items 9 and 17).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QualityChecks {
    pub format_violation: bool,
    pub language_mixing: bool,
    pub redundant: bool,
    pub no_digit: bool,
}

impl QualityChecks {
    pub fn of(response: &str) -> Self {
        QualityChecks {
            format_violation: is_format_violation(response),
            language_mixing: has_language_mixing(response),
            redundant: is_redundant(response),
            no_digit: !has_digit(response),
        }
    }
}

/// Item 17: the response cut right after the closing brace of its first `\boxed{...}`
/// (braces balanced). `None` when there is no `\boxed{` or its braces never close.
pub fn truncate_after_first_boxed(response: &str) -> Option<&str> {
    let open = response.find(BOXED_MARKER)? + BOXED_MARKER.len() - 1; // the `{`
    let content = crate::verifier::braced(response, open)?;
    Some(&response[..open + content.len() + 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn format_violations() {
        assert!(is_format_violation("no answer"));
        assert!(!is_format_violation("so \\boxed{4}."));
        assert!(is_format_violation("\\boxed{4} or \\boxed{5}"));
        assert!(is_format_violation("\\boxed 4")); // not the marker
        assert_eq!(boxed_count("\\boxed{\\boxed{1}}"), 2);
    }

    #[test]
    fn language_mixing_ranges() {
        assert!(has_language_mixing("答案是 4"));
        assert!(has_language_mixing("x\u{3400}")); // Extension A
        assert!(has_language_mixing("x\u{20000}")); // Extension B
        assert!(!has_language_mixing("カタカナ and 한국어 and 。"));
        assert!(!has_language_mixing("plain ASCII \\boxed{1}"));
    }

    #[test]
    fn redundancy_definition() {
        assert_eq!(trigram_redundancy(""), 0.0);
        assert_eq!(trigram_redundancy("two words"), 0.0);
        assert_eq!(trigram_redundancy("a b c d"), 0.0);
        // "a b c a b c": 3-grams abc bca cab abc -> 3 distinct of 4
        assert!((trigram_redundancy("a b c a b c") - 0.25).abs() < 1e-15);
        // whitespace of any kind separates words
        assert_eq!(
            trigram_redundancy("a\tb\nc  a b c"),
            trigram_redundancy("a b c a b c")
        );
        let looping = "wait let me check ".repeat(20);
        assert!(is_redundant(&looping));
        assert!(!is_redundant(
            "First we add 2 and 3 to get 5, so the answer is \\boxed{5}."
        ));
    }

    #[test]
    fn digits_and_truncation() {
        assert!(has_digit("x = 3"));
        assert!(!has_digit("no numbers here ٣")); // only ASCII digits count
        assert_eq!(
            truncate_after_first_boxed("so \\boxed{\\frac{1}{2}} then \\boxed{3}"),
            Some("so \\boxed{\\frac{1}{2}}")
        );
        assert_eq!(truncate_after_first_boxed("\\boxed{ {unclosed"), None);
        assert_eq!(truncate_after_first_boxed("nothing"), None);
        assert_eq!(
            truncate_after_first_boxed("é\\boxed{é}é"),
            Some("é\\boxed{é}")
        );
    }

    proptest! {
        #[test]
        fn prop_redundancy_in_unit_interval(words in proptest::collection::vec("[a-c]{1,2}", 0..40)) {
            let text = words.join(" ");
            let r = trigram_redundancy(&text);
            prop_assert!((0.0..1.0).contains(&r));
            // repeating a text with at least 3 words makes it strictly more redundant
            if words.len() >= 3 {
                let doubled = format!("{text} {text}");
                prop_assert!(trigram_redundancy(&doubled) > r);
            }
        }

        #[test]
        fn prop_truncation_is_prefix_ending_with_a_balanced_box(prefix in "[^\\\\]{0,20}", inner in "[a-z{}]{0,10}", suffix in ".{0,20}") {
            let text = format!("{prefix}\\boxed{{{inner}}}{suffix}");
            if let Some(cut) = truncate_after_first_boxed(&text) {
                prop_assert!(text.starts_with(cut));
                let ends_with_brace = cut.ends_with('}');
                prop_assert!(ends_with_brace);
                prop_assert_eq!(boxed_count(cut).min(1), 1);
                let after = &cut[cut.find(BOXED_MARKER).unwrap() + BOXED_MARKER.len() - 1..];
                let (opens, closes) = (after.matches('{').count(), after.matches('}').count());
                prop_assert_eq!(opens, closes);
            } else {
                // only possible when the inner braces leave the box unclosed to the end
                let tail = &text[prefix.len() + BOXED_MARKER.len()..];
                let mut depth = 1i64;
                for b in tail.bytes() { if b == b'{' { depth += 1 } else if b == b'}' { depth -= 1; if depth == 0 { break } } }
                prop_assert!(depth > 0);
            }
        }
    }
}
