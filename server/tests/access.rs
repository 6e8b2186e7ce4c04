//! Access control (issue 14), on SQLite and PostgreSQL: the authorisation matrix (every route
//! the router serves × every kind of principal, with the expected status), cross-site refusal,
//! sign-in and sessions, tokens, security headers and local mode.
//!
//! The routes come from what the router is built from: every non-page route from the route
//! table (`web::routes`: method, path and the rule of who may call it), page routes from
//! Leptos' route list with their rules (`web::routes::page_rule`; a page without one fails the
//! test), server functions from the server-function registry. A route cannot exist without a
//! rule, so it cannot escape the matrix.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
    Router,
};
use caplens_app::evals::EvalStartRequest;
use caplens_server::{
    auth::{password, Auth},
    ingest::{
        pipeline::{new_import_id, run_import, ImportFile, ImportParams, ImportProgress},
        service::ImportService,
        InputFile,
    },
    storage::{access::Role, tokens::TokenSpec, Store},
    web,
};
use common::TestDb;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Viewer,
    Editor,
    ProjectAdmin,
    OtherProjectAdmin,
    SiteAdmin,
    ReadToken,
    WriteToken,
    RevokedToken,
}

const EVERYONE: [Who; 9] = [
    Who::Anonymous,
    Who::Viewer,
    Who::Editor,
    Who::ProjectAdmin,
    Who::OtherProjectAdmin,
    Who::SiteAdmin,
    Who::ReadToken,
    Who::WriteToken,
    Who::RevokedToken,
];

use caplens_server::web::routes::Rule;

/// What the response must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Status(u16),
    /// Authorised: anything but 401, 403 and 404 (a bad body may still be 400, a state 409).
    Allowed,
}

/// Routes whose concrete URI in this world names something that does not exist (the matrix
/// has no intervention, override, share link or thread): every signed-in principal gets 404.
const MISSING: [&str; 5] = [
    "/api/v1/interventions/{id}",
    "/api/v1/overrides/{id}",
    "/api/v1/share-links/{id}",
    "/api/v1/threads/{id}/comments",
    "/api/v1/threads/{id}/resolve",
];

/// The rule of a route (method, route pattern): the route table's, or the page's. Panics for a
/// page without a rule.
fn rule(method: &Method, route: &str) -> Rule {
    if let Some((_, _, r)) = web::routes::table()
        .into_iter()
        .find(|(m, p, _)| m == method && *p == route)
    {
        return r;
    }
    if route == "/pkg" {
        return Rule::Public;
    }
    web::routes::page_rule(route).unwrap_or_else(|| {
        panic!("{method} {route} has no rule: give the page one in web::routes::page_rule")
    })
}

fn expect(rule: Rule, route: &str, who: Who, page: bool) -> Expect {
    use Expect::*;
    use Who::*;
    if rule == Rule::Probe {
        return Allowed;
    }
    // A refused credential is refused everywhere else, before anything else.
    if who == RevokedToken {
        return Status(401);
    }
    let anonymous = if page { Status(303) } else { Status(401) };
    let hidden = Status(404);
    if MISSING.contains(&route) && rule != Rule::Public {
        return match who {
            Anonymous => anonymous,
            _ => hidden,
        };
    }
    match rule {
        Rule::Probe | Rule::Public => Allowed,
        Rule::SignedIn => match who {
            Anonymous => anonymous,
            _ => Allowed,
        },
        // Upload rights somewhere: an editor of any project (project B's admin too).
        Rule::Upload => match who {
            Anonymous => anonymous,
            Viewer | ReadToken => Status(403),
            _ => Allowed,
        },
        Rule::Read => match who {
            Anonymous => anonymous,
            OtherProjectAdmin => hidden,
            _ => Allowed,
        },
        // Project A does not let viewers comment: reviewing is an editor's right there.
        Rule::Edit | Rule::Review => match who {
            Anonymous => anonymous,
            OtherProjectAdmin => hidden,
            Viewer | ReadToken => Status(403),
            _ => Allowed,
        },
        // Project A leaves its engines to site admins (engine_admins off); tokens never.
        Rule::Engines => match who {
            Anonymous => anonymous,
            OtherProjectAdmin => hidden,
            SiteAdmin => Allowed,
            _ => Status(403),
        },
        Rule::Audit => match who {
            Anonymous => anonymous,
            ProjectAdmin | OtherProjectAdmin | SiteAdmin => Allowed,
            // Pages hide what the user may not see; the API says why.
            _ if page => hidden,
            _ => Status(403),
        },
        Rule::Site => match who {
            Anonymous => anonymous,
            SiteAdmin => Allowed,
            _ if page => hidden,
            _ => Status(403),
        },
    }
}

/// A team server with two projects: A (the resources) and B; users of every role.
struct World {
    app: Router,
    store: Store,
    cookies: Vec<(Who, String)>,
    tokens: Vec<(Who, String)>,
    slug: String,
    import_id: String,
    run_id: i64,
    rollout_id: i64,
    problem_id: i64,
    dataset_id: i64,
    eval_id: i64,
}

async fn user(store: &Store, name: &str, admin: bool) -> i64 {
    let hash = password::hash("a long enough password");
    store
        .create_user(name, None, Some(&hash), admin)
        .await
        .unwrap()
        .id
}

async fn world(db: &TestDb) -> World {
    let store = db.store.clone();
    let a = store.create_project("proj-a", "A", false).await.unwrap().id;
    let b = store.create_project("proj-b", "B", false).await.unwrap().id;
    let viewer = user(&store, "vera", false).await;
    let editor = user(&store, "eddie", false).await;
    let padmin = user(&store, "pat", false).await;
    let other = user(&store, "oscar", false).await;
    let site = user(&store, "root", true).await;
    store.set_member(a, viewer, Role::Viewer).await.unwrap();
    store.set_member(a, editor, Role::Editor).await.unwrap();
    store.set_member(a, padmin, Role::Admin).await.unwrap();
    store.set_member(b, other, Role::Admin).await.unwrap();

    // Project A's data: an import (experiment, runs, rollouts, problems) and an evaluation.
    let dir = db.dir().join("world");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a.jsonl");
    let data = caplens_server::demo::generate::generate_demo(
        &caplens_server::demo::generate::DemoConfig {
            problems: 6,
            samples_per_problem: 4,
            traced_samples: 1,
            checkpoint_samples: 0,
            ..Default::default()
        },
    );
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    caplens_server::demo::write_native_jsonl(&data, &mut out).unwrap();
    drop(out);
    let input = InputFile::new(&file, "a.jsonl".to_string());
    let import_id = new_import_id();
    let report = run_import(
        &store,
        &import_id,
        vec![ImportFile {
            input: input.clone(),
            sha256: None,
        }],
        ImportParams {
            experiment: Some("exp-a".into()),
            project: Some("proj-a".into()),
            ..Default::default()
        },
        std::sync::Arc::new(ImportProgress::for_files(&[input])),
        None,
    )
    .await;
    assert!(report.runs.len() >= 2, "{:?}", report.message);
    let run_id = report.runs[0].id;
    let (rollout_id, problem_id): (i64, i64) =
        sqlx::query_as("SELECT id, problem_id FROM rollouts WHERE run_id = $1 ORDER BY id LIMIT 1")
            .bind(run_id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    let dataset_id: i64 = sqlx::query_scalar("SELECT dataset_id FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    caplens_server::evals::datasets::ensure_builtin(&store)
        .await
        .unwrap();
    let proj_a = store.project_id(Some("proj-a")).await.unwrap().unwrap();
    let eval_id = caplens_server::evals::start(
        &store,
        proj_a,
        &EvalStartRequest {
            project: Some("proj-a".into()),
            experiment: Some("evals-a".into()),
            limit: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap()[0];

    let auth = Auth::new(store.clone(), Default::default());
    let mut cookies = Vec::new();
    for (who, id) in [
        (Who::Viewer, viewer),
        (Who::Editor, editor),
        (Who::ProjectAdmin, padmin),
        (Who::OtherProjectAdmin, other),
        (Who::SiteAdmin, site),
    ] {
        let set = auth.start_session(id, None).await.unwrap();
        let cookie = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        cookies.push((who, cookie));
    }
    let token = |scope: &str| TokenSpec {
        name: format!("{scope} token"),
        user_id: Some(editor),
        project_id: a,
        scope: caplens_server::auth::TokenScope::parse(scope).unwrap(),
        expires_at: None,
    };
    let read = store.create_token_for(&token("read")).await.unwrap().secret;
    let write = store.create_token_for(&token("write")).await.unwrap();
    let revoked = store.create_token_for(&token("write")).await.unwrap();
    store.revoke_token(revoked.token.id).await.unwrap();
    let tokens = vec![
        (Who::ReadToken, read),
        (Who::WriteToken, write.secret),
        (Who::RevokedToken, revoked.secret),
    ];
    // A site root with one static file: /pkg is public.
    let site = db.dir().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    std::fs::write(site.join("pkg/caplens.css"), "body{}").unwrap();
    let app = web::router(
        ImportService::new(store.clone(), db.dir(), 1 << 30),
        &site,
        "127.0.0.1:0".parse().unwrap(),
    );
    World {
        app,
        store,
        cookies,
        tokens,
        slug: "exp-a".into(),
        import_id,
        run_id,
        rollout_id,
        problem_id,
        dataset_id,
        eval_id,
    }
}

impl World {
    /// A request as `who` sends it: session cookie (with this site's origin on writes, as a
    /// browser sends it) or bearer token.
    fn request(
        &self,
        who: Who,
        method: &Method,
        uri: &str,
        body: Body,
        content_type: &str,
    ) -> Request<Body> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::HOST, "caplens.test")
            .header(header::CONTENT_TYPE, content_type);
        if let Some((_, c)) = self.cookies.iter().find(|(w, _)| *w == who) {
            req = req
                .header(header::COOKIE, c)
                .header(header::ORIGIN, "http://caplens.test")
                .header("sec-fetch-site", "same-origin");
        }
        if let Some((_, t)) = self.tokens.iter().find(|(w, _)| *w == who) {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req.body(body).unwrap()
    }

    async fn send(&self, req: Request<Body>) -> (u16, String) {
        let res = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            self.app.clone().oneshot(req),
        )
        .await
        .expect("answers within 120 s")
        .unwrap();
        let status = res.status().as_u16();
        // SSE streams never end: only the status matters there.
        let is_stream = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
        let body = if is_stream {
            String::new()
        } else {
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        (status, body)
    }

    /// A concrete URI for a route pattern, and a body that passes authorisation but changes as
    /// little as possible.
    fn concrete(&self, method: &Method, route: &str) -> (String, Body, &'static str) {
        let id = if route.contains("/imports/") {
            self.import_id.clone()
        } else if route.contains("/rollouts/") {
            self.rollout_id.to_string()
        } else if route.contains("/problems/") {
            self.problem_id.to_string()
        } else if route.contains("/datasets/") {
            self.dataset_id.to_string()
        } else if route.contains("/interventions/") {
            "987654321".into()
        } else {
            self.eval_id.to_string()
        };
        let slug = if route.starts_with("/projects/") {
            "proj-a".to_owned()
        } else {
            self.slug.clone()
        };
        let mut uri = route
            .replace("{slug}", &slug)
            .replace(":slug", &slug)
            .replace("{id}", &id)
            .replace(":id", &id)
            .replace("{view}/{file}", "passk/passk.svg")
            .replace("{key}", &self.problem_id.to_string())
            .replace("{secret}", "cls_not_a_link")
            .replace("{*name}", "formats/native");
        if uri.ends_with("rft.jsonl") {
            uri = format!("{uri}?run={}", self.run_id);
        }
        if uri == "/pkg" {
            uri = "/pkg/caplens.css".into();
        }
        let json = "application/json";
        let (body, ct) = match (method.as_str(), route) {
            ("POST", "/api/v1/imports") => {
                uri.push_str("?project=proj-a");
                (Body::empty(), "application/x-ndjson")
            }
            ("POST", "/api/v1/datasets") => {
                uri.push_str("?project=proj-a&name=matrix-ds");
                (Body::from("not json\n"), "application/x-ndjson")
            }
            ("POST", "/api/v1/evals") => (Body::from(r#"{"project":"proj-a","n":0}"#), json),
            ("POST", "/api/v1/engines") => (
                Body::from(
                    r#"{"name":"matrix-engine","base_url":"http://127.0.0.1:9","model":"m","check":false,"project":"proj-a"}"#,
                ),
                json,
            ),
            ("POST", r) if r.starts_with("/auth/") || r == "/theme" => {
                (Body::from("x=1"), "application/x-www-form-urlencoded")
            }
            ("POST", _) => (Body::from("{}"), json),
            _ => (Body::empty(), json),
        };
        (uri, body, ct)
    }
}

/// Every route the router serves, with its method: the route table, the pages and `/pkg`.
fn routes() -> Vec<(Method, String)> {
    let mut out = BTreeSet::new();
    for page in web::page_paths() {
        out.insert(("GET".to_owned(), page));
    }
    for (method, path, _) in web::routes::table() {
        out.insert((method.as_str().to_owned(), path.to_owned()));
    }
    out.insert(("GET".into(), "/pkg".into()));
    // Signing out ends the principals' sessions: it goes last.
    let mut out: Vec<(String, String)> = out.into_iter().collect();
    out.sort_by_key(|(_, p)| p == "/auth/logout");
    out.into_iter()
        .map(|(m, p)| (Method::from_bytes(m.as_bytes()).unwrap(), p))
        .collect()
}

#[tokio::test]
async fn authorisation_matrix_covers_every_route_and_principal() {
    // Route generation renders the app once; do it before any request is served.
    let all_routes = routes();
    assert!(
        all_routes.len() > 45,
        "found only {} routes",
        all_routes.len()
    );
    for db in TestDb::all().await {
        let w = world(&db).await;
        let mut failures = Vec::new();
        let mut checked = 0;
        for (method, route) in &all_routes {
            let rule = rule(method, route);
            let page = !route.starts_with("/api/")
                && !route.starts_with("/export/")
                && *method == Method::GET;
            for who in EVERYONE {
                let (uri, body, ct) = w.concrete(method, route);
                let (status, text) = w.send(w.request(who, method, &uri, body, ct)).await;
                let ok = match expect(rule, route, who, page) {
                    Expect::Status(s) => status == s,
                    Expect::Allowed => !matches!(status, 401 | 403 | 404),
                };
                checked += 1;
                if !ok {
                    failures.push(format!(
                        "{method} {uri} as {who:?} ({rule:?}): got {status}, expected {:?}: {}",
                        expect(rule, route, who, page),
                        text.chars().take(160).collect::<String>()
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{}: {} of {checked} cells wrong:\n{}",
            db.name,
            failures.len(),
            failures.join("\n")
        );
        // The refusals of changes were audited.
        let refused: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE outcome = 'refused'")
                .fetch_one(w.store.pool())
                .await
                .unwrap();
        assert!(
            refused > 20,
            "{}: only {refused} refusals in the audit log",
            db.name
        );
        db.cleanup().await;
    }
}

/// Every server function refuses the anonymous and a revoked token, and every state change
/// (server function or REST) refuses a cross-site request carrying a session cookie.
#[tokio::test]
async fn server_functions_and_writes_refuse_anonymous_and_cross_site_requests() {
    let all_routes = routes();
    let db = TestDb::sqlite().await;
    let w = world(&db).await;
    let fns: Vec<(&str, Method)> = leptos::server_fn::axum::server_fn_paths().collect();
    assert!(fns.len() >= 30, "{} server functions", fns.len());
    for (path, method) in &fns {
        for who in [Who::Anonymous, Who::RevokedToken] {
            let req = w.request(
                who,
                method,
                path,
                Body::from(""),
                "application/x-www-form-urlencoded",
            );
            let (status, body) = w.send(req).await;
            assert_eq!(status, 401, "{method} {path} as {who:?}: {body}");
        }
        // Cross-site with the editor's cookie: the simple request of the issue (text/plain,
        // another Origin) and a form post from another site.
        for (ct, origin, site) in [
            ("text/plain", "http://evil.example", "cross-site"),
            (
                "application/x-www-form-urlencoded",
                "http://evil.example",
                "cross-site",
            ),
            ("application/json", "http://evil.example", "cross-site"),
        ] {
            let (_, cookie) = w.cookies.iter().find(|(w, _)| *w == Who::Editor).unwrap();
            let req = Request::builder()
                .method(method.clone())
                .uri(*path)
                .header(header::HOST, "caplens.test")
                .header(header::COOKIE, cookie)
                .header(header::ORIGIN, origin)
                .header("sec-fetch-site", site)
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(r#"{"name":"x"}"#))
                .unwrap();
            let (status, body) = w.send(req).await;
            assert_eq!(status, 403, "{method} {path} cross-site ({ct}): {body}");
        }
        // Same site but the wrong content type: refused too.
        let (_, cookie) = w.cookies.iter().find(|(w, _)| *w == Who::Editor).unwrap();
        let req = Request::builder()
            .method(method.clone())
            .uri(*path)
            .header(header::HOST, "caplens.test")
            .header(header::COOKIE, cookie)
            .header(header::ORIGIN, "http://caplens.test")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(r#"{"name":"x"}"#))
            .unwrap();
        let (status, _) = w.send(req).await;
        assert_eq!(status, 403, "{method} {path}: text/plain refused");
    }
    // Every state-changing REST and form route refuses another site's request with a cookie.
    for (method, route) in all_routes.iter().filter(|(m, _)| *m == Method::POST) {
        let (uri, body, ct) = w.concrete(method, route);
        let (_, cookie) = w.cookies.iter().find(|(w, _)| *w == Who::Editor).unwrap();
        let req = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::HOST, "caplens.test")
            .header(header::COOKIE, cookie)
            .header(header::ORIGIN, "http://evil.example")
            .header(header::CONTENT_TYPE, ct)
            .body(body)
            .unwrap();
        let (status, body) = w.send(req).await;
        assert_eq!(status, 403, "POST {uri} from another origin: {body}");
        assert!(body.contains("cross-site"), "{body}");
    }
    // Nothing was created by any of it.
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(w.store.pool())
        .await
        .unwrap();
    assert_eq!(tokens, 3, "only the world's three tokens exist");
    db.cleanup().await;
}

/// Issue 27: a form a caller may not use fails plainly. A viewer (no comments in this project)
/// posting a comment through the pages' review server function gets a 403 with the reason, not
/// a 500 "something went wrong"; a bad request is a 400.
#[tokio::test]
async fn refused_server_functions_answer_403_with_the_reason() {
    let db = TestDb::sqlite().await;
    let w = world(&db).await;
    let (path, method) = leptos::server_fn::axum::server_fn_paths()
        .find(|(p, _)| p.starts_with("/_app/review"))
        .expect("the review server function");
    let op = |body: serde_json::Value| serde_json::json!({"op": body}).to_string();
    let post = op(serde_json::json!({
        "op": "post_comment", "slug": "exp-a", "target": {"kind": "experiment"}, "body": "hi"
    }));
    let req = w.request(
        Who::Viewer,
        &method,
        path,
        Body::from(post.clone()),
        "application/json",
    );
    let (status, body) = w.send(req).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        !body.to_lowercase().contains("something went wrong"),
        "{body}"
    );
    let req = w.request(
        Who::Editor,
        &method,
        path,
        Body::from(post),
        "application/json",
    );
    let (status, body) = w.send(req).await;
    assert_eq!(status, 200, "an editor may: {body}");
    let bad = op(serde_json::json!({
        "op": "judge", "slug": "exp-a",
        "input": {"problem_id": 1, "answer": null, "rollout": null, "verdict": "maybe", "reason": ""}
    }));
    let req = w.request(
        Who::Editor,
        &method,
        path,
        Body::from(bad),
        "application/json",
    );
    let (status, body) = w.send(req).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("verdict"), "{body}");
    db.cleanup().await;
}

/// Password sign-in end to end over HTTP: wrong password, disabled user, rate limit, session
/// cookie attributes, sign-out (this session and everywhere), expiry.
#[tokio::test]
async fn sign_in_sessions_and_sign_out() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let login = |name: &str, pw: &str| {
            Request::builder()
                .method(Method::POST)
                .uri("/auth/login")
                .header(header::HOST, "caplens.test")
                .header(header::ORIGIN, "http://caplens.test")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "name={name}&password={}&next=%2Fruns",
                    pw.replace(' ', "+")
                )))
                .unwrap()
        };
        let res = w
            .app
            .clone()
            .oneshot(login("vera", "wrong password!!"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            res.headers()[header::LOCATION],
            "/login?error=bad&next=/runs"
        );
        assert!(res.headers().get(header::SET_COOKIE).is_none());
        let res = w
            .app
            .clone()
            .oneshot(login("vera", "a long enough password"))
            .await
            .unwrap();
        assert_eq!(res.headers()[header::LOCATION], "/runs");
        let set = res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(
            !set.contains("Secure"),
            "no Secure on a plain-http server: {set}"
        );
        let cookie = set.split(';').next().unwrap().to_owned();
        // A new session id at every sign-in.
        let again = w
            .app
            .clone()
            .oneshot(login("vera", "a long enough password"))
            .await
            .unwrap();
        let second = again.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        assert_ne!(cookie, second);
        let page = |cookie: &str| {
            Request::builder()
                .uri("/api/v1/experiments")
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap()
        };
        let (status, body) = w.send(page(&cookie)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("exp-a"));
        // Sign out here: this cookie no longer works, the other session does.
        let out = Request::builder()
            .method(Method::POST)
            .uri("/auth/logout")
            .header(header::HOST, "caplens.test")
            .header(header::ORIGIN, "http://caplens.test")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(""))
            .unwrap();
        let res = w.app.clone().oneshot(out).await.unwrap();
        assert_eq!(res.headers()[header::LOCATION], "/login?signed_out=1");
        assert_eq!(w.send(page(&cookie)).await.0, 401);
        assert_eq!(w.send(page(&second)).await.0, 200);
        // Sign out everywhere ends the other session too.
        let everywhere = Request::builder()
            .method(Method::POST)
            .uri("/auth/logout")
            .header(header::HOST, "caplens.test")
            .header("sec-fetch-site", "same-origin")
            .header(header::COOKIE, &second)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("everywhere=1"))
            .unwrap();
        w.app.clone().oneshot(everywhere).await.unwrap();
        assert_eq!(w.send(page(&second)).await.0, 401);
        // A disabled user cannot sign in, even with the right password, and is told why.
        let vera = w.store.user_by_name("vera").await.unwrap().unwrap().row.id;
        w.store.set_user_disabled(vera, true).await.unwrap();
        let res = w
            .app
            .clone()
            .oneshot(login("vera", "a long enough password"))
            .await
            .unwrap();
        assert_eq!(
            res.headers()[header::LOCATION],
            "/login?error=disabled&next=/runs"
        );
        // Five failures lock the account for a while, whatever the password.
        for _ in 0..5 {
            w.app
                .clone()
                .oneshot(login("eddie", "not the password"))
                .await
                .unwrap();
        }
        let res = w
            .app
            .clone()
            .oneshot(login("eddie", "a long enough password"))
            .await
            .unwrap();
        assert_eq!(
            res.headers()[header::LOCATION],
            "/login?error=limited&next=/runs"
        );
        // An expired session is refused and removed.
        let (_, pat) = w
            .cookies
            .iter()
            .find(|(w, _)| *w == Who::ProjectAdmin)
            .unwrap();
        sqlx::query("UPDATE sessions SET expires_at = '2000-01-01T00:00:00Z'")
            .execute(w.store.pool())
            .await
            .unwrap();
        assert_eq!(w.send(page(pat)).await.0, 401);
        let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(w.store.pool())
            .await
            .unwrap();
        assert!(
            sessions < 5,
            "expired sessions are deleted when seen ({sessions} left)"
        );
        // The audit log has the story, and no secret.
        let log: Vec<(String, String, String)> =
            sqlx::query_as("SELECT action, outcome, detail FROM audit_log ORDER BY id")
                .fetch_all(w.store.pool())
                .await
                .unwrap();
        let actions: Vec<&str> = log.iter().map(|(a, _, _)| a.as_str()).collect();
        for needed in ["sign_in_failed", "sign_in", "sign_out"] {
            assert!(
                actions.contains(&needed),
                "{needed} missing from {actions:?}"
            );
        }
        let dump = format!("{log:?}");
        assert!(
            !dump.contains("a long enough password") && !dump.contains(&cookie[16..]),
            "a secret reached the audit log"
        );
        db.cleanup().await;
    }
}

/// Responses carry the security headers; pages a CSP with the nonce of their scripts.
#[tokio::test]
async fn every_response_has_security_headers() {
    let db = TestDb::sqlite().await;
    let w = world(&db).await;
    let (_, cookie) = w.cookies.iter().find(|(w, _)| *w == Who::Viewer).unwrap();
    for uri in [
        "/experiments/exp-a",
        "/api/v1/experiments",
        "/login",
        "/api/v1/nope",
        "/healthz",
    ] {
        let req = Request::builder()
            .uri(uri)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        let res = w.app.clone().oneshot(req).await.unwrap();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{uri}");
        assert_eq!(h["x-frame-options"], "DENY", "{uri}");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{uri}");
        let csp = h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(
            !csp.contains("script-src 'unsafe-inline'") && !csp.contains("'unsafe-eval'"),
            "{uri}: {csp}"
        );
        let html = h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html");
        let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
            .unwrap();
        if html {
            let nonce = csp
                .split("'nonce-")
                .nth(1)
                .unwrap()
                .split('\'')
                .next()
                .unwrap();
            // Every inline script carries this response's nonce.
            let scripts = body.matches("<script").count();
            let with_nonce = body.matches(&format!("nonce=\"{nonce}\"")).count();
            assert!(
                scripts > 0 && with_nonce >= scripts,
                "{uri}: {scripts} scripts, {with_nonce} with the nonce"
            );
        }
    }
    db.cleanup().await;
}

/// Without accounts the server is in local mode: everything works without signing in, the
/// header says so; the first account switches to team mode at the next request.
#[tokio::test]
async fn local_mode_until_the_first_account() {
    let db = TestDb::sqlite().await;
    caplens_server::demo::load_demo_if_empty(&db.store, &Default::default())
        .await
        .unwrap();
    let app = web::router(
        ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
    );
    let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();
    let res = app.clone().oneshot(get("/experiments")).await.unwrap();
    assert_eq!(res.status(), 200);
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        body.contains("data-testid=\"local-mode\""),
        "the header says local mode"
    );
    assert!(body.contains("demo-rlvr-boundary"));
    // REST writes still need a token in local mode, as before accounts.
    let post = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/imports")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.clone().oneshot(post).await.unwrap().status(), 401);
    let hash = password::hash("a long enough password");
    db.store
        .create_user("first", None, Some(&hash), true)
        .await
        .unwrap();
    let res = app.clone().oneshot(get("/experiments")).await.unwrap();
    assert_eq!(res.status(), 303, "team mode from the first account on");
    assert_eq!(res.headers()[header::LOCATION], "/login?next=/experiments");
    // A token made in local mode no longer works.
    db.cleanup().await;
}

/// `serve` refuses a non-loopback address without authentication and says how to fix it.
#[test]
fn a_non_loopback_address_needs_authentication() {
    use caplens_server::auth::{AuthMode, AuthSettings};
    let settings = AuthSettings::default();
    let lan: std::net::SocketAddr = "0.0.0.0:3000".parse().unwrap();
    let err = settings.check_address(lan, false).unwrap_err();
    assert!(
        err.contains("caplens user create NAME --admin") && err.contains("--auth"),
        "{err}"
    );
    assert!(settings
        .check_address("127.0.0.1:3000".parse().unwrap(), false)
        .is_ok());
    assert!(
        settings.check_address(lan, true).is_ok(),
        "accounts exist: team mode"
    );
    let none = AuthSettings {
        mode: AuthMode::None,
        ..AuthSettings::default()
    };
    assert!(
        none.check_address(lan, false).is_ok(),
        "--auth none is the explicit override"
    );
}

/// Tokens: scope, project, expiry, the user's rights as a ceiling, and who may revoke.
#[tokio::test]
async fn tokens_never_grant_more_than_their_user_or_scope() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let store = &w.store;
        let a = store.project_id(Some("proj-a")).await.unwrap().unwrap();
        let vera = store.user_by_name("vera").await.unwrap().unwrap().row.id;
        // A viewer's write token writes nothing.
        let viewer_write = store
            .create_token_for(&TokenSpec {
                name: "v".into(),
                user_id: Some(vera),
                project_id: a,
                scope: caplens_server::auth::TokenScope::Write,
                expires_at: None,
            })
            .await
            .unwrap()
            .secret;
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/imports?project=proj-a")
            .header(header::AUTHORIZATION, format!("Bearer {viewer_write}"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = w.send(req).await;
        assert_eq!(status, 403, "{body}");
        // An expired token is refused and says so.
        let expired = store
            .create_token_for(&TokenSpec {
                name: "old".into(),
                user_id: Some(vera),
                project_id: a,
                scope: caplens_server::auth::TokenScope::Read,
                expires_at: Some("2001-01-01T00:00:00Z".into()),
            })
            .await
            .unwrap()
            .secret;
        let req = Request::builder()
            .uri("/api/v1/experiments")
            .header(header::AUTHORIZATION, format!("Bearer {expired}"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = w.send(req).await;
        assert_eq!(status, 401);
        assert!(body.contains("expired"), "{body}");
        // A disabled user's tokens stop working.
        let (_, write) = w
            .tokens
            .iter()
            .find(|(w, _)| *w == Who::WriteToken)
            .unwrap();
        let eddie = store.user_by_name("eddie").await.unwrap().unwrap().row.id;
        store.set_user_disabled(eddie, true).await.unwrap();
        let req = Request::builder()
            .uri("/api/v1/experiments")
            .header(header::AUTHORIZATION, format!("Bearer {write}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(w.send(req).await.0, 401);
        db.cleanup().await;
    }
}

/// Behind a reverse proxy: the user header is believed only from the trusted proxy's address.
#[tokio::test]
async fn proxy_header_auth_trusts_only_the_configured_proxy() {
    use axum::extract::ConnectInfo;
    use caplens_server::auth::{AuthMode, AuthSettings, ProxySettings};
    let db = TestDb::sqlite().await;
    let settings = AuthSettings {
        mode: AuthMode::Proxy,
        proxy: Some(ProxySettings {
            user_header: "x-forwarded-user".into(),
            email_header: Some("x-forwarded-email".into()),
            trusted: vec!["10.0.0.5".parse().unwrap()],
        }),
        ..AuthSettings::default()
    };
    let app = web::router_with_auth(
        ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
        Auth::new(db.store.clone(), settings),
    );
    let request = |from: &str, user: Option<&str>| {
        let mut req = Request::builder().uri("/api/v1/experiments");
        if let Some(u) = user {
            req = req
                .header("x-forwarded-user", u)
                .header("x-forwarded-email", format!("{u}@team.example"));
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo::<std::net::SocketAddr>(from.parse().unwrap()));
        req
    };
    let res = app
        .clone()
        .oneshot(request("10.0.0.5:40000", Some("priya")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the trusted proxy's user is signed in");
    let priya = db
        .store
        .user_by_name("priya")
        .await
        .unwrap()
        .expect("created on first sight");
    assert_eq!(priya.row.email.as_deref(), Some("priya@team.example"));
    assert!(!priya.row.is_admin);
    // The same header from anywhere else is ignored: anonymous.
    let res = app
        .clone()
        .oneshot(request("10.0.0.6:40000", Some("root")))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "a forged header from an untrusted address"
    );
    assert!(db.store.user_by_name("root").await.unwrap().is_none());
    let res = app
        .clone()
        .oneshot(request("10.0.0.5:40000", None))
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "no header: not signed in");
    // A disabled user stays out even through the proxy.
    db.store
        .set_user_disabled(priya.row.id, true)
        .await
        .unwrap();
    let res = app
        .clone()
        .oneshot(request("10.0.0.5:40000", Some("priya")))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    db.cleanup().await;
}

/// Team mode without an admin: a one-time setup link creates the first site admin, once.
#[tokio::test]
async fn the_setup_link_creates_the_first_admin_once() {
    use caplens_server::auth::{AuthMode, AuthSettings};
    let db = TestDb::sqlite().await;
    let auth = Auth::new(
        db.store.clone(),
        AuthSettings {
            mode: AuthMode::Accounts,
            ..AuthSettings::default()
        },
    );
    let secret = auth
        .setup_secret_if_needed()
        .await
        .unwrap()
        .expect("no admin yet: a setup link");
    let app = web::router_with_auth(
        ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
        auth.clone(),
    );
    let setup = |secret: &str, name: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/auth/setup")
            .header(header::ORIGIN, "http://caplens.test")
            .header(header::HOST, "caplens.test")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!(
                "secret={secret}&name={name}&password=a+long+enough+password"
            )))
            .unwrap()
    };
    let res = app
        .clone()
        .oneshot(setup("setup_wrong", "mallory"))
        .await
        .unwrap();
    assert_eq!(res.headers()[header::LOCATION], "/login?error=setup");
    let res = app.clone().oneshot(setup(&secret, "first")).await.unwrap();
    assert_eq!(res.headers()[header::LOCATION], "/");
    assert!(res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .starts_with("caplens_session="));
    assert!(
        db.store
            .user_by_name("first")
            .await
            .unwrap()
            .unwrap()
            .row
            .is_admin
    );
    let res = app.clone().oneshot(setup(&secret, "second")).await.unwrap();
    assert_eq!(
        res.headers()[header::LOCATION],
        "/login?error=setup",
        "the link works once"
    );
    assert!(db.store.user_by_name("second").await.unwrap().is_none());
    assert!(
        auth.setup_secret_if_needed().await.unwrap().is_none(),
        "an admin exists now"
    );
    db.cleanup().await;
}

/// Request logs never carry the secrets some URLs hold (setup links, OpenID codes and states).
#[test]
fn logged_uris_hide_secrets() {
    let uri: axum::http::Uri = "/auth/oidc/callback?code=abc123&state=xyz&iss=http%3A%2F%2Fop"
        .parse()
        .unwrap();
    let shown = caplens_server::web::middleware::redacted_uri(&uri);
    assert_eq!(
        shown,
        "/auth/oidc/callback?code=[redacted]&state=[redacted]&iss=http%3A%2F%2Fop"
    );
    let uri: axum::http::Uri = "/setup?secret=setup_abc".parse().unwrap();
    assert!(!caplens_server::web::middleware::redacted_uri(&uri).contains("setup_abc"));
}

/// A dataset an import creates belongs to the import's project; the built-in dataset is every
/// project's, also after an evaluation in one project used it.
#[tokio::test]
async fn imported_datasets_belong_to_their_project_and_the_builtin_is_shared() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let store = &w.store;
        let a = store.project_id(Some("proj-a")).await.unwrap().unwrap();
        let dataset: String = sqlx::query_scalar(
            "SELECT d.name FROM runs r JOIN datasets d ON d.id = r.dataset_id WHERE r.id = $1",
        )
        .bind(w.run_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
        let project_of = |name: String| {
            let pool = store.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COALESCE(project_id, 0) FROM datasets WHERE name = $1",
                )
                .bind(name)
                .fetch_all(&pool)
                .await
                .unwrap()
            }
        };
        assert_eq!(project_of(dataset.clone()).await, vec![a]);
        let builtin = caplens_app::evals::DEFAULT_DATASET.to_owned();
        assert_eq!(project_of(builtin.clone()).await, vec![0]);
        // Experiments say which project they are in.
        let (_, pat) = w
            .cookies
            .iter()
            .find(|(w, _)| *w == Who::ProjectAdmin)
            .unwrap();
        let req = Request::builder()
            .uri("/api/v1/experiments/exp-a")
            .header(header::COOKIE, pat)
            .body(Body::empty())
            .unwrap();
        let (status, body) = w.send(req).await;
        assert_eq!(status, 200);
        assert!(body.contains(r#""project":"proj-a""#), "{body}");
        // Oscar (project B only) sees the built-in dataset but not project A's.
        let (_, oscar) = w
            .cookies
            .iter()
            .find(|(w, _)| *w == Who::OtherProjectAdmin)
            .unwrap();
        let req = Request::builder()
            .uri("/api/v1/datasets")
            .header(header::COOKIE, oscar)
            .body(Body::empty())
            .unwrap();
        let (status, body) = w.send(req).await;
        assert_eq!(status, 200);
        assert!(
            body.contains(&builtin) && !body.contains(&format!("\"{dataset}\"")),
            "{body}"
        );
        // Starting an evaluation in project B on A's dataset: refused as unknown; on the
        // built-in one: queued.
        for (ds, status_expected, expect) in [
            (dataset.as_str(), 404, "does not exist"),
            (builtin.as_str(), 202, "evaluations"),
        ] {
            let req = Request::builder()
                .method(Method::POST)
                .uri("/api/v1/evals")
                .header(header::COOKIE, oscar)
                .header(header::HOST, "caplens.test")
                .header(header::ORIGIN, "http://caplens.test")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!(
                    r#"{{"project":"proj-b","dataset":"{ds}","n":1,"limit":1}}"#
                )))
                .unwrap();
            let (status, body) = w.send(req).await;
            assert_eq!(status, status_expected, "{body}");
            assert!(body.contains(expect), "{ds}: {body}");
        }
        db.cleanup().await;
    }
}
