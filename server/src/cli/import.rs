//! `caplens import` (into the configured database) and `caplens push` (to a remote caplens over
//! the REST API). Both upload commands show a progress bar of
//! bytes and rows on a terminal, print the import's result, and exit 0 when the rollouts are
//! stored (or were already: a duplicate), 1 otherwise.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::ingest::pipeline::{
    new_import_id, run_import, ImportFile, ImportParams, ImportProgress, ImportReport, ImportStatus,
};
use crate::ingest::{display_name, InputFile};
use crate::storage::Store;

/// What the uploader says about the files: the import parameters (one definition,
/// `ImportParams`, with the same names as the REST query parameters) and how to print the
/// report.
#[derive(Debug, Clone, Default, Args)]
pub struct ImportMetaArgs {
    #[command(flatten)]
    pub params: ImportParams,
    /// Print the import report as JSON (what GET /api/v1/imports/{id} returns).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Files to import (plain, .gz or .zst); several files make one import.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub meta: ImportMetaArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Files to upload (plain, .gz or .zst); several files make one import.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Base URL of the caplens server, e.g. https://caplens.example.org
    #[arg(long, env = "CAPLENS_URL")]
    pub url: String,
    /// API token (create one with `caplens token create` or on the Tokens page).
    #[arg(long, env = "CAPLENS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Return once uploaded, without waiting for the import to finish.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub meta: ImportMetaArgs,
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bytes:>10}/{total_bytes:<10} [{bar:30}] {bytes_per_sec:>12}  {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Prints a report for people (or as JSON) and gives the exit code.
pub fn print_report(report: &ImportReport, json: bool, out: &mut dyn Write) -> i32 {
    if json {
        let _ = serde_json::to_writer_pretty(&mut *out, report);
        let _ = writeln!(out);
    } else {
        let _ = writeln!(
            out,
            "import {}: {} — {} rows read, {} stored, {} rejected",
            report.id,
            report.status.as_str(),
            report.rows_read,
            report.rows_stored,
            report.rows_rejected
        );
        for run in &report.runs {
            let pct = |p: Option<f64>| p.map_or("-".to_string(), |p| format!("{:.2}%", p * 100.0));
            let both =
                run.verdicts.graded_by_file > 0 && run.pass_at_1_file != run.pass_at_1_caplens;
            let _ = writeln!(
                out,
                "  run {}: model {} on {}: {} problems, {} rollouts, pass@1 {}{}",
                run.id,
                run.model,
                if run.dataset.is_empty() {
                    "(no dataset)"
                } else {
                    &run.dataset
                },
                run.problems,
                run.rollouts,
                pct(run.pass_at_1),
                if both {
                    format!(
                        " ({} verdicts; the file's {}, caplens' {})",
                        run.default_verdicts.as_str(),
                        pct(run.pass_at_1_file),
                        pct(run.pass_at_1_caplens)
                    )
                } else {
                    String::new()
                }
            );
            if let Some(status) = &run.source.status {
                let _ = writeln!(
                    out,
                    "    note: the {} run in this file ended as {status:?}; its rollouts are what it got to",
                    run.source.tool.as_deref().unwrap_or("tool's")
                );
            }
        }
        if !report.runs.is_empty() {
            let _ = writeln!(
                out,
                "  graded: {}",
                caplens_app::model::verdict_tally_text(&report.verdicts)
            );
        }
        for w in &report.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
        if let Some(e) = &report.experiment {
            if report.status == ImportStatus::Completed {
                let _ = writeln!(out, "  experiment: {e}");
            }
        }
        // The row that stopped a failed import is both among the rejected rows and the
        // report's message: print it once, as the message.
        for e in report
            .errors
            .iter()
            .filter(|e| Some(e.as_str()) != report.message.as_deref())
        {
            let _ = writeln!(out, "  rejected: {e}");
        }
        if let Some(m) = &report.message {
            let _ = writeln!(out, "  {m}");
        }
        if report.status == ImportStatus::Failed
            && report.rows_rejected > 0
            && !report.params.skip_invalid.unwrap_or(false)
            && !report
                .message
                .as_deref()
                .unwrap_or("")
                .contains("skip-invalid")
        {
            let _ = writeln!(
                out,
                "  nothing was stored; to import the valid rows and skip the bad ones, run again with --skip-invalid (skip_invalid=true)"
            );
        }
    }
    match report.status {
        ImportStatus::Completed | ImportStatus::Duplicate => 0,
        _ => 1,
    }
}

/// `caplens import FILE...`
pub async fn import(store: &Store, args: &ImportArgs) -> i32 {
    if let Err(e) = args.meta.params.clone().validate() {
        eprintln!("caplens import: {e}");
        return 2;
    }
    let files: Vec<ImportFile> = args
        .files
        .iter()
        .map(|p| ImportFile {
            input: InputFile::new(p, p.display().to_string()),
            sha256: None,
        })
        .collect();
    for f in &files {
        if !f.input.path.is_file() {
            eprintln!("caplens import: {}: no such file", f.input.name);
            return 2;
        }
    }
    let inputs: Vec<InputFile> = files.iter().map(|f| f.input.clone()).collect();
    let progress = Arc::new(ImportProgress::for_files(&inputs));
    let bar = progress_bar(progress.bytes_total);
    let ticker = {
        let progress = progress.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(progress.bytes_read());
                bar.set_message(format!(
                    "{} rows, {} stored",
                    progress.rows_read.load(Ordering::Relaxed),
                    progress.rows_stored.load(Ordering::Relaxed)
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let report = run_import(
        store,
        &new_import_id(),
        files,
        args.meta.params.clone(),
        progress,
        None,
    )
    .await;
    ticker.abort();
    bar.finish_and_clear();
    print_report(&report, args.meta.json, &mut std::io::stdout().lock())
}

/// A reader that reports how much of it was read.
struct Counted<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// `caplens push FILE... --url U --token T`: one multipart request with every file, then (unless
/// --no-wait) polls the import until it ends.
pub fn push(args: &PushArgs) -> i32 {
    if let Err(e) = args.meta.params.clone().validate() {
        eprintln!("caplens push: {e}");
        return 2;
    }
    let base = args.url.trim_end_matches('/');
    let boundary = format!("caplens-{}", uuid::Uuid::new_v4().simple());
    // The multipart body is streamed: part headers, then each file's bytes, then the close.
    let mut total = 0u64;
    let mut parts: Vec<Box<dyn Read + Send>> = Vec::new();
    for path in &args.files {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("caplens push: {}: {e}", path.display());
                return 2;
            }
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let name = display_name(path).replace(['"', '\r', '\n'], "_");
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        total += head.len() as u64 + len + 2;
        parts.push(Box::new(std::io::Cursor::new(head.into_bytes())));
        parts.push(Box::new(file));
        parts.push(Box::new(std::io::Cursor::new(b"\r\n".to_vec())));
    }
    let tail = format!("--{boundary}--\r\n");
    total += tail.len() as u64;
    parts.push(Box::new(std::io::Cursor::new(tail.into_bytes())));
    let body = parts
        .into_iter()
        .reduce(|a, b| Box::new(a.chain(b)))
        .expect("at least the closing boundary");
    let bar = progress_bar(total);
    bar.set_message("uploading");
    let mut reader = Counted {
        inner: body,
        bar: bar.clone(),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let query = args.meta.params.to_query();
    let url = format!("{base}/api/v1/imports?{query}");
    let response = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {}", args.token))
        .header(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .header("Content-Length", &total.to_string())
        .send(ureq::SendBody::from_reader(&mut reader));
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            bar.finish_and_clear();
            eprintln!("caplens push: cannot reach {base}: {e}");
            return 1;
        }
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    if status != 202 {
        bar.finish_and_clear();
        eprintln!(
            "caplens push: the server answered {status}: {}",
            api_message(&text)
        );
        return 1;
    }
    let mut report: ImportReport = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            bar.finish_and_clear();
            eprintln!("caplens push: unexpected answer from the server ({e}): {text}");
            return 1;
        }
    };
    if args.no_wait {
        bar.finish_and_clear();
        println!(
            "uploaded as import {} ({}); follow it at {base}/api/v1/imports/{}",
            report.id,
            report.status.as_str(),
            report.id
        );
        return 0;
    }
    bar.set_length(report.bytes_total.max(1));
    bar.set_position(0);
    while !report.status.is_finished() {
        std::thread::sleep(Duration::from_millis(300));
        let url = format!("{base}/api/v1/imports/{}", report.id);
        match agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", args.token))
            .call()
        {
            Ok(mut r) if r.status().as_u16() == 200 => {
                let text = r.body_mut().read_to_string().unwrap_or_default();
                if let Ok(next) = serde_json::from_str::<ImportReport>(&text) {
                    report = next;
                }
            }
            Ok(r) => {
                bar.finish_and_clear();
                eprintln!(
                    "caplens push: the server answered {} while following the import",
                    r.status()
                );
                return 1;
            }
            Err(e) => {
                bar.finish_and_clear();
                eprintln!("caplens push: lost the server while following the import: {e}");
                return 1;
            }
        }
        bar.set_position(report.bytes_read);
        bar.set_message(format!(
            "{}: {} rows, {} stored",
            report.status.as_str(),
            report.rows_read,
            report.rows_stored
        ));
    }
    bar.finish_and_clear();
    print_report(&report, args.meta.json, &mut std::io::stdout().lock())
}

/// The message of an API error body, or the body itself.
fn api_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(500).collect())
}
