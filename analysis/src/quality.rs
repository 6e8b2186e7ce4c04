//! Response quality checks (notes items 9 and 17): `\boxed{` count and format violations,
//! language mixing, 3-gram redundancy, digit presence, truncation after the first `\boxed{...}`.

/// The marker whose count decides a format violation (item 9).
pub const BOXED_MARKER: &str = "\\boxed{";

/// Responses whose 3-gram redundancy exceeds this are dropped by the RFT rule filter (item 17).
pub const REDUNDANCY_LIMIT: f64 = 0.31;

/// Number of (non-overlapping) occurrences of `\boxed{` in a response.
pub fn boxed_count(response: &str) -> usize {
    // The marker's one backslash is its first byte, so matches cannot overlap, and a
    // vectorised scan for backslashes finds every candidate (this runs on every import row).
    let (hay, marker) = (response.as_bytes(), BOXED_MARKER.as_bytes());
    memchr::memchr_iter(b'\\', hay)
        .filter(|&at| hay[at..].starts_with(marker))
        .count()
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
    // Words are compared through 64-bit fingerprints, and a 3-gram through one 64-bit key made
    // from its three fingerprints (two different 3-grams of one response collide with
    // probability about 2^-64): the distinct ones are counted in a small open-addressing
    // table of integers. This check runs on every imported response, hence the care.
    let mut words = Vec::with_capacity(text.len() / 4 + 1);
    if text.is_ascii() {
        ascii_word_fingerprints(text.as_bytes(), &mut words);
    } else {
        words.extend(
            text.split_whitespace()
                .map(|w| word_fingerprint(w.as_bytes(), 0, w.len())),
        );
    }
    if words.len() < 3 {
        return 0.0;
    }
    let total = words.len() - 2;
    let keys = words.windows(3).map(|w| {
        w[0].wrapping_mul(TRIGRAM_K1) ^ w[1].wrapping_mul(TRIGRAM_K2).rotate_left(29) ^ w[2]
    });
    1.0 - count_distinct(keys, total) as f64 / total as f64
}

const TRIGRAM_K1: u64 = 0x9e37_79b9_7f4a_7c15;
const TRIGRAM_K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// The fingerprints of the words of an ASCII text, split as `split_ascii_whitespace` splits
/// (space, tab, line feed, form feed, carriage return). Whitespace is found 16 bytes at a
/// time as a bit mask, and words are the runs of clear bits: no branch per byte.
fn ascii_word_fingerprints(bytes: &[u8], out: &mut Vec<u64>) {
    let mut word_start: Option<usize> = None;
    let mut base = 0;
    while base < bytes.len() {
        let len = (bytes.len() - base).min(16);
        // Bytes past the end count as whitespace, so that a last word ends.
        let ws = whitespace_mask(&bytes[base..base + len]) | (!0u32 << len);
        let mut edges = ws ^ ((ws << 1) | word_start.is_none() as u32);
        edges &= 0xffff;
        // Each set bit of `edges` is a word's first byte (clear bit, set before it) or the
        // byte just past its last one (set bit, clear before it); they alternate.
        while edges != 0 {
            let at = base + edges.trailing_zeros() as usize;
            match word_start.take() {
                None => word_start = Some(at),
                Some(start) => out.push(word_fingerprint(bytes, start, at)),
            }
            edges &= edges - 1;
        }
        base += len;
    }
    if let Some(start) = word_start {
        out.push(word_fingerprint(bytes, start, bytes.len()));
    }
}

/// Bit i set when `chunk[i]` (at most 16 bytes) is ASCII whitespace.
fn whitespace_mask(chunk: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if chunk.len() == 16 {
        // SSE2 is part of x86-64: no run-time detection is needed.
        use std::arch::x86_64::*;
        // SAFETY: the load reads exactly the 16 bytes of `chunk` (unaligned load); the other
        // intrinsics only compute on registers.
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr() as *const __m128i);
            let eq = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
            let ws = _mm_or_si128(
                _mm_or_si128(eq(b' '), eq(b'\n')),
                _mm_or_si128(_mm_or_si128(eq(b'\t'), eq(b'\r')), eq(0x0c)),
            );
            return _mm_movemask_epi8(ws) as u32;
        }
    }
    chunk
        .iter()
        .enumerate()
        .fold(0, |m, (i, b)| m | ((b.is_ascii_whitespace() as u32) << i))
}

/// The 64-bit fingerprint of the word `bytes[start..end]`: eight bytes at a time through a
/// multiply-rotate step, then a full avalanche (murmur3's finaliser) so that every bit of the
/// key depends on every byte. The words come from one response, so SipHash's flooding
/// resistance would buy nothing.
fn word_fingerprint(bytes: &[u8], start: usize, end: usize) -> u64 {
    let mut h = (end - start) as u64;
    let mut at = start;
    while at < end {
        let take = (end - at).min(8);
        let eight = if at + 8 <= bytes.len() {
            // Eight bytes are there to read: read them all and keep the word's.
            let all = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
            if take == 8 {
                all
            } else {
                all & ((1u64 << (8 * take)) - 1)
            }
        } else {
            let mut buf = [0u8; 8];
            buf[..take].copy_from_slice(&bytes[at..at + take]);
            u64::from_le_bytes(buf)
        };
        h = (h.rotate_left(5) ^ eight).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        at += take;
    }
    avalanche(h)
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// How many distinct values `keys` (at most `len` of them) holds: linear probing in a table at
/// most half full, indexed by the keys' high bits after one more mixing step.
fn count_distinct(keys: impl Iterator<Item = u64>, len: usize) -> usize {
    let bits = (2 * len).next_power_of_two().trailing_zeros().max(4);
    let mask = (1usize << bits) - 1;
    // 0 marks an empty slot; the one key that is 0 is stored as 1 (a 2^-64 event either way).
    let mut table = vec![0u64; 1 << bits];
    let mut distinct = 0;
    for key in keys {
        let key = key.max(1);
        let mut slot = (key.wrapping_mul(TRIGRAM_K1) >> (64 - bits)) as usize;
        loop {
            let held = table[slot];
            if held == key {
                break;
            }
            if held == 0 {
                table[slot] = key;
                distinct += 1;
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
    distinct
}

/// Item 17: redundant when the 3-gram redundancy exceeds [`REDUNDANCY_LIMIT`] (0.31).
pub fn is_redundant(text: &str) -> bool {
    trigram_redundancy(text) > REDUNDANCY_LIMIT
}

/// Item 17: the text contains at least one ASCII digit 0-9.
pub fn has_digit(text: &str) -> bool {
    // From the end: a maths response's digits are mostly in its final answer.
    text.bytes().rev().any(|b| b.is_ascii_digit())
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

    /// The definition, written the obvious way: a set of word triples.
    fn trigram_redundancy_by_definition(text: &str) -> f64 {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.len() < 3 {
            return 0.0;
        }
        let distinct: std::collections::HashSet<&[&str]> = words.windows(3).collect();
        1.0 - distinct.len() as f64 / (words.len() - 2) as f64
    }

    proptest! {
        #[test]
        fn prop_boxed_count_is_the_number_of_matches(text in "(\\\\boxed\\{|\\\\box|\\\\|[a-z{} ]){0,40}") {
            prop_assert_eq!(boxed_count(&text), text.matches(BOXED_MARKER).count());
        }

        #[test]
        fn prop_redundancy_matches_the_definition(
            words in proptest::collection::vec(("[a-c]{1,3}|[a-z]{7,20}|é", "[ \t\n\r\x0c]{1,3}"), 0..300),
            lead in "[ \n]{0,2}",
        ) {
            // ASCII texts (the vectorised split) and others (Unicode split) alike.
            let text: String = std::iter::once(lead).chain(words.into_iter().map(|(w, sep)| w + &sep)).collect();
            prop_assert_eq!(trigram_redundancy(&text), trigram_redundancy_by_definition(&text));
            let ascii = text.replace('é', "e");
            prop_assert_eq!(trigram_redundancy(&ascii), trigram_redundancy_by_definition(&ascii));
        }

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
