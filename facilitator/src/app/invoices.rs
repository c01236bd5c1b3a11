//! `GET /invoices/{paymentHash}` (this project's addition to the wire contract, for the browser
//! paywall; the answer is `x402_lightning::receiver::InvoiceStatus`): where an invoice that
//! `/requirements` minted stands, as the node reports it, and its preimage once it is paid over
//! Lightning. A resource server's layer polls it while a person pays the invoice from another
//! wallet (a phone scanning the QR code), then hands the preimage to the page as its proof.
//!
//! | request | answer |
//! |---|---|
//! | no or a wrong API key (when keys are set) | 401 `{"error"}` |
//! | `paymentHash` not 64 lowercase hex | 400 `{"error"}` |
//! | not an invoice `/requirements` recorded: another application's on the same node (an L402 proxy's, whose preimages are access tokens), a deposit's (even paid: the accounts' money is nobody else's business), a withdrawal's, an unknown one, or one purged from the books (an hour and the largest skew past its expiry) | 404 `{"error"}` |
//! | the store fails (looking for the record) | 503 `{"error"}` |
//! | recorded, but the node does not know it | 404 `{"error"}` |
//! | the node fails | 502 (504 on its timeout) `{"error"}` |
//! | the node reports it settled without a preimage, or with one of another payment hash | 502 `{"error"}`: never paid without proof |
//! | open, or a payment held but not settled | 200 `{"paymentHash","state":"open"}` |
//! | settled | 200 `{"paymentHash","state":"paid","preimage"}` |
//! | cancelled (the seed flow paid it inside the books, or the node cancelled it at expiry) | 200 `{"paymentHash","state":"cancelled"}` |
//!
//! Every answer is `Cache-Control: no-store`. What it reveals, to whom: the preimage of a paid
//! invoice, to the holder of its payment hash and of an API key; it buys only the one request
//! the invoice is bound to, once.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::DisplayHex as _;
use x402_lightning::receiver::{InvoiceState as WireInvoiceState, InvoiceStatus};

use super::accounts::parse_payment_hash;
use super::seed::{node_failed, store_failed};
use super::{ApiError, Authorized, Service, no_store};
use crate::node::InvoiceState;

/// `GET /invoices/{paymentHash}`.
pub(crate) async fn invoice_status(
    _: Authorized,
    State(service): State<Arc<Service>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let malformed = || ApiError::bad_request("paymentHash must be 64 lowercase hex characters");
    let Path(payment_hash_hex) = path.map_err(|_| malformed())?;
    let payment_hash = parse_payment_hash(&payment_hash_hex).ok_or_else(malformed)?;
    // One answer for every invoice this call does not report, so a 404 tells nothing more.
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "no invoice of this payment hash");

    // Only what `/requirements` minted and recorded (whatever the flows): the node also holds
    // other applications' invoices, whose preimages are theirs, and the deposits, which are the
    // accounts' business. A deposit's invoice is never recorded there.
    service
        .store
        .recorded_invoice(&payment_hash_hex)
        .await
        .map_err(|err| store_failed(&err))?
        .ok_or_else(unknown)?;
    let lookup = service
        .node
        .lookup_invoice(&payment_hash)
        .await
        .map_err(|err| node_failed(&err))?
        .ok_or_else(unknown)?;
    let (state, preimage) = match lookup.state {
        InvoiceState::Open | InvoiceState::Accepted => (WireInvoiceState::Open, None),
        InvoiceState::Canceled => (WireInvoiceState::Cancelled, None),
        InvoiceState::Settled => {
            let preimage = lookup
                .preimage
                .filter(|preimage| sha256::Hash::hash(preimage).to_byte_array() == payment_hash)
                .ok_or_else(|| {
                    tracing::error!(
                        payment_hash = %payment_hash_hex,
                        "the Lightning node reports the invoice settled without its preimage"
                    );
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "the Lightning node reports the invoice settled without a preimage of \
                         its payment hash",
                    )
                })?;
            (WireInvoiceState::Paid, Some(preimage.to_lower_hex_string()))
        }
    };
    tracing::debug!(payment_hash = %payment_hash_hex, ?state, "invoice state");
    let mut response = Json(InvoiceStatus {
        payment_hash: payment_hash_hex,
        state,
        preimage,
    })
    .into_response();
    no_store(&mut response);
    Ok(response)
}
