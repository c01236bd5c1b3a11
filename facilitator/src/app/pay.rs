//! The simulated node's routes, which play the Lightning network for the demo and tests (not
//! facilitator calls: no API key; no real payment moves).
//!
//! `POST /pay {"invoice": "<bolt11>"}` pays an invoice of the node and answers `{"preimage", "paymentHash", "amountMsat"}` (404 unknown invoice, 410
//! expired, 409 already paid or cancelled, 403 a mainnet invoice), as the mock facilitator's `POST /pay`
//! does. Not a facilitator
//! call: no API key; no real payment moves.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Body, Service};
use crate::node::PaymentStatus;
use crate::node::simulated::{ExternalOutcome, PayError, SimulatedNode};

#[derive(Deserialize)]
struct PayRequest {
    invoice: String,
}

pub(crate) async fn pay(
    State(service): State<Arc<Service>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let request: PayRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(format!("expected {{\"invoice\": \"<bolt11>\"}}: {err}"))
    })?;
    let node = simulated(&service)?;
    let paid = node.pay(&request.invoice).map_err(|err| {
        let status = match err {
            PayError::Unknown => StatusCode::NOT_FOUND,
            PayError::Expired => StatusCode::GONE,
            PayError::AlreadyPaid | PayError::Cancelled => StatusCode::CONFLICT,
            PayError::Mainnet => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, err.to_string())
    })?;
    Ok(Json(json!({
        "preimage": paid.preimage,
        "paymentHash": paid.payment_hash,
        "amountMsat": paid.amount_msat.to_string(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalRequest {
    amount: String,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
}

/// `POST /pay/external {"amount", "network"?, "outcome"?}`: an invoice of a simulated *other*
/// node, for withdrawals to pay (`outcome`: `succeed`, `fail` or `pending`). 201
/// `{"invoice", "paymentHash"}`.
pub(crate) async fn external(
    State(service): State<Arc<Service>>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let node = simulated(&service)?;
    let request: ExternalRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(format!(
            "expected {{\"amount\": \"<msat>\", \"network\"?, \"outcome\"?: \"succeed\" | \"fail\" | \"pending\"}}: {err}"
        ))
    })?;
    let amount = x402_lightning::lnbtc::invoice::parse_amount_msat(&request.amount)
        .filter(|amount| *amount <= super::requirements::MAX_AMOUNT_MSAT)
        .ok_or_else(|| {
            ApiError::bad_request("amount: a positive msat amount as a decimal string")
        })?;
    let network = match &request.network {
        None => service.policy.networks.first().copied(),
        Some(id) => x402_lightning::v1::verify::parse_network_id(id)
            .filter(|network| service.policy.networks.contains(network)),
    }
    .ok_or_else(|| ApiError::bad_request("network: not served here"))?;
    let outcome = match request.outcome.as_deref() {
        None | Some("succeed") => ExternalOutcome::Succeed,
        Some("fail") => ExternalOutcome::Fail,
        Some("pending") => ExternalOutcome::Pending,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "outcome `{other}`: succeed, fail or pending"
            )));
        }
    };
    let (invoice, payment_hash) = node
        .external_invoice(network, amount, outcome)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "invoice": invoice, "paymentHash": payment_hash.to_lower_hex_string() })),
    )
        .into_response())
}

/// `POST /pay/external/{paymentHash}/settle` or `/fail`: decides a pending external payment
/// (or what the next payment of that invoice meets). 200 `{"paymentHash", "state"}`.
pub(crate) async fn resolve_external(
    State(service): State<Arc<Service>>,
    Path((payment_hash, decision)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let node = simulated(&service)?;
    let succeed = match decision.as_str() {
        "settle" => true,
        "fail" => false,
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "settle or fail")),
    };
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no external invoice of this payment hash",
        )
    };
    let hash = <[u8; 32]>::from_hex(&payment_hash).map_err(|_| unknown())?;
    let status = node.resolve_external(&hash, succeed).ok_or_else(unknown)?;
    let state = match status {
        PaymentStatus::InFlight => "pending",
        PaymentStatus::Succeeded { .. } => "succeeded",
        PaymentStatus::Failed { .. } => "failed",
    };
    Ok(Json(json!({ "paymentHash": payment_hash, "state": state })))
}

fn simulated(service: &Service) -> Result<&SimulatedNode, ApiError> {
    service
        .simulated
        .as_deref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no simulated node here"))
}
