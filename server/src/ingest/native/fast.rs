//! Fast path for the commands that need only the core fields (passk, unsolvable): a validating
//! byte scanner that borrows unescaped strings and skips every other value without building it.
//! It returns `None` on anything unusual (an escape in a needed string, a duplicate or odd
//! value, any syntax error), and the caller then re-parses the line with serde_json, which
//! produces the exact error or value; so the fast path only ever accepts valid JSON.

use super::{CoreLine, Outcome};
use std::borrow::Cow;

const MAX_DEPTH: usize = 128;

/// Position of the first `"`, `\\` or control byte (< 0x20), eight bytes at a time.
/// (Bytes >= 0x80 never match: UTF-8 continuation and lead bytes all have the high bit.)
#[inline]
pub(super) fn find_string_special(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= b.len() {
        let x = u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let quote = x ^ (ONES * b'"' as u64);
        let slash = x ^ (ONES * b'\\' as u64);
        let m = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let m = m & HIGH;
        if m != 0 {
            // The lowest flagged byte is a true match (borrows only run upwards).
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

struct Cursor<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    /// JSON whitespace except the newline, which ends the line (a line never contains one).
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            // One comparison in the usual case (compact JSON): all whitespace is <= b' '.
            if c <= b' ' && (c == b' ' || c == b'\t' || c == b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }
    /// A string without escapes, borrowed (cursor on the opening quote).
    fn plain_str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = find_string_special(&self.b[start..])?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        Some(&self.s[start..start + len])
    }
    /// The digits of a non-negative integer that fits in a u64 (at most 19 digits, no
    /// leading zero, no fraction or exponent), borrowed.
    fn uint_text(&mut self) -> Option<&'a str> {
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(self.b.len() - start);
        if len == 0 || (len > 1 && self.b[start] == b'0') || len > 19 {
            return None;
        }
        if matches!(self.b.get(start + len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.i = start + len;
        Some(&self.s[start..start + len])
    }
    fn uint(&mut self) -> Option<u64> {
        let digits = self.uint_text()?;
        // At most 19 digits: no overflow.
        Some(digits.bytes().fold(0u64, |v, d| v * 10 + (d - b'0') as u64))
    }
    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(lit)
            .then(|| self.i += lit.len())
    }
    fn skip_str(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let rel = find_string_special(&self.b[self.i..])?;
            self.i += rel;
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => match *self.b.get(self.i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                    b'u' => {
                        let hex = self.b.get(self.i + 2..self.i + 6)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.i += 6;
                    }
                    _ => return None,
                },
                _ => return None, // raw control character
            }
        }
    }
    fn digits(&mut self) -> usize {
        let n = self.b[self.i..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.i += n;
        n
    }
    fn skip_number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        let first = self.peek()?;
        let int_digits = self.digits();
        if int_digits == 0 || (first == b'0' && int_digits > 1) {
            return None;
        }
        if self.eat(b'.').is_some() && self.digits() == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let exp = self.digits();
            // Huge exponents: let serde_json decide (it rejects out-of-range numbers).
            if exp == 0 || exp > 3 {
                return None;
            }
        }
        Some(())
    }
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.skip_str(),
            b'{' => {
                self.i += 1;
                self.ws();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.skip_str()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }
}

/// Index in `FIELDS` of a known key (every known key is tracked so that a duplicate sends the
/// line to serde_json, which rejects it), `None` for keys the format does not define.
#[inline]
fn field_index(key: &[u8]) -> Option<u32> {
    Some(match key {
        b"model" => 0,
        b"problem_id" => 1,
        b"dataset" => 2,
        b"correct" => 3,
        b"n" => 4,
        b"c" => 5,
        b"sample" => 6,
        b"response" => 7,
        b"answer" => 8,
        b"reference" => 9,
        b"tokens" => 10,
        b"token_logprobs" => 11,
        b"top_logprobs" => 12,
        b"token_entropies" => 13,
        b"finish_reason" => 14,
        b"step" => 15,
        _ => return None,
    })
}

/// A known key with its closing quote, as two little-endian words and masks, so that it is
/// compared with two loads and no call to `memcmp` (whose call overhead dominated).
#[derive(Clone, Copy)]
struct KeyWords {
    lo: u64,
    hi: u64,
    lo_mask: u64,
    hi_mask: u64,
    len: usize,
    index: u32,
}

const fn key_words(key: &[u8], index: u32) -> KeyWords {
    assert!(key.len() <= 16);
    let (mut lo, mut hi, mut i) = (0u64, 0u64, 0);
    while i < key.len() {
        if i < 8 {
            lo |= (key[i] as u64) << (8 * i);
        } else {
            hi |= (key[i] as u64) << (8 * (i - 8));
        }
        i += 1;
    }
    let n = key.len();
    let lo_mask = if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    };
    let hi_mask = if n <= 8 {
        0
    } else if n >= 16 {
        u64::MAX
    } else {
        (1u64 << (8 * (n - 8))) - 1
    };
    KeyWords {
        lo,
        hi,
        lo_mask,
        hi_mask,
        len: n,
        index,
    }
}

/// Slot of a lowercase first letter in `KEYS`.
const fn letter(c: u8) -> usize {
    (c - b'a') as usize
}

/// Every known key with its closing quote, in `FIELDS` order.
const ALL_KEYS: [KeyWords; 16] = [
    key_words(b"model\"", 0),
    key_words(b"problem_id\"", 1),
    key_words(b"dataset\"", 2),
    key_words(b"correct\"", 3),
    key_words(b"n\"", 4),
    key_words(b"c\"", 5),
    key_words(b"sample\"", 6),
    key_words(b"response\"", 7),
    key_words(b"answer\"", 8),
    key_words(b"reference\"", 9),
    key_words(b"tokens\"", 10),
    key_words(b"token_logprobs\"", 11),
    key_words(b"top_logprobs\"", 12),
    key_words(b"token_entropies\"", 13),
    key_words(b"finish_reason\"", 14),
    key_words(b"step\"", 15),
];

/// Known keys by first letter.
const KEYS: [&[KeyWords]; 26] = {
    let mut k: [&[KeyWords]; 26] = [&[]; 26];
    k[letter(b'a')] = &[ALL_KEYS[8]];
    k[letter(b'c')] = &[ALL_KEYS[3], ALL_KEYS[5]];
    k[letter(b'd')] = &[ALL_KEYS[2]];
    k[letter(b'f')] = &[ALL_KEYS[14]];
    k[letter(b'm')] = &[ALL_KEYS[0]];
    k[letter(b'n')] = &[ALL_KEYS[4]];
    k[letter(b'p')] = &[ALL_KEYS[1]];
    k[letter(b'r')] = &[ALL_KEYS[7], ALL_KEYS[9]];
    k[letter(b's')] = &[ALL_KEYS[6], ALL_KEYS[15]];
    k[letter(b't')] = &[ALL_KEYS[10], ALL_KEYS[11], ALL_KEYS[12], ALL_KEYS[13]];
    k
};

/// The known keys of the previous line by position: the lines of one file nearly always
/// list the same keys in the same order, so the key at position j is first compared with the
/// previous line's key at j (one masked compare) before the table is searched.
pub(super) struct KeyOrder([u8; 16]);

impl Default for KeyOrder {
    fn default() -> Self {
        KeyOrder([u8::MAX; 16])
    }
}

impl Cursor<'_> {
    /// A key (cursor on its opening quote): the index in `FIELDS` of a known key, `None` for
    /// another. Known keys are compared in place, without searching for the closing quote.
    #[inline]
    fn key(&mut self, order: &mut KeyOrder, position: usize) -> Option<Option<u32>> {
        self.eat(b'"')?;
        let rest = &self.b[self.i..];
        // Near the end of the input the general path below is good enough.
        if let (Some(lo), Some(hi)) = (rest.get(..8), rest.get(8..16)) {
            let lo = u64::from_le_bytes(lo.try_into().unwrap());
            let hi = u64::from_le_bytes(hi.try_into().unwrap());
            let matches = |k: &KeyWords| ((lo ^ k.lo) & k.lo_mask) | ((hi ^ k.hi) & k.hi_mask) == 0;
            if let Some(k) = order
                .0
                .get(position)
                .and_then(|&p| ALL_KEYS.get(p as usize))
            {
                if matches(k) {
                    self.i += k.len;
                    return Some(Some(k.index));
                }
            }
            let first = lo as u8;
            if first.is_ascii_lowercase() {
                for k in KEYS[letter(first)] {
                    if matches(k) {
                        self.i += k.len;
                        if let Some(slot) = order.0.get_mut(position) {
                            *slot = k.index as u8;
                        }
                        return Some(Some(k.index));
                    }
                }
            }
        }
        self.i -= 1;
        Some(field_index(self.plain_str()?.as_bytes()))
    }
}

/// Byte range of the value of the top-level field `key` of the object in `text`; the key may
/// be written with escapes. `None` when absent or when `text` is not a valid object.
pub(super) fn top_level_value_span(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut cur = Cursor {
        b: text.as_bytes(),
        s: text,
        i: 0,
    };
    let mut found = None;
    cur.ws();
    cur.eat(b'{')?;
    cur.ws();
    if cur.eat(b'}').is_some() {
        return None;
    }
    loop {
        cur.ws();
        let key_start = cur.i;
        cur.skip_str()?;
        let raw_key = &text[key_start..cur.i];
        let matches = match raw_key[1..raw_key.len() - 1].contains('\\') {
            false => &raw_key[1..raw_key.len() - 1] == key,
            true => serde_json::from_str::<String>(raw_key).ok()? == key,
        };
        cur.ws();
        cur.eat(b':')?;
        cur.ws();
        let value_start = cur.i;
        cur.skip_value(1)?;
        if matches {
            found = Some((value_start, cur.i));
        }
        cur.ws();
        match cur.peek()? {
            b',' => cur.i += 1,
            b'}' => break,
            _ => return None,
        }
    }
    cur.i += 1;
    cur.ws();
    if cur.i != cur.b.len() {
        return None;
    }
    found
}

/// Scans a line for the core fields (plus `sample` when asked). `Some` only for a line that
/// is valid JSON *and* a valid record (required fields present, `c <= n`, no known field
/// twice); `None` for anything else, and the caller re-parses with serde_json, which gives
/// the value or the exact error.
pub(super) fn scan_core(text: &str, want_sample: bool) -> Option<CoreLine<'_>> {
    scan_line(text, 0, want_sample, &mut KeyOrder::default())
        .and_then(|(line, end)| (end == text.len()).then_some(line))
}

/// Like [`scan_core`] for the line of `text` that starts at `start` and ends at the next
/// newline or at the end: also returns where it ends (the newline's index, or the length), so
/// the caller needs no separate search for the line end.
pub(super) fn scan_line<'a>(
    text: &'a str,
    start: usize,
    want_sample: bool,
    order: &mut KeyOrder,
) -> Option<(CoreLine<'a>, usize)> {
    let mut cur = Cursor {
        b: text.as_bytes(),
        s: text,
        i: start,
    };
    let (mut model, mut problem_id, mut dataset) = (None, None, None);
    let (mut correct, mut n, mut c, mut sample) = (None, None, None, None);
    let mut seen = 0u32;
    let mut position = 0;
    cur.ws();
    cur.eat(b'{')?;
    cur.ws();
    if cur.eat(b'}').is_none() {
        loop {
            cur.ws();
            let field = cur.key(order, position)?;
            position += 1;
            cur.ws();
            cur.eat(b':')?;
            cur.ws();
            if let Some(f) = field {
                if seen & (1 << f) != 0 {
                    return None;
                }
                seen |= 1 << f;
            }
            match field {
                Some(0) => model = Some(cur.plain_str()?),
                Some(1) => {
                    // An integer id borrows its digits: without sign or leading zero they
                    // are exactly the decimal text serde's path produces.
                    problem_id = Some(if cur.peek()? == b'"' {
                        cur.plain_str()?
                    } else {
                        cur.uint_text()?
                    })
                }
                Some(2) => {
                    dataset = if cur.peek()? == b'n' {
                        cur.literal(b"null")?;
                        None
                    } else {
                        Some(cur.plain_str()?)
                    }
                }
                Some(3) => {
                    correct = Some(match cur.peek()? {
                        b't' => cur.literal(b"true").map(|_| true)?,
                        b'f' => cur.literal(b"false").map(|_| false)?,
                        _ => return None,
                    })
                }
                Some(4) => n = Some(cur.uint()?),
                Some(5) => c = Some(cur.uint()?),
                Some(6) if want_sample => {
                    sample = if cur.peek()? == b'n' {
                        cur.literal(b"null")?;
                        None
                    } else {
                        Some(cur.uint()?)
                    }
                }
                _ => cur.skip_value(1)?,
            }
            cur.ws();
            match cur.peek()? {
                b',' => cur.i += 1,
                b'}' => {
                    cur.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    cur.ws();
    let end = cur.i;
    if end != cur.b.len() && cur.b[end] != b'\n' {
        return None;
    }
    // The same rules as `NativeLine::finish`; any violation is left to the slow path.
    let outcome = match (correct, n, c) {
        (Some(correct), None, None) => Outcome::Rollout { correct },
        (None, Some(n), Some(c)) if c <= n && n <= super::MAX_SAMPLES_PER_LINE => {
            Outcome::Counts { n, c }
        }
        _ => return None,
    };
    let line = CoreLine {
        model: Cow::Borrowed(model?),
        problem_id: Cow::Borrowed(problem_id?),
        dataset: dataset.map(Cow::Borrowed),
        outcome,
        sample,
    };
    Some((line, end))
}
