//! Tokens to the formula tree: groups, scripts, commands, `\left..\right`, environments, and the
//! fonts (`\mathbb`, `\mathbf`, ...) applied to a subtree. Anything it does not understand is an
//! error, so the caller shows the formula as text.

use super::node::{Mo, Node};
use super::symbols::{greek, large_op, symbol, FUNCTIONS, LIMIT_FUNCTIONS};
use super::tokenize::Tok;
use super::{MathError, MAX_DEPTH};

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

/// Parses a whole formula's tokens into the items of its top-level row.
pub(super) fn parse(toks: Vec<Tok>) -> Result<Vec<Node>, MathError> {
    let mut parser = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    parser.row(Stop::End)
}

fn err<T>(msg: &str) -> Result<T, MathError> {
    Err(MathError(msg.to_string()))
}

fn row_of(mut items: Vec<Node>) -> Node {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        Node::Row(items)
    }
}

fn is_primes(n: &Node) -> bool {
    matches!(n, Node::Mo(s, _) if !s.is_empty() && s.chars().all(|c| c == '′'))
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Font {
    Upright,
    Italic,
    Bold,
    DoubleStruck,
    Script,
    Fraktur,
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
