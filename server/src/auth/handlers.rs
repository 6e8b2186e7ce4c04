//! The sign-in routes under `/auth/` (plain HTML forms post here, so they work without
//! JavaScript): password sign-in, sign-out (this session or everywhere), first-admin setup.
//! Outcomes go back to the pages as redirects with a short error code (`/login?error=bad`),
//! never reflected text.

use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use serde::Deserialize;

use super::{
    cookie, password, percent_encode, ratelimit::wait_text, sha256_hex, Auth, Principal,
    RequestPeer, SESSION_COOKIE,
};
use crate::storage::access::AuditRecord;

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// Where to go after signing in: a local path only (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| super::is_local_path(n) && !n.starts_with("/login"))
        .unwrap_or("/")
        .to_owned()
}

fn back_to_login(error: &str, next: &str) -> Response {
    Redirect::to(&format!(
        "/login?error={error}&next={}",
        percent_encode(next)
    ))
    .into_response()
}

pub async fn login(
    State(auth): State<Auth>,
    Extension(RequestPeer(peer)): Extension<RequestPeer>,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let address = peer.map(|p| p.to_string());
    let name = form.name.trim().to_owned();
    let store = auth.store();
    let refuse = |detail: &str| AuditRecord {
        actor: name.clone(),
        action: "sign_in_failed",
        target: format!("user {name}"),
        refused: true,
        detail: detail.to_owned(),
        address: address.clone(),
        ..Default::default()
    };
    let user = match store.user_by_name(&name).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "sign-in: cannot read users");
            return back_to_login("server", &next);
        }
    };
    // Recorded before the password is verified: concurrent guesses cannot all get through.
    let attempt = match auth
        .limits()
        .begin_sign_in(address.as_deref(), user.as_ref().map(|u| u.row.id))
        .await
    {
        Ok(Ok(attempt)) => attempt,
        Ok(Err(wait)) => {
            store
                .audit(refuse(&format!(
                    "rate limited: too many failed sign-ins ({})",
                    wait_text(wait)
                )))
                .await;
            return back_to_login("limited", &next);
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in: cannot record the attempt");
            return back_to_login("server", &next);
        }
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let given = form.password;
    let ok = tokio::task::spawn_blocking(move || password::verify(&given, stored.as_deref()))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        store.audit(refuse("wrong name or password")).await;
        return back_to_login("bad", &next);
    };
    attempt.succeeded().await;
    if user.row.disabled {
        store.audit(refuse("the account is disabled")).await;
        return back_to_login("disabled", &next);
    }
    let cookie = match auth.start_session(user.row.id, address.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "sign-in: cannot store the session");
            return back_to_login("server", &next);
        }
    };
    store
        .audit(AuditRecord {
            user_id: Some(user.row.id),
            actor: user.row.name.clone(),
            action: "sign_in",
            target: format!("user {}", user.row.name),
            detail: "password".into(),
            address,
            ..Default::default()
        })
        .await;
    let mut res = Redirect::to(&next).into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    res
}

#[derive(Deserialize)]
pub struct LogoutForm {
    /// `1`: end every session of the user, not only this one.
    everywhere: Option<String>,
}

pub async fn logout(
    State(auth): State<Auth>,
    Extension(principal): Extension<Principal>,
    Extension(RequestPeer(peer)): Extension<RequestPeer>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let store = auth.store();
    let everywhere = form.everywhere.as_deref() == Some("1");
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        let _ = store.end_session(&sha256_hex(secret)).await;
    }
    if let (true, Some(user_id)) = (everywhere, principal.user_id) {
        let _ = store.end_user_sessions(user_id).await;
    }
    if principal.user_id.is_some() {
        store
            .audit(AuditRecord {
                user_id: principal.user_id,
                actor: principal.name.clone(),
                action: "sign_out",
                target: format!("user {}", principal.name),
                detail: if everywhere {
                    "every session"
                } else {
                    "this session"
                }
                .into(),
                address: peer.map(|p| p.to_string()),
                ..Default::default()
            })
            .await;
    }
    let mut res = Redirect::to("/login?signed_out=1").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, auth.session_cookie("", None));
    res
}

#[derive(Deserialize)]
pub struct SetupForm {
    secret: String,
    name: String,
    password: String,
}

/// The one-time setup link's form: creates the first site admin and signs them in.
pub async fn setup(
    State(auth): State<Auth>,
    Extension(RequestPeer(peer)): Extension<RequestPeer>,
    Form(form): Form<SetupForm>,
) -> Response {
    let back = |error: &str| {
        Redirect::to(&format!(
            "/setup?secret={}&error={error}",
            percent_encode(&form.secret)
        ))
        .into_response()
    };
    if !auth.setup_pending(&form.secret) {
        return Redirect::to("/login?error=setup").into_response();
    }
    if password::check_strength(&form.password).is_err() {
        return back("weak");
    }
    if crate::storage::access::valid_name("user", form.name.trim()).is_err() {
        return back("name");
    }
    if !auth.take_setup_secret(&form.secret) {
        return Redirect::to("/login?error=setup").into_response();
    }
    let pw = form.password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .expect("hashing thread");
    let store = auth.store();
    let user = match store
        .create_user(form.name.trim(), None, Some(&hash), true)
        .await
    {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "setup: cannot create the admin");
            return Redirect::to("/login?error=setup").into_response();
        }
    };
    let address = peer.map(|p| p.to_string());
    store
        .audit(AuditRecord {
            user_id: Some(user.id),
            actor: user.name.clone(),
            action: "user_created",
            target: format!("user {}", user.name),
            detail: "first site admin, through the setup link".into(),
            address: address.clone(),
            ..Default::default()
        })
        .await;
    let Ok(cookie) = auth.start_session(user.id, address.as_deref()).await else {
        return Redirect::to("/login").into_response();
    };
    let mut res = Redirect::to("/").into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    res
}
