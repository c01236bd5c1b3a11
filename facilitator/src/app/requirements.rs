//! `POST /requirements` (the wire contract's call, `x402_lightning::protocol`, with the `lnbtc`
//! flow's `descriptionHash`): mints an invoice through the node, bound to the request hash,
//! checks it, and records it in the books before handing it out, whatever the flows: the seed
//! flow pays recorded invoices only, and `GET /invoices/{paymentHash}` reports only those.
//!
//! | request | answer |
//! |---|---|
//! | not the call's shape (an `lnbtc:` network id included: the call names networks by their x402 v1 names), `x402Version` not 1, network not served, amount 0, not canonical (`"00010"`) or over what BOLT11 carries, no or malformed `descriptionHash`, `maxTimeoutSeconds` 0 or over a day | 400 `{"error"}` |
//! | the node fails | 502 (504 on its timeout) `{"error"}` |
//! | the node's invoice differs from what was asked (amount, currency, description hash, expiry, payee, creation time) | 502 `{"error"}` |
//! | the store cannot record it (it is not handed out) | 503 `{"error"}` |
//! | minted and recorded | 200 Part 1 `PaymentRequirements`, `payTo` = the node, `extra.invoice` |

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bitcoin::secp256k1::PublicKey;
use x402_lightning::Network;
use x402_lightning::lnbtc::binding::RequestHash;
use x402_lightning::lnbtc::invoice::{DecodedInvoice, InvoiceTerms, decode};
use x402_lightning::types::{
    ASSET_BTC, LightningExtra, PaymentRequirements, RequirementsRequest, X402_VERSION,
};

use super::{ApiError, Authorized, Body, Service};
use crate::books::InvoiceRecord;
use crate::metrics::MintOutcome;
use crate::node::{InvoiceDescription, InvoiceRequest, NodeError};

/// BOLT11's limit on a `d` description, in bytes.
pub(crate) const MAX_DESCRIPTION_BYTES: usize = 639;

/// The longest invoice expiry minted, in seconds (one day).
pub(crate) const MAX_EXPIRY_SECS: u64 = 86_400;

/// The largest amount a BOLT11 invoice can carry, in msat: its pico-bitcoin (msat × 10) must
/// fit 64 bits.
pub(crate) const MAX_AMOUNT_MSAT: u64 = u64::MAX / 10;

pub(crate) async fn requirements(
    _: Authorized,
    State(service): State<Arc<Service>>,
    Body(body): Body,
) -> Result<Json<PaymentRequirements>, ApiError> {
    let request: RequirementsRequest = serde_json::from_slice(&body).map_err(|err| {
        // The call names networks as the seed flow does; say so to a caller using an lnbtc id.
        let lnbtc_id = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value["network"].as_str().and_then(Network::from_lnbtc_id));
        match lnbtc_id {
            Some(network) => ApiError::bad_request(format!(
                "network: /requirements names networks by their x402 v1 name, `{network}` for {}",
                network.lnbtc_id()
            )),
            None => ApiError::bad_request(format!("invalid requirements request: {err}")),
        }
    })?;
    if request.x402_version != X402_VERSION {
        return Err(ApiError::bad_request(format!(
            "x402Version must be {X402_VERSION} (the wire contract's requirements call), not {}",
            request.x402_version
        )));
    }
    if !service.policy.networks.contains(&request.network) {
        return Err(ApiError::bad_request(format!(
            "network {} is not served here",
            request.network
        )));
    }
    if request.amount == 0 {
        return Err(ApiError::bad_request("amount must be at least 1 msat"));
    }
    if request.amount > MAX_AMOUNT_MSAT {
        return Err(ApiError::bad_request(format!(
            "amount must be at most {MAX_AMOUNT_MSAT} msat (BOLT11 writes amounts in pico-bitcoin)"
        )));
    }
    let request_hash = match &request.description_hash {
        Some(hash_hex) => Some(RequestHash::from_hex(hash_hex).ok_or_else(|| {
            ApiError::bad_request("descriptionHash must be 64 lowercase hex characters")
        })?),
        None if !service.flows.v1 => {
            return Err(ApiError::bad_request(
                "descriptionHash is required: this facilitator serves `exact` on `lnbtc` only \
                 (X402_FACILITATOR_FLOWS), whose invoices are bound to a request hash",
            ));
        }
        None => None,
    };
    if request_hash.is_none() && request.description.len() > MAX_DESCRIPTION_BYTES {
        return Err(ApiError::bad_request(format!(
            "description: at most {MAX_DESCRIPTION_BYTES} bytes (BOLT11 `d`)"
        )));
    }
    if !(1..=MAX_EXPIRY_SECS).contains(&request.max_timeout_seconds) {
        return Err(ApiError::bad_request(format!(
            "maxTimeoutSeconds is the invoice's expiry: 1 to {MAX_EXPIRY_SECS}"
        )));
    }

    let (invoice, pay_to) = mint(&service, &request, request_hash.as_ref()).await?;
    Ok(Json(PaymentRequirements {
        scheme: request.scheme,
        network: request.network,
        max_amount_required: request.amount,
        asset: ASSET_BTC.to_owned(),
        pay_to: pay_to.to_string(),
        resource: request.resource,
        description: request.description,
        mime_type: request.mime_type,
        output_schema: None,
        max_timeout_seconds: request.max_timeout_seconds,
        extra: LightningExtra::new(invoice),
    }))
}

/// Mints through the node, checks the invoice by every rule a resource server will apply, and
/// records it, whatever the flows (the seed flow pays recorded invoices only, and
/// `GET /invoices` reports only those); returns it and the node's key, its payee.
async fn mint(
    service: &Service,
    request: &RequirementsRequest,
    request_hash: Option<&RequestHash>,
) -> Result<(String, PublicKey), ApiError> {
    let asked = InvoiceRequest {
        network: request.network,
        amount_msat: request.amount,
        description: match request_hash {
            Some(hash) => InvoiceDescription::Hash(hash.0),
            None => InvoiceDescription::Text(request.description.clone()),
        },
        expiry_secs: request.max_timeout_seconds,
    };
    let node_failed = |err: NodeError| {
        tracing::error!(%err, "the Lightning node failed to mint");
        service.metrics.mint(MintOutcome::NodeError, None);
        node_error(err)
    };
    let node_id = service.node.node_id().await.map_err(node_failed)?;
    let started = Instant::now();
    let minted = service.node.create_invoice(&asked).await;
    let latency = started.elapsed();
    let invoice = minted.map_err(node_failed)?;
    match check(&invoice, &asked, &node_id, request_hash, service) {
        Ok(decoded) => {
            service.metrics.mint(MintOutcome::Success, Some(latency));
            record(service, request, &invoice, &decoded).await?;
            Ok((invoice, node_id))
        }
        Err(problem) => {
            tracing::error!(%problem, "the Lightning node minted a wrong invoice");
            service.metrics.mint(MintOutcome::Rejected, Some(latency));
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the Lightning node minted an invoice that fails the scheme's checks: {problem}"
                ),
            ))
        }
    }
}

/// Records the invoice before it is handed out: only recorded invoices are payable by the seed
/// flow (`PROTOCOL.md` Part 3) or reported by `GET /invoices`. A store failure is a 503: an
/// unrecorded invoice is never handed out.
async fn record(
    service: &Service,
    request: &RequirementsRequest,
    invoice: &str,
    decoded: &DecodedInvoice,
) -> Result<(), ApiError> {
    let record = InvoiceRecord {
        payment_hash: decoded.payment_hash_hex(),
        network: request.network,
        invoice: invoice.to_owned(),
        amount_msat: request.amount,
        expires_at: decoded.end(),
        resource: request.resource.clone(),
        created_at: decoded.created_at,
    };
    service.store.record_invoice(&record).await.map_err(|err| {
        tracing::error!(%err, "cannot record a minted invoice");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unavailable: no invoice was handed out, try again",
        )
    })
}

/// Checks the node's invoice against what was asked: the lnbtc terms when bound to a request
/// hash; otherwise the same facts with the description as its text.
fn check(
    invoice: &str,
    asked: &InvoiceRequest,
    node_id: &PublicKey,
    request_hash: Option<&RequestHash>,
    service: &Service,
) -> Result<DecodedInvoice, String> {
    let decoded = decode(invoice)?;
    let now = service.now();
    let skew = service.policy.skew_secs;
    match request_hash {
        Some(request_hash) => decoded.check_terms(
            &InvoiceTerms {
                network: asked.network,
                amount_msat: asked.amount_msat,
                pay_to: node_id,
                max_timeout_seconds: asked.expiry_secs,
                request_hash,
            },
            now,
            skew,
        )?,
        None => check_described(invoice, &decoded, asked, node_id, now, skew)?,
    }
    if decoded.end() <= now {
        return Err("the invoice has already expired".into());
    }
    Ok(decoded)
}

/// The checks of an invoice described by text (BOLT11 `d`): payee, currency, amount, expiry,
/// creation time, and the description itself.
fn check_described(
    invoice: &str,
    decoded: &DecodedInvoice,
    asked: &InvoiceRequest,
    node_id: &PublicKey,
    now: u64,
    skew: u64,
) -> Result<(), String> {
    if decoded.payee != *node_id {
        return Err("its payee is not the node".into());
    }
    if decoded.currency != asked.network.currency() {
        return Err("its currency is not the network's".into());
    }
    if decoded.amount_msat != Some(asked.amount_msat) {
        return Err("its amount is not the amount asked".into());
    }
    if decoded.expiry_secs != asked.expiry_secs {
        return Err("its expiry is not maxTimeoutSeconds".into());
    }
    if decoded.created_at > now.saturating_add(skew) {
        return Err("it was created in the future".into());
    }
    let InvoiceDescription::Text(text) = &asked.description else {
        return Err("no description was asked".into());
    };
    let parsed: lightning_invoice::Bolt11Invoice = invoice
        .parse()
        .map_err(|err| format!("not a BOLT11 invoice: {err}"))?;
    match parsed.description() {
        lightning_invoice::Bolt11InvoiceDescriptionRef::Direct(description)
            if description.as_inner().0 == *text =>
        {
            Ok(())
        }
        _ => Err("its description is not the one asked".into()),
    }
}

fn node_error(err: NodeError) -> ApiError {
    let status = if err.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    ApiError::new(status, err.to_string())
}
