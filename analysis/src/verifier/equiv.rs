//! Equivalence of two normalised answers.
//!
//! Order of checks (docs/verifier.md has the full table):
//! 1. identical canonical strings -> `Equal`;
//! 2. the *shape* of each answer: union of intervals (`\cup`), set (`\{..\}`), bracketed tuple or
//!    interval (`(..)`, `[..)`, ...), matrix (`\begin{pmatrix}`), bare comma list, equation (one
//!    `=`), chain (`a=b=c`), or a single scalar;
//! 3. shapes are compared element-wise: tuples, intervals and matrices in order with matching
//!    brackets; sets, unions and bare lists in any order (as multisets);
//! 4. scalars: constants exactly (rationals) when possible, else numerically within the
//!    tolerance; expressions with variables at seeded random points; equations by the
//!    proportionality of `lhs - rhs` at random points.
//!
//! Work is bounded: element counts, nesting of shapes, parser depth and tokens, sample points.
//! Whenever a bound is hit, or evaluation overflows or is undefined at too many points, the
//! verdict is `Unverifiable`.

use super::expr::{self, Expr, ParseError, Rational};
use super::{PercentPolicy, Verdict, VerifierConfig};
use crate::rng::SplitMix64;

/// Most elements a tuple, set, list or matrix may have.
pub const MAX_ELEMENTS: usize = 64;
/// Deepest nesting of shapes (tuples of tuples ...).
pub const MAX_SHAPE_DEPTH: usize = 6;
/// Valid sample points needed before expressions are declared equal.
pub const MIN_VALID_POINTS: usize = 4;

/// Context of one comparison: the config and whether each side carried a percent sign.
pub struct Context<'a> {
    pub config: &'a VerifierConfig,
    pub pred_percent: bool,
    pub ref_percent: bool,
}

enum Shape<'a> {
    Union(Vec<&'a str>),
    Set(Vec<&'a str>),
    Bracketed {
        open: u8,
        close: u8,
        items: Vec<&'a str>,
    },
    Matrix(Vec<Vec<&'a str>>),
    List(Vec<&'a str>),
    Equation(&'a str, &'a str),
    Chain(Vec<&'a str>),
    Scalar(&'a str),
}

/// Splits at a top-level separator (outside all brackets). `None` when too many parts.
fn split_top<'a>(s: &'a str, sep: &str) -> Option<Vec<&'a str>> {
    let bytes = s.as_bytes();
    let sep_bytes = sep.as_bytes();
    let mut parts = Vec::new();
    let mut depth: i64 = 0;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && bytes[i..].starts_with(sep_bytes) {
            parts.push(&s[start..i]);
            if parts.len() > MAX_ELEMENTS {
                return None;
            }
            i += sep_bytes.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// True when the bracket opened at byte 0 closes exactly at the last byte.
fn wraps_whole(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut depth = 0i64;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i == bytes.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

fn shape(s: &str) -> Option<Shape<'_>> {
    let union = split_top(s, "\\cup")?;
    if union.len() > 1 {
        return Some(Shape::Union(union));
    }
    if s == "\\emptyset" || s == "\\{\\}" {
        return Some(Shape::Set(Vec::new()));
    }
    if let Some(inner) = s.strip_prefix("\\{").and_then(|t| t.strip_suffix("\\}")) {
        if wraps_whole(&s[1..]) {
            return Some(Shape::Set(split_top(inner, ",")?));
        }
    }
    if let Some(body) = s
        .strip_prefix("\\begin{pmatrix}")
        .and_then(|t| t.strip_suffix("\\end{pmatrix}"))
    {
        let rows = split_top(body, "\\\\")?;
        let mut cells = Vec::new();
        for row in rows {
            cells.push(split_top(row, "&")?);
        }
        return Some(Shape::Matrix(cells));
    }
    // Plain braces with a top-level comma, `{1,3}`: Math-Verify reads these as a set too.
    if let Some(inner) = s.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        if wraps_whole(s) {
            let items = split_top(inner, ",")?;
            if items.len() > 1 {
                return Some(Shape::Set(items));
            }
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() >= 2
        && matches!(bytes[0], b'(' | b'[')
        && matches!(bytes[bytes.len() - 1], b')' | b']')
        && wraps_whole(s)
    {
        let items = split_top(&s[1..s.len() - 1], ",")?;
        if items.len() > 1 {
            return Some(Shape::Bracketed {
                open: bytes[0],
                close: bytes[bytes.len() - 1],
                items,
            });
        }
    }
    let list = split_top(s, ",")?;
    if list.len() > 1 {
        return Some(Shape::List(list));
    }
    let sides = split_top(s, "=")?;
    match sides.len() {
        1 => Some(Shape::Scalar(s)),
        2 => Some(Shape::Equation(sides[0], sides[1])),
        _ => Some(Shape::Chain(sides)),
    }
}

fn all_of(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut result = Verdict::Equal;
    for v in verdicts {
        match v {
            Verdict::Different => return Verdict::Different,
            Verdict::Unverifiable => result = Verdict::Unverifiable,
            Verdict::Equal => {}
        }
    }
    result
}

/// Compares two canonical answers; `depth` counts nested shapes.
pub fn compare(pred: &str, reference: &str, ctx: &Context, depth: usize) -> Verdict {
    if pred == reference {
        return Verdict::Equal;
    }
    if depth > MAX_SHAPE_DEPTH {
        return Verdict::Unverifiable;
    }
    let (Some(p), Some(r)) = (shape(pred), shape(reference)) else {
        return Verdict::Unverifiable;
    };
    let next = |a: &str, b: &str| compare(a, b, ctx, depth + 1);
    match (p, r) {
        (Shape::Union(a), Shape::Union(b)) => unordered(&a, &b, &next),
        // A union of sets is the set of all their elements: `\{1,3\}\cup\{2,4\}` = `\{1,2,3,4\}`
        // (Math-Verify README's first example).
        (Shape::Union(a), Shape::Set(b)) => match union_of_sets(&a) {
            Some(items) => unordered(&items, &b, &next),
            None => Verdict::Different,
        },
        (Shape::Set(a), Shape::Union(b)) => match union_of_sets(&b) {
            Some(items) => unordered(&a, &items, &next),
            None => Verdict::Different,
        },
        (Shape::Set(a) | Shape::List(a), Shape::Set(b) | Shape::List(b)) => {
            unordered(&a, &b, &next)
        }
        (
            Shape::Bracketed {
                open: o1,
                close: c1,
                items: a,
            },
            Shape::Bracketed {
                open: o2,
                close: c2,
                items: b,
            },
        ) => {
            if o1 != o2 || c1 != c2 {
                Verdict::Different
            } else {
                ordered(&a, &b, &next)
            }
        }
        // A bare list against a parenthesised tuple: compared in order (lenient, like Qwen's
        // bracket stripping); against an interval `[a,b]` it stays different.
        (
            Shape::List(a),
            Shape::Bracketed {
                open: b'(',
                close: b')',
                items: b,
            },
        )
        | (
            Shape::Bracketed {
                open: b'(',
                close: b')',
                items: a,
            },
            Shape::List(b),
        ) => ordered(&a, &b, &next),
        (Shape::Matrix(a), Shape::Matrix(b)) => {
            if a.len() != b.len() {
                return Verdict::Different;
            }
            all_of(a.iter().zip(&b).map(|(ra, rb)| ordered(ra, rb, &next)))
        }
        (Shape::Equation(l1, r1), Shape::Equation(l2, r2)) => equations(l1, r1, l2, r2, ctx),
        // Math-Verify: a predicted chain `a = b = 101` matches a gold `101` (its last member);
        // the reverse (gold chain, predicted number) does not.
        (Shape::Chain(parts), Shape::Scalar(r)) => next(parts[parts.len() - 1], r),
        (Shape::Scalar(a), Shape::Scalar(b)) => scalars(a, b, ctx),
        _ => Verdict::Different,
    }
}

/// All elements of a union whose parts are all sets; `None` if a part is not a set. Duplicates
/// are removed by string (a set has no repeated elements).
fn union_of_sets<'a>(parts: &[&'a str]) -> Option<Vec<&'a str>> {
    let mut items: Vec<&str> = Vec::new();
    for part in parts {
        match shape(part)? {
            Shape::Set(xs) => {
                for x in xs {
                    if !items.contains(&x) {
                        items.push(x);
                    }
                }
            }
            _ => return None,
        }
        if items.len() > MAX_ELEMENTS {
            return None;
        }
    }
    Some(items)
}

fn ordered(a: &[&str], b: &[&str], next: &dyn Fn(&str, &str) -> Verdict) -> Verdict {
    if a.len() != b.len() {
        return Verdict::Different;
    }
    all_of(a.iter().zip(b).map(|(x, y)| next(x, y)))
}

/// Multiset matching: every predicted element pairs with a distinct equal reference element.
fn unordered(a: &[&str], b: &[&str], next: &dyn Fn(&str, &str) -> Verdict) -> Verdict {
    if a.len() != b.len() {
        return Verdict::Different;
    }
    let mut used = vec![false; b.len()];
    let mut unsure = false;
    for x in a {
        let mut found = false;
        for (j, y) in b.iter().enumerate() {
            if used[j] {
                continue;
            }
            match next(x, y) {
                Verdict::Equal => {
                    used[j] = true;
                    found = true;
                    break;
                }
                Verdict::Unverifiable => unsure = true,
                Verdict::Different => {}
            }
        }
        if !found {
            return if unsure {
                Verdict::Unverifiable
            } else {
                Verdict::Different
            };
        }
    }
    Verdict::Equal
}

fn close(a: f64, b: f64, config: &VerifierConfig) -> bool {
    let diff = (a - b).abs();
    diff <= config.abs_tol || diff <= config.rel_tol * a.abs().max(b.abs())
}

/// `value / 100`, when representable.
fn hundredth(value: Rational) -> Option<Rational> {
    value
        .den
        .checked_mul(100)
        .and_then(|d| Rational::new(value.num, d))
}

/// `value * 100`, when representable.
fn hundredfold(value: Rational) -> Option<Rational> {
    value
        .num
        .checked_mul(100)
        .and_then(|n| Rational::new(n, value.den))
}

fn numbers_match_exact(p: Rational, r: Rational, ctx: &Context) -> bool {
    p == r
        || match ctx.config.percent {
            PercentPolicy::IgnoreSign => false,
            // Only the side carrying `%` may be read as a hundredth: `75\%` = 0.75.
            PercentPolicy::SignAware => {
                (ctx.pred_percent && !ctx.ref_percent && hundredth(p) == Some(r))
                    || (ctx.ref_percent && !ctx.pred_percent && hundredth(r) == Some(p))
            }
            // Qwen2.5-Math: the prediction may equal the reference, ref/100 or ref*100.
            PercentPolicy::AnyScale => hundredth(r) == Some(p) || hundredfold(r) == Some(p),
        }
}

fn numbers_match_float(p: f64, r: f64, ctx: &Context) -> bool {
    let c = |a: f64, b: f64| close(a, b, ctx.config);
    match ctx.config.percent {
        PercentPolicy::IgnoreSign => c(p, r),
        PercentPolicy::SignAware => {
            c(p, r)
                || (ctx.pred_percent && !ctx.ref_percent && c(p / 100.0, r))
                || (ctx.ref_percent && !ctx.pred_percent && c(p, r / 100.0))
        }
        PercentPolicy::AnyScale => c(p, r) || c(p, r / 100.0) || c(p, r * 100.0),
    }
}

fn parse_both(a: &str, b: &str) -> Result<(Expr, Expr), Verdict> {
    match (expr::parse(a), expr::parse(b)) {
        (Ok(x), Ok(y)) => Ok((x, y)),
        (Err(ParseError::TooComplex), _) | (_, Err(ParseError::TooComplex)) => {
            Err(Verdict::Unverifiable)
        }
        // Something that is not maths (a word, an unknown command): only string equality,
        // already tested, could have matched.
        _ => Err(Verdict::Different),
    }
}

fn scalars(a: &str, b: &str, ctx: &Context) -> Verdict {
    let (x, y) = match parse_both(a, b) {
        Ok(pair) => pair,
        Err(v) => return v,
    };
    let mut vars = Vec::new();
    x.collect_vars(&mut vars);
    y.collect_vars(&mut vars);
    if !vars.is_empty() {
        return at_random_points(&x, &y, &vars, ctx.config, |u, v| close(u, v, ctx.config));
    }
    if !ctx.config.unreduced_fractions_equal {
        let unreduced = |e: &Expr| {
            e.as_literal_fraction()
                .is_some_and(|(n, d)| d == 1 || gcd_i128(n, d) > 1)
        };
        if unreduced(&x) || unreduced(&y) {
            return Verdict::Different;
        }
    }
    if let (Some(p), Some(r)) = (x.exact(), y.exact()) {
        if numbers_match_exact(p, r, ctx) {
            return Verdict::Equal;
        }
        // Exact values decide, unless a side is written as a decimal: a decimal may be a
        // rounding (`0.3333333` for 1/3), so it gets the numeric tolerance below.
        if !a.contains('.') && !b.contains('.') {
            return Verdict::Different;
        }
    }
    let (p, r) = (x.eval(&[]), y.eval(&[]));
    if p.is_finite() && r.is_finite() {
        return if numbers_match_float(p, r, ctx) {
            Verdict::Equal
        } else {
            Verdict::Different
        };
    }
    // `\infty` is a real answer (interval ends); any other non-finite value is an overflow
    // (`10^{10^{10}}`) or undefined (`\sqrt{-1}`), which we do not guess about.
    let (a_inf, b_inf) = (a.contains("\\infty"), b.contains("\\infty"));
    if a_inf && b_inf && p.is_infinite() && r.is_infinite() {
        if p == r {
            Verdict::Equal
        } else {
            Verdict::Different
        }
    } else if (a_inf && p.is_infinite() && r.is_finite())
        || (b_inf && r.is_infinite() && p.is_finite())
    {
        Verdict::Different
    } else {
        Verdict::Unverifiable
    }
}

fn gcd_i128(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a as i128
}

/// Draws a point: half the coordinates from [0.5, 2.5], half from [-2.5, -0.5], so that sign
/// errors (`|x|` vs `x`) are caught while most points stay in common domains.
fn draw_point(vars: &[String], rng: &mut SplitMix64, attempt: usize) -> Vec<(String, f64)> {
    vars.iter()
        .map(|v| {
            let magnitude = 0.5 + 2.0 * rng.next_f64();
            let negative = attempt % 2 == 1 && rng.bernoulli(0.5);
            (v.clone(), if negative { -magnitude } else { magnitude })
        })
        .collect()
}

/// Evaluates both at seeded random points; `same` decides one point. A point where either side
/// is undefined is skipped; too few valid points gives `Unverifiable`.
fn at_random_points(
    x: &Expr,
    y: &Expr,
    vars: &[String],
    config: &VerifierConfig,
    same: impl Fn(f64, f64) -> bool,
) -> Verdict {
    let mut rng = SplitMix64::new(config.seed);
    let mut valid = 0;
    for attempt in 0..config.sample_points * 3 {
        let point = draw_point(vars, &mut rng, attempt);
        let (u, v) = (x.eval(&point), y.eval(&point));
        if !u.is_finite() || !v.is_finite() {
            continue;
        }
        if !same(u, v) {
            return Verdict::Different;
        }
        valid += 1;
        if valid >= config.sample_points {
            break;
        }
    }
    if valid >= MIN_VALID_POINTS.min(config.sample_points) {
        Verdict::Equal
    } else {
        Verdict::Unverifiable
    }
}

/// Equations are equal when their sides match (either way round), or when `l1 - r1` is a
/// constant non-zero multiple of `l2 - r2` at every sample point (`y=2x+3` vs `2x-y+3=0`).
fn equations(l1: &str, r1: &str, l2: &str, r2: &str, ctx: &Context) -> Verdict {
    let sides =
        |a: &str, b: &str, c: &str, d: &str| all_of([scalars(a, c, ctx), scalars(b, d, ctx)]);
    if sides(l1, r1, l2, r2) == Verdict::Equal || sides(l1, r1, r2, l2) == Verdict::Equal {
        return Verdict::Equal;
    }
    let (Ok((a, b)), Ok((c, d))) = (parse_both(l1, r1), parse_both(l2, r2)) else {
        return Verdict::Different;
    };
    let f = Expr::Sum(vec![(false, a), (true, b)]);
    let g = Expr::Sum(vec![(false, c), (true, d)]);
    let mut vars = Vec::new();
    f.collect_vars(&mut vars);
    g.collect_vars(&mut vars);
    if vars.is_empty() {
        return Verdict::Different;
    }
    // The ratio f/g must be the same non-zero constant everywhere; compare against the first.
    let ratio = std::cell::Cell::new(None::<f64>);
    let config = ctx.config;
    at_random_points(&f, &g, &vars, config, |u, v| {
        let zero_u = u.abs() <= config.abs_tol.max(1e-9);
        let zero_v = v.abs() <= config.abs_tol.max(1e-9);
        if zero_u || zero_v {
            return zero_u && zero_v;
        }
        let q = u / v;
        match ratio.get() {
            None => {
                ratio.set(Some(q));
                true
            }
            Some(first) => close(first, q, config),
        }
    })
}
