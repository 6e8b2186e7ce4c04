//! Error types of the server layer.
//!
//! * [`StartupError`]: why `caplens` could not start (the database could not be opened, the
//!   address is taken, the sign-in settings are wrong). Printed as one line with what to do;
//!   never a panic trace.
//! * [`StoreError`]: a storage failure (from `caplens-store`).
//!
//! The operations' error is `ops::OpError`; the REST API's is `web::error::ApiError`.

pub use caplens_store::error::{OpenError, StoreError};

/// Why the server (or a command needing the database) could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot listen on {addr}: {reason}. Is another program using it? Choose another address with --addr or CAPLENS_ADDR")]
    Bind { addr: String, reason: String },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Auth(String),
}
