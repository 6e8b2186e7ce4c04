//! The importers of each format (one [`RolloutImporter`] per format; docs/formats/*.md).

mod common;
mod lm_eval;
mod native;
mod openai;
mod qwen_math;
mod verl;

use super::RolloutImporter;

/// Every importer in detection order: formats with distinctive keys first; native last among
/// the JSON Lines formats because its keys (`model`, `problem_id`) are the most generic.
pub static ALL: &[&dyn RolloutImporter] = &[
    &lm_eval::LmEvalImporter,
    &qwen_math::QwenMathImporter,
    &verl::VerlImporter,
    &openai::OpenaiImporter,
    &native::NativeImporter,
];
