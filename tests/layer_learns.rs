//! What the layer does not know yet never costs a client: a fresh instance that has not heard of
//! its facilitator's node finds out (bounded) before judging a paid proof, answers 503 with
//! `Retry-After` when it cannot, and never a terminal verdict; and a 402 offers only the flows the
//! facilitator serves, offering a flow again once the facilitator announces it.
//!
//! The fresh-instance scenarios run over real HTTP: two resource-server instances behind one
//! public origin (as behind a load balancer), a mock facilitator as a real HTTP server.

mod common;
#[path = "common/frames_and_logs.rs"]
mod frames_and_logs;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use common::{demo_app, demo_prices, facilitator_for, serve};
use frames_and_logs::Captured;
use http::StatusCode;
use serde_json::Value;
use x402_lightning::clock::ManualClock;
use x402_lightning::invoice::unix_now;
use x402_lightning::layer::SupportError;
use x402_lightning::lnbtc::client::IntendedRequest;
use x402_lightning::lnbtc::header::decode_payment_required;
use x402_lightning::lnbtc::reason;
use x402_lightning::mock::{Fault, MockFacilitator, MockNode, TestWallet};
use x402_lightning::{FacilitatorCall, Flows, HttpFacilitator, PaymentRequired, X402Layer};

/// The public origin both instances are reached at.
const ORIGIN: &str = "http://shop.example";

/// A resource-server instance: the demo app behind its own layer, payTo not pinned.
struct Instance {
    layer: X402Layer<HttpFacilitator>,
    url: String,
    client: reqwest::Client,
}

impl Instance {
    async fn start(mock: &MockFacilitator, clock: Option<ManualClock>) -> Self {
        let mut builder = demo_prices(facilitator_for(mock), mock.network())
            .public_base_url(ORIGIN)
            .flows(Flows::BOTH);
        if let Some(clock) = clock {
            builder = builder.clock(clock);
        }
        let layer = builder.build().expect("layer builds");
        let app = demo_app(Arc::new(AtomicUsize::new(0))).layer(layer.clone());
        let addr = serve(app).await;
        Instance {
            layer,
            url: format!("http://{addr}"),
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, header: Option<(&str, &str)>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.url));
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        request.send().await.expect("request sent")
    }

    /// A paid `PAYMENT-SIGNATURE` for `GET /weather`, from this instance's 402.
    async fn paid_proof(&self, mock: &MockFacilitator, wallet: &TestWallet) -> String {
        let challenge = self.get("/weather", None).await;
        assert_eq!(challenge.status(), StatusCode::PAYMENT_REQUIRED);
        let header = challenge.headers()["payment-required"].as_bytes();
        let required = decode_payment_required(header, 64 * 1024).expect("challenge");
        let intended = IntendedRequest::Http {
            method: "GET",
            url: &format!("{ORIGIN}/weather"),
            body: b"",
            header_lines: &[],
        };
        wallet
            .pay_lnbtc(mock, &required, &intended, unix_now().as_secs())
            .expect("paid")
    }
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

/// A mock facilitator serving `flows` (as the project's facilitator service serves `lnbtc`
/// alone), announcing its node or not.
async fn facilitator(flows: Flows, announce_pay_to: bool) -> MockFacilitator {
    MockFacilitator::builder()
        .flows(flows)
        .announce_pay_to(announce_pay_to)
        .start()
        .await
        .expect("mock starts")
}

#[tokio::test]
async fn a_fresh_instance_takes_a_paid_proof_though_the_facilitator_lacks_a_flow() {
    // The scenario: both flows on, payTo not pinned, a facilitator whose /supported
    // lacks the seed flow (but names its node on the lnbtc kind).
    let mock = facilitator(Flows::LNBTC, true).await;
    let wallet = TestWallet::random();
    let first = Instance::start(&mock, None).await;
    let proof = first.paid_proof(&mock, &wallet).await;

    let fresh = Instance::start(&mock, None).await;
    let check = fresh.layer.check_facilitator().await;
    assert!(
        matches!(
            check,
            Err(SupportError::NetworkNotSupported { served, .. }) if served == Flows::LNBTC
        ),
        "{check:?}"
    );
    // ...yet it learned the node from the lnbtc kind: the proof is settled and served at once.
    let paid = fresh
        .get("/weather", Some(("PAYMENT-SIGNATURE", &proof)))
        .await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert!(paid.headers().contains_key("payment-response"));
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 1);
}

#[tokio::test]
async fn a_fresh_instance_finds_out_the_payee_before_it_answers() {
    // No check at start-up, and a facilitator whose /supported names no node at all: the
    // instance asks /supported, then has its receiver mint one invoice, then judges.
    let mock = facilitator(Flows::BOTH, false).await;
    let wallet = TestWallet::random();
    let proof = Instance::start(&mock, None)
        .await
        .paid_proof(&mock, &wallet)
        .await;
    let fresh = Instance::start(&mock, None).await;
    mock.clear_calls();
    let paid = fresh
        .get("/weather", Some(("PAYMENT-SIGNATURE", &proof)))
        .await;
    assert_eq!(paid.status(), StatusCode::OK, "{:?}", json(paid).await);
    assert_eq!(
        mock.call_count(FacilitatorCall::Requirements),
        1,
        "one invoice to learn"
    );
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 1);

    // The same proof again: the layer's own memory refuses it now, as a verdict.
    let replay = fresh
        .get("/weather", Some(("PAYMENT-SIGNATURE", &proof)))
        .await;
    assert_eq!(replay.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(json(replay).await["error"], reason::DUPLICATE_SETTLEMENT);
}

#[tokio::test]
async fn a_payee_the_layer_cannot_check_yet_gets_a_503_never_a_verdict() {
    let mock = facilitator(Flows::BOTH, true).await;
    let wallet = TestWallet::random();
    let proof = Instance::start(&mock, None)
        .await
        .paid_proof(&mock, &wallet)
        .await;
    // The facilitator is down for the fresh instance's lookups.
    for call in [FacilitatorCall::Supported, FacilitatorCall::Requirements] {
        mock.fail_always(call, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    }
    let clock = ManualClock::starting_now();
    let fresh = Instance::start(&mock, Some(clock.clone())).await;
    let answer = fresh
        .get("/weather", Some(("PAYMENT-SIGNATURE", &proof)))
        .await;
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers()["retry-after"], "5");
    assert_eq!(answer.headers()["cache-control"], "no-store");
    assert!(!answer.headers().contains_key("payment-required"));
    let body = json(answer).await;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| error.contains("send the same payment again")),
        "{body}"
    );
    // Within the cool-down the layer does not ask again: still a 503, no new lookup.
    let asked = mock.call_count(FacilitatorCall::Supported);
    let again = fresh
        .get("/weather", Some(("PAYMENT-SIGNATURE", &proof)))
        .await;
    assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        mock.call_count(FacilitatorCall::Supported) <= asked + 1,
        "bounded lookups"
    );
    assert_eq!(
        mock.call_count(FacilitatorCall::Settle),
        0,
        "nothing settled"
    );

    // The facilitator is back and the retry time has passed: the same proof is served.
    mock.heal_all();
    clock.advance(Duration::from_secs(5));
    let paid = fresh
        .get("/weather", Some(("PAYMENT-SIGNATURE", &proof)))
        .await;
    assert_eq!(paid.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_proof_for_a_foreign_node_is_refused_once_the_layer_knows_its_own() {
    // A client that minted its own invoice (its own node, its own preimage) and built a proof
    // for it: a fresh instance looks its facilitator up, then refuses it as a verdict.
    let mock = facilitator(Flows::BOTH, true).await;
    let foreign = MockFacilitator::builder()
        .node(MockNode::random())
        .start()
        .await
        .expect("mock starts");
    let wallet = TestWallet::random();
    // The attacker's challenge for the same request, from an instance paid through its node.
    let proof = Instance::start(&foreign, None)
        .await
        .paid_proof(&foreign, &wallet)
        .await;
    let fresh = Instance::start(&mock, None).await;
    let refused = fresh
        .get("/weather", Some(("PAYMENT-SIGNATURE", &proof)))
        .await;
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(refused.headers().contains_key("payment-required"));
    assert_eq!(json(refused).await["error"], reason::PAY_TO_MISMATCH);
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 0);
}

/// The kinds a 402 offers: `(v1 body accepts, lnbtc PAYMENT-REQUIRED accepts)`.
async fn offered(instance: &Instance) -> (usize, usize) {
    let challenge = instance.get("/weather", None).await;
    if challenge.status() != StatusCode::PAYMENT_REQUIRED {
        panic!("{}: {:?}", challenge.status(), challenge.text().await);
    }
    let lnbtc = challenge
        .headers()
        .get("payment-required")
        .map_or(0, |header| {
            decode_payment_required(header.as_bytes(), 64 * 1024)
                .expect("challenge")
                .accepts
                .len()
        });
    let body = json(challenge).await;
    let v1 = match body["x402Version"].as_u64() {
        Some(1) => serde_json::from_value::<PaymentRequired>(body)
            .expect("v1 body")
            .accepts
            .len(),
        _ => 0,
    };
    (v1, lnbtc)
}

#[tokio::test]
async fn a_402_offers_only_the_flows_the_facilitator_serves_and_again_once_it_does() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder()
        .flows(Flows::LNBTC)
        .clock(clock.clone())
        .start()
        .await
        .expect("mock starts");
    let instance = Instance::start(&mock, Some(clock.clone())).await;
    // Before the facilitator has answered, every configured flow is offered.
    assert_eq!(instance.layer.offered_flows(), Flows::BOTH);
    assert!(instance.layer.check_facilitator().await.is_err());
    assert_eq!(instance.layer.offered_flows(), Flows::LNBTC);

    let challenge = instance.get("/weather", None).await;
    assert!(challenge.headers().contains_key("payment-required"));
    let body = json(challenge).await;
    assert_eq!(
        body["x402Version"], 2,
        "the body is the v2 challenge: {body}"
    );
    assert_eq!(body["error"], "PAYMENT-SIGNATURE header is required");
    assert_eq!(offered(&instance).await, (0, 1));

    // An authorization for a flow the facilitator does not serve moves nothing: a 402 offering
    // what it does serve, and no /verify.
    let wallet = TestWallet::random();
    let invoice_of_elsewhere = {
        let ask = x402_lightning::RequirementsRequest::new(mock.network(), 10_000, "http://x/");
        x402_lightning::Facilitator::requirements(&facilitator_for(&mock), &ask)
            .await
            .expect("requirements")
    };
    let authorization = wallet.pay(&invoice_of_elsewhere);
    let refused = instance
        .get("/weather", Some(("X-PAYMENT", &authorization)))
        .await;
    let status = refused.status();
    assert_eq!(
        status,
        StatusCode::PAYMENT_REQUIRED,
        "{:?}",
        refused.text().await
    );
    assert!(refused.headers().contains_key("payment-required"));
    let error = json(refused).await["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("takes PAYMENT-SIGNATURE"), "{error}");
    assert_eq!(mock.call_count(FacilitatorCall::Verify), 0);

    // The facilitator starts serving the seed flow: within a minute of the last answer, a
    // priced request has the layer ask again, and 402s offer both flows.
    mock.serve_flows(Flows::BOTH);
    clock.advance(Duration::from_secs(60));
    let _ = instance.get("/weather", None).await;
    tokio::time::timeout(Duration::from_secs(20), async {
        while instance.layer.offered_flows() != Flows::BOTH {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the background check ran");
    assert_eq!(offered(&instance).await, (1, 1));
}

#[tokio::test]
async fn a_route_whose_flows_the_facilitator_serves_none_of_is_a_502_with_nothing_minted() {
    let mock = facilitator(Flows::LNBTC, true).await;
    let layer = demo_prices(facilitator_for(&mock), mock.network())
        .flows(Flows::V1)
        .build()
        .expect("layer builds");
    let _ = layer.check_facilitator().await;
    let addr = serve(demo_app(Arc::new(AtomicUsize::new(0))).layer(layer)).await;
    mock.clear_calls();
    let answer = reqwest::get(format!("http://{addr}/weather"))
        .await
        .expect("sent");
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    let error = json(answer).await["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("serves none of this route's payment flows (v1)"),
        "{error}"
    );
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_withdrawn_flow_is_logged_once_and_its_return_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mock = MockFacilitator::builder().flows(Flows::LNBTC).build();
    let layer = demo_prices(mock.clone(), mock.network())
        .public_base_url(ORIGIN)
        .build()
        .expect("layer builds");
    for _ in 0..3 {
        let _ = layer.check_facilitator().await;
    }
    mock.serve_flows(Flows::BOTH);
    for _ in 0..3 {
        let _ = layer.check_facilitator().await;
    }
    let log = captured.text();
    assert_eq!(log.matches("does not serve this flow").count(), 1, "{log}");
    assert_eq!(log.matches("serves this flow again").count(), 1, "{log}");
}
