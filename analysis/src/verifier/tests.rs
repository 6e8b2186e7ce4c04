//! Verifier test suite: a table of (pred, ref, expected verdict, source of the expectation),
//! extraction and normalisation tables, property tests, and a seeded hostile-input run that
//! exercises the safety bounds on stable Rust (the cargo-fuzz targets do the same, longer).
//!
//! Source tags in the comments:
//! - H: Hendrycks MATH `is_equiv` / `_strip_string` (formats-research.md "Normalisation").
//! - Q: Qwen2.5-Math `math_equal` / `strip_string` (formats-research.md "Equivalence").
//! - MV: Math-Verify README and grader behaviour (formats-research.md; README example).
//! - MIN: lm-eval minerva `normalize_final_answer` (formats-research.md, verl DAPO).
//! - R: rllm / PRM800K `grade_answer_sympy` (formats-research.md).
//! - FR: the "Checkers disagree" list in formats-research.md, decided by caplens' policy.
//! - CAP: caplens' own documented policy (docs/verifier.md) where no checker settles it, or
//!   plain mathematics (a wrong answer is different).

use super::*;
use proptest::prelude::*;
use Verdict::{Different as D, Equal as E, Unverifiable as U};

/// GSM8K train[0] `answer` (openai/grade-school-math, `train.jsonl` line 1): the worked solution
/// with calculator annotations, ending in `#### 72`. lm-eval's gsm8k `target` is this whole text.
const GSM8K_NATALIA: &str = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72";
/// GSM8K test[0] `answer` (Janet's ducks; note the `$` and the curly apostrophe).
const GSM8K_JANET: &str = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day at the farmer\u{2019}s market.\n#### 18";
/// A MATH `solution` in the dataset's shape (MATH-500 problem 0, "Convert the point $(0,3)$ in
/// rectangular coordinates to polar coordinates"): prose, an `[asy]` block, the answer in the
/// last `\boxed{}` followed by `.$`.
const MATH_POLAR: &str = "We have that $r = \\sqrt{0^2 + 3^2} = 3.$  Also, if we draw the line connecting the origin and $(0,3),$ this line makes an angle of $\\frac{\\pi}{2}$ with the positive $x$-axis.\n\n[asy]\nunitsize(0.8 cm);\ndraw((-0.5,0)--(3.5,0));\n[/asy]\n\nTherefore, the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$";
/// A MATH-style solution with a box inside the text and a fraction answer.
const MATH_HALF: &str = "There are $\\binom{4}{2} = 6$ ways to choose two of the four coins, and $3$ of them show one head, so the probability is $\\boxed{\\frac{1}{2}}$.";
/// Several boxes: Hendrycks' `last_boxed_only_string` takes the last one.
const MATH_TWO_BOXES: &str =
    "First, $x = \\boxed{2}$ solves the first equation. Substituting, $y = 2x + 1 = \\boxed{5}$.";

/// (prediction, reference, expected, where the expectation comes from)
const CASES: &[(&str, &str, Verdict, &str)] = &[
    // --- plain integers (AIME) ---
    ("42", "42", E, "H: identical strings"),
    ("42", "43", D, "CAP: different numbers"),
    ("-7", "-7", E, "H: identical strings"),
    ("-7", "7", D, "CAP: sign matters"),
    ("007", "7", E, "Q: numeric comparison of numbers"),
    ("0", "-0", E, "Q: numeric comparison, isclose(0, -0)"),
    ("1000", "1000.0", E, "Q: float-ints are ints (also R)"),
    ("5", "5.0", E, "issue 4: integers vs 5.0 (Q, R float-int)"),
    ("5", "5.00", E, "Q: trailing zeros 12.00 -> 12"),
    ("5.", "5", E, "H/CAP: trailing period dropped"),
    ("5", "5.01", D, "CAP: beyond tolerance"),
    (
        "123456789012345678901234567890",
        "123456789012345678901234567890",
        E,
        "CAP: big integers compared exactly",
    ),
    (
        "123456789012345678901234567890",
        "123456789012345678901234567891",
        D,
        "CAP: big integers exactly, not via f64",
    ),
    ("+5", "5", E, "Q: numeric comparison"),
    // --- thousands separators: FR 1,000 vs 1000 ---
    (
        "1,000",
        "1000",
        E,
        "FR: Minerva/DAPO/Math-Verify true (default); Hendrycks false",
    ),
    ("1000", "1,000", E, "FR: symmetric"),
    (
        "12,345,678",
        "12345678",
        E,
        "MIN: commas dropped in pure-digit strings",
    ),
    ("1{,}000", "1000", E, "MV: LaTeX {,} thousands separator"),
    (
        "1,000.5",
        "1000.5",
        E,
        "MIN/CAP: grouped integer part with decimals",
    ),
    (
        "1,00",
        "100",
        D,
        "CAP: malformed grouping is not a thousands separator",
    ),
    // --- decimals and fractions ---
    (
        "0.5",
        "\\frac{1}{2}",
        E,
        "H: the literal 0.5 -> \\frac{1}{2}; Q numeric",
    ),
    (
        "0.25",
        "\\frac14",
        E,
        "FR: Qwen true (default), Hendrycks false",
    ),
    ("\\frac{1}{4}", "\\frac14", E, "H: \\frac14 -> \\frac{1}{4}"),
    ("\\dfrac{3}{4}", "\\frac{3}{4}", E, "H: dfrac -> frac"),
    ("\\tfrac{3}{4}", "\\frac{3}{4}", E, "H: tfrac -> frac"),
    ("3/4", "\\frac{3}{4}", E, "H: a/b -> \\frac{a}{b} for ints"),
    (
        "\\frac{2}{4}",
        "\\frac{1}{2}",
        E,
        "FR: Qwen/SkyThought true (default); rllm false",
    ),
    (
        "\\frac{1}{3}",
        "0.333",
        D,
        "Q: rel_tol 1e-4 also rejects; MV rounding to 6 digits rejects",
    ),
    ("\\frac{1}{3}", "0.3333333", E, "CAP: within rel_tol 1e-6"),
    (
        "\\frac{1}{3}",
        "0.33333333333",
        E,
        "MV: equal after rounding",
    ),
    ("\\frac{7}{2}", "3.5", E, "Q: fraction vs decimal numeric"),
    ("-\\frac{7}{2}", "-3.5", E, "Q: signed fraction vs decimal"),
    ("\\frac{-7}{2}", "-\\frac{7}{2}", E, "Q: sympy equality"),
    ("\\frac{7}{2}", "\\frac{2}{7}", D, "CAP: different values"),
    ("\\frac{1}{2}", "1/2", E, "H: 1/2 -> \\frac{1}{2}"),
    ("\\frac12", "\\frac{1}{2}", E, "H: \\frac12 fix"),
    ("\\frac1{72}", "\\frac{1}{72}", E, "H: \\frac1{72} fix"),
    ("\\frac{1}2", "\\frac{1}{2}", E, "H: \\frac{1}2 fix"),
    (".5", "0.5", E, "H: a leading '.' gets a 0"),
    ("0.50", "0.5", E, "Q: trailing zeros"),
    ("2.5", "\\frac{5}{2}", E, "Q: numeric"),
    (
        "0.1",
        "\\frac{1}{10}",
        E,
        "CAP: decimals parsed exactly as rationals",
    ),
    (
        "0.1+0.2",
        "0.3",
        E,
        "CAP: exact rational arithmetic (no float drift)",
    ),
    (
        "1.4142",
        "\\sqrt{2}",
        D,
        "CAP: a 5-digit rounding is not the exact answer (Q would accept at 1e-4)",
    ),
    (
        "1.41421356237",
        "\\sqrt{2}",
        E,
        "MV: equal after rounding to 6 digits",
    ),
    ("3.14", "\\pi", D, "CAP/MV: rounding to 2 digits is not pi"),
    ("\\frac{22}{7}", "\\pi", D, "CAP: different values"),
    // --- percent: FR 75 vs 0.75 ---
    ("75\\%", "75", E, "H: \\% dropped"),
    ("75%", "75", E, "Q: % dropped"),
    ("75", "75\\%", E, "H/Q: symmetric"),
    (
        "0.75",
        "75\\%",
        E,
        "MV percent handling; Q scaling (default SignAware)",
    ),
    (
        "75\\%",
        "0.75",
        E,
        "SignAware: the side with % may be read as a hundredth",
    ),
    (
        "75",
        "0.75",
        D,
        "FR: Qwen true (AnyScale switch); Math-Verify false (default)",
    ),
    ("0.75\\%", "0.75", E, "H: percent sign decoration"),
    ("50 percent", "50", E, "Q: unit-like word dropped"),
    // --- LaTeX noise ---
    (
        "\\left( 1, 2 \\right)",
        "(1,2)",
        E,
        "H: drop \\left/\\right",
    ),
    ("90^\\circ", "90", E, "H: drop ^\\circ"),
    ("90^{\\circ}", "90", E, "H: drop ^{\\circ}"),
    ("90°", "90", E, "CAP: unicode degree sign"),
    ("\\$5", "5", E, "H: drop \\$"),
    ("$5$", "5", E, "Q: drop $"),
    ("\\$1,000", "1000", E, "MIN/H: dollars and thousands"),
    ("10\\!000", "10000", E, "H: drop \\!"),
    (
        "1\\,000",
        "1000",
        E,
        "CAP: thin space as a thousands separator",
    ),
    (
        "\\text{(A)}",
        "A",
        E,
        "issue 4: multiple choice \\text{(A)}",
    ),
    ("(A)", "A", E, "Q: A-E choice cleaning"),
    ("(a)", "A", E, "Q: choice cleaning is case-insensitive"),
    ("A)", "A", E, "Q: choice cleaning"),
    ("A.", "A", E, "CAP: trailing period"),
    ("(B)", "A", D, "Q: different choices"),
    ("\\textbf{(C)}", "(C)", E, "CAP: \\textbf unwrapped"),
    (
        "\\text{ cm}",
        "cm",
        E,
        "H: \\text unwrapped (a lone unit word is kept)",
    ),
    ("5\\text{ cm}", "5", E, "H: cut units at '\\text{ '"),
    ("5 \\text{cm}^2", "5", E, "Q: unit with a power dropped"),
    ("12 \\mbox{ inches}", "12", E, "Q: \\mbox unit dropped"),
    ("20 dollars", "20", E, "Q: unit word list"),
    ("3 square units", "3", E, "Q: unit words (square units)"),
    ("4 \\text{ days}", "4", E, "Q/R: unit words"),
    ("\\sqrt3", "\\sqrt{3}", E, "H: \\sqrt3 fix"),
    ("2\\sqrt{3}", "2 \\sqrt 3", E, "H: \\sqrt3 with space"),
    (
        "\\sqrt{12}",
        "2\\sqrt{3}",
        E,
        "Q: sympy simplify; CAP numeric",
    ),
    ("\\sqrt{12}", "3\\sqrt{2}", D, "CAP: different values"),
    (
        "\\frac{\\sqrt{2}}{2}",
        "\\frac{1}{\\sqrt{2}}",
        E,
        "Q/MV: symbolic equality",
    ),
    (
        "\\frac{\\sqrt{3}}{3}",
        "\\frac{\\sqrt3}{3}",
        E,
        "H: \\sqrt3 fix",
    ),
    ("\\sqrt[3]{8}", "2", E, "MV: nth roots"),
    ("\\sqrt[3]{-8}", "-2", E, "CAP: real odd root of a negative"),
    ("2^{10}", "1024", E, "Q: sympy evaluation"),
    ("2^10", "1024", D, "CAP: LaTeX 2^10 is 2^1*0 = 0, not 1024"),
    ("10^{-3}", "0.001", E, "Q: numeric"),
    ("5!", "120", E, "CAP: factorial"),
    ("\\binom{5}{2}", "10", E, "Q: sympy binomial"),
    ("\\dbinom{6}{3}", "20", E, "CAP: \\dbinom -> \\binom"),
    ("\\pi", "\\pi", E, "H: identical"),
    ("2\\pi", "\\pi \\cdot 2", E, "Q: sympy"),
    ("\\frac{\\pi}{2}", "\\frac12\\pi", E, "Q: sympy"),
    (
        "\\frac{\\pi}{3}",
        "60^\\circ",
        D,
        "CAP: degrees are dropped as decoration, 60 != pi/3",
    ),
    ("\\pi r^2", "r^2\\pi", E, "Q: sympy commutativity"),
    ("e^{2}", "e^2", E, "H: braces irrelevant"),
    ("\\ln 8", "3\\ln 2", E, "Q: sympy log rules; CAP numeric"),
    ("\\log_{2} 8", "3", E, "CAP: log with base"),
    (
        "\\log_2 8",
        "3",
        E,
        "CAP: a one-character subscript ends at the space",
    ),
    ("a_1 + a_2", "a_2+a_1", E, "Q: sympy, subscripted symbols"),
    ("\\sin^2 x + \\cos^2 x", "1", E, "Q: sympy simplify"),
    (
        "\\tan x",
        "\\frac{\\sin x}{\\cos x}",
        E,
        "Q: sympy simplify",
    ),
    ("|x|", "x", D, "CAP: random points include negatives"),
    // --- x = prefixes and equations ---
    ("x=5", "5", E, "H: drop a k= prefix"),
    ("x = 5", "5", E, "Q: drop x="),
    ("5", "y=5", E, "Q: drop y="),
    ("k=3", "3", E, "H: left side of at most 2 chars"),
    ("a_1=3", "3", E, "CAP: subscripted variable prefix"),
    (
        "\\theta=\\frac{\\pi}{4}",
        "\\frac{\\pi}{4}",
        E,
        "CAP: Greek variable prefix",
    ),
    ("x\\in[0,1]", "[0,1]", E, "Q: drop x\\in"),
    ("y = 2x + 3", "y=3+2x", E, "Q: sympy on equations"),
    (
        "y=2x+3",
        "2x-y+3=0",
        E,
        "Q: single-= equations compared as a-b (up to a factor)",
    ),
    ("2x+3=y", "y=2x+3", E, "Q: sides swapped"),
    ("x+y=1", "2x+2y=2", E, "Q/CAP: equation scaled by 2"),
    ("x+y=1", "x-y=1", D, "CAP: different lines"),
    ("y=2x+3", "y=2x+4", D, "CAP: different lines"),
    ("x^2+y^2=1", "y^2+x^2=1", E, "Q: sympy"),
    (
        "x=2=2",
        "2",
        E,
        "MV: a predicted chain matches its last member",
    ),
    (
        "2",
        "x=2=2",
        D,
        "MV: a gold chain does not match a predicted number (asymmetric)",
    ),
    // --- expressions ---
    ("2x+3", "3+2x", E, "Q: sympy"),
    ("x^2-1", "(x-1)(x+1)", E, "Q: sympy expand"),
    ("x^2+1", "(x+1)^2", D, "CAP: different polynomials"),
    ("\\frac{x+1}{2}", "\\frac{1}{2}x+\\frac12", E, "Q: sympy"),
    ("2(a+b)", "2a+2b", E, "Q: sympy"),
    ("ab", "ba", E, "Q: sympy commutativity"),
    (
        "2t+1",
        "2x+1",
        D,
        "MV: different variable names are different expressions",
    ),
    ("x^{1/2}", "\\sqrt{x}", E, "Q: sympy"),
    ("\\frac{1}{x}", "x^{-1}", E, "Q: sympy"),
    ("n(n+1)/2", "\\frac{n^2+n}{2}", E, "Q: sympy"),
    ("3x", "3y", D, "CAP: different variables"),
    // --- tuples, intervals, sets ---
    ("(1,2)", "(1,2)", E, "H: identical"),
    ("(1, 2)", "(1,2)", E, "H: spaces removed"),
    (
        "(2,1)",
        "(1,2)",
        D,
        "issue 4: order matters for tuples (R: matching brackets and lengths)",
    ),
    ("(1,2,3)", "(1,2)", D, "R: lengths must match"),
    ("(0.5,2)", "(\\frac12,2)", E, "Q: element-wise numeric"),
    (
        "(\\frac{1}{2}, \\sqrt{4})",
        "(0.5, 2)",
        E,
        "Q: element-wise",
    ),
    ("[1,2]", "[1,2]", E, "H: identical"),
    ("[1,2)", "[1,2]", D, "MV: interval ends matter"),
    ("(1,2]", "(1,2]", E, "MV: identical interval"),
    (
        "(-\\infty, 3)",
        "(-\\infty,3)",
        E,
        "MV: interval with infinity",
    ),
    (
        "(-\\infty, 3]",
        "(-\\infty, 3)",
        D,
        "MV: closed vs open end",
    ),
    (
        "(-\\infty,\\infty)",
        "(-\\infty, \\infty)",
        E,
        "Q: whole real line",
    ),
    (
        "(3,\\infty)",
        "(3,100)",
        D,
        "CAP: infinity is not a large number",
    ),
    (
        "[0,1]\\cup[2,3]",
        "[2,3]\\cup[0,1]",
        E,
        "MV: unions compared as sets of intervals",
    ),
    (
        "[0,1]\\cup[2,3]",
        "[0,1]\\cup[2,4]",
        D,
        "MV: different union",
    ),
    (
        "\\{1,2,3\\}",
        "\\{3,2,1\\}",
        E,
        "issue 4: order does not matter for sets",
    ),
    ("\\{1,2\\}", "\\{1,2,3\\}", D, "MV: different sets"),
    (
        "\\{1,3\\}\\cup\\{2,4\\}",
        "\\{1,2,3,4\\}",
        E,
        "MV README: {1,3} \\cup {2,4} = {1,2,3,4}",
    ),
    (
        "{1,3}\\cup{2,4}",
        "{1,2,3,4}",
        E,
        "MV README: plain braces read as sets",
    ),
    (
        "\\{\\frac12, 2\\}",
        "\\{2, 0.5\\}",
        E,
        "MV: set elements compared numerically",
    ),
    (
        "1, 2",
        "2, 1",
        E,
        "CAP: an unbracketed list ('all solutions') is order-insensitive",
    ),
    ("-2, 3", "3,-2", E, "CAP: unbracketed list of roots"),
    ("1, 2", "1, 3", D, "CAP: different lists"),
    ("1,2", "\\{1,2\\}", E, "CAP: a bare list against a set"),
    (
        "1,2",
        "(1,2)",
        E,
        "Q: brackets stripped before element-wise comparison",
    ),
    (
        "2,1",
        "(1,2)",
        D,
        "CAP: against a tuple, a bare list keeps its order",
    ),
    ("\\emptyset", "\\varnothing", E, "Q: \\emptyset forms"),
    ("\\emptyset", "\\{\\}", E, "Q: \\emptyset becomes {}"),
    ("((1,2),(3,4))", "((1,2),(3,4))", E, "CAP: nested tuples"),
    (
        "((1,2),(3,4))",
        "((1,2),(4,3))",
        D,
        "CAP: nested tuples element-wise",
    ),
    (
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        E,
        "Q: pmatrix identical",
    ),
    (
        "\\begin{pmatrix}0.5&2\\\\3&4\\end{pmatrix}",
        "\\begin{pmatrix}\\frac12&2\\\\3&4\\end{pmatrix}",
        E,
        "Q: pmatrix cells compared",
    ),
    (
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        "\\begin{pmatrix}1&2\\\\4&3\\end{pmatrix}",
        D,
        "Q: pmatrix cells in order",
    ),
    // --- words and text answers ---
    ("Yes", "yes", E, "Q: case-insensitive string equality"),
    (
        "\\text{Monday}",
        "monday",
        E,
        "Q: \\text unwrapped, case-insensitive",
    ),
    ("yes", "no", D, "CAP: different words"),
    ("five", "5", E, "Q: word numbers become digits"),
    ("twelve", "12", E, "Q: word numbers"),
    ("\\text{odd}", "\\text{even}", D, "CAP: different words"),
    ("", "5", D, "CAP: an empty prediction is never correct"),
    ("5", "", D, "CAP: an empty reference matches nothing"),
    ("  ", "  ", D, "CAP: blank is not an answer"),
    ("\\boxed{5}", "5", E, "CAP: a boxed reference is unwrapped"),
    ("\\(5\\)", "5", E, "MV: \\( \\) delimiters"),
    ("−3", "-3", E, "CAP: unicode minus"),
    ("3π", "3\\pi", E, "CAP: unicode pi"),
    ("2×3", "6", E, "CAP: unicode times"),
    ("x \\leq 3", "x\\le3", E, "Q: \\leq -> \\le"),
    ("x \\neq 3", "x\\ne 3", E, "Q: \\neq -> \\ne"),
    ("3 \\pm 2", "3\\pm2", E, "H: identical after normalisation"),
    (
        "3 \\pm 2",
        "3\\mp2",
        D,
        "CAP: not parsed as maths; strings differ",
    ),
    ("\\infty", "\\infty", E, "H: identical"),
    ("\\infty", "-\\infty", D, "CAP: opposite infinities"),
    (
        "\\infty",
        "1000000",
        D,
        "CAP: infinity is not a large number",
    ),
    // --- hostile / bounds ---
    (
        "10^{10^{10^{10}}}",
        "10^{10^{10^{11}}}",
        U,
        "issue 4: overflow is unverifiable, not a guess",
    ),
    (
        "10^{10^{10^{10}}}",
        "10^{10^{10^{10}}}",
        E,
        "CAP: identical strings need no evaluation",
    ),
    (
        "10^{400}",
        "10^{401}",
        U,
        "CAP: both overflow f64 and exact powers are bounded",
    ),
    (
        "\\sqrt{-1}",
        "\\sqrt{-4}",
        U,
        "CAP: undefined in the reals: unverifiable",
    ),
    (
        "\\frac{1}{0}",
        "\\frac{2}{0}",
        U,
        "CAP: division by zero is undefined",
    ),
    ("0^0", "1", E, "CAP: powf convention 0^0 = 1 (sympy agrees)"),
    // --- references holding their answer (reference_answer) ---
    (
        "72",
        GSM8K_NATALIA,
        E,
        "lm-eval gsm8k: target after the last ####",
    ),
    (
        "71",
        GSM8K_NATALIA,
        D,
        "CAP: the marked answer, not any number",
    ),
    (
        "24",
        GSM8K_NATALIA,
        D,
        "CAP: an intermediate result is wrong",
    ),
    (
        "18",
        GSM8K_JANET,
        E,
        "lm-eval gsm8k: target after the last ####",
    ),
    ("18", "#### 18", E, "lm-eval gsm8k regex #### (-?[0-9.,]+)"),
    ("1000", "#### 1,000", E, "lm-eval gsm8k ignores ','"),
    (
        "-3",
        "Net change.\n#### -3",
        E,
        "lm-eval gsm8k regex keeps the sign",
    ),
    (
        "\\left(3, \\frac{\\pi}{2}\\right)",
        MATH_POLAR,
        E,
        "H: last_boxed_only_string of the solution",
    ),
    ("(3, \\frac{\\pi}{2})", MATH_POLAR, E, "H + normalisation"),
    ("0.5", MATH_HALF, E, "H: last box, then Q numeric"),
    ("5", MATH_TWO_BOXES, E, "H: the last box of the solution"),
    (
        "2",
        MATH_TWO_BOXES,
        D,
        "H: an earlier box is not the answer",
    ),
    (
        "5",
        "The answer is 5.",
        E,
        "CoT references: trailing 'The answer is'",
    ),
    (
        "5",
        "The answer is 5. It is prime.",
        D,
        "CAP: only a trailing sentence",
    ),
    (
        "4",
        "There are 3 apples and 4 pears",
        D,
        "CAP: no last-number rule for references",
    ),
    ("x+1", "x+1", E, "CAP: an answer reference stays as written"),
    // --- short answers (yes/no tasks, words) ---
    ("Yes", "Yes", E, "H: identical strings"),
    (
        "yes.",
        "Yes",
        E,
        "CAP: words case-insensitive, trailing '.' dropped",
    ),
    ("No", "no", E, "CAP: 'no' is a word, not the product n*o"),
    ("Yes", "No", D, "CAP: different words"),
    ("xy", "XY", D, "CAP: two letters are variables; case kept"),
];

#[test]
fn table_has_enough_cases() {
    assert!(CASES.len() >= 150, "only {} cases", CASES.len());
}

#[test]
fn table_cases() {
    let mut failures = Vec::new();
    for (pred, reference, expected, source) in CASES {
        let got = verify(pred, reference);
        if got != *expected {
            failures.push(format!(
                "verify({pred:?}, {reference:?}) = {got:?}, expected {expected:?} [{source}] (norm {:?} / {:?})",
                normalize_answer(pred),
                normalize_answer(reference)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The switches of `VerifierConfig` flip exactly the disagreements they document.
#[test]
fn config_switches_change_the_disputed_cases() {
    let hendrycks_commas = VerifierConfig {
        thousands_separators: false,
        ..Default::default()
    };
    assert_eq!(verify_with("1,000", "1000", &hendrycks_commas), D); // FR: Hendrycks false
    assert_eq!(verify_with("1000", "1000", &hendrycks_commas), E);

    let rllm_fractions = VerifierConfig {
        unreduced_fractions_equal: false,
        ..Default::default()
    };
    assert_eq!(
        verify_with("\\frac{2}{4}", "\\frac{1}{2}", &rllm_fractions),
        D
    ); // FR: rllm false
    assert_eq!(verify_with("\\frac{4}{1}", "4", &rllm_fractions), D); // R: int vs non-int
    assert_eq!(verify_with("\\frac{1}{2}", "0.5", &rllm_fractions), E);

    let qwen_percent = VerifierConfig {
        percent: PercentPolicy::AnyScale,
        ..Default::default()
    };
    assert_eq!(verify_with("0.75", "75", &qwen_percent), E); // Q: ref/100
    assert_eq!(verify_with("75", "0.75", &qwen_percent), E); // Q: ref*100
    assert_eq!(verify_with("7.5", "75", &qwen_percent), D);

    let strict_percent = VerifierConfig {
        percent: PercentPolicy::IgnoreSign,
        ..Default::default()
    };
    assert_eq!(verify_with("0.75", "75\\%", &strict_percent), D); // H: % is only dropped
    assert_eq!(verify_with("75", "75\\%", &strict_percent), E);

    let loose = VerifierConfig {
        rel_tol: 1e-4,
        ..Default::default()
    };
    assert_eq!(verify_with("3.1416", "\\pi", &loose), E); // Q: isclose(rel_tol=1e-4)
    assert_eq!(verify("3.1416", "\\pi"), D);
}

// ------------------------------------------------------------------ extraction

/// (response, expected answer or None, expected rule, after_think, source)
type ExtractionCase = (
    &'static str,
    Option<&'static str>,
    Option<ExtractionRule>,
    bool,
    &'static str,
);

const EXTRACTION_CASES: &[ExtractionCase] = &[
    (
        "So the answer is $\\boxed{42}$.",
        Some("42"),
        Some(ExtractionRule::Boxed),
        false,
        "H: last \\boxed",
    ),
    (
        "\\boxed{1} then \\boxed{2}",
        Some("2"),
        Some(ExtractionRule::Boxed),
        false,
        "H: rfind, the last box wins",
    ),
    (
        "\\boxed{\\frac{1}{2}}",
        Some("\\frac{1}{2}"),
        Some(ExtractionRule::Boxed),
        false,
        "H: balanced nested braces",
    ),
    (
        "\\boxed{\\{1,2\\}}",
        Some("\\{1,2\\}"),
        Some(ExtractionRule::Boxed),
        false,
        "H: escaped braces balance too",
    ),
    (
        "$\\boxed 7$",
        Some("7"),
        Some(ExtractionRule::BoxedSpace),
        false,
        "H: '\\boxed ' takes text up to the next $",
    ),
    (
        "\\fbox{9}",
        Some("9"),
        Some(ExtractionRule::Fbox),
        false,
        "H: \\fbox is the fallback",
    ),
    (
        "\\fbox{9} and \\boxed{8}",
        Some("8"),
        Some(ExtractionRule::Boxed),
        false,
        "H: \\boxed before \\fbox",
    ),
    (
        "\\boxed{1} ... \\boxed{2",
        None,
        None,
        false,
        "H: an unclosed (last) box gives None",
    ),
    (
        "the answer is 5 so \\boxed{",
        None,
        None,
        false,
        "issue 4: unclosed box, not the rest of the text",
    ),
    (
        "\\boxed{}",
        None,
        None,
        false,
        "CAP: an empty box and nothing else: no answer",
    ),
    (
        "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.",
        Some("\\frac{3}{4}"),
        Some(ExtractionRule::FinalAnswerIs),
        false,
        "MIN/Q: Minerva final answer format",
    ),
    (
        "Thus the answer is 17.",
        Some("17"),
        Some(ExtractionRule::TheAnswerIs),
        false,
        "Q: 'he answer is'",
    ),
    (
        "The answer is: $x^2$ indeed",
        Some("x^2"),
        Some(ExtractionRule::TheAnswerIs),
        false,
        "Q: $..$ after the phrase",
    ),
    (
        "Work...\nAnswer: 12\n",
        Some("12"),
        Some(ExtractionRule::AnswerLine),
        false,
        "verl DAPO: last Answer: line",
    ),
    (
        "**Answer:** 3.5",
        Some("3.5"),
        Some(ExtractionRule::AnswerLine),
        false,
        "CAP: markdown answer line",
    ),
    (
        "we find 3 apples and then 1,234 pears",
        Some("1234"),
        Some(ExtractionRule::LastNumber),
        false,
        "Q: last number, commas removed",
    ),
    (
        "it is -4.5.",
        Some("-4.5"),
        Some(ExtractionRule::LastNumber),
        false,
        "Q: last number with sign",
    ),
    (
        "no digits at all",
        Some("no digits at all"),
        Some(ExtractionRule::WholeResponse),
        false,
        "CAP: a short response is its own answer",
    ),
    (
        "I could not work out which of the options is right here.",
        None,
        None,
        false,
        "CAP: more than 8 words is a sentence, not an answer",
    ),
    (
        "No idea\nat all",
        None,
        None,
        false,
        "CAP: whole_response takes one line only",
    ),
    (
        "Yes",
        Some("Yes"),
        Some(ExtractionRule::WholeResponse),
        false,
        "CAP: Inspect yes/no task without scores",
    ),
    (
        "  **No**.  ",
        Some("No"),
        Some(ExtractionRule::WholeResponse),
        false,
        "CAP: trimmed; markdown bold and trailing '.' dropped",
    ),
    (
        "<think>Is it? Let me think it over.</think>\nTrue",
        Some("True"),
        Some(ExtractionRule::WholeResponse),
        true,
        "CAP: the short text after </think>",
    ),
    (
        "<think>hmm</think>",
        None,
        None,
        false,
        "CAP: think tags are never a whole response",
    ),
    (
        "x^2 is it",
        Some("2"),
        Some(ExtractionRule::LastNumber),
        false,
        "CAP: whole_response comes after last_number",
    ),
    (
        "<think>\\boxed{1}</think>The result is \\boxed{2}",
        Some("2"),
        Some(ExtractionRule::Boxed),
        true,
        "R: text after </think> is graded",
    ),
    (
        "<think>maybe \\boxed{1}</think> so answer is 3",
        Some("3"),
        Some(ExtractionRule::TheAnswerIs),
        true,
        "R/CAP: after-think fallback beats a box in the thinking",
    ),
    (
        "<think>\\boxed{1}</think>",
        Some("1"),
        Some(ExtractionRule::Boxed),
        false,
        "CAP: nothing after </think>: the whole text, flagged",
    ),
    (
        "<think>x</think>\\boxed{3",
        None,
        None,
        false,
        "CAP: an unclosed box after </think> is no answer",
    ),
    (
        "é\\boxed{ü}ñ",
        Some("ü"),
        Some(ExtractionRule::Boxed),
        false,
        "CAP: multi-byte text around and inside a box",
    ),
    (
        "数字是 \\boxed{七}",
        Some("七"),
        Some(ExtractionRule::Boxed),
        false,
        "CAP: CJK content",
    ),
    (
        "日本 42 円",
        Some("42"),
        Some(ExtractionRule::LastNumber),
        false,
        "CAP: last number between multi-byte chars",
    ),
];

#[test]
fn extraction_cases() {
    let mut failures = Vec::new();
    for (response, answer, rule, after_think, source) in EXTRACTION_CASES {
        let got = extract_answer(response);
        let got_view = got
            .as_ref()
            .map(|e| (e.answer.as_str(), e.rule, e.after_think));
        let expected = answer.map(|a| (a, rule.unwrap(), *after_think));
        if got_view != expected {
            failures.push(format!(
                "extract({response:?}) = {got_view:?}, expected {expected:?} [{source}]"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn extraction_rule_serialises_snake_case() {
    let json = serde_json::to_string(&ExtractionRule::FinalAnswerIs).unwrap();
    assert_eq!(json, "\"final_answer_is\"");
    assert_eq!(ExtractionRule::BoxedSpace.as_str(), "boxed_space");
    assert!(ExtractionRule::LastNumber.is_fallback());
    assert!(ExtractionRule::WholeResponse.is_fallback());
    assert_eq!(
        serde_json::to_string(&ExtractionRule::WholeResponse).unwrap(),
        "\"whole_response\""
    );
    assert_eq!(ExtractionRule::WholeResponse.as_str(), "whole_response");
    assert!(!ExtractionRule::Fbox.is_fallback());
}

// ------------------------------------------------------------------ references

/// (reference, its answer, source)
const REFERENCE_CASES: &[(&str, &str, &str)] = &[
    (
        GSM8K_NATALIA,
        "72",
        "lm-eval gsm8k: text after the last ####",
    ),
    (GSM8K_JANET, "18", "lm-eval gsm8k"),
    ("#### 18", "18", "lm-eval gsm8k"),
    (
        "Total.\n#### 1,234",
        "1,234",
        "lm-eval regex keeps ',' (normalisation drops it)",
    ),
    ("#### -3\n", "-3", "trailing newline trimmed"),
    (
        "The capital.\n#### Paris",
        "Paris",
        "CAP: non-numeric answers after #### kept",
    ),
    (
        "#### Step 1\nAdd them: $\\boxed{5}$",
        "5",
        "CAP: a #### heading with lines after is not GSM8K's marker",
    ),
    (
        MATH_POLAR,
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        "H: last_boxed_only_string",
    ),
    (MATH_HALF, "\\frac{1}{2}", "H: box inside text"),
    (MATH_TWO_BOXES, "5", "H: the last box"),
    (
        "Thus the side is $\\fbox{7}$.",
        "7",
        "H: \\fbox when there is no \\boxed",
    ),
    ("The sum is $\\boxed 12$.", "12", "H: space form"),
    (
        "$\\boxed{5}$.",
        "5",
        "CAP: a box with only decoration around it",
    ),
    (
        "#### \\boxed{5}",
        "5",
        "CAP: rules repeat until nothing changes",
    ),
    (
        "So $\\boxed{\\fbox{7}}$ it is",
        "7",
        "CAP: \\fbox inside the last \\boxed",
    ),
    ("The answer is 5.", "5", "CoT references"),
    (
        "Natalia sold 72 clips. The answer is 72.",
        "72",
        "CoT references",
    ),
    (
        "So the final answer is $\\frac{3}{4}$.",
        "\\frac{3}{4}",
        "MIN: $..$ after the phrase",
    ),
    (
        "**The answer is: 12**",
        "12",
        "CAP: markdown around the sentence",
    ),
    // Unchanged: a reference is an answer unless it says where its answer is.
    ("x+1", "x+1", "CAP: no last-number fallback"),
    (
        "\\frac{1}{2}",
        "\\frac{1}{2}",
        "CAP: no last-number fallback",
    ),
    ("(1, 2)", "(1, 2)", "CAP"),
    ("18", "18", "CAP"),
    ("\\text{Evelyn}", "\\text{Evelyn}", "MATH-500 word answer"),
    (
        "x = \\boxed{5}",
        "x = \\boxed{5}",
        "CAP: the box is part of the answer (normalisation unwraps it)",
    ),
    (
        "\\boxed{2}^2",
        "\\boxed{2}^2",
        "CAP: the box is part of the answer",
    ),
    (
        "The answer is 5. It is prime.",
        "The answer is 5. It is prime.",
        "CAP: 'answer is' only in the last sentence",
    ),
    (
        "There are 3 apples and 4 pears",
        "There are 3 apples and 4 pears",
        "CAP: no last number",
    ),
    (
        "Work: \\boxed{12",
        "Work: \\boxed{12",
        "CAP: an unclosed box is not an answer",
    ),
    (
        "The answer is",
        "The answer is",
        "CAP: nothing after the phrase",
    ),
    ("####", "####", "CAP: nothing after the marker"),
    ("", "", "CAP"),
];

#[test]
fn reference_cases() {
    let mut failures = Vec::new();
    for (reference, expected, source) in REFERENCE_CASES {
        let got = reference_answer(reference);
        if got != *expected {
            failures.push(format!(
                "reference_answer({reference:?}) = {got:?}, expected {expected:?} [{source}]"
            ));
        }
        let again = reference_answer(got);
        if again != got {
            failures.push(format!(
                "not idempotent on {reference:?}: {got:?} -> {again:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every caller of `verify` (imports, evaluation runs, interventions, the CLI) gets the reduction;
/// the prediction side is an answer already and is not reduced (documented asymmetry).
#[test]
fn verify_reduces_only_the_reference() {
    assert_eq!(verify("18", "#### 18"), E);
    assert_eq!(verify("#### 18", "18"), D);
    assert_eq!(verify("#### 18", "#### 18"), E); // byte-identical
    assert_eq!(
        verify_with("72", GSM8K_NATALIA, &VerifierConfig::default()),
        E
    );
}

/// The import pipeline's path: extract from the response, verify against the dataset reference.
#[test]
fn responses_grade_against_whole_references() {
    let grade = |response: &str, reference: &str| {
        extract_answer(response).map(|e| verify(&e.answer, reference))
    };
    // Inspect yes/no task without scores: `Yes` used to extract nothing and grade wrong.
    assert_eq!(grade("Yes", "Yes"), Some(E));
    assert_eq!(grade("yes.", "Yes"), Some(E));
    assert_eq!(grade("No", "Yes"), Some(D));
    // lm-eval gsm8k: the response's last number against the whole worked solution.
    let response = "In May she sold 48/2 = 24 clips, so 48 + 24 = 72 clips in total.";
    assert_eq!(grade(response, GSM8K_NATALIA), Some(E));
    assert_eq!(grade("She sold 24 clips.", GSM8K_NATALIA), Some(D));
    // MATH: a boxed prediction against the solution's last box.
    assert_eq!(grade("So $\\boxed{\\dfrac12}$.", MATH_HALF), Some(E));
}

// ------------------------------------------------------------------ normalisation

const NORMALIZATION_CASES: &[(&str, &str)] = &[
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("\\frac12", "\\frac{1}{2}"),
    ("\\sqrt3", "\\sqrt{3}"),
    ("\\left(1,2\\right)", "(1,2)"),
    ("90^\\circ", "90"),
    ("50\\%", "50"),
    ("\\$4.50", "4.5"),
    ("\\text{(B)}", "B"),
    ("x = 1,000", "1000"),
    ("12.00", "12"),
    ("10\\!000", "10000"),
    ("5 \\text{ cm}", "5"),
    ("\\pi r^2", "\\pi r^2"),
    ("YES", "yes"),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}"),
    ("1.50.0", "1.5.0"),
    ("\u{4}....3", "\u{4}....3"), // found by cargo fuzz: each pass used to eat one dot
    ("\u{4}...........3.", "\u{4}...........3"), // the fuzzer's crash input itself
    ("0.mm.mm.mm,.mm", "0.mm.mm.mm,.mm"), // cargo fuzz: one unit word peeled per pass
    ("5 cm.", "5"),
    ("2//,\\.\\//,\\.\\,\\.\\.,.\\.,\\.\\..", "2//,\\.\\//"), // cargo fuzz: `\.` peeled one per pass
    ("-3/4", "-\\frac{3}{4}"),
    ("1,000,000.50", "1000000.5"),
    ("NO", "no"),
    ("Xy", "Xy"),
];

#[test]
fn normalization_cases() {
    for (input, expected) in NORMALIZATION_CASES {
        assert_eq!(
            normalize_answer(input),
            *expected,
            "normalize_answer({input:?})"
        );
    }
}

// ------------------------------------------------------------------ properties

fn latexish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "1", "2", "0.5", "12", "x", "y", "\\frac", "\\dfrac", "{", "}", "(", ")", "[", "]", ",",
        "=", "+", "-", "^", "\\sqrt", "\\pi", "\\text{", " cm", " ", "\\%", "$", "\\left(",
        "\\right)", "\\{", "\\}", "\\cup", "^\\circ", ".", "0", "A", "\\boxed{", "\\!", "é", "數",
    ]);
    prop::collection::vec(atoms, 0..24).prop_map(|v| v.concat())
}

fn well_formed_answer() -> impl Strategy<Value = String> {
    let number = (-500i64..500).prop_map(|n| n.to_string());
    let fraction = (1i64..50, 1i64..50).prop_map(|(a, b)| format!("\\frac{{{a}}}{{{b}}}"));
    let decimal = (0u32..1000, 1u32..99).prop_map(|(a, b)| format!("{a}.{b}"));
    let expression = (1i64..9, 0i64..9).prop_map(|(a, b)| format!("{a}x^2+{b}x"));
    let tuple = (-9i64..9, -9i64..9).prop_map(|(a, b)| format!("({a}, {b})"));
    let set = (-9i64..9, -9i64..9).prop_map(|(a, b)| format!("\\{{{a},{b}\\}}"));
    prop_oneof![number, fraction, decimal, expression, tuple, set]
}

/// Reference-shaped text: LaTeX atoms plus the markers `reference_answer` looks for.
fn reference_like() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "1",
        "72",
        "-3",
        "x",
        "\\frac{1}{2}",
        "{",
        "}",
        "$",
        ".",
        " ",
        "\n",
        "####",
        "#### ",
        "The answer is ",
        "answer is",
        "ANSWER IS",
        "\\boxed{",
        "\\boxed ",
        "\\fbox{",
        "\\(",
        "\\)",
        "so",
        "*",
        "<<48/2=24>>",
        "é",
        "數",
    ]);
    prop::collection::vec(atoms, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn reference_answer_is_idempotent(s in reference_like()) {
        let once = reference_answer(&s);
        prop_assert_eq!(reference_answer(once), once, "input {:?}", s);
    }

    #[test]
    fn reference_answer_is_idempotent_on_any_string(s in ".{0,60}") {
        let once = reference_answer(&s);
        prop_assert_eq!(reference_answer(once), once);
    }

    #[test]
    fn a_plain_answer_is_its_own_reference(x in well_formed_answer()) {
        prop_assert_eq!(reference_answer(&x), x.as_str());
    }

    #[test]
    fn a_solution_grades_like_its_answer(x in well_formed_answer(), y in well_formed_answer()) {
        let gsm8k = format!("She has <<3*4=12>>12 now.\nSo 12 - 1 = 11 left.\n#### {x}");
        let math = format!("Working through it, we find $\\boxed{{{x}}}$.");
        let cot = format!("So 11 are left. The answer is {x}.");
        for reference in [&gsm8k, &math, &cot] {
            prop_assert_eq!(verify(&y, reference), verify(&y, &x), "{:?} vs {:?}", y, reference);
        }
    }

    #[test]
    fn normalization_is_idempotent(s in latexish()) {
        let once = normalize_answer(&s);
        prop_assert_eq!(normalize_answer(&once), once.clone(), "input {:?}", s);
    }

    #[test]
    fn normalization_is_idempotent_on_any_string(s in ".{0,40}") {
        let once = normalize_answer(&s);
        prop_assert_eq!(normalize_answer(&once), once);
    }

    #[test]
    fn every_well_formed_answer_equals_itself(x in well_formed_answer()) {
        prop_assert_eq!(verify(&x, &x), Verdict::Equal);
        // ... and its normal form, written differently.
        prop_assert_eq!(verify(&normalize_answer(&x), &x), Verdict::Equal);
    }

    #[test]
    fn verify_is_symmetric_on_numbers_fractions_and_sets(a in well_formed_answer(), b in well_formed_answer()) {
        prop_assert_eq!(verify(&a, &b), verify(&b, &a), "{:?} vs {:?}", a, b);
    }

    #[test]
    fn fraction_equals_its_decimal_value(n in -1000i64..1000, d in prop::sample::select(vec![1i64, 2, 4, 5, 8, 10, 16, 20, 25])) {
        let decimal = format!("{}", n as f64 / d as f64);
        prop_assert_eq!(verify(&format!("\\frac{{{n}}}{{{d}}}"), &decimal), Verdict::Equal);
        prop_assert_eq!(verify(&format!("\\frac{{{}}}{{{d}}}", n + 1), &decimal), Verdict::Different);
    }

    #[test]
    fn never_panics_on_arbitrary_input(a in ".{0,60}", b in latexish()) {
        let _ = verify(&a, &b);
        let _ = verify(&b, &a);
        let _ = extract_answer(&a);
        let _ = extract_answer(&b);
    }
}

// ------------------------------------------------------------------ hostile input

/// Seeded random and hostile strings through extract and verify: must finish, never panic.
/// This is the stable-Rust stand-in for the cargo-fuzz targets in `analysis/fuzz`. How long they
/// take is measured by `cargo bench -p caplens-analysis --bench verifier` (a test that bounds
/// time passes or fails with the machine's load).
#[test]
fn hostile_inputs_finish_without_panicking() {
    let mb = "9".repeat(1 << 20);
    let deep_frac = "\\frac{".repeat(10_000) + "1" + &"}{2}".repeat(10_000);
    let deep_parens = "(".repeat(10_000) + "1" + &")".repeat(10_000);
    let deep_sqrt = "\\sqrt{".repeat(10_000) + "2" + &"}".repeat(10_000);
    let power_tower = "10^{".repeat(200) + "10" + &"}".repeat(200);
    let long_sum = vec!["1"; 50_000].join("+");
    let unclosed = "\\boxed{".repeat(50_000);
    let many_boxes = "\\boxed{1}".repeat(100_000);
    let wide_set = format!(
        "\\{{{}\\}}",
        (0..5000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let multibyte = "é\\boxed{ü".repeat(10_000) + "}";
    let hostile = [
        mb.as_str(),
        deep_frac.as_str(),
        deep_parens.as_str(),
        deep_sqrt.as_str(),
        power_tower.as_str(),
        long_sum.as_str(),
        unclosed.as_str(),
        many_boxes.as_str(),
        wide_set.as_str(),
        multibyte.as_str(),
        "10^{10^{10^{10}}}",
        "\\frac{1}{0}",
        "0^{-1}",
        "99999999999999999999999999999999999999999!",
        "\\binom{100000000000}{50000000000}",
    ];
    for a in &hostile {
        let _ = extract_answer(a);
        let _ = normalize_answer(a);
        let reduced = reference_answer(a);
        assert_eq!(reference_answer(reduced), reduced);
        for b in &hostile {
            let v = verify(a, b);
            if a != b {
                assert_ne!(v, Verdict::Equal, "distinct hostile inputs judged equal");
            }
        }
        let _ = verify(a, "5");
        let _ = verify("5", a);
    }
    assert_eq!(verify(&deep_frac, "1"), Verdict::Unverifiable);
    assert_eq!(verify(&power_tower, "5"), Verdict::Unverifiable);
    assert_eq!(extract_answer(&unclosed), None);

    // Seeded random strings from a LaTeX-heavy alphabet, with multi-byte chars mixed in.
    let alphabet: Vec<&str> = vec![
        "\\boxed{",
        "\\frac",
        "{",
        "}",
        "\\sqrt",
        "^",
        "_",
        "1",
        "0",
        "9",
        ".",
        ",",
        "x",
        "=",
        "(",
        ")",
        "[",
        "]",
        "\\{",
        "\\}",
        "\\cup",
        "\\infty",
        "-",
        "+",
        "\\text{",
        "$",
        "%",
        " ",
        "\n",
        "</think>",
        "answer is",
        "Answer:",
        "####",
        "é",
        "🦀",
        "\u{0301}",
        "\\",
        "!",
        "\\left",
        "\\right",
        "\\pi",
        "e",
    ];
    let mut rng = crate::rng::SplitMix64::new(2024);
    for _ in 0..3000 {
        let len = rng.below(40) as usize;
        let mut a = String::new();
        let mut b = String::new();
        for _ in 0..len {
            a.push_str(alphabet[rng.below(alphabet.len() as u64) as usize]);
            b.push_str(alphabet[rng.below(alphabet.len() as u64) as usize]);
        }
        let _ = extract_answer(&a);
        let _ = verify(&a, &b);
        let r = reference_answer(&a);
        assert_eq!(reference_answer(r), r, "reference idempotence on {a:?}");
        let n = normalize_answer(&a);
        assert_eq!(normalize_answer(&n), n, "idempotence on {a:?}");
    }
}
