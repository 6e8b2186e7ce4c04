//! The problems view's search at scale (issue 27): 10⁵ problems in one experiment, on SQLite and
//! (with `CAPLENS_TEST_POSTGRES_URL`) PostgreSQL. Prints p50 / p95 / max over repeated queries
//! of (1) the full-text search alone (`Store::search_problems`: the index) and (2) the whole
//! problems view with that search (`ViewService::problems`: search, filter, sort of every
//! problem, one page), warm.
//!
//! Run: `cargo bench -p caplens-server --bench problem_search [-- PROBLEMS]` (default 100000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use caplens_app::views::ProblemsRequest;
use caplens_server::ingest::pipeline::{
    new_import_id, run_import, ImportFile, ImportParams, ImportProgress,
};
use caplens_server::ingest::InputFile;
use caplens_server::views::{ProblemInputs, ViewService};
use common::TestDb;

const SLUG: &str = "bench-search";

/// Deterministic words: a vocabulary of 5000, drawn with a skew (a few common, most rare).
fn word(seed: &mut u64) -> String {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let u = ((*seed >> 33) as f64) / (1u64 << 31) as f64;
    let rank = (5000f64.powf(u)) as u64; // log-uniform: rank 1 common, rank 5000 rare
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    let mut w = String::new();
    let mut r = rank * 7919 + 13;
    for _ in 0..(4 + rank % 6) {
        w.push(letters[(r % 26) as usize] as char);
        r /= 3;
        r += rank;
    }
    w
}

fn generate(path: &std::path::Path, problems: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut seed = 7u64;
    for p in 0..problems {
        let prompt: Vec<String> = (0..24).map(|_| word(&mut seed)).collect();
        let prompt = format!("{} $x^{}$?", prompt.join(" "), p % 9);
        for (model, correct) in [("base-7b", p % 3 == 0), ("rl-7b", p % 2 == 0)] {
            let line = serde_json::json!({
                "model": model, "dataset": "big", "problem_id": format!("p{p}"), "sample": 0,
                "prompt": prompt, "reference": "1", "answer": if correct { "1" } else { "2" },
            });
            writeln!(out, "{line}").unwrap();
        }
    }
}

fn percentiles(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    format!(
        "p50 {:7.2} ms  p95 {:7.2} ms  max {:7.2} ms  ({} queries)",
        at(0.5),
        at(0.95),
        at(1.0),
        ms.len()
    )
}

async fn bench(db: TestDb, file: &std::path::Path, problems: usize) {
    let input = InputFile::new(file, file.display().to_string());
    let progress = std::sync::Arc::new(ImportProgress::for_files(std::slice::from_ref(&input)));
    let start = Instant::now();
    let report = run_import(
        &db.store,
        &new_import_id(),
        vec![ImportFile {
            input,
            sha256: None,
        }],
        ImportParams {
            experiment: Some(SLUG.into()),
            ..Default::default()
        },
        progress,
        None,
    )
    .await;
    assert_eq!(report.status.as_str(), "completed", "{report:?}");
    println!(
        "{}: imported {problems} problems × 2 runs in {:.1} s",
        db.name,
        start.elapsed().as_secs_f64()
    );
    let experiment = db.store.experiment_ref(SLUG).await.unwrap().unwrap();
    // Queries: common and rare words, two words, prefixes, a key, a term nothing holds.
    let mut seed = 99u64;
    let words: Vec<String> = (0..30).map(|_| word(&mut seed)).collect();
    let mut queries = words.clone();
    queries.extend((0..10).map(|i| format!("{} {}", word(&mut seed), words[i])));
    queries.extend((0..10).map(|i| words[i][..3].to_string()));
    queries.extend(["p4242".to_string(), "zzqqxx".to_string()]);
    let mut hits = Vec::new();
    let mut search_ms = Vec::new();
    for round in 0..4 {
        for q in &queries {
            let t = Instant::now();
            let found = db.store.search_problems(experiment.id, q).await.unwrap();
            if round > 0 {
                search_ms.push(t.elapsed().as_secs_f64() * 1e3);
            } else {
                hits.push(found.map_or(0, |f| f.len()));
            }
        }
    }
    hits.sort_unstable();
    println!(
        "{}: search alone        {}   matches per query: median {}, max {}",
        db.name,
        percentiles(search_ms),
        hits[hits.len() / 2],
        hits[hits.len() - 1]
    );
    let views = ViewService::new(db.store.clone());
    let mut view_ms = Vec::new();
    for round in 0..3 {
        for q in &queries {
            let request = ProblemsRequest {
                q: Some(q.clone()),
                limit: 50,
                ..Default::default()
            };
            let t = Instant::now();
            let v = views
                .problems(SLUG, experiment.id, request, ProblemInputs::default())
                .await
                .unwrap()
                .unwrap();
            std::hint::black_box(v.total);
            if round > 0 {
                view_ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    println!("{}: whole problems view {}", db.name, percentiles(view_ms));
    db.cleanup().await;
}

fn main() {
    let problems: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.jsonl");
    generate(&file, problems);
    println!(
        "machine: {} CPUs; {problems} problems, prompts of 24 words from a skewed vocabulary of 5000",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        bench(TestDb::sqlite().await, &file, problems).await;
        match TestDb::postgres().await {
            Some(pg) => bench(pg, &file, problems).await,
            None => println!("postgres: CAPLENS_TEST_POSTGRES_URL not set, skipped"),
        }
    });
}
