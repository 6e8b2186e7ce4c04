//! Engines: where evaluation runs get their samples (issue 7).
//!
//! One [`Engine`] trait, two implementations:
//! - [`openai::OpenAiEngine`]: any server speaking `/v1/completions` and `/v1/chat/completions`
//!   (vLLM, SGLang, TGI, `caplens engine serve`), over HTTP;
//! - [`embedded::EmbeddedEngine`]: SmolLM2-135M-Instruct on the CPU with candle, the default when
//!   nothing else is configured; it sees the full next-token distribution, so entropy and RBF are
//!   exact.
//!
//! The trait is blocking on purpose: the embedded engine is CPU work and the HTTP client is a
//! blocking client; callers run it on `tokio::task::spawn_blocking`.

pub mod embedded;
pub mod netguard;
pub mod openai;
pub mod serve;

use serde::{Deserialize, Serialize};

/// Sampling settings of one request; the same names as the OpenAI API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    /// Seed of the first sample; sample `i` of a request uses `seed + i` where the engine can.
    pub seed: Option<u64>,
    /// Generation stops before any of these strings (they are not part of the text).
    pub stop: Vec<String>,
    /// Alternatives per token to return with their logprobs (0 = no token data at all).
    /// `None` = no logprobs requested.
    pub top_logprobs: Option<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.6,
            top_p: 0.95,
            max_tokens: 256,
            seed: None,
            stop: Vec::new(),
            top_logprobs: Some(5),
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// What the model is asked: a raw completion prompt or chat messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    Text(String),
    Chat(Vec<ChatMessage>),
}

/// One generation request: `n` samples of the same prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    /// Text the response must continue from (an intervention's prefix): appended to a text
    /// prompt; for chat, a final assistant message that is continued, not closed.
    pub continuation: Option<String>,
    pub n: u32,
    pub params: SamplingParams,
}

/// One alternative token at a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenAlternative {
    pub token: String,
    pub logprob: f64,
}

/// One generated token with what the engine knows about its step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenStep {
    /// The token's text (byte-level tokens that are not valid UTF-8 on their own are shown
    /// lossily, as vLLM does).
    pub token: String,
    pub id: Option<u32>,
    /// Log-probability of the sampled token under the distribution it was sampled from.
    pub logprob: f64,
    /// The most probable tokens at this step, most probable first (at most `top_logprobs`).
    pub top: Vec<TokenAlternative>,
    /// Exact entropy of the full distribution (nats), when the engine sees it (embedded).
    pub entropy: Option<f64>,
    /// Exact rollout branching factor at the sampling top-p, when the engine sees the full
    /// distribution (embedded).
    pub rbf: Option<u32>,
    /// L2 norm of the last hidden state (the gradient-norm proxy's ||h||, paper eq. 4), when
    /// the engine has it.
    pub hidden_norm: Option<f64>,
}

/// One sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    /// `stop` (end of sequence or a stop string) or `length` (max_tokens reached).
    pub finish_reason: String,
    /// Per generated token, when logprobs were requested.
    pub tokens: Option<Vec<TokenStep>>,
}

/// The answer to one [`GenerationRequest`]: `n` completions in sample order.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub completions: Vec<Completion>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// What an engine says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// `embedded` or `openai`.
    pub kind: String,
    /// The model name requests use.
    pub model: String,
    /// Most alternatives per token it returns.
    pub max_top_logprobs: u32,
    /// Whether token steps carry exact entropy / RBF (full distribution).
    pub full_distribution: bool,
}

/// Why a generation failed. Messages are for people: they say what was asked, what went wrong
/// and, where we know, what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// Nothing answers at the address (connection refused, DNS, TLS).
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The address is one engines may not reach (`netguard`): no connection was attempted.
    #[error("{url} was not contacted: {message}")]
    Refused { url: String, message: String },
    /// The server answered too late.
    #[error("{url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    /// The server rejected the request (4xx other than 429): a setting it does not accept, a
    /// wrong model name, a bad key. Not retried.
    #[error("{url} rejected the request (HTTP {status}): {message}")]
    Rejected {
        url: String,
        status: u16,
        message: String,
    },
    /// The server kept failing (429 / 5xx) after the retries.
    #[error("{url} failed after {attempts} attempts (last HTTP {status}): {message}")]
    Unavailable {
        url: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    /// The server answered something that is not an OpenAI-style response.
    #[error("{url} answered something caplens cannot read: {message}")]
    BadResponse { url: String, message: String },
    /// A setting this engine cannot honour, found before sending anything.
    #[error("invalid setting: {0}")]
    Invalid(String),
    /// The embedded model could not be loaded or run.
    #[error("embedded engine: {0}")]
    Model(String),
    /// Something this engine cannot do at all (not a setting out of range).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl EngineError {
    /// Worth retrying the whole unit later (the server may come back); a rejection is not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            EngineError::Unreachable { .. }
                | EngineError::Timeout { .. }
                | EngineError::Unavailable { .. }
        )
    }
}

/// One token of a scored text (see [`Engine::score`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredToken {
    /// The token's text (lossy for a token that is part of a UTF-8 character, as in
    /// [`TokenStep::token`]).
    pub token: String,
    pub id: Option<u32>,
    /// Log-probability of this token given the tokens before it; `None` for the first token,
    /// which has no context (as vLLM's `null`).
    pub logprob: Option<f64>,
    /// The most probable tokens at this position, most probable first (at most the
    /// `top_logprobs` asked for; empty for the first token).
    pub top: Vec<TokenAlternative>,
}

/// A source of samples. Blocking: call it from `spawn_blocking`.
pub trait Engine: Send + Sync {
    fn info(&self) -> EngineInfo;
    fn generate(&self, request: &GenerationRequest) -> Result<Generation, EngineError>;

    /// The log-probability of every token of `ids` given the tokens before it (one forward pass,
    /// as vLLM's `echo` with `logprobs`), with up to `top_logprobs` alternatives per position.
    /// Engines that cannot score say so with [`EngineError::Unsupported`].
    fn score(&self, ids: &[u32], top_logprobs: u32) -> Result<Vec<ScoredToken>, EngineError> {
        let _ = (ids, top_logprobs);
        Err(EngineError::Unsupported(format!(
            "the {} engine cannot score a given text (echo with logprobs)",
            self.info().kind
        )))
    }

    /// The engine's own tokenizer, when it has one (the embedded engine): token-id prompts,
    /// scoring a text, vLLM's `/tokenize` and `/detokenize`.
    fn text_tokenizer(&self) -> Option<&dyn TextTokenizer> {
        None
    }
}

/// The tokenizer of an engine that runs its model itself.
pub trait TextTokenizer: Send + Sync {
    /// Token ids of `text`; special tokens written in the text are those tokens; nothing added.
    fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError>;
    /// The text of `ids` (special tokens as their literal text).
    fn decode(&self, ids: &[u32]) -> String;
    /// Whether `id` ends a sequence (it is never part of a returned text).
    fn is_end_of_sequence(&self, id: u32) -> bool;
    /// The text of the main end-of-sequence token (SmolLM2: `<|im_end|>`).
    fn eos_token(&self) -> Option<String>;
    /// The Jinja chat template, as the model file gives it.
    fn chat_template(&self) -> Option<String>;
    /// Longest prompt plus generation, in tokens.
    fn max_model_len(&self) -> usize;
    /// Number of tokens in the vocabulary (valid ids are below it).
    fn vocab_size(&self) -> usize;
}

impl SamplingParams {
    /// Checks the ranges every engine needs; engines add their own limits.
    pub fn validate(&self, max_top_logprobs: u32) -> Result<(), EngineError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0 && self.temperature <= 5.0) {
            return Err(EngineError::Invalid(format!(
                "temperature must be between 0 and 5, got {}",
                self.temperature
            )));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(EngineError::Invalid(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if self.max_tokens == 0 {
            return Err(EngineError::Invalid("max_tokens must be at least 1".into()));
        }
        if let Some(k) = self.top_logprobs {
            if k > max_top_logprobs {
                return Err(EngineError::Invalid(format!(
                    "top_logprobs is {k} but this engine returns at most {max_top_logprobs} alternatives per token"
                )));
            }
        }
        Ok(())
    }
}
