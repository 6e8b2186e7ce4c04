//! The operations layer's one error type. It says what went wrong in the domain's terms and
//! carries no HTTP status: the web maps it once (`web::error`), the pages show its message, the
//! CLI prints it.

use crate::error::StoreError;

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// No credentials, or credentials that no longer sign anyone in.
    #[error("{0}")]
    Unauthorized(String),
    /// The thing does not exist, or the principal may not know that it does. Never says "it
    /// belongs to another project": that would tell.
    #[error("{0}")]
    NotFound(String),
    /// The principal sees the thing but may not do this; the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// The request itself is wrong: the field and what is wrong with it.
    #[error("{0}")]
    Invalid(String),
    /// The request is fine but the current state does not allow it (a name taken in this
    /// project, an evaluation already cancelled).
    #[error("{0}")]
    Conflict(String),
    /// Too many of these lately; the message says when to try again.
    #[error("{0}")]
    RateLimited(String),
    /// More bytes than this server accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The database or the blob store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpError {
    pub fn not_found(message: impl Into<String>) -> OpError {
        OpError::NotFound(message.into())
    }
    pub fn invalid(message: impl Into<String>) -> OpError {
        OpError::Invalid(message.into())
    }
    pub fn conflict(message: impl Into<String>) -> OpError {
        OpError::Conflict(message.into())
    }
    pub fn forbidden(message: impl Into<String>) -> OpError {
        OpError::Forbidden(message.into())
    }

    /// The message a user may see (storage failures say only that the server failed; the
    /// details go to the log where the error is mapped).
    pub fn public_message(&self) -> String {
        match self {
            OpError::Store(_) => {
                "caplens could not read or write its database; the server log has the details"
                    .into()
            }
            other => other.to_string(),
        }
    }
}
