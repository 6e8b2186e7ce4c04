//! The error every endpoint answers with: OpenAI's (and vLLM's) `{"error": {...}}` body, and
//! which HTTP status each [`EngineError`] becomes.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::engine::EngineError;

/// An error in OpenAI's (and vLLM's) shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: None,
        }
    }

    pub(super) fn field(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param.to_string()),
        }
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::engine::serve::router;
    use crate::engine::serve::tests::{assert_error, call, FakeEngine};
    use crate::engine::{Engine, EngineInfo, Generation, GenerationRequest};

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
}
