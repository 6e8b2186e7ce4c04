//! Access control (issue 14): who is asking (`resolve`), whether they may (`policy`), and the
//! web defences every response gets (CSRF refusal, security headers, rate limits).
//!
//! One middleware ([`authenticate`]) runs on every request: it resolves the principal (a bearer
//! token, a trusted proxy's header, a session cookie, or local mode), puts it into the request's
//! extensions (the pages and server functions read it from there through Leptos' context),
//! refuses cross-site state changes, and turns an anonymous request for anything but the public
//! routes into a redirect to the sign-in page (pages) or a 401 (API). What a principal may do to
//! a resource is decided by [`policy::authorize`], called by every handler and data-source method
//! with the resource's project.

pub mod admin;
pub mod handlers;
pub mod oidc;
pub mod password;
pub mod policy;
pub mod ratelimit;
pub mod tokens;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, StoreError};
use crate::storage::access::AuditRecord;
use crate::storage::tokens::TokenRefusal;
use crate::storage::{now_rfc3339, rfc3339_from_unix, unix_from_rfc3339, Store};
pub use policy::{authorize, Action, Denial, Principal, PrincipalKind, Target, TokenScope};

/// The session cookie. `__Host-` would pin it to https; plain name so http on a LAN works too.
pub const SESSION_COOKIE: &str = "caplens_session";
/// The cookie of a read-only share link (issue 15): holds the link's secret.
pub const SHARE_COOKIE: &str = "caplens_share";

/// How requests are authenticated (`caplens serve --auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Default on a loopback address: local mode while no account exists, accounts after.
    Automatic,
    /// Explicit `--auth none`: local mode whatever the address and whatever accounts exist.
    None,
    /// Accounts with passwords.
    Accounts,
    /// OpenID Connect single sign-on (accounts with passwords still work).
    Oidc,
    /// A trusted reverse proxy names the user in a header.
    Proxy,
}

impl AuthMode {
    pub fn parse(s: &str) -> Result<AuthMode, String> {
        match s {
            "none" => Ok(AuthMode::None),
            "accounts" => Ok(AuthMode::Accounts),
            "oidc" => Ok(AuthMode::Oidc),
            "proxy" => Ok(AuthMode::Proxy),
            other => Err(format!(
                "--auth {other:?}: use none, accounts, oidc or proxy"
            )),
        }
    }
}

/// A trusted reverse proxy (oauth2-proxy, IAP, …) that authenticates users and names them in a
/// header. The header is believed only from these addresses.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub user_header: String,
    pub email_header: Option<String>,
    pub trusted: Vec<IpAddr>,
}

/// Everything `serve` was told about authentication.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// The URL users reach caplens at (`--public-url`): cookies are `Secure` and HSTS is sent
    /// when it is https; cross-site checks and OpenID redirects use it.
    pub public_url: Option<String>,
    /// A session ends after this long without a request…
    pub session_idle: Duration,
    /// …and this long after sign-in, whatever happens.
    pub session_absolute: Duration,
    pub oidc: Option<oidc::OidcSettings>,
    pub proxy: Option<ProxySettings>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            mode: AuthMode::Automatic,
            public_url: None,
            session_idle: Duration::from_secs(12 * 3600),
            session_absolute: Duration::from_secs(7 * 24 * 3600),
            oidc: None,
            proxy: None,
        }
    }
}

impl AuthSettings {
    pub fn https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// Whether `serve` may start on `addr` with these settings: a non-loopback address needs an
    /// authentication mode (or the explicit `--auth none`).
    pub fn check_address(&self, addr: SocketAddr, has_users: bool) -> Result<(), String> {
        if self.mode == AuthMode::Automatic && !addr.ip().is_loopback() && !has_users {
            return Err(format!(
                "refusing to serve {addr} (reachable from other machines) without authentication: \
                 create the first admin with `caplens user create NAME --admin` and start again, \
                 or choose --auth accounts|oidc|proxy (docs/security.md); \
                 `--auth none` gives everyone who can reach {addr} every right"
            ));
        }
        if self.mode == AuthMode::Oidc && self.oidc.is_none() {
            return Err("--auth oidc needs --oidc-issuer, --oidc-client-id and --oidc-client-secret (or their CAPLENS_OIDC_* variables)".into());
        }
        if self.mode == AuthMode::Proxy && self.proxy.as_ref().is_none_or(|p| p.trusted.is_empty())
        {
            return Err(
                "--auth proxy needs --proxy-user-header and at least one --trusted-proxy address"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Shared authentication state of a running server.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<AuthInner>,
}

struct AuthInner {
    settings: AuthSettings,
    store: Store,
    /// Set once an account exists (Automatic mode stays in team mode from then on).
    team: AtomicBool,
    limits: ratelimit::Limits,
    /// The one-time setup secret (team mode without an admin).
    setup_secret: Mutex<Option<String>>,
    oidc: Option<oidc::OidcClient>,
}

impl Auth {
    pub fn new(store: Store, settings: AuthSettings) -> Auth {
        let public_url = settings.public_url.clone().unwrap_or_default();
        let oidc = settings
            .oidc
            .clone()
            .map(|o| oidc::OidcClient::new(o, &public_url));
        Auth {
            inner: Arc::new(AuthInner {
                team: AtomicBool::new(!matches!(
                    settings.mode,
                    AuthMode::Automatic | AuthMode::None
                )),
                settings,
                store,
                limits: ratelimit::Limits::default(),
                setup_secret: Mutex::new(None),
                oidc,
            }),
        }
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn limits(&self) -> &ratelimit::Limits {
        &self.inner.limits
    }

    pub fn oidc(&self) -> Option<&oidc::OidcClient> {
        self.inner.oidc.as_ref()
    }

    /// Local mode: no accounts (or `--auth none`), one implicit user with every right.
    pub async fn local_mode(&self) -> Result<bool, StoreError> {
        match self.inner.settings.mode {
            AuthMode::None => Ok(true),
            AuthMode::Automatic => {
                if self.inner.team.load(Ordering::Relaxed) {
                    return Ok(false);
                }
                let team = self.inner.store.user_count().await? > 0;
                if team {
                    self.inner.team.store(true, Ordering::Relaxed);
                }
                Ok(!team)
            }
            _ => Ok(false),
        }
    }

    /// A one-time setup link's secret, made when team mode has no admin yet (printed at start).
    pub async fn setup_secret_if_needed(&self) -> Result<Option<String>, StoreError> {
        if self.local_mode().await? || self.inner.store.admin_count().await? > 0 {
            return Ok(None);
        }
        let mut slot = self.inner.setup_secret.lock().expect("setup lock");
        Ok(Some(
            slot.get_or_insert_with(|| random_secret("setup_")).clone(),
        ))
    }

    /// Takes the setup secret if `given` matches it (it works once).
    pub fn take_setup_secret(&self, given: &str) -> bool {
        let mut slot = self.inner.setup_secret.lock().expect("setup lock");
        match slot.as_deref() {
            Some(s) if constant_time_eq(s.as_bytes(), given.as_bytes()) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    pub fn setup_pending(&self, given: &str) -> bool {
        let slot = self.inner.setup_secret.lock().expect("setup lock");
        slot.as_deref()
            .is_some_and(|s| constant_time_eq(s.as_bytes(), given.as_bytes()))
    }

    /// Starts a session for `user`: stores it and returns the `Set-Cookie` value. A new secret
    /// every time (a session id is never reused across sign-ins).
    pub async fn start_session(
        &self,
        user_id: i64,
        address: Option<&str>,
    ) -> Result<HeaderValue, StoreError> {
        let secret = random_secret("");
        let expires = now_unix() + self.inner.settings.session_absolute.as_secs();
        self.inner
            .store
            .create_session(
                &sha256_hex(&secret),
                user_id,
                &rfc3339_from_unix(expires),
                address,
            )
            .await?;
        Ok(self.session_cookie(&secret, Some(self.inner.settings.session_absolute)))
    }

    /// The session cookie (`max_age` `None`: the deleting cookie).
    pub fn session_cookie(&self, secret: &str, max_age: Option<Duration>) -> HeaderValue {
        let secure = if self.inner.settings.https() {
            "; Secure"
        } else {
            ""
        };
        let age = max_age.map_or(0, |d| d.as_secs());
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{secure}"
        ))
        .expect("cookie is ASCII")
    }

    /// The principal of a request, or why its credentials are refused (a bad bearer token is
    /// an error, not anonymity: a CI job must learn its token is revoked).
    pub async fn resolve(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Result<Principal, ApiError>, StoreError> {
        let store = &self.inner.store;
        let local = self.local_mode().await?;
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let Some(secret) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
                return Ok(Err(unauthorized(
                    "the Authorization header must be `Bearer <token>`",
                )));
            };
            let grant = match store.authenticate_token(secret.trim()).await? {
                Ok(g) => g,
                Err(why) => {
                    let message = match why {
                        TokenRefusal::Unknown => "the API token is not valid (unknown)",
                        TokenRefusal::Revoked => "the API token was revoked",
                        TokenRefusal::Expired => "the API token has expired",
                    };
                    store
                        .audit(AuditRecord {
                            actor: "anonymous".into(),
                            action: "token_refused",
                            refused: true,
                            detail: message.into(),
                            address: peer.map(|p| p.to_string()),
                            ..Default::default()
                        })
                        .await;
                    return Ok(Err(unauthorized(&format!(
                        "{message}; create a new one on the Tokens page or with `caplens token create`"
                    ))));
                }
            };
            let Some(user_id) = grant.user_id else {
                if local {
                    return Ok(Ok(Principal::local()));
                }
                return Ok(Err(unauthorized(
                    "this API token was made before accounts existed and no longer works; create a new one on the Tokens page",
                )));
            };
            let user = match store.user(user_id).await? {
                Some(u) if !u.row.disabled => u.row,
                _ => return Ok(Err(unauthorized("the API token's user is disabled"))),
            };
            let mut principal = user_principal(&self.inner.store, &user).await?;
            principal.name = format!("{} (token {})", user.name, grant.prefix);
            principal.kind = PrincipalKind::Token {
                id: grant.id,
                project_id: grant.project_id,
                scope: grant.scope,
            };
            return Ok(Ok(principal));
        }
        if local {
            return Ok(Ok(Principal::local()));
        }
        if let (AuthMode::Proxy, Some(proxy)) =
            (self.inner.settings.mode, &self.inner.settings.proxy)
        {
            if let Some(name) = headers
                .get(proxy.user_header.as_str())
                .and_then(|v| v.to_str().ok())
            {
                if peer.is_some_and(|p| proxy.trusted.contains(&p)) {
                    return Ok(Ok(self
                        .proxy_user(name.trim(), headers, proxy, peer)
                        .await?));
                }
                tracing::warn!(peer = ?peer, header = %proxy.user_header, "ignored a user header from an address that is not a trusted proxy");
            }
        }
        if let Some(secret) = cookie(headers, SESSION_COOKIE) {
            let id_hash = sha256_hex(secret);
            if let Some(session) = store.session(&id_hash).await? {
                let now = now_unix();
                let idle_end = unix_from_rfc3339(&session.last_seen_at).unwrap_or(0)
                    + self.inner.settings.session_idle.as_secs();
                let absolute_end = unix_from_rfc3339(&session.expires_at).unwrap_or(0);
                if now >= idle_end || now >= absolute_end || session.user.disabled {
                    store.end_session(&id_hash).await?;
                    store
                        .audit(AuditRecord {
                            user_id: Some(session.user.id),
                            actor: session.user.name.clone(),
                            action: "session_refused",
                            target: format!("user {}", session.user.name),
                            refused: true,
                            detail: if session.user.disabled {
                                "the account is disabled"
                            } else if now >= absolute_end {
                                "the session reached its absolute expiry"
                            } else {
                                "the session was idle too long"
                            }
                            .into(),
                            address: peer.map(|p| p.to_string()),
                            ..Default::default()
                        })
                        .await;
                } else {
                    // Idle expiry counts from the last request; write at most once a minute.
                    if now >= unix_from_rfc3339(&session.last_seen_at).unwrap_or(0) + 60 {
                        store.touch_session(&id_hash).await?;
                    }
                    return Ok(Ok(user_principal(&self.inner.store, &session.user).await?));
                }
            }
        }
        if let Some(secret) = cookie(headers, SHARE_COOKIE) {
            if let Some(grant) = store.share_grant(&sha256_hex(secret)).await? {
                if grant.state() == "active" {
                    return Ok(Ok(Principal::share(&grant)));
                }
            }
        }
        Ok(Ok(Principal::anonymous()))
    }

    /// The cookie a share link sets: the link's secret, for this browser session only.
    pub fn share_cookie(&self, secret: &str) -> HeaderValue {
        let secure = if self.inner.settings.https() { "; Secure" } else { "" };
        HeaderValue::from_str(&format!("{SHARE_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax{secure}"))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The user a trusted proxy names, created on first sight (no rights until added to a
    /// project, except open projects).
    async fn proxy_user(
        &self,
        name: &str,
        headers: &HeaderMap,
        proxy: &ProxySettings,
        peer: Option<IpAddr>,
    ) -> Result<Principal, StoreError> {
        let store = &self.inner.store;
        let user = match store.user_by_name(name).await? {
            Some(u) => u.row,
            None => {
                let email = proxy
                    .email_header
                    .as_deref()
                    .and_then(|h| headers.get(h))
                    .and_then(|v| v.to_str().ok());
                let created = store.create_user(name, email, None, false).await;
                match created {
                    Ok(u) => {
                        store
                            .audit(AuditRecord {
                                user_id: Some(u.id),
                                actor: u.name.clone(),
                                action: "user_created",
                                target: format!("user {}", u.name),
                                detail: "first request through the trusted proxy".into(),
                                address: peer.map(|p| p.to_string()),
                                ..Default::default()
                            })
                            .await;
                        u
                    }
                    Err(StoreError::Invalid(m)) => {
                        tracing::warn!(message = %m, "the proxy named a user caplens cannot accept");
                        return Ok(Principal::anonymous());
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if user.disabled {
            return Ok(Principal::anonymous());
        }
        user_principal(&self.inner.store, &user).await
    }
}

/// The principal of a signed-in user: their roles and the open projects.
pub async fn user_principal(
    store: &Store,
    user: &caplens_app::model::UserRow,
) -> Result<Principal, StoreError> {
    let roles = store.memberships(user.id).await?.into_iter().collect();
    let projects = store.projects().await?;
    let open_projects = projects.iter().filter(|p| p.open_to_all).map(|p| p.id).collect::<HashSet<_>>();
    let viewers_comment = projects.iter().filter(|p| p.viewers_comment).map(|p| p.id).collect::<HashSet<_>>();
    Ok(Principal {
        kind: PrincipalKind::User,
        user_id: Some(user.id),
        name: user.name.clone(),
        site_admin: user.is_admin,
        roles,
        open_projects,
        viewers_comment,
    })
}

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

/// The middleware of every request: principal, cross-site refusal, sign-in gate.
pub async fn authenticate(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let path = req.uri().path().to_owned();
    if let Some(refusal) = cross_site_refusal(&auth, req.method(), req.headers(), &path) {
        auth.store()
            .audit(AuditRecord {
                actor: "anonymous".into(),
                action: "cross_site_refused",
                target: format!("{} {path}", req.method()),
                refused: true,
                detail: refusal.clone(),
                address: peer.map(|p| p.to_string()),
                ..Default::default()
            })
            .await;
        return ApiError {
            status: StatusCode::FORBIDDEN,
            code: "cross_site",
            message: refusal,
        }
        .into_response();
    }
    if is_probe_path(&path) {
        // Probes answer for the process itself: they need nobody signed in, and must still
        // answer (readiness: 503 and why) when the database that signs people in is down.
        return next.run(req).await;
    }
    let principal = match auth.resolve(req.headers(), peer).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return e.into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if principal.kind == PrincipalKind::Anonymous
        && !is_public_path(&path)
        && cookie(req.headers(), SHARE_COOKIE).is_some_and(|c| !c.is_empty())
        && cookie(req.headers(), SESSION_COOKIE).is_none()
    {
        // A share link that was revoked or expired after it was opened.
        let mut res = if is_api_path(&path) {
            unauthorized("this share link was revoked or has expired; ask for a new one").into_response()
        } else {
            crate::web::review::share_link_ended_page("revoked or expired").into_response()
        };
        res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static("caplens_share=; Path=/; Max-Age=0"));
        return res;
    }
    if principal.kind == PrincipalKind::Anonymous && !is_public_path(&path) {
        // A session cookie that no longer signs anyone in: it ended (signed out, expired,
        // account disabled). Say so, and drop the cookie.
        let stale = cookie(req.headers(), SESSION_COOKIE).is_some_and(|c| !c.is_empty());
        let mut res = if is_api_path(&path) {
            unauthorized(if stale {
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
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// The peer address of a request (for the audit log), as the middleware saw it.
#[derive(Debug, Clone, Copy)]
pub struct RequestPeer(pub Option<IpAddr>);

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

pub fn unauthorized(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: message.to_owned(),
    }
}

/// A policy refusal as the API answers it: 401, 404 (hidden: as if it did not exist) or 403.
pub fn denial_error(denial: Denial, what: &str) -> ApiError {
    match denial {
        Denial::NotSignedIn => unauthorized("sign in first (or send an API token)"),
        Denial::Hidden => ApiError::not_found(format!("no {what}")),
        Denial::Forbidden(why) => ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: why,
        },
    }
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn sha256_hex(s: &str) -> String {
    crate::storage::hex(&Sha256::digest(s.as_bytes()))
}

/// 256 random bits as hex, with a prefix.
pub fn random_secret(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn now_unix() -> u64 {
    unix_from_rfc3339(&now_rfc3339()).unwrap_or(0)
}

/// A request URI as logs may show it: the values of query parameters that carry secrets
/// (`secret`, `code`, `state`, `token`, `password`) replaced by `[redacted]`.
pub fn redacted_uri(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
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
    format!("{}?{}", uri.path(), pairs.join("&"))
}

pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The principal of the current Leptos request (pages and server functions): what
/// [`authenticate`] put into the request's extensions; anonymous when missing.
pub fn current_principal() -> Principal {
    leptos::prelude::use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>().cloned())
        .unwrap_or_else(Principal::anonymous)
}

/// The peer address of the current Leptos request.
pub fn current_peer() -> Option<String> {
    leptos::prelude::use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<RequestPeer>().copied())
        .and_then(|p| p.0)
        .map(|p| p.to_string())
}

/// The audit record of an action by `principal`.
pub fn audit_record(
    principal: &Principal,
    action: &'static str,
    target: impl Into<String>,
) -> AuditRecord {
    AuditRecord {
        user_id: principal.user_id,
        actor: principal.name.clone(),
        action,
        target: target.into(),
        ..Default::default()
    }
}
