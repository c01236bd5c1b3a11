//! The demo's CORS policy, which the tests include (`#[path]`) rather than copy: a browser on
//! another origin may pay for the demo's routes.

use std::time::Duration;

use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use tower_http::cors::{Any, CorsLayer};
use x402_lightning::header::{PAYMENT_REQUEST_HEADERS, PAYMENT_RESPONSE_HEADERS};

/// Preflights for the payment headers are answered for any origin, and scripts may read the
/// payment response headers. Put it outermost, around the payment layer, so that its answers
/// and headers cover the layer's 402s too: its `Access-Control-Expose-Headers` replaces the
/// layer's own, so it lists them all.
pub fn cors() -> CorsLayer {
    let [x_payment, payment_signature] = PAYMENT_REQUEST_HEADERS;
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([CONTENT_TYPE, x_payment, payment_signature])
        .expose_headers(PAYMENT_RESPONSE_HEADERS)
        .max_age(Duration::from_secs(600))
}
