//! The demo's price table, in one place: the demo serves it, and the tests and the benchmarks
//! include this file (`#[path]`), so all three price the same routes the same way.

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
/// its free routes.
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
                .mime_type("application/json"),
        )
}
