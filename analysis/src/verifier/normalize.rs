//! Normalisation: the canonical string form of an answer.
//!
//! Steps in order (one pass; the pass is repeated until nothing changes, at most
//! [`MAX_PASSES`] times, which is what makes `normalize_answer` idempotent):
//! 1. Unicode maths (`−`, `×`, `π`, `∞`, `≤`, `°`, no-break space) to ASCII/LaTeX; drop `$`, `%`
//!    (the caller records whether a percent sign was present), `\$`, `\%`, `^\circ`/`^{\circ}`/`°`.
//! 2. LaTeX commands: `\dfrac`/`\tfrac` -> `\frac`, `\dbinom` -> `\binom`, `\neq`/`\leq`/`\geq` ->
//!    `\ne`/`\le`/`\ge`; drop `\left`, `\right` (and their `.` null delimiter), `\big`-family,
//!    `\displaystyle`, spacing (`\!`, `\,`, `\;`, `\:`, `\ `, `\quad`, `\qquad`, `~`); unwrap
//!    `\text{..}`, `\textbf`, `\mathrm`, `\mbox`, `\boxed`, `\fbox` and friends (keep the content).
//! 3. Trailing unit words (`cm`, `degrees`, `dollars`, `square units`, ...) after a number.
//! 4. Whitespace removed (a single space is kept between a command and a following letter, so
//!    `\pi r` does not become the unknown command `\pir`).
//! 5. Trailing `.` removed; `\frac12` -> `\frac{1}{2}`, `\frac1{72}`, `\sqrt3` -> `\sqrt{3}`.
//! 6. Thousands separators in a plain number (`1,000`, `12{,}345.5`) removed, when the config
//!    allows it (default: yes).
//! 7. Decimal tidying: `12.00` -> `12`, `1.50` -> `1.5`, `.5` -> `0.5`; a whole `a/b` of
//!    integers -> `\frac{a}{b}`.
//! 8. A short left-hand side (`x=`, `k=`, `a_1=`, `\theta=`, `x\in`) dropped when there is exactly
//!    one `=`.
//! 9. Multiple choice: `(A)`, `(a)`, `A)` -> `A`.
//! 10. A pure word (letters only, 3 or more, or `no`) is lower-cased; `zero`..`twenty` become
//!     digits.

use super::VerifierConfig;

/// The pass is repeated until it is a fixed point, at most this many times. Real answers settle
/// in one or two passes; adversarial strings (found by cargo fuzz) can peel one layer per pass,
/// so the cap is generous. Each pass is linear in the input.
pub const MAX_PASSES: usize = 64;

/// Unit words removed when they trail a number. Single letters (`m`, `s`) are deliberately not
/// here: `5m` is more often an expression than five metres.
const UNIT_WORDS: &[&str] = &[
    "cm",
    "centimeter",
    "centimeters",
    "centimetre",
    "centimetres",
    "mm",
    "millimeters",
    "km",
    "kilometers",
    "meter",
    "meters",
    "metre",
    "metres",
    "inch",
    "inches",
    "feet",
    "foot",
    "ft",
    "yard",
    "yards",
    "mile",
    "miles",
    "mph",
    "kmh",
    "unit",
    "units",
    "sq",
    "square",
    "cubic",
    "degree",
    "degrees",
    "deg",
    "radian",
    "radians",
    "dollar",
    "dollars",
    "cent",
    "cents",
    "hour",
    "hours",
    "hr",
    "hrs",
    "minute",
    "minutes",
    "min",
    "mins",
    "second",
    "seconds",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "kg",
    "gram",
    "grams",
    "pound",
    "pounds",
    "lb",
    "lbs",
    "ounce",
    "ounces",
    "oz",
    "gallon",
    "gallons",
    "liter",
    "liters",
    "litre",
    "litres",
    "ml",
    "people",
    "persons",
    "students",
    "ways",
    "points",
    "times",
    "percent",
];

const UNWRAP_COMMANDS: &[&str] = &[
    "text",
    "textbf",
    "textit",
    "textrm",
    "textnormal",
    "textsf",
    "texttt",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "mathnormal",
    "mbox",
    "hbox",
    "boxed",
    "fbox",
    "emph",
    "operatorname",
];

const DROP_COMMANDS: &[&str] = &[
    "left",
    "right",
    "big",
    "Big",
    "bigg",
    "Bigg",
    "bigl",
    "bigr",
    "Bigl",
    "Bigr",
    "biggl",
    "biggr",
    "Biggl",
    "Biggr",
    "displaystyle",
    "textstyle",
    "limits",
    "nolimits",
];

const SPACING_COMMANDS: &[&str] = &[
    "quad",
    "qquad",
    "enspace",
    "thinspace",
    "medspace",
    "thickspace",
];

/// Canonical form under `config` (only `thousands_separators` affects the string form).
pub fn normalize_with(answer: &str, config: &VerifierConfig) -> String {
    normalize_full(answer, config, true)
}

/// Like [`normalize_with`], optionally keeping a short `x=` left-hand side (the verifier retries
/// with it kept, so that `y=2x+3` can still be compared as an equation with `2x-y+3=0`).
pub fn normalize_full(answer: &str, config: &VerifierConfig, strip_prefix: bool) -> String {
    let trimmed = answer.trim();
    if is_plain_integer(trimmed) {
        return trimmed.to_string();
    }
    let mut current = normalize_pass(trimmed, config, strip_prefix);
    if is_simple_number_form(&current) {
        return current; // numbers and braced fractions are a fixed point after one pass
    }
    for _ in 1..MAX_PASSES {
        let next = normalize_pass(&current, config, strip_prefix);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// `123`, `-45`: the common AIME case, already canonical.
pub fn is_plain_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.len() <= 30 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Output of one pass that is exactly a tidy decimal (`-12.5`) or `\frac{int}{int}` (optionally
/// negated): such a string is already canonical (no pass step changes it), so the confirming
/// second pass is skipped. This halves the cost of the common fraction case; idempotence is
/// property-tested.
fn is_simple_number_form(s: &str) -> bool {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let is_int = |t: &str| !t.is_empty() && t.len() <= 30 && t.bytes().all(|b| b.is_ascii_digit());
    if let Some(body) = unsigned
        .strip_prefix("\\frac{")
        .and_then(|t| t.strip_suffix('}'))
    {
        return body
            .split_once("}{")
            .is_some_and(|(a, b)| is_int(a) && is_int(b));
    }
    match unsigned.split_once('.') {
        None => is_int(unsigned),
        Some((a, b)) => is_int(a) && is_int(b) && !b.ends_with('0'),
    }
}

/// True when the raw answer carries a percent sign (`75\%`, `75%`, `75 percent`).
pub fn has_percent(raw: &str) -> bool {
    raw.contains('%') || raw.to_ascii_lowercase().trim_end().ends_with("percent")
}

fn normalize_pass(s: &str, config: &VerifierConfig, strip_prefix: bool) -> String {
    let s = latex_pass(s);
    let s = strip_trailing_units(&s);
    let s = remove_spaces(&s);
    // Trailing sentence punctuation; a `\` is included so that `\.` at the end goes in one pass.
    let s = s.trim_end_matches(['.', ',', '\\']).to_string();
    let s = fix_frac_and_sqrt_braces(&s);
    let s = if config.thousands_separators {
        remove_thousands_separators(&s)
    } else {
        s
    };
    let s = tidy_decimals(&s);
    let s = slash_fraction(&s).unwrap_or(s);
    let s = if strip_prefix {
        strip_variable_prefix(&s)
    } else {
        s
    };
    let s = multiple_choice_letter(&s).unwrap_or(s);
    words(&s)
}

/// Step 1 and 2: one linear scan with a brace stack, so that unwrapping `\text{..}` drops exactly
/// its own closing brace, whatever the nesting.
fn latex_pass(s: &str) -> String {
    let s = if s.contains("circ") {
        s.replace("^{\\circ}", "").replace("^\\circ", "")
    } else {
        s.to_string()
    };
    let mut out = String::with_capacity(s.len());
    // For each open brace: true when its closing brace must be dropped (unwrapped command).
    let mut braces: Vec<bool> = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let rest = &s[i + 1..];
                let name_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
                if name_len == 0 {
                    // Escaped symbol: `\!`, `\,`, `\%`, `\$`, `\{`, `\\`...
                    let Some(next) = rest.chars().next() else {
                        break;
                    };
                    chars.next();
                    match next {
                        '!' | ',' | ';' | ':' | ' ' | '>' => out.push(' '),
                        // `\%`, `\$`, and the maths delimiters `\(..\)`, `\[..\]`.
                        '%' | '$' | '(' | ')' | '[' | ']' => {}
                        '\\' => {
                            // `\\frac` (JSON-escaped) is `\frac`; a bare `\\` is a row break.
                            if rest[1..].starts_with(|ch: char| ch.is_ascii_alphabetic()) {
                                out.push('\\');
                            } else {
                                out.push_str("\\\\");
                            }
                        }
                        other => {
                            out.push('\\');
                            out.push(other);
                        }
                    }
                    continue;
                }
                let name = &rest[..name_len];
                for _ in 0..name_len {
                    chars.next();
                }
                let after = &rest[name_len..];
                if UNWRAP_COMMANDS.contains(&name) {
                    let spaces = after.len() - after.trim_start().len();
                    if after.trim_start().starts_with('{') {
                        for _ in 0..spaces + 1 {
                            chars.next();
                        }
                        braces.push(true);
                    }
                    out.push(' ');
                } else if DROP_COMMANDS.contains(&name) {
                    // `\left.` / `\right.` are invisible delimiters.
                    if (name == "left" || name == "right") && after.starts_with('.') {
                        chars.next();
                    }
                } else if SPACING_COMMANDS.contains(&name) {
                    out.push(' ');
                } else {
                    let renamed = match name {
                        "dfrac" | "tfrac" => "frac",
                        "dbinom" | "tbinom" => "binom",
                        "neq" => "ne",
                        "leq" | "leqslant" => "le",
                        "geq" | "geqslant" => "ge",
                        "varnothing" => "emptyset",
                        "lbrace" => "{",
                        "rbrace" => "}",
                        "lt" => "<",
                        "gt" => ">",
                        other => other,
                    };
                    if renamed == "<" || renamed == ">" {
                        out.push_str(renamed);
                    } else {
                        out.push('\\');
                        out.push_str(renamed);
                        // Keep a command separated from letters that follow it.
                        if after.starts_with(|ch: char| ch.is_ascii_alphabetic()) {
                            out.push(' ');
                        }
                    }
                }
            }
            '{' => {
                braces.push(false);
                out.push('{');
            }
            '}' => match braces.pop() {
                Some(true) => out.push(' '),
                _ => out.push('}'),
            },
            '$' | '%' | '°' => {}
            '~' | '\u{a0}' | '\n' | '\r' | '\t' => out.push(' '),
            '−' | '–' => out.push('-'),
            '×' => out.push_str("\\times "),
            '·' => out.push_str("\\cdot "),
            '÷' => out.push_str("\\div "),
            'π' => out.push_str("\\pi "),
            '∞' => out.push_str("\\infty "),
            '≤' => out.push_str("\\le "),
            '≥' => out.push_str("\\ge "),
            '≠' => out.push_str("\\ne "),
            '√' => out.push_str("\\sqrt "),
            other => out.push(other),
        }
    }
    out
}

/// Step 3: removes unit words at the end (`5 cm`, `3 square units`, `4 cm^2`), when what
/// precedes the run of unit words ends like a number.
fn strip_trailing_units(s: &str) -> String {
    let mut rest = s.trim_end();
    let mut removed_any = false;
    loop {
        let without_power = rest
            .strip_suffix("^2")
            .or_else(|| rest.strip_suffix("^3"))
            .unwrap_or(rest);
        let word_len = without_power
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        if word_len == 0 {
            break;
        }
        let (before, word) = without_power.split_at(without_power.len() - word_len);
        if before.ends_with('\\') || !UNIT_WORDS.contains(&word.to_ascii_lowercase().as_str()) {
            break;
        }
        rest = before.trim_end();
        removed_any = true;
    }
    let ends_like_number = rest
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_digit() || c == '}' || c == ')');
    if removed_any && ends_like_number {
        rest.to_string()
    } else {
        s.trim_end().to_string()
    }
}

/// Step 4: drops whitespace, keeping one space between a command name and a following letter.
fn remove_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_command = false;
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && in_command && c.is_ascii_alphabetic() {
            out.push(' ');
        }
        // `\log_2 8`: a one-character subscript followed by a space ends there; brace it so
        // that removing the space does not make it `_28`.
        let tail = out.as_bytes();
        if pending_space
            && c.is_ascii_alphanumeric()
            && tail.len() >= 2
            && tail[tail.len() - 2] == b'_'
            && tail[tail.len() - 1].is_ascii_alphanumeric()
        {
            let sub = out.pop().unwrap();
            out.push('{');
            out.push(sub);
            out.push('}');
        }
        pending_space = false;
        if c == '\\' {
            in_command = true;
        } else if !c.is_ascii_alphabetic() {
            in_command = false;
        }
        out.push(c);
    }
    out
}

/// Position of the matching `}` for every `{` (bytes), computed in one pass.
fn brace_matches(bytes: &[u8]) -> Vec<Option<usize>> {
    let mut matches = vec![None; bytes.len()];
    let mut stack = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'{' {
            stack.push(i);
        } else if b == b'}' {
            if let Some(open) = stack.pop() {
                matches[open] = Some(i);
            }
        }
    }
    matches
}

/// Step 5: `\frac12` -> `\frac{1}{2}`, `\sqrt3` -> `\sqrt{3}`. Linear: brace matches are
/// precomputed and the insertions applied once at the end.
fn fix_frac_and_sqrt_braces(s: &str) -> String {
    if !s.contains("\\frac") && !s.contains("\\sqrt") {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let matches = brace_matches(bytes);
    let mut insertions: Vec<(usize, char)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let (args, cmd_len) = if bytes[i..].starts_with(b"\\frac") {
            (2, 5)
        } else if bytes[i..].starts_with(b"\\sqrt") {
            (1, 5)
        } else {
            i += 1;
            continue;
        };
        let mut p = i + cmd_len;
        if bytes.get(p).is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.get(p.saturating_sub(1)) != Some(&b' ')
        {
            // `\fracxy` is not `\frac`: a longer command name; `\frac xy` (with space) is.
            i = p;
            continue;
        }
        if bytes.get(p) == Some(&b' ') {
            p += 1;
        }
        if args == 1 && bytes.get(p) == Some(&b'[') {
            match bytes[p..].iter().position(|&b| b == b']') {
                Some(close) => p += close + 1,
                None => {
                    i = p;
                    continue;
                }
            }
        }
        for _ in 0..args {
            match bytes.get(p) {
                Some(b'{') => match matches[p] {
                    Some(close) => p = close + 1,
                    None => break,
                },
                Some(b) if b.is_ascii_alphanumeric() => {
                    insertions.push((p, '{'));
                    insertions.push((p + 1, '}'));
                    p += 1;
                }
                _ => break,
            }
        }
        i += cmd_len;
    }
    if insertions.is_empty() {
        return s.to_string();
    }
    insertions.sort_by_key(|&(pos, _)| pos); // stable: `}{` at one position keep their order
    let mut out = String::with_capacity(s.len() + insertions.len());
    let mut last = 0;
    for (pos, c) in insertions {
        out.push_str(&s[last..pos]);
        out.push(c);
        last = pos;
    }
    out.push_str(&s[last..]);
    // `\frac xy` (a space kept after the command) becomes `\frac {x}{y}`: drop that space.
    out.replace("\\frac {", "\\frac{")
        .replace("\\sqrt {", "\\sqrt{")
}

/// Step 6: `1,000` and `12{,}345.5` -> digits only, when the whole answer is such a number.
fn remove_thousands_separators(s: &str) -> String {
    let s = if s.contains("{,}") {
        s.replace("{,}", ",")
    } else {
        s.to_string()
    };
    if !s.contains(',') {
        return s;
    }
    let unsigned = s.strip_prefix('-').unwrap_or(&s);
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (unsigned, None),
    };
    let groups: Vec<&str> = int_part.split(',').collect();
    let well_formed = groups.len() >= 2
        && (1..=3).contains(&groups[0].len())
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
        && groups[1..].iter().all(|g| g.len() == 3)
        && frac_part.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if well_formed {
        s.replace(',', "")
    } else {
        s
    }
}

/// Step 7: trailing zeros of decimals and a missing leading zero.
fn tidy_decimals(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 1);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Not a number start: after a letter or `_` (`x1.50` keeps its form), or a dot right after a
        // digit (`1.5.0`: the second `.0` is not a number of its own).
        let prev_is_word = i > 0
            && (bytes[i - 1].is_ascii_alphabetic()
                || bytes[i - 1] == b'_'
                || (b == b'.' && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.')));
        if (b.is_ascii_digit()
            || (b == b'.' && bytes.get(i + 1).is_some_and(|n| n.is_ascii_digit())))
            && !prev_is_word
        {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let int_part = &s[start..i];
            if i < bytes.len()
                && bytes[i] == b'.'
                && bytes.get(i + 1).is_some_and(|n| n.is_ascii_digit())
            {
                let frac_start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let frac = s[frac_start..i].trim_end_matches('0');
                out.push_str(if int_part.is_empty() { "0" } else { int_part });
                if !frac.is_empty() {
                    out.push('.');
                    out.push_str(frac);
                }
            } else {
                out.push_str(int_part);
            }
            continue;
        }
        // Copy one whole char (never split a multi-byte char).
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Step 7b: a whole answer `a/b` of two integers becomes `\frac{a}{b}` (Hendrycks), so both
/// spellings count as one answer in diversity and majority vote.
fn slash_fraction(s: &str) -> Option<String> {
    let (sign, unsigned) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s),
    };
    let (a, b) = unsigned.split_once('/')?;
    let is_int = |t: &str| !t.is_empty() && t.len() <= 30 && t.bytes().all(|c| c.is_ascii_digit());
    (is_int(a) && is_int(b)).then(|| format!("{sign}\\frac{{{a}}}{{{b}}}"))
}

/// Step 8: `x=5` -> `5`, `a_1=3` -> `3`, `\theta=\frac{\pi}{2}`, `x\in[0,1]` -> `[0,1]`.
fn strip_variable_prefix(s: &str) -> String {
    let is_short_lhs = |lhs: &str| -> bool {
        let base = lhs.split_once('_').map_or(lhs, |(b, sub)| {
            if sub.len() <= 4
                && sub
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'{' || c == b'}')
            {
                b
            } else {
                "!"
            }
        });
        (base.len() == 1 && base.as_bytes()[0].is_ascii_alphabetic())
            || (base.starts_with('\\')
                && base.len() <= 9
                && base[1..].bytes().all(|c| c.is_ascii_alphabetic())
                && base.len() > 1)
    };
    if s.matches('=').count() == 1 {
        let (lhs, rhs) = s.split_once('=').unwrap();
        if is_short_lhs(lhs) && !rhs.is_empty() {
            return rhs.to_string();
        }
    }
    if let Some(pos) = s.find("\\in") {
        let (lhs, rhs) = (&s[..pos], &s[pos + 3..]);
        if is_short_lhs(lhs)
            && !rhs.starts_with(|c: char| c.is_ascii_alphabetic())
            && !rhs.is_empty()
        {
            return rhs.to_string();
        }
    }
    s.to_string()
}

/// Step 9: `(A)`, `(a)`, `A)` -> `A`.
fn multiple_choice_letter(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let letter = match b {
        [b'(', l, b')'] if l.is_ascii_alphabetic() => *l,
        [l, b')'] if l.is_ascii_uppercase() => *l,
        _ => return None,
    };
    Some((letter.to_ascii_uppercase() as char).to_string())
}

/// Step 10: pure words are compared case-insensitively; small number words become digits.
/// Two letters are usually a product of variables (`xy`, `ab`), so they keep their case, except
/// `no` (yes/no tasks: `No` = `no`).
fn words(s: &str) -> String {
    if s.len() > 40
        || !s.bytes().all(|b| b.is_ascii_alphabetic())
        || (s.len() < 3 && !s.eq_ignore_ascii_case("no"))
    {
        return s.to_string();
    }
    let lower = s.to_ascii_lowercase();
    const NUMBER_WORDS: &[&str] = &[
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    match NUMBER_WORDS.iter().position(|w| *w == lower) {
        Some(n) => n.to_string(),
        None => lower,
    }
}
