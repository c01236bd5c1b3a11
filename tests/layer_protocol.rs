//! Every row of PROTOCOL.md's table "What the middleware answers", over real HTTP against the
//! mock facilitator.

mod common;

use common::*;
use http::StatusCode;
use x402_lightning::FacilitatorCall;

#[tokio::test]
async fn a_paid_request_is_verified_served_and_settled() {
    let h = start().await;
    let payment = h.payment_for("/weather").await;
    let response = h.get("/weather", Some(&payment)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let settlement = payment_response(&response).expect("X-PAYMENT-RESPONSE");
    assert!(settlement.success);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["amountMsat"], WEATHER_MSAT);
    assert_eq!(h.calls(FacilitatorCall::Verify), 1);
    assert_eq!(h.calls(FacilitatorCall::Settle), 1);
    assert_eq!(h.handler_runs(), 1);
    assert_eq!(
        h.mock.balance(&h.wallet.public_key()),
        FUNDS_MSAT - WEATHER_MSAT
    );
}
