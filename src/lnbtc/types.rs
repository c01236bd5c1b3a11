//! The x402 version 2 wire types the `lnbtc` scheme uses (upstream `x402-specification-v2.md`
//! §5, and `scheme_exact_lnbtc.md` for the `extra` members).
//!
//! Requirements keep `extra` as a JSON object, so a client's additive fields and a server's own
//! fields survive a round trip; [`LnbtcExtra`] builds and reads the scheme's members. Amounts are
//! msat as decimal strings.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::network::Network;

/// The x402 protocol version of these types.
pub const X402_VERSION_2: u32 = 2;
/// The scheme name.
pub const SCHEME_EXACT: &str = "exact";
/// The only asset.
pub const ASSET_BTC: &str = "BTC";
/// The only asset transfer method (`extra.assetTransferMethod`).
pub const ASSET_TRANSFER_BOLT11: &str = "bolt11";
/// The only payment flow (`extra.paymentFlow`).
pub const PAYMENT_FLOW_UPFRONT: &str = "upfront";

/// One way to pay (v2 `PaymentRequirements`): for `lnbtc`, a fresh invoice in `extra.invoice`
/// for `amount` msat, bound to one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    /// `"exact"`.
    pub scheme: String,
    /// The CAIP-2 network, e.g. `lnbtc:000000000019d6689c085ae165831e93`.
    pub network: String,
    /// The amount in msat, a decimal string.
    pub amount: String,
    /// `"BTC"`.
    pub asset: String,
    /// The receiver node's public key, 66 lowercase hex characters.
    pub pay_to: String,
    /// How long the invoice can be paid, in seconds; equals the invoice's expiry.
    pub max_timeout_seconds: u64,
    /// Scheme-specific members ([`LnbtcExtra`]) and any others.
    #[serde(default)]
    pub extra: Map<String, Value>,
}

/// The scheme's members of `PaymentRequirements.extra`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LnbtcExtra {
    /// The signed BOLT11 invoice.
    pub invoice: String,
    /// SHA-256 of the request's binding object, 64 lowercase hex characters.
    pub request_hash: String,
    /// `"http:1"` or `"mcp:1"`.
    pub request_binding_profile: String,
    /// The profile's parameters, e.g. `{"headers": []}` for `http:1`.
    pub request_binding_params: Value,
}

impl LnbtcExtra {
    /// The `extra` object: these members plus `assetTransferMethod: "bolt11"` and
    /// `paymentFlow: "upfront"`.
    pub fn into_map(self) -> Map<String, Value> {
        let mut extra = Map::new();
        extra.insert("assetTransferMethod".into(), ASSET_TRANSFER_BOLT11.into());
        extra.insert("paymentFlow".into(), PAYMENT_FLOW_UPFRONT.into());
        extra.insert("requestHash".into(), self.request_hash.into());
        extra.insert(
            "requestBindingProfile".into(),
            self.request_binding_profile.into(),
        );
        extra.insert("requestBindingParams".into(), self.request_binding_params);
        extra.insert("invoice".into(), self.invoice.into());
        extra
    }
}

impl PaymentRequirements {
    /// `lnbtc` requirements: `exact`, `BTC`, `network`'s `lnbtc:` id, `amount_msat`, `pay_to`
    /// (66 hex), `max_timeout_seconds` and `extra`.
    pub fn lnbtc(
        network: Network,
        amount_msat: u64,
        pay_to: impl Into<String>,
        max_timeout_seconds: u64,
        extra: LnbtcExtra,
    ) -> Self {
        Self {
            scheme: SCHEME_EXACT.to_owned(),
            network: network.lnbtc_id().to_owned(),
            amount: amount_msat.to_string(),
            asset: ASSET_BTC.to_owned(),
            pay_to: pay_to.into(),
            max_timeout_seconds,
            extra: extra.into_map(),
        }
    }

    /// `extra.invoice` (the BOLT11 invoice to pay), when it is a string.
    pub fn invoice(&self) -> Option<&str> {
        self.extra_str("invoice")
    }

    /// `extra.requestHash` (64 lowercase hex), when it is a string.
    pub fn request_hash(&self) -> Option<&str> {
        self.extra_str("requestHash")
    }

    /// `extra.requestBindingProfile` (`"http:1"` or `"mcp:1"`), when it is a string.
    pub fn request_binding_profile(&self) -> Option<&str> {
        self.extra_str("requestBindingProfile")
    }

    /// `extra.requestBindingParams` (for `http:1`, `{"headers": [...]}`), when present.
    pub fn request_binding_params(&self) -> Option<&Value> {
        self.extra.get("requestBindingParams")
    }

    /// `extra.assetTransferMethod` (`"bolt11"`), when it is a string.
    pub fn asset_transfer_method(&self) -> Option<&str> {
        self.extra_str("assetTransferMethod")
    }

    /// `extra.paymentFlow` (`"upfront"`), when it is a string.
    pub fn payment_flow(&self) -> Option<&str> {
        self.extra_str("paymentFlow")
    }

    /// The scheme's members of `extra` as one value, when the invoice, request hash and
    /// binding profile are strings and the binding parameters are present. Their values are
    /// not judged here: [`client::select`](super::client::select) and
    /// [`settle::validate`](super::settle::validate) do that.
    pub fn lnbtc_extra(&self) -> Option<LnbtcExtra> {
        Some(LnbtcExtra {
            invoice: self.invoice()?.to_owned(),
            request_hash: self.request_hash()?.to_owned(),
            request_binding_profile: self.request_binding_profile()?.to_owned(),
            request_binding_params: self.request_binding_params()?.clone(),
        })
    }

    fn extra_str(&self, member: &str) -> Option<&str> {
        self.extra.get(member).and_then(Value::as_str)
    }
}

/// What is being paid for (v2 `ResourceInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// The resource's absolute URL; for `http:1`, the URL the request is bound to.
    pub url: String,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// MIME type of the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// The challenge (v2 `PaymentRequired`), sent base64-encoded in `PAYMENT-REQUIRED`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequired {
    /// `2`.
    pub x402_version: u32,
    /// Why payment is required (or why the last payment was refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The resource.
    pub resource: ResourceInfo,
    /// The ways to pay.
    pub accepts: Vec<PaymentRequirements>,
    /// Protocol extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// The client's payment (v2 `PaymentPayload`), sent base64-encoded in `PAYMENT-SIGNATURE`; for
/// `lnbtc`, `payload` is `{"preimage": "<64 lowercase hex>"}` and `accepted.extra.invoice` is the
/// invoice paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayload {
    /// `2`.
    pub x402_version: u32,
    /// The resource, as the client saw it (not trusted for binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    /// The requirements the client paid.
    pub accepted: PaymentRequirements,
    /// The scheme's proof.
    pub payload: Map<String, Value>,
    /// Protocol extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

impl PaymentPayload {
    /// An `lnbtc` payment: the accepted requirements and the preimage (64 lowercase hex).
    pub fn lnbtc(
        resource: Option<ResourceInfo>,
        accepted: PaymentRequirements,
        preimage_hex: String,
    ) -> Self {
        let mut payload = Map::new();
        payload.insert("preimage".into(), preimage_hex.into());
        Self {
            x402_version: X402_VERSION_2,
            resource,
            accepted,
            payload,
            extensions: None,
        }
    }
}

/// `POST /settle` of x402 version 2: the client's payload exactly as it arrived, and the
/// requirements the server computed for this request. Both are JSON values so that a
/// facilitator judges what was sent, not what a parser made of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleRequest {
    /// `2`.
    pub x402_version: u32,
    /// The client's `PaymentPayload`, untouched.
    pub payment_payload: Value,
    /// The server's `PaymentRequirements` for this request.
    pub payment_requirements: Value,
}

impl SettleRequest {
    /// A v2 settle request for `payment_payload` (as received) against `requirements`.
    pub fn new(payment_payload: Value, requirements: &PaymentRequirements) -> Self {
        Self {
            x402_version: X402_VERSION_2,
            payment_payload,
            // A struct of strings, numbers and maps always serializes.
            payment_requirements: serde_json::to_value(requirements).unwrap_or(Value::Null),
        }
    }
}

/// The outcome of a settle (v2 `SettlementResponse`), also sent base64-encoded in
/// `PAYMENT-RESPONSE`. For `lnbtc`, `transaction` is the payment hash (64 lowercase hex) and
/// `payer` is always absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    /// Whether the payment hash was recorded as used just now.
    pub success: bool,
    /// Why not (a reason of [`reason`](super::reason)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// The payer; `lnbtc` never names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// The payment hash; `""` on failure.
    #[serde(default)]
    pub transaction: String,
    /// The CAIP-2 network.
    #[serde(default)]
    pub network: String,
    /// Protocol extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

impl SettleResponse {
    /// A success for `payment_hash_hex` on `network` (its `lnbtc:` id).
    pub fn success(network: &str, payment_hash_hex: impl Into<String>) -> Self {
        Self {
            success: true,
            error_reason: None,
            payer: None,
            transaction: payment_hash_hex.into(),
            network: network.to_owned(),
            extensions: None,
        }
    }

    /// A failure for `reason` on `network` (as the request named it).
    pub fn failure(network: &str, reason: impl Into<String>) -> Self {
        Self {
            success: false,
            error_reason: Some(reason.into()),
            payer: None,
            transaction: String::new(),
            network: network.to_owned(),
            extensions: None,
        }
    }
}
