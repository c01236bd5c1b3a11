//! A stub facilitator for x402-axum: every payment is valid and every settlement succeeds, so
//! x402-axum makes the same round trips as `X402Layer` with as little facilitator work as can be.

use std::error::Error;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};

const SUPPORTED: &str = r#"{"kinds":[{"x402Version":1,"scheme":"exact","network":"base-sepolia"}],"extensions":[],"signers":{}}"#;
const VERIFIED: &str = r#"{"isValid":true,"payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66"}"#;
const SETTLED: &str = r#"{"success":true,"payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66","transaction":"0xabababababababababababababababababababababababababababababababab","network":"base-sepolia"}"#;

/// Serves the stub from the current runtime; returns its base URL.
pub async fn serve() -> Result<String, Box<dyn Error>> {
    let app = Router::new()
        .route("/supported", get(|| async { json(SUPPORTED) }))
        .route("/verify", post(|| async { json(VERIFIED) }))
        .route("/settle", post(|| async { json(SETTLED) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/"))
}

fn json(body: &'static str) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], body)
}
