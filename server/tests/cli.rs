//! The `caplens` binary end to end: start-up errors and the analysis / verifier commands.

mod common;

use std::process::{Command, Output};

use common::TestDb;

/// The databases a CLI test runs against: SQLite (no `DATABASE_URL`: the file in `--data-dir`)
/// and, when configured, a fresh PostgreSQL schema. Each comes with the environment the
/// `caplens` process needs and, for PostgreSQL, the test database (dropped by `cleanup`).
async fn databases() -> Vec<(&'static str, Vec<(&'static str, String)>, Option<TestDb>)> {
    let mut out = vec![("sqlite", Vec::new(), None)];
    if let Some(pg) = TestDb::postgres().await {
        let url = pg
            .database_url()
            .expect("a PostgreSQL test database has a URL");
        out.push(("postgres", vec![("DATABASE_URL", url)], Some(pg)));
    }
    out
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn caplens(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caplens"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CAPLENS_DATA_DIR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run caplens")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The last line a failing start-up prints (after any log lines) must say what is wrong.
fn error_line(o: &Output) -> String {
    stderr(o)
        .lines()
        .rfind(|l| l.starts_with("caplens: "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn malformed_database_url_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = caplens(
        &["migrate", "--data-dir", dir.path().to_str().unwrap()],
        &[("DATABASE_URL", "mysql://x/y")],
    );
    assert!(!o.status.success());
    let line = error_line(&o);
    assert!(
        line.contains("DATABASE_URL") && line.contains("mysql"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn unreachable_database_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = caplens(
        &["migrate", "--data-dir", dir.path().to_str().unwrap()],
        &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
    );
    assert!(!o.status.success());
    let line = error_line(&o);
    assert!(
        line.contains("cannot reach the database at postgres://nobody@127.0.0.1:1/none"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn unwritable_data_directory_is_one_clear_line() {
    // A regular file in the way: not writable as a directory even for root.
    let file = tempfile::NamedTempFile::new().unwrap();
    let data_dir = file.path().join("data");
    let o = caplens(&["migrate", "--data-dir", data_dir.to_str().unwrap()], &[]);
    assert!(!o.status.success());
    let line = error_line(&o);
    assert!(
        line.contains("is not writable") && line.contains("--data-dir"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn migrate_then_demo_on_a_fresh_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = caplens(&["migrate", "--data-dir", d], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("caplens.db").is_file());
    let o = caplens(&["demo", "--data-dir", d], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("synthetic"));
    let o = caplens(&["demo", "--data-dir", d], &[]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("already has experiments"));
    let o = caplens(&["demo", "--reset", "--data-dir", d], &[]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("loaded"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verify_exit_codes_follow_the_verdict() {
    let o = caplens(&["verify", "\\frac{1}{2}", "0.5"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "equal");
    let o = caplens(&["verify", "-1", "-1.0"], &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "negative answers are answers, not flags: {}",
        stderr(&o)
    );
    let o = caplens(&["verify", "-\\frac12", "-0.5"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = caplens(&["verify", "3", "4"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "different");
}

#[test]
fn verify_reduces_a_reference_solution_to_its_answer() {
    let o = caplens(&["verify", "18", "#### 18"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "equal");
    let math = "So the probability is $\\boxed{\\frac{1}{2}}$.";
    let o = caplens(&["verify", "0.5", math], &[]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "equal");
    let o = caplens(&["verify", "17", "#### 18"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "different");
}

#[test]
fn verify_tsv_prints_one_verdict_per_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.tsv");
    std::fs::write(&path, "1,000\t1000\n2\t3\n\\dfrac{3}{4}\t0.75\n").unwrap();
    let o = caplens(&["verify", "--tsv", path.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "equal\ndifferent\nequal\n"
    );
}

#[test]
fn extract_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.txt");
    std::fs::write(
        &path,
        "<think>maybe \\boxed{3}</think> So the result is \\boxed{\\frac{1}{2}}.",
    )
    .unwrap();
    let o = caplens(&["extract", path.to_str().unwrap()], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("answer: \\frac{1}{2}") && out.contains("rule: boxed"),
        "{out}"
    );
}

#[test]
fn passk_json_matches_the_analysis_crate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let mut lines = String::new();
    // Model a: problem p1 4/8 correct, p2 0/8; model b: counts line for p1, rollouts for p2.
    for i in 0..8 {
        lines += &format!(
            "{{\"model\":\"a\",\"problem_id\":\"p1\",\"sample\":{i},\"correct\":{}}}\n",
            i % 2 == 0
        );
        lines += &format!(
            "{{\"model\":\"a\",\"problem_id\":\"p2\",\"sample\":{i},\"correct\":false}}\n"
        );
        lines += &format!(
            "{{\"model\":\"b\",\"problem_id\":\"p2\",\"sample\":{i},\"correct\":{}}}\n",
            i == 7
        );
    }
    lines += "{\"model\":\"b\",\"problem_id\":\"p1\",\"n\":8,\"c\":2}\n";
    std::fs::write(&path, lines).unwrap();
    let o = caplens(
        &["passk", path.to_str().unwrap(), "--k", "1,8", "--json"],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let models = v["models"].as_array().unwrap();
    assert_eq!(models[0]["model"], "a");
    assert_eq!(models[1]["model"], "b");
    use caplens_analysis::passk::{pass_at_k_curve, ProblemCounts};
    let a = pass_at_k_curve(
        &[ProblemCounts { n: 8, c: 4 }, ProblemCounts { n: 8, c: 0 }],
        &[1, 8],
    );
    let b = pass_at_k_curve(
        &[ProblemCounts { n: 8, c: 2 }, ProblemCounts { n: 8, c: 1 }],
        &[1, 8],
    );
    for (model, expected) in models.iter().zip([a, b]) {
        for (point, e) in model["points"].as_array().unwrap().iter().zip(expected) {
            assert_eq!(point["k"], e.k);
            assert!((point["pass_at_k"].as_f64().unwrap() - e.pass_at_k).abs() < 1e-12);
            assert_eq!(point["problems"], 2);
        }
    }
}

#[test]
fn malformed_input_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollouts.jsonl");
    std::fs::write(&path, "{\"model\":\"a\",\"problem_id\":\"p\",\"correct\":true}\n{\"model\":\"a\",\"problem_id\":\"p\",\"correct\":\"yes\"}\n").unwrap();
    let o = caplens(&["passk", path.to_str().unwrap()], &[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("rollouts.jsonl:2: field \"correct\""), "{err}");
    let o = caplens(
        &["passk", path.to_str().unwrap(), "--skip-invalid", "--json"],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped 1 invalid line"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn demo_export_feeds_the_analysis_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.jsonl");
    let p = path.to_str().unwrap();
    let o = caplens(
        &["demo", "--export", p, "--problems", "20", "--samples", "16"],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        3 * 20 * 16
    );

    let o = caplens(&["passk", p, "--json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let models: Vec<&str> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["demo-base-7b", "demo-sft-7b", "demo-rl-7b"]);
    let at = |m: usize, k: u64| {
        v["models"][m]["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["k"] == k)
            .unwrap()["pass_at_k"]
            .as_f64()
            .unwrap()
    };
    assert!(at(2, 1) > at(1, 1), "rl ahead of sft at k=1");
    assert!(at(1, 16) > at(2, 16), "sft ahead of rl at k=n");

    let o = caplens(&["unsolvable", p, "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["k"].is_null());
    assert!(
        v["regions"].as_array().unwrap().len() >= 3,
        "overlapping, non-nested sets: {v}"
    );

    let o = caplens(&["summary", p, "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let diversity: Vec<f64> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["answer_diversity"].as_f64().unwrap())
        .collect();
    assert!(
        diversity[0] > diversity[1] && diversity[1] > diversity[2],
        "diversity base > sft > rl: {diversity:?}"
    );
    assert!(
        v["models"][0]["mean_entropy"].is_null(),
        "no token data, so null"
    );
}

#[test]
fn bare_caplens_serves_with_options_from_the_environment() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_caplens"))
        .env_remove("DATABASE_URL")
        .env("CAPLENS_DATA_DIR", dir.path())
        .env("CAPLENS_ADDR", format!("127.0.0.1:{port}"))
        .env("CAPLENS_NO_DEMO", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains(&format!("127.0.0.1:{port}")),
        "listens on CAPLENS_ADDR: {line}"
    );
    // CAPLENS_NO_DEMO: the database exists but holds no experiment.
    assert!(dir.path().join("caplens.db").is_file());
}

#[test]
fn verify_policy_switches_change_the_disputed_cases() {
    let verdict = |args: &[&str]| {
        String::from_utf8_lossy(&caplens(args, &[]).stdout)
            .trim()
            .to_string()
    };
    assert_eq!(verdict(&["verify", "75", "0.75"]), "different");
    assert_eq!(
        verdict(&["verify", "--percent", "any-scale", "75", "0.75"]),
        "equal"
    );
    assert_eq!(
        verdict(&["verify", "\\frac{2}{4}", "\\frac{1}{2}"]),
        "equal"
    );
    assert_eq!(
        verdict(&[
            "verify",
            "--strict-fractions",
            "\\frac{2}{4}",
            "\\frac{1}{2}"
        ]),
        "different"
    );
    assert_eq!(
        verdict(&["verify", "--no-thousands-separators", "1,000", "1000"]),
        "different"
    );
    assert_eq!(verdict(&["verify", "0.3333", "\\frac{1}{3}"]), "different");
    assert_eq!(
        verdict(&["verify", "--rel-tol", "1e-3", "0.3333", "\\frac{1}{3}"]),
        "equal"
    );
}

/// `caplens import` and `caplens token`: an import into a fresh SQLite file, its JSON report, a
/// duplicate, and a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_token_commands() {
    for (name, env, pg) in databases().await {
        import_and_token_commands_on(name, &env_refs(&env));
        if let Some(pg) = pg {
            pg.cleanup().await;
        }
    }
}

fn import_and_token_commands_on(db: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let file = dir.path().join("demo.jsonl");
    let o = caplens(
        &[
            "demo",
            "--export",
            file.to_str().unwrap(),
            "--problems",
            "5",
            "--samples",
            "4",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = caplens(
        &[
            "import",
            file.to_str().unwrap(),
            "--data-dir",
            data,
            "--experiment",
            "cli-e",
            "--json",
        ],
        env,
    );
    assert!(o.status.success(), "{db}: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["status"], "completed");
    assert_eq!(report["rows_stored"], 60);
    assert_eq!(report["runs"].as_array().unwrap().len(), 3);
    let o = caplens(&["import", file.to_str().unwrap(), "--data-dir", data], env);
    assert!(o.status.success(), "a duplicate is not a failure");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("duplicate"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = caplens(
        &[
            "import",
            file.to_str().unwrap(),
            "--data-dir",
            data,
            "--stage",
            "alien",
        ],
        env,
    );
    assert_eq!(o.status.code(), Some(2), "clap refuses an unknown stage");
    let o = caplens(&["import", "/nonexistent.jsonl", "--data-dir", data], env);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent.jsonl: no such file"),
        "{}",
        stderr(&o)
    );

    let o = caplens(&["token", "create", "ci", "--data-dir", data], env);
    assert!(o.status.success(), "{}", stderr(&o));
    let secret = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(secret.starts_with("clk_") && secret.len() > 40, "{secret}");
    let o = caplens(&["token", "list", "--data-dir", data], env);
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        list.contains("ci") && !list.contains(&secret),
        "the secret is never listed: {list}"
    );
    let o = caplens(&["token", "revoke", "1", "--data-dir", data], env);
    assert!(o.status.success());
    let o = caplens(&["token", "revoke", "1", "--data-dir", data], env);
    assert_eq!(
        o.status.code(),
        Some(1),
        "revoking twice says there is no active token"
    );
}

/// Killing the process mid-import leaves nothing visible; the server marks the import
/// interrupted at its next start, and importing the same file again works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_import_midway_leaves_no_partial_run() {
    for (name, env, pg) in databases().await {
        killing_an_import_on(name, &env_refs(&env), pg).await;
    }
}

async fn killing_an_import_on(db: &str, env: &[(&str, &str)], pg: Option<TestDb>) {
    use caplens_server::{config::DatabaseConfig, ingest::service::ImportService, storage::Store};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("big.jsonl");
    let o = caplens(
        &[
            "demo",
            "--export",
            file.to_str().unwrap(),
            "--problems",
            "100",
            "--samples",
            "200",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The hook stops the import after its first stored batch with the transaction open and
    // says so on stderr: the kill lands mid-write, whatever the machine's speed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_caplens"));
    child
        .args([
            "import",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--experiment",
            "killed",
        ])
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .env(caplens_server::ingest::pipeline::HOLD_IMPORT_FOR_TEST, "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = child.spawn().unwrap();
    let child_stderr = child.stderr.take().unwrap();
    let held = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(child_stderr).lines() {
            let line = line.unwrap();
            if line.contains("holding the import open after") {
                return Ok(line);
            }
            seen.push(line);
        }
        Err(seen.join("\n"))
    })
    .await
    .unwrap();
    let held = held.unwrap_or_else(|e| panic!("{db}: the import ended without holding: {e}"));
    let stored: u64 = held
        .rsplit(" after ")
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stored > 0,
        "rows were written inside the transaction: {held}"
    );
    let store = match &pg {
        Some(pg) => pg.store.clone(),
        None => {
            let config = DatabaseConfig::resolve(None, &data).unwrap();
            Store::open(&config, &data).await.unwrap()
        }
    };
    let processing: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM imports WHERE status = 'processing'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(processing, 1, "the held import is recorded as processing");
    child.kill().unwrap();
    child.wait().unwrap();
    for table in [
        "runs",
        "rollouts",
        "run_problem_stats",
        "experiments",
        "models",
        "problems",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 0, "{db}: {table} holds rows of a killed import");
    }
    let service = ImportService::new(store.clone(), &data, 1 << 30);
    let (interrupted, _) = service.recover().await.unwrap();
    assert_eq!(interrupted.len(), 1);
    let message: String = sqlx::query_scalar("SELECT message FROM imports WHERE id = $1")
        .bind(&interrupted[0])
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(message.starts_with("interrupted"), "{message}");
    if pg.is_none() {
        store.close().await;
    }
    let o = caplens(
        &[
            "import",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--json",
        ],
        env,
    );
    assert!(o.status.success(), "{db}: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["rows_stored"], 3 * 100 * 200, "{db}");
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
}

/// `serve` on a non-loopback address without accounts or `--auth` refuses to start, in one line
/// that says what to do; accounts, projects and tokens from the command line.
#[test]
fn team_server_set_up_from_the_command_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let o = caplens(
        &[
            "serve",
            "--addr",
            "0.0.0.0:0",
            "--data-dir",
            data,
            "--no-demo",
        ],
        &[],
    );
    assert!(!o.status.success());
    let line = error_line(&o);
    assert!(
        line.contains("without authentication")
            && line.contains("caplens user create NAME --admin"),
        "{}",
        stderr(&o)
    );
    let with_stdin = |args: &[&str], input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caplens"))
            .args(args)
            .env_remove("DATABASE_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = with_stdin(
        &["user", "create", "ann", "--admin", "--data-dir", data],
        "short\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("at least 10 characters"),
        "{}",
        stderr(&o)
    );
    let o = with_stdin(
        &["user", "create", "ann", "--admin", "--data-dir", data],
        "a long enough password\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = with_stdin(
        &["user", "create", "ben", "--data-dir", data],
        "another long password\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Tokens now need a user, who needs the rights the token would give.
    let o = caplens(&["token", "create", "ci", "--data-dir", data], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--user"), "{}", stderr(&o));
    let o = caplens(
        &[
            "token",
            "create",
            "ci",
            "--user",
            "ben",
            "--project",
            "default",
            "--data-dir",
            data,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("caplens project add-member default ben --role editor"),
        "{}",
        stderr(&o)
    );
    assert!(caplens(
        &[
            "project",
            "add-member",
            "default",
            "ben",
            "--role",
            "editor",
            "--data-dir",
            data
        ],
        &[]
    )
    .status
    .success());
    let o = caplens(
        &[
            "token",
            "create",
            "ci",
            "--user",
            "ben",
            "--project",
            "default",
            "--scope",
            "write",
            "--expires-days",
            "30",
            "--data-dir",
            data,
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout)
        .trim()
        .starts_with("clk_"));
    assert!(
        stderr(&o).contains("write scope in project default, expires"),
        "{}",
        stderr(&o)
    );
    let o = caplens(&["user", "list", "--data-dir", data], &[]);
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        list.contains("ann") && list.contains("site-admin") && list.contains("ben"),
        "{list}"
    );
    assert!(
        caplens(&["user", "disable", "ben", "--data-dir", data], &[])
            .status
            .success()
    );
    let o = caplens(&["audit", "--data-dir", data], &[]);
    let audit = String::from_utf8_lossy(&o.stdout).into_owned();
    for action in [
        "user_created",
        "role_changed",
        "token_created",
        "user_disabled",
    ] {
        assert!(audit.contains(action), "{action} missing: {audit}");
    }
    assert!(!audit.contains("long enough password"));
}

/// Raw sampler output (a response and its reference, no verdict) is graded by the verifier, and
/// each model's default k list runs to its own largest n.
#[test]
fn passk_grades_lines_without_verdicts_and_gives_each_model_its_own_n() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("raw.jsonl");
    let mut lines = Vec::new();
    for (problem, reference) in [("1", "2"), ("2", "\\frac{1}{2}")] {
        for sample in 0..3 {
            // Model a: only problem 1's first sample is right (0.5 stands for 1/2 nowhere).
            let answer = if problem == "1" && sample == 0 {
                "2"
            } else {
                "5"
            };
            lines.push(serde_json::json!({
                "model": "a", "problem_id": problem, "sample": sample,
                "reference": reference, "response": format!("so \\boxed{{{answer}}}"),
            }));
        }
        lines.push(serde_json::json!({
            "model": "b", "problem_id": problem, "n": 8, "c": if problem == "1" { 4 } else { 0 },
        }));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let o = caplens(&["passk", file.to_str().unwrap(), "--json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let models = doc["models"].as_array().unwrap();
    let ks = |m: &serde_json::Value| -> Vec<u64> {
        m["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["k"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(models[0]["model"], "a");
    assert_eq!(
        ks(&models[0]),
        [1, 2, 3],
        "model a's own n = 3 ends its list"
    );
    assert_eq!(ks(&models[1]), [1, 2, 4, 8]);
    let pass1 = models[0]["points"][0]["pass_at_k"].as_f64().unwrap();
    assert!((pass1 - 1.0 / 6.0).abs() < 1e-12, "{pass1}");
    // Without a reference the line cannot be graded: file, line and field are named.
    std::fs::write(
        &file,
        "{\"model\":\"a\",\"problem_id\":\"1\",\"response\":\"x\"}\n",
    )
    .unwrap();
    let o = caplens(&["passk", file.to_str().unwrap()], &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(":1: field \"reference\""),
        "{}",
        stderr(&o)
    );
}
