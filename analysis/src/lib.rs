//! caplens-analysis: the pure core of caplens.
//!
//! Every metric of `shared/paper-notes.md` lives here as a pure function over plain data: no I/O,
//! no async, no global state. The web pages, the REST API and the CLI all call into this crate, so
//! a number is computed one way everywhere. Module map: see ARCHITECTURE.md.

pub mod rng;
pub mod sampling;
pub mod verifier;

// Rollout-level metrics (items 1-3, 9, 17, 18).
pub mod diversity;
pub mod majority;
pub mod paired;
pub mod passk;
pub mod quality;
pub mod review;
pub mod rft;
pub mod rollup;
pub mod sets;
pub mod summary;
pub mod tables;
pub mod verdicts;

// Token- and training-level metrics (items 4, 5, 7, 8, 10-16) and the token-trace blob encoding.
pub mod agreement;
pub mod categories;
pub mod dynamics;
pub mod intervention;
pub mod shaping;
pub mod token_stats;
pub mod tokens;
pub mod trace;
