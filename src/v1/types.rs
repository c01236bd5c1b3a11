//! Wire types of the [wire contract](crate::protocol): every JSON shape that crosses the wire,
//! camelCase on the wire, amounts in msat (`u64`) in code and decimal strings on the wire. Unknown fields are
//! tolerated; known fields of the wrong type are rejected.

use serde::{Deserialize, Serialize};

use crate::network::Network;

/// The x402 protocol version this crate speaks.
pub const X402_VERSION: u32 = 1;

/// The only asset of the Lightning `exact` scheme.
pub const ASSET_BTC: &str = "BTC";

/// The payment scheme. Lightning has one: `exact`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scheme {
    /// Pay exactly the amount of the invoice.
    #[default]
    #[serde(rename = "exact")]
    Exact,
}

impl Scheme {
    /// The wire name, `"exact"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Exact => "exact",
        }
    }
}

/// What a client must pay for a resource: one entry of `accepts` in a 402 body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    /// Always [`Scheme::Exact`].
    pub scheme: Scheme,
    /// The network the invoice is on.
    pub network: Network,
    /// The invoice amount in msat (a decimal string on the wire).
    #[serde(with = "msat_string")]
    pub max_amount_required: u64,
    /// Always `"BTC"`.
    pub asset: String,
    /// The payee's node public key, 66 hex characters.
    pub pay_to: String,
    /// The absolute URL of the resource being paid for.
    pub resource: String,
    /// What the payment buys.
    #[serde(default)]
    pub description: String,
    /// The MIME type of the resource.
    #[serde(default)]
    pub mime_type: String,
    /// An optional description of the resource's response, any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    /// How long the resource server may take to answer once paid.
    pub max_timeout_seconds: u64,
    /// Scheme-specific data: the BOLT11 invoice.
    pub extra: LightningExtra,
}

/// The `extra` object of Lightning [`PaymentRequirements`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightningExtra {
    /// A fresh BOLT11 invoice for exactly `maxAmountRequired` msat, payable to `payTo`.
    pub invoice: String,
    /// Fields a facilitator added, kept so they reach the client unchanged.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl LightningExtra {
    /// The `extra` of requirements paid with `invoice`, with no other fields.
    pub fn new(invoice: String) -> Self {
        Self {
            invoice,
            other: serde_json::Map::new(),
        }
    }
}

/// The body of a 402 answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequired {
    /// Always [`X402_VERSION`].
    pub x402_version: u32,
    /// Why payment is required, human-readable.
    pub error: String,
    /// The ways to pay, each with a fresh invoice.
    pub accepts: Vec<PaymentRequirements>,
    /// The payer, when the facilitator named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

/// The decoded `X-PAYMENT` header: the client's signed authorization to pay one invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayload {
    /// The protocol version the client speaks.
    pub x402_version: u32,
    /// The scheme being paid with.
    pub scheme: Scheme,
    /// The network the invoice is on.
    pub network: Network,
    /// The Lightning authorization itself.
    pub payload: ExactLightningPayload,
}

/// The scheme-specific part of a [`PaymentPayload`]: an authorization to pay `invoice`.
///
/// Its cryptography is the facilitator's business; the layer passes it on untouched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactLightningPayload {
    /// The BOLT11 invoice the client authorizes the facilitator to pay.
    pub invoice: String,
    /// The client's signature over the invoice, hex.
    pub signature: String,
    /// The client's identity (for the mock: its compressed public key, hex).
    pub from: String,
    /// Fields a client or facilitator added, passed on to the facilitator unchanged.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl ExactLightningPayload {
    /// An authorization with no fields beyond the three of the [wire contract](crate::protocol).
    pub fn new(invoice: String, signature: String, from: String) -> Self {
        Self {
            invoice,
            signature,
            from,
            other: serde_json::Map::new(),
        }
    }
}

/// Body of `POST /requirements`: ask the facilitator for requirements with a fresh invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementsRequest {
    /// Always [`X402_VERSION`].
    pub x402_version: u32,
    /// The scheme to be paid with.
    pub scheme: Scheme,
    /// The network the invoice must be on.
    pub network: Network,
    /// The invoice amount in msat (a decimal string on the wire).
    #[serde(with = "msat_string")]
    pub amount: u64,
    /// The absolute URL of the resource.
    pub resource: String,
    /// What the payment buys; becomes the invoice description.
    #[serde(default)]
    pub description: String,
    /// The MIME type of the resource.
    #[serde(default)]
    pub mime_type: String,
    /// How long the resource server may take to answer once paid.
    pub max_timeout_seconds: u64,
    /// For an invoice offered in the `lnbtc` flow too: its only description is this hash (64
    /// lowercase hex, BOLT11 `h`, no `d`) and its expiry is `maxTimeoutSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_hash: Option<String>,
}

impl RequirementsRequest {
    /// Asks for `amount_msat` on `network` for `resource`, with no description or MIME type and
    /// a 60 s timeout; set the public fields for more.
    pub fn new(network: Network, amount_msat: u64, resource: impl Into<String>) -> Self {
        Self {
            x402_version: X402_VERSION,
            scheme: Scheme::Exact,
            network,
            amount: amount_msat,
            resource: resource.into(),
            description: String::new(),
            mime_type: String::new(),
            max_timeout_seconds: 60,
            description_hash: None,
        }
    }
}

/// Body of `POST /verify` and `POST /settle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    /// Always [`X402_VERSION`].
    pub x402_version: u32,
    /// The client's authorization, as decoded from `X-PAYMENT`.
    pub payment_payload: PaymentPayload,
    /// What the resource server expects to be paid.
    pub payment_requirements: PaymentRequirements,
}

impl VerifyRequest {
    /// Asks the facilitator about `payment` against `requirements`.
    pub fn new(payment: PaymentPayload, requirements: PaymentRequirements) -> Self {
        Self {
            x402_version: X402_VERSION,
            payment_payload: payment,
            payment_requirements: requirements,
        }
    }
}

/// Body of `POST /settle`: the same shape as [`VerifyRequest`].
pub type SettleRequest = VerifyRequest;

/// The facilitator's verdict on an authorization (`POST /verify`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    /// Whether the authorization would be paid.
    pub is_valid: bool,
    /// Why not, as a snake_case reason (see [`reason`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    /// Who would pay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

/// The outcome of paying an invoice (`POST /settle`); also the `X-PAYMENT-RESPONSE` header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    /// Whether the invoice was paid.
    pub success: bool,
    /// Why not, as a snake_case reason (see [`reason`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// The payment hash, hex; `""` on a failed settle.
    #[serde(default)]
    pub transaction: String,
    /// The network the invoice was on.
    pub network: Network,
    /// Who paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

/// The answer of `GET /supported`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportedResponse {
    /// Every (version, scheme, network) the facilitator handles.
    pub kinds: Vec<SupportedKind>,
}

/// One entry of [`SupportedResponse::kinds`].
///
/// `scheme` and `network` stay strings: a facilitator may list kinds of other chains, which are
/// not errors, only not ours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
    /// The protocol version.
    pub x402_version: u32,
    /// The scheme name, e.g. `"exact"`.
    pub scheme: String,
    /// The network name, e.g. `"lightning-regtest"`.
    pub network: String,
    /// Scheme-specific data: the facilitator's payee node key on Lightning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<SupportedExtra>,
}

/// The `extra` object of a Lightning [`SupportedKind`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedExtra {
    /// The node key invoices are payable to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_to: Option<String>,
}

impl SupportedResponse {
    /// The Lightning `exact` kind for `network`, if the facilitator lists it.
    pub fn find(&self, network: Network) -> Option<&SupportedKind> {
        self.kinds.iter().find(|kind| {
            kind.x402_version == X402_VERSION
                && kind.scheme == Scheme::Exact.as_str()
                && kind.network == network.as_str()
        })
    }

    /// The x402 version 2 kind for `exact` on `network`'s `lnbtc:` id, if listed.
    pub fn find_lnbtc(&self, network: Network) -> Option<&SupportedKind> {
        self.kinds.iter().find(|kind| {
            kind.x402_version == crate::lnbtc::types::X402_VERSION_2
                && kind.scheme == crate::lnbtc::types::SCHEME_EXACT
                && kind.network == network.lnbtc_id()
        })
    }
}

/// The snake_case reasons of `invalidReason` / `errorReason` that this crate produces.
///
/// Facilitators may send others; reasons are plain strings on the wire.
pub mod reason {
    /// The payload is malformed.
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
    /// The network is not the expected one.
    pub const INVALID_NETWORK: &str = "invalid_network";
    /// The scheme is not `exact`.
    pub const INVALID_SCHEME: &str = "invalid_scheme";
    /// The x402 version is not 1.
    pub const INVALID_X402_VERSION: &str = "invalid_x402_version";
    /// The requirements do not match the payload or the facilitator's records.
    pub const INVALID_PAYMENT_REQUIREMENTS: &str = "invalid_payment_requirements";
    /// The payer's balance is below the invoice amount.
    pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
    /// The invoice has expired.
    pub const PAYMENT_EXPIRED: &str = "payment_expired";
    /// The invoice has already been paid.
    pub const DUPLICATE_SETTLEMENT: &str = "duplicate_settlement";
    /// `/verify` failed for an unexpected reason.
    pub const UNEXPECTED_VERIFY_ERROR: &str = "unexpected_verify_error";
    /// `/settle` failed for an unexpected reason.
    pub const UNEXPECTED_SETTLE_ERROR: &str = "unexpected_settle_error";
    /// The signature is not `from`'s over the invoice.
    pub const INVALID_SIGNATURE: &str = "invalid_exact_lightning_payload_signature";
    /// The facilitator did not mint this invoice.
    pub const INVOICE_UNKNOWN: &str = "invalid_exact_lightning_invoice_unknown";
    /// The invoice amount is not the required one.
    pub const INVOICE_AMOUNT: &str = "invalid_exact_lightning_invoice_amount";
    /// The invoice payee is not `payTo`.
    pub const INVOICE_PAYEE: &str = "invalid_exact_lightning_invoice_payee";
    /// Paying the invoice failed.
    pub const PAYMENT_FAILED: &str = "settle_exact_lightning_payment_failed";
}

/// Serde for msat amounts: `u64` in code, a canonical decimal string on the wire (ASCII
/// digits, no leading zero: `"0"` or `"10"`, never `"010"`).
pub(crate) mod msat_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(msat: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(msat)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        parse(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "invalid msat amount {text:?}: expected a decimal string of digits without a \
                 leading zero"
            ))
        })
    }

    /// Digits only, canonical: no sign, no spaces, no exponent, no leading zero (one amount
    /// has one spelling), no overflow.
    pub(crate) fn parse(text: &str) -> Option<u64> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if text.len() > 1 && text.starts_with('0') {
            return None;
        }
        text.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::msat_string::parse;

    #[test]
    fn msat_strings_accept_only_plain_digits() {
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("5000000"), Some(5_000_000));
        assert_eq!(parse("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+5",
            "-5",
            " 5",
            "5 ",
            "5e3",
            "5.0",
            "0x10",
            "00010",
            "05",
            "00",
            "18446744073709551616",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} must be rejected");
        }
    }
}
