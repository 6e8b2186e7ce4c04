//! Datasets for evaluation runs: uploads as JSON Lines or parquet, with the fields people's
//! datasets have (`id`/`unique_id`/`idx`, `prompt`/`problem`/`question`,
//! `answer`/`final_answer`/`solution`, `tags`; detected, or named by the upload), and the
//! built-in generated arithmetic set. Format: docs/formats/dataset.md.
//!
//! An upload is checked completely before anything is written: every bad line is reported as
//! `FILE:LINE: field "NAME": message`, and a dataset is stored in one transaction or not at all.
//!
//! Parsing keeps only what a problem needs: JSON Lines are read twice (their keys, to resolve
//! the fields; then each line's named fields, up to [`MAX_KEPT_BYTES`] a line), parquet reads
//! the named columns only, within the row reader's limits, and the problems of one upload keep
//! at most [`MAX_DATASET_TEXT_BYTES`] of text.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

pub use caplens_app::evals::DatasetFields;

use super::arithmetic;
use crate::error::StoreError;
use crate::ingest::limits::{
    mib, KeptBudget, KeptKey, KeptValue, MAX_DATASET_TEXT_BYTES, MAX_KEPT_BYTES,
};
use crate::ingest::parquet_rows::{self, MAGIC};
use crate::storage::Store;

/// One problem of an uploaded dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetProblem {
    pub id: String,
    pub prompt: String,
    pub answer: String,
    pub tags: Vec<String>,
}

/// Errors kept per upload (the first ones; the count is exact).
const ERRORS_KEPT: usize = 20;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{}", summarize(.errors, *.total))]
    Lines { errors: Vec<String>, total: usize },
    #[error("{0}")]
    Invalid(String),
    /// The name is taken.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn summarize(errors: &[String], total: usize) -> String {
    let mut s = format!(
        "{total} invalid line{}; nothing was stored:\n",
        if total == 1 { "" } else { "s" }
    );
    s.push_str(&errors.join("\n"));
    if total > errors.len() {
        s.push_str(&format!("\n… and {} more", total - errors.len()));
    }
    s
}

/// The common names of each role, in the order they are tried when the upload does not name
/// the field (MATH-500: `problem`, `answer`, `unique_id`; AIME: `id`, `problem`, `answer`;
/// GSM8K: `question`, `answer`).
const ID_FIELDS: &[&str] = &["id", "unique_id", "idx"];
const PROMPT_FIELDS: &[&str] = &["prompt", "problem", "question"];
const ANSWER_FIELDS: &[&str] = &["answer", "final_answer", "solution"];
const TAGS_FIELDS: &[&str] = &["tags"];

/// The fields a file's records are read with: the upload's mapping, else the first common name
/// that the file's records (JSON Lines: any of them) or its columns (parquet) have.
#[derive(Debug, Clone, PartialEq)]
struct Resolved {
    /// `None`: the file has no id field; a problem's id is its 0-based record index (as lm-eval
    /// and lighteval number documents, so imported runs of the same file match).
    id: Option<String>,
    prompt: String,
    answer: String,
    tags: Option<String>,
}

impl Resolved {
    fn of(file: &str, fields: &DatasetFields, keys: &[&str]) -> Result<Resolved, DatasetError> {
        let detect = |given: &Option<String>, names: &[&str]| {
            given.clone().or_else(|| {
                names
                    .iter()
                    .find(|n| keys.contains(n))
                    .map(|n| n.to_string())
            })
        };
        let required = |role: &str, given: &Option<String>, names: &[&str]| {
            detect(given, names).ok_or_else(|| {
                DatasetError::Invalid(format!(
                    "{file}: no {role} field: the records have {}; the {role} is read from {} \
                     or from the field you name ({role}=NAME)",
                    if keys.is_empty() {
                        "no fields".to_owned()
                    } else {
                        format!("the fields {}", keys.join(", "))
                    },
                    names
                        .iter()
                        .map(|n| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        Ok(Resolved {
            id: detect(&fields.id, ID_FIELDS),
            prompt: required("prompt", &fields.prompt, PROMPT_FIELDS)?,
            answer: required("answer", &fields.answer, ANSWER_FIELDS)?,
            tags: detect(&fields.tags, TAGS_FIELDS),
        })
    }
}

/// Parses a dataset file: JSON Lines, or parquet (by its magic bytes). `file` names it in
/// messages; `fields` maps roles to fields where the names are not the common ones.
pub fn parse(
    file: &str,
    bytes: &[u8],
    fields: &DatasetFields,
) -> Result<Vec<DatasetProblem>, DatasetError> {
    let mut collector = Collector::new(file);
    if bytes.starts_with(MAGIC) {
        parse_parquet(file, bytes, fields, &mut collector)?;
    } else {
        parse_json_lines(file, bytes, fields, &mut collector)?;
    }
    collector.finish()
}

/// The problems and errors of one upload.
struct Collector<'a> {
    file: &'a str,
    problems: Vec<DatasetProblem>,
    errors: Vec<String>,
    total: usize,
    /// Problem id -> line of its first occurrence.
    seen: std::collections::HashMap<String, usize>,
    /// Text the problems keep, together.
    text_bytes: u64,
}

impl<'a> Collector<'a> {
    fn new(file: &'a str) -> Self {
        Collector {
            file,
            problems: Vec::new(),
            errors: Vec::new(),
            total: 0,
            seen: std::collections::HashMap::new(),
            text_bytes: 0,
        }
    }

    fn fail(&mut self, line: usize, field: &str, message: String) {
        self.total += 1;
        if self.errors.len() < ERRORS_KEPT {
            let file = self.file;
            self.errors.push(if field.is_empty() {
                format!("{file}:{line}: {message}")
            } else {
                format!("{file}:{line}: field \"{field}\": {message}")
            });
        }
    }

    /// One record (`index`: 0-based among the file's records) at `line`; an error when the
    /// problems outgrow [`MAX_DATASET_TEXT_BYTES`].
    fn record(
        &mut self,
        line: usize,
        index: usize,
        object: &serde_json::Map<String, Value>,
        fields: &Resolved,
    ) -> Result<(), DatasetError> {
        match problem(object, fields, index) {
            Ok(p) => {
                // The id twice: the problem's and the duplicate check's.
                let text = 2 * p.id.len() + p.prompt.len() + p.answer.len();
                let text = text + p.tags.iter().map(String::len).sum::<usize>();
                self.text_bytes += text as u64;
                if self.text_bytes > MAX_DATASET_TEXT_BYTES {
                    return Err(DatasetError::Invalid(format!(
                        "{}:{line}: the problems up to this record hold more than {} MiB of text; caplens stores datasets up to that size",
                        self.file,
                        mib(MAX_DATASET_TEXT_BYTES)
                    )));
                }
                if let Some(first) = self.seen.insert(p.id.clone(), line) {
                    let field = fields.id.as_deref().unwrap_or("id");
                    self.fail(line, field, format!("{:?} repeats line {first}", p.id));
                } else {
                    self.problems.push(p);
                }
            }
            Err((field, message)) => self.fail(line, &field, message),
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<DatasetProblem>, DatasetError> {
        if self.total > 0 {
            return Err(DatasetError::Lines {
                errors: self.errors,
                total: self.total,
            });
        }
        if self.problems.is_empty() {
            return Err(DatasetError::Invalid(format!(
                "{}: no problems in the file",
                self.file
            )));
        }
        Ok(self.problems)
    }
}

fn parse_json_lines(
    file: &str,
    bytes: &[u8],
    fields: &DatasetFields,
    out: &mut Collector,
) -> Result<(), DatasetError> {
    // First the keys of every record (the roles are resolved over the fields of all of them, so
    // one record without an answer is an error on its line, not a file without answers); the
    // values are skipped unparsed.
    let mut keys = KeysSeen::default();
    let mut records = Vec::new();
    for (line, text) in lines(bytes) {
        let Ok(text) = text else {
            out.fail(line, "", "not valid UTF-8".into());
            continue;
        };
        let mut de = serde_json::Deserializer::from_str(text);
        match (&mut keys)
            .deserialize(&mut de)
            .and_then(|object| de.end().map(|()| object))
        {
            Ok(true) => records.push(line),
            Ok(false) => out.fail(line, "", "expected a JSON object".into()),
            Err(e) => out.fail(line, "", format!("not valid JSON: {e}")),
        }
    }
    if records.is_empty() {
        return Ok(());
    }
    let resolved = Resolved::of(file, fields, &keys.sorted())?;
    // Then each record's named fields, one record at a time.
    let named: Vec<&str> = [
        resolved.id.as_deref(),
        Some(resolved.prompt.as_str()),
        Some(resolved.answer.as_str()),
        resolved.tags.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut records = records.into_iter().enumerate().peekable();
    for (line, text) in lines(bytes) {
        let (Ok(text), Some(&(index, _))) = (text, records.peek().filter(|(_, l)| *l == line))
        else {
            continue;
        };
        records.next();
        let budget = KeptBudget::new(MAX_KEPT_BYTES);
        let mut de = serde_json::Deserializer::from_str(text);
        let named = NamedFields {
            names: &named,
            budget: &budget,
        };
        match named.deserialize(&mut de) {
            Ok(_) if budget.exceeded() => out.fail(
                line,
                "",
                format!(
                    "the fields read of this record take more than {} MiB",
                    mib(MAX_KEPT_BYTES)
                ),
            ),
            Ok(object) => out.record(line, index, &object, &resolved)?,
            Err(e) => out.fail(line, "", format!("not valid JSON: {e}")),
        }
    }
    Ok(())
}

/// The non-blank lines of `bytes` (1-based line numbers), as text unless they are not UTF-8.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, Result<&str, std::str::Utf8Error>)> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(number, raw)| {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            (!raw.iter().all(u8::is_ascii_whitespace))
                .then(|| (number + 1, std::str::from_utf8(raw)))
        })
}

/// The keys of the records' top-level objects, across the file (the first
/// [`KEYS_LISTED`] in messages; whether each common name occurs is what resolving needs).
#[derive(Default)]
struct KeysSeen {
    keys: std::collections::BTreeSet<String>,
}

/// Keys kept to name in messages ("the records have the fields ..."), and their longest.
const KEYS_LISTED: usize = 100;
const KEY_LISTED_BYTES: usize = 200;

impl KeysSeen {
    fn note(&mut self, key: &str) {
        let common = [ID_FIELDS, PROMPT_FIELDS, ANSWER_FIELDS, TAGS_FIELDS]
            .iter()
            .any(|names| names.contains(&key));
        let listed = self.keys.len() < KEYS_LISTED && key.len() <= KEY_LISTED_BYTES;
        if (listed || common) && !self.keys.contains(key) {
            self.keys.insert(key.to_owned());
        }
    }

    fn sorted(&self) -> Vec<&str> {
        self.keys.iter().map(String::as_str).collect()
    }
}

/// Reads a record for its keys; `true` when it is an object.
impl<'de> DeserializeSeed<'de> for &mut KeysSeen {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut KeysSeen {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            self.note(&key);
            map.next_value::<IgnoredAny>()?;
        }
        Ok(true)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
}

/// Reads the `names` fields of a record (an object, as the first pass found), keeping them
/// against `budget`; the other fields are skipped unparsed.
struct NamedFields<'n, 'b> {
    names: &'n [&'n str],
    budget: &'b KeptBudget,
}

impl<'de> DeserializeSeed<'de> for NamedFields<'_, '_> {
    type Value = serde_json::Map<String, Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NamedFields<'_, '_> {
    type Value = serde_json::Map<String, Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(KeptKey(self.budget))? {
            if self.names.contains(&key.as_str()) {
                let value = map.next_value_seed(KeptValue(self.budget))?;
                object.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(object)
    }
}

fn parse_parquet(
    file: &str,
    bytes: &[u8],
    fields: &DatasetFields,
    out: &mut Collector,
) -> Result<(), DatasetError> {
    use parquet::file::reader::FileReader;
    let source = bytes::Bytes::copy_from_slice(bytes);
    let reader = parquet_rows::open(source.clone())
        .map_err(|e| DatasetError::Invalid(format!("{file}: {e}")))?;
    let schema = reader.metadata().file_metadata().schema();
    let keys: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
    let resolved = Resolved::of(file, fields, &keys)?;
    // Only the named columns are read.
    let named: Vec<(&str, Option<&[&str]>)> = [
        resolved.id.as_deref(),
        Some(resolved.prompt.as_str()),
        Some(resolved.answer.as_str()),
        resolved.tags.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(|name| (name, None))
    .collect();
    let projection = parquet_rows::projection(schema, &named);
    parquet_rows::for_each_row(
        &reader,
        &source,
        projection.as_ref(),
        |_| {},
        |row, object| out.record(row as usize, row as usize - 1, &object, &resolved),
        |row, message| DatasetError::Invalid(format!("{file}:{row}: {message}")),
    )
}

/// A record's field at fault and the message.
type FieldError = (String, String);

/// One problem from one record read with `fields`.
fn problem(
    object: &serde_json::Map<String, Value>,
    fields: &Resolved,
    index: usize,
) -> Result<DatasetProblem, FieldError> {
    let err = |field: &str, message: &str| Err((field.to_owned(), message.to_owned()));
    let id = match &fields.id {
        None => index.to_string(),
        Some(name) => match object.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(Value::String(_)) => return err(name, "is empty"),
            Some(Value::Null) | None => return err(name, "missing"),
            Some(_) => return err(name, "must be a string or an integer"),
        },
    };
    let name = &fields.prompt;
    let prompt = match object.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return err(name, "is empty"),
        Some(Value::Null) | None => return err(name, "missing"),
        Some(_) => return err(name, "must be a string"),
    };
    let name = &fields.answer;
    let answer = match object.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            answer_from(s, name).map_err(|m| (name.clone(), m))?
        }
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(_)) => {
            return err(name, "is empty: every problem needs a reference answer")
        }
        Some(Value::Null) | None => {
            return err(name, "missing: every problem needs a reference answer")
        }
        Some(_) => return err(name, "must be a string or a number"),
    };
    let tags = match fields.tags.as_ref().map(|t| (t, object.get(t))) {
        None | Some((_, None | Some(Value::Null))) => Vec::new(),
        Some((_, Some(Value::String(s)))) if !s.trim().is_empty() => vec![s.trim().to_owned()],
        Some((_, Some(Value::Array(items)))) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        Some((name, Some(_))) => return err(name, "must be a string or an array of strings"),
    };
    Ok(DatasetProblem {
        id,
        prompt,
        answer,
        tags,
    })
}

/// The reference answer of an answer field's text: the final answer when the text is a worked
/// solution (GSM8K's `... #### 72`, MATH's `... \boxed{5}`), else the text as given (trimmed).
/// A field named `solution` must hold such a final answer.
fn answer_from(text: &str, field: &str) -> Result<String, String> {
    let marked = text.contains("####") || text.contains("\\boxed") || text.contains("\\fbox");
    match reference_answer(text) {
        Some(answer) => Ok(answer),
        None if marked => Err(
            "a worked solution whose final answer cannot be read (an empty \"####\" line or an unclosed \\boxed{})"
                .into(),
        ),
        None if field == "solution" => Err(
            "a worked solution without a final answer (no \"#### ANSWER\" line and no \\boxed{}); name the answer field (answer=NAME)"
                .into(),
        ),
        None => Ok(text.trim().to_owned()),
    }
}

/// The final answer of a worked solution (`analysis::verifier::reference_answer`: the text after
/// the last `####` line (GSM8K), the last `\boxed{...}` of a MATH solution, a trailing "The answer
/// is ..."); `None` when the text names no such answer (it is then an answer itself).
pub(crate) fn reference_answer(solution: &str) -> Option<String> {
    let answer = caplens_analysis::verifier::reference_answer(solution).trim();
    (!answer.is_empty() && answer.len() < solution.trim().len()).then(|| answer.to_owned())
}

/// Largest dataset upload.
pub const MAX_DATASET_BYTES: usize = 256 << 20;

/// Stores a new dataset in project `project_id` (`None`: shared by every project, read-only to
/// them) in one transaction; refuses a name the project (or a shared dataset) has.
pub async fn store_dataset(
    store: &Store,
    project_id: Option<i64>,
    name: &str,
    description: &str,
    source: &str,
    problems: &[DatasetProblem],
) -> Result<i64, DatasetError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(DatasetError::Invalid(
            "the dataset name must be 1 to 200 characters without control characters".into(),
        ));
    }
    let mut tx = store.begin_bulk().await?;
    // Checked under the catalogue lock: two creators of one name (replicas seeding the
    // built-in dataset at start-up) see each other's commit instead of a unique violation.
    tx.lock_catalog().await?;
    let taken = match project_id {
        Some(project) => tx.dataset_for(project, name).await?.is_some(),
        None => tx.shared_dataset_id(name).await?.is_some(),
    };
    if taken {
        return Err(DatasetError::Conflict(format!(
            "name: a dataset named {name:?} exists already in this project (or is shared with every project); choose another name"
        )));
    }
    let id = tx
        .insert_dataset(name, description, source, project_id)
        .await?;
    for p in problems {
        tx.insert_problem(id, &p.id, &p.prompt, &p.answer, source, &p.tags)
            .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Creates the built-in arithmetic dataset if it is not there (idempotent, race-safe: a second
/// creator finds the name taken and leaves it).
pub async fn ensure_builtin(store: &Store) -> Result<(), StoreError> {
    if store.shared_dataset_id(arithmetic::NAME).await?.is_some() {
        return Ok(());
    }
    let problems: Vec<DatasetProblem> = arithmetic::problems()
        .into_iter()
        .map(|p| DatasetProblem {
            id: p.key,
            prompt: p.prompt,
            answer: p.answer,
            tags: p.tags,
        })
        .collect();
    match store_dataset(
        store,
        None,
        arithmetic::NAME,
        arithmetic::DESCRIPTION,
        "builtin",
        &problems,
    )
    .await
    {
        Ok(_) | Err(DatasetError::Conflict(_)) => Ok(()),
        Err(DatasetError::Invalid(m)) => Err(StoreError::Invalid(m)),
        Err(DatasetError::Store(e)) => Err(e),
        Err(DatasetError::Lines { .. }) => unreachable!("generated problems are valid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_answers_and_tags() {
        let file = br#"{"id": 1, "prompt": "What is 2+2?", "answer": 4, "tags": ["easy"]}
{"id": "b", "prompt": "x^2 = 9, x > 0?", "answer": "3"}

"#;
        let p = parse("d.jsonl", file, &DatasetFields::default()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].id, "1");
        assert_eq!(p[0].answer, "4");
        assert_eq!(p[0].tags, vec!["easy"]);
        assert_eq!(p[1].tags, Vec::<String>::new());
    }

    #[test]
    fn every_bad_line_is_named_with_file_line_and_field() {
        let file = b"{\"id\": 1, \"prompt\": \"p\"}\n{\"id\": 2, \"prompt\": \"p\", \"answer\": \"\"}\nnot json\n{\"id\": 1, \"prompt\": \"p\", \"answer\": \"1\"}\n{\"id\": 3, \"prompt\": \"p\", \"answer\": \"1\", \"tags\": 5}\n{\"id\": 9, \"prompt\": \"p\", \"answer\": \"1\"}\n{\"id\": 9, \"prompt\": \"p\", \"answer\": \"1\"}\n";
        let err = parse("set.jsonl", file, &DatasetFields::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("5 invalid lines; nothing was stored"),
            "{err}"
        );
        assert!(
            err.contains("set.jsonl:1: field \"answer\": missing"),
            "{err}"
        );
        assert!(
            err.contains("set.jsonl:2: field \"answer\": is empty"),
            "{err}"
        );
        assert!(err.contains("set.jsonl:3: not valid JSON"), "{err}");
        assert!(
            err.contains("set.jsonl:5: field \"tags\": must be a string or an array of strings"),
            "{err}"
        );
        assert!(
            err.contains("set.jsonl:7: field \"id\": \"9\" repeats line 6"),
            "{err}"
        );
        assert!(parse("e.jsonl", b"\n\n", &DatasetFields::default())
            .unwrap_err()
            .to_string()
            .contains("no problems"));
        assert!(parse(
            "u.jsonl",
            b"{\"id\":1,\"prompt\":\"\xff\",\"answer\":1}",
            &DatasetFields::default()
        )
        .unwrap_err()
        .to_string()
        .contains("u.jsonl:1: not valid UTF-8"));
    }

    fn auto() -> DatasetFields {
        DatasetFields::default()
    }

    #[test]
    fn math500_records_are_detected() {
        // MATH-500 (HuggingFaceH4/MATH-500): problem, solution, answer, subject, level, unique_id.
        let file = br#"{"problem": "Convert the point $(0,3)$ to polar coordinates.", "solution": "We have that $r = 3$ ... $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$.", "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2, "unique_id": "test/precalculus/807.json"}
{"problem": "What is $1+1$?", "solution": "It is $\\boxed{2}$.", "answer": "2", "subject": "Algebra", "level": 1, "unique_id": "test/algebra/1.json"}
"#;
        let p = parse("math500.jsonl", file, &auto()).unwrap();
        assert_eq!(p[0].id, "test/precalculus/807.json");
        assert_eq!(
            p[0].prompt,
            "Convert the point $(0,3)$ to polar coordinates."
        );
        // `answer` wins over `solution`.
        assert_eq!(p[0].answer, "\\left( 3, \\frac{\\pi}{2} \\right)");
        assert_eq!(p[1].answer, "2");
        assert!(p[0].tags.is_empty());
        // Mapped to the worked solution instead: its last \boxed{}; subject as the tag.
        let mut fields = auto();
        fields.set("answer=solution").unwrap();
        fields.set("tags=subject").unwrap();
        let p = parse("math500.jsonl", file, &fields).unwrap();
        assert_eq!(p[0].answer, "\\left( 3, \\frac{\\pi}{2} \\right)");
        assert_eq!(p[1].answer, "2");
        assert_eq!(p[1].tags, ["Algebra"]);
    }

    #[test]
    fn aime_records_are_detected() {
        // AIME 2024 (HuggingFaceH4/aime_2024 style): id, problem, answer (an integer).
        let file = br#"{"id": 60, "problem": "Every morning Aya goes for a $9$-kilometer-long walk ...", "answer": 204, "url": "https://..."}
{"id": 61, "problem": "Let $ABC$ be a triangle ...", "answer": "113"}
"#;
        let p = parse("aime24.jsonl", file, &auto()).unwrap();
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.id.as_str(), p.answer.as_str()))
            .collect();
        assert_eq!(got, [("60", "204"), ("61", "113")]);
    }

    #[test]
    fn gsm8k_records_take_the_answer_after_the_hashes_and_number_problems_by_index() {
        // GSM8K (openai/gsm8k): question, answer = worked solution ending in "#### <answer>".
        let file = b"{\"question\": \"Natalia sold clips to 48 of her friends in April, and then half as many in May. How many altogether?\", \"answer\": \"Natalia sold 48/2 = <<48/2=24>>24 clips in May.\\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether.\\n#### 72\"}\n\n{\"question\": \"Weng earns $12 an hour. How much for 50 minutes?\", \"answer\": \"12/60 = 0.2 per minute; 0.2 x 50 = 10.\\n#### 10\"}\n";
        let p = parse("gsm8k.jsonl", file, &auto()).unwrap();
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.id.as_str(), p.answer.as_str()))
            .collect();
        // No id field: the 0-based record index (blank lines do not count), as lm-eval's doc_id.
        assert_eq!(got, [("0", "72"), ("1", "10")]);
        assert!(p[0].prompt.starts_with("Natalia sold clips"));
    }

    #[test]
    fn explicit_fields_and_their_errors() {
        let file = br#"{"q": "What is 2+2?", "a": "4", "key": "x1"}
{"q": "What is 3+3?", "key": "x2"}
{"q": "", "a": "3+3 = 6\n#### ", "key": "x3"}
{"q": "Hm?", "a": "It is \\boxed{5", "key": "x1"}
"#;
        let mut fields = auto();
        for spec in ["prompt=q", "answer=a", "id=key"] {
            fields.set(spec).unwrap();
        }
        let err = parse("own.jsonl", file, &fields).unwrap_err().to_string();
        assert!(
            err.starts_with("3 invalid lines; nothing was stored"),
            "{err}"
        );
        assert!(
            err.contains(
                "own.jsonl:2: field \"a\": missing: every problem needs a reference answer"
            ),
            "{err}"
        );
        assert!(err.contains("own.jsonl:3: field \"q\": is empty"), "{err}");
        assert!(
            err.contains(
                "own.jsonl:4: field \"a\": a worked solution whose final answer cannot be read"
            ),
            "{err}"
        );
        // Without the mapping, nothing names a prompt: one message with the fields seen.
        let err = parse("own.jsonl", file, &auto()).unwrap_err().to_string();
        assert_eq!(
            err,
            "own.jsonl: no prompt field: the records have the fields a, key, q; the prompt is read from \"prompt\", \"problem\", \"question\" or from the field you name (prompt=NAME)"
        );
        // A solution field without a final answer is refused rather than stored as the answer.
        let err = parse(
            "s.jsonl",
            br#"{"problem": "p", "solution": "We compute it step by step."}"#,
            &auto(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("s.jsonl:1: field \"solution\": a worked solution without a final answer"),
            "{err}"
        );
        assert!(DatasetFields::default().set("answer").is_err());
        assert!(DatasetFields::default().set("solution=answer").is_err());
    }

    #[test]
    fn reference_answers_of_solutions() {
        assert_eq!(
            reference_answer("so 48+24=72\n#### 72").as_deref(),
            Some("72")
        );
        assert_eq!(reference_answer("#### 1,000 ").as_deref(), Some("1,000"));
        assert_eq!(
            reference_answer(
                "Thus $\\boxed{\\frac{1}{2}}$, not \\boxed{3}? No: \\boxed{\\frac{1}{4}}."
            )
            .as_deref(),
            Some("\\frac{1}{4}")
        );
        assert_eq!(reference_answer("#### "), None);
        assert_eq!(reference_answer("\\boxed{5"), None);
        assert_eq!(reference_answer("The answer is 5").as_deref(), Some("5"));
        assert_eq!(reference_answer("204"), None);
    }

    #[test]
    fn parquet_datasets_are_read_with_the_same_rules() {
        // MATH-500's own columns, as the Hugging Face parquet export has them (written by
        // pyarrow; see tests/fixtures/datasets/README.md).
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/datasets/math500-sample.parquet"
        ))
        .unwrap();
        let p = parse("math500-sample.parquet", &bytes, &auto()).unwrap();
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.id.as_str(), p.answer.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "test/precalculus/807.json",
                    "\\left( 3, \\frac{\\pi}{2} \\right)"
                ),
                ("test/intermediate_algebra/1994.json", "p - q"),
                ("test/algebra/2584.json", "\\frac{14}{3}"),
            ]
        );
        assert!(p[2].prompt.starts_with("If $f(x) = \\frac{3x-2}{x-2}$"));
        // A bad row is named by its 1-based row number, like a line.
        let mut fields = auto();
        fields.set("answer=level").unwrap();
        fields.set("tags=level").unwrap();
        let err = parse("math500-sample.parquet", &bytes, &fields)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("math500-sample.parquet:1: field \"level\": must be a string or an array of strings"),
            "{err}"
        );
        // Not parquet after all: a clear message, no panic.
        let err = parse("x.parquet", b"PAR1 nonsense", &auto())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.parquet: not a readable parquet file"),
            "{err}"
        );
    }
}
