//! The refactor guard: every page, REST read document and export the demo offers, compared
//! byte for byte with a copy recorded before the structure changed (`tests/golden/`).
//!
//! Only what differs between two loads of the same demo is normalised: wall-clock timestamps (`<time>`),
//! random ids (`<uuid>`), the pages' CSP nonce (`<nonce>`) and the order in which a streamed page
//! sends its resolved resources. Everything else — numbers, order,
//! markup, chart geometry — must stay as it was. To record a new copy after an intended change:
//! `CAPLENS_GOLDEN_RECORD=1 cargo test -p caplens-server --test golden`, then read the diff.

mod common;

use axum::{body::Body, http::Request, Router};
use caplens_server::{demo, demo::generate::DemoConfig, web};
use common::TestDb;
use http_body_util::BodyExt;
use std::path::{Path, PathBuf};
use tower::ServiceExt;

async fn app(db: &TestDb) -> Router {
    let config = DemoConfig {
        problems: 12,
        samples_per_problem: 8,
        ..DemoConfig::default()
    };
    demo::load_demo(&db.store, &config).await.unwrap();
    web::router(
        caplens_server::ingest::service::ImportService::new(db.store.clone(), db.dir(), 1 << 30),
        Path::new("/nonexistent-site"),
        "127.0.0.1:0".parse().unwrap(),
    )
}

async fn get(app: &Router, uri: &str) -> (u16, String) {
    let res = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        app.clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap()),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {uri} did not answer within 120 s"))
    .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Replaces what two loads of the same demo legitimately differ in.
fn normalise(text: &str) -> String {
    // The page's CSP nonce is random per request (Leptos also writes it into `crossorigin`).
    let mut nonces: Vec<&str> = text
        .split("nonce=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|n| !n.is_empty())
        .collect();
    nonces.sort_unstable();
    nonces.dedup();
    let mut owned = text.to_string();
    for nonce in nonces {
        owned = owned.replace(nonce, "<nonce>");
    }
    let text = owned.as_str();
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    while i < b.len() {
        // 2026-12-07T17:19:21(.123)(Z|+00:00) or with a space: a wall-clock time.
        if i + 19 <= b.len()
            && digits(&b[i..i + 4])
            && b[i + 4] == b'-'
            && digits(&b[i + 5..i + 7])
            && b[i + 7] == b'-'
            && digits(&b[i + 8..i + 10])
            && (b[i + 10] == b'T' || b[i + 10] == b' ')
            && digits(&b[i + 11..i + 13])
            && b[i + 13] == b':'
            && digits(&b[i + 14..i + 16])
            && b[i + 16] == b':'
            && digits(&b[i + 17..i + 19])
        {
            let mut j = i + 19;
            if j < b.len() && b[j] == b'.' {
                j += 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
            }
            if j < b.len() && b[j] == b'Z' {
                j += 1;
            } else if j + 6 <= b.len()
                && (b[j] == b'+' || b[j] == b'-')
                && digits(&b[j + 1..j + 3])
                && b[j + 3] == b':'
                && digits(&b[j + 4..j + 6])
            {
                j += 6;
            }
            out.push_str("<time>");
            i = j;
            continue;
        }
        // 8-4-4-4-12 hex: a random id.
        if i + 36 <= b.len() && is_uuid(&b[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        let ch = text[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// A streamed page sends its resolved resources (`__RESOLVED_RESOURCES[id] = "…";`) in the order
/// they finish, which varies from load to load; each keeps its id. Lifted out of the page and
/// listed by id at the end, so only their content and the rest of the page are compared
/// (recorded copies keep the order they were sent in). Nonces must be normalised first.
fn resources_in_id_order(text: &str) -> String {
    const START: &str = "__RESOLVED_RESOURCES[";
    let mut page = String::with_capacity(text.len());
    let mut lifted: Vec<(u64, String)> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(START) {
        page.push_str(&rest[..at]);
        let statement = &rest[at..];
        let id_end = statement[START.len()..].find(']').map(|i| START.len() + i);
        let id = id_end.and_then(|e| statement[START.len()..e].parse::<u64>().ok());
        // The value is a JSON string: it ends at the first quote not escaped by a backslash.
        let open = statement.find(" = \"").map(|i| i + 4);
        let close = open.and_then(|o| {
            let bytes = statement.as_bytes();
            let mut i = o;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(i),
                    _ => i += 1,
                }
            }
            None
        });
        match (id, close) {
            (Some(id), Some(close)) => {
                let end = close + 1 + usize::from(statement[close + 1..].starts_with(';'));
                lifted.push((id, statement[..end].to_string()));
                page.push_str("__RESOLVED_RESOURCES[…];");
                rest = &statement[end..];
            }
            _ => {
                page.push_str(START);
                rest = &statement[START.len()..];
            }
        }
    }
    page.push_str(rest);
    // How many of them share one <script> chunk is timing too.
    const SPLIT: &str =
        "__RESOLVED_RESOURCES[…];</script><script nonce=\"<nonce>\">__RESOLVED_RESOURCES[…];";
    while page.contains(SPLIT) {
        page = page.replace(SPLIT, "__RESOLVED_RESOURCES[…];__RESOLVED_RESOURCES[…];");
    }
    if !lifted.is_empty() {
        lifted.sort();
        page.push_str("\n<resolved resources by id>\n");
        for (_, statement) in lifted {
            page.push_str(&statement);
            page.push('\n');
        }
    }
    page
}

fn is_uuid(s: &[u8]) -> bool {
    s.iter().enumerate().all(|(k, c)| match k {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// Every GET the demo answers that shows data: pages, REST read documents, exports.
fn uris() -> Vec<String> {
    let mut uris: Vec<String> = [
        "/",
        "/experiments",
        "/models",
        "/datasets",
        "/runs",
        "/evals",
        "/projects",
        "/problems/1",
        "/problems/5",
        "/rollouts/1",
        "/rollouts/2",
        "/api/v1/experiments",
        "/api/v1/models",
        "/api/v1/datasets",
        "/api/v1/runs",
        "/api/v1/formats",
        "/api/v1/openapi.json",
    ]
    .map(String::from)
    .to_vec();
    for slug in ["demo-rlvr-boundary", "demo-rl-dynamics"] {
        for page in [
            "",
            "/passk",
            "/unsolvable",
            "/compare",
            "/token-stats",
            "/dynamics",
            "/rft",
            "/review",
            "/discussion",
        ] {
            uris.push(format!("/experiments/{slug}{page}"));
        }
        for doc in [
            "",
            "/passk",
            "/unsolvable",
            "/summary",
            "/review",
            "/review.jsonl",
            "/review.csv",
        ] {
            uris.push(format!("/api/v1/experiments/{slug}{doc}"));
        }
        for chart in [
            "passk/passk",
            "unsolvable/sets",
            "unsolvable/set-sizes",
            "compare/passk",
            "compare/diversity",
            "compare/venn",
            "compare/rbf",
            "dynamics/accuracy",
            "dynamics/entropy",
            "dynamics/law",
            "rft/bonus",
            "token-stats/position",
            "token-stats/ppl",
            "token-stats/impact",
        ] {
            uris.push(format!("/export/experiments/{slug}/{chart}.svg"));
        }
        uris.push(format!("/export/experiments/{slug}/rft.jsonl"));
    }
    uris
}

fn file_name(uri: &str) -> String {
    let name: String = uri
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "root".into()
    } else {
        name
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[tokio::test]
async fn the_demo_reads_as_recorded() {
    let record = std::env::var("CAPLENS_GOLDEN_RECORD").is_ok_and(|v| v == "1");
    let dir = golden_dir();
    for db in TestDb::all().await {
        let app = app(&db).await;
        let mut differ = Vec::new();
        for uri in uris() {
            let (status, body) = get(&app, &uri).await;
            let text = format!("{status}\n{}", normalise(&body));
            let path = dir.join(file_name(&uri));
            if record && db.name == "sqlite" {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "no recorded copy of {uri} at {} ({e}); record with CAPLENS_GOLDEN_RECORD=1",
                    path.display()
                )
            });
            if resources_in_id_order(&want) != resources_in_id_order(&text) {
                // What it is now, beside the build, so the difference can be read with `diff`.
                let now = Path::new(env!("CARGO_TARGET_TMPDIR")).join("golden-now");
                std::fs::create_dir_all(&now).unwrap();
                std::fs::write(now.join(file_name(&uri)), &text).unwrap();
                let line = want
                    .lines()
                    .zip(text.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(want.lines().count().min(text.lines().count()));
                let at = |s: &str| {
                    s.lines()
                        .nth(line)
                        .unwrap_or("<end>")
                        .chars()
                        .take(300)
                        .collect::<String>()
                };
                differ.push(format!(
                    "{uri} ({}) differs at line {}:\n  recorded: {}\n  now:      {}",
                    db.name,
                    line + 1,
                    at(&want),
                    at(&text)
                ));
            }
        }
        assert!(
            differ.is_empty(),
            "{} of {} documents differ from tests/golden (now: {}/golden-now):\n{}",
            differ.len(),
            uris().len(),
            env!("CARGO_TARGET_TMPDIR"),
            differ.join("\n")
        );
        db.cleanup().await;
    }
}

#[test]
fn normalising_touches_only_what_varies() {
    assert_eq!(
        resources_in_id_order(
            r#"a__RESOLVED_RESOURCES[8] = "x\"y";b__RESOLVED_RESOURCES[5] = "z";c"#
        ),
        "a__RESOLVED_RESOURCES[…];b__RESOLVED_RESOURCES[…];c\n<resolved resources by id>\n\
         __RESOLVED_RESOURCES[5] = \"z\";\n__RESOLVED_RESOURCES[8] = \"x\\\"y\";\n"
    );
    assert_eq!(
        normalise("at 2026-12-07T17:19:21.123Z, id 0f8e0c1a-3b2d-4c5e-8f9a-0123456789ab; 2026-12-07 17:19:21+00:00 x"),
        "at <time>, id <uuid>; <time> x"
    );
    assert_eq!(
        normalise(r#"<script nonce="aZ9_-x">1</script><link crossorigin="aZ9_-x">"#),
        r#"<script nonce="<nonce>">1</script><link crossorigin="<nonce>">"#
    );
    assert_eq!(
        normalise("pass@1 0.4375 ≤ 2026-12"),
        "pass@1 0.4375 ≤ 2026-12"
    );
}
