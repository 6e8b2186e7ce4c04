//! Logs written by the real tools (tests/fixtures/real/, each directory's README says how) import
//! through the one pipeline on SQLite and PostgreSQL with the numbers the tools themselves report,
//! and the ones caplens cannot import fail with a plain message.

mod common;

use caplens_server::{
    cli::import::print_report,
    ingest::pipeline::{new_import_id, run_import, ImportFile, ImportParams, ImportProgress},
    ingest::pipeline::{ImportReport, ImportStatus},
    ingest::InputFile,
};
use common::TestDb;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn inspect_log(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/real/inspect")
        .join(name)
}

/// Imports one file (named `name`, format detected) as the CLI does.
async fn import(db: &TestDb, path: &Path, name: &str, params: ImportParams) -> ImportReport {
    let input = InputFile::new(path, name);
    let progress = Arc::new(ImportProgress::for_files(std::slice::from_ref(&input)));
    run_import(
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
    .await
}

fn params(experiment: &str, skip_invalid: bool) -> ImportParams {
    ImportParams {
        experiment: Some(experiment.into()),
        skip_invalid: skip_invalid.then_some(true),
        ..ImportParams::default()
    }
}

/// `results.scores[0].metrics.accuracy.value` as Inspect wrote it in the log (`header.json` of a
/// `.eval`, the document of a `.json`). Python's `NaN` in other metrics is not JSON: it is made
/// `null` here, independently of caplens's reader.
fn inspect_accuracy(path: &Path) -> f64 {
    let text = if path.extension().is_some_and(|e| e == "eval") {
        let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
        let mut text = String::new();
        archive
            .by_name("header.json")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    } else {
        std::fs::read_to_string(path).unwrap()
    };
    let log: serde_json::Value = serde_json::from_str(&text.replace("NaN", "null")).unwrap();
    log["results"]["scores"][0]["metrics"]["accuracy"]["value"]
        .as_f64()
        .unwrap()
}

/// Each real Inspect log imports as one run whose pass@1 is the accuracy Inspect computed; the
/// `.eval` and its `.json` conversion give the same run.
#[tokio::test]
async fn inspect_logs_import_with_the_accuracy_inspect_reports() {
    let cases: &[(&str, bool, u64, u64)] = &[
        // (log, skip_invalid, problems, rollouts)
        ("arith_match_epochs3.eval", false, 4, 12),
        ("arith_match_epochs3.json", false, 4, 12),
        ("arith_nan_metric.eval", false, 4, 4),
        ("arith_nan_metric.json", false, 4, 4),
        ("arith_sample_error.eval", true, 3, 3),
        ("arith_cancelled.eval", false, 2, 2),
        ("arith_cancelled.json", false, 2, 2),
    ];
    let mut by_run = std::collections::HashMap::<(String, &str), (u64, u64, Option<f64>)>::new();
    for (i, &(name, skip_invalid, problems, rollouts)) in cases.iter().enumerate() {
        // A fresh database per log: the .eval and the .json of one run are the same run, which
        // the pipeline may recognise as a duplicate.
        for db in TestDb::all().await {
            // Uploaded under a neutral name: the content alone says it is an Inspect log.
            let report = import(
                &db,
                &inspect_log(name),
                "upload",
                params(&format!("real-{i}"), skip_invalid),
            )
            .await;
            assert_eq!(
                report.status,
                ImportStatus::Completed,
                "{} {name}: {:?} {:?}",
                db.name,
                report.message,
                report.errors
            );
            assert_eq!(report.files[0].format.as_deref(), Some("inspect"), "{name}");
            assert_eq!(report.runs.len(), 1, "{name}");
            let run = &report.runs[0];
            assert_eq!((run.problems, run.rollouts), (problems, rollouts), "{name}");
            let expected = inspect_accuracy(&inspect_log(name));
            let got = run.pass_at_1.unwrap();
            assert!(
                (got - expected).abs() < 1e-9,
                "{} {name}: pass@1 {got}, Inspect's accuracy {expected}",
                db.name
            );
            let stem = name.rsplit_once('.').unwrap().0.to_string();
            let seen = (run.problems, run.rollouts, run.pass_at_1);
            if let Some(other) = by_run.insert((stem, db.name), seen) {
                assert_eq!(
                    other, seen,
                    "{name}: the .eval and the .json give the same run"
                );
            }
            db.cleanup().await;
        }
    }
}

/// A log without a scorer imports ungraded and is graded by caplens's verifier against the
/// targets (`Yes`, `Yes`, `No`). The answers are the bare word `Yes`: no box, no "the answer is",
/// no number, so the short response itself is the answer (`whole_response`), and 2 of 3 are
/// right. The report says caplens graded all three.
#[tokio::test]
async fn an_inspect_log_without_scorer_is_graded_by_caplens() {
    let db = TestDb::sqlite().await;
    let report = import(
        &db,
        &inspect_log("yesno_noscorer.eval"),
        "yesno_noscorer.eval",
        params("yesno", false),
    )
    .await;
    assert_eq!(
        report.status,
        ImportStatus::Completed,
        "{:?}",
        report.message
    );
    let run = &report.runs[0];
    assert_eq!(
        (
            run.model.as_str(),
            run.dataset.as_str(),
            run.problems,
            run.rollouts
        ),
        ("mockllm/model", "yesno", 3, 3)
    );
    assert_eq!(run.pass_at_1, Some(2.0 / 3.0), "{run:?}");
    assert_eq!(
        (report.verdicts.graded_by_file, report.verdicts.graded_by_caplens),
        (0, 3),
        "{:?}",
        report.verdicts
    );
    db.cleanup().await;
}

/// What cannot be imported says why, once, in a few words.
#[tokio::test]
async fn inspect_logs_that_cannot_be_imported_say_why() {
    let db = TestDb::sqlite().await;
    // A run interrupted before any sample was logged.
    let name = "arith_cancelled_header_only.eval";
    let report = import(&db, &inspect_log(name), name, params("empty", false)).await;
    assert_eq!(report.status, ImportStatus::Failed);
    assert_eq!(
        report.message.as_deref(),
        Some(
            "arith_cancelled_header_only.eval: this Inspect log has no samples (status: cancelled)"
        )
    );

    // A failed sample (Inspect keeps a 4 KB traceback) stops the import; the message is its
    // first line, and the CLI prints it once.
    let name = "arith_sample_error.eval";
    let report = import(&db, &inspect_log(name), name, params("strict", false)).await;
    assert_eq!(report.status, ImportStatus::Failed);
    let message = report.message.clone().unwrap();
    assert_eq!(
        message,
        "arith_sample_error.eval:6: field \"error\": samples/3_epoch_1.json: the sample failed in Inspect (RuntimeError('tool backend unavailable: connection refused (127.0.0.1:9)…), so it has no rollout; --skip-invalid (skip_invalid=true) imports the other samples"
    );
    assert!(message.len() < 400, "{}", message.len());
    let mut out = Vec::new();
    assert_eq!(print_report(&report, false, &mut out), 1);
    let printed = String::from_utf8(out).unwrap();
    assert_eq!(
        printed.matches("the sample failed in Inspect").count(),
        1,
        "{printed}"
    );
    assert!(!printed.contains("Traceback"), "{printed}");
    db.cleanup().await;
}

/// One Inspect run uploaded as `.eval` and then as its `.json` conversion (different bytes, one
/// `eval_id`) is recognised as the same run: the second import is a duplicate that adds nothing
/// and names the first run.
#[tokio::test]
async fn one_inspect_run_as_eval_and_as_json_is_imported_once() {
    for db in TestDb::all().await {
        let first = import(
            &db,
            &inspect_log("arith_match_epochs3.eval"),
            "arith_match_epochs3.eval",
            params("twice", false),
        )
        .await;
        assert_eq!(first.status, ImportStatus::Completed, "{}: {:?}", db.name, first.message);
        let run = first.runs[0].id;
        assert_eq!(first.runs[0].source.run_identity.as_deref().map(|s| s.starts_with("inspect:")), Some(true));
        let second = import(
            &db,
            &inspect_log("arith_match_epochs3.json"),
            "arith_match_epochs3.json",
            params("twice", false),
        )
        .await;
        assert_eq!(second.status, ImportStatus::Duplicate, "{}: {:?}", db.name, second.message);
        let message = second.message.unwrap_or_default();
        assert!(
            message.starts_with(&format!("already imported as run {run} (\"arith_match_epochs3.eval\")")),
            "{message}"
        );
        assert!(message.contains("inspect_ai"), "{message}");
        let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
            .fetch_one(&db.store.pool)
            .await
            .unwrap();
        assert_eq!(runs, 1, "{}: the duplicate adds no run", db.name);
        db.cleanup().await;
    }
}
