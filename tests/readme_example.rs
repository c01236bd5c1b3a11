//! The README's test example, run as written there (`tests/readme_dependencies.rs` checks
//! that the README shows exactly this code, below this comment).

use axum::{Router, body::Body, routing::get};
use http::{Request, StatusCode};
use tower::ServiceExt as _;
use x402_lightning::header::X_PAYMENT;
use x402_lightning::invoice::unix_now;
use x402_lightning::lnbtc::client::IntendedRequest;
use x402_lightning::lnbtc::header::{PAYMENT_REQUIRED, PAYMENT_SIGNATURE, decode_payment_required};
use x402_lightning::mock::{MockFacilitator, TestWallet};
use x402_lightning::{PaymentRequired, Price, VerifiedPayment, X402Layer};

async fn weather(paid: VerifiedPayment) -> String {
    format!("sunny, for {} msat", paid.amount_msat)
}

#[tokio::test]
async fn weather_costs_10_sats_in_either_flow() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockFacilitator::new(); // in process, regtest
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), 1_000_000); // msat, for the seed flow
    let payments = X402Layer::builder(mock.clone(), mock.network())
        .pay_to(mock.pay_to())
        .public_base_url("http://localhost") // lnbtc payments are bound to this origin
        .build()?;
    let app = Router::new().route(
        "/weather",
        get(weather).route_layer(payments.charge(Price::sats(10))?),
    );
    let unpaid = || Request::get("/weather").body(Body::empty());

    // lnbtc (x402 v2): check the PAYMENT-REQUIRED challenge against the request, pay its
    // invoice over the mock's Lightning network, send the preimage.
    let challenge = app.clone().oneshot(unpaid()?).await?;
    assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
    let required =
        decode_payment_required(challenge.headers()[PAYMENT_REQUIRED].as_bytes(), 65536)?;
    let request = IntendedRequest::Http {
        method: "GET",
        url: "http://localhost/weather",
        body: b"",
        header_lines: &[],
    };
    let proof = wallet.pay_lnbtc(&mock, &required, &request, unix_now().as_secs())?;
    let paid = Request::get("/weather")
        .header(PAYMENT_SIGNATURE, proof)
        .body(Body::empty())?;
    assert_eq!(app.clone().oneshot(paid).await?.status(), StatusCode::OK);

    // The seed flow (x402 v1): sign the body's invoice, the facilitator pays it.
    let challenge = app.clone().oneshot(unpaid()?).await?;
    let body = axum::body::to_bytes(challenge.into_body(), 65536).await?;
    let required: PaymentRequired = serde_json::from_slice(&body)?;
    let paid = Request::get("/weather")
        .header(X_PAYMENT, wallet.pay(&required.accepts[0]))
        .body(Body::empty())?;
    assert_eq!(app.oneshot(paid).await?.status(), StatusCode::OK);
    assert_eq!(mock.balance(wallet.public_key()), 990_000);
    Ok(())
}
