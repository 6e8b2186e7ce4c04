//! Reader of the caplens native JSON Lines format (docs/formats/native.md).
//!
//! One JSON object per line, plain or gzip (detected by its magic bytes, not the file name).
//! Files are streamed line by line with one reused buffer; string fields borrow from the line
//! when they contain no escape; fields the caller does not need ([`Needs`]) are skipped without
//! being materialised.
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
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

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

/// One `[token, logprob]` pair of `top_logprobs`.
pub type TopLogprob<'a> = (Cow<'a, str>, f64);

/// One parsed line. Fields not asked for in [`Needs`] are `None`.
#[derive(Debug, Clone, PartialEq)]
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
    pub finish_reason: Option<Cow<'a, str>>,
    pub step: Option<i64>,
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
        match self.outcome {
            Outcome::Rollout { .. } => 1,
            Outcome::Counts { n, .. } => n,
        }
    }

    /// Number of correct samples this line stands for.
    pub fn correct_samples(&self) -> u64 {
        match self.outcome {
            Outcome::Rollout { correct } => correct as u64,
            Outcome::Counts { c, .. } => c,
        }
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
        let file_err = |message: String| InputError { file: display.clone(), line: None, field: None, message };
        let file = File::open(path).map_err(|e| file_err(format!("cannot open: {e}")))?;
        let mut reader = open_reader(file).map_err(|e| file_err(format!("cannot read: {e}")))?;
        let mut line_no = 0u64;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| InputError { file: display.clone(), line: Some(line_no + 1), field: None, message: format!("read error: {e}") })?;
            if read == 0 {
                break;
            }
            line_no += 1;
            stats.bytes += read as u64;
            let bytes = trim_line_end(&buf);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = std::str::from_utf8(bytes)
                .map_err(|e| line_error(&display, line_no, None, format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1)))
                .and_then(|text| parse_line(text, needs).map(|l| (text, l)).map_err(|(field, msg)| line_error(&display, line_no, field, msg)));
            match parsed {
                Ok((text, record)) => {
                    stats.records += 1;
                    each(&record, &LineInfo { file_index, file: path, line: line_no, raw: text })?;
                }
                Err(err) if skip_invalid => {
                    stats.skipped += 1;
                    if stats.first_skipped.len() < SKIPPED_ERRORS_KEPT {
                        stats.first_skipped.push(err);
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(stats)
}

fn line_error(file: &str, line: u64, field: Option<&'static str>, message: String) -> InputError {
    InputError { file: file.to_string(), line: Some(line), field: field.map(str::to_string), message }
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

/// Plain or gzip (magic bytes 1f 8b; concatenated gzip members are read as one stream).
fn open_reader(file: File) -> std::io::Result<Box<dyn BufRead>> {
    let mut plain = BufReader::with_capacity(1 << 20, file);
    let head = plain.fill_buf()?;
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        Ok(Box::new(BufReader::with_capacity(1 << 20, flate2::bufread::MultiGzDecoder::new(plain))))
    } else {
        Ok(Box::new(plain))
    }
}

/// Parses and validates one line. On failure: the field at fault (if any) and the message.
pub fn parse_line(text: &str, needs: Needs) -> Result<NativeLine<'_>, (Option<&'static str>, String)> {
    let current = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = de
        .deserialize_map(LineVisitor { needs, current: &current })
        .and_then(|raw| de.end().map(|_| raw))
        .map_err(|e| describe_json_error(text, &e, current.get()))?;
    raw.validate()
}

fn describe_json_error(text: &str, e: &serde_json::Error, field: Option<&'static str>) -> (Option<&'static str>, String) {
    use serde_json::error::Category;
    match (e.classify(), field) {
        (Category::Data, Some(f)) => (Some(f), expected_for(f).to_string()),
        (Category::Data, None) => (None, format!("{}", strip_position(e))),
        (Category::Syntax | Category::Eof, f) => {
            // Point out NaN / Infinity, which Python's json module writes but JSON forbids.
            let col = e.column().saturating_sub(1);
            let rest = text.get(col..).unwrap_or("");
            let rest = rest.trim_start_matches(|c: char| c == '[' || c == ',' || c == ' ' || c == '-');
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
        "dataset" | "response" | "answer" | "reference" | "finish_reason" => "expected a string or null",
        "tokens" => "expected an array of strings",
        "token_logprobs" | "token_entropies" => "expected an array of numbers (null for a missing value)",
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
        Ok(TopRow(pairs.unwrap_or_default().into_iter().map(|(t, p)| (t.0, p)).collect()))
    }
}

#[derive(Default)]
struct RawLine<'a> {
    model: Option<Cow<'a, str>>,
    problem_id: Option<Cow<'a, str>>,
    dataset: Option<Cow<'a, str>>,
    correct: Option<bool>,
    n: Option<u64>,
    c: Option<u64>,
    sample: Option<u64>,
    response: Option<Cow<'a, str>>,
    answer: Option<Cow<'a, str>>,
    reference: Option<Cow<'a, str>>,
    tokens: Option<Vec<Cow<'a, str>>>,
    token_logprobs: Option<Vec<Option<f64>>>,
    top_logprobs: Option<Vec<Vec<TopLogprob<'a>>>>,
    token_entropies: Option<Vec<Option<f64>>>,
    finish_reason: Option<Cow<'a, str>>,
    step: Option<i64>,
    /// Bit per known field, to reject duplicates.
    seen: u32,
}

impl<'a> RawLine<'a> {
    fn validate(self) -> Result<NativeLine<'a>, (Option<&'static str>, String)> {
        let missing = |f: &'static str| (Some(f), "missing (required)".to_string());
        let model = self.model.ok_or_else(|| missing("model"))?;
        let problem_id = self.problem_id.ok_or_else(|| missing("problem_id"))?;
        let outcome = match (self.correct, self.n, self.c) {
            (Some(correct), None, None) => Outcome::Rollout { correct },
            (Some(_), _, _) => {
                let f = if self.n.is_some() { "n" } else { "c" };
                return Err((Some(f), "a line gives either \"correct\" or \"n\" and \"c\", not both".into()));
            }
            (None, Some(n), Some(c)) => {
                if c > n {
                    return Err((Some("c"), format!("{c} is greater than n = {n}")));
                }
                Outcome::Counts { n, c }
            }
            (None, Some(_), None) => return Err(missing("c")),
            (None, None, Some(_)) => return Err(missing("n")),
            (None, None, None) => return Err((Some("correct"), "missing (give \"correct\", or \"n\" and \"c\")".into())),
        };
        Ok(NativeLine {
            model,
            problem_id,
            dataset: self.dataset,
            outcome,
            sample: self.sample,
            response: self.response,
            answer: self.answer,
            reference: self.reference,
            tokens: self.tokens,
            token_logprobs: self.token_logprobs,
            top_logprobs: self.top_logprobs,
            token_entropies: self.token_entropies,
            finish_reason: self.finish_reason,
            step: self.step,
        })
    }
}

const FIELDS: [&str; 16] = [
    "model", "problem_id", "dataset", "correct", "n", "c", "sample", "response", "answer", "reference", "tokens",
    "token_logprobs", "top_logprobs", "token_entropies", "finish_reason", "step",
];

struct LineVisitor<'c> {
    needs: Needs,
    /// The field whose value is being parsed, so that an error can name it.
    current: &'c Cell<Option<&'static str>>,
}

impl<'de> Visitor<'de> for LineVisitor<'_> {
    type Value = RawLine<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawLine<'de>, A::Error> {
        let mut raw = RawLine::default();
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
                "model" => raw.model = Some(map.next_value::<CowStr>()?.0),
                "problem_id" => raw.problem_id = Some(map.next_value::<IdStr>()?.0),
                "dataset" => raw.dataset = map.next_value::<Option<CowStr>>()?.map(|s| s.0),
                "correct" => raw.correct = Some(map.next_value()?),
                "n" => raw.n = Some(map.next_value()?),
                "c" => raw.c = Some(map.next_value()?),
                "sample" => take!(needs.sample, raw.sample, |v: Option<u64>| v),
                "response" => take!(needs.response, raw.response, |v: Option<CowStr<'de>>| v.map(|s| s.0)),
                "answer" => take!(needs.answer, raw.answer, |v: Option<CowStr<'de>>| v.map(|s| s.0)),
                "reference" => take!(needs.reference, raw.reference, |v: Option<CowStr<'de>>| v.map(|s| s.0)),
                "tokens" => take!(needs.tokens, raw.tokens, |v: Option<Vec<CowStr<'de>>>| v
                    .map(|t| t.into_iter().map(|s| s.0).collect())),
                "token_logprobs" => take!(needs.token_logprobs, raw.token_logprobs, |v: Option<Vec<Option<f64>>>| v),
                "top_logprobs" => take!(needs.top_logprobs, raw.top_logprobs, |v: Option<Vec<TopRow<'de>>>| v
                    .map(|rows| rows.into_iter().map(|r| r.0).collect())),
                "token_entropies" => take!(needs.token_entropies, raw.token_entropies, |v: Option<Vec<Option<f64>>>| v),
                "finish_reason" => take!(needs.finish_reason, raw.finish_reason, |v: Option<CowStr<'de>>| v.map(|s| s.0)),
                "step" => take!(needs.step, raw.step, |v: Option<i64>| v),
                _ => unreachable!("every name of FIELDS is handled"),
            }
            self.current.set(None);
        }
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn token_fields() {
        let l = parse(r#"{"model":"m","problem_id":"p","correct":false,"tokens":["a","b"],"token_logprobs":[null,-0.5],"top_logprobs":[[["a",-0.1],["c",-2.5]],null],"token_entropies":[0.3,null]}"#).unwrap();
        assert_eq!(l.token_logprobs, Some(vec![None, Some(-0.5)]));
        assert_eq!(l.top_logprobs.as_ref().unwrap()[0], vec![(Cow::Borrowed("a"), -0.1), (Cow::Borrowed("c"), -2.5)]);
        assert!(l.top_logprobs.as_ref().unwrap()[1].is_empty());
        // not needed: skipped
        let l = parse_line(r#"{"model":"m","problem_id":"p","correct":false,"response":"long","token_logprobs":[1]}"#, Needs::default()).unwrap();
        assert!(l.response.is_none() && l.token_logprobs.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let err = |t: &str| parse(t).unwrap_err();
        assert_eq!(err(r#"{"model":"m","problem_id":"p","correct":"yes"}"#), (Some("correct"), "expected a boolean".into()));
        assert_eq!(err(r#"{"problem_id":"p","correct":true}"#).0, Some("model"));
        assert_eq!(err(r#"{"model":"m","correct":true}"#).0, Some("problem_id"));
        assert_eq!(err(r#"{"model":"m","problem_id":"p"}"#).0, Some("correct"));
        assert_eq!(err(r#"{"model":"m","problem_id":"p","n":3,"c":5}"#), (Some("c"), "5 is greater than n = 3".into()));
        assert_eq!(err(r#"{"model":"m","problem_id":"p","n":3}"#).0, Some("c"));
        assert_eq!(err(r#"{"model":"m","problem_id":"p","n":-1,"c":0}"#), (Some("n"), "expected a non-negative integer".into()));
        assert_eq!(err(r#"{"model":"m","problem_id":"p","correct":true,"n":1,"c":1}"#).0, Some("n"));
        assert_eq!(err(r#"{"model":"m","model":"x","problem_id":"p","correct":true}"#).0, Some("model"));
        let (field, msg) = err(r#"{"model":"m","problem_id":"p","correct":true,"token_logprobs":[-0.1,NaN]}"#);
        assert_eq!(field, Some("token_logprobs"));
        assert!(msg.contains("NaN"), "{msg}");
        // NaN is rejected even in a field the caller skips: the line is not JSON
        assert!(parse_line(r#"{"model":"m","problem_id":"p","correct":true,"token_logprobs":[NaN]}"#, Needs::default()).is_err());
        assert!(err(r#"{"model":"m","problem_id":"p","correct":true} trailing"#).1.contains("invalid JSON"));
        assert!(err(r#"[1,2]"#).1.contains("object"));
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
        gz.write_all(b"{\"model\":\"z\",\"problem_id\":\"p\",\"correct\":false}\n").unwrap();
        let gz_path = write_file(&dir, "b.data", &gz.finish().unwrap());
        let mut seen = Vec::new();
        let stats = read_files::<InputError>(&[plain, gz_path], Needs::default(), false, |l, info| {
            seen.push((info.file_index, info.line, l.model.to_string(), l.samples()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0, 1, "m".into(), 1), (0, 4, "m".into(), 4), (1, 1, "z".into(), 1)]);
        assert_eq!(stats.records, 3);
        assert_eq!(stats.skipped, 0);
    }

    #[test]
    fn bad_lines_stop_or_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = b"{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":true}\n{\"model\":\"m\",\"problem_id\":\"p\",\"correct\":1}\n".to_vec();
        bytes.extend_from_slice(b"{\"model\":\"m\xff\",\"problem_id\":\"p\",\"correct\":true}\n");
        let path = write_file(&dir, "rollouts.jsonl", &bytes);
        let err = read_files::<InputError>(&[path.clone()], Needs::default(), false, |_, _| Ok(())).unwrap_err();
        assert_eq!(err.to_string(), format!("{}:2: field \"correct\": expected a boolean", path.display()));
        let stats = read_files::<InputError>(&[path.clone()], Needs::default(), true, |_, _| Ok(())).unwrap();
        assert_eq!((stats.records, stats.skipped), (1, 2));
        assert!(stats.first_skipped[1].to_string().contains(":3: invalid UTF-8"), "{}", stats.first_skipped[1]);
        let missing = dir.path().join("nope.jsonl");
        let err = read_files::<InputError>(&[missing], Needs::default(), true, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("cannot open"));
        let empty = write_file(&dir, "empty.jsonl", b"");
        let stats = read_files::<InputError>(&[empty], Needs::default(), false, |_, _| Ok(())).unwrap();
        assert_eq!(stats.records, 0);
    }
}
