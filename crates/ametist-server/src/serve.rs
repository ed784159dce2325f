//! `ametist serve`: the engine behind the REST API and Qdrant's gRPC API, until SIGINT or
//! SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use ametist_cluster::router::Deadlines;
use ametist_cluster::{ClusterOptions, PreparedNode};
use ametist_engine::Ametist;

use crate::api::{protect, router, AppState};
use crate::config::{AmetistConfig, LogFormat};
use crate::http::ConnectionLimits;

/// Runs the server until a shutdown signal, then stops every partition cleanly.
pub fn run(config: AmetistConfig) -> anyhow::Result<()> {
    init_logging(&config);
    ametist_core::hnsw::set_huge_pages(config.partitions.huge_pages);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ametist-io")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: AmetistConfig) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // Connections and partition files both take descriptors; a low soft limit (1024 is
    // common) would cap connections far below `server.max_connections`.
    let open_files = crate::http::raise_open_files_limit();
    if let Some(limit) = open_files.filter(|&l| l < config.server.max_connections as u64 + 256) {
        tracing::warn!(
            limit,
            max_connections = config.server.max_connections,
            "the open-files limit leaves little room beside server.max_connections; raise it (ulimit -n)"
        );
    }
    let addr = format!("{}:{}", config.server.host, config.server.port);
    // On a cluster, the database opens with the partitions other nodes serve supplied by
    // the cluster (see ametist-cluster's `node` module for the two-step start).
    let (db, cluster) = if config.remoting.enabled {
        let engine = config.engine();
        let opts = ClusterOptions {
            data_dir: config.storage.data_dir.clone(),
            host: config.remoting.host.clone(),
            port: config.remoting.port,
            advertise: config.remoting.advertised(),
            rest_addr: addr.clone(),
            seeds: config.remoting.seeds.clone(),
            secret: config.remoting.secret.clone(),
            deadlines: Deadlines { search: engine.search_timeout, write: engine.write_timeout },
            failover_timeout: config.remoting.failover_timeout,
            replace_dead_after: config.remoting.replace_dead_after,
        };
        let (prepared, provider) = PreparedNode::prepare(opts)?;
        let db = Ametist::open_with(&config.storage.data_dir, engine, Some(provider)).await?;
        let node = prepared.start(db.clone()).await?;
        (db, Some(node))
    } else {
        (Ametist::open(&config.storage.data_dir, config.engine()).await?, None)
    };
    let recovery_ms = started.elapsed().as_millis() as u64;
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        name = %config.name,
        address = %local,
        data_dir = %config.storage.data_dir.display(),
        partitions = config.partitions.count,
        collections = db.list_collections().len(),
        recovery_ms,
        "ametist is serving (durable: write-ahead log and snapshots in the data directory)"
    );
    if let Some(node) = &cluster {
        tracing::info!(node = node.id(), "cluster member");
    }
    let limits = ConnectionLimits {
        max_connections: config.server.max_connections,
        header_read_timeout: config.server.header_read_timeout,
        shutdown_grace: config.limits.write_timeout.min(std::time::Duration::from_secs(30)),
    };
    let state = AppState::new(db.clone(), Arc::new(config.clone()), cluster.clone());
    let metrics = crate::metrics::Metrics::new();
    let app = crate::metrics::install(crate::dashboard::install(router(state.clone())), db.clone(), metrics.clone());
    let app = protect(app, &config);
    // One signal stops both listeners: REST first lets its connections finish, gRPC lets
    // the calls in progress finish; the partitions stop after both.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let grpc = match config.server.grpc_port {
        Some(port) => {
            let grpc_addr = format!("{}:{}", config.server.host, port);
            let listener = tokio::net::TcpListener::bind(&grpc_addr).await.with_context(|| {
                format!("cannot listen for gRPC on {grpc_addr} (server.grpc_port; null turns it off)")
            })?;
            tracing::info!(address = %listener.local_addr()?, "Qdrant's gRPC API is serving");
            Some(tokio::spawn(crate::grpc::serve(listener, state, metrics, stopped())))
        }
        None => None,
    };
    let signal = async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    crate::http::serve(listener, app, limits, signal).await?;
    if let Some(grpc) = grpc {
        match tokio::time::timeout(limits.shutdown_grace, grpc).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the gRPC server failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the gRPC server task failed"),
            Err(_) => tracing::warn!("gRPC calls still running after the shutdown grace period; stopping anyway"),
        }
    }
    if let Some(node) = &cluster {
        node.shutdown().await;
    }
    tracing::info!("shutting down: stopping partitions");
    db.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}

fn init_logging(config: &AmetistConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
