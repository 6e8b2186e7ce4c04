//! Engines are not a proxy (issue 25), tested as the attacker: an editor who registers an
//! engine at an address of the server's own network, hoping the server connects there for them
//! and tells them what it found.
//!
//! Every fake engine here is a real TCP listener on 127.0.0.1 that records who connected, so
//! "refused" means "no connection was made", not merely "an error came back". This binary
//! never sets the process-wide engine policy: `OpenAiEngine::new` and `caplens` without
//! `--engine-allow` run with the default, which refuses loopback. The tests that need an
//! engine on loopback to be reachable say so with an explicit policy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use caplens_server::engine::netguard::EnginePolicy;
use caplens_server::engine::openai::{ApiMode, OpenAiConfig, OpenAiEngine};
use caplens_server::engine::{Engine, EngineError, GenerationRequest, Prompt};

/// What the fake engine answers to one request line (`GET /v1/models HTTP/1.1`): a whole raw
/// HTTP response.
type Answer = fn(&str) -> String;

/// A TCP listener on 127.0.0.1 that counts connections and answers each request with `Answer`.
struct FakeEngine {
    addr: SocketAddr,
}

/// The first bytes of the test's own probe connection (see [`FakeEngine::connections_so_far`]).
const PROBE: &str = "PROBE-CONNECTIONS-SO-FAR";

impl FakeEngine {
    fn start(answer: Answer) -> FakeEngine {
        FakeEngine::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), answer)
    }

    fn start_on(ip: IpAddr, answer: Answer) -> FakeEngine {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                // Only so that a client that connects and then sends nothing cannot stall the
                // listener; no test measures time.
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    connections.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let mut stream = reader.get_ref().try_clone().unwrap();
                if request_line.starts_with(PROBE) {
                    let _ = write!(stream, "{}", connections.load(Ordering::SeqCst));
                    continue;
                }
                connections.fetch_add(1, Ordering::SeqCst);
                // The rest of the head, then the body, so the client is never cut off while
                // sending.
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let _ = stream.write_all(answer(request_line.trim_end()).as_bytes());
            }
        });
        FakeEngine { addr }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many connections other clients made so far. The listener accepts in order, so every
    /// connection completed before this probe's is counted before the probe is answered: no
    /// waiting, no timing.
    fn connections_so_far(&self) -> usize {
        let mut probe = TcpStream::connect(self.addr).unwrap();
        write!(probe, "{PROBE}\r\n").unwrap();
        let mut count = String::new();
        probe.read_to_string(&mut count).unwrap();
        count.trim().parse().unwrap()
    }
}

fn http(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

/// A working OpenAI-compatible server: one model `m`, one completion per request.
fn working_engine(request_line: &str) -> String {
    if request_line.starts_with("GET /v1/models ") {
        http(
            "200 OK",
            "Content-Type: application/json\r\n",
            r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#,
        )
    } else {
        http(
            "200 OK",
            "Content-Type: application/json\r\n",
            r#"{"choices":[{"index":0,"text":" 2","finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        )
    }
}

const SECRET: &str = "SECRET-a7f3e1-internal-admin-token";

fn config(base_url: &str) -> OpenAiConfig {
    let mut config = OpenAiConfig::new(base_url, "m");
    config.max_attempts = 1;
    config.backoff_ms = 0;
    config
}

fn one_sample() -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Text("1+1=".into()),
        continuation: None,
        n: 1,
        params: Default::default(),
    }
}

/// Every way an engine built with the process's policy can be asked to connect: listing the
/// served models (what saving an engine does) and generating (what a worker does). Returns the
/// errors; a success is a test failure.
fn use_engine(base_url: &str) -> Vec<EngineError> {
    match OpenAiEngine::new(config(base_url), ApiMode::Completions) {
        Err(refused_at_build) => vec![refused_at_build],
        Ok(engine) => vec![
            engine
                .served_models()
                .expect_err(&format!("{base_url}: listing models must fail")),
            engine
                .generate(&one_sample())
                .expect_err(&format!("{base_url}: generating must fail")),
        ],
    }
}

/// An engine whose policy lets it reach 127.0.0.1, as `--engine-allow 127.0.0.1` does.
fn engine_allowed_on_loopback(base_url: &str) -> OpenAiEngine {
    let policy = EnginePolicy::from_entries(["127.0.0.1"]).unwrap();
    OpenAiEngine::with_policy(config(base_url), ApiMode::Completions, Arc::new(policy)).unwrap()
}

/// The ways of writing "this machine" that an address check on the URL's text misses, but the
/// operating system's resolver does not.
fn loopback_spellings(port: u16) -> Vec<String> {
    [
        "http://127.0.0.1:{port}",
        "http://localhost:{port}",
        "http://LocalHost.:{port}",
        "http://[::ffff:127.0.0.1]:{port}",
        "http://[::ffff:7f00:1]:{port}",
        "http://2130706433:{port}",
        "http://0x7f000001:{port}",
        "http://0x7f.0.0.1:{port}",
        "http://0177.0.0.1:{port}",
        "http://127.1:{port}",
        "http://127.0.0.1.:{port}",
        "http://evil@127.0.0.1:{port}/#x",
        "http://127.0.0.1:{port}/admin?x=",
    ]
    .iter()
    .map(|u| u.replace("{port}", &port.to_string()))
    .collect()
}

#[test]
fn an_engine_on_loopback_is_refused_without_a_connection() {
    let target = FakeEngine::start(working_engine);
    for url in loopback_spellings(target.port()) {
        for error in use_engine(&url) {
            assert!(
                !error.is_transient(),
                "{url}: a refused address is not worth retrying: {error}"
            );
            let text = error.to_string();
            assert!(
                text.contains("--engine-allow") || text.contains("base_url"),
                "{url}: the error says why and what to do: {text}"
            );
        }
        assert_eq!(
            target.connections_so_far(),
            0,
            "{url}: a connection was made"
        );
    }
}

/// The machine's own host name and the IPv4 address it resolves to (through /etc/hosts): a name
/// no rule refuses by its text that resolves to an address of this machine — from here, what a
/// DNS name pointed (or rebound) at an internal address looks like.
fn own_host_name() -> (String, IpAddr) {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host name (Linux)")
        .trim()
        .to_owned();
    let ip = (name.as_str(), 0)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("the host name {name} does not resolve: {e}"))
        .map(|a| a.ip())
        .find(IpAddr::is_ipv4)
        .unwrap_or_else(|| panic!("the host name {name} has no IPv4 address"));
    (name, ip)
}

#[test]
fn a_name_that_resolves_to_a_refused_address_gets_no_connection() {
    let (name, ip) = own_host_name();
    assert!(
        caplens_server::engine::netguard::refusal_reason(ip).is_some(),
        "this test needs the machine's host name ({name}) to resolve to a non-public address, \
         as /etc/hosts makes it almost everywhere; it resolves to {ip}"
    );
    let target = FakeEngine::start_on(ip, working_engine);
    let url = format!("http://{name}:{}", target.port());
    for error in use_engine(&url) {
        assert!(!error.is_transient(), "{url}: {error}");
        assert!(
            error.to_string().contains("--engine-allow"),
            "{url}: {error}"
        );
    }
    assert_eq!(
        target.connections_so_far(),
        0,
        "{url}: a connection was made"
    );
}

#[test]
fn the_connection_itself_is_guarded_not_only_the_saved_url() {
    // The engine's HTTP agent, used directly: no save-time check runs, only the resolver that
    // the agent connects through. Host names are resolved by the operating system here, so
    // this is also what a DNS name that rebinds to a refused address meets.
    let target = FakeEngine::start(working_engine);
    let agent = caplens_server::engine::netguard::engine_agent(
        Arc::new(EnginePolicy::default()),
        Duration::from_secs(30),
    );
    for url in loopback_spellings(target.port()) {
        let url = format!("{url}/v1/models");
        let error = agent
            .get(&url)
            .call()
            .expect_err(&format!("{url}: must not connect"));
        // Refused by the resolver, or not even a URL ureq sends (`evil@…/#x`): either way, no
        // connection.
        assert!(
            caplens_server::engine::netguard::refusal_of(&error).is_some()
                || matches!(error, ureq::Error::BadUri(_) | ureq::Error::Http(_)),
            "{url}: {error}"
        );
        assert_eq!(
            target.connections_so_far(),
            0,
            "{url}: a connection was made"
        );
    }
}

#[test]
fn an_allowed_engine_on_loopback_works() {
    let target = FakeEngine::start(working_engine);
    let engine = engine_allowed_on_loopback(&format!("http://127.0.0.1:{}", target.port()));
    assert_eq!(engine.served_models().unwrap(), ["m"]);
    let generation = engine.generate(&one_sample()).unwrap();
    assert_eq!(generation.completions[0].text, " 2");
    assert_eq!(target.connections_so_far(), 2);
}

/// Answers every request with a redirect to the port named in its path (`/to/PORT/...`).
fn redirect_elsewhere(request_line: &str) -> String {
    let path = request_line.split(' ').nth(1).unwrap_or_default();
    let port = path.split('/').nth(2).unwrap_or_default();
    http(
        "302 Found",
        &format!("Location: http://127.0.0.1:{port}/v1/models\r\n"),
        "",
    )
}

#[test]
fn a_redirect_is_not_followed_even_to_an_allowed_address() {
    let elsewhere = FakeEngine::start(working_engine);
    let redirecting = FakeEngine::start(redirect_elsewhere);
    let engine = engine_allowed_on_loopback(&format!(
        "http://127.0.0.1:{}/to/{}",
        redirecting.port(),
        elsewhere.port()
    ));
    let errors = [
        engine.served_models().unwrap_err(),
        engine.generate(&one_sample()).unwrap_err(),
    ];
    for error in errors {
        let text = error.to_string();
        assert!(text.contains("302"), "{text}");
        assert!(!text.contains("Location"), "{text}");
    }
    assert_eq!(redirecting.connections_so_far(), 2);
    assert_eq!(
        elsewhere.connections_so_far(),
        0,
        "the redirect was followed"
    );
}

fn secret_answers(request_line: &str) -> String {
    let json = "Content-Type: application/json\r\n";
    match request_line.split(' ').nth(1).unwrap_or_default() {
        // An error answer in every shape servers use for their messages.
        p if p.starts_with("/a/") => http("500 Internal Server Error", "", SECRET),
        p if p.starts_with("/b/") => http(
            "404 Not Found",
            json,
            &format!(r#"{{"error":{{"message":"{SECRET}","type":"NotFoundError"}}}}"#),
        ),
        p if p.starts_with("/c/") => http(
            "400 Bad Request",
            json,
            &format!(r#"{{"detail":"{SECRET}"}}"#),
        ),
        p if p.starts_with("/d/") => http(
            "403 Forbidden",
            json,
            &format!(r#"{{"message":"{SECRET}"}}"#),
        ),
        p if p.starts_with("/e/") => http("429 Too Many Requests", "", SECRET),
        // A success that is not an OpenAI answer: the body of some other service.
        p if p.starts_with("/f/") => http("200 OK", "", SECRET),
        p if p.starts_with("/g/") => http(
            "200 OK",
            json,
            &format!(r#"{{"choices":"{SECRET}","data":"{SECRET}"}}"#),
        ),
        p if p.starts_with("/h/") => http(
            "200 OK",
            json,
            &format!(r#"{{"choices":[{{"text":7,"x":"{SECRET}"}}]}}"#),
        ),
        _ => http("404 Not Found", "", SECRET),
    }
}

#[test]
fn an_answer_s_body_never_reaches_the_error() {
    let target = FakeEngine::start(secret_answers);
    for shape in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let engine =
            engine_allowed_on_loopback(&format!("http://127.0.0.1:{}/{shape}", target.port()));
        // Listing models may succeed with nothing (a JSON answer without the list's shape);
        // generating cannot. Neither may show what the address answered.
        let listed = match engine.served_models() {
            Ok(models) => format!("{models:?}"),
            Err(e) => e.to_string(),
        };
        let generated = engine
            .generate(&one_sample())
            .expect_err(&format!("/{shape}: generating must fail"))
            .to_string();
        for text in [listed, generated] {
            assert!(!text.contains("SECRET"), "/{shape}: {text}");
            assert!(!text.contains("a7f3e1"), "/{shape}: {text}");
        }
    }
}

fn caplens(data_dir: &std::path::Path, args: &[&str], allow_env: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caplens"));
    cmd.args(args)
        .env("CAPLENS_DATA_DIR", data_dir)
        .env("CAPLENS_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("CAPLENS_ENGINE_ALLOW");
    if let Some(allow) = allow_env {
        cmd.env("CAPLENS_ENGINE_ALLOW", allow);
    }
    cmd.output().expect("run caplens")
}

#[test]
fn caplens_engine_add_reaches_loopback_only_when_allowed() {
    let target = FakeEngine::start(working_engine);
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}", target.port());
    let add = ["engine", "add", "gpu", "--base-url", &base, "--model", "m"];

    let refused = caplens(dir.path(), &add, None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("--engine-allow"), "{stderr}");
    assert_eq!(target.connections_so_far(), 0, "a connection was made");

    let flag = caplens(
        dir.path(),
        &[&add[..], &["--engine-allow", "127.0.0.1"]].concat(),
        None,
    );
    assert!(
        flag.status.success(),
        "{}",
        String::from_utf8_lossy(&flag.stderr)
    );
    assert_eq!(target.connections_so_far(), 1);

    let env = caplens(dir.path(), &add, Some("10.0.0.0/8,127.0.0.0/8"));
    assert!(
        env.status.success(),
        "{}",
        String::from_utf8_lossy(&env.stderr)
    );
    assert_eq!(target.connections_so_far(), 2);

    // An allow-list that names something else still refuses this address.
    let other = caplens(dir.path(), &add, Some("127.0.0.2,gpu.internal"));
    assert!(!other.status.success());
    assert_eq!(target.connections_so_far(), 2);
}
