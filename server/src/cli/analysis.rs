//! Logic of `caplens passk | unsolvable | summary | rft-select` (issue 3), without clap.
//!
//! Each command reads native JSON Lines files (see `crate::ingest::native`), rolls each model's
//! lines up as an import rolls up a run ([`RunRollup`]), and hands them to the read model the
//! REST reports use ([`ModelTables`]), so a file and its import print the same document. It
//! writes either the exact `--json` shape of issue 3 or a readable table to `out`. Counts lines
//! and rollout lines of the same model and problem add up.
//! Problems are keyed by `dataset/problem_id` when a dataset is given, else by `problem_id`.
//! Each command returns the read statistics (skipped lines) for the caller to report on stderr.

use crate::ingest::native::{
    read_core_parallel, read_files, reader_threads, replace_string_field, CoreLine, InputError,
    InputPosition, LineInfo, NativeLine, Needs, Outcome, ReadStats,
};
use caplens_analysis::passk::ProblemCounts;
use caplens_analysis::quality::QualityChecks;
use caplens_analysis::rft::{rule_filter, select_indices, RftError, RftFeatures, RftStrategy};
use caplens_analysis::rollup::{ProblemRollup, RollupError, RunRollup};
use caplens_analysis::sets::{MissingReason, ProblemOutcome};
pub use caplens_analysis::tables::KSelection;
use caplens_analysis::tables::{ModelTables, ProblemRecord, UnsolvableDoc};
use caplens_analysis::tokens::{rollout_token_means, RolloutTokenMeans};
use caplens_analysis::verifier::final_answer;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// Failure of an analysis command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Rft(#[from] RftError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// FNV-1a-style hasher for the per-line problem lookups: SipHash's DoS resistance is not needed
/// for keys from the user's own files, and the lookup runs once per input line.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // Final avalanche so hashbrown's top bits are well mixed.
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^ (z >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = (h ^ u64::from_le_bytes(c.try_into().unwrap()))
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(29);
        }
        for &b in chunks.remainder() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// Models in order of first appearance, each with a dense problem index.
struct ModelIndex<T> {
    names: Vec<String>,
    by_name: HashMap<String, usize>,
    data: Vec<T>,
    last: Option<usize>,
}

impl<T: Default> ModelIndex<T> {
    fn new() -> Self {
        Self {
            names: Vec::new(),
            by_name: HashMap::new(),
            data: Vec::new(),
            last: None,
        }
    }

    /// The slot of a model, created on first sight. Consecutive lines of one model skip the hash.
    fn get(&mut self, model: &str) -> &mut T {
        if let Some(i) = self.last {
            if self.names[i] == model {
                return &mut self.data[i];
            }
        }
        let i = match self.by_name.get(model) {
            Some(&i) => i,
            None => {
                let i = self.names.len();
                self.names.push(model.to_owned());
                self.by_name.insert(model.to_owned(), i);
                self.data.push(T::default());
                i
            }
        };
        self.last = Some(i);
        &mut self.data[i]
    }
}

/// Problem ids of one model, dense, in order of first appearance.
#[derive(Default)]
struct ProblemIndex {
    ids: Vec<String>,
    by_id: FastMap<String, usize>,
}

impl ProblemIndex {
    fn index(&mut self, key: &str) -> (usize, bool) {
        if let Some(&i) = self.by_id.get(key) {
            return (i, false);
        }
        let i = self.ids.len();
        self.ids.push(key.to_owned());
        self.by_id.insert(key.to_owned(), i);
        (i, true)
    }
}

/// Writes the problem key of a line into `buf` without allocating, and returns it.
fn problem_key<'b>(line: &NativeLine<'_>, buf: &'b mut String) -> &'b str {
    buf.clear();
    if let Some(d) = &line.dataset {
        buf.push_str(d);
        buf.push('/');
    }
    buf.push_str(&line.problem_id);
    buf
}

// ---------------------------------------------------------------------------------------------
// passk

/// Whether `key` is the problem key (see [`problem_key`]) of these fields, without building it.
fn key_matches(key: &str, dataset: Option<&str>, problem_id: &str) -> bool {
    match dataset {
        None => key == problem_id,
        Some(d) => {
            key.len() == d.len() + 1 + problem_id.len()
                && key.as_bytes()[d.len()] == b'/'
                && key.starts_with(d)
                && key.ends_with(problem_id)
        }
    }
}

/// One model's counts as seen by one reader thread.
struct ShardModel {
    name: String,
    first: InputPosition,
    problems: ProblemIndex,
    counts: Vec<ProblemCounts>,
    /// Where each problem first appeared.
    first_seen: Vec<InputPosition>,
}

/// The passk counts of one reader thread; threads see blocks of lines out of order, so every
/// model and problem keeps its first position, and [`merge_count_shards`] restores the order.
#[derive(Default)]
struct CountsShard {
    models: Vec<ShardModel>,
    by_name: FastMap<String, usize>,
    /// Model and problem of the previous line: rollouts of a problem usually come together,
    /// and then the line needs no hashing at all.
    last: Option<(usize, usize)>,
    key: String,
}

impl CountsShard {
    fn add(&mut self, line: &CoreLine<'_>, at: InputPosition) {
        let (m, p) = match self.last {
            Some((m, p))
                if self.models[m].name == line.model
                    && key_matches(
                        &self.models[m].problems.ids[p],
                        line.dataset.as_deref(),
                        &line.problem_id,
                    ) =>
            {
                (m, p)
            }
            _ => {
                let m = match self.by_name.get(&*line.model) {
                    Some(&m) => m,
                    None => {
                        self.by_name
                            .insert(line.model.to_string(), self.models.len());
                        self.models.push(ShardModel {
                            name: line.model.to_string(),
                            first: at,
                            problems: ProblemIndex::default(),
                            counts: Vec::new(),
                            first_seen: Vec::new(),
                        });
                        self.models.len() - 1
                    }
                };
                self.key.clear();
                if let Some(d) = &line.dataset {
                    self.key.push_str(d);
                    self.key.push('/');
                }
                self.key.push_str(&line.problem_id);
                let model = &mut self.models[m];
                let (p, new) = model.problems.index(&self.key);
                if new {
                    model.counts.push(ProblemCounts { n: 0, c: 0 });
                    model.first_seen.push(at);
                }
                self.last = Some((m, p));
                (m, p)
            }
        };
        let entry = &mut self.models[m].counts[p];
        entry.n = entry.n.saturating_add(line.samples());
        entry.c = entry.c.saturating_add(line.correct_samples());
    }
}

/// Sums the shards into one table per model, models and problems in order of first appearance
/// in the input (by position, so the result does not depend on how lines fell to threads).
fn merge_count_shards(shards: Vec<CountsShard>) -> ModelTables {
    struct Merged {
        name: String,
        first: InputPosition,
        by_id: FastMap<String, usize>,
        problems: Vec<(InputPosition, String, ProblemCounts)>,
    }
    let mut merged: Vec<Merged> = Vec::new();
    let mut by_name: FastMap<String, usize> = FastMap::default();
    for shard in shards {
        for model in shard.models {
            let i = *by_name.entry(model.name.clone()).or_insert_with(|| {
                merged.push(Merged {
                    name: model.name.clone(),
                    first: model.first,
                    by_id: FastMap::default(),
                    problems: Vec::new(),
                });
                merged.len() - 1
            });
            let into = &mut merged[i];
            into.first = into.first.min(model.first);
            for ((id, counts), first) in model
                .problems
                .ids
                .into_iter()
                .zip(model.counts)
                .zip(model.first_seen)
            {
                match into.by_id.get(&id) {
                    Some(&p) => {
                        let (at, _, sum) = &mut into.problems[p];
                        *at = (*at).min(first);
                        sum.n = sum.n.saturating_add(counts.n);
                        sum.c = sum.c.saturating_add(counts.c);
                    }
                    None => {
                        into.by_id.insert(id.clone(), into.problems.len());
                        into.problems.push((first, id, counts));
                    }
                }
            }
        }
    }
    merged.sort_by_key(|m| m.first);
    let mut tables = ModelTables::new();
    for mut m in merged {
        m.problems.sort_by_key(|p| p.0);
        for (_, id, counts) in m.problems {
            let record = ProblemRecord {
                outcome: ProblemOutcome::from_counts(counts.n, counts.c),
                answers: Default::default(),
            };
            tables.add_problem(&m.name, &id, record);
        }
    }
    tables
}

/// One model's lines rolled up as an import rolls up a run: problems in order of first
/// appearance, keyed `dataset/problem_id`.
#[derive(Default)]
struct ModelRollup {
    problems: ProblemIndex,
    rollup: RunRollup,
}

impl ModelRollup {
    fn problem(&mut self, key: &str) -> &mut ProblemRollup {
        let (i, _) = self.problems.index(key);
        self.rollup.problem(i)
    }
}

/// The error of a line the rollup refuses, naming its file, line and field.
fn refused_line(at: &LineInfo<'_>, e: RollupError) -> InputError {
    InputError {
        file: at.file.display().to_string(),
        line: Some(at.line),
        field: Some("sample".into()),
        message: e.to_string(),
    }
}

impl ModelIndex<ModelRollup> {
    /// The read model of every model's rollup, in order of first appearance.
    fn into_tables(self) -> ModelTables {
        let mut tables = ModelTables::new();
        for (name, m) in self.names.iter().zip(&self.data) {
            tables.add_rollup(name, &m.problems.ids, &m.rollup);
        }
        tables
    }
}

/// `caplens passk FILE... [--k LIST] [--json]`.
pub fn passk(
    files: &[PathBuf],
    ks: KSelection,
    json: bool,
    skip_invalid: bool,
    out: &mut dyn Write,
) -> Result<ReadStats, CliError> {
    let mut shards: Vec<CountsShard> = (0..reader_threads())
        .map(|_| CountsShard::default())
        .collect();
    let stats = read_core_parallel(files, false, skip_invalid, &mut shards, CountsShard::add)?;
    let report = merge_count_shards(shards).passk(&ks);
    if json {
        serde_json::to_writer(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        if report.models.is_empty() {
            writeln!(out, "no rollouts in the input")?;
        }
        for m in &report.models {
            writeln!(
                out,
                "{}  ({} problems, {} rollouts)",
                m.model, m.problems, m.rollouts
            )?;
            writeln!(out, "  {:>8}  {:>9}  {:>8}", "k", "pass@k", "problems")?;
            for p in &m.points {
                writeln!(
                    out,
                    "  {:>8}  {:>8.2}%  {:>8}",
                    p.k,
                    p.pass_at_k * 100.0,
                    p.problems
                )?;
            }
            let shown: Vec<u64> = m.points.iter().map(|p| p.k).collect();
            let absent: Vec<String> =
                m.ks.iter()
                    .filter(|k| !shown.contains(k))
                    .map(|k| k.to_string())
                    .collect();
            if !absent.is_empty() {
                writeln!(
                    out,
                    "  (no problem has n >= k for k = {})",
                    absent.join(", ")
                )?;
            }
        }
    }
    Ok(stats)
}

// ---------------------------------------------------------------------------------------------
// unsolvable

fn reason_text(r: MissingReason) -> &'static str {
    match r {
        MissingReason::Absent => "absent",
        MissingReason::NoSamples => "no samples",
        MissingReason::TooFewSamples => "fewer than k samples",
        MissingReason::OrderUnknown => "counts only, order unknown",
    }
}

/// `caplens unsolvable FILE... [--k K] [--json]`.
///
/// `missing` lists, per model, the problems it lacks or cannot decide at k (fewer than k samples,
/// no samples, or count-only data with a correct sample and k < n); the table says which.
pub fn unsolvable(
    files: &[PathBuf],
    k: Option<u64>,
    json: bool,
    skip_invalid: bool,
    out: &mut dyn Write,
) -> Result<ReadStats, CliError> {
    if k == Some(0) {
        return Err(CliError::Usage("--k must be at least 1".into()));
    }
    let needs = Needs {
        sample: k.is_some(),
        grade: true,
        ..Needs::default()
    };
    let mut models: ModelIndex<ModelRollup> = ModelIndex::new();
    let mut key = String::new();
    // Lines the rollup refuses (a sample index given twice or too large), as an import does.
    let mut refused: Vec<InputError> = Vec::new();
    let mut stats = read_files::<CliError>(files, needs, skip_invalid, |line, at| {
        let problem = models.get(&line.model).problem(problem_key(line, &mut key));
        match line.outcome {
            Outcome::Counts { n, c } => problem.push_counts(n, c),
            // With k = None only counts matter: keep no per-rollout order.
            Outcome::Rollout { correct } if k.is_none() => problem.push_counts(1, correct as u64),
            Outcome::Rollout { correct } => {
                if let Err(e) = problem.push_rollout(line.sample, correct, None) {
                    let err = refused_line(at, e);
                    if !skip_invalid {
                        return Err(err.into());
                    }
                    refused.push(err);
                }
            }
            Outcome::Ungraded => unreachable!("Needs::grade grades every line"),
        }
        Ok(())
    })?;
    refused.into_iter().for_each(|err| stats.skip(err));
    let report = models.into_tables().unsolvable(k);
    if json {
        serde_json::to_writer(&mut *out, &UnsolvableDoc::of(&report))
            .map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(stats);
    }
    match k {
        Some(k) => writeln!(
            out,
            "unsolvable at k = {k} (no correct rollout among the first {k} by sample index)"
        )?,
        None => writeln!(out, "unsolvable (no correct rollout among all samples)")?,
    }
    for (mi, name) in report.models.iter().enumerate() {
        let list = &report.unsolvable[mi];
        writeln!(out, "\n{name}: {} unsolvable", list.len())?;
        for u in list {
            writeln!(
                out,
                "  {:<30} n={:<6} c={:<6} solve rate < {:.2}% (95%)",
                u.problem_id,
                u.n,
                u.c,
                u.solve_rate_upper_95 * 100.0
            )?;
        }
        for m in &report.missing[mi] {
            writeln!(
                out,
                "  missing: {} ({})",
                m.problem_id,
                reason_text(m.reason)
            )?;
        }
    }
    if !report.regions.is_empty() {
        writeln!(
            out,
            "\nregions (unsolvable by exactly these models, over problems every model has):"
        )?;
        for r in &report.regions {
            let who: Vec<&str> = r
                .models
                .iter()
                .map(|&i| report.models[i].as_str())
                .collect();
            writeln!(
                out,
                "  {:<40} {:>5}  {}",
                who.join(" & "),
                r.problems.len(),
                r.problems.join(", ")
            )?;
        }
    }
    Ok(stats)
}

// ---------------------------------------------------------------------------------------------
// summary

/// Per-rollout token means, by the rule shared with import ([`rollout_token_means`]).
fn token_means(line: &NativeLine<'_>) -> RolloutTokenMeans {
    rollout_token_means(
        line.token_entropies.as_deref(),
        line.top_logprobs
            .as_deref()
            .map(|rows| rows.iter().map(|row| row.iter().map(|(_, lp)| *lp))),
        line.token_logprobs.as_deref(),
    )
}

/// `caplens summary FILE... [--json]`.
pub fn summary(
    files: &[PathBuf],
    json: bool,
    skip_invalid: bool,
    out: &mut dyn Write,
) -> Result<ReadStats, CliError> {
    let needs = Needs {
        response: true,
        answer: true,
        token_logprobs: true,
        token_entropies: true,
        top_logprobs: true,
        grade: true,
        ..Needs::default()
    };
    let mut models: ModelIndex<ModelRollup> = ModelIndex::new();
    let mut key = String::new();
    let stats = read_files::<CliError>(files, needs, skip_invalid, |line, at| {
        let model = models.get(&line.model);
        let problem = model.problem(problem_key(line, &mut key));
        match line.outcome {
            Outcome::Counts { n, c } => problem.push_counts(n, c),
            Outcome::Rollout { correct } => {
                // The answer as an import takes it: given, else extracted from the response.
                let answer = final_answer(
                    line.answer.as_deref().map(Cow::Borrowed),
                    line.response.as_deref(),
                );
                // No sample index: the summary needs no order. Only a problem with more rollouts
                // than the largest sample index is refused.
                problem
                    .push_rollout(None, correct, answer.as_deref())
                    .map_err(|e| refused_line(at, e))?;
                let means = token_means(line);
                let response = line.response.as_deref();
                model.rollup.totals.push(
                    response.map(|r| (r, QualityChecks::of(r))),
                    means.mean_entropy,
                    means.mean_rbf,
                    means.ppl,
                );
            }
            Outcome::Ungraded => unreachable!("Needs::grade grades every line"),
        }
        Ok(())
    })?;
    let doc = models.into_tables().summary();
    if json {
        serde_json::to_writer(&mut *out, &doc).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(stats);
    }
    if doc.models.is_empty() {
        writeln!(out, "no rollouts in the input")?;
    }
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for row in &doc.models {
        let s = &row.summary;
        writeln!(out, "{}", row.model)?;
        writeln!(out, "  problems              {}", s.problems)?;
        writeln!(out, "  rollouts              {}", s.rollouts)?;
        writeln!(out, "  pass@1                {}", pct(s.pass_at_1))?;
        writeln!(out, "  answer diversity      {}", num(s.answer_diversity))?;
        writeln!(
            out,
            "  format violations     {}",
            pct(s.format_violation_rate)
        )?;
        writeln!(
            out,
            "  language mixing       {}",
            pct(s.language_mixing_rate)
        )?;
        writeln!(out, "  redundant (> 0.31)    {}", pct(s.redundancy_rate))?;
        writeln!(
            out,
            "  mean response chars   {}",
            num(s.mean_response_chars)
        )?;
        writeln!(out, "  mean entropy          {}", num(s.mean_entropy))?;
        writeln!(out, "  mean RBF              {}", num(s.mean_rbf))?;
        writeln!(out, "  mean PPL              {}", num(s.mean_ppl))?;
    }
    Ok(stats)
}

// ---------------------------------------------------------------------------------------------
// rft-select

/// `caplens rft-select FILE... --strategy S --count N [--seed S]`.
///
/// Two passes keep memory flat: the first computes a few bytes of features per rollout line
/// (counts lines carry no response and are not candidates), the second re-reads the input and
/// writes each selected line as it was (same keys in the same order, same spacing and number
/// spelling) except for the value of `response`, replaced by its text cut after the first
/// `\boxed{...}`.
pub fn rft_select(
    files: &[PathBuf],
    strategy: RftStrategy,
    count: usize,
    seed: u64,
    skip_invalid: bool,
    out: &mut dyn Write,
) -> Result<ReadStats, CliError> {
    let needs = Needs {
        response: true,
        token_entropies: true,
        top_logprobs: true,
        grade: true,
        ..Needs::default()
    };
    let mut features = Vec::new();
    let stats = read_files::<CliError>(files, needs, skip_invalid, |line, _| {
        if let Outcome::Rollout { correct } = line.outcome {
            let RolloutTokenMeans {
                mean_entropy,
                mean_rbf,
                ..
            } = token_means(line);
            features.push(RftFeatures {
                passes_filter: line.response.as_deref().and_then(rule_filter).is_some(),
                correct,
                mean_entropy,
                mean_rbf,
            });
        }
        Ok(())
    })?;
    let chosen = select_indices(&features, strategy, count, seed)?;
    let mut next = chosen.iter().peekable();
    let mut candidate = 0usize;
    read_files::<CliError>(
        files,
        Needs {
            response: true,
            grade: true,
            ..Needs::default()
        },
        skip_invalid,
        |line, info: &LineInfo| {
            if !matches!(line.outcome, Outcome::Rollout { .. }) {
                return Ok(());
            }
            if next.peek() == Some(&&candidate) {
                next.next();
                // Selected rollouts passed the rule filter, so they have a response to cut.
                let response = line.response.as_deref().unwrap_or_default();
                let cut = rule_filter(response).unwrap_or(response);
                if cut == response {
                    writeln!(out, "{}", info.raw.trim())?;
                } else {
                    let rewritten =
                        replace_string_field(info.raw, "response", cut).ok_or_else(|| {
                            CliError::Usage(format!(
                                "{}:{}: cannot locate field \"response\"",
                                info.file.display(),
                                info.line
                            ))
                        })?;
                    writeln!(out, "{}", rewritten.trim())?;
                }
            }
            candidate += 1;
            Ok(())
        },
    )?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (mean entropy, mean RBF, PPL) of one parsed line.
    fn means(line: &NativeLine<'_>) -> (Option<f64>, Option<f64>, Option<f64>) {
        let m = token_means(line);
        (m.mean_entropy, m.mean_rbf, m.ppl)
    }
    use serde_json::{json, Value};

    fn file(dir: &tempfile::TempDir, name: &str, lines: &[Value]) -> PathBuf {
        let p = dir.path().join(name);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn run(f: impl FnOnce(&mut Vec<u8>) -> Result<ReadStats, CliError>) -> Value {
        let mut out = Vec::new();
        f(&mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn r(model: &str, p: &str, correct: bool, sample: u64) -> Value {
        json!({"model": model, "problem_id": p, "correct": correct, "sample": sample})
    }

    #[test]
    fn passk_json_shape_order_and_mixing_counts() {
        let dir = tempfile::tempdir().unwrap();
        let a = file(
            &dir,
            "a.jsonl",
            &[
                r("zeta", "p1", true, 0),
                r("alpha", "p1", false, 0),
                r("zeta", "p1", false, 1),
            ],
        );
        let b = file(
            &dir,
            "b.jsonl",
            &[
                json!({"model":"zeta","problem_id":"p1","n":2,"c":0}),
                json!({"model":"zeta","problem_id":"p2","n":4,"c":4}),
            ],
        );
        let v = run(|o| passk(&[a, b], KSelection::Default, true, false, o));
        // zeta: p1 n=4 c=1, p2 n=4 c=4; alpha: p1 n=1 c=0. Default ks: 1, 2, 4.
        assert_eq!(
            v,
            json!({"models":[
                {"model":"zeta","problems":2,"rollouts":8,"points":[
                    {"k":1,"pass_at_k":0.625,"problems":2},
                    {"k":2,"pass_at_k":0.75,"problems":2},
                    {"k":4,"pass_at_k":1.0,"problems":2}]},
                {"model":"alpha","problems":1,"rollouts":1,"points":[{"k":1,"pass_at_k":0.0,"problems":1}]}
            ]})
        );
        let keys: Vec<&String> = v["models"][0].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn passk_counts_across_threads_keep_first_appearance_order() {
        // Many blocks of lines; models and problems first appear at scattered places, some only
        // late in the file, and lines of one problem are interleaved with others.
        let dir = tempfile::tempdir().unwrap();
        let mut rng = caplens_analysis::rng::SplitMix64::new(11);
        let mut text = String::new();
        // Independent reference: linear search, in line order.
        type ProblemSums = Vec<(String, u64, u64)>;
        let mut expected: Vec<(String, ProblemSums)> = Vec::new();
        for i in 0..30_000u64 {
            let model = if i > 25_000 && rng.bernoulli(0.01) {
                "late".to_string()
            } else {
                format!("m{}", rng.below(6))
            };
            let dataset = ["\"d1\"", "null", "\"d2\""][rng.below(3) as usize];
            let pid = rng.below(if i < 20_000 { 300 } else { 400 });
            let (line, n, c) = if rng.bernoulli(0.1) {
                let n = rng.below(5);
                let c = rng.below(n + 1);
                (format!("{{\"model\":\"{model}\",\"dataset\":{dataset},\"problem_id\":{pid},\"n\":{n},\"c\":{c}}}"), n, c)
            } else {
                let correct = rng.bernoulli(0.3);
                let pad = "x".repeat(rng.below(80) as usize);
                (format!("{{\"model\":\"{model}\",\"dataset\":{dataset},\"problem_id\":\"{pid}\",\"correct\":{correct},\"answer\":\"{pad}\"}}"), 1, correct as u64)
            };
            text.push_str(&line);
            text.push('\n');
            let key = if dataset == "null" {
                pid.to_string()
            } else {
                format!("{}/{pid}", dataset.trim_matches('"'))
            };
            let m = match expected.iter().position(|(name, _)| *name == model) {
                Some(m) => m,
                None => {
                    expected.push((model.clone(), Vec::new()));
                    expected.len() - 1
                }
            };
            let problems = &mut expected[m].1;
            match problems.iter_mut().find(|p| p.0 == key) {
                Some(p) => {
                    p.1 += n;
                    p.2 += c;
                }
                None => problems.push((key, n, c)),
            }
        }
        let path = dir.path().join("many.jsonl");
        std::fs::write(&path, &text).unwrap();
        assert!(text.len() > 1 << 21, "several blocks");
        for threads in [1, 2, 3, 7] {
            let mut shards: Vec<CountsShard> =
                (0..threads).map(|_| CountsShard::default()).collect();
            read_core_parallel(
                std::slice::from_ref(&path),
                false,
                false,
                &mut shards,
                CountsShard::add,
            )
            .unwrap();
            let tables = merge_count_shards(shards);
            assert_eq!(
                tables.models().collect::<Vec<_>>(),
                expected.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
                "{threads} threads"
            );
            for ((_, table), (_, problems)) in tables.problems().zip(&expected) {
                let got: Vec<ProblemCounts> = table
                    .iter()
                    .map(|(_, p)| ProblemCounts {
                        n: p.outcome.n,
                        c: p.outcome.c,
                    })
                    .collect();
                let want: Vec<ProblemCounts> = problems
                    .iter()
                    .map(|p| ProblemCounts { n: p.1, c: p.2 })
                    .collect();
                assert!(
                    got == want,
                    "problem order or counts differ with {threads} threads"
                );
            }
        }
        let v = run(|o| {
            passk(
                std::slice::from_ref(&path),
                KSelection::Default,
                true,
                false,
                o,
            )
        });
        assert_eq!(
            v["models"].as_array().unwrap().last().unwrap()["model"],
            "late"
        );
        assert_eq!(v["models"][0]["problems"], expected[0].1.len());
    }

    #[test]
    fn passk_k_selection_and_empty_input() {
        let dir = tempfile::tempdir().unwrap();
        let a = file(
            &dir,
            "a.jsonl",
            &[json!({"model":"m","problem_id":"p","n":3,"c":1})],
        );
        let v = run(|o| {
            passk(
                std::slice::from_ref(&a),
                "all".parse().unwrap(),
                true,
                false,
                o,
            )
        });
        assert_eq!(v["models"][0]["points"].as_array().unwrap().len(), 3);
        let v = run(|o| {
            passk(
                std::slice::from_ref(&a),
                "2,9".parse().unwrap(),
                true,
                false,
                o,
            )
        });
        assert_eq!(
            v["models"][0]["points"],
            json!([{"k":2,"pass_at_k":1.0 - 1.0/3.0,"problems":1}])
        );
        assert!("0,2".parse::<KSelection>().is_err());
        assert!("x".parse::<KSelection>().is_err());
        let empty = file(&dir, "e.jsonl", &[]);
        assert_eq!(
            run(|o| passk(&[empty], KSelection::Default, true, false, o)),
            json!({"models":[]})
        );
        let mut table = Vec::new();
        passk(&[a], "2,9".parse().unwrap(), false, false, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            table.contains("66.67%") && table.contains("k = 9"),
            "{table}"
        );
    }

    #[test]
    fn errors_and_skip_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rollouts.jsonl");
        std::fs::write(&p, "{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":true}\n{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":\"no\"}\n").unwrap();
        let err = passk(
            std::slice::from_ref(&p),
            KSelection::Default,
            true,
            false,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}:2: field \"correct\": expected a boolean", p.display())
        );
        let mut out = Vec::new();
        let stats = passk(&[p], KSelection::Default, true, true, &mut out).unwrap();
        assert_eq!(stats.skipped, 1);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["models"][0]["rollouts"], 1);
    }

    #[test]
    fn unsolvable_json_regions_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let lines = vec![
            r("B", "p1", false, 1),
            r("B", "p1", true, 0), // B solves p1 (at sample 0)
            r("A", "p1", false, 0),
            r("A", "p1", false, 1),
            r("A", "p2", false, 0),
            r("A", "p2", true, 1), // A solves p2 only at the 2nd sample
            r("B", "p2", false, 0),
            r("B", "p2", false, 1),
            r("A", "p3", false, 0),
            r("A", "p3", false, 1), // B lacks p3
            json!({"model":"B","problem_id":"p4","n":5,"c":2}),
            json!({"model":"A","problem_id":"p4","n":5,"c":0}),
        ];
        let f = file(&dir, "u.jsonl", &lines);
        let v = run(|o| unsolvable(std::slice::from_ref(&f), None, true, false, o));
        assert_eq!(
            v,
            json!({"k":null,"models":["B","A"],
                "unsolvable":{"B":["p2"],"A":["p1","p3","p4"]},
                "regions":[{"models":["B"],"problems":["p2"]},{"models":["A"],"problems":["p1","p4"]}],
                "missing":{"B":["p3"],"A":[]}})
        );
        let mut raw = Vec::new();
        unsolvable(std::slice::from_ref(&f), None, true, false, &mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.find("\"B\":[\"p2\"]").unwrap() < text.find("\"A\":[\"p1\"").unwrap(),
            "first-appearance order"
        );
        // k = 1: A fails p2 at its first sample; B's p4 is count-only with c > 0 and k < n.
        let v = run(|o| unsolvable(std::slice::from_ref(&f), Some(1), true, false, o));
        assert_eq!(
            v["unsolvable"],
            json!({"B":["p2"],"A":["p1","p2","p3","p4"]})
        );
        assert_eq!(v["missing"], json!({"B":["p3","p4"],"A":[]}));
        assert_eq!(
            v["regions"],
            json!([{"models":["B","A"],"problems":["p2"]},{"models":["A"],"problems":["p1"]}])
        );
        // k = 3 > n = 2 for the rollout problems
        let v = run(|o| unsolvable(std::slice::from_ref(&f), Some(3), true, false, o));
        assert_eq!(v["missing"]["A"], json!(["p1", "p2", "p3"]));
        assert!(matches!(
            unsolvable(
                std::slice::from_ref(&f),
                Some(0),
                true,
                false,
                &mut Vec::new()
            ),
            Err(CliError::Usage(_))
        ));
        let mut table = Vec::new();
        unsolvable(&[f], Some(1), false, false, &mut table).unwrap();
        assert!(String::from_utf8(table)
            .unwrap()
            .contains("counts only, order unknown"));
    }

    #[test]
    fn unsolvable_orders_by_sample_index_not_line_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(
            &dir,
            "o.jsonl",
            &[r("A", "p", false, 5), r("A", "p", true, 0)],
        );
        let v = run(|o| unsolvable(&[f], Some(1), true, false, o));
        assert_eq!(v["unsolvable"]["A"], json!([]));
        let g = file(
            &dir,
            "g.jsonl",
            &[
                json!({"model":"A","problem_id":"p","correct":false}),
                r("A", "p", true, 3),
            ],
        );
        let v = run(|o| unsolvable(&[g], Some(1), true, false, o));
        assert_eq!(
            v["unsolvable"]["A"],
            json!(["p"]),
            "without a sample on every line, line order decides"
        );
        // As in an import, a line without a sample takes the smallest free index, and a later
        // line giving that index is refused, naming its file, line and field.
        let h = file(
            &dir,
            "h.jsonl",
            &[
                json!({"model":"A","problem_id":"p","correct":false}),
                r("A", "p", true, 0),
            ],
        );
        let err = unsolvable(
            std::slice::from_ref(&h),
            Some(1),
            true,
            false,
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("h.jsonl") && err.contains(":2") && err.contains("sample"),
            "{err}"
        );
        let stats = unsolvable(&[h], Some(1), true, true, &mut Vec::new()).unwrap();
        assert_eq!(stats.skipped, 1, "--skip-invalid skips the refused line");
    }

    #[test]
    fn summary_json() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(
            &dir,
            "s.jsonl",
            &[
                json!({"model":"m","problem_id":"p","correct":true,"response":"so \\boxed{2}","token_logprobs":[-1.0,null,-1.0],"token_entropies":[0.5,1.5]}),
                json!({"model":"m","problem_id":"p","correct":false,"response":"答 \\boxed{3}"}),
                json!({"model":"m","problem_id":"q","n":2,"c":2}),
                json!({"model":"n","problem_id":"q","correct":false}),
            ],
        );
        let v = run(|o| summary(std::slice::from_ref(&f), true, false, o));
        let m = &v["models"][0];
        assert_eq!(m["model"], "m");
        assert_eq!(m["problems"], 2);
        assert_eq!(m["rollouts"], 4);
        assert_eq!(m["pass_at_1"], 0.75);
        // p has answers "2" and "3"; q (counts only) has none and is left out
        assert_eq!(m["answer_diversity"], 2.0);
        assert_eq!(m["format_violation_rate"], 0.0);
        assert_eq!(m["language_mixing_rate"], 0.5);
        assert_eq!(m["mean_entropy"], 1.0);
        assert_eq!(m["mean_rbf"], Value::Null);
        assert!((m["mean_ppl"].as_f64().unwrap() - std::f64::consts::E).abs() < 1e-12);
        let n = &v["models"][1];
        assert_eq!(
            (
                n["format_violation_rate"].clone(),
                n["mean_entropy"].clone(),
                n["answer_diversity"].clone()
            ),
            (Value::Null, Value::Null, Value::Null)
        );
        let expected_keys = [
            "model",
            "problems",
            "rollouts",
            "pass_at_1",
            "answer_diversity",
            "format_violation_rate",
            "language_mixing_rate",
            "redundancy_rate",
            "mean_response_chars",
            "mean_entropy",
            "mean_rbf",
            "mean_ppl",
        ];
        let mut keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut expected = expected_keys.to_vec();
        expected.sort();
        assert_eq!(keys, expected);
    }

    #[test]
    fn token_means_from_top_logprobs_entropies_and_logprobs() {
        let parse = |v: Value| -> NativeLine<'static> {
            let text: &'static str = Box::leak(v.to_string().into_boxed_str());
            crate::ingest::native::parse_line(text, Needs::all()).unwrap()
        };
        let (h1, h2) = (
            -(0.96f64 * 0.96f64.ln() + 0.04 * 0.04f64.ln()),
            -(0.5f64 * 0.5f64.ln() + 0.3 * 0.3f64.ln() + 0.2 * 0.2f64.ln()),
        );
        // Complete top lists: exact entropy; nucleus at 0.95 holds 1 and 3 tokens. The `null`
        // position has no candidates and is skipped.
        let top = json!([
            [["a", 0.96f64.ln()], ["b", 0.04f64.ln()]],
            [["a", 0.5f64.ln()], ["b", 0.3f64.ln()], ["c", 0.2f64.ln()]],
            null
        ]);
        let (entropy, rbf, ppl) = means(&parse(
            json!({"model":"m","problem_id":"p","correct":true,"top_logprobs":top}),
        ));
        assert!(
            (entropy.unwrap() - (h1 + h2) / 2.0).abs() < 1e-12,
            "{entropy:?}"
        );
        assert_eq!((rbf, ppl), (Some(2.0), None));
        // A truncated list: bucket estimate -0.9 ln 0.9 - 0.1 ln 0.1; RBF lower bound 1 + ceil(0.05 / 0.9).
        let (entropy, rbf, _) = means(&parse(
            json!({"model":"m","problem_id":"p","correct":true,"top_logprobs":[[["a", 0.9f64.ln()]]]}),
        ));
        assert!((entropy.unwrap() - (-(0.9f64 * 0.9f64.ln()) - 0.1 * 0.1f64.ln())).abs() < 1e-12);
        assert_eq!(rbf, Some(2.0));
        // token_entropies win for the entropy; the RBF still comes from the top lists.
        let (entropy, rbf, _) = means(&parse(
            json!({"model":"m","problem_id":"p","correct":true,"top_logprobs":top,"token_entropies":[2.0,null,4.0]}),
        ));
        assert_eq!((entropy, rbf), (Some(3.0), Some(2.0)));
        // Perplexity: exp(-mean) over the non-null log-probabilities; -9999 (vLLM's -inf) is a
        // probability of 0 and makes it infinite.
        let (_, _, ppl) = means(&parse(
            json!({"model":"m","problem_id":"p","correct":true,"token_logprobs":[null,-0.5,-1.5]}),
        ));
        assert!((ppl.unwrap() - 1f64.exp()).abs() < 1e-12);
        let (_, _, ppl) = means(&parse(
            json!({"model":"m","problem_id":"p","correct":true,"token_logprobs":[-0.5,-9999.0]}),
        ));
        assert_eq!(ppl, Some(f64::INFINITY));
        assert_eq!(
            means(&parse(
                json!({"model":"m","problem_id":"p","correct":true,"top_logprobs":[null],"token_logprobs":[]})
            )),
            (None, None, None)
        );
    }

    #[test]
    fn summary_reports_token_means_from_top_logprobs() {
        let dir = tempfile::tempdir().unwrap();
        let top = json!([[["a", 0.5f64.ln()], ["b", 0.5f64.ln()]]]);
        let f = file(
            &dir,
            "t.jsonl",
            &[
                json!({"model":"m","problem_id":"p","correct":true,"top_logprobs":top,"token_logprobs":[-1.0]}),
                json!({"model":"m","problem_id":"p","correct":false,"top_logprobs":[[["a", 0.99f64.ln()]]],"token_logprobs":[-9999.0]}),
            ],
        );
        let m = &run(|o| summary(&[f], true, false, o))["models"][0];
        let h2 = -(0.99f64 * 0.99f64.ln()) - 0.01 * 0.01f64.ln();
        assert!(
            (m["mean_entropy"].as_f64().unwrap() - (2f64.ln() + h2) / 2.0).abs() < 1e-12,
            "{m}"
        );
        // RBF: 2 (two halves) and 1 (0.99 >= 0.95)
        assert_eq!(m["mean_rbf"], 1.5);
        // the infinite PPL of the second rollout is left out of the mean
        assert!((m["mean_ppl"].as_f64().unwrap() - 1f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn rft_select_keeps_the_line_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.jsonl");
        let lines = [
            r#"{"problem_id":"q", "model":"m","correct":true,"z":1.50,"response":"x = 5 so \\boxed{5} and then \u00e9 more","a":[1, 2e0]}"#,
            r#"{"respons\u0065":"so \\boxed{7} tail","model":"m","problem_id":"r","correct":true}"#,
            r#"{"model":"m","problem_id":"s","correct":true,"response":"ends with \\boxed{8}","b":{"response":"inner"}}"#,
        ];
        std::fs::write(&p, lines.join("\n")).unwrap();
        let mut out = Vec::new();
        rft_select(&[p], RftStrategy::Rule, 10, 0, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = [
            r#"{"problem_id":"q", "model":"m","correct":true,"z":1.50,"response":"x = 5 so \\boxed{5}","a":[1, 2e0]}"#,
            r#"{"respons\u0065":"so \\boxed{7}","model":"m","problem_id":"r","correct":true}"#,
            lines[2], // already cut: verbatim
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn rft_select_writes_truncated_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(
            &dir,
            "r.jsonl",
            &[
                json!({"model":"m","problem_id":"p","correct":true,"response":"2+2 = \\boxed{4} and more","token_entropies":[0.1]}),
                json!({"model":"m","problem_id":"p","n":3,"c":1}),
                json!({"model":"m","problem_id":"p","correct":true,"response":"no box 4","token_entropies":[0.9]}),
                json!({"model":"m","problem_id":"q","correct":true,"response":"x = 5 so \\boxed{5}","token_entropies":[0.5]}),
            ],
        );
        let mut out = Vec::new();
        rft_select(
            std::slice::from_ref(&f),
            RftStrategy::Entropy,
            1,
            0,
            false,
            &mut out,
        )
        .unwrap();
        let lines: Vec<Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["problem_id"], "q");
        let mut out = Vec::new();
        rft_select(
            std::slice::from_ref(&f),
            RftStrategy::Rule,
            5,
            1,
            false,
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains("\"response\":\"2+2 = \\\\boxed{4}\""),
            "{text}"
        );
        let err = rft_select(&[f], RftStrategy::Rbf, 1, 0, false, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("RBF"), "{err}");
    }
}
