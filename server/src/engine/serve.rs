//! `caplens engine serve`: any [`Engine`] behind the OpenAI-compatible HTTP API that vLLM
//! speaks, so caplens' own HTTP client and the real clients (the `openai` package, lm-eval's
//! `local-completions` / `local-chat-completions`, Inspect's `openai-api`) can drive it.
//! docs/engine-serve.md lists what is supported and what is not.
//!
//! - `GET /v1/models`: the one served model;
//! - `POST /v1/completions`: `prompt` as a string, an array of strings, token ids or an array of
//!   token-id arrays (one choice per prompt and sample, `index = prompt_i * n + j` as vLLM);
//!   vLLM's logprobs format (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`); `echo`
//!   (with `logprobs`: the prompt's tokens scored by [`Engine::score`], the first one `null`;
//!   `max_tokens` 0 scores without generating);
//! - `POST /v1/chat/completions`: `messages`, OpenAI's logprobs format (`content[]` with
//!   `bytes` and `top_logprobs`), vLLM's `continue_final_message` / `add_generation_prompt`;
//! - both: `stream` (Server-Sent Events, `stream_options.include_usage`). The answer is generated
//!   whole first, then sent as chunks: one per choice for completions; a role chunk and one
//!   content chunk per choice for chat;
//! - `POST /tokenize`, `POST /detokenize`, `GET /tokenizer_info` (vLLM's, for engines with
//!   their own tokenizer: lm-eval's `tokenizer_backend=remote`);
//! - `GET /health`: 200 when the server is up (as vLLM).
//!
//! The end-of-sequence token is never part of a returned text, nor of its logprobs (the tokens
//! join to the text). Every request is logged (method, path, model, prompts, n, stream, status,
//! duration), never its headers.
//!
//! Errors are `{"error": {"message", "type", "param", "code"}}` with the HTTP status in `code`:
//! 400 `BadRequestError` for malformed JSON, missing or mistyped fields and settings the engine
//! refuses or cannot honour (the message names the field), 404 `NotFoundError` for an unknown
//! model or path, 500 when the model fails. Input never panics the server. Generation runs on
//! `spawn_blocking` (the engine is blocking CPU work).
//!
//! Defaults follow the OpenAI API: `n` 1, `temperature` 1, `top_p` 1, `max_tokens` 16 for
//! completions and [`DEFAULT_CHAT_MAX_TOKENS`] for chat (vLLM fills the context; our engines
//! need a number), no logprobs.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Map, Value};

use super::{
    ChatMessage, Completion, Engine, EngineError, Generation, GenerationRequest, Prompt,
    SamplingParams, ScoredToken, TextTokenizer, TokenAlternative, TokenStep,
};

/// `max_tokens` of a chat request that gives none.
pub const DEFAULT_CHAT_MAX_TOKENS: u32 = 1024;
/// `max_tokens` of a completion request that gives none (the OpenAI default).
pub const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 16;
/// Most samples one request may ask for.
pub const MAX_N: u64 = 4096;
/// How vLLM writes a log-probability of -inf in JSON.
const NEG_INF_LOGPROB: f64 = -9999.0;

/// The OpenAI-compatible API over `engine`.
pub fn router(engine: Arc<dyn Engine>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/tokenizer_info", get(tokenizer_info))
        .route("/health", get(|| async { StatusCode::OK }))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!("There is no route {}.", uri.path()))
        })
        .layer(axum::middleware::from_fn(log_requests))
        .with_state(engine)
}

/// What the log line of a request says besides method, path, status and duration; the
/// handlers fill it in and hand it to [`log_requests`] in the response's extensions.
#[derive(Debug, Clone, Default)]
struct RequestSummary {
    model: Option<String>,
    prompts: usize,
    n: u32,
    stream: bool,
}

fn with_summary(mut response: Response, summary: RequestSummary) -> Response {
    response.extensions_mut().insert(summary);
    response
}

/// One `info` line per request: method, path, model, number of prompts, n, stream, status and
/// duration. Headers are never logged (they may carry an API key).
async fn log_requests(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let summary = response
        .extensions()
        .get::<RequestSummary>()
        .cloned()
        .unwrap_or_default();
    tracing::info!(
        %method,
        %path,
        model = summary.model.as_deref().unwrap_or("-"),
        prompts = summary.prompts,
        n = summary.n,
        stream = summary.stream,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64,
        "engine request"
    );
    response
}

/// The engine's tokenizer, or vLLM's 404 for a server without one.
fn engine_tokenizer(engine: &dyn Engine) -> Result<&dyn TextTokenizer, ApiError> {
    engine.text_tokenizer().ok_or_else(|| {
        ApiError::not_found(format!(
            "the {} engine has no tokenizer of its own",
            engine.info().kind
        ))
    })
}

/// vLLM's `POST /tokenize`: `{"prompt"}` → `{"count", "max_model_len", "tokens"}` (nothing is
/// added: SmolLM2 has no BOS token).
async fn tokenize(State(engine): Engines, body: Bytes) -> Result<Response, ApiError> {
    let object = parse_object(&body)?;
    let fields = Fields(&object);
    check_model(&fields, engine.as_ref())?;
    let tokenizer = engine_tokenizer(engine.as_ref())?;
    let Some(prompt) = fields.string("prompt")? else {
        return Err(ApiError::field(
            "prompt",
            "`prompt` (a string) is required; `messages` is not supported by this server's /tokenize",
        ));
    };
    let tokens = tokenizer.encode(prompt)?;
    Ok(Json(json!({
        "count": tokens.len(),
        "max_model_len": tokenizer.max_model_len(),
        "tokens": tokens,
        "token_strs": Value::Null,
    }))
    .into_response())
}

/// vLLM's `POST /detokenize`: `{"tokens"}` → `{"prompt"}`.
async fn detokenize(State(engine): Engines, body: Bytes) -> Result<Response, ApiError> {
    let object = parse_object(&body)?;
    let fields = Fields(&object);
    check_model(&fields, engine.as_ref())?;
    let tokenizer = engine_tokenizer(engine.as_ref())?;
    let ids = match fields.get("tokens") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_u64().and_then(|id| u32::try_from(id).ok()))
            .collect::<Option<Vec<u32>>>(),
        _ => None,
    }
    .ok_or_else(|| ApiError::field("tokens", "`tokens` must be an array of token ids"))?;
    if let Some(bad) = ids
        .iter()
        .find(|&&id| id as usize >= tokenizer.vocab_size())
    {
        return Err(ApiError::field(
            "tokens",
            format!("token id {bad} is outside the vocabulary"),
        ));
    }
    Ok(Json(json!({ "prompt": tokenizer.decode(&ids) })).into_response())
}

/// vLLM's `GET /tokenizer_info` (what lm-eval's `tokenizer_backend=remote` reads).
async fn tokenizer_info(State(engine): Engines) -> Result<Response, ApiError> {
    let tokenizer = engine_tokenizer(engine.as_ref())?;
    Ok(Json(json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": tokenizer.eos_token(),
        "bos_token": Value::Null,
        "pad_token": Value::Null,
        "chat_template": tokenizer.chat_template(),
        "model_max_length": tokenizer.max_model_len(),
    }))
    .into_response())
}

/// An error in OpenAI's (and vLLM's) shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: None,
        }
    }

    fn field(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param.to_string()),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            param: None,
        }
    }

    fn error_type(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "BadRequestError",
            404 => "NotFoundError",
            429 => "RateLimitError",
            502..=504 => "ServiceUnavailableError",
            s if s >= 500 => "InternalServerError",
            _ => "BadRequestError",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.error_type(),
                "param": self.param,
                "code": self.status.as_u16(),
            }
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::Invalid(_) | EngineError::Unsupported(_) => StatusCode::BAD_REQUEST,
            EngineError::Rejected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            EngineError::Unreachable { .. }
            | EngineError::Refused { .. }
            | EngineError::BadResponse { .. } => StatusCode::BAD_GATEWAY,
            EngineError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            EngineError::Model(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match e {
            EngineError::Invalid(m) | EngineError::Unsupported(m) => m,
            other => other.to_string(),
        };
        ApiError {
            status,
            message,
            param: None,
        }
    }
}

type Engines = State<Arc<dyn Engine>>;

async fn models(State(engine): Engines) -> Response {
    let info = engine.info();
    Json(json!({
        "object": "list",
        "data": [{
            "id": info.model,
            "object": "model",
            "created": unix_now(),
            "owned_by": "caplens",
        }],
    }))
    .into_response()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The request body as a JSON object.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

/// Typed access to optional fields; `null` counts as absent (as in the OpenAI API).
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn f64(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("`{name}` must be a number"))),
        }
    }

    fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ApiError::field(name, format!("`{name}` must be a non-negative integer"))
            }),
        }
    }

    fn u32(&self, name: &str) -> Result<Option<u32>, ApiError> {
        match self.u64(name)? {
            None => Ok(None),
            Some(x) => u32::try_from(x)
                .map(Some)
                .map_err(|_| ApiError::field(name, format!("`{name}` is too large: {x}"))),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("`{name}` must be true or false"))),
        }
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("`{name}` must be a string"))),
        }
    }

    /// `stop`: a string or an array of strings.
    fn stop(&self) -> Result<Vec<String>, ApiError> {
        match self.get("stop") {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::field("stop", "`stop` must be a string or an array of strings")
                }),
            Some(_) => Err(ApiError::field(
                "stop",
                "`stop` must be a string or an array of strings",
            )),
        }
    }

    /// Settings this server cannot honour are refused, not ignored: an answer to another
    /// question than the one asked would pass unnoticed.
    /// What both endpoints check first: the model (for the request's log line), the refused
    /// fields, and how the answer is delivered.
    fn head(&self, summary: &mut RequestSummary) -> Result<Delivery, ApiError> {
        summary.model = self.string("model").ok().flatten().map(str::to_owned);
        self.reject_unsupported()?;
        let delivery = self.delivery()?;
        summary.stream = delivery != Delivery::Json;
        Ok(delivery)
    }

    fn reject_unsupported(&self) -> Result<(), ApiError> {
        if self
            .get("tools")
            .is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()))
        {
            return Err(ApiError::field(
                "tools",
                "`tools` (function calling) is not supported by this server",
            ));
        }
        if let Some(format) = self.get("response_format") {
            if format.get("type").and_then(Value::as_str) != Some("text") {
                return Err(ApiError::field(
                    "response_format",
                    "`response_format` other than {\"type\": \"text\"} is not supported by this server",
                ));
            }
        }
        if self.get("suffix").is_some_and(|s| s.as_str() != Some("")) {
            return Err(ApiError::field(
                "suffix",
                "`suffix` is not supported by this server",
            ));
        }
        let n = self.u64("n")?.unwrap_or(1);
        if self.u64("best_of")?.is_some_and(|best_of| best_of > n) {
            return Err(ApiError::field(
                "best_of",
                "`best_of` larger than `n` is not supported by this server",
            ));
        }
        Ok(())
    }

    /// `stream` and `stream_options` (vLLM refuses `stream_options` without `stream`).
    fn delivery(&self) -> Result<Delivery, ApiError> {
        let stream = self.bool("stream")?.unwrap_or(false);
        let include_usage = match self.get("stream_options") {
            None => None,
            Some(Value::Object(options)) => match options.get("include_usage") {
                None | Some(Value::Null) => Some(false),
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(ApiError::field(
                        "stream_options",
                        "`stream_options.include_usage` must be true or false",
                    ))
                }
            },
            Some(_) => {
                return Err(ApiError::field(
                    "stream_options",
                    "`stream_options` must be an object",
                ))
            }
        };
        match (stream, include_usage) {
            (true, include_usage) => Ok(Delivery::Stream {
                include_usage: include_usage.unwrap_or(false),
            }),
            (false, Some(_)) => Err(ApiError::field(
                "stream_options",
                "Stream options can only be defined when `stream=True`.",
            )),
            (false, None) => Ok(Delivery::Json),
        }
    }

    /// `n` and the sampling settings shared by both endpoints (`top_logprobs` set by the caller).
    fn sampling(&self, default_max_tokens: u32) -> Result<(u32, SamplingParams), ApiError> {
        let n = self.u64("n")?.unwrap_or(1);
        if n == 0 || n > MAX_N {
            return Err(ApiError::field(
                "n",
                format!("`n` must be between 1 and {MAX_N}, got {n}"),
            ));
        }
        let max_tokens = match self.u32("max_tokens")? {
            Some(m) => Some(m),
            None => self.u32("max_completion_tokens")?,
        };
        let seed = match self.get("seed") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .or_else(|| v.as_i64().map(|x| x as u64))
                    .ok_or_else(|| ApiError::field("seed", "`seed` must be an integer"))?,
            ),
        };
        Ok((
            n as u32,
            SamplingParams {
                temperature: self.f64("temperature")?.unwrap_or(1.0),
                top_p: self.f64("top_p")?.unwrap_or(1.0),
                max_tokens: max_tokens.unwrap_or(default_max_tokens),
                seed,
                stop: self.stop()?,
                top_logprobs: None,
            },
        ))
    }
}

/// 404 when the request names another model than the engine's (a missing name is the engine's).
fn check_model(fields: &Fields<'_>, engine: &dyn Engine) -> Result<String, ApiError> {
    let served = engine.info().model;
    match fields.string("model")? {
        Some(m) if m != served => Err(ApiError::not_found(format!(
            "The model `{m}` does not exist."
        ))),
        _ => Ok(served),
    }
}

async fn run(engine: Arc<dyn Engine>, request: GenerationRequest) -> Result<Generation, ApiError> {
    blocking(move || engine.generate(&request)).await
}

/// Runs blocking engine work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("the generation failed: {e}"),
            param: None,
        }),
    }
}

fn finite(logprob: f64) -> f64 {
    if logprob.is_finite() {
        logprob
    } else {
        NEG_INF_LOGPROB
    }
}

fn usage_json(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

fn usage(g: &Generation) -> Value {
    usage_json(g.prompt_tokens, g.completion_tokens)
}

/// How a request wants its answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Delivery {
    /// One JSON body.
    Json,
    /// Server-Sent Events: `data: {chunk}` lines, then `data: [DONE]`; with `include_usage`, a
    /// last chunk with no choices and the usage.
    Stream { include_usage: bool },
}

/// The whole answer as Server-Sent Events (it is generated before the first event is sent).
fn event_stream(chunks: Vec<Value>) -> Response {
    let mut body = String::new();
    for chunk in &chunks {
        body.push_str("data: ");
        body.push_str(&chunk.to_string());
        body.push_str("\n\n");
    }
    body.push_str("data: [DONE]\n\n");
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/event-stream"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The token steps a client sees: the end-of-sequence token is never part of the text, so it is
/// not listed either (the tokens join to the text). Engines without their own tokenizer (an
/// upstream server) return what the upstream returned.
fn visible_steps<'a>(engine: &dyn Engine, c: &'a Completion) -> Vec<&'a TokenStep> {
    let tokenizer = engine.text_tokenizer();
    c.tokens
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .filter(|s| match (tokenizer, s.id) {
            (Some(t), Some(id)) => !t.is_end_of_sequence(id),
            _ => true,
        })
        .collect()
}

/// One prompt of a completions request: text, or token ids (vLLM's pre-tokenized prompts).
#[derive(Debug, Clone, PartialEq)]
enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}

const PROMPT_SHAPES: &str =
    "`prompt` must be a string, an array of strings, an array of token ids \
     or an array of arrays of token ids";

/// `prompt`: one or several prompts, in order.
fn parse_prompts(fields: &Fields<'_>) -> Result<Vec<PromptInput>, ApiError> {
    let items = match fields.get("prompt") {
        None => return Err(ApiError::field("prompt", "`prompt` is required")),
        Some(Value::String(s)) => return Ok(vec![PromptInput::Text(s.clone())]),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(ApiError::field(
                "prompt",
                "`prompt` must not be an empty array",
            ))
        }
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::field("prompt", PROMPT_SHAPES)),
    };
    if items.iter().all(Value::is_string) {
        Ok(items
            .iter()
            .map(|v| PromptInput::Text(v.as_str().unwrap_or_default().to_string()))
            .collect())
    } else if items.iter().all(Value::is_number) {
        Ok(vec![PromptInput::Tokens(token_ids(items)?)])
    } else if items.iter().all(Value::is_array) {
        items
            .iter()
            .map(|v| {
                token_ids(v.as_array().map(Vec::as_slice).unwrap_or(&[])).map(PromptInput::Tokens)
            })
            .collect()
    } else {
        Err(ApiError::field("prompt", PROMPT_SHAPES))
    }
}

fn token_ids(items: &[Value]) -> Result<Vec<u32>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::field(
            "prompt",
            "a token-id prompt must not be empty",
        ));
    }
    items
        .iter()
        .map(|v| v.as_u64().and_then(|id| u32::try_from(id).ok()))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| ApiError::field("prompt", "token ids must be non-negative integers"))
}

/// What a completions request asks of every prompt.
#[derive(Debug, Clone)]
struct CompletionPlan {
    n: u32,
    params: SamplingParams,
    echo: bool,
}

/// What the engine gave for one prompt.
struct PromptAnswer {
    /// The prompt's text (a token-id prompt decoded).
    text: String,
    /// The prompt's tokens with their logprobs (`echo` with `logprobs`).
    scored: Option<Vec<ScoredToken>>,
    /// The `n` samples; none when `max_tokens` is 0 (`echo` only).
    completions: Option<Vec<Completion>>,
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// The blocking work for all prompts, in order. Without a seed, copies of one prompt (lm-eval
/// sends a problem's `repeats` in one array) are generated together, as one request for all
/// their samples: independent random samples either way, and one batch instead of one run
/// per copy. With a seed every prompt is its own run, as in vLLM (the copies then agree).
fn answer_prompts(
    engine: &dyn Engine,
    prompts: Vec<PromptInput>,
    plan: &CompletionPlan,
) -> Result<Vec<PromptAnswer>, EngineError> {
    if plan.params.seed.is_some() {
        return prompts
            .into_iter()
            .map(|p| answer_prompt(engine, p, plan))
            .collect();
    }
    // Each distinct prompt with the positions it holds, in order of first appearance.
    let mut groups: Vec<(PromptInput, Vec<usize>)> = Vec::new();
    for (i, p) in prompts.into_iter().enumerate() {
        match groups.iter_mut().find(|(q, _)| *q == p) {
            Some((_, at)) => at.push(i),
            None => groups.push((p, vec![i])),
        }
    }
    let total = groups.iter().map(|(_, at)| at.len()).sum();
    let mut answers: Vec<Option<PromptAnswer>> = (0..total).map(|_| None).collect();
    for (prompt, at) in groups {
        let together = CompletionPlan {
            n: plan.n * at.len() as u32,
            ..plan.clone()
        };
        let answer = answer_prompt(engine, prompt, &together)?;
        let mut samples = answer.completions.map(Vec::into_iter);
        for (k, &i) in at.iter().enumerate() {
            answers[i] = Some(PromptAnswer {
                text: answer.text.clone(),
                scored: answer.scored.clone(),
                completions: samples
                    .as_mut()
                    .map(|s| s.by_ref().take(plan.n as usize).collect()),
                prompt_tokens: answer.prompt_tokens,
                // The usage is reported for the whole request: count the tokens once.
                completion_tokens: if k == 0 { answer.completion_tokens } else { 0 },
            });
        }
    }
    Ok(answers.into_iter().flatten().collect())
}

/// The blocking work for one prompt: decode token ids, score the prompt, generate.
fn answer_prompt(
    engine: &dyn Engine,
    prompt: PromptInput,
    plan: &CompletionPlan,
) -> Result<PromptAnswer, EngineError> {
    let tokenizer = engine.text_tokenizer();
    let no_tokenizer = |what: &str| {
        EngineError::Unsupported(format!(
            "the {} engine has no tokenizer of its own, so it cannot take {what}",
            engine.info().kind
        ))
    };
    let (text, ids) = match prompt {
        PromptInput::Text(text) => (text, None),
        PromptInput::Tokens(ids) => {
            let t = tokenizer.ok_or_else(|| no_tokenizer("token-id prompts"))?;
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= t.vocab_size()) {
                return Err(EngineError::Invalid(format!(
                    "token id {bad} in `prompt` is outside the vocabulary (0 to {})",
                    t.vocab_size().saturating_sub(1)
                )));
            }
            (t.decode(&ids), Some(ids))
        }
    };
    let scored = match (plan.echo, plan.params.top_logprobs) {
        (true, Some(top)) => {
            let ids = match &ids {
                Some(ids) => ids.clone(),
                None => tokenizer
                    .ok_or_else(|| no_tokenizer("`echo` with `logprobs` (scoring the prompt)"))?
                    .encode(&text)?,
            };
            Some(engine.score(&ids, top)?)
        }
        _ => None,
    };
    let generation = if plan.params.max_tokens == 0 {
        None
    } else {
        Some(engine.generate(&GenerationRequest {
            prompt: Prompt::Text(text.clone()),
            continuation: None,
            n: plan.n,
            params: plan.params.clone(),
        })?)
    };
    let completion_tokens = generation.as_ref().map_or(0, |g| g.completion_tokens);
    let prompt_tokens = match (&scored, &generation, &ids, tokenizer) {
        (Some(scored), _, _, _) => scored.len() as u64,
        (None, Some(g), _, _) => g.prompt_tokens,
        (None, None, Some(ids), _) => ids.len() as u64,
        (None, None, None, Some(t)) => t.encode(&text)?.len() as u64,
        (None, None, None, None) => 0,
    };
    Ok(PromptAnswer {
        text,
        scored,
        completions: generation.map(|g| g.completions),
        prompt_tokens,
        completion_tokens,
    })
}

/// One entry of vLLM's completions logprobs: a prompt token (first: no logprob) or a generated
/// one.
struct LogprobEntry<'a> {
    token: &'a str,
    logprob: Option<f64>,
    top: &'a [TokenAlternative],
}

async fn completions(State(engine): Engines, body: Bytes) -> Response {
    let mut summary = RequestSummary::default();
    let response = completions_response(engine, &body, &mut summary)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    with_summary(response, summary)
}

async fn completions_response(
    engine: Arc<dyn Engine>,
    body: &[u8],
    summary: &mut RequestSummary,
) -> Result<Response, ApiError> {
    let object = parse_object(body)?;
    let fields = Fields(&object);
    let delivery = fields.head(summary)?;
    let echo = fields.bool("echo")?.unwrap_or(false);
    let prompts = parse_prompts(&fields)?;
    let (n, mut params) = fields.sampling(DEFAULT_COMPLETION_MAX_TOKENS)?;
    summary.prompts = prompts.len();
    summary.n = n;
    if prompts.len() as u64 * n as u64 > MAX_N {
        return Err(ApiError::field(
            "n",
            format!(
                "{} prompts × n = {n} asks for more than {MAX_N} samples in one request",
                prompts.len()
            ),
        ));
    }
    if params.max_tokens == 0 && !echo {
        return Err(ApiError::field(
            "max_tokens",
            "`max_tokens` 0 is only allowed with `echo`: true (scoring the prompt)",
        ));
    }
    params.top_logprobs = fields.u32("logprobs")?;
    let model = check_model(&fields, engine.as_ref())?;
    let with_logprobs = params.top_logprobs.is_some();
    let plan = CompletionPlan { n, params, echo };
    let answers = {
        let engine = engine.clone();
        blocking(move || answer_prompts(engine.as_ref(), prompts, &plan)).await?
    };
    let mut choices = Vec::with_capacity(answers.len() * n as usize);
    let (mut prompt_tokens, mut completion_tokens) = (0u64, 0u64);
    for (prompt_index, answer) in answers.iter().enumerate() {
        prompt_tokens += answer.prompt_tokens;
        completion_tokens += answer.completion_tokens;
        let samples: Vec<Option<&Completion>> = match &answer.completions {
            Some(completions) => completions.iter().map(Some).collect(),
            None => vec![None; n as usize],
        };
        for (j, c) in samples.into_iter().enumerate() {
            let mut text = if echo {
                answer.text.clone()
            } else {
                String::new()
            };
            let mut entries: Vec<LogprobEntry<'_>> = Vec::new();
            if let Some(scored) = answer.scored.as_deref().filter(|_| echo) {
                entries.extend(scored.iter().map(|t| LogprobEntry {
                    token: &t.token,
                    logprob: t.logprob,
                    top: &t.top,
                }));
            }
            if let Some(c) = c {
                text.push_str(&c.text);
                entries.extend(visible_steps(engine.as_ref(), c).into_iter().map(|s| {
                    LogprobEntry {
                        token: &s.token,
                        logprob: Some(s.logprob),
                        top: &s.top,
                    }
                }));
            }
            choices.push(json!({
                // vLLM's numbering: the samples of prompt i are i * n .. i * n + n - 1.
                "index": prompt_index * n as usize + j,
                "text": text,
                "logprobs": if with_logprobs { completion_logprobs(&entries) } else { Value::Null },
                "finish_reason": c.map_or("length", |c| c.finish_reason.as_str()),
                "stop_reason": Value::Null,
            }));
        }
    }
    let id = format!("cmpl-{}", uuid::Uuid::new_v4().simple());
    let created = unix_now();
    let usage = usage_json(prompt_tokens, completion_tokens);
    match delivery {
        Delivery::Json => Ok(Json(json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage,
        }))
        .into_response()),
        Delivery::Stream { include_usage } => {
            let chunk = |choices: Vec<Value>| {
                json!({
                    "id": id,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": choices,
                })
            };
            // One chunk per choice: its whole text, logprobs and finish reason.
            let mut chunks: Vec<Value> = choices.into_iter().map(|c| chunk(vec![c])).collect();
            if include_usage {
                let mut last = chunk(Vec::new());
                last["usage"] = usage;
                chunks.push(last);
            }
            Ok(event_stream(chunks))
        }
    }
}

/// vLLM's completions logprobs: parallel arrays; `top_logprobs[i]` maps token text to logprob
/// (the alternatives plus the token itself, as vLLM does; `null` for a prompt's first token,
/// which has no logprob); `text_offset[i]` is where token i starts in the choice's text, in
/// characters.
fn completion_logprobs(entries: &[LogprobEntry<'_>]) -> Value {
    let mut offset = 0usize;
    let mut tokens = Vec::with_capacity(entries.len());
    let mut token_logprobs = Vec::with_capacity(entries.len());
    let mut top_logprobs = Vec::with_capacity(entries.len());
    let mut text_offset = Vec::with_capacity(entries.len());
    for e in entries {
        tokens.push(Value::String(e.token.to_string()));
        match e.logprob {
            None => {
                token_logprobs.push(Value::Null);
                top_logprobs.push(Value::Null);
            }
            Some(logprob) => {
                token_logprobs.push(json!(finite(logprob)));
                let mut top = Map::new();
                for alt in e.top {
                    top.entry(alt.token.clone())
                        .or_insert_with(|| json!(finite(alt.logprob)));
                }
                if !e.top.is_empty() {
                    top.entry(e.token.to_string())
                        .or_insert_with(|| json!(finite(logprob)));
                }
                top_logprobs.push(Value::Object(top));
            }
        }
        text_offset.push(offset);
        offset += e.token.chars().count();
    }
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}

/// One chat message; `content` is a string or an array of `{"type": "text", "text"}` parts.
fn parse_messages(fields: &Fields<'_>) -> Result<Vec<ChatMessage>, ApiError> {
    let items = match fields.get("messages") {
        None => return Err(ApiError::field("messages", "`messages` is required")),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => {
            return Err(ApiError::field(
                "messages",
                "`messages` must hold at least one message",
            ))
        }
        Some(_) => {
            return Err(ApiError::field(
                "messages",
                "`messages` must be an array of messages",
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let bad = |what: &str| ApiError::field("messages", format!("`messages[{i}]` {what}"));
            let m = m.as_object().ok_or_else(|| bad("must be an object"))?;
            let role = m
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("needs a string `role`"))?;
            let content = match m.get("content") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for part in parts {
                        match (
                            part.get("type").and_then(Value::as_str),
                            part.get("text").and_then(Value::as_str),
                        ) {
                            (Some("text"), Some(t)) => text.push_str(t),
                            _ => return Err(bad("has a content part that is not text")),
                        }
                    }
                    text
                }
                Some(_) => return Err(bad("`content` must be a string or text parts")),
            };
            Ok(ChatMessage {
                role: role.to_string(),
                content,
            })
        })
        .collect()
}

async fn chat_completions(State(engine): Engines, body: Bytes) -> Response {
    let mut summary = RequestSummary::default();
    let response = chat_completions_response(engine, &body, &mut summary)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    with_summary(response, summary)
}

async fn chat_completions_response(
    engine: Arc<dyn Engine>,
    body: &[u8],
    summary: &mut RequestSummary,
) -> Result<Response, ApiError> {
    let object = parse_object(body)?;
    let fields = Fields(&object);
    let delivery = fields.head(summary)?;
    let mut messages = parse_messages(&fields)?;
    let (n, mut params) = fields.sampling(DEFAULT_CHAT_MAX_TOKENS)?;
    summary.prompts = 1;
    summary.n = n;
    let logprobs = fields.bool("logprobs")?.unwrap_or(false);
    let top = fields.u32("top_logprobs")?;
    if top.is_some() && !logprobs {
        return Err(ApiError::field(
            "top_logprobs",
            "`top_logprobs` needs `logprobs`: true",
        ));
    }
    params.top_logprobs = logprobs.then(|| top.unwrap_or(0));
    let continue_final = fields.bool("continue_final_message")?.unwrap_or(false);
    let add_generation_prompt = fields.bool("add_generation_prompt")?.unwrap_or(true);
    let continuation = if continue_final {
        if add_generation_prompt && fields.get("add_generation_prompt").is_some() {
            return Err(ApiError::field(
                "continue_final_message",
                "`continue_final_message` and `add_generation_prompt` cannot both be true",
            ));
        }
        match messages.last() {
            Some(m) if m.role == "assistant" => messages.pop().map(|m| m.content),
            _ => {
                return Err(ApiError::field(
                    "continue_final_message",
                    "`continue_final_message` needs the last message to be from the assistant",
                ))
            }
        }
    } else {
        if !add_generation_prompt {
            return Err(ApiError::field(
                "add_generation_prompt",
                "`add_generation_prompt`: false is only supported with `continue_final_message`: true",
            ));
        }
        None
    };
    let model = check_model(&fields, engine.as_ref())?;
    let generation = run(
        engine.clone(),
        GenerationRequest {
            prompt: Prompt::Chat(messages),
            continuation,
            n,
            params,
        },
    )
    .await?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = unix_now();
    let logprobs_of = |c: &Completion| {
        if logprobs {
            chat_logprobs(&visible_steps(engine.as_ref(), c))
        } else {
            Value::Null
        }
    };
    match delivery {
        Delivery::Json => {
            let choices: Vec<Value> = generation
                .completions
                .iter()
                .enumerate()
                .map(|(index, c)| {
                    json!({
                        "index": index,
                        "message": { "role": "assistant", "content": c.text },
                        "logprobs": logprobs_of(c),
                        "finish_reason": c.finish_reason,
                        "stop_reason": Value::Null,
                    })
                })
                .collect();
            Ok(Json(json!({
                "id": id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": choices,
                "usage": usage(&generation),
            }))
            .into_response())
        }
        Delivery::Stream { include_usage } => {
            let chunk = |choice: Value| {
                json!({
                    "id": id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [choice],
                })
            };
            // Per choice, as OpenAI and vLLM: a first chunk with the role, then the content
            // (here all of it at once, with its logprobs and the finish reason).
            let mut chunks = Vec::with_capacity(2 * generation.completions.len() + 1);
            for (index, c) in generation.completions.iter().enumerate() {
                chunks.push(chunk(json!({
                    "index": index,
                    "delta": { "role": "assistant", "content": "" },
                    "logprobs": Value::Null,
                    "finish_reason": Value::Null,
                })));
                chunks.push(chunk(json!({
                    "index": index,
                    "delta": { "content": c.text },
                    "logprobs": logprobs_of(c),
                    "finish_reason": c.finish_reason,
                    "stop_reason": Value::Null,
                })));
            }
            if include_usage {
                chunks.push(json!({
                    "id": id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage(&generation),
                }));
            }
            Ok(event_stream(chunks))
        }
    }
}

/// OpenAI's chat logprobs. `bytes` are the UTF-8 bytes of the token text as shown (lossy for a
/// token that is part of a character, as vLLM's).
fn chat_logprobs(steps: &[&TokenStep]) -> Value {
    let content: Vec<Value> = steps
        .iter()
        .map(|s| {
            let top: Vec<Value> = s
                .top
                .iter()
                .map(|a| {
                    json!({
                        "token": a.token,
                        "logprob": finite(a.logprob),
                        "bytes": a.token.as_bytes(),
                    })
                })
                .collect();
            json!({
                "token": s.token,
                "logprob": finite(s.logprob),
                "bytes": s.token.as_bytes(),
                "top_logprobs": top,
            })
        })
        .collect();
    json!({ "content": content })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineInfo, TokenAlternative};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use std::sync::Mutex;
    use tower::ServiceExt;

    /// Answers every request with `n` copies of "Hi!" (tokens "Hi", "!") and remembers the
    /// last request.
    #[derive(Default)]
    struct FakeEngine {
        last: Mutex<Option<GenerationRequest>>,
    }

    impl Engine for FakeEngine {
        fn info(&self) -> EngineInfo {
            EngineInfo {
                kind: "fake".into(),
                model: "fake-model".into(),
                max_top_logprobs: 3,
                full_distribution: true,
            }
        }

        fn generate(&self, request: &GenerationRequest) -> Result<Generation, EngineError> {
            request.params.validate(3)?;
            *self.last.lock().unwrap() = Some(request.clone());
            let k = request.params.top_logprobs;
            let step = |token: &str, logprob: f64| TokenStep {
                token: token.into(),
                id: Some(7),
                logprob,
                top: (0..k.unwrap_or(0))
                    .map(|i| TokenAlternative {
                        token: if i == 0 {
                            token.into()
                        } else {
                            format!("alt{i}")
                        },
                        logprob: if i == 0 { logprob } else { -2.0 - i as f64 },
                    })
                    .collect(),
                entropy: Some(0.5),
                rbf: Some(2),
                hidden_norm: None,
            };
            let completion = Completion {
                text: "Hi!".into(),
                finish_reason: "stop".into(),
                tokens: k.map(|_| vec![step("Hi", -0.25), step("!", f64::NEG_INFINITY)]),
            };
            Ok(Generation {
                completions: vec![completion; request.n as usize],
                prompt_tokens: 5,
                completion_tokens: 2 * request.n as u64,
            })
        }
    }

    async fn call(
        engine: Arc<FakeEngine>,
        method: &str,
        path: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let app = router(engine);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    fn assert_error(status: StatusCode, body: &Value, code: u16, kind: &str, needle: &str) {
        assert_eq!(status.as_u16(), code, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }

    #[tokio::test]
    async fn models_lists_the_served_model() {
        let (status, body) = call(Arc::default(), "GET", "/v1/models", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"][0]["id"], "fake-model");
        assert_eq!(body["data"][0]["object"], "model");
        assert_eq!(body["data"][0]["owned_by"], "caplens");
        let (status, _) = call(Arc::default(), "GET", "/health", "").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn completions_answer_in_vllm_shape() {
        let engine = Arc::new(FakeEngine::default());
        let (status, body) = call(
            engine.clone(),
            "POST",
            "/v1/completions",
            r#"{"model":"fake-model","prompt":"Say hi","n":2,"temperature":0.5,"top_p":0.9,
                "max_tokens":7,"seed":11,"stop":"\n","logprobs":2}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["object"], "text_completion");
        assert_eq!(body["model"], "fake-model");
        assert_eq!(body["choices"].as_array().unwrap().len(), 2);
        let c = &body["choices"][1];
        assert_eq!(c["index"], 1);
        assert_eq!(c["text"], "Hi!");
        assert_eq!(c["finish_reason"], "stop");
        assert_eq!(c["logprobs"]["tokens"], json!(["Hi", "!"]));
        assert_eq!(c["logprobs"]["token_logprobs"], json!([-0.25, -9999.0]));
        assert_eq!(c["logprobs"]["text_offset"], json!([0, 2]));
        assert_eq!(
            c["logprobs"]["top_logprobs"][0],
            json!({"Hi": -0.25, "alt1": -3.0})
        );
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
        );
        let seen = engine.last.lock().unwrap().clone().unwrap();
        assert_eq!(seen.prompt, Prompt::Text("Say hi".into()));
        assert_eq!(seen.n, 2);
        assert_eq!(
            seen.params,
            SamplingParams {
                temperature: 0.5,
                top_p: 0.9,
                max_tokens: 7,
                seed: Some(11),
                stop: vec!["\n".into()],
                top_logprobs: Some(2),
            }
        );
        // Without logprobs: null, and the engine is asked for none.
        let (status, body) = call(
            engine.clone(),
            "POST",
            "/v1/completions",
            r#"{"prompt":"Say hi","stop":["a","b"]}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["choices"][0]["logprobs"], Value::Null);
        let seen = engine.last.lock().unwrap().clone().unwrap();
        assert_eq!(seen.params.top_logprobs, None);
        assert_eq!(seen.params.max_tokens, DEFAULT_COMPLETION_MAX_TOKENS);
        assert_eq!(seen.params.stop, ["a", "b"]);
        assert_eq!(
            (seen.params.temperature, seen.params.top_p, seen.n),
            (1.0, 1.0, 1)
        );
    }

    #[tokio::test]
    async fn chat_completions_answer_in_openai_shape() {
        let engine = Arc::new(FakeEngine::default());
        let (status, body) = call(
            engine.clone(),
            "POST",
            "/v1/chat/completions",
            r#"{"model":"fake-model","messages":[{"role":"user","content":"Hello"}],
                "logprobs":true,"top_logprobs":2,"max_completion_tokens":9}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["object"], "chat.completion");
        let c = &body["choices"][0];
        assert_eq!(c["message"], json!({"role": "assistant", "content": "Hi!"}));
        assert_eq!(c["finish_reason"], "stop");
        let first = &c["logprobs"]["content"][0];
        assert_eq!(first["token"], "Hi");
        assert_eq!(first["logprob"], -0.25);
        assert_eq!(first["bytes"], json!([72, 105]));
        assert_eq!(first["top_logprobs"].as_array().unwrap().len(), 2);
        assert_eq!(first["top_logprobs"][1]["token"], "alt1");
        assert_eq!(first["top_logprobs"][1]["bytes"], json!([97, 108, 116, 49]));
        let seen = engine.last.lock().unwrap().clone().unwrap();
        assert_eq!(seen.params.top_logprobs, Some(2));
        assert_eq!(seen.params.max_tokens, 9);
        assert_eq!(seen.continuation, None);

        // Continue the final assistant message (vLLM's continue_final_message).
        let (status, body) = call(
            engine.clone(),
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"2+3?"}]},
                {"role":"assistant","content":"The answer is"}],
                "continue_final_message":true,"add_generation_prompt":false}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["choices"][0]["logprobs"], Value::Null);
        let seen = engine.last.lock().unwrap().clone().unwrap();
        assert_eq!(seen.continuation.as_deref(), Some("The answer is"));
        assert_eq!(
            seen.prompt,
            Prompt::Chat(vec![ChatMessage {
                role: "user".into(),
                content: "2+3?".into()
            }])
        );
        assert_eq!(seen.params.top_logprobs, None);
        // logprobs without top_logprobs: token logprobs, no alternatives.
        let (_, body) = call(
            engine.clone(),
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"x"}],"logprobs":true}"#,
        )
        .await;
        assert_eq!(
            body["choices"][0]["logprobs"]["content"][0]["top_logprobs"],
            json!([])
        );
    }

    #[tokio::test]
    async fn errors_are_openai_shaped_with_the_right_status() {
        let e = || Arc::new(FakeEngine::default());
        let (s, b) = call(
            e(),
            "POST",
            "/v1/completions",
            r#"{"model":"gpt-5","prompt":"x"}"#,
        )
        .await;
        assert_error(
            s,
            &b,
            404,
            "NotFoundError",
            "The model `gpt-5` does not exist.",
        );
        let (s, b) = call(
            e(),
            "POST",
            "/v1/chat/completions",
            r#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#,
        )
        .await;
        assert_error(s, &b, 404, "NotFoundError", "`nope`");
        let (s, b) = call(e(), "POST", "/v1/completions", r#"{"prompt": "x", "#).await;
        assert_error(s, &b, 400, "BadRequestError", "not valid JSON");
        let (s, b) = call(e(), "POST", "/v1/completions", "[1,2]").await;
        assert_error(s, &b, 400, "BadRequestError", "JSON object");
        let (s, b) = call(e(), "POST", "/v1/completions", r#"{"model":"fake-model"}"#).await;
        assert_error(s, &b, 400, "BadRequestError", "`prompt`");
        assert_eq!(b["error"]["param"], "prompt");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/chat/completions",
            r#"{"model":"fake-model"}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "`messages`");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/completions",
            r#"{"prompt":"x","temperature":"hot"}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "`temperature`");
        let (s, b) = call(e(), "POST", "/v1/completions", r#"{"prompt":"x","n":0}"#).await;
        assert_error(s, &b, 400, "BadRequestError", "`n`");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/completions",
            r#"{"prompt":"x","max_tokens":-1}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "`max_tokens`");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/completions",
            r#"{"prompt":"x","stop":[1]}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "`stop`");
        // Settings the engine refuses: its message, naming the field.
        let (s, b) = call(
            e(),
            "POST",
            "/v1/completions",
            r#"{"prompt":"x","temperature":9}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "temperature");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/completions",
            r#"{"prompt":"x","logprobs":4}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "top_logprobs");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/completions",
            r#"{"prompt":"x","stream_options":{"include_usage":true}}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "`stream=True`");
        assert_eq!(b["error"]["param"], "stream_options");
        for (body, param) in [
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#,
                "tools",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#,
                "response_format",
            ),
        ] {
            let (s, b) = call(e(), "POST", "/v1/chat/completions", body).await;
            assert_error(s, &b, 400, "BadRequestError", "not supported");
            assert_eq!(b["error"]["param"], param);
        }
        for (body, param) in [
            (r#"{"prompt":"x","suffix":"y"}"#, "suffix"),
            (r#"{"prompt":"x","n":2,"best_of":3}"#, "best_of"),
        ] {
            let (s, b) = call(e(), "POST", "/v1/completions", body).await;
            assert_error(s, &b, 400, "BadRequestError", "not supported");
            assert_eq!(b["error"]["param"], param);
        }
        // What changes nothing is accepted.
        let (s, _) = call(
            e(),
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"x"}],"tools":[],"response_format":{"type":"text"}}"#,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (s, b) = call(e(), "POST", "/v1/completions", r#"{"prompt":[]}"#).await;
        assert_error(s, &b, 400, "BadRequestError", "empty array");
        let (s, b) = call(e(), "POST", "/v1/completions", r#"{"prompt":["a",1]}"#).await;
        assert_error(s, &b, 400, "BadRequestError", "array of strings");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/completions",
            r#"{"prompt":"x","max_tokens":0}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "`echo`");
        // Engines without a tokenizer or scoring: a clear 400, not a 500.
        let (s, b) = call(e(), "POST", "/v1/completions", r#"{"prompt":[[1,2,3]]}"#).await;
        assert_error(s, &b, 400, "BadRequestError", "token-id prompts");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/completions",
            r#"{"prompt":"x","echo":true,"logprobs":1,"max_tokens":1}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "cannot take `echo`");
        let (s, b) = call(e(), "GET", "/tokenizer_info", "").await;
        assert_error(s, &b, 404, "NotFoundError", "no tokenizer");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "`logprobs`");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"x"}],"continue_final_message":true}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "assistant");
        let (s, b) = call(
            e(),
            "POST",
            "/v1/chat/completions",
            r#"{"messages":[{"content":"x"}]}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "`role`");
        let (s, b) = call(e(), "GET", "/v1/nothing", "").await;
        assert_error(s, &b, 404, "NotFoundError", "/v1/nothing");
    }

    /// Answers sample j of prompt p with the text "p/j", to see which choice is which.
    struct PromptEcho;

    impl Engine for PromptEcho {
        fn info(&self) -> EngineInfo {
            FakeEngine::default().info()
        }

        fn generate(&self, request: &GenerationRequest) -> Result<Generation, EngineError> {
            let Prompt::Text(prompt) = &request.prompt else {
                return FakeEngine::default().generate(request);
            };
            Ok(Generation {
                completions: (0..request.n)
                    .map(|j| Completion {
                        text: format!("{prompt}/{j}"),
                        finish_reason: "length".into(),
                        tokens: None,
                    })
                    .collect(),
                prompt_tokens: 3,
                completion_tokens: request.n as u64,
            })
        }
    }

    async fn raw(engine: Arc<dyn Engine>, path: &str, body: &str) -> (StatusCode, String, String) {
        let response = router(engine)
            .oneshot(
                Request::post(path)
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    /// The JSON chunks of a Server-Sent Events body, checking the framing: `data: ` lines
    /// separated by blank lines, `[DONE]` last.
    fn sse_chunks(body: &str) -> Vec<Value> {
        let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
        assert_eq!(events.last(), Some(&"data: [DONE]"));
        events[..events.len() - 1]
            .iter()
            .map(|e| {
                let data = e.strip_prefix("data: ").unwrap_or_else(|| panic!("{e:?}"));
                serde_json::from_str(data).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_prompt_array_gives_one_choice_per_prompt_and_sample_in_vllm_order() {
        let (status, body) = call_engine(
            Arc::new(PromptEcho),
            "/v1/completions",
            r#"{"prompt":["a","b","c"],"n":2,"max_tokens":3}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let choices: Vec<(u64, &str)> = body["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["index"].as_u64().unwrap(), c["text"].as_str().unwrap()))
            .collect();
        assert_eq!(
            choices,
            [
                (0, "a/0"),
                (1, "a/1"),
                (2, "b/0"),
                (3, "b/1"),
                (4, "c/0"),
                (5, "c/1")
            ]
        );
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15})
        );
        // Copies of a prompt without a seed run together (one request for all their samples);
        // with a seed each copy is its own run, as in vLLM.
        let texts = |body: Value| -> Vec<String> {
            body["choices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["text"].as_str().unwrap().to_string())
                .collect()
        };
        let (_, body) = call_engine(
            Arc::new(PromptEcho),
            "/v1/completions",
            r#"{"prompt":["a","b","a"],"n":2}"#,
        )
        .await;
        assert_eq!(
            texts(body.clone()),
            ["a/0", "a/1", "b/0", "b/1", "a/2", "a/3"]
        );
        assert_eq!(body["usage"]["completion_tokens"], 6);
        assert_eq!(body["usage"]["prompt_tokens"], 9);
        let (_, body) = call_engine(
            Arc::new(PromptEcho),
            "/v1/completions",
            r#"{"prompt":["a","b","a"],"seed":3}"#,
        )
        .await;
        assert_eq!(texts(body), ["a/0", "b/0", "a/0"]);
        // echo without logprobs puts the prompt before each text.
        let (_, body) = call_engine(
            Arc::new(PromptEcho),
            "/v1/completions",
            r#"{"prompt":["a","b"],"echo":true}"#,
        )
        .await;
        assert_eq!(body["choices"][1]["text"], "bb/0");
    }

    #[tokio::test]
    async fn completions_stream_as_server_sent_events() {
        let (status, content_type, body) = raw(
            Arc::new(PromptEcho),
            "/v1/completions",
            r#"{"prompt":["a","b"],"n":2,"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(content_type, "text/event-stream");
        let chunks = sse_chunks(&body);
        assert_eq!(chunks.len(), 5, "{body}");
        let id = &chunks[0]["id"];
        for (i, chunk) in chunks[..4].iter().enumerate() {
            assert_eq!(chunk["object"], "text_completion");
            assert_eq!(&chunk["id"], id, "one id for the whole stream");
            assert_eq!(chunk["choices"][0]["index"], i);
            assert_eq!(chunk["choices"][0]["finish_reason"], "length");
            assert!(chunk.get("usage").is_none());
        }
        assert_eq!(chunks[3]["choices"][0]["text"], "b/1");
        assert_eq!(chunks[4]["choices"], json!([]));
        assert_eq!(chunks[4]["usage"]["total_tokens"], 10);
        // Without include_usage: no usage chunk.
        let (_, _, body) = raw(
            Arc::new(PromptEcho),
            "/v1/completions",
            r#"{"prompt":"a","stream":true}"#,
        )
        .await;
        assert_eq!(sse_chunks(&body).len(), 1);
    }

    #[tokio::test]
    async fn chat_streams_a_role_chunk_then_the_content() {
        let (status, content_type, body) = raw(
            Arc::new(FakeEngine::default()),
            "/v1/chat/completions",
            r#"{"messages":[{"role":"user","content":"Hello"}],"n":2,"stream":true,
                "logprobs":true,"stream_options":{"include_usage":true}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(content_type, "text/event-stream");
        let chunks = sse_chunks(&body);
        assert_eq!(chunks.len(), 5, "{body}");
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
        }
        let first = &chunks[0]["choices"][0];
        assert_eq!(first["delta"], json!({"role": "assistant", "content": ""}));
        assert_eq!(first["finish_reason"], Value::Null);
        let content = &chunks[1]["choices"][0];
        assert_eq!(content["delta"], json!({"content": "Hi!"}));
        assert_eq!(content["finish_reason"], "stop");
        assert_eq!(content["logprobs"]["content"][0]["token"], "Hi");
        assert_eq!(chunks[3]["choices"][0]["index"], 1);
        assert_eq!(chunks[4]["choices"], json!([]));
        assert_eq!(
            chunks[4]["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
        );
    }

    async fn call_engine(engine: Arc<dyn Engine>, path: &str, body: &str) -> (StatusCode, Value) {
        let (status, _, text) = raw(engine, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn model_errors_are_500() {
        struct Broken;
        impl Engine for Broken {
            fn info(&self) -> EngineInfo {
                FakeEngine::default().info()
            }
            fn generate(&self, _: &GenerationRequest) -> Result<Generation, EngineError> {
                Err(EngineError::Model("out of cheese".into()))
            }
        }
        let app = router(Arc::new(Broken));
        let response = app
            .oneshot(
                Request::post("/v1/completions")
                    .body(Body::from(r#"{"prompt":"x"}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["type"], "InternalServerError");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("out of cheese"));
    }

    /// The real model through the HTTP layer: one short greedy chat answer with logprobs.
    #[tokio::test]
    async fn embedded_engine_behind_the_api() {
        let path = crate::engine::embedded::EmbeddedEngine::default_model_path();
        let engine = tokio::task::spawn_blocking(move || {
            crate::engine::embedded::EmbeddedEngine::load(&path, Default::default())
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("run scripts/fetch-model.sh first: {e}"));
        let app = router(Arc::new(engine));
        let response = app
            .oneshot(
                Request::post("/v1/chat/completions")
                    .body(Body::from(
                        r#"{"model":"SmolLM2-135M-Instruct","messages":[{"role":"user","content":"What is 2+3? Answer with a number."}],
                            "temperature":0,"max_tokens":6,"logprobs":true,"top_logprobs":3,"n":2}"#,
                    ))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let choices = body["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 2);
        assert_eq!(choices[0]["message"], choices[1]["message"], "greedy");
        let content = choices[0]["logprobs"]["content"].as_array().unwrap();
        assert!(!content.is_empty() && content.len() <= 6);
        assert_eq!(content[0]["top_logprobs"].as_array().unwrap().len(), 3);
        assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
    }
}
