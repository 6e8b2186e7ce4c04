//! Reading a request body: the JSON object, typed access to its fields (`null` = absent), the
//! settings both generation endpoints share (sampling, `stream`, refused features) and the
//! model check. Every malformed field becomes a 400 naming it, never a panic.

use serde_json::{Map, Value};

use super::{ApiError, RequestSummary, MAX_N};
use crate::engine::{Engine, SamplingParams};

/// The request body as a JSON object.
pub(super) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
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
pub(super) struct Fields<'a>(pub(super) &'a Map<String, Value>);

impl<'a> Fields<'a> {
    pub(super) fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub(super) fn f64(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("`{name}` must be a number"))),
        }
    }

    pub(super) fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ApiError::field(name, format!("`{name}` must be a non-negative integer"))
            }),
        }
    }

    pub(super) fn u32(&self, name: &str) -> Result<Option<u32>, ApiError> {
        match self.u64(name)? {
            None => Ok(None),
            Some(x) => u32::try_from(x)
                .map(Some)
                .map_err(|_| ApiError::field(name, format!("`{name}` is too large: {x}"))),
        }
    }

    pub(super) fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("`{name}` must be true or false"))),
        }
    }

    pub(super) fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("`{name}` must be a string"))),
        }
    }

    /// `stop`: a string or an array of strings.
    pub(super) fn stop(&self) -> Result<Vec<String>, ApiError> {
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

    /// What both endpoints check first: the model (for the request's log line), the refused
    /// fields, and how the answer is delivered.
    pub(super) fn head(&self, summary: &mut RequestSummary) -> Result<Delivery, ApiError> {
        summary.model = self.string("model").ok().flatten().map(str::to_owned);
        self.reject_unsupported()?;
        let delivery = self.delivery()?;
        summary.stream = delivery != Delivery::Json;
        Ok(delivery)
    }

    /// Settings this server cannot honour are refused, not ignored: an answer to another
    /// question than the one asked would pass unnoticed.
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
    pub(super) fn sampling(
        &self,
        default_max_tokens: u32,
    ) -> Result<(u32, SamplingParams), ApiError> {
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
pub(super) fn check_model(fields: &Fields<'_>, engine: &dyn Engine) -> Result<String, ApiError> {
    let served = engine.info().model;
    match fields.string("model")? {
        Some(m) if m != served => Err(ApiError::not_found(format!(
            "The model `{m}` does not exist."
        ))),
        _ => Ok(served),
    }
}

/// How a request wants its answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Delivery {
    /// One JSON body.
    Json,
    /// Server-Sent Events: `data: {chunk}` lines, then `data: [DONE]`; with `include_usage`, a
    /// last chunk with no choices and the usage.
    Stream { include_usage: bool },
}
