//! caplens-analysis: the pure core of caplens.
//!
//! Every metric of `shared/paper-notes.md` lives here as a pure function over plain data: no I/O,
//! no async, no global state. The web pages, the REST API and the CLI all call into this crate, so
//! a number is computed one way everywhere. Module map: see ARCHITECTURE.md.

pub mod rng;
pub mod verifier;

// Token- and training-level metrics (items 4, 5, 7, 8, 10-16) and the token-trace blob encoding.
pub mod tokens;
pub mod shaping;
pub mod dynamics;
pub mod intervention;
pub mod trace;
pub mod categories;
