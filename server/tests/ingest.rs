//! Ingest (issue 5): uploads over REST on SQLite and PostgreSQL, the guarantees (all or nothing,
//! idempotence, limits, recovery), token traces, and the read-back documents being exactly what
//! the CLI prints for the same rollouts.

mod common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use caplens_server::{
    cli::analysis::{self, KSelection},
    ingest::pipeline::{ImportReport, ImportStatus},
    ingest::service::ImportService,
    web,
};
use common::TestDb;
use http_body_util::BodyExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use tower::ServiceExt;

fn app(db: &TestDb, max_upload: u64) -> Router {
    web::router(
        ImportService::new(db.store.clone(), db.dir(), max_upload),
        Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
    )
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        app.clone().oneshot(req),
    )
    .await
    .expect("the request answered within 120 s")
    .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn upload(
    app: &Router,
    query: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut req = Request::post(format!("/api/v1/imports?{query}"));
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    send(app, req.body(Body::from(body)).unwrap()).await
}

/// Polls an import until it ends.
async fn wait(app: &Router, id: &str) -> ImportReport {
    for _ in 0..1200 {
        let (status, body) = get(app, &format!("/api/v1/imports/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let report: ImportReport = serde_json::from_str(&body).unwrap();
        if report.status.is_finished() {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish within 60 s");
}

async fn upload_and_wait(app: &Router, query: &str, token: &str, body: Vec<u8>) -> ImportReport {
    let (status, text) = upload(app, query, Some(token), body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["status_url"],
        format!("/api/v1/imports/{}", v["id"].as_str().unwrap())
    );
    wait(app, v["id"].as_str().unwrap()).await
}

async fn count(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(db.store.pool())
        .await
        .unwrap()
}

/// A native file with what the readers must get right: two models, sample indices out of order,
/// missing sample indices, a counts line, answers given and extracted, token data, hostile text.
fn native_fixture() -> String {
    let mut lines = Vec::new();
    for (model, skill) in [("base-7b", 3u64), ("rl-7b", 5u64)] {
        for p in 0..6u64 {
            let samples: Vec<u64> = vec![5, 0, 3, 1, 7, 2, 6, 4];
            for (i, &s) in samples.iter().enumerate() {
                let correct = (p * 7 + s * skill) % 5 < skill.min(4) - (p % 3).min(skill - 1);
                let answer = if correct {
                    format!("{}", p + 1)
                } else {
                    format!("{}", (s % 3) + 10)
                };
                let sample = if p == 2 {
                    String::new()
                } else {
                    format!(",\"sample\":{s}")
                };
                let response = if p == 4 && i == 0 {
                    format!("<script>alert(1)</script> so \\\\boxed{{{answer}}}")
                } else {
                    format!("We compute carefully. The answer is \\\\boxed{{{answer}}}.")
                };
                let tokens = if p == 1 && i < 2 {
                    ",\"tokens\":[\"The\",\" answer\"],\"token_logprobs\":[-0.1,-2.0],\"top_logprobs\":[[[\"The\",-0.1],[\"A\",-2.5]],[[\" answer\",-2.0],[\" result\",-0.4]]]"
                } else {
                    ""
                };
                lines.push(format!(
                    "{{\"model\":\"{model}\",\"dataset\":\"aime\",\"problem_id\":\"{p}\"{sample},\"correct\":{correct},\"response\":\"{response}\"{tokens}}}"
                ));
            }
        }
        lines.push(format!("{{\"model\":\"{model}\",\"dataset\":\"aime\",\"problem_id\":\"counts-only\",\"n\":16,\"c\":{skill}}}"));
    }
    lines.join("\n") + "\n"
}

fn write_temp(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(content)
        .unwrap();
    path
}

fn cli_output(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    f(&mut out);
    String::from_utf8(out).unwrap().trim_end().to_owned()
}

#[tokio::test]
async fn rest_import_reads_back_exactly_what_the_cli_prints() {
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db, 1 << 30);
        let fixture = native_fixture();
        let report = upload_and_wait(
            &app,
            "experiment=boundary&filename=run.jsonl",
            &token,
            fixture.clone().into_bytes(),
        )
        .await;
        assert_eq!(
            report.status,
            ImportStatus::Completed,
            "{} {:?}",
            db.name,
            report
        );
        assert_eq!(report.rows_read, 98, "{}", db.name);
        assert_eq!(report.rows_stored, 98);
        assert_eq!(report.runs.len(), 2);
        assert_eq!(report.experiment.as_deref(), Some("boundary"));
        assert_eq!(report.files[0].name, "run.jsonl");
        assert_eq!(report.files[0].format.as_deref(), Some("native"));

        let dir = tempfile::tempdir().unwrap();
        let file = write_temp(dir.path(), "run.jsonl", fixture.as_bytes());
        let files = vec![file];
        for (query, expected) in [
            (
                "",
                cli_output(|o| {
                    analysis::passk(&files, KSelection::Default, true, false, o).unwrap();
                }),
            ),
            ("?k=1,3,all", String::new()),
            (
                "?k=all",
                cli_output(|o| {
                    analysis::passk(&files, KSelection::All, true, false, o).unwrap();
                }),
            ),
        ] {
            let (status, body) =
                get(&app, &format!("/api/v1/experiments/boundary/passk{query}")).await;
            if expected.is_empty() {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
                assert!(body.contains("k:"), "{body}");
            } else {
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(body, expected, "{} passk{query}", db.name);
            }
        }
        for k in [None, Some(1), Some(2), Some(5), Some(8), Some(20)] {
            let expected = cli_output(|o| {
                analysis::unsolvable(&files, k, true, false, o).unwrap();
            });
            let uri = match k {
                Some(k) => format!("/api/v1/experiments/boundary/unsolvable?k={k}"),
                None => "/api/v1/experiments/boundary/unsolvable".to_owned(),
            };
            let (status, body) = get(&app, &uri).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body, expected, "{} unsolvable k={k:?}", db.name);
        }
        let expected = cli_output(|o| {
            analysis::summary(&files, true, false, o).unwrap();
        });
        let (_, body) = get(&app, "/api/v1/experiments/boundary/summary").await;
        assert_eq!(body, expected, "{} summary", db.name);
        // The summary has token means (from the two traced rollouts) and answer diversity.
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["models"][0]["mean_entropy"].as_f64().unwrap() > 0.0);
        assert!(v["models"][0]["answer_diversity"].as_f64().unwrap() >= 1.0);

        let (status, body) = get(&app, "/api/v1/experiments/nope/passk").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn writes_need_a_valid_token() {
    for db in TestDb::all().await {
        let app = app(&db, 1 << 30);
        let (status, body) = upload(&app, "", None, b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("Authorization: Bearer"), "{body}");
        let (status, _) = upload(&app, "", Some("clk_not-a-token"), b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let t = db.store.create_token("temp").await.unwrap();
        assert!(db.store.revoke_token(t.token.id).await.unwrap());
        let (status, body) = upload(&app, "", Some(&t.secret), b"{}".to_vec()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "revoked tokens are refused"
        );
        assert!(body.contains("revoked"), "{body}");
        assert_eq!(count(&db, "imports").await, 0);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_same_file_twice_is_a_duplicate_and_adds_nothing() {
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db, 1 << 30);
        let first =
            upload_and_wait(&app, "experiment=e1", &token, native_fixture().into_bytes()).await;
        assert_eq!(first.status, ImportStatus::Completed);
        let rollouts = count(&db, "rollouts").await;
        let second =
            upload_and_wait(&app, "experiment=e1", &token, native_fixture().into_bytes()).await;
        assert_eq!(
            second.status,
            ImportStatus::Duplicate,
            "{}: {second:?}",
            db.name
        );
        assert_eq!(second.duplicate_of.as_deref(), Some(first.id.as_str()));
        assert!(second
            .message
            .as_deref()
            .unwrap()
            .contains("already imported"));
        assert_eq!(count(&db, "rollouts").await, rollouts, "{}", db.name);
        assert_eq!(count(&db, "runs").await, 2);
        // The same file for another model is not a duplicate (one model's lines: renaming both
        // models to one name would give a problem the same sample twice, which is refused).
        let base_only: String = native_fixture()
            .lines()
            .filter(|l| l.contains("base-7b"))
            .map(|l| format!("{l}\n"))
            .collect();
        let other = upload_and_wait(
            &app,
            "experiment=e1&model=other-model",
            &token,
            base_only.into_bytes(),
        )
        .await;
        assert_eq!(other.status, ImportStatus::Completed, "{other:?}");
        let merged = upload_and_wait(
            &app,
            "experiment=e1&model=merged",
            &token,
            native_fixture().into_bytes(),
        )
        .await;
        assert_eq!(merged.status, ImportStatus::Failed);
        assert!(merged
            .message
            .unwrap()
            .contains("field \"sample\": sample 5 of this problem was already given"));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_bad_line_fails_the_whole_import_and_stores_nothing() {
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db, 1 << 30);
        let mut body = native_fixture();
        body.push_str("{\"model\":\"base-7b\",\"dataset\":\"aime\",\"problem_id\":\"9\",\"correct\":\"yes\"}\n");
        let before = (
            count(&db, "runs").await,
            count(&db, "problems").await,
            count(&db, "models").await,
            count(&db, "experiments").await,
        );
        let report = upload_and_wait(
            &app,
            "experiment=strict&filename=bad.jsonl",
            &token,
            body.clone().into_bytes(),
        )
        .await;
        assert_eq!(report.status, ImportStatus::Failed, "{report:?}");
        let message = report.message.unwrap();
        assert!(
            message.starts_with("bad.jsonl:99: field \"correct\""),
            "{message}"
        );
        assert_eq!(report.rows_stored, 0);
        let after = (
            count(&db, "runs").await,
            count(&db, "problems").await,
            count(&db, "models").await,
            count(&db, "experiments").await,
        );
        assert_eq!(before, after, "{}: a failed import leaves nothing", db.name);
        let (_, list) = get(&app, "/api/v1/experiments").await;
        assert!(!list.contains("strict"), "{list}");

        // With skip_invalid the same file imports, and says what it skipped.
        let report = upload_and_wait(
            &app,
            "experiment=lenient&filename=bad.jsonl&skip_invalid=true",
            &token,
            body.into_bytes(),
        )
        .await;
        assert_eq!(report.status, ImportStatus::Completed, "{report:?}");
        assert_eq!(
            (report.rows_read, report.rows_stored, report.rows_rejected),
            (98, 98, 1)
        );
        assert!(
            report.errors[0].starts_with("bad.jsonl:99: field \"correct\""),
            "{:?}",
            report.errors
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db, 1000);
        let (status, body) = upload(&app, "", Some(&token), vec![b'x'; 5000]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(
            body.contains("1000 bytes") && body.contains("CAPLENS_MAX_UPLOAD_BYTES"),
            "{body}"
        );
        let (status, body) = upload(&app, "colour=red", Some(&token), b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("colour"), "{body}");
        let (status, body) = upload(&app, "format=csv", Some(&token), b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.contains("format") && body.contains("lm-eval"),
            "{body}"
        );
        let (status, body) = upload(
            &app,
            "experiment=Has%20Spaces",
            Some(&token),
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("experiment"), "{body}");
        let (status, body) = upload(&app, "", Some(&token), Vec::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("no file"), "{body}");
        // Not a known format: the import fails and says how to name the format.
        let report = upload_and_wait(&app, "filename=notes.txt", &token, b"hello\n".to_vec()).await;
        assert_eq!(report.status, ImportStatus::Failed);
        assert!(
            report.message.unwrap().contains("format="),
            "names the override"
        );
        assert_eq!(count(&db, "runs").await, 0);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn multipart_uploads_take_several_files_and_json_metadata() {
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db, 1 << 30);
        let fixture = native_fixture();
        let cut = fixture[..fixture.len() / 2].rfind('\n').unwrap() + 1;
        let boundary = "XyZ";
        let mut body = Vec::new();
        for (name, part) in [
            ("one.jsonl", &fixture[..cut]),
            ("two.jsonl.gz", &fixture[cut..]),
        ] {
            let bytes = if name.ends_with(".gz") {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(part.as_bytes()).unwrap();
                enc.finish().unwrap()
            } else {
                part.as_bytes().to_vec()
            };
            write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n").unwrap();
            body.extend_from_slice(&bytes);
            body.extend_from_slice(b"\r\n");
        }
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{{\"experiment\":\"multi\",\"temperature\":0.6}}\r\n--{boundary}--\r\n").unwrap();
        let req = Request::post("/api/v1/imports")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap();
        let (status, text) = send(&app, req).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
        let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let report = wait(&app, &id).await;
        assert_eq!(report.status, ImportStatus::Completed, "{report:?}");
        assert_eq!(report.files.len(), 2);
        assert_eq!(report.rows_stored, 98, "the two halves make one import");
        assert_eq!(report.experiment.as_deref(), Some("multi"));
        let temps: Vec<Option<f64>> = sqlx::query_scalar("SELECT temperature FROM runs")
            .fetch_all(db.store.pool())
            .await
            .unwrap();
        assert_eq!(temps, vec![Some(0.6), Some(0.6)]);
        let (status, list) = get(&app, "/api/v1/imports").await;
        assert_eq!(status, StatusCode::OK);
        assert!(list.contains(&id));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn token_traces_are_stored_and_read_back_one_rollout_at_a_time() {
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db, 1 << 30);
        let report = upload_and_wait(&app, "", &token, native_fixture().into_bytes()).await;
        assert_eq!(report.status, ImportStatus::Completed);
        let rows: Vec<(String, i64, i64, Option<f64>, Option<f64>, Option<f64>, Option<i64>)> = sqlx::query_as(
            "SELECT trace_key, trace_offset, trace_length, mean_entropy, mean_rbf, perplexity, token_count
             FROM rollouts WHERE trace_key IS NOT NULL ORDER BY id",
        )
        .fetch_all(db.store.pool())
        .await
        .unwrap();
        assert_eq!(rows.len(), 4, "two traced rollouts per model");
        for (key, offset, len, entropy, rbf, ppl, tokens) in rows {
            let bytes = db
                .store
                .blobs
                .get_range(&key, offset as u64, len as u64)
                .await
                .unwrap()
                .unwrap();
            let trace = caplens_analysis::trace::decode(&bytes).unwrap();
            assert_eq!(trace.tokens(), &[b"The".to_vec(), b" answer".to_vec()]);
            assert_eq!(trace.logprobs(), &[-0.1f32, -2.0]);
            assert_eq!(
                trace.top_alternatives().unwrap()[1][1].token,
                b" result".to_vec()
            );
            assert_eq!(tokens, Some(2));
            // PPL = exp(-(-0.1 - 2.0) / 2) (item 13).
            assert!(
                (ppl.unwrap() - (2.1f64 / 2.0).exp()).abs() < 1e-9,
                "{ppl:?}"
            );
            assert!(entropy.unwrap() > 0.0 && rbf.unwrap() >= 1.0);
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_interrupted_import_is_marked_failed_and_can_be_retried() {
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        // A server that stopped mid-import leaves its row 'processing' and its upload spooled.
        let service = ImportService::new(db.store.clone(), db.dir(), 1 << 30);
        let id = "imp_00000000deadbeef";
        let dir = service.create_spool(id).unwrap();
        let fixture = native_fixture();
        std::fs::write(dir.join("0"), &fixture).unwrap();
        let request = caplens_server::ingest::service::SpooledRequest {
            files: vec![caplens_server::ingest::service::SpooledFile {
                name: "run.jsonl".into(),
                stored_as: "0".into(),
                bytes: fixture.len() as u64,
                sha256: caplens_server::ingest::pipeline::sha256_file(&dir.join("0")).unwrap(),
            }],
            params: Default::default(),
            token_id: None,
            created_at: "2026-11-26T00:00:00Z".into(),
            queued_by: None,
        };
        std::fs::write(
            dir.join("request.json"),
            serde_json::to_vec(&request).unwrap(),
        )
        .unwrap();
        sqlx::query("INSERT INTO imports (id, status, content_hash, created_at) VALUES ($1, 'processing', '', '2026-11-26T00:00:00Z')")
            .bind(id)
            .execute(db.store.pool())
            .await
            .unwrap();
        let (interrupted, requeued) = service.recover().await.unwrap();
        assert_eq!(interrupted, vec![id.to_owned()]);
        assert!(requeued.is_empty());
        let app = app(&db, 1 << 30);
        let report = wait(&app, id).await;
        assert_eq!(report.status, ImportStatus::Failed);
        assert!(report.message.unwrap().contains("interrupted"));
        assert_eq!(count(&db, "runs").await, 0);
        let req = Request::post(format!("/api/v1/imports/{id}/retry"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = send(&app, req).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let report = wait(&app, id).await;
        assert_eq!(report.status, ImportStatus::Completed, "{report:?}");
        assert_eq!(report.rows_stored, 98);
        assert!(!dir.exists(), "the upload is removed once imported");
        // Nothing left to retry now.
        let req = Request::post(format!("/api/v1/imports/{id}/retry"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let (status, _) = send(&app, req).await;
        assert_eq!(status, StatusCode::CONFLICT);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn detect_and_formats_describe_files_before_upload() {
    let db = TestDb::sqlite().await;
    let app = app(&db, 1 << 30);
    let req = Request::post("/api/v1/imports/detect?filename=run.jsonl")
        .body(Body::from(native_fixture()))
        .unwrap();
    let (status, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["format"], "native");
    assert_eq!(v["hints"]["dataset"], "aime");
    assert_eq!(v["hints"]["has_tokens"], true);
    let req = Request::post("/api/v1/imports/detect")
        .body(Body::from("a,b,c\n1,2,3\n"))
        .unwrap();
    let (_, body) = send(&app, req).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["format"].is_null() && v["message"].as_str().unwrap().contains("choose the format"));
    // A JSON document is named for what it is (the same words as a forced import's error).
    let results = "{\n  \"results\": {\n    \"gsm8k\": {\"exact_match,strict-match\": 0.5}\n  },\n  \"versions\": {\"gsm8k\": 3}\n}\n";
    for (name, body, expected) in [
        (
            "results_2025-01-01T00-00-00.000000.json",
            results,
            "this looks like an lm-eval results file (results_*.json), not samples; upload the samples_*.jsonl written with --log_samples",
        ),
        (
            "rollouts.json",
            "[\n  {\"model\": \"m\", \"problem_id\": 1, \"correct\": true}\n]\n",
            "this is a JSON document spread over several lines, not JSON Lines (one record per line)",
        ),
    ] {
        let req = Request::post(format!("/api/v1/imports/detect?filename={name}"))
            .body(Body::from(body))
            .unwrap();
        let (_, body) = send(&app, req).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["format"].is_null(), "{body}");
        assert_eq!(v["message"], expected, "{name}");
    }
    let (_, body) = get(&app, "/api/v1/formats").await;
    for name in [
        "native",
        "lm-eval",
        "qwen-math",
        "inspect",
        "verl",
        "openai",
    ] {
        assert!(body.contains(&format!("\"{name}\"")), "{name} in {body}");
    }
    db.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_api_route() {
    let db = TestDb::sqlite().await;
    let app = app(&db, 1 << 30);
    let (status, body) = get(&app, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every `format` enum is the importers' registry, whatever openapi.json was written with.
    fn format_enums(v: &serde_json::Value, out: &mut Vec<Vec<String>>) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let schema = if key == "format" { Some(value) } else { None }.or_else(|| {
                        (map.get("name") == Some(&serde_json::json!("format")) && key == "schema")
                            .then_some(value)
                    });
                    if let Some(list) = schema.and_then(|s| s["enum"].as_array()) {
                        out.push(
                            list.iter()
                                .map(|n| n.as_str().unwrap().to_string())
                                .collect(),
                        );
                    }
                    format_enums(value, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| format_enums(i, out)),
            _ => {}
        }
    }
    let mut enums = Vec::new();
    format_enums(&doc, &mut enums);
    let names: Vec<String> = caplens_server::ingest::Format::names()
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(
        enums.len(),
        2,
        "the upload body's and the query's format: {enums:?}"
    );
    for listed in enums {
        assert_eq!(listed, names);
    }
    assert!(names.contains(&"lighteval".to_string()) && names.len() == 7);
    let paths = doc["paths"].as_object().unwrap();
    // Every documented path answers something other than the API's 404 for unknown routes...
    for (path, ops) in paths {
        let concrete = path.replace("{slug}", "demo").replace("{id}", "imp_x");
        for method in ops.as_object().unwrap().keys() {
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .body(Body::empty())
                .unwrap();
            let (status, body) = send(&app, req).await;
            assert!(
                !(status == StatusCode::NOT_FOUND && body.contains("no API route")),
                "{method} {path} is documented but not routed"
            );
        }
    }
    // ...and every API route the router is built from is documented, with its method.
    let mut routes = 0;
    for (method, path, _) in web::routes::table() {
        if !path.starts_with("/api/") {
            continue;
        }
        let documented = paths
            .get(path)
            .and_then(|ops| ops.get(method.as_str().to_lowercase()))
            .is_some();
        assert!(
            documented,
            "{method} {path} is routed but not in openapi.json"
        );
        routes += 1;
    }
    assert!(routes >= 14, "found {routes} routes");
    db.cleanup().await;
}

/// Every format's documented fixture (tests/fixtures/formats) imports through the REST API into
/// SQLite and PostgreSQL: detected as its own format, graded (files without verdicts are graded
/// by the verifier against their references), with token traces where the file has logprobs.
#[tokio::test]
async fn every_format_fixture_imports_over_rest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/formats");
    let cases: &[(&str, &str)] = &[
        (
            "lm-eval/samples_aime24_2025-06-01T12-00-00.000000.jsonl",
            "lm-eval",
        ),
        (
            "lm-eval/samples_aime24_2025-06-01T12-00-00.000000.jsonl.gz",
            "lm-eval",
        ),
        (
            "qwen-math/math500/test_qwen25-math-cot_-1_seed0_t0.6_s0_e-1.jsonl",
            "qwen-math",
        ),
        ("inspect/log.eval", "inspect"),
        ("inspect/log.json", "inspect"),
        ("verl/100.jsonl", "verl"),
        ("openai/completions.jsonl", "openai"),
        ("openai/chat.jsonl", "openai"),
        (
            "lighteval/details_aime24|0_2026-12-02T12-00-00.000000.parquet",
            "lighteval",
        ),
        (
            "lighteval/details_lighteval|math_500|0_2026-12-02T12-00-00.000000.parquet",
            "lighteval",
        ),
    ];
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db, 1 << 30);
        for (i, (path, format)) in cases.iter().enumerate() {
            let bytes = std::fs::read(root.join(path)).unwrap();
            let name = path.rsplit('/').next().unwrap();
            let query = format!(
                "filename={}&model=m{i}&experiment=fmt-{i}&skip_invalid=true",
                name.replace('|', "%7C")
            );
            let report = upload_and_wait(&app, &query, &token, bytes).await;
            // The gzip copy of the lm-eval file and the .json of the Inspect log just imported:
            // other bytes, the same tool run (lm-eval's task, date and hashes; Inspect's
            // eval_id), so nothing is added, under any model name.
            let same_run = match *path {
                p if p.ends_with(".jsonl.gz") => Some("the same lm-eval run (lm-eval:aime24@"),
                "inspect/log.json" => Some("the same inspect_ai run (inspect:"),
                _ => None,
            };
            if let Some(same_run) = same_run {
                assert_eq!(
                    report.status,
                    ImportStatus::Duplicate,
                    "{} {path}: {report:?}",
                    db.name
                );
                let message = report.message.unwrap_or_default();
                assert!(message.starts_with("already imported as run"), "{message}");
                assert!(message.contains(same_run), "{message}");
                continue;
            }
            assert_eq!(
                report.status,
                ImportStatus::Completed,
                "{} {path}: {report:?}",
                db.name
            );
            assert_eq!(report.files[0].format.as_deref(), Some(*format), "{path}");
            assert!(report.rows_stored > 0, "{path}: {report:?}");
            let (rollouts, correct, traced): (i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(ro.correct), 0) AS BIGINT), COUNT(ro.trace_key) FROM rollouts ro
                 JOIN experiment_runs er ON er.run_id = ro.run_id JOIN experiments e ON e.id = er.experiment_id
                 WHERE e.slug = $1",
            )
            .bind(format!("fmt-{i}"))
            .fetch_one(db.store.pool())
            .await
            .unwrap();
            assert!(
                rollouts > 0 && correct > 0 && correct <= rollouts,
                "{path}: {rollouts} rollouts, {correct} correct"
            );
            if matches!(*format, "openai" | "inspect") {
                assert!(
                    traced > 0,
                    "{path}: the fixture's logprobs become token traces"
                );
            }
            // Rejected rows name the file and line.
            for e in &report.errors {
                assert!(e.starts_with(&format!("{name}:")), "{e}");
            }
        }
        db.cleanup().await;
    }
}

/// A NULL float then a real one in the same statement position, across imports on one
/// connection: sqlx 0.8's Any driver types a NULL f64 as float4 on PostgreSQL, so a cached
/// prepared statement would reject the second import.
#[tokio::test]
async fn null_then_real_floats_import_on_every_backend() {
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db, 1 << 30);
        let plain = "{\"model\":\"a\",\"problem_id\":\"1\",\"correct\":true,\"response\":\"\\\\boxed{1}\"}\n";
        let traced = "{\"model\":\"b\",\"problem_id\":\"1\",\"correct\":true,\"tokens\":[\"x\"],\"token_logprobs\":[-0.5],\"top_logprobs\":[[[\"x\",-0.5],[\"y\",-1.2]]]}\n";
        for (query, body) in [
            ("experiment=n1", plain),
            ("experiment=n2&temperature=0.7", traced),
            ("experiment=n3", &plain.replace("\"a\"", "\"c\"")),
        ] {
            let report = upload_and_wait(&app, query, &token, body.as_bytes().to_vec()).await;
            assert_eq!(
                report.status,
                ImportStatus::Completed,
                "{} {query}: {:?}",
                db.name,
                report.message
            );
        }
        db.cleanup().await;
    }
}

/// The per-document metric values of a lighteval details file, read with the parquet crate
/// directly (not through the importer): `metric`/`metrics` struct member `key`, one per row.
fn lighteval_metric(path: &Path, key: &str) -> Vec<f64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut values = Vec::new();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let (_, metrics) = row
            .get_column_iter()
            .find(|(name, _)| *name == "metric" || *name == "metrics")
            .expect("a metric column");
        let Field::Group(metrics) = metrics else {
            panic!("metric is a struct")
        };
        let (_, value) = metrics
            .get_column_iter()
            .find(|(name, _)| *name == key)
            .expect("the metric");
        let Field::Double(v) = value else {
            panic!("{key} is a double")
        };
        values.push(*v);
    }
    values
}

/// A lighteval details file imports with the pass@1 its own metrics give: the mean over
/// documents of `pass@k:k=1&n=4` (four samples each, graded by caplens' verifier), of
/// `extractive_match` and of `math_pass@1:1_samples` (one sample each: the file's verdicts).
#[tokio::test]
async fn lighteval_pass_at_1_matches_the_files_own_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/formats/lighteval");
    let cases = [
        (
            "details_aime24|0_2026-12-02T12-00-00.000000.parquet",
            "pass@k:k=1&n=4",
            12,
        ),
        (
            "details_gsm8k|0_2026-12-02T12-00-00.000000.parquet",
            "extractive_match",
            3,
        ),
        (
            "details_lighteval|math_500|0_2026-12-02T12-00-00.000000.parquet",
            "math_pass@1:1_samples",
            4,
        ),
    ];
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db, 1 << 30);
        for (i, (file, metric, rollouts)) in cases.iter().enumerate() {
            let path = root.join(file);
            let values = lighteval_metric(&path, metric);
            let file_pass_at_1 = values.iter().sum::<f64>() / values.len() as f64;
            let query = format!(
                "filename={}&model=lt{i}&experiment=lighteval-{i}",
                file.replace('|', "%7C")
            );
            let report = upload_and_wait(&app, &query, &token, std::fs::read(&path).unwrap()).await;
            assert_eq!(report.status, ImportStatus::Completed, "{file}: {report:?}");
            assert_eq!(report.files[0].format.as_deref(), Some("lighteval"));
            assert_eq!(report.runs.len(), 1, "{file}: {report:?}");
            let run = &report.runs[0];
            assert_eq!(run.rollouts, *rollouts, "{file}");
            assert_eq!(run.problems, values.len() as u64, "{file}");
            let pass_at_1 = run.pass_at_1.expect("graded");
            assert!(
                (pass_at_1 - file_pass_at_1).abs() < 1e-9,
                "{} {file}: caplens pass@1 {pass_at_1}, the file's {metric} {file_pass_at_1}",
                db.name
            );
        }
        db.cleanup().await;
    }
}

/// Raw sampler output imports as a new user would write it: no `correct` (caplens grades each
/// line against its reference, or against the problem's stored reference), the problem's
/// `prompt` and `tags` stored with it, detection from a first line longer than the detection
/// window, and the run labelled with the file's name, not the uploader's path.
#[tokio::test]
async fn raw_sampler_output_is_graded_and_keeps_prompts_and_tags() {
    use caplens_server::ingest::pipeline::{run_import, ImportFile, ImportParams, ImportProgress};
    use caplens_server::ingest::{detect, Format, InputFile};
    for db in TestDb::all().await {
        let dir = tempfile::tempdir().unwrap();
        // A first line longer than the detection window (a 300 KB response).
        let long = format!("{} so \\boxed{{4}}", "think ".repeat(50_000));
        let mut lines = vec![serde_json::json!({
            "model": "raw-7b", "dataset": "raw-set", "problem_id": "1", "sample": 0,
            "reference": "4", "prompt": "What is 2+2?", "tags": ["arith", "easy"],
            "response": long,
        })];
        for sample in 1..4 {
            // Problem 1's reference is known from the first line (stored with the problem).
            lines.push(serde_json::json!({
                "model": "raw-7b", "dataset": "raw-set", "problem_id": "1", "sample": sample,
                "response": format!("so \\boxed{{{}}}", if sample == 1 { 4 } else { 5 }),
            }));
        }
        lines.push(serde_json::json!({
            "model": "raw-7b", "dataset": "raw-set", "problem_id": "2", "sample": 0,
            "reference": "\\frac{1}{2}", "answer": "0.5",
        }));
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let path = write_temp(dir.path(), "raw-7b.jsonl", text.as_bytes());
        let input = InputFile::new(&path, path.display().to_string());
        assert_eq!(
            detect(&input).unwrap(),
            Format::named("native"),
            "{}",
            db.name
        );
        let progress = std::sync::Arc::new(ImportProgress::for_files(std::slice::from_ref(&input)));
        let report = run_import(
            &db.store,
            &caplens_server::ingest::pipeline::new_import_id(),
            vec![ImportFile {
                input,
                sha256: None,
            }],
            ImportParams::default(),
            progress,
            None,
        )
        .await;
        assert_eq!(
            report.status.as_str(),
            "completed",
            "{}: {report:?}",
            db.name
        );
        assert_eq!(report.rows_stored, 5, "{}", db.name);
        let graded: Vec<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT p.problem_key, ro.correct, ro.file_correct, ro.caplens_verdict
             FROM rollouts ro JOIN problems p ON p.id = ro.problem_id
             ORDER BY p.problem_key, ro.sample_index",
        )
        .fetch_all(db.store.pool())
        .await
        .unwrap();
        let correct: Vec<(String, i64)> = graded.iter().map(|g| (g.0.clone(), g.1)).collect();
        assert_eq!(
            correct,
            [("1", 1), ("1", 1), ("1", 0), ("1", 0), ("2", 1)].map(|(k, c)| (k.to_owned(), c)),
            "{}",
            db.name
        );
        assert!(
            graded.iter().all(|g| g.2.is_none() && g.3.is_some()),
            "{}: only caplens' verdict: {graded:?}",
            db.name
        );
        let (prompt, tags): (String, String) =
            sqlx::query_as("SELECT prompt, tags FROM problems WHERE problem_key = '1'")
                .fetch_one(db.store.pool())
                .await
                .unwrap();
        assert_eq!(prompt, "What is 2+2?", "{}", db.name);
        assert_eq!(tags, r#"["arith","easy"]"#, "{}", db.name);
        let label: String = sqlx::query_scalar("SELECT label FROM runs")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert_eq!(
            label, "raw-7b.jsonl",
            "{}: the file name, not its path",
            db.name
        );
        db.cleanup().await;
    }
}

/// Issue 27: a run where one problem has fewer samples than the others imports, and the report
/// warns, naming the problem, its n and the usual n.
#[tokio::test]
async fn uneven_sample_counts_are_named_in_the_report() {
    use caplens_server::ingest::pipeline::{run_import, ImportFile, ImportParams, ImportProgress};
    use caplens_server::ingest::InputFile;
    for db in TestDb::all().await {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for (problem, n) in [("a", 8), ("b", 5), ("c", 8)] {
            for sample in 0..n {
                text.push_str(&format!(
                    "{}\n",
                    serde_json::json!({
                        "model": "uneven-7b", "dataset": "u", "problem_id": problem, "sample": sample,
                        "reference": "4", "response": "so \\boxed{4}",
                    })
                ));
            }
        }
        let path = write_temp(dir.path(), "uneven.jsonl", text.as_bytes());
        let input = InputFile::new(&path, path.display().to_string());
        let progress = std::sync::Arc::new(ImportProgress::for_files(std::slice::from_ref(&input)));
        let report = run_import(
            &db.store,
            &caplens_server::ingest::pipeline::new_import_id(),
            vec![ImportFile {
                input,
                sha256: None,
            }],
            ImportParams::default(),
            progress,
            None,
        )
        .await;
        assert_eq!(
            report.status.as_str(),
            "completed",
            "{}: {report:?}",
            db.name
        );
        let uneven = report.runs[0].uneven.clone().expect("uneven run");
        assert_eq!((uneven.usual_n, uneven.differing, uneven.min_n), (8, 1, 5));
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        let w = &report.warnings[0];
        assert!(
            w.contains("b (5)") && w.contains("usual 8") && w.contains("uneven-7b"),
            "{w}"
        );
        // Read back, the report still warns.
        let again = caplens_server::ingest::pipeline::load_report(&db.store, &report.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.warnings, report.warnings, "{}", db.name);
        // The pass@k view says where the run's curve covers fewer problems.
        let views = caplens_server::views::ViewService::new(db.store.clone());
        let slug = report.experiment.clone().unwrap();
        let v = views
            .passk(&slug, caplens_app::views::PasskRequest::default())
            .await
            .unwrap()
            .unwrap();
        let uneven = &v.frame.uneven;
        assert_eq!(uneven.len(), 1, "{uneven:?}");
        assert_eq!(
            (uneven[0].min_n, uneven[0].max_n, uneven[0].at_max),
            (5, 8, uneven[0].problems - 1),
            "{uneven:?}"
        );
        // Every view's frame says so (the overview too).
        let overview = views.overview(&slug, None, false).await.unwrap().unwrap();
        assert_eq!(overview.frame.uneven, *uneven);
        db.cleanup().await;
    }
}
