//! `x402-lightning-facilitator`: reads its configuration from the environment (see `--help`),
//! opens the replay store, prints `listening on http://ADDR` once ready, and serves until
//! SIGINT or SIGTERM, letting in-flight settles finish.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use x402_lightning_facilitator::store::redact_password;
use x402_lightning_facilitator::{Config, Service, serve};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // sqlx logs PostgreSQL's notices (`… already exists, skipping`) at info.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let service = Arc::new(Service::open(&config).await?);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", config.bind))?;
    let address = listener.local_addr()?;
    let networks: Vec<_> = config.networks.iter().map(|n| n.lnbtc_id()).collect();
    tracing::info!(
        store = %redact_password(&config.database_url),
        networks = %networks.join(","),
        node = ?config.node,
        api_keys = config.api_keys.len(),
        "x402 Lightning facilitator ready"
    );
    println!("listening on http://{address}");
    serve(listener, service, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
