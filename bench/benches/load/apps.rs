//! The demo's handlers as servers: bare axum; behind `X402Layer` offering the seed flow (the
//! flow x402-axum is compared in) and offering both flows (the demo's default); behind
//! `x402-axum`; and the *floor* of a 402: one receiver round trip and one invoice check, with
//! nothing else.
//!
//! The handlers and prices are the demo's (`shared/demo.rs`).

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use http::StatusCode;
use x402_axum::X402Middleware;
use x402_chain_eip155::{KnownNetworkEip155, V1Eip155Exact};
use x402_lightning::lnbtc::invoice::decode;
use x402_lightning::{Facilitator as _, HttpFacilitator, Network, PublicKey, RequirementsRequest};
use x402_types::networks::USDC;

use crate::demo::{self, health, index, infer, premium, routes, weather};

/// Where x402-axum's price tags pay to (any EVM address will do for a stub facilitator).
pub const EVM_PAY_TO: &str = "0xBAc675C310721717Cd4A37F6cbeA1F081b1C2a07";

/// The addresses of the servers.
#[derive(Clone, Copy, Debug)]
pub struct Servers {
    pub bare: SocketAddr,
    pub floor: SocketAddr,
    /// The layer offering the seed flow only.
    pub lightning: SocketAddr,
    /// The layer offering both flows (one invoice per 402, checked for both).
    pub lightning_both: SocketAddr,
    pub x402_axum: SocketAddr,
}

/// Serves the apps on loopback from the current runtime; returns their addresses.
pub async fn serve(
    mock_url: &str,
    pay_to: PublicKey,
    stub_url: &str,
) -> Result<Servers, Box<dyn Error>> {
    let origin = |(_, addr): &Bound| format!("http://{addr}");
    let floor = bind().await?;
    let floor_app = floor_app(mock_url, &origin(&floor))?;
    let both = bind().await?;
    let both_app = behind_x402_lightning(mock_url, pay_to, Some(&origin(&both))).await?;
    Ok(Servers {
        bare: serve_on(bind().await?, routes()),
        floor: serve_on(floor, floor_app),
        lightning: serve_on(
            bind().await?,
            behind_x402_lightning(mock_url, pay_to, None).await?,
        ),
        lightning_both: serve_on(both, both_app),
        x402_axum: serve_on(bind().await?, behind_x402_axum(stub_url)?),
    })
}

/// A listener on loopback and its address (the origin of the app it will serve).
type Bound = (tokio::net::TcpListener, SocketAddr);

async fn bind() -> Result<Bound, Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

fn serve_on((listener, addr): Bound, app: Router) -> SocketAddr {
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn facilitator(mock_url: &str) -> Result<HttpFacilitator, Box<dyn Error>> {
    Ok(HttpFacilitator::builder(mock_url)
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// The demo's configuration of the layer, with `payTo` pinned as the README advises: the seed
/// flow only, or (given the public origin lnbtc payments bind) both flows, the demo's default.
async fn behind_x402_lightning(
    mock_url: &str,
    pay_to: PublicKey,
    both_flows_at: Option<&str>,
) -> Result<Router, Box<dyn Error>> {
    let prices = match both_flows_at {
        None => demo::prices(facilitator(mock_url)?),
        Some(origin) => demo::prices_both(facilitator(mock_url)?).public_base_url(origin),
    };
    let layer = prices.pay_to(pay_to).build()?;
    layer.check_facilitator().await?;
    Ok(routes().layer(layer))
}

/// The floor of a 402 at `origin`: `GET /weather` asks the receiver for an invoice exactly as
/// the layer does (the mock's `/requirements` over HTTP, with a description hash and the
/// route's terms), decodes and checks it once (`lnbtc::invoice::decode`: bech32, canonical
/// form, signature), and answers 402 with a small body. Nothing else: no binding, no
/// challenge document, no header codec.
fn floor_app(mock_url: &str, origin: &str) -> Result<Router, Box<dyn Error>> {
    let facilitator = facilitator(mock_url)?;
    let ask = RequirementsRequest {
        description: "Current weather".to_owned(),
        mime_type: "application/json".to_owned(),
        max_timeout_seconds: 60,
        // Any request hash will do: the receiver signs whatever it is given.
        description_hash: Some("07".repeat(32)),
        ..RequirementsRequest::new(
            Network::Regtest,
            demo::WEATHER_MSAT,
            format!("{origin}/weather"),
        )
    };
    Ok(Router::new().route(
        "/weather",
        get(move || {
            let (facilitator, ask) = (facilitator.clone(), ask.clone());
            async move {
                let minted = facilitator.requirements(&ask).await;
                match minted.map(|answer| decode(&answer.extra.invoice).is_ok()) {
                    Ok(true) => (StatusCode::PAYMENT_REQUIRED, "{\"error\":\"pay\"}"),
                    _ => (StatusCode::BAD_GATEWAY, "{\"error\":\"no invoice\"}"),
                }
            }
        }),
    ))
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
