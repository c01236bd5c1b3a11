//! The upstream `facilitator_settle` vectors of scheme `exact` on `lnbtc`, one test per vector.
//!
//! The fixture `fixtures/lnbtc/facilitator_settle.json` carries upstream's figures (ids, base,
//! JSON-patch steps, clocks and expectations) without its prose. Each step patches the base
//! (`requirements` and `payload`), runs [`validate`] with upstream's two networks and the step's
//! skew, then records the replay key in the vector's own replay set: a key already there is
//! `duplicate_settlement` (step `"replay"`).

use std::collections::{BTreeSet, HashSet};
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Value, json};
use x402_lightning::Network;
use x402_lightning::lnbtc::reason;
use x402_lightning::lnbtc::settle::{SettlePolicy, validate};

#[derive(Debug, Deserialize)]
struct Fixture {
    base: Value,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    id: String,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
struct Step {
    now: u64,
    skew: u64,
    patch: json_patch::Patch,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
struct Expect {
    success: bool,
    error_reason: Option<String>,
    /// A step number (1–7), or `"replay"` for the replay store's refusal.
    step: Option<Value>,
    transaction: Option<String>,
    network: Option<String>,
    replay_key: Option<String>,
    retain_until_at_least: Option<u64>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    serde_json::from_str(include_str!("fixtures/lnbtc/facilitator_settle.json"))
        .expect("the facilitator_settle fixture parses")
});

/// What one step produced: a settled proof, or a refusal with its reason and step.
#[derive(Debug)]
enum Outcome {
    Settled {
        transaction: String,
        network: String,
        replay_key: String,
        retain_until: u64,
    },
    Refused {
        reason: String,
        step: Value,
    },
}

fn run_vector(id: &str) {
    let case = FIXTURE
        .cases
        .iter()
        .find(|case| case.id == id)
        .unwrap_or_else(|| panic!("vector {id}: not in the fixture"));
    let mut replay_store = HashSet::new();
    for (index, step) in case.steps.iter().enumerate() {
        let context = format!("vector {id}, step {}", index + 1);
        let mut document = FIXTURE.base.clone();
        json_patch::patch(&mut document, &step.patch)
            .unwrap_or_else(|err| panic!("{context}: patch does not apply: {err}"));
        let policy = SettlePolicy {
            networks: Network::LNBTC_UPSTREAM.to_vec(),
            skew_secs: step.skew,
        };
        let outcome = match validate(
            &document["payload"],
            &document["requirements"],
            &policy,
            step.now,
        ) {
            Err(rejection) => Outcome::Refused {
                reason: rejection.reason.to_owned(),
                step: json!(rejection.step),
            },
            Ok(proof) if !replay_store.insert(proof.replay_key.clone()) => Outcome::Refused {
                reason: reason::DUPLICATE_SETTLEMENT.to_owned(),
                step: json!("replay"),
            },
            Ok(proof) => {
                let response = proof.success_response();
                assert!(response.success && response.payer.is_none(), "{context}");
                Outcome::Settled {
                    transaction: response.transaction,
                    network: response.network,
                    replay_key: proof.replay_key,
                    retain_until: proof.retain_until,
                }
            }
        };
        check_step(&context, &step.expect, &outcome);
    }
}

fn check_step(context: &str, expect: &Expect, outcome: &Outcome) {
    match outcome {
        Outcome::Settled {
            transaction,
            network,
            replay_key,
            retain_until,
        } => {
            assert!(expect.success, "{context}: settled, expected {expect:?}");
            assert_eq!(
                Some(transaction),
                expect.transaction.as_ref(),
                "{context}: transaction"
            );
            assert_eq!(Some(network), expect.network.as_ref(), "{context}: network");
            assert_eq!(
                Some(replay_key),
                expect.replay_key.as_ref(),
                "{context}: replay key"
            );
            let at_least = expect
                .retain_until_at_least
                .unwrap_or_else(|| panic!("{context}: no retain_until_at_least"));
            assert!(
                *retain_until >= at_least,
                "{context}: retained until {retain_until}, at least {at_least} expected"
            );
        }
        Outcome::Refused { reason, step } => {
            assert!(
                !expect.success,
                "{context}: refused with {reason} at step {step}"
            );
            assert_eq!(
                Some(reason),
                expect.error_reason.as_ref(),
                "{context}: reason"
            );
            assert_eq!(Some(step), expect.step.as_ref(), "{context}: step");
        }
    }
}

macro_rules! vectors {
    ($($name:ident => $id:literal,)*) => {
        $(
            #[test]
            fn $name() {
                super::run_vector($id);
            }
        )*

        /// The vector ids with a generated test.
        const GENERATED: &[&str] = &[$($id),*];
    };
}

mod facilitator_settle {
    use super::*;

    vectors! {
        spec_example => "spec-example",
        fresh_requirements_invoice => "fresh-requirements-invoice",
        two_paid_invoices => "two-paid-invoices",
        defaults_and_additive_fields => "defaults-and-additive-fields",
        payee_field_present => "payee-field-present",
        same_hash_each_network => "same-hash-each-network",
        preimage_missing_does_not_consume => "preimage-missing-does-not-consume",
        preimage_uppercase_does_not_consume => "preimage-uppercase-does-not-consume",
        preimage_non_hex_does_not_consume => "preimage-non-hex-does-not-consume",
        preimage_63_chars_does_not_consume => "preimage-63-chars-does-not-consume",
        preimage_66_chars_does_not_consume => "preimage-66-chars-does-not-consume",
        preimage_wrong_does_not_consume => "preimage-wrong-does-not-consume",
        expiry_at_invoice_end => "expiry-at-invoice-end",
        expiry_at_end_plus_skew => "expiry-at-end-plus-skew",
        expiry_after_end_plus_skew => "expiry-after-end-plus-skew",
        created_at_skew_boundary => "created-at-skew-boundary",
        accepted_scheme_differs => "accepted-scheme-differs",
        accepted_network_differs => "accepted-network-differs",
        accepted_amount_differs => "accepted-amount-differs",
        accepted_asset_differs => "accepted-asset-differs",
        accepted_pay_to_differs => "accepted-payTo-differs",
        accepted_max_timeout_seconds_differs => "accepted-maxTimeoutSeconds-differs",
        both_scheme_unsupported => "both-scheme-unsupported",
        both_network_unsupported => "both-network-unsupported",
        both_asset_not_btc => "both-asset-not-btc",
        both_amount_zero => "both-amount-zero",
        both_amount_decimal => "both-amount-decimal",
        both_amount_signed => "both-amount-signed",
        both_amount_exponent => "both-amount-exponent",
        both_pay_to_short => "both-pay-to-short",
        both_pay_to_uppercase => "both-pay-to-uppercase",
        both_pay_to_off_curve => "both-pay-to-off-curve",
        both_max_timeout_zero => "both-max-timeout-zero",
        accepted_request_hash_null => "accepted-request-hash-null",
        accepted_request_hash_missing => "accepted-request-hash-missing",
        required_request_hash_missing => "required-request-hash-missing",
        both_request_hash_uppercase => "both-request-hash-uppercase",
        accepted_profile_missing => "accepted-profile-missing",
        accepted_profile_unknown => "accepted-profile-unknown",
        accepted_params_missing => "accepted-params-missing",
        accepted_params_unknown_member => "accepted-params-unknown-member",
        accepted_params_header_list => "accepted-params-header-list",
        actual_request_differs => "actual-request-differs",
        accepted_transfer_method => "accepted-transfer-method",
        accepted_payment_flow_null => "accepted-payment-flow-null",
        both_payment_flow_deferred => "both-payment-flow-deferred",
        server_declared_extra => "server-declared-extra",
        accepted_invoice_empty => "accepted-invoice-empty",
        accepted_invoice_missing => "accepted-invoice-missing",
        required_invoice_empty => "required-invoice-empty",
        invoice_garbage => "invoice-garbage",
        invoice_mixed_case => "invoice-mixed-case",
        invoice_bad_checksum => "invoice-bad-checksum",
        invoice_fractional_msat => "invoice-fractional-msat",
        invoice_nonzero_padding => "invoice-nonzero-padding",
        invoice_duplicate_description_hash => "invoice-duplicate-description-hash",
        invoice_inline_description => "invoice-inline-description",
        invoice_no_description => "invoice-no-description",
        invoice_other_signer => "invoice-other-signer",
        invoice_testnet_currency => "invoice-testnet-currency",
        invoice_amount => "invoice-amount",
        invoice_expiry => "invoice-expiry",
        invoice_created_in_future => "invoice-created-in-future",
        echo_article_b => "echo-article-b",
        echo_method_post => "echo-method-post",
        echo_body_78 => "echo-body-78",
        mcp_settles => "mcp-settles",
        mcp_actual_call_differs => "mcp-actual-call-differs",
        mcp_echo_call_differs => "mcp-echo-call-differs",
        mcp_echo_server_differs => "mcp-echo-server-differs",
        mcp_binding_on_http_invoice => "mcp-binding-on-http-invoice",
        mcp_accepted_profile_http => "mcp-accepted-profile-http",
        mcp_metadata_absent_to_null => "mcp-metadata-absent-to-null",
        mcp_metadata_lists_payment => "mcp-metadata-lists-payment",
        order_amount_zero => "order-amount-zero",
        order_flow_before_required_invoice => "order-flow-before-required-invoice",
        order_binding_before_accepted_invoice => "order-binding-before-accepted-invoice",
        order_invoice_before_preimage => "order-invoice-before-preimage",
        order_preimage_before_expiry => "order-preimage-before-expiry",
    }

    #[test]
    fn every_fixture_vector_has_its_own_test() {
        let fixture: BTreeSet<&str> = FIXTURE.cases.iter().map(|case| case.id.as_str()).collect();
        let generated: BTreeSet<&str> = GENERATED.iter().copied().collect();
        assert_eq!(
            fixture.len(),
            FIXTURE.cases.len(),
            "duplicate ids in the fixture"
        );
        assert_eq!(generated.len(), GENERATED.len(), "a vector has two tests");
        assert_eq!(fixture, generated);
        assert_eq!(fixture.len(), 79);
    }
}
