//! The `caplens` binary: parses the command line and runs the command.
//! The modules live in the library (`lib.rs`); module map: ARCHITECTURE.md.

use std::process::ExitCode;

use caplens_server::{
    cli::{self, Cli, Command, ServeArgs, StorageArgs},
    config::{self, DatabaseConfig},
    demo,
    error::StartupError,
    storage::Store,
    web,
};
use clap::Parser;

/// How often a server or worker sweeps (abandoned imports, orphan blobs).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything can build an engine: the addresses engines may reach (--engine-allow).
    if let Err(e) = cli::install_engine_policy(cli.command.as_ref()) {
        eprintln!("caplens: {e}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Some(
            c @ (Command::Passk(_)
            | Command::Unsolvable(_)
            | Command::Summary(_)
            | Command::RftSelect(_)),
        ) => ExitCode::from(cli::run_analysis(c) as u8),
        Some(c @ (Command::Verify(_) | Command::Extract(_))) => {
            ExitCode::from(cli::run_verifier(c) as u8)
        }
        Some(Command::Migrate) => run_async(migrate(cli.storage)),
        Some(Command::Push(args)) => ExitCode::from(cli::import::push(&args) as u8),
        Some(Command::Import(args)) => run_with_store(cli.storage, move |store| {
            Box::pin(async move { cli::import::import(&store, &args).await })
        }),
        Some(Command::Token(command)) => run_with_store(cli.storage, move |store| {
            Box::pin(async move { cli::access::token(&store, &command).await })
        }),
        Some(Command::User(command)) => run_with_store(cli.storage, move |store| {
            Box::pin(async move { cli::access::user(&store, &command).await })
        }),
        Some(Command::Project(command)) => run_with_store(cli.storage, move |store| {
            Box::pin(async move { cli::access::project(&store, &command).await })
        }),
        Some(Command::Audit { limit }) => run_with_store(cli.storage, move |store| {
            Box::pin(async move { cli::access::audit(&store, limit).await })
        }),
        Some(Command::Eval(args)) => {
            let data_dir = cli.storage.data_dir.clone();
            run_with_store(cli.storage, move |store| {
                Box::pin(async move { cli::eval::eval(&store, &data_dir, &args).await })
            })
        }
        Some(Command::Worker(args)) => {
            let data_dir = cli.storage.data_dir.clone();
            run_with_store(cli.storage, move |store| {
                Box::pin(async move { cli::eval::worker(&store, &data_dir, &args).await })
            })
        }
        Some(Command::Blobs(command)) => run_with_store(cli.storage, move |store| {
            Box::pin(async move { cli::blobs::blobs(&store, &command).await })
        }),
        Some(Command::Dataset(command)) => run_with_store(cli.storage, move |store| {
            Box::pin(async move { cli::eval::dataset(&store, &command).await })
        }),
        Some(Command::Engine(cli::engine::EngineCommand::Add(args))) => {
            run_with_store(cli.storage, move |store| {
                Box::pin(async move { cli::eval::engine_add(&store, &args).await })
            })
        }
        Some(Command::Engine(cli::engine::EngineCommand::List)) => {
            run_with_store(cli.storage, move |store| {
                Box::pin(async move { cli::eval::engine_list(&store).await })
            })
        }
        Some(Command::Engine(command)) => {
            init_logging();
            ExitCode::from(cli::engine::main(command) as u8)
        }
        Some(Command::Demo(args)) if args.export.is_some() => export_demo(&args),
        Some(Command::Demo(args)) => run_async(demo_command(cli.storage, args)),
        Some(Command::Serve(args)) => run_async(serve(cli.storage, args)),
        None => run_async(serve(cli.storage, ServeArgs::from_env_and_defaults())),
    }
}

/// Runs a database-backed command on a tokio runtime, printing a startup failure as one line.
fn run_async(fut: impl std::future::Future<Output = Result<(), StartupError>>) -> ExitCode {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(fut);
    // Tasks still running (an import given up at a graceful stop, its parser thread) are not
    // waited for beyond this.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caplens: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command that needs the database; its own exit code, or 1 when the store fails to open.
fn run_with_store(
    storage: StorageArgs,
    command: impl FnOnce(Store) -> std::pin::Pin<Box<dyn std::future::Future<Output = i32>>>,
) -> ExitCode {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        match open_store(&storage).await {
            Ok(store) => {
                let code = command(store.clone()).await;
                store.close().await;
                ExitCode::from(code as u8)
            }
            Err(e) => {
                eprintln!("caplens: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn init_logging() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_env("CAPLENS_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let json = std::env::var("CAPLENS_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(storage: &StorageArgs) -> Result<Store, StartupError> {
    use caplens_server::cli::blobs::{BLOB_URL_SETTING, PREVIOUS_BLOB_URL_SETTING};
    use caplens_server::storage::BlobStore;
    let db = DatabaseConfig::resolve(storage.database_url.as_deref(), &storage.data_dir)?;
    let store = Store::open(&db, &storage.data_dir).await?;
    store.migrate().await?;
    tracing::info!(database = %db.display_url(), "database ready");
    // The blob store: --blob-url, else the deployment's (recorded by `caplens blobs migrate`),
    // else DATA_DIR/blobs; reading from the store it was migrated from what it lacks.
    let recorded = store.setting(BLOB_URL_SETTING).await?;
    let given = storage.blob_url.clone().filter(|u| !u.trim().is_empty());
    let mut blobs = BlobStore::open(given.as_deref().or(recorded.as_deref()), &storage.data_dir)?;
    if let (Some(_), Some(recorded)) = (&given, &recorded) {
        if BlobStore::from_url(recorded).is_ok_and(|r| r.url() != blobs.url()) {
            tracing::warn!(given = %blobs.url(), %recorded, "--blob-url differs from the blob store this deployment recorded (caplens blobs migrate): this process will not see the others' blobs");
        }
    }
    if let Some(previous) = store.setting(PREVIOUS_BLOB_URL_SETTING).await? {
        match BlobStore::open(Some(&previous), &storage.data_dir) {
            Ok(previous) => blobs = blobs.with_fallback(previous),
            Err(e) => {
                tracing::warn!(%previous, error = %e, "the blob store migrated from cannot be opened; blobs not yet copied will read as missing")
            }
        }
    }
    tracing::info!(blobs = %blobs.url(), "blob store ready");
    Ok(store.with_blobs(blobs))
}

async fn migrate(storage: StorageArgs) -> Result<(), StartupError> {
    let store = open_store(&storage).await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}

async fn demo_command(storage: StorageArgs, args: cli::DemoArgs) -> Result<(), StartupError> {
    let store = open_store(&storage).await?;
    let loaded = if args.reset {
        Some(demo::reset_demo(&store, &args.config()).await?)
    } else {
        demo::load_demo_if_empty(&store, &args.config()).await?
    };
    match loaded {
        Some(l) => println!(
            "demo experiments {} loaded: {} problems, {} runs, {} rollouts, {} with token traces (synthetic data)",
            l.experiments.join(", "),
            l.problems,
            l.runs,
            l.rollouts,
            l.traced_rollouts
        ),
        None => println!(
            "the database already has experiments; use `caplens demo --reset` to replace the demo"
        ),
    }
    store.close().await;
    Ok(())
}

/// `caplens demo --export FILE`: the demo as native JSON Lines, no database involved.
fn export_demo(args: &cli::DemoArgs) -> ExitCode {
    use std::io::Write;
    let path = args.export.as_ref().expect("called with --export");
    let data = demo::generate::generate_demo(&args.config());
    let result = if path.as_os_str() == "-" {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        demo::write_native_jsonl(&data, &mut out).and_then(|n| out.flush().map(|_| n))
    } else {
        std::fs::File::create(path).and_then(|f| {
            let mut out = std::io::BufWriter::new(f);
            demo::write_native_jsonl(&data, &mut out).and_then(|n| out.flush().map(|_| n))
        })
    };
    match result {
        Ok(lines) => {
            eprintln!(
                "wrote {lines} synthetic demo rollouts to {} (native JSON Lines)",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("caplens: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

async fn serve(storage: StorageArgs, args: ServeArgs) -> Result<(), StartupError> {
    let site_root = args.site_root.unwrap_or_else(config::default_site_root);
    let store = open_store(&storage).await?;
    if !args.no_demo {
        if let Some(l) =
            demo::load_demo_if_empty(&store, &demo::generate::DemoConfig::default()).await?
        {
            tracing::info!(slug = %l.slug, rollouts = l.rollouts, "empty database: loaded the synthetic demo experiment");
        }
    }
    if !site_root.join("pkg").join("caplens.wasm").is_file() {
        tracing::warn!(
            site_root = %site_root.display(),
            "no built site (pkg/caplens.wasm) here: pages render but will not hydrate; run scripts/build.sh or set --site-root"
        );
    }
    let imports = caplens_server::ingest::service::ImportService::new(
        store.clone(),
        &storage.data_dir,
        args.max_upload_bytes,
    );
    let (interrupted, requeued) = imports.recover().await?;
    let sweeper = caplens_server::storage::sweep::spawn_periodic(store.clone(), SWEEP_EVERY);
    for id in &interrupted {
        tracing::warn!(import = %id, "an import was interrupted by the last stop; nothing of it was stored (it can be retried)");
    }
    for id in &requeued {
        tracing::info!(import = %id, "queued again an upload that was waiting when the server stopped");
    }
    caplens_server::evals::datasets::ensure_builtin(&store).await?;
    let settings = args.auth.settings().map_err(StartupError::Auth)?;
    let has_users = store.user_count().await? > 0;
    settings
        .check_address(args.addr, has_users)
        .map_err(StartupError::Auth)?;
    if settings.mode == caplens_server::auth::AuthMode::None {
        tracing::warn!(addr = %args.addr, "--auth none: local mode, everyone who can reach this address has every right");
    }
    let auth = caplens_server::auth::Auth::new(store.clone(), settings);
    if let Some(oidc) = auth.oidc() {
        // Discovery now: a wrong issuer is a start-up error, not a failed first sign-in.
        oidc.discover().await.map_err(StartupError::Auth)?;
    }
    let worker = (!args.no_worker).then(|| args.worker.worker(&store, &storage.data_dir));
    let worker_task = worker.clone().map(|w| tokio::spawn(w.run()));
    let app = web::router_with_auth(imports.clone(), &site_root, args.addr, auth.clone());
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| StartupError::Bind {
            addr: args.addr.to_string(),
            reason: e.to_string(),
        })?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    tracing::info!(%url, "caplens is listening");
    println!("caplens is running at {url}/");
    if auth.local_mode().await? {
        println!("local mode: no accounts, every right for whoever reaches {url}; `caplens user create NAME --admin` starts team mode");
    } else if let Some(secret) = auth.setup_secret_if_needed().await? {
        let base = auth
            .settings()
            .public_url
            .clone()
            .unwrap_or_else(|| url.clone());
        // The one-time link is for the operator's terminal only; it is never logged.
        println!("team mode without an admin: create the first admin at {base}/setup?secret={secret} (works once)");
    }
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        cli::shutdown_signal().await;
        // Long-lived streams (SSE) end, so in-flight requests can finish.
        web::begin_shutdown();
        tracing::info!("stopping: finishing in-flight requests");
    })
    .await
    .map_err(|e| StartupError::Bind {
        addr: args.addr.to_string(),
        reason: e.to_string(),
    })?;
    sweeper.abort();
    if let (Some(w), Some(task)) = (worker, worker_task) {
        w.stop();
        let _ = task.await;
    }
    // Imports still running here are given up now, not when their leases run out: another
    // replica can retry them at once.
    imports.abort_running().await;
    match store.release_own_imports().await {
        Ok(ids) => {
            for id in ids {
                tracing::warn!(import = %id, "stopped mid-import; nothing of it was stored (it can be retried from any replica)");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not release this process's imports (their leases will run out)")
        }
    }
    // A released import's connection is still checked out (its transaction rolls back when the
    // process exits): closing waits for it, so not for ever.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), store.close()).await;
    tracing::info!("caplens stopped");
    Ok(())
}
