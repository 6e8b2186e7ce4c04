//! caplens-analysis: the pure core of caplens.
//!
//! Every metric of `shared/paper-notes.md` lives here as a pure function over plain data: no I/O,
//! no async, no global state. The web pages, the REST API and the CLI all call into this crate, so
//! a number is computed one way everywhere. Module map: see ARCHITECTURE.md.

pub mod rng;
pub mod verifier;
pub mod passk;
pub mod quality;
pub mod diversity;
pub mod majority;
pub mod sets;
pub mod summary;
pub mod rft;
