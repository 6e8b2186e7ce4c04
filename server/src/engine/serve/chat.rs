//! `POST /v1/chat/completions`: chat messages to OpenAI-shaped choices, with OpenAI's logprobs
//! (`content[]` with `bytes`), vLLM's `continue_final_message` / `add_generation_prompt`, and
//! streaming (a role chunk, then the content, per choice).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::request::{check_model, parse_object, Delivery, Fields};
use super::{
    finite, run, usage, visible_steps, with_summary, Answer, ApiError, Engines, RequestSummary,
    DEFAULT_CHAT_MAX_TOKENS,
};
use crate::engine::{ChatMessage, Completion, Engine, GenerationRequest, Prompt, TokenStep};

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

pub(super) async fn chat_completions(State(engine): Engines, body: Bytes) -> Response {
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
    let answer = Answer::new("chatcmpl", model);
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
            Ok(answer.json("chat.completion", choices, usage(&generation)))
        }
        Delivery::Stream { include_usage } => {
            // Per choice, as OpenAI and vLLM: a first chunk with the role, then the content
            // (here all of it at once, with its logprobs and the finish reason).
            let mut chunks = Vec::with_capacity(2 * generation.completions.len());
            for (index, c) in generation.completions.iter().enumerate() {
                chunks.push(vec![json!({
                    "index": index,
                    "delta": { "role": "assistant", "content": "" },
                    "logprobs": Value::Null,
                    "finish_reason": Value::Null,
                })]);
                chunks.push(vec![json!({
                    "index": index,
                    "delta": { "content": c.text },
                    "logprobs": logprobs_of(c),
                    "finish_reason": c.finish_reason,
                    "stop_reason": Value::Null,
                })]);
            }
            let usage = include_usage.then(|| usage(&generation));
            Ok(answer.stream("chat.completion.chunk", chunks, usage))
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
    use axum::http::StatusCode;

    use super::*;
    use crate::engine::serve::tests::{call, raw, sse_chunks, FakeEngine};

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
}
