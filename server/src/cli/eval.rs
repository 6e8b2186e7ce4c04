//! `caplens eval` (queue an evaluation and run it here with a progress bar), `caplens worker`
//! (an evaluation worker process), `caplens dataset` (upload / list evaluation datasets).
//! Exit codes: 0 when every evaluation completed, 1 otherwise (the message says why).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use caplens_app::evals::{EvalStartRequest, EvaluationView, SeriesCheckpoint};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::evals::engines::EngineRegistry;
use crate::evals::worker::{Worker, WorkerConfig};
use crate::evals::{self, datasets};
use crate::storage::Store;

/// `caplens eval`: sample a dataset with an engine; the rollouts land in an experiment.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// Project the run goes to (default: `default`).
    #[arg(long)]
    pub project: Option<String>,
    /// Engine name (`embedded`, or one added with `caplens engine add` / the API).
    #[arg(long, default_value = "embedded")]
    pub engine: String,
    /// Dataset name (default: the built-in arith-calibrated).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Samples per problem.
    #[arg(long)]
    pub n: Option<u32>,
    #[arg(long)]
    pub temperature: Option<f64>,
    #[arg(long)]
    pub top_p: Option<f64>,
    #[arg(long)]
    pub max_tokens: Option<u32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Alternatives per token to keep (0 = no token data).
    #[arg(long)]
    pub top_logprobs: Option<u32>,
    /// Stop sequence (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Prompt template containing {prompt}.
    #[arg(long)]
    pub prompt_template: Option<String>,
    /// System message (chat engines).
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// Only the first N problems.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Experiment slug (default "evaluations").
    #[arg(long)]
    pub experiment: Option<String>,
    /// Model name the run is recorded under (default: the engine's model).
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, value_parser = ["base", "sft", "rl", "tir", "other"])]
    pub stage: Option<String>,
    #[arg(long)]
    pub parent: Option<String>,
    #[arg(long)]
    pub step: Option<i64>,
    /// A checkpoint series: `STEP=ENGINE` or `STEP=ENGINE:MODEL`, repeatable; one evaluation
    /// per checkpoint, chained as a lineage in step order.
    #[arg(long = "checkpoint", value_name = "STEP=ENGINE[:MODEL]")]
    pub checkpoints: Vec<String>,
    /// Queue only; a server's or `caplens worker`'s workers run it.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the final evaluations as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub worker: WorkerOptions,
    #[command(flatten)]
    pub engines: super::engine::EngineAllowArgs,
}

/// How a worker runs (shared by `eval` and `worker`).
#[derive(Debug, Clone, Args)]
pub struct WorkerOptions {
    /// Units processed at once (requests in flight against an OpenAI-compatible server).
    #[arg(long, default_value_t = 2)]
    pub slots: usize,
    /// Samples per engine request.
    #[arg(long, default_value_t = 32)]
    pub batch: u32,
    /// The embedded model's GGUF file (default: scripts/fetch-model.sh's cache).
    #[arg(long, env = "CAPLENS_MODEL")]
    pub model_path: Option<PathBuf>,
}

impl WorkerOptions {
    pub fn worker(&self, store: &Store, data_dir: &std::path::Path) -> Worker {
        let mut config = WorkerConfig::new(data_dir.join("evals"));
        config.slots = self.slots.max(1);
        config.batch = self.batch.max(1);
        Worker::new(
            store.clone(),
            Arc::new(EngineRegistry::new(self.model_path.clone())),
            config,
        )
    }
}

/// `caplens worker`: run evaluation units until interrupted.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub worker: WorkerOptions,
    #[command(flatten)]
    pub engines: super::engine::EngineAllowArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DatasetCommand {
    /// Store a dataset: JSON Lines or parquet, one problem per record (docs/formats/dataset.md).
    Upload {
        file: PathBuf,
        /// Dataset name (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// The field a role is read from, ROLE=FIELD (roles: id, prompt, answer, tags), e.g.
        /// `--field prompt=question --field answer=answer`; repeatable. Roles not named are
        /// detected from the common names (problem/question/prompt, answer/final_answer/solution,
        /// id/unique_id/idx, tags).
        #[arg(long = "field", value_name = "ROLE=FIELD", value_parser = parse_field_spec)]
        fields: Vec<(String, String)>,
        /// The project it belongs to (default: `default`); names are unique within a project.
        #[arg(long, conflicts_with = "shared")]
        project: Option<String>,
        /// Share it with every project, read-only (like the built-in dataset).
        #[arg(long)]
        shared: bool,
    },
    /// List datasets usable for evaluations.
    List,
}

/// `--field ROLE=FIELD`, checked against the roles.
fn parse_field_spec(s: &str) -> Result<(String, String), String> {
    let mut check = datasets::DatasetFields::default();
    check.set(s)?;
    let (role, field) = s.split_once('=').unwrap_or((s, ""));
    Ok((role.trim().to_owned(), field.trim().to_owned()))
}

fn parse_checkpoint(s: &str) -> Result<SeriesCheckpoint, String> {
    let (step, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("--checkpoint {s:?}: expected STEP=ENGINE[:MODEL]"))?;
    let step: i64 = step
        .trim()
        .parse()
        .map_err(|_| format!("--checkpoint {s:?}: the step must be an integer"))?;
    let (engine, model) = match rest.split_once(':') {
        Some((e, m)) => (e.to_owned(), Some(m.to_owned())),
        None => (rest.to_owned(), None),
    };
    Ok(SeriesCheckpoint {
        engine: Some(engine).filter(|e| !e.is_empty()),
        model,
        step,
    })
}

impl EvalArgs {
    pub fn request(&self) -> Result<EvalStartRequest, String> {
        let series = if self.checkpoints.is_empty() {
            None
        } else {
            Some(
                self.checkpoints
                    .iter()
                    .map(|c| parse_checkpoint(c))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        Ok(EvalStartRequest {
            project: self.project.clone(),
            engine: Some(self.engine.clone()),
            dataset: self.dataset.clone(),
            experiment: self.experiment.clone(),
            model: self.model.clone(),
            stage: self.stage.clone(),
            parent: self.parent.clone(),
            step: self.step,
            n: self.n,
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            seed: self.seed,
            stop: (!self.stop.is_empty()).then(|| self.stop.clone()),
            top_logprobs: self.top_logprobs,
            prompt_template: self.prompt_template.clone(),
            system_prompt: self.system_prompt.clone(),
            limit: self.limit,
            series,
            series_name: None,
        })
    }
}

/// `caplens eval`.
pub async fn eval(store: &Store, data_dir: &std::path::Path, args: &EvalArgs) -> i32 {
    let request = match args.request() {
        Ok(r) => r,
        Err(m) => {
            eprintln!("caplens eval: {m}");
            return 2;
        }
    };
    // The operator queues as the server's own operation would (project, engines, dataset and
    // experiment checked the same way).
    let operator = crate::ops::Caller::operator();
    let limits = crate::auth::ratelimit::Limits::new(store.clone());
    let mut request = request;
    let ids = match crate::ops::evals::start(&operator.access(store), &limits, &mut request).await {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("caplens eval: {}", e.public_message());
            return match e {
                crate::ops::OpError::Store(_) => 1,
                _ => 2,
            };
        }
    };
    if args.no_wait {
        for id in &ids {
            println!("queued evaluation {id}");
        }
        return 0;
    }
    let worker = args.worker.worker(store, data_dir);
    let started = std::time::Instant::now();
    let running = tokio::spawn(worker.clone().run());
    let total: i64 = {
        let mut t = 0;
        for id in &ids {
            if let Ok(Some(v)) = evals::view(store, *id).await {
                t += v.samples_total;
            }
        }
        t
    };
    let bar = ProgressBar::new(total.max(1) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} samples  {msg}",
        )
        .expect("valid template"),
    );
    let finals: Vec<EvaluationView> = loop {
        let mut views = Vec::new();
        for id in &ids {
            match evals::view(store, *id).await {
                Ok(Some(v)) => views.push(v),
                Ok(None) => {}
                Err(e) => {
                    bar.finish_and_clear();
                    eprintln!("caplens eval: database error: {e}");
                    worker.stop();
                    return 1;
                }
            }
        }
        let done: i64 = views
            .iter()
            .map(|v| v.samples_done.min(v.samples_total))
            .sum();
        bar.set_position(done.max(0) as u64);
        if let Some(v) = views.iter().find(|v| !v.is_finished()) {
            let pass1 = v
                .pass_at_k
                .first()
                .map(|p| format!("pass@1 {:.3}", p.value))
                .unwrap_or_default();
            let eta = v
                .eta_seconds
                .map(|s| format!(", ETA {}s", s.round()))
                .unwrap_or_default();
            bar.set_message(format!(
                "#{} {}: {}/{} problems, {:.0} tok/s{eta}, {pass1}",
                v.id, v.status, v.problems_done, v.problems, v.tokens_per_second
            ));
        }
        if !views.is_empty() && views.iter().all(|v| v.is_finished()) {
            break views;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bar.finish_and_clear();
    let wall = started.elapsed();
    worker.stop();
    let _ = running.await;
    // Time not spent waiting on the model: queueing, grading, staging, finalisation (the
    // import pipeline), progress polling — per rollout (tests/bench/evals/run.sh reads this).
    let rollouts: i64 = finals.iter().map(|v| v.samples_done).sum();
    // With one slot the engine waits never overlap, so wall - engine is the orchestration.
    if rollouts > 0 && args.worker.slots == 1 {
        let engine = worker.engine_time();
        eprintln!(
            "timing: wall {:.2} s, waiting on the engine {:.2} s, orchestration {:.2} ms per rollout ({rollouts} rollouts)",
            wall.as_secs_f64(),
            engine.as_secs_f64(),
            wall.saturating_sub(engine).as_secs_f64() * 1000.0 / rollouts as f64
        );
    }
    let mut ok = true;
    for v in &finals {
        match v.status.as_str() {
            "completed" => {
                let curve = v
                    .pass_at_k
                    .iter()
                    .map(|p| format!("pass@{} {:.3}", p.k, p.value))
                    .collect::<Vec<_>>()
                    .join(", ");
                eprintln!(
                    "evaluation {} completed: run {} in experiment {} ({} samples, {} tokens); {curve}",
                    v.id,
                    v.run_id.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
                    v.experiment,
                    v.samples_done,
                    v.tokens
                );
            }
            other => {
                ok = false;
                eprintln!(
                    "evaluation {} {other}: {}",
                    v.id,
                    v.error.clone().unwrap_or_default()
                );
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&finals).expect("views serialise")
        );
    }
    if ok {
        0
    } else {
        1
    }
}

/// `caplens worker`: until Ctrl-C.
pub async fn worker(store: &Store, data_dir: &std::path::Path, args: &WorkerArgs) -> i32 {
    let worker = args.worker.worker(store, data_dir);
    eprintln!(
        "caplens worker {}: waiting for evaluation units (Ctrl-C or SIGTERM to stop)",
        worker.id()
    );
    let running = tokio::spawn(worker.clone().run());
    // Workers sweep too: a deployment may run its imports' finalisation only here.
    let sweeper = crate::storage::sweep::spawn_periodic(store.clone(), Duration::from_secs(300));
    super::shutdown_signal().await;
    eprintln!("caplens worker: stopping after the current batch");
    sweeper.abort();
    worker.stop();
    let _ = running.await;
    let _ = store.release_own_imports().await;
    0
}

/// `caplens dataset`.
pub async fn dataset(store: &Store, command: &DatasetCommand) -> i32 {
    match command {
        DatasetCommand::Upload {
            file,
            name,
            description,
            fields,
            project,
            shared,
        } => {
            let mut mapping = datasets::DatasetFields::default();
            for (role, field) in fields {
                if let Err(e) = mapping.set_role(role, field) {
                    eprintln!("caplens dataset: --field: {e}");
                    return 2;
                }
            }
            let display = file.display().to_string();
            let bytes = match std::fs::read(file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("caplens dataset: cannot read {display}: {e}");
                    return 1;
                }
            };
            let name = name.clone().unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "dataset".into())
            });
            let problems = match datasets::parse(&display, &bytes, &mapping) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("caplens dataset: {e}");
                    return 1;
                }
            };
            let project_id = if *shared {
                None
            } else {
                let slug = project
                    .as_deref()
                    .unwrap_or(crate::storage::access::DEFAULT_PROJECT);
                match store.project_by_slug(slug).await {
                    Ok(Some(p)) => Some(p.id),
                    Ok(None) => {
                        eprintln!("caplens dataset: no project {slug:?}; `caplens project list` shows them");
                        return 1;
                    }
                    Err(e) => {
                        eprintln!("caplens dataset: {e}");
                        return 1;
                    }
                }
            };
            match datasets::store_dataset(
                store,
                project_id,
                &name,
                description,
                "upload",
                &problems,
            )
            .await
            {
                Ok(id) => {
                    println!(
                        "dataset {name:?} stored (id {id}, {} problems)",
                        problems.len()
                    );
                    0
                }
                Err(e) => {
                    eprintln!("caplens dataset: {e}");
                    1
                }
            }
        }
        DatasetCommand::List => {
            if let Err(e) = datasets::ensure_builtin(store).await {
                eprintln!("caplens dataset: {e}");
                return 1;
            }
            match store.eval_datasets().await {
                Ok(rows) => {
                    let projects: std::collections::HashMap<i64, String> =
                        match store.projects().await {
                            Ok(p) => p.into_iter().map(|p| (p.id, p.slug)).collect(),
                            Err(e) => {
                                eprintln!("caplens dataset: {e}");
                                return 1;
                            }
                        };
                    for d in rows {
                        let owner = d
                            .project_id
                            .and_then(|p| projects.get(&p).cloned())
                            .unwrap_or_else(|| "(shared)".into());
                        println!(
                            "{}\t{owner}\t{} problems\t{}",
                            d.name, d.problems, d.description
                        );
                    }
                    0
                }
                Err(e) => {
                    eprintln!("caplens dataset: {e}");
                    1
                }
            }
        }
    }
}

/// `caplens engine add`: an OpenAI-compatible endpoint.
#[derive(Debug, Clone, Args)]
pub struct EngineAddArgs {
    /// Name evaluations use (`--engine NAME`).
    pub name: String,
    /// `http://host:port` or `http://host:port/v1`.
    #[arg(long)]
    pub base_url: String,
    /// Model name the server serves (vLLM's --served-model-name).
    #[arg(long)]
    pub model: String,
    /// completions (raw prompt) or chat (messages).
    #[arg(long, default_value = "completions", value_parser = ["completions", "chat"])]
    pub api_mode: String,
    /// API key sent as a bearer token; kept in the database, never shown.
    #[arg(long, env = "CAPLENS_ENGINE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Most alternatives per token the server returns (vLLM: --max-logprobs, default 20).
    #[arg(long, default_value_t = 20)]
    pub max_top_logprobs: u32,
    /// Save without asking the server for its models first.
    #[arg(long)]
    pub no_check: bool,
    /// The project whose evaluations may use it (default: every project).
    #[arg(long)]
    pub project: Option<String>,
    #[command(flatten)]
    pub engines: super::engine::EngineAllowArgs,
}

pub async fn engine_add(store: &Store, args: &EngineAddArgs) -> i32 {
    let request = crate::ops::evals::EngineRequest {
        name: args.name.clone(),
        base_url: args.base_url.clone(),
        model: args.model.clone(),
        api_mode: Some(args.api_mode.clone()),
        api_key: args.api_key.clone(),
        max_top_logprobs: Some(args.max_top_logprobs),
        check: Some(!args.no_check),
        // Added by the operator: every project may use it unless one is named.
        project: Some(args.project.clone().unwrap_or_else(|| "*".into())),
    };
    let operator = crate::ops::Caller::operator();
    match crate::ops::evals::save_engine(&operator.access(store), request).await {
        Ok(saved) => {
            println!(
                "engine {:?} saved{}",
                args.name,
                saved["served_models"]
                    .as_array()
                    .map(|m| format!(
                        "; the server serves: {}",
                        m.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .unwrap_or_default()
            );
            0
        }
        Err(e) => {
            eprintln!("caplens engine add: {}", e.public_message());
            1
        }
    }
}

pub async fn engine_list(store: &Store) -> i32 {
    match store.engines().await {
        Ok(engines) => {
            for e in engines {
                let where_ = if e.view.kind == "embedded" {
                    "built in (CPU)".to_string()
                } else {
                    e.view.base_url.clone()
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    e.view.name, e.view.kind, e.view.model, e.view.api_mode, where_
                );
            }
            0
        }
        Err(e) => {
            eprintln!("caplens engine list: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_parse_step_engine_and_model() {
        let c = parse_checkpoint("200=ckpt:org/model-200").unwrap();
        assert_eq!(c.step, 200);
        assert_eq!(c.engine.as_deref(), Some("ckpt"));
        assert_eq!(c.model.as_deref(), Some("org/model-200"));
        assert!(parse_checkpoint("x=e").unwrap_err().contains("integer"));
        assert!(parse_checkpoint("100").unwrap_err().contains("STEP=ENGINE"));
    }

    #[test]
    fn dataset_upload_takes_repeated_field_mappings() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "caplens",
            "dataset",
            "upload",
            "gsm8k.parquet",
            "--field",
            "prompt=question",
            "--field",
            "answer = answer",
            "--field",
            "id=",
        ])
        .unwrap();
        let Some(crate::cli::Command::Dataset(DatasetCommand::Upload { file, fields, .. })) =
            cli.command
        else {
            panic!("a dataset upload")
        };
        assert_eq!(file, PathBuf::from("gsm8k.parquet"));
        assert_eq!(
            fields,
            [
                ("prompt".to_owned(), "question".to_owned()),
                ("answer".to_owned(), "answer".to_owned()),
                ("id".to_owned(), String::new()),
            ]
        );
        let err = crate::cli::Cli::try_parse_from([
            "caplens",
            "dataset",
            "upload",
            "f.jsonl",
            "--field",
            "question=prompt",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"question\" is not a dataset role; one of: id, prompt, answer, tags"),
            "{err}"
        );
    }
}
