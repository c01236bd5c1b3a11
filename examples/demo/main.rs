//! The demo resource server: an axum app whose routes cost bitcoin over Lightning.
//!
//! ```text
//! cargo run --example demo
//! curl -i localhost:3000/weather        # 402: PAYMENT-REQUIRED header and v1 body, one invoice
//! cargo run -p x402-lightning-cli -- pay http://127.0.0.1:3000/weather --wallet sim
//!                                       # pays it over Lightning (lnbtc) and gets the weather
//! cargo run --example pay               # the same with the paying client, in Rust
//! cargo run --example pay -- --flow v1  # through the seed flow instead
//! ```
//!
//! Environment:
//! - `X402_BIND`: address to listen on (default `127.0.0.1:3000`);
//! - `X402_FACILITATOR_URL`: the facilitator, e.g. `http://127.0.0.1:4021` for a facilitator
//!   service of your own (`cargo run -p x402-lightning-facilitator`) (default: start the
//!   facilitator service itself, embedded, on `127.0.0.1:4021`, or a free loopback port when
//!   that one is taken: both flows, prepaid accounts in a SQLite file in a temporary directory
//!   (gone when the demo stops), and a simulated Lightning node whose `POST /pay` pays its
//!   invoices and `POST /pay/external` mints invoices of another node for withdrawals);
//! - `X402_NETWORK`: `lightning`, `lightning-testnet` (default: an upstream network, so any
//!   standard lnbtc client pays it), `lightning-signet` or `lightning-regtest`;
//! - `X402_PAY_TO`: pin the payee node key (66 hex); invoices payable elsewhere are refused;
//! - `X402_FACILITATOR_TIMEOUT_MS`: timeout of each facilitator call (default 10000);
//! - `X402_FACILITATOR_API_KEY`: a bearer key sent with every facilitator call (the facilitator
//!   service's `X402_FACILITATOR_API_KEYS`);
//! - `X402_PUBLIC_BASE_URL`: the origin clients reach the demo at, used for `resource` and to
//!   bind lnbtc payments to their request (default: `http://` and the bound address);
//! - `X402_FLOWS`: the payment flows offered, `v1,lnbtc` (default), `v1` or `lnbtc`;
//! - `X402_ISSUANCE_PER_MINUTE`: how many invoices one client (peer IP) may have minted per
//!   minute, in bursts of up to a fifth of that (default 600; 0 turns the limit off); all
//!   clients together may have ten times as many.
//!
//! Routes: `GET /` and `GET /health` are free; `GET /weather` costs 10,000 msat,
//! `GET /premium/{*path}` 250,000 msat, `POST /ai/infer` 5,000,000 msat (its body must be JSON
//! `{"prompt": "..."}`, checked before any invoice is minted, so a rejected body is never paid
//! for; an lnbtc payment for it binds its `content-type`). Every invoice expires after
//! `maxTimeoutSeconds`, 60 s. A browser opening a priced route gets the paywall page: a QR code
//! and a "Pay with a browser wallet" button; it shows what was bought once the invoice is paid
//! (`POST /pay` of the embedded facilitator pays it as a wallet would). CORS preflights are
//! answered for any origin (a browser may pay from another site), and the payment headers are
//! exposed to scripts.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Request};
use axum::routing::{get, post};
use axum::{Json, Router, ServiceExt};
use serde_json::{Value, json};
use tower::Layer as _;
use x402_lightning::invoice::parse_node_id;
use x402_lightning::layer::{IssuanceLimit, IssuanceRate};
use x402_lightning::paywall::Paywall;
use x402_lightning::{Flows, HttpFacilitator, Network, VerifiedPayment};

use self::cors::cors;
use self::shared::{demo_prices, infer};

mod cors;
mod embedded;
mod shared;

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn parse_env<T: std::str::FromStr>(name: &str, default: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    env(name)
        .as_deref()
        .unwrap_or(default)
        .trim()
        .parse()
        .map_err(|err| format!("{name}: {err}"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let bind: SocketAddr = parse_env("X402_BIND", "127.0.0.1:3000")?;
    let network: Network = parse_env("X402_NETWORK", Network::Testnet.as_str())?;
    let timeout_ms: u64 = parse_env("X402_FACILITATOR_TIMEOUT_MS", "10000")?;
    let issuance_per_minute: u32 = parse_env("X402_ISSUANCE_PER_MINUTE", "600")?;
    let flows: Flows = parse_env("X402_FLOWS", "v1,lnbtc")?;
    // Listening first: the default public origin is the address actually bound.
    let listener = tokio::net::TcpListener::bind(bind).await.map_err(|err| {
        format!("cannot listen on {bind}: {err} (set X402_BIND to another address)")
    })?;
    let local = listener.local_addr()?;
    let public_base_url = env("X402_PUBLIC_BASE_URL").unwrap_or_else(|| format!("http://{local}"));

    // The embedded service lives as long as `main`; dropping it stops it and removes its
    // database.
    let mut _embedded = None;
    let facilitator_url = match env("X402_FACILITATOR_URL") {
        Some(url) => url,
        None => {
            let service = embedded::start(network).await?;
            let url = service.url.clone();
            _embedded = Some(service);
            url
        }
    };
    let mut facilitator =
        HttpFacilitator::builder(&facilitator_url).timeout(Duration::from_millis(timeout_ms));
    if let Some(key) = env("X402_FACILITATOR_API_KEY") {
        facilitator = facilitator.bearer_token(key.trim());
    }
    let facilitator = facilitator.build().map_err(|err| {
        format!(
            "X402_FACILITATOR_URL / X402_FACILITATOR_TIMEOUT_MS / X402_FACILITATOR_API_KEY: {err}"
        )
    })?;

    let mut payments = demo_prices(facilitator, network).on_settled(|paid| async move {
        println!(
            "settled {} msat for {} (payment hash {})",
            paid.amount_msat, paid.route, paid.payment_hash
        );
    });
    if let Some(pay_to) = env("X402_PAY_TO") {
        let node = parse_node_id(pay_to.trim()).map_err(|err| format!("X402_PAY_TO: {err}"))?;
        payments = payments.pay_to(node);
    }
    payments = payments
        .flows(flows)
        .public_base_url(&public_base_url)
        // A browser opening a priced route gets a page to pay it (on by default; named here).
        .paywall(
            Paywall::new()
                .title("x402-lightning demo")
                .operator("the x402-lightning demo shop"),
        );
    if issuance_per_minute > 0 {
        // Every 402 mints an invoice at the facilitator: an unpaid flood must not mint without
        // bound. Per client (peer IP, from the connect info below) and in all.
        let per_client =
            IssuanceRate::per_minute(issuance_per_minute).burst(issuance_per_minute.div_ceil(5));
        let global = IssuanceRate::per_minute(issuance_per_minute.saturating_mul(10))
            .burst(issuance_per_minute.saturating_mul(2));
        payments =
            payments.issuance_limit(IssuanceLimit::new().per_client(per_client).global(global));
    }
    let payments = payments.build()?;
    match payments.check_facilitator().await {
        Ok(()) => println!("facilitator {facilitator_url} serves {network} for the flows {flows}"),
        Err(err) => println!("warning: {err}"),
    }

    let router = Router::new()
        .route("/", get(index))
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/weather", get(weather))
        .route("/premium/{*path}", get(premium))
        .route("/ai/infer", post(infer));
    // Around the whole Router: the free routes pay the least for it (see the README). CORS
    // outermost, so that its preflight answers and headers cover the layer's 402s too.
    let app = cors().layer(payments.layer(router));

    let offered = payments.offered_flows();
    if offered == flows {
        println!("flows {flows}, public base URL {public_base_url}");
    } else {
        // The facilitator serves fewer flows than X402_FLOWS names: 402s offer only those.
        println!("flows {flows}, 402s offer {offered}, public base URL {public_base_url}");
    }
    println!("listening on http://{local}");
    // The peer address keys the per-client issuance limit.
    let app = ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn index() -> &'static str {
    "x402-lightning demo: routes priced in bitcoin over Lightning (x402, scheme exact)

  GET  /                   free   this page
  GET  /health             free
  GET  /weather            10,000 msat      JSON
  GET  /premium/{*path}    250,000 msat     text
  POST /ai/infer           5,000,000 msat   JSON in ({\"prompt\": \"...\"}), JSON out

A priced route answers 402 with one fresh BOLT11 invoice, offered two ways:

x402 v2, scheme exact on lnbtc (the PAYMENT-REQUIRED header, base64 JSON):
  1. Check the invoice: its description hash is the request hash (SHA-256 of the JCS http:1
     binding of your exact request), its amount, payee (payTo) and expiry are the offer's.
  2. Pay it with any Lightning wallet (here: POST the invoice to the facilitator's /pay).
  3. Send PAYMENT-SIGNATURE: base64 of {\"x402Version\":2,\"accepted\":<the offer>,
     \"payload\":{\"preimage\":<64 hex>}}; the answer carries PAYMENT-RESPONSE.

x402 v1, the seed flow (the JSON body), paid from a prepaid account at the facilitator:
  0. Fund it: POST /accounts/deposits {\"network\",\"account\",\"amount\"} at the facilitator
     and pay the deposit invoice (here: POST it to the facilitator's /pay).
  1. Sign SHA-256 of accepts[0].extra.invoice with your key (64-byte compact ECDSA, hex).
  2. Send X-PAYMENT: base64 of {\"x402Version\":1,\"scheme\":\"exact\",\"network\":...,
     \"payload\":{\"invoice\":...,\"signature\":...,\"from\":<your 66-hex public key>}}
  3. The facilitator verifies and settles; the answer carries X-PAYMENT-RESPONSE.

Or let the client do it: cargo run -p x402-lightning-cli -- pay http://127.0.0.1:3000/weather \\
  --max-cost 20sat --wallet sim   (or --wallet account, for the seed flow; see --help)
"
}

async fn weather(payment: VerifiedPayment) -> Json<Value> {
    Json(json!({
        "location": "Lisbon",
        "temperatureC": 21,
        "conditions": "sunny",
        "paidMsat": payment.amount_msat,
        "paymentHash": payment.payment_hash,
    }))
}

async fn premium(Path(path): Path<String>, payment: VerifiedPayment) -> String {
    // Lightning (lnbtc) reveals no payer.
    let payer = match payment.payer.as_str() {
        "" => "a Lightning payer",
        payer => payer,
    };
    format!(
        "premium content for /{path}, paid by {payer} ({} msat)\n",
        payment.amount_msat
    )
}
