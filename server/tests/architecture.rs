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

/// The `[dependencies]` (not dev-dependencies) a crate's Cargo.toml names.
fn dependencies(krate: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join(krate).join("Cargo.toml"))
        .unwrap_or_else(|e| panic!("{krate}/Cargo.toml: {e}"));
    let mut in_dependencies = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once('=') {
                names.push(name.trim().to_string());
            }
        }
    }
    assert!(
        !names.is_empty(),
        "{krate}/Cargo.toml names no dependencies"
    );
    names
}

/// Only `caplens-store` speaks SQL: it is the only crate that depends on sqlx, and its pool is
/// private (`Store::pool` exists only with the `test-support` feature, for tests). So SQL
/// anywhere else is a compile error, not a text match. (Tests may query the database directly.)
#[test]
fn only_the_store_depends_on_sqlx() {
    for krate in ["analysis", "model", "app", "server"] {
        assert!(
            !dependencies(krate).iter().any(|d| d == "sqlx"),
            "{krate} depends on sqlx: SQL belongs in store/ (add a Store method)"
        );
    }
    assert!(dependencies("store").iter().any(|d| d == "sqlx"));
}

/// The crates point one way: analysis ← model ← (store, app) ← server. The store and the UI
/// never see each other, so they build side by side.
#[test]
fn the_crates_point_one_way() {
    let allowed: [(&str, &[&str]); 5] = [
        ("analysis", &[]),
        ("model", &["caplens-analysis"]),
        ("store", &["caplens-analysis", "caplens-model"]),
        ("app", &["caplens-analysis", "caplens-model"]),
        (
            "server",
            &[
                "caplens-analysis",
                "caplens-model",
                "caplens-store",
                "caplens-app",
            ],
        ),
    ];
    for (krate, may) in allowed {
        for dep in dependencies(krate) {
            if dep.starts_with("caplens-") {
                assert!(
                    may.contains(&dep.as_str()),
                    "{krate} depends on {dep}: the crates point one way (ARCHITECTURE.md)"
                );
            }
        }
    }
}

/// The server's modules in layers, lowest first. A module may use modules of lower layers
/// only: never one of its own layer, never one above it.
const LAYERS: [&[&str]; 6] = [
    &["error", "config", "heatmap"],
    &["storage"],
    &["auth", "ingest", "engine", "review", "views", "demo"],
    &["evals", "docs"],
    &["ops"],
    &["web", "cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `crate::MODULE` a file's syntax tree names (paths in code, types and `use` trees,
/// grouped ones included), with its line.
fn crate_modules_in(source: &str) -> Vec<(String, usize)> {
    use syn::visit::Visit;
    struct Finder(Vec<(String, usize)>);
    fn use_tree(tree: &syn::UseTree, after_crate: bool, out: &mut Vec<(String, usize)>) {
        match tree {
            syn::UseTree::Path(p) if !after_crate && p.ident == "crate" => {
                use_tree(&p.tree, true, out)
            }
            syn::UseTree::Path(p) if after_crate => {
                out.push((p.ident.to_string(), p.ident.span().start().line))
            }
            syn::UseTree::Name(n) if after_crate => {
                out.push((n.ident.to_string(), n.ident.span().start().line))
            }
            syn::UseTree::Rename(r) if after_crate => {
                out.push((r.ident.to_string(), r.ident.span().start().line))
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    use_tree(t, after_crate, out)
                }
            }
            _ => {}
        }
    }
    impl<'ast> Visit<'ast> for Finder {
        fn visit_path(&mut self, path: &'ast syn::Path) {
            let mut segments = path.segments.iter();
            if let (Some(first), Some(second)) = (segments.next(), segments.next()) {
                if first.ident == "crate" {
                    self.0
                        .push((second.ident.to_string(), second.ident.span().start().line));
                }
            }
            syn::visit::visit_path(self, path);
        }
        fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
            use_tree(&item.tree, false, &mut self.0);
        }
    }
    let file = syn::parse_file(source).expect("parse");
    let mut finder = Finder(Vec::new());
    finder.visit_file(&file);
    finder.0
}

/// Layers point down inside the server: error/config ← storage ← (auth, ingest, engine, review,
/// views, demo) ← evals ← ops ← (web, cli) ← main.
#[test]
fn server_modules_use_only_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            files.push(path.clone());
        }
        let mine = layer_of(&module).unwrap_or_else(|| {
            panic!("server/src/{module} has no layer in LAYERS (ARCHITECTURE.md)")
        });
        for file in files {
            seen += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            for (used, line) in crate_modules_in(&text) {
                if used == module {
                    continue;
                }
                if let Some(theirs) = layer_of(&used) {
                    if theirs >= mine {
                        broken.push(format!(
                            "{}:{line}: {module} (layer {mine}) uses crate::{used} (layer {theirs})",
                            file.strip_prefix(&src).unwrap().display()
                        ));
                    }
                }
            }
        }
    }
    assert!(seen > 50, "the server's sources were not found");
    assert!(
        broken.is_empty(),
        "a module uses one of its own layer or above (ARCHITECTURE.md, layers):\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn the_layer_detector_sees_grouped_and_inline_paths() {
    let found: Vec<String> = crate_modules_in(
        "use crate::{ops::x, web::{a, b}};\nfn f() { crate::cli::run(); let _: crate::views::V; }",
    )
    .into_iter()
    .map(|(m, _)| m)
    .collect();
    assert_eq!(found, ["ops", "web", "cli", "views"]);
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

/// Pages never import pages: what two pages share is a component (`app/src/components/`).
/// Read as text, not syntax, because most of a page is inside `view!` macros, whose tokens the
/// syntax tree does not open.
#[test]
fn pages_never_import_pages() {
    let pages = Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/src/pages");
    let mut files = Vec::new();
    rust_files(&pages, &mut files);
    assert!(files.len() > 10, "the app's pages were not found");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            // `super::*` is a test module's glob of its own page.
            let imports_a_page =
                code.contains("pages::") || code.replace("super::*", "").contains("super::");
            if imports_a_page {
                found.push(format!(
                    "app/src/pages/{}:{}: {}",
                    file.strip_prefix(&pages).unwrap().display(),
                    i + 1,
                    code
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a page uses another page (move what they share to app/src/components/):\n  {}",
        found.join("\n  ")
    );
}

/// The `pub` items (fn, struct, enum, const, static, type, trait) a line defines, if any.
fn pub_item_defined(line: &str) -> Option<&str> {
    let mut rest = line.trim_start().strip_prefix("pub")?;
    if let Some(r) = rest.strip_prefix('(') {
        rest = &r[r.find(')')? + 1..];
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    // Skip `async`, `unsafe` and the `const` of `const fn`.
    let skipped =
        |w: &str| matches!(w, "async" | "unsafe") || (w == "const" && rest.contains("const fn"));
    let at = words.iter().position(|w| !skipped(w))?;
    let kind = words[at];
    if !matches!(
        kind,
        "fn" | "struct" | "enum" | "const" | "static" | "type" | "trait"
    ) {
        return None;
    }
    let name = words.get(at + 1)?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    Some(&name[..end]).filter(|n| !n.is_empty())
}

/// A `pub` item nothing names is dead code the compiler cannot see (it assumes another crate
/// may use it). Read as text: every identifier in every Rust file of the workspace (tests,
/// benches, `view!` macros included) counts as a use.
#[test]
fn no_pub_item_is_named_only_where_it_is_defined() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["analysis", "model", "store", "app", "server"] {
        rust_files(&root.join(krate), &mut files);
    }
    files.retain(|f| !f.components().any(|c| c.as_os_str() == "target"));
    let mut uses: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut defined = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !word.is_empty() {
                *uses.entry(word.to_owned()).or_default() += 1;
            }
        }
        let production = !file.components().any(|c| c.as_os_str() == "tests");
        for (i, line) in text.lines().enumerate() {
            if let Some(name) = pub_item_defined(line).filter(|_| production) {
                defined.push((name.to_owned(), file.clone(), i + 1));
            }
        }
    }
    assert!(defined.len() > 500, "the pub items were not found");
    let dead: Vec<String> = defined
        .iter()
        .filter(|(name, _, _)| uses.get(name).copied().unwrap_or(0) <= 1)
        .map(|(name, file, line)| {
            let path = file.strip_prefix(&root).unwrap_or(file);
            format!("{}:{line}: {name}", path.display())
        })
        .collect();
    assert!(
        dead.is_empty(),
        "pub items nothing uses (remove them, or use them):\n  {}",
        dead.join("\n  ")
    );
}

#[test]
fn the_pub_item_detector_reads_definitions() {
    assert_eq!(pub_item_defined("pub fn passk() {"), Some("passk"));
    assert_eq!(
        pub_item_defined("    pub(crate) async fn run<T>(x: T)"),
        Some("run")
    );
    assert_eq!(pub_item_defined("pub const fn new() -> Self"), Some("new"));
    assert_eq!(pub_item_defined("pub const LIMIT: u64 = 1;"), Some("LIMIT"));
    assert_eq!(
        pub_item_defined("pub(in crate::ops) struct Access<'a> {"),
        Some("Access")
    );
    assert_eq!(pub_item_defined("pub mod views;"), None);
    assert_eq!(pub_item_defined("pub use x::y;"), None);
    assert_eq!(pub_item_defined("let pub_x = 1;"), None);
}
