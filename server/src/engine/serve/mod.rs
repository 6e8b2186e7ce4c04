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
//! Layout: this module holds the router and what every endpoint shares (the request log line,
//! running engine work off the async threads, Server-Sent Events, usage, the visible tokens);
//! `request` reads and checks request bodies, `error` is the error shape, and `completions`,
//! `chat` and `tokenize` are the endpoints.
//!
//! Defaults follow the OpenAI API: `n` 1, `temperature` 1, `top_p` 1, `max_tokens` 16 for
//! completions and [`DEFAULT_CHAT_MAX_TOKENS`] for chat (vLLM fills the context; our engines
//! need a number), no logprobs.

use std::sync::Arc;

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};

use super::{Completion, Engine, EngineError, Generation, GenerationRequest, TokenStep};

mod chat;
mod completions;
mod error;
mod request;
mod tokenize;

pub use error::ApiError;

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
        .route("/v1/completions", post(completions::completions))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/tokenize", post(tokenize::tokenize))
        .route("/detokenize", post(tokenize::detokenize))
        .route("/tokenizer_info", get(tokenize::tokenizer_info))
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

/// What every answer and streamed chunk of one request carries (OpenAI's `id`, `created`,
/// `model`), and the two ways of sending the choices: one JSON document, or Server-Sent Events.
struct Answer {
    id: String,
    created: u64,
    model: String,
}

impl Answer {
    /// `prefix` names the endpoint's ids (`cmpl`, `chatcmpl`).
    fn new(prefix: &str, model: String) -> Answer {
        Answer {
            id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            created: unix_now(),
            model,
        }
    }

    /// `{id, object, created, model, choices}`, with `usage` when given.
    fn document(&self, object: &str, choices: Vec<Value>, usage: Option<Value>) -> Value {
        let mut doc = json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            doc["usage"] = usage;
        }
        doc
    }

    /// The answer as one JSON document.
    fn json(&self, object: &str, choices: Vec<Value>, usage: Value) -> Response {
        Json(self.document(object, choices, Some(usage))).into_response()
    }

    /// The answer as Server-Sent Events: one chunk per entry of `chunks` (its choices), then,
    /// when `usage` is given (`stream_options.include_usage`), a chunk with no choices and the
    /// usage, as OpenAI and vLLM send it.
    fn stream(&self, object: &str, chunks: Vec<Vec<Value>>, usage: Option<Value>) -> Response {
        let mut events: Vec<Value> = chunks
            .into_iter()
            .map(|choices| self.document(object, choices, None))
            .collect();
        if let Some(usage) = usage {
            events.push(self.document(object, Vec::new(), Some(usage)));
        }
        event_stream(events)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineInfo, Prompt, TokenAlternative};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use std::sync::Mutex;
    use tower::ServiceExt;

    // The test doubles and HTTP helpers below are shared by the tests of every endpoint
    // module (`completions`, `chat`, `error`).

    /// Answers every request with `n` copies of "Hi!" (tokens "Hi", "!") and remembers the
    /// last request.
    #[derive(Default)]
    pub(super) struct FakeEngine {
        pub(super) last: Mutex<Option<GenerationRequest>>,
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

    pub(super) async fn call(
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

    pub(super) fn assert_error(
        status: StatusCode,
        body: &Value,
        code: u16,
        kind: &str,
        needle: &str,
    ) {
        assert_eq!(status.as_u16(), code, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }

    /// Answers sample j of prompt p with the text "p/j", to see which choice is which.
    pub(super) struct PromptEcho;

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

    pub(super) async fn raw(
        engine: Arc<dyn Engine>,
        path: &str,
        body: &str,
    ) -> (StatusCode, String, String) {
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
    pub(super) fn sse_chunks(body: &str) -> Vec<Value> {
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

    pub(super) async fn call_engine(
        engine: Arc<dyn Engine>,
        path: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let (status, _, text) = raw(engine, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
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
