//! `caplens engine serve`: any [`Engine`] behind the OpenAI-compatible HTTP API that vLLM
//! speaks, so caplens' own HTTP client (and any OpenAI client) can drive it.
//!
//! - `GET /v1/models`: the one served model;
//! - `POST /v1/completions`: `prompt` (a string), vLLM's logprobs format
//!   (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`);
//! - `POST /v1/chat/completions`: `messages`, OpenAI's logprobs format (`content[]` with
//!   `bytes` and `top_logprobs`), vLLM's `continue_final_message` / `add_generation_prompt`;
//! - `GET /health`: 200 when the server is up (as vLLM).
//!
//! Errors are `{"error": {"message", "type", "param", "code"}}` with the HTTP status in `code`:
//! 400 `BadRequestError` for malformed JSON, missing or mistyped fields and settings the engine
//! refuses (the message names the field), 404 `NotFoundError` for an unknown model or path, 500
//! when the model fails. Input never panics the server. Generation runs on
//! `spawn_blocking` (the engine is blocking CPU work).
//!
//! Defaults follow the OpenAI API: `n` 1, `temperature` 1, `top_p` 1, `max_tokens` 16 for
//! completions and [`DEFAULT_CHAT_MAX_TOKENS`] for chat (vLLM fills the context; our engines
//! need a number), no logprobs. `stream` and `echo` are not supported (400).

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
    SamplingParams, TokenStep,
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
        .route("/health", get(|| async { StatusCode::OK }))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(format!("There is no route {}.", uri.path()))
        })
        .with_state(engine)
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
            EngineError::Invalid(_) => StatusCode::BAD_REQUEST,
            EngineError::Rejected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            EngineError::Unreachable { .. } | EngineError::BadResponse { .. } => {
                StatusCode::BAD_GATEWAY
            }
            EngineError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            EngineError::Model(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match e {
            EngineError::Invalid(m) => m,
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

    fn reject_unsupported(&self) -> Result<(), ApiError> {
        if self.bool("stream")?.unwrap_or(false) {
            return Err(ApiError::field(
                "stream",
                "`stream` is not supported by this server; send stream: false",
            ));
        }
        if self.bool("echo")?.unwrap_or(false) {
            return Err(ApiError::field(
                "echo",
                "`echo` is not supported by this server",
            ));
        }
        Ok(())
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
    match tokio::task::spawn_blocking(move || engine.generate(&request)).await {
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

fn usage(g: &Generation) -> Value {
    json!({
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.completion_tokens,
        "total_tokens": g.prompt_tokens + g.completion_tokens,
    })
}

async fn completions(State(engine): Engines, body: Bytes) -> Result<Response, ApiError> {
    let object = parse_object(&body)?;
    let fields = Fields(&object);
    fields.reject_unsupported()?;
    let prompt = match fields.get("prompt") {
        None => return Err(ApiError::field("prompt", "`prompt` is required")),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            items[0].as_str().unwrap_or_default().to_string()
        }
        Some(_) => {
            return Err(ApiError::field(
                "prompt",
                "`prompt` must be a string (or an array of exactly one string)",
            ))
        }
    };
    let (n, mut params) = fields.sampling(DEFAULT_COMPLETION_MAX_TOKENS)?;
    params.top_logprobs = fields.u32("logprobs")?;
    let model = check_model(&fields, engine.as_ref())?;
    let with_logprobs = params.top_logprobs.is_some();
    let generation = run(
        engine,
        GenerationRequest {
            prompt: Prompt::Text(prompt),
            continuation: None,
            n,
            params,
        },
    )
    .await?;
    let choices: Vec<Value> = generation
        .completions
        .iter()
        .enumerate()
        .map(|(index, c)| {
            json!({
                "index": index,
                "text": c.text,
                "logprobs": if with_logprobs { completion_logprobs(c) } else { Value::Null },
                "finish_reason": c.finish_reason,
                "stop_reason": Value::Null,
            })
        })
        .collect();
    Ok(Json(json!({
        "id": format!("cmpl-{}", uuid::Uuid::new_v4().simple()),
        "object": "text_completion",
        "created": unix_now(),
        "model": model,
        "choices": choices,
        "usage": usage(&generation),
    }))
    .into_response())
}

/// vLLM's completions logprobs: parallel arrays; `top_logprobs[i]` maps token text to logprob
/// (the alternatives plus the sampled token, as vLLM does); `text_offset[i]` is where token i
/// starts in the completion text, in characters.
fn completion_logprobs(c: &Completion) -> Value {
    let steps: &[TokenStep] = c.tokens.as_deref().unwrap_or(&[]);
    let mut offset = 0usize;
    let mut tokens = Vec::with_capacity(steps.len());
    let mut token_logprobs = Vec::with_capacity(steps.len());
    let mut top_logprobs = Vec::with_capacity(steps.len());
    let mut text_offset = Vec::with_capacity(steps.len());
    for s in steps {
        tokens.push(Value::String(s.token.clone()));
        token_logprobs.push(json!(finite(s.logprob)));
        let mut top = Map::new();
        for alt in &s.top {
            top.entry(alt.token.clone())
                .or_insert_with(|| json!(finite(alt.logprob)));
        }
        if !s.top.is_empty() {
            top.entry(s.token.clone())
                .or_insert_with(|| json!(finite(s.logprob)));
        }
        top_logprobs.push(Value::Object(top));
        text_offset.push(offset);
        offset += s.token.chars().count();
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

async fn chat_completions(State(engine): Engines, body: Bytes) -> Result<Response, ApiError> {
    let object = parse_object(&body)?;
    let fields = Fields(&object);
    fields.reject_unsupported()?;
    let mut messages = parse_messages(&fields)?;
    let (n, mut params) = fields.sampling(DEFAULT_CHAT_MAX_TOKENS)?;
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
        engine,
        GenerationRequest {
            prompt: Prompt::Chat(messages),
            continuation,
            n,
            params,
        },
    )
    .await?;
    let choices: Vec<Value> = generation
        .completions
        .iter()
        .enumerate()
        .map(|(index, c)| {
            json!({
                "index": index,
                "message": { "role": "assistant", "content": c.text },
                "logprobs": if logprobs { chat_logprobs(c) } else { Value::Null },
                "finish_reason": c.finish_reason,
                "stop_reason": Value::Null,
            })
        })
        .collect();
    Ok(Json(json!({
        "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": choices,
        "usage": usage(&generation),
    }))
    .into_response())
}

/// OpenAI's chat logprobs. `bytes` are the UTF-8 bytes of the token text as shown (lossy for a
/// token that is part of a character, as vLLM's).
fn chat_logprobs(c: &Completion) -> Value {
    let steps: &[TokenStep] = c.tokens.as_deref().unwrap_or(&[]);
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
            r#"{"prompt":"x","stream":true}"#,
        )
        .await;
        assert_error(s, &b, 400, "BadRequestError", "`stream`");
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
