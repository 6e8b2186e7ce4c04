//! caplens-server: the web server, REST API, storage, demo data and command-line tools behind
//! the `caplens` binary. A library so that integration tests (server/tests, tests/) can drive
//! the same code the binary runs. Module map: ARCHITECTURE.md.

pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod docs;
pub mod engine;
pub mod error;
pub mod evals;
pub mod heatmap;
pub mod ingest;
pub mod ops;
pub mod review;
/// Storage is its own crate (`caplens-store`): the only one that speaks SQL. Its old path stays.
pub use caplens_store as storage;
pub mod views;
pub mod web;
