//! The OpenAI-compatible engine: vLLM, SGLang, TGI, `caplens engine serve`, or any server that
//! speaks `/v1/completions` and `/v1/chat/completions`.
//!
//! Requests ask for `n` samples at once (split into chunks of at most [`MAX_N_PER_REQUEST`]),
//! with logprobs as vLLM returns them. 429 and 5xx answers and dropped connections are retried
//! with exponential backoff (honouring `Retry-After`); any other 4xx is a rejection, reported
//! with the server's own message (and, for an unknown model, the models the server does serve).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

    /// Checks the address before anything is sent.
    pub fn validate(&self) -> Result<(), EngineError> {
        let url = self.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(EngineError::Invalid(format!(
                "base_url must start with http:// or https://, got {url:?}"
            )));
        }
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
    pub fn new(config: OpenAiConfig, mode: ApiMode) -> Result<Self, EngineError> {
        config.validate()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(config.timeout_secs.max(1))))
            .build()
            .into();
        Ok(OpenAiEngine {
            config,
            mode,
            agent,
        })
    }

    /// `GET /v1/models`: the names the server serves.
    pub fn served_models(&self) -> Result<Vec<String>, EngineError> {
        let url = format!("{}/models", self.config.api_root());
        let body = self.call(&url, None)?;
        let list: Value = parse_json(&url, &body)?;
        Ok(list["data"]
            .as_array()
            .map(|models| {
                models
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// One HTTP exchange with retries; returns the body of a 2xx answer.
    fn call(&self, url: &str, body: Option<&Value>) -> Result<String, EngineError> {
        let mut last: Option<(u16, String)> = None;
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
                    let text = response
                        .body_mut()
                        .with_config()
                        .limit(512 << 20)
                        .read_to_string()
                        .map_err(|e| EngineError::BadResponse {
                            url: url.to_owned(),
                            message: format!("cannot read the body: {e}"),
                        })?;
                    if (200..300).contains(&status) {
                        return Ok(text);
                    }
                    let message = error_message(&text);
                    if status == 429 || status >= 500 {
                        last = Some((status, message));
                    } else {
                        return Err(self.rejection(url, status, message));
                    }
                }
                Err(ureq::Error::Timeout(_)) => {
                    return Err(EngineError::Timeout {
                        url: url.to_owned(),
                        seconds: self.config.timeout_secs,
                    })
                }
                Err(e) => {
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
        let (status, message) = last.unwrap_or((0, "no answer".into()));
        Err(EngineError::Unavailable {
            url: url.to_owned(),
            status,
            attempts: self.config.max_attempts,
            message,
        })
    }

    /// A 4xx answer as an error; an unknown model also lists what the server serves.
    fn rejection(&self, url: &str, status: u16, message: String) -> EngineError {
        let mut message = message;
        if status == 404 || message.to_lowercase().contains("does not exist") {
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
    serde_json::from_str(text).map_err(|e| EngineError::BadResponse {
        url: url.to_owned(),
        message: format!("not JSON ({e}): {}", preview(text)),
    })
}

/// The first 300 characters of an answer, for messages.
fn preview(text: &str) -> String {
    let mut s: String = text.chars().take(300).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// The human message of an error answer: OpenAI `{"error":{"message"}}`, FastAPI `{"detail"}`,
/// `{"message"}`, or the text itself.
pub fn error_message(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let candidates = [
            &v["error"]["message"],
            &v["error"],
            &v["message"],
            &v["detail"],
        ];
        for c in candidates {
            if let Some(s) = c.as_str() {
                return s.to_owned();
            }
            if c.is_array() || (c.is_object() && !c.as_object().is_some_and(|o| o.is_empty())) {
                if !std::ptr::eq(c, &v["error"]) {
                    return preview(&c.to_string());
                }
            }
        }
    }
    if text.trim().is_empty() {
        "(empty answer)".into()
    } else {
        preview(text.trim())
    }
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
        .ok_or_else(|| bad(format!("no `choices` array: {}", preview(text))))?;
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
    fn error_messages_from_common_servers() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","code":404}}"#
            ),
            "The model `x` does not exist."
        );
        assert_eq!(error_message(r#"{"detail":"bad top_p"}"#), "bad top_p");
        assert_eq!(error_message(r#"{"message":"nope"}"#), "nope");
        assert_eq!(error_message("Bad Gateway"), "Bad Gateway");
        assert_eq!(error_message(""), "(empty answer)");
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
        // Port 9 (discard) on loopback: nothing listens there.
        let mut config = OpenAiConfig::new("http://127.0.0.1:9", "m");
        config.max_attempts = 1;
        let engine = OpenAiEngine::new(config, ApiMode::Completions).unwrap();
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
}
