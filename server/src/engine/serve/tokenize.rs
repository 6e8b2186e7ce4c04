//! vLLM's tokenizer endpoints (`POST /tokenize`, `POST /detokenize`, `GET /tokenizer_info`),
//! for engines with a tokenizer of their own: what lm-eval's `tokenizer_backend=remote` uses.

use axum::{
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use super::request::{check_model, parse_object, Fields};
use super::{ApiError, Engines};
use crate::engine::{Engine, TextTokenizer};

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
pub(super) async fn tokenize(State(engine): Engines, body: Bytes) -> Result<Response, ApiError> {
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
pub(super) async fn detokenize(State(engine): Engines, body: Bytes) -> Result<Response, ApiError> {
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
pub(super) async fn tokenizer_info(State(engine): Engines) -> Result<Response, ApiError> {
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
