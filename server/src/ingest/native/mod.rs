//! Reader of the caplens native JSON Lines format (docs/formats/native.md).
//!
//! One JSON object per line, plain, gzip or zstd (detected by magic bytes, not the file name).
//! Files are streamed line by line with one reused buffer; string fields borrow from the line
//! when they contain no escape; fields the caller does not need ([`Needs`]) are skipped without
//! being materialised.
//!
//! Two readers share the parsing rules:
//! - [`read_files`]: every field on request, lines in order, on the calling thread;
//! - [`read_core_parallel`]: only the core fields ([`CoreLine`]), for the counting commands
//!   (`passk`): files are cut into blocks of whole lines that several threads scan at once, and
//!   each record carries an [`InputPosition`] so that callers can restore first-appearance
//!   order exactly. Errors and line numbers are the same as with `read_files`.
//!
//! Lines that only need the core fields go through a validating byte scanner (`fast`) which
//! accepts only lines that are valid JSON *and* valid records; anything else (escapes in a
//! needed string, duplicates, odd numbers, any error) is re-parsed by serde_json, the authority
//! on values and error messages.
//!
//! Defined answers for bad or edge input:
//! - blank lines (only whitespace) are ignored; line numbers still count them;
//! - no file or only blank lines: no record, not an error;
//! - unknown fields are ignored (forward compatibility); a field given twice is an error;
//! - `n = 0` (with `c = 0`) is valid: the problem exists with no samples;
//! - `c > n` is an error on field "c"; `correct` together with `n`/`c` is an error;
//! - `NaN`/`Infinity` are not JSON: an error naming the field (write `null` for a missing value);
//!   `null` inside `token_logprobs` / `token_entropies` is a missing value;
//! - invalid UTF-8 is an error naming file and line.
//!
//! Files: `parse.rs` (one line: serde visitor, grading of lines without a verdict), `fast.rs`
//! (the byte scanner), `read.rs` (the two readers), `tests.rs`.
//!
//! Every error reads `FILE:LINE: field "NAME": MESSAGE` (or `FILE:LINE: MESSAGE` when no single
//! field is at fault, `FILE: MESSAGE` for file-level I/O errors).

mod fast;
mod parse;
mod read;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::path::Path;

pub use parse::parse_line;
pub use read::{
    read_core_parallel, read_files, reader_threads, replace_string_field, InputPosition,
};

/// The largest `n` one counts line may give. pass@k curves cost O(n) per problem, so an absurd
/// count (a typo, or a corrupted file) must be an input error, not an hour of work or an
/// allocation failure. A million samples per problem is far beyond any evaluation in practice
/// (the paper samples 640).
pub const MAX_SAMPLES_PER_LINE: u64 = 1_000_000;

/// An input error, located by file, line and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct InputError {
    /// The file as given by the user.
    pub file: String,
    /// 1-based line number; `None` for file-level errors (cannot open, read failure).
    pub line: Option<u64>,
    pub field: Option<String>,
    pub message: String,
}

impl InputError {
    fn render(&self) -> String {
        let mut s = self.file.clone();
        if let Some(line) = self.line {
            s.push_str(&format!(":{line}"));
        }
        s.push_str(": ");
        if let Some(field) = &self.field {
            s.push_str(&format!("field \"{field}\": "));
        }
        s.push_str(&self.message);
        s
    }
}

/// Which optional fields the caller needs; the others are skipped while parsing.
/// `model`, `problem_id`, `dataset`, `correct`, `n` and `c` are always read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub sample: bool,
    pub response: bool,
    pub answer: bool,
    pub reference: bool,
    pub tokens: bool,
    pub token_logprobs: bool,
    pub top_logprobs: bool,
    pub token_entropies: bool,
    pub token_rbf: bool,
    pub token_hidden_norms: bool,
    pub finish_reason: bool,
    pub step: bool,
    pub prompt: bool,
    pub tags: bool,
    /// Grade a rollout line that gives no verdict (`response` or `answer`, and `reference`)
    /// with the verifier, so that its outcome is a graded rollout: the analysis commands,
    /// which have no stored references. Imports leave such lines [`Outcome::Ungraded`] and
    /// grade them against the file's or the stored reference.
    pub grade: bool,
}

impl Needs {
    /// Every field.
    pub fn all() -> Self {
        Self {
            sample: true,
            response: true,
            answer: true,
            reference: true,
            tokens: true,
            token_logprobs: true,
            top_logprobs: true,
            token_entropies: true,
            token_rbf: true,
            token_hidden_norms: true,
            finish_reason: true,
            step: true,
            prompt: true,
            tags: true,
            grade: false,
        }
    }
}

/// What a line says about correctness: one graded rollout, counts, or a rollout without a
/// verdict (graded by caplens: [`Needs::grade`], or the import against the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Rollout { correct: bool },
    Counts { n: u64, c: u64 },
    Ungraded,
}

impl Outcome {
    /// Number of samples the line stands for (1 for a rollout).
    pub fn samples(&self) -> u64 {
        match *self {
            Outcome::Rollout { .. } | Outcome::Ungraded => 1,
            Outcome::Counts { n, .. } => n,
        }
    }

    /// Number of correct samples the line stands for.
    pub fn correct_samples(&self) -> u64 {
        match *self {
            Outcome::Rollout { correct } => correct as u64,
            Outcome::Counts { c, .. } => c,
            // Not graded (yet): counts as not solved.
            Outcome::Ungraded => 0,
        }
    }
}

/// One `[token, logprob]` pair of `top_logprobs`.
pub type TopLogprob<'a> = (Cow<'a, str>, f64);

/// One parsed line. Fields not asked for in [`Needs`] are `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NativeLine<'a> {
    pub model: Cow<'a, str>,
    pub problem_id: Cow<'a, str>,
    pub dataset: Option<Cow<'a, str>>,
    pub outcome: Outcome,
    pub sample: Option<u64>,
    pub response: Option<Cow<'a, str>>,
    pub answer: Option<Cow<'a, str>>,
    pub reference: Option<Cow<'a, str>>,
    pub tokens: Option<Vec<Cow<'a, str>>>,
    pub token_logprobs: Option<Vec<Option<f64>>>,
    /// Per token, its top candidates (`null` for a token gives an empty list).
    pub top_logprobs: Option<Vec<Vec<TopLogprob<'a>>>>,
    pub token_entropies: Option<Vec<Option<f64>>>,
    /// Per token, the exact rollout branching factor (an engine that saw the full distribution).
    pub token_rbf: Option<Vec<Option<u32>>>,
    /// Per token, the norm of the last hidden state (the gradient-norm proxy's ||h||, eq. 4).
    pub token_hidden_norms: Option<Vec<Option<f64>>>,
    pub finish_reason: Option<Cow<'a, str>>,
    pub step: Option<i64>,
    /// The problem statement, stored with the problem (shown on its page).
    pub prompt: Option<Cow<'a, str>>,
    /// The problem's tags (topic, difficulty, ...), stored with the problem.
    pub tags: Option<Vec<Cow<'a, str>>>,
    // Raw outcome fields, turned into `outcome` by `finish`; the line is parsed in place into
    // this one struct because moving a struct this size per line was a visible cost.
    correct: Option<bool>,
    n: Option<u64>,
    c: Option<u64>,
    /// Bit per known field (index in FIELDS), to reject duplicates and find missing fields.
    seen: u32,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome::Rollout { correct: false }
    }
}

impl NativeLine<'_> {
    /// The problem key used everywhere: `dataset/problem_id` when a dataset is given (so that
    /// problem "0" of two datasets stays apart), else `problem_id`.
    pub fn problem_key(&self) -> Cow<'_, str> {
        match &self.dataset {
            Some(d) => Cow::Owned(format!("{d}/{}", self.problem_id)),
            None => Cow::Borrowed(&self.problem_id),
        }
    }

    /// Number of samples this line stands for (1 for a rollout).
    pub fn samples(&self) -> u64 {
        self.outcome.samples()
    }

    /// Number of correct samples this line stands for.
    pub fn correct_samples(&self) -> u64 {
        self.outcome.correct_samples()
    }
}

/// The fields every command needs, as the fast path of [`read_core_parallel`] extracts them:
/// strings borrow from the line (or from a [`NativeLine`] when serde_json parsed it). A
/// `CoreLine` is always a valid record (required fields present, `c <= n`).
#[derive(Debug, Clone, PartialEq)]
pub struct CoreLine<'a> {
    pub model: Cow<'a, str>,
    pub problem_id: Cow<'a, str>,
    pub dataset: Option<Cow<'a, str>>,
    pub outcome: Outcome,
    /// Only read when asked for (`want_sample`).
    pub sample: Option<u64>,
}

impl<'a> CoreLine<'a> {
    /// The core fields of a fully parsed line, borrowed from it.
    pub fn of(line: &'a NativeLine<'_>) -> Self {
        CoreLine {
            model: Cow::Borrowed(&line.model),
            problem_id: Cow::Borrowed(&line.problem_id),
            dataset: line.dataset.as_deref().map(Cow::Borrowed),
            outcome: line.outcome,
            sample: line.sample,
        }
    }

    /// Number of samples this line stands for (1 for a rollout).
    pub fn samples(&self) -> u64 {
        self.outcome.samples()
    }

    /// Number of correct samples this line stands for.
    pub fn correct_samples(&self) -> u64 {
        self.outcome.correct_samples()
    }
}

/// Where a line came from, with its raw text.
#[derive(Debug, Clone, Copy)]
pub struct LineInfo<'a> {
    /// Index into the list of files given.
    pub file_index: usize,
    pub file: &'a Path,
    /// 1-based.
    pub line: u64,
    pub raw: &'a str,
}

/// Totals of one read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Lines parsed and handed to the caller.
    pub records: u64,
    /// Invalid lines skipped (only with `skip_invalid`).
    pub skipped: u64,
    /// The first few skipped lines' errors, to show the user.
    pub first_skipped: Vec<InputError>,
    /// Bytes of (decompressed) input read.
    pub bytes: u64,
}

impl ReadStats {
    /// Counts a skipped line, keeping the first few errors to show.
    pub fn skip(&mut self, err: InputError) {
        self.skipped += 1;
        if self.first_skipped.len() < read::SKIPPED_ERRORS_KEPT {
            self.first_skipped.push(err);
        }
    }
}
