//! LaTeX maths in untrusted text (prompts, reference answers, responses) converted to MathML Core,
//! the same code on the server (first paint, readers without JavaScript) and in the browser.
//!
//! # Why our own converter
//! Both crates we evaluated write parts of their input into the markup unescaped: pulldown-latex
//! 0.8 writes operator characters (`a<b` gives `<mo><</mo>`), `\operatorname{...}` names and parser
//! error messages raw; latex2mathml 0.2 (unmaintained since 2021) writes every text piece raw. Either
//! would let a response inject markup. This converter parses into a tree and escapes every text
//! piece when it serialises; element and attribute names and attribute values are constants. It
//! covers what maths benchmarks and model responses use (fractions, roots, scripts, Greek,
//! operators, `\text`, `\boxed`, `\left..\right`, matrices, cases, aligned, fonts, accents).
//!
//! # Rules
//! - Delimiters: `$$...$$` and `\[...\]` (display), `$...$` and `\(...\)` (inline). An inline `$`
//!   opens only before a non-space and closes only after a non-space and not before a digit (the
//!   Pandoc rule), so "costs $5 and $10" stays text. `\$` is never a delimiter.
//! - Anything we do not understand (an unknown command, unbalanced braces, a missing argument, a
//!   formula nested too deeply or too long) renders the whole formula as its literal text,
//!   delimiters included: broken LaTeX is shown as written, never half-converted.
//!
//! # Layout
//! [`segments`] finds the formulas in text; [`to_mathml`] converts one: `tokenize` splits the
//! LaTeX into tokens, `parser` builds a `node` tree (looking names up in `symbols`), and the tree
//! writes itself as MathML.

mod node;
mod parser;
mod symbols;
#[cfg(test)]
mod tests;
mod tokenize;

use crate::escape::escape_into;
use tokenize::tokenize;

/// A piece of text: plain text, or a formula converted to MathML markup (safe to insert as HTML).
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Text(String),
    Math { mathml: String, display: bool },
}

/// Longest formula converted; longer ones are shown as text.
pub const MAX_FORMULA_BYTES: usize = 8_000;
/// Deepest nesting of groups and commands converted.
const MAX_DEPTH: usize = 40;
/// An inline `$...$` formula must close within this many bytes.
const MAX_INLINE_BYTES: usize = 2_000;

/// Why a formula was not converted (it is then shown as its literal text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MathError(pub String);

/// Splits text into plain text and converted formulas.
pub fn segments(text: &str) -> Vec<Segment> {
    let bytes = text.as_bytes();
    let mut out: Vec<Segment> = Vec::new();
    let mut plain_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let found = match bytes[i] {
            b'\\' if i + 1 < bytes.len() => match bytes[i + 1] {
                b'[' => find_close(text, i + 2, "\\]").map(|end| (i + 2, end, end + 2, true)),
                b'(' => find_close(text, i + 2, "\\)").map(|end| (i + 2, end, end + 2, false)),
                _ => {
                    // `\$`, `\\` and other escapes: skip both bytes so the `$` is not a delimiter.
                    i += 2;
                    continue;
                }
            },
            b'$' if bytes.get(i + 1) == Some(&b'$') => {
                find_close(text, i + 2, "$$").map(|end| (i + 2, end, end + 2, true))
            }
            b'$' => find_inline_dollar(bytes, i + 1).map(|end| (i + 1, end, end + 1, false)),
            _ => None,
        };
        match found {
            Some((start, end, after, display)) if end > start => {
                let latex = &text[start..end];
                match to_mathml(latex, display) {
                    Ok(mathml) => {
                        push_text(&mut out, &text[plain_start..i]);
                        out.push(Segment::Math { mathml, display });
                    }
                    Err(_) => push_text(&mut out, &text[plain_start..after]),
                }
                i = after;
                plain_start = after;
            }
            _ => i += 1,
        }
    }
    push_text(&mut out, &text[plain_start..]);
    out
}

fn push_text(out: &mut Vec<Segment>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(Segment::Text(prev)) = out.last_mut() {
        prev.push_str(s);
    } else {
        out.push(Segment::Text(s.to_string()));
    }
}

/// Start of the closing delimiter `close` at or after `from`, skipping backslash escapes (so
/// `\$` never closes `$$`). Byte offsets; every delimiter is ASCII, so they are char boundaries.
fn find_close(text: &str, from: usize, close: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut j = from;
    while j < bytes.len() {
        if bytes[j..].starts_with(close.as_bytes()) {
            return Some(j);
        }
        j += if bytes[j] == b'\\' { 2 } else { 1 };
    }
    None
}

/// The closing `$` of an inline formula whose content starts at `from` (Pandoc's rule).
fn find_inline_dollar(bytes: &[u8], from: usize) -> Option<usize> {
    if bytes.get(from).is_none_or(|b| b.is_ascii_whitespace()) {
        return None;
    }
    let mut j = from;
    while j < bytes.len() && j - from <= MAX_INLINE_BYTES {
        match bytes[j] {
            b'\\' => j += 2,
            b'\n' if bytes.get(j + 1) == Some(&b'\n') => return None,
            b'$' => {
                let closes = !bytes[j - 1].is_ascii_whitespace()
                    && !bytes.get(j + 1).is_some_and(u8::is_ascii_digit);
                return closes.then_some(j);
            }
            _ => j += 1,
        }
    }
    None
}

/// Converts one formula (without delimiters) to a `<math>` element.
pub fn to_mathml(latex: &str, display: bool) -> Result<String, MathError> {
    if latex.len() > MAX_FORMULA_BYTES {
        return Err(MathError("formula too long".into()));
    }
    let body = parser::parse(tokenize(latex)?)?;
    let mut out = String::with_capacity(latex.len() * 8 + 64);
    out.push_str(if display {
        "<math display=\"block\">"
    } else {
        "<math>"
    });
    out.push_str("<semantics><mrow>");
    for n in &body {
        n.write(&mut out);
    }
    out.push_str("</mrow><annotation encoding=\"application/x-tex\">");
    escape_into(&mut out, latex);
    out.push_str("</annotation></semantics></math>");
    Ok(out)
}
