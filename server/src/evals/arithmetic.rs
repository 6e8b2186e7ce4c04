//! The built-in `arith-calibrated` dataset: generated arithmetic problems whose difficulty spans
//! what the embedded SmolLM2-135M-Instruct solves often, rarely and never, so a demo pass@k
//! curve rises visibly from k = 1 to k = 64 (calibration: docs/evaluations.md).
//!
//! Pure and deterministic (fixed seed): every installation gets the same problems.

use caplens_analysis::rng::SplitMix64;

/// One generated problem.
#[derive(Debug, Clone, PartialEq)]
pub struct ArithmeticProblem {
    pub key: String,
    pub prompt: String,
    pub answer: String,
    pub tags: Vec<String>,
}

pub const NAME: &str = "arith-calibrated";
pub const DESCRIPTION: &str = "Built-in generated arithmetic, from one-digit sums (the embedded model solves them often) to three-digit products (never); tags name the family.";

/// Problem families, easiest first: (tag, count).
const FAMILIES: [(&str, usize); 6] = [
    ("add-1x1", 8),
    ("add-2x1", 8),
    ("sub-2x1", 8),
    ("mul-1x1", 8),
    ("add-2x2", 8),
    ("mul-3x2", 8),
];

/// The dataset, in a fixed order.
pub fn problems() -> Vec<ArithmeticProblem> {
    let mut rng = SplitMix64::new(0xC0FFEE);
    let mut pick = |lo: u64, hi: u64| lo + rng.next_u64() % (hi - lo + 1);
    let mut out = Vec::new();
    for (family, count) in FAMILIES {
        for i in 0..count {
            let (question, answer) = match family {
                "add-1x1" => {
                    let (a, b) = (pick(1, 9), pick(1, 9));
                    (format!("{a} + {b}"), (a + b) as i64)
                }
                "add-2x1" => {
                    let (a, b) = (pick(10, 99), pick(1, 9));
                    (format!("{a} + {b}"), (a + b) as i64)
                }
                "sub-2x1" => {
                    let (a, b) = (pick(10, 99), pick(1, 9));
                    (format!("{a} - {b}"), a as i64 - b as i64)
                }
                "mul-1x1" => {
                    let (a, b) = (pick(2, 9), pick(2, 9));
                    (format!("{a} * {b}"), (a * b) as i64)
                }
                "add-2x2" => {
                    let (a, b) = (pick(10, 99), pick(10, 99));
                    (format!("{a} + {b}"), (a + b) as i64)
                }
                _ => {
                    let (a, b) = (pick(100, 999), pick(10, 99));
                    (format!("{a} * {b}"), (a * b) as i64)
                }
            };
            out.push(ArithmeticProblem {
                key: format!("{family}-{}", i + 1),
                prompt: format!("What is {question}? Answer with a number."),
                answer: answer.to_string(),
                tags: vec![family.to_owned()],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_unique_keys_and_correct_answers() {
        let a = problems();
        assert_eq!(a, problems());
        assert_eq!(a.len(), FAMILIES.iter().map(|f| f.1).sum::<usize>());
        let mut keys: Vec<_> = a.iter().map(|p| p.key.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), a.len());
        for p in &a {
            // Recompute the answer from the prompt text.
            let q = p
                .prompt
                .trim_start_matches("What is ")
                .split('?')
                .next()
                .unwrap();
            let parts: Vec<&str> = q.split(' ').collect();
            let (x, op, y): (i64, &str, i64) = (
                parts[0].parse().unwrap(),
                parts[1],
                parts[2].parse().unwrap(),
            );
            let v = match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                _ => unreachable!(),
            };
            assert_eq!(p.answer, v.to_string(), "{}", p.prompt);
        }
    }
}
