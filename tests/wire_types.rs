//! Wire-contract tests: every JSON shape of PROTOCOL.md, the amount encoding, the networks and the
//! `X-PAYMENT` / `X-PAYMENT-RESPONSE` header codecs, checked against literal JSON.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use lightning_invoice::Currency;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use x402_lightning::header::{
    DEFAULT_MAX_HEADER_BYTES, HeaderError, PAYMENT_SIGNATURE, X_PAYMENT, X_PAYMENT_RESPONSE,
    decode_header, decode_payment_header, decode_payment_response_header, encode_header,
};
use x402_lightning::types::{ExactLightningPayload, SupportedExtra, SupportedKind};
use x402_lightning::{
    Network, PaymentPayload, PaymentRequired, PaymentRequirements, RequirementsRequest, Scheme,
    SettleResponse, SupportedResponse, VerifyRequest, VerifyResponse,
};

// ---------------------------------------------------------------------------------------------
// Realistic values and the literal JSON of PROTOCOL.md
// ---------------------------------------------------------------------------------------------

/// A 66-hex compressed secp256k1 node key (the generator point).
const PAY_TO: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
/// A 66-hex client key.
const FROM: &str = "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5";
/// 128 hex characters: a 64-byte compact signature.
const SIGNATURE: &str = "e4f1c2b7a9d8c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1\
                         0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// 64 hex characters: a payment hash.
const PAYMENT_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
/// A placeholder invoice: the wire types do not parse it.
const INVOICE: &str = "lnbc50u1pjexampleinvoiceplaceholder";

/// Parses a literal known to be JSON.
fn value(literal: &str) -> Value {
    serde_json::from_str(literal).expect("the literal is JSON")
}

/// One `accepts` entry, as in the 402 example of PROTOCOL.md.
fn requirements_literal() -> String {
    format!(
        r#"{{ "scheme": "exact", "network": "lightning", "maxAmountRequired": "5000000",
             "asset": "BTC", "payTo": "{PAY_TO}",
             "resource": "https://api.example.com/ai-service",
             "description": "Batch AI inference request", "mimeType": "application/json",
             "maxTimeoutSeconds": 60, "extra": {{ "invoice": "{INVOICE}" }} }}"#
    )
}

/// The 402 body of PROTOCOL.md.
fn payment_required_literal() -> String {
    format!(
        r#"{{ "x402Version": 1,
             "error": "X-PAYMENT header is required",
             "accepts": [ {} ] }}"#,
        requirements_literal()
    )
}

/// The `X-PAYMENT` JSON of PROTOCOL.md.
fn payment_payload_literal() -> String {
    payment_payload_literal_paying(INVOICE)
}

/// The `X-PAYMENT` JSON of PROTOCOL.md, authorizing payment of `invoice`.
fn payment_payload_literal_paying(invoice: &str) -> String {
    format!(
        r#"{{ "x402Version": 1, "scheme": "exact", "network": "lightning",
             "payload": {{ "invoice": "{invoice}", "signature": "{SIGNATURE}", "from": "{FROM}" }} }}"#
    )
}

/// The `POST /requirements` body of PROTOCOL.md.
fn requirements_request_literal() -> String {
    r#"{"x402Version":1,"scheme":"exact","network":"lightning-regtest","amount":"5000000",
        "resource":"https://api.example.com/ai-service","description":"Batch AI inference request",
        "mimeType":"application/json","maxTimeoutSeconds":60}"#
        .to_owned()
}

/// The `POST /verify` (and `/settle`) body of PROTOCOL.md.
fn verify_request_literal() -> String {
    format!(
        r#"{{"x402Version":1,"paymentPayload":{},"paymentRequirements":{}}}"#,
        payment_payload_literal(),
        requirements_literal()
    )
}

fn typed_requirements() -> PaymentRequirements {
    serde_json::from_str(&requirements_literal()).expect("requirements parse")
}

fn typed_payload() -> PaymentPayload {
    serde_json::from_str(&payment_payload_literal()).expect("payload parse")
}

/// `literal` with `edit` applied to its JSON value, as a string.
fn edited(literal: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut value = value(literal);
    edit(&mut value);
    value.to_string()
}

/// Deserializes `json` as `T`, expecting failure, and returns the error message.
fn rejection<T: DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
    match serde_json::from_str::<T>(json) {
        Ok(parsed) => panic!("{json} must be rejected, parsed as {parsed:?}"),
        Err(err) => err.to_string(),
    }
}

/// Asserts that `message` contains every one of `parts`.
fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "error message {message:?} should mention {part:?}"
        );
    }
}

/// Deserializes the literal, then checks that serializing gives back the same JSON value.
fn assert_round_trip<T>(literal: &str) -> T
where
    T: DeserializeOwned + serde::Serialize,
{
    let typed: T = serde_json::from_str(literal).expect("the literal deserializes");
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(back, value(literal), "round trip of {literal}");
    typed
}

// ---------------------------------------------------------------------------------------------
// 1. Round trips of every shape
// ---------------------------------------------------------------------------------------------

#[test]
fn payment_requirements_literal_round_trips_with_camel_case_fields() {
    let requirements: PaymentRequirements = assert_round_trip(&requirements_literal());
    assert_eq!(requirements.scheme, Scheme::Exact);
    assert_eq!(requirements.network, Network::Bitcoin);
    assert_eq!(requirements.max_amount_required, 5_000_000);
    assert_eq!(requirements.asset, "BTC");
    assert_eq!(requirements.pay_to, PAY_TO);
    assert_eq!(requirements.resource, "https://api.example.com/ai-service");
    assert_eq!(requirements.description, "Batch AI inference request");
    assert_eq!(requirements.mime_type, "application/json");
    assert_eq!(requirements.output_schema, None);
    assert_eq!(requirements.max_timeout_seconds, 60);
    assert_eq!(requirements.extra.invoice, INVOICE);
}

#[test]
fn payment_required_402_body_round_trips_with_its_accepts_entry() {
    let required: PaymentRequired = assert_round_trip(&payment_required_literal());
    assert_eq!(required.x402_version, 1);
    assert_eq!(required.error, "X-PAYMENT header is required");
    assert_eq!(required.payer, None);
    assert_eq!(required.accepts, vec![typed_requirements()]);
}

#[test]
fn payment_required_402_body_carries_an_optional_payer() {
    let literal = edited(&payment_required_literal(), |v| {
        v["payer"] = json!(FROM);
    });
    let required: PaymentRequired = assert_round_trip(&literal);
    assert_eq!(required.payer.as_deref(), Some(FROM));
}

#[test]
fn payment_payload_x_payment_literal_round_trips() {
    let payload: PaymentPayload = assert_round_trip(&payment_payload_literal());
    assert_eq!(payload.x402_version, 1);
    assert_eq!(payload.scheme, Scheme::Exact);
    assert_eq!(payload.network, Network::Bitcoin);
    assert_eq!(
        payload.payload,
        ExactLightningPayload::new(INVOICE.into(), SIGNATURE.into(), FROM.into())
    );
}

#[test]
fn requirements_request_body_round_trips_with_amount_as_msat() {
    let request: RequirementsRequest = assert_round_trip(&requirements_request_literal());
    assert_eq!(
        request,
        RequirementsRequest {
            x402_version: 1,
            scheme: Scheme::Exact,
            network: Network::Regtest,
            amount: 5_000_000,
            resource: "https://api.example.com/ai-service".into(),
            description: "Batch AI inference request".into(),
            mime_type: "application/json".into(),
            max_timeout_seconds: 60,
            description_hash: None,
        }
    );
}

/// `SettleRequest` is the same type, so this is the `/settle` body too; that the layer sends
/// `/settle` the very body it sent `/verify` is checked on the wire in `layer_protocol.rs`.
#[test]
fn verify_request_body_round_trips() {
    let request: VerifyRequest = assert_round_trip(&verify_request_literal());
    assert_eq!(request.x402_version, 1);
    assert_eq!(request.payment_payload, typed_payload());
    assert_eq!(request.payment_requirements, typed_requirements());
}

#[test]
fn verify_response_valid_round_trips() {
    let literal = format!(r#"{{"isValid":true,"payer":"{FROM}"}}"#);
    let response: VerifyResponse = assert_round_trip(&literal);
    assert!(response.is_valid);
    assert_eq!(response.invalid_reason, None);
    assert_eq!(response.payer.as_deref(), Some(FROM));

    let bare: VerifyResponse = assert_round_trip(r#"{"isValid":true}"#);
    assert_eq!(bare.payer, None);
}

#[test]
fn verify_response_invalid_round_trips_with_reason_and_payer() {
    let literal = format!(
        r#"{{"isValid":false,"invalidReason":"invalid_exact_lightning_payload_signature","payer":"{FROM}"}}"#
    );
    let response: VerifyResponse = assert_round_trip(&literal);
    assert!(!response.is_valid);
    assert_eq!(
        response.invalid_reason.as_deref(),
        Some(x402_lightning::types::reason::INVALID_SIGNATURE)
    );
    assert_eq!(response.payer.as_deref(), Some(FROM));
}

#[test]
fn settle_response_success_round_trips_with_transaction() {
    let literal = format!(
        r#"{{"success":true,"transaction":"{PAYMENT_HASH}","network":"lightning","payer":"{FROM}"}}"#
    );
    let response: SettleResponse = assert_round_trip(&literal);
    assert_eq!(
        response,
        SettleResponse {
            success: true,
            error_reason: None,
            transaction: PAYMENT_HASH.into(),
            network: Network::Bitcoin,
            payer: Some(FROM.into()),
        }
    );
}

#[test]
fn settle_response_failure_round_trips_with_empty_transaction() {
    let literal = r#"{"success":false,"errorReason":"settle_exact_lightning_payment_failed",
                      "transaction":"","network":"lightning-regtest"}"#;
    let response: SettleResponse = assert_round_trip(literal);
    assert!(!response.success);
    assert_eq!(
        response.error_reason.as_deref(),
        Some("settle_exact_lightning_payment_failed")
    );
    assert_eq!(response.transaction, "");
    assert_eq!(response.network, Network::Regtest);
    assert_eq!(response.payer, None);
}

#[test]
fn settle_response_without_transaction_defaults_to_empty() {
    let response: SettleResponse = serde_json::from_str(
        r#"{"success":false,"errorReason":"insufficient_funds","network":"lightning"}"#,
    )
    .expect("transaction is optional on input");
    assert_eq!(response.transaction, "");
    // ...and is written back as "" as PROTOCOL.md requires.
    assert_eq!(serde_json::to_value(&response).unwrap()["transaction"], "");
}

#[test]
fn supported_response_round_trips_with_pay_to() {
    let literal = format!(
        r#"{{"kinds":[{{"x402Version":1,"scheme":"exact","network":"lightning-regtest",
                        "extra":{{"payTo":"{PAY_TO}"}}}}]}}"#
    );
    let supported: SupportedResponse = assert_round_trip(&literal);
    assert_eq!(
        supported.kinds,
        vec![SupportedKind {
            x402_version: 1,
            scheme: "exact".into(),
            network: "lightning-regtest".into(),
            extra: Some(SupportedExtra {
                pay_to: Some(PAY_TO.into()),
            }),
        }]
    );
}

#[test]
fn supported_response_round_trips_without_extra_or_pay_to() {
    let without_extra: SupportedResponse = assert_round_trip(
        r#"{"kinds":[{"x402Version":1,"scheme":"exact","network":"lightning"}]}"#,
    );
    assert_eq!(without_extra.kinds[0].extra, None);

    let empty_extra: SupportedResponse = assert_round_trip(
        r#"{"kinds":[{"x402Version":1,"scheme":"exact","network":"lightning","extra":{}}]}"#,
    );
    assert_eq!(
        empty_extra.kinds[0].extra,
        Some(SupportedExtra { pay_to: None })
    );

    let no_kinds: SupportedResponse = assert_round_trip(r#"{"kinds":[]}"#);
    assert!(no_kinds.kinds.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 2. Amounts
// ---------------------------------------------------------------------------------------------

#[test]
fn amounts_serialize_as_decimal_strings() {
    let requirements = typed_requirements();
    let json = serde_json::to_value(&requirements).unwrap();
    assert_eq!(json["maxAmountRequired"], json!("5000000"));

    let request: RequirementsRequest =
        serde_json::from_str(&requirements_request_literal()).unwrap();
    let request = RequirementsRequest {
        amount: u64::MAX,
        ..request
    };
    let json = serde_json::to_value(&request).unwrap();
    assert_eq!(json["amount"], json!("18446744073709551615"));
    let back: RequirementsRequest = serde_json::from_value(json).unwrap();
    assert_eq!(back.amount, u64::MAX);
}

#[test]
fn zero_and_max_u64_amounts_are_accepted() {
    for (text, msat) in [("0", 0), ("1", 1), ("18446744073709551615", u64::MAX)] {
        let literal = edited(&requirements_literal(), |v| {
            v["maxAmountRequired"] = json!(text);
        });
        let requirements: PaymentRequirements = serde_json::from_str(&literal).unwrap();
        assert_eq!(requirements.max_amount_required, msat);
    }
}

#[test]
fn json_number_amounts_are_rejected() {
    let literal = edited(&requirements_literal(), |v| {
        v["maxAmountRequired"] = json!(5_000_000);
    });
    let message = rejection::<PaymentRequirements>(&literal);
    assert_mentions(&message, &["invalid type", "5000000", "string"]);

    let literal = edited(&requirements_request_literal(), |v| {
        v["amount"] = json!(5_000_000);
    });
    let message = rejection::<RequirementsRequest>(&literal);
    assert_mentions(&message, &["invalid type", "5000000", "string"]);
}

#[test]
fn malformed_amount_strings_are_rejected_naming_the_value() {
    for bad in [
        "-1",
        "1.5",
        "",
        "1e3",
        "+5",
        " 5",
        "5 ",
        "0x10",
        "18446744073709551616",
    ] {
        let literal = edited(&requirements_literal(), |v| {
            v["maxAmountRequired"] = json!(bad);
        });
        let message = rejection::<PaymentRequirements>(&literal);
        assert_mentions(&message, &["invalid msat amount", &format!("{bad:?}")]);

        let literal = edited(&requirements_request_literal(), |v| {
            v["amount"] = json!(bad);
        });
        let message = rejection::<RequirementsRequest>(&literal);
        assert_mentions(&message, &["invalid msat amount", &format!("{bad:?}")]);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Unknown fields and outputSchema
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_fields_are_tolerated_in_requirements_and_extra() {
    let literal = edited(&requirements_literal(), |v| {
        v["somethingNew"] = json!({"nested": [1, 2, 3]});
        v["extra"]["routeHints"] = json!(["hint"]);
        v["extra"]["name"] = json!("Bitcoin");
    });
    let mut parsed = serde_json::from_str::<PaymentRequirements>(&literal).unwrap();
    assert_eq!(parsed.extra.other["routeHints"], json!(["hint"]));
    let reserialized = serde_json::to_value(&parsed).unwrap();
    assert_eq!(
        reserialized["extra"]["name"],
        json!("Bitcoin"),
        "extra fields reach the client"
    );
    assert_eq!(reserialized.get("somethingNew"), None);
    parsed.extra.other.clear();
    assert_eq!(parsed, typed_requirements());
}

#[test]
fn unknown_fields_are_tolerated_in_the_402_body() {
    let literal = edited(&payment_required_literal(), |v| {
        v["traceId"] = json!("abc");
        v["accepts"][0]["futureField"] = json!(true);
        v["accepts"][0]["extra"]["futureField"] = json!(null);
    });
    let mut required: PaymentRequired = serde_json::from_str(&literal).unwrap();
    assert_eq!(required.accepts[0].extra.other["futureField"], json!(null));
    required.accepts[0].extra.other.clear();
    assert_eq!(required.accepts, vec![typed_requirements()]);
}

#[test]
fn unknown_fields_are_tolerated_in_payment_payload_and_its_payload() {
    let literal = edited(&payment_payload_literal(), |v| {
        v["clientVersion"] = json!("1.2.3");
        v["payload"]["nonce"] = json!(42);
        v["payload"]["memo"] = json!({"k": "v"});
    });
    let mut parsed = serde_json::from_str::<PaymentPayload>(&literal).unwrap();
    // The authorization is the facilitator's business: it is passed on untouched.
    let passed_on = serde_json::to_value(&parsed).unwrap();
    assert_eq!(passed_on["payload"]["nonce"], json!(42));
    assert_eq!(passed_on["payload"]["memo"], json!({"k": "v"}));
    parsed.payload.other.clear();
    assert_eq!(parsed, typed_payload());
}

#[test]
fn unknown_fields_are_tolerated_in_facilitator_bodies() {
    let verify_request = edited(&verify_request_literal(), |v| {
        v["extraTopLevel"] = json!(1);
        v["paymentPayload"]["payload"]["extraInner"] = json!(2);
        v["paymentRequirements"]["extra"]["extraInner"] = json!(3);
    });
    let mut parsed: VerifyRequest = serde_json::from_str(&verify_request).unwrap();
    assert_eq!(parsed.payment_payload.payload.other["extraInner"], json!(2));
    assert_eq!(
        parsed.payment_requirements.extra.other["extraInner"],
        json!(3)
    );
    parsed.payment_payload.payload.other.clear();
    parsed.payment_requirements.extra.other.clear();
    assert_eq!(parsed.payment_payload, typed_payload());
    assert_eq!(parsed.payment_requirements, typed_requirements());

    let requirements_request = edited(&requirements_request_literal(), |v| {
        v["outputSchema"] = json!({"type": "object"});
    });
    let parsed: RequirementsRequest = serde_json::from_str(&requirements_request).unwrap();
    assert_eq!(parsed.amount, 5_000_000);

    let verify: VerifyResponse =
        serde_json::from_str(r#"{"isValid":true,"payer":"x","latencyMs":3}"#).unwrap();
    assert!(verify.is_valid);

    let settle: SettleResponse = serde_json::from_str(
        r#"{"success":true,"transaction":"ab","network":"lightning","feeMsat":"10","preimage":"cd"}"#,
    )
    .unwrap();
    assert!(settle.success);

    let supported: SupportedResponse = serde_json::from_str(
        r#"{"kinds":[{"x402Version":1,"scheme":"exact","network":"lightning",
                      "extra":{"payTo":"02ab","feeRate":1},"label":"ln"}],"signers":{}}"#,
    )
    .unwrap();
    assert_eq!(
        supported.kinds[0]
            .extra
            .as_ref()
            .and_then(|e| e.pay_to.as_deref()),
        Some("02ab")
    );
}

#[test]
fn output_schema_of_any_json_is_accepted_and_preserved() {
    let schemas = [
        json!({
            "input": {"type": "http", "method": "POST", "bodyType": "json"},
            "output": {"type": "object", "properties": {"result": {"type": "string"}}}
        }),
        json!([1, "two", {"three": 3.5}]),
        json!("free text"),
        json!(42),
        json!(true),
    ];
    for schema in schemas {
        let literal = edited(&requirements_literal(), |v| {
            v["outputSchema"] = schema.clone();
        });
        let requirements: PaymentRequirements = assert_round_trip(&literal);
        assert_eq!(requirements.output_schema.as_ref(), Some(&schema));
    }
}

#[test]
fn null_output_schema_is_accepted_as_absent() {
    let literal = edited(&requirements_literal(), |v| {
        v["outputSchema"] = Value::Null;
    });
    let requirements: PaymentRequirements = serde_json::from_str(&literal).unwrap();
    assert_eq!(requirements.output_schema, None);
}

// ---------------------------------------------------------------------------------------------
// 4. Wrong types and missing fields
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_types_of_known_fields_are_rejected_with_a_clear_error() {
    let message = rejection::<VerifyResponse>(r#"{"isValid":"yes"}"#);
    assert_mentions(&message, &["invalid type", "\"yes\"", "a boolean"]);

    let message = rejection::<SettleResponse>(r#"{"success":1,"network":"lightning"}"#);
    assert_mentions(&message, &["invalid type", "a boolean"]);

    let literal = edited(&requirements_literal(), |v| {
        v["maxTimeoutSeconds"] = json!("60");
    });
    let message = rejection::<PaymentRequirements>(&literal);
    assert_mentions(&message, &["invalid type", "\"60\"", "u64"]);

    let literal = edited(&requirements_literal(), |v| {
        v["network"] = json!(5);
    });
    let message = rejection::<PaymentRequirements>(&literal);
    assert_mentions(&message, &["invalid type", "integer `5`", "network"]);

    let literal = edited(&payment_payload_literal(), |v| {
        v["x402Version"] = json!("1");
    });
    let message = rejection::<PaymentPayload>(&literal);
    assert_mentions(&message, &["invalid type", "\"1\"", "u32"]);

    let literal = edited(&payment_payload_literal(), |v| {
        v["payload"] = json!("not an object");
    });
    let message = rejection::<PaymentPayload>(&literal);
    assert_mentions(&message, &["invalid type", "not an object"]);

    let literal = edited(&requirements_literal(), |v| {
        v["extra"]["invoice"] = json!(123);
    });
    let message = rejection::<PaymentRequirements>(&literal);
    assert_mentions(&message, &["invalid type", "123", "string"]);

    let message = rejection::<SupportedResponse>(r#"{"kinds":{}}"#);
    assert_mentions(&message, &["invalid type", "a sequence"]);
}

#[test]
fn missing_required_fields_are_rejected_naming_the_field() {
    for field in [
        "scheme",
        "network",
        "maxAmountRequired",
        "asset",
        "payTo",
        "resource",
        "maxTimeoutSeconds",
        "extra",
    ] {
        let literal = edited(&requirements_literal(), |v| {
            v.as_object_mut().unwrap().remove(field);
        });
        let message = rejection::<PaymentRequirements>(&literal);
        assert_mentions(&message, &["missing field", &format!("`{field}`")]);
    }

    let literal = edited(&requirements_literal(), |v| {
        v["extra"] = json!({});
    });
    assert_mentions(
        &rejection::<PaymentRequirements>(&literal),
        &["missing field `invoice`"],
    );

    for field in ["x402Version", "scheme", "network", "payload"] {
        let literal = edited(&payment_payload_literal(), |v| {
            v.as_object_mut().unwrap().remove(field);
        });
        let message = rejection::<PaymentPayload>(&literal);
        assert_mentions(&message, &["missing field", &format!("`{field}`")]);
    }

    for field in ["invoice", "signature", "from"] {
        let literal = edited(&payment_payload_literal(), |v| {
            v["payload"].as_object_mut().unwrap().remove(field);
        });
        let message = rejection::<PaymentPayload>(&literal);
        assert_mentions(&message, &["missing field", &format!("`{field}`")]);
    }

    for field in ["x402Version", "error", "accepts"] {
        let literal = edited(&payment_required_literal(), |v| {
            v.as_object_mut().unwrap().remove(field);
        });
        let message = rejection::<PaymentRequired>(&literal);
        assert_mentions(&message, &["missing field", &format!("`{field}`")]);
    }

    for field in ["amount", "network", "maxTimeoutSeconds"] {
        let literal = edited(&requirements_request_literal(), |v| {
            v.as_object_mut().unwrap().remove(field);
        });
        let message = rejection::<RequirementsRequest>(&literal);
        assert_mentions(&message, &["missing field", &format!("`{field}`")]);
    }

    for field in ["x402Version", "paymentPayload", "paymentRequirements"] {
        let literal = edited(&verify_request_literal(), |v| {
            v.as_object_mut().unwrap().remove(field);
        });
        let message = rejection::<VerifyRequest>(&literal);
        assert_mentions(&message, &["missing field", &format!("`{field}`")]);
    }

    assert_mentions(
        &rejection::<VerifyResponse>(r#"{"payer":"x"}"#),
        &["missing field `isValid`"],
    );
    assert_mentions(
        &rejection::<SettleResponse>(r#"{"transaction":"","network":"lightning"}"#),
        &["missing field `success`"],
    );
    assert_mentions(
        &rejection::<SettleResponse>(r#"{"success":true,"transaction":"ab"}"#),
        &["missing field `network`"],
    );
    assert_mentions(
        &rejection::<SupportedResponse>("{}"),
        &["missing field `kinds`"],
    );
    assert_mentions(
        &rejection::<SupportedResponse>(r#"{"kinds":[{"scheme":"exact","network":"lightning"}]}"#),
        &["missing field `x402Version`"],
    );
}

#[test]
fn description_and_mime_type_default_to_empty_when_absent() {
    let literal = edited(&requirements_literal(), |v| {
        let object = v.as_object_mut().unwrap();
        object.remove("description");
        object.remove("mimeType");
    });
    let requirements: PaymentRequirements = serde_json::from_str(&literal).unwrap();
    assert_eq!(requirements.description, "");
    assert_eq!(requirements.mime_type, "");
}

// ---------------------------------------------------------------------------------------------
// 5. Networks and scheme
// ---------------------------------------------------------------------------------------------

/// The network table of PROTOCOL.md.
const NETWORK_TABLE: [(&str, Network, &str, Currency); 4] = [
    ("lightning", Network::Bitcoin, "lnbc", Currency::Bitcoin),
    (
        "lightning-testnet",
        Network::Testnet,
        "lntb",
        Currency::BitcoinTestnet,
    ),
    (
        "lightning-signet",
        Network::Signet,
        "lntbs",
        Currency::Signet,
    ),
    (
        "lightning-regtest",
        Network::Regtest,
        "lnbcrt",
        Currency::Regtest,
    ),
];

#[test]
fn every_network_name_maps_to_its_currency_and_prefix() {
    for (name, network, prefix, currency) in NETWORK_TABLE {
        let parsed: Network = serde_json::from_value(json!(name)).unwrap();
        assert_eq!(parsed, network, "{name}");
        assert_eq!(name.parse::<Network>(), Ok(network));
        assert_eq!(network.as_str(), name);
        assert_eq!(network.to_string(), name);
        assert_eq!(serde_json::to_value(network).unwrap(), json!(name));
        assert_eq!(network.currency(), currency, "{name}");
        assert_eq!(Network::from_currency(&currency), Some(network));
        assert_eq!(network.bolt11_prefix(), prefix, "{name}");
    }
    assert_eq!(
        Network::ALL.to_vec(),
        NETWORK_TABLE.map(|(_, network, ..)| network).to_vec()
    );
    assert_eq!(Network::from_currency(&Currency::Simnet), None);
}

#[test]
fn network_field_in_every_shape_uses_the_wire_names() {
    for (name, network, ..) in NETWORK_TABLE {
        let literal = edited(&requirements_literal(), |v| v["network"] = json!(name));
        let requirements: PaymentRequirements = assert_round_trip(&literal);
        assert_eq!(requirements.network, network);

        let literal = edited(&payment_payload_literal(), |v| v["network"] = json!(name));
        let payload: PaymentPayload = assert_round_trip(&literal);
        assert_eq!(payload.network, network);

        let literal = format!(r#"{{"success":true,"transaction":"ab","network":"{name}"}}"#);
        let settle: SettleResponse = assert_round_trip(&literal);
        assert_eq!(settle.network, network);
    }
}

#[test]
fn unknown_network_is_rejected_naming_the_known_ones() {
    let literal = edited(&requirements_literal(), |v| {
        v["network"] = json!("base-sepolia");
    });
    let message = rejection::<PaymentRequirements>(&literal);
    assert_mentions(
        &message,
        &[
            "base-sepolia",
            "lightning",
            "lightning-testnet",
            "lightning-signet",
            "lightning-regtest",
        ],
    );

    for bad in [
        "base-sepolia",
        "Lightning",
        "bitcoin",
        "lightning-mainnet",
        "",
    ] {
        let message = rejection::<Network>(&json!(bad).to_string());
        assert_mentions(&message, &[&format!("`{bad}`"), "lightning-regtest"]);
        assert!(bad.parse::<Network>().is_err());
    }
}

#[test]
fn scheme_other_than_exact_is_rejected() {
    assert_eq!(serde_json::to_value(Scheme::Exact).unwrap(), json!("exact"));
    for bad in ["upto", "Exact", "EXACT", ""] {
        let literal = edited(&requirements_literal(), |v| v["scheme"] = json!(bad));
        let message = rejection::<PaymentRequirements>(&literal);
        assert_mentions(&message, &[&format!("`{bad}`"), "exact"]);

        let literal = edited(&payment_payload_literal(), |v| v["scheme"] = json!(bad));
        let message = rejection::<PaymentPayload>(&literal);
        assert_mentions(&message, &[&format!("`{bad}`"), "exact"]);

        let literal = edited(&requirements_request_literal(), |v| {
            v["scheme"] = json!(bad)
        });
        let message = rejection::<RequirementsRequest>(&literal);
        assert_mentions(&message, &[&format!("`{bad}`"), "exact"]);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Headers
// ---------------------------------------------------------------------------------------------

/// An invoice whose `X-PAYMENT` JSON (literal or serialized) is not a multiple of 3 bytes long
/// and whose base64 contains `+` or `/`, so that the four base64 variants all differ.
fn header_invoice() -> String {
    format!("{INVOICE}??>>~~")
}

/// The payload of [`header_invoice`].
fn header_payload() -> PaymentPayload {
    let mut payload = typed_payload();
    payload.payload.invoice = header_invoice();
    payload
}

/// The four encodings a decoder accepts.
fn base64_variants(json: &[u8]) -> [(&'static str, String); 4] {
    [
        ("standard padded", STANDARD.encode(json)),
        ("standard unpadded", STANDARD_NO_PAD.encode(json)),
        ("url-safe padded", URL_SAFE.encode(json)),
        ("url-safe unpadded", URL_SAFE_NO_PAD.encode(json)),
    ]
}

#[test]
fn header_constants_name_the_headers_of_protocol_md() {
    // The names as PROTOCOL.md writes them, parsed as a peer's header would be.
    for (constant, on_the_wire) in [
        (X_PAYMENT, "X-PAYMENT"),
        (X_PAYMENT_RESPONSE, "X-PAYMENT-RESPONSE"),
        (PAYMENT_SIGNATURE, "PAYMENT-SIGNATURE"),
    ] {
        let wire = http::HeaderName::from_bytes(on_the_wire.as_bytes()).expect("a header name");
        // `from_static` also proves the constant is already in the normalized (lowercase) form.
        assert_eq!(
            http::HeaderName::from_static(constant),
            wire,
            "{on_the_wire}"
        );
        let mut headers = http::HeaderMap::new();
        headers.insert(wire, http::HeaderValue::from_static("v"));
        assert!(headers.contains_key(constant), "{on_the_wire}");
    }
}

#[test]
fn encode_header_writes_padded_standard_base64_of_the_literal_json() {
    let cases = [
        (typed_payload(), payment_payload_literal()),
        (
            header_payload(),
            payment_payload_literal_paying(&header_invoice()),
        ),
    ];
    for (payload, literal) in cases {
        let encoded = encode_header(&payload).unwrap();
        assert_eq!(encoded.len() % 4, 0, "padded: {encoded}");
        assert!(
            !encoded.contains('-') && !encoded.contains('_'),
            "standard alphabet: {encoded}"
        );
        // `STANDARD` insists on canonical padding.
        let json = STANDARD.decode(&encoded).expect("padded standard base64");
        let decoded: Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(decoded, value(&literal));
    }
    let encoded = encode_header(&header_payload()).unwrap();
    assert!(
        encoded.ends_with('='),
        "this payload needs padding: {encoded}"
    );
}

#[test]
fn decode_payment_header_accepts_the_literal_json_padded_unpadded_and_url_safe() {
    let cases = [
        (payment_payload_literal(), typed_payload()),
        (
            payment_payload_literal_paying(&header_invoice()),
            header_payload(),
        ),
    ];
    for (literal, payload) in &cases {
        for (name, encoded) in base64_variants(literal.as_bytes()) {
            assert_eq!(
                decode_payment_header(encoded.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
                Ok(payload.clone()),
                "{name}: {encoded}"
            );
        }
    }
    // The second literal's variants really differ, so each decoding path was exercised.
    let variants = base64_variants(cases[1].0.as_bytes());
    for (i, (_, a)) in variants.iter().enumerate() {
        for (_, b) in &variants[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn decode_payment_header_tolerates_surrounding_whitespace() {
    let payload = header_payload();
    let encoded = encode_header(&payload).unwrap();
    for wrapped in [
        format!(" {encoded}"),
        format!("{encoded} "),
        format!("\t {encoded} \t"),
    ] {
        assert_eq!(
            decode_payment_header(wrapped.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
            Ok(payload.clone()),
            "{wrapped:?}"
        );
    }
    let settle = settle_success();
    let wrapped = format!("  {}  ", encode_header(&settle).unwrap());
    assert_eq!(
        decode_payment_response_header(wrapped.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
        Ok(settle)
    );
}

/// The limit is the caller's; the layer's default (8 KiB) is checked over HTTP in
/// `layer_protocol.rs`.
#[test]
fn decode_payment_header_refuses_oversized_values_before_decoding() {
    const LIMIT: usize = 8 * 1024;

    // 9000 bytes that are not even base64: the size is checked first.
    let garbage = vec![b'!'; 9000];
    assert_eq!(
        decode_payment_header(&garbage, LIMIT),
        Err(HeaderError::TooLarge {
            len: 9000,
            max: LIMIT
        })
    );

    // A perfectly valid payload over the limit is refused too.
    let mut payload = typed_payload();
    payload.payload.invoice = format!("lnbc50u1{}", "q".repeat(7000));
    let encoded = encode_header(&payload).unwrap();
    assert!(encoded.len() > LIMIT);
    assert_eq!(
        decode_payment_header(encoded.as_bytes(), LIMIT),
        Err(HeaderError::TooLarge {
            len: encoded.len(),
            max: LIMIT
        })
    );
    // ...and accepted under a larger limit.
    assert_eq!(
        decode_payment_header(encoded.as_bytes(), encoded.len()),
        Ok(payload)
    );

    let message = HeaderError::TooLarge {
        len: 9000,
        max: 8192,
    }
    .to_string();
    assert_mentions(&message, &["9000", "8192"]);

    assert!(matches!(
        decode_payment_response_header(&garbage, LIMIT),
        Err(HeaderError::TooLarge { len: 9000, .. })
    ));
}

#[test]
fn decode_payment_header_rejects_non_base64() {
    for bad in ["not base64!!", "@@@@", "eyJ4NDAy*VmVyc2lvbiI6MX0="] {
        assert_eq!(
            decode_payment_header(bad.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
            Err(HeaderError::NotBase64),
            "{bad}"
        );
    }
    // Mixing alphabets in one value is not one of the accepted encodings.
    let mixed = format!("{}-_", STANDARD_NO_PAD.encode(b"\xfb\xff"));
    assert_eq!(
        decode_payment_header(mixed.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
        Err(HeaderError::NotBase64)
    );
}

#[test]
fn decode_payment_header_rejects_base64_of_non_json() {
    for bad in ["hello world", "", "{\"x402Version\":1", "[]"] {
        let encoded = STANDARD.encode(bad);
        let result = decode_payment_header(encoded.as_bytes(), DEFAULT_MAX_HEADER_BYTES);
        assert!(
            matches!(result, Err(HeaderError::NotJson(_))),
            "{bad:?} -> {result:?}"
        );
    }
    // JSON of the wrong shape is NotJson too, with serde's explanation.
    let encoded = STANDARD.encode(r#"{"x402Version":1}"#);
    match decode_payment_header(encoded.as_bytes(), DEFAULT_MAX_HEADER_BYTES) {
        Err(HeaderError::NotJson(message)) => assert_mentions(&message, &["missing field"]),
        other => panic!("expected NotJson, got {other:?}"),
    }
}

#[test]
fn decode_payment_header_rejects_other_x402_versions() {
    for version in [0, 2] {
        let literal = edited(&payment_payload_literal(), |v| {
            v["x402Version"] = json!(version);
        });
        let encoded = STANDARD.encode(literal);
        assert_eq!(
            decode_payment_header(encoded.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
            Err(HeaderError::UnsupportedVersion(version.to_string()))
        );
    }
    assert_mentions(
        &HeaderError::UnsupportedVersion("2".into()).to_string(),
        &["x402Version", "2", "1"],
    );
}

#[test]
fn decode_payment_header_rejects_wrong_scheme_and_network_naming_the_value() {
    let cases = [
        ("scheme", "upto"),
        ("network", "base-sepolia"),
        ("network", "lightning-mainnet"),
    ];
    for (field, bad) in cases {
        let literal = edited(&payment_payload_literal(), |v| v[field] = json!(bad));
        let encoded = STANDARD.encode(literal);
        let err = decode_payment_header(encoded.as_bytes(), DEFAULT_MAX_HEADER_BYTES).unwrap_err();
        match (field, &err) {
            ("scheme", HeaderError::UnsupportedScheme(shown)) => {
                assert_eq!(shown, bad);
                assert_eq!(err.reason(), "invalid_scheme");
            }
            ("network", HeaderError::UnsupportedNetwork(shown)) => {
                assert_eq!(shown, bad);
                assert_eq!(err.reason(), "invalid_network");
            }
            _ => panic!("{field} = {bad:?}: got {err:?}"),
        }
        assert_mentions(&err.to_string(), &[bad]);
    }
}

#[test]
fn decode_payment_header_names_the_first_unsupported_field_of_any_shape() {
    let cases = [
        // An x402 v2 payload has another shape: its version is what is wrong.
        (
            json!({"x402Version": 2, "accepted": {}, "payload": {"x": 1}}),
            HeaderError::UnsupportedVersion("2".into()),
        ),
        (
            json!({"x402Version": 99_999_999_999u64, "scheme": "exact"}),
            HeaderError::UnsupportedVersion("99999999999".into()),
        ),
        (
            json!({"x402Version": "1", "scheme": "exact"}),
            HeaderError::WrongType {
                field: "x402Version",
                expected: "an integer",
                found: "a string",
            },
        ),
        (
            json!({"x402Version": 1, "scheme": "upto", "network": "base"}),
            HeaderError::UnsupportedScheme("upto".into()),
        ),
        (
            json!({"x402Version": 1, "scheme": "exact", "network": 5}),
            HeaderError::WrongType {
                field: "network",
                expected: "a string",
                found: "an integer",
            },
        ),
        (
            json!({"x402Version": 1, "scheme": "exact", "network": "x".repeat(500)}),
            HeaderError::UnsupportedNetwork(format!("{}…", "x".repeat(64))),
        ),
    ];
    for (payload, expected) in cases {
        let encoded = STANDARD.encode(payload.to_string());
        assert_eq!(
            decode_payment_header(encoded.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
            Err(expected)
        );
    }
    // Right version, scheme and network, wrong rest: a plain JSON error.
    let payload = json!({"x402Version": 1, "scheme": "exact", "network": "lightning"});
    let err = decode_payment_header(
        STANDARD.encode(payload.to_string()).as_bytes(),
        DEFAULT_MAX_HEADER_BYTES,
    )
    .unwrap_err();
    assert!(
        matches!(&err, HeaderError::NotJson(m) if m.contains("payload")),
        "{err:?}"
    );
    assert_eq!(err.reason(), "invalid_payload");
}

fn settle_success() -> SettleResponse {
    SettleResponse {
        success: true,
        error_reason: None,
        transaction: PAYMENT_HASH.into(),
        network: Network::Regtest,
        payer: Some(FROM.into()),
    }
}

#[test]
fn payment_response_header_is_base64_of_the_settle_response_json() {
    let failed = SettleResponse {
        success: false,
        error_reason: Some("settle_exact_lightning_payment_failed".into()),
        transaction: String::new(),
        network: Network::Bitcoin,
        payer: None,
    };
    let cases = [
        (
            settle_success(),
            format!(
                r#"{{"success":true,"transaction":"{PAYMENT_HASH}",
                     "network":"lightning-regtest","payer":"{FROM}"}}"#
            ),
        ),
        (
            failed,
            r#"{"success":false,"errorReason":"settle_exact_lightning_payment_failed",
                "transaction":"","network":"lightning"}"#
                .to_owned(),
        ),
    ];
    for (settle, literal) in cases {
        // Written as padded standard base64 of the literal JSON...
        let encoded = encode_header(&settle).unwrap();
        let json = STANDARD.decode(&encoded).expect("padded standard base64");
        assert_eq!(
            serde_json::from_slice::<Value>(&json).unwrap(),
            value(&literal)
        );
        // ...and the literal JSON read back in every accepted encoding.
        for (name, encoded) in base64_variants(literal.as_bytes()) {
            assert_eq!(
                decode_payment_response_header(encoded.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
                Ok(settle.clone()),
                "{name}: {literal}"
            );
        }
    }
}

#[test]
fn payment_response_header_rejects_garbage() {
    assert_eq!(
        decode_payment_response_header(b"%%%", DEFAULT_MAX_HEADER_BYTES),
        Err(HeaderError::NotBase64)
    );
    let encoded = STANDARD.encode(r#"{"success":"yes","network":"lightning"}"#);
    assert!(matches!(
        decode_payment_response_header(encoded.as_bytes(), DEFAULT_MAX_HEADER_BYTES),
        Err(HeaderError::NotJson(_))
    ));
}

#[test]
fn decode_header_is_generic_over_the_wire_types() {
    let encoded = STANDARD.encode(payment_required_literal());
    let required = decode_header::<PaymentRequired>(encoded.as_bytes(), DEFAULT_MAX_HEADER_BYTES)
        .expect("the 402 body of PROTOCOL.md");
    assert_eq!(required.x402_version, 1);
    assert_eq!(required.error, "X-PAYMENT header is required");
    assert_eq!(required.accepts, vec![typed_requirements()]);
}

// ---------------------------------------------------------------------------------------------
// 7. SupportedResponse::find
// ---------------------------------------------------------------------------------------------

fn mixed_supported() -> SupportedResponse {
    serde_json::from_str(&format!(
        r#"{{"kinds":[
            {{"x402Version":1,"scheme":"exact","network":"base-sepolia"}},
            {{"x402Version":2,"scheme":"exact","network":"lightning-regtest",
              "extra":{{"payTo":"03ffff"}}}},
            {{"x402Version":1,"scheme":"upto","network":"lightning-regtest"}},
            {{"x402Version":1,"scheme":"exact","network":"lightning-regtest",
              "extra":{{"payTo":"{PAY_TO}"}}}},
            {{"x402Version":1,"scheme":"exact","network":"solana-devnet",
              "extra":{{"feePayer":"2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg4"}}}}
        ]}}"#
    ))
    .expect("kinds of other chains are not errors")
}

#[test]
fn supported_find_returns_the_lightning_exact_v1_kind() {
    let supported = mixed_supported();
    assert_eq!(supported.kinds.len(), 5);
    let kind = supported.find(Network::Regtest).expect("regtest is listed");
    assert_eq!(kind.x402_version, 1);
    assert_eq!(kind.scheme, "exact");
    assert_eq!(kind.network, "lightning-regtest");
    assert_eq!(
        kind.extra.as_ref().and_then(|e| e.pay_to.as_deref()),
        Some(PAY_TO)
    );
}

#[test]
fn supported_find_ignores_other_chains_schemes_and_versions() {
    let supported = mixed_supported();
    for network in [Network::Bitcoin, Network::Testnet, Network::Signet] {
        assert_eq!(supported.find(network), None, "{network}");
    }

    let only_others: SupportedResponse = serde_json::from_str(
        r#"{"kinds":[
            {"x402Version":1,"scheme":"exact","network":"base-sepolia"},
            {"x402Version":2,"scheme":"exact","network":"lightning"},
            {"x402Version":1,"scheme":"upto","network":"lightning"}
        ]}"#,
    )
    .unwrap();
    for network in Network::ALL {
        assert_eq!(only_others.find(network), None, "{network}");
    }
    assert_eq!(SupportedResponse::default().find(Network::Bitcoin), None);
}

#[test]
fn supported_find_works_for_every_network_by_its_wire_name() {
    for (name, network, ..) in NETWORK_TABLE {
        // A facilitator listing this network alone, as PROTOCOL.md spells it.
        let only: SupportedResponse = serde_json::from_str(&format!(
            r#"{{"kinds":[{{"x402Version":1,"scheme":"exact","network":"{name}"}}]}}"#
        ))
        .unwrap();
        for other in Network::ALL {
            assert_eq!(
                only.find(other).map(|kind| kind.network.as_str()),
                (other == network).then_some(name),
                "{name} listed, {other} asked"
            );
        }
    }
}
