//! Who a request comes from, as handlers take it: the principal and client address the
//! `middleware::authenticate` layer found, as an operations [`Caller`].

use axum::http::{header, HeaderMap};

use super::error::ApiError;
use crate::auth::{Principal, RequestPeer};
use crate::ops::Caller;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller {
            principal: parts
                .extensions
                .get::<Principal>()
                .cloned()
                .unwrap_or_else(Principal::anonymous),
            peer: parts
                .extensions
                .get::<RequestPeer>()
                .and_then(|p| p.0)
                .map(|p| p.to_string()),
        })
    }
}

/// REST writes need credentials a browser never sends by itself: an API token, or (team mode)
/// a session, whose cross-site use the middleware already refused. In local mode a token is
/// required, as before accounts existed. (Authentication, not authorisation: what the caller
/// may do is the operation's question.)
pub fn require_write_credentials(
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if headers.contains_key(header::AUTHORIZATION) || !principal.is_local() {
        return Ok(());
    }
    Err(ApiError::unauthorized(
        "this endpoint needs an API token: send `Authorization: Bearer <token>`; create one with `caplens token create NAME` or on the Tokens page",
    ))
}
