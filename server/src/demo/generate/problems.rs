//! The demo dataset's problems: templates of AIME- and MATH-like problems with exact answers
//! (`Value`), their layout into the unsolvable regions of the Venn diagram, difficulty labels.

use super::*;

/// An exact answer: an integer or a reduced fraction with denominator > 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value {
    Int(i64),
    Frac(i64, i64),
}

pub(super) fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

pub(super) fn lcm(a: i64, b: i64) -> i64 {
    a / gcd(a, b) * b
}

impl Value {
    /// `num / den` in lowest terms, sign on the numerator; an integer when it divides.
    pub(super) fn ratio(num: i64, den: i64) -> Value {
        assert!(den != 0, "zero denominator");
        let sign = if den < 0 { -1 } else { 1 };
        let g = gcd(num, den).max(1);
        let (num, den) = (sign * num / g, sign * den / g);
        if den == 1 {
            Value::Int(num)
        } else {
            Value::Frac(num, den)
        }
    }

    pub(super) fn latex(self) -> String {
        match self {
            Value::Int(n) => n.to_string(),
            Value::Frac(n, d) if n < 0 => format!("-\\frac{{{}}}{{{d}}}", -n),
            Value::Frac(n, d) => format!("\\frac{{{n}}}{{{d}}}"),
        }
    }

    /// A near miss: the integer, or the numerator, moved by `delta`.
    pub(super) fn nudged(self, delta: i64) -> Value {
        match self {
            Value::Int(n) => Value::Int(n + delta),
            Value::Frac(n, d) => Value::ratio(n + delta, d),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Problem templates

pub(super) const TEMPLATE_COUNT: usize = 9;
pub(super) const SOURCE_AIME_LIKE: &str = "synthetic-aime-like";
pub(super) const SOURCE_MATH_LIKE: &str = "synthetic-math-like";

/// A problem template with its drawn parameters; everything else (prompt, answer, worked steps,
/// typical slips) is computed from these.
#[derive(Debug, Clone)]
pub(super) enum Template {
    ModPower {
        base: i64,
        exponent: i64,
        modulus: i64,
    },
    DivisorCount {
        factors: Vec<(i64, u32)>,
    },
    InclusionExclusion {
        limit: i64,
        a: i64,
        b: i64,
    },
    RootSquares {
        sum: i64,
        product: i64,
    },
    FractionSum {
        a: i64,
        b: i64,
        c: i64,
        d: i64,
    },
    ArithmeticSeries {
        terms: i64,
        slope: i64,
        intercept: i64,
    },
    GeometricSeries {
        ratio: i64,
        last: u32,
    },
    LcmMinusGcd {
        a: i64,
        b: i64,
    },
    MarbleProbability {
        red: i64,
        blue: i64,
    },
}

/// Multiplicative order of `base` modulo `modulus` (they are coprime).
pub(super) fn multiplicative_order(base: i64, modulus: i64) -> i64 {
    let mut power = base % modulus;
    let mut order = 1;
    while power != 1 {
        power = power * base % modulus;
        order += 1;
    }
    order
}

pub(super) fn mod_pow(base: i64, exponent: i64, modulus: i64) -> i64 {
    let mut result = 1 % modulus;
    for _ in 0..exponent {
        result = result * base % modulus;
    }
    result
}

impl Template {
    pub(super) fn draw(kind: usize, rng: &mut SplitMix64) -> Template {
        match kind {
            0 => {
                let modulus = *pick(rng, &[7, 9, 11, 13, 17, 19, 23]);
                let base = loop {
                    let base = uniform(rng, 2, 12);
                    if gcd(base, modulus) == 1 && base % modulus != 1 {
                        break base;
                    }
                };
                Template::ModPower {
                    base,
                    exponent: uniform(rng, 20, 99),
                    modulus,
                }
            }
            1 => loop {
                let mut primes = vec![2, 3, 5, 7, 11, 13];
                rng.shuffle(&mut primes);
                let count = uniform(rng, 2, 3) as usize;
                let mut factors: Vec<(i64, u32)> = primes[..count]
                    .iter()
                    .map(|&p| (p, uniform(rng, 1, 4) as u32))
                    .collect();
                factors.sort();
                let value: i64 = factors.iter().map(|&(p, e)| p.pow(e)).product();
                if (100..=500_000).contains(&value) {
                    break Template::DivisorCount { factors };
                }
            },
            2 => loop {
                let a = uniform(rng, 2, 12);
                let b = uniform(rng, a + 1, 15);
                if b % a != 0 {
                    break Template::InclusionExclusion {
                        limit: uniform(rng, 100, 999),
                        a,
                        b,
                    };
                }
            },
            3 => Template::RootSquares {
                sum: uniform(rng, 3, 25),
                product: uniform(rng, 2, 80),
            },
            4 => loop {
                let b = uniform(rng, 2, 15);
                let d = uniform(rng, 2, 15);
                let a = uniform(rng, 1, b - 1);
                let c = uniform(rng, 1, d - 1);
                // Addends in lowest terms, as a textbook would print them.
                let reduced = gcd(a, b) == 1 && gcd(c, d) == 1;
                if reduced
                    && b != d
                    && matches!(Value::ratio(a * d + c * b, b * d), Value::Frac(..))
                {
                    break Template::FractionSum { a, b, c, d };
                }
            },
            5 => Template::ArithmeticSeries {
                terms: uniform(rng, 10, 50),
                slope: uniform(rng, 2, 9),
                intercept: uniform(rng, 1, 20),
            },
            6 => Template::GeometricSeries {
                ratio: uniform(rng, 2, 5),
                last: uniform(rng, 3, 6) as u32,
            },
            7 => loop {
                let g = uniform(rng, 2, 12);
                let x = uniform(rng, 2, 15);
                let y = uniform(rng, 2, 15);
                if x != y && gcd(x, y) == 1 {
                    break Template::LcmMinusGcd { a: g * x, b: g * y };
                }
            },
            _ => Template::MarbleProbability {
                red: uniform(rng, 3, 9),
                blue: uniform(rng, 2, 12),
            },
        }
    }

    pub(super) fn source(&self) -> &'static str {
        match self {
            Template::ModPower { .. }
            | Template::DivisorCount { .. }
            | Template::InclusionExclusion { .. }
            | Template::RootSquares { .. } => SOURCE_AIME_LIKE,
            _ => SOURCE_MATH_LIKE,
        }
    }

    pub(super) fn topic(&self) -> &'static str {
        match self {
            Template::ModPower { .. }
            | Template::DivisorCount { .. }
            | Template::LcmMinusGcd { .. } => "number-theory",
            Template::InclusionExclusion { .. } => "counting",
            Template::MarbleProbability { .. } => "probability",
            Template::FractionSum { .. } => "arithmetic",
            _ => "algebra",
        }
    }

    pub(super) fn prompt(&self) -> String {
        match *self {
            Template::ModPower { base, exponent, modulus } => {
                format!("What is the remainder when ${base}^{{{exponent}}}$ is divided by ${modulus}$?")
            }
            Template::DivisorCount { .. } => {
                format!("How many positive divisors does ${}$ have?", self.divisor_count_value())
            }
            Template::InclusionExclusion { limit, a, b } => format!(
                "How many integers $n$ with $1 \\le n \\le {limit}$ are divisible by ${a}$ or by ${b}$?"
            ),
            Template::RootSquares { sum, product } => format!(
                "Let $r$ and $s$ be the roots of $x^2 - {sum}x + {product} = 0$. Find $r^2 + s^2$."
            ),
            Template::FractionSum { a, b, c, d } => format!(
                "Compute $\\frac{{{a}}}{{{b}}} + \\frac{{{c}}}{{{d}}}$. Express your answer as a fraction in lowest terms."
            ),
            Template::ArithmeticSeries { terms, slope, intercept } => {
                format!("Find the value of $\\sum_{{k=1}}^{{{terms}}} ({slope}k + {intercept})$.")
            }
            Template::GeometricSeries { ratio, last } => format!(
                "Evaluate $\\sum_{{k=0}}^{{{last}}} \\frac{{1}}{{{ratio}^k}}$. Express your answer as a common fraction."
            ),
            Template::LcmMinusGcd { a, b } => {
                format!("What is $\\operatorname{{lcm}}({a}, {b}) - \\gcd({a}, {b})$?")
            }
            Template::MarbleProbability { red, blue } => format!(
                "A bag contains ${red}$ red marbles and ${blue}$ blue marbles. Two marbles are drawn at random \
                 without replacement. What is the probability that both are red? Express your answer as a \
                 common fraction."
            ),
        }
    }

    pub(super) fn divisor_count_value(&self) -> i64 {
        match self {
            Template::DivisorCount { factors } => factors.iter().map(|&(p, e)| p.pow(e)).product(),
            _ => unreachable!("only for divisor-count problems"),
        }
    }

    pub(super) fn answer(&self) -> Value {
        match *self {
            Template::ModPower {
                base,
                exponent,
                modulus,
            } => Value::Int(mod_pow(base, exponent, modulus)),
            Template::DivisorCount { ref factors } => {
                Value::Int(factors.iter().map(|&(_, e)| e as i64 + 1).product())
            }
            Template::InclusionExclusion { limit, a, b } => {
                Value::Int(limit / a + limit / b - limit / lcm(a, b))
            }
            Template::RootSquares { sum, product } => Value::Int(sum * sum - 2 * product),
            Template::FractionSum { a, b, c, d } => Value::ratio(a * d + c * b, b * d),
            Template::ArithmeticSeries {
                terms,
                slope,
                intercept,
            } => Value::Int(slope * terms * (terms + 1) / 2 + intercept * terms),
            Template::GeometricSeries { ratio, last } => {
                let top = ratio.pow(last);
                Value::ratio(ratio * top - 1, top * (ratio - 1))
            }
            Template::LcmMinusGcd { a, b } => Value::Int(lcm(a, b) - gcd(a, b)),
            Template::MarbleProbability { red, blue } => {
                let total = red + blue;
                Value::ratio(red * (red - 1), total * (total - 1))
            }
        }
    }

    /// A worked solution, one sentence per step; the last step states the answer.
    pub(super) fn steps(&self) -> Vec<String> {
        let answer = self.answer().latex();
        match *self {
            Template::ModPower { base, exponent, modulus } => {
                let order = multiplicative_order(base, modulus);
                let shown = order.min(5);
                let powers: Vec<String> = (1..=shown)
                    .map(|k| format!("{base}^{{{k}}} \\equiv {}", mod_pow(base, k, modulus)))
                    .collect();
                let ellipsis = if order > shown { ", \\ldots" } else { "" };
                let remainder = exponent % order;
                vec![
                    format!("We look for a cycle in the powers of ${base}$ modulo ${modulus}$."),
                    format!(
                        "The powers go ${}{ellipsis}$, and the order of ${base}$ modulo ${modulus}$ is ${order}$.",
                        powers.join(", ")
                    ),
                    format!(
                        "Since ${exponent} = {} \\cdot {order} + {remainder}$, we have ${base}^{{{exponent}}} \\equiv {base}^{{{remainder}}} \\pmod{{{modulus}}}$.",
                        exponent / order
                    ),
                    format!("So the remainder is ${answer}$."),
                ]
            }
            Template::DivisorCount { ref factors } => {
                let factorisation: Vec<String> =
                    factors.iter().map(|&(p, e)| if e == 1 { p.to_string() } else { format!("{p}^{{{e}}}") }).collect();
                let counts: Vec<String> = factors.iter().map(|&(_, e)| format!("({e}+1)")).collect();
                vec![
                    format!("First factor the number: ${} = {}$.", self.divisor_count_value(), factorisation.join(" \\cdot ")),
                    "A divisor chooses each prime exponent independently, from zero up to its maximum.".to_string(),
                    format!("The count is ${} = {answer}$.", counts.join("")),
                ]
            }
            Template::InclusionExclusion { limit, a, b } => {
                let l = lcm(a, b);
                vec![
                    format!("Multiples of ${a}$: $\\lfloor {limit}/{a} \\rfloor = {}$.", limit / a),
                    format!("Multiples of ${b}$: $\\lfloor {limit}/{b} \\rfloor = {}$.", limit / b),
                    format!(
                        "Numbers divisible by both are the multiples of $\\operatorname{{lcm}}({a}, {b}) = {l}$, and there are ${}$ of them.",
                        limit / l
                    ),
                    format!(
                        "By inclusion-exclusion the count is ${} + {} - {} = {answer}$.",
                        limit / a,
                        limit / b,
                        limit / l
                    ),
                ]
            }
            Template::RootSquares { sum, product } => vec![
                format!("By Vieta's formulas, $r + s = {sum}$ and $rs = {product}$."),
                "Then $r^2 + s^2 = (r + s)^2 - 2rs$.".to_string(),
                format!("This is ${} - {} = {answer}$.", sum * sum, 2 * product),
            ],
            Template::FractionSum { a, b, c, d } => {
                let l = lcm(b, d);
                vec![
                    format!("The common denominator is $\\operatorname{{lcm}}({b}, {d}) = {l}$."),
                    format!(
                        "Rewrite: $\\frac{{{a}}}{{{b}}} = \\frac{{{}}}{{{l}}}$ and $\\frac{{{c}}}{{{d}}} = \\frac{{{}}}{{{l}}}$.",
                        a * (l / b),
                        c * (l / d)
                    ),
                    format!(
                        "Adding gives $\\frac{{{}}}{{{l}}}$, which in lowest terms is ${answer}$.",
                        a * (l / b) + c * (l / d)
                    ),
                ]
            }
            Template::ArithmeticSeries { terms, slope, intercept } => {
                let triangle = terms * (terms + 1) / 2;
                vec![
                    format!("Split the sum: ${slope}\\sum_{{k=1}}^{{{terms}}} k + {intercept} \\cdot {terms}$."),
                    format!("We know $\\sum_{{k=1}}^{{{terms}}} k = \\frac{{{terms} \\cdot {}}}{{2}} = {triangle}$.", terms + 1),
                    format!(
                        "The total is ${slope} \\cdot {triangle} + {} = {answer}$.",
                        intercept * terms
                    ),
                ]
            }
            Template::GeometricSeries { ratio, last } => vec![
                format!("This is a finite geometric series with first term $1$, ratio $\\frac{{1}}{{{ratio}}}$ and ${}$ terms.", last + 1),
                format!(
                    "Its sum is $\\frac{{1 - ({ratio}^{{-1}})^{{{}}}}}{{1 - {ratio}^{{-1}}}}$.",
                    last + 1
                ),
                format!("Simplifying gives ${answer}$."),
            ],
            Template::LcmMinusGcd { a, b } => {
                let g = gcd(a, b);
                vec![
                    format!("The greatest common divisor is $\\gcd({a}, {b}) = {g}$."),
                    format!("Then $\\operatorname{{lcm}}({a}, {b}) = \\frac{{{a} \\cdot {b}}}{{{g}}} = {}$.", lcm(a, b)),
                    format!("The difference is ${} - {g} = {answer}$.", lcm(a, b)),
                ]
            }
            Template::MarbleProbability { red, blue } => {
                let total = red + blue;
                vec![
                    format!(
                        "There are ${total}$ marbles, so there are $\\binom{{{total}}}{{2}} = {}$ equally likely pairs.",
                        total * (total - 1) / 2
                    ),
                    format!("Pairs of red marbles: $\\binom{{{red}}}{{2}} = {}$.", red * (red - 1) / 2),
                    format!(
                        "The probability is $\\frac{{{}}}{{{}}} = {answer}$.",
                        red * (red - 1) / 2,
                        total * (total - 1) / 2
                    ),
                ]
            }
        }
    }

    /// A typical slip for this kind of problem (may equal the reference; callers filter).
    pub(super) fn typical_slip(&self, rng: &mut SplitMix64) -> Value {
        let answer = self.answer();
        match *self {
            Template::ModPower {
                base,
                exponent,
                modulus,
            } => match rng.below(5) {
                0 => Value::Int(mod_pow(base, exponent + uniform(rng, -2, 2), modulus)),
                1 => Value::Int(base * exponent % modulus),
                2 => Value::Int(exponent % modulus),
                3 => Value::Int(uniform(rng, 0, modulus - 1)),
                _ => Value::Int(modulus - mod_pow(base, exponent, modulus)),
            },
            Template::DivisorCount { ref factors } => {
                let exps: Vec<i64> = factors.iter().map(|&(_, e)| e as i64).collect();
                match rng.below(5) {
                    0 => Value::Int(exps.iter().product()),
                    1 => Value::Int(exps.iter().map(|e| e + 1).sum()),
                    2 => Value::Int(exps.iter().map(|e| e + 2).product()),
                    3 => answer.nudged(-uniform(rng, 1, 2)),
                    _ => Value::Int(2 * exps.iter().map(|e| e + 1).product::<i64>()),
                }
            }
            Template::InclusionExclusion { limit, a, b } => match rng.below(5) {
                0 => Value::Int(limit / a + limit / b),
                1 => Value::Int(limit / a + limit / b - limit / (a * b)),
                2 => Value::Int(limit - (limit / a + limit / b - limit / lcm(a, b))),
                3 => Value::Int(limit / a + limit / b - 2 * (limit / lcm(a, b))),
                _ => answer.nudged(uniform(rng, -2, 2)),
            },
            Template::RootSquares { sum, product } => match rng.below(5) {
                0 => Value::Int(sum * sum + 2 * product),
                1 => Value::Int(sum * sum - product),
                2 => Value::Int(sum * sum),
                3 => Value::Int(sum * sum - 4 * product),
                _ => Value::Int(2 * product - sum * sum),
            },
            Template::FractionSum { a, b, c, d } => match rng.below(5) {
                0 => Value::ratio(a + c, b + d),
                1 => Value::ratio(a * c, b * d),
                2 => Value::ratio(a + c, b * d),
                3 => Value::ratio(a * d - c * b, b * d),
                _ => Value::ratio(a * d + c * b + uniform(rng, -3, 3), b * d),
            },
            Template::ArithmeticSeries {
                terms,
                slope,
                intercept,
            } => match rng.below(5) {
                0 => Value::Int(slope * terms * (terms + 1) / 2 + intercept),
                1 => Value::Int(slope * terms * (terms - 1) / 2 + intercept * terms),
                2 => Value::Int(slope * terms * (terms + 1) + intercept * terms),
                3 => Value::Int(slope * terms * (terms + 1) / 2 + intercept * (terms + 1)),
                _ => Value::Int(slope * terms * terms / 2 + intercept * terms),
            },
            Template::GeometricSeries { ratio, last } => {
                let partial = |n: u32| {
                    let top = ratio.pow(n);
                    Value::ratio(ratio * top - 1, top * (ratio - 1))
                };
                match rng.below(5) {
                    0 => partial(last - 1),
                    1 => partial(last + 1),
                    2 => Value::ratio(ratio, ratio - 1),
                    3 => Value::ratio(ratio.pow(last) - 1, ratio.pow(last) * (ratio - 1)),
                    _ => Value::ratio(ratio.pow(last + 1) - 1, ratio - 1),
                }
            }
            Template::LcmMinusGcd { a, b } => {
                let g = gcd(a, b);
                match rng.below(5) {
                    0 => Value::Int(a * b - g),
                    1 => Value::Int(lcm(a, b) + g),
                    2 => Value::Int(lcm(a, b)),
                    3 => Value::Int(a * b / (g * g) - g),
                    _ => Value::Int(lcm(a, b) - 1),
                }
            }
            Template::MarbleProbability { red, blue } => {
                let total = red + blue;
                match rng.below(5) {
                    0 => Value::ratio(red * red, total * total),
                    1 => Value::ratio(red, total),
                    2 => Value::ratio(red - 1, total - 1),
                    3 => Value::ratio(total * (total - 1) - red * (red - 1), total * (total - 1)),
                    _ => Value::ratio(red * (red - 1), total * total),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Problems and the unsolvable-set layout

/// Longest distractor list; the base model uses all of it.
pub(super) const DISTRACTOR_POOL: usize = 24;

pub(super) struct Problem {
    pub(super) template: Template,
    /// Latent difficulty, approximately N(0, 1); higher is harder.
    pub(super) difficulty: f64,
    /// Per-model noise on the solve probability, approximately N(0, 1) each.
    pub(super) model_noise: [f64; 3],
    /// Wrong answers, most plausible first, all different in value from the reference.
    pub(super) distractors: Vec<Value>,
}

impl Problem {
    pub(super) fn generate(seed: u64, index: usize) -> Problem {
        let mut rng = SplitMix64::derive(seed, problem_stream(index));
        let template = Template::draw(index % TEMPLATE_COUNT, &mut rng);
        let difficulty = standard_normal(&mut rng);
        let model_noise = [
            standard_normal(&mut rng),
            standard_normal(&mut rng),
            standard_normal(&mut rng),
        ];
        let answer = template.answer();
        let mut distractors: Vec<Value> = Vec::with_capacity(DISTRACTOR_POOL);
        let push = |value: Value, list: &mut Vec<Value>| {
            if value != answer && !list.contains(&value) && list.len() < DISTRACTOR_POOL {
                list.push(value);
            }
        };
        // Typical slips first (the mistakes a model repeats), then near misses to fill the pool.
        for _ in 0..40 {
            push(template.typical_slip(&mut rng), &mut distractors);
        }
        let mut delta = 1;
        while distractors.len() < DISTRACTOR_POOL {
            let sign = if rng.bernoulli(0.5) { 1 } else { -1 };
            push(answer.nudged(sign * delta), &mut distractors);
            push(answer.nudged(-sign * delta), &mut distractors);
            delta += 1;
        }
        Problem {
            template,
            difficulty,
            model_noise,
            distractors,
        }
    }
}

/// Venn regions of the unsolvable sets: bit 0 = base, bit 1 = sft, bit 2 = rl; share per 80
/// problems. The all-three core comes first and takes the hardest problems.
pub(super) const UNSOLVABLE_REGIONS: [(u8, f64); 7] = [
    (0b111, 5.0),
    (0b001, 6.0),
    (0b010, 2.0),
    (0b100, 5.0),
    (0b011, 3.0),
    (0b101, 6.0),
    (0b110, 3.0),
];

/// For each problem, the bit set of models that cannot solve it at all.
pub(super) fn layout_unsolvable_sets(seed: u64, problems: &[Problem]) -> Vec<u8> {
    let total = problems.len();
    let mut masks = vec![0u8; total];
    let mut by_difficulty: Vec<usize> = (0..total).collect();
    // Hardest first; ties (practically impossible) broken by index, so the order is total.
    by_difficulty.sort_by(|&x, &y| {
        problems[y]
            .difficulty
            .total_cmp(&problems[x].difficulty)
            .then(x.cmp(&y))
    });
    let mut remaining = total;
    let mut counts = Vec::with_capacity(UNSOLVABLE_REGIONS.len());
    for &(mask, per_80) in &UNSOLVABLE_REGIONS {
        let count = ((per_80 * total as f64 / 80.0).round() as usize)
            .max(1)
            .min(remaining);
        remaining -= count;
        counts.push((mask, count));
    }
    let (core_mask, core_count) = counts[0];
    for &index in &by_difficulty[..core_count] {
        masks[index] = core_mask;
    }
    let mut rest: Vec<usize> = by_difficulty[core_count..].to_vec();
    rest.sort_unstable();
    let mut rng = SplitMix64::derive(seed, LAYOUT_STREAM);
    rng.shuffle(&mut rest);
    let mut next = rest.into_iter();
    for &(mask, count) in &counts[1..] {
        for index in next.by_ref().take(count) {
            masks[index] = mask;
        }
    }
    masks
}

/// Difficulty tag: problems no model solves are hard; otherwise by latent difficulty.
pub(super) fn difficulty_label(problem: &Problem, unsolvable_mask: u8) -> &'static str {
    if unsolvable_mask == 0b111 || problem.difficulty > 0.6 {
        "hard"
    } else if problem.difficulty < -0.5 {
        "easy"
    } else {
        "medium"
    }
}

// ---------------------------------------------------------------------------------------------
// Models
