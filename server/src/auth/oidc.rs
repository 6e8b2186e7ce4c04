//! OpenID Connect single sign-on: authorization code flow with PKCE (S256), state and nonce,
//! through the `openidconnect` crate with a small ureq client (no redirects followed; error
//! statuses come back as responses so the crate can read the provider's error).
//!
//! `GET /auth/oidc/start?next=` keeps the attempt (state, nonce, PKCE verifier, where to go) in
//! a short-lived cookie in the browser that started it, signed with a key every replica reads
//! from the database (HMAC-SHA256), and redirects to the provider: the server keeps nothing, so
//! no flood of starts can push out real sign-ins, and the callback works on any replica.
//! `GET /auth/oidc/callback` checks the signature, the age and that the state matches, exchanges the code,
//! verifies the ID token (signature, issuer, audience, expiry, nonce), then finds or creates the
//! user by (issuer, subject), applies the allowed email domains and the admin group, and starts
//! a session. Every refusal is audited and answered by the sign-in page with a code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Redirect, Response},
    Extension,
};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, IdTokenFields, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};

use super::{cookie, handlers::safe_next, random_secret, Auth, RequestPeer};

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
use crate::storage::access::AuditRecord;

/// The cookie binding a sign-in attempt to the browser that started it.
const BINDING_COOKIE: &str = "caplens_oidc";
/// How long a started sign-in may take.
const PENDING_FOR: Duration = Duration::from_secs(600);

/// `--oidc-*` settings.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Only these email domains may sign in (empty: any).
    pub allowed_domains: Vec<String>,
    /// Members of this group (in the `groups` claim) are site admins.
    pub admin_group: Option<String>,
}

/// The `groups` claim (absent: no groups).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct GroupsClaim {
    #[serde(default)]
    groups: Vec<String>,
}
impl AdditionalClaims for GroupsClaim {}

type IdFields = IdTokenFields<
    GroupsClaim,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResp = StandardTokenResponse<IdFields, CoreTokenType>;
type Rp = Client<
    GroupsClaim,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResp,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

type HttpFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, std::io::Error>> + Send>>;

/// The HTTP client the crate calls: ureq on a blocking thread, no redirects, statuses as
/// responses, 10 s.
fn http_client(agent: ureq::Agent) -> impl Fn(HttpRequest) -> HttpFuture + Send + Sync + Clone {
    move |req| {
        let agent = agent.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let (parts, mut body) = agent.run(req).map_err(std::io::Error::other)?.into_parts();
                let bytes = body.read_to_vec().map_err(std::io::Error::other)?;
                Ok(HttpResponse::from_parts(parts, bytes))
            })
            .await
            .map_err(std::io::Error::other)?
        })
    }
}

/// A started sign-in, kept in the browser's cookie (signed, so the browser cannot change it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    /// When it started (Unix seconds).
    started: u64,
}

/// The setting that holds the key pending sign-ins are signed with.
const STATE_KEY_SETTING: &str = "oidc_state_key";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(key: &[u8], payload: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(payload);
    m.finalize().into_bytes().to_vec()
}

/// `hex(json).hex(hmac)`.
fn seal(key: &[u8], pending: &Pending) -> String {
    let json = serde_json::to_vec(pending).expect("serialises");
    format!(
        "{}.{}",
        crate::storage::hex(&json),
        crate::storage::hex(&mac(key, &json))
    )
}

/// The pending sign-in a cookie holds, if its signature is ours and it is not too old.
fn open(key: &[u8], cookie: &str, now: u64) -> Option<Pending> {
    let (payload, tag) = cookie.split_once('.')?;
    let json = unhex(payload)?;
    let tag = unhex(tag)?;
    use hmac::Mac;
    let mut m = HmacSha256::new_from_slice(key).ok()?;
    m.update(&json);
    m.verify_slice(&tag).ok()?;
    let pending: Pending = serde_json::from_slice(&json).ok()?;
    (now >= pending.started && now - pending.started < PENDING_FOR.as_secs()).then_some(pending)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 8192 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub struct OidcClient {
    pub settings: OidcSettings,
    agent: ureq::Agent,
    /// The discovered client (provider metadata and signing keys), found at start or at the
    /// first sign-in, found again when a signature does not verify (the provider rotated keys).
    client: tokio::sync::Mutex<Option<Arc<Rp>>>,
    /// The key pending sign-ins are signed with (the database's, read once).
    state_key: tokio::sync::OnceCell<Vec<u8>>,
    redirect_url: String,
}

impl OidcClient {
    pub fn new(settings: OidcSettings, public_url: &str) -> OidcClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        OidcClient {
            settings,
            agent,
            client: tokio::sync::Mutex::new(None),
            state_key: tokio::sync::OnceCell::new(),
            redirect_url: format!("{}/auth/oidc/callback", public_url.trim_end_matches('/')),
        }
    }

    /// Fetches the provider's metadata and keys (OpenID Connect Discovery).
    pub async fn discover(&self) -> Result<(), String> {
        self.fresh_client().await.map(|_| ())
    }

    async fn fresh_client(&self) -> Result<Arc<Rp>, String> {
        let s = &self.settings;
        let issuer = IssuerUrl::new(s.issuer.clone())
            .map_err(|e| format!("--oidc-issuer {:?}: {e}", s.issuer))?;
        let http = http_client(self.agent.clone());
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| {
                format!(
                    "OpenID discovery at {}/.well-known/openid-configuration failed: {e}",
                    s.issuer
                )
            })?;
        let redirect = RedirectUrl::new(self.redirect_url.clone())
            .map_err(|e| format!("--public-url: {e}"))?;
        let client: Rp = Client::from_provider_metadata(
            metadata,
            ClientId::new(s.client_id.clone()),
            Some(ClientSecret::new(s.client_secret.clone())),
        )
        .set_redirect_uri(redirect);
        let client = Arc::new(client);
        *self.client.lock().await = Some(client.clone());
        Ok(client)
    }

    async fn client(&self) -> Result<Arc<Rp>, String> {
        if let Some(c) = self.client.lock().await.clone() {
            return Ok(c);
        }
        self.fresh_client().await
    }

    /// The deployment's key for pending sign-ins: made once (by whichever replica asks first)
    /// and kept in the database's settings.
    async fn state_key(&self, store: &crate::storage::Store) -> Result<Vec<u8>, String> {
        self.state_key
            .get_or_try_init(|| async {
                let fresh = random_secret("");
                store
                    .setting_or_insert(STATE_KEY_SETTING, &fresh)
                    .await
                    .map(String::into_bytes)
                    .map_err(|e| format!("cannot read the sign-in key: {e}"))
            })
            .await
            .cloned()
    }
}

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

/// `GET /auth/oidc/start`: to the provider.
pub async fn start(State(auth): State<Auth>, Query(q): Query<StartQuery>) -> Response {
    let Some(oidc) = auth.oidc() else {
        return Redirect::to("/login?error=no_sso").into_response();
    };
    let client = match oidc.client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "single sign-on: the provider cannot be reached");
            return Redirect::to("/login?error=sso_provider").into_response();
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("groups".into()))
        .set_pkce_challenge(challenge)
        .url();
    let key = match oidc.state_key(auth.store()).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "single sign-on: no key for the sign-in state");
            return Redirect::to("/login?error=sso_provider").into_response();
        }
    };
    let sealed = seal(
        &key,
        &Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            next: safe_next(q.next.as_deref()),
            started: crate::auth::now_unix(),
        },
    );
    let secure = if auth.settings().https() {
        "; Secure"
    } else {
        ""
    };
    let mut res = Redirect::to(url.as_str()).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{BINDING_COOKIE}={sealed}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            PENDING_FOR.as_secs()
        ))
        .expect("ASCII cookie"),
    );
    res
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/oidc/callback`: back from the provider.
pub async fn callback(
    State(auth): State<Auth>,
    Extension(RequestPeer(peer)): Extension<RequestPeer>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = auth.oidc() else {
        return Redirect::to("/login?error=no_sso").into_response();
    };
    let address = peer.map(|p| p.to_string());
    let store = auth.store();
    let refuse = |code: &'static str, detail: String| {
        let address = address.clone();
        async move {
            store
                .audit(AuditRecord {
                    actor: "anonymous".into(),
                    action: "sign_in_failed",
                    target: "single sign-on".into(),
                    refused: true,
                    detail,
                    address,
                    ..Default::default()
                })
                .await;
            let mut res = Redirect::to(&format!("/login?error={code}")).into_response();
            res.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "caplens_oidc=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0",
                ),
            );
            res
        }
    };
    // The state names a sign-in this deployment started, from this browser: the browser's
    // signed cookie holds it.
    let key = match oidc.state_key(store).await {
        Ok(k) => k,
        Err(e) => return refuse("sso_provider", e).await,
    };
    let Some(pending) =
        cookie(&headers, BINDING_COOKIE).and_then(|c| open(&key, c, crate::auth::now_unix()))
    else {
        return refuse(
            "sso",
            "no sign-in was started from this browser, or it expired".into(),
        )
        .await;
    };
    if q.state
        .as_deref()
        .map(str::as_bytes)
        .is_none_or(|s| !constant_eq(s, pending.state.as_bytes()))
    {
        return refuse(
            "sso",
            "the state does not match the sign-in this browser started".into(),
        )
        .await;
    }
    if let Some(error) = q.error {
        return refuse(
            "sso_provider",
            format!(
                "the provider answered {}",
                error.chars().take(100).collect::<String>()
            ),
        )
        .await;
    }
    let Some(code) = q.code else {
        return refuse("sso", "no code in the callback".into()).await;
    };
    let client = match oidc.client().await {
        Ok(c) => c,
        Err(e) => return refuse("sso_provider", e).await,
    };
    let http = http_client(oidc.agent.clone());
    let exchange = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(e) => e,
        Err(e) => {
            return refuse(
                "sso_provider",
                format!("the provider has no token endpoint: {e}"),
            )
            .await
        }
    };
    let token = match exchange
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
        .request_async(&http)
        .await
    {
        Ok(t) => t,
        Err(e) => return refuse("sso_provider", format!("exchanging the code failed: {e}")).await,
    };
    let Some(id_token) = token.id_token() else {
        return refuse("sso_provider", "the provider sent no ID token".into()).await;
    };
    let nonce = Nonce::new(pending.nonce);
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(c) => c.clone(),
        Err(first) => {
            // The provider may have rotated its keys: discover again, verify once more.
            match oidc.fresh_client().await {
                Ok(c) => match id_token.claims(&c.id_token_verifier(), &nonce) {
                    Ok(c) => c.clone(),
                    Err(e) => {
                        return refuse(
                            "sso",
                            format!("the ID token does not verify: {e} ({first})"),
                        )
                        .await
                    }
                },
                Err(e) => return refuse("sso_provider", e).await,
            }
        }
    };
    let subject = format!("{} {}", oidc.settings.issuer, claims.subject().as_str());
    let email = claims.email().map(|e| e.as_str().to_owned());
    let verified = claims.email_verified() == Some(true);
    let display = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned());
    let groups = claims.additional_claims().groups.clone();
    let allowed = &oidc.settings.allowed_domains;
    if !allowed.is_empty() {
        let domain_ok = verified
            && email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .is_some_and(|(_, d)| allowed.iter().any(|a| a.eq_ignore_ascii_case(d)));
        if !domain_ok {
            return refuse(
                "sso_denied",
                format!(
                    "{} ({}) is not in an allowed email domain",
                    email.as_deref().unwrap_or("no email"),
                    if verified { "verified" } else { "unverified" }
                ),
            )
            .await;
        }
    }
    let user = match store.user_by_subject(&subject).await {
        Ok(Some(u)) => u.row,
        Ok(None) => {
            let preferred = claims
                .preferred_username()
                .map(|u| u.as_str().to_owned())
                .or_else(|| {
                    email
                        .as_deref()
                        .and_then(|e| e.split('@').next())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| claims.subject().as_str().to_owned());
            match store
                .create_sso_user(
                    &subject,
                    &preferred,
                    email.as_deref().filter(|_| verified),
                    display.as_deref(),
                )
                .await
            {
                Ok(u) => {
                    store
                        .audit(AuditRecord {
                            user_id: Some(u.id),
                            actor: u.name.clone(),
                            action: "user_created",
                            target: format!("user {}", u.name),
                            detail: "first single sign-on".into(),
                            address: address.clone(),
                            ..Default::default()
                        })
                        .await;
                    u
                }
                Err(e) => {
                    return refuse("sso_denied", format!("cannot create the account: {e}")).await
                }
            }
        }
        Err(e) => return refuse("sso_provider", format!("cannot read users: {e}")).await,
    };
    if user.disabled {
        return refuse("sso_denied", format!("user {} is disabled", user.name)).await;
    }
    if let Some(group) = &oidc.settings.admin_group {
        let admin = groups.iter().any(|g| g == group);
        if admin != user.is_admin {
            let _ = store.set_user_admin(user.id, admin).await;
            store
                .audit(AuditRecord {
                    user_id: Some(user.id),
                    actor: user.name.clone(),
                    action: "role_changed",
                    target: format!("user {}", user.name),
                    detail: format!(
                        "site admin {} (group {group})",
                        if admin { "granted" } else { "revoked" }
                    ),
                    address: address.clone(),
                    ..Default::default()
                })
                .await;
        }
    }
    let _ = store
        .set_user_email(
            user.id,
            email.as_deref().filter(|_| verified),
            display.as_deref(),
        )
        .await;
    let session = match auth.start_session(user.id, address.as_deref()).await {
        Ok(c) => c,
        Err(e) => return refuse("sso_provider", format!("cannot store the session: {e}")).await,
    };
    store
        .audit(AuditRecord {
            user_id: Some(user.id),
            actor: user.name.clone(),
            action: "sign_in",
            target: format!("user {}", user.name),
            detail: "single sign-on".into(),
            address,
            ..Default::default()
        })
        .await;
    let mut res = Redirect::to(&pending.next).into_response();
    res.headers_mut().append(header::SET_COOKIE, session);
    res.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "caplens_oidc=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    res
}

#[cfg(test)]
mod state_cookie_tests {
    use super::*;

    fn pending(started: u64) -> Pending {
        Pending {
            state: "st".into(),
            nonce: "no".into(),
            verifier: "ve".into(),
            next: "/x".into(),
            started,
        }
    }

    #[test]
    fn the_state_cookie_opens_only_with_its_key_unchanged_and_in_time() {
        let key = b"deployment key";
        let sealed = seal(key, &pending(1000));
        assert_eq!(open(key, &sealed, 1001), Some(pending(1000)));
        assert_eq!(
            open(b"another key", &sealed, 1001),
            None,
            "another deployment's key"
        );
        assert_eq!(
            open(key, &sealed, 1000 + PENDING_FOR.as_secs()),
            None,
            "expired"
        );
        assert_eq!(open(key, &sealed, 999), None, "from the future");
        // Any change to the payload breaks the signature.
        let (payload, tag) = sealed.split_once('.').unwrap();
        let forged = seal(
            b"attacker",
            &Pending {
                next: "//evil".into(),
                ..pending(1000)
            },
        );
        let forged_payload = forged.split_once('.').unwrap().0;
        assert_eq!(open(key, &format!("{forged_payload}.{tag}"), 1001), None);
        assert_eq!(open(key, &format!("{payload}x.{tag}"), 1001), None);
        assert_eq!(open(key, "garbage", 1001), None);
    }
}
