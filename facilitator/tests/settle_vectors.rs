//! The upstream `facilitator_settle` vectors of `exact` on `lnbtc`, one test per vector, over
//! HTTP against the running service: each case starts the service binary on a fresh SQLite
//! file with its clock pinned (`X402_FACILITATOR_TEST_NOW`) and its skew set as the vector says,
//! sends each step's `/settle`, and checks the answer and, on success, the replay entry the
//! service wrote (its key, and a retention no shorter than the vector's).
//!
//! The figures are the root crate's fixture `tests/fixtures/lnbtc/facilitator_settle.json`.

mod common;

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row as _;

use self::common::{Instance, sqlite_url};

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
    transaction: Option<String>,
    network: Option<String>,
    replay_key: Option<String>,
    retain_until_at_least: Option<u64>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    serde_json::from_str(include_str!(
        "../../tests/fixtures/lnbtc/facilitator_settle.json"
    ))
    .expect("the facilitator_settle fixture parses")
});

/// Upstream's two networks: the vectors use both.
const NETWORKS: &str =
    "lnbtc:000000000019d6689c085ae165831e93,lnbtc:000000000933ea01ad0ee984209779ba";

fn run_vector(id: &str) {
    let case = FIXTURE
        .cases
        .iter()
        .find(|case| case.id == id)
        .unwrap_or_else(|| panic!("vector {id}: not in the fixture"));
    // One service per case: its steps share the store, and their clock and skew.
    let first = &case.steps[0];
    assert!(
        case.steps
            .iter()
            .all(|step| (step.now, step.skew) == (first.now, first.skew)),
        "vector {id}: steps at different clocks need one service each"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let database = sqlite_url(dir.path());
    let service = Instance::start(
        dir.path(),
        &[
            ("X402_FACILITATOR_DATABASE_URL", &database),
            ("X402_FACILITATOR_NETWORKS", NETWORKS),
            ("X402_FACILITATOR_SKEW_SECONDS", &first.skew.to_string()),
            ("X402_FACILITATOR_TEST_NOW", &first.now.to_string()),
        ],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for (index, step) in case.steps.iter().enumerate() {
            let context = format!("vector {id}, step {}", index + 1);
            let mut document = FIXTURE.base.clone();
            json_patch::patch(&mut document, &step.patch)
                .unwrap_or_else(|err| panic!("{context}: patch does not apply: {err}"));
            let body = json!({
                "x402Version": 2,
                "paymentPayload": document["payload"],
                "paymentRequirements": document["requirements"],
            });
            let response = client
                .post(service.url("/settle"))
                .json(&body)
                .send()
                .await
                .unwrap_or_else(|err| panic!("{context}: {err}"));
            assert_eq!(response.status(), 200, "{context}: a verdict is a 200");
            let answer: Value = response.json().await.expect("JSON answer");
            check_step(&context, &step.expect, &answer, &database).await;
        }
    });
}

async fn check_step(context: &str, expect: &Expect, answer: &Value, database: &str) {
    assert_eq!(
        answer["success"].as_bool(),
        Some(expect.success),
        "{context}: {answer}"
    );
    assert!(answer.get("payer").is_none(), "{context}: payer is omitted");
    if !expect.success {
        assert_eq!(
            answer["errorReason"].as_str(),
            expect.error_reason.as_deref(),
            "{context}: errorReason"
        );
        assert_eq!(answer["transaction"], "", "{context}: transaction");
        return;
    }
    assert!(answer.get("errorReason").is_none(), "{context}: {answer}");
    assert_eq!(
        answer["transaction"].as_str(),
        expect.transaction.as_deref(),
        "{context}: transaction"
    );
    assert_eq!(
        answer["network"].as_str(),
        expect.network.as_deref(),
        "{context}: network"
    );
    // The replay entry the service wrote: the canonical key, kept long enough.
    let key = expect
        .replay_key
        .as_deref()
        .unwrap_or_else(|| panic!("{context}: no replay key expected"));
    let at_least = expect
        .retain_until_at_least
        .unwrap_or_else(|| panic!("{context}: no retain_until_at_least"));
    let pool = sqlx::SqlitePool::connect(database)
        .await
        .expect("opens the store");
    let row = sqlx::query("SELECT retain_until FROM replay_keys WHERE replay_key = $1")
        .bind(key)
        .fetch_optional(&pool)
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("{context}: no replay entry {key}"));
    let retain_until: i64 = row.get(0);
    assert!(
        u64::try_from(retain_until).is_ok_and(|retained| retained >= at_least),
        "{context}: retained until {retain_until}, at least {at_least} expected"
    );
    pool.close().await;
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
        assert_eq!(generated.len(), GENERATED.len(), "a vector has two tests");
        assert_eq!(fixture, generated);
        assert_eq!(fixture.len(), 79);
    }
}
