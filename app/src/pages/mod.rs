//! One module per page.

pub mod access;
pub mod compare;
pub mod datasets;
pub mod docs;
pub mod dynamics;
pub mod evals;
pub mod experiment;
pub mod experiments;
pub mod models;
pub mod not_found;
pub mod passk;
pub mod problem;
pub mod problems;
pub mod review;
pub mod rft;
pub mod rollout;
pub mod runs;
pub mod token_stats;
pub mod tokens;
pub mod unsolvable;
pub mod upload;
