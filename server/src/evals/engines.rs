//! Engines by their database row: the embedded model is loaded once per process and shared;
//! OpenAI-compatible engines are cheap clients built per use.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::engine::embedded::EmbeddedEngine;
use crate::engine::openai::{ApiMode, OpenAiConfig, OpenAiEngine};
use crate::engine::{Engine, EngineError};
use crate::storage::evals::EngineRow;

/// Builds engines for evaluations.
pub struct EngineRegistry {
    model_path: PathBuf,
    embedded: Mutex<Option<Arc<dyn Engine>>>,
}

impl EngineRegistry {
    /// `model_path`: the embedded model's GGUF (default: `EmbeddedEngine::default_model_path`).
    pub fn new(model_path: Option<PathBuf>) -> Self {
        EngineRegistry {
            model_path: model_path.unwrap_or_else(EmbeddedEngine::default_model_path),
            embedded: Mutex::new(None),
        }
    }

    /// A registry whose embedded engine is already built (tests, `caplens eval` with a shared
    /// engine).
    pub fn with_embedded(engine: Arc<dyn Engine>) -> Self {
        EngineRegistry {
            model_path: PathBuf::new(),
            embedded: Mutex::new(Some(engine)),
        }
    }

    pub fn model_path(&self) -> &std::path::Path {
        &self.model_path
    }

    /// The engine a row describes. Loading the embedded model happens here, once; call from a
    /// blocking context.
    pub fn build(&self, row: &EngineRow) -> Result<Arc<dyn Engine>, EngineError> {
        match row.view.kind.as_str() {
            "embedded" => {
                let mut slot = self.embedded.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(engine) = slot.as_ref() {
                    return Ok(engine.clone());
                }
                let engine: Arc<dyn Engine> =
                    Arc::new(EmbeddedEngine::load(&self.model_path, Default::default())?);
                *slot = Some(engine.clone());
                Ok(engine)
            }
            _ => {
                let mut config = OpenAiConfig::new(&row.view.base_url, &row.view.model);
                config.api_key = row.api_key.clone().filter(|k| !k.is_empty());
                config.max_top_logprobs = row.view.max_top_logprobs;
                let mode = if row.view.api_mode == "chat" {
                    ApiMode::Chat
                } else {
                    ApiMode::Completions
                };
                Ok(Arc::new(OpenAiEngine::new(config, mode)?))
            }
        }
    }
}

/// `POST /api/v1/engines`, `caplens engine add`: add or change an OpenAI-compatible endpoint.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineRequest {
    pub name: String,
    pub base_url: String,
    pub model: String,
    #[serde(default)]
    pub api_mode: Option<String>,
    /// Sent as `Authorization: Bearer`. Changing `base_url` without giving a key drops the
    /// stored one: a key never follows its engine to another address.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub max_top_logprobs: Option<u32>,
    /// Ask the server for its models before saving (default true).
    #[serde(default)]
    pub check: Option<bool>,
    /// The project whose evaluations may use it (default: the token's project, else
    /// `default`); `"*"` (site admins) makes it every project's.
    #[serde(default)]
    pub project: Option<String>,
}

/// Why an engine could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveEngineError {
    /// A field is wrong, or the server did not answer as an OpenAI-compatible one.
    #[error("{0}")]
    Invalid(String),
    /// The name is taken (by a shared engine, or the built-in one).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

/// Validates an engine, asks its server for the models it serves unless told not to, and
/// stores it for project `project` (`None`: every project's). The caller has authorised this
/// (`ops::evals::save_engine`). Returns `{"engine": view, "served_models": [...]}`.
pub async fn save_engine(
    store: &crate::storage::Store,
    project: Option<i64>,
    r: EngineRequest,
) -> Result<serde_json::Value, SaveEngineError> {
    let invalid = |m: String| SaveEngineError::Invalid(m);
    let name = r.name.trim().to_owned();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(invalid(
            "name: must be 1 to 100 printable characters".into(),
        ));
    }
    let mode = match r.api_mode.as_deref().unwrap_or("completions") {
        "completions" => ApiMode::Completions,
        "chat" => ApiMode::Chat,
        other => {
            return Err(invalid(format!(
                "api_mode: must be completions or chat, got {other:?}"
            )))
        }
    };
    let mut config = OpenAiConfig::new(r.base_url.trim(), r.model.trim());
    config.api_key = r.api_key.clone().filter(|k| !k.is_empty());
    config.max_top_logprobs = r.max_top_logprobs.unwrap_or(20);
    config.max_attempts = 1;
    config.timeout_secs = 10;
    let engine = OpenAiEngine::new(config.clone(), mode)
        .map_err(|e| invalid(e.to_string().replace("invalid setting: ", "")))?;
    let served = if r.check.unwrap_or(true) {
        let models = tokio::task::spawn_blocking(move || engine.served_models())
            .await
            .map_err(|e| invalid(e.to_string()))?
            .map_err(|e| invalid(format!("checking the server: {e}")))?;
        if !models.is_empty() && !models.iter().any(|m| m == config.model.as_str()) {
            return Err(invalid(format!(
                "model: {:?} is not served at {}; it serves: {}",
                config.model,
                config.api_root(),
                models.join(", ")
            )));
        }
        Some(models)
    } else {
        None
    };
    let mode_name = match mode {
        ApiMode::Completions => "completions",
        ApiMode::Chat => "chat",
    };
    let id = store
        .upsert_engine(&crate::storage::evals::NewEngine {
            project_id: project,
            name: &name,
            base_url: config.base_url.trim_end_matches('/'),
            model: &config.model,
            api_mode: mode_name,
            api_key: config.api_key.as_deref(),
            max_top_logprobs: config.max_top_logprobs,
        })
        .await
        .map_err(|e| match e {
            crate::error::StoreError::Invalid(m) => SaveEngineError::Conflict(m),
            other => other.into(),
        })?;
    let view = store
        .engine_by_id(id)
        .await?
        .map(|e| e.view)
        .ok_or_else(|| invalid("the engine vanished while being saved".into()))?;
    Ok(serde_json::json!({ "engine": view, "served_models": served }))
}
