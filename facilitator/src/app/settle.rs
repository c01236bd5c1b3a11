//! `POST /settle` (x402 version 2, `exact` on `lnbtc`): upstream's ordered validation, then the
//! atomic insert of `network:payment_hash` into the replay store (`scheme_exact_lnbtc.md`,
//! "Facilitator Validation" and "Settlement and Replay Protection").
//!
//! | request | answer |
//! |---|---|
//! | not JSON, not an object, `x402Version` not 2, no `paymentPayload` or `paymentRequirements` | 400 `{"error"}` |
//! | x402 version 1 (the seed flow) | the seed flow's settle ([`super::seed`]); 400 `{"error"}` when `X402_FACILITATOR_FLOWS` leaves it out |
//! | a proof failing a check | 200 `{"success": false, "errorReason", "transaction": "", "network"}` |
//! | a valid proof already recorded | 200 `success: false`, `duplicate_settlement` |
//! | a valid proof, recorded now | 200 `{"success": true, "transaction": <payment hash>, "network"}` |
//! | the replay store fails | 503 `{"error"}`: not settled |
//!
//! The key is kept until `invoice_end + 600 s + 1 h` (the largest skew any instance may use),
//! so instances with different skews on one store never purge a key another still needs.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use x402_lightning::lnbtc::reason;
use x402_lightning::lnbtc::settle::{RETENTION_SECS, ValidProof, validate};
use x402_lightning::lnbtc::types::{SettleResponse, X402_VERSION_2};
use x402_lightning::types::reason::INVALID_X402_VERSION;

use super::{ApiError, Authorized, Body, Service};
use crate::config::MAX_SKEW_SECONDS;
use crate::metrics::SettleOutcome;
use crate::store::{Inserted, ReplayEntry};

/// The answer to a seed-flow (x402 version 1) request.
pub(crate) const V1_NOT_SUPPORTED: &str = "x402 version 1 (the seed flow) is not served by this \
     facilitator: X402_FACILITATOR_FLOWS leaves out `v1`";

pub(crate) async fn settle(
    _: Authorized,
    State(service): State<Arc<Service>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let request = super::seed::parse(&body)?;
    let payload = &request["paymentPayload"];
    let requirements = &request["paymentRequirements"];
    // Either version saying 1 is the seed flow's request: its checks answer a mismatch with
    // `invalid_x402_version`, as `/verify` does.
    let seed_flow =
        request["x402Version"].as_u64() == Some(1) || payload["x402Version"].as_u64() == Some(1);
    if seed_flow && service.flows.v1 {
        return super::seed::settle(&service, request).await;
    }
    check_version(&request["x402Version"], &payload["x402Version"])?;
    if !service.flows.lnbtc {
        return Err(ApiError::bad_request(
            "`exact` on `lnbtc` (x402 version 2) is not served here (X402_FACILITATOR_FLOWS)",
        ));
    }
    if payload.is_null() || requirements.is_null() {
        return Err(ApiError::bad_request(
            "paymentPayload and paymentRequirements are required",
        ));
    }
    // A failure names the network the requirements name, when it is one of ours.
    let network = requirements["network"]
        .as_str()
        .filter(|id| service.policy.networks.iter().any(|n| n.lnbtc_id() == *id))
        .unwrap_or_default()
        .to_owned();

    let now = service.now();
    if service.clock_pinned {
        tracing::warn!(
            now,
            "settling with the clock PINNED by X402_FACILITATOR_TEST_NOW"
        );
    }
    if payload["x402Version"].as_u64() != Some(u64::from(X402_VERSION_2)) {
        service
            .metrics
            .settle(SettleOutcome::Failure(INVALID_X402_VERSION));
        return Ok(answer(&SettleResponse::failure(
            &network,
            INVALID_X402_VERSION,
        )));
    }
    let proof = match validate(payload, requirements, &service.policy, now) {
        Ok(proof) => proof,
        Err(rejection) => {
            tracing::info!(
                reason = rejection.reason,
                step = rejection.step,
                "settle refused"
            );
            service
                .metrics
                .settle(SettleOutcome::Failure(rejection.reason));
            return Ok(answer(&SettleResponse::failure(&network, rejection.reason)));
        }
    };

    let entry = ReplayEntry {
        key: proof.replay_key.clone(),
        retain_until: retain_until(&proof),
        settled_at: now,
    };
    // The insert runs in its own task: a client hanging up mid-settle cannot cut it off between
    // the database and the metrics and logs.
    let store = service.store.clone();
    let started = Instant::now();
    let inserted = tokio::spawn(async move { store.insert_if_absent(&entry).await }).await;
    service.metrics.store_latency("insert", started.elapsed());
    let payment_hash = proof.invoice.payment_hash_hex();
    match inserted {
        Ok(Ok(Inserted::New)) => {
            tracing::info!(%payment_hash, network = proof.network.lnbtc_id(), "settled");
            if service.flows.v1 {
                // Seed-flow holds on this invoice end: it is paid (off the answer's path; an
                // account's next transaction would end them anyway).
                let service = service.clone();
                let payment_hash = payment_hash.clone();
                tokio::spawn(async move {
                    if let Err(err) = service.store.release_all(&payment_hash, now).await {
                        tracing::warn!(%payment_hash, %err, "releasing the holds of a paid invoice");
                    }
                });
            }
            service.metrics.settle(SettleOutcome::Success);
            Ok(answer(&proof.success_response()))
        }
        Ok(Ok(Inserted::AlreadyPresent)) => {
            tracing::info!(%payment_hash, "settle refused: already settled");
            service
                .metrics
                .settle(SettleOutcome::Failure(reason::DUPLICATE_SETTLEMENT));
            Ok(answer(&SettleResponse::failure(
                proof.network.lnbtc_id(),
                reason::DUPLICATE_SETTLEMENT,
            )))
        }
        Ok(Err(err)) => {
            tracing::error!(%payment_hash, %err, "settle failed: the replay store");
            service.metrics.settle(SettleOutcome::Error);
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the replay store is unavailable: the proof was not settled, try again",
            ))
        }
        Err(join_error) => {
            tracing::error!(%payment_hash, %join_error, "settle failed: the insert task");
            service.metrics.settle(SettleOutcome::Error);
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the settle failed before its outcome was known",
            ))
        }
    }
}

/// How long the key of `proof` is kept: an hour after the invoice could pass validation on any
/// instance, whatever its skew (up to [`MAX_SKEW_SECONDS`]), and never less than upstream's
/// `invoice_end + skew + 1 h`; capped at what the databases' `BIGINT` holds (an invoice can
/// claim an expiry of centuries).
fn retain_until(proof: &ValidProof) -> u64 {
    let any_instance = proof
        .invoice
        .end()
        .saturating_add(MAX_SKEW_SECONDS)
        .saturating_add(RETENTION_SECS);
    any_instance
        .max(proof.retain_until)
        .min(i64::MAX.unsigned_abs())
}

/// An lnbtc settle's answer as JSON (the route answers both flows).
fn answer(response: &SettleResponse) -> Json<Value> {
    Json(serde_json::to_value(response).unwrap_or_default())
}

/// The request's and the payment's `x402Version`: version 1 is the seed flow, which this
/// facilitator does not serve; the request's must be 2 (the payment's is checked as a verdict).
fn check_version(outer: &Value, payment: &Value) -> Result<(), ApiError> {
    if outer.as_u64() == Some(1) || payment.as_u64() == Some(1) {
        return Err(ApiError::bad_request(V1_NOT_SUPPORTED));
    }
    if outer.as_u64() != Some(u64::from(X402_VERSION_2)) {
        return Err(ApiError::bad_request(
            "x402Version must be 2 (`exact` on `lnbtc`)",
        ));
    }
    Ok(())
}
