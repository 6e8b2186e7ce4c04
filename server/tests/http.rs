//! HTTP tests: the router the binary serves, driven in-process (no socket), on SQLite with the
//! demo loaded, plus the PostgreSQL variant of the API when configured.

mod common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use caplens_server::{demo, demo::generate::DemoConfig, web};
use common::TestDb;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn app(db: &TestDb) -> Router {
    let config = DemoConfig {
        problems: 12,
        samples_per_problem: 8,
        ..DemoConfig::default()
    };
    demo::load_demo(&db.store, &config).await.unwrap();
    web::router(
        caplens_server::ingest::service::ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        std::path::Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
    )
}

async fn get(
    app: &Router,
    uri: &str,
    cookie: Option<&str>,
) -> (StatusCode, String, axum::http::HeaderMap) {
    let mut req = Request::get(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    // A bounded wait: a render that never finishes must fail the test, not hang the suite.
    let res = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        app.clone().oneshot(req.body(Body::empty()).unwrap()),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {uri} did not answer within 60 s"))
    .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

/// Posts the no-JavaScript theme form.
async fn post_theme(app: &Router, form: &str) -> axum::response::Response {
    app.clone()
        .oneshot(
            Request::post("/theme")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form.to_string()))
                .unwrap(),
        )
        .await
        .unwrap()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn healthz_reports_the_database() {
    for db in TestDb::all().await {
        let app = app(&db).await;
        let (status, body, headers) = get(&app, "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["status"], "ok");
        assert_eq!(json(&body)["database"], db.name);
        assert!(
            headers.get("x-request-id").is_some(),
            "request id propagated"
        );
        db.cleanup().await;
    }
}

/// Readiness checks the database and the blob store, and says which one is not ready.
#[tokio::test]
async fn readyz_checks_the_database_and_the_blob_store() {
    for db in TestDb::all().await {
        let app = app(&db).await;
        let (status, body, _) = get(&app, "/readyz", None).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name);
        assert_eq!(json(&body)["status"], "ready");
        assert_eq!(json(&body)["database"], "ok");
        assert_eq!(json(&body)["blobs"], "ok");

        // A blob store that cannot take a write: its directory replaced by a file.
        let blobs = db.dir().join("blobs");
        std::fs::remove_dir_all(&blobs).ok();
        std::fs::write(&blobs, b"not a directory").unwrap();
        let (status, body, _) = get(&app, "/readyz", None).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}: {body}",
            db.name
        );
        assert_eq!(json(&body)["status"], "not ready");
        assert_eq!(json(&body)["database"], "ok");
        assert!(
            json(&body)["blobs"]
                .as_str()
                .unwrap()
                .starts_with("unavailable"),
            "{body}"
        );
        // Liveness does not depend on it.
        let (status, _, _) = get(&app, "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);

        // A database that does not answer.
        db.store.pool().close().await;
        let (status, body, _) = get(&app, "/readyz", None).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}: {body}",
            db.name
        );
        assert!(
            json(&body)["database"]
                .as_str()
                .unwrap()
                .starts_with("unavailable"),
            "{body}"
        );
        std::fs::remove_file(&blobs).unwrap();
        db.cleanup().await;
    }
}

#[tokio::test]
async fn api_lists_and_finds_experiments() {
    for db in TestDb::all().await {
        let app = app(&db).await;
        let (status, body, _) = get(&app, "/api/v1/experiments", None).await;
        assert_eq!(status, StatusCode::OK);
        let list = json(&body);
        let slug = list[0]["slug"].as_str().unwrap().to_string();
        assert_eq!(list[0]["is_demo"], true);

        let (status, body, _) = get(&app, &format!("/api/v1/experiments/{slug}"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let detail = json(&body);
        let stages: Vec<&str> = detail["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["stage"].as_str().unwrap())
            .collect();
        assert_eq!(stages, ["base", "sft", "rl"]);

        for path in ["/api/v1/models", "/api/v1/datasets", "/api/v1/runs"] {
            let (status, body, _) = get(&app, path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(
                json(&body).as_array().is_some_and(|a| !a.is_empty()),
                "{path}: {body}"
            );
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn api_errors_are_json_with_code_and_message() {
    for db in TestDb::all().await {
        let app = app(&db).await;
        for (uri, status, code) in [
            (
                "/api/v1/experiments/nope",
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            ("/api/v1/no-such-route", StatusCode::NOT_FOUND, "not_found"),
            ("/api/v2/experiments", StatusCode::NOT_FOUND, "not_found"),
        ] {
            let (got, body, headers) = get(&app, uri, None).await;
            assert_eq!(got, status, "{uri}");
            assert!(headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"));
            let v = json(&body);
            assert_eq!(v["error"]["code"], code, "{uri}: {body}");
            let message = v["error"]["message"].as_str().unwrap();
            let last_segment = uri.rsplit('/').next().unwrap();
            assert!(
                message.contains(last_segment),
                "{uri}: message should name what was not found: {message}"
            );
        }
        let res = app
            .clone()
            .oneshot(
                Request::delete("/api/v1/experiments")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            json(&String::from_utf8_lossy(&body))["error"]["code"],
            "method_not_allowed"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn pages_render_on_the_server() {
    for db in TestDb::all().await {
        let app = app(&db).await;
        let (status, body, _) = get(&app, "/", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("demo-rlvr-boundary"),
            "experiments list links the demo"
        );

        let (status, body, _) = get(&app, "/experiments/demo-rlvr-boundary", None).await;
        assert_eq!(status, StatusCode::OK);
        for needle in [
            "demo-base-7b",
            "demo-sft-7b",
            "demo-rl-7b",
            "Synthetic demo data",
            "3 of 3 runs shown",
            "/pkg/caplens.wasm",
        ] {
            assert!(body.contains(needle), "experiment page lacks {needle:?}");
        }
        let (status, body, _) = get(&app, "/models", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.find("demo-base-7b").unwrap() < body.find("demo-rl-7b").unwrap());
        for page in ["/datasets", "/runs", "/upload", "/experiments"] {
            let (status, _, _) = get(&app, page, None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn unknown_pages_get_the_html_404_and_missing_experiments_say_so() {
    for db in TestDb::all().await {
        let app = app(&db).await;
        let (status, body, headers) = get(&app, "/no/such/page", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(body.contains("Page not found"));
        let (status, body, _) = get(&app, "/experiments/deleted-long-ago", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("Experiment not found") && body.contains("deleted-long-ago"));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn theme_cookie_round_trips_without_javascript() {
    for db in TestDb::all().await {
        let app = app(&db).await;
        let res = post_theme(&app, "theme=dark&back=%2Fmodels").await;
        assert!(res.status().is_redirection());
        assert_eq!(res.headers()[header::LOCATION], "/models");
        let cookie = res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(cookie.starts_with("caplens_theme=dark"));
        let (_, body, _) = get(&app, "/models", Some("caplens_theme=dark")).await;
        assert!(
            body.contains(r#"data-theme="dark""#),
            "server renders the chosen theme"
        );
        // An open redirect is refused.
        let res = post_theme(&app, "theme=light&back=%2F%2Fevil.example").await;
        assert_eq!(res.headers()[header::LOCATION], "/");
        for evil in ["%2F%5Cevil.example", "%2F%09%2Fevil.example", "%2F%01"] {
            let res = post_theme(&app, &format!("theme=light&back={evil}")).await;
            assert_eq!(res.headers()[header::LOCATION], "/", "back={evil}");
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn untrusted_text_is_escaped_in_pages() {
    for db in TestDb::all().await {
        let app = app(&db).await;
        let mut tx = db.store.begin_bulk().await.unwrap();
        let evil = r#"<script>alert("x")</script><img src=x onerror=alert(1)>"#;
        let project = tx.project_id("default").await.unwrap().unwrap();
        let e = tx
            .insert_experiment("evil", evil, evil, false, project)
            .await
            .unwrap();
        assert!(e > 0);
        tx.commit().await.unwrap();
        for uri in ["/experiments", "/experiments/evil"] {
            let (status, body, _) = get(&app, uri, None).await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                !body.contains("<script>alert"),
                "{uri}: raw script tag in page"
            );
            assert!(!body.contains("<img src=x"), "{uri}: raw img tag in page");
            assert!(
                body.contains("&lt;script&gt;") || body.contains("&lt;script>"),
                "{uri}: escaped text shown"
            );
        }
        db.cleanup().await;
    }
}
