//! Runs the mock facilitator as a standalone server, with one funded demo wallet, so any x402
//! Lightning client or resource server can be pointed at it.
//!
//! ```text
//! cargo run --example facilitator
//! ```
//!
//! Environment:
//! - `X402_MOCK_BIND`: address to listen on (default `127.0.0.1:4021`);
//! - `X402_NETWORK`: `lightning`, `lightning-testnet`, `lightning-signet` or
//!   `lightning-regtest` (default);
//! - `X402_MOCK_WALLET_KEY`: the funded wallet's secret key, 64 hex (default: the public demo
//!   wallet of `TestWallet::demo()`, which `cargo run --example pay` uses too).

use std::error::Error;
use std::net::SocketAddr;

use x402_lightning::Network;
use x402_lightning::mock::{MockFacilitator, TestWallet};

/// What the demo wallet is funded with: 1 BTC in msat.
const DEMO_BALANCE_MSAT: u64 = 100_000_000_000;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let bind: SocketAddr = env_or("X402_MOCK_BIND", "127.0.0.1:4021")
        .parse()
        .map_err(|err| format!("X402_MOCK_BIND: {err}"))?;
    let network: Network = env_or("X402_NETWORK", Network::Regtest.as_str())
        .parse()
        .map_err(|err| format!("X402_NETWORK: {err}"))?;
    let wallet = match std::env::var("X402_MOCK_WALLET_KEY") {
        Ok(hex) => TestWallet::from_secret_hex(&hex)
            .map_err(|err| format!("X402_MOCK_WALLET_KEY: {err}"))?,
        Err(_) => TestWallet::demo(),
    };

    let mock = MockFacilitator::builder()
        .bind(bind)
        .network(network)
        .start()
        .await
        .map_err(|err| format!("cannot listen on {bind}: {err}"))?;
    mock.fund(wallet.public_key(), DEMO_BALANCE_MSAT);

    let url = mock.url();
    println!("mock facilitator listening on {url}");
    println!("network:            {network}");
    println!("payTo (node key):   {}", mock.pay_to());
    println!("demo wallet id:     {}", wallet.id());
    println!("demo wallet secret: {}", wallet.secret_hex());
    println!("demo wallet funds:  {DEMO_BALANCE_MSAT} msat");
    println!();
    println!("try:");
    println!(
        "  curl -s -X POST {url}/requirements -H 'content-type: application/json' \\\n    \
         -d '{{\"x402Version\":1,\"scheme\":\"exact\",\"network\":\"{network}\",\"amount\":\"10000\",\
         \"resource\":\"http://localhost:3000/weather\",\"description\":\"Weather\",\
         \"mimeType\":\"application/json\",\"maxTimeoutSeconds\":60}}'"
    );
    println!("  curl -s {url}/supported");

    tokio::signal::ctrl_c().await?;
    println!("stopped");
    Ok(())
}
