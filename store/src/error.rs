//! The store's errors, free of HTTP and of the process around it.
//!
//! * [`OpenError`]: why the database could not be opened or migrated (bad URL, unreachable,
//!   data directory not writable, a migration failed), as one line that says what to do.
//! * [`StoreError`]: a storage failure once open.

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("DATABASE_URL {url:?} is not valid: {reason}. Use sqlite://path/to/file.db or postgres://user@host:5432/db")]
    BadDatabaseUrl { url: String, reason: String },
    #[error("cannot reach the database at {url}: {reason}. Check that the server is running and the URL (host, port, user, database) is right")]
    DatabaseUnreachable { url: String, reason: String },
    #[error("data directory {path} is not writable: {reason}. Choose another with --data-dir or CAPLENS_DATA_DIR, or fix its permissions")]
    DataDirNotWritable { path: String, reason: String },
    #[error("applying database migrations failed: {0}")]
    Migration(String),
    #[error("{0}")]
    Store(#[from] StoreError),
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
