//! Datasets for evaluation runs: JSON Lines uploads (`id`, `prompt`, `answer`, optional `tags`)
//! and the built-in generated arithmetic set. Format: docs/formats/dataset.md.
//!
//! An upload is checked completely before anything is written: every bad line is reported as
//! `FILE:LINE: field "NAME": message`, and a dataset is stored in one transaction or not at all.

use serde_json::Value;

use super::arithmetic;
use crate::error::StoreError;
use crate::storage::catalog::{insert_dataset, insert_problem};
use crate::storage::{db, Store};

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

/// Parses a dataset file. `file` names it in messages.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Vec<DatasetProblem>, DatasetError> {
    let mut problems = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0usize;
    let mut seen = std::collections::HashMap::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let mut fail = |field: &str, message: String| {
            total += 1;
            if errors.len() < ERRORS_KEPT {
                errors.push(if field.is_empty() {
                    format!("{file}:{line}: {message}")
                } else {
                    format!("{file}:{line}: field \"{field}\": {message}")
                });
            }
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            fail("", "not valid UTF-8".into());
            continue;
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                fail("", format!("not valid JSON: {e}"));
                continue;
            }
        };
        let Some(object) = value.as_object() else {
            fail("", "expected a JSON object".into());
            continue;
        };
        let id = match object.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(Value::String(_)) => {
                fail("id", "is empty".into());
                continue;
            }
            Some(_) => {
                fail("id", "must be a string or an integer".into());
                continue;
            }
            None => {
                fail("id", "missing".into());
                continue;
            }
        };
        let prompt = match object.get("prompt") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) => {
                fail("prompt", "is empty".into());
                continue;
            }
            Some(_) => {
                fail("prompt", "must be a string".into());
                continue;
            }
            None => {
                fail("prompt", "missing".into());
                continue;
            }
        };
        let answer = match object.get("answer") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(_)) => {
                fail(
                    "answer",
                    "is empty: every problem needs a reference answer".into(),
                );
                continue;
            }
            Some(Value::Null) | None => {
                fail(
                    "answer",
                    "missing: every problem needs a reference answer".into(),
                );
                continue;
            }
            Some(_) => {
                fail("answer", "must be a string or a number".into());
                continue;
            }
        };
        let tags = match object.get("tags") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            Some(_) => {
                fail("tags", "must be an array of strings".into());
                continue;
            }
        };
        if let Some(first) = seen.insert(id.clone(), line) {
            fail("id", format!("{id:?} repeats line {first}"));
            continue;
        }
        problems.push(DatasetProblem {
            id,
            prompt,
            answer,
            tags,
        });
    }
    if total > 0 {
        return Err(DatasetError::Lines { errors, total });
    }
    if problems.is_empty() {
        return Err(DatasetError::Invalid(format!(
            "{file}: no problems in the file"
        )));
    }
    Ok(problems)
}

/// Stores a new dataset in one transaction; refuses a name that is taken.
pub async fn store_dataset(
    store: &Store,
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
    let mut tx = store.begin_write().await?;
    let exists: Option<i64> = db(
        sqlx::query_scalar("SELECT id FROM datasets WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await,
    )?;
    if exists.is_some() {
        return Err(DatasetError::Invalid(format!(
            "a dataset named {name:?} exists already; choose another name"
        )));
    }
    let id = insert_dataset(&mut tx, name, description, source).await?;
    for p in problems {
        insert_problem(&mut tx, id, &p.id, &p.prompt, &p.answer, source, &p.tags).await?;
    }
    db(tx.commit().await)?;
    Ok(id)
}

/// Creates the built-in arithmetic dataset if it is not there (idempotent, race-safe: a second
/// creator finds the name taken and leaves it).
pub async fn ensure_builtin(store: &Store) -> Result<(), StoreError> {
    let exists: Option<i64> = db(
        sqlx::query_scalar("SELECT id FROM datasets WHERE name = $1")
            .bind(arithmetic::NAME)
            .fetch_optional(&store.pool)
            .await,
    )?;
    if exists.is_some() {
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
        arithmetic::NAME,
        arithmetic::DESCRIPTION,
        "builtin",
        &problems,
    )
    .await
    {
        Ok(_) | Err(DatasetError::Invalid(_)) => Ok(()),
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
        let p = parse("d.jsonl", file).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].id, "1");
        assert_eq!(p[0].answer, "4");
        assert_eq!(p[0].tags, vec!["easy"]);
        assert_eq!(p[1].tags, Vec::<String>::new());
    }

    #[test]
    fn every_bad_line_is_named_with_file_line_and_field() {
        let file = b"{\"id\": 1, \"prompt\": \"p\"}\n{\"id\": 2, \"prompt\": \"p\", \"answer\": \"\"}\nnot json\n{\"id\": 1, \"prompt\": \"p\", \"answer\": \"1\"}\n{\"id\": 3, \"prompt\": \"p\", \"answer\": \"1\", \"tags\": \"x\"}\n{\"id\": 9, \"prompt\": \"p\", \"answer\": \"1\"}\n{\"id\": 9, \"prompt\": \"p\", \"answer\": \"1\"}\n";
        let err = parse("set.jsonl", file).unwrap_err().to_string();
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
        assert!(err.contains("set.jsonl:5: field \"tags\""), "{err}");
        assert!(
            err.contains("set.jsonl:7: field \"id\": \"9\" repeats line 6"),
            "{err}"
        );
        assert!(parse("e.jsonl", b"\n\n")
            .unwrap_err()
            .to_string()
            .contains("no problems"));
        assert!(
            parse("u.jsonl", b"{\"id\":1,\"prompt\":\"\xff\",\"answer\":1}")
                .unwrap_err()
                .to_string()
                .contains("u.jsonl:1: not valid UTF-8")
        );
    }
}
