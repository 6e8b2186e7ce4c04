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
//! Every error reads `FILE:LINE: field "NAME": MESSAGE` (or `FILE:LINE: MESSAGE` when no single
//! field is at fault, `FILE: MESSAGE` for file-level I/O errors).

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

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
        }
    }
}

/// What a line says about correctness: one graded rollout, or counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Rollout { correct: bool },
    Counts { n: u64, c: u64 },
}

impl Outcome {
    /// Number of samples the line stands for (1 for a rollout).
    pub fn samples(&self) -> u64 {
        match *self {
            Outcome::Rollout { .. } => 1,
            Outcome::Counts { n, .. } => n,
        }
    }

    /// Number of correct samples the line stands for.
    pub fn correct_samples(&self) -> u64 {
        match *self {
            Outcome::Rollout { correct } => correct as u64,
            Outcome::Counts { c, .. } => c,
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

const SKIPPED_ERRORS_KEPT: usize = 10;

/// Reads every line of every file in order and hands each valid record to `each`.
///
/// With `skip_invalid`, a line that fails to parse or validate is counted in
/// [`ReadStats::skipped`] and reading continues; otherwise the first such line is returned as
/// the error. I/O errors (a file that cannot be opened or read, corrupt gzip) always stop.
/// An error returned by `each` stops the read and is returned as is.
pub fn read_files<E>(
    files: &[PathBuf],
    needs: Needs,
    skip_invalid: bool,
    mut each: impl FnMut(&NativeLine<'_>, &LineInfo<'_>) -> Result<(), E>,
) -> Result<ReadStats, E>
where
    E: From<InputError>,
{
    let mut stats = ReadStats::default();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    for (file_index, path) in files.iter().enumerate() {
        let display = path.display().to_string();
        let file_err = |message: String| InputError {
            file: display.clone(),
            line: None,
            field: None,
            message,
        };
        let file = File::open(path).map_err(|e| file_err(format!("cannot open: {e}")))?;
        let mut reader = open_reader(file).map_err(|e| file_err(format!("cannot read: {e}")))?;
        let mut line_no = 0u64;
        let mut handle = |bytes: &[u8], line_no: u64, stats: &mut ReadStats| -> Result<(), E> {
            let bytes = trim_line_end(bytes);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            let err = match std::str::from_utf8(bytes) {
                Err(e) => line_error(
                    &display,
                    line_no,
                    None,
                    format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
                ),
                Ok(text) => match parse_line(text, needs) {
                    Ok(record) => {
                        stats.records += 1;
                        return each(
                            &record,
                            &LineInfo {
                                file_index,
                                file: path,
                                line: line_no,
                                raw: text,
                            },
                        );
                    }
                    Err((field, msg)) => line_error(&display, line_no, field, msg),
                },
            };
            match err {
                err if skip_invalid => {
                    stats.skipped += 1;
                    if stats.first_skipped.len() < SKIPPED_ERRORS_KEPT {
                        stats.first_skipped.push(err);
                    }
                    Ok(())
                }
                err => Err(err.into()),
            }
        };
        // Lines that fit in the reader's buffer are parsed in place; a line split across
        // refills (or longer than the buffer) is assembled in `buf`.
        buf.clear();
        loop {
            let chunk = reader.fill_buf().map_err(|e| InputError {
                file: display.clone(),
                line: Some(line_no + 1),
                field: None,
                message: format!("read error: {e}"),
            })?;
            if chunk.is_empty() {
                if !buf.is_empty() {
                    line_no += 1;
                    stats.bytes += buf.len() as u64;
                    handle(&buf, line_no, &mut stats)?;
                    buf.clear();
                }
                break;
            }
            let mut consumed = 0;
            while let Some(pos) = find_newline(&chunk[consumed..]) {
                let end = consumed + pos;
                line_no += 1;
                if buf.is_empty() {
                    stats.bytes += (end + 1 - consumed) as u64;
                    handle(&chunk[consumed..end], line_no, &mut stats)?;
                } else {
                    buf.extend_from_slice(&chunk[consumed..end]);
                    stats.bytes += buf.len() as u64 + 1;
                    handle(&buf, line_no, &mut stats)?;
                    buf.clear();
                }
                consumed = end + 1;
            }
            buf.extend_from_slice(&chunk[consumed..]);
            let len = chunk.len();
            reader.consume(len);
        }
    }
    Ok(stats)
}

/// The place of a line in the whole input (files in the order given, then lines), comparable
/// across the threads of [`read_core_parallel`] so that callers can restore first-appearance
/// order exactly. It orders like the input; it is not a line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InputPosition {
    /// Block number, counted over all files.
    block: u64,
    /// Line within the block, from 1.
    line: u64,
}

/// Bytes a thread takes at a time: small enough to stay in the L2 cache between the read and the
/// scan, large enough that the lock and the read call are negligible per line.
const BLOCK_BYTES: usize = 256 * 1024;

/// A sensible number of reader threads (and accumulators) for [`read_core_parallel`].
pub fn reader_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// The input of one file, shared by the threads: whoever holds the lock reads the next block.
struct BlockSource {
    reader: Box<dyn Read + Send>,
    /// The unfinished last line of the previous block, which starts the next one.
    carry: Vec<u8>,
    /// Number of the next block within the file.
    next_block: u64,
    eof: bool,
}

impl BlockSource {
    /// Fills `buf` with the next block: whole lines only (the last line of the input may lack its
    /// newline), at least one line even when it is longer than `BLOCK_BYTES`. Returns its length
    /// (0 at the end).
    fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let carry = self.carry.len();
        let want = BLOCK_BYTES.max(2 * carry);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        buf[..carry].copy_from_slice(&self.carry);
        self.carry.clear();
        let mut filled = carry;
        loop {
            while filled < buf.len() && !self.eof {
                match self.reader.read(&mut buf[filled..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if self.eof {
                return Ok(filled);
            }
            match buf[..filled].iter().rposition(|&b| b == b'\n') {
                Some(last) => {
                    self.carry.extend_from_slice(&buf[last + 1..filled]);
                    return Ok(last + 1);
                }
                // A line longer than the buffer: read on.
                None => {
                    let len = buf.len();
                    buf.resize(2 * len, 0);
                }
            }
        }
    }
}

/// What one thread found in one file.
#[derive(Default)]
struct ThreadReport {
    /// (block within the file, lines in it) of every block this thread scanned.
    blocks: Vec<(u64, u64)>,
    bytes: u64,
    records: u64,
    skipped: u64,
    /// (block, error with the line number *within the block*): the first few skipped lines.
    first_skipped: Vec<(u64, InputError)>,
    /// The error that stopped this thread, located the same way.
    fatal: Option<(u64, InputError)>,
}

/// Reads every line of every file like [`read_files`], on `shards.len()` threads, handing each
/// valid record to `each` with the accumulator of the thread and the line's [`InputPosition`].
///
/// Files are cut into blocks of whole lines; the threads take blocks in turn, so records reach
/// the accumulators out of input order: callers that care about order merge the accumulators by
/// position. Only the core fields (and `sample` when `want_sample`) are read, through the fast
/// scanner with serde_json as the fallback and the authority on errors. Errors, `skip_invalid`
/// and the statistics behave exactly as in [`read_files`], line numbers included: a failing
/// line reports the first error in input order.
pub fn read_core_parallel<A: Send>(
    files: &[PathBuf],
    want_sample: bool,
    skip_invalid: bool,
    shards: &mut [A],
    each: impl Fn(&mut A, &CoreLine<'_>, InputPosition) + Sync,
) -> Result<ReadStats, InputError> {
    assert!(
        !shards.is_empty(),
        "read_core_parallel needs at least one accumulator"
    );
    let mut stats = ReadStats::default();
    let mut first_block = 0u64;
    for path in files {
        let display = path.display().to_string();
        let file_err = |message: String| InputError {
            file: display.clone(),
            line: None,
            field: None,
            message,
        };
        let file = File::open(path).map_err(|e| file_err(format!("cannot open: {e}")))?;
        // A small regular file is not worth a thread (pipes have no size: they get all threads).
        let small = file
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() < 2 * BLOCK_BYTES as u64);
        let threads = if small { 1 } else { shards.len() };
        let reader = open_stream(file).map_err(|e| file_err(format!("cannot read: {e}")))?;
        let source = std::sync::Mutex::new(BlockSource {
            reader,
            carry: Vec::new(),
            next_block: 0,
            eof: false,
        });
        // Blocks after this one are not needed: an error was found in it.
        let stop_after = std::sync::atomic::AtomicU64::new(u64::MAX);
        let scan = |shard: &mut A| -> ThreadReport {
            let mut report = ThreadReport::default();
            let mut buf = Vec::new();
            loop {
                let (block, len) = {
                    let mut src = source.lock().unwrap_or_else(|e| e.into_inner());
                    let block = src.next_block;
                    if block > stop_after.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    match src.next(&mut buf) {
                        Ok(0) => break,
                        Ok(len) => {
                            src.next_block += 1;
                            (block, len)
                        }
                        Err(e) => {
                            src.eof = true;
                            src.carry.clear();
                            stop_after.fetch_min(block, std::sync::atomic::Ordering::Relaxed);
                            report.fatal = Some((
                                block,
                                line_error(&display, 1, None, format!("read error: {e}")),
                            ));
                            break;
                        }
                    }
                };
                report.bytes += len as u64;
                let lines = scan_block(
                    &buf[..len],
                    want_sample,
                    &display,
                    |line, local| {
                        report.records += 1;
                        each(
                            shard,
                            line,
                            InputPosition {
                                block: first_block + block,
                                line: local,
                            },
                        );
                    },
                    |err| {
                        if skip_invalid {
                            report.skipped += 1;
                            if report.first_skipped.len() < SKIPPED_ERRORS_KEPT {
                                report.first_skipped.push((block, err));
                            }
                            true
                        } else {
                            report.fatal = Some((block, err));
                            false
                        }
                    },
                );
                report.blocks.push((block, lines));
                if report.fatal.is_some() {
                    stop_after.fetch_min(block, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
            }
            report
        };
        let mut reports: Vec<ThreadReport> = std::thread::scope(|s| {
            let (first, rest) = shards[..threads]
                .split_first_mut()
                .expect("at least one shard");
            let handles: Vec<_> = rest
                .iter_mut()
                .map(|shard| s.spawn(|| scan(shard)))
                .collect();
            let mut reports = vec![scan(first)];
            reports.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
            );
            reports
        });
        // Line numbers: each block's lines start after those of the blocks before it.
        let blocks = source
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .next_block;
        let mut lines_before = vec![0u64; blocks as usize + 1];
        for &(block, lines) in reports.iter().flat_map(|r| &r.blocks) {
            lines_before[block as usize + 1] = lines;
        }
        for i in 1..lines_before.len() {
            lines_before[i] += lines_before[i - 1];
        }
        let locate = |(block, mut err): (u64, InputError)| {
            err.line = err.line.map(|l| l + lines_before[block as usize]);
            err
        };
        if let Some(fatal) = reports
            .iter_mut()
            .filter_map(|r| r.fatal.take())
            .min_by_key(|(block, e)| (*block, e.line))
        {
            return Err(locate(fatal));
        }
        let mut skipped: Vec<(u64, InputError)> = reports
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.first_skipped))
            .collect();
        skipped.sort_by_key(|(block, e)| (*block, e.line));
        for err in skipped {
            if stats.first_skipped.len() < SKIPPED_ERRORS_KEPT {
                stats.first_skipped.push(locate(err));
            }
        }
        for r in &reports {
            stats.records += r.records;
            stats.skipped += r.skipped;
            stats.bytes += r.bytes;
        }
        first_block += blocks;
    }
    Ok(stats)
}

/// Scans the lines of one block: `record` gets each valid one with its line number within the
/// block; `error` gets each invalid one (line number within the block) and says whether to go
/// on. Returns the number of lines scanned.
fn scan_block(
    block: &[u8],
    want_sample: bool,
    file: &str,
    mut record: impl FnMut(&CoreLine<'_>, u64),
    mut error: impl FnMut(InputError) -> bool,
) -> u64 {
    // One UTF-8 check for the whole block; only a block with a bad byte is checked line by line
    // (to name the line). Splitting valid UTF-8 at b'\n' keeps every piece valid.
    let block_text = std::str::from_utf8(block).ok();
    let needs = Needs {
        sample: want_sample,
        ..Needs::default()
    };
    let mut line_no = 0u64;
    let mut start = 0;
    let mut key_order = fast::KeyOrder::default();
    while start < block.len() {
        line_no += 1;
        if let Some((core, end)) =
            block_text.and_then(|t| fast::scan_line(t, start, want_sample, &mut key_order))
        {
            record(&core, line_no);
            start = end + 1;
            continue;
        }
        let end = find_newline(&block[start..]).map_or(block.len(), |p| start + p);
        let bytes = trim_line_end(&block[start..end]);
        let line_start = start;
        start = end + 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = match block_text {
            Some(t) => &t[line_start..line_start + bytes.len()],
            None => match std::str::from_utf8(bytes) {
                Ok(t) => t,
                Err(e) => {
                    let msg = format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1);
                    if error(line_error(file, line_no, None, msg)) {
                        continue;
                    }
                    break;
                }
            },
        };
        match parse_line_serde(text, needs) {
            Ok(line) => record(&CoreLine::of(&line), line_no),
            Err((field, msg)) => {
                if !error(line_error(file, line_no, field, msg)) {
                    break;
                }
            }
        }
    }
    line_no
}

/// `line` (one JSON object) with the value of its top-level field `key` replaced by the JSON
/// string `value`; every other byte (key order, spacing, number spelling) stays as it was.
/// `None` when the line is not an object the scanner can walk or has no such field.
pub fn replace_string_field(line: &str, key: &str, value: &str) -> Option<String> {
    let (start, end) = fast::top_level_value_span(line, key)?;
    let encoded = serde_json::to_string(value).ok()?;
    Some(format!("{}{}{}", &line[..start], encoded, &line[end..]))
}

/// Position of the first newline, eight bytes at a time.
fn find_newline(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= b.len() {
        let x = u64::from_le_bytes(b[i..i + 8].try_into().unwrap()) ^ (ONES * b'\n' as u64);
        let m = x.wrapping_sub(ONES) & !x & HIGH;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(|&c| c == b'\n').map(|p| i + p)
}

fn line_error(file: &str, line: u64, field: Option<&'static str>, message: String) -> InputError {
    InputError {
        file: file.to_string(),
        line: Some(line),
        field: field.map(str::to_string),
        message,
    }
}

fn trim_line_end(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    if end > 0 && buf[end - 1] == b'\n' {
        end -= 1;
    }
    if end > 0 && buf[end - 1] == b'\r' {
        end -= 1;
    }
    &buf[..end]
}

/// Plain or gzip like [`open_reader`], unbuffered for plain files (the caller reads large
/// blocks), and without seeking, so that pipes work too.
fn open_stream(mut file: File) -> std::io::Result<Box<dyn Read + Send>> {
    let mut head = Vec::with_capacity(2);
    (&mut file).take(2).read_to_end(&mut head)?;
    let gzip = head == [0x1f, 0x8b];
    let stream = std::io::Cursor::new(head).chain(file);
    if gzip {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(stream)))
    } else {
        Ok(Box::new(stream))
    }
}

/// Plain or gzip (magic bytes 1f 8b; concatenated gzip members are read as one stream).
fn open_reader(file: File) -> std::io::Result<Box<dyn BufRead>> {
    super::decompress(file)
}

/// Parses and validates one line. On failure: the field at fault (if any) and the message.
pub fn parse_line(
    text: &str,
    needs: Needs,
) -> Result<NativeLine<'_>, (Option<&'static str>, String)> {
    let core_only = needs
        == Needs {
            sample: needs.sample,
            ..Needs::default()
        };
    if core_only {
        if let Some(core) = fast::scan_core(text, needs.sample) {
            return Ok(NativeLine {
                model: core.model,
                problem_id: core.problem_id,
                dataset: core.dataset,
                outcome: core.outcome,
                sample: core.sample,
                ..NativeLine::default()
            });
        }
    }
    parse_line_serde(text, needs)
}

/// The general path: serde_json with a field-naming visitor. The authority on errors.
fn parse_line_serde(
    text: &str,
    needs: Needs,
) -> Result<NativeLine<'_>, (Option<&'static str>, String)> {
    let current = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let mut line = de
        .deserialize_map(LineVisitor {
            needs,
            current: &current,
        })
        .and_then(|raw| de.end().map(|_| raw))
        .map_err(|e| describe_json_error(text, &e, current.get()))?;
    line.finish()?;
    Ok(line)
}

fn describe_json_error(
    text: &str,
    e: &serde_json::Error,
    field: Option<&'static str>,
) -> (Option<&'static str>, String) {
    use serde_json::error::Category;
    match (e.classify(), field) {
        (Category::Data, Some(f)) => (Some(f), expected_for(f).to_string()),
        (Category::Data, None) => (None, strip_position(e)),
        (Category::Syntax | Category::Eof, f) => {
            // Point out NaN / Infinity, which Python's json module writes but JSON forbids.
            let col = e.column().saturating_sub(1);
            let rest = text.get(col..).unwrap_or("");
            let rest = rest.trim_start_matches(['[', ',', ' ', '-']);
            let msg = if rest.starts_with("NaN") || rest.starts_with("Infinity") {
                format!("NaN and Infinity are not valid JSON (column {}); write null for a missing value", e.column())
            } else {
                format!("invalid JSON: {}", e)
            };
            (f, msg)
        }
        (Category::Io, f) => (f, e.to_string()),
    }
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn expected_for(field: &str) -> &'static str {
    match field {
        "model" | "problem_id" => "expected a string (or an integer for problem_id)",
        "correct" => "expected a boolean",
        "n" | "c" | "sample" => "expected a non-negative integer",
        "step" => "expected an integer",
        "dataset" | "response" | "answer" | "reference" | "finish_reason" => {
            "expected a string or null"
        }
        "tokens" => "expected an array of strings",
        "token_logprobs" | "token_entropies" | "token_hidden_norms" => {
            "expected an array of numbers (null for a missing value)"
        }
        "token_rbf" => "expected an array of non-negative integers (null for a missing value)",
        "top_logprobs" => "expected an array (one per token) of [token, logprob] pairs",
        _ => "unexpected value",
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// `problem_id` may be a string or an integer (many eval tools number their problems).
struct IdStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for IdStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(IdStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IdStr(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(IdStr(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(IdStr(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[token, logprob]` pairs of one position; `null` gives an empty list.
struct TopRow<'a>(Vec<TopLogprob<'a>>);

impl<'de> Deserialize<'de> for TopRow<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs: Option<Vec<(CowStr<'de>, f64)>> = Option::deserialize(d)?;
        Ok(TopRow(
            pairs
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p)| (t.0, p))
                .collect(),
        ))
    }
}

impl NativeLine<'_> {
    /// Checks the required fields and sets `outcome`.
    fn finish(&mut self) -> Result<(), (Option<&'static str>, String)> {
        let missing = |f: &'static str| (Some(f), "missing (required)".to_string());
        if self.seen & 1 == 0 {
            return Err(missing("model"));
        }
        if self.seen & 2 == 0 {
            return Err(missing("problem_id"));
        }
        self.outcome = match (self.correct, self.n, self.c) {
            (Some(correct), None, None) => Outcome::Rollout { correct },
            (Some(_), _, _) => {
                let f = if self.n.is_some() { "n" } else { "c" };
                return Err((
                    Some(f),
                    "a line gives either \"correct\" or \"n\" and \"c\", not both".into(),
                ));
            }
            (None, Some(n), Some(c)) => {
                if n > MAX_SAMPLES_PER_LINE {
                    return Err((
                        Some("n"),
                        format!("{n} exceeds the limit of {MAX_SAMPLES_PER_LINE} samples per line"),
                    ));
                }
                if c > n {
                    return Err((Some("c"), format!("{c} is greater than n = {n}")));
                }
                Outcome::Counts { n, c }
            }
            (None, Some(_), None) => return Err(missing("c")),
            (None, None, Some(_)) => return Err(missing("n")),
            (None, None, None) => {
                return Err((
                    Some("correct"),
                    "missing (give \"correct\", or \"n\" and \"c\")".into(),
                ))
            }
        };
        // Parse state only: cleared so that a line reads the same whichever path parsed it.
        (self.correct, self.n, self.c, self.seen) = (None, None, None, 0);
        Ok(())
    }
}

const FIELDS: [&str; 18] = [
    "model",
    "problem_id",
    "dataset",
    "correct",
    "n",
    "c",
    "sample",
    "response",
    "answer",
    "reference",
    "tokens",
    "token_logprobs",
    "top_logprobs",
    "token_entropies",
    "finish_reason",
    "step",
    "token_rbf",
    "token_hidden_norms",
];

struct LineVisitor<'c> {
    needs: Needs,
    /// The field whose value is being parsed, so that an error can name it.
    current: &'c Cell<Option<&'static str>>,
}

impl<'de> Visitor<'de> for LineVisitor<'_> {
    type Value = NativeLine<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NativeLine<'de>, A::Error> {
        let mut raw = NativeLine::default();
        let needs = self.needs;
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let Some(idx) = FIELDS.iter().position(|f| *f == key.0) else {
                self.current.set(None);
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let name = FIELDS[idx];
            self.current.set(Some(name));
            if raw.seen & (1 << idx) != 0 {
                return Err(de::Error::custom(format!("field \"{name}\" given twice")));
            }
            raw.seen |= 1 << idx;
            macro_rules! take {
                ($need:expr, $slot:expr, $conv:expr) => {
                    if $need {
                        $slot = $conv(map.next_value()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                };
            }
            match name {
                "model" => raw.model = map.next_value::<CowStr>()?.0,
                "problem_id" => raw.problem_id = map.next_value::<IdStr>()?.0,
                "dataset" => raw.dataset = map.next_value::<Option<CowStr>>()?.map(|s| s.0),
                "correct" => raw.correct = Some(map.next_value()?),
                "n" => raw.n = Some(map.next_value()?),
                "c" => raw.c = Some(map.next_value()?),
                "sample" => take!(needs.sample, raw.sample, |v: Option<u64>| v),
                "response" => take!(needs.response, raw.response, |v: Option<CowStr<'de>>| v
                    .map(|s| s.0)),
                "answer" => take!(needs.answer, raw.answer, |v: Option<CowStr<'de>>| v
                    .map(|s| s.0)),
                "reference" => take!(needs.reference, raw.reference, |v: Option<CowStr<'de>>| v
                    .map(|s| s.0)),
                "tokens" => take!(needs.tokens, raw.tokens, |v: Option<Vec<CowStr<'de>>>| v
                    .map(|t| t.into_iter().map(|s| s.0).collect())),
                "token_logprobs" => take!(
                    needs.token_logprobs,
                    raw.token_logprobs,
                    |v: Option<Vec<Option<f64>>>| v
                ),
                "top_logprobs" => take!(needs.top_logprobs, raw.top_logprobs, |v: Option<
                    Vec<TopRow<'de>>,
                >| v
                    .map(|rows| rows.into_iter().map(|r| r.0).collect())),
                "token_entropies" => take!(
                    needs.token_entropies,
                    raw.token_entropies,
                    |v: Option<Vec<Option<f64>>>| v
                ),
                "finish_reason" => take!(
                    needs.finish_reason,
                    raw.finish_reason,
                    |v: Option<CowStr<'de>>| v.map(|s| s.0)
                ),
                "step" => take!(needs.step, raw.step, |v: Option<i64>| v),
                "token_rbf" => take!(
                    needs.token_rbf,
                    raw.token_rbf,
                    |v: Option<Vec<Option<u32>>>| v
                ),
                "token_hidden_norms" => take!(
                    needs.token_hidden_norms,
                    raw.token_hidden_norms,
                    |v: Option<Vec<Option<f64>>>| v
                ),
                _ => unreachable!("every name of FIELDS is handled"),
            }
            self.current.set(None);
        }
        Ok(raw)
    }
}

/// Fast path for the commands that need only the core fields (passk, unsolvable): a validating
/// byte scanner that borrows unescaped strings and skips every other value without building it.
/// It returns `None` on anything unusual (an escape in a needed string, a duplicate or odd
/// value, any syntax error), and the caller then re-parses the line with serde_json, which
/// produces the exact error or value; so the fast path only ever accepts valid JSON.
mod fast {
    use super::{CoreLine, Outcome};
    use std::borrow::Cow;

    const MAX_DEPTH: usize = 128;

    /// Position of the first `"`, `\\` or control byte (< 0x20), eight bytes at a time.
    /// (Bytes >= 0x80 never match: UTF-8 continuation and lead bytes all have the high bit.)
    #[inline]
    pub(super) fn find_string_special(b: &[u8]) -> Option<usize> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let mut i = 0;
        while i + 8 <= b.len() {
            let x = u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
            let quote = x ^ (ONES * b'"' as u64);
            let slash = x ^ (ONES * b'\\' as u64);
            let m = (quote.wrapping_sub(ONES) & !quote)
                | (slash.wrapping_sub(ONES) & !slash)
                | (x.wrapping_sub(ONES * 0x20) & !x);
            let m = m & HIGH;
            if m != 0 {
                // The lowest flagged byte is a true match (borrows only run upwards).
                return Some(i + (m.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        b[i..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|p| i + p)
    }

    struct Cursor<'a> {
        b: &'a [u8],
        s: &'a str,
        i: usize,
    }

    impl<'a> Cursor<'a> {
        /// JSON whitespace except the newline, which ends the line (a line never contains one).
        #[inline]
        fn ws(&mut self) {
            while let Some(&c) = self.b.get(self.i) {
                // One comparison in the usual case (compact JSON): all whitespace is <= b' '.
                if c <= b' ' && (c == b' ' || c == b'\t' || c == b'\r') {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }
        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }
        /// A string without escapes, borrowed (cursor on the opening quote).
        fn plain_str(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.i;
            let len = find_string_special(&self.b[start..])?;
            if self.b[start + len] != b'"' {
                return None;
            }
            self.i = start + len + 1;
            Some(&self.s[start..start + len])
        }
        /// The digits of a non-negative integer that fits in a u64 (at most 19 digits, no
        /// leading zero, no fraction or exponent), borrowed.
        fn uint_text(&mut self) -> Option<&'a str> {
            let start = self.i;
            let len = self.b[start..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(self.b.len() - start);
            if len == 0 || (len > 1 && self.b[start] == b'0') || len > 19 {
                return None;
            }
            if matches!(self.b.get(start + len), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            self.i = start + len;
            Some(&self.s[start..start + len])
        }
        fn uint(&mut self) -> Option<u64> {
            let digits = self.uint_text()?;
            // At most 19 digits: no overflow.
            Some(digits.bytes().fold(0u64, |v, d| v * 10 + (d - b'0') as u64))
        }
        fn literal(&mut self, lit: &[u8]) -> Option<()> {
            self.b[self.i..]
                .starts_with(lit)
                .then(|| self.i += lit.len())
        }
        fn skip_str(&mut self) -> Option<()> {
            self.eat(b'"')?;
            loop {
                let rel = find_string_special(&self.b[self.i..])?;
                self.i += rel;
                match self.b[self.i] {
                    b'"' => {
                        self.i += 1;
                        return Some(());
                    }
                    b'\\' => match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let hex = self.b.get(self.i + 2..self.i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 6;
                        }
                        _ => return None,
                    },
                    _ => return None, // raw control character
                }
            }
        }
        fn digits(&mut self) -> usize {
            let n = self.b[self.i..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            self.i += n;
            n
        }
        fn skip_number(&mut self) -> Option<()> {
            let _ = self.eat(b'-');
            let first = self.peek()?;
            let int_digits = self.digits();
            if int_digits == 0 || (first == b'0' && int_digits > 1) {
                return None;
            }
            if self.eat(b'.').is_some() && self.digits() == 0 {
                return None;
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.i += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.i += 1;
                }
                let exp = self.digits();
                // Huge exponents: let serde_json decide (it rejects out-of-range numbers).
                if exp == 0 || exp > 3 {
                    return None;
                }
            }
            Some(())
        }
        fn skip_value(&mut self, depth: usize) -> Option<()> {
            if depth > MAX_DEPTH {
                return None;
            }
            match self.peek()? {
                b'"' => self.skip_str(),
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if self.eat(b'}').is_some() {
                        return Some(());
                    }
                    loop {
                        self.ws();
                        self.skip_str()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                        self.skip_value(depth + 1)?;
                        self.ws();
                        match self.peek()? {
                            b',' => self.i += 1,
                            b'}' => {
                                self.i += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.eat(b']').is_some() {
                        return Some(());
                    }
                    loop {
                        self.ws();
                        self.skip_value(depth + 1)?;
                        self.ws();
                        match self.peek()? {
                            b',' => self.i += 1,
                            b']' => {
                                self.i += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                b'-' | b'0'..=b'9' => self.skip_number(),
                _ => None,
            }
        }
    }

    /// Index in `FIELDS` of a known key (every known key is tracked so that a duplicate sends the
    /// line to serde_json, which rejects it), `None` for keys the format does not define.
    #[inline]
    fn field_index(key: &[u8]) -> Option<u32> {
        Some(match key {
            b"model" => 0,
            b"problem_id" => 1,
            b"dataset" => 2,
            b"correct" => 3,
            b"n" => 4,
            b"c" => 5,
            b"sample" => 6,
            b"response" => 7,
            b"answer" => 8,
            b"reference" => 9,
            b"tokens" => 10,
            b"token_logprobs" => 11,
            b"top_logprobs" => 12,
            b"token_entropies" => 13,
            b"finish_reason" => 14,
            b"step" => 15,
            _ => return None,
        })
    }

    /// A known key with its closing quote, as two little-endian words and masks, so that it is
    /// compared with two loads and no call to `memcmp` (whose call overhead dominated).
    #[derive(Clone, Copy)]
    struct KeyWords {
        lo: u64,
        hi: u64,
        lo_mask: u64,
        hi_mask: u64,
        len: usize,
        index: u32,
    }

    const fn key_words(key: &[u8], index: u32) -> KeyWords {
        assert!(key.len() <= 16);
        let (mut lo, mut hi, mut i) = (0u64, 0u64, 0);
        while i < key.len() {
            if i < 8 {
                lo |= (key[i] as u64) << (8 * i);
            } else {
                hi |= (key[i] as u64) << (8 * (i - 8));
            }
            i += 1;
        }
        let n = key.len();
        let lo_mask = if n >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        let hi_mask = if n <= 8 {
            0
        } else if n >= 16 {
            u64::MAX
        } else {
            (1u64 << (8 * (n - 8))) - 1
        };
        KeyWords {
            lo,
            hi,
            lo_mask,
            hi_mask,
            len: n,
            index,
        }
    }

    /// Slot of a lowercase first letter in `KEYS`.
    const fn letter(c: u8) -> usize {
        (c - b'a') as usize
    }

    /// Every known key with its closing quote, in `FIELDS` order.
    const ALL_KEYS: [KeyWords; 16] = [
        key_words(b"model\"", 0),
        key_words(b"problem_id\"", 1),
        key_words(b"dataset\"", 2),
        key_words(b"correct\"", 3),
        key_words(b"n\"", 4),
        key_words(b"c\"", 5),
        key_words(b"sample\"", 6),
        key_words(b"response\"", 7),
        key_words(b"answer\"", 8),
        key_words(b"reference\"", 9),
        key_words(b"tokens\"", 10),
        key_words(b"token_logprobs\"", 11),
        key_words(b"top_logprobs\"", 12),
        key_words(b"token_entropies\"", 13),
        key_words(b"finish_reason\"", 14),
        key_words(b"step\"", 15),
    ];

    /// Known keys by first letter.
    const KEYS: [&[KeyWords]; 26] = {
        let mut k: [&[KeyWords]; 26] = [&[]; 26];
        k[letter(b'a')] = &[ALL_KEYS[8]];
        k[letter(b'c')] = &[ALL_KEYS[3], ALL_KEYS[5]];
        k[letter(b'd')] = &[ALL_KEYS[2]];
        k[letter(b'f')] = &[ALL_KEYS[14]];
        k[letter(b'm')] = &[ALL_KEYS[0]];
        k[letter(b'n')] = &[ALL_KEYS[4]];
        k[letter(b'p')] = &[ALL_KEYS[1]];
        k[letter(b'r')] = &[ALL_KEYS[7], ALL_KEYS[9]];
        k[letter(b's')] = &[ALL_KEYS[6], ALL_KEYS[15]];
        k[letter(b't')] = &[ALL_KEYS[10], ALL_KEYS[11], ALL_KEYS[12], ALL_KEYS[13]];
        k
    };

    /// The known keys of the previous line by position: the lines of one file nearly always
    /// list the same keys in the same order, so the key at position j is first compared with the
    /// previous line's key at j (one masked compare) before the table is searched.
    pub(super) struct KeyOrder([u8; 16]);

    impl Default for KeyOrder {
        fn default() -> Self {
            KeyOrder([u8::MAX; 16])
        }
    }

    impl Cursor<'_> {
        /// A key (cursor on its opening quote): the index in `FIELDS` of a known key, `None` for
        /// another. Known keys are compared in place, without searching for the closing quote.
        #[inline]
        fn key(&mut self, order: &mut KeyOrder, position: usize) -> Option<Option<u32>> {
            self.eat(b'"')?;
            let rest = &self.b[self.i..];
            // Near the end of the input the general path below is good enough.
            if let (Some(lo), Some(hi)) = (rest.get(..8), rest.get(8..16)) {
                let lo = u64::from_le_bytes(lo.try_into().unwrap());
                let hi = u64::from_le_bytes(hi.try_into().unwrap());
                let matches =
                    |k: &KeyWords| ((lo ^ k.lo) & k.lo_mask) | ((hi ^ k.hi) & k.hi_mask) == 0;
                if let Some(k) = order
                    .0
                    .get(position)
                    .and_then(|&p| ALL_KEYS.get(p as usize))
                {
                    if matches(k) {
                        self.i += k.len;
                        return Some(Some(k.index));
                    }
                }
                let first = lo as u8;
                if first.is_ascii_lowercase() {
                    for k in KEYS[letter(first)] {
                        if matches(k) {
                            self.i += k.len;
                            if let Some(slot) = order.0.get_mut(position) {
                                *slot = k.index as u8;
                            }
                            return Some(Some(k.index));
                        }
                    }
                }
            }
            self.i -= 1;
            Some(field_index(self.plain_str()?.as_bytes()))
        }
    }

    /// Byte range of the value of the top-level field `key` of the object in `text`; the key may
    /// be written with escapes. `None` when absent or when `text` is not a valid object.
    pub(super) fn top_level_value_span(text: &str, key: &str) -> Option<(usize, usize)> {
        let mut cur = Cursor {
            b: text.as_bytes(),
            s: text,
            i: 0,
        };
        let mut found = None;
        cur.ws();
        cur.eat(b'{')?;
        cur.ws();
        if cur.eat(b'}').is_some() {
            return None;
        }
        loop {
            cur.ws();
            let key_start = cur.i;
            cur.skip_str()?;
            let raw_key = &text[key_start..cur.i];
            let matches = match raw_key[1..raw_key.len() - 1].contains('\\') {
                false => &raw_key[1..raw_key.len() - 1] == key,
                true => serde_json::from_str::<String>(raw_key).ok()? == key,
            };
            cur.ws();
            cur.eat(b':')?;
            cur.ws();
            let value_start = cur.i;
            cur.skip_value(1)?;
            if matches {
                found = Some((value_start, cur.i));
            }
            cur.ws();
            match cur.peek()? {
                b',' => cur.i += 1,
                b'}' => break,
                _ => return None,
            }
        }
        cur.i += 1;
        cur.ws();
        if cur.i != cur.b.len() {
            return None;
        }
        found
    }

    /// Scans a line for the core fields (plus `sample` when asked). `Some` only for a line that
    /// is valid JSON *and* a valid record (required fields present, `c <= n`, no known field
    /// twice); `None` for anything else, and the caller re-parses with serde_json, which gives
    /// the value or the exact error.
    pub(super) fn scan_core(text: &str, want_sample: bool) -> Option<CoreLine<'_>> {
        scan_line(text, 0, want_sample, &mut KeyOrder::default())
            .and_then(|(line, end)| (end == text.len()).then_some(line))
    }

    /// Like [`scan_core`] for the line of `text` that starts at `start` and ends at the next
    /// newline or at the end: also returns where it ends (the newline's index, or the length), so
    /// the caller needs no separate search for the line end.
    pub(super) fn scan_line<'a>(
        text: &'a str,
        start: usize,
        want_sample: bool,
        order: &mut KeyOrder,
    ) -> Option<(CoreLine<'a>, usize)> {
        let mut cur = Cursor {
            b: text.as_bytes(),
            s: text,
            i: start,
        };
        let (mut model, mut problem_id, mut dataset) = (None, None, None);
        let (mut correct, mut n, mut c, mut sample) = (None, None, None, None);
        let mut seen = 0u32;
        let mut position = 0;
        cur.ws();
        cur.eat(b'{')?;
        cur.ws();
        if cur.eat(b'}').is_none() {
            loop {
                cur.ws();
                let field = cur.key(order, position)?;
                position += 1;
                cur.ws();
                cur.eat(b':')?;
                cur.ws();
                if let Some(f) = field {
                    if seen & (1 << f) != 0 {
                        return None;
                    }
                    seen |= 1 << f;
                }
                match field {
                    Some(0) => model = Some(cur.plain_str()?),
                    Some(1) => {
                        // An integer id borrows its digits: without sign or leading zero they
                        // are exactly the decimal text serde's path produces.
                        problem_id = Some(if cur.peek()? == b'"' {
                            cur.plain_str()?
                        } else {
                            cur.uint_text()?
                        })
                    }
                    Some(2) => {
                        dataset = if cur.peek()? == b'n' {
                            cur.literal(b"null")?;
                            None
                        } else {
                            Some(cur.plain_str()?)
                        }
                    }
                    Some(3) => {
                        correct = Some(match cur.peek()? {
                            b't' => cur.literal(b"true").map(|_| true)?,
                            b'f' => cur.literal(b"false").map(|_| false)?,
                            _ => return None,
                        })
                    }
                    Some(4) => n = Some(cur.uint()?),
                    Some(5) => c = Some(cur.uint()?),
                    Some(6) if want_sample => {
                        sample = if cur.peek()? == b'n' {
                            cur.literal(b"null")?;
                            None
                        } else {
                            Some(cur.uint()?)
                        }
                    }
                    _ => cur.skip_value(1)?,
                }
                cur.ws();
                match cur.peek()? {
                    b',' => cur.i += 1,
                    b'}' => {
                        cur.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        cur.ws();
        let end = cur.i;
        if end != cur.b.len() && cur.b[end] != b'\n' {
            return None;
        }
        // The same rules as `NativeLine::finish`; any violation is left to the slow path.
        let outcome = match (correct, n, c) {
            (Some(correct), None, None) => Outcome::Rollout { correct },
            (None, Some(n), Some(c)) if c <= n && n <= super::MAX_SAMPLES_PER_LINE => {
                Outcome::Counts { n, c }
            }
            _ => return None,
        };
        let line = CoreLine {
            model: Cow::Borrowed(model?),
            problem_id: Cow::Borrowed(problem_id?),
            dataset: dataset.map(Cow::Borrowed),
            outcome,
            sample,
        };
        Some((line, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caplens_analysis::rng::SplitMix64;
    use std::io::Write;

    fn parse(text: &str) -> Result<NativeLine<'_>, (Option<&'static str>, String)> {
        parse_line(text, Needs::all())
    }

    #[test]
    fn parses_rollout_and_counts_lines() {
        let l = parse(r#"{"model":"m","problem_id":"p1","correct":true,"sample":3,"response":"so \\boxed{2}","extra":{"x":[1]}}"#).unwrap();
        assert_eq!(l.outcome, Outcome::Rollout { correct: true });
        assert_eq!(l.sample, Some(3));
        assert_eq!(l.response.as_deref(), Some("so \\boxed{2}"));
        assert!(matches!(l.model, Cow::Borrowed("m")));
        let l = parse(r#"{"model":"m","problem_id":7,"dataset":"aime","n":10,"c":3}"#).unwrap();
        assert_eq!(l.outcome, Outcome::Counts { n: 10, c: 3 });
        assert_eq!(l.problem_key(), "aime/7");
        let l = parse(r#"{"model":"m","problem_id":"p","n":0,"c":0}"#).unwrap();
        assert_eq!(l.samples(), 0);
    }

    #[test]
    fn exact_rbf_and_hidden_norms_are_read() {
        let l = parse(r#"{"model":"m","problem_id":"p","correct":true,"tokens":["a","b"],"token_rbf":[3,null],"token_hidden_norms":[12.5,null]}"#).unwrap();
        assert_eq!(l.token_rbf, Some(vec![Some(3), None]));
        assert_eq!(l.token_hidden_norms, Some(vec![Some(12.5), None]));
        let (field, message) =
            parse(r#"{"model":"m","problem_id":"p","correct":true,"token_rbf":[-1]}"#).unwrap_err();
        assert_eq!(field, Some("token_rbf"), "{message}");
    }

    #[test]
    fn token_fields() {
        let l = parse(r#"{"model":"m","problem_id":"p","correct":false,"tokens":["a","b"],"token_logprobs":[null,-0.5],"top_logprobs":[[["a",-0.1],["c",-2.5]],null],"token_entropies":[0.3,null]}"#).unwrap();
        assert_eq!(l.token_logprobs, Some(vec![None, Some(-0.5)]));
        assert_eq!(
            l.top_logprobs.as_ref().unwrap()[0],
            vec![(Cow::Borrowed("a"), -0.1), (Cow::Borrowed("c"), -2.5)]
        );
        assert!(l.top_logprobs.as_ref().unwrap()[1].is_empty());
        // not needed: skipped
        let l = parse_line(r#"{"model":"m","problem_id":"p","correct":false,"response":"long","token_logprobs":[1]}"#, Needs::default()).unwrap();
        assert!(l.response.is_none() && l.token_logprobs.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let err = |t: &str| parse(t).unwrap_err();
        assert_eq!(
            err(r#"{"model":"m","problem_id":"p","correct":"yes"}"#),
            (Some("correct"), "expected a boolean".into())
        );
        assert_eq!(err(r#"{"problem_id":"p","correct":true}"#).0, Some("model"));
        assert_eq!(err(r#"{"model":"m","correct":true}"#).0, Some("problem_id"));
        assert_eq!(err(r#"{"model":"m","problem_id":"p"}"#).0, Some("correct"));
        assert_eq!(
            err(r#"{"model":"m","problem_id":"p","n":3,"c":5}"#),
            (Some("c"), "5 is greater than n = 3".into())
        );
        assert_eq!(
            err(r#"{"model":"m","problem_id":"p","n":1000000000000000000,"c":0}"#),
            (
                Some("n"),
                "1000000000000000000 exceeds the limit of 1000000 samples per line".into()
            )
        );
        assert_eq!(err(r#"{"model":"m","problem_id":"p","n":3}"#).0, Some("c"));
        assert_eq!(
            err(r#"{"model":"m","problem_id":"p","n":-1,"c":0}"#),
            (Some("n"), "expected a non-negative integer".into())
        );
        assert_eq!(
            err(r#"{"model":"m","problem_id":"p","correct":true,"n":1,"c":1}"#).0,
            Some("n")
        );
        assert_eq!(
            err(r#"{"model":"m","model":"x","problem_id":"p","correct":true}"#).0,
            Some("model")
        );
        let (field, msg) =
            err(r#"{"model":"m","problem_id":"p","correct":true,"token_logprobs":[-0.1,NaN]}"#);
        assert_eq!(field, Some("token_logprobs"));
        assert!(msg.contains("NaN"), "{msg}");
        // NaN is rejected even in a field the caller skips: the line is not JSON
        assert!(parse_line(
            r#"{"model":"m","problem_id":"p","correct":true,"token_logprobs":[NaN]}"#,
            Needs::default()
        )
        .is_err());
        assert!(
            err(r#"{"model":"m","problem_id":"p","correct":true} trailing"#)
                .1
                .contains("invalid JSON")
        );
        assert!(err(r#"[1,2]"#).1.contains("object"));
    }

    #[test]
    fn fast_path_agrees_with_serde_path() {
        let lines = [
            r#"{"model":"m","problem_id":"p","correct":true}"#,
            r#" { "model" : "m" , "problem_id" : 12 , "dataset" : null , "n" : 10 , "c" : 0 , "sample" : null } "#,
            r#"{"model":"m\u00e9","problem_id":"p","correct":false}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"x":{"a":[1,-2.5e-3,true,null,"q\"\n",{}],"b":[]}}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"x":[1,2}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"x":01}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"x":1.}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"x":[NaN]}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"x":"\q"}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"x":tru}"#,
            r#"{"model":"m","problem_id":"p","correct":true,}"#,
            r#"{"model":"m","problem_id":"p","correct":true} x"#,
            r#"{"model":"m","problem_id":"p","n":5,"c":7}"#,
            r#"{"model":"m","problem_id":"p","n":5.0,"c":1}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"sample":3}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"correct":true}"#,
            r#"{}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"answer":"1","answer":"2"}"#,
            r#"{"model":"m","problem_id":"p","correct":true,"sample":1,"sample":2}"#,
            r#"{"model":"m","problem_id":0,"correct":true}"#,
            r#"{"model":"m","problem_id":-1,"correct":true}"#,
        ];
        for line in lines {
            for sample in [false, true] {
                let needs = Needs {
                    sample,
                    ..Needs::default()
                };
                let fast = parse_line(line, needs);
                let slow = parse_line_serde(line, needs);
                assert_eq!(fast, slow, "{line}");
            }
        }
    }

    /// A random line built from pieces: mostly valid records, with odd spacing, escaped and
    /// non-ASCII strings, duplicates, wrong types, NaN, huge numbers, and byte-level damage.
    fn generated_line(rng: &mut SplitMix64) -> String {
        fn pick<'a>(rng: &mut SplitMix64, items: &[&'a str]) -> &'a str {
            items[rng.below(items.len() as u64) as usize]
        }
        const STRINGS: &[&str] = &[
            r#""m""#,
            r#""p0001""#,
            r#""aime/24""#,
            r#""é模型""#,
            r#""a\"b""#,
            r#""\u00e9""#,
            "\"\u{1}\"",
            r#""""#,
            r#""\\""#,
        ];
        const NUMBERS: &[&str] = &[
            "0",
            "7",
            "12",
            "007",
            "-3",
            "-0",
            "1.5",
            "1e3",
            "2E-2",
            "18446744073709551615",
            "9999999999999999999",
            "99999999999999999999",
            "NaN",
            "-Infinity",
        ];
        const OTHER: &[&str] = &[
            "true",
            "false",
            "null",
            "tru",
            "nul",
            "[]",
            "[1,[2,{}]]",
            r#"{"a":[null,"x"]}"#,
            "[1,]",
            "{",
            "[NaN]",
        ];
        let value = |rng: &mut SplitMix64| match rng.below(3) {
            0 => pick(rng, STRINGS),
            1 => pick(rng, NUMBERS),
            _ => pick(rng, OTHER),
        };
        let mut fields: Vec<(String, String)> = Vec::new();
        let valid = |rng: &mut SplitMix64, key: &str| -> String {
            match key {
                "model" => pick(
                    rng,
                    &[
                        r#""m""#,
                        r#""qwen-7b""#,
                        r#""é模型""#,
                        r#""m""#,
                        r#""m\u00e9""#,
                    ],
                )
                .into(),
                "dataset" => pick(
                    rng,
                    &[r#""d""#, r#""aime""#, r#""é模型""#, r#""m\u00e9""#, "null"],
                )
                .into(),
                "problem_id" => pick(
                    rng,
                    &[
                        r#""p1""#,
                        r#""p2""#,
                        "3",
                        "0",
                        "18446744073709551615",
                        "-4",
                        r#""p1""#,
                        r#""p3""#,
                    ],
                )
                .into(),
                "correct" => pick(rng, &["true", "false"]).into(),
                "n" | "c" | "sample" => rng.below(12).to_string(),
                _ => pick(rng, &[r#""so \\boxed{2}""#, "[1,2]", "null", r#""4""#]).into(),
            }
        };
        // Half the lines are plain records with only harmless variation (the fast path's diet).
        let hostile = rng.bernoulli(0.5);
        let mut keys = vec!["model", "problem_id"];
        if rng.bernoulli(0.7) {
            keys.push("correct")
        } else {
            keys.extend(["n", "c"])
        }
        for extra in [
            "dataset",
            "sample",
            "answer",
            "response",
            "finish_reason",
            "x",
            "mod\\u0065l",
            "step",
            "tokens",
            "correct",
        ] {
            if rng.bernoulli(if hostile || extra == "dataset" || extra == "sample" {
                0.25
            } else {
                0.05
            }) && (hostile || extra != "correct")
            {
                keys.push(extra);
            }
        }
        if hostile && rng.bernoulli(0.1) {
            keys.remove(rng.below(keys.len() as u64) as usize);
        }
        if hostile && rng.bernoulli(0.05) {
            let again = keys[rng.below(keys.len() as u64) as usize];
            keys.push(again);
        }
        rng.shuffle(&mut keys);
        for key in keys {
            let v = if !hostile || rng.bernoulli(0.85) {
                valid(rng, key)
            } else {
                value(rng).to_string()
            };
            fields.push((format!("\"{key}\""), v));
        }
        let space =
            |rng: &mut SplitMix64| pick(rng, &["", "", "", " ", "\t", "  ", "\r"]).to_string();
        let mut line = space(rng) + "{";
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                line += &(space(rng) + ",");
            }
            line += &format!(
                "{}{k}{}:{}{v}{}",
                space(rng),
                space(rng),
                space(rng),
                space(rng)
            );
        }
        line += "}";
        line += &space(rng);
        // Byte-level damage, kept at char boundaries so the line stays a &str.
        if hostile && rng.bernoulli(0.3) {
            let cuts: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
            let at = cuts[rng.below(cuts.len() as u64) as usize];
            match rng.below(4) {
                0 => line.truncate(at),
                1 => {
                    line.remove(at);
                }
                2 => line.insert_str(
                    at,
                    pick(
                        rng,
                        &["{", "}", "[", "]", "\"", ",", ":", "\\", "0", "a", " x"],
                    ),
                ),
                _ => line.push_str(pick(rng, &[",", " x", "}", "{}"])),
            }
        }
        line
    }

    #[test]
    fn fast_scanner_agrees_with_serde_on_generated_lines() {
        let mut rng = SplitMix64::new(0x5eed);
        let (mut fast_hits, mut total) = (0, 0);
        // Carried from line to line as in a block: a wrong prediction must never change a result.
        let mut warm_order = [fast::KeyOrder::default(), fast::KeyOrder::default()];
        for _ in 0..40_000 {
            let line = generated_line(&mut rng);
            for sample in [false, true] {
                let needs = Needs {
                    sample,
                    ..Needs::default()
                };
                let warm = fast::scan_line(&line, 0, sample, &mut warm_order[sample as usize]);
                let warm = warm.and_then(|(core, end)| (end == line.len()).then_some(core));
                assert_eq!(warm, fast::scan_core(&line, sample), "{line}");
                let slow = parse_line_serde(&line, needs);
                // The public entry point (fast path first) gives exactly serde's answer...
                assert_eq!(parse_line(&line, needs), slow, "{line}");
                // ...and whatever the scanner accepts, serde accepts with the same core fields.
                if let Some(fast) = fast::scan_core(&line, sample) {
                    let slow = slow
                        .as_ref()
                        .unwrap_or_else(|e| panic!("fast path accepted a bad line {line}: {e:?}"));
                    assert_eq!(fast, CoreLine::of(slow), "{line}");
                    assert!(
                        matches!(fast.model, Cow::Borrowed(_))
                            && matches!(fast.problem_id, Cow::Borrowed(_))
                    );
                    fast_hits += 1;
                }
                total += 1;
            }
        }
        // The generator must exercise both paths.
        assert!(
            fast_hits > total / 5 && fast_hits < total * 9 / 10,
            "{fast_hits} of {total}"
        );
    }

    /// Collects what `read_core_parallel` hands over, in input order (sorted by position).
    fn read_parallel(
        files: &[PathBuf],
        threads: usize,
        skip: bool,
    ) -> Result<(Vec<String>, ReadStats), InputError> {
        let mut shards: Vec<Vec<(InputPosition, String)>> = vec![Vec::new(); threads];
        let stats = read_core_parallel(files, true, skip, &mut shards, |shard, l, at| {
            shard.push((at, format!("{l:?}")))
        })?;
        let mut all: Vec<(InputPosition, String)> = shards.into_iter().flatten().collect();
        all.sort();
        assert!(
            all.windows(2).all(|w| w[0].0 < w[1].0),
            "positions are unique"
        );
        Ok((all.into_iter().map(|r| r.1).collect(), stats))
    }

    fn read_sequential(
        files: &[PathBuf],
        skip: bool,
    ) -> Result<(Vec<String>, ReadStats), InputError> {
        let mut seen = Vec::new();
        let needs = Needs {
            sample: true,
            ..Needs::default()
        };
        let stats = read_files::<InputError>(files, needs, skip, |l, _| {
            seen.push(format!("{:?}", CoreLine::of(l)));
            Ok(())
        })?;
        Ok((seen, stats))
    }

    /// Several blocks' worth of lines: fast-path lines, escaped ones (slow path), blank and CRLF
    /// lines, one line longer than a block, and `bad` lines at the given line numbers.
    fn multi_block_text(lines: usize, bad: &[usize]) -> Vec<u8> {
        let mut rng = SplitMix64::new(7);
        let mut text = Vec::new();
        for i in 1..=lines {
            let line = if bad.contains(&i) {
                match i % 3 {
                    0 => b"{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":\"yes\"}".to_vec(),
                    1 => b"{\"model\":\"m\xff\",\"problem_id\":\"p\",\"correct\":true}".to_vec(),
                    _ => b"{\"model\":\"m\",\"problem_id\":\"p\",\"n\":2,\"c\":3}".to_vec(),
                }
            } else if i % 997 == 0 {
                format!("{{\"model\":\"m{}\",\"problem_id\":\"p\",\"correct\":true,\"response\":\"{}\"}}", i % 5, "y".repeat(BLOCK_BYTES + 10)).into_bytes()
            } else if i % 101 == 0 {
                Vec::new()
            } else if i % 37 == 0 {
                format!(
                    "{{\"model\":\"m\\u00e9{}\",\"problem_id\":{i},\"n\":{},\"c\":1}}\r",
                    i % 3,
                    1 + i % 4
                )
                .into_bytes()
            } else {
                // Random letters: the gzip copy must stay larger than two blocks.
                let pad: String = (0..rng.below(200))
                    .map(|_| (b'a' + rng.below(26) as u8) as char)
                    .collect();
                format!("{{\"model\":\"m{}\",\"dataset\":\"d\",\"problem_id\":\"p{}\",\"sample\":{i},\"correct\":{},\"answer\":\"{pad}\"}}", i % 5, i % 61, i % 2 == 0).into_bytes()
            };
            text.extend_from_slice(&line);
            if i < lines {
                text.push(b'\n');
            }
        }
        text
    }

    #[test]
    fn parallel_reader_matches_sequential_reader() {
        let dir = tempfile::tempdir().unwrap();
        let text = multi_block_text(12_000, &[]);
        assert!(
            text.len() > 8 * BLOCK_BYTES,
            "several blocks: {}",
            text.len()
        );
        let plain = write_file(&dir, "a.jsonl", &text);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text[..text.len() / 2]).unwrap();
        let mut bytes = gz.finish().unwrap();
        // a second gzip member continues the stream
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text[text.len() / 2..]).unwrap();
        bytes.extend(gz.finish().unwrap());
        let zipped = write_file(&dir, "b.gz", &bytes);
        assert!(
            bytes.len() > 2 * BLOCK_BYTES,
            "large enough to be read by several threads"
        );
        let empty = write_file(&dir, "e.jsonl", b"");
        let files = vec![plain.clone(), empty, zipped];
        let expected = read_sequential(&files, false).unwrap();
        assert!(expected.0.len() > 20_000);
        for threads in [1, 2, 3, 5] {
            assert_eq!(
                read_parallel(&files, threads, false).unwrap(),
                expected,
                "{threads} threads"
            );
        }
        let missing = dir.path().join("nope.jsonl");
        assert_eq!(
            read_parallel(&[plain, missing.clone()], 2, true).unwrap_err(),
            read_sequential(&[missing], true).unwrap_err()
        );
    }

    #[test]
    fn parallel_reader_errors_carry_exact_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let bad: Vec<usize> = vec![
            4_000, 4_001, 6_002, 9_000, 9_001, 9_002, 9_500, 9_600, 9_700, 9_800, 9_900, 11_000,
            11_999,
        ];
        let path = write_file(&dir, "rollouts.jsonl", &multi_block_text(12_000, &bad));
        for threads in [1, 2, 4] {
            let err = read_parallel(std::slice::from_ref(&path), threads, false).unwrap_err();
            assert_eq!(
                err,
                read_sequential(std::slice::from_ref(&path), false).unwrap_err()
            );
            assert_eq!(err.line, Some(4_000));
            let (records, stats) =
                read_parallel(std::slice::from_ref(&path), threads, true).unwrap();
            let expected = read_sequential(std::slice::from_ref(&path), true).unwrap();
            assert_eq!((records, &stats), (expected.0, &expected.1));
            assert_eq!(stats.skipped, bad.len() as u64);
            let lines: Vec<Option<u64>> = stats.first_skipped.iter().map(|e| e.line).collect();
            let first: Vec<Option<u64>> = bad[..SKIPPED_ERRORS_KEPT]
                .iter()
                .map(|&l| Some(l as u64))
                .collect();
            assert_eq!(lines, first);
        }
        // Errors are only reported from the first bad line on: a bad line in an early block wins
        // even when a later block finishes first.
        let path = write_file(&dir, "late.jsonl", &multi_block_text(12_000, &[11_998]));
        assert_eq!(
            read_parallel(&[path], 2, false).unwrap_err().line,
            Some(11_998)
        );
    }

    #[test]
    fn byte_finders_match_naive_search() {
        let hay: Vec<u8> = (0..300u32)
            .map(|i| [b'a', 0xc3, 0xa9, b'x', b' '][(i * 7 % 5) as usize])
            .collect();
        for special in [b'"', b'\\', 0x01, b'\n'] {
            for at in [0usize, 3, 7, 8, 15, 64, 299] {
                let mut h = hay.clone();
                h[at] = special;
                let naive = h.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
                assert_eq!(fast::find_string_special(&h), naive, "{special} at {at}");
                assert_eq!(find_newline(&h), h.iter().position(|&c| c == b'\n'));
            }
        }
        assert_eq!(fast::find_string_special(&hay), None);
        assert_eq!(find_newline(&hay), None);
    }

    fn write_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_plain_and_gzip_files_with_locations() {
        let dir = tempfile::tempdir().unwrap();
        let plain = write_file(&dir, "a.jsonl", b"{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":true}\r\n\n  \n{\"model\":\"m\",\"problem_id\":\"q\",\"n\":4,\"c\":1}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"model\":\"z\",\"problem_id\":\"p\",\"correct\":false}\n")
            .unwrap();
        let gz_path = write_file(&dir, "b.data", &gz.finish().unwrap());
        let mut seen = Vec::new();
        let stats =
            read_files::<InputError>(&[plain, gz_path], Needs::default(), false, |l, info| {
                seen.push((info.file_index, info.line, l.model.to_string(), l.samples()));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (0, 1, "m".into(), 1),
                (0, 4, "m".into(), 4),
                (1, 1, "z".into(), 1)
            ]
        );
        assert_eq!(stats.records, 3);
        assert_eq!(stats.skipped, 0);
    }

    #[test]
    fn lines_longer_than_the_read_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(3 << 20);
        let text = format!(
            "{{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":true,\"response\":\"{long}\"}}\n{{\"model\":\"m\",\"problem_id\":\"q\",\"correct\":false,\"response\":\"{long}\"}}"
        );
        let path = write_file(&dir, "long.jsonl", text.as_bytes());
        let mut seen = Vec::new();
        let stats = read_files::<InputError>(
            &[path],
            Needs {
                response: true,
                ..Needs::default()
            },
            false,
            |l, info| {
                seen.push((
                    info.line,
                    l.problem_id.to_string(),
                    l.response.as_ref().unwrap().len(),
                ));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            seen,
            vec![(1, "p".into(), 3 << 20), (2, "q".into(), 3 << 20)]
        );
        assert_eq!(stats.bytes, text.len() as u64);
    }

    #[test]
    fn bad_lines_stop_or_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = b"{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":true}\n{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":1}\n".to_vec();
        bytes.extend_from_slice(b"{\"model\":\"m\xff\",\"problem_id\":\"p\",\"correct\":true}\n");
        let path = write_file(&dir, "rollouts.jsonl", &bytes);
        let err = read_files::<InputError>(
            std::slice::from_ref(&path),
            Needs::default(),
            false,
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: field \"correct\": expected a boolean",
                path.display()
            )
        );
        let stats = read_files::<InputError>(
            std::slice::from_ref(&path),
            Needs::default(),
            true,
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!((stats.records, stats.skipped), (1, 2));
        assert!(
            stats.first_skipped[1]
                .to_string()
                .contains(":3: invalid UTF-8"),
            "{}",
            stats.first_skipped[1]
        );
        let missing = dir.path().join("nope.jsonl");
        let err = read_files::<InputError>(&[missing], Needs::default(), true, |_, _| Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("cannot open"));
        let empty = write_file(&dir, "empty.jsonl", b"");
        let stats =
            read_files::<InputError>(&[empty], Needs::default(), false, |_, _| Ok(())).unwrap();
        assert_eq!(stats.records, 0);
    }
}
