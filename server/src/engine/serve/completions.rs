//! `POST /v1/completions`: prompts (text or token ids, one or several) to vLLM-shaped choices,
//! with `echo` (the prompt scored by the engine), vLLM's logprobs arrays and streaming.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
};
use serde_json::{json, Map, Value};

use super::request::{check_model, parse_object, Delivery, Fields};
use super::{
    blocking, finite, usage_json, visible_steps, with_summary, Answer, ApiError, Engines,
    RequestSummary, DEFAULT_COMPLETION_MAX_TOKENS, MAX_N,
};
use crate::engine::{
    Completion, Engine, EngineError, GenerationRequest, Prompt, SamplingParams, ScoredToken,
    TokenAlternative,
};

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

pub(super) async fn completions(State(engine): Engines, body: Bytes) -> Response {
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
    let answer = Answer::new("cmpl", model);
    let usage = usage_json(prompt_tokens, completion_tokens);
    match delivery {
        Delivery::Json => Ok(answer.json("text_completion", choices, usage)),
        Delivery::Stream { include_usage } => {
            // One chunk per choice: its whole text, logprobs and finish reason.
            let chunks = choices.into_iter().map(|c| vec![c]).collect();
            let usage = include_usage.then_some(usage);
            Ok(answer.stream("text_completion", chunks, usage))
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::engine::serve::tests::{call, call_engine, raw, sse_chunks, FakeEngine, PromptEcho};

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
}
