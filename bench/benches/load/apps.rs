//! The demo's handlers as three servers: bare axum, behind `X402Layer`, behind `x402-axum`.
//!
//! The handlers and prices are the demo's (`shared/demo.rs`).

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use x402_axum::X402Middleware;
use x402_chain_eip155::{KnownNetworkEip155, V1Eip155Exact};
use x402_lightning::{HttpFacilitator, PublicKey};
use x402_types::networks::USDC;

use crate::demo::{self, health, index, infer, premium, routes, weather};

/// Where x402-axum's price tags pay to (any EVM address will do for a stub facilitator).
pub const EVM_PAY_TO: &str = "0xBAc675C310721717Cd4A37F6cbeA1F081b1C2a07";

/// The addresses of the three servers.
#[derive(Clone, Copy, Debug)]
pub struct Servers {
    pub bare: SocketAddr,
    pub lightning: SocketAddr,
    pub x402_axum: SocketAddr,
}

/// Serves the three apps on loopback from the current runtime; returns their addresses.
pub async fn serve(
    mock_url: &str,
    pay_to: PublicKey,
    stub_url: &str,
) -> Result<Servers, Box<dyn Error>> {
    Ok(Servers {
        bare: spawn(routes()).await?,
        lightning: spawn(behind_x402_lightning(mock_url, pay_to).await?).await?,
        x402_axum: spawn(behind_x402_axum(stub_url)?).await?,
    })
}

async fn spawn(app: Router) -> Result<SocketAddr, Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// The demo's configuration of the layer, with `payTo` pinned as the README advises.
async fn behind_x402_lightning(
    mock_url: &str,
    pay_to: PublicKey,
) -> Result<Router, Box<dyn Error>> {
    let facilitator = HttpFacilitator::builder(mock_url)
        .timeout(Duration::from_secs(10))
        .build()?;
    let layer = demo::prices(facilitator).pay_to(pay_to).build()?;
    layer.check_facilitator().await?;
    Ok(routes().layer(layer))
}

/// The same routes and prices with x402-axum's per-route layers (its EIP-155 price tag: 0.01
/// USDC on Base Sepolia) in front of a facilitator at `stub_url`.
fn behind_x402_axum(stub_url: &str) -> Result<Router, Box<dyn Error>> {
    let x402 = X402Middleware::try_new(stub_url)?;
    let usdc = |amount: &str| -> Result<_, Box<dyn Error>> {
        let pay_to: x402_chain_eip155::chain::ChecksummedAddress = EVM_PAY_TO.parse()?;
        Ok(V1Eip155Exact::price_tag(
            pay_to,
            USDC::base_sepolia().parse(amount)?,
        ))
    };
    let priced = |amount: &str, description: &str, mime: &str| -> Result<_, Box<dyn Error>> {
        Ok(x402
            .with_price_tag(usdc(amount)?)
            .with_description(description.to_owned())
            .with_mime_type(mime.to_owned()))
    };
    Ok(Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route(
            "/weather",
            get(weather).layer(priced("0.01", "Current weather", "application/json")?),
        )
        .route(
            "/premium/{*path}",
            get(premium).layer(priced("0.25", "Premium content", "text/plain")?),
        )
        .route(
            "/ai/infer",
            post(infer).layer(priced(
                "5",
                "Batch AI inference request",
                "application/json",
            )?),
        ))
}
