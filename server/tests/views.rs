//! The analysis views (overview, pass@k, unsolvable, compare) on SQLite and PostgreSQL: numbers
//! equal what the analysis crate computes from the demo generator's rollouts; stale permalinks
//! keep the rest of the view; chart export answers SVG and PNG.

mod common;

use std::collections::BTreeMap;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use caplens_analysis::passk::{default_ks, pass_at_k_curve, ProblemCounts};
use caplens_analysis::sets::{compare_unsolvable, ModelOutcomes, ProblemOutcome};
use caplens_app::charts::ChartSpec;
use caplens_app::views::*;
use caplens_server::demo::{
    self,
    generate::{generate_demo, DemoConfig, DEMO_EXPERIMENT_SLUG},
};
use caplens_server::views::ViewService;
use common::TestDb;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn config() -> DemoConfig {
    DemoConfig {
        problems: 24,
        samples_per_problem: 16,
        ..DemoConfig::default()
    }
}

/// Per model (base, sft, rl): problem id -> (n, c), straight from the generator.
fn expected_counts() -> (Vec<String>, Vec<BTreeMap<String, (u64, u64)>>) {
    let data = generate_demo(&config());
    let mut tables = vec![BTreeMap::new(); data.runs.len()];
    for r in &data.rollouts {
        let key = format!("{}/{}", data.dataset.name, data.problems[r.problem].id);
        let e = tables[r.run].entry(key).or_insert((0u64, 0u64));
        e.0 += 1;
        e.1 += r.correct as u64;
    }
    (data.models.iter().map(|m| m.name.clone()).collect(), tables)
}

async fn service(db: &TestDb) -> (ViewService, Vec<i64>) {
    demo::load_demo(&db.store, &config()).await.unwrap();
    let views = ViewService::new(db.store.clone());
    let overview = views
        .overview(DEMO_EXPERIMENT_SLUG, None, false)
        .await
        .unwrap()
        .unwrap();
    let ids = overview.rows.iter().map(|r| r.run.id).collect();
    (views, ids)
}

#[tokio::test]
async fn passk_curves_match_the_analysis_crate() {
    let (_, tables) = expected_counts();
    for db in TestDb::all().await {
        let (views, ids) = service(&db).await;
        let v = views
            .passk(
                DEMO_EXPERIMENT_SLUG,
                PasskRequest {
                    runs: ids.clone(),
                    tag: None,
                    band: true,
                    verdicts: None,
                    unreviewed: false,
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.frame.selected, ids, "{}", db.name);
        let ChartSpec::Line(chart) = &v.chart else {
            panic!("pass@k is a line chart")
        };
        assert_eq!(chart.series.len(), 3);
        for (series, table) in chart.series.iter().zip(&tables) {
            let counts: Vec<ProblemCounts> = table
                .values()
                .map(|&(n, c)| ProblemCounts { n, c })
                .collect();
            let curve = pass_at_k_curve(&counts, &default_ks(16));
            assert_eq!(series.points.len(), curve.len());
            for (pt, want) in series.points.iter().zip(&curve) {
                assert_eq!(pt.0, want.k as f64);
                assert!(
                    (pt.1 - want.pass_at_k).abs() < 1e-12,
                    "{}: pass@{} {} vs {}",
                    db.name,
                    want.k,
                    pt.1,
                    want.pass_at_k
                );
            }
            // The band brackets the curve.
            for (b, pt) in series.band.iter().zip(&series.points) {
                assert!(b.1 <= pt.1 + 1e-12 && pt.1 <= b.2 + 1e-12);
            }
        }
        // The table holds the same numbers (percent, two decimals) and the problem count.
        assert_eq!(v.table.rows.len(), default_ks(16).len());
        assert_eq!(v.table.rows[0][2], "24");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn stale_permalinks_keep_the_rest_of_the_view() {
    for db in TestDb::all().await {
        let (views, ids) = service(&db).await;
        let v = views
            .passk(
                DEMO_EXPERIMENT_SLUG,
                PasskRequest {
                    runs: vec![999_999, ids[1]],
                    tag: Some("no-such-tag".into()),
                    band: false,
                    verdicts: None,
                    unreviewed: false,
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.frame.missing_runs, vec![999_999]);
        assert_eq!(v.frame.selected, vec![ids[1]]);
        assert!(v.tag_missing);
        let ChartSpec::Line(chart) = &v.chart else {
            panic!()
        };
        assert_eq!(chart.series.len(), 1);
        assert!(chart.series[0].band.is_empty(), "band off");
        // Only unknown runs: the default selection shows.
        let v = views
            .unsolvable(
                DEMO_EXPERIMENT_SLUG,
                UnsolvableRequest {
                    runs: vec![999_999],
                    k: None,
                    region: vec![],
                    verdicts: None,
                    unreviewed: false,
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.frame.selected, ids);
        assert!(views
            .passk("no-such-experiment", PasskRequest::default())
            .await
            .unwrap()
            .is_none());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn unsolvable_regions_and_region_problems_match_the_analysis_crate() {
    let (names, tables) = expected_counts();
    let compared: Vec<ModelOutcomes> = names
        .iter()
        .zip(&tables)
        .map(|(name, t)| ModelOutcomes {
            model: name.clone(),
            problems: t
                .iter()
                .map(|(k, &(n, c))| (k.clone(), ProblemOutcome::from_counts(n, c)))
                .collect(),
        })
        .collect();
    let want = compare_unsolvable(&compared, None);
    for db in TestDb::all().await {
        let (views, ids) = service(&db).await;
        let v = views
            .unsolvable(
                DEMO_EXPERIMENT_SLUG,
                UnsolvableRequest {
                    runs: ids.clone(),
                    k: None,
                    region: vec![ids[2]],
                    verdicts: None,
                    unreviewed: false,
                },
            )
            .await
            .unwrap()
            .unwrap();
        let ChartSpec::Sets(sets) = &v.chart else {
            panic!("sets chart")
        };
        assert_eq!(
            sets.set_sizes,
            want.unsolvable.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(
            sets.regions.len(),
            7,
            "a 3-set Venn has 7 regions, empty ones too"
        );
        for region in &want.regions {
            let got = sets
                .regions
                .iter()
                .find(|r| r.members == region.models)
                .unwrap();
            assert_eq!(got.count, region.problems.len());
        }
        // The selected region (rl only) lists its problems with c/n and the 95 % bound.
        let detail = v.region.expect("region detail");
        let rl_only = want
            .regions
            .iter()
            .find(|r| r.models == vec![2])
            .map(|r| r.problems.clone())
            .unwrap_or_default();
        assert_eq!(
            detail
                .problems
                .iter()
                .map(|p| p.key.clone())
                .collect::<Vec<_>>(),
            rl_only
        );
        for p in &detail.problems {
            let (n, c) = tables[2][&p.key];
            assert_eq!((p.cells[2].n, p.cells[2].c), (n, c));
            assert_eq!(p.cells[2].c, 0);
            let bound = caplens_analysis::sets::solve_rate_upper_bound_95(n);
            assert!((p.cells[2].upper_95.unwrap() - bound).abs() < 1e-12);
            assert!(p.cells[0].c > 0 && p.cells[1].c > 0, "solved by the others");
        }
        // At k = 4 sets can only grow... shrink? No: fewer attempts, more unsolvable.
        let at4 = views
            .unsolvable(
                DEMO_EXPERIMENT_SLUG,
                UnsolvableRequest {
                    runs: ids.clone(),
                    k: Some(4),
                    region: vec![],
                    verdicts: None,
                    unreviewed: false,
                },
            )
            .await
            .unwrap()
            .unwrap();
        let ChartSpec::Sets(s4) = &at4.chart else {
            panic!()
        };
        for (a, b) in s4.set_sizes.iter().zip(&sets.set_sizes) {
            assert!(a >= b);
        }
        db.cleanup().await;
    }
}

#[tokio::test]
async fn compare_finds_the_lineage_and_only_supported_takeaways() {
    let (_, tables) = expected_counts();
    for db in TestDb::all().await {
        let (views, ids) = service(&db).await;
        let v = views
            .compare(DEMO_EXPERIMENT_SLUG, CompareRequest::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            v.frame.selected, ids,
            "base -> sft -> rl found from the lineage"
        );
        let lost = tables[1]
            .iter()
            .filter(|(k, &(_, c))| c > 0 && tables[2][*k].1 == 0)
            .count();
        let text: Vec<&str> = v.takeaways.iter().map(|t| t.text.as_str()).collect();
        if lost > 0 {
            let line = format!(
                "{lost} problem{} solvable by",
                if lost == 1 { "" } else { "s" }
            );
            assert!(
                text.iter()
                    .any(|t| t.starts_with(&line) && t.contains("after demo-")),
                "{text:?}"
            );
        }
        let p1 = |t: &BTreeMap<String, (u64, u64)>| {
            t.values().map(|&(n, c)| c as f64 / n as f64).sum::<f64>() / t.len() as f64
        };
        let d = (p1(&tables[2]) - p1(&tables[1])) * 100.0;
        assert!(
            text.iter()
                .any(|t| t.contains(&format!("pass@1 {:+.1} pts over", d))),
            "{text:?} {d}"
        );
        assert!(v
            .takeaways
            .iter()
            .all(|t| t.href.starts_with("/experiments/")));
        // No token data in the demo's base runs means no RBF claim... unless the demo has traces.
        db.cleanup().await;
    }
}

#[tokio::test]
async fn charts_export_as_svg_and_png() {
    let db = TestDb::sqlite().await;
    demo::load_demo(&db.store, &config()).await.unwrap();
    let app = caplens_server::web::router(
        caplens_server::ingest::service::ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        std::path::Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
    );
    let fetch = |uri: String| {
        let app = app.clone();
        async move {
            let res = app
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = res.status();
            let ct = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (
                status,
                ct,
                res.into_body().collect().await.unwrap().to_bytes(),
            )
        }
    };
    let base = format!("/export/experiments/{DEMO_EXPERIMENT_SLUG}");
    let (s, ct, body) = fetch(format!("{base}/passk/passk.svg?band=0")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("image/svg+xml"));
    let svg = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        svg.contains("demo-rl") && svg.contains("pass@k"),
        "legend and axis label in the figure"
    );
    let (s, ct, body) = fetch(format!("{base}/unsolvable/sets.png")).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ct, "image/png");
    assert_eq!(&body[..8], b"\x89PNG\r\n\x1a\n");
    let (s, _, _) = fetch(format!("{base}/passk/nope.svg")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = fetch("/export/experiments/nope/passk/passk.svg".into()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    db.cleanup().await;
}
