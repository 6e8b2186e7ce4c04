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
        (
            report.verdicts.graded_by_file,
            report.verdicts.graded_by_caplens
        ),
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
        assert_eq!(
            first.status,
            ImportStatus::Completed,
            "{}: {:?}",
            db.name,
            first.message
        );
        let run = first.runs[0].id;
        assert_eq!(
            first.runs[0]
                .source
                .run_identity
                .as_deref()
                .map(|s| s.starts_with("inspect:")),
            Some(true)
        );
        let second = import(
            &db,
            &inspect_log("arith_match_epochs3.json"),
            "arith_match_epochs3.json",
            params("twice", false),
        )
        .await;
        assert_eq!(
            second.status,
            ImportStatus::Duplicate,
            "{}: {:?}",
            db.name,
            second.message
        );
        let message = second.message.unwrap_or_default();
        assert!(
            message.starts_with(&format!(
                "already imported as run {run} (\"arith_match_epochs3.eval\")"
            )),
            "{message}"
        );
        assert!(message.contains("inspect_ai"), "{message}");
        let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert_eq!(runs, 1, "{}: the duplicate adds no run", db.name);
        db.cleanup().await;
    }
}

fn real(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/real")
        .join(path)
}

/// The one file in `dir` whose name starts with `prefix`.
fn file_in(dir: &str, prefix: &str) -> PathBuf {
    std::fs::read_dir(real(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* in {dir}"))
}

/// The answer gsm8k's strict-match regex `#### (\-?[0-9\.\,]+)` takes from a text.
fn strict_match(text: &str) -> Option<String> {
    let after = &text[text.find("#### ")? + 5..];
    let n: String = after
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | ','))
        .collect();
    (!n.is_empty()).then_some(n)
}

/// lm-eval logs written by lm-eval 0.4.13 against `caplens engine serve`: each imports with
/// lm-eval's own verdicts kept (its exact_match grades the first repeat of each document, after
/// the `take_first` filter), whose mean is exactly the number lm-eval stored in its results
/// file; every repeat is also graded by caplens against the reference *answer* (gsm8k's target is
/// a worked solution ending in `#### N`), so a response that strict-match finds right is right
/// for caplens too. The log-likelihood task, which has no generations, is refused plainly.
#[tokio::test]
async fn lm_eval_logs_import_with_the_scores_lm_eval_stored() {
    for db in TestDb::all().await {
        for (task, filter, docs, repeats) in [
            ("caplens_tiny_gsm", "strict-match", 4u64, 4u64),
            ("caplens_tiny_boxed", "boxed", 3, 2),
        ] {
            let dir = format!("lm-eval/{task}");
            let samples = file_in(&dir, "samples_");
            let results: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(file_in(&dir, "results_")).unwrap())
                    .unwrap();
            let stored = results["results"][task][format!("exact_match,{filter}")]
                .as_f64()
                .unwrap();
            let name = samples.file_name().unwrap().to_string_lossy().into_owned();
            let report = import(
                &db,
                &samples,
                &name,
                ImportParams {
                    model: Some("smol".into()),
                    ..params(task, false)
                },
            )
            .await;
            assert_eq!(
                report.status,
                ImportStatus::Completed,
                "{} {task}: {:?}",
                db.name,
                report.message
            );
            assert_eq!(report.files[0].format.as_deref(), Some("lm-eval"));
            let run = &report.runs[0];
            assert_eq!(
                (run.problems, run.rollouts),
                (docs, docs * repeats),
                "{task}"
            );
            assert_eq!(
                report.verdicts.graded_by_file, docs,
                "{task}: one lm-eval verdict per document"
            );
            assert_eq!(report.verdicts.graded_by_caplens, docs * repeats, "{task}");
            let (mean_file,): (f64,) = sqlx::query_as(
                "SELECT AVG(CAST(file_correct AS DOUBLE PRECISION)) FROM rollouts
                 WHERE run_id = $1 AND file_correct IS NOT NULL",
            )
            .bind(run.id)
            .fetch_one(db.store.pool())
            .await
            .unwrap();
            assert!(
                (mean_file - stored).abs() < 1e-9,
                "{task}: lm-eval stored {stored}, caplens kept {mean_file}"
            );
            if task == "caplens_tiny_gsm" {
                // Every rollout strict-match finds right is right for caplens' verifier.
                for line in std::fs::read_to_string(&samples).unwrap().lines() {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    if v["filter"] != filter {
                        continue;
                    }
                    let target = strict_match(v["target"].as_str().unwrap()).unwrap();
                    for (i, resp) in v["resps"][0].as_array().unwrap().iter().enumerate() {
                        if strict_match(resp.as_str().unwrap()).as_deref() == Some(target.as_str())
                        {
                            let (verdict,): (Option<i64>,) = sqlx::query_as(
                                "SELECT ro.caplens_verdict FROM rollouts ro JOIN problems p ON p.id = ro.problem_id
                                 WHERE ro.run_id = $1 AND p.problem_key = $2 AND ro.sample_index = $3",
                            )
                            .bind(run.id)
                            .bind(v["doc_id"].to_string())
                            .bind(i as i64)
                            .fetch_one(db.store.pool())
                            .await
                            .unwrap();
                            assert_eq!(verdict, Some(1), "doc {} repeat {i}: {resp}", v["doc_id"]);
                        }
                    }
                }
            }
        }
        let mc = file_in("lm-eval/caplens_tiny_mc", "samples_");
        let name = mc.file_name().unwrap().to_string_lossy().into_owned();
        let report = import(
            &db,
            &mc,
            &name,
            ImportParams {
                model: Some("smol".into()),
                ..params("mc", false)
            },
        )
        .await;
        assert_eq!(report.status, ImportStatus::Failed, "{report:?}");
        let message = report.message.unwrap_or_default();
        assert!(
            message.starts_with(&format!("{name}:1: field \"resps\"")),
            "{message}"
        );
        db.cleanup().await;
    }
}

/// The Inspect log written against `caplens engine serve` (`openai-api/local/smol`, logprobs on):
/// `.eval` and `.json` import with Inspect's accuracy and with token traces from its logprobs.
#[tokio::test]
async fn inspect_logs_from_the_engine_import_with_inspects_accuracy_and_tokens() {
    for ext in ["eval", "json"] {
        // One database each: the second would be the same Inspect run, a duplicate.
        let db = TestDb::sqlite().await;
        let path = std::fs::read_dir(real("inspect-engine"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .unwrap();
        let report = import(
            &db,
            &path,
            "upload",
            params(&format!("engine-{ext}"), false),
        )
        .await;
        assert_eq!(
            report.status,
            ImportStatus::Completed,
            "{ext}: {:?}",
            report.message
        );
        let run = &report.runs[0];
        assert_eq!((run.problems, run.rollouts), (3, 6), "{ext}");
        let expected = inspect_accuracy(&path);
        assert!(
            (run.pass_at_1.unwrap() - expected).abs() < 1e-9,
            "{ext}: {run:?} vs {expected}"
        );
        let (traced,): (i64,) =
            sqlx::query_as("SELECT COUNT(trace_key) FROM rollouts WHERE run_id = $1")
                .bind(run.id)
                .fetch_one(db.store.pool())
                .await
                .unwrap();
        assert_eq!(traced, 6, "{ext}: every rollout keeps its token logprobs");
        db.cleanup().await;
    }
}
