//! Helpers shared by the third-party importers: lenient JSON parsing of lines written by
//! Python, sniffing a possibly truncated head, describing JSON types in error messages, and
//! reading hints from the first records of a file.

use crate::ingest::limits::{KeptBudget, KeptKey, KeptValue};
use crate::ingest::{InputError, InputFile, ReadStop, RecordSink, RolloutImporter, RolloutRecord};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;

/// Parses one line as a JSON object. Python's `json` module writes `NaN`, `Infinity` and
/// `-Infinity` (not JSON); the tools we read are written in Python, so these bare words are read
/// as `null` (a missing value) rather than failing the line ([`PythonJson`]).
pub(crate) fn parse_object(text: &str) -> Result<Map<String, Value>, String> {
    let value = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(first) => {
            let mut fixed = Vec::with_capacity(text.len() + 16);
            PythonJson::new(text.as_bytes())
                .read_to_end(&mut fixed)
                .expect("reading from memory cannot fail");
            if fixed == text.as_bytes() {
                return Err(invalid_json(&first));
            }
            serde_json::from_slice::<Value>(&fixed).map_err(|_| invalid_json(&first))?
        }
    };
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("expected a JSON object, got {}", kind(&other))),
    }
}

fn invalid_json(e: &serde_json::Error) -> String {
    format!("invalid JSON: {e}")
}

/// JSON as Python's `json` module writes it, made strict JSON while it is read: the bare words
/// `NaN`, `Infinity` and `-Infinity` outside strings become `null` (a missing value: caplens
/// stores no non-finite number). Streams (bounded memory), so whole documents such as Inspect's
/// `.json` logs and `.eval` members go through it as well as single lines; words cut across two
/// reads of the inner reader are recognised.
pub(crate) struct PythonJson<R> {
    inner: R,
    /// Bytes read from `inner` and not yet passed on.
    pending: Vec<u8>,
    /// Output not yet handed to the caller (`pending` already rewritten).
    out: Vec<u8>,
    out_pos: usize,
    in_string: bool,
    escaped: bool,
    eof: bool,
}

/// The bare words rewritten by [`PythonJson`]; the longest is 9 bytes.
const NON_FINITE: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];

impl<R: Read> PythonJson<R> {
    pub(crate) fn new(inner: R) -> Self {
        PythonJson {
            inner,
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            in_string: false,
            escaped: false,
            eof: false,
        }
    }

    /// Rewrites as much of `pending` as can be decided into `out`: all of it at end of input,
    /// else up to a possible word that the next read may complete.
    fn rewrite(&mut self) {
        self.out.clear();
        self.out_pos = 0;
        let bytes = &self.pending;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                self.out.push(b);
                i += 1;
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    self.out.push(b);
                    i += 1;
                }
                b'N' | b'I' | b'-' => {
                    let rest = &bytes[i..];
                    if let Some(word) = NON_FINITE.iter().find(|w| rest.starts_with(w)) {
                        self.out.extend_from_slice(b"null");
                        i += word.len();
                    } else if !self.eof && NON_FINITE.iter().any(|w| w.starts_with(rest)) {
                        // Maybe a word cut by the end of this read: decide with more input.
                        break;
                    } else {
                        self.out.push(b);
                        i += 1;
                    }
                }
                _ => {
                    self.out.push(b);
                    i += 1;
                }
            }
        }
        self.pending.drain(..i);
    }
}

impl<R: Read> Read for PythonJson<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.out_pos == self.out.len() {
            if self.eof && self.pending.is_empty() {
                return Ok(0);
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = if self.eof {
                0
            } else {
                loop {
                    match self.inner.read(&mut chunk) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            };
            if n == 0 {
                self.eof = true;
            }
            self.pending.extend_from_slice(&chunk[..n]);
            self.rewrite();
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// What a file is when it is one JSON document rather than JSON Lines, for the messages of the
/// JSON Lines importers ([`crate::ingest::for_each_line`]) and of detection: an lm-eval results
/// file, an Inspect log, or any JSON document spread over several lines. `None` when the head
/// looks like JSON Lines, or is not JSON at all (the line parser says what is wrong then).
pub(crate) fn json_document_note(file_name: &str, head: &[u8]) -> Option<String> {
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    if !matches!(head[start], b'{' | b'[') {
        return None;
    }
    let mut strict = Vec::with_capacity(head.len() + 64);
    PythonJson::new(&head[start..])
        .read_to_end(&mut strict)
        .expect("reading from memory cannot fail");
    // lm-eval's results_<date>.json (indented, but recognised on one line too).
    if let Some(doc) = partial_object(&strict) {
        let lm_eval_key = [
            "configs",
            "versions",
            "n-shot",
            "lm_eval_version",
            "higher_is_better",
        ]
        .iter()
        .any(|k| doc.has(k));
        if doc.has("results") && (lm_eval_key || file_stem(file_name).starts_with("results_")) {
            return Some(
                "this looks like an lm-eval results file (results_*.json), not samples; upload the samples_*.jsonl written with --log_samples".into(),
            );
        }
    }
    // JSON Lines: the first line is a whole value (or broken in a way its parser reports).
    let first_line_end = strict.iter().position(|&b| b == b'\n')?;
    match serde_json::from_slice::<IgnoredAny>(&strict[..first_line_end]) {
        Ok(_) => return None,
        Err(e) if !e.is_eof() => return None,
        Err(_) => {}
    }
    // ... and a document goes on over the next lines (to its end, or to the end of the head).
    let mut values = serde_json::Deserializer::from_slice(&strict).into_iter::<IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => {}
        Some(Err(e)) if e.is_eof() => {}
        _ => return None,
    }
    if super::inspect::InspectImporter.sniff(file_name, head) {
        return Some(
            "this is an Inspect AI log (one JSON document), not JSON Lines; import it with format inspect (--format inspect)".into(),
        );
    }
    Some(
        "this is a JSON document spread over several lines, not JSON Lines (one record per line)"
            .into(),
    )
}

/// "a string", "a number", ... for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An identifier: a non-empty string as given, or an integer (or an integral float) as its
/// decimal string, so that `7` and `"7"` name the same problem.
pub(crate) fn id_string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::String(_) => {
            Err("expected a non-empty string or an integer, got an empty string".into())
        }
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Ok(u.to_string()),
            (None, Some(i)) => Ok(i.to_string()),
            _ => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(format!("{}", f as i64)),
                _ => Err(format!(
                    "expected a string or an integer, got the number {n}"
                )),
            },
        },
        other => Err(format!(
            "expected a string or an integer, got {}",
            kind(other)
        )),
    }
}

/// A scalar as text: strings as given, numbers as written, booleans as `true`/`false`.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A reference answer: a string as given, a number as written, a list (alternative answers,
/// e.g. aliases) as its first element; `Ok(None)` for null or an empty list; `Err(kind)` for an
/// object or a list whose first element is not a scalar.
pub(crate) fn reference_text(v: &Value) -> Result<Option<String>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => match items.first() {
            None => Ok(None),
            Some(first) => scalar_text(first)
                .map(Some)
                .ok_or("a list whose first element is not a string or a number"),
        },
        Value::Object(_) => Err("an object"),
        other => Ok(scalar_text(other)),
    }
}

/// A number given as a JSON number or as a numeric string (lm-eval stringifies leaves).
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// An integer given as a JSON number or a numeric string.
pub(crate) fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// The top-level keys of a JSON object whose text may be cut off (a head of the file), with the
/// values that were complete. `None` when the text does not start like a JSON object.
#[derive(Debug, Default)]
pub(crate) struct PartialObject {
    /// Keys in order; the last one's value may be missing (cut off).
    pub keys: Vec<String>,
    pub values: Map<String, Value>,
}

impl PartialObject {
    pub fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key)
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }
}

/// Parses `text` as far as it goes as one JSON object (see [`PartialObject`]).
pub(crate) fn partial_object(text: &[u8]) -> Option<PartialObject> {
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    if text[start] != b'{' {
        return None;
    }
    let mut out = PartialObject::default();
    let mut de = serde_json::Deserializer::from_slice(&text[start..]);
    // Errors (truncation, or anything else) end the scan; what was read so far is the answer.
    let _ = de::Deserializer::deserialize_map(&mut de, PartialVisitor(&mut out));
    Some(out)
}

struct PartialVisitor<'a>(&'a mut PartialObject);

impl<'de> Visitor<'de> for PartialVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            self.0.keys.push(key.clone());
            let value = map.next_value::<Value>()?;
            self.0.values.insert(key, value);
        }
        Ok(())
    }
}

/// The first non-blank line of a head (the whole head when it has no line break: a line longer
/// than the head) as a [`PartialObject`].
pub(crate) fn first_line_object(head: &[u8]) -> Option<PartialObject> {
    let line = head
        .split(|&b| b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))?;
    partial_object(line)
}

/// The name of `input` without directories, compression suffix and `.jsonl`/`.json`.
pub(crate) fn file_stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut stem = base;
    for suffix in [".gz", ".zst", ".zstd"] {
        if let Some(s) = stem.strip_suffix(suffix) {
            stem = s;
            break;
        }
    }
    for suffix in [".jsonl", ".json", ".eval"] {
        if let Some(s) = stem.strip_suffix(suffix) {
            return s;
        }
    }
    stem
}

/// The directory the file sits in, when it is known: from the user's name if it has a
/// directory, else from the path when the path's last component is the user's name (a local
/// file, not an upload spooled under another name).
pub(crate) fn parent_dir_name(input: &InputFile) -> Option<String> {
    let mut parts = input.name.rsplit(['/', '\\']);
    let base = parts.next()?;
    if let Some(dir) = parts.next().filter(|d| !d.is_empty()) {
        return Some(dir.to_string());
    }
    if input.path.file_name().map(|n| n.to_string_lossy()) == Some(base.into()) {
        let dir = input
            .path
            .parent()?
            .file_name()?
            .to_string_lossy()
            .into_owned();
        if !dir.is_empty() {
            return Some(dir);
        }
    }
    None
}

/// Reads the first `max` records of `input` with `importer` (errors are skipped) and says what
/// the hints need of them; the records themselves are not kept (each may be as large as the
/// limits let it be).
pub(crate) fn head_records(
    importer: &dyn RolloutImporter,
    input: &InputFile,
    max: usize,
) -> Result<HeadRecords, InputError> {
    let mut sink = HeadSink {
        head: HeadRecords::default(),
        problems: HashMap::new(),
        max: max as u64,
    };
    match importer.read(input, &mut sink) {
        Ok(()) | Err(ReadStop::Sink(_)) => Ok(sink.head),
        Err(ReadStop::Input(e)) => Err(e),
    }
}

/// What the head of a file shows, for hints.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct HeadRecords {
    /// Records read.
    pub records: u64,
    /// Samples per problem (the largest count).
    pub per_problem: Option<i64>,
    /// Whether any record has token data.
    pub has_tokens: bool,
    /// The first training step a record gives.
    pub step: Option<i64>,
}

struct HeadSink {
    head: HeadRecords,
    /// Records per problem id (hashed: ids are as long as the file makes them).
    problems: HashMap<u64, i64>,
    max: u64,
}

impl RecordSink for HeadSink {
    fn record(&mut self, record: RolloutRecord) -> Result<(), ReadStop> {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let id = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(&record.problem_id);
        let count = self.problems.entry(id).or_default();
        *count += 1;
        let head = &mut self.head;
        head.records += 1;
        head.per_problem = head.per_problem.max(Some(*count));
        head.has_tokens |= record.tokens.is_some();
        head.step = head.step.or(record.step);
        if head.records >= self.max {
            return Err(ReadStop::Sink("enough records for hints".into()));
        }
        Ok(())
    }
    fn reject(&mut self, _error: InputError) -> Result<(), ReadStop> {
        Ok(())
    }
}

/// A sink that ignores everything (for passes that parse lines themselves).
pub(crate) struct NullSink;

impl RecordSink for NullSink {
    fn record(&mut self, _: RolloutRecord) -> Result<(), ReadStop> {
        Ok(())
    }
    fn reject(&mut self, _: InputError) -> Result<(), ReadStop> {
        Ok(())
    }
}

/// A JSON object read with its keys in file order (serde_json's `Map` sorts them unless the
/// crate-wide `preserve_order` feature is on, which would change key order everywhere).
/// Anything that is not an object is kept as its kind, for the error message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OrderedObject {
    Object(Vec<(String, Value)>),
    Null,
    NotObject(&'static str),
}

/// Reads an [`OrderedObject`] whose values are kept against a budget ([`KeptValue`]).
#[derive(Clone, Copy)]
pub(crate) struct KeptOrderedObject<'b>(pub &'b KeptBudget);

impl<'de> DeserializeSeed<'de> for KeptOrderedObject<'_> {
    type Value = OrderedObject;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<OrderedObject, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeptOrderedObject<'_> {
    type Value = OrderedObject;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(KeptKey(self.0))? {
            entries.push((key, map.next_value_seed(KeptValue(self.0))?));
        }
        Ok(OrderedObject::Object(entries))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OrderedObject, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(OrderedObject::NotObject("a list"))
    }
    fn visit_unit<E>(self) -> Result<OrderedObject, E> {
        Ok(OrderedObject::Null)
    }
    fn visit_none<E>(self) -> Result<OrderedObject, E> {
        Ok(OrderedObject::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<OrderedObject, E> {
        Ok(OrderedObject::NotObject("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<OrderedObject, E> {
        Ok(OrderedObject::NotObject("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<OrderedObject, E> {
        Ok(OrderedObject::NotObject("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<OrderedObject, E> {
        Ok(OrderedObject::NotObject("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<OrderedObject, E> {
        Ok(OrderedObject::NotObject("a string"))
    }
}

/// A sink that keeps everything, for tests.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct VecSink {
    pub records: Vec<RolloutRecord>,
    pub errors: Vec<InputError>,
    pub sources: Vec<crate::ingest::SourceInfo>,
}

#[cfg(test)]
impl RecordSink for VecSink {
    fn source(&mut self, info: crate::ingest::SourceInfo) -> Result<(), ReadStop> {
        self.sources.push(info);
        Ok(())
    }
    fn record(&mut self, record: RolloutRecord) -> Result<(), ReadStop> {
        self.records.push(record);
        Ok(())
    }
    fn reject(&mut self, error: InputError) -> Result<(), ReadStop> {
        self.errors.push(error);
        Ok(())
    }
}

/// The path of a fixture under tests/fixtures/formats.
#[cfg(test)]
pub(crate) fn fixture(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/formats")
        .join(rel)
}

/// Reads `path` (named `name`) with `importer` into a [`VecSink`].
#[cfg(test)]
pub(crate) fn read_all(
    importer: &dyn RolloutImporter,
    path: &std::path::Path,
    name: &str,
) -> (VecSink, Result<(), ReadStop>) {
    let mut sink = VecSink::default();
    let result = importer.read(&InputFile::new(path, name), &mut sink);
    (sink, result)
}

/// Writes `content` to a fresh temporary file and returns its path (kept while the `TempDir`
/// lives).
#[cfg(test)]
pub(crate) fn temp_file(name: &str, content: &[u8]) -> (std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, content).unwrap();
    (path, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_non_finite_numbers_read_as_null() {
        let m = parse_object(r#"{"a":NaN,"b":[-Infinity,Infinity],"s":"NaN Infinity"}"#).unwrap();
        assert_eq!(m["a"], Value::Null);
        assert_eq!(m["b"], serde_json::json!([null, null]));
        assert_eq!(m["s"], "NaN Infinity");
        assert!(parse_object("{\"a\":1")
            .unwrap_err()
            .starts_with("invalid JSON: "));
        assert_eq!(
            parse_object("[1]").unwrap_err(),
            "expected a JSON object, got a list"
        );
    }

    #[test]
    fn python_json_streams_in_any_chunking() {
        /// Hands out one byte per read: every word is cut somewhere.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                match self.0.split_first() {
                    Some((b, rest)) if !buf.is_empty() => {
                        buf[0] = *b;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let text = r#"{"m":{"value":NaN},"x":[-Infinity,Infinity,-1.5,"a\"NaN"],"N":"I-"}"#;
        let expected = r#"{"m":{"value":null},"x":[null,null,-1.5,"a\"NaN"],"N":"I-"}"#;
        let mut whole = String::new();
        PythonJson::new(text.as_bytes())
            .read_to_string(&mut whole)
            .unwrap();
        assert_eq!(whole, expected);
        let mut bytewise = String::new();
        PythonJson::new(OneByte(text.as_bytes()))
            .read_to_string(&mut bytewise)
            .unwrap();
        assert_eq!(bytewise, expected);
        // A lone prefix at the very end stays as it was (and fails as JSON later).
        let mut cut = String::new();
        PythonJson::new(&b"[Na"[..])
            .read_to_string(&mut cut)
            .unwrap();
        assert_eq!(cut, "[Na");
        let v: Value = serde_json::from_reader(PythonJson::new(OneByte(text.as_bytes()))).unwrap();
        assert_eq!(v["x"][2], -1.5);
    }

    #[test]
    fn json_documents_are_told_from_json_lines() {
        let results = b"{\n  \"results\": {\n    \"gsm8k\": {\"exact_match,strict-match\": NaN}\n  },\n  \"versions\": {\"gsm8k\": 3}\n}\n";
        let note = json_document_note("results_2025-01-01T00-00-00.json", results).unwrap();
        assert!(
            note.starts_with("this looks like an lm-eval results file"),
            "{note}"
        );
        // By its keys under another name; by its name when the head is cut before them.
        assert_eq!(
            json_document_note("upload", results).as_deref(),
            Some(note.as_str())
        );
        assert_eq!(
            json_document_note("results_2025-01-01T00-00-00.json", &results[..40]).as_deref(),
            Some(note.as_str())
        );
        let pretty = b"[\n  {\"doc_id\": 0,\n   \"resps\": [[\"a\"]]}\n]\n";
        assert_eq!(
            json_document_note("x.json", pretty).as_deref(),
            Some("this is a JSON document spread over several lines, not JSON Lines (one record per line)")
        );
        // Not documents: JSON Lines, a broken first line, a long first line cut by the head,
        // text.
        for head in [
            &b"{\"doc_id\":0}\n{\"doc_id\":1}\n"[..],
            b"{\"doc_id\":0,\"filter\":\"none\"\n{\"doc_id\":1}\n",
            b"{\"doc_id\":0,\"resps\":[[\"aaaa",
            b"hello\n",
            b"",
        ] {
            assert_eq!(json_document_note("x.jsonl", head), None, "{head:?}");
        }
    }

    #[test]
    fn partial_objects() {
        let p = partial_object(br#"{"a":1,"b":{"c":2},"d":"cut of"#).unwrap();
        assert_eq!(p.keys, ["a", "b", "d"]);
        assert_eq!(p.get("a"), Some(&Value::from(1)));
        assert!(p.get("d").is_none());
        assert!(partial_object(b"  [1,2]").is_none());
        assert!(first_line_object(b"\n\n{\"x\":1}\n{\"y\":2}")
            .unwrap()
            .has("x"));
    }

    #[test]
    fn ids_and_stems() {
        assert_eq!(id_string(&Value::from(7)).unwrap(), "7");
        assert_eq!(id_string(&Value::from("07")).unwrap(), "07");
        assert_eq!(id_string(&serde_json::json!(3.0)).unwrap(), "3");
        assert!(id_string(&serde_json::json!(3.5)).is_err());
        assert!(id_string(&Value::from("")).is_err());
        assert_eq!(file_stem("a/b/100.jsonl.gz"), "100");
        assert_eq!(file_stem("log.eval"), "log");
    }
}
