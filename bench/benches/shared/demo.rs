//! The demo's prices, routes and handlers, shared by the benches. A bench cannot import an
//! example: the price table and `infer` come from the demo's own `examples/demo/shared.rs`
//! (included); the other handlers are copies of `examples/demo/main.rs`'s, except that
//! `weather` takes an `Option<VerifiedPayment>` so that the same handler serves bare axum too.

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use x402_lightning::layer::X402LayerBuilder;
use x402_lightning::{Facilitator, Flows, Network, VerifiedPayment};

#[path = "../../../examples/demo/shared.rs"]
mod demo_shared;
#[allow(unused_imports, reason = "not every bench reads the price")]
pub use self::demo_shared::{WEATHER_MSAT, infer};

/// The demo's price table on regtest, through `facilitator`, in the seed flow (the flow the
/// peer x402-axum is compared in; the lnbtc flow has no peer to compare with).
pub fn prices<F: Facilitator>(facilitator: F) -> X402LayerBuilder<F> {
    demo_shared::demo_prices(facilitator, Network::Regtest).flows(Flows::V1)
}

/// The demo's price table on regtest, through `facilitator`, in both flows: the demo's own
/// configuration (it needs a public base URL).
#[allow(dead_code, reason = "the load bench only")]
pub fn prices_both<F: Facilitator>(facilitator: F) -> X402LayerBuilder<F> {
    demo_shared::demo_prices(facilitator, Network::Regtest)
}

/// The demo's routes and handlers, as bare axum.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/weather", get(weather))
        .route("/premium/{*path}", get(premium))
        .route("/ai/infer", post(infer))
}

pub async fn index() -> &'static str {
    "x402-lightning demo\n"
}

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn weather(payment: Option<VerifiedPayment>) -> Json<Value> {
    let (paid_msat, payment_hash) = payment.map_or((0, String::new()), |payment| {
        (payment.amount_msat, payment.payment_hash)
    });
    Json(json!({
        "location": "Lisbon",
        "temperatureC": 21,
        "conditions": "sunny",
        "paidMsat": paid_msat,
        "paymentHash": payment_hash,
    }))
}

pub async fn premium(Path(path): Path<String>) -> String {
    format!("premium content for /{path}\n")
}
