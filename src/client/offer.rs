//! Reading a 402 and choosing what to pay: the `PAYMENT-REQUIRED` header (x402 v2, `lnbtc`)
//! first, the v1 body (the seed flow) otherwise, each offer checked as its scheme's client must
//! before anything is paid.

use std::fmt;

use http::HeaderMap;
use serde_json::Value;

use crate::lnbtc::client::{ClientError, ClientPolicy, IntendedRequest, Selected, select};
use crate::lnbtc::header::{PAYMENT_REQUIRED, decode_payment_required};
use crate::network::Network;
use crate::v1::invoice::check_requirements_invoice;
use crate::v1::types::{PaymentRequirements as V1Requirements, Scheme, X402_VERSION};

/// The largest challenge (header or body) read, in bytes.
pub(crate) const MAX_CHALLENGE_BYTES: usize = 64 * 1024;

/// Which x402 flow a payment goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// x402 v2, `exact` on `lnbtc`: a wallet pays the invoice over Lightning, the preimage is
    /// the proof (`PAYMENT-SIGNATURE`).
    Lnbtc,
    /// x402 v1, the seed flow: the account signs an authorization (`X-PAYMENT`) and the
    /// facilitator pays from its prepaid balance.
    V1,
}

impl Flow {
    /// `lnbtc` or `v1`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Lnbtc => "lnbtc",
            Self::V1 => "v1",
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 402's challenge as read: the v2 `PAYMENT-REQUIRED` header and the v1 body, each when
/// present and well-formed.
#[derive(Clone, Debug, Default)]
pub struct Challenge {
    /// The decoded `PAYMENT-REQUIRED` header.
    pub lnbtc: Option<crate::lnbtc::types::PaymentRequired>,
    /// The v1 body's `accepts` (x402 version 1), each entry raw: one the client cannot read does
    /// not hide the others.
    pub v1: Vec<Value>,
    /// The error the server gave (v2 header's `error`, else the body's).
    pub error: Option<String>,
}

impl Challenge {
    /// Reads a 402's headers and body (at most 64 KiB of each are looked at).
    pub fn read(headers: &HeaderMap, body: &[u8]) -> Self {
        let lnbtc = headers
            .get(PAYMENT_REQUIRED)
            .and_then(|value| decode_payment_required(value.as_bytes(), MAX_CHALLENGE_BYTES).ok());
        let body: Option<Value> = (body.len() <= MAX_CHALLENGE_BYTES)
            .then(|| serde_json::from_slice(body).ok())
            .flatten();
        let v1 = body
            .as_ref()
            .filter(|body| body["x402Version"] == X402_VERSION)
            .and_then(|body| body["accepts"].as_array().cloned())
            .unwrap_or_default();
        let error = lnbtc
            .as_ref()
            .and_then(|required| required.error.clone())
            .or_else(|| {
                body.as_ref()
                    .and_then(|body| body["error"].as_str().map(str::to_owned))
            });
        Self { lnbtc, v1, error }
    }

    /// Whether the 402 offers anything at all.
    pub fn is_empty(&self) -> bool {
        self.lnbtc.is_none() && self.v1.is_empty()
    }
}

/// An offer that passed its scheme's client checks: what would be paid, to whom, for what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The flow it is paid through.
    pub flow: Flow,
    /// The network, as the offer names it (`lnbtc:…` or `lightning…`).
    pub network: String,
    /// The invoice amount in msat.
    pub amount_msat: u64,
    /// The payee's node public key (66 hex).
    pub pay_to: String,
    /// The BOLT11 invoice.
    pub invoice: String,
    /// The invoice's payment hash.
    pub payment_hash: [u8; 32],
    /// When the invoice expires, Unix seconds.
    pub expires_at: u64,
    /// The resource the server says it sells (its URL).
    pub resource: String,
    /// The resource's description, if the server gave one.
    pub description: Option<String>,
    pub(crate) terms: Terms,
}

/// What the flow needs to build its payment header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Terms {
    Lnbtc(Box<Selected>),
    V1(Box<V1Requirements>),
}

impl Offer {
    /// The payment hash as 64 lowercase hex.
    pub fn payment_hash_hex(&self) -> String {
        hex(&self.payment_hash)
    }
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use bitcoin::hex::DisplayHex as _;
    bytes.to_lower_hex_string()
}

/// Why no offer of a 402 can be paid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Unpayable {
    /// The flow whose offer was refused (the first one tried).
    pub flow: Option<Flow>,
    /// The scheme's reason (`unsupported_network`, `invalid_exact_lnbtc_request_mismatch`,
    /// `payment_expired`, …), [`NO_OFFER`] when nothing payable was offered, [`REDIRECTED`]
    /// for a 402 reached through a redirect.
    pub reason: &'static str,
    /// What exactly failed.
    pub detail: String,
}

/// The reason when a 402 offers nothing this client can pay with what it holds.
pub const NO_OFFER: &str = "no_offer";

/// The reason when a 402 answers a redirected request: it is another URL's.
pub const REDIRECTED: &str = "redirected";

impl Unpayable {
    fn from_lnbtc(err: ClientError) -> Self {
        Self {
            flow: Some(Flow::Lnbtc),
            reason: err.reason,
            detail: err.detail,
        }
    }
}

/// The `lnbtc` offer of `challenge` for `intended` at `now` (Unix seconds): upstream's client
/// checks, all of them (request binding recomputed from the client's own request, payee,
/// amount, expiry, network).
pub(crate) fn choose_lnbtc(
    challenge: &Challenge,
    intended: &IntendedRequest<'_>,
    policy: &ClientPolicy,
    now: u64,
) -> Result<Offer, Unpayable> {
    let Some(required) = &challenge.lnbtc else {
        return Err(Unpayable {
            flow: Some(Flow::Lnbtc),
            reason: NO_OFFER,
            detail: "no PAYMENT-REQUIRED header (x402 v2) to pay with a Lightning wallet".into(),
        });
    };
    let selected = select(required, intended, policy, now).map_err(Unpayable::from_lnbtc)?;
    let invoice = &selected.invoice;
    Ok(Offer {
        flow: Flow::Lnbtc,
        network: selected.requirements.network.clone(),
        amount_msat: invoice.amount_msat.unwrap_or_default(),
        pay_to: selected.requirements.pay_to.clone(),
        invoice: selected
            .requirements
            .invoice()
            .unwrap_or_default()
            .to_owned(),
        payment_hash: invoice.payment_hash,
        expires_at: invoice.end(),
        resource: selected.resource.url.clone(),
        description: selected.resource.description.clone(),
        terms: Terms::Lnbtc(Box::new(selected)),
    })
}

/// The first v1 offer of `challenge` on a network of `policy` whose invoice is what it says
/// (scheme `exact`, on its network, for exactly `maxAmountRequired`, payable to `payTo`, not
/// expired at `now`); the error is the first candidate's.
pub(crate) fn choose_v1(
    challenge: &Challenge,
    policy: &ClientPolicy,
    now: u64,
) -> Result<Offer, Unpayable> {
    let refusal = |reason, detail: String| Unpayable {
        flow: Some(Flow::V1),
        reason,
        detail,
    };
    let mut first_error = None;
    for entry in &challenge.v1 {
        let requirements: V1Requirements = match serde_json::from_value(entry.clone()) {
            Ok(requirements) => requirements,
            Err(err) => {
                first_error.get_or_insert_with(|| {
                    refusal(
                        crate::v1::types::reason::INVALID_PAYMENT_REQUIREMENTS,
                        format!("unreadable seed-flow requirements: {err}"),
                    )
                });
                continue;
            }
        };
        if requirements.scheme != Scheme::Exact {
            continue;
        }
        if !policy.networks.contains(&requirements.network) {
            first_error.get_or_insert_with(|| {
                refusal(
                    crate::v1::types::reason::INVALID_NETWORK,
                    format!(
                        "{} is not a network this client pays on",
                        requirements.network
                    ),
                )
            });
            continue;
        }
        match check_requirements_invoice(&requirements, std::time::Duration::from_secs(now)) {
            Ok(checked) => {
                let network: Network = requirements.network;
                return Ok(Offer {
                    flow: Flow::V1,
                    network: network.as_str().to_owned(),
                    amount_msat: requirements.max_amount_required,
                    pay_to: requirements.pay_to.clone(),
                    invoice: requirements.extra.invoice.clone(),
                    payment_hash: checked.payment_hash(),
                    expires_at: checked.expires_at().as_secs(),
                    resource: requirements.resource.clone(),
                    description: Some(requirements.description.clone())
                        .filter(|text| !text.is_empty()),
                    terms: Terms::V1(Box::new(requirements)),
                });
            }
            Err(err) => {
                first_error.get_or_insert_with(|| refusal(err.reason(), err.to_string()));
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        refusal(
            NO_OFFER,
            "no seed-flow (x402 v1) `exact` Lightning offer to pay with an account".into(),
        )
    }))
}
