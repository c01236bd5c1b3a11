//! A client's side of the scheme (upstream `scheme_exact_lnbtc.md`, "Client Payment
//! Construction"): check a challenge against the request it is meant for before paying, then
//! check the payer's result before building the `PaymentPayload`.

use super::invoice::DecodedInvoice;
use super::types::{PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo};
use crate::network::Network;

/// The request the client intends to make, from which it recomputes the binding.
#[derive(Clone, Copy, Debug)]
pub enum IntendedRequest<'a> {
    /// An HTTP request (`http:1`).
    Http {
        /// The method, case kept.
        method: &'a str,
        /// The absolute URL.
        url: &'a str,
        /// The body bytes.
        body: &'a [u8],
        /// The header lines the request will carry.
        header_lines: &'a [(&'a str, &'a [u8])],
    },
    /// An MCP `tools/call` (`mcp:1`).
    Mcp {
        /// The MCP server the client means to call, from its own configuration.
        server: &'a str,
        /// The call's `params`, raw JSON.
        params_json: &'a str,
    },
}

/// What a client accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPolicy {
    /// The networks the client can pay on.
    pub networks: Vec<Network>,
    /// The clock-skew allowance in seconds (60 by default).
    pub skew_secs: u64,
}

impl Default for ClientPolicy {
    fn default() -> Self {
        Self {
            networks: Network::LNBTC_UPSTREAM.to_vec(),
            skew_secs: super::DEFAULT_SKEW_SECS,
        }
    }
}

/// Why a client refuses to pay, or to build a payment from its payer's result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct ClientError {
    /// The reason of the vocabulary.
    pub reason: &'static str,
    /// What exactly failed.
    pub detail: String,
}

/// A challenge that passed every check: pay `requirements.extra.invoice`, then call
/// [`Selected::into_payment`] with the payer's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The chosen requirements, echoed as `accepted`.
    pub requirements: PaymentRequirements,
    /// The challenge's resource.
    pub resource: ResourceInfo,
    /// The decoded invoice to pay.
    pub invoice: DecodedInvoice,
}

/// Chooses the first `lnbtc` requirements of `required` that pass every check for `intended`
/// at `now` (Unix seconds); the error is the first candidate's.
pub fn select(
    required: &PaymentRequired,
    intended: &IntendedRequest<'_>,
    policy: &ClientPolicy,
    now: u64,
) -> Result<Selected, ClientError> {
    let _ = (required, intended, policy, now);
    todo!()
}

/// A payer adapter's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayerStatus {
    /// Paid; the preimage must be there.
    Paid,
    /// Still in flight: retry later without paying again.
    InFlight,
    /// Not paid.
    NotPaid,
}

/// What a payer adapter reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayerResult {
    /// The status.
    pub status: PayerStatus,
    /// The invoice it paid.
    pub invoice: String,
    /// The payment hash, hex.
    pub payment_hash: String,
    /// The amount paid in msat, without routing fees.
    pub amount_msat: u64,
    /// The preimage, hex.
    pub preimage: Option<String>,
}

impl Selected {
    /// The payment to send, once `result` is checked against the selected invoice.
    pub fn into_payment(self, result: &PayerResult) -> Result<PaymentPayload, ClientError> {
        let _ = result;
        todo!()
    }
}
