//! Evaluation runs with the real engines (issue 7, "done when"):
//! - the embedded SmolLM2 engine, with exact token entropies in the stored traces;
//! - the OpenAI-compatible engine over real HTTP against `caplens engine serve`'s router, in
//!   chat and completions mode, and with a wrong model name;
//! - a `caplens serve` process killed with SIGKILL mid-run, restarted, resuming exactly: every
//!   (problem, sample) stored once, the samples from before the kill kept as they were.
//!
//! The model file comes from `scripts/fetch-model.sh` (the test script runs it); without it these
//! tests fail and say so.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use caplens_app::evals::EvalStartRequest;
use caplens_server::engine::embedded::{EmbeddedEngine, EmbeddedOptions};
use caplens_server::engine::{serve, Engine};
use caplens_server::evals::{self, engines::EngineRegistry, worker::Worker, worker::WorkerConfig};
use common::TestDb;

fn model_path() -> std::path::PathBuf {
    let path = EmbeddedEngine::default_model_path();
    assert!(
        path.is_file(),
        "the embedded model is missing at {}: run scripts/fetch-model.sh",
        path.display()
    );
    path
}

/// One engine per test binary (loading dequantises the weights: about a second).
fn engine() -> Arc<dyn Engine> {
    static ENGINE: OnceLock<Arc<dyn Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Arc::new(
                EmbeddedEngine::load(&model_path(), EmbeddedOptions::default())
                    .expect("load the model"),
            )
        })
        .clone()
}

fn worker(db: &TestDb, registry: EngineRegistry) -> Worker {
    let mut config = WorkerConfig::new(db.dir().join("evals"));
    config.slots = 1;
    config.idle_poll = Duration::from_millis(50);
    Worker::new(db.store.clone(), Arc::new(registry), config)
}

async fn run_to_end(db: &TestDb, w: &Worker, id: i64) -> caplens_app::evals::EvaluationView {
    let task = tokio::spawn(w.clone().run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let view = loop {
        let v = evals::view(&db.store, id).await.unwrap().unwrap();
        if v.is_finished() {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "evaluation {id} too slow: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    w.stop();
    task.await.unwrap();
    view
}

fn small(engine: &str, experiment: &str) -> EvalStartRequest {
    EvalStartRequest {
        engine: Some(engine.into()),
        n: Some(4),
        limit: Some(3),
        max_tokens: Some(24),
        top_logprobs: Some(3),
        temperature: Some(0.8),
        experiment: Some(experiment.into()),
        ..Default::default()
    }
}

/// Queues as `evals::start` does for the default project (what `ops::evals::start` calls once
/// it has authorised the caller).
async fn start(
    store: &caplens_server::storage::Store,
    request: &EvalStartRequest,
) -> Result<Vec<i64>, caplens_server::evals::EvalError> {
    let project = store
        .project_id(request.project.as_deref())
        .await
        .unwrap()
        .expect("the project exists");
    evals::start(store, project, request).await
}

async fn count(db: &TestDb, sql: &str, id: i64) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(db.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_engine_run_stores_graded_rollouts_with_exact_entropies() {
    let db = TestDb::sqlite().await;
    let id = start(&db.store, &small("embedded", "embedded-run"))
        .await
        .unwrap()[0];
    let w = worker(&db, EngineRegistry::with_embedded(engine()));
    let done = run_to_end(&db, &w, id).await;
    assert_eq!(done.status, "completed", "{:?}", done.error);
    let run = done.run_id.unwrap();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM rollouts WHERE run_id = $1", run).await,
        12
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM rollouts WHERE run_id = $1 AND token_count > 0 AND mean_entropy IS NOT NULL", run).await,
        12
    );
    let rollout: i64 = sqlx::query_scalar("SELECT MIN(id) FROM rollouts WHERE run_id = $1")
        .bind(run)
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    let stored = db
        .store
        .rollout_trace(rollout)
        .await
        .unwrap()
        .expect("the rollout");
    assert_eq!(stored.trace_error, None);
    let trace = stored.trace.expect("token data");
    let entropies = trace
        .entropies()
        .expect("exact entropies from the full distribution");
    assert_eq!(entropies.len(), trace.len());
    // The full distribution also gives the exact RBF and the hidden-state norm (eq. 4's ||h||).
    assert!(trace
        .rbf()
        .expect("exact RBF column")
        .iter()
        .all(|r| *r >= 1));
    assert!(trace
        .hidden_norms()
        .expect("hidden-state norms")
        .iter()
        .all(|h| h.is_finite() && *h > 0.0));
    assert!(entropies.iter().all(|e| e.is_finite() && *e >= 0.0));
    assert!(trace
        .top_alternatives()
        .unwrap()
        .iter()
        .all(|alts| alts.len() == 3));

    // An intervention at the most uncertain position of that rollout, continued by the model.
    use caplens_server::evals::interventions;
    let job = interventions::queue(
        &db.store,
        rollout,
        None,
        &interventions::InterventionRequest {
            k: Some(2),
            top_entropy: Some(1),
            max_tokens: Some(16),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let w = worker(&db, EngineRegistry::with_embedded(engine()));
    let task = tokio::spawn(w.clone().run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let view = loop {
        let v = interventions::view(&db.store, job).await.unwrap().unwrap();
        if v.status == "completed" || v.status == "failed" {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "intervention too slow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    w.stop();
    task.await.unwrap();
    assert_eq!(view.status, "completed", "{:?}", view.error);
    let outcome = &view.result.unwrap()[0];
    assert_ne!(outcome.original, outcome.substitute);
    assert_eq!(outcome.counts.original_total, 2);
    assert!((-1.0..=1.0).contains(&outcome.impact));
    let after = db
        .store
        .rollout_trace(rollout)
        .await
        .unwrap()
        .unwrap()
        .trace
        .unwrap();
    assert_eq!(after.impacts().unwrap()[0].position, outcome.position);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_engine_runs_against_caplens_engine_serve_over_http() {
    // `engine serve` listens on loopback: allowed as `--engine-allow 127.0.0.1` would.
    caplens_server::engine::netguard::set_process_policy(
        caplens_server::engine::netguard::EnginePolicy::from_entries(["127.0.0.1"]).unwrap(),
    )
    .unwrap();
    let db = TestDb::sqlite().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, serve::router(engine()))
            .await
            .unwrap()
    });
    let base = format!("http://{addr}");
    for (name, mode) in [("local-chat", "chat"), ("local-completions", "completions")] {
        db.store
            .upsert_engine(&caplens_server::storage::evals::NewEngine {
                project_id: None,
                name,
                base_url: &base,
                model: "SmolLM2-135M-Instruct",
                api_mode: mode,
                api_key: None,
                max_top_logprobs: 20,
            })
            .await
            .unwrap();
    }
    db.store
        .upsert_engine(&caplens_server::storage::evals::NewEngine {
            project_id: None,
            name: "local-wrong",
            base_url: &base,
            model: "Qwen2.5-72B",
            api_mode: "chat",
            api_key: None,
            max_top_logprobs: 20,
        })
        .await
        .unwrap();
    let chat = start(&db.store, &small("local-chat", "served"))
        .await
        .unwrap()[0];
    let completions = start(
        &db.store,
        &EvalStartRequest {
            prompt_template: Some("Question: {prompt}\nAnswer:".into()),
            stop: Some(vec!["\n\n".into()]),
            ..small("local-completions", "served")
        },
    )
    .await
    .unwrap()[0];
    let wrong = start(&db.store, &small("local-wrong", "served"))
        .await
        .unwrap()[0];
    // The embedded engine is not used by this worker: everything goes over HTTP.
    let w = worker(
        &db,
        EngineRegistry::new(Some("/nonexistent/model.gguf".into())),
    );
    run_to_end(&db, &w, completions).await;
    for id in [chat, completions] {
        let v = evals::view(&db.store, id).await.unwrap().unwrap();
        assert_eq!(v.status, "completed", "{id}: {:?}", v.error);
        let run = v.run_id.unwrap();
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM rollouts WHERE run_id = $1", run).await,
            12
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM rollouts WHERE run_id = $1 AND trace_key IS NOT NULL AND mean_entropy IS NOT NULL", run).await,
            12,
            "token data with top-3 alternatives came over HTTP"
        );
    }
    let failed = evals::view(&db.store, wrong).await.unwrap().unwrap();
    assert_eq!(failed.status, "failed");
    let message = failed.error.unwrap();
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(message.contains("Qwen2.5-72B"), "{message}");
    assert!(
        message.contains("it serves: SmolLM2-135M-Instruct"),
        "{message}"
    );
    db.cleanup().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn caplens(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caplens"));
    cmd.env("CAPLENS_DATA_DIR", data_dir)
        .env("CAPLENS_NO_DEMO", "1") // "1" works like "true"
        .env("CAPLENS_EVAL_LEASE_SECS", "3")
        .env("CAPLENS_MODEL", model_path())
        .env_remove("DATABASE_URL");
    cmd
}

fn serve(data_dir: &std::path::Path, port: u16) -> Child {
    caplens(data_dir)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--slots",
            "1",
            "--batch",
            "4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start caplens serve")
}

fn progress(port: u16, id: i64) -> Option<serde_json::Value> {
    let mut res = ureq::get(&format!("http://127.0.0.1:{port}/api/v1/evals/{id}"))
        .call()
        .ok()?;
    serde_json::from_str(&res.body_mut().read_to_string().ok()?).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_resumes_exactly_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Queue from the CLI; the server's in-process worker runs it.
    let queued = caplens(dir.path())
        .args([
            "eval",
            "--no-wait",
            "--n",
            "8",
            "--limit",
            "4",
            "--max-tokens",
            "32",
            "--experiment",
            "killed",
            "--seed",
            "7",
        ])
        .output()
        .unwrap();
    assert!(
        queued.status.success(),
        "{}",
        String::from_utf8_lossy(&queued.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&queued.stdout).trim(),
        "queued evaluation 1"
    );

    let port = free_port();
    let mut server = serve(dir.path(), port);
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        let done = progress(port, 1)
            .and_then(|v| v["samples_done"].as_i64())
            .unwrap_or(0);
        if (8..32).contains(&done) {
            break;
        }
        assert!(done < 32, "the run finished before it could be killed");
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill().unwrap(); // SIGKILL: no shutdown code runs
    server.wait().unwrap();

    let db = caplens_server::config::DatabaseConfig::resolve(None, dir.path()).unwrap();
    let store = caplens_server::storage::Store::open(&db, dir.path())
        .await
        .unwrap();
    let before: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT problem_id, sample_index, record FROM eval_samples WHERE evaluation_id = 1 ORDER BY problem_id, sample_index",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(
        (8..32).contains(&(before.len() as i64)),
        "{} staged at the kill",
        before.len()
    );
    store.close().await;

    // The same port again: the killed server released it.
    let mut server = serve(dir.path(), port);
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let view = loop {
        if let Some(v) = progress(port, 1) {
            if v["status"] == "completed" || v["status"] == "failed" {
                break v;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not finished after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(view["status"], "completed", "{view}");

    let store = caplens_server::storage::Store::open(&db, dir.path())
        .await
        .unwrap();
    let run = view["run_id"].as_i64().unwrap();
    let ids: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT problem_id, sample_index, id FROM rollouts WHERE run_id = $1 ORDER BY problem_id, sample_index",
    )
    .bind(run)
    .fetch_all(store.pool())
    .await
    .unwrap();
    // Responses are read through the store (imports keep them in the run's response pack).
    let mut rows: Vec<(i64, i64, String)> = Vec::new();
    for (problem, sample, id) in ids {
        let response = store
            .rollout(id)
            .await
            .unwrap()
            .unwrap()
            .response
            .unwrap_or_default();
        rows.push((problem, sample, response));
    }
    assert_eq!(
        rows.len(),
        32,
        "every (problem, sample) stored exactly once"
    );
    let mut keys: Vec<(i64, i64)> = rows.iter().map(|r| (r.0, r.1)).collect();
    keys.dedup();
    assert_eq!(keys.len(), 32);
    for (problem, sample, record) in &before {
        let record: serde_json::Value = serde_json::from_str(record).unwrap();
        let stored = rows
            .iter()
            .find(|r| r.0 == *problem && r.1 == *sample)
            .expect("a sample from before the kill is in the run");
        assert_eq!(
            stored.2,
            record["response"].as_str().unwrap(),
            "kept, not regenerated"
        );
    }
    store.close().await;
}
