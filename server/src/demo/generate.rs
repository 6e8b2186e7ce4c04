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
mod traces;

use caplens_analysis::rng::SplitMix64;
use caplens_analysis::token_stats::TraceTokens;
use caplens_analysis::tokens::{mean_finite, rollout_token_means};
use caplens_analysis::trace::{decode, encode, TokenTrace};
use serde::Serialize;

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

/// An exact answer: an integer or a reduced fraction with denominator > 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Int(i64),
    Frac(i64, i64),
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn lcm(a: i64, b: i64) -> i64 {
    a / gcd(a, b) * b
}

impl Value {
    /// `num / den` in lowest terms, sign on the numerator; an integer when it divides.
    fn ratio(num: i64, den: i64) -> Value {
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

    fn latex(self) -> String {
        match self {
            Value::Int(n) => n.to_string(),
            Value::Frac(n, d) if n < 0 => format!("-\\frac{{{}}}{{{d}}}", -n),
            Value::Frac(n, d) => format!("\\frac{{{n}}}{{{d}}}"),
        }
    }

    /// A near miss: the integer, or the numerator, moved by `delta`.
    fn nudged(self, delta: i64) -> Value {
        match self {
            Value::Int(n) => Value::Int(n + delta),
            Value::Frac(n, d) => Value::ratio(n + delta, d),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Problem templates

const TEMPLATE_COUNT: usize = 9;
const SOURCE_AIME_LIKE: &str = "synthetic-aime-like";
const SOURCE_MATH_LIKE: &str = "synthetic-math-like";

/// A problem template with its drawn parameters; everything else (prompt, answer, worked steps,
/// typical slips) is computed from these.
#[derive(Debug, Clone)]
enum Template {
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
fn multiplicative_order(base: i64, modulus: i64) -> i64 {
    let mut power = base % modulus;
    let mut order = 1;
    while power != 1 {
        power = power * base % modulus;
        order += 1;
    }
    order
}

fn mod_pow(base: i64, exponent: i64, modulus: i64) -> i64 {
    let mut result = 1 % modulus;
    for _ in 0..exponent {
        result = result * base % modulus;
    }
    result
}

impl Template {
    fn draw(kind: usize, rng: &mut SplitMix64) -> Template {
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

    fn source(&self) -> &'static str {
        match self {
            Template::ModPower { .. }
            | Template::DivisorCount { .. }
            | Template::InclusionExclusion { .. }
            | Template::RootSquares { .. } => SOURCE_AIME_LIKE,
            _ => SOURCE_MATH_LIKE,
        }
    }

    fn topic(&self) -> &'static str {
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

    fn prompt(&self) -> String {
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

    fn divisor_count_value(&self) -> i64 {
        match self {
            Template::DivisorCount { factors } => factors.iter().map(|&(p, e)| p.pow(e)).product(),
            _ => unreachable!("only for divisor-count problems"),
        }
    }

    fn answer(&self) -> Value {
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
    fn steps(&self) -> Vec<String> {
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
    fn typical_slip(&self, rng: &mut SplitMix64) -> Value {
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
const DISTRACTOR_POOL: usize = 24;

struct Problem {
    template: Template,
    /// Latent difficulty, approximately N(0, 1); higher is harder.
    difficulty: f64,
    /// Per-model noise on the solve probability, approximately N(0, 1) each.
    model_noise: [f64; 3],
    /// Wrong answers, most plausible first, all different in value from the reference.
    distractors: Vec<Value>,
}

impl Problem {
    fn generate(seed: u64, index: usize) -> Problem {
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
const UNSOLVABLE_REGIONS: [(u8, f64); 7] = [
    (0b111, 5.0),
    (0b001, 6.0),
    (0b010, 2.0),
    (0b100, 5.0),
    (0b011, 3.0),
    (0b101, 6.0),
    (0b110, 3.0),
];

/// For each problem, the bit set of models that cannot solve it at all.
fn layout_unsolvable_sets(seed: u64, problems: &[Problem]) -> Vec<u8> {
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
fn difficulty_label(problem: &Problem, unsolvable_mask: u8) -> &'static str {
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

const BASE: usize = 0;
const SFT: usize = 1;
const RL: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Terse,
    Reflective,
    Numbered,
}

/// How one synthetic model behaves.
struct ModelProfile {
    name: &'static str,
    stage: &'static str,
    step: Option<i64>,
    role: &'static str,
    /// How many of the problem's distractors this model's wrong answers come from.
    pool_size: usize,
    /// Zipf-like weight of the distractor of rank r: 1 / (r + shift)^power.
    zipf_shift: f64,
    zipf_power: u32,
    /// Share of wrong answers that are fresh slips outside the pool.
    fresh_slip_rate: f64,
    no_box_rate: f64,
    double_box_rate: f64,
    cjk_rate: f64,
    loop_rate: f64,
    style: Style,
    /// Mean token entropy (nats) of a correct and of an incorrect rollout, before noise.
    entropy_level: [f64; 2],
    /// The family of its next-token distributions.
    token_shape: traces::Shape,
}

const PROFILES: [ModelProfile; 3] = [
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
fn squash(x: f64) -> f64 {
    0.5 + 0.5 * x / (1.0 + x.abs())
}

/// Probability that one rollout of `model` is correct, on a problem it can solve.
fn solve_probability(model: usize, problem: &Problem) -> f64 {
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
enum Format {
    /// Exactly one `\boxed`.
    Normal,
    /// The response stops mid-thought without a final answer.
    NoBox,
    /// A first `\boxed` with a wrong answer, then a corrected final one.
    DoubleBox,
}

/// The decisions about one rollout, made before any text is written.
#[derive(Debug, Clone)]
struct SamplePlan {
    format: Format,
    correct: bool,
    /// The boxed answer when not correct.
    wrong: Value,
    cjk: bool,
    looping: bool,
}

impl SamplePlan {
    fn final_answer(&self, problem: &Problem) -> Value {
        if self.correct {
            problem.template.answer()
        } else {
            self.wrong
        }
    }
}

fn plan_samples(
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

const BASE_OPENERS: [&str; 4] = ["Solution:", "Let's compute.", "We solve this directly.", ""];
const SFT_OPENERS: [&str; 3] = [
    "Okay, so I need to solve this problem. Let me think about it carefully.",
    "Alright, let me work through this step by step.",
    "Hmm, let me start by understanding what the question is asking.",
];
const RL_OPENERS: [&str; 2] = ["Let me solve this step by step.", "We proceed in steps."];
const SFT_REFLECTIONS: [&str; 4] = [
    "Wait, let me double-check that.",
    "Hmm, does that make sense? Yes, it seems right.",
    "Let me verify this before moving on.",
    "Okay, that part looks consistent.",
];
const SLIPS: [&str; 4] = [
    "Combining the pieces, I get",
    "Simplifying this, the value comes to",
    "Putting it together gives",
    "From here the result is",
];
const TRAILING_FRAGMENTS: [&str; 3] = [
    "Next, we need to",
    "Now let me check whether the",
    "So the remaining case is when",
];
const CJK_PHRASES: [&str; 3] = [
    "我们先计算一下。",
    "所以我们需要检查这个结果。",
    "让我再算一遍。",
];
const LOOP_SENTENCES: [&str; 3] = [
    "Let me compute this again.",
    "I will check the previous step once more.",
    "We need to recompute the value here.",
];

fn closing(style: Style, boxed: &str, rng: &mut SplitMix64) -> String {
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

fn render_response(
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

#[cfg(test)]
mod tests {
    use super::*;
    use caplens_analysis::verifier::{extract_answer, normalize_answer, verify, Verdict};
    use std::collections::BTreeSet;

    const SEEDS: [u64; 5] = [DEFAULT_DEMO_SEED, 1, 2, 3, 987_654_321];

    /// The default demo, generated once for the tests that only read it (debug builds are slow).
    fn default_data() -> &'static DemoData {
        static DATA: std::sync::OnceLock<DemoData> = std::sync::OnceLock::new();
        DATA.get_or_init(|| generate_demo(&DemoConfig::default()))
    }

    fn rollouts_of(
        data: &DemoData,
        run: usize,
        problem: usize,
    ) -> impl Iterator<Item = &DemoRollout> {
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
        let difficulties: BTreeSet<&str> =
            data.problems.iter().map(|p| p.tags[1].as_str()).collect();
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
            let rollouts: Vec<&DemoRollout> =
                data.rollouts.iter().filter(|r| r.run == run).collect();
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
            let accuracy =
                rollouts.iter().filter(|r| r.correct).count() as f64 / rollouts.len() as f64;
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
}
