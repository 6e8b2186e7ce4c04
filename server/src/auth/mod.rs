//! Authentication (issue 14): who is asking ([`Auth::resolve`]: a bearer token, a trusted
//! proxy's header, a session cookie, a share link, or local mode), sessions, passwords, single
//! sign-on, sign-in limits, and the pure authorisation policy (`policy`).
//!
//! What a principal may do to a resource is decided by [`policy::authorize`], which only the
//! operations layer (`ops::Access`) calls. The HTTP middleware that runs `resolve` on every
//! request, refuses cross-site writes and gates sign-in is the web's (`web::middleware`).

pub mod handlers;
pub mod oidc;
pub mod password;
pub mod policy;
pub mod ratelimit;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::storage::access::AuditRecord;
use crate::storage::tokens::TokenRefusal;
use crate::storage::{now_rfc3339, rfc3339_from_unix, unix_from_rfc3339, Store};
pub use policy::{Action, Principal, PrincipalKind, TokenScope};

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
    /// Reverse proxies (load balancers) whose `X-Forwarded-For` names the client: the client
    /// address (audit log, sign-in limits) is read from it only when the TCP peer is one of
    /// these (`--trusted-proxy`).
    pub trusted_proxies: Vec<IpAddr>,
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
            trusted_proxies: Vec::new(),
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
                limits: ratelimit::Limits::new(store.clone()),
                store,
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
    /// an error, not anonymity: a CI job must learn its token is revoked). `tcp_peer` is the
    /// connection's address: a trusted proxy's header is believed only from a trusted proxy.
    pub async fn resolve(
        &self,
        headers: &HeaderMap,
        tcp_peer: Option<IpAddr>,
    ) -> Result<Result<Principal, String>, StoreError> {
        let store = &self.inner.store;
        let peer = client_address(tcp_peer, headers, &self.inner.settings.trusted_proxies);
        let local = self.local_mode().await?;
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let Some(secret) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
                return Ok(Err(String::from(
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
                    return Ok(Err(format!(
                        "{message}; create a new one on the Tokens page or with `caplens token create`"
                    )));
                }
            };
            let Some(user_id) = grant.user_id else {
                if local {
                    return Ok(Ok(Principal::local()));
                }
                return Ok(Err(String::from(
                    "this API token was made before accounts existed and no longer works; create a new one on the Tokens page",
                )));
            };
            let user = match store.user(user_id).await? {
                Some(u) if !u.row.disabled => u.row,
                _ => return Ok(Err(String::from("the API token's user is disabled"))),
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
                if tcp_peer.is_some_and(|p| proxy.trusted.contains(&p)) {
                    return Ok(Ok(self
                        .proxy_user(name.trim(), headers, proxy, peer)
                        .await?));
                }
                tracing::warn!(peer = ?tcp_peer, header = %proxy.user_header, "ignored a user header from an address that is not a trusted proxy");
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
        let secure = if self.inner.settings.https() {
            "; Secure"
        } else {
            ""
        };
        HeaderValue::from_str(&format!(
            "{SHARE_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax{secure}"
        ))
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
    let open_projects = projects
        .iter()
        .filter(|p| p.open_to_all)
        .map(|p| p.id)
        .collect::<HashSet<_>>();
    let viewers_comment = projects
        .iter()
        .filter(|p| p.viewers_comment)
        .map(|p| p.id)
        .collect::<HashSet<_>>();
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

/// The peer address of a request (for the audit log), as the middleware saw it.
#[derive(Debug, Clone, Copy)]
pub struct RequestPeer(pub Option<IpAddr>);

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy (the header's other entries
/// are the client's to write, so only the part our proxies appended is believed).
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // From the right: our proxies append; the first address they did not write is the client.
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(a) if trusted.contains(&a) => continue,
            Ok(a) => return Some(a),
            Err(_) => break,
        }
    }
    Some(peer)
}

/// Is `path` a path on this site, safe to redirect to? Only `/` followed by URL path characters;
/// `//host`, `/\host`, whitespace and control characters (which browsers strip or reinterpret
/// into another origin) are refused.
pub fn is_local_path(path: &str) -> bool {
    let mut bytes = path.bytes();
    bytes.next() == Some(b'/')
        && !matches!(path.as_bytes().get(1), Some(b'/' | b'\\'))
        && path.len() <= 2048
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/?#".contains(&b))
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

#[cfg(test)]
mod client_address_tests {
    use super::*;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let lb: IpAddr = "10.0.0.1".parse().unwrap();
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = [lb, inner];
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        // Not through a proxy: the peer, whatever the header says.
        assert_eq!(
            client_address(Some(client), &xff("203.0.113.1"), &trusted),
            Some(client)
        );
        // Through the balancer: the address it appended (the rightmost it did not write).
        assert_eq!(
            client_address(Some(lb), &xff("198.51.100.7"), &trusted),
            Some(client)
        );
        // A client's own forged entries come first and are skipped.
        assert_eq!(
            client_address(Some(lb), &xff("1.2.3.4, 198.51.100.7"), &trusted),
            Some(client)
        );
        // Two proxies deep.
        assert_eq!(
            client_address(Some(lb), &xff("198.51.100.7, 10.0.0.2"), &trusted),
            Some(client)
        );
        // Garbage the balancer passed on: not believed; the balancer's own address.
        assert_eq!(
            client_address(Some(lb), &xff("not-an-address"), &trusted),
            Some(lb)
        );
        assert_eq!(
            client_address(Some(lb), &HeaderMap::new(), &trusted),
            Some(lb)
        );
        assert_eq!(client_address(None, &xff("198.51.100.7"), &trusted), None);
    }
}
