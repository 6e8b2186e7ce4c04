//! A small parser and evaluator for the maths that final answers are written in.
//!
//! Input is an already *normalised* answer (see `normalize.rs`): no spaces except between a
//! command and a following letter, `\frac{a}{b}` with braces, no `\left`/`\right`.
//!
//! Why no CAS: equivalence of expressions is decided by evaluating both sides at seeded random
//! points (see `equiv.rs`); for constants we also keep an exact rational value so that
//! `\frac{2}{4}` vs `0.5` is decided exactly. Everything here is bounded: the parser gives up past
//! [`MAX_DEPTH`] nesting levels (so recursion can never overflow the stack) and past
//! [`MAX_TOKENS`] tokens; sums and products are flat lists so long chains add no depth.

/// Deepest nesting (parentheses, fractions, powers, function arguments) the parser accepts.
pub const MAX_DEPTH: usize = 64;
/// Most tokens one expression may have.
pub const MAX_TOKENS: usize = 2_000;

/// Why an expression could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not something this grammar understands (words, unknown commands, stray symbols).
    NotMath,
    /// Past a safety bound: too deep or too long. The caller answers `Unverifiable`.
    TooComplex,
}

/// An exact rational with `i128` parts; every operation is checked and gives `None` on overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rational {
    pub num: i128,
    pub den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Rational {
    /// `num/den` in lowest terms with a positive denominator; `None` when `den == 0`.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let (mut n, mut d) = (num / g, den / g);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Self { num: n, den: d })
    }
    pub fn integer(n: i128) -> Self {
        Self { num: n, den: 1 }
    }
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
    fn add(self, o: Self) -> Option<Self> {
        let g = gcd(self.den, o.den).max(1);
        let den = (self.den / g).checked_mul(o.den)?;
        let num = self
            .num
            .checked_mul(o.den / g)?
            .checked_add(o.num.checked_mul(self.den / g)?)?;
        Self::new(num, den)
    }
    fn mul(self, o: Self) -> Option<Self> {
        let g1 = gcd(self.num, o.den).max(1);
        let g2 = gcd(o.num, self.den).max(1);
        let num = (self.num / g1).checked_mul(o.num / g2)?;
        let den = (self.den / g2).checked_mul(o.den / g1)?;
        Self::new(num, den)
    }
    fn recip(self) -> Option<Self> {
        Self::new(self.den, self.num)
    }
    fn neg(self) -> Option<Self> {
        Some(Self {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }
    fn pow(self, exp: i128) -> Option<Self> {
        if exp.unsigned_abs() > 128 {
            return None;
        }
        let base = if exp < 0 { self.recip()? } else { self };
        let mut acc = Self::integer(1);
        for _ in 0..exp.unsigned_abs() {
            acc = acc.mul(base)?;
        }
        Some(acc)
    }
    /// Parses a plain decimal literal such as `12`, `0.125` or `3.` exactly.
    pub fn from_decimal(text: &str) -> Option<Self> {
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, f),
            None => (text, ""),
        };
        if int_part.len() + frac_part.len() > 36 || (int_part.is_empty() && frac_part.is_empty()) {
            return None;
        }
        let mut num: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            if !b.is_ascii_digit() {
                return None;
            }
            num = num.checked_mul(10)?.checked_add((b - b'0') as i128)?;
        }
        let den = 10i128.checked_pow(frac_part.len() as u32)?;
        Self::new(num, den)
    }
}

/// Functions the grammar knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Sqrt,
    Sin,
    Cos,
    Tan,
    Cot,
    Sec,
    Csc,
    Arcsin,
    Arccos,
    Arctan,
    Ln,
    Log,
    Exp,
    Abs,
}

/// A parsed expression. Sums and products are flat so that `1+1+...+1` adds no depth.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(Rational),
    /// A literal too long for an exact rational; its float value.
    Float(f64),
    Constant(f64),
    Var(String),
    /// Terms with their sign: `(negated, term)`.
    Sum(Vec<(bool, Expr)>),
    /// Factors with their role: `(divide, factor)`.
    Product(Vec<(bool, Expr)>),
    Pow(Box<Expr>, Box<Expr>),
    Root(Box<Expr>, Box<Expr>),
    Apply(Func, Box<Expr>),
    Factorial(Box<Expr>),
    Binom(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(String),
    Letter(char),
    Cmd(String),
    Sym(char),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, ParseError> {
    let bytes = s.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if toks.len() > MAX_TOKENS {
            return Err(ParseError::TooComplex);
        }
        let b = bytes[i];
        match b {
            b' ' => i += 1,
            b'0'..=b'9' | b'.' => {
                let start = i;
                let mut seen_dot = false;
                while i < bytes.len()
                    && (bytes[i].is_ascii_digit() || (bytes[i] == b'.' && !seen_dot))
                {
                    if bytes[i] == b'.' {
                        // A dot not followed by a digit ends the number (`3.` at the end).
                        if i + 1 >= bytes.len() || !bytes[i + 1].is_ascii_digit() {
                            if i == start {
                                return Err(ParseError::NotMath);
                            }
                            i += 1;
                            break;
                        }
                        seen_dot = true;
                    }
                    i += 1;
                }
                toks.push(Tok::Num(s[start..i].trim_end_matches('.').to_string()));
            }
            b'a'..=b'z' | b'A'..=b'Z' => {
                toks.push(Tok::Letter(b as char));
                i += 1;
            }
            b'\\' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j].is_ascii_alphabetic() {
                    j += 1;
                }
                if j == start {
                    // `\{`, `\}` or another escaped symbol.
                    match bytes.get(start) {
                        Some(b'{') => toks.push(Tok::Sym('(')),
                        Some(b'}') => toks.push(Tok::Sym(')')),
                        Some(b'|') => toks.push(Tok::Sym('|')),
                        _ => return Err(ParseError::NotMath),
                    }
                    i = start + 1;
                } else {
                    toks.push(Tok::Cmd(s[start..j].to_string()));
                    i = j;
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'^' | b'_' | b'!' | b'(' | b')' | b'[' | b']' | b'{'
            | b'}' | b'|' | b',' | b'=' => {
                toks.push(Tok::Sym(b as char));
                i += 1;
            }
            _ => return Err(ParseError::NotMath),
        }
    }
    Ok(toks)
}

/// Parses a normalised answer into an expression.
pub fn parse(s: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(ParseError::NotMath);
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(ParseError::NotMath);
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
];

fn func_named(name: &str) -> Option<Func> {
    Some(match name {
        "sin" => Func::Sin,
        "cos" => Func::Cos,
        "tan" => Func::Tan,
        "cot" => Func::Cot,
        "sec" => Func::Sec,
        "csc" => Func::Csc,
        "arcsin" => Func::Arcsin,
        "arccos" => Func::Arccos,
        "arctan" => Func::Arctan,
        "ln" => Func::Ln,
        "log" => Func::Log,
        "exp" => Func::Exp,
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat_sym(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Sym(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(ParseError::TooComplex)
        } else {
            Ok(())
        }
    }
    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut terms = Vec::new();
        let mut negated = false;
        // Leading signs.
        loop {
            if self.eat_sym('-') {
                negated = !negated;
            } else if !self.eat_sym('+') {
                break;
            }
        }
        terms.push((negated, self.term()?));
        loop {
            let neg = if self.eat_sym('+') {
                false
            } else if self.eat_sym('-') {
                true
            } else if matches!(self.peek(), Some(Tok::Cmd(c)) if c == "pm" || c == "mp") {
                return Err(ParseError::NotMath);
            } else {
                break;
            };
            let mut neg = neg;
            while self.eat_sym('-') {
                neg = !neg;
            }
            terms.push((neg, self.term()?));
        }
        self.leave();
        Ok(if terms.len() == 1 && !terms[0].0 {
            terms.pop().unwrap().1
        } else {
            Expr::Sum(terms)
        })
    }

    fn starts_factor(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_)) | Some(Tok::Letter(_)) => true,
            Some(Tok::Sym(c)) => matches!(c, '(' | '{' | '['),
            Some(Tok::Cmd(c)) => !matches!(
                c.as_str(),
                "cdot" | "times" | "div" | "pm" | "mp" | "cup" | "cap"
            ),
            None => false,
        }
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let mut factors = vec![(false, self.unary()?)];
        loop {
            let divide = if self.eat_sym('*') {
                false
            } else if self.eat_sym('/') {
                true
            } else if matches!(self.peek(), Some(Tok::Cmd(c)) if c == "cdot" || c == "times") {
                self.pos += 1;
                false
            } else if matches!(self.peek(), Some(Tok::Cmd(c)) if c == "div") {
                self.pos += 1;
                true
            } else if self.starts_factor() {
                false // implicit multiplication: `2x`, `3\pi`, `(a)(b)`
            } else {
                break;
            };
            factors.push((divide, self.unary()?));
            if factors.len() > MAX_TOKENS {
                return Err(ParseError::TooComplex);
            }
        }
        Ok(if factors.len() == 1 {
            factors.pop().unwrap().1
        } else {
            Expr::Product(factors)
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat_sym('-') {
            self.enter()?;
            let inner = self.unary()?;
            self.leave();
            return Ok(Expr::Sum(vec![(true, inner)]));
        }
        if self.eat_sym('+') {
            self.enter()?;
            let inner = self.unary()?;
            self.leave();
            return Ok(inner);
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, ParseError> {
        let base = self.postfix()?;
        if self.eat_sym('^') {
            self.enter()?;
            let exponent = self.exponent()?;
            self.leave();
            return Ok(Expr::Pow(Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    /// The exponent of `^`: a brace group, or a single signed atom (`x^2`, `2^-1`).
    fn exponent(&mut self) -> Result<Expr, ParseError> {
        if self.eat_sym('-') {
            let inner = self.exponent()?;
            return Ok(Expr::Sum(vec![(true, inner)]));
        }
        match self.peek() {
            Some(Tok::Num(n)) if n.len() > 1 && !n.contains('.') => {
                // `x^23` in LaTeX is x^2 * 3; keep the first digit as the exponent.
                let n = n.clone();
                let (first, rest) = n.split_at(1);
                self.toks[self.pos] = Tok::Num(rest.to_string());
                Ok(Expr::Number(Rational::integer(
                    first.parse::<i128>().map_err(|_| ParseError::NotMath)?,
                )))
            }
            _ => self.power(),
        }
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.primary()?;
        while self.eat_sym('!') {
            e = Expr::Factorial(Box::new(e));
            self.enter()?; // each `!` nests one level in evaluation
        }
        Ok(e)
    }

    fn group(&mut self, open: char, close: char) -> Result<Expr, ParseError> {
        if !self.eat_sym(open) {
            return Err(ParseError::NotMath);
        }
        let e = self.expr()?;
        if !self.eat_sym(close) {
            return Err(ParseError::NotMath);
        }
        Ok(e)
    }

    /// A brace group `{...}`, or a single token argument (`\frac12` after normalisation never
    /// occurs, but `\sqrt2` inside `\frac` arguments may).
    fn argument(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::Sym('{')) {
            self.group('{', '}')
        } else {
            self.primary()
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let tok = self.peek().cloned().ok_or(ParseError::NotMath)?;
        self.pos += 1;
        let e = match tok {
            Tok::Num(n) => match Rational::from_decimal(&n) {
                Some(r) => Expr::Number(r),
                None => Expr::Float(n.parse::<f64>().map_err(|_| ParseError::NotMath)?),
            },
            Tok::Letter(c) => {
                let mut name = c.to_string();
                self.subscript(&mut name)?;
                if c == 'e' && name.len() == 1 {
                    Expr::Constant(std::f64::consts::E)
                } else {
                    Expr::Var(name)
                }
            }
            Tok::Sym('(') => {
                self.pos -= 1;
                self.group('(', ')')?
            }
            Tok::Sym('{') => {
                self.pos -= 1;
                self.group('{', '}')?
            }
            Tok::Sym('[') => {
                self.pos -= 1;
                self.group('[', ']')?
            }
            Tok::Sym('|') => {
                let inner = self.expr()?;
                if !self.eat_sym('|') {
                    return Err(ParseError::NotMath);
                }
                Expr::Apply(Func::Abs, Box::new(inner))
            }
            Tok::Cmd(c) => self.command(&c)?,
            Tok::Sym(_) => return Err(ParseError::NotMath),
        };
        self.leave();
        Ok(e)
    }

    fn subscript(&mut self, name: &mut String) -> Result<(), ParseError> {
        if self.eat_sym('_') {
            match self.peek().cloned() {
                Some(Tok::Num(n)) => {
                    self.pos += 1;
                    name.push('_');
                    name.push_str(&n);
                }
                Some(Tok::Letter(l)) => {
                    self.pos += 1;
                    name.push('_');
                    name.push(l);
                }
                Some(Tok::Sym('{')) => {
                    self.pos += 1;
                    name.push_str("_{");
                    while let Some(t) = self.peek().cloned() {
                        self.pos += 1;
                        match t {
                            Tok::Sym('}') => break,
                            Tok::Num(n) => name.push_str(&n),
                            Tok::Letter(l) => name.push(l),
                            _ => return Err(ParseError::NotMath),
                        }
                    }
                    name.push('}');
                }
                _ => return Err(ParseError::NotMath),
            }
        }
        Ok(())
    }

    fn command(&mut self, c: &str) -> Result<Expr, ParseError> {
        match c {
            "frac" | "cfrac" => {
                let num = self.argument()?;
                let den = self.argument()?;
                Ok(Expr::Product(vec![(false, num), (true, den)]))
            }
            "sqrt" => {
                if self.eat_sym('[') {
                    let index = self.expr()?;
                    if !self.eat_sym(']') {
                        return Err(ParseError::NotMath);
                    }
                    let radicand = self.argument()?;
                    Ok(Expr::Root(Box::new(radicand), Box::new(index)))
                } else {
                    Ok(Expr::Apply(Func::Sqrt, Box::new(self.argument()?)))
                }
            }
            "binom" | "dbinom" | "tbinom" => {
                let n = self.argument()?;
                let k = self.argument()?;
                Ok(Expr::Binom(Box::new(n), Box::new(k)))
            }
            "pi" => Ok(Expr::Constant(std::f64::consts::PI)),
            "infty" => Ok(Expr::Constant(f64::INFINITY)),
            "exp" => {
                let arg = self.function_argument()?;
                Ok(Expr::Apply(Func::Exp, Box::new(arg)))
            }
            _ if func_named(c).is_some() => {
                let f = func_named(c).unwrap();
                if f == Func::Log && self.peek() == Some(&Tok::Sym('_')) {
                    return self.function_argument(); // `\log_b x` = ln x / ln b
                }
                // `\sin^2 x` means (sin x)^2.
                let power = if self.eat_sym('^') {
                    Some(self.exponent()?)
                } else {
                    None
                };
                let arg = self.function_argument()?;
                let applied = Expr::Apply(f, Box::new(arg));
                Ok(match power {
                    Some(p) => Expr::Pow(Box::new(applied), Box::new(p)),
                    None => applied,
                })
            }
            _ if GREEK.contains(&c) => {
                let mut name = format!("\\{c}");
                self.subscript(&mut name)?;
                Ok(Expr::Var(name))
            }
            _ => Err(ParseError::NotMath),
        }
    }

    /// `\sin x`, `\sin(x)`, `\sin{x}`, `\log_2 8` (base ignored unless given: natural log for
    /// `\ln`, base 10 for bare `\log`, the given base for `\log_b`).
    fn function_argument(&mut self) -> Result<Expr, ParseError> {
        if self.eat_sym('_') {
            // Log base: read it, then the argument; log_b(x) = ln x / ln b.
            let base = self.argument()?;
            let arg = self.power()?;
            return Ok(Expr::Product(vec![
                (false, Expr::Apply(Func::Ln, Box::new(arg))),
                (true, Expr::Apply(Func::Ln, Box::new(base))),
            ]));
        }
        self.power()
    }
}

/// Values of variables at one evaluation point, looked up by name.
pub type Point<'a> = &'a [(String, f64)];

fn factorial(n: f64) -> f64 {
    if n < 0.0 || n.fract() != 0.0 || n > 170.0 {
        return f64::NAN;
    }
    (1..=n as u64).fold(1.0, |acc, k| acc * k as f64)
}

impl Expr {
    /// Float value at a point. NaN for undefined, infinite for overflow; the caller decides.
    pub fn eval(&self, point: Point) -> f64 {
        match self {
            Expr::Number(r) => r.to_f64(),
            Expr::Float(x) | Expr::Constant(x) => *x,
            Expr::Var(name) => point
                .iter()
                .find(|(n, _)| n == name)
                .map(|p| p.1)
                .unwrap_or(f64::NAN),
            Expr::Sum(terms) => terms
                .iter()
                .map(|(neg, t)| if *neg { -t.eval(point) } else { t.eval(point) })
                .sum(),
            Expr::Product(factors) => factors.iter().fold(1.0, |acc, (div, f)| {
                let v = f.eval(point);
                if *div {
                    acc / v
                } else {
                    acc * v
                }
            }),
            Expr::Pow(b, e) => {
                let base = b.eval(point);
                let exponent = e.eval(point);
                if base < 0.0 && exponent.fract() != 0.0 {
                    // Odd roots of negatives, e.g. (-8)^{1/3}, are real; others are not.
                    let inv = 1.0 / exponent;
                    if (inv.round() - inv).abs() < 1e-9 && inv.round() as i64 % 2 != 0 {
                        return -(-base).powf(exponent);
                    }
                    return f64::NAN;
                }
                base.powf(exponent)
            }
            Expr::Root(r, idx) => {
                let x = r.eval(point);
                let n = idx.eval(point);
                if x < 0.0 && n.fract() == 0.0 && (n as i64) % 2 != 0 {
                    -(-x).powf(1.0 / n)
                } else {
                    x.powf(1.0 / n)
                }
            }
            Expr::Apply(f, a) => {
                let x = a.eval(point);
                match f {
                    Func::Sqrt => x.sqrt(),
                    Func::Sin => x.sin(),
                    Func::Cos => x.cos(),
                    Func::Tan => x.tan(),
                    Func::Cot => 1.0 / x.tan(),
                    Func::Sec => 1.0 / x.cos(),
                    Func::Csc => 1.0 / x.sin(),
                    Func::Arcsin => x.asin(),
                    Func::Arccos => x.acos(),
                    Func::Arctan => x.atan(),
                    Func::Ln => x.ln(),
                    Func::Log => x.log10(),
                    Func::Exp => x.exp(),
                    Func::Abs => x.abs(),
                }
            }
            Expr::Factorial(a) => factorial(a.eval(point)),
            Expr::Binom(n, k) => {
                let (n, k) = (n.eval(point), k.eval(point));
                if k < 0.0 || k.fract() != 0.0 || n.fract() != 0.0 || k > n || k > 170.0 {
                    return f64::NAN;
                }
                (0..k as u64).fold(1.0, |acc, i| acc * (n - i as f64) / (i as f64 + 1.0))
            }
        }
    }

    /// Exact value when the expression is built from rationals with +, -, *, / and small
    /// integer powers only; `None` otherwise (or on overflow).
    pub fn exact(&self) -> Option<Rational> {
        match self {
            Expr::Number(r) => Some(*r),
            Expr::Sum(terms) => {
                let mut acc = Rational::integer(0);
                for (neg, t) in terms {
                    let v = t.exact()?;
                    acc = acc.add(if *neg { v.neg()? } else { v })?;
                }
                Some(acc)
            }
            Expr::Product(factors) => {
                let mut acc = Rational::integer(1);
                for (div, f) in factors {
                    let v = f.exact()?;
                    acc = acc.mul(if *div { v.recip()? } else { v })?;
                }
                Some(acc)
            }
            Expr::Pow(b, e) => {
                let e = e.exact()?;
                if e.den != 1 {
                    return None;
                }
                b.exact()?.pow(e.num)
            }
            _ => None,
        }
    }

    /// Adds every variable name to `out` (deduplicated). Iterative, so depth is no concern.
    pub fn collect_vars(&self, out: &mut Vec<String>) {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Var(n) => {
                    if !out.contains(n) {
                        out.push(n.clone());
                    }
                }
                Expr::Sum(v) | Expr::Product(v) => stack.extend(v.iter().map(|(_, x)| x)),
                Expr::Pow(a, b) | Expr::Root(a, b) | Expr::Binom(a, b) => {
                    stack.push(a);
                    stack.push(b);
                }
                Expr::Apply(_, a) | Expr::Factorial(a) => stack.push(a),
                Expr::Number(_) | Expr::Float(_) | Expr::Constant(_) => {}
            }
        }
    }

    /// True when the expression is a literal fraction of two integers (`\frac{2}{4}`, `2/4`).
    pub fn as_literal_fraction(&self) -> Option<(i128, i128)> {
        let (neg, inner) = match self {
            Expr::Sum(t) if t.len() == 1 && t[0].0 => (true, &t[0].1),
            other => (false, other),
        };
        match inner {
            Expr::Product(f) if f.len() == 2 && !f[0].0 && f[1].0 => match (&f[0].1, &f[1].1) {
                (Expr::Number(a), Expr::Number(b)) if a.den == 1 && b.den == 1 => {
                    Some((if neg { -a.num } else { a.num }, b.num))
                }
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> f64 {
        parse(s).unwrap().eval(&[])
    }

    #[test]
    fn arithmetic_and_precedence() {
        assert_eq!(value("1+2*3"), 7.0);
        assert_eq!(value("-2^2"), -4.0);
        assert_eq!(value("2^-1"), 0.5);
        assert!((value("\\frac{1}{2}+\\frac{1}{3}") - 5.0 / 6.0).abs() < 1e-15);
        assert_eq!(value("2\\sqrt{9}"), 6.0);
        assert_eq!(value("5!"), 120.0);
        assert_eq!(value("\\binom{5}{2}"), 10.0);
        // LaTeX reads `x^23` as x^2 * 3.
        assert_eq!(parse("x^23").unwrap().eval(&[("x".to_string(), 2.0)]), 12.0);
        assert!((value("\\log_2 8") - 3.0).abs() < 1e-12);
    }

    #[test]
    fn exact_rationals() {
        assert_eq!(parse("\\frac{2}{4}").unwrap().exact(), Rational::new(1, 2));
        assert_eq!(parse("0.125").unwrap().exact(), Rational::new(1, 8));
        assert_eq!(parse("2^{-3}").unwrap().exact(), Rational::new(1, 8));
        assert_eq!(parse("\\sqrt{4}").unwrap().exact(), None);
        assert_eq!(
            parse("\\frac{2}{4}").unwrap().as_literal_fraction(),
            Some((2, 4))
        );
        assert_eq!(
            parse("-\\frac{2}{4}").unwrap().as_literal_fraction(),
            Some((-2, 4))
        );
    }

    #[test]
    fn depth_is_bounded_not_overflowing() {
        let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert_eq!(parse(&deep), Err(ParseError::TooComplex));
        let frac = "\\frac{".repeat(10_000) + "1" + &"}{2}".repeat(10_000);
        assert_eq!(parse(&frac), Err(ParseError::TooComplex));
    }

    #[test]
    fn words_and_stray_symbols_are_not_maths() {
        assert_eq!(parse("3\\pm2"), Err(ParseError::NotMath));
        assert_eq!(parse("1&2"), Err(ParseError::NotMath));
        assert_eq!(parse("\\foo{1}"), Err(ParseError::NotMath));
        assert_eq!(parse("(1"), Err(ParseError::NotMath));
    }
}
