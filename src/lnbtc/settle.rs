//! The facilitator's `/settle` validation (upstream `scheme_exact_lnbtc.md`, "Facilitator
//! Validation", steps 1–7 in order, and "Settlement and Replay Protection"). Inputs are the JSON
//! the facilitator received, treated as untrusted. Recording the replay key is the caller's
//! job: a [`ValidProof`] names the key and how long it must be kept.

use serde_json::Value;

use super::invoice::DecodedInvoice;
use super::types::SettleResponse;
use crate::network::Network;

/// How long a replay entry outlives `invoice_end + skew`, in seconds: one hour.
pub const RETENTION_SECS: u64 = 3600;

/// What a facilitator accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlePolicy {
    /// The supported networks (upstream's two by default).
    pub networks: Vec<Network>,
    /// The clock-skew allowance in seconds (60 by default).
    pub skew_secs: u64,
}

impl Default for SettlePolicy {
    fn default() -> Self {
        Self {
            networks: Network::LNBTC_UPSTREAM.to_vec(),
            skew_secs: super::DEFAULT_SKEW_SECS,
        }
    }
}

/// A proof that passed every check: what to record and what to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidProof {
    /// The network.
    pub network: Network,
    /// The accepted invoice.
    pub invoice: DecodedInvoice,
    /// `network + ":" + payment_hash`, the replay store's key.
    pub replay_key: String,
    /// Unix seconds until which the key must be kept (`invoice_end + skew + 1 h`).
    pub retain_until: u64,
}

impl ValidProof {
    /// The success answer: the payment hash and the network.
    pub fn success_response(&self) -> SettleResponse {
        SettleResponse::success(self.network.lnbtc_id(), self.invoice.payment_hash_hex())
    }
}

/// A failed check: the reason of the vocabulary and the step (1–7) that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (step {step}): {detail}")]
pub struct Rejection {
    /// The `errorReason`.
    pub reason: &'static str,
    /// The validation step, 1 to 7.
    pub step: u8,
    /// What exactly failed, for logs.
    pub detail: String,
}

/// The replay key of a payment hash on a network: `lnbtc:…:<64 lowercase hex>`.
pub fn replay_key(network: Network, payment_hash: &[u8; 32]) -> String {
    let _ = (network, payment_hash);
    todo!()
}

/// Validates `payment_payload` (the client's v2 `PaymentPayload`) against `requirements` (the
/// server's, for the actual request) at `now` (Unix seconds).
pub fn validate(
    payment_payload: &Value,
    requirements: &Value,
    policy: &SettlePolicy,
    now: u64,
) -> Result<ValidProof, Rejection> {
    let _ = (payment_payload, requirements, policy, now);
    todo!()
}
