//! The OpenAI-compatible engine: vLLM, SGLang, TGI, `caplens engine serve`, or any server that
//! speaks `/v1/completions` and `/v1/chat/completions`.
//!
//! Requests ask for `n` samples at once (split into chunks of at most [`MAX_N_PER_REQUEST`]),
//! with logprobs as vLLM returns them. 429 and 5xx answers and dropped connections are retried
//! with exponential backoff (honouring `Retry-After`); any other 4xx is a rejection.
//!
//! Engines are not a proxy (issue 25): the base URL may reach only what the engine address
//! policy allows ([`super::netguard`]), redirects are not followed, and no error carries the
//! body of an answer — whatever answers at an address (an internal service, a metadata
//! endpoint) must not be readable through an engine's error. Errors say the status and what it
//! usually means; the one thing read from a failed exchange is the protocol's list of served
//! model ids (capped), for a wrong model name.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::netguard::{self, EnginePolicy};
use super::{
    ChatMessage, Completion, Engine, EngineError, EngineInfo, Generation, GenerationRequest,
    Prompt, TokenAlternative, TokenStep,
};

/// Largest `n` sent in one request; larger requests are split (seeds stay distinct).
pub const MAX_N_PER_REQUEST: u32 = 32;

/// Which endpoint requests go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApiMode {
    /// `/v1/completions` with a raw prompt string.
    #[default]
    Completions,
    /// `/v1/chat/completions` with messages.
    Chat,
}

/// How to reach one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAiConfig {
    /// `http://host:port` or `http://host:port/v1` (both work).
    pub base_url: String,
    /// The model name the server knows (`--served-model-name` in vLLM).
    pub model: String,
    /// Sent as `Authorization: Bearer …`; kept server-side.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Seconds one HTTP request may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Attempts for 429 / 5xx / dropped connections.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Most alternatives per token the server returns (vLLM's default cap is 20).
    #[serde(default = "default_top_logprobs")]
    pub max_top_logprobs: u32,
    /// First retry delay in milliseconds; doubles each attempt.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

fn default_timeout() -> u64 {
    600
}
fn default_attempts() -> u32 {
    4
}
fn default_top_logprobs() -> u32 {
    20
}
fn default_backoff() -> u64 {
    500
}

impl OpenAiConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout_secs: default_timeout(),
            max_attempts: default_attempts(),
            max_top_logprobs: default_top_logprobs(),
            backoff_ms: default_backoff(),
        }
    }

    /// The `/v1` root: trailing slashes dropped, `/v1` added when missing.
    pub fn api_root(&self) -> String {
        let trimmed = self.base_url.trim().trim_end_matches('/');
        if trimmed.ends_with("/v1") {
            trimmed.to_owned()
        } else {
            format!("{trimmed}/v1")
        }
    }

    /// Checks the settings and the address (against the process's engine address policy)
    /// before anything is sent.
    pub fn validate(&self) -> Result<(), EngineError> {
        self.validate_with(&netguard::process_policy())
    }

    /// [`OpenAiConfig::validate`] under `policy`.
    pub fn validate_with(&self, policy: &EnginePolicy) -> Result<(), EngineError> {
        policy
            .check_base_url(&self.base_url)
            .map_err(EngineError::Invalid)?;
        if self.model.trim().is_empty() {
            return Err(EngineError::Invalid("model must not be empty".into()));
        }
        if self.max_attempts == 0 {
            return Err(EngineError::Invalid(
                "max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// An OpenAI-compatible server as an [`Engine`].
pub struct OpenAiEngine {
    config: OpenAiConfig,
    mode: ApiMode,
    agent: ureq::Agent,
}

impl OpenAiEngine {
    /// An engine under the process's engine address policy (`--engine-allow`).
    pub fn new(config: OpenAiConfig, mode: ApiMode) -> Result<Self, EngineError> {
        OpenAiEngine::with_policy(config, mode, netguard::process_policy())
    }

    /// An engine under `policy`: checked now, and on every connection it makes.
    pub fn with_policy(
        config: OpenAiConfig,
        mode: ApiMode,
        policy: Arc<EnginePolicy>,
    ) -> Result<Self, EngineError> {
        config.validate_with(&policy)?;
        let agent = netguard::engine_agent(policy, Duration::from_secs(config.timeout_secs.max(1)));
        Ok(OpenAiEngine {
            config,
            mode,
            agent,
        })
    }

    /// `GET /v1/models`: the names the server serves (see [`model_ids`] for the limits).
    pub fn served_models(&self) -> Result<Vec<String>, EngineError> {
        let url = self.models_url();
        let body = self.call(&url, None)?;
        let list: Value = parse_json(&url, &body)?;
        Ok(model_ids(&list))
    }

    fn models_url(&self) -> String {
        format!("{}/models", self.config.api_root())
    }

    /// One HTTP exchange with retries; returns the body of a 2xx answer.
    fn call(&self, url: &str, body: Option<&Value>) -> Result<String, EngineError> {
        let mut last: Option<u16> = None;
        let mut delay = Duration::from_millis(self.config.backoff_ms);
        for attempt in 1..=self.config.max_attempts {
            let sent = match body {
                Some(b) => {
                    let mut request = self
                        .agent
                        .post(url)
                        .header("Content-Type", "application/json");
                    if let Some(key) = &self.config.api_key {
                        request = request.header("Authorization", &format!("Bearer {key}"));
                    }
                    request.send(b.to_string().as_bytes())
                }
                None => {
                    let mut request = self.agent.get(url);
                    if let Some(key) = &self.config.api_key {
                        request = request.header("Authorization", &format!("Bearer {key}"));
                    }
                    request.call()
                }
            };
            let mut retry_after = None;
            match sent {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    if (200..300).contains(&status) {
                        return response
                            .body_mut()
                            .with_config()
                            .limit(512 << 20)
                            .read_to_string()
                            .map_err(|e| EngineError::BadResponse {
                                url: url.to_owned(),
                                message: format!("cannot read the body: {e}"),
                            });
                    }
                    // The body of an error answer is not read: it is whatever the address
                    // answers, and it must not reach an error message.
                    if status == 429 || status >= 500 {
                        last = Some(status);
                    } else {
                        return Err(self.rejection(url, status));
                    }
                }
                Err(ureq::Error::Timeout(_)) => {
                    return Err(EngineError::Timeout {
                        url: url.to_owned(),
                        seconds: self.config.timeout_secs,
                    })
                }
                Err(e) => {
                    if let Some(refused) = netguard::refusal_of(&e) {
                        // No connection was attempted; trying again cannot help.
                        return Err(EngineError::Refused {
                            url: url.to_owned(),
                            message: refused.to_string(),
                        });
                    }
                    // Connection refused / reset: the server may be restarting; retry, then
                    // report it as unreachable.
                    if attempt == self.config.max_attempts {
                        return Err(EngineError::Unreachable {
                            url: url.to_owned(),
                            message: e.to_string(),
                        });
                    }
                }
            }
            if attempt < self.config.max_attempts {
                let wait = retry_after
                    .map(|s| Duration::from_secs(s.min(60)))
                    .unwrap_or(delay);
                std::thread::sleep(wait);
                delay = delay.saturating_mul(2).min(Duration::from_secs(30));
            }
        }
        let status = last.unwrap_or(0);
        Err(EngineError::Unavailable {
            url: url.to_owned(),
            status,
            attempts: self.config.max_attempts,
            message: answer_meaning(status),
        })
    }

    /// A 3xx or 4xx answer as an error. For a 400 or 404 from a generation endpoint, the
    /// served model ids say whether the model name is the mistake.
    fn rejection(&self, url: &str, status: u16) -> EngineError {
        let mut message = answer_meaning(status);
        let models_url = self.models_url();
        if matches!(status, 400 | 404) && url != models_url {
            if let Ok(models) = self.served_models() {
                if !models.is_empty() && !models.iter().any(|m| m == &self.config.model) {
                    message = format!(
                        "{message} (model {:?} is not served there; it serves: {})",
                        self.config.model,
                        models.join(", ")
                    );
                }
            }
        }
        EngineError::Rejected {
            url: url.to_owned(),
            status,
            message,
        }
    }

    fn request_body(
        &self,
        request: &GenerationRequest,
        n: u32,
        seed: Option<u64>,
    ) -> (String, Value) {
        let p = &request.params;
        let mut body = json!({
            "model": self.config.model,
            "n": n,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
        });
        if let Some(seed) = seed {
            body["seed"] = json!(seed);
        }
        if !p.stop.is_empty() {
            body["stop"] = json!(p.stop);
        }
        let root = self.config.api_root();
        match (self.mode, &request.prompt) {
            (ApiMode::Completions, prompt) => {
                let mut text = match prompt {
                    Prompt::Text(t) => t.clone(),
                    // A chat prompt sent to the completions endpoint: plain role-prefixed text.
                    Prompt::Chat(messages) => messages
                        .iter()
                        .map(|m| format!("{}: {}\n", m.role, m.content))
                        .collect::<String>(),
                };
                if let Some(c) = &request.continuation {
                    text.push_str(c);
                }
                body["prompt"] = json!(text);
                if let Some(k) = p.top_logprobs {
                    body["logprobs"] = json!(k);
                }
                (format!("{root}/completions"), body)
            }
            (ApiMode::Chat, prompt) => {
                let mut messages: Vec<ChatMessage> = match prompt {
                    Prompt::Chat(m) => m.clone(),
                    Prompt::Text(t) => vec![ChatMessage {
                        role: "user".into(),
                        content: t.clone(),
                    }],
                };
                if let Some(c) = &request.continuation {
                    // vLLM / SGLang extension: continue the assistant's last message.
                    messages.push(ChatMessage {
                        role: "assistant".into(),
                        content: c.clone(),
                    });
                    body["continue_final_message"] = json!(true);
                    body["add_generation_prompt"] = json!(false);
                }
                body["messages"] = json!(messages);
                if let Some(k) = p.top_logprobs {
                    body["logprobs"] = json!(true);
                    body["top_logprobs"] = json!(k);
                }
                (format!("{root}/chat/completions"), body)
            }
        }
    }
}

impl Engine for OpenAiEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            kind: "openai".into(),
            model: self.config.model.clone(),
            max_top_logprobs: self.config.max_top_logprobs,
            full_distribution: false,
        }
    }

    fn generate(&self, request: &GenerationRequest) -> Result<Generation, EngineError> {
        request.params.validate(self.config.max_top_logprobs)?;
        let mut out = Generation {
            completions: Vec::with_capacity(request.n as usize),
            prompt_tokens: 0,
            completion_tokens: 0,
        };
        let mut done = 0u32;
        while done < request.n {
            let n = (request.n - done).min(MAX_N_PER_REQUEST);
            let seed = request.params.seed.map(|s| s.wrapping_add(done as u64));
            let (url, body) = self.request_body(request, n, seed);
            let text = self.call(&url, Some(&body))?;
            let parsed = parse_generation(&url, &text, self.mode, n)?;
            out.prompt_tokens += parsed.prompt_tokens;
            out.completion_tokens += parsed.completion_tokens;
            out.completions.extend(parsed.completions);
            done += n;
        }
        Ok(out)
    }
}

fn parse_json(url: &str, text: &str) -> Result<Value, EngineError> {
    // serde_json's syntax errors name a position, never the text.
    serde_json::from_str(text).map_err(|e| EngineError::BadResponse {
        url: url.to_owned(),
        message: format!(
            "not JSON (invalid at line {}, column {})",
            e.line(),
            e.column()
        ),
    })
}

/// Most model ids [`OpenAiEngine::served_models`] returns; ids longer than
/// [`MAX_MODEL_ID_CHARS`] or with control characters are left out. The list reaches error
/// messages: it is the protocol's field, but its size is the caller's, not the server's.
pub const MAX_MODEL_IDS: usize = 64;
pub const MAX_MODEL_ID_CHARS: usize = 128;

/// The `data[].id` strings of a `/v1/models` answer, within the limits above.
pub fn model_ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m["id"].as_str())
                .filter(|id| {
                    !id.is_empty()
                        && id.chars().count() <= MAX_MODEL_ID_CHARS
                        && !id.chars().any(char::is_control)
                })
                .take(MAX_MODEL_IDS)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What an HTTP status from an OpenAI-compatible server usually means: the reason phrase and a
/// fixed hint, never anything the server wrote.
pub fn answer_meaning(status: u16) -> String {
    let reason = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("no standard meaning");
    let hint = match status {
        0 => return "no answer".into(),
        300..=399 => {
            "a redirect, which engines do not follow: give the address the server answers at as \
             the base URL"
        }
        400 | 422 => {
            "the server refused a setting of the request (e.g. top_logprobs above its \
             --max-logprobs, max_tokens beyond the model's context, a wrong model name); the \
             server's own log says which"
        }
        401 | 403 => "the server refused the credentials: check the engine's API key",
        404 => "no such endpoint or model there: check the base URL and the model name",
        413 => "the request is larger than the server accepts",
        429 => "the server has too many requests",
        500..=599 => "the server failed; its own log says why",
        _ => "the server refused the request",
    };
    format!("{reason}: {hint}")
}

/// Reads a completions or chat completions answer into completions in `index` order.
pub fn parse_generation(
    url: &str,
    text: &str,
    mode: ApiMode,
    expected: u32,
) -> Result<Generation, EngineError> {
    let bad = |message: String| EngineError::BadResponse {
        url: url.to_owned(),
        message,
    };
    let v = parse_json(url, text)?;
    let choices = v["choices"]
        .as_array()
        .ok_or_else(|| bad("no `choices` array".into()))?;
    if choices.len() != expected as usize {
        return Err(bad(format!(
            "asked for {expected} samples, got {} choices",
            choices.len()
        )));
    }
    let mut indexed = Vec::with_capacity(choices.len());
    for (i, choice) in choices.iter().enumerate() {
        let index = choice["index"].as_u64().unwrap_or(i as u64);
        let text = match mode {
            ApiMode::Completions => choice["text"].as_str(),
            ApiMode::Chat => choice["message"]["content"].as_str(),
        }
        .ok_or_else(|| {
            bad(format!(
                "choice {i} has no {}",
                match mode {
                    ApiMode::Completions => "`text`",
                    ApiMode::Chat => "`message.content`",
                }
            ))
        })?
        .to_owned();
        let finish_reason = choice["finish_reason"]
            .as_str()
            .unwrap_or("stop")
            .to_owned();
        let tokens = match mode {
            ApiMode::Completions => completion_tokens(&choice["logprobs"]),
            ApiMode::Chat => chat_tokens(&choice["logprobs"]),
        }
        .map_err(|m| bad(format!("choice {i}: {m}")))?;
        indexed.push((
            index,
            Completion {
                text,
                finish_reason,
                tokens,
            },
        ));
    }
    indexed.sort_by_key(|(i, _)| *i);
    Ok(Generation {
        completions: indexed.into_iter().map(|(_, c)| c).collect(),
        prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    })
}

fn step(token: String, logprob: f64, mut top: Vec<TokenAlternative>) -> TokenStep {
    top.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
    TokenStep {
        token,
        id: None,
        logprob,
        top,
        entropy: None,
        rbf: None,
        hidden_norm: None,
    }
}

/// vLLM's completions logprobs: `{tokens, token_logprobs, top_logprobs: [{token: lp}]}`.
fn completion_tokens(lp: &Value) -> Result<Option<Vec<TokenStep>>, String> {
    if lp.is_null() {
        return Ok(None);
    }
    let tokens = lp["tokens"].as_array().ok_or("logprobs without `tokens`")?;
    let logprobs = lp["token_logprobs"]
        .as_array()
        .ok_or("logprobs without `token_logprobs`")?;
    if tokens.len() != logprobs.len() {
        return Err(format!(
            "{} tokens but {} token_logprobs",
            tokens.len(),
            logprobs.len()
        ));
    }
    let tops = lp["top_logprobs"].as_array();
    let mut steps = Vec::with_capacity(tokens.len());
    for (i, (t, l)) in tokens.iter().zip(logprobs).enumerate() {
        let top = tops
            .and_then(|rows| rows.get(i))
            .and_then(Value::as_object)
            .map(|row| {
                row.iter()
                    .filter_map(|(tok, lp)| {
                        lp.as_f64().map(|logprob| TokenAlternative {
                            token: tok.clone(),
                            logprob,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        steps.push(step(
            t.as_str().unwrap_or_default().to_owned(),
            l.as_f64().unwrap_or(f64::NAN),
            top,
        ));
    }
    Ok(Some(steps))
}

/// Chat logprobs: `{content: [{token, logprob, top_logprobs: [{token, logprob}]}]}`.
fn chat_tokens(lp: &Value) -> Result<Option<Vec<TokenStep>>, String> {
    if lp.is_null() {
        return Ok(None);
    }
    let content = lp["content"]
        .as_array()
        .ok_or("logprobs without `content`")?;
    Ok(Some(
        content
            .iter()
            .map(|entry| {
                let top = entry["top_logprobs"]
                    .as_array()
                    .map(|alts| {
                        alts.iter()
                            .filter_map(|a| {
                                Some(TokenAlternative {
                                    token: a["token"].as_str()?.to_owned(),
                                    logprob: a["logprob"].as_f64()?,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                step(
                    entry["token"].as_str().unwrap_or_default().to_owned(),
                    entry["logprob"].as_f64().unwrap_or(f64::NAN),
                    top,
                )
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_root_accepts_both_spellings() {
        assert_eq!(
            OpenAiConfig::new("http://h:8000/", "m").api_root(),
            "http://h:8000/v1"
        );
        assert_eq!(
            OpenAiConfig::new("http://h:8000/v1/", "m").api_root(),
            "http://h:8000/v1"
        );
        assert!(OpenAiConfig::new("h:8000", "m").validate().is_err());
        assert!(OpenAiConfig::new("http://h", " ").validate().is_err());
    }

    #[test]
    fn error_answers_are_described_by_status_only() {
        assert_eq!(
            answer_meaning(404),
            "Not Found: no such endpoint or model there: check the base URL and the model name"
        );
        assert!(answer_meaning(302).starts_with("Found: a redirect"));
        assert!(answer_meaning(401).contains("API key"));
        assert!(answer_meaning(503).starts_with("Service Unavailable: "));
        assert!(answer_meaning(599).starts_with("no standard meaning: "));
        assert_eq!(answer_meaning(0), "no answer");
    }

    #[test]
    fn model_ids_are_read_from_the_protocol_shape_within_limits() {
        let list = json!({"object": "list", "data": [
            {"id": "Qwen/Qwen2.5-7B"},
            {"id": "x".repeat(MAX_MODEL_ID_CHARS + 1)},
            {"id": "line\nbreak"},
            {"id": 7},
            {"name": "no id"},
            {"id": "lora-1"},
        ]});
        assert_eq!(model_ids(&list), ["Qwen/Qwen2.5-7B", "lora-1"]);
        let many =
            json!({"data": (0..200).map(|i| json!({"id": format!("m{i}")})).collect::<Vec<_>>()});
        assert_eq!(model_ids(&many).len(), MAX_MODEL_IDS);
        assert!(model_ids(&json!({"data": "SECRET"})).is_empty());
        assert!(model_ids(&json!(["SECRET"])).is_empty());
    }

    #[test]
    fn reads_vllm_completions_logprobs_in_index_order() {
        let text = r#"{"choices":[
          {"index":1,"text":" 5","finish_reason":"length","logprobs":{"tokens":[" 5"],"token_logprobs":[-0.2],"top_logprobs":[{" 4":-2.0," 5":-0.2}],"text_offset":[0]}},
          {"index":0,"text":" 4","finish_reason":"stop","logprobs":{"tokens":[" 4"],"token_logprobs":[-2.0],"top_logprobs":[{" 5":-0.2," 4":-2.0}],"text_offset":[0]}}],
          "usage":{"prompt_tokens":7,"completion_tokens":2}}"#;
        let g = parse_generation("u", text, ApiMode::Completions, 2).unwrap();
        assert_eq!(g.completions[0].text, " 4");
        assert_eq!(g.completions[1].finish_reason, "length");
        let steps = g.completions[0].tokens.as_ref().unwrap();
        assert_eq!(steps[0].logprob, -2.0);
        assert_eq!(steps[0].top[0].token, " 5", "most probable first");
        assert_eq!(g.prompt_tokens, 7);
    }

    #[test]
    fn reads_chat_logprobs_and_rejects_wrong_shapes() {
        let text = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"7"},"finish_reason":"stop",
          "logprobs":{"content":[{"token":"7","logprob":-0.1,"bytes":[55],"top_logprobs":[{"token":"7","logprob":-0.1},{"token":"8","logprob":-2.5}]}]}}]}"#;
        let g = parse_generation("u", text, ApiMode::Chat, 1).unwrap();
        let steps = g.completions[0].tokens.as_ref().unwrap();
        assert_eq!(steps[0].top.len(), 2);
        let err = parse_generation("u", text, ApiMode::Chat, 2).unwrap_err();
        assert!(
            err.to_string().contains("asked for 2 samples, got 1"),
            "{err}"
        );
        let err = parse_generation("u", "<html>", ApiMode::Chat, 1).unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
        let err = parse_generation("u", r#"{"choices":[{"index":0}]}"#, ApiMode::Completions, 1)
            .unwrap_err();
        assert!(err.to_string().contains("no `text`"), "{err}");
    }

    #[test]
    fn unreachable_server_is_reported_with_its_address() {
        // Port 9 (discard) on loopback, allowed as with --engine-allow 127.0.0.1: nothing
        // listens there.
        let mut config = OpenAiConfig::new("http://127.0.0.1:9", "m");
        config.max_attempts = 1;
        let policy = Arc::new(EnginePolicy::from_entries(["127.0.0.1"]).unwrap());
        let engine = OpenAiEngine::with_policy(config, ApiMode::Completions, policy).unwrap();
        let err = engine
            .generate(&GenerationRequest {
                prompt: Prompt::Text("1+1=".into()),
                continuation: None,
                n: 1,
                params: Default::default(),
            })
            .unwrap_err();
        assert!(matches!(err, EngineError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
        assert!(err.is_transient());
    }

    #[test]
    fn loopback_is_refused_by_default_before_anything_is_sent() {
        let mut config = OpenAiConfig::new("http://127.0.0.1:9", "m");
        config.max_attempts = 1;
        let policy = Arc::new(EnginePolicy::default());
        let err = OpenAiEngine::with_policy(config.clone(), ApiMode::Completions, policy)
            .err()
            .expect("refused");
        assert!(matches!(err, EngineError::Invalid(_)), "{err:?}");
        assert!(
            err.to_string().contains("--engine-allow 127.0.0.1"),
            "{err}"
        );
        assert!(!err.is_transient());
    }
}
