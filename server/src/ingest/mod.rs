//! Getting rollouts into caplens (issue 5).
//!
//! Every input format has one [`RolloutImporter`]: it recognises its files ([`RolloutImporter::sniff`]),
//! reads hints for the upload form ([`RolloutImporter::hints`]) and streams the file as
//! [`RolloutRecord`]s into a [`RecordSink`]. Everything after that (grading, token metrics,
//! storage, aggregates, idempotence, progress) is the one pipeline in [`pipeline`], whichever
//! way the file came in (REST, browser, CLI).
//!
//! Formats: [`native`] (caplens JSON Lines), [`formats`] (lm-eval, qwen-math, inspect, verl,
//! openai, lighteval). The JSON formats may be plain, gzip or zstd ([`open_text`]; decided by
//! magic bytes); lighteval's are parquet. Uploads are untrusted: every reader holds to the limits
//! of [`limits`] (bytes read, decompressed and kept), so that no file makes the server allocate
//! or inflate without bound.

pub mod formats;
pub mod limits;
pub mod native;
pub mod parquet_rows;
pub mod pipeline;
pub mod service;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use limits::{MAX_LINE_BYTES, SNIFF_BYTES};
pub use native::InputError;

use limits::{InflationGuard, LimitError, Tallied, Tally, ZSTD_WINDOW_LOG_MAX};

/// How a format names and describes itself: what its importer declares
/// ([`RolloutImporter::spec`]). The registry is the list of importers, [`formats::ALL`]; detection,
/// `--format`, `format=`, `GET /api/v1/formats`, openapi.json and the upload page all read it.
#[derive(Debug)]
pub struct FormatSpec {
    /// The name users give to `--format` / `format=`.
    pub name: &'static str,
    /// What the format is, for people.
    pub title: &'static str,
    /// The file names it comes in, for people (detection goes by content).
    pub extensions: &'static [&'static str],
}

/// A format caplens imports: a handle on one importer of the registry, compared by name.
#[derive(Clone, Copy)]
pub struct Format(&'static dyn RolloutImporter);

impl Format {
    /// Every format, in the registry's (detection) order.
    pub fn all() -> impl Iterator<Item = Format> {
        formats::ALL.iter().map(|importer| Format(*importer))
    }

    /// The names of every format, for messages and documents.
    pub fn names() -> Vec<&'static str> {
        Format::all().map(Format::name).collect()
    }

    pub fn spec(self) -> &'static FormatSpec {
        self.0.spec()
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// What the format is, for people.
    pub fn title(self) -> &'static str {
        self.spec().title
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::all().find(|f| f.name() == name)
    }

    /// The format of a name written in code (tests, built-in choices).
    ///
    /// # Panics
    /// When no importer of the registry has that name.
    #[track_caller]
    pub fn named(name: &str) -> Format {
        Format::from_name(name)
            .unwrap_or_else(|| panic!("no format {name:?}: one of {}", Format::names().join(", ")))
    }

    /// The format an importer of the registry reads.
    pub fn of(importer: &'static dyn RolloutImporter) -> Format {
        Format(importer)
    }

    /// The importer that reads this format.
    pub fn importer(self) -> &'static dyn RolloutImporter {
        self.0
    }
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Format {}

impl std::hash::Hash for Format {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl std::fmt::Debug for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Format({})", self.name())
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Format::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown format {name:?}: one of {}",
                Format::names().join(", ")
            ))
        })
    }
}

/// What a record says about correctness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordOutcome {
    /// One rollout with the file's verdict.
    Graded(bool),
    /// One rollout without a verdict: the pipeline grades `answer`/`response` against the
    /// reference with the verifier.
    #[default]
    Ungraded,
    /// `n` samples of which `c` correct, without the rollouts (native counts lines).
    Counts { n: u64, c: u64 },
}

/// Token-level data of one rollout, as far as the file gives it. All present vectors have
/// one entry per token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenData {
    pub tokens: Vec<String>,
    /// Logprob of each sampled token (`None` = not given; vLLM's -9999.0 is kept as given).
    pub logprobs: Vec<Option<f64>>,
    /// Per token, its top candidates as (token, logprob), most likely first as given.
    pub top_logprobs: Option<Vec<Vec<(String, f64)>>>,
    /// Per token, the exact entropy when the producer computed it.
    pub entropies: Option<Vec<Option<f64>>>,
    /// Per token, the exact RBF when the producer saw the full distribution.
    pub rbf: Option<Vec<Option<u32>>>,
    /// Per token, the last hidden state's norm (gradient-norm proxy, eq. 4).
    pub hidden_norms: Option<Vec<Option<f64>>>,
}

/// One rollout (or one counts record) in a format-independent shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutRecord {
    /// 1-based line of the file (for zip members: the member's index) for error messages.
    pub line: u64,
    /// The model, when the file names it per record (native); else the import's model.
    pub model: Option<String>,
    /// The dataset, when the file names it; else the import's dataset.
    pub dataset: Option<String>,
    /// The problem's id within its dataset (lm-eval doc_id, qwen idx, verl input hash...).
    pub problem_id: String,
    pub prompt: Option<String>,
    /// The problem's tags, when the file gives them (native `tags`).
    pub tags: Vec<String>,
    /// Reference answer (ground truth), as given.
    pub reference: Option<String>,
    /// Sample index within the problem, when the file gives one.
    pub sample: Option<u64>,
    pub outcome: RecordOutcome,
    pub response: Option<String>,
    /// The final answer as extracted by the producing tool.
    pub answer: Option<String>,
    pub finish_reason: Option<String>,
    /// Training step, when the file says (verl).
    pub step: Option<i64>,
    pub tokens: Option<TokenData>,
}

/// What a file says about the run, to prefill the upload form. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileHints {
    pub model: Option<String>,
    pub dataset: Option<String>,
    pub step: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<i64>,
    /// Samples per problem, when the head of the file shows it.
    pub n_per_problem: Option<i64>,
    /// Whether records carry token logprobs.
    pub has_tokens: bool,
    /// Records seen in the head of the file (a sample, not the total).
    pub records_in_head: u64,
}

/// Why a read stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadStop {
    /// Bad input that cannot be skipped (I/O, corrupt archive) or a bad line while not skipping.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The sink gave up (storage failure, cancelled); the message is the sink's.
    #[error("{0}")]
    Sink(String),
}

/// What a file says about the run as a whole, as opposed to one record: which tool wrote it, the
/// tool's own identity of the run (so the same run uploaded in another container format is
/// recognised), how the run ended, and what the file's verdicts are called.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceInfo {
    /// The writing tool and its version when the file says, e.g. `inspect_ai 0.3.285`.
    pub tool: Option<String>,
    /// The tool's own identity of the run, stable across the file's containers (Inspect's
    /// `eval.eval_id`: `inspect:<eval_id>`; lm-eval's task, date and hashes of its samples file:
    /// `lm-eval:<task>@<date>#<hash>`).
    pub run_identity: Option<String>,
    /// How the tool's run ended when not normally (`cancelled`, `error`, `started`); `None` =
    /// completed or not said.
    pub status: Option<String>,
    /// What the file's own verdicts are, for people (`Inspect scorer match (C/I)`,
    /// `lm-eval exact_match`).
    pub verdict: Option<String>,
}

/// Where an importer sends what it reads.
pub trait RecordSink {
    /// What the file says about the whole run; sent at most once per file, before or after
    /// its records.
    fn source(&mut self, info: SourceInfo) -> Result<(), ReadStop> {
        let _ = info;
        Ok(())
    }
    /// One valid record.
    fn record(&mut self, record: RolloutRecord) -> Result<(), ReadStop>;
    /// One invalid record (a line that does not parse or validate). The sink decides whether
    /// to skip it (returns `Ok`) or stop (returns the error).
    fn reject(&mut self, error: InputError) -> Result<(), ReadStop>;
}

/// One input file.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    /// How errors name the file (the user's file name, not a spool path).
    pub name: String,
    /// Bytes of the file (as stored, before decompression) read so far: the progress bar.
    pub progress: Arc<AtomicU64>,
}

impl InputFile {
    pub fn new(path: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        InputFile {
            path: path.into(),
            name: name.into(),
            progress: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A file-level error (no line).
    pub fn error(&self, message: impl Into<String>) -> InputError {
        InputError {
            file: self.name.clone(),
            line: None,
            field: None,
            message: message.into(),
        }
    }

    /// An error at `line`, on `field` when one field is at fault.
    pub fn line_error(
        &self,
        line: u64,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> InputError {
        InputError {
            file: self.name.clone(),
            line: Some(line),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// A format reader. Implementations are stateless; one value per format in [`importers`].
pub trait RolloutImporter: Send + Sync {
    /// The format's name, title and file names: its row in the registry.
    fn spec(&self) -> &'static FormatSpec;

    /// Whether `head` (the first bytes of the file, decompressed; may end mid-line) and the
    /// file name look like this format. Used by [`detect`]; must be cheap and never panic.
    fn sniff(&self, file_name: &str, head: &[u8]) -> bool;

    /// What the file says about model, dataset, step and sampling, read from its head only.
    fn hints(&self, input: &InputFile) -> Result<FileHints, InputError>;

    /// Streams every record of the file into `sink`, in file order, with bounded memory
    /// (never the whole file). Each bad line goes to [`RecordSink::reject`] with its file,
    /// line and field; I/O errors and corrupt archives stop the read with `ReadStop::Input`.
    fn read(&self, input: &InputFile, sink: &mut dyn RecordSink) -> Result<(), ReadStop>;
}

/// The format of a file by its content (and name, for zip archives), or an error that says what
/// the file looks like and how to name the format.
pub fn detect(input: &InputFile) -> Result<Format, InputError> {
    let head = read_head(input, SNIFF_BYTES)?;
    detect_head(&input.name, &head).ok_or_else(|| {
        if let Some(note) = formats::json_document_note(&input.name, &head) {
            return input.error(note);
        }
        let names = Format::names();
        input.error(format!(
            "unrecognised format (the first line is not a record of any known format); name it with format= / --format, one of: {}",
            names.join(", ")
        ))
    })
}

/// [`detect`] on bytes already read.
pub fn detect_head(file_name: &str, head: &[u8]) -> Option<Format> {
    Format::all().find(|f| f.importer().sniff(file_name, head))
}

/// The first `limit` bytes of the file, decompressed (gzip/zstd), and never more than the sniff
/// budget [`SNIFF_BYTES`] whatever `limit` asks. Zip archives and parquet files are returned as
/// stored (their importers sniff the magic and the names).
pub fn read_head(input: &InputFile, limit: usize) -> Result<Vec<u8>, InputError> {
    let limit = limit.min(SNIFF_BYTES);
    let file =
        std::fs::File::open(&input.path).map_err(|e| input.error(format!("cannot open: {e}")))?;
    let mut reader = decompress(file).map_err(|e| input.error(format!("cannot read: {e}")))?;
    let mut head = Vec::with_capacity(limit.min(1 << 20));
    reader
        .by_ref()
        .take(limit as u64)
        .read_to_end(&mut head)
        .map_err(|e| input.error(format!("cannot read: {e}")))?;
    Ok(head)
}

/// Compression of a file, by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn of_magic(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A reader of `inner` that decompresses gzip or zstd (by magic bytes) and passes anything else
/// through unchanged. The decompressed stream stops with [`LimitError::Inflation`] when it
/// outgrows its compressed size ([`limits::MAX_INFLATION_RATIO`]), and zstd windows are
/// limited to [`ZSTD_WINDOW_LOG_MAX`].
pub fn decompress<R: Read + 'static>(inner: R) -> std::io::Result<Box<dyn BufRead>> {
    let compressed = Tally::default();
    let mut inner = BufReader::with_capacity(
        256 * 1024,
        Tallied {
            inner,
            tally: compressed.clone(),
        },
    );
    let magic = inner.fill_buf()?;
    Ok(match Compression::of_magic(magic) {
        Compression::Gzip => Box::new(BufReader::with_capacity(
            256 * 1024,
            InflationGuard::new(flate2::bufread::MultiGzDecoder::new(inner), compressed),
        )),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(inner)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(BufReader::with_capacity(
                256 * 1024,
                InflationGuard::new(decoder, compressed),
            ))
        }
        Compression::None => Box::new(inner),
    })
}

/// Opens a line-oriented file for reading: decompressed, and counting the bytes read from disk
/// into `input.progress`.
pub fn open_text(input: &InputFile) -> Result<Box<dyn BufRead>, InputError> {
    let file =
        std::fs::File::open(&input.path).map_err(|e| input.error(format!("cannot open: {e}")))?;
    let counted = CountingReader {
        inner: file,
        progress: input.progress.clone(),
    };
    decompress(counted).map_err(|e| input.error(format!("cannot read: {e}")))
}

/// Counts bytes read into a shared counter.
pub struct CountingReader<R> {
    pub inner: R,
    pub progress: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads `input` line by line (decompressed) and calls `each(line_no, text)` for every
/// non-blank line; invalid UTF-8 goes to `sink.reject`. The shared loop of the JSON Lines
/// importers. Lines up to [`MAX_LINE_BYTES`] are read into one reused buffer; a longer line is
/// skipped and rejected without being held. A file that is one JSON
/// document over several lines (an lm-eval results file, an indented `.json`) stops the read at
/// once with what it is ([`formats::json_document_note`]) instead of a parse error on each line.
pub fn for_each_line(
    input: &InputFile,
    sink: &mut dyn RecordSink,
    mut each: impl FnMut(u64, &str, &mut dyn RecordSink) -> Result<(), ReadStop>,
) -> Result<(), ReadStop> {
    let head = read_head(input, SNIFF_BYTES)?;
    if let Some(note) = formats::json_document_note(&input.name, &head) {
        let first_line = head
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .filter(|&&b| b == b'\n')
            .count() as u64
            + 1;
        return Err(ReadStop::Input(input.line_error(first_line, None, note)));
    }
    let mut reader = open_text(input)?;
    let mut buf = Vec::with_capacity(LINE_BUFFER_BYTES);
    let mut line_no = 0u64;
    let read_error = |line: u64, e: std::io::Error| {
        input.line_error(
            line,
            None,
            match LimitError::of(&e) {
                Some(limit) => format!("the file {limit}"),
                None => format!("read error: {e}"),
            },
        )
    };
    loop {
        buf.clear();
        if buf.capacity() > 64 * LINE_BUFFER_BYTES {
            // After a long line, give the memory back.
            buf.shrink_to(LINE_BUFFER_BYTES);
        }
        // At most the limit is read, so `buf` grows (by doubling from a power of two) to the
        // limit itself and no further.
        let read = reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|e| read_error(line_no + 1, e))?;
        if read == 0 {
            return Ok(());
        }
        line_no += 1;
        if buf.len() == MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            let at_end = reader
                .fill_buf()
                .map_err(|e| read_error(line_no, e))?
                .is_empty();
            if !at_end {
                // A line this long is a decompression bomb or not JSON Lines: skip to its end
                // without holding it.
                skip_line(&mut reader).map_err(|e| read_error(line_no, e))?;
                sink.reject(input.line_error(
                    line_no,
                    None,
                    format!(
                        "line longer than {} MiB; caplens reads lines up to that length",
                        MAX_LINE_BYTES >> 20
                    ),
                ))?;
                continue;
            }
        }
        let mut bytes = &buf[..];
        while let Some((&last, rest)) = bytes.split_last() {
            if last == b'\n' || last == b'\r' {
                bytes = rest;
            } else {
                break;
            }
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => each(line_no, text, sink)?,
            Err(e) => sink.reject(input.line_error(
                line_no,
                None,
                format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
            ))?,
        }
    }
}

/// The line buffer's usual size (a power of two, so that it grows to [`MAX_LINE_BYTES`] exactly).
const LINE_BUFFER_BYTES: usize = 64 * 1024;

/// Consumes the rest of the current line (through its newline) without keeping it.
fn skip_line(reader: &mut dyn BufRead) -> std::io::Result<()> {
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(());
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// The user-facing file name of a path (its last component).
pub fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
