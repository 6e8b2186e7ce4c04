//! Architecture invariants that a reviewer would otherwise have to remember (ARCHITECTURE.md,
//! "Invariants"). A failure names the file and line that broke one.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// What writes SQL: the query builders of sqlx, and string literals that start a statement.
fn sql_on_line(line: &str) -> Option<&'static str> {
    const CALLS: [&str; 6] = [
        "sqlx::query",
        "sqlx::query_as",
        "sqlx::query_scalar",
        ".copy_in_raw(",
        "sqlx::raw_sql",
        "sqlx::migrate!",
    ];
    if let Some(call) = CALLS.iter().find(|c| line.contains(*c)) {
        return Some(call);
    }
    const STATEMENTS: [&str; 9] = [
        "\"SELECT ",
        "\"INSERT INTO ",
        "\"UPDATE ",
        "\"DELETE FROM ",
        "\"CREATE TABLE",
        "\"CREATE INDEX",
        "\"ALTER TABLE",
        "\"WITH ",
        "\"PRAGMA ",
    ];
    // Our SQL is upper-case by convention; prose that starts with "Select" or "update" is not
    // SQL.
    STATEMENTS.iter().find(|s| line.contains(*s)).copied()
}

/// Only `server/src/storage/` knows SQL and the two dialects; everything else calls `Store`
/// methods. (Tests may query the database directly to check what was stored.)
#[test]
fn sql_is_written_only_in_storage() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let storage = root.join("server/src/storage");
    let mut files = Vec::new();
    rust_files(&root.join("server/src"), &mut files);
    rust_files(&root.join("app/src"), &mut files);
    rust_files(&root.join("analysis/src"), &mut files);
    assert!(files.len() > 50, "the source tree was not found from {}", root.display());
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&storage)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(what) = sql_on_line(line) {
                found.push(format!(
                    "{}:{}: {what}",
                    file.strip_prefix(&root).unwrap_or(file).display(),
                    i + 1
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL outside server/src/storage/ (add a Store method instead):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_sql_detector_sees_sql() {
    assert!(sql_on_line(r#"    db(sqlx::query("SELECT 1").fetch_one(&p).await)"#).is_some());
    assert!(sql_on_line(r#"        "UPDATE runs SET x = $1 WHERE id = $2","#).is_some());
    assert!(sql_on_line(r#"    let s = "INSERT INTO rollouts (a) VALUES (1)";"#).is_some());
    assert!(sql_on_line(r#"    let s = "Select a model to compare";"#).is_none());
    assert!(sql_on_line(r#"    println!("update your token");"#).is_none());
}
