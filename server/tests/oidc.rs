//! OpenID Connect sign-in end to end against a real, certified provider: the npm package
//! `oidc-provider` (tests/oidc/provider.mjs, run with Node), a real `caplens serve`, and the
//! provider's own login and consent pages driven over HTTP (tests/oidc/drive-login.mjs).
//! `scripts/test.sh` installs tests/oidc/node_modules (`npm ci`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The provider, with caplens' callback registered; its issuer URL.
fn provider(callback: &str) -> (Killed, String) {
    let dir = repo().join("tests/oidc");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "tests/oidc/node_modules is missing: run `npm ci` in tests/oidc (scripts/test.sh does)"
    );
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(&dir)
        .env("OIDC_REDIRECT_URIS", callback)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().unwrap().unwrap();
    let issuer = line
        .strip_prefix("ready ")
        .expect("the provider's ready line")
        .to_owned();
    // Keep reading: a closed pipe would kill the provider at its next line of output.
    std::thread::spawn(move || lines.for_each(drop));
    (Killed(child), issuer)
}

/// `caplens serve` in OIDC mode on `port`, with a fresh data directory.
fn caplens(port: u16, issuer: &str, extra: &[&str], data: &Path) -> Killed {
    let mut args = vec![
        "serve".to_owned(),
        "--addr".into(),
        format!("127.0.0.1:{port}"),
        "--data-dir".into(),
        data.display().to_string(),
        "--no-demo".into(),
        "--no-worker".into(),
        "--auth".into(),
        "oidc".into(),
        "--oidc-issuer".into(),
        issuer.into(),
        "--oidc-client-id".into(),
        "caplens".into(),
        "--oidc-admin-group".into(),
        "caplens-admins".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    // A replica behind a load balancer is reached at another replica's public URL.
    if !extra.contains(&"--public-url") {
        args.extend([
            "--public-url".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ]);
    }
    let child = Command::new(env!("CARGO_BIN_EXE_caplens"))
        .args(&args)
        .env_remove("DATABASE_URL")
        .env("CAPLENS_OIDC_CLIENT_SECRET", "caplens-test-secret")
        .env("CAPLENS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    for _ in 0..300 {
        if ureq::get(&format!("http://127.0.0.1:{port}/healthz"))
            .call()
            .is_ok()
        {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("caplens did not start");
}

/// Runs the provider's login as `user`, starting at caplens' /auth/oidc/start.
fn login(port: u16, user: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("node")
        .arg(repo().join("tests/oidc/drive-login.mjs"))
        .args(extra)
        .arg(format!("http://127.0.0.1:{port}/auth/oidc/start"))
        .arg(user)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap_or_else(|_| panic!("{text}"))
}

fn session_cookie(result: &serde_json::Value) -> Option<String> {
    result["set_cookie"]
        .as_array()?
        .iter()
        .filter_map(|c| c.as_str())
        .find(|c| c.starts_with("caplens_session=") && !c.starts_with("caplens_session=;"))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

fn get(port: u16, path: &str, cookie: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut res = agent
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .header("Cookie", cookie)
        .call()
        .unwrap();
    let status = res.status().as_u16();
    (status, res.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn single_sign_on_with_a_real_openid_provider() {
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/auth/oidc/callback");
    let (_provider, issuer) = provider(&callback);
    let data = tempfile::tempdir().unwrap();
    let _caplens = caplens(
        port,
        &issuer,
        &["--oidc-allowed-domains", "team.example"],
        data.path(),
    );

    // Alice (in the admin group): a new account, signed in, a site admin.
    let alice = login(port, "alice", &[]);
    assert_eq!(alice["callback_status"], 303, "{alice}");
    assert_eq!(alice["location"], "/", "{alice}");
    let cookie = session_cookie(&alice).expect("a session cookie");
    let (status, users) = get(port, "/admin/users", &cookie);
    assert_eq!(status, 200, "alice is a site admin");
    assert!(
        users.contains("alice@team.example"),
        "email from the ID token"
    );
    let (status, body) = get(port, "/api/v1/experiments", &cookie);
    assert_eq!(status, 200, "{body}");

    // Bob: signed in, not an admin.
    let bob = login(port, "bob", &[]);
    let bob_cookie = session_cookie(&bob).expect("bob signs in");
    assert_eq!(get(port, "/admin/users", &bob_cookie).0, 404);
    assert_eq!(get(port, "/api/v1/audit", &bob_cookie).0, 403);

    // Mallory's domain is not allowed; Carol's email is not verified: refused, no session.
    for who in ["mallory", "carol"] {
        let r = login(port, who, &[]);
        assert_eq!(r["location"], "/login?error=sso_denied", "{who}: {r}");
        assert!(session_cookie(&r).is_none(), "{who} got a session");
    }

    // A tampered state is refused and logged; so is a callback from another browser.
    let r = login(port, "alice", &["--no-follow-callback"]);
    let url = r["callback_url"].as_str().unwrap().to_owned();
    let cookie_jar = r["cookie"].as_str().unwrap_or("").to_owned();
    let tampered = url.replace("state=", "state=x");
    let path = tampered
        .split_once(&format!("{port}"))
        .unwrap()
        .1
        .to_owned();
    let (status, _) = get(port, &path, &cookie_jar);
    assert_eq!(status, 303);
    let original_path = url.split_once(&format!("{port}")).unwrap().1.to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let res = agent
        .get(&format!("http://127.0.0.1:{port}{original_path}"))
        .call()
        .unwrap();
    assert_eq!(
        res.headers().get("location").unwrap(),
        "/login?error=sso",
        "the right state without the browser's binding cookie is refused"
    );

    // The audit log (read as alice) tells the story, without codes or secrets.
    let (status, audit) = get(port, "/api/v1/audit?limit=100", &cookie);
    assert_eq!(status, 200);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    let has = |action: &str, detail: &str| {
        entries
            .iter()
            .any(|e| e["action"] == action && e["detail"].as_str().unwrap_or("").contains(detail))
    };
    assert!(has("sign_in", "single sign-on"), "{audit}");
    assert!(has("user_created", "first single sign-on"), "{audit}");
    assert!(has("sign_in_failed", "allowed email domain"), "{audit}");
    assert!(has("sign_in_failed", "state"), "{audit}");
    let code = url
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(
        !audit.contains(code),
        "an authorization code reached the audit log"
    );
}

/// Pending sign-ins live in the browser's signed cookie, not in a server's memory: a flood of
/// started sign-ins leaves nothing to push real ones out, and the callback works on another
/// replica (same database, same public URL) than the one that started it.
#[test]
fn a_flood_of_started_sign_ins_and_a_callback_on_another_replica() {
    let port_a = free_port();
    let port_b = free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let (_provider, issuer) = provider(&format!("{public}/auth/oidc/callback"));
    let data = tempfile::tempdir().unwrap();
    let _a = caplens(port_a, &issuer, &[], data.path());
    // Replica B: the same database and public URL (as behind a load balancer).
    let _b = caplens(port_b, &issuer, &["--public-url", &public], data.path());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    for _ in 0..10_000 {
        let res = agent
            .get(&format!("{public}/auth/oidc/start"))
            .call()
            .unwrap();
        assert_eq!(res.status().as_u16(), 303);
    }
    // Alice starts on A; the provider sends her back; B takes the callback.
    let r = login(port_a, "alice", &["--no-follow-callback"]);
    let url = r["callback_url"].as_str().unwrap().to_owned();
    let cookie_jar = r["cookie"].as_str().unwrap_or("").to_owned();
    let path = url.split_once(&format!("{port_a}")).unwrap().1.to_owned();
    let res = agent
        .get(&format!("http://127.0.0.1:{port_b}{path}"))
        .header("Cookie", &cookie_jar)
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(
        res.headers().get("location").unwrap(),
        "/",
        "B finished the sign-in A started"
    );
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("caplens_session=") && !c.starts_with("caplens_session=;"))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .expect("a session from replica B");
    assert_eq!(
        get(port_a, "/admin/users", &session).0,
        200,
        "the session works on A too"
    );
}
