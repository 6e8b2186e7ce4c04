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
    assert!(
        files.len() > 50,
        "the source tree was not found from {}",
        root.display()
    );
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

/// The calls that ask the authorisation policy: `auth::policy::authorize` and the principal's
/// role queries it is built on.
const POLICY_CALLS: [&str; 4] = ["authorize", "can_read", "role_in", "readable_projects"];

/// Every call (function or method) of `names` in a file's syntax tree, with its line: parsed,
/// not matched as text, so multi-line calls, aliases in grouped `use` and method syntax are
/// all seen.
fn calls_in(source: &str, names: &[&str]) -> Vec<(String, usize)> {
    use syn::visit::Visit;
    struct Calls<'a> {
        names: &'a [&'a str],
        found: Vec<(String, usize)>,
    }
    impl<'ast> Visit<'ast> for Calls<'_> {
        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let syn::Expr::Path(p) = &*call.func {
                if let Some(last) = p.path.segments.last() {
                    let name = last.ident.to_string();
                    if self.names.contains(&name.as_str()) {
                        self.found.push((name, last.ident.span().start().line));
                    }
                }
            }
            syn::visit::visit_expr_call(self, call);
        }
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            let name = call.method.to_string();
            if self.names.contains(&name.as_str()) {
                self.found.push((name, call.method.span().start().line));
            }
            syn::visit::visit_expr_method_call(self, call);
        }
        fn visit_use_tree(&mut self, tree: &'ast syn::UseTree) {
            // `use …::authorize as may;` would hide a call from the two visitors above.
            if let syn::UseTree::Name(n) = tree {
                let name = n.ident.to_string();
                if self.names.contains(&name.as_str()) {
                    self.found
                        .push((format!("use {name}"), n.ident.span().start().line));
                }
            }
            if let syn::UseTree::Rename(r) = tree {
                let name = r.ident.to_string();
                if self.names.contains(&name.as_str()) {
                    self.found
                        .push((format!("use {name}"), r.ident.span().start().line));
                }
            }
            syn::visit::visit_use_tree(self, tree);
        }
    }
    let file = syn::parse_file(source).unwrap_or_else(|e| panic!("does not parse: {e}"));
    let mut v = Calls {
        names,
        found: Vec::new(),
    };
    v.visit_file(&file);
    v.found
}

/// Only the operations layer (`server/src/ops/`) asks the authorisation policy; web and cli
/// call an operation. The policy itself (`auth/policy.rs`) and its unit tests are exempt.
#[test]
fn only_the_operations_layer_asks_the_policy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let ops = root.join("ops");
    let policy = root.join("auth/policy.rs");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() > 50,
        "the source tree was not found from {}",
        root.display()
    );
    let mut found = Vec::new();
    for file in files
        .iter()
        .filter(|f| !f.starts_with(&ops) && **f != policy)
    {
        let text = std::fs::read_to_string(file).unwrap();
        for (call, line) in calls_in(&text, &POLICY_CALLS) {
            found.push(format!(
                "{}:{line}: {call}",
                file.strip_prefix(&root).unwrap_or(file).display()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "the authorisation policy asked outside server/src/ops/ (call an operation instead):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_policy_call_detector_sees_calls() {
    let source = r#"
        use crate::auth::policy::{Action, authorize as may};
        fn f(p: &Principal) -> bool {
            let a = crate::auth::policy::authorize(
                p,
                Action::Read,
                Target::Site,
            );
            p.can_read(3) && p
                .role_in(4)
                .is_some()
        }
        fn g() { let _ = "authorize(p, a, t)"; } // text, not a call
    "#;
    let found: Vec<String> = calls_in(source, &POLICY_CALLS)
        .into_iter()
        .map(|(c, l)| format!("{c}@{l}"))
        .collect();
    assert_eq!(
        found,
        ["use authorize@2", "authorize@4", "can_read@9", "role_in@10"]
    );
}
