//! The authorised operations: every use case the web and the command line offer, as a function
//! that takes the caller's [`Access`], asks the one policy (`auth::policy`) through it, acts on
//! the store and audits, and answers with an HTTP-free [`OpError`].
//!
//! ```text
//! web (handlers, pages' data source) ─┐                 ┌─ auth::policy (pure)
//! cli ────────────────────────────────┴─► ops::* ─► Access ─┤
//!                                           │               └─ storage::Store::project_of
//!                                           └─► storage, ingest, evals, views
//! ```
//! Architecture invariant: only `ops/` asks the policy. `Access`'s decisions are visible inside
//! `ops/` only, and `server/tests/architecture.rs` fails on a call of `authorize` (or of the
//! principal's role queries) anywhere else.
//!
//! | module | use cases |
//! |---|---|
//! | `catalog` | experiment, model, dataset and run lists; one experiment; the read API's tables |
//! | `views` | the analysis views, a problem with its runs, its rollouts, one rollout |
//! | `imports` | uploads (who, where, how often), import reports, retry, format detection |
//! | `evals` | evaluations (start, list, progress, cancel/resume), interventions, engines, datasets |
//! | `review` | comments, labels, verdict overrides, the review queue, share links, experiment settings |
//! | `admin` | the caller's session view, users, projects, members, the audit log |
//! | `tokens` | API tokens made and revoked for the caller |

mod access;
pub mod admin;
pub mod catalog;
mod error;
pub mod evals;
pub mod imports;
pub mod review;
pub mod tokens;
pub mod views;

pub use crate::auth::policy::Action;
pub use access::{Access, Caller};
pub use error::OpError;
