use super::*;
use caplens_analysis::verifier::{extract_answer, normalize_answer, verify, Verdict};
use std::collections::BTreeSet;

const SEEDS: [u64; 5] = [DEFAULT_DEMO_SEED, 1, 2, 3, 987_654_321];

/// The default demo, generated once for the tests that only read it (debug builds are slow).
fn default_data() -> &'static DemoData {
    static DATA: std::sync::OnceLock<DemoData> = std::sync::OnceLock::new();
    DATA.get_or_init(|| generate_demo(&DemoConfig::default()))
}

fn rollouts_of(data: &DemoData, run: usize, problem: usize) -> impl Iterator<Item = &DemoRollout> {
    data.rollouts
        .iter()
        .filter(move |r| r.run == run && r.problem == problem)
}

/// Unbiased pass@k (paper eq. 2) in the product form 1 - prod_{i=n-c+1..n} (1 - k/i).
fn pass_at_k(n: u32, c: u32, k: u32) -> f64 {
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product::<f64>()
}

/// Correct counts per problem for each run.
fn correct_counts(data: &DemoData) -> Vec<Vec<u32>> {
    let mut counts = vec![vec![0u32; data.problems.len()]; data.runs.len()];
    for rollout in &data.rollouts {
        counts[rollout.run][rollout.problem] += rollout.correct as u32;
    }
    counts
}

fn mean_pass_at_k(counts: &[u32], n: u32, k: u32) -> f64 {
    counts.iter().map(|&c| pass_at_k(n, c, k)).sum::<f64>() / counts.len() as f64
}

fn unsolvable(counts: &[u32]) -> BTreeSet<usize> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c == 0)
        .map(|(i, _)| i)
        .collect()
}

fn mean_distinct_answers(data: &DemoData, run: usize) -> f64 {
    let total: usize = (0..data.problems.len())
        .map(|problem| {
            rollouts_of(data, run, problem)
                .filter_map(|r| r.answer.as_deref().map(normalize_answer))
                .collect::<BTreeSet<_>>()
                .len()
        })
        .sum();
    total as f64 / data.problems.len() as f64
}

/// 1 - distinct word 3-grams / all word 3-grams (paper-notes item 17).
fn trigram_redundancy(text: &str) -> f64 {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < 3 {
        return 0.0;
    }
    let grams: Vec<&[&str]> = words.windows(3).collect();
    let distinct: BTreeSet<&[&str]> = grams.iter().copied().collect();
    1.0 - distinct.len() as f64 / grams.len() as f64
}

fn has_cjk(text: &str) -> bool {
    text.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c))
}

fn boxed_count(text: &str) -> usize {
    text.matches("\\boxed{").count()
}

#[test]
fn same_seed_gives_identical_output_and_another_seed_differs() {
    let config = DemoConfig::default();
    let first = generate_demo(&config);
    let second = generate_demo(&config);
    assert!(first == second);
    let other = generate_demo(&DemoConfig { seed: 7, ..config });
    assert_ne!(first.problems, other.problems);
    assert_ne!(first.rollouts, other.rollouts);
}

#[test]
fn changing_the_sample_count_leaves_the_problems_unchanged() {
    let big = default_data();
    let small = generate_demo(&DemoConfig {
        samples_per_problem: 64,
        ..DemoConfig::default()
    });
    assert_eq!(big.problems, small.problems);
}

/// All integers in a prompt, in order (a `-` is never a sign in our prompts).
fn integers(text: &str) -> Vec<i64> {
    let mut numbers = Vec::new();
    let mut current = String::new();
    for ch in text.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_digit() {
            current.push(ch);
        } else if !current.is_empty() {
            numbers.push(current.parse().unwrap());
            current.clear();
        }
    }
    numbers
}

/// (numerator, denominator) of a reference answer, reduced check included.
fn parse_answer(answer: &str) -> (i64, i64) {
    let (sign, body) = match answer.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, answer),
    };
    if let Some(rest) = body.strip_prefix("\\frac{") {
        let (num, den) = rest.strip_suffix('}').unwrap().split_once("}{").unwrap();
        let (num, den): (i64, i64) = (num.parse().unwrap(), den.parse().unwrap());
        assert!(
            den > 1 && gcd(num, den) == 1,
            "{answer} not in lowest terms"
        );
        (sign * num, den)
    } else {
        (sign * body.parse::<i64>().unwrap(), 1)
    }
}

/// Recomputes a problem's answer from its prompt text alone, by brute force where possible.
fn recompute(prompt: &str) -> (i64, i64) {
    let ints = integers(prompt);
    let reduce = |num: i64, den: i64| {
        let g = gcd(num, den);
        (num / g, den / g)
    };
    if prompt.contains("remainder") {
        let (base, exponent, modulus) = (ints[0], ints[1], ints[2]);
        let mut value = 1;
        for _ in 0..exponent {
            value = value * base % modulus;
        }
        (value, 1)
    } else if prompt.contains("positive divisors") {
        let n = ints[0];
        ((1..=n).filter(|d| n % d == 0).count() as i64, 1)
    } else if prompt.contains("divisible by") {
        let (limit, a, b) = (ints[1], ints[2], ints[3]);
        (
            (1..=limit).filter(|k| k % a == 0 || k % b == 0).count() as i64,
            1,
        )
    } else if prompt.contains("roots") {
        // Roots of x^2 - s x + p: real or a complex-conjugate pair u +- iv.
        let (s, p) = (ints[1] as f64, ints[2] as f64);
        let disc = s * s - 4.0 * p;
        let value = if disc >= 0.0 {
            let (r1, r2) = ((s + disc.sqrt()) / 2.0, (s - disc.sqrt()) / 2.0);
            r1 * r1 + r2 * r2
        } else {
            let (u, v) = (s / 2.0, (-disc).sqrt() / 2.0);
            2.0 * (u * u - v * v)
        };
        (value.round() as i64, 1)
    } else if prompt.contains("marbles") {
        let (red, blue) = (ints[0], ints[1]);
        let total = red + blue;
        let mut both_red = 0;
        for first in 0..total {
            for second in 0..total {
                if first != second && first < red && second < red {
                    both_red += 1;
                }
            }
        }
        reduce(both_red, total * (total - 1))
    } else if prompt.contains("lcm") {
        let (a, b) = (ints[0], ints[1]);
        let g = (1..=a.min(b))
            .rev()
            .find(|d| a % d == 0 && b % d == 0)
            .unwrap();
        let l = (1..).map(|m| a * m).find(|m| m % b == 0).unwrap();
        (l - g, 1)
    } else if prompt.contains("\\sum_{k=1}") {
        let (terms, slope, intercept) = (ints[1], ints[2], ints[3]);
        ((1..=terms).map(|k| slope * k + intercept).sum(), 1)
    } else if prompt.contains("\\sum_{k=0}") {
        // Sum of r^-k for k = 0..last, over the common denominator r^last.
        let (last, ratio) = (ints[1] as u32, ints[3]);
        let den = ratio.pow(last);
        reduce((0..=last).map(|k| ratio.pow(last - k)).sum(), den)
    } else if prompt.contains("Compute") {
        let (a, b, c, d) = (ints[0], ints[1], ints[2], ints[3]);
        reduce(a * d + c * b, b * d)
    } else {
        panic!("no recomputation rule for prompt: {prompt}");
    }
}

#[test]
fn reference_answers_match_an_independent_recomputation_from_the_prompt() {
    for seed in SEEDS {
        let data = generate_demo(&DemoConfig {
            seed,
            samples_per_problem: 1,
            ..DemoConfig::default()
        });
        for problem in &data.problems {
            assert_eq!(
                parse_answer(&problem.answer),
                recompute(&problem.prompt),
                "{problem:?}"
            );
        }
    }
}

#[test]
fn problems_have_stable_ids_two_source_groups_latex_and_both_answer_kinds() {
    let data = default_data();
    assert_eq!(data.problems.len(), 80);
    assert_eq!(data.problems[0].id, "demo-001");
    assert_eq!(data.problems[79].id, "demo-080");
    let sources: BTreeSet<&str> = data.problems.iter().map(|p| p.tags[0].as_str()).collect();
    assert_eq!(
        sources,
        BTreeSet::from([SOURCE_AIME_LIKE, SOURCE_MATH_LIKE])
    );
    let difficulties: BTreeSet<&str> = data.problems.iter().map(|p| p.tags[1].as_str()).collect();
    assert_eq!(
        difficulties,
        BTreeSet::from(["difficulty:easy", "difficulty:hard", "difficulty:medium"])
    );
    let fractions = data
        .problems
        .iter()
        .filter(|p| p.answer.contains("\\frac"))
        .count();
    assert!(
        (10..=60).contains(&fractions),
        "{fractions} fraction answers"
    );
    assert!(data.problems.iter().all(|p| p.prompt.contains('$')));
    assert!(
        data.problems
            .iter()
            .filter(|p| p.prompt.contains("\\frac") || p.prompt.contains("\\sum"))
            .count()
            >= 20
    );
}

#[test]
fn models_form_a_lineage_and_every_run_has_n_rollouts_per_problem() {
    let config = DemoConfig {
        problems: 61,
        samples_per_problem: 70,
        ..DemoConfig::default()
    };
    let data = generate_demo(&config);
    let stages: Vec<&str> = data.models.iter().map(|m| m.stage.as_str()).collect();
    assert_eq!(stages, ["base", "sft", "rl"]);
    assert_eq!(data.models[0].parent, None);
    assert_eq!(
        data.models[1].parent.as_deref(),
        Some(data.models[0].name.as_str())
    );
    assert_eq!(
        data.models[2].parent.as_deref(),
        Some(data.models[1].name.as_str())
    );
    assert_eq!(data.runs.len(), 3);
    assert_eq!(data.rollouts.len(), 3 * 61 * 70);
    for (index, run) in data.runs.iter().enumerate() {
        assert_eq!(
            (run.model, run.n, run.temperature, run.top_p),
            (index, 70, 0.6, 0.95)
        );
        for problem in 0..61 {
            let samples: Vec<u32> = rollouts_of(&data, index, problem)
                .map(|r| r.sample)
                .collect();
            assert_eq!(samples, (0..70).collect::<Vec<_>>());
        }
    }
    for (position, rollout) in data.rollouts.iter().enumerate() {
        let expected = (rollout.run * 61 + rollout.problem) * 70 + rollout.sample as usize;
        assert_eq!(position, expected);
    }
}

#[test]
fn answer_is_the_last_boxed_content_and_correct_agrees_with_the_verifier() {
    let data = default_data();
    for rollout in &data.rollouts {
        // The demo grades like strict boxed-answer checkers: a response without a box has
        // no answer (the verifier's fallback rules would find a stray number there).
        let extracted = extract_answer(&rollout.response)
            .filter(|e| !e.rule.is_fallback())
            .map(|e| e.answer);
        assert_eq!(extracted, rollout.answer, "{}", rollout.response);
        let reference = &data.problems[rollout.problem].answer;
        let verdict_equal = rollout
            .answer
            .as_deref()
            .is_some_and(|a| verify(a, reference) == Verdict::Equal);
        assert_eq!(verdict_equal, rollout.correct, "{}", rollout.response);
        let expected_count = match &rollout.trace {
            Some(trace) => trace.tokens.len as u32,
            None => approx_token_count(&rollout.response),
        };
        assert_eq!(rollout.token_count, expected_count);
    }
}

#[test]
fn token_count_rule_on_known_strings() {
    assert_eq!(approx_token_count(""), 0);
    assert_eq!(approx_token_count("abcd"), 1);
    assert_eq!(approx_token_count("abcde"), 2);
    assert_eq!(approx_token_count("ab 我们"), 1 + 2);
}

/// The shapes of paper section 2, for several seeds and for the minimum size.
#[test]
fn paper_shapes_hold_for_several_seeds() {
    let configs = SEEDS
        .iter()
        .map(|&seed| DemoConfig {
            seed,
            ..DemoConfig::default()
        })
        .chain([DemoConfig {
            seed: 11,
            problems: 60,
            samples_per_problem: 64,
            ..DemoConfig::default()
        }]);
    for config in configs {
        let fresh;
        let data = if config == DemoConfig::default() {
            default_data()
        } else {
            fresh = generate_demo(&config);
            &fresh
        };
        let n = config.samples_per_problem;
        let counts = correct_counts(data);
        let pass1: Vec<f64> = counts.iter().map(|c| mean_pass_at_k(c, n, 1)).collect();
        let pass_n: Vec<f64> = counts.iter().map(|c| mean_pass_at_k(c, n, n)).collect();
        assert!(
            pass1[RL] > pass1[SFT] + 0.03 && pass1[SFT] > pass1[BASE] + 0.03,
            "{config:?} pass@1 {pass1:?}"
        );
        assert!(
            pass_n[SFT] > pass_n[RL] && pass_n[SFT] > pass_n[BASE],
            "{config:?} pass@n {pass_n:?}"
        );

        let sets: Vec<BTreeSet<usize>> = counts.iter().map(|c| unsolvable(c)).collect();
        for a in 0..3 {
            for b in 0..3 {
                if a != b {
                    assert!(
                        !sets[a].is_subset(&sets[b]),
                        "{config:?}: set {a} inside set {b}"
                    );
                    assert!(
                        sets[a].intersection(&sets[b]).next().is_some(),
                        "{config:?}"
                    );
                }
            }
            let others: BTreeSet<usize> = (0..3)
                .filter(|&o| o != a)
                .flat_map(|o| sets[o].clone())
                .collect();
            assert!(
                sets[a].difference(&others).next().is_some(),
                "{config:?}: model {a} has no own unsolvable"
            );
        }
        assert!(
            sets[0]
                .iter()
                .any(|p| sets[1].contains(p) && sets[2].contains(p)),
            "{config:?}: no core"
        );
        assert!(sets[RL].len() > sets[SFT].len(), "{config:?}");

        let diversity: Vec<f64> = (0..3).map(|run| mean_distinct_answers(data, run)).collect();
        assert!(
            diversity[BASE] > diversity[SFT] && diversity[SFT] > diversity[RL],
            "{config:?} {diversity:?}"
        );
    }
}

#[test]
fn quality_defects_are_most_frequent_for_base_and_match_the_configured_rates() {
    let data = default_data();
    let per_run = (data.problems.len() * 128) as f64;
    let mut flagged = [0usize; 3];
    for (run, profile) in PROFILES.iter().enumerate() {
        let rollouts: Vec<&DemoRollout> = data.rollouts.iter().filter(|r| r.run == run).collect();
        let rate = |test: &dyn Fn(&DemoRollout) -> bool| {
            rollouts.iter().filter(|r| test(r)).count() as f64 / per_run
        };
        let no_box = rate(&|r| boxed_count(&r.response) == 0);
        let double_box = rate(&|r| boxed_count(&r.response) > 1);
        let cjk = rate(&|r| has_cjk(&r.response));
        let loops = rate(&|r| trigram_redundancy(&r.response) > 0.31);
        // Tolerances: ~4 binomial standard deviations at 10240 rollouts per run, and forced-correct
        // rollouts can only lower the format-defect rates.
        assert!(
            (no_box - profile.no_box_rate).abs() < 0.012,
            "{run} no box {no_box}"
        );
        assert!(
            (double_box - profile.double_box_rate).abs() < 0.01,
            "{run} double {double_box}"
        );
        assert!((cjk - profile.cjk_rate).abs() < 0.01, "{run} cjk {cjk}");
        assert!(
            (loops - profile.loop_rate).abs() < 0.012,
            "{run} loops {loops}"
        );
        flagged[run] = rollouts
            .iter()
            .filter(|r| {
                boxed_count(&r.response) != 1
                    || has_cjk(&r.response)
                    || trigram_redundancy(&r.response) > 0.31
            })
            .count();
    }
    assert!(
        flagged[BASE] > flagged[SFT] && flagged[SFT] > flagged[RL],
        "{flagged:?}"
    );
}

#[test]
fn descriptions_say_the_data_is_synthetic_and_name_the_generator() {
    let data = generate_demo(&DemoConfig {
        seed: 4242,
        ..DemoConfig::default()
    });
    for text in [&data.experiment.description, &data.dataset.description] {
        assert!(
            text.contains("Synthetic demo") || text.contains("synthetic demo"),
            "{text}"
        );
        assert!(
            text.contains("seed 4242") && text.contains(GENERATOR_SOURCE),
            "{text}"
        );
    }
    assert!(data
        .experiment
        .description
        .contains("not real model output"));
    assert!(data
        .models
        .iter()
        .all(|m| m.notes.contains("not a real checkpoint")));
    assert_eq!(data.experiment.slug, DEMO_EXPERIMENT_SLUG);
}

#[test]
fn total_text_stays_modest() {
    let data = default_data();
    let bytes: usize = data.rollouts.iter().map(|r| r.response.len()).sum();
    assert!(bytes < 40_000_000, "{bytes} bytes");
}

#[test]
fn tiny_and_empty_configs_do_not_panic() {
    for (problems, samples_per_problem) in [(0, 0), (0, 5), (1, 0), (1, 1), (5, 3), (7, 1)] {
        let data = generate_demo(&DemoConfig {
            seed: 3,
            problems,
            samples_per_problem,
            ..DemoConfig::default()
        });
        assert_eq!(data.problems.len(), problems);
        assert_eq!(
            data.rollouts.len(),
            3 * problems * samples_per_problem as usize
        );
    }
}

/// Token statistics of the traced rollouts of one run, through the analysis crate.
fn run_token_stats(
    rollouts: &[DemoRollout],
    run: usize,
) -> caplens_analysis::token_stats::TokenStats {
    use caplens_analysis::token_stats::{RolloutTokens, TokenStatsAccumulator};
    let mut acc = TokenStatsAccumulator::new();
    for r in rollouts.iter().filter(|r| r.run == run) {
        acc.push_rollout(RolloutTokens {
            correct: r.correct,
            mean_entropy: r.mean_entropy,
            ppl: r.perplexity,
            trace: r.trace.as_ref().map(|t| &t.tokens),
        });
    }
    acc.finish().expect("token data")
}

#[test]
fn the_first_samples_carry_token_traces_that_cover_their_text() {
    let data = default_data();
    let traced = DemoConfig::default().traced_samples;
    for r in &data.rollouts {
        assert_eq!(
            r.trace.is_some(),
            r.sample < traced,
            "{} {} {}",
            r.run,
            r.problem,
            r.sample
        );
        assert_eq!(r.mean_entropy.is_some(), r.trace.is_some());
        assert_eq!(r.perplexity.is_some(), r.trace.is_some());
        let Some(t) = &r.trace else { continue };
        assert_eq!(t.tokens, TraceTokens::of(&t.decode()));
        let t = t.decode();
        assert_eq!(t.tokens().concat(), r.response.as_bytes());
        assert_eq!(t.impacts().is_some(), r.sample == 0);
        assert!(t.hidden_norms().is_some() && t.rbf().is_some());
        // The stored means are what an import computes from the same columns.
        let mean: f64 = t
            .entropies()
            .unwrap()
            .iter()
            .map(|&h| h as f64)
            .sum::<f64>()
            / t.len() as f64;
        assert!((r.mean_entropy.unwrap() - mean).abs() < 1e-9);
        assert!(r.perplexity.unwrap() >= 1.0 && r.mean_rbf.unwrap() >= 1.0);
    }
    let fewer = generate_demo(&DemoConfig {
        traced_samples: 1,
        ..DemoConfig::default()
    });
    for (a, b) in data
        .rollouts
        .iter()
        .zip(&fewer.rollouts)
        .filter(|(a, _)| a.sample == 0)
    {
        assert_eq!(
            a.trace.as_ref().unwrap().encoded,
            b.trace.as_ref().unwrap().encoded,
            "a trace does not depend on how many samples get one"
        );
    }
}

/// Paper section 3 shapes over the traced rollouts (items 4, 11-14).
#[test]
fn token_level_shapes_follow_the_paper() {
    let data = default_data();
    let stats: Vec<_> = (0..3)
        .map(|run| run_token_stats(&data.rollouts, run))
        .collect();
    let entropy: Vec<f64> = stats
        .iter()
        .map(|s| s.mean_entropy.all.mean().unwrap())
        .collect();
    assert!(
        entropy[BASE] > entropy[SFT] && entropy[SFT] > entropy[RL],
        "{entropy:?}"
    );
    let rbf: Vec<f64> = (0..3)
        .map(|run| {
            let values: Vec<f64> = data
                .rollouts
                .iter()
                .filter(|r| r.run == run)
                .filter_map(|r| r.mean_rbf)
                .collect();
            values.iter().sum::<f64>() / values.len() as f64
        })
        .collect();
    assert!(
        rbf[SFT] > rbf[BASE] && rbf[BASE] > rbf[RL],
        "SFT raises the RBF, RL does not: {rbf:?}"
    );
    for (run, s) in stats.iter().enumerate() {
        assert_eq!(s.traced_rollouts, 4 * 80);
        assert_eq!(s.entropy_source.exact, 4 * 80);
        assert_eq!(s.entropy_source.max_top_k, 5);
        let (c, i) = (
            s.mean_entropy.correct.mean().unwrap(),
            s.mean_entropy.incorrect.mean().unwrap(),
        );
        assert!(i > c, "run {run}: incorrect entropy {i} <= correct {c}");
        let (c, i) = (
            s.perplexity.mean.correct.mean().unwrap(),
            s.perplexity.mean.incorrect.mean().unwrap(),
        );
        assert!(i > c, "run {run}: incorrect PPL {i} <= correct {c}");
        // U-shape: both ends above the middle.
        let bins: Vec<f64> = s
            .position_entropy
            .summary()
            .iter()
            .map(|b| b.all_mean().unwrap())
            .collect();
        let middle = bins[7..13].iter().sum::<f64>() / 6.0;
        assert!(
            bins[0] > 1.3 * middle && bins[19] > 1.3 * middle,
            "run {run}: {bins:?}"
        );
        // Late entropy is higher in incorrect responses.
        let late = &s.position_entropy.summary()[19];
        assert!(late.incorrect.mean().unwrap() > late.correct.mean().unwrap());
        let iv = s.interventions.as_ref().unwrap();
        assert_eq!((iv.responses, iv.interventions), (80, 240));
        assert_eq!(iv.error, None);
    }
    // Metacognitive tokens (Wait, Hmm, let me check...) carry more entropy than the rest.
    let mut meta = caplens_analysis::tokens::MeanAccumulator::default();
    let mut semantic = meta;
    for s in &stats {
        meta.merge(&s.categories.entropy.metacognitive);
        semantic.merge(&s.categories.entropy.semantic_support);
    }
    let (meta, semantic) = (meta.mean().unwrap(), semantic.mean().unwrap());
    assert!(
        meta > 1.2 * semantic,
        "metacognitive {meta} vs semantic {semantic}"
    );
    // Most tokens have low entropy; forking words have high entropy.
    let (mut all, mut forks) = (Vec::new(), Vec::new());
    for r in data.rollouts.iter().filter(|r| r.trace.is_some()) {
        let t = r.trace.as_ref().unwrap().decode();
        for (token, &h) in t.tokens().iter().zip(t.entropies().unwrap()) {
            all.push(h);
            if matches!(token.as_slice(), b"Wait" | b"So" | b" So" | b"Let" | b"Hmm") {
                forks.push(h);
            }
        }
    }
    all.sort_by(f32::total_cmp);
    let median = all[all.len() / 2];
    let fork_mean = forks.iter().sum::<f32>() / forks.len() as f32;
    let overall = all.iter().sum::<f32>() / all.len() as f32;
    assert!(
        median < 0.6 * overall,
        "median {median} vs mean {overall}: most tokens are low-entropy"
    );
    assert!(
        fork_mean > 3.0 * overall,
        "forking tokens {fork_mean} vs mean {overall}"
    );
    // Interventions over all three runs: larger early than late, larger in high-PPL responses.
    let mut acc = caplens_analysis::token_stats::TokenStatsAccumulator::new();
    for run in 0..3 {
        use caplens_analysis::token_stats::RolloutTokens;
        for r in data
            .rollouts
            .iter()
            .filter(|r| r.run == run && r.sample == 0)
        {
            let d = &r.trace.as_ref().unwrap().tokens;
            acc.push_rollout(RolloutTokens {
                correct: r.correct,
                mean_entropy: r.mean_entropy,
                ppl: r.perplexity,
                trace: Some(d),
            });
        }
    }
    let iv = acc.finish().unwrap().interventions.unwrap();
    let mean_abs = |bins: &[caplens_analysis::intervention::PositionImpactBin]| {
        let (mut sum, mut n) = (0.0, 0u64);
        for b in bins {
            if let Some(m) = b.summary.mean_abs_impact {
                sum += m * b.summary.interventions as f64;
                n += b.summary.interventions;
            }
        }
        sum / n as f64
    };
    let (early, late) = (
        mean_abs(&iv.by_position[..10]),
        mean_abs(&iv.by_position[10..]),
    );
    assert!(early > late, "early |I| {early} vs late {late}");
    let g = iv.by_ppl_group.unwrap();
    assert!(
        g.high.mean_abs_impact.unwrap() > g.low.mean_abs_impact.unwrap(),
        "{g:?}"
    );
    assert!(
        g.low.mean_impact.unwrap() > 0.0,
        "swapping a token mostly hurts"
    );
}

/// Item 7 and 8 on the checkpoints: the law's a and b come back from a fit, and the
/// rising -> plateau transition is found.
#[test]
fn checkpoints_follow_the_entropy_reward_law() {
    use caplens_analysis::dynamics::{
        detect_transition, fit_entropy_reward, LawStatus, DEFAULT_MIN_SEGMENT,
    };
    let data = default_data();
    let dynamics = data.dynamics.as_ref().expect("dynamics experiment");
    assert_eq!(dynamics.experiment.slug, DYNAMICS_EXPERIMENT_SLUG);
    assert_eq!(dynamics.models.len(), CHECKPOINT_STEPS.len());
    assert!(dynamics
        .models
        .iter()
        .all(|m| m.stage == "rl" && m.parent.as_deref() == Some("demo-sft-7b")));
    assert_eq!(dynamics.rollouts.len(), 12 * 80 * 16);
    let mut law_points = Vec::new();
    let mut accuracy_points = Vec::new();
    let mut gaps = Vec::new();
    for (run, &step) in CHECKPOINT_STEPS.iter().enumerate() {
        let rollouts: Vec<&DemoRollout> =
            dynamics.rollouts.iter().filter(|r| r.run == run).collect();
        assert!(rollouts.iter().all(|r| r.mean_entropy.is_some()));
        assert!(rollouts
            .iter()
            .all(|r| r.trace.is_some() == (r.sample == 0)));
        let entropy = rollouts
            .iter()
            .map(|r| r.mean_entropy.unwrap())
            .sum::<f64>()
            / rollouts.len() as f64;
        let accuracy = rollouts.iter().filter(|r| r.correct).count() as f64 / rollouts.len() as f64;
        assert!(
            (entropy - policy_entropy(step)).abs() < 0.03,
            "step {step}: {entropy}"
        );
        law_points.push((entropy, accuracy));
        accuracy_points.push((step as f64, accuracy));
        let s = run_token_stats(&dynamics.rollouts, run);
        let (pos, neg) = (
            s.mean_entropy.correct.mean().unwrap(),
            s.mean_entropy.incorrect.mean().unwrap(),
        );
        assert!(neg > pos, "step {step}: negatives {neg} <= positives {pos}");
        gaps.push((pos, neg));
    }
    let (first, last) = (gaps[0], gaps[gaps.len() - 1]);
    assert!(
        first.1 - last.1 > first.0 - last.0,
        "negatives lose entropy faster: {gaps:?}"
    );
    let fit = fit_entropy_reward(&law_points).unwrap();
    assert_eq!(fit.status, LawStatus::Holds);
    assert!(
        (fit.a - LAW_A).abs() < 0.06 && (fit.b - LAW_B).abs() < 0.06,
        "{fit:?}"
    );
    assert!(fit.r_squared.unwrap() > 0.95, "{fit:?}");
    let t = detect_transition(&accuracy_points, DEFAULT_MIN_SEGMENT).unwrap();
    assert!((50.0..=250.0).contains(&t.step), "{t:?}");
    assert!(t.slope_after.abs() < 0.25 * t.slope_before, "{t:?}");
    assert!(accuracy_points[11].1 > accuracy_points[0].1 + 0.3);
}
