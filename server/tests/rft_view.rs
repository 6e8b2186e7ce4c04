//! The RFT data & advantage-shaping view on SQLite and PostgreSQL: the selection, its filter
//! counts and preview equal `analysis::rft` over the demo generator's rollouts; the group's
//! advantages equal `analysis::shaping`; the JSON Lines export has one line per selected rollout
//! and carries hostile text intact as JSON; PPL shaping on an imported run with token logprobs;
//! hostile responses render as text on the page.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use caplens_analysis::rft::{rule_filter, rule_outcome, select, RftCandidate, RuleOutcome};
use caplens_analysis::shaping::{
    group_advantages, ppl_shaped_advantage, ppl_weights, PositionBonus, StdKind,
};
use caplens_analysis::tokens::relative_position;
use caplens_app::charts::ChartSpec;
use caplens_app::views::*;
use caplens_server::demo::{
    self,
    generate::{generate_demo, DemoConfig, DemoData, DEMO_EXPERIMENT_SLUG},
};
use caplens_server::ingest::pipeline::{
    new_import_id, run_import, ImportFile, ImportParams, ImportProgress, ImportStatus,
};
use caplens_server::ingest::InputFile;
use caplens_server::views::ViewService;
use common::TestDb;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn config() -> DemoConfig {
    DemoConfig {
        problems: 24,
        samples_per_problem: 16,
        ..DemoConfig::default()
    }
}

/// The generator's rollouts of run `r`, in stored order.
fn run_rollouts(data: &DemoData, r: usize) -> Vec<&caplens_server::demo::generate::DemoRollout> {
    data.rollouts.iter().filter(|x| x.run == r).collect()
}

async fn service(db: &TestDb) -> (ViewService, Vec<i64>) {
    demo::load_demo(&db.store, &config()).await.unwrap();
    let views = ViewService::new(db.store.clone());
    let overview = views
        .overview(DEMO_EXPERIMENT_SLUG, None, false)
        .await
        .unwrap()
        .unwrap();
    (views, overview.rows.iter().map(|r| r.run.id).collect())
}

fn router(db: &TestDb) -> Router {
    caplens_server::web::router(
        caplens_server::ingest::service::ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        std::path::Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
    )
}

async fn get(app: &Router, uri: &str) -> (StatusCode, HashMap<String, String>, String) {
    let res = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn selection_counts_preview_and_export_match_the_analysis_crate() {
    let data = generate_demo(&config());
    for db in TestDb::all().await {
        let (views, ids) = service(&db).await;
        let app = router(&db);
        for (run_index, strategy, count, seed) in [
            (0, RftStrategy::Rule, 100, 7u64),
            (2, RftStrategy::Noisy, 60, 1),
            (1, RftStrategy::Rule, 100_000, 0),
        ] {
            let rollouts = run_rollouts(&data, run_index);
            let candidates: Vec<RftCandidate> = rollouts
                .iter()
                .map(|r| RftCandidate {
                    response: &r.response,
                    correct: r.correct,
                    mean_entropy: None,
                    mean_rbf: None,
                })
                .collect();
            let want = select(&candidates, strategy, count, seed).unwrap();
            let req = RftRequest {
                run: Some(ids[run_index]),
                strategy,
                count,
                seed,
                page: 2,
                ..RftRequest::default()
            };
            let v = views
                .rft(DEMO_EXPERIMENT_SLUG, req.clone())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(v.frame.selected, vec![ids[run_index]], "{}", db.name);
            // Counts: each rule filter as analysis::rft::rule_outcome says.
            let mut expected = RftCounts {
                rollouts: rollouts.len() as u64,
                ..RftCounts::default()
            };
            for r in &rollouts {
                match rule_outcome(&r.response) {
                    RuleOutcome::NoBoxed => expected.no_boxed += 1,
                    RuleOutcome::NoDigit => expected.no_digit += 1,
                    RuleOutcome::Redundant => expected.redundant += 1,
                    RuleOutcome::Kept(_) if r.correct => expected.kept_correct += 1,
                    RuleOutcome::Kept(_) => expected.kept_incorrect += 1,
                }
            }
            expected.selected_correct = want.iter().filter(|s| s.correct).count() as u64;
            expected.selected_incorrect = want.len() as u64 - expected.selected_correct;
            assert_eq!(v.counts, expected, "{} {strategy:?}", db.name);
            assert!(
                expected.no_boxed + expected.no_digit + expected.redundant > 0,
                "the demo exercises the filters"
            );
            if strategy == RftStrategy::Noisy {
                assert_eq!(expected.selected_incorrect, 3, "5 % of 60");
            }
            // Preview page 2: the 21st to 40th selected rollouts, cut after the first box.
            let preview = v.selection.clone().unwrap();
            assert_eq!(preview.selected, want.len());
            assert_eq!(preview.pages, want.len().div_ceil(RFT_PAGE_SIZE).max(1));
            let page_want: Vec<_> = want
                .iter()
                .skip(RFT_PAGE_SIZE)
                .take(RFT_PAGE_SIZE)
                .collect();
            assert_eq!(preview.rows.len(), page_want.len());
            for (row, s) in preview.rows.iter().zip(&page_want) {
                let r = rollouts[s.index];
                assert_eq!(
                    row.problem,
                    format!("{}/{}", data.dataset.name, data.problems[r.problem].id)
                );
                assert_eq!(row.sample, r.sample as i64);
                assert_eq!(row.text, s.truncated);
                assert_eq!(row.correct, s.correct);
            }
            // The JSON Lines export: one line per selected rollout, in order, the cut text.
            let href = v.download_href.clone();
            assert!(
                href.starts_with(&format!(
                    "/export/experiments/{DEMO_EXPERIMENT_SLUG}/rft.jsonl?"
                )),
                "{href}"
            );
            let (status, headers, body) = get(&app, &href).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(headers["content-type"].starts_with("application/jsonl"));
            assert_eq!(headers["x-caplens-selected"], want.len().to_string());
            let lines: Vec<Value> = body
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), want.len(), "{} {strategy:?}", db.name);
            for (line, s) in lines.iter().zip(&want) {
                let r = rollouts[s.index];
                let p = &data.problems[r.problem];
                assert_eq!(line["problem_id"], p.id.as_str());
                assert_eq!(line["dataset"], data.dataset.name.as_str());
                assert_eq!(line["prompt"], p.prompt.as_str());
                assert_eq!(line["reference"], p.answer.as_str());
                assert_eq!(line["sample"], r.sample);
                assert_eq!(line["correct"], r.correct);
                assert_eq!(line["response"], s.truncated);
                assert_eq!(line["truncated"], s.truncated.len() < r.response.len());
                assert_eq!(line["model"], data.models[run_index].name.as_str());
                assert_eq!(line["strategy"], strategy.name());
            }
        }
        // A strategy that ranks by entropy cannot select on a run without it, and says why.
        let v = views
            .rft(
                DEMO_EXPERIMENT_SLUG,
                RftRequest {
                    run: Some(ids[0]),
                    strategy: RftStrategy::Entropy,
                    ..RftRequest::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(
            v.selection.as_ref().unwrap_err().contains("entropy"),
            "{:?}",
            v.selection
        );
        let (status, _, body) = get(
            &app,
            &format!(
                "/export/experiments/{DEMO_EXPERIMENT_SLUG}/rft.jsonl?run={}&strategy=entropy",
                ids[0]
            ),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("entropy"), "{body}");
        // Through the compression layer (which polls the body stream again after its end).
        let res = app
            .clone()
            .oneshot(
                Request::get(format!(
                    "/export/experiments/{DEMO_EXPERIMENT_SLUG}/rft.jsonl?count=30"
                ))
                .header("accept-encoding", "gzip")
                .body(Body::empty())
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.headers()["content-encoding"], "gzip");
        let gz = res.into_body().collect().await.unwrap().to_bytes();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 30);
        let (status, _, _) = get(&app, "/export/experiments/nope/rft.jsonl").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, body) = get(
            &app,
            &format!("/export/experiments/{DEMO_EXPERIMENT_SLUG}/rft.jsonl?strategy=best"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("strategy=best"), "{body}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn group_advantages_match_the_analysis_crate() {
    let data = generate_demo(&config());
    let n = config().samples_per_problem as usize;
    for db in TestDb::all().await {
        let (views, ids) = service(&db).await;
        let run_index = 1;
        let rollouts = run_rollouts(&data, run_index);
        // Default problem: the first with mixed rewards.
        let mixed = (0..data.problems.len())
            .find(|&p| {
                let c = rollouts[p * n..(p + 1) * n]
                    .iter()
                    .filter(|r| r.correct)
                    .count();
                c > 0 && c < n
            })
            .unwrap();
        for req in [
            RftRequest {
                run: Some(ids[run_index]),
                ..RftRequest::default()
            },
            RftRequest {
                run: Some(ids[run_index]),
                gamma: 0.2,
                n: 0.5,
                m: 10.0,
                std: StdKind::Population,
                ..RftRequest::default()
            },
        ] {
            let v = views
                .rft(DEMO_EXPERIMENT_SLUG, req.clone())
                .await
                .unwrap()
                .unwrap();
            let g = v.group.clone().expect("a group");
            let key = format!("{}/{}", data.dataset.name, data.problems[mixed].id);
            assert_eq!(g.problem, key, "{}", db.name);
            assert_eq!(v.request.problem.as_deref(), Some(key.as_str()));
            assert_eq!(g.prompt, data.problems[mixed].prompt);
            let group = &rollouts[mixed * n..(mixed + 1) * n];
            let rewards: Vec<f64> = group.iter().map(|r| r.correct as u8 as f64).collect();
            let want = group_advantages(&rewards, req.std).unwrap();
            assert!(want.has_signal() && g.has_signal);
            let bonus = PositionBonus {
                gamma: req.gamma,
                d: req.d,
                m: req.m,
                n: req.n,
            };
            assert_eq!(g.rows.len(), n);
            for ((row, r), a) in g.rows.iter().zip(group).zip(want.advantages()) {
                assert_eq!(row.sample, r.sample as i64);
                assert!(
                    (row.advantage - a).abs() < 1e-12,
                    "{} {} vs {a}",
                    db.name,
                    row.advantage
                );
                let len = r.token_count as usize;
                assert_eq!(row.tokens, Some(len as u64));
                let first = bonus.apply(a, relative_position(0, len).unwrap());
                let last = bonus.apply(a, relative_position(len - 1, len).unwrap());
                assert!((row.first_token.unwrap() - first).abs() < 1e-12);
                assert!((row.last_token.unwrap() - last).abs() < 1e-12);
                assert_eq!(row.ppl_advantage, None, "the demo has no perplexity");
            }
            assert!(
                g.ppl_note.as_deref().unwrap().contains("no perplexity"),
                "{:?}",
                g.ppl_note
            );
            // The charted rollout (first correct by default) per token: eq. 12 at every point.
            let chosen = group.iter().position(|r| r.correct).unwrap();
            assert_eq!(g.sample, Some(group[chosen].sample as i64));
            let ChartSpec::Line(chart) = g.tokens.clone().expect("token chart") else {
                panic!()
            };
            let position = chart.series.iter().find(|s| s.key == "position").unwrap();
            let len = group[chosen].token_count as usize;
            let a = want.advantages()[chosen];
            for &(t, value) in &position.points {
                let l = relative_position(t as usize, len).unwrap();
                assert!((value - bonus.apply(a, l)).abs() < 1e-12);
            }
            assert_eq!(position.points.first().unwrap().0, 0.0);
            assert_eq!(position.points.last().unwrap().0, (len - 1) as f64);
            // The bonus curve is eq. 8 with the URL's parameters.
            let ChartSpec::Line(curve) = &v.bonus.chart else {
                panic!()
            };
            for &(l, b) in &curve.series[0].points {
                assert!((b - bonus.bonus(l)).abs() < 1e-15);
            }
            assert_eq!(v.bonus.nearly_constant, req.n == -0.5);
        }
        // Another problem and sample from the URL; a stale problem falls back with a notice.
        let other = format!("{}/{}", data.dataset.name, data.problems[0].id);
        let v = views
            .rft(
                DEMO_EXPERIMENT_SLUG,
                RftRequest {
                    run: Some(ids[0]),
                    problem: Some(data.problems[0].id.clone()),
                    sample: Some(3),
                    ..RftRequest::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            v.group.as_ref().unwrap().problem,
            other,
            "a bare key is found too"
        );
        assert_eq!(v.group.as_ref().unwrap().sample, Some(3));
        let v = views
            .rft(
                DEMO_EXPERIMENT_SLUG,
                RftRequest {
                    run: Some(999_999),
                    problem: Some("nope".into()),
                    ..RftRequest::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.frame.missing_runs, vec![999_999]);
        assert_eq!(v.frame.selected, vec![ids[0]], "the first run instead");
        assert_eq!(v.problem_missing.as_deref(), Some("nope"));
        assert!(v.group.is_some() && v.selection.is_ok());
        assert!(views
            .rft("no-such-experiment", RftRequest::default())
            .await
            .unwrap()
            .is_none());
        db.cleanup().await;
    }
}

const HOSTILE: &str = "<script>alert(1)</script><img src=x onerror=alert(2)> so x = 12 and \\boxed{12}</math><script>alert(3)</script> trailing";

/// A native JSON Lines file: one problem, four rollouts with token logprobs (so the import
/// stores perplexity) and entropies; the first response is hostile.
/// (correct, token logprobs, token entropies) of each uploaded rollout.
type Uploaded = Vec<(bool, Vec<f64>, Vec<f64>)>;

fn native_file() -> (String, Uploaded) {
    let rollouts: Uploaded = vec![
        (
            true,
            vec![-0.1, -0.3, -0.2, -0.05, -0.4],
            vec![0.5, 0.9, 0.2, 0.1, 0.3],
        ),
        (false, vec![-1.2, -0.8, -2.0], vec![1.5, 1.1, 2.2]),
        (true, vec![-0.6, -0.7, -0.5, -0.9], vec![0.7, 0.6, 0.8, 0.4]),
        (
            false,
            vec![-0.2, -0.1, -3.5, -0.3, -0.2, -0.6],
            vec![0.3, 0.2, 2.9, 0.4, 0.1, 0.5],
        ),
    ];
    let mut text = String::new();
    for (i, (correct, lps, ents)) in rollouts.iter().enumerate() {
        let response = if i == 0 {
            HOSTILE.to_string()
        } else {
            format!(
                "we get {i} so \\boxed{{{}}}",
                if *correct { 12 } else { i as i32 }
            )
        };
        let tokens: Vec<String> = (0..lps.len()).map(|t| format!("t{t}")).collect();
        let line = json!({
            "model": "rft-test-<b>model</b>", "dataset": "rftset", "problem_id": "p1", "sample": i,
            "correct": correct, "response": response, "reference": "12",
            "tokens": tokens, "token_logprobs": lps, "token_entropies": ents,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    (text, rollouts)
}

#[tokio::test]
async fn ppl_shaping_entropy_selection_and_hostile_text_on_an_imported_run() {
    let (text, rollouts) = native_file();
    for db in TestDb::all().await {
        let path = db.dir().join("rft.jsonl");
        std::fs::write(&path, &text).unwrap();
        let input = InputFile::new(&path, "rft.jsonl");
        let progress = Arc::new(ImportProgress::for_files(std::slice::from_ref(&input)));
        let params = ImportParams {
            experiment: Some("rft-ppl".into()),
            ..ImportParams::default()
        };
        let report = run_import(
            &db.store,
            &new_import_id(),
            vec![ImportFile {
                input,
                sha256: None,
            }],
            params,
            progress,
            None,
        )
        .await;
        assert_eq!(
            report.status,
            ImportStatus::Completed,
            "{:?}",
            report.message
        );
        let views = ViewService::new(db.store.clone());
        let req = RftRequest {
            alpha: 0.05,
            strategy: RftStrategy::Entropy,
            count: 1,
            ..RftRequest::default()
        };
        let v = views.rft("rft-ppl", req.clone()).await.unwrap().unwrap();
        let run = v.run.clone().unwrap();
        assert_eq!((run.rollouts, run.with_ppl, run.with_entropy), (4, 4, 4));
        // PPL shaping (eqs. 7, 11) over the stored perplexities, which are exp(-mean logprob).
        let g = v.group.clone().unwrap();
        assert_eq!(g.ppl_note, None);
        let ppl: Vec<f64> = g.rows.iter().map(|r| r.perplexity.unwrap()).collect();
        for (p, (_, lps, _)) in ppl.iter().zip(&rollouts) {
            let want = (-lps.iter().sum::<f64>() / lps.len() as f64).exp();
            assert!((p - want).abs() < 1e-5 * want, "{p} vs {want}");
        }
        let ln: Vec<f64> = ppl.iter().map(|p| p.ln()).collect();
        let w = ppl_weights(&ln, StdKind::Sample).unwrap().weights();
        let rewards: Vec<f64> = rollouts.iter().map(|r| r.0 as u8 as f64).collect();
        let a = group_advantages(&rewards, StdKind::Sample)
            .unwrap()
            .advantages();
        for (i, row) in g.rows.iter().enumerate() {
            assert!((row.weight.unwrap() - w[i]).abs() < 1e-12);
            assert!(
                (row.ppl_advantage.unwrap() - ppl_shaped_advantage(a[i], w[i], 0.05)).abs() < 1e-12
            );
            assert_eq!(row.tokens, Some(rollouts[i].1.len() as u64));
        }
        // The lowest-PPL correct rollout gains over the other correct one.
        assert!(g.rows[0].ppl_advantage.unwrap() > g.rows[2].ppl_advantage.unwrap());
        let ChartSpec::Line(chart) = g.tokens.clone().unwrap() else {
            panic!()
        };
        assert!(
            chart.series.iter().any(|s| s.key == "both"),
            "PPL then position is charted"
        );
        // Entropy strategy: the correct rollout with the highest mean entropy (sample 2: 0.625 > 0.4).
        let sel = v.selection.clone().unwrap();
        assert_eq!((sel.selected, sel.rows[0].sample), (1, 2));
        // Rule strategy over both correct rollouts: the hostile one is cut after its box and
        // round-trips through the JSON Lines export byte for byte.
        let all = RftRequest {
            strategy: RftStrategy::Rule,
            count: 10,
            ..RftRequest::default()
        };
        let v = views.rft("rft-ppl", all.clone()).await.unwrap().unwrap();
        let app = router(&db);
        let (status, _, body) = get(&app, &v.download_href).await;
        assert_eq!(status, StatusCode::OK);
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), v.selection.as_ref().unwrap().selected);
        assert_eq!(lines.len(), 2);
        let cut = rule_filter(HOSTILE).unwrap();
        assert_eq!(lines[0]["response"], cut);
        assert!(cut.contains("<script>alert(1)</script>") && cut.contains("onerror"));
        assert_eq!(lines[0]["model"], "rft-test-<b>model</b>");
        assert_eq!(lines[0]["truncated"], true);
        // The page shows the hostile text as text.
        let (status, _, html) =
            get(&app, &format!("/experiments/rft-ppl/rft?{}", all.query())).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains(
                "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
            ),
            "escaped preview"
        );
        assert!(
            !html.contains("<script>alert(") && !html.contains("<img src=x"),
            "no live markup"
        );
        assert!(!html.contains("<b>model</b>"));
        assert!(html.contains("data-testid=\"rft-group-table\""));
        // Chart export of the bonus and the token chart.
        let (status, headers, svg) =
            get(&app, "/export/experiments/rft-ppl/rft/bonus.svg?n=0.5").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers["content-type"].starts_with("image/svg+xml"));
        assert!(svg.contains("position bonus"));
        let (status, _, _) = get(&app, "/export/experiments/rft-ppl/rft/tokens.svg").await;
        assert_eq!(status, StatusCode::OK);
        db.cleanup().await;
    }
}
