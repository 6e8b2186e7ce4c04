//! Verdicts kept side by side (issue 13): a file's own verdicts and caplens' verifier's are both
//! stored; the import report says how rollouts were graded; every view, the read API and the
//! problem page can count either (`verdicts=file|caplens`), on SQLite and PostgreSQL.

mod common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use caplens_analysis::passk::pass_at_k;
use caplens_analysis::verdicts::VerdictSource;
use caplens_app::views::{PasskRequest, UnsolvableRequest};
use caplens_server::{
    ingest::pipeline::{ImportReport, ImportStatus},
    ingest::service::ImportService,
    views::ViewService,
    web,
};
use common::TestDb;
use http_body_util::BodyExt;
use std::path::Path;
use tower::ServiceExt;

fn app(db: &TestDb) -> Router {
    web::router(
        ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
    )
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn import(app: &Router, token: &str, query: &str, body: String) -> ImportReport {
    let req = Request::post(format!("/api/v1/imports?{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    let (status, text) = send(app, req).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..1200 {
        let (_, body) = get(app, &format!("/api/v1/imports/{id}")).await;
        let report: ImportReport = serde_json::from_str(&body).unwrap();
        if report.status.is_finished() {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

/// One rollout: the file's verdict `file`, and a response whose boxed answer is `answer` (the
/// reference of every problem is its number + 10); `answer` "-" gives a long response with no
/// answer in it.
fn line(problem: u64, sample: u64, file: bool, answer: &str) -> String {
    let response = if answer == "-" {
        "I could not work this out, and I will not guess at all. ".repeat(4)
    } else {
        format!("so the answer is \\boxed{{{answer}}}")
    };
    serde_json::json!({
        "model": "m-7b",
        "dataset": "toy",
        "problem_id": format!("p{problem}"),
        "sample": sample,
        "correct": file,
        "reference": (problem + 10).to_string(),
        "response": response,
    })
    .to_string()
}

/// Four problems x four samples. Per problem (file's correct, caplens' correct):
/// p0: the file says all right, the responses are all right          -> (4, 4)
/// p1: the file says all wrong, two responses are right (lenient file) -> (0, 2)
/// p2: the file says two right, no response is right (strict file)     -> (2, 0)
/// p3: all wrong, one response without any answer                       -> (0, 0)
fn file_with_disagreements() -> (String, [(u64, u64); 4]) {
    let mut lines = Vec::new();
    for s in 0..4 {
        lines.push(line(0, s, true, "10"));
        lines.push(line(1, s, false, if s < 2 { "11" } else { "7" }));
        lines.push(line(2, s, s % 2 == 0, "99"));
        lines.push(line(3, s, false, if s == 0 { "-" } else { "5" }));
    }
    (lines.join("\n") + "\n", [(4, 4), (0, 2), (2, 0), (0, 0)])
}

fn mean_pass(counts: &[(u64, u64)], k: u64, caplens: bool) -> f64 {
    let v: Vec<f64> = counts
        .iter()
        .map(|&(f, c)| pass_at_k(4, if caplens { c } else { f }, k).unwrap())
        .collect();
    v.iter().sum::<f64>() / v.len() as f64
}

fn passk_at(doc: &str, k: u64) -> f64 {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap();
    let points = v["models"][0]["points"]
        .as_array()
        .unwrap_or_else(|| panic!("{doc}"));
    points
        .iter()
        .find(|p| p["k"] == k)
        .unwrap_or_else(|| panic!("no k={k} in {doc}"))["pass_at_k"]
        .as_f64()
        .unwrap()
}

#[tokio::test]
async fn both_verdicts_are_kept_and_every_view_can_count_either() {
    let (body, counts) = file_with_disagreements();
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db);
        let report = import(&app, &token, "experiment=v", body.clone()).await;
        assert_eq!(
            report.status,
            ImportStatus::Completed,
            "{}: {report:?}",
            db.name
        );
        // The report says how every rollout was graded.
        let t = report.verdicts;
        assert_eq!(
            (t.graded_by_file, t.graded_by_caplens),
            (16, 16),
            "{}: {t:?}",
            db.name
        );
        assert_eq!((t.unverifiable, t.no_answer), (0, 1), "{t:?}");
        // p0: 4 agree; p1: 2 differ, 2 agree; p2: 2 differ, 2 agree; p3: 4 agree.
        assert_eq!((t.agree, t.disagree), (12, 4), "{t:?}");
        let run = &report.runs[0];
        assert_eq!(run.default_verdicts, VerdictSource::File);
        assert_eq!(run.pass_at_1_file, Some(mean_pass(&counts, 1, false)));
        assert_eq!(run.pass_at_1_caplens, Some(mean_pass(&counts, 1, true)));
        assert_eq!(
            run.pass_at_1, run.pass_at_1_file,
            "the file's verdicts are the default"
        );

        // The read API: default = the file's, and the switch.
        for k in [1u64, 2, 4] {
            let (s, doc) = get(&app, &format!("/api/v1/experiments/v/passk?k={k}")).await;
            assert_eq!(s, StatusCode::OK, "{doc}");
            assert!(
                (passk_at(&doc, k) - mean_pass(&counts, k, false)).abs() < 1e-12,
                "{doc}"
            );
            let (_, doc) = get(
                &app,
                &format!("/api/v1/experiments/v/passk?k={k}&verdicts=file"),
            )
            .await;
            assert!(
                (passk_at(&doc, k) - mean_pass(&counts, k, false)).abs() < 1e-12,
                "{doc}"
            );
            let (_, doc) = get(
                &app,
                &format!("/api/v1/experiments/v/passk?k={k}&verdicts=caplens"),
            )
            .await;
            assert!(
                (passk_at(&doc, k) - mean_pass(&counts, k, true)).abs() < 1e-12,
                "{doc}"
            );
        }
        // Unsolvable at k = n: under the file's verdicts p1 and p3; under caplens' p2 and p3.
        let (_, doc) = get(&app, "/api/v1/experiments/v/unsolvable").await;
        assert!(
            doc.contains("toy/p1") && doc.contains("toy/p3") && !doc.contains("toy/p2"),
            "{doc}"
        );
        let (_, doc) = get(&app, "/api/v1/experiments/v/unsolvable?verdicts=caplens").await;
        assert!(
            doc.contains("toy/p2") && doc.contains("toy/p3") && !doc.contains("toy/p1"),
            "{doc}"
        );
        let (s, doc) = get(&app, "/api/v1/experiments/v/summary?verdicts=reviewed").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{doc}");
        assert!(doc.contains("verdicts"), "{doc}");

        // The pages' views: the same numbers, and the facts behind the switch.
        let views = ViewService::new(db.store.clone());
        for source in [
            None,
            Some(VerdictSource::File),
            Some(VerdictSource::Caplens),
        ] {
            let req = PasskRequest {
                runs: vec![],
                tag: None,
                band: false,
                verdicts: source,
                unreviewed: false,
            };
            let v = views.passk("v", req).await.unwrap().unwrap();
            let caplens = source == Some(VerdictSource::Caplens);
            let shown = v.table.rows[0][1].clone();
            assert_eq!(
                shown,
                format!("{:.2}", 100.0 * mean_pass(&counts, 1, caplens)),
                "{source:?}: {:?}",
                v.table
            );
            assert_eq!(v.frame.verdicts.selected, source);
            assert_eq!(v.frame.verdicts.runs_with_both, 1);
            assert_eq!(
                (
                    v.frame.verdicts.disagreements,
                    v.frame.verdicts.graded_by_both
                ),
                (4, 16)
            );
            let u = views
                .unsolvable(
                    "v",
                    UnsolvableRequest {
                        runs: vec![],
                        k: None,
                        region: vec![],
                        verdicts: source,
                        unreviewed: false,
                    },
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(u.frame.verdicts.selected, source);
        }
        let overview = views
            .overview("v", Some(VerdictSource::Caplens), false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            overview.rows[0].pass_at_1,
            Some(mean_pass(&counts, 1, true))
        );

        // The run row and the problem page carry both.
        let detail = db.store.experiment("v").await.unwrap().unwrap();
        let verdicts = &detail.runs[0].verdicts;
        assert_eq!(verdicts.tally.unwrap().disagree, 4);
        assert_eq!(
            verdicts.pass_at_1_caplens,
            Some(mean_pass(&counts, 1, true))
        );
        let p1: i64 = sqlx::query_scalar("SELECT id FROM problems WHERE problem_key = 'p1'")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        let problem = db.store.problem_detail(p1, None).await.unwrap().unwrap();
        let r = &problem.runs[0];
        assert_eq!((r.c, r.c_file, r.c_caplens), (0, Some(0), Some(2)));
        let page = db
            .store
            .problem_rollouts(p1, r.run_id, 1, 10, None, &[])
            .await
            .unwrap();
        let differ = page
            .items
            .iter()
            .filter(|x| x.file_correct != x.caplens_verdict.and_then(|v| v.correct()))
            .count();
        assert_eq!(differ, 2);

        // Regrading makes caplens' verdicts the default; both are still kept.
        let report = import(
            &app,
            &token,
            "experiment=v2&model=m-7b-regraded&regrade=true",
            body.clone(),
        )
        .await;
        assert_eq!(report.status, ImportStatus::Completed, "{report:?}");
        assert_eq!(report.runs[0].default_verdicts, VerdictSource::Caplens);
        assert_eq!(report.runs[0].pass_at_1, Some(mean_pass(&counts, 1, true)));
        let (_, doc) = get(&app, "/api/v1/experiments/v2/passk?k=1&verdicts=file").await;
        assert!(
            (passk_at(&doc, 1) - mean_pass(&counts, 1, false)).abs() < 1e-12,
            "{doc}"
        );
        db.cleanup().await;
    }
}

/// `skip_invalid` with every row rejected is a failed import that leaves no run behind.
#[tokio::test]
async fn skipping_every_row_is_a_failure_not_an_empty_run() {
    for db in TestDb::all().await {
        let token = db.store.create_token("ci").await.unwrap().secret;
        let app = app(&db);
        // Valid lines whose sample index is out of range: each is rejected after its run exists.
        let body = (0..3)
            .map(|i| format!("{{\"model\":\"m\",\"problem_id\":\"q{i}\",\"sample\":99999999,\"correct\":true}}"))
            .collect::<Vec<_>>()
            .join("\n");
        let report = import(&app, &token, "experiment=e&skip_invalid=true", body).await;
        assert_eq!(
            report.status,
            ImportStatus::Failed,
            "{}: {report:?}",
            db.name
        );
        let message = report.message.clone().unwrap_or_default();
        assert!(
            message.contains("every record was rejected (3)"),
            "{message}"
        );
        assert!(
            message.contains("sample index 99999999 is above the limit"),
            "{message}"
        );
        let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert_eq!(runs, 0, "no empty run is left");
        db.cleanup().await;
    }
}
