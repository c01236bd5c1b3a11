//! The upstream `client` vectors of scheme `exact` on `lnbtc`, one test per vector.
//!
//! The fixture `fixtures/lnbtc/client.json` carries upstream's figures (ids, base, JSON
//! patches, clocks and expectations) without its prose. For the open question
//! `client-expiry-boundary` it keeps the outcome this crate chose (`reject`). Each case patches
//! the base, runs [`select`] for the intended request, pays with a recording payer that answers
//! the (patched) `payer_result`, and checks the result with [`Selected::into_payment`].

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::LazyLock;

use bitcoin::hex::FromHex as _;
use serde::Deserialize;
use serde_json::Value;
use x402_lightning::Network;
use x402_lightning::lnbtc::client::{
    ClientPolicy, IntendedRequest, PayerResult, PayerStatus, Selected, select,
};
use x402_lightning::lnbtc::types::PaymentRequired;

#[derive(Debug, Deserialize)]
struct Fixture {
    base: Value,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    id: String,
    now: u64,
    skew: u64,
    patch: json_patch::Patch,
    expect: Expect,
    /// The open question whose outcome this crate chose, with the outcome's name.
    #[serde(default)]
    open_question: Option<String>,
    #[serde(default)]
    chosen_outcome: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Expect {
    /// The preimage of the payload built: the case pays.
    preimage: Option<String>,
    /// The reason of the refusal: the case does not produce a payload.
    error: Option<String>,
    payer_called: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Intended {
    profile: String,
    http: Option<HttpIntent>,
    mcp: Option<McpIntent>,
}

#[derive(Debug, Deserialize)]
struct HttpIntent {
    method: String,
    url: String,
    body_hex: String,
    header_lines: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
struct McpIntent {
    server: String,
    params: Value,
}

#[derive(Debug, Deserialize)]
struct PayerAnswer {
    status: String,
    invoice: String,
    payment_hash: String,
    amount_msat: String,
    preimage: Option<String>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    serde_json::from_str(include_str!("fixtures/lnbtc/client.json"))
        .expect("the client fixture parses")
});

/// A payer adapter that records whether it was asked to pay and answers a fixed result.
struct RecordingPayer {
    result: PayerResult,
    called: Cell<bool>,
}

impl RecordingPayer {
    fn pay(&self, invoice: &str) -> PayerResult {
        assert!(
            !self.called.replace(true),
            "the payer is asked to pay twice"
        );
        assert!(!invoice.is_empty());
        self.result.clone()
    }
}

fn payer_result(answer: PayerAnswer, context: &str) -> PayerResult {
    PayerResult {
        status: match answer.status.as_str() {
            "paid" => PayerStatus::Paid,
            "in_flight" => PayerStatus::InFlight,
            _ => PayerStatus::NotPaid,
        },
        invoice: answer.invoice,
        payment_hash: answer.payment_hash,
        amount_msat: answer
            .amount_msat
            .parse()
            .unwrap_or_else(|err| panic!("{context}: payer amount: {err}")),
        preimage: answer.preimage,
    }
}

fn run_vector(id: &str) {
    let case = FIXTURE
        .cases
        .iter()
        .find(|case| case.id == id)
        .unwrap_or_else(|| panic!("vector {id}: not in the fixture"));
    let context = format!("vector {id}");
    if let Some(question) = &case.open_question {
        assert_eq!(question, "client-expiry-boundary", "{context}");
        assert_eq!(case.chosen_outcome.as_deref(), Some("reject"), "{context}");
    }
    let mut document = FIXTURE.base.clone();
    json_patch::patch(&mut document, &case.patch)
        .unwrap_or_else(|err| panic!("{context}: patch does not apply: {err}"));
    let parse = |member: &str| document[member].clone();
    let required: PaymentRequired = serde_json::from_value(parse("payment_required"))
        .unwrap_or_else(|err| panic!("{context}: payment_required: {err}"));
    let intended: Intended = serde_json::from_value(parse("intended_request"))
        .unwrap_or_else(|err| panic!("{context}: intended_request: {err}"));
    let answer: PayerAnswer = serde_json::from_value(parse("payer_result"))
        .unwrap_or_else(|err| panic!("{context}: payer_result: {err}"));
    let payer = RecordingPayer {
        result: payer_result(answer, &context),
        called: Cell::new(false),
    };
    let policy = ClientPolicy {
        networks: Network::LNBTC_UPSTREAM.to_vec(),
        skew_secs: case.skew,
    };

    // The intended request's parts, owned here and borrowed by `IntendedRequest`.
    let body;
    let header_lines: Vec<(&str, &[u8])>;
    let params_json;
    let request = match (intended.profile.as_str(), &intended.http, &intended.mcp) {
        ("http:1", Some(http), _) => {
            body = Vec::<u8>::from_hex(&http.body_hex)
                .unwrap_or_else(|err| panic!("{context}: body_hex: {err}"));
            header_lines = http
                .header_lines
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes()))
                .collect();
            IntendedRequest::Http {
                method: &http.method,
                url: &http.url,
                body: &body,
                header_lines: &header_lines,
            }
        }
        ("mcp:1", _, Some(mcp)) => {
            params_json = mcp.params.to_string();
            IntendedRequest::Mcp {
                server: &mcp.server,
                params_json: &params_json,
            }
        }
        (profile, ..) => panic!("{context}: intended request of profile {profile:?}"),
    };

    let outcome = select(&required, &request, &policy, case.now).and_then(|selected: Selected| {
        let invoice = selected
            .requirements
            .invoice()
            .unwrap_or_default()
            .to_owned();
        let expected_accepted = selected.requirements.clone();
        let result = payer.pay(&invoice);
        let payment = selected.into_payment(&result)?;
        assert_eq!(payment.accepted, expected_accepted, "{context}: accepted");
        assert_eq!(
            payment.resource.as_ref(),
            Some(&required.resource),
            "{context}: resource"
        );
        Ok(payment)
    });

    match (&case.expect.preimage, &case.expect.error, outcome) {
        (Some(preimage), None, Ok(payment)) => {
            assert_eq!(
                payment.payload.get("preimage"),
                Some(&Value::from(preimage.as_str())),
                "{context}"
            );
            assert!(
                payer.called.get(),
                "{context}: paid without calling the payer"
            );
            assert_ne!(case.expect.payer_called, Some(false), "{context}");
        }
        (None, Some(reason), Err(err)) => {
            assert_eq!(err.reason, reason, "{context}: reason ({err})");
            assert_eq!(
                Some(payer.called.get()),
                case.expect.payer_called,
                "{context}: payer called"
            );
        }
        (_, _, outcome) => panic!("{context}: expected {:?}, got {outcome:?}", case.expect),
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

mod client {
    use super::*;

    vectors! {
        pays_spec_example => "pays-spec-example",
        request_hash_differs => "request-hash-differs",
        resource_url_differs => "resource-url-differs",
        mcp_profile_for_http_request => "mcp-profile-for-http-request",
        http_profile_for_mcp_call => "http-profile-for-mcp-call",
        invoice_expired => "invoice-expired",
        invoice_created_in_future => "invoice-created-in-future",
        invoice_at_end => "invoice-at-end",
        payer_other_invoice => "payer-other-invoice",
        payer_other_payment_hash => "payer-other-payment-hash",
        payer_other_amount => "payer-other-amount",
        payer_preimage_null => "payer-preimage-null",
        payer_preimage_uppercase => "payer-preimage-uppercase",
        payer_preimage_wrong => "payer-preimage-wrong",
        payer_unpaid => "payer-unpaid",
        payer_in_flight => "payer-in-flight",
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
        assert_eq!(fixture.len(), 16);
    }
}
