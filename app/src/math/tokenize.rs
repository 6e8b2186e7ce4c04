//! The LaTeX of one formula split into tokens: commands, characters, braces, scripts, cell and
//! row separators, spaces.

use super::MathError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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

pub(super) fn tokenize(s: &str) -> Result<Vec<Tok>, MathError> {
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
