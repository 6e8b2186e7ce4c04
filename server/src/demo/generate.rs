//! The synthetic demo experiments: a seeded, pure generator of a small maths dataset, three model
//! checkpoints in a lineage (base -> sft -> rl) and their rollouts, token traces for some of
//! them, and a second experiment of RL training checkpoints (`demo-rl-dynamics`).
//!
//! # Why it exists
//! caplens loads this on first start with an empty database so that a new user never sees an
//! empty app (issue 2, item 5), and `caplens demo --reset` reloads it. **Nothing here is real model
//! output**: no model was run. Every experiment, dataset and model description produced below says
//! so, and names this generator, its version and its seed.
//!
//! # What it reproduces (paper section 2; `shared/paper-notes.md` items 1-3 and 6)
//! - the rl model is best at pass@1, the sft model is best at large k: the pass@k curves cross;
//! - the k-rollout unsolvable sets (0 correct among all n) of the three models overlap, none
//!   contains another, each model has problems only it cannot solve, a core is unsolvable by all,
//!   and rl's set is larger than sft's;
//! - distinct final answers per problem fall base > sft > rl;
//! - low-quality responses (item 9: no or several `\boxed{`, CJK characters, repetitive text
//!   caught by the 3-gram redundancy test of item 17) are most frequent for the base model;
//!
//! and, from section 3 (items 4, 5, 7, 8, 10-14):
//! - most tokens have low entropy; "forking" tokens (Wait, So, Let, However...) and computed
//!   numbers have high entropy; entropy over relative position is U-shaped, and higher late in
//!   incorrect responses;
//! - incorrect rollouts have higher mean entropy and perplexity than correct ones, and mean
//!   entropy falls base > sft > rl, while the rollout branching factor is highest for sft (SFT
//!   raises it, RL does not: fig. 1d);
//! - intervention impacts are larger at high-entropy tokens, early in a response and in
//!   high-PPL responses;
//! - over RL checkpoints, entropy falls, accuracy rises fast then plateaus along
//!   R = -a exp(H) + b, and negative rollouts have more entropy than positive ones.
//!
//! # The generative model, step by step
//! 1. **Problems.** Problem `i` uses template `i mod 9` (modular powers, divisor counts,
//!    inclusion-exclusion, Vieta, fraction sums, arithmetic and geometric series, lcm/gcd, marble
//!    probability) with parameters drawn from the problem's own random stream. The reference
//!    answer is computed exactly here (integers, or reduced fractions written `\frac{p}{q}`).
//!    Four templates are tagged `synthetic-aime-like`, five `synthetic-math-like`.
//! 2. **Latent difficulty.** Each problem draws a difficulty `z` ~ approximately N(0, 1) and one
//!    noise term per model, also from its own stream.
//! 3. **Unsolvable sets, laid out explicitly.** Seven Venn regions get fixed shares of the
//!    problems (per 80 problems: 5 unsolvable by all three — the hardest by `z` —, 6 base only,
//!    2 sft only, 5 rl only, 3 base+sft, 6 base+rl, 3 sft+rl; each region gets at least one
//!    problem). A model has solve probability exactly 0 on the problems of its regions, so the
//!    overlap-without-containment shape holds for every seed (as long as there are at least 7
//!    problems; the rl-set-larger-than-sft-set shape needs about 20).
//! 4. **Solve probability** elsewhere, with `s(x) = 0.5 + 0.5 x / (1 + |x|)`:
//!    base `s(-z - 3.0 + 0.5 e_base)`, sft `s(-z - 0.4 + 0.5 e_sft)`, and rl sharpens its parent,
//!    `s(1.8 x_sft + 1.4 + 0.3 e_rl)` where `x_sft` is sft's argument; all clamped to
//!    [0.01, 0.99]. RL is thus higher than sft where both can solve, but has p = 0 on more
//!    problems. A problem a model can solve always gets at least one correct rollout: if the
//!    draws give none, one sample (chosen by the stream) is made correct.
//! 5. **Wrong answers** come from a per-problem list of plausible distractors (typical slips of
//!    the template first, then near misses), all with values different from the reference. Model
//!    `m` draws from the first `pool_size(m)` of them (base 24, sft 10, rl 4) with Zipf-like
//!    weights (flatter for base, steep for rl), and base sometimes makes a fresh slip outside the
//!    pool. This is what makes answer diversity fall base > sft > rl.
//! 6. **Quality defects**, per rollout and per model (see `PROFILES`): no `\boxed` (the response
//!    stops mid-thought; answer `None`, incorrect), two `\boxed` (the last one counts), a CJK
//!    phrase, and a degenerate loop repeating one sentence (3-gram redundancy near 0.5).
//! 7. **Text and token count.** Responses are short chains of thought built from the template's
//!    true intermediate steps, in a per-model style (terse base; "Okay, so..."/"Wait," sft;
//!    numbered steps rl). Correct rollouts box the reference answer; wrong ones stop part-way
//!    and box a distractor. `token_count = ceil(ascii_bytes / 4) + non_ascii_chars` — about four
//!    characters per BPE token for English and LaTeX, one token per CJK ideograph (for a rollout
//!    with a token trace: the trace's token count).
//! 8. **Token traces** (`traces.rs`), for the first `traced_samples` samples of every (model,
//!    problem), stored like an import's (CLTT in a trace pack).
//!    - *Tokens*: a Qwen2-like pre-tokenizer: one token per digit, a space joins the word,
//!      LaTeX command or punctuation after it, words of up to 8 letters whole (longer ones in
//!      pieces of 5), punctuation in runs of at most 2, one token per CJK character. The tokens
//!      concatenate to the response exactly.
//!    - *Distributions*: every position has a "full" next-token distribution over a vocabulary
//!      of 152,064 from one of two one-parameter families (`traces::Shape`): top token `1 - r`,
//!      four runners-up, 10 or 40 "tier A" tail tokens and all the rest, each group an even
//!      share of its part of r. The *broad* family (sft) gives 90 % of r to the runners-up
//!      (50/22/17/11 %) and 7 % to 40 tail tokens: many candidates, a high RBF for its entropy;
//!      the *peaked* family (base, rl, checkpoints) gives 94.4 % to steeper runners-up
//!      (70/15/10/5 %) and 5.2 % to the far tail: entropy without candidates, a low RBF (so
//!      mean RBF goes sft > base > rl, paper fig. 1d, while mean entropy goes base > sft > rl).
//!      The tail never holds 5 % of the mass, so the nucleus stays among the first 45 tokens.
//!      Exact entropy (0.005 to about 2 nats) and RBF at top-p 0.95 are stored, so the exact
//!      entropy is at least the top-5 bucket estimate and the exact RBF at least the top-5 lower
//!      bound (`caplens_analysis::tokens`).
//!    - *Entropy shape*: each token gets a weight — forking words (Wait, So, Let, However,
//!      Therefore...) 5, a number right after `=`, `\boxed`, "gives"... 3.5, a capitalised word
//!      1.6, a newline 1, other words 0.6, punctuation 0.35, the later pieces of a split word
//!      0.08 — times a U-shaped position factor `0.8 + 1.2 (2l - 1)^4` (plus `0.6 l^4` in
//!      incorrect responses), times noise `0.15 + 1.8 u^3`. The weights are scaled so that the
//!      rollout's mean token entropy is its level — per model and verdict (base 0.52 / 0.72,
//!      sft 0.42 / 0.58, rl 0.22 / 0.33 nats for correct / incorrect) times `0.8 + 0.4 u` — and
//!      each token gets the family member of its target entropy (targets beyond the family's
//!      maximum are clamped and the other tokens rescaled).
//!    - *Sampled token*: one of the five listed, drawn with weights `p^2` (sampling at
//!      temperature 0.5 among them); the others get plausible alternatives (other forking
//!      words, common words, other digits, LaTeX commands, punctuation). The top-5 list is
//!      sorted by log-probability and holds the sampled token, as vLLM's does.
//!    - *Hidden-state norm*: about 80, plus 6 per nat of entropy, plus noise.
//!    - *Interventions* (sample 0 only): at the 3 highest-entropy positions, I_t = (kept -
//!      swapped) / 32, where 32 continuations from each prefix succeed with the original chance
//!      (the model's solve probability, clamped to [0.15, 0.85]) or a chance moved by
//!      `0.16 H_t (1.5 - l) f(PPL)`, `f = clamp(0.4 + 6 (PPL - 1), 0.4, 2)`, for the worse with
//!      probability 0.7.
//!    - *Per-rollout means*: `mean_entropy` and `perplexity` by
//!      `caplens_analysis::tokens::rollout_token_means` over the stored columns (as imports do);
//!      `mean_rbf` is the mean of the exact RBF column (the top-K RBF would be a lower bound).
//! 9. **Training dynamics** (`dynamics.rs`, experiment `demo-rl-dynamics`): 12 checkpoints
//!    `demo-rl@step0` ... `demo-rl@step550`, children of the sft model, `checkpoint_samples`
//!    rollouts per problem each. Policy entropy `H(s) = 0.22 + 0.58 exp(-s / 90)`; expected
//!    accuracy `R = -0.45 exp(H) + 1.2`; each problem's solve probability is
//!    `s(shift - 1.2 z)`, with the shift found by bisection so the mean over problems is R.
//!    Positive rollouts' mean entropy is `H - (1 - R) g`, negatives' `H + R g`, with the gap
//!    `g = 0.1 + 0.5 (H - 0.22)` shrinking, times noise `1 + 0.3 (u1 + u2 - 1)`. Sample 0 has a
//!    token trace (its mean entropy comes from the trace); the others store only the mean. Text
//!    moves from the sft style to the rl style over the checkpoints.
//!
//! # Determinism
//! Same config, byte-identical output, on every platform. Randomness comes only from
//! `SplitMix64::derive(seed, stream)` with one stream per problem, one per (model, problem) and
//! one for the region layout, so changing one part does not shift the others (for example,
//! changing `samples_per_problem` leaves the problems unchanged). Only exactly-rounded IEEE
//! operations (+, -, *, /, sqrt, and the exact round/ceil) are used on floats — no libm `exp`,
//! `ln` or `powf`, whose results may differ between math libraries — so a platform's libm cannot
//! change a single rollout. The token traces need logarithms (entropies, log-probabilities) and
//! the dynamics an exponential: `traces::det_ln` and `traces::det_exp` compute them from those
//! operations alone (exact argument reduction by bit manipulation, then a fixed series).

mod dynamics;
mod problems;
mod responses;
#[cfg(test)]
mod tests;
mod traces;

use caplens_analysis::rng::SplitMix64;
use caplens_analysis::token_stats::TraceTokens;
use caplens_analysis::tokens::{mean_finite, rollout_token_means};
use caplens_analysis::trace::{decode, encode, TokenTrace};
use serde::Serialize;

use problems::*;
use responses::*;

pub use dynamics::{
    law_accuracy, policy_entropy, DemoDynamics, CHECKPOINT_STEPS, DYNAMICS_EXPERIMENT_SLUG,
    ENTROPY_DECAY_STEPS, ENTROPY_END, ENTROPY_START, LAW_A, LAW_B,
};

/// Version of the generative model. Bump it whenever the output for a given config changes, so
/// a stored demo says which generator made it.
pub const GENERATOR_VERSION: u32 = 2;
/// Where the generator lives, quoted in the descriptions of the generated data.
pub const GENERATOR_SOURCE: &str = "server/src/demo/generate.rs";
/// Seed of the demo that caplens loads by default.
pub const DEFAULT_DEMO_SEED: u64 = 20_250_601;
/// URL slug of the demo experiment.
pub const DEMO_EXPERIMENT_SLUG: &str = "demo-rlvr-boundary";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DemoConfig {
    /// Seed of every random stream.
    pub seed: u64,
    /// Number of problems in the dataset.
    pub problems: usize,
    /// Rollouts per problem for each model (n of pass@k).
    pub samples_per_problem: u32,
    /// The first this many samples of every (model, problem) get a token trace.
    pub traced_samples: u32,
    /// Rollouts per problem of each training checkpoint (`demo-rl-dynamics`); 0 leaves that
    /// experiment out.
    pub checkpoint_samples: u32,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            seed: DEFAULT_DEMO_SEED,
            problems: 80,
            samples_per_problem: 128,
            traced_samples: 4,
            checkpoint_samples: 16,
        }
    }
}

/// The prompt template of every demo run; `{prompt}` stands for the problem's prompt.
const PROMPT_TEMPLATE: &str =
    "{prompt}\nPlease reason step by step, and put your final answer within \\boxed{}.";

/// Everything the demo experiment consists of, ready to be stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoData {
    pub experiment: DemoExperiment,
    pub dataset: DemoDataset,
    pub problems: Vec<DemoProblem>,
    /// In lineage order: base, sft, rl.
    pub models: Vec<DemoModel>,
    /// One run per model; `runs[i].model == i`.
    pub runs: Vec<DemoRun>,
    /// Ordered by run, then problem, then sample: the rollout of (run r, problem p, sample s) is
    /// at index `(r * problems + p) * n + s`.
    pub rollouts: Vec<DemoRollout>,
    /// The training-dynamics experiment over the same problems (`None` when
    /// `checkpoint_samples` is 0).
    pub dynamics: Option<DemoDynamics>,
}

/// The experiment grouping the three demo runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoExperiment {
    pub slug: String,
    pub name: String,
    /// Says plainly that the data is synthetic, which generator (version, seed) made it.
    pub description: String,
}

/// The synthetic dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoDataset {
    pub name: String,
    pub description: String,
}

/// One synthetic maths problem with its exactly computed reference answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoProblem {
    /// Stable id: `demo-001`, `demo-002`, ...
    pub id: String,
    /// The question, with inline LaTeX between `$`.
    pub prompt: String,
    /// Reference answer: an integer (`42`, `-7`) or a reduced fraction (`\frac{3}{4}`).
    pub answer: String,
    /// `tags[0]` is the source (`synthetic-aime-like` or `synthetic-math-like`), then
    /// `difficulty:easy|medium|hard` and `topic:<name>`.
    pub tags: Vec<String>,
}

/// One synthetic checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoModel {
    pub name: String,
    pub family: String,
    /// `base`, `sft` or `rl`.
    pub stage: String,
    /// Name of the parent model in the lineage.
    pub parent: Option<String>,
    /// Training step, for the rl checkpoint.
    pub step: Option<i64>,
    pub notes: String,
}

/// The sampling settings the (pretend) evaluation of one model used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoRun {
    /// Index into `DemoData::models`.
    pub model: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    /// Samples per problem.
    pub n: u32,
    /// `{prompt}` stands for the problem's prompt.
    pub prompt_template: String,
}

/// One synthetic response of one model to one problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoRollout {
    /// Index into `DemoData::runs`.
    pub run: usize,
    /// Index into `DemoData::problems`.
    pub problem: usize,
    pub sample: u32,
    pub response: String,
    /// Content of the last `\boxed{...}`; `None` when the response has no `\boxed`.
    pub answer: Option<String>,
    /// Whether `answer` equals the reference answer.
    pub correct: bool,
    /// `ceil(ascii_bytes / 4) + non_ascii_chars` of `response`; the trace's length when there
    /// is a trace.
    pub token_count: u32,
    /// Per-rollout token means (`rollouts.mean_entropy`, `mean_rbf`, `perplexity`): from the
    /// trace when there is one; the dynamics experiment also sets `mean_entropy` without one.
    pub mean_entropy: Option<f64>,
    pub mean_rbf: Option<f64>,
    pub perplexity: Option<f64>,
    /// The token trace (step 8 of the module doc).
    #[serde(skip)]
    pub trace: Option<DemoTrace>,
}

/// A rollout's token trace as it is stored: the encoded bytes (CLTT) and the digest its run's
/// token statistics need (kept instead of the decoded trace, which takes ten times the memory).
#[derive(Debug, Clone, PartialEq)]
pub struct DemoTrace {
    pub encoded: Vec<u8>,
    pub tokens: TraceTokens,
}

impl DemoTrace {
    /// The decoded trace.
    pub fn decode(&self) -> TokenTrace {
        decode(&self.encoded).expect("the generator encodes valid traces")
    }
}

impl DemoRollout {
    fn untraced(
        run: usize,
        problem: usize,
        sample: u32,
        response: String,
        answer: Option<String>,
        correct: bool,
    ) -> DemoRollout {
        DemoRollout {
            run,
            problem,
            sample,
            token_count: approx_token_count(&response),
            response,
            answer,
            correct,
            mean_entropy: None,
            mean_rbf: None,
            perplexity: None,
            trace: None,
        }
    }

    /// Adds a trace and the per-rollout means computed from its stored columns.
    fn attach_trace(&mut self, trace: TokenTrace) {
        let as_f64 = |values: &[f32]| values.iter().map(|&x| Some(x as f64)).collect::<Vec<_>>();
        let entropies = trace.entropies().map(as_f64);
        let logprobs = as_f64(trace.logprobs());
        // Without the top-K rows: they would only feed rollout_token_means' RBF, a lower bound
        // that the exact RBF column replaces.
        let no_rows: Option<std::iter::Empty<std::iter::Empty<f64>>> = None;
        let means = rollout_token_means(entropies.as_deref(), no_rows, Some(&logprobs));
        self.mean_entropy = means.mean_entropy;
        self.perplexity = means.ppl;
        self.mean_rbf = trace
            .rbf()
            .and_then(|r| mean_finite(&r.iter().map(|&x| x as f64).collect::<Vec<_>>()));
        self.token_count = trace.len() as u32;
        self.trace = Some(DemoTrace {
            encoded: encode(&trace),
            tokens: TraceTokens::of(&trace),
        });
    }
}

/// Generates the whole demo experiment. Pure and deterministic: same config, same bytes.
pub fn generate_demo(config: &DemoConfig) -> DemoData {
    let problems: Vec<Problem> = (0..config.problems)
        .map(|i| Problem::generate(config.seed, i))
        .collect();
    let unsolvable = layout_unsolvable_sets(config.seed, &problems);
    let n = config.samples_per_problem;

    let mut rollouts = Vec::with_capacity(PROFILES.len() * problems.len() * n as usize);
    for (model, profile) in PROFILES.iter().enumerate() {
        for (index, problem) in problems.iter().enumerate() {
            let solvable = unsolvable[index] & (1 << model) == 0;
            let p = if solvable {
                solve_probability(model, problem)
            } else {
                0.0
            };
            let mut rng = SplitMix64::derive(config.seed, model_problem_stream(model, index));
            let plans = plan_samples(profile, problem, p, solvable, n, &mut rng);
            for (sample, plan) in plans.iter().enumerate() {
                let response = render_response(profile, problem, plan, &mut rng);
                let (answer, correct) = match plan.format {
                    Format::NoBox => (None, false),
                    _ => (Some(plan.final_answer(problem).latex()), plan.correct),
                };
                let sample = sample as u32;
                let mut rollout =
                    DemoRollout::untraced(model, index, sample, response, answer, correct);
                if sample < config.traced_samples {
                    let mut trace_rng =
                        SplitMix64::derive(config.seed, trace_stream(model, index, sample));
                    let [level_correct, level_incorrect] = profile.entropy_level;
                    let level = if correct {
                        level_correct
                    } else {
                        level_incorrect
                    } * (0.8 + 0.4 * trace_rng.next_f64());
                    let trace = traces::synthesize(
                        &traces::TraceSpec {
                            response: &rollout.response,
                            correct,
                            level,
                            shape: profile.token_shape,
                            intervention_accuracy: (sample == 0).then_some(p),
                        },
                        &mut trace_rng,
                    );
                    rollout.attach_trace(trace);
                }
                rollouts.push(rollout);
            }
        }
    }

    let demo_problems = problems
        .iter()
        .enumerate()
        .map(|(index, problem)| DemoProblem {
            id: format!("demo-{:03}", index + 1),
            prompt: problem.template.prompt(),
            answer: problem.template.answer().latex(),
            tags: vec![
                problem.template.source().to_string(),
                format!(
                    "difficulty:{}",
                    difficulty_label(problem, unsolvable[index])
                ),
                format!("topic:{}", problem.template.topic()),
            ],
        })
        .collect();

    let provenance = format!(
        "generated by the caplens demo generator version {GENERATOR_VERSION} ({GENERATOR_SOURCE}) with seed {}",
        config.seed
    );
    let dynamics = dynamics::generate_dynamics(config, &problems, &provenance);
    DemoData {
        experiment: DemoExperiment {
            slug: DEMO_EXPERIMENT_SLUG.to_string(),
            name: "Demo: how SFT and RL move the capability boundary (synthetic)".to_string(),
            description: format!(
                "Synthetic demo data, not real model output: no model was run. Every problem, model and \
                 rollout here was {provenance}. It has {} problems, three pretend checkpoints in a lineage \
                 (base -> sft -> rl) and {n} rollouts per problem each, drawn from a hand-made random model \
                 that imitates the shapes of section 2 of Deng, Chen et al., \"From Trial-and-Error to \
                 Improvement\": the rl model is best at pass@1, the sft model at large k, the unsolvable \
                 sets overlap without containing each other, and answer diversity falls base > sft > rl. \
                 Use it to learn caplens; do not draw conclusions about real models from it. \
                 `caplens demo --reset` reloads it.",
                config.problems
            ),
        },
        dataset: DemoDataset {
            name: "demo-synthetic-math".to_string(),
            description: format!(
                "Synthetic demo dataset, {provenance}. {} small maths problems made from templates \
                 (number theory, counting, algebra, fractions, probability) with reference answers computed \
                 exactly by the generator. They imitate the style of AIME and MATH questions but are not \
                 taken from any benchmark.",
                config.problems
            ),
        },
        problems: demo_problems,
        models: PROFILES
            .iter()
            .enumerate()
            .map(|(index, profile)| DemoModel {
                name: profile.name.to_string(),
                family: "demo-7b".to_string(),
                stage: profile.stage.to_string(),
                parent: index.checked_sub(1).map(|parent| PROFILES[parent].name.to_string()),
                step: profile.step,
                notes: format!(
                    "Synthetic demo model, not a real checkpoint: its rollouts were {provenance}. {}",
                    profile.role
                ),
            })
            .collect(),
        runs: (0..PROFILES.len())
            .map(|model| DemoRun {
                model,
                temperature: 0.6,
                top_p: 0.95,
                max_tokens: 8192,
                n,
                prompt_template: PROMPT_TEMPLATE.to_string(),
            })
            .collect(),
        rollouts,
        dynamics,
    }
}

/// Token count of a response: about four bytes per BPE token for English and LaTeX (rounded up),
/// and one token per non-ASCII character (CJK ideographs are mostly single tokens).
fn approx_token_count(text: &str) -> u32 {
    // One pass over the bytes: a non-ASCII character is one leading byte (>= 0xC0) and its
    // continuation bytes (0x80..0xC0).
    let (mut ascii, mut other) = (0usize, 0usize);
    for b in text.bytes() {
        if b < 0x80 {
            ascii += 1;
        } else if b >= 0xC0 {
            other += 1;
        }
    }
    (ascii.div_ceil(4) + other) as u32
}

// ---------------------------------------------------------------------------------------------
// Random streams

const LAYOUT_STREAM: u64 = 1;

fn problem_stream(index: usize) -> u64 {
    (1 << 40) + index as u64
}

fn model_problem_stream(model: usize, index: usize) -> u64 {
    ((model as u64 + 2) << 40) + index as u64
}

/// The stream of one rollout's token trace (problems and samples below 2^20).
fn trace_stream(model: usize, index: usize, sample: u32) -> u64 {
    ((model as u64 + 8) << 40) | ((index as u64) << 20) | sample as u64
}

/// Approximately standard normal: Irwin-Hall sum of 12 uniforms minus 6 (mean 0, variance 1).
/// Used instead of Box-Muller because it needs no `ln`/`cos`, so it is bit-identical everywhere.
fn standard_normal(rng: &mut SplitMix64) -> f64 {
    (0..12).map(|_| rng.next_f64()).sum::<f64>() - 6.0
}

/// Uniform integer in `[low, high]`.
fn uniform(rng: &mut SplitMix64, low: i64, high: i64) -> i64 {
    low + rng.below((high - low + 1) as u64) as i64
}

fn pick<'a, T>(rng: &mut SplitMix64, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

// ---------------------------------------------------------------------------------------------
// Exact answers
