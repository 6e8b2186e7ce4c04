//! The team server against a hostile member (issue 25): one regression test per finding of the
//! review, each an attack as the attacker would make it, on SQLite and PostgreSQL where the
//! database matters.
//!
//! The world: projects p1 and p2; alice admin of p1, bob viewer of p1, carol editor of p2, dave
//! editor of p1, root a site admin; p1 holds an experiment `exp-p1` imported from a file with
//! private prompts, its dataset `aime-p1`, models `base-7b` → `rl-7b`; a share link opens it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, Method, Request, StatusCode},
    Router,
};
use caplens_server::{
    auth::{password, Auth, AuthSettings},
    ingest::{
        pipeline::{
            new_import_id, run_import, ImportFile, ImportParams, ImportProgress, ImportReport,
        },
        service::ImportService,
        InputFile,
    },
    storage::{access::Role, tokens::TokenSpec, Store},
    web,
};
use common::TestDb;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The secret prompt of p1's problem: nobody outside p1 may read it.
const SECRET_PROMPT: &str = "p1-private-prompt: what is the airspeed of an unladen swallow?";

struct World {
    app: Router,
    store: Store,
    dir: std::path::PathBuf,
    alice: String,
    bob: String,
    carol: String,
    dave: String,
    root: String,
    /// Tokens: carol's write token in p2, bob's read token in p1.
    carol_token: String,
    bob_token: String,
    share_secret: String,
    p1: i64,
    p2: i64,
}

async fn user(store: &Store, name: &str, admin: bool) -> i64 {
    let hash = password::hash("a long enough password");
    store
        .create_user(name, None, Some(&hash), admin)
        .await
        .unwrap()
        .id
}

/// Native JSON Lines of `model` on `dataset`: two problems, two samples each.
fn rollouts(model: &str, dataset: &str, prompt: &str) -> String {
    let mut out = String::new();
    for (key, answer) in [("q1", "42"), ("q2", "7")] {
        for sample in 0..2 {
            out.push_str(
                &serde_json::json!({
                    "model": model, "dataset": dataset, "problem_id": key, "sample": sample,
                    "prompt": format!("{prompt} ({key})"), "reference": answer,
                    "response": format!("The answer is \\boxed{{{answer}}}."), "correct": true,
                })
                .to_string(),
            );
            out.push('\n');
        }
    }
    out
}

async fn import(
    store: &Store,
    dir: &std::path::Path,
    name: &str,
    body: &str,
    params: ImportParams,
) -> ImportReport {
    let file = dir.join(name);
    std::fs::write(&file, body).unwrap();
    let input = InputFile::new(&file, name.to_owned());
    run_import(
        store,
        &new_import_id(),
        vec![ImportFile {
            input: input.clone(),
            sha256: None,
        }],
        params,
        std::sync::Arc::new(ImportProgress::for_files(&[input])),
        None,
    )
    .await
}

fn params(project: &str, experiment: &str) -> ImportParams {
    ImportParams {
        project: Some(project.into()),
        experiment: Some(experiment.into()),
        ..Default::default()
    }
}

async fn world(db: &TestDb) -> World {
    let store = db.store.clone();
    let p1 = store.create_project("p1", "P1", false).await.unwrap().id;
    let p2 = store.create_project("p2", "P2", false).await.unwrap().id;
    let alice = user(&store, "alice", false).await;
    let bob = user(&store, "bob", false).await;
    let carol = user(&store, "carol", false).await;
    let dave = user(&store, "dave", false).await;
    let root = user(&store, "root", true).await;
    store.set_member(p1, alice, Role::Admin).await.unwrap();
    store.set_member(p1, bob, Role::Viewer).await.unwrap();
    store.set_member(p2, carol, Role::Editor).await.unwrap();
    store.set_member(p1, dave, Role::Editor).await.unwrap();
    let dir = db.dir().join("world");
    std::fs::create_dir_all(&dir).unwrap();
    // p1's lineage: base-7b, then rl-7b trained from it.
    let r = import(
        &store,
        &dir,
        "base.jsonl",
        &rollouts("base-7b", "aime-p1", SECRET_PROMPT),
        params("p1", "exp-p1"),
    )
    .await;
    assert_eq!(r.runs.len(), 1, "{:?}", r.message);
    let mut rl = params("p1", "exp-p1");
    rl.stage = Some("rl".into());
    rl.parent = Some("base-7b".into());
    rl.step = Some(500);
    let r = import(
        &store,
        &dir,
        "rl.jsonl",
        &rollouts("rl-7b", "aime-p1", SECRET_PROMPT),
        rl,
    )
    .await;
    assert_eq!(r.runs.len(), 1, "{:?}", r.message);

    let auth = Auth::new(store.clone(), AuthSettings::default());
    let mut cookies = Vec::new();
    for id in [alice, bob, carol, dave, root] {
        let set = auth.start_session(id, None).await.unwrap();
        cookies.push(set.to_str().unwrap().split(';').next().unwrap().to_owned());
    }
    let token = |user_id, project_id, scope: &str| TokenSpec {
        name: format!("{scope} token"),
        user_id: Some(user_id),
        project_id,
        scope: caplens_server::auth::TokenScope::parse(scope).unwrap(),
        expires_at: None,
    };
    let carol_token = store
        .create_token_for(&token(carol, p2, "write"))
        .await
        .unwrap()
        .secret;
    let bob_token = store
        .create_token_for(&token(bob, p1, "read"))
        .await
        .unwrap()
        .secret;
    let site = db.dir().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    let app = web::router(
        ImportService::new(store.clone(), db.dir(), 1 << 30),
        &site,
        "127.0.0.1:0".parse().unwrap(),
    );
    let mut w = World {
        app,
        store,
        dir,
        alice: cookies[0].clone(),
        bob: cookies[1].clone(),
        carol: cookies[2].clone(),
        dave: cookies[3].clone(),
        root: cookies[4].clone(),
        carol_token,
        bob_token,
        share_secret: String::new(),
        p1,
        p2,
    };
    // Alice shares the experiment.
    let (status, body) = w
        .send(w.json(
            Method::POST,
            "/api/v1/experiments/exp-p1/share-links",
            Who::Cookie(&w.alice.clone()),
            r#"{"path":"/experiments/exp-p1"}"#,
        ))
        .await;
    assert_eq!(status, 201, "{body}");
    let url = serde_json::from_str::<serde_json::Value>(&body).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    w.share_secret = url.rsplit('/').next().unwrap().to_owned();
    w
}

/// Who sends a request.
#[derive(Clone, Copy)]
enum Who<'a> {
    Cookie(&'a str),
    Token(&'a str),
    /// A share-link visitor: the link's cookie.
    Share(&'a str),
    Nobody,
}

impl World {
    fn request(
        &self,
        method: Method,
        uri: &str,
        who: Who<'_>,
        content_type: &str,
        body: Body,
    ) -> Request<Body> {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "caplens.test")
            .header(header::CONTENT_TYPE, content_type);
        match who {
            Who::Cookie(c) => {
                req = req
                    .header(header::COOKIE, c)
                    .header(header::ORIGIN, "http://caplens.test")
                    .header("sec-fetch-site", "same-origin")
            }
            Who::Token(t) => req = req.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Who::Share(s) => req = req.header(header::COOKIE, format!("caplens_share={s}")),
            Who::Nobody => {}
        }
        let mut req = req.body(body).unwrap();
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(
            "203.0.113.9:40000".parse().unwrap(),
        ));
        req
    }

    fn json(&self, method: Method, uri: &str, who: Who<'_>, body: &str) -> Request<Body> {
        self.request(
            method,
            uri,
            who,
            "application/json",
            Body::from(body.to_owned()),
        )
    }

    fn get(&self, uri: &str, who: Who<'_>) -> Request<Body> {
        self.request(Method::GET, uri, who, "application/json", Body::empty())
    }

    async fn send(&self, req: Request<Body>) -> (u16, String) {
        let res = tokio::time::timeout(Duration::from_secs(120), self.app.clone().oneshot(req))
            .await
            .expect("answers within 120 s")
            .unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn one<T: sqlx::Type<sqlx::Any> + for<'r> sqlx::Decode<'r, sqlx::Any> + Send + Unpin>(
        &self,
        sql: &str,
        bind: i64,
    ) -> T {
        sqlx::query_scalar(sql)
            .bind(bind)
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }

    /// The id of p1's problem `key`.
    async fn p1_problem(&self, key: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT p.id FROM problems p JOIN datasets d ON d.id = p.dataset_id WHERE d.project_id = $1 AND p.problem_key = $2",
        )
        .bind(self.p1)
        .bind(key)
        .fetch_one(self.store.pool())
        .await
        .unwrap()
    }
}

/// The path of the server function `name` (`/_app/name…`, with its hash).
fn server_fn(name: &str) -> String {
    leptos::server_fn::axum::server_fn_paths()
        .map(|(p, _)| p.to_owned())
        .find(|p| {
            p.strip_prefix("/_app/").is_some_and(|rest| {
                rest.starts_with(name) && rest[name.len()..].chars().all(|c| c.is_ascii_digit())
            })
        })
        .unwrap_or_else(|| panic!("no server function {name}"))
}

/// Finding 1: format detection parses untrusted bytes; it needs upload rights, and a share-link
/// visitor or a viewer's read token has none. (The decompression bombs themselves are in
/// `hostile_inputs.rs`, with a memory bound.)
#[tokio::test]
async fn detection_needs_upload_rights() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let body = rollouts("m", "d", "p");
        let detect = |who| {
            w.request(
                Method::POST,
                "/api/v1/imports/detect?filename=x.jsonl",
                who,
                "application/octet-stream",
                Body::from(body.clone()),
            )
        };
        assert_eq!(
            w.send(detect(Who::Token(&w.bob_token))).await.0,
            403,
            "{}: a read token",
            db.name
        );
        assert_eq!(
            w.send(detect(Who::Cookie(&w.bob))).await.0,
            403,
            "{}: a viewer",
            db.name
        );
        assert_eq!(
            w.send(detect(Who::Share(&w.share_secret))).await.0,
            403,
            "{}: a share link",
            db.name
        );
        assert_eq!(
            w.send(detect(Who::Nobody)).await.0,
            401,
            "{}: nobody",
            db.name
        );
        let (status, text) = w.send(detect(Who::Token(&w.carol_token))).await;
        assert_eq!(
            status, 200,
            "{}: an editor (of another project) may detect: {text}",
            db.name
        );
        assert!(text.contains("\"native\""), "{text}");
        db.cleanup().await;
    }
}

/// Finding 2: carol (p2) uploads a file naming p1's dataset: it becomes p2's own dataset, and
/// p1's prompts stay unreadable to her by problem id.
#[tokio::test]
async fn another_projects_dataset_name_is_a_new_dataset_and_its_problems_stay_hidden() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let p1_problem = w.p1_problem("q1").await;
        let (status, body) = w
            .send(w.request(
                Method::POST,
                "/api/v1/imports?project=p2&experiment=exp-p2&filename=steal.jsonl",
                Who::Token(&w.carol_token),
                "application/x-ndjson",
                Body::from(rollouts("carol-model", "aime-p1", "carol's own prompt")),
            ))
            .await;
        assert_eq!(status, 202, "{}: {body}", db.name);
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        wait_for_import(&w, &id, &w.carol_token).await;
        let datasets: i64 = w
            .one(
                "SELECT COUNT(*) FROM datasets WHERE name = 'aime-p1' AND project_id = $1",
                w.p2,
            )
            .await;
        assert_eq!(datasets, 1, "{}: p2 got its own aime-p1", db.name);
        let p1_prompt: String = w
            .one("SELECT prompt FROM problems WHERE id = $1", p1_problem)
            .await;
        assert!(
            p1_prompt.contains("p1-private-prompt"),
            "{}: p1's problem untouched: {p1_prompt}",
            db.name
        );
        // p1's problem, by id, as carol: the page says not found and shows nothing of it.
        let (status, page) = w
            .send(w.get(&format!("/problems/{p1_problem}"), Who::Cookie(&w.carol)))
            .await;
        assert_eq!(status, 404, "{}", db.name);
        assert!(
            !page.contains("p1-private-prompt"),
            "{}: p1's prompt leaked to carol",
            db.name
        );
        // Alice still reads it.
        let (status, page) = w
            .send(w.get(&format!("/problems/{p1_problem}"), Who::Cookie(&w.alice)))
            .await;
        assert_eq!(status, 200, "{}", db.name);
        assert!(page.contains("p1-private-prompt"), "{}", db.name);
        db.cleanup().await;
    }
}

async fn wait_for_import(w: &World, id: &str, token: &str) -> serde_json::Value {
    for _ in 0..600 {
        let (status, body) = w
            .send(w.get(&format!("/api/v1/imports/{id}"), Who::Token(token)))
            .await;
        assert_eq!(status, 200, "{body}");
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        if report["status"] != "processing" && report["status"] != "queued" {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import {id} did not end");
}

/// Finding 3 (authorisation half; the address policy is in `engine_guard.rs`): an editor
/// cannot register an engine at all: engines make the server open connections.
#[tokio::test]
async fn only_site_admins_add_engines_by_default() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let body = r#"{"name":"probe","base_url":"http://169.254.169.254/latest#","model":"m","check":false,"project":"p2"}"#;
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/engines",
                Who::Token(&w.carol_token),
                body,
            ))
            .await;
        assert_eq!(status, 403, "{}: {text}", db.name);
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/engines",
                Who::Cookie(&w.dave),
                &body.replace("p2", "p1"),
            ))
            .await;
        assert_eq!(status, 403, "{}: an editor of p1: {text}", db.name);
        let engines: i64 = w
            .one(
                "SELECT COUNT(*) FROM engines WHERE name = 'probe' AND $1 = $1",
                0,
            )
            .await;
        assert_eq!(engines, 0, "{}", db.name);
        db.cleanup().await;
    }
}

/// Finding 4: carol names p1's engine in `series[].engine` and in an intervention: not found,
/// worded as for an engine that does not exist.
#[tokio::test]
async fn every_engine_a_request_names_is_checked() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let key = "p1-secret-key";
        w.store
            .upsert_engine(&caplens_server::storage::evals::NewEngine {
                project_id: Some(w.p1),
                name: "p1-vllm",
                base_url: "https://vllm.p1.example",
                model: "m",
                api_mode: "completions",
                api_key: Some(key),
                max_top_logprobs: 20,
            })
            .await
            .unwrap();
        let series = r#"{"project":"p2","limit":1,"series":[{"step":1,"engine":"embedded"},{"step":2,"engine":"p1-vllm"}]}"#;
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/evals",
                Who::Token(&w.carol_token),
                series,
            ))
            .await;
        assert_eq!(status, 404, "{}: {text}", db.name);
        let missing =
            r#"{"project":"p2","limit":1,"series":[{"step":1,"engine":"no-such-engine"}]}"#;
        let (_, missing_text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/evals",
                Who::Token(&w.carol_token),
                missing,
            ))
            .await;
        assert_eq!(
            text.replace("p1-vllm", "X"),
            missing_text.replace("no-such-engine", "X"),
            "{}: same words as a missing engine",
            db.name
        );
        let queued: i64 = w
            .one(
                "SELECT COUNT(*) FROM evaluations WHERE project_id = $1",
                w.p2,
            )
            .await;
        assert_eq!(queued, 0, "{}: nothing queued", db.name);
        // An intervention on carol's own rollout, naming p1's engine.
        let r = import(
            &w.store,
            &w.dir,
            "c.jsonl",
            &rollouts("c-model", "c-data", "c"),
            params("p2", "exp-c"),
        )
        .await;
        assert_eq!(r.runs.len(), 1, "{:?}", r.message);
        let rollout: i64 = w
            .one(
                "SELECT MIN(id) FROM rollouts WHERE run_id = $1",
                r.runs[0].id,
            )
            .await;
        let (status, text) = w
            .send(w.json(
                Method::POST,
                &format!("/api/v1/rollouts/{rollout}/interventions"),
                Who::Token(&w.carol_token),
                r#"{"engine":"p1-vllm"}"#,
            ))
            .await;
        assert_eq!(status, 404, "{}: {text}", db.name);
        let jobs: i64 = w
            .one(
                "SELECT COUNT(*) FROM interventions WHERE rollout_id = $1",
                rollout,
            )
            .await;
        assert_eq!(jobs, 0, "{}", db.name);
        db.cleanup().await;
    }
}

/// Finding 5: re-pointing an engine without giving a key drops the stored key; an editor may
/// not change an engine at all.
#[tokio::test]
async fn a_new_address_drops_the_stored_key() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let id = w
            .store
            .upsert_engine(&caplens_server::storage::evals::NewEngine {
                project_id: Some(w.p1),
                name: "p1-vllm",
                base_url: "https://vllm.p1.example",
                model: "m",
                api_mode: "completions",
                api_key: Some("p1-secret-key"),
                max_top_logprobs: 20,
            })
            .await
            .unwrap();
        let move_it = r#"{"name":"p1-vllm","base_url":"https://listener.dave.example","model":"m","check":false,"project":"p1"}"#;
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/engines",
                Who::Cookie(&w.dave),
                move_it,
            ))
            .await;
        assert_eq!(
            status, 403,
            "{}: dave (editor) may not change engines: {text}",
            db.name
        );
        let key: Option<String> = w.one("SELECT api_key FROM engines WHERE id = $1", id).await;
        assert_eq!(key.as_deref(), Some("p1-secret-key"), "{}", db.name);
        // A site admin lets p1's admins manage engines; alice moves it without a key.
        w.store.set_engine_admins(w.p1, true).await.unwrap();
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/engines",
                Who::Cookie(&w.alice),
                move_it,
            ))
            .await;
        assert_eq!(status, 201, "{}: {text}", db.name);
        let key: Option<String> = w.one("SELECT api_key FROM engines WHERE id = $1", id).await;
        assert_eq!(
            key, None,
            "{}: the key did not follow the engine to a new address",
            db.name
        );
        // The same address without a key keeps the key given since.
        w.store
            .upsert_engine(&caplens_server::storage::evals::NewEngine {
                project_id: Some(w.p1),
                name: "p1-vllm",
                base_url: "https://listener.dave.example",
                model: "m",
                api_mode: "completions",
                api_key: Some("k2"),
                max_top_logprobs: 20,
            })
            .await
            .unwrap();
        w.store
            .upsert_engine(&caplens_server::storage::evals::NewEngine {
                project_id: Some(w.p1),
                name: "p1-vllm",
                base_url: "https://listener.dave.example",
                model: "m2",
                api_mode: "completions",
                api_key: None,
                max_top_logprobs: 20,
            })
            .await
            .unwrap();
        let key: Option<String> = w.one("SELECT api_key FROM engines WHERE id = $1", id).await;
        assert_eq!(key.as_deref(), Some("k2"), "{}", db.name);
        db.cleanup().await;
    }
}

/// Finding 6: the experiment an import (and an evaluation's finalisation, which is an import)
/// writes into is decided in its transaction: a slug p2 took meanwhile is refused, nothing of
/// p1 lands in p2's experiment.
#[tokio::test]
async fn the_experiment_is_decided_when_the_run_is_written() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        // Carol makes "race" in p2 first.
        let r = import(
            &w.store,
            &w.dir,
            "c.jsonl",
            &rollouts("c-model", "c-data", "c"),
            params("p2", "race"),
        )
        .await;
        assert_eq!(r.runs.len(), 1, "{:?}", r.message);
        // Alice's run for "race" in p1 (what a queued evaluation's finalisation writes).
        let r = import(
            &w.store,
            &w.dir,
            "a.jsonl",
            &rollouts("a-model", "a-data", "a"),
            params("p1", "race"),
        )
        .await;
        assert!(r.runs.is_empty(), "{}", db.name);
        let message = r.message.unwrap_or_default();
        assert!(message.contains("not available"), "{}: {message}", db.name);
        assert!(
            !message.contains("p2") && !message.contains("another project"),
            "{}: {message}",
            db.name
        );
        let runs: i64 = w.one("SELECT COUNT(*) FROM experiment_runs er JOIN experiments e ON e.id = er.experiment_id WHERE e.slug = 'race' AND $1 = $1", 0).await;
        assert_eq!(runs, 1, "{}: only carol's run in her experiment", db.name);
        // Queuing an evaluation into it says the same, before anything is queued.
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/evals",
                Who::Cookie(&w.alice),
                r#"{"project":"p1","experiment":"race","limit":1}"#,
            ))
            .await;
        assert_eq!(status, 409, "{}: {text}", db.name);
        assert!(!text.contains("p2"), "{text}");
        db.cleanup().await;
    }
}

/// Finding 7: a p2 upload naming p1's model cannot change p1's model (stage, parent, step).
#[tokio::test]
async fn another_projects_model_name_is_a_new_model() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let mut p = params("p2", "exp-p2");
        p.stage = Some("base".into());
        p.step = Some(1);
        let r = import(
            &w.store,
            &w.dir,
            "m.jsonl",
            &rollouts("rl-7b", "c-data", "c"),
            p,
        )
        .await;
        assert_eq!(r.runs.len(), 1, "{:?}", r.message);
        let (stage, parent, step): (String, Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT stage, parent_id, training_step FROM models WHERE name = 'rl-7b' AND project_id = $1")
                .bind(w.p1)
                .fetch_one(w.store.pool())
                .await
                .unwrap();
        assert_eq!(stage, "rl", "{}", db.name);
        assert!(parent.is_some(), "{}: p1's lineage kept", db.name);
        assert_eq!(step, Some(500), "{}", db.name);
        let models: i64 = w
            .one(
                "SELECT COUNT(*) FROM models WHERE name = 'rl-7b' AND project_id = $1",
                w.p2,
            )
            .await;
        assert_eq!(models, 1, "{}", db.name);
        db.cleanup().await;
    }
}

/// A sign-in attempt from `address` (through the trusted proxy at 10.0.0.1).
fn sign_in(w: &World, name: &str, password: &str, address: &str) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/auth/login")
        .header(header::HOST, "caplens.test")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, "http://caplens.test")
        .header("x-forwarded-for", address)
        .body(Body::from(format!(
            "name={name}&password={}&next=/",
            password.replace(' ', "+")
        )))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo::<SocketAddr>("10.0.0.1:5555".parse().unwrap()));
    let _ = w;
    req
}

/// Finding 8: concurrent wrong passwords are counted before they are verified (at most 5 are);
/// failures on made-up names lock out no real account; behind a trusted proxy each client is
/// its own address; an account under attack still takes its owner's password from a clean
/// address.
#[tokio::test]
async fn sign_in_limits_hold_under_attack_and_lock_nobody_else_out() {
    for db in TestDb::all().await {
        let mut w = world(&db).await;
        let settings = AuthSettings {
            mode: caplens_server::auth::AuthMode::Accounts,
            trusted_proxies: vec!["10.0.0.1".parse().unwrap()],
            ..Default::default()
        };
        w.app = web::router_with_auth(
            ImportService::new(w.store.clone(), db.dir(), 1 << 30),
            &db.dir().join("site"),
            "127.0.0.1:0".parse().unwrap(),
            Auth::new(w.store.clone(), settings),
        );
        // 40 wrong passwords for bob at once, from one address.
        let attempts =
            (0..40).map(|_| w.send(sign_in(&w, "bob", "wrong password 1", "198.51.100.7")));
        let answers = futures_util::future::join_all(attempts).await;
        assert!(answers.iter().all(|(s, _)| *s == 303), "{}", db.name);
        let verified: i64 = w.one("SELECT COUNT(*) FROM audit_log WHERE action = 'sign_in_failed' AND detail = 'wrong name or password' AND $1 = $1", 0).await;
        assert!(
            verified <= 5,
            "{}: {verified} of 40 concurrent guesses were verified",
            db.name
        );
        // 25 made-up names from another address: that address is limited...
        for i in 0..25 {
            w.send(sign_in(&w, &format!("nobody{i}"), "x", "198.51.100.8"))
                .await;
        }
        let limited: i64 = w.one("SELECT COUNT(*) FROM audit_log WHERE action = 'sign_in_failed' AND detail LIKE 'rate limited%' AND target = 'user nobody24' AND $1 = $1", 0).await;
        assert_eq!(limited, 1, "{}: the guessing address is limited", db.name);
        // ...but not carol, from her own address, nor anyone else.
        let (status, _) = w
            .send(sign_in(
                &w,
                "carol",
                "a long enough password",
                "198.51.100.20",
            ))
            .await;
        assert_eq!(status, 303, "{}", db.name);
        let carol_in: i64 = w.one("SELECT COUNT(*) FROM audit_log WHERE action = 'sign_in' AND target = 'user carol' AND $1 = $1", 0).await;
        assert_eq!(
            carol_in, 1,
            "{}: carol was locked out by someone else's guesses",
            db.name
        );
        // Bob's account is at its limit, yet bob from a clean address signs in.
        let (_, _) = w
            .send(sign_in(
                &w,
                "bob",
                "a long enough password",
                "198.51.100.30",
            ))
            .await;
        let bob_in: i64 = w.one("SELECT COUNT(*) FROM audit_log WHERE action = 'sign_in' AND target = 'user bob' AND $1 = $1", 0).await;
        assert_eq!(bob_in, 1, "{}: the account's owner is locked out", db.name);
        // The guessing address itself stays refused for bob, right password or not.
        w.send(sign_in(&w, "bob", "a long enough password", "198.51.100.7"))
            .await;
        let bob_in: i64 = w.one("SELECT COUNT(*) FROM audit_log WHERE action = 'sign_in' AND target = 'user bob' AND $1 = $1", 0).await;
        assert_eq!(bob_in, 1, "{}", db.name);
        db.cleanup().await;
    }
}

/// Finding 10: local mode answers only local names: a page that rebinds its own name to
/// 127.0.0.1 sends its own Host and Origin, and gets nothing (no token minted).
#[tokio::test]
async fn local_mode_refuses_a_forged_host() {
    let db = TestDb::sqlite().await;
    let site = db.dir().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    let app = web::router(
        ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        &site,
        "127.0.0.1:0".parse().unwrap(),
    );
    // What a rebinding page sends: the server function that mints a token, as JSON, with its
    // own name as Host and Origin.
    let mint = |host: &str| {
        Request::builder()
            .method(Method::POST)
            .uri(server_fn("create_token"))
            .header(header::HOST, host)
            .header(header::ORIGIN, format!("http://{host}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"name":"rebound"}"#))
            .unwrap()
    };
    let tokens = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(db.store.pool())
            .await
            .unwrap()
    };
    for host in [
        "rebind.attacker.example",
        "rebind.attacker.example:3000",
        "127.0.0.1.attacker.example",
        "localhost.evil",
    ] {
        let res = app.clone().oneshot(mint(host)).await.unwrap();
        assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        let res = app
            .clone()
            .oneshot(
                Request::get("/api/v1/experiments")
                    .header(header::HOST, host)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::MISDIRECTED_REQUEST,
            "{host}: reads too"
        );
    }
    assert_eq!(tokens().await, 0, "a token was minted for a forged Host");
    // The same request from the machine's own name mints one: the attack above was real.
    let res = app.clone().oneshot(mint("localhost:3000")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(tokens().await, 1);
    for host in [
        "localhost:3000",
        "127.0.0.1:3000",
        "[::1]:3000",
        "localhost",
    ] {
        let res = app
            .clone()
            .oneshot(
                Request::get("/api/v1/experiments")
                    .header(header::HOST, host)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{host}");
    }
    db.cleanup().await;
}

/// Findings 11 and 14: a p2 upload of a file p1 imported is no duplicate of p1's (nothing of p1
/// is named), and an experiment slug p1 holds is "not available", not "another project's".
#[tokio::test]
async fn upload_answers_never_name_another_projects_rows() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let same_file = rollouts("base-7b", "aime-p1", SECRET_PROMPT);
        let send = |uri: &str| {
            w.request(
                Method::POST,
                uri,
                Who::Token(&w.carol_token),
                "application/x-ndjson",
                Body::from(same_file.clone()),
            )
        };
        let (status, body) = w
            .send(send(
                "/api/v1/imports?project=p2&experiment=exp-p2&filename=base.jsonl",
            ))
            .await;
        assert_eq!(status, 202, "{body}");
        let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let report = wait_for_import(&w, &id, &w.carol_token).await;
        assert_eq!(report["status"], "completed", "{}: {report}", db.name);
        let (status, body) = w
            .send(send(
                "/api/v1/imports?project=p2&experiment=exp-p1&filename=x.jsonl",
            ))
            .await;
        assert_eq!(status, 409, "{}: {body}", db.name);
        assert!(
            body.contains("not available")
                && !body.contains("another project")
                && !body.contains("p1\""),
            "{body}"
        );
        // A project carol cannot see reads as missing, with a missing project's words.
        let (status, hidden) = w
            .send(send("/api/v1/imports?project=p1&filename=x.jsonl"))
            .await;
        let (_, missing) = w
            .send(send("/api/v1/imports?project=p9&filename=x.jsonl"))
            .await;
        assert_eq!(status, 404, "{}", db.name);
        assert_eq!(
            hidden.replace("p1", "X"),
            missing.replace("p9", "X"),
            "{}",
            db.name
        );
        db.cleanup().await;
    }
}

/// Findings 12 and 13: a share-link visitor reads its experiment's views, not the project's
/// import reports, and not who the project's members are.
#[tokio::test]
async fn a_share_link_opens_its_experiment_only() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let share = Who::Share(&w.share_secret);
        assert_eq!(
            w.send(w.get("/experiments/exp-p1", share)).await.0,
            200,
            "{}",
            db.name
        );
        let import: String =
            sqlx::query_scalar("SELECT id FROM imports ORDER BY created_at LIMIT 1")
                .fetch_one(w.store.pool())
                .await
                .unwrap();
        let (status, text) = w
            .send(w.get(&format!("/api/v1/imports/{import}"), share))
            .await;
        assert_eq!(status, 404, "{}: {text}", db.name);
        let (status, queue) = w
            .send(w.request(
                Method::POST,
                &server_fn("review"),
                share,
                "application/json",
                Body::from(
                    r#"{"op":{"op":"queue","slug":"exp-p1","min_share":null,"mine":false}}"#,
                ),
            ))
            .await;
        assert_eq!(status, 200, "{}: {queue}", db.name);
        for member in ["alice", "bob", "dave"] {
            assert!(
                !queue.contains(&format!("\"{member}\"")),
                "{}: {member} named to a share-link visitor: {queue}",
                db.name
            );
        }
        // A member who may assign sees them.
        let (_, queue) = w
            .send(w.request(
                Method::POST,
                &server_fn("review"),
                Who::Cookie(&w.dave),
                "application/json",
                Body::from(
                    r#"{"op":{"op":"queue","slug":"exp-p1","min_share":null,"mine":false}}"#,
                ),
            ))
            .await;
        assert!(queue.contains("\"alice\""), "{}: {queue}", db.name);
        db.cleanup().await;
    }
}

/// Whether a response body ends (or fails) within 15 s.
async fn ends_within_15s(body: &mut Body) -> bool {
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await
    .is_ok()
}

/// Finding 15: an open event stream ends when its reader loses the right: a revoked share link,
/// a removed member.
#[tokio::test]
async fn open_streams_end_when_access_ends() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        // The share-link visitor follows the discussion; the link is revoked.
        let res = w
            .app
            .clone()
            .oneshot(w.get(
                "/api/v1/experiments/exp-p1/comments/events",
                Who::Share(&w.share_secret),
            ))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mut body = res.into_body();
        let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("a first event");
        assert!(first.is_some());
        let link: i64 = w
            .one("SELECT MAX(id) FROM share_links WHERE $1 = $1", 0)
            .await;
        w.store.revoke_share_link(link).await.unwrap();
        let ended = ends_within_15s(&mut body).await;
        assert!(
            ended,
            "{}: the stream outlived the share link by 15 s",
            db.name
        );
        // Bob follows the discussion; alice removes him from p1.
        let res = w
            .app
            .clone()
            .oneshot(w.get(
                "/api/v1/experiments/exp-p1/comments/events",
                Who::Cookie(&w.bob),
            ))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mut body = res.into_body();
        assert!(tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .is_some());
        let bob: i64 = sqlx::query_scalar("SELECT id FROM users WHERE name = 'bob'")
            .fetch_one(w.store.pool())
            .await
            .unwrap();
        w.store.remove_member(w.p1, bob).await.unwrap();
        let ended = ends_within_15s(&mut body).await;
        assert!(
            ended,
            "{}: the stream outlived bob's membership by 15 s",
            db.name
        );
        db.cleanup().await;
    }
}

/// Finding 16: the share secret in `/s/{secret}` never reaches a log line.
#[test]
fn path_secrets_are_redacted_from_logged_uris() {
    let uri: axum::http::Uri = "/s/cls_0123456789abcdef?x=1".parse().unwrap();
    let shown = web::middleware::redacted_uri(&uri);
    assert_eq!(shown, "/s/[redacted]?x=1");
    let uri: axum::http::Uri = "/s/cls_0123456789abcdef".parse().unwrap();
    assert!(!web::middleware::redacted_uri(&uri).contains("cls_"));
}

/// Finding 17: a start counts each evaluation it queues, and a series has a cap.
#[tokio::test]
async fn evaluation_limits_count_the_work() {
    for db in TestDb::all().await {
        let w = world(&db).await;
        let series = |n: usize| {
            let steps: Vec<String> = (1..=n).map(|s| format!(r#"{{"step":{s}}}"#)).collect();
            format!(
                r#"{{"project":"p2","experiment":"s{n}","limit":1,"series":[{}]}}"#,
                steps.join(",")
            )
        };
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/evals",
                Who::Token(&w.carol_token),
                &series(100),
            ))
            .await;
        assert_eq!(status, 400, "{}: {text}", db.name);
        assert!(text.contains("64"), "{text}");
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/evals",
                Who::Token(&w.carol_token),
                &series(50),
            ))
            .await;
        assert_eq!(status, 202, "{}: {text}", db.name);
        // 50 of the hour's 60 are used: 11 more do not fit, 10 do.
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/evals",
                Who::Token(&w.carol_token),
                &series(11),
            ))
            .await;
        assert_eq!(status, 429, "{}: {text}", db.name);
        let (status, text) = w
            .send(w.json(
                Method::POST,
                "/api/v1/evals",
                Who::Token(&w.carol_token),
                &series(10),
            ))
            .await;
        assert_eq!(status, 202, "{}: {text}", db.name);
        db.cleanup().await;
    }
}

/// The root of the site is reachable for the site admin (keeps the world's cookies honest).
#[tokio::test]
async fn the_world_is_what_it_says() {
    let db = TestDb::sqlite().await;
    let w = world(&db).await;
    assert_eq!(
        w.send(w.get("/api/v1/experiments", Who::Cookie(&w.root)))
            .await
            .0,
        200
    );
    let (status, text) = w
        .send(w.get("/api/v1/experiments", Who::Cookie(&w.carol)))
        .await;
    assert_eq!(status, 200);
    assert!(!text.contains("exp-p1"), "{text}");
    assert_eq!(w.p2 - w.p1, 1);
    db.cleanup().await;
}
