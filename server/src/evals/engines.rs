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
