//! The HTTP shell of authentication, on every request: the principal (`auth::Auth::resolve`),
//! the client's address (behind trusted proxies), local mode's host check, cross-site refusal,
//! the sign-in gate, security headers, and URIs as logs may show them.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

use super::error::ApiError;
use crate::auth::{
    client_address, cookie, percent_encode, Auth, Principal, PrincipalKind, RequestPeer,
    SESSION_COOKIE, SHARE_COOKIE,
};
use crate::storage::access::AuditRecord;

/// A load balancer's probes (liveness, readiness): public, and answered without reading
/// credentials.
pub fn is_probe_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Paths anyone may request without signing in.
pub fn is_public_path(path: &str) -> bool {
    is_probe_path(path)
        || path.starts_with("/s/")
        || matches!(path, "/login" | "/setup" | "/favicon.ico" | "/theme")
        || path.starts_with("/pkg/")
        || path.starts_with("/auth/")
}

/// Paths answered as an API (JSON errors) rather than as pages.
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/_app/") || path.starts_with("/export/")
}

/// Whether a request's `Host` names this server as local mode may answer it: `localhost`,
/// `127.0.0.1` or `[::1]` with any port, or the `--public-url` host. Local mode gives every
/// right to whoever reaches it, so a page on another site that rebinds its own DNS name to
/// 127.0.0.1 (and so sends its own name as Host, and its own origin) must not be answered.
pub fn local_host_allowed(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        // HTTP/1.0 without Host: only a local client sends that to a loopback listener.
        return true;
    };
    let host = host.trim().to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inner, port))
                if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) =>
            {
                format!("[{inner}]")
            }
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name.to_owned(),
            Some(_) => return false,
            None => host.clone(),
        },
    };
    if matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
        return true;
    }
    public_url
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| {
            let public_host = match u.host() {
                Some(url::Host::Ipv6(a)) => format!("[{a}]"),
                Some(h) => h.to_string().to_ascii_lowercase(),
                None => return false,
            };
            let public_port = u.port_or_known_default();
            let given_port = host
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            public_host == name && (given_port.is_none() || given_port == public_port)
        })
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The middleware of every request: principal, local mode's host check, cross-site refusal,
/// sign-in gate.
pub async fn authenticate(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let tcp_peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let peer = client_address(tcp_peer, req.headers(), &auth.settings().trusted_proxies);
    let path = req.uri().path().to_owned();
    if let Some(refusal) = cross_site_refusal(&auth, req.method(), req.headers(), &path) {
        auth.store()
            .audit(AuditRecord {
                actor: "anonymous".into(),
                action: "cross_site_refused",
                target: format!("{} {}", req.method(), redacted_path(&path)),
                refused: true,
                detail: refusal.clone(),
                address: peer.map(|p| p.to_string()),
                ..Default::default()
            })
            .await;
        return ApiError::new(StatusCode::FORBIDDEN, "cross_site", refusal).into_response();
    }
    if is_probe_path(&path) {
        // Probes answer for the process itself: they need nobody signed in, and must still
        // answer (readiness: 503 and why) when the database that signs people in is down.
        return next.run(req).await;
    }
    let principal = match auth.resolve(req.headers(), tcp_peer).await {
        Ok(Ok(p)) => p,
        Ok(Err(why)) => return ApiError::unauthorized(why).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if principal.is_local()
        && !local_host_allowed(req.headers(), auth.settings().public_url.as_deref())
    {
        auth.store()
            .audit(AuditRecord {
                actor: "anonymous".into(),
                action: "host_refused",
                target: format!("{} {}", req.method(), redacted_path(&path)),
                refused: true,
                detail:
                    "local mode answers only localhost, 127.0.0.1, [::1] or the --public-url host"
                        .into(),
                address: peer.map(|p| p.to_string()),
                ..Default::default()
            })
            .await;
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_host",
            "this caplens runs in local mode and answers only http://localhost, http://127.0.0.1 or http://[::1] (or its --public-url); open it by one of those names",
        )
        .into_response();
    }
    if principal.kind == PrincipalKind::Anonymous
        && !is_public_path(&path)
        && cookie(req.headers(), SHARE_COOKIE).is_some_and(|c| !c.is_empty())
        && cookie(req.headers(), SESSION_COOKIE).is_none()
    {
        // A share link that was revoked or expired after it was opened.
        let mut res = if is_api_path(&path) {
            ApiError::unauthorized("this share link was revoked or has expired; ask for a new one")
                .into_response()
        } else {
            super::review::share_link_ended_page("revoked or expired")
        };
        res.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static("caplens_share=; Path=/; Max-Age=0"),
        );
        return res;
    }
    if principal.kind == PrincipalKind::Anonymous && !is_public_path(&path) {
        // A session cookie that no longer signs anyone in: it ended (signed out, expired,
        // account disabled). Say so, and drop the cookie.
        let stale = cookie(req.headers(), SESSION_COOKIE).is_some_and(|c| !c.is_empty());
        let mut res = if is_api_path(&path) {
            ApiError::unauthorized(if stale {
                "your session has ended (signed out, expired or the account was disabled); sign in again"
            } else {
                "sign in first: send `Authorization: Bearer <token>` (a token from the Tokens page or `caplens token create`), or use the browser after signing in"
            })
            .into_response()
        } else {
            let next_url = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let error = if stale { "error=expired&" } else { "" };
            Redirect::to(&format!("/login?{error}next={}", percent_encode(next_url)))
                .into_response()
        };
        if stale {
            res.headers_mut()
                .insert(header::SET_COOKIE, auth.session_cookie("", None));
        }
        return res;
    }
    req.extensions_mut().insert(RequestPeer(peer));
    let credentials = Credentials::of(req.headers(), tcp_peer);
    req.extensions_mut().insert(credentials);
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// What a request authenticated with, kept so that a long-lived response (an event stream) can
/// ask again later whether its principal still may read what it streams.
#[derive(Clone, Debug)]
pub struct Credentials {
    headers: HeaderMap,
    peer: Option<std::net::IpAddr>,
}

impl Credentials {
    fn of(headers: &HeaderMap, peer: Option<std::net::IpAddr>) -> Credentials {
        let mut kept = HeaderMap::new();
        for name in [header::AUTHORIZATION, header::COOKIE, header::HOST] {
            for v in headers.get_all(&name) {
                kept.append(name.clone(), v.clone());
            }
        }
        Credentials {
            headers: kept,
            peer,
        }
    }

    /// The principal these credentials sign in now (anonymous when they no longer do).
    pub async fn principal_now(&self, auth: &Auth) -> Principal {
        match auth.resolve(&self.headers, self.peer).await {
            Ok(Ok(p)) => p,
            _ => Principal::anonymous(),
        }
    }
}

/// Why a state-changing request is refused as cross-site, if it is. Bearer-token requests are
/// exempt (a browser never attaches one by itself); every other POST/PUT/PATCH/DELETE must come
/// from this site (`Sec-Fetch-Site`, else `Origin`), and server functions take only their own
/// content types (JSON or a URL-encoded form), never `text/plain` or multipart.
pub fn cross_site_refusal(
    auth: &Auth,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "))
    {
        return None;
    }
    let refused = || {
        Some(format!("refused a cross-site {method} {path}: state-changing requests must come from caplens' own pages (or carry an API token)"))
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return refused();
        }
    } else if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if !same_origin(auth, origin, headers) {
            return refused();
        }
    }
    if path.starts_with("/_app/") {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !matches!(
            essence,
            "application/json" | "application/x-www-form-urlencoded"
        ) {
            return Some(format!(
                "refused {method} {path}: server functions accept only their own content type (application/json or a URL-encoded form), not {essence:?}"
            ));
        }
    }
    None
}

fn same_origin(auth: &Auth, origin: &str, headers: &HeaderMap) -> bool {
    if let Some(public) = auth.settings().public_url.as_deref() {
        if origin.trim_end_matches('/') == public.trim_end_matches('/') {
            return true;
        }
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

/// Security headers on every response. Pages set their own Content-Security-Policy with the
/// nonce of their inline scripts (`caplens_app::shell`); everything else gets a policy that
/// allows nothing to run.
pub async fn security_headers(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; style-src 'unsafe-inline'"),
        );
    }
    if auth.settings().https() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

/// A request path as logs may show it: path segments that are secrets (a share link's
/// `/s/{secret}`) replaced by `[redacted]`.
pub fn redacted_path(path: &str) -> String {
    match path.strip_prefix("/s/") {
        Some(_) => "/s/[redacted]".to_owned(),
        None => path.to_owned(),
    }
}

/// A request URI as logs may show it: secrets in the path ([`redacted_path`]) and the values of
/// query parameters that carry secrets (`secret`, `code`, `state`, `token`, `password`,
/// `session_state`) replaced by `[redacted]`.
pub fn redacted_uri(uri: &axum::http::Uri) -> String {
    let path = redacted_path(uri.path());
    let Some(query) = uri.query() else {
        return path;
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _))
                if matches!(
                    k,
                    "secret" | "code" | "state" | "token" | "password" | "session_state"
                ) =>
            {
                format!("{k}=[redacted]")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// The principal of the current Leptos request (pages and server functions): what
/// [`authenticate`] put into the request's extensions; anonymous when missing.
pub fn current_principal() -> Principal {
    leptos::prelude::use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>().cloned())
        .unwrap_or_else(Principal::anonymous)
}

/// The client address of the current Leptos request.
pub fn current_peer() -> Option<String> {
    leptos::prelude::use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<RequestPeer>().copied())
        .and_then(|p| p.0)
        .map(|p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        m
    }

    #[test]
    fn local_mode_answers_local_names_and_the_public_one() {
        for ok in [
            "localhost",
            "localhost:3000",
            "LOCALHOST:3000",
            "127.0.0.1",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:3000",
        ] {
            assert!(local_host_allowed(&host(ok), None), "{ok}");
        }
        for bad in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "127.0.0.2",
            "localhost:3000@evil",
            "localhost:30x",
            "[::1]x",
            "[::2]:3000",
            "0.0.0.0:3000",
        ] {
            assert!(!local_host_allowed(&host(bad), None), "{bad}");
        }
        let public = Some("https://caplens.lab.example");
        assert!(local_host_allowed(&host("caplens.lab.example"), public));
        assert!(local_host_allowed(&host("caplens.lab.example:443"), public));
        assert!(!local_host_allowed(
            &host("caplens.lab.example:8443"),
            public
        ));
        assert!(!local_host_allowed(&host("other.lab.example"), public));
        assert!(
            local_host_allowed(&HeaderMap::new(), None),
            "no Host: an HTTP/1.0 client on the machine"
        );
    }

    #[test]
    fn path_and_query_secrets_are_redacted() {
        let uri: axum::http::Uri = "/s/cls_abc?code=1&x=2".parse().unwrap();
        assert_eq!(redacted_uri(&uri), "/s/[redacted]?code=[redacted]&x=2");
        let uri: axum::http::Uri = "/experiments/x?runs=1".parse().unwrap();
        assert_eq!(redacted_uri(&uri), "/experiments/x?runs=1");
    }
}
