//! Several `caplens serve` replicas and a `caplens worker` over one PostgreSQL schema and one
//! S3 bucket behave as one caplens (issue 17):
//! - an import through replica A is browsed through replica B, token heatmap included;
//! - a session opened on A is valid on B;
//! - an evaluation started on B is run by the worker process and followed live (SSE) from A,
//!   and the traces the worker wrote read back through A;
//! - A killed with SIGKILL mid-import: nothing of it becomes visible, the sweeper leaves no
//!   orphan blob in the bucket (only the kept upload, which a retry through B then imports and
//!   removes).
//!
//! Needs `CAPLENS_TEST_POSTGRES_URL` and `CAPLENS_TEST_S3_URL` (with the `AWS_*` variables of
//! the S3 server); the test command starts moto's S3 server and sets them. Without them the test
//! says so and checks nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caplens_server::storage::BlobStore;
use common::TestDb;

const PASSWORD: &str = "a long enough password";

struct Deployment {
    db_url: String,
    blob_url: String,
    root: tempfile::TempDir,
}

impl Deployment {
    /// A `caplens` command of this deployment, with its own data directory.
    fn caplens(&self, name: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_caplens"));
        cmd.env("DATABASE_URL", &self.db_url)
            .env("CAPLENS_BLOB_URL", &self.blob_url)
            .env("CAPLENS_DATA_DIR", self.root.path().join(name))
            .env("CAPLENS_NO_DEMO", "1")
            .env("CAPLENS_EVAL_LEASE_SECS", "3")
            .env_remove("CAPLENS_TEST_HOLD_IMPORT");
        cmd
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut cmd = self.caplens("cli");
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "caplens {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a replica (its stderr lines kept for the caller).
    fn spawn_serve(&self, name: &str, extra_env: &[(&str, &str)]) -> Replica {
        let port = free_port();
        let mut cmd = self.caplens(name);
        cmd.envs(extra_env.iter().copied());
        spawn_replica(cmd, port)
    }

    fn serve(&self, name: &str, extra_env: &[(&str, &str)]) -> Replica {
        let replica = self.spawn_serve(name, extra_env);
        replica.wait_ready(name);
        replica
    }

    fn worker(&self) -> Child {
        self.caplens("worker")
            .args(["worker", "--slots", "1", "--batch", "4"])
            .env(
                "CAPLENS_MODEL",
                caplens_server::engine::embedded::EmbeddedEngine::default_model_path(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start caplens worker")
    }
}

struct Replica {
    child: Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Replica {
    /// Waits until the replica answers `/readyz` with 200 (database and blob store reachable).
    fn wait_ready(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while ureq::get(&self.url("/readyz")).call().is_err() {
            assert!(
                Instant::now() < deadline,
                "replica {name} did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str, auth: &Auth) -> (u16, String) {
        let mut req = ureq::get(&self.url(path))
            .config()
            .http_status_as_error(false)
            .build();
        req = match auth {
            Auth::Token(t) => req.header("Authorization", &format!("Bearer {t}")),
            Auth::Cookie(c) => req.header("Cookie", c),
        };
        let mut res = req.call().unwrap();
        (
            res.status().as_u16(),
            res.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    fn post(&self, path: &str, token: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        let mut res = ureq::post(&self.url(path))
            .config()
            .http_status_as_error(false)
            .build()
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", content_type)
            .send(body)
            .unwrap();
        (
            res.status().as_u16(),
            res.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// Starts an evaluation; returns its id.
    fn start_eval(&self, token: &str, request: serde_json::Value) -> i64 {
        let (status, body) = self.post(
            "/api/v1/evals",
            token,
            "application/json",
            request.to_string().as_bytes(),
        );
        assert_eq!(status, 202, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["evaluations"][0]["id"]
            .as_i64()
            .unwrap()
    }

    /// Uploads native JSON Lines into `experiment`; returns the import id.
    fn upload(&self, token: &str, experiment: &str, lines: &str) -> String {
        let (status, body) = self.post(
            &format!("/api/v1/imports?experiment={experiment}&filename={experiment}.jsonl"),
            token,
            "application/x-ndjson",
            lines.as_bytes(),
        );
        assert_eq!(status, 202, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn json(&self, path: &str, auth: &Auth) -> serde_json::Value {
        let (status, body) = self.get(path, auth);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for_line(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?} within {within:?}"),
            }
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Auth {
    Token(String),
    Cookie(String),
}

/// `caplens serve` from `cmd` on `port`, without a worker; its stderr lines kept.
fn spawn_replica(mut cmd: Command, port: u16) -> Replica {
    cmd.args([
        "serve",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--no-worker",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start caplens serve");
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Replica { child, port, lines }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Native JSON Lines: two models, 8 problems, 4 samples, every rollout with token log-probs.
fn rollouts_with_tokens(samples: u32) -> String {
    let mut out = String::new();
    for (model, skill) in [("base", 2u32), ("rl", 3u32)] {
        for p in 0..8u32 {
            for s in 0..samples {
                let correct = (p + s * skill) % 4 < skill;
                let answer = if correct { p + 1 } else { p + 50 };
                out.push_str(&format!(
                    "{{\"model\":\"{model}\",\"dataset\":\"replicas\",\"problem_id\":\"p{p}\",\"sample\":{s},\"reference\":\"{}\",\"correct\":{correct},\"response\":\"<script>x</script> The answer is \\\\boxed{{{answer}}}.\",\"tokens\":[\"The\",\" answer\",\" is\"],\"token_logprobs\":[-0.1,-1.5,-0.2],\"top_logprobs\":[[[\"The\",-0.1],[\"A\",-2.5]],[[\" answer\",-1.5],[\" result\",-0.4]],[[\" is\",-0.2],[\" was\",-1.9]]]}}\n",
                    p + 1
                ));
            }
        }
    }
    out
}

fn wait_import(replica: &Replica, id: &str, auth: &Auth) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let report = replica.json(&format!("/api/v1/imports/{id}"), auth);
        if report["status"] != "processing" && report["status"] != "queued" {
            return report;
        }
        assert!(Instant::now() < deadline, "import {id} too slow: {report}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn a_traced_rollout(db: &TestDb, experiment: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT MIN(x.id) FROM rollouts x JOIN experiment_runs er ON er.run_id = x.run_id
         JOIN experiments e ON e.id = er.experiment_id
         WHERE e.slug = $1 AND x.trace_key IS NOT NULL",
    )
    .bind(experiment)
    .fetch_one(db.store.pool())
    .await
    .unwrap()
}

/// The rollout page's heatmap: rendered from the trace read out of the shared bucket.
fn assert_heatmap(replica: &Replica, rollout: i64, auth: &Auth, tokens: usize) {
    let (status, page) = replica.get(&format!("/rollouts/{rollout}"), auth);
    assert_eq!(status, 200, "{page}");
    assert!(
        !page.contains("missing from the blob store"),
        "the trace did not reach this replica"
    );
    assert!(
        page.contains(&format!("data-tokens=\"{tokens}\"")),
        "no {tokens}-token heatmap on rollout {rollout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_and_a_worker_over_one_database_and_bucket_behave_as_one() {
    let Ok(s3) = std::env::var("CAPLENS_TEST_S3_URL") else {
        eprintln!("CAPLENS_TEST_S3_URL is not set: the replica test needs an S3 server (scripts/test.sh starts one)");
        return;
    };
    let Some(db) = TestDb::postgres_with(false).await else {
        eprintln!("CAPLENS_TEST_POSTGRES_URL is not set: the replica test needs PostgreSQL");
        return;
    };
    let blob_url = format!(
        "{s3}/replicas-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let d = Deployment {
        db_url: db.database_url().unwrap(),
        blob_url: blob_url.clone(),
        root: tempfile::tempdir().unwrap(),
    };
    let bucket = BlobStore::from_url(&blob_url).unwrap();

    // Two replicas and a worker start together on a fresh schema: migrations run once, under
    // PostgreSQL's lock, and the built-in dataset is seeded once.
    let a = d.spawn_serve("a", &[]);
    let b = d.spawn_serve("b", &[]);
    let mut worker = d.worker();
    a.wait_ready("a");
    b.wait_ready("b");
    let builtin: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM datasets")
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert!(builtin >= 1, "the built-in dataset is seeded");

    // Team mode: an admin and a token, made through the CLI on the shared database.
    d.run(
        &["user", "create", "alice", "--admin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let token = d
        .run(
            &[
                "token",
                "create",
                "ci",
                "--user",
                "alice",
                "--project",
                "default",
            ],
            None,
        )
        .trim()
        .to_owned();
    let tok = Auth::Token(token.clone());
    let (status, _) = b.get("/api/v1/experiments", &Auth::Cookie("nothing=here".into()));
    assert_eq!(
        status, 401,
        "team mode on every replica once an account exists"
    );

    // An import through A, browsed through B.
    let id = a.upload(&token, "shared", &rollouts_with_tokens(4));
    let report = wait_import(&b, &id, &tok);
    assert_eq!(report["status"], "completed", "{report}");
    assert_eq!(report["rows_stored"], 64);
    let detail = b.json("/api/v1/experiments/shared", &tok);
    assert_eq!(detail["runs"].as_array().unwrap().len(), 2, "{detail}");
    assert!(
        bucket
            .list(&BlobStore::import_traces_prefix(&id))
            .await
            .unwrap()
            .iter()
            .any(|blob| blob.key.ends_with(".pack")),
        "the trace packs are in the bucket"
    );

    // A session opened on A is valid on B.
    let res = ureq::post(&a.url("/auth/login"))
        .config()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .header("Origin", &a.url(""))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!(
            "name=alice&password={}&next=%2F",
            PASSWORD.replace(' ', "+")
        ))
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session = Auth::Cookie(cookie);
    let (status, _) = b.get("/api/v1/experiments", &session);
    assert_eq!(status, 200, "the session from A is valid on B");
    let rollout = a_traced_rollout(&db, "shared").await;
    assert_heatmap(&b, rollout, &session, 3);

    // An evaluation started on B, run by the worker process, followed live from A.
    let eval_id = b.start_eval(
        &token,
        serde_json::json!({
            "engine": "embedded", "n": 2, "limit": 2, "max_tokens": 12, "top_logprobs": 3,
            "temperature": 0.8, "experiment": "worked"
        }),
    );
    let events_url = a.url(&format!("/api/v1/evals/{eval_id}/events"));
    let sse_token = token.clone();
    let events = tokio::task::spawn_blocking(move || {
        let mut res = ureq::get(&events_url)
            .header("Authorization", &format!("Bearer {sse_token}"))
            .call()
            .unwrap();
        let mut kinds = Vec::new();
        let mut last = String::new();
        for line in BufReader::new(res.body_mut().as_reader()).lines() {
            let line = line.unwrap();
            if let Some(kind) = line.strip_prefix("event: ") {
                kinds.push(kind.to_owned());
            } else if let Some(data) = line.strip_prefix("data: ") {
                last = data.to_owned();
                if kinds.last().map(String::as_str) == Some("done") {
                    break;
                }
            }
        }
        (kinds, last)
    });
    let (kinds, last) = tokio::time::timeout(Duration::from_secs(300), events)
        .await
        .expect("the evaluation did not finish within 5 minutes")
        .unwrap();
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(kinds.iter().any(|k| k == "progress"), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("done"), "{kinds:?}");
    let done: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let eval_rollout = a_traced_rollout(&db, "worked").await;
    let tokens: i64 = sqlx::query_scalar("SELECT token_count FROM rollouts WHERE id = $1")
        .bind(eval_rollout)
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert_heatmap(&a, eval_rollout, &session, tokens as usize);

    // A killed mid-import: nothing visible, no orphan blob after the sweep, the kept upload
    // retried through B.
    drop(a);
    let a = d.serve("a", &[("CAPLENS_TEST_HOLD_IMPORT", "1")]);
    let killed = a.upload(&token, "killed", &rollouts_with_tokens(64));
    a.wait_for_line("holding the import open", Duration::from_secs(60));
    let kept = format!("{}/request.json", BlobStore::upload_prefix(&killed));
    let deadline = Instant::now() + Duration::from_secs(60);
    while bucket.get(&kept).await.unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the upload was not kept in the bucket"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut a = a;
    a.child.kill().unwrap(); // SIGKILL: no shutdown code runs
    a.child.wait().unwrap();
    let (status, _) = b.get("/api/v1/experiments/killed", &tok);
    assert_eq!(status, 404, "nothing of the killed import is visible");
    let swept = d.run(&["blobs", "sweep", "--grace-secs", "0"], None);
    assert!(
        swept.starts_with("1 import(s) marked interrupted"),
        "{swept}"
    );
    let report = b.json(&format!("/api/v1/imports/{killed}"), &tok);
    assert_eq!(report["status"], "failed");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{report}"
    );
    let left: Vec<String> = bucket
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.key)
        .collect();
    assert!(
        !left
            .iter()
            .any(|k| k.starts_with(&BlobStore::import_traces_prefix(&killed))),
        "orphan packs of the killed import: {left:?}"
    );
    assert!(
        left.iter()
            .all(|k| k.starts_with("traces/") || k.starts_with(&BlobStore::upload_prefix(&killed))),
        "only committed packs and the kept upload remain: {left:?}"
    );
    let (status, body) = b.post(
        &format!("/api/v1/imports/{killed}/retry"),
        &token,
        "application/json",
        b"",
    );
    assert_eq!(status, 202, "{body}");
    let report = wait_import(&b, &killed, &tok);
    assert_eq!(report["status"], "completed", "{report}");
    assert_eq!(report["rows_stored"], 2 * 8 * 64);
    // The kept upload is removed right after the import's row says completed (the row first,
    // so a crash in between leaves a retryable upload, not a lost one): wait for it briefly.
    let mut kept = bucket
        .list(&BlobStore::upload_prefix(&killed))
        .await
        .unwrap();
    for _ in 0..100 {
        if kept.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        kept = bucket
            .list(&BlobStore::upload_prefix(&killed))
            .await
            .unwrap();
    }
    assert!(
        kept.is_empty(),
        "the kept upload is removed once imported: {kept:?}"
    );
    drop(b);
    bucket.delete_prefix("traces").await.unwrap();
    db.cleanup().await;
}

/// A graceful stop (SIGTERM): an open event stream ends, the process exits promptly, and the
/// import it was running is released at once (interrupted, its upload kept for a retry), not
/// left for its lease to run out. SQLite, local blob store: no other service needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_ends_streams_and_releases_its_imports() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let caplens = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_caplens"));
        cmd.env_remove("DATABASE_URL")
            .env_remove("CAPLENS_BLOB_URL")
            .env("CAPLENS_DATA_DIR", &data)
            .env("CAPLENS_NO_DEMO", "1");
        cmd
    };
    let out = caplens().args(["token", "create", "ci"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut cmd = caplens();
    cmd.env("CAPLENS_TEST_HOLD_IMPORT", "1");
    let server = spawn_replica(cmd, free_port());
    server.wait_ready("graceful");
    // An evaluation nobody runs (no worker): its event stream would stay open for ever.
    let eval_id = server.start_eval(
        &token,
        serde_json::json!({"engine": "embedded", "n": 1, "limit": 1, "max_tokens": 4}),
    );
    let events_url = server.url(&format!("/api/v1/evals/{eval_id}/events"));
    let stream = std::thread::spawn(move || {
        let mut res = ureq::get(&events_url).call().unwrap();
        let mut events = 0;
        for line in BufReader::new(res.body_mut().as_reader()).lines() {
            match line {
                Ok(l) if l.starts_with("event: ") => events += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        events
    });
    let id = server.upload(&token, "stopped", &rollouts_with_tokens(8));
    server.wait_for_line("holding the import open", Duration::from_secs(60));
    let stopped_at = Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut server = server;
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(20),
            "the server did not stop within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        stream.join().unwrap() >= 1,
        "the event stream was open, then ended"
    );
    let db = caplens_server::config::DatabaseConfig::resolve(None, &data).unwrap();
    let store = caplens_server::storage::Store::open(&db, &data)
        .await
        .unwrap();
    let (status, message): (String, Option<String>) =
        sqlx::query_as("SELECT status, message FROM imports WHERE id = $1")
            .bind(&id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(
        message.unwrap().starts_with("interrupted"),
        "released as interrupted at the stop"
    );
    assert!(
        store
            .blobs
            .get(&format!("{}/request.json", BlobStore::upload_prefix(&id)))
            .await
            .unwrap()
            .is_some(),
        "the upload is kept for a retry"
    );
    let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(runs, 0, "nothing of the stopped import was committed");
    store.close().await;
}
