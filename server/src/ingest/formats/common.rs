//! Helpers shared by the third-party importers: lenient JSON parsing of lines written by
//! Python, sniffing a possibly truncated head, describing JSON types in error messages, and
//! reading hints from the first records of a file.

use crate::ingest::{InputError, InputFile, ReadStop, RecordSink, RolloutImporter, RolloutRecord};
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// Parses one line as a JSON object. Python's `json` module writes `NaN`, `Infinity` and
/// `-Infinity` (not JSON); the tools we read are written in Python, so these bare words are read
/// as `null` (a missing value) rather than failing the line.
pub(crate) fn parse_object(text: &str) -> Result<Map<String, Value>, String> {
    let value = match serde_json::from_str::<Value>(text) {
        Ok(v) => v,
        Err(first) => match replace_non_finite(text) {
            Some(fixed) => {
                serde_json::from_str::<Value>(&fixed).map_err(|_| invalid_json(&first))?
            }
            None => return Err(invalid_json(&first)),
        },
    };
    match value {
        Value::Object(map) => Ok(map),
        other => Err(format!("expected a JSON object, got {}", kind(&other))),
    }
}

fn invalid_json(e: &serde_json::Error) -> String {
    format!("invalid JSON: {e}")
}

/// `text` with bare `NaN` / `Infinity` / `-Infinity` outside strings replaced by `null`, or
/// `None` when there is none.
fn replace_non_finite(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let word = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|w| bytes[i..].starts_with(w.as_bytes()));
        if let Some(w) = word {
            out.push_str(&text[last..i]);
            out.push_str("null");
            i += w.len();
            last = i;
            changed = true;
        } else {
            i += 1;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
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

/// Reads the first `max` records of `input` with `importer` (errors are skipped): the sample
/// the hints are computed from.
pub(crate) fn head_records(
    importer: &dyn RolloutImporter,
    input: &InputFile,
    max: usize,
) -> Result<Vec<RolloutRecord>, InputError> {
    let mut sink = HeadSink {
        records: Vec::new(),
        max,
    };
    match importer.read(input, &mut sink) {
        Ok(()) | Err(ReadStop::Sink(_)) => Ok(sink.records),
        Err(ReadStop::Input(e)) => Err(e),
    }
}

struct HeadSink {
    records: Vec<RolloutRecord>,
    max: usize,
}

impl RecordSink for HeadSink {
    fn record(&mut self, record: RolloutRecord) -> Result<(), ReadStop> {
        self.records.push(record);
        if self.records.len() >= self.max {
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

/// Samples per problem seen in `records` (the largest count), and whether any has tokens.
pub(crate) fn per_problem_and_tokens(records: &[RolloutRecord]) -> (Option<i64>, bool) {
    let mut counts = HashMap::<&str, i64>::new();
    for r in records {
        *counts.entry(&r.problem_id).or_default() += 1;
    }
    (
        counts.values().copied().max(),
        records.iter().any(|r| r.tokens.is_some()),
    )
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

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = OrderedObject;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value::<Value>()?));
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
}

#[cfg(test)]
impl RecordSink for VecSink {
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
