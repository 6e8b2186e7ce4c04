//! Token-level data on SQLite and PostgreSQL: the demo's token traces and per-run token
//! statistics, imports with logprobs producing token statistics, and the two read methods
//! (`Store::run_token_stats`, `Store::rollout_trace`). Stored numbers are checked against the
//! analysis crate recomputing them from what was read back.

mod common;

use std::path::Path;
use std::sync::Arc;

use caplens_analysis::token_stats::{
    RolloutTokens, TokenStats, TokenStatsAccumulator, TraceTokens,
};
use caplens_server::demo::{
    self,
    generate::{DemoConfig, CHECKPOINT_STEPS, DYNAMICS_EXPERIMENT_SLUG},
};
use caplens_server::ingest::pipeline::{
    new_import_id, run_import, ImportFile, ImportParams, ImportProgress, ImportStatus,
};
use caplens_server::ingest::InputFile;
use caplens_server::storage::Store;
use common::TestDb;

fn small_demo() -> DemoConfig {
    DemoConfig {
        problems: 12,
        samples_per_problem: 8,
        traced_samples: 4,
        checkpoint_samples: 4,
        ..DemoConfig::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

async fn run_ids(store: &Store, slug: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT er.run_id FROM experiment_runs er JOIN experiments e ON e.id = er.experiment_id
         WHERE e.slug = $1 ORDER BY er.run_id",
    )
    .bind(slug)
    .fetch_all(store.pool())
    .await
    .unwrap()
}

/// Rollout ids of a run with whether they have a trace, by problem and sample.
async fn rollouts_of(store: &Store, run: i64) -> Vec<(i64, bool)> {
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT id, trace_key FROM rollouts WHERE run_id = $1 ORDER BY problem_id, sample_index",
    )
    .bind(run)
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, key)| (id, key.is_some()))
        .collect()
}

/// Recomputes a run's token statistics from its rows and traces as read back through
/// `rollout_trace`, the way an import computes them.
async fn recompute(store: &Store, run: i64) -> Option<TokenStats> {
    let mut acc = TokenStatsAccumulator::new();
    for (id, _) in rollouts_of(store, run).await {
        let r = store.rollout_trace(id).await.unwrap().unwrap();
        assert_eq!(r.trace_error, None);
        let digest = r.trace.as_ref().map(TraceTokens::of);
        acc.push_rollout(RolloutTokens {
            correct: r.rollout.row.correct,
            mean_entropy: r.rollout.row.mean_entropy,
            ppl: r.rollout.row.perplexity,
            trace: digest.as_ref(),
        });
    }
    acc.finish()
}

/// Stored and recomputed statistics agree (floats to rounding: sums are added in another order
/// and went through JSON).
fn assert_same_stats(stored: &TokenStats, fresh: &TokenStats, what: &str) {
    assert_eq!(stored.rollouts, fresh.rollouts, "{what}");
    assert_eq!(stored.traced_rollouts, fresh.traced_rollouts, "{what}");
    assert_eq!(stored.trace_tokens, fresh.trace_tokens, "{what}");
    assert_eq!(stored.entropy_source, fresh.entropy_source, "{what}");
    for (a, b) in [
        (&stored.mean_entropy.correct, &fresh.mean_entropy.correct),
        (
            &stored.mean_entropy.incorrect,
            &fresh.mean_entropy.incorrect,
        ),
        (&stored.perplexity.mean.all, &fresh.perplexity.mean.all),
    ] {
        assert_eq!(a.count, b.count, "{what}");
        assert!(close(a.sum, b.sum), "{what}: {} vs {}", a.sum, b.sum);
    }
    assert_eq!(
        stored.perplexity.histogram.correct, fresh.perplexity.histogram.correct,
        "{what}"
    );
    assert_eq!(
        stored.perplexity.histogram.incorrect, fresh.perplexity.histogram.incorrect,
        "{what}"
    );
    assert_eq!(
        stored
            .perplexity
            .groups
            .map(|g| (g.group_size, g.low.rollouts, g.low.correct)),
        fresh
            .perplexity
            .groups
            .map(|g| (g.group_size, g.low.rollouts, g.low.correct)),
        "{what}"
    );
    assert_eq!(
        stored.position_entropy.responses(),
        fresh.position_entropy.responses(),
        "{what}"
    );
    for (a, b) in stored
        .position_entropy
        .summary()
        .iter()
        .zip(fresh.position_entropy.summary())
    {
        assert_eq!(a.correct.count, b.correct.count, "{what}");
        assert!(
            close(a.correct.sum, b.correct.sum) && close(a.incorrect.sum, b.incorrect.sum),
            "{what}"
        );
    }
    assert_eq!(stored.categories.tokens, fresh.categories.tokens, "{what}");
    match (&stored.interventions, &fresh.interventions) {
        (Some(a), Some(b)) => {
            assert_eq!(
                (a.responses, a.interventions),
                (b.responses, b.interventions),
                "{what}"
            );
            for (x, y) in a.by_position.iter().zip(&b.by_position) {
                assert_eq!(x.summary.interventions, y.summary.interventions, "{what}");
                assert_eq!(
                    x.summary.mean_impact.map(|m| (m * 1e6).round()),
                    y.summary.mean_impact.map(|m| (m * 1e6).round()),
                    "{what}"
                );
            }
            assert_eq!(
                a.by_ppl_group.map(|g| g.group_size),
                b.by_ppl_group.map(|g| g.group_size),
                "{what}"
            );
        }
        (None, None) => {}
        other => panic!("{what}: interventions differ: {other:?}"),
    }
}

fn pack_files(dir: &Path) -> Vec<String> {
    let folder = dir.join("blobs/traces/demo");
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn demo_stores_traces_means_and_token_stats() {
    for db in TestDb::all().await {
        let config = small_demo();
        let loaded = demo::load_demo(&db.store, &config).await.unwrap();
        let main_runs = run_ids(&db.store, &loaded.slug).await;
        let dynamics_runs = run_ids(&db.store, DYNAMICS_EXPERIMENT_SLUG).await;
        assert_eq!(
            (main_runs.len(), dynamics_runs.len()),
            (3, CHECKPOINT_STEPS.len())
        );
        let per_main_run = config.problems * config.traced_samples as usize;
        assert_eq!(
            loaded.traced_rollouts,
            3 * per_main_run + CHECKPOINT_STEPS.len() * config.problems
        );
        assert_eq!(
            pack_files(db.dir()).len(),
            15,
            "{}: one pack per run",
            db.name
        );

        // Stored statistics of every run, in the order asked; unknown ids left out.
        let mut asked: Vec<i64> = main_runs.iter().chain(&dynamics_runs).copied().collect();
        asked.insert(1, 987_654);
        asked.push(main_runs[0]);
        let stats = db.store.run_token_stats(&asked).await.unwrap();
        let got: Vec<i64> = stats.iter().map(|(id, _)| *id).collect();
        let expected: Vec<i64> = main_runs.iter().chain(&dynamics_runs).copied().collect();
        assert_eq!(got, expected, "{}", db.name);
        assert!(db.store.run_token_stats(&[]).await.unwrap().is_empty());

        let mut entropy_by_model = Vec::new();
        for (run, stored) in &stats[..3] {
            let stored = stored.as_ref().expect("main runs have token stats");
            assert_eq!(stored.traced_rollouts as usize, per_main_run);
            assert_eq!(
                stored.rollouts as usize,
                config.problems * config.samples_per_problem as usize
            );
            assert_eq!(stored.entropy_source.exact, stored.traced_rollouts);
            assert_eq!(stored.entropy_source.max_top_k, 5);
            let iv = stored
                .interventions
                .as_ref()
                .expect("sample 0 carries interventions");
            assert_eq!((iv.responses, iv.interventions), (12, 36));
            let fresh = recompute(&db.store, *run).await.unwrap();
            assert_same_stats(stored, &fresh, &format!("{} run {run}", db.name));
            entropy_by_model.push(stored.mean_entropy.all.mean().unwrap());

            // Rows: traced rollouts are the first samples, and only they have means.
            let (with_means, traced, first_samples): (i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(mean_entropy), COUNT(trace_key),
                        CAST(COALESCE(SUM(CASE WHEN sample_index < 4 THEN 1 ELSE 0 END), 0) AS BIGINT)
                 FROM rollouts WHERE run_id = $1 AND (trace_key IS NOT NULL OR mean_entropy IS NOT NULL)",
            )
            .bind(run)
            .fetch_one(db.store.pool())
            .await
            .unwrap();
            assert_eq!(
                (with_means, traced, first_samples),
                (
                    per_main_run as i64,
                    per_main_run as i64,
                    per_main_run as i64
                )
            );

            // The run aggregates carry the same means.
            let aggregates: String =
                sqlx::query_scalar("SELECT aggregates FROM runs WHERE id = $1")
                    .bind(run)
                    .fetch_one(db.store.pool())
                    .await
                    .unwrap();
            let aggregates: serde_json::Value = serde_json::from_str(&aggregates).unwrap();
            assert_eq!(aggregates["totals"]["entropy"]["count"], per_main_run);
            let mean = aggregates["summary"]["mean_entropy"].as_f64().unwrap();
            assert!(
                close(mean, stored.mean_entropy.all.mean().unwrap()),
                "{mean}"
            );
            assert!(aggregates["summary"]["mean_ppl"].as_f64().unwrap() > 1.0);
            assert!(aggregates["summary"]["mean_rbf"].as_f64().unwrap() >= 1.0);
        }
        assert!(
            entropy_by_model[0] > entropy_by_model[1] && entropy_by_model[1] > entropy_by_model[2],
            "{}: base > sft > rl: {entropy_by_model:?}",
            db.name
        );

        // Dynamics runs: every rollout has a mean entropy, sample 0 a trace.
        for (run, stored) in &stats[3..] {
            let stored = stored.as_ref().unwrap();
            assert_eq!(
                stored.rollouts as usize,
                config.problems * config.checkpoint_samples as usize
            );
            assert_eq!(stored.mean_entropy.all.count, stored.rollouts);
            assert_eq!(stored.traced_rollouts as usize, config.problems);
            assert!(stored.interventions.is_none());
            let fresh = recompute(&db.store, *run).await.unwrap();
            assert_same_stats(stored, &fresh, &format!("{} checkpoint run {run}", db.name));
        }

        // One rollout's trace.
        let rollouts = rollouts_of(&db.store, main_runs[1]).await;
        let (traced_id, _) = rollouts.iter().find(|(_, t)| *t).unwrap();
        let r = db.store.rollout_trace(*traced_id).await.unwrap().unwrap();
        let trace = r.trace.expect("decoded trace");
        assert_eq!(
            trace.tokens().concat(),
            r.rollout.response.unwrap().into_bytes()
        );
        assert_eq!(r.rollout.row.token_count, Some(trace.len() as i64));
        assert_eq!(r.rollout.run_id, main_runs[1]);
        assert_eq!(r.rollout.problem_key, "demo-001");
        let mean = trace
            .entropies()
            .unwrap()
            .iter()
            .map(|&h| h as f64)
            .sum::<f64>()
            / trace.len() as f64;
        assert!(close(r.rollout.row.mean_entropy.unwrap(), mean));
        assert!(trace.top_alternatives().is_some() && trace.hidden_norms().is_some());
        let (plain_id, _) = rollouts.iter().find(|(_, t)| !*t).unwrap();
        let plain = db.store.rollout_trace(*plain_id).await.unwrap().unwrap();
        assert_eq!(
            (
                plain.trace,
                plain.trace_error,
                plain.rollout.row.mean_entropy
            ),
            (None, None, None)
        );
        assert!(db.store.rollout_trace(-5).await.unwrap().is_none());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn reset_replaces_trace_packs_and_a_failed_load_leaves_none_behind() {
    for db in TestDb::all().await {
        let config = small_demo();
        demo::load_demo(&db.store, &config).await.unwrap();
        let before = pack_files(db.dir());
        // Loading again without reset fails on unique names: its packs must go, the first stay.
        assert!(demo::load_demo(&db.store, &config).await.is_err());
        assert_eq!(pack_files(db.dir()), before, "{}", db.name);
        demo::reset_demo(&db.store, &config).await.unwrap();
        let after = pack_files(db.dir());
        assert_eq!(after.len(), before.len(), "{}", db.name);
        assert!(
            after.iter().all(|p| !before.contains(p)),
            "{}: old packs deleted: {before:?} {after:?}",
            db.name
        );
        let keys: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT trace_key FROM rollouts WHERE trace_key IS NOT NULL",
        )
        .fetch_all(db.store.pool())
        .await
        .unwrap();
        assert_eq!(keys.len(), after.len());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_damaged_pack_is_reported_not_fatal() {
    let db = TestDb::sqlite().await;
    let config = DemoConfig {
        checkpoint_samples: 0,
        ..small_demo()
    };
    demo::load_demo(&db.store, &config).await.unwrap();
    let (id, key): (i64, String) = sqlx::query_as(
        "SELECT id, trace_key FROM rollouts WHERE trace_key IS NOT NULL ORDER BY trace_offset DESC LIMIT 1",
    )
    .fetch_one(db.store.pool())
    .await
    .unwrap();
    let path = db.dir().join("blobs").join(&key);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let r = db.store.rollout_trace(id).await.unwrap().unwrap();
    assert!(
        r.trace.is_none()
            && r.trace_error
                .as_deref()
                .unwrap()
                .contains("could not be read"),
        "{:?}",
        r.trace_error
    );
    std::fs::write(&path, vec![b'x'; bytes.len()]).unwrap();
    let r = db.store.rollout_trace(id).await.unwrap().unwrap();
    assert!(
        r.trace_error.as_deref().unwrap().contains("corrupt"),
        "{:?}",
        r.trace_error
    );
    std::fs::remove_file(&path).unwrap();
    let r = db.store.rollout_trace(id).await.unwrap().unwrap();
    assert!(
        r.trace_error.as_deref().unwrap().contains("missing"),
        "{:?}",
        r.trace_error
    );
    db.cleanup().await;
}

/// Imports one fixture; returns the ids of the runs it made.
async fn import_fixture(store: &Store, path: &str, model: &str) -> Vec<i64> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/formats")
        .join(path);
    let input = InputFile::new(&file, path.rsplit('/').next().unwrap());
    let progress = Arc::new(ImportProgress::for_files(std::slice::from_ref(&input)));
    let params = ImportParams {
        model: Some(model.to_owned()),
        experiment: Some(format!("tok-{model}")),
        skip_invalid: Some(true),
        ..ImportParams::default()
    };
    let report = run_import(
        store,
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
    assert_eq!(report.status, ImportStatus::Completed, "{path}: {report:?}");
    report.runs.iter().map(|r| r.id).collect()
}

/// Imports of fixtures with logprobs store token statistics equal to a recomputation from the
/// stored rows and traces; a format without logprobs stores none.
#[tokio::test]
async fn imports_with_logprobs_store_token_stats() {
    for db in TestDb::all().await {
        for (path, model) in [
            ("openai/completions.jsonl", "oa-completions"),
            ("openai/chat.jsonl", "oa-chat"),
            ("inspect/log.json", "inspect-json"),
        ] {
            let runs = import_fixture(&db.store, path, model).await;
            let (mut traced_runs, mut truncated) = (0, 0);
            for (run, stats) in db.store.run_token_stats(&runs).await.unwrap() {
                let (traced, finite_ppl): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(trace_key), COUNT(perplexity) FROM rollouts WHERE run_id = $1",
                )
                .bind(run)
                .fetch_one(db.store.pool())
                .await
                .unwrap();
                if traced == 0 {
                    continue;
                }
                traced_runs += 1;
                let stored = stats
                    .as_ref()
                    .unwrap_or_else(|| panic!("{} {path}: token stats", db.name));
                assert_eq!(stored.traced_rollouts as i64, traced, "{path}");
                // The fixtures give top-K log-probabilities (or none), not exact entropies.
                let source = stored.entropy_source;
                assert_eq!(source.exact, 0, "{path}");
                assert_eq!(
                    source.truncated + source.missing,
                    stored.traced_rollouts,
                    "{path}"
                );
                truncated += source.truncated;
                if source.truncated > 0 {
                    assert!(source.max_top_k >= 2, "{path}: {source:?}");
                }
                let h = &stored.perplexity.histogram;
                let in_histogram = h.correct.iter().chain(&h.incorrect).sum::<u64>()
                    + h.above_correct
                    + h.above_incorrect;
                assert_eq!(
                    in_histogram as i64, finite_ppl,
                    "{path}: every stored (finite) PPL is binned"
                );
                // Correct vs incorrect mean entropy equals SQL over the stored per-rollout means.
                for correct in [1i64, 0] {
                    let (count, avg): (i64, Option<f64>) = sqlx::query_as(
                        "SELECT COUNT(mean_entropy), AVG(mean_entropy) FROM rollouts WHERE run_id = $1 AND correct = $2",
                    )
                    .bind(run)
                    .bind(correct)
                    .fetch_one(db.store.pool())
                    .await
                    .unwrap();
                    let acc = if correct == 1 {
                        stored.mean_entropy.correct
                    } else {
                        stored.mean_entropy.incorrect
                    };
                    assert_eq!(acc.count as i64, count, "{path}");
                    if let Some(avg) = avg {
                        assert!(
                            close(acc.mean().unwrap(), avg),
                            "{path}: {:?} vs {avg}",
                            acc.mean()
                        );
                    }
                }
                let fresh = recompute(&db.store, run).await.unwrap();
                assert_same_stats(stored, &fresh, &format!("{} {path}", db.name));
            }
            assert!(
                traced_runs > 0,
                "{path}: the fixture's logprobs become traces"
            );
            assert!(
                truncated > 0,
                "{path}: entropies from top-K log-probabilities"
            );
        }
        let runs = import_fixture(
            &db.store,
            "lm-eval/samples_aime24_2025-06-01T12-00-00.000000.jsonl",
            "no-logprobs",
        )
        .await;
        let stats = db.store.run_token_stats(&runs).await.unwrap();
        assert!(
            !stats.is_empty() && stats.iter().all(|(_, s)| s.is_none()),
            "{}: {stats:?}",
            db.name
        );
        db.cleanup().await;
    }
}
