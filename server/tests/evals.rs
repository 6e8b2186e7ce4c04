//! Evaluation runs (issue 7) on SQLite and PostgreSQL: workers store every sample exactly once,
//! a worker that dies mid-unit is taken over without loss or duplicates, engine failures stay
//! with their evaluation, start requests are validated, and the REST API queues, follows
//! (SSE), cancels and resumes evaluations.
//!
//! The orchestration tests use `ScriptedEngine`, a deterministic engine defined here, so they
//! can count generations and control failures; the real engines are driven in
//! `server/tests/engine_e2e.rs`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use caplens_app::evals::{EvalStartRequest, SeriesCheckpoint};
use caplens_server::engine::{
    Completion, Engine, EngineError, EngineInfo, Generation, GenerationRequest, Prompt,
    TokenAlternative, TokenStep,
};
use caplens_server::evals::{
    self, engines::EngineRegistry, worker::Step, worker::Worker, worker::WorkerConfig,
};
use caplens_server::web;
use common::TestDb;

/// Queues as `evals::start` does for the request's project (default `default`): what the
/// operations layer calls once it has authorised the caller.
async fn start(
    store: &caplens_server::storage::Store,
    request: &EvalStartRequest,
) -> Result<Vec<i64>, caplens_server::evals::EvalError> {
    let project = store
        .project_id(request.project.as_deref())
        .await
        .unwrap()
        .expect("the project exists");
    caplens_server::evals::start(store, project, request).await
}
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Answers "What is A op B?" correctly for the samples whose seed is not a multiple of 3, and
/// off by one for the others; counts samples; can hang after a number of requests (a worker
/// that stops responding, as when its process is killed).
struct ScriptedEngine {
    tag: &'static str,
    samples: AtomicUsize,
    requests: AtomicUsize,
    hang_after_requests: Option<usize>,
    released: Arc<AtomicBool>,
}

impl ScriptedEngine {
    fn new(tag: &'static str) -> Self {
        ScriptedEngine {
            tag,
            samples: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            hang_after_requests: None,
            released: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The true answer of a built-in arithmetic prompt.
fn solve(prompt: &str) -> i64 {
    let q = prompt
        .split("What is ")
        .nth(1)
        .and_then(|r| r.split('?').next())
        .expect("an arithmetic prompt");
    let parts: Vec<&str> = q.split(' ').collect();
    let (a, op, b): (i64, &str, i64) = (
        parts[0].parse().unwrap(),
        parts[1],
        parts[2].parse().unwrap(),
    );
    match op {
        "+" => a + b,
        "-" => a - b,
        _ => a * b,
    }
}

fn prompt_text(p: &Prompt) -> String {
    match p {
        Prompt::Text(t) => t.clone(),
        Prompt::Chat(m) => m.last().map(|m| m.content.clone()).unwrap_or_default(),
    }
}

/// Whether the scripted engine answers a sample with this seed correctly.
fn scripted_correct(seed: u64) -> bool {
    !seed.is_multiple_of(3)
}

impl Engine for ScriptedEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            kind: "embedded".into(),
            model: "scripted".into(),
            max_top_logprobs: 20,
            full_distribution: true,
        }
    }

    fn generate(&self, request: &GenerationRequest) -> Result<Generation, EngineError> {
        let calls = self.requests.fetch_add(1, Ordering::SeqCst);
        if self.hang_after_requests.is_some_and(|h| calls >= h) {
            while !self.released.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return Err(EngineError::Model("released".into()));
        }
        let truth = solve(&prompt_text(&request.prompt));
        let seed = request.params.seed.unwrap_or(0);
        let completions = (0..request.n as u64)
            .map(|i| {
                let answer = match &request.continuation {
                    // Interventions: after the substitute "x" the answer goes wrong, after the
                    // original token it stays right (so I_0 = 1).
                    Some(c) if c.ends_with('x') => truth + 1,
                    Some(_) => truth,
                    None if scripted_correct(seed + i) => truth,
                    None => truth + 1,
                };
                let text = format!("{} says {answer}", self.tag);
                Completion {
                    text: text.clone(),
                    finish_reason: "stop".into(),
                    tokens: Some(vec![
                        TokenStep {
                            token: format!("{} says ", self.tag),
                            id: Some(1),
                            logprob: -0.1,
                            top: vec![TokenAlternative {
                                token: "x".into(),
                                logprob: -0.1,
                            }],
                            entropy: Some(0.4),
                            rbf: Some(2),
                            hidden_norm: None,
                        },
                        TokenStep {
                            token: answer.to_string(),
                            id: Some(2),
                            logprob: -0.7,
                            top: vec![TokenAlternative {
                                token: answer.to_string(),
                                logprob: -0.7,
                            }],
                            entropy: Some(1.1),
                            rbf: Some(3),
                            hidden_norm: None,
                        },
                    ]),
                }
            })
            .collect::<Vec<_>>();
        self.samples.fetch_add(completions.len(), Ordering::SeqCst);
        Ok(Generation {
            completions,
            prompt_tokens: 10,
            completion_tokens: 2 * request.n as u64,
        })
    }
}

fn worker(db: &TestDb, engine: Arc<ScriptedEngine>, slots: usize, batch: u32) -> Worker {
    let mut config = WorkerConfig::new(db.dir().join("evals"));
    config.slots = slots;
    config.batch = batch;
    config.lease = Duration::from_secs(2);
    config.idle_poll = Duration::from_millis(50);
    config.retry_delay = Duration::ZERO;
    Worker::new(
        db.store.clone(),
        Arc::new(EngineRegistry::with_embedded(engine)),
        config,
    )
}

async fn wait_finished(
    db: &TestDb,
    id: i64,
    within: Duration,
) -> caplens_app::evals::EvaluationView {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = evals::view(&db.store, id)
            .await
            .unwrap()
            .expect("evaluation");
        if v.is_finished() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: evaluation {id} not finished in {within:?}: {v:?}",
            db.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scalar(db: &TestDb, sql: &str, id: i64) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(db.store.pool())
        .await
        .unwrap()
}

fn request(n: u32, limit: u32, experiment: &str) -> EvalStartRequest {
    EvalStartRequest {
        n: Some(n),
        limit: Some(limit),
        experiment: Some(experiment.into()),
        model: Some("scripted-sft".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_store_every_sample_once_and_the_run_matches_the_verifier() {
    for db in TestDb::all().await {
        let ids = start(&db.store, &request(6, 10, "evals-once"))
            .await
            .unwrap();
        assert_eq!(ids.len(), 1);
        let id = ids[0];
        let queued = evals::view(&db.store, id).await.unwrap().unwrap();
        assert_eq!(queued.status, "queued");
        assert_eq!(queued.samples_total, 60);

        // Three workers, two slots each, batches of 4: units are claimed concurrently and a
        // unit spans two requests.
        let engine = Arc::new(ScriptedEngine::new("w"));
        let workers: Vec<Worker> = (0..3).map(|_| worker(&db, engine.clone(), 2, 4)).collect();
        let tasks: Vec<_> = workers
            .iter()
            .map(|w| tokio::spawn(w.clone().run()))
            .collect();
        let done = wait_finished(&db, id, Duration::from_secs(60)).await;
        for w in &workers {
            w.stop();
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(done.status, "completed", "{}: {:?}", db.name, done.error);
        assert_eq!(
            engine.samples.load(Ordering::SeqCst),
            60,
            "{}: no sample generated twice",
            db.name
        );
        let run = done.run_id.expect("a run");
        assert_eq!(
            scalar(&db, "SELECT COUNT(*) FROM rollouts WHERE run_id = $1", run).await,
            60
        );
        assert_eq!(
            scalar(
                &db,
                "SELECT COUNT(DISTINCT problem_id) FROM rollouts WHERE run_id = $1",
                run
            )
            .await,
            10
        );
        assert_eq!(
            scalar(
                &db,
                "SELECT COUNT(*) FROM rollouts WHERE run_id = $1 AND trace_key IS NOT NULL",
                run
            )
            .await,
            60,
            "{}: every rollout keeps its token trace",
            db.name
        );
        assert_eq!(
            scalar(
                &db,
                "SELECT COUNT(*) FROM eval_samples WHERE evaluation_id = $1",
                id
            )
            .await,
            0,
            "staged samples are removed once the run holds them"
        );
        let origin: String = sqlx::query_scalar("SELECT origin FROM runs WHERE id = $1")
            .bind(run)
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert_eq!(origin, "triggered");
        // The seeds the worker uses are derived per problem; recompute the expected correct
        // count from the rollouts' own text with the verifier's rule: "says N" is correct iff
        // N is the true answer.
        let ids: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT p.prompt, r.id, r.correct FROM rollouts r JOIN problems p ON p.id = r.problem_id WHERE r.run_id = $1",
        )
        .bind(run)
        .fetch_all(db.store.pool())
        .await
        .unwrap();
        // Responses are read through the store (imports keep them in the run's response pack).
        let mut rows: Vec<(String, String, i64)> = Vec::new();
        for (prompt, id, graded) in ids {
            let response = db
                .store
                .rollout(id)
                .await
                .unwrap()
                .unwrap()
                .response
                .unwrap();
            rows.push((prompt, response, graded));
        }
        let mut correct = 0;
        for (prompt, response, graded) in &rows {
            let said: i64 = response.rsplit(' ').next().unwrap().parse().unwrap();
            let truth = solve(prompt) == said;
            assert_eq!(
                *graded == 1,
                truth,
                "{}: graded {response:?} for {prompt:?}",
                db.name
            );
            correct += truth as i64;
        }
        assert!(
            correct > 0 && correct < 60,
            "the scripted engine mixes right and wrong"
        );
        assert_eq!(done.correct, correct);
        assert_eq!(done.pass_at_k[0].k, 1);
        assert!((done.pass_at_k[0].value - correct as f64 / 60.0).abs() < 1e-9);
        // The run is in the experiment, under the model name asked for.
        let exp = db
            .store
            .experiment("evals-once")
            .await
            .unwrap()
            .expect("experiment");
        assert!(exp
            .runs
            .iter()
            .any(|r| r.id == run && r.model == "scripted-sft"));
        // The experiment says an evaluation made it, and the run carries caplens' verdicts
        // only: no "file's verdict" identical to them, so no verdict switch to offer.
        assert_eq!(
            exp.summary.description,
            format!(
                "Created by evaluation #{}; rename or describe it in the experiment's settings.",
                done.id
            ),
            "{}",
            db.name
        );
        let file_verdicts: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM rollouts WHERE run_id = $1 AND file_correct IS NOT NULL",
        )
        .bind(run)
        .fetch_one(db.store.pool())
        .await
        .unwrap();
        assert_eq!(file_verdicts, 0, "{}", db.name);
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_dies_mid_unit_is_taken_over_without_loss_or_duplicates() {
    for db in TestDb::all().await {
        let id = start(&db.store, &request(8, 3, "evals-crash"))
            .await
            .unwrap()[0];
        // Worker A: batches of 3, so a unit takes 3 requests; its engine stops answering on
        // its 3rd request (the 1st unit's last batch), like a process that hangs or dies.
        let mut hanging = ScriptedEngine::new("A");
        hanging.hang_after_requests = Some(2);
        let hanging = Arc::new(hanging);
        // Let the hung engine thread go at the end, even when an assertion fails (the runtime
        // waits for blocking threads when it shuts down).
        struct Release(Arc<AtomicBool>);
        impl Drop for Release {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _release = Release(hanging.released.clone());
        let a = worker(&db, hanging.clone(), 1, 3);
        let a_task = tokio::spawn(a.clone().run());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while hanging.requests.load(Ordering::SeqCst) < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker A never reached its 3rd request"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Kill A: its tasks end, its lease is no longer renewed.
        a_task.abort();
        let _ = a_task.await;
        let staged_by_a = scalar(
            &db,
            "SELECT COUNT(*) FROM eval_samples WHERE evaluation_id = $1",
            id,
        )
        .await;
        assert_eq!(staged_by_a, 6, "{}: A staged two batches of 3", db.name);

        // Worker B takes over once A's lease (2 s) runs out and generates only what is missing.
        let fresh = Arc::new(ScriptedEngine::new("B"));
        let b = worker(&db, fresh.clone(), 1, 3);
        let b_task = tokio::spawn(b.clone().run());
        let done = wait_finished(&db, id, Duration::from_secs(60)).await;
        b.stop();
        b_task.await.unwrap();
        assert_eq!(done.status, "completed", "{}: {:?}", db.name, done.error);
        assert_eq!(fresh.samples.load(Ordering::SeqCst), 24 - 6, "{}", db.name);
        let run = done.run_id.unwrap();
        assert_eq!(
            scalar(&db, "SELECT COUNT(*) FROM rollouts WHERE run_id = $1", run).await,
            24
        );
        // Responses read through the store (imports keep them in the run's response pack).
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM rollouts WHERE run_id = $1")
            .bind(run)
            .fetch_all(db.store.pool())
            .await
            .unwrap();
        let mut by_a = 0;
        for rollout in ids {
            let response = db.store.rollout(rollout).await.unwrap().unwrap().response;
            by_a += response.is_some_and(|r| r.starts_with("A says")) as i64;
        }
        assert_eq!(
            by_a, 6,
            "{}: A's samples are kept, not regenerated",
            db.name
        );
        // Sample indices 0..8 of every problem, each once.
        let per_problem: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT COUNT(*), MIN(sample_index), MAX(sample_index) FROM rollouts WHERE run_id = $1 GROUP BY problem_id",
        )
        .bind(run)
        .fetch_all(db.store.pool())
        .await
        .unwrap();
        assert_eq!(per_problem, vec![(8, 0, 7); 3]);
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_and_resume_continue_where_the_evaluation_stopped() {
    for db in TestDb::all().await {
        let id = start(&db.store, &request(4, 6, "evals-cancel"))
            .await
            .unwrap()[0];
        assert!(db.store.cancel_evaluation(id).await.unwrap());
        assert!(
            !db.store.cancel_evaluation(id).await.unwrap(),
            "cancelling twice is refused"
        );
        let engine = Arc::new(ScriptedEngine::new("c"));
        let w = worker(&db, engine.clone(), 1, 4);
        // A worker's step finds nothing to do (no unit to claim), rather than a sleep that
        // hopes the worker would have started by then.
        assert_eq!(
            w.step().await.unwrap(),
            Step::Idle,
            "a cancelled evaluation is not worked on"
        );
        assert_eq!(engine.samples.load(Ordering::SeqCst), 0);
        let task = tokio::spawn(w.clone().run());
        assert!(db.store.resume_evaluation(id).await.unwrap());
        let done = wait_finished(&db, id, Duration::from_secs(60)).await;
        w.stop();
        task.await.unwrap();
        assert_eq!(done.status, "completed");
        assert_eq!(engine.samples.load(Ordering::SeqCst), 24);
        assert!(
            !db.store.resume_evaluation(id).await.unwrap(),
            "a completed evaluation stays completed"
        );
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_request_fails_its_evaluation_not_the_worker() {
    // The fake server is on loopback: allowed as `--engine-allow 127.0.0.1` would.
    caplens_server::engine::netguard::set_process_policy(
        caplens_server::engine::netguard::EnginePolicy::from_entries(["127.0.0.1"]).unwrap(),
    )
    .unwrap();
    for db in TestDb::all().await {
        // An OpenAI-compatible engine that answers 404 for the model (a wrong model name).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Router::new()
            .route(
                "/v1/models",
                axum::routing::get(|| async {
                    axum::Json(serde_json::json!({"object":"list","data":[{"id":"served-model","object":"model"}]}))
                }),
            )
            .route(
                "/v1/completions",
                axum::routing::post(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        axum::Json(serde_json::json!({"error":{"message":"The model `wrong-model` does not exist.","type":"NotFoundError","code":404}})),
                    )
                }),
            );
        tokio::spawn(async move { axum::serve(listener, fake).await.unwrap() });
        db.store
            .upsert_engine(&caplens_server::storage::evals::NewEngine {
                project_id: None,
                name: "gpu",
                base_url: &format!("http://{addr}"),
                model: "wrong-model",
                api_mode: "completions",
                api_key: None,
                max_top_logprobs: 20,
            })
            .await
            .unwrap();
        let bad = start(
            &db.store,
            &EvalStartRequest {
                engine: Some("gpu".into()),
                ..request(2, 2, "evals-fail")
            },
        )
        .await
        .unwrap()[0];
        let good = start(&db.store, &request(2, 2, "evals-fail"))
            .await
            .unwrap()[0];
        let engine = Arc::new(ScriptedEngine::new("g"));
        let w = worker(&db, engine.clone(), 1, 4);
        let task = tokio::spawn(w.clone().run());
        let failed = wait_finished(&db, bad, Duration::from_secs(30)).await;
        let completed = wait_finished(&db, good, Duration::from_secs(30)).await;
        w.stop();
        task.await.unwrap();
        assert_eq!(failed.status, "failed");
        let message = failed.error.unwrap();
        assert!(
            message.contains("rejected the request (HTTP 404)"),
            "{message}"
        );
        // The server's own text never reaches the error (issue 25); the served model ids,
        // a field of the protocol, do.
        assert!(!message.contains("does not exist"), "{message}");
        assert!(
            message.contains("model \"wrong-model\" is not served there"),
            "{message}"
        );
        assert!(message.contains("it serves: served-model"), "{message}");
        assert!(message.starts_with("problem add-1x1-1:"), "{message}");
        assert_eq!(
            completed.status, "completed",
            "the other evaluation is unaffected"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn start_requests_are_checked_field_by_field() {
    let db = TestDb::sqlite().await;
    let cases: Vec<(EvalStartRequest, &str)> = vec![
        (
            EvalStartRequest {
                dataset: Some("nope".into()),
                ..Default::default()
            },
            "dataset \"nope\" does not exist",
        ),
        (
            EvalStartRequest {
                engine: Some("gpu9".into()),
                ..Default::default()
            },
            "engine: no engine named \"gpu9\" in this project",
        ),
        (
            EvalStartRequest {
                n: Some(0),
                ..Default::default()
            },
            "n: must be between 1 and",
        ),
        (
            EvalStartRequest {
                top_logprobs: Some(50),
                ..Default::default()
            },
            "top_logprobs: is 50 but engine \"embedded\" returns at most 20",
        ),
        (
            EvalStartRequest {
                temperature: Some(-1.0),
                ..Default::default()
            },
            "temperature must be between 0 and 5",
        ),
        (
            EvalStartRequest {
                prompt_template: Some("no placeholder".into()),
                ..Default::default()
            },
            "prompt_template: must contain {prompt}",
        ),
        (
            EvalStartRequest {
                experiment: Some("Not A Slug".into()),
                ..Default::default()
            },
            "experiment: \"Not A Slug\" is not a valid slug",
        ),
        (
            EvalStartRequest {
                stage: Some("final".into()),
                ..Default::default()
            },
            "stage: must be one of",
        ),
        (
            EvalStartRequest {
                series: Some(vec![]),
                ..Default::default()
            },
            "series: is empty",
        ),
    ];
    for (req, expected) in cases {
        let err = start(&db.store, &req).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{req:?}: {err}");
    }
    let count = scalar(&db, "SELECT COUNT(*) FROM evaluations WHERE id > $1", 0).await;
    assert_eq!(count, 0, "nothing queued by a refused request");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_series_becomes_a_lineage_with_training_steps() {
    for db in TestDb::all().await {
        let ids = start(
            &db.store,
            &EvalStartRequest {
                model: Some("policy".into()),
                stage: Some("rl".into()),
                series: Some(vec![
                    SeriesCheckpoint {
                        engine: None,
                        model: None,
                        step: 200,
                    },
                    SeriesCheckpoint {
                        engine: None,
                        model: None,
                        step: 100,
                    },
                ]),
                ..request(2, 3, "evals-series")
            },
        )
        .await
        .unwrap();
        assert_eq!(ids.len(), 2);
        let engine = Arc::new(ScriptedEngine::new("s"));
        let w = worker(&db, engine, 2, 4);
        let task = tokio::spawn(w.clone().run());
        for id in &ids {
            let v = wait_finished(&db, *id, Duration::from_secs(60)).await;
            assert_eq!(v.status, "completed", "{}: {:?}", db.name, v.error);
        }
        w.stop();
        task.await.unwrap();
        let models = db.store.models().await.unwrap();
        let m100 = models
            .iter()
            .find(|m| m.name == "policy@step-100")
            .expect("step 100");
        let m200 = models
            .iter()
            .find(|m| m.name == "policy@step-200")
            .expect("step 200");
        assert_eq!(m100.training_step, Some(100));
        assert_eq!(m200.training_step, Some(200));
        assert_eq!(
            m200.parent_id,
            Some(m100.id),
            "{}: step 200 was trained from step 100",
            db.name
        );
        db.cleanup().await;
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = tokio::time::timeout(
        Duration::from_secs(30),
        app.clone()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap()),
    )
    .await
    .expect("answered")
    .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_api_uploads_datasets_and_queues_follows_and_cancels_evaluations() {
    for db in TestDb::all().await {
        let app = web::router(
            caplens_server::ingest::service::ImportService::new(
                db.store.clone(),
                db.dir(),
                1 << 30,
            ),
            std::path::Path::new("/nonexistent-site"),
            "127.0.0.1:0".parse().unwrap(),
        );
        let token = db.store.create_token("ci").await.unwrap().secret;
        // Writes need the token.
        let (status, body) = call(&app, "POST", "/api/v1/evals", None, "{}").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        // A dataset with a bad line is refused whole, naming file, line and field.
        let bad = "{\"id\":1,\"prompt\":\"What is 2 + 2?\",\"answer\":\"4\"}\n{\"id\":2,\"prompt\":\"What is 3 + 3?\"}\n";
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/datasets?name=mini&filename=mini.jsonl",
            Some(&token),
            bad,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body.contains("mini.jsonl:2: field \\\"answer\\\": missing"),
            "{body}"
        );
        assert!(db
            .store
            .eval_datasets()
            .await
            .unwrap()
            .iter()
            .all(|d| d.name != "mini"));
        let good = "{\"id\":1,\"prompt\":\"What is 2 + 2?\",\"answer\":\"4\"}\n{\"id\":2,\"prompt\":\"What is 3 * 3?\",\"answer\":9,\"tags\":[\"mul\"]}\n";
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/datasets?name=mini",
            Some(&token),
            good,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/datasets?name=mini",
            Some(&token),
            good,
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body.contains("exists already"), "{body}");

        // Unknown fields and bad values are named.
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/evals",
            Some(&token),
            r#"{"dataset":"mini","samples":3}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("unknown field `samples`"), "{body}");
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/evals",
            Some(&token),
            r#"{"dataset":"mini","top_p":0}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("top_p must be in (0, 1]"), "{body}");

        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/evals",
            Some(&token),
            r#"{"dataset":"mini","n":3,"experiment":"api-evals"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let created: serde_json::Value = serde_json::from_str(&body).unwrap();
        let id = created["evaluations"][0]["id"].as_i64().unwrap();
        assert_eq!(created["evaluations"][0]["samples_total"], 6);
        // Never the API key: engines list only says whether one is set.
        db.store
            .upsert_engine(&caplens_server::storage::evals::NewEngine {
                project_id: None,
                name: "keyed",
                base_url: "http://127.0.0.1:9",
                model: "m",
                api_mode: "chat",
                api_key: Some("sk-secret"),
                max_top_logprobs: 20,
            })
            .await
            .unwrap();
        let (_, engines) = call(&app, "GET", "/api/v1/engines", None, "").await;
        assert!(!engines.contains("sk-secret"), "{engines}");
        assert!(engines.contains("\"has_api_key\":true"), "{engines}");

        // Follow: the SSE stream's first event is the progress view.
        let res = app
            .clone()
            .oneshot(
                Request::get(format!("/api/v1/evals/{id}/events"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = res.into_body();
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
        assert!(text.starts_with("event: progress\ndata: {"), "{text}");
        assert!(text.contains(&format!("\"id\":{id}")), "{text}");

        // Cancel, then cancelling again is a conflict; resume works; unknown ids are 404.
        let (status, body) = call(
            &app,
            "POST",
            &format!("/api/v1/evals/{id}/cancel"),
            Some(&token),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"status\":\"cancelled\""), "{body}");
        let (status, _) = call(
            &app,
            "POST",
            &format!("/api/v1/evals/{id}/cancel"),
            Some(&token),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, body) = call(
            &app,
            "POST",
            &format!("/api/v1/evals/{id}/resume"),
            Some(&token),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"status\":\"queued\""), "{body}");
        let (status, _) = call(&app, "GET", "/api/v1/evals/999999", None, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, list) = call(&app, "GET", "/api/v1/evals", None, "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(list.contains(&format!("\"id\":{id}")));
        // The pages render the list and the progress page.
        let (status, html) = call(&app, "GET", &format!("/evals/{id}"), None, "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("data-testid=\"eval-progress\""),
            "progress page"
        );
        let (status, _) = call(&app, "GET", "/evals/424242", None, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interventions_measure_eq6_and_land_in_the_trace_and_token_stats() {
    for db in TestDb::all().await {
        let id = start(&db.store, &request(2, 1, "evals-intervene"))
            .await
            .unwrap()[0];
        let engine = Arc::new(ScriptedEngine::new("w"));
        let w = worker(&db, engine.clone(), 1, 4);
        let task = tokio::spawn(w.clone().run());
        let done = wait_finished(&db, id, Duration::from_secs(60)).await;
        let run = done.run_id.unwrap();
        // Automatic mode over the run: one rollout, its top-entropy positions with a substitute.
        let jobs = caplens_server::evals::interventions::queue_for_run(
            &db.store,
            run,
            1,
            None,
            &caplens_server::evals::interventions::InterventionRequest {
                k: Some(4),
                top_entropy: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(jobs.len(), 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let job = loop {
            let v = caplens_server::evals::interventions::view(&db.store, jobs[0])
                .await
                .unwrap()
                .unwrap();
            if v.status == "completed" || v.status == "failed" {
                break v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "intervention not done: {v:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        w.stop();
        task.await.unwrap();
        assert_eq!(job.status, "completed", "{}: {:?}", db.name, job.error);
        let result = job.result.unwrap();
        // Position 1 (the answer) has no other alternative, so only position 0 is measured.
        assert_eq!(result.len(), 1, "{result:?}");
        assert_eq!(result[0].position, 0);
        assert_eq!(result[0].substitute, "x");
        let c = result[0].counts;
        assert_eq!((c.original_correct, c.original_total), (4, 4));
        assert_eq!((c.substitute_correct, c.substitute_total), (0, 4));
        assert_eq!(result[0].impact, 1.0);
        let stored = db
            .store
            .rollout_trace(job.rollout_id)
            .await
            .unwrap()
            .unwrap();
        let trace = stored.trace.expect("trace");
        let impacts = trace.impacts().expect("impacts in the trace");
        assert_eq!(impacts.len(), 1);
        assert_eq!((impacts[0].position, impacts[0].impact), (0, 1.0));
        let stats = db.store.run_token_stats(&[run]).await.unwrap();
        let interventions = stats[0]
            .1
            .as_ref()
            .unwrap()
            .interventions
            .as_ref()
            .expect("intervention stats");
        assert_eq!(interventions.interventions, 1, "{}", db.name);
        db.cleanup().await;
    }
}

/// Datasets as people have them, over REST: GSM8K-shaped JSON Lines with its own field names
/// mapped by query parameters (the answer read after `####`), and MATH-500's parquet export with
/// its fields detected; a mapped field that is absent is named per line and nothing is stored.
#[tokio::test]
async fn rest_dataset_uploads_map_fields_and_read_parquet() {
    for db in TestDb::all().await {
        let app = web::router(
            caplens_server::ingest::service::ImportService::new(
                db.store.clone(),
                db.dir(),
                1 << 30,
            ),
            std::path::Path::new("/nonexistent-site"),
            "127.0.0.1:0".parse().unwrap(),
        );
        let token = db.store.create_token("ci").await.unwrap().secret;
        let problems = |name: &'static str| {
            let pool = db.store.pool().clone();
            async move {
                sqlx::query_as::<_, (String, String, String)>(
                    "SELECT p.problem_key, p.prompt, p.reference_answer FROM problems p
                     JOIN datasets d ON d.id = p.dataset_id WHERE d.name = $1 ORDER BY p.id",
                )
                .bind(name)
                .fetch_all(&pool)
                .await
                .unwrap()
            }
        };
        let gsm = "{\"q\":\"Natalia sold 48 clips in April and half as many in May. How many?\",\"sol\":\"48/2 = 24 in May.\\n48+24 = 72.\\n#### 72\",\"key\":\"gsm-0\"}\n{\"q\":\"Weng earns $12 an hour. How much for 50 minutes?\",\"sol\":\"12/60*50 = 10\\n#### 10\",\"key\":\"gsm-1\"}\n";
        // Without the mapping no field can be the prompt: refused, the fields named.
        let (status, body) =
            call(&app, "POST", "/api/v1/datasets?name=gsm", Some(&token), gsm).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body.contains("no prompt field: the records have the fields key, q, sol"),
            "{body}"
        );
        // A mapped field that some line lacks: that line named, nothing stored.
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/datasets?name=gsm&filename=gsm.jsonl&prompt_field=q&answer_field=sol&id_field=nope",
            Some(&token),
            gsm,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body.contains("gsm.jsonl:1: field \\\"nope\\\": missing"),
            "{body}"
        );
        assert!(
            body.contains("gsm.jsonl:2: field \\\"nope\\\": missing"),
            "{body}"
        );
        assert!(problems("gsm").await.is_empty());
        let (status, body) = call(
            &app,
            "POST",
            "/api/v1/datasets?name=gsm&prompt_field=q&answer_field=sol&id_field=key",
            Some(&token),
            gsm,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let stored = problems("gsm").await;
        let got: Vec<(&str, &str)> = stored
            .iter()
            .map(|(k, _, a)| (k.as_str(), a.as_str()))
            .collect();
        assert_eq!(got, [("gsm-0", "72"), ("gsm-1", "10")]);
        assert!(stored[0].1.starts_with("Natalia sold 48 clips"));

        // MATH-500's parquet, fields detected (problem, answer, unique_id).
        let parquet = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/datasets/math500-sample.parquet"
        ))
        .unwrap();
        let req = Request::post("/api/v1/datasets?name=math500&filename=math500.parquet")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(parquet))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let stored = problems("math500").await;
        let got: Vec<(&str, &str)> = stored
            .iter()
            .map(|(k, _, a)| (k.as_str(), a.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "test/precalculus/807.json",
                    "\\left( 3, \\frac{\\pi}{2} \\right)"
                ),
                ("test/intermediate_algebra/1994.json", "p - q"),
                ("test/algebra/2584.json", "\\frac{14}{3}"),
            ]
        );
        db.cleanup().await;
    }
}
