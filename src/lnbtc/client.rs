//! A client's side of the scheme (upstream `scheme_exact_lnbtc.md`, "Client Payment
//! Construction"): check a challenge against the request it is meant for before paying, then
//! check the payer's result before building the `PaymentPayload`.

use serde_json::{Map, Value};

use super::binding::{
    BindingError, BoundHeaders, HTTP_PROFILE, MCP_PROFILE, RequestHash, http_binding, mcp_binding,
    validate_params,
};
use super::invoice::{
    DecodedInvoice, InvoiceTerms, decode, decode_lower_hex, parse_amount_msat, parse_pay_to,
};
use super::reason;
use super::types::{
    ASSET_BTC, ASSET_TRANSFER_BOLT11, PAYMENT_FLOW_UPFRONT, PaymentPayload, PaymentRequired,
    PaymentRequirements, ResourceInfo, SCHEME_EXACT,
};
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

/// What a client accepts. By default: upstream's networks (mainnet and testnet) and a skew of
/// 60 s. Signet and regtest are this project's opt-in networks: allow one with
/// [`allow`](Self::allow), e.g. `ClientPolicy::default().allow(Network::Regtest)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPolicy {
    /// The networks the client can pay on.
    pub networks: Vec<Network>,
    /// The clock-skew allowance in seconds (60 by default).
    pub skew_secs: u64,
}

impl ClientPolicy {
    /// This policy, also paying on `network`.
    #[must_use]
    pub fn allow(mut self, network: Network) -> Self {
        if !self.networks.contains(&network) {
            self.networks.push(network);
        }
        self
    }
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
///
/// Candidates are the requirements on an `lnbtc:` network; with none, the error is
/// `unsupported_network`. The checks are upstream's ten "before paying" steps, in order; an
/// invoice is expired once `now >= created + expiry` (open question `client-expiry-boundary`:
/// this crate rejects at the boundary, so a client never starts a payment the receiver may
/// already refuse).
pub fn select(
    required: &PaymentRequired,
    intended: &IntendedRequest<'_>,
    policy: &ClientPolicy,
    now: u64,
) -> Result<Selected, ClientError> {
    let mut first_error = None;
    for requirements in required
        .accepts
        .iter()
        .filter(|requirements| requirements.network.starts_with(LNBTC_NAMESPACE))
    {
        match check_candidate(required, requirements, intended, policy, now) {
            Ok(invoice) => {
                return Ok(Selected {
                    requirements: requirements.clone(),
                    resource: required.resource.clone(),
                    invoice,
                });
            }
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        ClientError::new(
            reason::UNSUPPORTED_NETWORK,
            "the challenge offers no lnbtc requirements",
        )
    }))
}

/// The networks of `policy`, for an error message.
fn policy_networks(policy: &ClientPolicy) -> String {
    if policy.networks.is_empty() {
        return "no network".to_owned();
    }
    let names: Vec<&str> = policy
        .networks
        .iter()
        .map(|network| network.as_str())
        .collect();
    names.join(", ")
}

/// The CAIP-2 namespace of the scheme's networks.
const LNBTC_NAMESPACE: &str = "lnbtc:";

impl ClientError {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// Steps 1 to 9 of "before paying" for one candidate; the decoded invoice when all pass.
fn check_candidate(
    required: &PaymentRequired,
    requirements: &PaymentRequirements,
    intended: &IntendedRequest<'_>,
    policy: &ClientPolicy,
    now: u64,
) -> Result<DecodedInvoice, ClientError> {
    // 1. Core fields.
    if requirements.scheme != SCHEME_EXACT {
        return Err(ClientError::new(
            reason::UNSUPPORTED_SCHEME,
            "scheme is not \"exact\"",
        ));
    }
    let network = match Network::from_lnbtc_id(&requirements.network) {
        Some(network) if policy.networks.contains(&network) => network,
        Some(network) => {
            return Err(ClientError::new(
                reason::UNSUPPORTED_NETWORK,
                format!(
                    "network {} ({network}) is not in this client's policy ({}); to pay on it, \
                     allow it with ClientPolicy::allow(Network::{network:?})",
                    requirements.network,
                    policy_networks(policy),
                ),
            ));
        }
        None => {
            return Err(ClientError::new(
                reason::UNSUPPORTED_NETWORK,
                format!("network {:?} is not an lnbtc network", requirements.network),
            ));
        }
    };
    if requirements.asset != ASSET_BTC {
        return Err(ClientError::new(reason::ASSET, "asset is not \"BTC\""));
    }
    let amount_msat = parse_amount_msat(&requirements.amount).ok_or_else(|| {
        ClientError::new(
            reason::AMOUNT,
            "amount is not a positive integer string of msat",
        )
    })?;
    if requirements.max_timeout_seconds == 0 {
        return Err(ClientError::new(
            reason::MAX_TIMEOUT,
            "maxTimeoutSeconds is 0",
        ));
    }
    let pay_to = parse_pay_to(&requirements.pay_to).ok_or_else(|| {
        ClientError::new(
            reason::PAY_TO_MALFORMED,
            "payTo is not a lowercase compressed secp256k1 key",
        )
    })?;

    // 2. Flow, invoice presence, transfer method.
    let extra = &requirements.extra;
    if extra.get("paymentFlow").and_then(Value::as_str) != Some(PAYMENT_FLOW_UPFRONT) {
        return Err(ClientError::new(
            reason::PAYMENT_FLOW,
            "paymentFlow is not \"upfront\"",
        ));
    }
    let invoice_text = extra
        .get("invoice")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| {
            ClientError::new(reason::INVOICE_MISSING, "extra.invoice is absent or empty")
        })?;
    match extra.get("assetTransferMethod") {
        None => {}
        Some(Value::String(method)) if method == ASSET_TRANSFER_BOLT11 => {}
        Some(_) => {
            return Err(ClientError::new(
                reason::ASSET_TRANSFER_METHOD,
                "assetTransferMethod is not \"bolt11\"",
            ));
        }
    }

    // 3. Strict decoding and signature.
    let invoice = decode(invoice_text)
        .map_err(|detail| ClientError::new(reason::INVOICE_DECODE_FAILED, detail))?;

    // 4. The binding: well formed, of the intended request's profile, and recomputed from it.
    let advertised = extra
        .get("requestHash")
        .and_then(Value::as_str)
        .and_then(RequestHash::from_hex)
        .ok_or_else(|| {
            ClientError::new(
                reason::REQUEST_BINDING,
                "extra.requestHash is missing or malformed",
            )
        })?;
    let computed = intended_binding(required, extra, intended)?;
    if advertised != computed {
        return Err(ClientError::new(
            reason::REQUEST_MISMATCH,
            "extra.requestHash is not the intended request's hash",
        ));
    }

    // 4 (description hash) to 8, in the scheme's order.
    let terms = InvoiceTerms {
        network,
        amount_msat,
        pay_to: &pay_to,
        max_timeout_seconds: requirements.max_timeout_seconds,
        request_hash: &computed,
    };
    invoice
        .check_terms(&terms, now, policy.skew_secs)
        .map_err(|reason| {
            ClientError::new(reason, "the invoice does not meet the challenge's terms")
        })?;

    // 9. Unexpired: expired from `created + expiry` on (the boundary itself is expired).
    if now >= invoice.end() {
        return Err(ClientError::new(
            reason::INVOICE_EXPIRED,
            format!("the invoice ended at {}", invoice.end()),
        ));
    }
    Ok(invoice)
}

/// Step 4's binding: the advertised profile must be the intended request's, its parameters well
/// formed, and the hash is computed from the intended request with them.
fn intended_binding(
    required: &PaymentRequired,
    extra: &Map<String, Value>,
    intended: &IntendedRequest<'_>,
) -> Result<RequestHash, ClientError> {
    let from_binding = |err: BindingError| ClientError::new(err.reason(), err.to_string());
    let profile = extra
        .get("requestBindingProfile")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ClientError::new(
                reason::REQUEST_BINDING,
                "extra.requestBindingProfile is missing",
            )
        })?;
    let params = extra.get("requestBindingParams").ok_or_else(|| {
        ClientError::new(
            reason::REQUEST_BINDING,
            "extra.requestBindingParams is missing",
        )
    })?;
    validate_params(profile, params).map_err(from_binding)?;
    let binding = match *intended {
        IntendedRequest::Http {
            method,
            url,
            body,
            header_lines,
        } => {
            if profile != HTTP_PROFILE {
                return Err(ClientError::new(
                    reason::REQUEST_MISMATCH,
                    format!("profile {profile:?} offered for an HTTP request"),
                ));
            }
            if required.resource.url != url {
                return Err(ClientError::new(
                    reason::REQUEST_MISMATCH,
                    "resource.url is not the intended URL",
                ));
            }
            let bound = BoundHeaders::from_params(params).map_err(from_binding)?;
            http_binding(method, url, body, &bound, header_lines).map_err(from_binding)?
        }
        IntendedRequest::Mcp {
            server,
            params_json,
        } => {
            if profile != MCP_PROFILE {
                return Err(ClientError::new(
                    reason::REQUEST_MISMATCH,
                    format!("profile {profile:?} offered for an MCP tool call"),
                ));
            }
            if params.get("server").and_then(Value::as_str) != Some(server) {
                return Err(ClientError::new(
                    reason::REQUEST_MISMATCH,
                    "requestBindingParams.server is not the intended server",
                ));
            }
            let metadata: Vec<String> = params
                .get("metadata")
                .and_then(Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            mcp_binding(server, &metadata, params_json).map_err(from_binding)?
        }
    };
    Ok(binding.request_hash)
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
    /// The payment to send, once `result` is checked against the selected invoice: paid, the
    /// same invoice text, payment hash and amount (routing fees excluded), and a preimage of 64
    /// lowercase hex characters whose SHA-256 is the payment hash.
    pub fn into_payment(self, result: &PayerResult) -> Result<PaymentPayload, ClientError> {
        match result.status {
            PayerStatus::Paid => {}
            PayerStatus::InFlight => {
                return Err(ClientError::new(
                    reason::PAYMENT_IN_FLIGHT,
                    "the payment is still in flight; retry without paying again",
                ));
            }
            PayerStatus::NotPaid => {
                return Err(ClientError::new(
                    reason::PAYMENT_NOT_PAID,
                    "the payer did not pay",
                ));
            }
        }
        if self.requirements.invoice() != Some(result.invoice.as_str()) {
            return Err(ClientError::new(
                reason::PAYER_INVOICE_MISMATCH,
                "the payer reports another invoice",
            ));
        }
        if !result
            .payment_hash
            .eq_ignore_ascii_case(&self.invoice.payment_hash_hex())
        {
            return Err(ClientError::new(
                reason::PAYER_PAYMENT_HASH_MISMATCH,
                "the payer reports another payment hash",
            ));
        }
        if self.invoice.amount_msat != Some(result.amount_msat) {
            return Err(ClientError::new(
                reason::PAYER_AMOUNT_MISMATCH,
                format!("the payer reports {} msat", result.amount_msat),
            ));
        }
        let Some(preimage_hex) = &result.preimage else {
            return Err(ClientError::new(
                reason::PAYER_PREIMAGE_REQUIRED,
                "the payer reports a payment without its preimage",
            ));
        };
        let preimage = decode_lower_hex::<32>(preimage_hex).map_err(|_| {
            ClientError::new(
                reason::PAYER_PREIMAGE_MALFORMED,
                "the preimage is not 64 lowercase hex characters",
            )
        })?;
        if !self.invoice.is_paid_by(&preimage) {
            return Err(ClientError::new(
                reason::PAYER_PREIMAGE_HASH_MISMATCH,
                "SHA-256 of the preimage is not the payment hash",
            ));
        }
        Ok(PaymentPayload::lnbtc(
            Some(self.resource),
            self.requirements,
            preimage_hex.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const INVOICE: &str = "lnbc250n1pj48ugqpp54y3u9s8ylemsv8l3ewyzzu0klhujvuvmkl6llchq23vy8rzjsf0qsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp5p4nz8am4uqj4q8a87z3sk4x6yk4dv2mvel34epw68qqkwy0xcqvqxqzfvcqpjr4rx6ls6j5rpwknuea64evlk7yfx56wmqcer5eerekdsn9tlv6v4ex9mlz5dtm9qapl3svwlqcf7837dmjkru9z9w4h2rvm0md52w2sqxrwu5f";
    const URL: &str = "https://api.example.com/article/A";
    const NOW: u64 = 1_700_000_000;

    fn requirements(scheme: &str, network: &str) -> Value {
        json!({
            "scheme": scheme,
            "network": network,
            "amount": "25000",
            "asset": "BTC",
            "payTo": "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
            "maxTimeoutSeconds": 300,
            "extra": {
                "paymentFlow": "upfront",
                "requestHash": "0d6623f775e025501fa7f0a30b54da25aad62b6ccfe35c85da38016711e6c018",
                "requestBindingProfile": "http:1",
                "requestBindingParams": { "headers": [] },
                "invoice": INVOICE,
            }
        })
    }

    fn challenge(accepts: Vec<Value>) -> PaymentRequired {
        serde_json::from_value(json!({
            "x402Version": 2,
            "resource": { "url": URL },
            "accepts": accepts,
        }))
        .expect("a well-formed challenge")
    }

    fn article_a() -> IntendedRequest<'static> {
        IntendedRequest::Http {
            method: "GET",
            url: URL,
            body: b"",
            header_lines: &[],
        }
    }

    const MAINNET: &str = "lnbtc:000000000019d6689c085ae165831e93";

    #[test]
    fn a_challenge_without_lnbtc_requirements_is_an_unsupported_network() {
        let required = challenge(vec![requirements("exact", "eip155:8453")]);
        let err = select(&required, &article_a(), &ClientPolicy::default(), NOW)
            .expect_err("nothing to pay");
        assert_eq!(err.reason, reason::UNSUPPORTED_NETWORK);
    }

    #[test]
    fn the_first_candidate_that_passes_is_chosen_else_the_first_error_is_told() {
        let required = challenge(vec![
            requirements("exact", "eip155:8453"),
            requirements("upto", MAINNET),
            requirements("exact", MAINNET),
        ]);
        let selected = select(&required, &article_a(), &ClientPolicy::default(), NOW)
            .expect("the third requirements pass");
        assert_eq!(selected.requirements, required.accepts[2]);

        let failing = challenge(vec![
            requirements("upto", MAINNET),
            requirements("exact", "lnbtc:000000000933ea01ad0ee984209779ba"),
        ]);
        let err = select(&failing, &article_a(), &ClientPolicy::default(), NOW)
            .expect_err("neither passes");
        assert_eq!(err.reason, reason::UNSUPPORTED_SCHEME);
    }

    #[test]
    fn a_checked_paid_result_becomes_the_payment() {
        let required = challenge(vec![requirements("exact", MAINNET)]);
        let selected = select(&required, &article_a(), &ClientPolicy::default(), NOW)
            .expect("the spec example passes");
        let preimage = "0001020304050607080900010203040506070809000102030405060708090102";
        let result = PayerResult {
            status: PayerStatus::Paid,
            invoice: INVOICE.to_owned(),
            payment_hash: "A923C2C0E4FE77061FF1CB882171F6FDF926719BB7F5FFE2E05458438C52825E"
                .to_owned(),
            amount_msat: 25_000,
            preimage: Some(preimage.to_owned()),
        };
        let payment = selected.into_payment(&result).expect("a valid proof");
        assert_eq!(payment.x402_version, 2);
        assert_eq!(payment.accepted, required.accepts[0]);
        assert_eq!(payment.resource, Some(required.resource.clone()));
        assert_eq!(payment.payload.get("preimage"), Some(&json!(preimage)));
    }

    #[test]
    fn a_malformed_request_hash_is_a_binding_error_before_the_request_is_hashed() {
        let mut offer = requirements("exact", MAINNET);
        offer["extra"]["requestHash"] = json!("0D66");
        offer["extra"]["requestBindingProfile"] = json!("mcp:1");
        let required = challenge(vec![offer]);
        let err = select(&required, &article_a(), &ClientPolicy::default(), NOW)
            .expect_err("a malformed hash");
        assert_eq!(err.reason, reason::REQUEST_BINDING);
    }
}
