//! `POST /pay {"invoice": "<bolt11>"}`, only with the simulated node: it plays the Lightning
//! network and answers `{"preimage", "paymentHash", "amountMsat"}` (404 unknown invoice, 410
//! expired, 409 already paid, 403 a mainnet invoice), as the mock facilitator's `POST /pay`
//! does. Not a facilitator
//! call: no API key; no real payment moves.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Body, Service};
use crate::node::simulated::PayError;

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
    let node = service
        .simulated
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no simulated node here"))?;
    let paid = node.pay(&request.invoice).map_err(|err| {
        let status = match err {
            PayError::Unknown => StatusCode::NOT_FOUND,
            PayError::Expired => StatusCode::GONE,
            PayError::AlreadyPaid => StatusCode::CONFLICT,
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
