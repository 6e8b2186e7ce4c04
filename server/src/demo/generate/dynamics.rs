//! The training-dynamics demo experiment (step 9 of the generator's module doc): checkpoints of
//! a pretend RL run from the demo sft model, evaluated on the demo dataset.

use caplens_analysis::rng::SplitMix64;

use super::traces::{det_exp, synthesize, TraceSpec};
use super::{
    plan_samples, render_response, squash, DemoConfig, DemoExperiment, DemoModel, DemoRollout,
    DemoRun, Format, ModelProfile, Problem, Style, PROFILES, RL, SFT,
};

/// URL slug of the training-dynamics demo experiment.
pub const DYNAMICS_EXPERIMENT_SLUG: &str = "demo-rl-dynamics";
/// Training steps of the checkpoints.
pub const CHECKPOINT_STEPS: [i64; 12] = [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550];
/// The entropy-reward law the checkpoints follow (item 7): expected accuracy
/// `R = -LAW_A * exp(H) + LAW_B`, ceiling `LAW_B - LAW_A = 0.75` at H = 0.
pub const LAW_A: f64 = 0.45;
pub const LAW_B: f64 = 1.2;
/// Policy entropy falls from `ENTROPY_START` to `ENTROPY_END` nats with time constant
/// `ENTROPY_DECAY_STEPS`: fast in the rising stage, slowly on the plateau (item 8).
pub const ENTROPY_START: f64 = 0.8;
pub const ENTROPY_END: f64 = 0.22;
pub const ENTROPY_DECAY_STEPS: f64 = 90.0;

/// The checkpoints' rollouts and what they belong to; same layout as the main demo
/// (`rollouts` ordered by run, problem, sample; `runs[i].model == i`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DemoDynamics {
    pub experiment: DemoExperiment,
    pub models: Vec<DemoModel>,
    pub runs: Vec<DemoRun>,
    pub rollouts: Vec<DemoRollout>,
}

/// Mean policy entropy (nats) at a training step.
pub fn policy_entropy(step: i64) -> f64 {
    ENTROPY_END + (ENTROPY_START - ENTROPY_END) * det_exp(-(step as f64) / ENTROPY_DECAY_STEPS)
}

/// Expected accuracy at policy entropy `h` by the entropy-reward law.
pub fn law_accuracy(h: f64) -> f64 {
    -LAW_A * det_exp(h) + LAW_B
}

fn checkpoint_problem_stream(checkpoint: usize, problem: usize) -> u64 {
    ((checkpoint as u64 + 16) << 40) + problem as u64
}

fn checkpoint_trace_stream(checkpoint: usize, problem: usize, sample: u32) -> u64 {
    ((checkpoint as u64 + 48) << 40) | ((problem as u64) << 20) | sample as u64
}

/// Solve probability of each problem at a checkpoint: `squash(shift - 1.2 z)` (z the problem's
/// latent difficulty), clamped to [0.01, 0.99], with `shift` found by bisection so that the mean
/// over problems is `target`.
fn solve_probabilities(problems: &[Problem], target: f64) -> Vec<f64> {
    let at = |shift: f64| -> Vec<f64> {
        problems
            .iter()
            .map(|p| squash(shift - 1.2 * p.difficulty).clamp(0.01, 0.99))
            .collect()
    };
    let (mut low, mut high) = (-100.0, 100.0);
    for _ in 0..80 {
        let mid = 0.5 * (low + high);
        let probs = at(mid);
        let mean = probs.iter().sum::<f64>() / probs.len().max(1) as f64;
        if mean < target {
            low = mid;
        } else {
            high = mid;
        }
    }
    at(0.5 * (low + high))
}

/// How a checkpoint writes: from the sft model's habits towards the rl model's as training goes.
fn checkpoint_profile(checkpoint: usize) -> ModelProfile {
    let t = checkpoint as f64 / (CHECKPOINT_STEPS.len() - 1) as f64;
    let (sft, rl) = (&PROFILES[SFT], &PROFILES[RL]);
    let mix = |a: f64, b: f64| a + (b - a) * t;
    ModelProfile {
        name: "",
        stage: "rl",
        step: None,
        role: "",
        pool_size: if t < 0.5 {
            sft.pool_size
        } else {
            rl.pool_size + 2
        },
        zipf_shift: 1.0,
        zipf_power: if t < 0.5 { 1 } else { 2 },
        fresh_slip_rate: 0.0,
        no_box_rate: mix(sft.no_box_rate, rl.no_box_rate),
        double_box_rate: mix(sft.double_box_rate, rl.double_box_rate),
        cjk_rate: mix(sft.cjk_rate, rl.cjk_rate),
        loop_rate: mix(sft.loop_rate, rl.loop_rate),
        style: if t < 0.3 {
            Style::Reflective
        } else {
            Style::Numbered
        },
        entropy_level: rl.entropy_level,
        token_shape: rl.token_shape,
    }
}

/// The checkpoints' experiment; `None` when `config.checkpoint_samples` is 0.
pub(super) fn generate_dynamics(
    config: &DemoConfig,
    problems: &[Problem],
    provenance: &str,
) -> Option<DemoDynamics> {
    let n = config.checkpoint_samples;
    if n == 0 {
        return None;
    }
    let parent = PROFILES[SFT].name;
    let mut rollouts = Vec::with_capacity(CHECKPOINT_STEPS.len() * problems.len() * n as usize);
    for (checkpoint, &step) in CHECKPOINT_STEPS.iter().enumerate() {
        let profile = checkpoint_profile(checkpoint);
        let entropy = policy_entropy(step);
        let accuracy = law_accuracy(entropy);
        // Positive and negative rollouts straddle the policy entropy so that their mix averages
        // to it; the gap shrinks with the entropy, so negatives lose entropy faster (item 8).
        let gap = 0.1 + 0.5 * (entropy - ENTROPY_END);
        let (positive, negative) = (entropy - (1.0 - accuracy) * gap, entropy + accuracy * gap);
        let probabilities = solve_probabilities(problems, accuracy);
        for (index, problem) in problems.iter().enumerate() {
            let mut rng =
                SplitMix64::derive(config.seed, checkpoint_problem_stream(checkpoint, index));
            let plans = plan_samples(&profile, problem, probabilities[index], false, n, &mut rng);
            for (sample, plan) in plans.iter().enumerate() {
                let response = render_response(&profile, problem, plan, &mut rng);
                let (answer, correct) = match plan.format {
                    Format::NoBox => (None, false),
                    _ => (Some(plan.final_answer(problem).latex()), plan.correct),
                };
                let mut trace_rng = SplitMix64::derive(
                    config.seed,
                    checkpoint_trace_stream(checkpoint, index, sample as u32),
                );
                let wobble = trace_rng.next_f64() + trace_rng.next_f64() - 1.0;
                let level = (if correct { positive } else { negative }) * (1.0 + 0.3 * wobble);
                let mut rollout = DemoRollout::untraced(
                    checkpoint,
                    index,
                    sample as u32,
                    response,
                    answer,
                    correct,
                );
                if sample == 0 {
                    let trace = synthesize(
                        &TraceSpec {
                            response: &rollout.response,
                            correct,
                            level,
                            shape: profile.token_shape,
                            intervention_accuracy: None,
                        },
                        &mut trace_rng,
                    );
                    rollout.attach_trace(trace);
                } else {
                    rollout.mean_entropy = Some(level);
                }
                rollouts.push(rollout);
            }
        }
    }
    let models = CHECKPOINT_STEPS
        .iter()
        .map(|&step| DemoModel {
            name: format!("demo-rl@step{step}"),
            family: "demo-7b".to_string(),
            stage: "rl".to_string(),
            parent: Some(parent.to_string()),
            step: Some(step),
            notes: format!(
                "Synthetic demo checkpoint, not a real checkpoint: its rollouts were {provenance}. \
                 It plays the checkpoint at step {step} of an RL run started from {parent}: policy \
                 entropy {:.3} nats, expected accuracy {:.3} by R = -{LAW_A} exp(H) + {LAW_B}.",
                policy_entropy(step),
                law_accuracy(policy_entropy(step))
            ),
        })
        .collect();
    let runs = (0..CHECKPOINT_STEPS.len())
        .map(|model| DemoRun {
            model,
            temperature: 0.6,
            top_p: 0.95,
            max_tokens: 8192,
            n,
            prompt_template: super::PROMPT_TEMPLATE.to_string(),
        })
        .collect();
    Some(DemoDynamics {
        experiment: DemoExperiment {
            slug: DYNAMICS_EXPERIMENT_SLUG.to_string(),
            name: "Demo: RL training dynamics over checkpoints (synthetic)".to_string(),
            description: format!(
                "Synthetic demo data, not real model output: no model was trained or run. Every \
                 rollout here was {provenance}. {} pretend checkpoints of an RL run from {parent} \
                 (steps {} to {}), {n} rollouts per problem each on the demo dataset. Policy \
                 entropy falls fast, then slowly (rising stage, then plateau), and expected \
                 accuracy follows the entropy-reward law R = -a exp(H) + b with a = {LAW_A}, \
                 b = {LAW_B} (ceiling b - a = {:.2}), as in section 3 of Deng, Chen et al., \
                 \"From Trial-and-Error to Improvement\". Negative rollouts have higher entropy \
                 than positive ones and lose it faster. Every rollout has a mean token entropy; \
                 sample 0 of each problem has a full token trace. Use it to learn caplens; do not \
                 draw conclusions about real training from it.",
                CHECKPOINT_STEPS.len(),
                CHECKPOINT_STEPS[0],
                CHECKPOINT_STEPS[CHECKPOINT_STEPS.len() - 1],
                LAW_B - LAW_A
            ),
        },
        models,
        runs,
        rollouts,
    })
}
