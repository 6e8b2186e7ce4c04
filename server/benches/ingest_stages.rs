//! Where an import's CPU time goes, stage by stage, on a native JSON Lines file (the ingest
//! benchmark's, `tests/bench/ingest/generate.py`): reading the file from the page cache, JSON
//! parsing (`ingest::native::parse_line`, every field), answer extraction and grading against
//! the reference (the verifier), and the quality checks. The database's share is what
//! `tests/bench/ingest/run.sh` measures around this: the whole import minus these.
//!
//! Run: `cargo bench -p caplens-server --bench ingest_stages -- FILE` (run.sh does).

use std::io::BufRead;
use std::time::Instant;

use caplens_analysis::quality::QualityChecks;
use caplens_analysis::verifier::extract_answer;
use caplens_server::ingest::native::{parse_line, Needs};
use caplens_server::ingest::pipeline::caplens_verdict;

fn main() {
    let Some(path) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        eprintln!("usage: cargo bench -p caplens-server --bench ingest_stages -- FILE");
        return;
    };
    let start = Instant::now();
    let lines: Vec<String> =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).unwrap())
            .lines()
            .map(|l| l.unwrap())
            .collect();
    let read = start.elapsed().as_secs_f64();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mb = bytes as f64 / 1e6;
    let report = |stage: &str, secs: f64| {
        println!(
            "{stage:<44} {secs:7.2} s  {:8.1} MB/s  {:6.2} us/line (one core)",
            mb / secs,
            secs * 1e6 / lines.len() as f64
        );
    };
    println!("{} lines, {mb:.1} MB", lines.len());
    report("read lines (page cache)", read);

    let start = Instant::now();
    let mut responses = Vec::with_capacity(lines.len());
    for line in &lines {
        let l = parse_line(line, Needs::all()).expect("a valid line");
        responses.push((
            l.response.map(|r| r.into_owned()),
            l.reference.map(|r| r.into_owned()),
        ));
    }
    report("parse JSON (every field)", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let mut correct = 0usize;
    for (response, reference) in &responses {
        let answer = response
            .as_deref()
            .and_then(extract_answer)
            .map(|e| e.answer);
        if let Some(reference) = reference {
            correct += (caplens_verdict(answer.as_deref(), reference).code() == Some(1)) as usize;
        }
    }
    report(
        "extract the answer + grade (verifier)",
        start.elapsed().as_secs_f64(),
    );

    let start = Instant::now();
    let mut flagged = 0usize;
    for (response, _) in &responses {
        if let Some(r) = response {
            let c = QualityChecks::of(r);
            flagged +=
                (c.format_violation || c.language_mixing || c.redundant || c.no_digit) as usize;
        }
    }
    report("quality checks", start.elapsed().as_secs_f64());
    println!("({correct} graded correct, {flagged} flagged)");
}
