//! The facilitator's `/settle` validation (upstream `scheme_exact_lnbtc.md`, "Facilitator
//! Validation", steps 1–7 in order, and "Settlement and Replay Protection"). Inputs are the JSON
//! the facilitator received, treated as untrusted. Recording the replay key is the caller's
//! job: a [`ValidProof`] names the key and how long it must be kept.

use bitcoin::hex::DisplayHex as _;
use bitcoin::secp256k1::PublicKey;
use serde_json::{Map, Value};

use super::binding::{RequestHash, validate_params};
use super::invoice::{
    DecodedInvoice, HexError, InvoiceTerms, decode, decode_lower_hex, parse_amount_msat,
    parse_pay_to,
};
use super::reason;
use super::types::{
    ASSET_BTC, ASSET_TRANSFER_BOLT11, PAYMENT_FLOW_UPFRONT, SCHEME_EXACT, SettleResponse,
};
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
    format!(
        "{}:{}",
        network.lnbtc_id(),
        payment_hash.to_lower_hex_string()
    )
}

/// Validates `payment_payload` (the client's v2 `PaymentPayload`) against `requirements` (the
/// server's, for the actual request) at `now` (Unix seconds).
///
/// The steps run in upstream's order and the first failure is returned. Both inputs are
/// untrusted JSON; structurally broken inputs fail like this:
///
/// - a payload that is not an object, has no `accepted` object, or whose `accepted` lacks one
///   of the six compared fields: step 1, with that field's mismatch reason (an absent field
///   never equals anything, not even an absent requirement field), so an empty payload is
///   `unsupported_scheme`. Both sides `null` pass step 1 and fail step 2's format check;
/// - a wrongly typed core field (a number `amount`, a string `maxTimeoutSeconds`): step 2's
///   format reason;
/// - `extra` absent or not an object on either side: read as `{}`, so step 3 fails with
///   `invalid_exact_lnbtc_payment_flow`; a present but non-string `assetTransferMethod` (even
///   `null`) is `invalid_exact_lnbtc_asset_transfer_method`;
/// - a binding field absent, `null` or of the wrong type: `invalid_exact_lnbtc_request_binding`;
/// - an invoice absent, `null`, not a string or empty: `invalid_exact_lnbtc_invoice_missing`;
/// - `payload` not an object, or `preimage` absent or `null`:
///   `invalid_exact_lnbtc_preimage_missing`; a non-string preimage is
///   `invalid_exact_lnbtc_preimage_malformed`.
pub fn validate(
    payment_payload: &Value,
    requirements: &Value,
    policy: &SettlePolicy,
    now: u64,
) -> Result<ValidProof, Rejection> {
    let accepted = payment_payload.get("accepted").unwrap_or(&Value::Null);

    // Step 1: the accepted core fields equal the requirement's.
    for (name, reason) in [
        ("scheme", reason::UNSUPPORTED_SCHEME),
        ("network", reason::NETWORK_MISMATCH),
        ("amount", reason::AMOUNT_MISMATCH),
        ("asset", reason::ASSET),
        ("payTo", reason::PAY_TO_MISMATCH),
        ("maxTimeoutSeconds", reason::MAX_TIMEOUT_MISMATCH),
    ] {
        let accepted_value = accepted.get(name);
        if accepted_value.is_none() || accepted_value != requirements.get(name) {
            return Err(reject(
                reason,
                1,
                format!("accepted.{name} differs from the requirement"),
            ));
        }
    }

    // Step 2: the (now equal) core fields are well formed and supported.
    let core = CoreTerms::read(requirements, policy)
        .map_err(|(reason, detail)| reject(reason, 2, detail))?;

    // Step 3: the scheme's `extra` members on both sides.
    let empty = Map::new();
    let required_extra = requirements
        .get("extra")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let accepted_extra = accepted
        .get("extra")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let request_hash = check_extra(required_extra, accepted_extra)
        .map_err(|(reason, detail)| reject(reason, 3, detail))?;

    // Step 4: both invoices present; the accepted one is the one paid.
    if invoice_text(required_extra).is_none() {
        return Err(reject(
            reason::INVOICE_MISSING,
            4,
            "requirements.extra.invoice is absent or empty".into(),
        ));
    }
    let Some(accepted_invoice) = invoice_text(accepted_extra) else {
        return Err(reject(
            reason::INVOICE_MISSING,
            4,
            "accepted.extra.invoice is absent or empty".into(),
        ));
    };

    // Step 5: the accepted invoice, strictly decoded, meets the requirement's terms.
    let invoice = decode(accepted_invoice)
        .map_err(|detail| reject(reason::INVOICE_DECODE_FAILED, 5, detail))?;
    let terms = InvoiceTerms {
        network: core.network,
        amount_msat: core.amount_msat,
        pay_to: &core.pay_to,
        max_timeout_seconds: core.max_timeout_seconds,
        request_hash: &request_hash,
    };
    invoice
        .check_terms(&terms, now, policy.skew_secs)
        .map_err(|reason| {
            reject(
                reason,
                5,
                "the accepted invoice does not meet the requirement's terms".into(),
            )
        })?;

    // Step 6: the preimage proves the payment.
    let preimage = match payment_payload
        .get("payload")
        .and_then(|payload| payload.get("preimage"))
    {
        None | Some(Value::Null) => {
            return Err(reject(
                reason::PREIMAGE_MISSING,
                6,
                "payload.preimage is absent".into(),
            ));
        }
        Some(Value::String(text)) => decode_lower_hex::<32>(text).map_err(|err| match err {
            HexError::Malformed => reject(
                reason::PREIMAGE_MALFORMED,
                6,
                "the preimage is not lowercase hex".into(),
            ),
            HexError::Length => reject(
                reason::PREIMAGE_LENGTH,
                6,
                format!("the preimage has {} hex characters, not 64", text.len()),
            ),
        })?,
        Some(_) => {
            return Err(reject(
                reason::PREIMAGE_MALFORMED,
                6,
                "payload.preimage is not a string".into(),
            ));
        }
    };
    if !invoice.is_paid_by(&preimage) {
        return Err(reject(
            reason::PREIMAGE_HASH_MISMATCH,
            6,
            "SHA-256 of the preimage is not the payment hash".into(),
        ));
    }

    // Step 7: paid-but-expired grace: valid while `now <= invoice_end + skew`.
    let grace_end = invoice.end().saturating_add(policy.skew_secs);
    if now > grace_end {
        return Err(reject(
            reason::INVOICE_EXPIRED,
            7,
            format!("settlement at {now} is after invoice end plus skew ({grace_end})"),
        ));
    }

    Ok(ValidProof {
        network: core.network,
        replay_key: replay_key(core.network, &invoice.payment_hash),
        retain_until: grace_end.saturating_add(RETENTION_SECS),
        invoice,
    })
}

/// `extra.invoice` when it is a non-empty string.
fn invoice_text(extra: &Map<String, Value>) -> Option<&str> {
    extra
        .get("invoice")
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

fn reject(reason: &'static str, step: u8, detail: String) -> Rejection {
    Rejection {
        reason,
        step,
        detail,
    }
}

/// A failed check inside a step: the reason and what failed.
type StepFailure = (&'static str, String);

/// The core fields of step 2, parsed.
struct CoreTerms {
    network: Network,
    amount_msat: u64,
    pay_to: PublicKey,
    max_timeout_seconds: u64,
}

impl CoreTerms {
    /// Step 2, in the order upstream lists the fields.
    fn read(requirements: &Value, policy: &SettlePolicy) -> Result<Self, StepFailure> {
        let text = |name: &str| requirements.get(name).and_then(Value::as_str);
        if text("scheme") != Some(SCHEME_EXACT) {
            return Err((reason::UNSUPPORTED_SCHEME, "scheme is not \"exact\"".into()));
        }
        let network = text("network")
            .and_then(Network::from_lnbtc_id)
            .filter(|network| policy.networks.contains(network))
            .ok_or_else(|| {
                (
                    reason::UNSUPPORTED_NETWORK,
                    "the network is not supported here".to_owned(),
                )
            })?;
        if text("asset") != Some(ASSET_BTC) {
            return Err((reason::ASSET, "asset is not \"BTC\"".into()));
        }
        let amount_msat = text("amount").and_then(parse_amount_msat).ok_or_else(|| {
            (
                reason::AMOUNT,
                "amount is not a positive integer string of msat".to_owned(),
            )
        })?;
        let max_timeout_seconds = requirements
            .get("maxTimeoutSeconds")
            .and_then(Value::as_u64)
            .filter(|&seconds| seconds > 0)
            .ok_or_else(|| {
                (
                    reason::MAX_TIMEOUT,
                    "maxTimeoutSeconds is not a positive integer".to_owned(),
                )
            })?;
        let pay_to = text("payTo").and_then(parse_pay_to).ok_or_else(|| {
            (
                reason::PAY_TO_MALFORMED,
                "payTo is not a lowercase compressed secp256k1 key".to_owned(),
            )
        })?;
        Ok(Self {
            network,
            amount_msat,
            pay_to,
            max_timeout_seconds,
        })
    }
}

/// The `extra` members step 3 reads itself; every other member but `invoice` must be echoed.
const BINDING_MEMBERS: [&str; 5] = [
    "assetTransferMethod",
    "paymentFlow",
    "requestHash",
    "requestBindingProfile",
    "requestBindingParams",
];

/// Step 3: transfer method, payment flow, binding syntax on both sides, binding equality, then
/// the other server-declared members. Returns the requirement's request hash.
fn check_extra(
    required: &Map<String, Value>,
    accepted: &Map<String, Value>,
) -> Result<RequestHash, StepFailure> {
    let sides = [("requirements", required), ("accepted", accepted)];
    for (side, extra) in sides {
        match extra.get("assetTransferMethod") {
            None => {}
            Some(Value::String(method)) if method == ASSET_TRANSFER_BOLT11 => {}
            Some(_) => {
                return Err((
                    reason::ASSET_TRANSFER_METHOD,
                    format!("{side}.extra.assetTransferMethod is not \"bolt11\""),
                ));
            }
        }
    }
    for (side, extra) in sides {
        if extra.get("paymentFlow").and_then(Value::as_str) != Some(PAYMENT_FLOW_UPFRONT) {
            return Err((
                reason::PAYMENT_FLOW,
                format!("{side}.extra.paymentFlow is not \"upfront\""),
            ));
        }
    }
    let [required_binding, accepted_binding] = sides.map(|(side, extra)| read_binding(side, extra));
    let (required_binding, accepted_binding) = (required_binding?, accepted_binding?);
    if accepted_binding.request_hash != required_binding.request_hash {
        return Err((
            reason::REQUEST_MISMATCH,
            "the accepted requestHash differs".into(),
        ));
    }
    if accepted_binding.profile != required_binding.profile {
        return Err((
            reason::REQUEST_MISMATCH,
            "the accepted requestBindingProfile differs".into(),
        ));
    }
    if accepted_binding.params_jcs != required_binding.params_jcs {
        return Err((
            reason::REQUEST_MISMATCH,
            "the accepted requestBindingParams differ".into(),
        ));
    }
    for (name, value) in required {
        if name == "invoice" || BINDING_MEMBERS.contains(&name.as_str()) {
            continue;
        }
        if accepted.get(name) != Some(value) {
            return Err((
                reason::EXTRA_MISMATCH,
                format!("accepted.extra.{name} differs from the requirement"),
            ));
        }
    }
    Ok(required_binding.request_hash)
}

/// One side's request binding, syntax checked.
struct SideBinding<'a> {
    request_hash: RequestHash,
    profile: &'a str,
    /// The parameters in JCS, for equality.
    params_jcs: String,
}

fn read_binding<'a>(
    side: &str,
    extra: &'a Map<String, Value>,
) -> Result<SideBinding<'a>, StepFailure> {
    let malformed = |what: &str| {
        (
            reason::REQUEST_BINDING,
            format!("{side}.extra.{what} is missing or malformed"),
        )
    };
    let request_hash = extra
        .get("requestHash")
        .and_then(Value::as_str)
        .and_then(RequestHash::from_hex)
        .ok_or_else(|| malformed("requestHash"))?;
    let profile = extra
        .get("requestBindingProfile")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("requestBindingProfile"))?;
    let params = extra
        .get("requestBindingParams")
        .ok_or_else(|| malformed("requestBindingParams"))?;
    validate_params(profile, params).map_err(|err| {
        (
            reason::REQUEST_BINDING,
            format!("{side}.extra binding: {err}"),
        )
    })?;
    let params_jcs = serde_json_canonicalizer::to_string(params)
        .map_err(|_| malformed("requestBindingParams"))?;
    Ok(SideBinding {
        request_hash,
        profile,
        params_jcs,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const INVOICE: &str = "lnbc250n1pj48ugqpp54y3u9s8ylemsv8l3ewyzzu0klhujvuvmkl6llchq23vy8rzjsf0qsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp5p4nz8am4uqj4q8a87z3sk4x6yk4dv2mvel34epw68qqkwy0xcqvqxqzfvcqpjr4rx6ls6j5rpwknuea64evlk7yfx56wmqcer5eerekdsn9tlv6v4ex9mlz5dtm9qapl3svwlqcf7837dmjkru9z9w4h2rvm0md52w2sqxrwu5f";

    /// The spec's example: requirements and the payload that pays them.
    fn example() -> (Value, Value) {
        let requirements = json!({
            "scheme": "exact",
            "network": "lnbtc:000000000019d6689c085ae165831e93",
            "amount": "25000",
            "asset": "BTC",
            "payTo": "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
            "maxTimeoutSeconds": 300,
            "extra": {
                "assetTransferMethod": "bolt11",
                "paymentFlow": "upfront",
                "requestHash": "0d6623f775e025501fa7f0a30b54da25aad62b6ccfe35c85da38016711e6c018",
                "requestBindingProfile": "http:1",
                "requestBindingParams": { "headers": [] },
                "invoice": INVOICE,
            }
        });
        let payload = json!({
            "x402Version": 2,
            "accepted": requirements.clone(),
            "payload": {
                "preimage": "0001020304050607080900010203040506070809000102030405060708090102"
            }
        });
        (payload, requirements)
    }

    fn outcome(payload: &Value, requirements: &Value) -> Result<ValidProof, (&'static str, u8)> {
        validate(
            payload,
            requirements,
            &SettlePolicy::default(),
            1_700_000_000,
        )
        .map_err(|rejection| (rejection.reason, rejection.step))
    }

    #[test]
    fn the_spec_example_settles_with_its_key_and_retention() {
        let (payload, requirements) = example();
        let proof = outcome(&payload, &requirements).expect("the example settles");
        assert_eq!(
            proof.replay_key,
            "lnbtc:000000000019d6689c085ae165831e93:\
             a923c2c0e4fe77061ff1cb882171f6fdf926719bb7f5ffe2e05458438c52825e"
        );
        assert_eq!(proof.retain_until, 1_700_000_300 + 60 + 3600);
        let response = proof.success_response();
        assert!(response.success && response.payer.is_none());
        assert_eq!(response.network, "lnbtc:000000000019d6689c085ae165831e93");
    }

    #[test]
    fn payloads_of_the_wrong_shape_fail_at_step_one() {
        let (_, requirements) = example();
        for payload in [
            Value::Null,
            json!([]),
            json!("accepted"),
            json!({}),
            json!({ "accepted": 5 }),
            json!({ "accepted": {} }),
        ] {
            assert_eq!(
                outcome(&payload, &requirements).map(drop),
                Err((reason::UNSUPPORTED_SCHEME, 1)),
                "{payload}"
            );
        }
        let (payload, _) = example();
        for requirements in [Value::Null, json!({}), json!([1])] {
            assert_eq!(
                outcome(&payload, &requirements).map(drop),
                Err((reason::UNSUPPORTED_SCHEME, 1)),
                "{requirements}"
            );
        }
    }

    #[test]
    fn absent_or_null_core_fields_on_both_sides_fail() {
        let (mut payload, mut requirements) = example();
        for side in [&mut payload["accepted"], &mut requirements] {
            side["maxTimeoutSeconds"] = Value::Null;
        }
        assert_eq!(
            outcome(&payload, &requirements).map(drop),
            Err((reason::MAX_TIMEOUT, 2))
        );
        let (mut payload, mut requirements) = example();
        for side in [&mut payload["accepted"], &mut requirements] {
            side.as_object_mut().map(|object| object.remove("payTo"));
        }
        assert_eq!(
            outcome(&payload, &requirements).map(drop),
            Err((reason::PAY_TO_MISMATCH, 1))
        );
        let (mut payload, mut requirements) = example();
        for side in [&mut payload["accepted"], &mut requirements] {
            side["amount"] = json!(25000);
        }
        assert_eq!(
            outcome(&payload, &requirements).map(drop),
            Err((reason::AMOUNT, 2))
        );
    }

    #[test]
    fn broken_extra_members_get_their_step_three_or_four_reason() {
        let cases: [(&str, Value, &str, u8); 6] = [
            ("extra", json!("nope"), reason::PAYMENT_FLOW, 3),
            (
                "extra/assetTransferMethod",
                Value::Null,
                reason::ASSET_TRANSFER_METHOD,
                3,
            ),
            (
                "extra/requestBindingProfile",
                json!(1),
                reason::REQUEST_BINDING,
                3,
            ),
            (
                "extra/requestBindingParams",
                Value::Null,
                reason::REQUEST_BINDING,
                3,
            ),
            (
                "extra/requestHash",
                json!(["0d66"]),
                reason::REQUEST_BINDING,
                3,
            ),
            ("extra/invoice", json!(42), reason::INVOICE_MISSING, 4),
        ];
        for (path, value, expected, step) in cases {
            let (mut payload, requirements) = example();
            let pointer = format!("/accepted/{path}");
            *payload.pointer_mut(&pointer).expect("the member exists") = value;
            assert_eq!(
                outcome(&payload, &requirements).map(drop),
                Err((expected, step)),
                "{path}"
            );
        }
    }

    #[test]
    fn broken_proofs_get_their_step_six_reason() {
        for (proof, expected) in [
            (Value::Null, reason::PREIMAGE_MISSING),
            (json!("0102"), reason::PREIMAGE_MISSING),
            (json!({ "preimage": null }), reason::PREIMAGE_MISSING),
            (json!({ "preimage": 7 }), reason::PREIMAGE_MALFORMED),
            (json!({ "preimage": "zz" }), reason::PREIMAGE_MALFORMED),
            (json!({ "preimage": "" }), reason::PREIMAGE_LENGTH),
        ] {
            let (mut payload, requirements) = example();
            payload["payload"] = proof.clone();
            assert_eq!(
                outcome(&payload, &requirements).map(drop),
                Err((expected, 6)),
                "{proof}"
            );
        }
    }

    #[test]
    fn a_network_outside_the_policy_is_unsupported() {
        let (payload, requirements) = example();
        let policy = SettlePolicy {
            networks: vec![Network::Testnet],
            ..SettlePolicy::default()
        };
        let rejection = validate(&payload, &requirements, &policy, 1_700_000_000)
            .expect_err("mainnet is not accepted");
        assert_eq!(
            (rejection.reason, rejection.step),
            (reason::UNSUPPORTED_NETWORK, 2)
        );
    }
}
