//! One module per page.

pub mod datasets;
pub mod experiment;
pub mod experiments;
pub mod models;
pub mod not_found;
pub mod problem;
pub mod rollout;
pub mod runs;
pub mod tokens;
pub mod upload;
