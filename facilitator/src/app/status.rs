//! The read-only routes (`/supported`, `/healthz`, `/metrics`) and the JSON 404 and 405.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use x402_lightning::lnbtc::types::{SCHEME_EXACT, X402_VERSION_2};

use super::{ApiError, Service, no_store};

/// `GET /supported`: one x402 version 2 kind per network, with `extra.payTo` = the node's key
/// (the payee of every invoice `/requirements` mints) when the node can tell it.
pub(crate) async fn supported(State(service): State<Arc<Service>>) -> Response {
    let pay_to = match service.node.node_id().await {
        Ok(key) => Some(key.to_string()),
        Err(err) => {
            tracing::warn!(%err, "GET /supported without payTo: the node does not tell its key");
            None
        }
    };
    let mut kinds = Vec::new();
    let mut kind = |version: u32, network: &str| {
        let mut kind = json!({
            "x402Version": version,
            "scheme": SCHEME_EXACT,
            "network": network,
        });
        if let Some(pay_to) = &pay_to {
            kind["extra"] = json!({ "payTo": pay_to });
        }
        kinds.push(kind);
    };
    for network in &service.policy.networks {
        if service.flows.lnbtc {
            kind(X402_VERSION_2, network.lnbtc_id());
        }
        if service.flows.v1 {
            kind(x402_lightning::v1::X402_VERSION, network.as_str());
        }
    }
    Json(json!({ "kinds": kinds, "extensions": [], "signers": {} })).into_response()
}

/// `GET /healthz`: 200 when the replay store answers, 503 when it does not.
pub(crate) async fn healthz(State(service): State<Arc<Service>>) -> Response {
    let mut response = match service.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(err) => {
            tracing::error!(%err, "health check: the replay store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({ "status": "unavailable", "error": "the replay store does not answer" }),
                ),
            )
                .into_response()
        }
    };
    no_store(&mut response);
    response
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
pub(crate) async fn metrics(State(service): State<Arc<Service>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        service.metrics.encode(),
    )
        .into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route: POST /requirements, GET /invoices/{paymentHash}, POST /verify, POST \
         /settle, GET /supported, GET /healthz, GET /metrics; with the seed flow POST \
         /accounts/deposits, GET /accounts/deposits/{paymentHash}, GET \
         /accounts/{network}/{account}, POST /accounts/withdrawals, GET \
         /accounts/{network}/{account}/withdrawals/{paymentHash}; with the simulated node POST \
         /pay and POST /pay/external",
    )
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}
