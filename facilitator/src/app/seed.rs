//! The seed flow's `POST /verify` and x402 version 1 `POST /settle` (`PROTOCOL.md` Part 1 and
//! Part 3): an account's signed authorization pays a recorded invoice of the node inside the
//! books.
//!
//! Checks 1–9 are the library's ([`x402_lightning::v1::verify`]); 10 (not paid by either flow)
//! and 11 (available balance) are the books'. Then:
//!
//! - `/verify` places a hold (a second verify of the same invoice by the same account keeps
//!   the one hold): `{"isValid": true, "payer"}`;
//! - `/settle` reserves the amount (the verify's hold, or a hold placed now: an account that
//!   cannot pay is refused before anything else happens), looks up the invoice's preimage,
//!   cancels the node's invoice (so it can no longer be paid over Lightning; a node reporting it
//!   paid makes the settle `duplicate_settlement`), then pays in one transaction: the hold
//!   consumed, the debit, the replay key shared with the `lnbtc` flow and the payment with its
//!   preimage. A refused settle releases the account's hold; a paid invoice ends every other
//!   account's hold on it.
//!
//! | request | answer |
//! |---|---|
//! | not JSON, not an object | 400 `{"error"}` |
//! | a check fails | 200 verdict with its reason (`payer` once the signature checked) |
//! | the store fails | 503 `{"error"}`, no verdict |
//! | the node fails | 502 (504 on its timeout) `{"error"}`, no verdict |

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::DisplayHex as _;
use serde_json::{Value, json};
use x402_lightning::lnbtc::settle::RETENTION_SECS;
use x402_lightning::v1::reason;
use x402_lightning::v1::verify::{self, Authorization, RecordedInvoice, Rejection};

use super::{ApiError, Authorized, Body, Service};
use crate::books::{AccountId, HoldRequest, Outcome, PaymentRequest};
use crate::config::MAX_SKEW_SECONDS;
use crate::metrics::SettleOutcome;
use crate::node::{Cancelled, InvoiceState, NodeError};

/// Why a seed-flow call has no verdict.
enum Failure {
    /// A verdict: the check that failed.
    Refused(Rejection),
    /// No verdict: the store or the node failed.
    Error(ApiError),
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        Self::Refused(rejection)
    }
}

pub(crate) async fn verify(
    _: Authorized,
    axum::extract::State(service): axum::extract::State<Arc<Service>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let request = parse(&body)?;
    if !service.flows.v1 {
        return Err(ApiError::bad_request(
            "the seed flow (x402 version 1) is not served here (X402_FACILITATOR_FLOWS); \
             `exact` on `lnbtc` has no /verify: its proofs are settled at once by POST /settle",
        ));
    }
    match check(&service, &request).await {
        Ok(authorization) => {
            let hold = hold_of(&service, &authorization);
            let outcome = service
                .store
                .hold(&hold, service.now())
                .await
                .map_err(|err| {
                    service.metrics.hold("error", "store_unavailable");
                    store_failed(&err)
                })?;
            let refused = match outcome {
                Outcome::Done => {
                    tracing::info!(payment_hash = %hold.payment_hash, payer = %hold.account.account, "verified: held");
                    service.metrics.hold("held", "none");
                    return Ok(Json(
                        json!({ "isValid": true, "payer": authorization.payer_id() }),
                    ));
                }
                Outcome::AlreadyPaid => reason::DUPLICATE_SETTLEMENT,
                Outcome::InsufficientFunds => reason::INSUFFICIENT_FUNDS,
            };
            Ok(Json(invalid(&service, &authorization.reject(refused))))
        }
        Err(Failure::Refused(rejection)) => Ok(Json(invalid(&service, &rejection))),
        Err(Failure::Error(err)) => {
            service.metrics.hold("error", "unavailable");
            Err(err)
        }
    }
}

/// `/settle` of x402 version 1 (the route dispatches on the version).
pub(crate) async fn settle(
    service: &Arc<Service>,
    request: Value,
) -> Result<Json<Value>, ApiError> {
    let network_id = verify::echoed_network(&request);
    let authorization = match check(service, &request).await {
        Ok(authorization) => authorization,
        Err(Failure::Refused(rejection)) => {
            release(service, &request, &rejection).await;
            return Ok(Json(failed(service, &network_id, &rejection)));
        }
        Err(Failure::Error(err)) => {
            service.metrics.seed_settle(SettleOutcome::Error);
            return Err(err);
        }
    };
    // The payment itself runs in its own task: a client hanging up mid-settle cannot cut it
    // off between the node and the books.
    let task = {
        let service = service.clone();
        let authorization = authorization.clone();
        tokio::spawn(async move { pay(&service, &authorization).await })
    };
    let paid = task.await.unwrap_or_else(|join_error| {
        tracing::error!(%join_error, "the settle task failed");
        Err(Failure::Error(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the settle failed before its outcome was known",
        )))
    });
    let network_id = &authorization.network_id;
    match paid {
        Ok(()) => {
            let payment_hash = authorization.payment_hash_hex();
            tracing::info!(%payment_hash, payer = %authorization.payer_id(), network = %network_id, "settled inside the books");
            service.metrics.seed_settle(SettleOutcome::Success);
            Ok(Json(json!({
                "success": true,
                "transaction": payment_hash,
                "network": network_id,
                "payer": authorization.payer_id(),
            })))
        }
        Err(Failure::Refused(rejection)) => {
            release(service, &request, &rejection).await;
            Ok(Json(failed(service, network_id, &rejection)))
        }
        Err(Failure::Error(err)) => {
            service.metrics.seed_settle(SettleOutcome::Error);
            Err(err)
        }
    }
}

/// Steps 1–9: the library's checks against the recorded invoice and the node. Steps 10 (paid
/// by either flow) and 11 (funds) are the books', in that order, in the hold's transaction.
async fn check(service: &Service, request: &Value) -> Result<Authorization, Failure> {
    let authorization = verify::authenticate(request, &service.policy.networks)?;
    let payment_hash = authorization.payment_hash_hex();
    let recorded = service
        .store
        .recorded_invoice(&payment_hash)
        .await
        .map_err(|err| Failure::Error(store_failed(&err)))?
        .map(|record| RecordedInvoice {
            invoice: record.invoice,
            network: record.network,
            amount_msat: record.amount_msat,
        });
    let node_id = service
        .node
        .node_id()
        .await
        .map_err(|err| Failure::Error(node_failed(&err)))?;
    authorization.check_recorded(
        recorded.as_ref(),
        &node_id,
        service.now(),
        service.policy.skew_secs,
    )?;
    Ok(authorization)
}

/// The hold a valid authorization places: its amount, until the invoice's expiry plus the skew.
fn hold_of(service: &Service, authorization: &Authorization) -> HoldRequest {
    HoldRequest {
        account: account_of(authorization),
        payment_hash: authorization.payment_hash_hex(),
        replay_key: authorization.replay_key(),
        amount_msat: authorization.amount_msat(),
        expires_at: authorization
            .decoded
            .end()
            .saturating_add(service.policy.skew_secs),
    }
}

/// The amount reserved (the verify's hold, or one placed now), the node's part, then the
/// books' one transaction.
async fn pay(service: &Service, authorization: &Authorization) -> Result<(), Failure> {
    let payment_hash = authorization.decoded.payment_hash;
    let node_failure = |err: NodeError| Failure::Error(node_failed(&err));
    // Reserved before the node's invoice is cancelled: a settle the account cannot pay never
    // kills an invoice that the lnbtc flow may still be offering.
    let held = service
        .store
        .hold(&hold_of(service, authorization), service.now())
        .await
        .map_err(|err| Failure::Error(store_failed(&err)))?;
    match held {
        Outcome::Done => {}
        Outcome::AlreadyPaid => {
            return Err(authorization.reject(reason::DUPLICATE_SETTLEMENT).into());
        }
        Outcome::InsufficientFunds => {
            return Err(authorization.reject(reason::INSUFFICIENT_FUNDS).into());
        }
    }
    let lookup = service
        .node
        .lookup_invoice(&payment_hash)
        .await
        .map_err(node_failure)?;
    let Some(lookup) = lookup else {
        tracing::error!(payment_hash = %authorization.payment_hash_hex(), "the node does not know a recorded invoice");
        return Err(authorization.reject(reason::INVOICE_UNKNOWN).into());
    };
    if matches!(lookup.state, InvoiceState::Settled | InvoiceState::Accepted) {
        return Err(authorization.reject(reason::DUPLICATE_SETTLEMENT).into());
    }
    let preimage = lookup
        .preimage
        .filter(|preimage| sha256::Hash::hash(preimage).to_byte_array() == payment_hash)
        .ok_or_else(|| {
            Failure::Error(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the Lightning node reported no preimage (or a wrong one) for its invoice",
            ))
        })?;
    match service
        .node
        .cancel_invoice(&payment_hash)
        .await
        .map_err(node_failure)?
    {
        Cancelled::Cancelled => {}
        Cancelled::AlreadyPaid => {
            return Err(authorization.reject(reason::DUPLICATE_SETTLEMENT).into());
        }
        Cancelled::Unknown => {
            return Err(authorization.reject(reason::INVOICE_UNKNOWN).into());
        }
    }
    let payment = PaymentRequest {
        account: account_of(authorization),
        payment_hash: authorization.payment_hash_hex(),
        replay_key: authorization.replay_key(),
        retain_until: retain_until(authorization),
        amount_msat: authorization.amount_msat(),
        preimage: preimage.to_lower_hex_string(),
    };
    let outcome = service
        .store
        .pay(&payment, service.now())
        .await
        .map_err(|err| Failure::Error(store_failed(&err)))?;
    match outcome {
        Outcome::Done => {
            // Other accounts' holds on this invoice end: it is paid.
            if let Err(err) = service
                .store
                .release_all(&payment.payment_hash, service.now())
                .await
            {
                tracing::warn!(payment_hash = %payment.payment_hash, %err, "releasing the holds of a paid invoice");
            }
            Ok(())
        }
        Outcome::AlreadyPaid => Err(authorization.reject(reason::DUPLICATE_SETTLEMENT).into()),
        Outcome::InsufficientFunds => Err(authorization.reject(reason::INSUFFICIENT_FUNDS).into()),
    }
}

/// Releases the payer's hold after a refused settle (one whose signature checked).
async fn release(service: &Service, request: &Value, rejection: &Rejection) {
    let Some(payer) = &rejection.payer else {
        return;
    };
    let Ok(authorization) = verify::authenticate(request, &service.policy.networks) else {
        return;
    };
    let account = AccountId {
        network: authorization.network,
        account: payer.clone(),
    };
    let payment_hash = authorization.payment_hash_hex();
    if let Err(err) = service
        .store
        .release(&account, &payment_hash, service.now())
        .await
    {
        tracing::error!(%payment_hash, %err, "cannot release a hold: it ends at the invoice's expiry");
    }
}

fn account_of(authorization: &Authorization) -> AccountId {
    AccountId {
        network: authorization.network,
        account: authorization.payer_id(),
    }
}

/// The replay key's retention: as the `lnbtc` flow's (an hour past the largest skew).
fn retain_until(authorization: &Authorization) -> u64 {
    authorization
        .decoded
        .end()
        .saturating_add(MAX_SKEW_SECONDS)
        .saturating_add(RETENTION_SECS)
        .min(i64::MAX.unsigned_abs())
}

fn invalid(service: &Service, rejection: &Rejection) -> Value {
    tracing::info!(
        reason = rejection.reason,
        payer = rejection.payer.as_deref().unwrap_or("-"),
        "verify refused"
    );
    service.metrics.hold("refused", rejection.reason);
    let mut answer = json!({ "isValid": false, "invalidReason": rejection.reason });
    if let Some(payer) = &rejection.payer {
        answer["payer"] = json!(payer);
    }
    answer
}

fn failed(service: &Service, network_id: &str, rejection: &Rejection) -> Value {
    tracing::info!(
        reason = rejection.reason,
        payer = rejection.payer.as_deref().unwrap_or("-"),
        "settle refused"
    );
    service
        .metrics
        .seed_settle(SettleOutcome::Failure(rejection.reason));
    let mut answer = json!({
        "success": false,
        "errorReason": rejection.reason,
        "transaction": "",
        "network": network_id,
    });
    if let Some(payer) = &rejection.payer {
        answer["payer"] = json!(payer);
    }
    answer
}

pub(crate) fn parse(body: &[u8]) -> Result<Value, ApiError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("body is not JSON: {err}")))?;
    if !request.is_object() {
        return Err(ApiError::bad_request(
            "body must be an object {\"x402Version\", \"paymentPayload\", \"paymentRequirements\"}",
        ));
    }
    Ok(request)
}

pub(crate) fn store_failed(err: &crate::store::StoreError) -> ApiError {
    tracing::error!(%err, "the store failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is unavailable: nothing was decided, try again",
    )
}

pub(crate) fn node_failed(err: &NodeError) -> ApiError {
    tracing::error!(%err, "the Lightning node failed");
    let status = if err.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    ApiError::new(status, err.to_string())
}
