//! The demo's default facilitator: the facilitator service itself, in this process, on a
//! SQLite file in a temporary directory and a simulated Lightning node.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use x402_lightning::Network;
use x402_lightning_facilitator::{Config, Service, serve};

/// The running service: stopped, and its database removed, when dropped.
pub struct Embedded {
    pub url: String,
    _directory: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts the service on `127.0.0.1:4021`, or a free loopback port when that one is taken,
/// serving both flows on `network`, and prints where.
pub async fn start(network: Network) -> Result<Embedded, Box<dyn Error>> {
    let directory = tempfile::Builder::new()
        .prefix("x402-lightning-demo-")
        .tempdir()?;
    let database = directory.path().join("facilitator.db");
    let config = Config {
        database_url: format!("sqlite://{}", database.display()),
        networks: vec![network],
        ..Config::default()
    };
    let service = Arc::new(Service::open(&config).await?);
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(listener) => listener,
        // 4021 is taken: any free port will do (clients are then told where it is).
        Err(_) => tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?,
    };
    let url = format!("http://{}", listener.local_addr()?);
    if listener.local_addr()? != config.bind {
        println!(
            "127.0.0.1:4021 is taken: pay with X402_WALLET_SIM_URL={url} \
             X402_FACILITATOR_URL={url} (the CLI, or cargo run --example pay)"
        );
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        if let Err(err) = serve(listener, service, stopped).await {
            eprintln!("error: the embedded facilitator service stopped: {err}");
        }
    });
    println!("embedded facilitator service on {url}");
    println!(
        "  flows v1 and lnbtc on {network}; accounts in {}",
        database.display()
    );
    println!("  a simulated Lightning node: POST {url}/pay pays its invoices (deposits included)");
    Ok(Embedded {
        url,
        _directory: directory,
        _stop: stop,
    })
}
