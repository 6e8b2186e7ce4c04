//! `caplens engine serve`'s API with the real embedded model (SmolLM2-135M), what the real clients
//! rely on (tests/real-clients/run.sh drives it with them): prompt arrays, streaming, `echo` with
//! `logprobs` (scoring the prompt), vLLM's `/tokenize`, and no end-of-sequence token in any text
//! or logprobs.
//!
//! The model file comes from `scripts/fetch-model.sh` (the test script runs it); without it these
//! tests fail and say so.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use caplens_server::engine::embedded::{EmbeddedEngine, EmbeddedOptions};
use caplens_server::engine::{serve, Engine};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const EOS: &str = "<|im_end|>";

/// One engine per test binary (loading dequantises the weights: about a second).
fn engine() -> Arc<dyn Engine> {
    static ENGINE: OnceLock<Arc<dyn Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let path = EmbeddedEngine::default_model_path();
            assert!(
                path.is_file(),
                "the embedded model is missing at {}: run scripts/fetch-model.sh",
                path.display()
            );
            let options = EmbeddedOptions {
                model_name: "smol".into(),
                max_batch: 4,
                ..EmbeddedOptions::default()
            };
            Arc::new(EmbeddedEngine::load(&path, options).expect("load the model"))
        })
        .clone()
}

async fn post(path: &str, body: Value) -> (StatusCode, String) {
    let response = serve::router(engine())
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn post_json(path: &str, body: Value) -> Value {
    let (status, text) = post(path, body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// `token_logprobs[i]` for every token after the first (which has none).
fn scores(logprobs: &Value) -> Vec<f64> {
    logprobs["token_logprobs"].as_array().unwrap()[1..]
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

const TEXT: &str = "The capital of France is Paris. The capital of Italy is Rome.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_with_logprobs_scores_the_prompt() {
    let body = post_json(
        "/v1/completions",
        json!({"model": "smol", "prompt": TEXT, "max_tokens": 0, "echo": true, "logprobs": 2}),
    )
    .await;
    let choice = &body["choices"][0];
    assert_eq!(choice["text"], TEXT);
    assert_eq!(choice["finish_reason"], "length");
    let lp = &choice["logprobs"];
    let tokens = strings(&lp["tokens"]);
    assert_eq!(tokens.concat(), TEXT, "the tokens join to the text");
    assert!(tokens.len() > 10);
    assert_eq!(body["usage"]["prompt_tokens"], tokens.len());
    assert_eq!(body["usage"]["completion_tokens"], 0);
    // The first token has no context: null, as in vLLM.
    assert_eq!(lp["token_logprobs"][0], Value::Null);
    assert_eq!(lp["top_logprobs"][0], Value::Null);
    let offsets: Vec<usize> = tokens
        .iter()
        .scan(0, |at, t| {
            let here = *at;
            *at += t.chars().count();
            Some(here)
        })
        .collect();
    assert_eq!(lp["text_offset"], json!(offsets));
    for (i, x) in scores(lp).iter().enumerate() {
        assert!(*x <= 0.0 && x.is_finite(), "{x}");
        // The token itself and the top 2 alternatives, the best at least as likely.
        let top = lp["top_logprobs"][i + 1].as_object().unwrap();
        assert_eq!(top[&tokens[i + 1]].as_f64().unwrap(), *x);
        assert!(top.len() >= 2 && top.len() <= 3, "{top:?}");
        assert!(top.values().any(|v| v.as_f64().unwrap() >= *x));
    }
    // "Rome" after "The capital of Italy is" is likelier than most of the text's tokens.
    let s = scores(lp);
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    assert!(s[s.len() - 2] > mean, "{s:?}");

    // Scoring is deterministic, and the same tokens scored as token ids give the same numbers;
    // lm-eval's request (max_tokens 1) adds one generated token after the same prompt scores.
    let again = post_json(
        "/v1/completions",
        json!({"prompt": TEXT, "max_tokens": 0, "echo": true, "logprobs": 0}),
    )
    .await;
    assert_eq!(scores(&again["choices"][0]["logprobs"]), s);
    let ids = post_json("/tokenize", json!({"prompt": TEXT})).await;
    assert_eq!(ids["count"], tokens.len());
    let by_ids = post_json(
        "/v1/completions",
        json!({"prompt": [ids["tokens"]], "max_tokens": 1, "temperature": 0, "echo": true, "logprobs": 1}),
    )
    .await;
    let c = &by_ids["choices"][0];
    let lp1 = &c["logprobs"];
    let tokens1 = strings(&lp1["tokens"]);
    assert_eq!(tokens1[..tokens.len()], tokens[..]);
    assert_eq!(scores(lp1)[..s.len()], s[..]);
    assert!(tokens1.len() <= tokens.len() + 1);
    let text1 = c["text"].as_str().unwrap();
    assert!(text1.starts_with(TEXT) && !text1.contains(EOS), "{text1}");
    assert_eq!(tokens1.concat(), text1);
    let detok = post_json("/detokenize", json!({"tokens": ids["tokens"]})).await;
    assert_eq!(detok["prompt"], TEXT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sum_of_the_scores_is_the_log_likelihood_of_the_continuation() {
    // log P(context + continuation) - log P(context) = the continuation's log-likelihood, when
    // the context's tokens are a prefix of the whole's.
    let context = "Question: What is the capital of France?\nAnswer:";
    let whole = format!("{context} Paris");
    let score = |text: String| async move {
        let body = post_json(
            "/v1/completions",
            json!({"prompt": text, "max_tokens": 0, "echo": true, "logprobs": 1}),
        )
        .await;
        let lp = body["choices"][0]["logprobs"].clone();
        (strings(&lp["tokens"]), scores(&lp))
    };
    let (ctx_tokens, ctx_scores) = score(context.to_string()).await;
    let (all_tokens, all_scores) = score(whole.clone()).await;
    assert_eq!(all_tokens[..ctx_tokens.len()], ctx_tokens[..]);
    assert!(all_tokens.len() > ctx_tokens.len());
    for (a, b) in ctx_scores.iter().zip(&all_scores) {
        assert!(
            (a - b).abs() < 1e-4,
            "the same context scores the same: {a} vs {b}"
        );
    }
    let continuation: f64 = all_scores[ctx_scores.len()..].iter().sum();
    let total: f64 = all_scores.iter().sum();
    let ctx_total: f64 = ctx_scores.iter().sum();
    assert!((total - ctx_total - continuation).abs() < 1e-3);
    assert!(continuation < 0.0);
    // " Paris" beats " Berlin" after that question.
    let (_, berlin) = score(format!("{context} Berlin")).await;
    let berlin: f64 = berlin[ctx_scores.len()..].iter().sum();
    assert!(
        continuation > berlin,
        "Paris {continuation} vs Berlin {berlin}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_arrays_answer_each_prompt_as_if_asked_alone() {
    let prompts = [
        "Question: What is 2 + 3?\nAnswer:",
        "Name a colour:",
        "1, 2, 3,",
    ];
    let batch = post_json(
        "/v1/completions",
        json!({"prompt": prompts, "n": 2, "max_tokens": 8, "temperature": 0.7, "seed": 5, "logprobs": 1}),
    )
    .await;
    let choices = batch["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 6);
    for (i, prompt) in prompts.iter().enumerate() {
        let alone = post_json(
            "/v1/completions",
            json!({"prompt": prompt, "n": 2, "max_tokens": 8, "temperature": 0.7, "seed": 5, "logprobs": 1}),
        )
        .await;
        for j in 0..2 {
            let c = &choices[i * 2 + j];
            assert_eq!(c["index"], i * 2 + j);
            assert_eq!(
                c["text"], alone["choices"][j]["text"],
                "prompt {i} sample {j}"
            );
            let text = c["text"].as_str().unwrap();
            assert!(!text.contains(EOS));
            assert_eq!(strings(&c["logprobs"]["tokens"]).concat(), text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_end_of_sequence_token_in_texts_or_logprobs() {
    // A chat answer ends with <|im_end|>: the text and the logprobs stop before it.
    let body = post_json(
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 48,
               "temperature": 0, "logprobs": true, "top_logprobs": 2, "n": 2}),
    )
    .await;
    let mut stopped = 0;
    for c in body["choices"].as_array().unwrap() {
        let text = c["message"]["content"].as_str().unwrap();
        assert!(!text.contains(EOS), "{text}");
        let tokens: Vec<&str> = c["logprobs"]["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["token"].as_str().unwrap())
            .collect();
        assert_eq!(tokens.concat(), text);
        if c["finish_reason"] == "stop" {
            stopped += 1;
        }
    }
    assert_eq!(stopped, 2, "SmolLM2 ends a short greeting itself: {body}");
    // The end-of-sequence token was generated (it counts in usage) but is not listed.
    let listed = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap()
        .len() as u64;
    assert_eq!(
        body["usage"]["completion_tokens"].as_u64().unwrap(),
        2 * (listed + 1)
    );

    // The streamed answer is the same text, then [DONE].
    let (status, text) = post(
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 48,
               "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.ends_with("data: [DONE]\n\n"));
    let mut streamed = String::new();
    let mut usage = Value::Null;
    for event in text
        .split("\n\n")
        .filter(|e| !e.is_empty() && *e != "data: [DONE]")
    {
        let chunk: Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
        for c in chunk["choices"].as_array().unwrap() {
            streamed.push_str(c["delta"]["content"].as_str().unwrap_or(""));
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
    }
    assert_eq!(
        streamed,
        body["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(usage["completion_tokens"].as_u64().unwrap(), listed + 1);
}
