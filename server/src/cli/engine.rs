//! `caplens engine serve` (the embedded model behind an OpenAI-compatible API, as vLLM serves
//! one) and `caplens engine bench` (its tokens/s at several batch sizes). Both exit 0 on success
//! and 1 with a one-line message on stderr otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};

use crate::engine::embedded::{
    EmbeddedEngine, EmbeddedOptions, DEFAULT_MAX_BATCH, DEFAULT_MAX_TOP_LOGPROBS,
    DEFAULT_MODEL_NAME,
};
use crate::engine::netguard::{self, AllowEntry, EnginePolicy};
use crate::engine::{Engine, GenerationRequest, Prompt, SamplingParams};

#[derive(Debug, Subcommand)]
pub enum EngineCommand {
    /// Serve the embedded model (SmolLM2-135M-Instruct, CPU) over an OpenAI-compatible API:
    /// /v1/models, /v1/completions, /v1/chat/completions.
    Serve(EngineServeArgs),
    /// Tokens per second of the embedded engine at several batch sizes.
    Bench(EngineBenchArgs),
    /// Add (or update) an OpenAI-compatible endpoint for evaluations (vLLM, SGLang, TGI, …).
    Add(crate::cli::eval::EngineAddArgs),
    /// List the engines evaluations can use (never their API keys).
    List,
}

/// Which non-public addresses engines may reach (`caplens serve`, `worker`, `eval`,
/// `engine add`); docs/evaluations.md, "Engines are not a proxy".
#[derive(Debug, Clone, Default, Args)]
pub struct EngineAllowArgs {
    /// Let engines reach this network or host although it is not a public address: a CIDR
    /// (10.0.0.0/8, 127.0.0.1, fd00::/8) or a host name (that name, at whatever it resolves
    /// to). Repeatable, or comma-separated. Default: public unicast addresses only, so no
    /// loopback, private, link-local or metadata-service address.
    #[arg(
        long = "engine-allow",
        env = "CAPLENS_ENGINE_ALLOW",
        value_name = "CIDR|HOST",
        value_delimiter = ',',
        value_parser = check_allow_entry
    )]
    pub engine_allow: Vec<String>,
}

/// An `--engine-allow` entry, checked when the command line is read; an empty one
/// (`CAPLENS_ENGINE_ALLOW=`) allows nothing more.
fn check_allow_entry(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Ok(String::new());
    }
    AllowEntry::parse(text).map(|_| text.to_owned())
}

impl EngineAllowArgs {
    /// Makes these entries the process's engine address policy (once, before any engine).
    pub fn install(&self) -> Result<(), String> {
        let entries = self.engine_allow.iter().filter(|e| !e.trim().is_empty());
        netguard::set_process_policy(EnginePolicy::from_entries(entries)?)
    }
}

/// Which model file and how many samples run together.
#[derive(Debug, Clone, Args)]
pub struct EngineModelArgs {
    /// The GGUF model file. Default: $CAPLENS_MODEL, else the file scripts/fetch-model.sh
    /// writes (${CAPLENS_MODEL_DIR:-${XDG_CACHE_HOME:-~/.cache}/caplens/models}/SmolLM2-135M-Instruct.Q4_1.gguf).
    #[arg(long, value_name = "FILE")]
    pub model_path: Option<PathBuf>,
    /// Most samples of one request that run together as one batch.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH, value_parser = parse_batch)]
    pub max_batch: usize,
}

/// A batch size: 1 to 1024.
fn parse_batch(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a batch size (1 to 1024)")),
    }
}

impl EngineModelArgs {
    fn path(&self) -> PathBuf {
        self.model_path
            .clone()
            .unwrap_or_else(EmbeddedEngine::default_model_path)
    }
}

#[derive(Debug, Clone, Args)]
pub struct EngineServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8001)]
    pub port: u16,
    /// The model name clients use (and /v1/models lists).
    #[arg(long, default_value = DEFAULT_MODEL_NAME)]
    pub served_model_name: String,
    /// Most alternatives per token a request may ask for (logprobs / top_logprobs).
    #[arg(long, default_value_t = DEFAULT_MAX_TOP_LOGPROBS)]
    pub max_logprobs: u32,
    #[command(flatten)]
    pub model: EngineModelArgs,
}

#[derive(Debug, Clone, Args)]
pub struct EngineBenchArgs {
    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_parser = parse_batch)]
    pub batch: Vec<usize>,
    /// Tokens generated per sample.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4000))]
    pub tokens: u32,
    /// The GGUF model file (default as for `caplens engine serve`).
    #[arg(long, value_name = "FILE")]
    pub model_path: Option<PathBuf>,
}

/// Runs an engine command on its own tokio runtime; returns the process exit code.
pub fn main(command: EngineCommand) -> i32 {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(command)),
        Err(e) => {
            eprintln!("caplens: cannot start the async runtime: {e}");
            1
        }
    }
}

/// Runs an engine command; returns the process exit code.
pub async fn run(command: EngineCommand) -> i32 {
    let result = match command {
        EngineCommand::Serve(args) => serve(args).await,
        EngineCommand::Bench(args) => bench(args).await,
        // Dispatched with the database by main.rs (cli::eval::engine_add / engine_list).
        EngineCommand::Add(_) | EngineCommand::List => {
            Err("`caplens engine add` and `caplens engine list` need the database".into())
        }
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("caplens: {message}");
            1
        }
    }
}

async fn load(path: PathBuf, options: EmbeddedOptions) -> Result<EmbeddedEngine, String> {
    tokio::task::spawn_blocking(move || EmbeddedEngine::load(&path, options))
        .await
        .map_err(|e| format!("loading the model failed: {e}"))?
        .map_err(|e| e.to_string())
}

async fn serve(args: EngineServeArgs) -> Result<(), String> {
    let options = EmbeddedOptions {
        model_name: args.served_model_name.clone(),
        max_batch: args.model.max_batch,
        max_top_logprobs: args.max_logprobs,
    };
    let engine = load(args.model.path(), options).await?;
    let app = crate::engine::serve::router(Arc::new(engine));
    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| {
            format!("cannot listen on {addr}: {e}. Is another program using it? Choose another with --host / --port")
        })?;
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(addr.clone());
    println!(
        "caplens engine is serving {} at http://{local}/v1",
        args.served_model_name
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(super::shutdown_signal())
        .await
        .map_err(|e| format!("the server stopped: {e}"))
}

/// A prompt the model keeps continuing (it counts), so that every row runs to `--tokens`.
const BENCH_PROMPT: &str = "Count from 1 to 1000, separated by commas: 1, 2, 3, 4, 5, 6, 7, 8,";

async fn bench(args: EngineBenchArgs) -> Result<(), String> {
    let path = args
        .model_path
        .clone()
        .unwrap_or_else(EmbeddedEngine::default_model_path);
    let largest = args.batch.iter().copied().max().unwrap_or(1);
    let started = Instant::now();
    let engine = load(
        path.clone(),
        EmbeddedOptions {
            max_batch: largest,
            ..EmbeddedOptions::default()
        },
    )
    .await?;
    let engine = Arc::new(engine);
    println!(
        "embedded engine: {} loaded in {:.1} s; {} CPUs; sampling at temperature 0.6, top-p 0.95, \
         with top-5 logprobs, exact entropy and RBF per token",
        path.display(),
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let request = |n: u32, max_tokens: u32| GenerationRequest {
        prompt: Prompt::Text(BENCH_PROMPT.into()),
        continuation: None,
        n,
        params: SamplingParams {
            temperature: 0.6,
            top_p: 0.95,
            max_tokens,
            seed: Some(0),
            stop: Vec::new(),
            top_logprobs: Some(5),
        },
    };
    // Warm-up: first-use allocations and thread pools.
    run_blocking(&engine, request(1, 4)).await?;
    for &batch in &args.batch {
        let started = Instant::now();
        let generation = run_blocking(&engine, request(batch as u32, args.tokens)).await?;
        let seconds = started.elapsed().as_secs_f64();
        let stopped_early = generation
            .completions
            .iter()
            .filter(|c| c.finish_reason != "length")
            .count();
        println!(
            "batch {batch:>3}: {:>6} tokens in {seconds:>6.2} s = {:>7.1} tokens/s{}",
            generation.completion_tokens,
            generation.completion_tokens as f64 / seconds,
            if stopped_early > 0 {
                format!(" ({stopped_early} sample(s) ended before --tokens)")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

async fn run_blocking(
    engine: &Arc<EmbeddedEngine>,
    request: GenerationRequest,
) -> Result<crate::engine::Generation, String> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || engine.generate(&request))
        .await
        .map_err(|e| format!("the generation failed: {e}"))?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn engine_allow_is_repeatable_comma_separated_and_checked() {
        let cli = Cli::try_parse_from([
            "caplens",
            "worker",
            "--engine-allow",
            "127.0.0.1,gpu.internal",
            "--engine-allow",
            "10.0.0.0/8",
        ])
        .unwrap();
        let Some(Command::Worker(args)) = cli.command else {
            panic!("a worker command")
        };
        assert_eq!(
            args.engines.engine_allow,
            ["127.0.0.1", "gpu.internal", "10.0.0.0/8"]
        );
        for command in ["serve", "eval", "worker"] {
            let err = Cli::try_parse_from(["caplens", command, "--engine-allow", "http://gpu:80"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("is a URL"), "{command}: {err}");
        }
        assert!(Cli::try_parse_from([
            "caplens",
            "engine",
            "add",
            "e",
            "--base-url",
            "http://10.0.0.7:8000",
            "--model",
            "m",
            "--engine-allow",
            "10.0.0.7"
        ])
        .is_ok());
        // `CAPLENS_ENGINE_ALLOW=` (empty) allows nothing more, and is no error.
        assert_eq!(check_allow_entry(""), Ok(String::new()));
        assert!(check_allow_entry("gpu box").is_err());
    }
}
