//! The plain data caplens' server and pages exchange: catalog and run rows, problem and rollout
//! details, review records, evaluation records, token heatmaps, and the one HTML escaper they
//! use. No UI framework and no I/O: the store (`caplens-store`) and the UI (`caplens-app`) both
//! build on it, side by side. `caplens-app` re-exports each module under its old path.

pub mod escape;
pub mod evals;
pub mod heat;
pub mod model;
pub mod review;
