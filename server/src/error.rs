//! Error types of the server layer.
//!
//! * [`StartupError`]: why `caplens` could not start (bad configuration, database unreachable,
//!   data directory not writable). Printed as one line with what to do; never a panic trace.
//! * [`StoreError`]: a storage failure (see `storage`).
//!
//! The operations' error is `ops::OpError`; the REST API's is `web::error::ApiError`.

/// Why the server (or a command needing the database) could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL {url:?} is not valid: {reason}. Use sqlite://path/to/file.db or postgres://user@host:5432/db")]
    BadDatabaseUrl { url: String, reason: String },
    #[error("cannot reach the database at {url}: {reason}. Check that the server is running and the URL (host, port, user, database) is right")]
    DatabaseUnreachable { url: String, reason: String },
    #[error("data directory {path} is not writable: {reason}. Choose another with --data-dir or CAPLENS_DATA_DIR, or fix its permissions")]
    DataDirNotWritable { path: String, reason: String },
    #[error("applying database migrations failed: {0}")]
    Migration(String),
    #[error("cannot listen on {addr}: {reason}. Is another program using it? Choose another address with --addr or CAPLENS_ADDR")]
    Bind { addr: String, reason: String },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Auth(String),
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("blob store error at {path}: {source}")]
    Blob {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}
