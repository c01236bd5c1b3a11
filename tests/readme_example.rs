//! The README's test example, run as written there (`tests/readme_dependencies.rs` checks
//! that the README shows exactly this code, below this comment).

use axum::{Router, body::Body, routing::get};
use http::{Request, StatusCode};
use tower::ServiceExt as _;
use x402_lightning::header::X_PAYMENT;
use x402_lightning::mock::{MockFacilitator, TestWallet};
use x402_lightning::{PaymentRequired, Price, VerifiedPayment, X402Layer};

async fn weather(paid: VerifiedPayment) -> String {
    format!("sunny, for {} msat", paid.amount_msat)
}

#[tokio::test]
async fn weather_costs_10_sats() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockFacilitator::new(); // in process, regtest
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), 1_000_000); // msat
    let payments = X402Layer::builder(mock.clone(), mock.network())
        .pay_to(mock.pay_to())
        .build()?;
    let app = Router::new().route(
        "/weather",
        get(weather).route_layer(payments.charge(Price::sats(10))?),
    );

    let unpaid = app
        .clone()
        .oneshot(Request::get("/weather").body(Body::empty())?)
        .await?;
    assert_eq!(unpaid.status(), StatusCode::PAYMENT_REQUIRED);
    let body = axum::body::to_bytes(unpaid.into_body(), 64 * 1024).await?;
    let required: PaymentRequired = serde_json::from_slice(&body)?;

    let paid = Request::get("/weather")
        .header(X_PAYMENT, wallet.pay(&required.accepts[0]))
        .body(Body::empty())?;
    assert_eq!(app.oneshot(paid).await?.status(), StatusCode::OK);
    assert_eq!(mock.balance(wallet.public_key()), 990_000);
    Ok(())
}
