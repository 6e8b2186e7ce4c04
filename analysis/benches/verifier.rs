//! Throughput of `verify` on typical AIME/MATH (pred, ref) pairs.
//!
//! Run: `cargo bench -p caplens-analysis --bench verifier`. Prints the slowest hostile inputs, then
//! pairs/second per category and
//! overall for 1 million pairs; target (issue 4): > 200,000 pairs/s on one core for the numeric
//! and fraction cases. Pairs are generated from a seeded SplitMix64 so runs are comparable.

use caplens_analysis::rng::SplitMix64;
use caplens_analysis::verifier::{extract_answer, verify, Verdict};
use std::hint::black_box;
use std::time::Instant;

/// A generator of (prediction, reference) pairs.
type PairGen = fn(&mut SplitMix64) -> (String, String);

fn integers(rng: &mut SplitMix64) -> (String, String) {
    let r = rng.below(1000);
    let p = if rng.bernoulli(0.5) {
        r
    } else {
        rng.below(1000)
    };
    (p.to_string(), r.to_string())
}

fn fractions(rng: &mut SplitMix64) -> (String, String) {
    let (a, b) = (1 + rng.below(99), 2 + rng.below(98));
    let reference = format!("\\frac{{{a}}}{{{b}}}");
    let pred = match rng.below(4) {
        0 => reference.clone(),
        1 => format!("\\dfrac{{{a}}}{{{b}}}"),
        2 => format!("{a}/{b}"),
        _ => format!("\\frac{{{}}}{{{b}}}", a + 1),
    };
    (pred, reference)
}

fn decimals(rng: &mut SplitMix64) -> (String, String) {
    let n = rng.below(10_000);
    let reference = format!("{}.{:02}", n / 100, n % 100);
    let pred = match rng.below(3) {
        0 => reference.clone() + "0",
        1 => format!("\\frac{{{n}}}{{100}}"),
        _ => format!("{}", n as f64 / 100.0 + 0.5),
    };
    (pred, reference)
}

fn expressions(rng: &mut SplitMix64) -> (String, String) {
    let (a, b) = (1 + rng.below(9), rng.below(9));
    let reference = format!("{a}x^2+{b}x");
    let pred = match rng.below(3) {
        0 => format!("x({a}x+{b})"),
        1 => format!("{b}x+{a}x^2"),
        _ => format!("{a}x^2+{}x", b + 1),
    };
    (pred, reference)
}

fn run(name: &str, n: usize, gen: PairGen) -> f64 {
    let mut rng = SplitMix64::new(7);
    let pairs: Vec<(String, String)> = (0..n).map(|_| gen(&mut rng)).collect();
    let start = Instant::now();
    let mut equal = 0usize;
    for (p, r) in &pairs {
        if verify(black_box(p), black_box(r)) == Verdict::Equal {
            equal += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = n as f64 / secs;
    println!("{name:<12} {n:>9} pairs  {secs:>7.3} s  {rate:>12.0} pairs/s  ({equal} equal)");
    secs
}

/// Worst cases: inputs built to make a parser recurse, allocate or loop. Prints the slowest
/// extract + verify of each (milliseconds; release builds should stay well under one).
fn hostile() {
    let inputs = [
        ("1 MiB of digits", "9".repeat(1 << 20)),
        (
            "10k nested fractions",
            "\\frac{".repeat(10_000) + "1" + &"}{2}".repeat(10_000),
        ),
        (
            "10k nested roots",
            "\\sqrt{".repeat(10_000) + "2" + &"}".repeat(10_000),
        ),
        (
            "power tower",
            "2^{".repeat(5_000) + "2" + &"}".repeat(5_000),
        ),
        ("50k-term sum", vec!["1"; 50_000].join("+")),
        ("50k unclosed boxes", "\\boxed{".repeat(50_000)),
        ("100k boxes", "\\boxed{1}".repeat(100_000)),
    ];
    for (name, input) in &inputs {
        let start = Instant::now();
        black_box(extract_answer(black_box(input)));
        black_box(verify(black_box(input), "5"));
        black_box(verify("5", black_box(input)));
        let ms = start.elapsed().as_secs_f64() * 1e3;
        println!("hostile: {name:<22} {ms:>9.3} ms (extract + verify both ways)");
    }
}

fn main() {
    hostile();
    // The mix of a typical MATH/AIME run: mostly integers, then fractions and decimals, few
    // symbolic answers. Total: 1,000,000 pairs.
    let mix: [(&str, usize, PairGen); 4] = [
        ("integers", 600_000, integers),
        ("fractions", 200_000, fractions),
        ("decimals", 150_000, decimals),
        ("expressions", 50_000, expressions),
    ];
    let mut total_secs = 0.0;
    let mut total = 0;
    for (name, n, gen) in mix {
        total_secs += run(name, n, gen);
        total += n;
    }
    println!(
        "{:<12} {total:>9} pairs  {total_secs:>7.3} s  {:>12.0} pairs/s",
        "all",
        total as f64 / total_secs
    );
}
