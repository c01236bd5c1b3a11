//! The demo's parts that the tests and the benchmarks include (`#[path]`) rather than copy: its
//! price table, so all three price the same routes the same way, and its inference handler.

use axum::Json;
use serde::{Deserialize, Serialize};
use x402_lightning::layer::X402LayerBuilder;
use x402_lightning::{Facilitator, Network, Price, PriceTag, X402Layer};

/// `GET /weather`, in msat.
pub const WEATHER_MSAT: u64 = 10_000;
/// `GET /premium/{*path}`, in msat.
pub const PREMIUM_MSAT: u64 = 250_000;
/// `POST /ai/infer`, in msat.
pub const INFER_MSAT: u64 = 5_000_000;

/// The demo's price table on `network`, paid through `facilitator`. It is a table rather than
/// `charge(..)` on each route because the demo wraps the whole `Router`, the fastest form for
/// its free routes. Every route keeps the default `maxTimeoutSeconds` of 60: each invoice
/// expires in 60 s.
pub fn demo_prices<F: Facilitator>(facilitator: F, network: Network) -> X402LayerBuilder<F> {
    X402Layer::builder(facilitator, network)
        .route(
            "GET /weather",
            PriceTag::fixed(Price::msat(WEATHER_MSAT))
                .description("Current weather")
                .mime_type("application/json"),
        )
        .route(
            "GET /premium/{*path}",
            PriceTag::fixed(Price::msat(PREMIUM_MSAT))
                .description("Premium content")
                .mime_type("text/plain"),
        )
        .route(
            "POST /ai/infer",
            PriceTag::fixed(Price::msat(INFER_MSAT))
                .description("Batch AI inference request")
                .mime_type("application/json")
                // How the body is read decides what is bought: an lnbtc payment binds it.
                .bind_headers(["content-type"])
                // A body `infer` would reject (axum's 415, 400 or 422) is refused before any
                // invoice is minted: it is never paid for, in either flow.
                .require_json::<InferRequest>(),
        )
}

/// The body of `POST /ai/infer`.
#[derive(Deserialize)]
pub struct InferRequest {
    pub prompt: String,
}

/// The answer of `POST /ai/infer`.
#[derive(Serialize)]
pub struct InferResponse {
    pub model: &'static str,
    pub completion: String,
    pub tokens: usize,
}

/// `POST /ai/infer`: "infers" by reversing the prompt's words.
pub async fn infer(Json(request): Json<InferRequest>) -> Json<InferResponse> {
    let words: Vec<&str> = request.prompt.split_whitespace().collect();
    let completion = words.iter().rev().copied().collect::<Vec<_>>().join(" ");
    Json(InferResponse {
        model: "demo-reverse-1",
        tokens: words.len(),
        completion,
    })
}
