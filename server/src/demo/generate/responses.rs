//! The demo models' rollouts: model profiles (solve probabilities, styles), the plan of each
//! problem's samples (which are right, which fail how) and the response texts.

use super::*;

pub(super) const BASE: usize = 0;
pub(super) const SFT: usize = 1;
pub(super) const RL: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    Terse,
    Reflective,
    Numbered,
}

/// How one synthetic model behaves.
pub(super) struct ModelProfile {
    pub(super) name: &'static str,
    pub(super) stage: &'static str,
    pub(super) step: Option<i64>,
    pub(super) role: &'static str,
    /// How many of the problem's distractors this model's wrong answers come from.
    pub(super) pool_size: usize,
    /// Zipf-like weight of the distractor of rank r: 1 / (r + shift)^power.
    pub(super) zipf_shift: f64,
    pub(super) zipf_power: u32,
    /// Share of wrong answers that are fresh slips outside the pool.
    pub(super) fresh_slip_rate: f64,
    pub(super) no_box_rate: f64,
    pub(super) double_box_rate: f64,
    pub(super) cjk_rate: f64,
    pub(super) loop_rate: f64,
    pub(super) style: Style,
    /// Mean token entropy (nats) of a correct and of an incorrect rollout, before noise.
    pub(super) entropy_level: [f64; 2],
    /// The family of its next-token distributions.
    pub(super) token_shape: traces::Shape,
}

pub(super) const PROFILES: [ModelProfile; 3] = [
    ModelProfile {
        name: "demo-base-7b",
        stage: "base",
        step: None,
        role: "It plays the base model (the role of Qwen2.5-Math-7B in the paper): low pass@1, broad \
               coverage, many different wrong answers and the most format problems.",
        pool_size: 24,
        zipf_shift: 3.0,
        zipf_power: 1,
        fresh_slip_rate: 0.1,
        no_box_rate: 0.06,
        double_box_rate: 0.04,
        cjk_rate: 0.03,
        loop_rate: 0.05,
        style: Style::Terse,
        entropy_level: [0.52, 0.72],
        token_shape: traces::Shape::Peaked,
    },
    ModelProfile {
        name: "demo-sft-7b",
        stage: "sft",
        step: None,
        role: "It plays the SFT model distilled from a stronger reasoner (the role of \
               DeepSeek-R1-Distill-Qwen-7B): better pass@1 and the widest coverage at large k.",
        pool_size: 10,
        zipf_shift: 1.0,
        zipf_power: 1,
        fresh_slip_rate: 0.0,
        no_box_rate: 0.02,
        double_box_rate: 0.015,
        cjk_rate: 0.015,
        loop_rate: 0.02,
        style: Style::Reflective,
        entropy_level: [0.42, 0.58],
        token_shape: traces::Shape::Broad,
    },
    ModelProfile {
        name: "demo-rl-7b",
        stage: "rl",
        step: Some(1000),
        role: "It plays the RL model trained from the SFT model (the role of Skywork-OR1-Math-7B): \
               the best pass@1, but more unsolvable problems than its parent and few distinct answers.",
        pool_size: 4,
        zipf_shift: 1.0,
        zipf_power: 2,
        fresh_slip_rate: 0.0,
        no_box_rate: 0.005,
        double_box_rate: 0.005,
        cjk_rate: 0.005,
        loop_rate: 0.005,
        style: Style::Numbered,
        entropy_level: [0.22, 0.33],
        token_shape: traces::Shape::Peaked,
    },
];

/// A bounded sigmoid built from exactly rounded operations only (see "Determinism").
pub(super) fn squash(x: f64) -> f64 {
    0.5 + 0.5 * x / (1.0 + x.abs())
}

/// Probability that one rollout of `model` is correct, on a problem it can solve.
pub(super) fn solve_probability(model: usize, problem: &Problem) -> f64 {
    let z = problem.difficulty;
    let [noise_base, noise_sft, noise_rl] = problem.model_noise;
    let sft = -z - 0.4 + 0.5 * noise_sft;
    let x = match model {
        BASE => -z - 3.0 + 0.5 * noise_base,
        SFT => sft,
        // RL sharpens its parent: steeper in the parent's argument and shifted up.
        RL => 1.8 * sft + 1.4 + 0.3 * noise_rl,
        _ => unreachable!("the demo has three models"),
    };
    squash(x).clamp(0.01, 0.99)
}

// ---------------------------------------------------------------------------------------------
// Rollouts

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// Exactly one `\boxed`.
    Normal,
    /// The response stops mid-thought without a final answer.
    NoBox,
    /// A first `\boxed` with a wrong answer, then a corrected final one.
    DoubleBox,
}

/// The decisions about one rollout, made before any text is written.
#[derive(Debug, Clone)]
pub(super) struct SamplePlan {
    pub(super) format: Format,
    pub(super) correct: bool,
    /// The boxed answer when not correct.
    pub(super) wrong: Value,
    pub(super) cjk: bool,
    pub(super) looping: bool,
}

impl SamplePlan {
    pub(super) fn final_answer(&self, problem: &Problem) -> Value {
        if self.correct {
            problem.template.answer()
        } else {
            self.wrong
        }
    }
}

pub(super) fn plan_samples(
    profile: &ModelProfile,
    problem: &Problem,
    p: f64,
    solvable: bool,
    n: u32,
    rng: &mut SplitMix64,
) -> Vec<SamplePlan> {
    let pool = &problem.distractors[..profile.pool_size.min(problem.distractors.len())];
    let weights: Vec<f64> = (0..pool.len())
        .map(|rank| {
            // Repeated multiplication rather than powi, whose rounding is not specified.
            let base = rank as f64 + profile.zipf_shift;
            1.0 / (0..profile.zipf_power).fold(1.0, |acc, _| acc * base)
        })
        .collect();
    let total_weight: f64 = weights.iter().sum();
    let answer = problem.template.answer();

    let mut plans: Vec<SamplePlan> = (0..n)
        .map(|_| {
            let u = rng.next_f64();
            let format = if u < profile.no_box_rate {
                Format::NoBox
            } else if u < profile.no_box_rate + profile.double_box_rate {
                Format::DoubleBox
            } else {
                Format::Normal
            };
            let cjk = rng.bernoulli(profile.cjk_rate);
            let looping = rng.bernoulli(profile.loop_rate);
            let correct = rng.bernoulli(p) && format != Format::NoBox;
            let wrong = if rng.bernoulli(profile.fresh_slip_rate) {
                let delta = uniform(rng, 1, 60);
                answer.nudged(if rng.bernoulli(0.5) { delta } else { -delta })
            } else {
                let mut target = rng.next_f64() * total_weight;
                let mut chosen = pool.len() - 1;
                for (rank, weight) in weights.iter().enumerate() {
                    if target < *weight {
                        chosen = rank;
                        break;
                    }
                    target -= weight;
                }
                pool[chosen]
            };
            SamplePlan {
                format,
                correct,
                wrong,
                cjk,
                looping,
            }
        })
        .collect();

    // "Solvable" means at least one correct rollout among the n: enforce it (see module docs).
    if solvable && n > 0 && !plans.iter().any(|plan| plan.correct) {
        let plan = &mut plans[rng.below(n as u64) as usize];
        plan.correct = true;
        plan.format = Format::Normal;
    }
    plans
}

pub(super) const BASE_OPENERS: [&str; 4] =
    ["Solution:", "Let's compute.", "We solve this directly.", ""];
pub(super) const SFT_OPENERS: [&str; 3] = [
    "Okay, so I need to solve this problem. Let me think about it carefully.",
    "Alright, let me work through this step by step.",
    "Hmm, let me start by understanding what the question is asking.",
];
pub(super) const RL_OPENERS: [&str; 2] =
    ["Let me solve this step by step.", "We proceed in steps."];
pub(super) const SFT_REFLECTIONS: [&str; 4] = [
    "Wait, let me double-check that.",
    "Hmm, does that make sense? Yes, it seems right.",
    "Let me verify this before moving on.",
    "Okay, that part looks consistent.",
];
pub(super) const SLIPS: [&str; 4] = [
    "Combining the pieces, I get",
    "Simplifying this, the value comes to",
    "Putting it together gives",
    "From here the result is",
];
pub(super) const TRAILING_FRAGMENTS: [&str; 3] = [
    "Next, we need to",
    "Now let me check whether the",
    "So the remaining case is when",
];
pub(super) const CJK_PHRASES: [&str; 3] = [
    "我们先计算一下。",
    "所以我们需要检查这个结果。",
    "让我再算一遍。",
];
pub(super) const LOOP_SENTENCES: [&str; 3] = [
    "Let me compute this again.",
    "I will check the previous step once more.",
    "We need to recompute the value here.",
];

pub(super) fn closing(style: Style, boxed: &str, rng: &mut SplitMix64) -> String {
    let options: &[&str] = match style {
        Style::Terse => &["The answer is $\\boxed{X}$.", "Answer: $\\boxed{X}$"],
        Style::Reflective => &[
            "So, the final answer is $\\boxed{X}$.",
            "Therefore, the answer is $\\boxed{X}$.",
        ],
        Style::Numbered => &[
            "**Final Answer**: $\\boxed{X}$",
            "The final answer is $\\boxed{X}$.",
        ],
    };
    pick(rng, options).replace('X', boxed)
}

pub(super) fn render_response(
    profile: &ModelProfile,
    problem: &Problem,
    plan: &SamplePlan,
    rng: &mut SplitMix64,
) -> String {
    let steps = problem.template.steps();
    let style = profile.style;
    let mut lines: Vec<String> = Vec::new();
    let opener = match style {
        Style::Terse => *pick(rng, &BASE_OPENERS),
        Style::Reflective => *pick(rng, &SFT_OPENERS),
        Style::Numbered => *pick(rng, &RL_OPENERS),
    };
    if !opener.is_empty() {
        lines.push(opener.to_string());
    }
    if plan.cjk {
        lines.push(pick(rng, &CJK_PHRASES).to_string());
    }

    // Correct rollouts show every step; wrong and unfinished ones stop part-way.
    let shown = match (plan.format, plan.correct) {
        (Format::NoBox, _) => rng.below(steps.len() as u64) as usize,
        (_, true) => steps.len(),
        (_, false) => 1 + rng.below(steps.len() as u64 - 1) as usize,
    };
    let reflection_at = if style == Style::Reflective {
        Some(rng.below(shown.max(1) as u64) as usize)
    } else {
        None
    };
    for (index, step) in steps[..shown].iter().enumerate() {
        lines.push(match style {
            Style::Numbered => format!("Step {}: {step}", index + 1),
            _ => step.clone(),
        });
        if reflection_at == Some(index) {
            lines.push(pick(rng, &SFT_REFLECTIONS).to_string());
        }
    }
    if plan.format != Format::NoBox && !plan.correct {
        lines.push(format!("{} ${}$.", pick(rng, &SLIPS), plan.wrong.latex()));
    }

    if plan.looping {
        // A degenerate loop long enough that it dominates the text (3-gram redundancy ~0.5).
        let sentence = *pick(rng, &LOOP_SENTENCES);
        let words_so_far: usize = lines
            .iter()
            .map(|line| line.split_whitespace().count())
            .sum();
        let repeats = (words_so_far * 6 / 5) / sentence.split_whitespace().count() + 4;
        lines.push(vec![sentence; repeats].join(" "));
    }

    let final_answer = plan.final_answer(problem);
    match plan.format {
        Format::NoBox => lines.push(pick(rng, &TRAILING_FRAGMENTS).to_string()),
        Format::DoubleBox => {
            let first = problem
                .distractors
                .iter()
                .find(|&&value| value != final_answer)
                .copied()
                .unwrap_or(final_answer.nudged(1));
            lines.push(format!("So the answer is $\\boxed{{{}}}$.", first.latex()));
            lines.push(
                "Wait, that does not match the earlier step. Let me redo the last part."
                    .to_string(),
            );
            lines.push(closing(style, &final_answer.latex(), rng));
        }
        Format::Normal => lines.push(closing(style, &final_answer.latex(), rng)),
    }
    let separator = if style == Style::Terse { " " } else { "\n" };
    lines.join(separator)
}

// ---------------------------------------------------------------------------------------------
