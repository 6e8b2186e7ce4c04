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
    let mut parser = Parser {
        toks: tokenize(latex)?,
        pos: 0,
        depth: 0,
    };
    let body = parser.row(Stop::End)?;
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

use crate::escape::escape_into;

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `\name` (letters) or `\c` (one other character); the name without the backslash.
    Cmd(String),
    Char(char),
    Open,
    Close,
    Sup,
    Sub,
    Amp,
    /// `\\`
    NewRow,
    /// Whitespace; kept only because `\text` arguments need it.
    Space,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, MathError> {
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let t = match c {
            '\\' => match chars.next() {
                None => return Err(MathError("trailing backslash".into())),
                Some('\\') => Tok::NewRow,
                Some(c) if c.is_ascii_alphabetic() => {
                    let mut name = String::from(c);
                    while let Some(&n) = chars.peek() {
                        if !n.is_ascii_alphabetic() {
                            break;
                        }
                        name.push(n);
                        chars.next();
                    }
                    // `\operatorname*` and starred environments' commands.
                    if chars.peek() == Some(&'*') && name == "operatorname" {
                        chars.next();
                    }
                    Tok::Cmd(name)
                }
                Some(c) => Tok::Cmd(c.to_string()),
            },
            '{' => Tok::Open,
            '}' => Tok::Close,
            '^' => Tok::Sup,
            '_' => Tok::Sub,
            '&' => Tok::Amp,
            '%' => return Err(MathError("comment in formula".into())),
            c if c.is_whitespace() => Tok::Space,
            c => Tok::Char(c),
        };
        toks.push(t);
    }
    Ok(toks)
}

// ---------------------------------------------------------------------------------------------
// Tree

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Row(Vec<Node>),
    /// An identifier; `upright` for multi-letter names and upright letters.
    Mi(String, bool),
    Mn(String),
    Mo(String, Mo),
    Text(String),
    Space(&'static str),
    Frac(Box<Node>, Box<Node>, bool),
    Sqrt(Box<Node>),
    Root(Box<Node>, Box<Node>),
    Scripts {
        base: Box<Node>,
        sub: Option<Box<Node>>,
        sup: Option<Box<Node>>,
        limits: bool,
    },
    /// Accent or over/under content: `under` picks `munder` instead of `mover`.
    Over(Box<Node>, Box<Node>, bool),
    Fenced(&'static str, Box<Node>, &'static str),
    Table(Vec<Vec<Node>>, &'static str),
    Boxed(Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mo {
    Plain,
    /// A large operator whose scripts go below/above in display (`\sum`).
    Limits,
    /// An accent (`\hat`): stretchy only for the wide ones.
    Accent(bool),
    /// A fence written by `\left`/`\right` or an environment.
    Fence,
}

impl Node {
    fn write(&self, out: &mut String) {
        match self {
            Node::Row(items) => {
                out.push_str("<mrow>");
                items.iter().for_each(|n| n.write(out));
                out.push_str("</mrow>");
            }
            Node::Mi(s, upright) => {
                let single = s.chars().count() == 1;
                out.push_str(if *upright && single {
                    "<mi mathvariant=\"normal\">"
                } else {
                    "<mi>"
                });
                escape_into(out, s);
                out.push_str("</mi>");
            }
            Node::Mn(s) => tag(out, "mn", s),
            Node::Mo(s, kind) => {
                out.push_str(match kind {
                    Mo::Plain | Mo::Limits => "<mo>",
                    Mo::Accent(true) => "<mo stretchy=\"true\">",
                    Mo::Accent(false) => "<mo stretchy=\"false\">",
                    Mo::Fence => "<mo fence=\"true\">",
                });
                escape_into(out, s);
                out.push_str("</mo>");
            }
            Node::Text(s) => tag(out, "mtext", s),
            Node::Space(width) => {
                out.push_str("<mspace width=\"");
                out.push_str(width);
                out.push_str("\"></mspace>");
            }
            Node::Frac(a, b, no_line) => {
                out.push_str(if *no_line {
                    "<mfrac linethickness=\"0\">"
                } else {
                    "<mfrac>"
                });
                a.write(out);
                b.write(out);
                out.push_str("</mfrac>");
            }
            Node::Sqrt(a) => {
                out.push_str("<msqrt>");
                a.write(out);
                out.push_str("</msqrt>");
            }
            Node::Root(a, index) => {
                out.push_str("<mroot>");
                a.write(out);
                index.write(out);
                out.push_str("</mroot>");
            }
            Node::Scripts {
                base,
                sub,
                sup,
                limits,
            } => {
                let name = match (sub.is_some(), sup.is_some(), limits) {
                    (true, true, false) => "msubsup",
                    (true, false, false) => "msub",
                    (false, true, false) => "msup",
                    (true, true, true) => "munderover",
                    (true, false, true) => "munder",
                    (false, true, true) => "mover",
                    (false, false, _) => "mrow",
                };
                open(out, name);
                base.write(out);
                if let Some(s) = sub {
                    s.write(out);
                }
                if let Some(s) = sup {
                    s.write(out);
                }
                close(out, name);
            }
            Node::Over(base, over, under) => {
                let name = if *under { "munder" } else { "mover" };
                let accent = matches!(**over, Node::Mo(_, Mo::Accent(_)));
                out.push('<');
                out.push_str(name);
                if accent {
                    out.push_str(if *under {
                        " accentunder=\"true\""
                    } else {
                        " accent=\"true\""
                    });
                }
                out.push('>');
                base.write(out);
                over.write(out);
                close(out, name);
            }
            Node::Fenced(l, body, r) => {
                out.push_str("<mrow>");
                if !l.is_empty() {
                    Node::Mo(l.to_string(), Mo::Fence).write(out);
                }
                body.write(out);
                if !r.is_empty() {
                    Node::Mo(r.to_string(), Mo::Fence).write(out);
                }
                out.push_str("</mrow>");
            }
            Node::Table(rows, align) => {
                out.push_str("<mtable");
                if !align.is_empty() {
                    out.push_str(" columnalign=\"");
                    out.push_str(align);
                    out.push('"');
                }
                out.push('>');
                for row in rows {
                    out.push_str("<mtr>");
                    for cell in row {
                        out.push_str("<mtd>");
                        cell.write(out);
                        out.push_str("</mtd>");
                    }
                    out.push_str("</mtr>");
                }
                out.push_str("</mtable>");
            }
            Node::Boxed(body) => {
                out.push_str("<mrow class=\"boxed\">");
                body.write(out);
                out.push_str("</mrow>");
            }
        }
    }
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn tag(out: &mut String, name: &str, text: &str) {
    open(out, name);
    escape_into(out, text);
    close(out, name);
}

// ---------------------------------------------------------------------------------------------
// Parser

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    End,
    Brace,
    Right,
    /// Inside an environment: a cell ends at `&`, `\\` or `\end`.
    Cell,
    /// An optional argument `[...]`.
    Bracket,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

fn err<T>(msg: &str) -> Result<T, MathError> {
    Err(MathError(msg.to_string()))
}

fn font_char(c: char, font: Font) -> char {
    let (upper, lower, holes): (u32, u32, &[(char, char)]) = match font {
        Font::Bold => (0x1D400, 0x1D41A, &[]),
        Font::DoubleStruck => (
            0x1D538,
            0x1D552,
            &[
                ('C', 'ℂ'),
                ('H', 'ℍ'),
                ('N', 'ℕ'),
                ('P', 'ℙ'),
                ('Q', 'ℚ'),
                ('R', 'ℝ'),
                ('Z', 'ℤ'),
            ],
        ),
        Font::Script => (
            0x1D49C,
            0x1D4B6,
            &[
                ('B', 'ℬ'),
                ('E', 'ℰ'),
                ('F', 'ℱ'),
                ('H', 'ℋ'),
                ('I', 'ℐ'),
                ('L', 'ℒ'),
                ('M', 'ℳ'),
                ('R', 'ℛ'),
                ('e', 'ℯ'),
                ('g', 'ℊ'),
                ('o', 'ℴ'),
            ],
        ),
        Font::Fraktur => (
            0x1D504,
            0x1D51E,
            &[('C', 'ℭ'), ('H', 'ℌ'), ('I', 'ℑ'), ('R', 'ℜ'), ('Z', 'ℨ')],
        ),
        Font::Upright | Font::Italic => return c,
    };
    if let Some(&(_, h)) = holes.iter().find(|(k, _)| *k == c) {
        return h;
    }
    let code = if c.is_ascii_uppercase() {
        upper + (c as u32 - 'A' as u32)
    } else if c.is_ascii_lowercase() {
        lower + (c as u32 - 'a' as u32)
    } else if font == Font::Bold && c.is_ascii_digit() {
        0x1D7CE + (c as u32 - '0' as u32)
    } else {
        return c;
    };
    char::from_u32(code).unwrap_or(c)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Font {
    Upright,
    Italic,
    Bold,
    DoubleStruck,
    Script,
    Fraktur,
}

/// Applies a font to every identifier and number of a subtree.
fn apply_font(node: &mut Node, font: Font) {
    match node {
        Node::Mi(s, upright) => {
            *s = s.chars().map(|c| font_char(c, font)).collect();
            *upright = font == Font::Upright || (*upright && font != Font::Italic);
        }
        Node::Mn(s) if font == Font::Bold => *s = s.chars().map(|c| font_char(c, font)).collect(),
        Node::Row(items) => items.iter_mut().for_each(|n| apply_font(n, font)),
        Node::Frac(a, b, _) | Node::Root(a, b) | Node::Over(a, b, _) => {
            apply_font(a, font);
            apply_font(b, font);
        }
        Node::Sqrt(a) | Node::Boxed(a) | Node::Fenced(_, a, _) => apply_font(a, font),
        Node::Scripts { base, sub, sup, .. } => {
            apply_font(base, font);
            if let Some(s) = sub {
                apply_font(s, font);
            }
            if let Some(s) = sup {
                apply_font(s, font);
            }
        }
        Node::Table(rows, _) => rows.iter_mut().flatten().for_each(|n| apply_font(n, font)),
        _ => {}
    }
}

fn row_of(mut items: Vec<Node>) -> Node {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        Node::Row(items)
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(&Tok::Space) {
            self.pos += 1;
        }
    }

    fn enter(&mut self) -> Result<(), MathError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err("formula nested too deeply");
        }
        Ok(())
    }

    /// Atoms until `stop`; the stopping token is consumed for braces, `\right` is left for the
    /// caller, cell separators are left for the table parser.
    fn row(&mut self, stop: Stop) -> Result<Vec<Node>, MathError> {
        self.enter()?;
        let mut items: Vec<Node> = Vec::new();
        loop {
            self.skip_spaces();
            let Some(tok) = self.peek().cloned() else {
                if stop == Stop::End {
                    break;
                }
                return err("unclosed group");
            };
            match tok {
                Tok::Close if stop == Stop::Brace => {
                    self.pos += 1;
                    break;
                }
                Tok::Close => return err("unbalanced }"),
                Tok::Char(']') if stop == Stop::Bracket => {
                    self.pos += 1;
                    break;
                }
                Tok::Cmd(ref c) if c == "right" => {
                    if stop == Stop::Right {
                        break;
                    }
                    return err("\\right without \\left");
                }
                Tok::Amp | Tok::NewRow if stop == Stop::Cell => break,
                Tok::Cmd(ref c) if c == "end" && stop == Stop::Cell => break,
                Tok::Amp => return err("& outside an environment"),
                Tok::NewRow if stop == Stop::End || stop == Stop::Brace => {
                    // A line break in plain maths (e.g. inside `$$`): ignored.
                    self.pos += 1;
                    self.skip_optional_bracket()?;
                }
                Tok::NewRow => return err("unexpected \\\\"),
                Tok::Sup | Tok::Sub => {
                    let base = items.pop().unwrap_or(Node::Row(Vec::new()));
                    let node = self.scripts(base)?;
                    items.push(node);
                }
                Tok::Char('\'') => {
                    self.pos += 1;
                    let mut primes = String::from('′');
                    while self.peek() == Some(&Tok::Char('\'')) {
                        self.pos += 1;
                        primes.push('′');
                    }
                    let base = items.pop().unwrap_or(Node::Row(Vec::new()));
                    items.push(Node::Scripts {
                        base: Box::new(base),
                        sub: None,
                        sup: Some(Box::new(Node::Mo(primes, Mo::Plain))),
                        limits: false,
                    });
                }
                _ => {
                    if let Some(node) = self.atom()? {
                        items.push(node);
                    }
                }
            }
        }
        self.depth -= 1;
        Ok(items)
    }

    /// `^`/`_` after `base`, in either order.
    fn scripts(&mut self, base: Node) -> Result<Node, MathError> {
        let (mut base, mut sub, mut sup) = match base {
            Node::Scripts {
                base,
                sub,
                sup,
                limits: false,
            } if sup.as_deref().is_some_and(is_primes) && sub.is_none() => (*base, None, sup),
            other => (other, None, None),
        };
        let limits = matches!(base, Node::Mo(_, Mo::Limits));
        while let Some(t @ (Tok::Sup | Tok::Sub)) = self.peek().cloned() {
            self.pos += 1;
            let arg = self.argument()?;
            let slot = if t == Tok::Sup { &mut sup } else { &mut sub };
            match slot.take() {
                None => *slot = Some(Box::new(arg)),
                // `f'^2`: the primes and the exponent share the superscript.
                Some(prev) if t == Tok::Sup && is_primes(&prev) => {
                    *slot = Some(Box::new(Node::Row(vec![*prev, arg])))
                }
                Some(_) => return err("double script"),
            }
            self.skip_spaces();
        }
        if let Node::Scripts { .. } = base {
            base = Node::Row(vec![base]);
        }
        Ok(Node::Scripts {
            base: Box::new(base),
            sub,
            sup,
            limits,
        })
    }

    /// One required argument: a `{group}` or a single token.
    fn argument(&mut self) -> Result<Node, MathError> {
        self.skip_spaces();
        match self.peek().cloned() {
            None => err("missing argument"),
            Some(Tok::Open) => {
                self.pos += 1;
                Ok(row_of(self.row(Stop::Brace)?))
            }
            Some(Tok::Char(c)) if c.is_ascii_digit() => {
                // `\frac12`: one digit per argument.
                self.pos += 1;
                Ok(Node::Mn(c.to_string()))
            }
            Some(Tok::Close | Tok::Sup | Tok::Sub | Tok::Amp | Tok::NewRow) => {
                err("missing argument")
            }
            Some(_) => self
                .atom()?
                .ok_or_else(|| MathError("missing argument".into())),
        }
    }

    /// The raw text of a `{...}` argument (for `\text`, environment names, `\operatorname`).
    fn text_argument(&mut self) -> Result<String, MathError> {
        self.skip_spaces();
        if self.peek() != Some(&Tok::Open) {
            return err("missing {");
        }
        self.pos += 1;
        let mut depth = 0usize;
        let mut text = String::new();
        loop {
            let Some(tok) = self.peek().cloned() else {
                return err("unclosed text");
            };
            self.pos += 1;
            match tok {
                Tok::Open => depth += 1,
                Tok::Close if depth == 0 => return Ok(text),
                Tok::Close => depth -= 1,
                Tok::Char(c) => text.push(c),
                Tok::Space => {
                    if !text.ends_with(' ') {
                        text.push(' ')
                    }
                }
                Tok::Sup => text.push('^'),
                Tok::Sub => text.push('_'),
                Tok::Amp => return err("& in text"),
                Tok::NewRow => text.push(' '),
                Tok::Cmd(c) => match c.as_str() {
                    "$" | "%" | "#" | "&" | "_" | "{" | "}" => text.push_str(&c),
                    " " | "," | ";" | ":" | "quad" | "qquad" => text.push(' '),
                    "textbf" | "textit" | "textrm" | "text" | "emph" | "mathrm" => {}
                    "ldots" | "dots" => text.push('…'),
                    _ => return err("command in text"),
                },
            }
        }
    }

    /// An optional `[...]` argument, parsed as maths.
    fn optional(&mut self) -> Result<Option<Node>, MathError> {
        self.skip_spaces();
        if self.peek() == Some(&Tok::Char('[')) {
            self.pos += 1;
            Ok(Some(row_of(self.row(Stop::Bracket)?)))
        } else {
            Ok(None)
        }
    }

    /// Skips `[2pt]` after `\\`.
    fn skip_optional_bracket(&mut self) -> Result<(), MathError> {
        if self.peek() == Some(&Tok::Char('[')) {
            while let Some(t) = self.peek().cloned() {
                self.pos += 1;
                if t == Tok::Char(']') {
                    return Ok(());
                }
            }
            return err("unclosed [");
        }
        Ok(())
    }

    /// A delimiter after `\left`, `\right` or `\big`: returns its character ("" for `.`).
    fn delimiter(&mut self) -> Result<&'static str, MathError> {
        self.skip_spaces();
        let tok = self.peek().cloned();
        self.pos += 1;
        Ok(match tok {
            Some(Tok::Char(c)) => match c {
                '(' => "(",
                ')' => ")",
                '[' => "[",
                ']' => "]",
                '|' => "|",
                '/' => "/",
                '.' => "",
                '<' => "⟨",
                '>' => "⟩",
                _ => return err("bad delimiter"),
            },
            Some(Tok::Cmd(c)) => match c.as_str() {
                "{" | "lbrace" => "{",
                "}" | "rbrace" => "}",
                "|" | "Vert" | "lVert" | "rVert" => "‖",
                "vert" | "lvert" | "rvert" | "mid" => "|",
                "langle" => "⟨",
                "rangle" => "⟩",
                "lfloor" => "⌊",
                "rfloor" => "⌋",
                "lceil" => "⌈",
                "rceil" => "⌉",
                "backslash" => "\\",
                _ => return err("bad delimiter"),
            },
            _ => return err("missing delimiter"),
        })
    }

    fn atom(&mut self) -> Result<Option<Node>, MathError> {
        let Some(tok) = self.peek().cloned() else {
            return Ok(None);
        };
        self.pos += 1;
        Ok(Some(match tok {
            Tok::Open => {
                let items = self.row(Stop::Brace)?;
                Node::Row(items)
            }
            Tok::Char(c) if c.is_ascii_digit() || (c == '.' && self.digit_at(self.pos)) => {
                let mut num = String::from(c);
                while let Some(Tok::Char(d)) = self.peek() {
                    let d = *d;
                    if d.is_ascii_digit() || (d == '.' && self.digit_at(self.pos + 1)) {
                        num.push(d);
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Node::Mn(num)
            }
            Tok::Char(c) if c.is_alphabetic() => Node::Mi(c.to_string(), false),
            Tok::Char(c) => Node::Mo(
                match c {
                    '-' => '−',
                    '*' => '∗',
                    '~' => return Ok(Some(Node::Space("0.25em"))),
                    c => c,
                }
                .to_string(),
                Mo::Plain,
            ),
            Tok::Cmd(name) => return self.command(&name),
            Tok::Space => return Ok(None),
            Tok::Close | Tok::Sup | Tok::Sub | Tok::Amp | Tok::NewRow => {
                return err("unexpected token")
            }
        }))
    }

    fn digit_at(&self, i: usize) -> bool {
        matches!(self.toks.get(i), Some(Tok::Char(d)) if d.is_ascii_digit())
    }

    fn command(&mut self, name: &str) -> Result<Option<Node>, MathError> {
        self.enter()?;
        let node = self.command_inner(name);
        self.depth -= 1;
        node
    }

    fn command_inner(&mut self, name: &str) -> Result<Option<Node>, MathError> {
        if let Some(c) = greek(name) {
            return Ok(Some(Node::Mi(c.to_string(), c.is_uppercase())));
        }
        if let Some(s) = symbol(name) {
            return Ok(Some(Node::Mo(s.to_string(), Mo::Plain)));
        }
        if let Some(s) = large_op(name) {
            let limits = !s.starts_with('∫') && !s.starts_with('∮');
            return Ok(Some(Node::Mo(
                s.to_string(),
                if limits { Mo::Limits } else { Mo::Plain },
            )));
        }
        if FUNCTIONS.contains(&name) {
            return Ok(Some(Node::Mi(name.to_string(), true)));
        }
        if LIMIT_FUNCTIONS.contains(&name) {
            // Scripts of `\lim`, `\max` go below in display: an upright operator with limits.
            return Ok(Some(Node::Mo(name.to_string(), Mo::Limits)));
        }
        let node = match name {
            "frac" | "dfrac" | "tfrac" | "cfrac" => {
                let a = self.argument()?;
                let b = self.argument()?;
                Node::Frac(Box::new(a), Box::new(b), false)
            }
            "binom" | "dbinom" | "tbinom" => {
                let a = self.argument()?;
                let b = self.argument()?;
                Node::Fenced(
                    "(",
                    Box::new(Node::Frac(Box::new(a), Box::new(b), true)),
                    ")",
                )
            }
            "sqrt" => {
                let index = self.optional()?;
                let a = self.argument()?;
                match index {
                    Some(i) => Node::Root(Box::new(a), Box::new(i)),
                    None => Node::Sqrt(Box::new(a)),
                }
            }
            "text" | "textrm" | "textnormal" | "mbox" | "textbf" | "textit" | "textsf"
            | "texttt" | "emph" => Node::Text(self.text_argument()?),
            "operatorname" | "mathop" => {
                let text = self.text_argument()?;
                if text.is_empty() {
                    return err("empty operator name");
                }
                Node::Mi(text, true)
            }
            "mathrm" => self.font(Font::Upright)?,
            "mathbf" | "boldsymbol" | "bm" | "mathbfit" => self.font(Font::Bold)?,
            "mathbb" => self.font(Font::DoubleStruck)?,
            "mathcal" | "mathscr" => self.font(Font::Script)?,
            "mathfrak" => self.font(Font::Fraktur)?,
            "mathit" | "mathsf" | "mathtt" => self.font(Font::Italic)?,
            "left" => {
                let l = self.delimiter()?;
                let body = self.row(Stop::Right)?;
                // `row` stopped at `\right`.
                self.pos += 1;
                let r = self.delimiter()?;
                Node::Fenced(l, Box::new(Node::Row(body)), r)
            }
            "big" | "Big" | "bigg" | "Bigg" | "bigl" | "bigr" | "Bigl" | "Bigr" | "biggl"
            | "biggr" | "Biggl" | "Biggr" | "bigm" | "Bigm" => {
                Node::Mo(self.delimiter()?.to_string(), Mo::Plain)
            }
            "," | "thinspace" => Node::Space("0.1667em"),
            ":" | ">" | "medspace" => Node::Space("0.2222em"),
            ";" | "thickspace" => Node::Space("0.2778em"),
            " " => Node::Space("0.25em"),
            "quad" => Node::Space("1em"),
            "qquad" => Node::Space("2em"),
            "!" | "negthinspace" => return Ok(None),
            "{" | "lbrace" => Node::Mo("{".into(), Mo::Plain),
            "}" | "rbrace" => Node::Mo("}".into(), Mo::Plain),
            "$" | "%" | "#" | "&" | "_" => Node::Mo(name.into(), Mo::Plain),
            "|" => Node::Mo("‖".into(), Mo::Plain),
            "displaystyle" | "textstyle" | "scriptstyle" | "limits" | "nolimits" | "nonumber"
            | "notag" | "hline" => return Ok(None),
            "label" => {
                self.text_argument()?;
                return Ok(None);
            }
            "color" => {
                self.text_argument()?;
                return Ok(None);
            }
            "textcolor" | "colorbox" => {
                self.text_argument()?;
                self.argument()?
            }
            "hat" | "widehat" | "bar" | "overline" | "vec" | "overrightarrow" | "tilde"
            | "widetilde" | "dot" | "ddot" | "check" | "breve" | "acute" | "grave" | "mathring"
            | "overleftarrow" => {
                let (mark, wide) = match name {
                    "hat" => ("^", false),
                    "widehat" => ("^", true),
                    "bar" => ("¯", false),
                    "overline" => ("¯", true),
                    "vec" => ("→", false),
                    "overrightarrow" => ("→", true),
                    "overleftarrow" => ("←", true),
                    "tilde" => ("~", false),
                    "widetilde" => ("~", true),
                    "dot" => ("˙", false),
                    "ddot" => ("¨", false),
                    "check" => ("ˇ", false),
                    "breve" => ("˘", false),
                    "acute" => ("´", false),
                    "grave" => ("`", false),
                    _ => ("˚", false),
                };
                let base = self.argument()?;
                Node::Over(
                    Box::new(base),
                    Box::new(Node::Mo(mark.into(), Mo::Accent(wide))),
                    false,
                )
            }
            "underline" => {
                let base = self.argument()?;
                Node::Over(
                    Box::new(base),
                    Box::new(Node::Mo("_".into(), Mo::Accent(true))),
                    true,
                )
            }
            "overbrace" | "underbrace" => {
                let under = name == "underbrace";
                let base = self.argument()?;
                let brace = if under { "⏟" } else { "⏞" };
                Node::Over(
                    Box::new(base),
                    Box::new(Node::Mo(brace.into(), Mo::Accent(true))),
                    under,
                )
            }
            "overset" | "stackrel" | "underset" => {
                let over = self.argument()?;
                let base = self.argument()?;
                Node::Over(Box::new(base), Box::new(over), name == "underset")
            }
            "boxed" => Node::Boxed(Box::new(self.argument()?)),
            "fbox" => Node::Boxed(Box::new(Node::Text(self.text_argument()?))),
            "not" => {
                let next = self.argument()?;
                match next {
                    Node::Mo(s, k) => Node::Mo(format!("{s}\u{338}"), k),
                    Node::Mi(s, u) => Node::Mi(format!("{s}\u{338}"), u),
                    _ => return err("\\not before a group"),
                }
            }
            "pmod" => {
                let arg = self.argument()?;
                Node::Fenced(
                    "(",
                    Box::new(Node::Row(vec![
                        Node::Mo("mod".into(), Mo::Plain),
                        Node::Space("0.1667em"),
                        arg,
                    ])),
                    ")",
                )
            }
            "bmod" | "mod" => Node::Mo("mod".into(), Mo::Plain),
            "phantom" | "hphantom" | "vphantom" => {
                self.argument()?;
                return Ok(None);
            }
            "begin" => self.environment()?,
            _ => return err("unknown command"),
        };
        Ok(Some(node))
    }

    fn font(&mut self, font: Font) -> Result<Node, MathError> {
        let mut node = self.argument()?;
        apply_font(&mut node, font);
        Ok(node)
    }

    fn environment(&mut self) -> Result<Node, MathError> {
        let env = self.text_argument()?;
        let base = env.trim_end_matches('*');
        let (left, right, align) = match base {
            "matrix" | "smallmatrix" => ("", "", ""),
            "pmatrix" => ("(", ")", ""),
            "bmatrix" => ("[", "]", ""),
            "Bmatrix" => ("{", "}", ""),
            "vmatrix" => ("|", "|", ""),
            "Vmatrix" => ("‖", "‖", ""),
            "cases" => ("{", "", "left left"),
            "array" => {
                self.text_argument()?; // column specification
                ("", "", "")
            }
            "aligned" | "align" | "split" | "eqnarray" | "alignat" | "alignedat" | "flalign" => {
                if base.starts_with("align") && base.ends_with("at") {
                    self.text_argument()?;
                }
                ("", "", "right left right left right left")
            }
            "gathered" | "gather" | "equation" | "multline" => ("", "", ""),
            _ => return err("unknown environment"),
        };
        let mut rows: Vec<Vec<Node>> = Vec::new();
        let mut row: Vec<Node> = Vec::new();
        loop {
            let cell = self.row(Stop::Cell)?;
            row.push(row_of(cell));
            match self.peek().cloned() {
                Some(Tok::Amp) => self.pos += 1,
                Some(Tok::NewRow) => {
                    self.pos += 1;
                    self.skip_optional_bracket()?;
                    rows.push(std::mem::take(&mut row));
                }
                Some(Tok::Cmd(c)) if c == "end" => {
                    self.pos += 1;
                    let end = self.text_argument()?;
                    if end != env {
                        return err("mismatched \\end");
                    }
                    // A trailing `\\` leaves one empty cell: drop that row.
                    let empty_last =
                        row.len() == 1 && matches!(&row[0], Node::Row(v) if v.is_empty());
                    if !empty_last || rows.is_empty() {
                        rows.push(row);
                    }
                    break;
                }
                _ => return err("unclosed environment"),
            }
        }
        let table = Node::Table(rows, align);
        Ok(if left.is_empty() && right.is_empty() {
            table
        } else {
            Node::Fenced(left, Box::new(table), right)
        })
    }
}

fn is_primes(n: &Node) -> bool {
    matches!(n, Node::Mo(s, _) if !s.is_empty() && s.chars().all(|c| c == '′'))
}

const FUNCTIONS: &[&str] = &[
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "coth", "log", "ln", "lg", "exp", "det", "deg", "dim", "ker", "arg", "gcd", "hom", "Pr",
];

const LIMIT_FUNCTIONS: &[&str] = &[
    "lim", "limsup", "liminf", "max", "min", "sup", "inf", "argmax", "argmin",
];

fn greek(name: &str) -> Option<char> {
    Some(match name {
        "alpha" => 'α',
        "beta" => 'β',
        "gamma" => 'γ',
        "delta" => 'δ',
        "epsilon" => 'ϵ',
        "varepsilon" => 'ε',
        "zeta" => 'ζ',
        "eta" => 'η',
        "theta" => 'θ',
        "vartheta" => 'ϑ',
        "iota" => 'ι',
        "kappa" => 'κ',
        "lambda" => 'λ',
        "mu" => 'μ',
        "nu" => 'ν',
        "xi" => 'ξ',
        "pi" => 'π',
        "varpi" => 'ϖ',
        "rho" => 'ρ',
        "varrho" => 'ϱ',
        "sigma" => 'σ',
        "varsigma" => 'ς',
        "tau" => 'τ',
        "upsilon" => 'υ',
        "phi" => 'ϕ',
        "varphi" => 'φ',
        "chi" => 'χ',
        "psi" => 'ψ',
        "omega" => 'ω',
        "Gamma" => 'Γ',
        "Delta" => 'Δ',
        "Theta" => 'Θ',
        "Lambda" => 'Λ',
        "Xi" => 'Ξ',
        "Pi" => 'Π',
        "Sigma" => 'Σ',
        "Upsilon" => 'Υ',
        "Phi" => 'Φ',
        "Psi" => 'Ψ',
        "Omega" => 'Ω',
        "ell" => 'ℓ',
        "hbar" => 'ℏ',
        "imath" => 'ı',
        "jmath" => 'ȷ',
        "aleph" => 'ℵ',
        "Re" => 'ℜ',
        "Im" => 'ℑ',
        "wp" => '℘',
        _ => return None,
    })
}

fn symbol(name: &str) -> Option<&'static str> {
    Some(match name {
        "cdot" => "⋅",
        "times" => "×",
        "div" => "÷",
        "pm" => "±",
        "mp" => "∓",
        "ast" => "∗",
        "star" => "⋆",
        "circ" => "∘",
        "bullet" => "∙",
        "le" | "leq" => "≤",
        "ge" | "geq" => "≥",
        "leqslant" => "⩽",
        "geqslant" => "⩾",
        "ne" | "neq" => "≠",
        "lt" => "<",
        "gt" => ">",
        "ll" => "≪",
        "gg" => "≫",
        "approx" => "≈",
        "equiv" => "≡",
        "sim" => "∼",
        "simeq" => "≃",
        "cong" => "≅",
        "propto" => "∝",
        "in" => "∈",
        "notin" => "∉",
        "ni" => "∋",
        "subset" => "⊂",
        "supset" => "⊃",
        "subseteq" => "⊆",
        "supseteq" => "⊇",
        "subsetneq" => "⊊",
        "cup" => "∪",
        "cap" => "∩",
        "setminus" | "backslash" => "∖",
        "emptyset" | "varnothing" => "∅",
        "to" | "rightarrow" => "→",
        "leftarrow" | "gets" => "←",
        "Rightarrow" | "implies" => "⇒",
        "Leftarrow" => "⇐",
        "Leftrightarrow" | "iff" => "⇔",
        "leftrightarrow" => "↔",
        "longrightarrow" => "⟶",
        "Longrightarrow" => "⟹",
        "mapsto" => "↦",
        "uparrow" => "↑",
        "downarrow" => "↓",
        "infty" => "∞",
        "partial" => "∂",
        "nabla" => "∇",
        "angle" => "∠",
        "measuredangle" => "∡",
        "triangle" => "△",
        "square" | "Box" => "□",
        "degree" => "°",
        "perp" => "⊥",
        "parallel" => "∥",
        "mid" => "∣",
        "nmid" => "∤",
        "ldots" | "dots" | "dotsc" | "dotsb" => "…",
        "cdots" => "⋯",
        "vdots" => "⋮",
        "ddots" => "⋱",
        "forall" => "∀",
        "exists" => "∃",
        "nexists" => "∄",
        "neg" | "lnot" => "¬",
        "land" | "wedge" => "∧",
        "lor" | "vee" => "∨",
        "oplus" => "⊕",
        "otimes" => "⊗",
        "odot" => "⊙",
        "therefore" => "∴",
        "because" => "∵",
        "prime" => "′",
        "lfloor" => "⌊",
        "rfloor" => "⌋",
        "lceil" => "⌈",
        "rceil" => "⌉",
        "langle" => "⟨",
        "rangle" => "⟩",
        "vert" | "lvert" | "rvert" => "|",
        "Vert" | "lVert" | "rVert" => "‖",
        "colon" => ":",
        "cdotp" => "·",
        "dagger" => "†",
        "checkmark" => "✓",
        _ => return None,
    })
}

fn large_op(name: &str) -> Option<&'static str> {
    Some(match name {
        "sum" => "∑",
        "prod" => "∏",
        "coprod" => "∐",
        "int" => "∫",
        "iint" => "∬",
        "iiint" => "∭",
        "oint" => "∮",
        "bigcup" => "⋃",
        "bigcap" => "⋂",
        "bigoplus" => "⨁",
        "bigotimes" => "⨂",
        "bigvee" => "⋁",
        "bigwedge" => "⋀",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn math(latex: &str) -> String {
        to_mathml(latex, false).unwrap_or_else(|e| panic!("{latex}: {e:?}"))
    }

    /// The markup between `<semantics><mrow>` and `</mrow><annotation`.
    fn body(latex: &str) -> String {
        let m = math(latex);
        let start = m.find("<semantics><mrow>").unwrap() + "<semantics><mrow>".len();
        let end = m.rfind("</mrow><annotation").unwrap();
        m[start..end].to_string()
    }

    /// Every tag in the output is an element we write, from this allow-list, with attributes
    /// from this allow-list; text between tags contains no `<`.
    fn assert_only_mathml(out: &str) {
        const ELEMENTS: &[&str] = &[
            "math",
            "semantics",
            "annotation",
            "mrow",
            "mi",
            "mn",
            "mo",
            "mtext",
            "mspace",
            "mfrac",
            "msqrt",
            "mroot",
            "msub",
            "msup",
            "msubsup",
            "munder",
            "mover",
            "munderover",
            "mtable",
            "mtr",
            "mtd",
        ];
        const ATTRIBUTES: &[&str] = &[
            "display",
            "encoding",
            "mathvariant",
            "stretchy",
            "fence",
            "width",
            "linethickness",
            "accent",
            "accentunder",
            "columnalign",
            "class",
        ];
        let mut rest = out;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').expect("every tag closes") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "a `<` inside a tag in {out}");
            let tag = tag.strip_prefix('/').unwrap_or(tag);
            let (name, mut attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            assert!(
                ELEMENTS.contains(&name),
                "unexpected element <{name}> in {out}"
            );
            while !attrs.is_empty() {
                let (key, after) = attrs
                    .split_once("=\"")
                    .expect("attributes are key=\"value\"");
                assert!(
                    ATTRIBUTES.contains(&key),
                    "unexpected attribute {key} in {out}"
                );
                let (value, after) = after.split_once('"').expect("value closes");
                assert!(!value.contains(['<', '>', '&']), "{value}");
                attrs = after.trim_start();
            }
            rest = &rest[close + 1..];
        }
    }

    #[test]
    fn common_constructs_convert() {
        assert_eq!(body("x^2"), "<msup><mi>x</mi><mn>2</mn></msup>");
        assert_eq!(
            body("\\frac{1}{2}"),
            "<mfrac><mrow><mn>1</mn></mrow><mrow><mn>2</mn></mrow></mfrac>"
                .replace("<mrow><mn>1</mn></mrow>", "<mn>1</mn>")
                .replace("<mrow><mn>2</mn></mrow>", "<mn>2</mn>")
        );
        assert_eq!(body("\\frac12"), "<mfrac><mn>1</mn><mn>2</mn></mfrac>");
        assert_eq!(body("\\sqrt{3}"), "<msqrt><mn>3</mn></msqrt>");
        assert_eq!(body("\\sqrt[3]{8}"), "<mroot><mn>8</mn><mn>3</mn></mroot>");
        assert_eq!(body("a_1"), "<msub><mi>a</mi><mn>1</mn></msub>");
        assert_eq!(
            body("x_i^2"),
            "<msubsup><mi>x</mi><mi>i</mi><mn>2</mn></msubsup>"
        );
        assert_eq!(body("3.14"), "<mn>3.14</mn>");
        assert_eq!(body("\\pi r"), "<mi>π</mi><mi>r</mi>");
        assert_eq!(body("\\Gamma"), "<mi mathvariant=\"normal\">Γ</mi>");
        assert_eq!(body("a-b"), "<mi>a</mi><mo>−</mo><mi>b</mi>");
        assert_eq!(body("1 \\le n"), "<mn>1</mn><mo>≤</mo><mi>n</mi>");
        assert_eq!(body("\\text{if } x"), "<mtext>if </mtext><mi>x</mi>");
        assert_eq!(
            body("\\boxed{42}"),
            "<mrow class=\"boxed\"><mn>42</mn></mrow>"
        );
        assert_eq!(
            body("\\sum_{k=1}^{n} k"),
            "<munderover><mo>∑</mo><mrow><mi>k</mi><mo>=</mo><mn>1</mn></mrow><mi>n</mi></munderover><mi>k</mi>"
        );
        assert_eq!(
            body("\\left( x \\right)"),
            "<mrow><mo fence=\"true\">(</mo><mrow><mi>x</mi></mrow><mo fence=\"true\">)</mo></mrow>"
        );
        assert_eq!(body("\\mathbb{R}"), "<mi>ℝ</mi>");
        assert_eq!(body("\\operatorname{lcm}"), "<mi>lcm</mi>");
        assert_eq!(body("\\sin x"), "<mi>sin</mi><mi>x</mi>");
        assert!(body("f'(x)").starts_with("<msup><mi>f</mi><mo>′</mo></msup>"));
        assert_eq!(
            body("\\binom{n}{k}"),
            "<mrow><mo fence=\"true\">(</mo><mfrac linethickness=\"0\"><mi>n</mi><mi>k</mi></mfrac><mo fence=\"true\">)</mo></mrow>"
        );
        assert!(body("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}")
            .contains("<mtable><mtr><mtd><mn>1</mn></mtd><mtd><mn>2</mn></mtd></mtr><mtr><mtd><mn>3</mn></mtd><mtd><mn>4</mn></mtd></mtr></mtable>"));
        let cases = math("f(x) = \\begin{cases} 1 & x > 0 \\\\ 0 & \\text{otherwise} \\end{cases}");
        assert!(cases.contains("columnalign=\"left left\""), "{cases}");
        assert_only_mathml(&cases);
        assert!(math("x").starts_with("<math><semantics>"));
        assert!(to_mathml("x", true)
            .unwrap()
            .starts_with("<math display=\"block\">"));
    }

    #[test]
    fn broken_latex_is_an_error() {
        for bad in [
            "\\frac{1}{",
            "\\frac{1}",
            "x^",
            "}",
            "{x",
            "\\left( x",
            "x \\right)",
            "\\unknowncommand{x}",
            "\\begin{pmatrix} 1 \\end{bmatrix}",
            "\\begin{foo} x \\end{foo}",
            "a & b",
            "x^2^3",
            "\\",
            "\\text{a",
        ] {
            assert!(to_mathml(bad, false).is_err(), "{bad:?} converted");
        }
        let deep = "{".repeat(500) + &"}".repeat(500);
        assert!(
            to_mathml(&deep, false).is_err(),
            "deep nesting is refused, not a stack overflow"
        );
        let long = "x+".repeat(MAX_FORMULA_BYTES);
        assert!(to_mathml(&long, false).is_err());
    }

    #[test]
    fn segments_find_every_delimiter() {
        let segs = segments("Let $x^2$ and \\(y\\), then $$z$$ and \\[w\\].");
        let kinds: Vec<(bool, bool)> = segs
            .iter()
            .map(|s| match s {
                Segment::Text(_) => (false, false),
                Segment::Math { display, .. } => (true, *display),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (false, false),
                (true, false),
                (false, false),
                (true, false),
                (false, false),
                (true, true),
                (false, false),
                (true, true),
                (false, false)
            ]
        );
        assert_eq!(segs[0], Segment::Text("Let ".into()));
        assert_eq!(segs[8], Segment::Text(".".into()));
    }

    #[test]
    fn dollars_that_are_money_stay_text() {
        for text in [
            "It costs $5 and $10.",
            "a $ b $ c",
            "price \\$3 and \\$4",
            "one $ alone",
            "$$",
            "$ $",
        ] {
            assert_eq!(segments(text), vec![Segment::Text(text.into())], "{text:?}");
        }
    }

    #[test]
    fn broken_formulas_render_as_their_literal_text() {
        let text = "before $\\frac{1}{$ after \\[ \\badcmd \\] end";
        assert_eq!(segments(text), vec![Segment::Text(text.into())]);
        let segs = segments("ok $x$ bad $\\nope$");
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0], Segment::Text("ok ".into()));
        assert!(matches!(&segs[1], Segment::Math { display: false, .. }));
        assert_eq!(segs[2], Segment::Text(" bad $\\nope$".into()));
    }

    #[test]
    fn hostile_input_comes_out_inert() {
        let attacks = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "\\text{<script>alert(1)</script>}",
            "</math><script>alert(1)</script>",
            "\\text{</math><img src=x onerror=alert(1)>}",
            "a<b>c",
            "\\operatorname{<script>}",
            "x \\text{\" onmouseover=\"alert(1)}",
            "\\mathbb{<}",
            "\\left< x \\right>",
            "\\begin{array}{<script>} 1 \\end{array}",
            "\\textcolor{red\" onload=\"x}{1}",
            "\\label{</annotation><script>}",
        ];
        for attack in attacks {
            for display in [false, true] {
                if let Ok(out) = to_mathml(attack, display) {
                    assert_only_mathml(&out);
                    assert!(!out.contains("<script"), "{out}");
                    assert!(!out.contains("<img"), "{out}");
                }
            }
            // The same strings inside delimiters in running text: converted or left as text,
            // and text is escaped by Leptos when rendered; math segments must be inert.
            for text in [
                format!("${attack}$"),
                format!("$${attack}$$"),
                format!("\\({attack}\\)"),
                format!("before {attack} after"),
            ] {
                for seg in segments(&text) {
                    if let Segment::Math { mathml, .. } = seg {
                        assert_only_mathml(&mathml);
                    }
                }
            }
        }
        // Text content and the annotation keep the characters, escaped.
        let out = to_mathml("\\text{<script>}", false).unwrap();
        assert!(out.contains("<mtext>&lt;script&gt;</mtext>"), "{out}");
        assert!(out.contains("\\text{&lt;script&gt;}</annotation>"), "{out}");
        let out = to_mathml("a<b", false).unwrap();
        assert!(out.contains("<mo>&lt;</mo>"), "{out}");
    }

    #[test]
    fn escape_covers_markup_characters() {
        let mut s = String::new();
        escape_into(&mut s, "<a href='x' title=\"y\">&</a>");
        assert_eq!(
            s,
            "&lt;a href=&#39;x&#39; title=&quot;y&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
