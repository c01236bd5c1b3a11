//! The mock as the Lightning network and as an lnbtc facilitator: it pays the invoices it
//! minted and only those, once, before they expire; its v2 `/settle` checks proofs with the
//! scheme's rules and records each payment hash once; `/supported` lists the lnbtc kind.

use std::time::Duration;

use serde_json::{Value, json};
use x402_lightning::clock::ManualClock;
use x402_lightning::lnbtc::header::decode_payment_signature;
use x402_lightning::lnbtc::types::SettleRequest;
use x402_lightning::lnbtc::{binding::RequestHash, reason};
use x402_lightning::mock::{MockFacilitator, PayError, TestWallet};
use x402_lightning::{Facilitator, FacilitatorCall, Network, RequirementsRequest};

const START: Duration = Duration::from_secs(1_700_000_000);

/// A `/requirements` ask bound to `hash`, expiring after 60 s.
fn bound_ask(hash: &RequestHash) -> RequirementsRequest {
    RequirementsRequest {
        description_hash: Some(hash.to_hex()),
        ..RequirementsRequest::new(Network::Regtest, 10_000, "http://shop.example/weather")
    }
}

#[tokio::test]
async fn it_mints_an_invoice_bound_to_the_asked_hash_and_pays_it_once() {
    let clock = ManualClock::at_unix(START);
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let hash = RequestHash([7; 32]);
    let minted = mock.requirements(&bound_ask(&hash)).await.expect("minted");
    let invoice = x402_lightning::lnbtc::invoice::decode(&minted.extra.invoice).expect("strict");
    assert_eq!(invoice.description_hash, Some(hash.0));
    assert_eq!(invoice.expiry_secs, 60);

    let wallet = TestWallet::random();
    let paid = wallet
        .pay_invoice(&mock, &minted.extra.invoice)
        .expect("paid");
    assert_eq!(paid.amount_msat, 10_000);
    assert_eq!(paid.payment_hash, invoice.payment_hash_hex());
    let preimage = <[u8; 32]>::try_from(
        (0..32)
            .map(|i| u8::from_str_radix(&paid.preimage[2 * i..2 * i + 2], 16).expect("hex"))
            .collect::<Vec<u8>>(),
    )
    .expect("32 bytes");
    assert!(invoice.is_paid_by(&preimage));

    assert_eq!(
        wallet.pay_invoice(&mock, &minted.extra.invoice),
        Err(PayError::AlreadyPaid)
    );
    let other = MockFacilitator::new();
    assert_eq!(
        wallet.pay_invoice(&other, &minted.extra.invoice),
        Err(PayError::Unknown)
    );
    assert_eq!(
        wallet.pay_invoice(&mock, "lnbcrt1garbage"),
        Err(PayError::Unknown)
    );

    let late = mock.requirements(&bound_ask(&hash)).await.expect("minted");
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        wallet.pay_invoice(&mock, &late.extra.invoice),
        Err(PayError::Expired)
    );
}

#[tokio::test]
async fn its_pay_endpoint_answers_json_with_a_status_per_refusal() {
    let mock = MockFacilitator::start().await.expect("mock");
    let hash = RequestHash([9; 32]);
    let minted = mock.requirements(&bound_ask(&hash)).await.expect("minted");
    let client = reqwest::Client::new();
    let pay = |body: Value| {
        client
            .post(format!("{}/pay", mock.url()))
            .json(&body)
            .send()
    };
    let paid = pay(json!({ "invoice": minted.extra.invoice }))
        .await
        .expect("sent");
    assert_eq!(paid.status(), 200);
    let paid: Value = paid.json().await.expect("json");
    assert_eq!(paid["amountMsat"], "10000");
    assert_eq!(paid["preimage"].as_str().map(str::len), Some(64));
    let again = pay(json!({ "invoice": minted.extra.invoice }))
        .await
        .expect("sent");
    assert_eq!(again.status(), 409);
    let unknown = pay(json!({ "invoice": "lnbcrt1nothing" }))
        .await
        .expect("sent");
    assert_eq!(unknown.status(), 404);
    let malformed = pay(json!({ "bolt11": "x" })).await.expect("sent");
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.expect("json error");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn its_v2_settle_checks_the_proof_and_records_each_payment_hash_once() {
    let mock = MockFacilitator::new();
    let supported = mock.supported().await.expect("supported");
    assert!(supported.kinds.iter().any(|kind| kind.x402_version == 2
        && kind.scheme == "exact"
        && kind.network == Network::Regtest.lnbtc_id()));

    // A challenge as a layer would make it, paid by the wallet.
    let payments = x402_lightning::X402Layer::builder(mock.clone(), mock.network())
        .pay_to(mock.pay_to())
        .public_base_url("http://shop.example")
        .route("GET /weather", x402_lightning::Price::sats(10))
        .build()
        .expect("layer");
    let app = axum::Router::new()
        .route("/weather", axum::routing::get(|| async { "sunny" }))
        .layer(payments);
    use tower::ServiceExt as _;
    let response = app
        .oneshot(
            http::Request::get("/weather")
                .header("host", "shop.example")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let required = x402_lightning::lnbtc::header::decode_payment_required(
        response.headers()["payment-required"].as_bytes(),
        64 * 1024,
    )
    .expect("challenge");
    let intended = x402_lightning::lnbtc::client::IntendedRequest::Http {
        method: "GET",
        url: "http://shop.example/weather",
        body: b"",
        header_lines: &[],
    };
    let now = x402_lightning::invoice::unix_now().as_secs();
    let proof = TestWallet::random()
        .pay_lnbtc(&mock, &required, &intended, now)
        .expect("paid");
    let payment = decode_payment_signature(proof.as_bytes(), 64 * 1024).expect("decodable");
    let order = SettleRequest::new(payment.clone(), &required.accepts[0]);

    let settled = mock.settle_lnbtc(&order).await.expect("answer");
    assert!(settled.success, "{settled:?}");
    assert_eq!(settled.payer, None);
    let replay = mock.settle_lnbtc(&order).await.expect("answer");
    assert_eq!(
        replay.error_reason.as_deref(),
        Some(reason::DUPLICATE_SETTLEMENT)
    );

    let mut wrong = payment;
    wrong["payload"]["preimage"] = json!("00".repeat(32));
    let refused = mock
        .settle_lnbtc(&SettleRequest::new(wrong, &required.accepts[0]))
        .await
        .expect("answer");
    assert_eq!(
        refused.error_reason.as_deref(),
        Some(reason::PREIMAGE_HASH_MISMATCH)
    );
    let recorded = mock.calls_to(FacilitatorCall::Settle);
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].request()["x402Version"], 2);
}
