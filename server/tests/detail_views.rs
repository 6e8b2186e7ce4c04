//! The data behind the problem page and the rollout page (issue 6, pages 5 and 6), on SQLite and
//! (when configured) PostgreSQL: numbers against the analysis crate and the generated data,
//! paging and filters, traces read back one byte range at a time, missing and corrupt traces,
//! and the server-rendered HTML of hostile responses.

mod common;

use std::sync::Arc;

use caplens_analysis::{
    passk::pass_at_k,
    tokens::{uncertainty_top_k, DEFAULT_TOP_P},
    verifier::{normalize_answer, verify, Verdict},
};
use caplens_app::heat::Metric;
use caplens_server::{
    demo::{
        self,
        generate::{generate_demo, DemoConfig},
    },
    ingest::{
        pipeline::{new_import_id, run_import, ImportFile, ImportParams, ImportProgress},
        InputFile,
    },
    web::pages::StoreSource,
};
use common::TestDb;

/// The main demo experiment only (no checkpoint series), without synthetic traces: traces are
/// tested through imported files below.
fn small_demo() -> DemoConfig {
    DemoConfig {
        problems: 10,
        samples_per_problem: 24,
        traced_samples: 0,
        checkpoint_samples: 0,
        ..DemoConfig::default()
    }
}

async fn problem_ids(db: &TestDb) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM problems ORDER BY id")
        .fetch_all(db.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn problem_numbers_equal_the_analysis_crate_on_the_generated_data() {
    for db in TestDb::all().await {
        let config = small_demo();
        demo::load_demo(&db.store, &config).await.unwrap();
        let data = generate_demo(&config);
        let ids = problem_ids(&db).await;
        assert_eq!(ids.len(), config.problems);
        for (p, &pid) in ids.iter().enumerate() {
            let detail = db
                .store
                .problem_detail(pid, None)
                .await
                .unwrap()
                .expect("problem");
            assert_eq!(detail.reference_answer, data.problems[p].answer);
            assert_eq!(detail.prompt, data.problems[p].prompt);
            let stages: Vec<&str> = detail.runs.iter().map(|r| r.stage.as_str()).collect();
            assert_eq!(stages, ["base", "sft", "rl"], "{}: lineage order", db.name);
            for (run_index, run) in detail.runs.iter().enumerate() {
                let rollouts: Vec<_> = data
                    .rollouts
                    .iter()
                    .filter(|r| r.run == run_index && r.problem == p)
                    .collect();
                let c = rollouts.iter().filter(|r| r.correct).count() as u64;
                let n = rollouts.len() as u64;
                assert_eq!((run.n as u64, run.c as u64), (n, c), "{}", db.name);
                let ks: Vec<u64> = run.pass_at.iter().map(|(k, _)| *k).collect();
                assert_eq!(ks, [1, 2, 4, 8, 16], "powers of two up to n = 24");
                for (k, value) in &run.pass_at {
                    assert_eq!(Some(*value), pass_at_k(n, c, *k), "{}: pass@{k}", db.name);
                }
                // Answer clusters: the generated answers, normalised and counted.
                let mut expected = std::collections::BTreeMap::<String, i64>::new();
                for r in &rollouts {
                    if let Some(a) = &r.answer {
                        *expected.entry(normalize_answer(a)).or_default() += 1;
                    }
                }
                let got: std::collections::BTreeMap<String, i64> = run
                    .answers
                    .iter()
                    .map(|a| (a.answer.clone(), a.count))
                    .collect();
                assert_eq!(got, expected, "{}", db.name);
                assert!(run.answers.windows(2).all(|w| w[0].count >= w[1].count));
                for a in &run.answers {
                    assert_eq!(
                        a.correct,
                        verify(&a.answer, &detail.reference_answer) == Verdict::Equal
                    );
                }
                // A correct rollout's answer is in a cluster marked correct.
                if c > 0 {
                    assert!(run.answers.iter().any(|a| a.correct), "{}", db.name);
                }
            }
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn runs_filter_pages_answer_filter_and_missing_ids() {
    for db in TestDb::all().await {
        let config = small_demo();
        demo::load_demo(&db.store, &config).await.unwrap();
        let pid = problem_ids(&db).await[3];
        let all = db.store.problem_detail(pid, None).await.unwrap().unwrap();
        let sft = all.runs[1].run_id;
        let some = db
            .store
            .problem_detail(pid, Some(&[sft, 987_654]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(some.runs.len(), 1);
        assert_eq!(some.runs[0].run_id, sft);
        assert_eq!(some.missing_runs, [987_654], "{}", db.name);
        assert!(db
            .store
            .problem_detail(987_654, None)
            .await
            .unwrap()
            .is_none());

        // Pages of 10 over 24 rollouts, by sample index; the open one carries its response.
        let first = db
            .store
            .problem_rollouts(pid, sft, 1, 10, None, &[])
            .await
            .unwrap();
        assert_eq!((first.total, first.items.len()), (24, 10), "{}", db.name);
        let samples: Vec<i64> = first.items.iter().map(|r| r.sample_index).collect();
        assert_eq!(samples, (0..10).collect::<Vec<_>>());
        assert!(first.responses.is_empty());
        let open = first.items[2].id;
        let again = db
            .store
            .problem_rollouts(pid, sft, 1, 10, None, &[open, 123_456_789])
            .await
            .unwrap();
        assert_eq!(again.responses.len(), 1, "only open rollouts of this page");
        assert_eq!(again.responses[0].0, open);
        let stored = db.store.rollout(open).await.unwrap().unwrap().response;
        assert!(stored.is_some(), "{}", db.name);
        assert_eq!(again.responses[0].1, stored);
        let last = db
            .store
            .problem_rollouts(pid, sft, 3, 10, None, &[])
            .await
            .unwrap();
        assert_eq!(last.items.len(), 4);
        let past = db
            .store
            .problem_rollouts(pid, sft, 9, 10, None, &[])
            .await
            .unwrap();
        assert!(past.items.is_empty() && past.total == 24);

        // The answer filter keeps exactly a cluster's rollouts.
        let cluster = &all.runs[1].answers[0];
        let filtered = db
            .store
            .problem_rollouts(pid, sft, 1, 100, Some(&cluster.answer), &[])
            .await
            .unwrap();
        assert_eq!(filtered.total, cluster.count, "{}", db.name);
        for r in &filtered.items {
            assert_eq!(
                normalize_answer(r.answer.as_deref().unwrap()),
                cluster.answer
            );
        }
        let none = db
            .store
            .problem_rollouts(pid, sft, 1, 10, Some("no such answer"), &[])
            .await
            .unwrap();
        assert_eq!(none.total, 0);

        // One rollout, and a missing one.
        let r = db.store.rollout(open).await.unwrap().expect("rollout");
        assert_eq!(r.problem_id, pid);
        assert_eq!(r.run_id, sft);
        assert!(r.trace.is_none(), "the demo has no traces");
        assert!(db.store.rollout(987_654_321).await.unwrap().is_none());
        let view = caplens_app::data::CatalogData::rollout(&source(&db), open, None)
            .await
            .unwrap()
            .unwrap();
        assert!(view.heatmap.is_none() && view.trace_error.is_none());
        assert!(
            caplens_app::data::CatalogData::rollout(&source(&db), 987_654_321, None)
                .await
                .unwrap()
                .is_none()
        );
        db.cleanup().await;
    }
}

/// Five samples of one problem; samples 0 and 1 carry token traces with top-2 log-probabilities;
/// sample 1's response and tokens are hostile.
fn traced_file() -> String {
    let mut lines = Vec::new();
    let base = serde_json::json!({"model": "detail-rl", "dataset": "detail-set", "problem_id": "p1",
        "reference": "\\frac{1}{2}"});
    let with = |extra: serde_json::Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v.to_string()
    };
    lines.push(with(serde_json::json!({
        "sample": 0, "correct": true, "response": "So $x = \\frac{1}{2}$, answer \\boxed{1/2}",
        "tokens": ["So", " x", " =", " \\boxed{1/2}"],
        "token_logprobs": [-0.1, -1.2, -0.01, -0.5],
        "top_logprobs": [[["So", -0.1], ["Thus", -2.5]], [[" x", -1.2], [" y", -0.6]],
                         [[" =", -0.01], [" is", -5.0]], [[" \\boxed{1/2}", -0.5], [" 2", -1.0]]],
    })));
    lines.push(with(serde_json::json!({
        "sample": 1, "correct": false, "response": "<script>window.__pwned=1</script><img src=x onerror=alert(1)> \\boxed{3}",
        "tokens": ["<script>", "<img src=x onerror=alert(1)>", " \\boxed{3}"],
        "token_logprobs": [-3.0, -0.2, -0.7],
        "top_logprobs": [[["<script>", -3.0], ["a", -0.1]], [["<img src=x onerror=alert(1)>", -0.2]],
                         [[" \\boxed{3}", -0.7], [" \\boxed{2}", -0.9]]],
    })));
    for s in 2..5 {
        lines.push(with(
            serde_json::json!({"sample": s, "correct": false, "response": format!("\\boxed{{{s}}}")}),
        ));
    }
    lines.join("\n") + "\n"
}

async fn import(db: &TestDb, content: &str) {
    let path = db.dir().join("traced.jsonl");
    std::fs::write(&path, content).unwrap();
    let file = ImportFile {
        input: InputFile::new(&path, "traced.jsonl"),
        sha256: None,
    };
    let progress = Arc::new(ImportProgress::for_files(std::slice::from_ref(&file.input)));
    let report = run_import(
        &db.store,
        &new_import_id(),
        vec![file],
        ImportParams {
            experiment: Some("detail".into()),
            ..Default::default()
        },
        progress,
        None,
    )
    .await;
    assert_eq!(report.rows_stored, 5, "{report:?}");
}

async fn rollout_id(db: &TestDb, sample: i64) -> i64 {
    sqlx::query_scalar("SELECT id FROM rollouts WHERE sample_index = $1")
        .bind(sample)
        .fetch_one(db.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn heatmaps_come_from_the_stored_trace_and_match_the_stored_means() {
    for db in TestDb::all().await {
        import(&db, &traced_file()).await;
        let id = rollout_id(&db, 0).await;
        let view = caplens_app::data::CatalogData::rollout(&source(&db), id, None)
            .await
            .unwrap()
            .unwrap();
        let h = view.heatmap.expect("a heatmap");
        assert_eq!(h.metric, Metric::Entropy, "the default metric");
        assert_eq!(h.tokens, ["So", " x", " =", " \\boxed{1/2}"]);
        assert_eq!(
            h.available,
            [
                Metric::Entropy,
                Metric::Rbf,
                Metric::Logprob,
                Metric::GradNorm
            ]
        );
        assert!(h.truncated, "entropy from top-2 is a truncated estimate");
        let rows: [[f64; 2]; 4] = [[-0.1, -2.5], [-1.2, -0.6], [-0.01, -5.0], [-0.5, -1.0]];
        for (i, row) in rows.iter().enumerate() {
            // The trace stores f32: the expected value starts from the same rounded inputs.
            let lps: Vec<f64> = row.iter().map(|&x| x as f32 as f64).collect();
            let u = uncertainty_top_k(&lps, DEFAULT_TOP_P).unwrap();
            assert_eq!(h.values.0[i], u.entropy as f32, "{}: token {i}", db.name);
        }
        // The per-response numbers recomputed from the trace equal the row's stored ones.
        for (from_trace, stored) in [
            (h.summary.perplexity, view.row.perplexity),
            (h.summary.mean_entropy, view.row.mean_entropy),
            (h.summary.mean_rbf, view.row.mean_rbf),
        ] {
            let (a, b) = (from_trace.unwrap(), stored.unwrap());
            assert!((a - b).abs() < 1e-5, "{}: {a} vs {b}", db.name);
        }
        let rbf = caplens_app::data::CatalogData::rollout(&source(&db), id, Some(Metric::Rbf))
            .await
            .unwrap()
            .unwrap()
            .heatmap
            .unwrap();
        assert_eq!(rbf.metric, Metric::Rbf);
        let lp = caplens_app::data::CatalogData::rollout(&source(&db), id, Some(Metric::Logprob))
            .await
            .unwrap()
            .unwrap()
            .heatmap
            .unwrap();
        assert_eq!(lp.values.0, vec![-0.1f32, -1.2, -0.01, -0.5]);
        let impact =
            caplens_app::data::CatalogData::rollout(&source(&db), id, Some(Metric::Impact))
                .await
                .unwrap()
                .unwrap()
                .heatmap
                .unwrap();
        assert_eq!(impact.with_value, 0, "no impacts in this trace");

        // A token's detail, and a position past the end.
        let source = source(&db);
        use caplens_app::data::CatalogData;
        let d = source.rollout_token(id, 1).await.unwrap().unwrap();
        assert_eq!(d.token, " x");
        let alts: Vec<&str> = d.alternatives.iter().map(|a| a.token.as_str()).collect();
        assert_eq!(alts, [" y", " x"], "most likely first");
        assert!(source.rollout_token(id, 4).await.unwrap().is_none());
        // The rollout list of the problem says which rollouts have traces.
        let pid: i64 = sqlx::query_scalar("SELECT problem_id FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        let list = source
            .problem_rollouts(pid, Default::default())
            .await
            .unwrap();
        let traced: Vec<bool> = list.items.iter().map(|r| r.has_trace).collect();
        assert_eq!(traced, [true, true, false, false, false], "{}", db.name);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn missing_and_corrupt_traces_are_reported_and_the_rest_works() {
    let db = TestDb::sqlite().await;
    import(&db, &traced_file()).await;
    let id = rollout_id(&db, 0).await;
    sqlx::query("UPDATE rollouts SET trace_key = 'traces/gone/run-1.pack' WHERE id = $1")
        .bind(id)
        .execute(db.store.pool())
        .await
        .unwrap();
    let view = caplens_app::data::CatalogData::rollout(&source(&db), id, None)
        .await
        .unwrap()
        .unwrap();
    assert!(view.heatmap.is_none());
    assert!(view.trace_error.unwrap().contains("missing"));
    assert!(view.response.is_some(), "the response still shows");

    let other = rollout_id(&db, 1).await;
    sqlx::query(
        "UPDATE rollouts SET trace_offset = trace_offset + 1, trace_length = trace_length - 1
         WHERE id = $1",
    )
    .bind(other)
    .execute(db.store.pool())
    .await
    .unwrap();
    let view = caplens_app::data::CatalogData::rollout(&source(&db), other, None)
        .await
        .unwrap()
        .unwrap();
    assert!(view.heatmap.is_none());
    assert!(
        view.trace_error.as_deref().unwrap().contains("corrupt"),
        "{:?}",
        view.trace_error
    );
    // A range past the end of the pack (a truncated file): unreadable, said on the page.
    sqlx::query("UPDATE rollouts SET trace_length = trace_length + 100000 WHERE id = $1")
        .bind(other)
        .execute(db.store.pool())
        .await
        .unwrap();
    let view = caplens_app::data::CatalogData::rollout(&source(&db), other, None)
        .await
        .unwrap()
        .unwrap();
    assert!(view.heatmap.is_none());
    assert!(view.trace_error.unwrap().contains("could not be read"));
    db.cleanup().await;
}

#[tokio::test]
async fn hostile_responses_and_tokens_render_as_text_on_the_server() {
    let db = TestDb::sqlite().await;
    import(&db, &traced_file()).await;
    let app = caplens_server::web::router(
        caplens_server::ingest::service::ImportService::new(db.store.clone(), db.dir(), 1 << 20),
        std::path::Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
    );
    let id = rollout_id(&db, 1).await;
    let pid: i64 = sqlx::query_scalar("SELECT problem_id FROM rollouts WHERE id = $1")
        .bind(id)
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    for uri in [
        format!("/rollouts/{id}?pos=1"),
        format!("/rollouts/{id}?view=text"),
        format!("/problems/{pid}?open={id}"),
    ] {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(status, 200, "{uri}");
        assert!(
            body.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;")
                || body.contains("&lt;script&gt;"),
            "{uri}"
        );
        assert!(
            !body.contains("<script>window.__pwned"),
            "{uri}: response became markup"
        );
        assert!(
            !body.contains("<img src=x"),
            "{uri}: an <img> tag came through"
        );
        assert!(body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{uri}");
    }
    // The maths of sample 0 is MathML; a missing rollout or problem is a 404 page that says so.
    let (_, body) = get(
        &app,
        &format!("/problems/{pid}?open={}", rollout_id(&db, 0).await),
    )
    .await;
    assert!(
        body.contains("<math><semantics><mrow><mi>x</mi><mo>=</mo><mfrac>"),
        "{body}"
    );
    let (status, body) = get(&app, "/rollouts/987654321").await;
    assert_eq!(status, 404);
    assert!(body.contains("Rollout not found"));
    let (status, body) = get(&app, "/problems/987654321").await;
    assert_eq!(status, 404);
    assert!(body.contains("Problem not found"));
    let (status, body) = get(&app, &format!("/problems/{pid}?runs=987654&run=987655")).await;
    assert_eq!(status, 200, "a missing run is not a missing page");
    assert!(body.contains("data-testid=\"missing-runs\""));
    db.cleanup().await;
}

fn source(db: &TestDb) -> StoreSource {
    StoreSource::new(
        db.store.clone(),
        caplens_server::ingest::service::ImportService::new(db.store.clone(), db.dir(), 1 << 20),
        caplens_server::views::ViewService::new(db.store.clone()),
        caplens_server::auth::Auth::new(db.store.clone(), Default::default()),
    )
    .outside_requests(caplens_server::auth::Principal::local())
}

async fn get(app: &axum::Router, uri: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let res = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        app.clone().oneshot(
            axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap(),
        ),
    )
    .await
    .expect("answers within 60 s")
    .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
