//! The `ametist` binary.
//!
//! * `ametist serve`: runs the server (REST on 127.0.0.1:6333, Qdrant's gRPC API on 6334,
//!   data in `./ametist-data`, no configuration needed).
//! * `ametist config`: prints the effective configuration (defaults, file, overrides).
//! * `ametist import`, `ametist search`, `ametist collections`: a client for a running
//!   server (see [`cli`]).
//! * `ametist restore-snapshot FILE --data-dir DIR`: restores a full-storage snapshot into an
//!   empty data directory (the server stopped).
//!
//! Map: [`config`] reads `ametist.yaml` and its overrides; [`api`] holds the REST routes;
//! [`grpc`] serves Qdrant's gRPC API through the same functions as the REST routes;
//! [`http`] is the listener (connection limit, header and body timeouts); [`serve`] wires
//! the engine, the router, logging and shutdown together; [`dashboard`] is the web page at
//! `/dashboard`; [`metrics`] serves `/metrics` and `/metrics/history`.

mod api;
mod cli;
mod config;
mod dashboard;
mod grpc;
mod http;
mod metrics;
mod serve;

use std::path::PathBuf;

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// objects (the request, its parsed body, futures, the answer), and under load glibc's
/// malloc and free took about a tenth of the server's time in profiles of the query route,
/// with locks shared between threads. mimalloc keeps per-thread free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand};

/// Ametist: a vector database whose moving parts are actors.
#[derive(Debug, Parser)]
#[command(name = "ametist", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ConfigArgs),
    /// Print the effective configuration as YAML and exit.
    Config(ConfigArgs),
    /// Import vectors (.fvecs, .npy, .jsonl) into a collection of a running server.
    Import(cli::ImportArgs),
    /// Search a collection of a running server.
    Search(cli::SearchArgs),
    /// List the collections of a running server.
    Collections(cli::ServerArgs),
    /// Restore a full-storage snapshot (`POST /snapshots`) into a data directory without
    /// collections, with the server stopped; then `ametist serve` on that directory.
    RestoreSnapshot(RestoreArgs),
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The full-storage snapshot file.
    file: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Where the configuration comes from. Later sources win: defaults, the file,
/// `AMETIST__SECTION__FIELD` environment variables, `--set`, then the dedicated flags.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file (default: ./ametist.yaml if it exists).
    #[arg(long, short = 'c', env = "AMETIST_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (server.host).
    #[arg(long, env = "AMETIST_HOST")]
    host: Option<String>,
    /// Port of the REST API (server.port).
    #[arg(long, short = 'p', env = "AMETIST_PORT")]
    port: Option<u16>,
    /// Data directory (storage.data_dir).
    #[arg(long, env = "AMETIST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Override any field: `--set partitions.count=4 --set supervision.within=30s`.
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    sets: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<config::AmetistConfig> {
        let mut c = config::AmetistConfig::load(self.config.as_deref(), std::env::vars(), &self.sets)?;
        if let Some(h) = &self.host {
            c.server.host = h.clone();
        }
        if let Some(p) = self.port {
            c.server.port = p;
        }
        if let Some(d) = &self.data_dir {
            c.storage.data_dir = d.clone();
        }
        Ok(c)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = args.load()?;
            serve::run(config)
        }
        Command::Config(args) => {
            let mut config = args.load()?;
            // Secrets are not echoed (the output ends up in terminals, logs and tickets).
            if !config.remoting.secret.is_empty() {
                config.remoting.secret = "<redacted>".into();
            }
            if config.service.api_key.is_some() {
                config.service.api_key = Some("<redacted>".into());
            }
            print!("{}", serde_yaml_ng::to_string(&config)?);
            Ok(())
        }
        Command::Import(args) => cli::import(args),
        Command::Search(args) => cli::search(args),
        Command::Collections(args) => cli::collections(args),
        Command::RestoreSnapshot(args) => {
            let config = args.config.load()?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async {
                let db = ametist_engine::Ametist::open(&config.storage.data_dir, config.engine()).await?;
                let restored = ametist_engine::full_snapshots::restore(&db, &args.file).await;
                db.shutdown().await;
                let names = restored?;
                println!(
                    "restored {} collection(s) into {}: {}",
                    names.len(),
                    config.storage.data_dir.display(),
                    names.join(", ")
                );
                Ok(())
            })
        }
    }
}
