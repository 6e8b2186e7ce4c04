//! The route table: every route the server answers besides the Leptos pages and server
//! functions, with the rule that says who may call it. The router is built from this table
//! (`web::router_with_auth`), and the authorisation matrix (`server/tests/access.rs`) walks the
//! same table, so a route cannot exist without a rule, nor escape the matrix.

use axum::{
    extract::DefaultBodyLimit,
    http::Method,
    routing::{delete, get, post, put, MethodRouter},
};

use super::AppState;

/// Who may call a route. The matrix test turns each into the answer every kind of principal
/// must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Load-balancer probes: everyone, credentials unread.
    Probe,
    /// Anyone, signed in or not (sign-in forms, static files, share links).
    Public,
    /// Any signed-in principal (lists are filtered to the projects it reads).
    SignedIn,
    /// Needs upload rights somewhere: an editor of some project (format detection).
    Upload,
    /// Reads a resource of a project: its readers.
    Read,
    /// Changes something in a project: its editors.
    Edit,
    /// Comments and labels: editors, and viewers where the project allows it.
    Review,
    /// Adds or changes an engine: site admins, or project admins where the project allows it.
    Engines,
    /// The audit log: site admins everything, project admins their projects'.
    Audit,
    /// Site administration.
    Site,
}

/// One route: method, path (axum's syntax), rule, handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub rule: Rule,
    pub(super) handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, rule: Rule, handler: MethodRouter<AppState>) -> Route {
    Route {
        method,
        path,
        rule,
        handler,
    }
}

/// Every route but the pages and server functions.
pub fn routes() -> Vec<Route> {
    use super::{api, evals, export, imports, review};
    use crate::auth::{handlers, oidc};
    use Method as M;
    use Rule::*;
    vec![
        // The process and the site.
        route(M::GET, "/healthz", Probe, get(super::healthz)),
        route(M::GET, "/readyz", Probe, get(super::readyz)),
        route(M::POST, "/theme", Public, post(super::set_theme)),
        route(M::GET, "/s/{secret}", Public, get(review::open_share_link)),
        // Signing in (plain forms; answers are redirects).
        route(M::POST, "/auth/login", Public, post(handlers::login)),
        route(M::POST, "/auth/logout", Public, post(handlers::logout)),
        route(M::POST, "/auth/setup", Public, post(handlers::setup)),
        route(M::GET, "/auth/oidc/start", Public, get(oidc::start)),
        route(M::GET, "/auth/oidc/callback", Public, get(oidc::callback)),
        // Chart and RFT exports.
        route(
            M::GET,
            "/export/experiments/{slug}/{view}/{file}",
            Read,
            get(export::export_chart),
        ),
        route(
            M::GET,
            "/export/experiments/{slug}/rft.jsonl",
            Read,
            get(export::export_rft),
        ),
        // REST API v1: the catalog and the read API.
        route(
            M::GET,
            "/api/v1/experiments",
            SignedIn,
            get(api::experiments),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}",
            Read,
            get(api::experiment),
        ),
        route(M::GET, "/api/v1/models", SignedIn, get(api::models)),
        route(M::GET, "/api/v1/datasets", SignedIn, get(api::datasets)),
        route(
            M::GET,
            "/api/v1/datasets/{id}/problems",
            Read,
            get(api::dataset_problems),
        ),
        route(
            M::POST,
            "/api/v1/datasets",
            Edit,
            post(evals::upload_dataset).layer(DefaultBodyLimit::max(
                crate::evals::datasets::MAX_DATASET_BYTES + 1,
            )),
        ),
        route(M::GET, "/api/v1/runs", SignedIn, get(api::runs)),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/passk",
            Read,
            get(api::experiment_passk),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/unsolvable",
            Read,
            get(api::experiment_unsolvable),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/summary",
            Read,
            get(api::experiment_summary),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/problems",
            Read,
            get(api::experiment_problems),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/problems.csv",
            Read,
            get(api::experiment_problems_csv),
        ),
        route(M::GET, "/api/v1/openapi.json", SignedIn, get(api::openapi)),
        route(M::GET, "/api/v1/audit", Audit, get(api::audit)),
        // Imports.
        route(
            M::POST,
            "/api/v1/imports",
            Edit,
            post(imports::create_import).layer(DefaultBodyLimit::disable()),
        ),
        route(
            M::GET,
            "/api/v1/imports",
            SignedIn,
            get(imports::list_imports),
        ),
        route(
            M::POST,
            "/api/v1/imports/detect",
            Upload,
            post(imports::detect).layer(DefaultBodyLimit::max(
                crate::ingest::SNIFF_BYTES + 64 * 1024,
            )),
        ),
        route(
            M::GET,
            "/api/v1/imports/{id}",
            Read,
            get(imports::get_import),
        ),
        route(
            M::POST,
            "/api/v1/imports/{id}/retry",
            Edit,
            post(imports::retry_import),
        ),
        route(M::GET, "/api/v1/formats", SignedIn, get(imports::formats)),
        // Evaluations, engines, interventions.
        route(M::POST, "/api/v1/evals", Edit, post(evals::start)),
        route(M::GET, "/api/v1/evals", SignedIn, get(evals::list)),
        route(M::GET, "/api/v1/evals/{id}", Read, get(evals::one)),
        route(
            M::GET,
            "/api/v1/evals/{id}/events",
            Read,
            get(evals::events),
        ),
        route(
            M::POST,
            "/api/v1/evals/{id}/cancel",
            Edit,
            post(evals::cancel),
        ),
        route(
            M::POST,
            "/api/v1/evals/{id}/resume",
            Edit,
            post(evals::resume),
        ),
        route(M::GET, "/api/v1/engines", SignedIn, get(evals::engines)),
        route(M::POST, "/api/v1/engines", Engines, post(evals::add_engine)),
        route(
            M::POST,
            "/api/v1/evals/{id}/interventions",
            Edit,
            post(evals::intervene_run),
        ),
        route(
            M::POST,
            "/api/v1/rollouts/{id}/interventions",
            Edit,
            post(evals::intervene_rollout),
        ),
        route(
            M::GET,
            "/api/v1/interventions/{id}",
            Read,
            get(evals::intervention),
        ),
        // Team review.
        route(
            M::POST,
            "/api/v1/experiments/{slug}/overrides",
            Edit,
            post(review::add_override),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/overrides",
            Read,
            get(review::list_overrides),
        ),
        route(
            M::DELETE,
            "/api/v1/overrides/{id}",
            Edit,
            delete(review::delete_override),
        ),
        route(
            M::PUT,
            "/api/v1/experiments/{slug}/problems/{key}/labels",
            Review,
            put(review::set_labels),
        ),
        route(
            M::POST,
            "/api/v1/experiments/{slug}/judgements",
            Review,
            post(review::post_judgement),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/judgements",
            Read,
            get(review::list_judgements),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/agreement",
            Read,
            get(review::agreement),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/comments",
            Read,
            get(review::list_comments),
        ),
        route(
            M::POST,
            "/api/v1/experiments/{slug}/comments",
            Review,
            post(review::post_comment),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/comments/events",
            Read,
            get(review::comment_events),
        ),
        route(
            M::POST,
            "/api/v1/threads/{id}/comments",
            Review,
            post(review::reply),
        ),
        route(
            M::POST,
            "/api/v1/threads/{id}/resolve",
            Review,
            post(review::resolve),
        ),
        route(
            M::POST,
            "/api/v1/experiments/{slug}/share-links",
            Edit,
            post(review::create_share_link),
        ),
        route(
            M::DELETE,
            "/api/v1/share-links/{id}",
            Edit,
            delete(review::revoke_share_link),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/review.jsonl",
            Read,
            get(review::export_jsonl),
        ),
        route(
            M::GET,
            "/api/v1/experiments/{slug}/review.csv",
            Read,
            get(review::export_csv),
        ),
        route(
            M::POST,
            "/api/v1/experiments/{slug}/review",
            Edit,
            post(review::import_review),
        ),
    ]
}

/// (method, path, rule) of every route: what the authorisation matrix walks.
pub fn table() -> Vec<(Method, &'static str, Rule)> {
    routes()
        .into_iter()
        .map(|r| (r.method, r.path, r.rule))
        .collect()
}

/// The rule of every page (Leptos route): the matrix test fails on a page missing here.
pub fn page_rule(path: &str) -> Option<Rule> {
    use Rule::*;
    Some(match path {
        "/login" | "/setup" => Public,
        "/" | "/experiments" | "/models" | "/datasets" | "/runs" | "/upload" | "/evals"
        | "/tokens" | "/projects" | "/inbox" | "/glossary" | "/docs/{*name}" => SignedIn,
        "/experiments/{slug}"
        | "/experiments/{slug}/passk"
        | "/experiments/{slug}/unsolvable"
        | "/experiments/{slug}/problems"
        | "/experiments/{slug}/compare"
        | "/experiments/{slug}/token-stats"
        | "/experiments/{slug}/dynamics"
        | "/experiments/{slug}/rft"
        | "/problems/{id}"
        | "/datasets/{id}"
        | "/rollouts/{id}"
        | "/evals/{id}"
        | "/projects/{slug}"
        | "/experiments/{slug}/review"
        | "/experiments/{slug}/discussion"
        | "/experiments/{slug}/agreement"
        | "/experiments/{slug}/settings" => Read,
        "/admin/users" => Site,
        "/admin/audit" => Audit,
        _ => return None,
    })
}
