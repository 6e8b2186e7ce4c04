//! The problems view (issue 27) through the REST API on SQLite and PostgreSQL: per-problem c/n,
//! Δ, the paired counts and the Wilcoxon test equal a computation from the demo generator's raw
//! rollouts; the full-text search finds exactly the problems whose prompt or key holds the terms;
//! sort, filters, paging, CSV and bad parameters.

mod common;

use std::collections::BTreeMap;

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use caplens_analysis::paired::{signed_rank_test, Change};
use caplens_server::demo::{
    self,
    generate::{generate_demo, DemoConfig, DEMO_EXPERIMENT_SLUG},
};
use common::TestDb;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

fn config() -> DemoConfig {
    DemoConfig {
        problems: 40,
        samples_per_problem: 16,
        ..DemoConfig::default()
    }
}

async fn app(db: &TestDb) -> Router {
    demo::load_demo(&db.store, &config()).await.unwrap();
    caplens_server::web::router(
        caplens_server::ingest::service::ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        std::path::Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
    )
}

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let res = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn json(app: &Router, uri: &str) -> Value {
    let (status, body) = get(app, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// From the raw rollouts: per run (base, sft, rl) `dataset/id` → (c, n), and each key's prompt.
fn raw() -> (Vec<BTreeMap<String, (u64, u64)>>, BTreeMap<String, String>) {
    let data = generate_demo(&config());
    let mut tables = vec![BTreeMap::new(); data.runs.len()];
    for r in &data.rollouts {
        let key = format!("{}/{}", data.dataset.name, data.problems[r.problem].id);
        let e = tables[r.run].entry(key).or_insert((0u64, 0u64));
        e.0 += r.correct as u64;
        e.1 += 1;
    }
    let prompts = data
        .problems
        .iter()
        .map(|p| (format!("{}/{}", data.dataset.name, p.id), p.prompt.clone()))
        .collect();
    (tables, prompts)
}

/// A search term: the first four letters of the first word of six or more letters in `prompts`.
fn search_prefix<'a>(prompts: impl Iterator<Item = &'a str>) -> String {
    let word = prompts
        .flat_map(|p| p.split(|c: char| !c.is_alphanumeric()))
        .find(|w| w.len() >= 6 && w.chars().all(|c| c.is_ascii_alphabetic()))
        .unwrap()
        .to_lowercase();
    word[..4].to_string()
}

/// What the search promises: some word of `text` begins with `prefix` (case-insensitive).
fn holds_prefix(text: &str, prefix: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w.to_lowercase().starts_with(prefix))
}

#[tokio::test]
async fn problems_view_matches_the_raw_rollouts() {
    let (tables, prompts) = raw();
    let (sft, rl) = (&tables[1], &tables[2]);
    let deltas: BTreeMap<&String, f64> = sft
        .iter()
        .map(|(k, &(ca, na))| {
            let (cb, nb) = rl[k];
            (k, cb as f64 / nb as f64 - ca as f64 / na as f64)
        })
        .collect();
    for db in TestDb::all().await {
        let app = app(&db).await;
        let detail = json(&app, &format!("/api/v1/experiments/{DEMO_EXPERIMENT_SLUG}")).await;
        let ids: Vec<i64> = detail["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        let (a, b) = (ids[1], ids[2]);
        let base = format!("/api/v1/experiments/{DEMO_EXPERIMENT_SLUG}/problems?runs={a},{b}");

        // Every problem, its counts and Δ; the paired counts and the test.
        let doc = json(&app, &format!("{base}&limit=500")).await;
        assert_eq!(doc["total"], 40, "{}", db.name);
        let problems = doc["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 40);
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p["key"].as_str().unwrap())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "sorted by key by default");
        for p in problems {
            let key = p["key"].as_str().unwrap().to_string();
            let (ca, na) = sft[&key];
            let (cb, nb) = rl[&key];
            assert_eq!(p["runs"][a.to_string()]["c"], ca, "{key}");
            assert_eq!(p["runs"][a.to_string()]["n"], na, "{key}");
            assert_eq!(p["runs"][b.to_string()]["c"], cb, "{key}");
            assert_eq!(p["runs"][b.to_string()]["n"], nb, "{key}");
            assert!((p["delta"].as_f64().unwrap() - deltas[&key]).abs() < 1e-12);
            assert_eq!(p["prompt"].as_str().unwrap(), prompts[&key]);
        }
        let count = |c: Change| {
            deltas
                .values()
                .filter(|&&d| Change::of(d, 0.0) == c)
                .count()
        };
        let paired = &doc["paired"];
        assert_eq!(paired["improved"], count(Change::Improved));
        assert_eq!(paired["regressed"], count(Change::Regressed));
        assert_eq!(paired["unchanged"], count(Change::Unchanged));
        assert_eq!(paired["problems"], 40);
        assert!(
            count(Change::Improved) + count(Change::Regressed) > 0,
            "the demo's SFT and RL differ somewhere"
        );
        let all: Vec<f64> = deltas.values().copied().collect();
        let test = signed_rank_test(&all).unwrap();
        assert_eq!(paired["test"]["n"], test.n);
        assert!((paired["test"]["p_value"].as_f64().unwrap() - test.p_value).abs() < 1e-12);
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        assert!((paired["mean_delta"].as_f64().unwrap() - mean).abs() < 1e-12);

        // Regressed at a threshold, most regressed first; paging over them.
        let threshold = 0.25;
        let regressed: Vec<(&String, f64)> = deltas
            .iter()
            .filter(|(_, &d)| d < -threshold)
            .map(|(k, &d)| (*k, d))
            .collect();
        let doc = json(
            &app,
            &format!("{base}&change=regressed&min_delta={threshold}&sort=delta&limit=2"),
        )
        .await;
        assert_eq!(doc["total"], regressed.len(), "{}", db.name);
        assert_eq!(
            doc["paired"]["problems"], 40,
            "paired counts ignore the change filter"
        );
        let mut expected = regressed.clone();
        expected.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(y.0)));
        let page: Vec<&str> = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["key"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = expected.iter().take(2).map(|(k, _)| k.as_str()).collect();
        assert_eq!(page, want);
        if expected.len() > 2 {
            let doc = json(
                &app,
                &format!(
                    "{base}&change=regressed&min_delta={threshold}&sort=delta&limit=2&offset=2"
                ),
            )
            .await;
            assert_eq!(doc["problems"][0]["key"], expected[2].0.as_str());
        }

        // Search: a word of one prompt finds exactly the prompts and keys that hold it.
        let prefix = &search_prefix(prompts.values().map(String::as_str));
        let holds = |text: &str| holds_prefix(text, prefix);
        let want: Vec<&String> = prompts
            .iter()
            .filter(|(k, p)| holds(p) || holds(k))
            .map(|(k, _)| k)
            .collect();
        let doc = json(
            &app,
            &format!("{base}&q={}&limit=500", prefix.to_uppercase()),
        )
        .await;
        let got: Vec<&str> = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            got,
            want.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "q={prefix} on {}",
            db.name
        );
        assert!(!got.is_empty() && got.len() < 40);
        // A key's parts are words too; and a term nothing holds finds nothing.
        let key = prompts.keys().nth(7).unwrap();
        let id = key.rsplit('-').next().unwrap();
        let doc = json(&app, &format!("{base}&q=demo-{id}")).await;
        assert!(
            doc["problems"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["key"] == key.as_str()),
            "{key} by demo-{id}: {doc}"
        );
        let doc = json(&app, &format!("{base}&q=zzzqqq")).await;
        assert_eq!(doc["total"], 0);
        // Query syntax of the index is not reachable.
        let doc = json(&app, &format!("{base}&q=%22%20OR%20*%3A%20NEAR(")).await;
        assert!(doc["total"].as_u64().unwrap() <= 40);

        // Unsolvable by RL within all its samples: exactly the problems RL never solves.
        let doc = json(&app, &format!("{base}&unsolvable=16&limit=500")).await;
        let never: Vec<&String> = rl
            .iter()
            .filter(|(_, &(c, _))| c == 0)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(doc["total"], never.len());

        // CSV: a header and one line per matching problem.
        let (status, csv) = get(
            &app,
            &format!("{}.csv?runs={a},{b}", base.split('?').next().unwrap()),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(csv.lines().count(), 41);
        assert!(csv.lines().next().unwrap().contains("delta"));

        // Bad parameters name themselves.
        for (q, name) in [
            ("change=better", "change"),
            ("sort=size", "sort"),
            ("min_delta=2", "min_delta"),
            ("limit=0", "limit"),
            ("colour=red", "colour"),
        ] {
            let (status, body) = get(&app, &format!("{base}&{q}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{q}");
            assert!(body.contains(name), "{q}: {body}");
        }
        let (status, _) = get(&app, "/api/v1/experiments/nope/problems").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        db.cleanup().await;
    }
}

/// Issue 27: after an answer cluster is marked correct, the problem page opened in the
/// experiment counts it (c/n, answer mark, rollout marks) and says so; `reviewed=0` shows the
/// stored verdicts; the problems view counts it too.
#[tokio::test]
async fn the_problem_page_honours_verdict_overrides() {
    use caplens_analysis::verifier::normalize_answer;
    let data = generate_demo(&config());
    // A problem RL never solves, and RL's most common answer on it.
    let rl = 2;
    let (problem, answer, count) = (0..data.problems.len())
        .find_map(|p| {
            let rows: Vec<_> = data
                .rollouts
                .iter()
                .filter(|r| r.run == rl && r.problem == p)
                .collect();
            if rows.iter().any(|r| r.correct) {
                return None;
            }
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for r in &rows {
                if let Some(a) = &r.answer {
                    *counts.entry(normalize_answer(a)).or_default() += 1;
                }
            }
            counts
                .into_iter()
                .max_by_key(|(_, c)| *c)
                .map(|(a, c)| (p, a, c))
        })
        .expect("the demo has a problem RL never solves");
    let key = format!("{}/{}", data.dataset.name, data.problems[problem].id);
    for db in TestDb::all().await {
        let app = app(&db).await;
        let doc = json(
            &app,
            &format!("/api/v1/experiments/{DEMO_EXPERIMENT_SLUG}/problems?limit=500"),
        )
        .await;
        let row = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == key.as_str())
            .unwrap()
            .clone();
        let id = row["id"].as_i64().unwrap();
        let rl_run = doc["runs"][1]["id"].as_i64().unwrap();
        assert_eq!(row["runs"][rl_run.to_string()]["c"], 0);

        let operator = caplens_server::ops::Caller::operator();
        caplens_server::ops::review::add_override(
            &operator.access(&db.store),
            DEMO_EXPERIMENT_SLUG,
            &caplens_server::review::OverrideRequest {
                problem: Some(serde_json::Value::from(key.clone())),
                answer: Some(answer.clone()),
                rollout: None,
                verdict: "correct".into(),
                reason: "equivalent".into(),
            },
        )
        .await
        .unwrap();

        let page = |q: &'static str| {
            let app = app.clone();
            async move {
                let (status, html) = get(
                    &app,
                    &format!("/problems/{id}?experiment={DEMO_EXPERIMENT_SLUG}&run={rl_run}{q}"),
                )
                .await;
                assert_eq!(status, StatusCode::OK);
                html
            }
        };
        let html = page("").await;
        assert!(
            html.contains("data-testid=\"problem-review-note\""),
            "{}",
            db.name
        );
        assert!(
            html.contains("✓ correct (reviewed)"),
            "rollout marks follow the override"
        );
        assert!(
            html.contains(&format!(">{count}/{}<", config().samples_per_problem)),
            "RL's c/n counts the reviewed answers"
        );
        let html = page("&reviewed=0").await;
        assert!(!html.contains("✓ correct (reviewed)"));
        assert!(html.contains(&format!(">0/{}<", config().samples_per_problem)));
        // The problems view counts the override; without it, the stored verdicts.
        let doc = json(
            &app,
            &format!(
                "/api/v1/experiments/{DEMO_EXPERIMENT_SLUG}/problems?limit=500&q={}",
                data.problems[problem].id
            ),
        )
        .await;
        let row = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap();
        assert_eq!(row["runs"][rl_run.to_string()]["c"], count);
        let doc = json(
            &app,
            &format!("/api/v1/experiments/{DEMO_EXPERIMENT_SLUG}/problems?limit=500&reviewed=0"),
        )
        .await;
        let row = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap();
        assert_eq!(row["runs"][rl_run.to_string()]["c"], 0);
        db.cleanup().await;
    }
}

/// A dataset's problem index: every problem in file order, searched through the index
/// (exactly the prompts and keys holding the term), paged, with bad parameters refused.
#[tokio::test]
async fn dataset_problem_index_lists_searches_and_pages() {
    let data = generate_demo(&config());
    for db in TestDb::all().await {
        let app = app(&db).await;
        let datasets = json(&app, "/api/v1/datasets").await;
        let id = datasets
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == data.dataset.name.as_str())
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let base = format!("/api/v1/datasets/{id}/problems");
        // Every problem, in the file's order, with prompt and reference.
        let doc = json(&app, &format!("{base}?limit=500")).await;
        assert_eq!(doc["total"], data.problems.len() as u64, "{}", db.name);
        let keys: Vec<&str> = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["key"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = data.problems.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(keys, want);
        assert_eq!(
            doc["problems"][3]["prompt"],
            data.problems[3].prompt.as_str()
        );
        // Paging: the default page size, then the next page picks up where it ended.
        let page = json(&app, &format!("{base}?limit=7&offset=7")).await;
        assert_eq!(page["total"], data.problems.len() as u64);
        assert_eq!(page["problems"][0]["key"], data.problems[7].id.as_str());
        assert_eq!(page["problems"].as_array().unwrap().len(), 7);
        // Search: exactly the problems whose prompt or key holds a word beginning so.
        let prefix = &search_prefix(data.problems.iter().map(|p| p.prompt.as_str()));
        let holds = |text: &str| holds_prefix(text, prefix);
        let want: Vec<&str> = data
            .problems
            .iter()
            .filter(|p| holds(&p.prompt) || holds(&p.id))
            .map(|p| p.id.as_str())
            .collect();
        let doc = json(&app, &format!("{base}?q={prefix}&limit=500")).await;
        let got: Vec<&str> = doc["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["key"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "q={prefix} on {}", db.name);
        assert_eq!(doc["total"], want.len() as u64);
        assert!(!got.is_empty() && got.len() < data.problems.len());
        // Bad parameters name themselves; a dataset that does not exist is not found.
        let (status, body) = get(&app, &format!("{base}?limit=0")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("limit"), "{body}");
        let (status, body) = get(&app, &format!("{base}?sort=key")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("sort"), "{body}");
        let (status, _) = get(&app, "/api/v1/datasets/987654/problems").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        db.cleanup().await;
    }
}
