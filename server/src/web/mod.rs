//! The HTTP surface: Leptos pages (SSR + hydration), static files, `/healthz`, `/theme` and the
//! REST API under `/api/v1`. Handlers parse the request, call one operation (`ops`) and render
//! its answer; every route but the pages is in one table (`routes`) with the rule of who may
//! call it.

pub mod api;
pub mod caller;
pub mod error;
pub mod evals;
pub mod export;
pub mod imports;
pub mod middleware;
pub mod pages;
pub mod review;
pub mod routes;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use axum::{
    extract::{FromRef, State},
    http::{header, HeaderValue, Request, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Form, Json, Router,
};
use caplens_app::{
    components::theme::{Theme, THEME_COOKIE},
    data::SharedDataSource,
    shell, App,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use serde::Deserialize;
use tower_http::{
    compression::CompressionLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    services::ServeDir,
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::auth::{Auth, AuthSettings};
use crate::ingest::service::ImportService;
use crate::storage::Store;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub imports: ImportService,
    pub views: crate::views::ViewService,
    pub auth: Auth,
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Self {
        state.store.clone()
    }
}

/// Builds the whole application router with the default authentication: local mode while the
/// database has no account, every request authenticated once one exists.
pub fn router(imports: ImportService, site_root: &Path, addr: SocketAddr) -> Router {
    let auth = Auth::new(imports.store().clone(), AuthSettings::default());
    router_with_auth(imports, site_root, addr, auth)
}

/// Builds the whole application router. Every request passes `auth::authenticate` (principal,
/// cross-site refusal, sign-in gate) and gets the security headers.
static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The process is stopping: long-lived responses (SSE streams) end at their next tick, so that
/// the graceful shutdown's wait for in-flight requests ends. Clients reconnect to another
/// replica.
pub fn begin_shutdown() {
    SHUTTING_DOWN.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub fn shutting_down() -> bool {
    SHUTTING_DOWN.load(std::sync::atomic::Ordering::SeqCst)
}

pub fn router_with_auth(
    imports: ImportService,
    site_root: &Path,
    addr: SocketAddr,
    auth: Auth,
) -> Router {
    let store = imports.store().clone();
    let leptos_options = LeptosOptions::builder()
        .output_name("caplens")
        .site_root(site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .env(leptos::config::Env::PROD)
        .build();
    let state = AppState {
        leptos_options: leptos_options.clone(),
        store: store.clone(),
        imports,
        views: crate::views::ViewService::new(store.clone()),
        auth: auth.clone(),
    };
    let source: SharedDataSource = Arc::new(pages::StoreSource::new(
        store,
        state.imports.clone(),
        state.views.clone(),
        auth.clone(),
    ));
    let context = move || provide_context(source.clone());
    let page_routes = route_list();

    // The wasm/JS/CSS keep fixed names across builds, so browsers revalidate them (cheap 304s via
    // Last-Modified) instead of caching blindly; an upgraded server never hydrates with old wasm.
    let pkg = Router::new()
        .fallback_service(ServeDir::new(site_root.join("pkg")).precompressed_gzip())
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=0, must-revalidate"),
        ));

    // Every route of the table; the API's under /api, where unknown routes and methods get JSON.
    let mut api = Router::new();
    let mut site = Router::new();
    for r in routes::routes() {
        match r.path.strip_prefix("/api") {
            Some(rest) => api = api.route(rest, r.handler),
            None => site = site.route(r.path, r.handler),
        }
    }
    let api = api
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed);
    site.nest("/api", api)
        .nest_service("/pkg", pkg)
        .leptos_routes_with_context(&state, page_routes, context.clone(), {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            middleware::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            middleware::security_headers,
        ))
        .layer(CompressionLayer::new())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                let uri = middleware::redacted_uri(req.uri());
                tracing::info_span!("request", method = %req.method(), uri = %uri, request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The app's routes, generated once per process. Route generation renders the app with
/// resource loading suppressed through a process-global flag (leptos_server's
/// `SuppressResourceLoad`); a resource first polled by a concurrent page render during that
/// window never resolves (leptos issue #4773). Generating once, before any router exists, means
/// no render can overlap it — which matters whenever several routers live in one process (tests).
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The paths of every page route (`/experiments/:slug`, …), as the router serves them: what
/// the authorisation matrix test walks.
pub fn page_paths() -> Vec<String> {
    route_list().iter().map(|r| r.path().to_owned()).collect()
}

#[derive(serde::Serialize)]
pub(super) struct Health {
    status: &'static str,
    database: &'static str,
}

/// Liveness: the process answers (a load balancer restarts it when it does not). It does not
/// touch the database, so that a database outage does not restart every replica.
pub(super) async fn healthz(State(store): State<Store>) -> Response {
    let database = match store.backend {
        crate::config::Backend::Sqlite => "sqlite",
        crate::config::Backend::Postgres => "postgres",
    };
    Json(Health {
        status: "ok",
        database,
    })
    .into_response()
}

#[derive(serde::Serialize)]
pub(super) struct Readiness {
    status: &'static str,
    database: String,
    blobs: String,
}

/// Readiness: the database answers and the blob store takes a write, each within 2 s; a load
/// balancer sends requests only to a replica that is ready. 503 says which one is not.
pub(super) async fn readyz(State(store): State<Store>) -> Response {
    let (database, blobs) = tokio::join!(within_2s(store.ping()), within_2s(store.blobs.probe()));
    let ready = database == "ok" && blobs == "ok";
    let body = Json(Readiness {
        status: if ready { "ready" } else { "not ready" },
        database,
        blobs,
    });
    if ready {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// "ok", or "unavailable: why" (an error, or no answer within 2 s).
async fn within_2s(
    check: impl std::future::Future<Output = Result<(), crate::error::StoreError>>,
) -> String {
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => format!("unavailable: {e}"),
        Err(_) => "unavailable: no answer within 2 s".to_string(),
    }
}

#[derive(Deserialize)]
pub(super) struct ThemeForm {
    theme: String,
    back: Option<String>,
}

/// The no-JavaScript theme switch: store the choice in a cookie and go back.
pub(super) async fn set_theme(Form(form): Form<ThemeForm>) -> Response {
    let theme = Theme::parse(&form.theme);
    let back = form
        .back
        .filter(|b| crate::auth::is_local_path(b))
        .unwrap_or_else(|| "/".to_string());
    let cookie = format!(
        "{THEME_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        theme.as_str()
    );
    let mut res = Redirect::to(&back).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie text is ASCII"),
    );
    res
}

#[cfg(test)]
mod tests {
    use crate::auth::is_local_path;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        for ok in [
            "/",
            "/models",
            "/experiments/demo-rlvr-boundary?k=16#top",
            "/a%20b",
        ] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "models",
            "//evil.example",
            "/\\evil.example",
            "/\tevil",
            "/\u{1}",
            "https://evil.example",
            "/a b",
            "/\r\nSet-Cookie:x",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }
}
