//! The `junction` command line.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use junction::config::Config;
use junction::ingest::{export_customers, import_file, ImportFormat};

/// The import and the webhook path allocate many small, short-lived values; mimalloc
/// serves them markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Junction — one customer record per real person, from every channel, behind one GraphQL API.
#[derive(Parser)]
#[command(name = "junction", version, about, long_about = None)]
struct Cli {
    /// TOML config file (values there override defaults; JUNCTION_* variables override it).
    #[arg(long, global = true, env = "JUNCTION_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the hub (GraphQL on /graphql, webhooks, health and metrics).
    Serve {
        /// Address to listen on (overrides server.bind).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL); `schema.graphql` is this output.
    Schema,
    /// Import flat customer records (JSON Lines, or CSV with a header row).
    Import {
        /// The file to import; `.csv` is read as CSV, anything else as JSON Lines.
        file: PathBuf,
        /// Force the format instead of guessing from the file name.
        #[arg(long, value_parser = ["jsonl", "csv"])]
        format: Option<String>,
    },
    /// Identity resolution tools.
    Dedupe {
        #[command(subcommand)]
        command: DedupeCommand,
    },
    /// Pull a connector now (by id or name) and wait for the end, with a progress bar.
    /// Resumes an interrupted pull from its cursor. Exit status 2 when another process is
    /// pulling this connector.
    Sync {
        /// The connector's id (`con_…`) or name.
        connector: String,
        /// Read everything from the first page instead of what changed since the last pull.
        #[arg(long)]
        backfill: bool,
    },
    /// Export every customer with identities as JSON Lines.
    Export {
        /// Output file (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Manage API keys.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create an API key and print it once (it is stored hashed).
    Create {
        /// admin, editor, viewer or ingest.
        #[arg(long, value_parser = ["admin", "editor", "viewer", "ingest"])]
        role: String,
        /// A name to recognise the key by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Walk the hash chain; exits non-zero if a row was changed or deleted.
    Verify,
}

#[derive(Subcommand)]
enum DedupeCommand {
    /// Load records into a scratch store and print pairwise precision, recall, F1 and time
    /// (the definition of shared/data/pairwise.py).
    Evaluate {
        /// Flat records (JSON Lines, or CSV by extension).
        #[arg(long)]
        input: PathBuf,
        /// `record_id,person_id` with a header row.
        #[arg(long)]
        truth: PathBuf,
        /// Also write the clustering as `record_id,cluster_id`.
        #[arg(long)]
        predicted: Option<PathBuf>,
        /// Scratch database URL (default: a fresh SQLite file in a temporary directory,
        /// removed afterwards). Must be an empty database.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Resolve records one at a time (one transaction each, as webhooks do) against the
    /// configured store and print p50/p99 latency.
    Online {
        /// Flat records (JSON Lines); the first `count` are sent.
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Schema) {
        print!("{}", junction::graphql::sdl());
        return Ok(());
    }
    let mut config = Config::load(cli.config.as_deref())?;
    junction::telemetry::init_logging(&config.log);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { bind, no_migrate } => {
                if let Some(b) = bind {
                    config.server.bind = b;
                }
                if no_migrate {
                    config.database.migrate_on_start = false;
                }
                let listener = tokio::net::TcpListener::bind(config.server.bind)
                    .await
                    .with_context(|| format!("cannot listen on {}", config.server.bind))?;
                junction::run(config, listener).await
            }
            Command::Migrate => {
                junction::open_store(&config, true).await?;
                eprintln!("migrations applied");
                Ok(())
            }
            Command::Schema => Ok(()),
            Command::Import { file, format } => {
                let store = junction::open_store(&config, true).await?;
                let extractor = junction::key_extractor(&config)?;
                let fmt = match format.as_deref() {
                    Some("csv") => ImportFormat::Csv,
                    Some(_) => ImportFormat::JsonLines,
                    None => ImportFormat::from_path(&file),
                };
                let f = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                let bar = if std::io::stderr().is_terminal() {
                    let b = indicatif::ProgressBar::new(len);
                    if let Ok(style) = indicatif::ProgressStyle::with_template(
                        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    ) {
                        b.set_style(style);
                    }
                    Some(b)
                } else {
                    None
                };
                let summary = import_file(&store, &extractor, f, fmt, Some(len).filter(|n| *n > 0), |pos| {
                    if let Some(b) = &bar {
                        b.set_position(pos);
                    }
                })
                .await
                .map_err(|e| anyhow::anyhow!("import failed: {e}"))?;
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                println!("{summary}");
                store.checkpoint_for_exit().await;
                Ok(())
            }
            Command::Token { action: TokenAction::Create { role, name } } => {
                let store = junction::open_store(&config, true).await?;
                let key = junction::access::keys::generate();
                let row = store
                    .create_api_key(
                        &name,
                        &role,
                        &junction::access::keys::prefix(&key),
                        &junction::access::keys::hash(&key),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot store the key: {e}"))?;
                store
                    .audit(junction::store::AuditEntry {
                        actor: "cli",
                        action: "api_key.create",
                        target: Some(junction::ids::ApiKeyId(row.id).to_string()),
                        result: "ok",
                        details: serde_json::json!({"role": role}),
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot audit: {e}"))?;
                eprintln!("created {role} key {} ({name}); it is shown once:", junction::ids::ApiKeyId(row.id));
                println!("{key}");
                Ok(())
            }
            Command::Audit { action: AuditAction::Verify } => {
                let store = junction::open_store(&config, true).await?;
                match store.verify_audit().await.map_err(|e| anyhow::anyhow!("cannot read the audit log: {e}"))? {
                    Ok(n) => {
                        println!("audit log intact: {n} entries verified");
                        Ok(())
                    }
                    Err(b) => {
                        println!("audit log BROKEN: {b:?}");
                        std::process::exit(1);
                    }
                }
            }
            Command::Dedupe { command: DedupeCommand::Evaluate { input, truth, predicted, database_url } } => {
                let scratch = std::env::temp_dir().join(format!("junction-dedupe-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&scratch).context("cannot create a scratch directory")?;
                config.data_dir = scratch.clone();
                config.database.url = Some(
                    database_url
                        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", scratch.join("scratch.db").display())),
                );
                let result = junction::dedupe::evaluate(&config, &input, &truth, predicted.as_deref()).await;
                let _ = std::fs::remove_dir_all(&scratch);
                let ev = result?;
                println!("{}", ev.import);
                println!("{}", ev.score);
                println!("time={:.2}s", ev.seconds);
                Ok(())
            }
            Command::Dedupe { command: DedupeCommand::Online { input, count } } => {
                let l = junction::dedupe::online_latency(&config, &input, count).await?;
                println!("records={} p50={:.3}ms p99={:.3}ms max={:.3}ms", l.records, l.p50_ms, l.p99_ms, l.max_ms);
                Ok(())
            }
            Command::Sync { connector, backfill } => sync_command(config, &connector, backfill).await,
            Command::Export { output } => {
                let store = junction::open_store(&config, true).await?;
                let n = match output {
                    Some(path) => {
                        let f = std::fs::File::create(&path)
                            .with_context(|| format!("cannot create {}", path.display()))?;
                        export_customers(&store, std::io::BufWriter::new(f)).await?
                    }
                    None => export_customers(&store, std::io::BufWriter::new(std::io::stdout().lock())).await?,
                };
                eprintln!("exported {n} customers");
                Ok(())
            }
        }
    })
}

/// `junction sync <connector> [--backfill]`.
async fn sync_command(config: Config, connector: &str, backfill: bool) -> anyhow::Result<()> {
    use junction::sync::{SyncError, SyncMode};
    let state = junction::build_state(config, true).await?;
    let id = match junction::ids::ConnectorId::parse(connector) {
        Ok(id) => id,
        Err(_) => {
            let all = state.store.connectors().await.map_err(|e| anyhow::anyhow!("cannot list connectors: {e}"))?;
            let found = all.into_iter().find(|c| c.name == connector);
            junction::ids::ConnectorId(found.with_context(|| format!("no connector with id or name `{connector}`"))?.id)
        }
    };
    let mode = if backfill { SyncMode::Backfill } else { SyncMode::Incremental };
    let run = match junction::sync::prepare(&state, id, mode).await {
        Ok(r) => r,
        Err(SyncError::Busy) => {
            eprintln!("another process is pulling this connector; try again when it is done");
            std::process::exit(2);
        }
        Err(e) => anyhow::bail!("cannot pull: {e}"),
    };
    let mut progress = state.sync.progress.subscribe();
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}") {
            b.set_style(style);
        }
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let started = std::time::Instant::now();
    let task = tokio::spawn(run.execute());
    let reporter = async {
        loop {
            let p = match progress.recv().await {
                Ok(p) => p,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let rate = p.records as f64 / started.elapsed().as_secs_f64().max(0.001);
            let msg = format!(
                "{} page {} · {} records · {:.0} records/s · {} errors",
                p.stream, p.pages, p.records, rate, p.errors
            );
            match &bar {
                Some(b) => b.set_message(msg),
                None => eprintln!("{msg}"),
            }
        }
    };
    let finished = tokio::select! {
        r = task => r.context("the pull task failed")?,
        _ = reporter => anyhow::bail!("progress channel closed"),
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!(
        "{} {}: {} pages, {} records, {} errors in {:.1} s",
        finished.mode,
        finished.state,
        finished.pages,
        finished.records,
        finished.errors,
        started.elapsed().as_secs_f64()
    );
    match finished.last_error {
        Some(e) => anyhow::bail!("pull failed: {e}"),
        None => Ok(()),
    }
}
