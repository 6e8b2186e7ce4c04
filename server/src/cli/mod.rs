//! Command-line interface: argument definitions (clap) and dispatch to the commands.
//! The analysis commands' logic lives in [`analysis`]; the server in `crate::serve`.

pub mod access;
pub mod analysis;
pub mod blobs;
pub mod engine;
pub mod eval;
pub mod import;
pub mod verify;

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

/// caplens — what can this checkpoint solve that the last one could not?
#[derive(Debug, Parser)]
#[command(name = "caplens", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where data lives (used by `serve`, `migrate`, `demo`).
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Database URL: sqlite://FILE or postgres://USER@HOST:PORT/DB. Default: SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory for the default SQLite file and the blob store (token traces).
    #[arg(long, env = "CAPLENS_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// Blob store (token traces, response packs, kept uploads): s3://BUCKET/PREFIX (AWS S3,
    /// MinIO, Ceph, R2), gs://BUCKET/PREFIX, az://CONTAINER/PREFIX or file:///PATH. Credentials
    /// come from the cloud's environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ENDPOINT_URL, ...). Default: the one `caplens blobs migrate` recorded in
    /// the database, else DATA_DIR/blobs.
    #[arg(long, env = "CAPLENS_BLOB_URL", global = true)]
    pub blob_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the web server (the default command).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Load the synthetic demo experiment.
    Demo(DemoArgs),
    /// pass@k curves (unbiased estimator) of native JSON Lines rollout files.
    Passk(PasskArgs),
    /// Problems no rollout solved, per model, and how those sets overlap.
    Unsolvable(UnsolvableArgs),
    /// Per-model summary: pass@1, answer diversity, quality rates, token statistics.
    Summary(SummaryArgs),
    /// Select rollouts for rejection-sampling fine-tuning (paper section 4.4.1).
    RftSelect(RftSelectArgs),
    /// Compare a predicted answer with a reference: prints equal / different / unverifiable
    /// (exit 0 / 1 / 2), or one verdict per `pred<TAB>ref` line with --tsv.
    Verify(VerifyArgs),
    /// Print the final answer found in a response file and the rule that found it.
    Extract(ExtractArgs),
    /// Import rollout files into the configured database (formats: docs/formats/).
    Import(import::ImportArgs),
    /// Upload rollout files to a caplens server over its REST API.
    Push(import::PushArgs),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(access::TokenCommand),
    /// Accounts: create, list, disable, enable, reset a password.
    #[command(subcommand)]
    User(access::UserCommand),
    /// Projects and their members.
    #[command(subcommand)]
    Project(access::ProjectCommand),
    /// Print the newest audit log entries (sign-ins, tokens, imports, evaluations, roles).
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Sample a dataset with an engine (embedded model or an OpenAI-compatible server) and
    /// store the graded rollouts as a run; shows progress, exits when done.
    Eval(eval::EvalArgs),
    /// Run evaluation work from the database until Ctrl-C (any number of workers per database).
    Worker(eval::WorkerArgs),
    /// The blob store: where it is, moving it to object storage, sweeping orphans.
    #[command(subcommand)]
    Blobs(blobs::BlobsCommand),
    /// Upload and list evaluation datasets.
    #[command(subcommand)]
    Dataset(eval::DatasetCommand),
    /// Inference engines: serve or benchmark the embedded model (SmolLM2-135M-Instruct, CPU)
    /// over an OpenAI-compatible API; add and list the endpoints evaluations use.
    #[command(subcommand)]
    Engine(engine::EngineCommand),
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["pred", "tsv"])))]
pub struct VerifyArgs {
    /// The predicted answer (may start with `-`, e.g. `-1` or `-\frac12`).
    #[arg(requires = "reference", allow_hyphen_values = true)]
    pub pred: Option<String>,
    /// The reference answer.
    #[arg(allow_hyphen_values = true)]
    pub reference: Option<String>,
    /// Read `pred<TAB>ref` lines from FILE (`-` for stdin); prints one verdict per line.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pred", "reference"])]
    pub tsv: Option<PathBuf>,
    #[command(flatten)]
    pub policy: VerifierPolicyArgs,
}

/// The verifier's switches where reasonable teams differ (docs/verifier.md, "Disagreement
/// policy"); without flags, caplens' default policy.
#[derive(Debug, Clone, Args)]
pub struct VerifierPolicyArgs {
    /// Relative tolerance for numbers (default 1e-6; Qwen2.5-Math uses 1e-4).
    #[arg(long, value_name = "TOL")]
    pub rel_tol: Option<f64>,
    /// How `%` reads: `sign-aware` (default), `ignore-sign` (Hendrycks), `any-scale` (Qwen: 75 = 0.75).
    #[arg(long, value_name = "POLICY", value_parser = ["sign-aware", "ignore-sign", "any-scale"])]
    pub percent: Option<String>,
    /// An unreduced fraction is wrong: `\frac{2}{4}` != `\frac{1}{2}` (rllm's grader).
    #[arg(long)]
    pub strict_fractions: bool,
    /// `1,000` is not `1000` (Hendrycks' MATH).
    #[arg(long)]
    pub no_thousands_separators: bool,
}

impl VerifierPolicyArgs {
    pub fn config(&self) -> caplens_analysis::verifier::VerifierConfig {
        use caplens_analysis::verifier::{PercentPolicy, VerifierConfig};
        let mut config = VerifierConfig::default();
        if let Some(tol) = self.rel_tol {
            config.rel_tol = tol;
        }
        config.percent = match self.percent.as_deref() {
            Some("ignore-sign") => PercentPolicy::IgnoreSign,
            Some("any-scale") => PercentPolicy::AnyScale,
            _ => config.percent,
        };
        config.unreduced_fractions_equal &= !self.strict_fractions;
        config.thousands_separators &= !self.no_thousands_separators;
        config
    }
}

#[derive(Debug, Clone, Args)]
pub struct ExtractArgs {
    /// A text file holding one response (`-` for stdin).
    pub file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CAPLENS_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Directory holding the built site (pkg/caplens.js, pkg/caplens.wasm, pkg/caplens.css).
    #[arg(long, env = "CAPLENS_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// Do not load the demo experiment into an empty database.
    #[arg(long, env = "CAPLENS_NO_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_demo: bool,
    /// Largest accepted upload (all files of one request), in bytes or with a K/M/G/T suffix
    /// (powers of 1024); larger uploads are answered 413.
    #[arg(long, env = "CAPLENS_MAX_UPLOAD_BYTES", default_value = "20G", value_parser = parse_size)]
    pub max_upload_bytes: u64,
    /// Do not run evaluation work in this process (leave it to `caplens worker` processes).
    #[arg(long, env = "CAPLENS_NO_WORKER", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_worker: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub worker: eval::WorkerOptions,
    #[command(flatten)]
    pub engines: engine::EngineAllowArgs,
}

/// How `serve` authenticates (docs/security.md).
#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// none (local mode: everyone has every right; the explicit override), accounts
    /// (passwords), oidc (single sign-on) or proxy (a trusted proxy's header). Default: local
    /// mode on a loopback address until the first account exists, accounts after.
    #[arg(long, env = "CAPLENS_AUTH")]
    pub auth: Option<String>,
    /// The URL people reach caplens at, e.g. https://caplens.example.org: `Secure` cookies and
    /// HSTS when https; the OpenID redirect URL is built from it.
    #[arg(long, env = "CAPLENS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// OpenID provider's issuer URL.
    #[arg(long, env = "CAPLENS_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    #[arg(long, env = "CAPLENS_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// Prefer the environment variable: a command line is visible to other local users.
    #[arg(long, env = "CAPLENS_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// Only these email domains may sign in (comma separated; default any).
    #[arg(long, env = "CAPLENS_OIDC_ALLOWED_DOMAINS", value_delimiter = ',')]
    pub oidc_allowed_domains: Vec<String>,
    /// Members of this group (the `groups` claim) are site admins.
    #[arg(long, env = "CAPLENS_OIDC_ADMIN_GROUP")]
    pub oidc_admin_group: Option<String>,
    /// The header a trusted proxy names the user in (e.g. X-Forwarded-User).
    #[arg(long, env = "CAPLENS_PROXY_USER_HEADER")]
    pub proxy_user_header: Option<String>,
    /// The header with the user's email (e.g. X-Forwarded-Email).
    #[arg(long, env = "CAPLENS_PROXY_EMAIL_HEADER")]
    pub proxy_email_header: Option<String>,
    /// Addresses of the trusted proxies (comma separated): a proxy's user header is ignored from
    /// others, and the client address is read from `X-Forwarded-For` only when they send it.
    #[arg(long, env = "CAPLENS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Sign-out after this many hours without a request (default 12).
    #[arg(long, env = "CAPLENS_SESSION_IDLE_HOURS", default_value_t = 12)]
    pub session_idle_hours: u64,
    /// Sign-out this many hours after sign-in, whatever happens (default 168, a week).
    #[arg(long, env = "CAPLENS_SESSION_MAX_HOURS", default_value_t = 168)]
    pub session_max_hours: u64,
}

impl AuthArgs {
    pub fn settings(&self) -> Result<crate::auth::AuthSettings, String> {
        use crate::auth::{AuthMode, AuthSettings, ProxySettings};
        let mode = match self.auth.as_deref() {
            None => AuthMode::Automatic,
            Some(m) => AuthMode::parse(m)?,
        };
        let oidc = match (&self.oidc_issuer, &self.oidc_client_id, &self.oidc_client_secret) {
            (Some(issuer), Some(id), Some(secret)) => Some(crate::auth::oidc::OidcSettings {
                issuer: issuer.trim_end_matches('/').to_owned(),
                client_id: id.clone(),
                client_secret: secret.clone(),
                allowed_domains: self
                    .oidc_allowed_domains
                    .iter()
                    .map(|d| d.trim().trim_start_matches('@').to_lowercase())
                    .filter(|d| !d.is_empty())
                    .collect(),
                admin_group: self.oidc_admin_group.clone(),
            }),
            (None, None, None) => None,
            _ => return Err("OpenID Connect needs all of --oidc-issuer, --oidc-client-id and --oidc-client-secret".into()),
        };
        if oidc.is_some() && self.public_url.is_none() {
            return Err(
                "OpenID Connect needs --public-url (the redirect URL is built from it)".into(),
            );
        }
        let proxy = self.proxy_user_header.as_ref().map(|h| ProxySettings {
            user_header: h.to_lowercase(),
            email_header: self.proxy_email_header.as_ref().map(|h| h.to_lowercase()),
            trusted: self.trusted_proxy.clone(),
        });
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "--public-url {url:?}: give the whole URL, e.g. https://caplens.example.org"
                ));
            }
        }
        Ok(AuthSettings {
            mode,
            public_url: self
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            session_idle: std::time::Duration::from_secs(self.session_idle_hours.max(1) * 3600),
            session_absolute: std::time::Duration::from_secs(self.session_max_hours.max(1) * 3600),
            oidc,
            proxy,
            trusted_proxies: self.trusted_proxy.clone(),
        })
    }
}

/// `1048576`, `512K`, `100M`, `20G`, `1T` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => {
                    return Err(format!(
                        "{s:?}: unknown size suffix {c:?} (use K, M, G or T)"
                    ))
                }
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 1048576, 512M, 20G)"))?;
    n.checked_mul(1u64 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

/// Sets the process's engine address policy from `--engine-allow` of the commands that talk to
/// engines (`serve` — also without a subcommand, from the environment —, `eval`, `worker`,
/// `engine add`); the others keep the default. Call before anything can build an engine.
pub fn install_engine_policy(command: Option<&Command>) -> Result<(), String> {
    let allow = match command {
        Some(Command::Serve(args)) => &args.engines,
        Some(Command::Eval(args)) => &args.engines,
        Some(Command::Worker(args)) => &args.engines,
        Some(Command::Engine(engine::EngineCommand::Add(args))) => &args.engines,
        Some(_) => return Ok(()),
        None => return ServeArgs::from_env_and_defaults().engines.install(),
    };
    allow.install()
}

/// `caplens` without a subcommand means `caplens serve`: its options then come from the
/// environment and the defaults, exactly as for `caplens serve` without flags.
#[derive(Debug, Parser)]
struct ServeDefaults {
    #[command(flatten)]
    serve: ServeArgs,
}

impl ServeArgs {
    pub fn from_env_and_defaults() -> ServeArgs {
        ServeDefaults::parse_from(["caplens"]).serve
    }
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Replace an existing demo experiment (otherwise the demo loads only into an empty database).
    #[arg(long)]
    pub reset: bool,
    /// Write the demo's rollouts as native JSON Lines to FILE (`-` for stdout) instead of
    /// storing them; no database is touched. Try: `caplens demo --export demo.jsonl && caplens passk demo.jsonl`.
    #[arg(long, value_name = "FILE", conflicts_with = "reset")]
    pub export: Option<PathBuf>,
    /// Seed of the demo generator.
    #[arg(long, default_value_t = crate::demo::generate::DEFAULT_DEMO_SEED)]
    pub seed: u64,
    /// Number of problems.
    #[arg(long, default_value_t = 80)]
    pub problems: usize,
    /// Rollouts per problem and model.
    #[arg(long, default_value_t = 128)]
    pub samples: u32,
}

impl DemoArgs {
    pub fn config(&self) -> crate::demo::generate::DemoConfig {
        crate::demo::generate::DemoConfig {
            seed: self.seed,
            problems: self.problems,
            samples_per_problem: self.samples,
            ..crate::demo::generate::DemoConfig::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Native JSON Lines files (plain or .gz).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Skip malformed lines (reporting how many) instead of stopping at the first.
    #[arg(long)]
    pub skip_invalid: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PasskArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Comma-separated k values, or `all`. Default: powers of two up to the largest n, plus n.
    #[arg(long, default_value = "default", value_parser = parse_k_selection)]
    pub k: analysis::KSelection,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_k_selection(s: &str) -> Result<analysis::KSelection, String> {
    if s == "default" {
        return Ok(analysis::KSelection::Default);
    }
    s.parse()
}

#[derive(Debug, Clone, Args)]
pub struct UnsolvableArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Count only the first K rollouts (by sample index); default: all.
    #[arg(long)]
    pub k: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RftSelectArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// rule | noisy | entropy | rbf | noisy+rbf
    #[arg(long)]
    pub strategy: caplens_analysis::rft::RftStrategy,
    /// How many rollouts to select.
    #[arg(long)]
    pub count: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `verify` or `extract`; returns the process exit code.
pub fn run_verifier(command: Command) -> i32 {
    use std::io::{Read, Write};
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = match command {
        Command::Verify(VerifyArgs {
            tsv: Some(path),
            policy,
            ..
        }) => {
            let config = policy.config();
            let result = if path.as_os_str() == "-" {
                verify::verify_tsv(&mut std::io::stdin().lock(), &mut out, &config)
            } else {
                match std::fs::File::open(&path) {
                    Ok(f) => verify::verify_tsv(&mut std::io::BufReader::new(f), &mut out, &config),
                    Err(e) => {
                        eprintln!("caplens: cannot open {}: {e}", path.display());
                        return 1;
                    }
                }
            };
            match result {
                Ok(()) => 0,
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("caplens: {}: {e}", path.display());
                    1
                }
            }
        }
        Command::Verify(VerifyArgs {
            pred: Some(pred),
            reference: Some(reference),
            policy,
            ..
        }) => match verify::verify_pair(&pred, &reference, &mut out, &policy.config()) {
            Ok(verdict) => verify::exit_code(verdict),
            Err(e) => {
                eprintln!("caplens: cannot write output: {e}");
                2
            }
        },
        Command::Extract(ExtractArgs { file }) => {
            let mut bytes = Vec::new();
            let read = if file.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut bytes).map(|_| ())
            } else {
                std::fs::read(&file).map(|b| bytes = b)
            };
            if let Err(e) = read {
                eprintln!("caplens: cannot read {}: {e}", file.display());
                return 1;
            }
            // Responses are untrusted: invalid UTF-8 is replaced, never a reason to fail.
            let text = String::from_utf8_lossy(&bytes);
            match verify::extract_file(&text, &mut out) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("caplens: cannot write output: {e}");
                    1
                }
            }
        }
        _ => unreachable!("run_verifier is only called for verify and extract"),
    };
    let _ = out.flush();
    code
}

/// Runs an analysis command, printing to stdout and reporting skipped lines on stderr.
/// Returns the process exit code.
pub fn run_analysis(command: Command) -> i32 {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match command {
        Command::Passk(a) => {
            analysis::passk(&a.input.files, a.k, a.json, a.input.skip_invalid, &mut out)
        }
        Command::Unsolvable(a) => {
            analysis::unsolvable(&a.input.files, a.k, a.json, a.input.skip_invalid, &mut out)
        }
        Command::Summary(a) => {
            analysis::summary(&a.input.files, a.json, a.input.skip_invalid, &mut out)
        }
        Command::RftSelect(a) => analysis::rft_select(
            &a.input.files,
            a.strategy,
            a.count,
            a.seed,
            a.input.skip_invalid,
            &mut out,
        ),
        _ => unreachable!("run_analysis is only called for analysis commands"),
    };
    use std::io::Write;
    let flushed = out.flush();
    match result {
        Ok(stats) => {
            if stats.skipped > 0 {
                eprintln!(
                    "caplens: skipped {} invalid line(s); the first:",
                    stats.skipped
                );
                for e in &stats.first_skipped {
                    eprintln!("  {e}");
                }
            }
            if let Err(e) = flushed {
                eprintln!("caplens: cannot write output: {e}");
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("caplens: {e}");
            1
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM: servers then finish in-flight requests, workers their
/// current batch.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
