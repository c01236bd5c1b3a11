//! `GET /invoices/{paymentHash}` over real HTTP: the mock reports each invoice it minted open,
//! paid with its preimage once paid over Lightning, or cancelled once the seed flow paid it in
//! its books; unknown and malformed hashes, the API key, faults and the call record; and
//! `HttpFacilitator` refuses every answer that is not consistent with the hash it asked.

use std::net::SocketAddr;

use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::{DisplayHex as _, FromHex as _};
use http::StatusCode;
use serde_json::{Value, json};
use x402_lightning::mock::{Fault, MockFacilitator, PayError, TestWallet};
use x402_lightning::receiver::{FacilitatorReceiver, InvoiceState, InvoiceStatus, Receiver};
use x402_lightning::{
    Bolt11Invoice, Facilitator, FacilitatorCall, FacilitatorError, HttpFacilitator, Network,
    PaymentRequirements, RequirementsRequest, VerifyRequest,
};

const PRICE_MSAT: u64 = 10_000;

fn ask() -> RequirementsRequest {
    RequirementsRequest::new(
        Network::Regtest,
        PRICE_MSAT,
        "http://127.0.0.1:3000/weather",
    )
}

/// A started mock and a client for it.
async fn mock_and_client() -> (MockFacilitator, HttpFacilitator) {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let facilitator = HttpFacilitator::new(mock.url()).expect("valid url");
    (mock, facilitator)
}

/// Fresh requirements from `facilitator`, and their invoice's payment hash.
async fn minted(facilitator: &impl Facilitator) -> (PaymentRequirements, [u8; 32]) {
    let requirements = facilitator
        .requirements(&ask())
        .await
        .expect("requirements");
    let invoice: Bolt11Invoice = requirements.extra.invoice.parse().expect("a valid invoice");
    let payment_hash = invoice.payment_hash().to_byte_array();
    (requirements, payment_hash)
}

fn is_status(err: &FacilitatorError, expected: StatusCode) -> bool {
    matches!(
        err,
        FacilitatorError::Status { call: FacilitatorCall::Invoice, status, .. } if *status == expected
    )
}

// ---------------------------------------------------------------------------------------------
// The mock's honest answers

#[tokio::test]
async fn a_minted_invoice_is_open_then_paid_with_its_preimage_once_paid_over_lightning() {
    let (mock, facilitator) = mock_and_client().await;
    let (requirements, payment_hash) = minted(&facilitator).await;

    let open = facilitator.invoice_status(&payment_hash).await.unwrap();
    assert_eq!(open.payment_hash, payment_hash.to_lower_hex_string());
    assert_eq!(open.state, InvoiceState::Open);
    assert_eq!(open.preimage, None);

    let payment = mock.pay_invoice(&requirements.extra.invoice).unwrap();
    let paid = facilitator.invoice_status(&payment_hash).await.unwrap();
    assert_eq!(paid.payment_hash, payment_hash.to_lower_hex_string());
    assert_eq!(paid.state, InvoiceState::Paid);
    assert_eq!(paid.preimage, Some(payment.preimage));
}

#[tokio::test]
async fn the_reported_preimage_hashes_to_the_payment_hash() {
    let (mock, facilitator) = mock_and_client().await;
    let (requirements, payment_hash) = minted(&facilitator).await;
    mock.pay_invoice(&requirements.extra.invoice).unwrap();

    let paid = facilitator.invoice_status(&payment_hash).await.unwrap();
    let preimage = <[u8; 32]>::from_hex(paid.preimage.as_deref().unwrap()).unwrap();
    assert_eq!(sha256::Hash::hash(&preimage).to_byte_array(), payment_hash);
}

#[tokio::test]
async fn an_invoice_the_seed_flow_settled_is_cancelled_and_never_reported_paid() {
    let (mock, facilitator) = mock_and_client().await;
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), 1_000_000);
    let (requirements, payment_hash) = minted(&facilitator).await;
    let request = VerifyRequest::new(wallet.authorize(&requirements), requirements.clone());
    assert!(facilitator.settle(&request).await.unwrap().success);

    let status = facilitator.invoice_status(&payment_hash).await.unwrap();
    assert_eq!(status.state, InvoiceState::Cancelled);
    assert_eq!(status.preimage, None, "its preimage was never released");
    assert_eq!(
        mock.pay_invoice(&requirements.extra.invoice),
        Err(PayError::AlreadyPaid),
        "the Lightning invoice can no longer be paid"
    );
}

#[tokio::test]
async fn an_unknown_invoice_is_a_404() {
    let (_mock, facilitator) = mock_and_client().await;
    let err = facilitator.invoice_status(&[7; 32]).await.unwrap_err();
    assert!(is_status(&err, StatusCode::NOT_FOUND), "{err}");
}

#[tokio::test]
async fn an_unknown_invoice_is_none_for_a_receiver_over_http_and_in_process() {
    let (mock, facilitator) = mock_and_client().await;
    let over_http = FacilitatorReceiver(facilitator)
        .invoice_status(&[7; 32])
        .await
        .unwrap();
    assert_eq!(over_http, None);
    let in_process = Receiver::invoice_status(&mock, &[7; 32]).await.unwrap();
    assert_eq!(in_process, None);
}

#[tokio::test]
async fn a_receiver_reports_a_known_invoice_over_http_and_in_process() {
    let (mock, facilitator) = mock_and_client().await;
    let (_, payment_hash) = minted(&facilitator).await;
    let over_http = FacilitatorReceiver(facilitator)
        .invoice_status(&payment_hash)
        .await
        .unwrap()
        .expect("known");
    let in_process = Receiver::invoice_status(&mock, &payment_hash)
        .await
        .unwrap()
        .expect("known");
    assert_eq!(over_http, in_process);
    assert_eq!(in_process.state, InvoiceState::Open);
}

#[tokio::test]
async fn a_malformed_hash_is_a_400_with_an_error() {
    let (mock, facilitator) = mock_and_client().await;
    let (_, payment_hash) = minted(&facilitator).await;
    let hex = payment_hash.to_lower_hex_string();
    let client = reqwest::Client::new();
    for bad in [
        hex.to_uppercase(),
        hex[..63].to_owned(),
        format!("{hex}0"),
        "zz".repeat(32),
        format!("{}%61", &hex[..63]),
        "not-a-hash".to_owned(),
    ] {
        let response = client
            .get(format!("{}/invoices/{bad}", mock.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_required_api_key_is_enforced() {
    let mock = MockFacilitator::builder()
        .require_bearer_token("s3cret")
        .start()
        .await
        .unwrap();
    let authorized = HttpFacilitator::builder(mock.url())
        .bearer_token("s3cret")
        .build()
        .unwrap();
    let (_, payment_hash) = minted(&authorized).await;

    let anonymous = HttpFacilitator::new(mock.url()).unwrap();
    let wrong = HttpFacilitator::builder(mock.url())
        .bearer_token("guess")
        .build()
        .unwrap();
    for refused in [anonymous, wrong] {
        let err = refused.invoice_status(&payment_hash).await.unwrap_err();
        assert!(is_status(&err, StatusCode::UNAUTHORIZED), "{err}");
    }
    let status = authorized.invoice_status(&payment_hash).await.unwrap();
    assert_eq!(status.state, InvoiceState::Open);
}

#[tokio::test]
async fn each_status_call_is_recorded_with_its_path() {
    let (mock, facilitator) = mock_and_client().await;
    let (_, payment_hash) = minted(&facilitator).await;
    facilitator.invoice_status(&payment_hash).await.unwrap();
    Facilitator::invoice_status(&mock, &payment_hash)
        .await
        .unwrap();

    let recorded = mock.calls_to(FacilitatorCall::Invoice);
    assert_eq!(recorded.len(), 2, "over HTTP and in process");
    let path = format!("/invoices/{}", payment_hash.to_lower_hex_string());
    for call in &recorded {
        assert_eq!(call.path, path);
        assert_eq!(call.status, StatusCode::OK);
        assert!(call.request_body.is_empty());
        assert_eq!(call.response()["state"], json!("open"));
    }
    assert_eq!(mock.call_count(FacilitatorCall::Invoice), 2);
}

#[tokio::test]
async fn an_injected_fault_applies_in_process_too() {
    let mock = MockFacilitator::new();
    let (_, payment_hash) = minted(&mock).await;
    mock.fail_next(
        FacilitatorCall::Invoice,
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
    );
    let err = Facilitator::invoice_status(&mock, &payment_hash)
        .await
        .unwrap_err();
    assert!(is_status(&err, StatusCode::SERVICE_UNAVAILABLE), "{err}");
    let status = Facilitator::invoice_status(&mock, &payment_hash)
        .await
        .expect("a one-shot fault is gone");
    assert_eq!(status.state, InvoiceState::Open);
    assert_eq!(
        mock.calls_to(FacilitatorCall::Invoice)[0].fault,
        Some(Fault::Status(StatusCode::SERVICE_UNAVAILABLE))
    );
}

#[tokio::test]
async fn a_fault_of_another_call_misconfigures_the_status_call() {
    let (mock, facilitator) = mock_and_client().await;
    let (_, payment_hash) = minted(&facilitator).await;
    mock.fail_next(FacilitatorCall::Invoice, Fault::Invalid("nope".into()));
    let err = facilitator.invoice_status(&payment_hash).await.unwrap_err();
    assert!(is_status(&err, StatusCode::INTERNAL_SERVER_ERROR), "{err}");
}

#[tokio::test]
async fn debug_of_an_invoice_status_never_shows_the_preimage() {
    let (mock, facilitator) = mock_and_client().await;
    let (requirements, payment_hash) = minted(&facilitator).await;
    let payment = mock.pay_invoice(&requirements.extra.invoice).unwrap();
    let paid = facilitator.invoice_status(&payment_hash).await.unwrap();

    let debug = format!("{paid:?} {paid:#?}");
    assert!(!debug.contains(&payment.preimage), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(debug.contains(&payment.payment_hash), "{debug}");
}

// ---------------------------------------------------------------------------------------------
// The HTTP client refuses hostile answers

/// A preimage and its payment hash, for the hostile server's answers.
const PREIMAGE: [u8; 32] = [42; 32];

fn payment_hash() -> [u8; 32] {
    sha256::Hash::hash(&PREIMAGE).to_byte_array()
}

/// A facilitator whose `GET /invoices/{paymentHash}` answers `body` (200, JSON), and a client
/// for it.
async fn facilitator_answering(body: String) -> HttpFacilitator {
    let app = axum::Router::new().route(
        "/invoices/{payment_hash}",
        axum::routing::get(move || async move {
            ([(http::header::CONTENT_TYPE, "application/json")], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    HttpFacilitator::new(format!("http://{addr}")).unwrap()
}

/// What the client makes of `answer` to its question about [`payment_hash`].
async fn client_reads(answer: Value) -> Result<InvoiceStatus, FacilitatorError> {
    facilitator_answering(answer.to_string())
        .await
        .invoice_status(&payment_hash())
        .await
}

fn assert_invalid_reply(read: Result<InvoiceStatus, FacilitatorError>) {
    match read {
        Err(FacilitatorError::InvalidReply {
            call: FacilitatorCall::Invoice,
            ..
        }) => {}
        other => panic!("expected an invalid reply, got {other:?}"),
    }
}

#[tokio::test]
async fn the_client_accepts_a_consistent_paid_answer() {
    let status = client_reads(json!({
        "paymentHash": payment_hash().to_lower_hex_string(),
        "state": "paid",
        "preimage": PREIMAGE.to_lower_hex_string(),
    }))
    .await
    .unwrap();
    assert_eq!(status.state, InvoiceState::Paid);
}

#[tokio::test]
async fn the_client_refuses_an_answer_about_another_payment_hash() {
    let another_hash = [9u8; 32].to_lower_hex_string();
    assert_invalid_reply(
        client_reads(json!({
            "paymentHash": another_hash,
            "state": "open",
        }))
        .await,
    );
}

#[tokio::test]
async fn the_client_refuses_paid_without_a_preimage() {
    assert_invalid_reply(
        client_reads(json!({
            "paymentHash": payment_hash().to_lower_hex_string(),
            "state": "paid",
        }))
        .await,
    );
}

#[tokio::test]
async fn the_client_refuses_a_preimage_that_does_not_hash_to_the_payment_hash() {
    let another_preimage = [43u8; 32].to_lower_hex_string();
    assert_invalid_reply(
        client_reads(json!({
            "paymentHash": payment_hash().to_lower_hex_string(),
            "state": "paid",
            "preimage": another_preimage,
        }))
        .await,
    );
}

#[tokio::test]
async fn the_client_refuses_uppercase_hex() {
    let upper_hash = json!({
        "paymentHash": payment_hash().to_lower_hex_string().to_uppercase(),
        "state": "open",
    });
    let upper_preimage = json!({
        "paymentHash": payment_hash().to_lower_hex_string(),
        "state": "paid",
        "preimage": PREIMAGE.to_lower_hex_string().to_uppercase(),
    });
    for answer in [upper_hash, upper_preimage] {
        assert_invalid_reply(client_reads(answer).await);
    }
}

#[tokio::test]
async fn the_client_refuses_a_preimage_on_an_unpaid_invoice() {
    for state in ["open", "cancelled"] {
        assert_invalid_reply(
            client_reads(json!({
                "paymentHash": payment_hash().to_lower_hex_string(),
                "state": state,
                "preimage": PREIMAGE.to_lower_hex_string(),
            }))
            .await,
        );
    }
}

#[tokio::test]
async fn the_client_refuses_an_unknown_state() {
    assert_invalid_reply(
        client_reads(json!({
            "paymentHash": payment_hash().to_lower_hex_string(),
            "state": "settled",
        }))
        .await,
    );
}

#[tokio::test]
async fn the_client_refuses_garbage() {
    for garbage in ["<html>502</html>", "{\"paymentHash\":", "null", "[]"] {
        let read = facilitator_answering(garbage.to_owned())
            .await
            .invoice_status(&payment_hash())
            .await;
        assert_invalid_reply(read);
    }
}
