//! What tripped a new user's first hour, each pinned: a price that misses its route, a rejected
//! body that got charged, a mock that needed TCP, hooks to learn what a payment came to.
//!
//! These tests drive apps with `tower::ServiceExt::oneshot`, the way a user's own tests would,
//! against the in-process mock facilitator; one runs over TCP against the HTTP mock.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;
use x402_lightning::Flows;
use x402_lightning::header::{X_PAYMENT, X_PAYMENT_RESPONSE};
use x402_lightning::layer::{ConfigError, PaymentRefused, SettleFailed, Settled, X402LayerBuilder};
use x402_lightning::mock::{Fault, MockFacilitator, TestWallet};
use x402_lightning::{
    FacilitatorCall, HttpFacilitator, Network, PaymentRequired, Price, PriceTag, VerifiedPayment,
    X402Layer,
};

const FUNDS_MSAT: u64 = 1_000_000;

/// An in-process mock with a funded wallet.
fn funded_mock() -> (MockFacilitator, TestWallet) {
    let mock = MockFacilitator::new();
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), FUNDS_MSAT);
    (mock, wallet)
}

/// A layer paid through the in-process `mock`, its payee pinned to the mock's node.
fn payments(mock: &MockFacilitator) -> X402LayerBuilder<MockFacilitator> {
    X402Layer::builder(mock.clone(), mock.network())
        .flows(Flows::V1)
        .pay_to(mock.pay_to())
}

/// `/report` behind a layer from `builder` whose price table charges 10 sats for it.
fn report_app<F: x402_lightning::Facilitator>(builder: X402LayerBuilder<F>) -> Router {
    let layer = builder
        .route("GET /report", Price::sats(10))
        .build()
        .expect("builds");
    Router::new().route("/report", get(report)).layer(layer)
}

/// The paid handler of the tests: it names who paid.
async fn report(paid: VerifiedPayment) -> String {
    format!("report for {}", paid.payer)
}

async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.expect("infallible")
}

async fn json_of(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

async fn text_of(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    String::from_utf8_lossy(&bytes).into_owned()
}

fn get_request(path: &str, payment: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(payment) = payment {
        request = request.header(X_PAYMENT, payment);
    }
    request.body(Body::empty()).expect("request")
}

/// The `X-PAYMENT` of `wallet` for a fresh 402 of `request`.
async fn pay(app: &Router, wallet: &TestWallet, request: Request<Body>) -> String {
    let offer = send(app, request).await;
    assert_eq!(offer.status(), StatusCode::PAYMENT_REQUIRED);
    let required: PaymentRequired = serde_json::from_value(json_of(offer).await).expect("402");
    wallet.pay(&required.accepts[0])
}

/// `GET path`, paid by `wallet` for a fresh 402 of the same path.
async fn buy(app: &Router, wallet: &TestWallet, path: &str) -> Response<Body> {
    let payment = pay(app, wallet, get_request(path, None)).await;
    send(app, get_request(path, Some(&payment))).await
}

/// Events the hooks saw, in order.
#[derive(Clone, Default)]
struct Seen {
    settled: Arc<Mutex<Vec<Settled>>>,
    settle_failed: Arc<Mutex<Vec<SettleFailed>>>,
    refused: Arc<Mutex<Vec<PaymentRefused>>>,
}

impl Seen {
    fn hook_into<F: x402_lightning::Facilitator>(
        &self,
        builder: X402LayerBuilder<F>,
    ) -> X402LayerBuilder<F> {
        let (settled, failed, refused) = (
            Arc::clone(&self.settled),
            Arc::clone(&self.settle_failed),
            Arc::clone(&self.refused),
        );
        builder
            .on_settled(move |event| {
                let settled = Arc::clone(&settled);
                async move { settled.lock().expect("lock").push(event) }
            })
            .on_settle_failed(move |event| {
                let failed = Arc::clone(&failed);
                async move { failed.lock().expect("lock").push(event) }
            })
            .on_payment_refused(move |event| {
                let refused = Arc::clone(&refused);
                async move { refused.lock().expect("lock").push(event) }
            })
    }

    fn settled(&self) -> Vec<Settled> {
        self.settled.lock().expect("lock").clone()
    }

    fn settle_failed(&self) -> Vec<SettleFailed> {
        self.settle_failed.lock().expect("lock").clone()
    }

    fn refused(&self) -> Vec<PaymentRefused> {
        self.refused.lock().expect("lock").clone()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A price that misses its route
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_price_table_typo_leaves_the_route_unpriced_but_the_payment_extractor_refuses_to_serve() {
    let (mock, _) = funded_mock();
    // The table prices `/reports`; the router serves `/report`.
    let layer = payments(&mock)
        .route("GET /reports", Price::sats(10))
        .build()
        .expect("builds");
    let app = Router::new().route("/report", get(report)).layer(layer);

    let response = send(&app, get_request("/report", None)).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = json_of(response).await;
    let error = body["error"].as_str().expect("an error");
    assert!(error.contains("GET /report"), "{error}");
    assert!(error.contains("charge"), "{error}");
    assert!(!error.contains("report for"), "content leaked: {error}");
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), 0);
}

#[tokio::test]
async fn a_charge_on_the_route_prices_exactly_that_route() {
    let (mock, wallet) = funded_mock();
    let payments = payments(&mock).build().expect("builds");
    let app = Router::new().route("/", get(|| async { "free" })).route(
        "/report",
        get(report).route_layer(payments.charge(Price::sats(10)).expect("charge")),
    );

    // The free route stays free, and asks the facilitator nothing.
    let free = send(&app, get_request("/", None)).await;
    assert_eq!(free.status(), StatusCode::OK);
    assert_eq!(text_of(free).await, "free");
    assert_eq!(mock.calls().len(), 0);

    // A method the route does not serve gets axum's 405, unpriced.
    let wrong_method = Request::post("/report").body(Body::empty()).expect("req");
    assert_eq!(
        send(&app, wrong_method).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(mock.calls().len(), 0);

    // The priced one asks for 10 sats, and serves once paid.
    let paid = buy(&app, &wallet, "/report").await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert!(paid.headers().contains_key(X_PAYMENT_RESPONSE));
    assert_eq!(
        text_of(paid).await,
        format!("report for {}", wallet.public_key())
    );
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 10_000);
}

#[tokio::test]
async fn charged_routes_share_one_settled_memory() {
    let (mock, wallet) = funded_mock();
    let payments = payments(&mock).build().expect("builds");
    let price = || payments.charge(Price::sats(10)).expect("charge");
    let app = Router::new()
        .route("/a", get(report).route_layer(price()))
        .route("/b", get(report).route_layer(price()));

    let payment = pay(&app, &wallet, get_request("/a", None)).await;
    let first = send(&app, get_request("/a", Some(&payment))).await;
    assert_eq!(first.status(), StatusCode::OK);

    // The same invoice on the other route is refused by the layer's memory, before /verify.
    let verifies = mock.call_count(FacilitatorCall::Verify);
    let reuse = send(&app, get_request("/b", Some(&payment))).await;
    assert_eq!(reuse.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        json_of(reuse).await["error"],
        "Invalid payment: this invoice was already settled"
    );
    assert_eq!(mock.call_count(FacilitatorCall::Verify), verifies);
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 10_000);
}

#[test]
#[should_panic(expected = "prices nothing")]
fn applying_a_layer_that_prices_nothing_panics_at_start_up() {
    let mock = MockFacilitator::new();
    let payments = payments(&mock).build().expect("builds");
    let _app: Router = Router::new().route("/report", get(report)).layer(payments);
}

#[test]
fn a_zero_charge_is_refused_with_the_reason() {
    let mock = MockFacilitator::new();
    let payments = payments(&mock).build().expect("builds");
    let err = payments.charge(Price::msat(0)).expect_err("zero refused");
    assert!(matches!(err, ConfigError::Route(_)), "{err:?}");
    assert!(err.to_string().contains("zero"), "{err}");
    // The error names where the charge was declared.
    assert!(
        err.to_string().contains("tests/layer_newcomer.rs:"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A rejected body is not charged on a settle-after route
// ---------------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct Summarize {
    text: String,
}

async fn summarize(paid: VerifiedPayment, Json(body): Json<Summarize>) -> Json<Value> {
    Json(serde_json::json!({ "words": body.text.split_whitespace().count(), "paidBy": paid.payer }))
}

fn summarize_app(tag: PriceTag, payments: &X402Layer<MockFacilitator>) -> Router {
    Router::new().route(
        "/summarize",
        post(summarize).route_layer(payments.charge(tag).expect("charge")),
    )
}

fn post_json(body: &str, payment: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/summarize").header(CONTENT_TYPE, "application/json");
    if let Some(payment) = payment {
        request = request.header(X_PAYMENT, payment);
    }
    request.body(Body::from(body.to_owned())).expect("request")
}

#[tokio::test]
async fn a_settle_after_route_that_rejects_the_body_charges_nothing() {
    let (mock, wallet) = funded_mock();
    let payments = payments(&mock).build().expect("builds");
    let app = summarize_app(PriceTag::fixed(Price::sats(5)), &payments);

    let payment = pay(&app, &wallet, post_json("{}", None)).await;
    let rejected = send(
        &app,
        post_json(r#"{"txt": "no such field"}"#, Some(&payment)),
    )
    .await;
    assert_eq!(rejected.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!rejected.headers().contains_key(X_PAYMENT_RESPONSE));
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 0);
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT);

    // The same payment still buys a well-formed request.
    let served = send(&app, post_json(r#"{"text": "a b c"}"#, Some(&payment))).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert!(served.headers().contains_key(X_PAYMENT_RESPONSE));
    assert_eq!(json_of(served).await["words"], 3);
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 5_000);
}

#[tokio::test]
async fn a_settle_before_route_charges_even_when_the_body_is_then_rejected() {
    let (mock, wallet) = funded_mock();
    let payments = payments(&mock).build().expect("builds");
    let app = summarize_app(
        PriceTag::fixed(Price::sats(5)).settle_before_handler(),
        &payments,
    );

    let payment = pay(&app, &wallet, post_json("{}", None)).await;
    let rejected = send(&app, post_json("{}", Some(&payment))).await;
    // As documented on `settle_before_handler`: paid whatever the handler answers.
    assert_eq!(rejected.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(rejected.headers().contains_key(X_PAYMENT_RESPONSE));
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 5_000);
}

// ---------------------------------------------------------------------------------------------
// 5. In process, and over HTTP with the same mock
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_in_process_mock_answers_like_the_http_one_faults_included() {
    let (mock, wallet) = funded_mock();
    let app = report_app(payments(&mock));

    mock.fail_next(
        FacilitatorCall::Settle,
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
    );
    let payment = pay(&app, &wallet, get_request("/report", None)).await;
    let failed = send(&app, get_request("/report", Some(&payment))).await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        json_of(failed).await["error"],
        "payment facilitator /settle answered 503 Service Unavailable"
    );
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT);

    let paid = send(&app, get_request("/report", Some(&payment))).await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 10_000);
    // Every call went through the mock's record, bodies as JSON.
    let settles = mock.calls_to(FacilitatorCall::Settle);
    assert_eq!(settles.len(), 2);
    assert_eq!(settles[1].response()["success"], true);
}

#[tokio::test]
async fn an_http_mock_also_answers_in_process_with_the_same_state() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let wallet = TestWallet::random();
    mock.fund(wallet.public_key(), FUNDS_MSAT);
    let over_http = HttpFacilitator::new(mock.url()).expect("client");
    // Minted over HTTP, paid in process: one ledger.
    let layer_http = X402Layer::builder(over_http, Network::Regtest)
        .flows(Flows::V1)
        .pay_to(mock.pay_to())
        .route("GET /report", Price::sats(10))
        .build()
        .expect("builds");
    let app_http = Router::new()
        .route("/report", get(report))
        .layer(layer_http);
    let payment = pay(&app_http, &wallet, get_request("/report", None)).await;

    let layer_in_process = payments(&mock)
        .route("GET /report", Price::sats(10))
        .build()
        .expect("builds");
    let app = Router::new()
        .route("/report", get(report))
        .layer(layer_in_process);
    assert_eq!(
        send(&app, get_request("/report", Some(&payment)))
            .await
            .status(),
        StatusCode::OK
    );
    assert!(mock.addr().is_some());
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 10_000);
}

#[test]
#[should_panic(expected = "in-process")]
fn an_in_process_mock_has_no_url() {
    let _ = MockFacilitator::new().url();
}

#[tokio::test]
async fn a_handler_can_be_tested_alone_with_a_built_verified_payment() {
    let app: Router = Router::new().route("/report", get(report));
    let mut request = get_request("/report", None);
    request.extensions_mut().insert(VerifiedPayment::new(
        "02abc",
        "00".repeat(32),
        10_000,
        Network::Regtest,
        "lnbcrt100n1",
    ));
    let response = send(&app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text_of(response).await, "report for 02abc");

    let settled = VerifiedPayment::new("p", "h", 1, Network::Bitcoin, "i").into_settled();
    assert!(settled.settled);
}

// ---------------------------------------------------------------------------------------------
// 6. Hooks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_settled_hook_learns_route_payment_and_amount() {
    let (mock, wallet) = funded_mock();
    let seen = Seen::default();
    let payments = seen.hook_into(payments(&mock)).build().expect("builds");
    let app = Router::new().route(
        "/items/{id}",
        get(report).route_layer(payments.charge(Price::sats(7)).expect("charge")),
    );

    let paid = buy(&app, &wallet, "/items/42").await;
    assert_eq!(paid.status(), StatusCode::OK);

    let settled = seen.settled();
    assert_eq!(settled.len(), 1);
    let event = &settled[0];
    assert_eq!(event.route, "/items/{id}", "axum's matched path");
    assert_eq!(event.method, http::Method::GET);
    assert_eq!(event.amount_msat, 7_000);
    assert_eq!(event.payer, wallet.public_key().to_string());
    assert_eq!(event.network, Network::Regtest);
    assert!(event.handler_ran);
    assert_eq!(event.payment_hash, event.settlement.transaction);
    assert_eq!(event.payment_hash.len(), 64);
    assert!(seen.settle_failed().is_empty());
    assert!(seen.refused().is_empty(), "an unpaid 402 is not a refusal");
}

#[tokio::test]
async fn a_table_route_is_named_as_declared_and_a_settle_before_hook_runs_before_the_handler() {
    let (mock, wallet) = funded_mock();
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let hooked = Arc::clone(&order);
    let layer = payments(&mock)
        .route(
            "GET /report",
            PriceTag::fixed(Price::sats(10)).settle_before_handler(),
        )
        .on_settled(move |event| {
            let order = Arc::clone(&hooked);
            async move {
                let seen = format!("settled {} before: {}", event.route, !event.handler_ran);
                order.lock().expect("lock").push(seen);
            }
        });
    let layer = layer.build().expect("builds");
    let handler_order = Arc::clone(&order);
    let app = Router::new()
        .route(
            "/report",
            get(move || {
                let order = Arc::clone(&handler_order);
                async move {
                    order.lock().expect("lock").push("handler".to_owned());
                    "paid"
                }
            }),
        )
        .layer(layer);

    let payment = pay(&app, &wallet, get_request("/report", None)).await;
    assert_eq!(
        send(&app, get_request("/report", Some(&payment)))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        *order.lock().expect("lock"),
        ["settled GET /report before: true", "handler"]
    );
}

#[tokio::test]
async fn the_settle_failed_hook_hears_refusals_and_outages_after_the_handler_ran() {
    let (mock, wallet) = funded_mock();
    let seen = Seen::default();
    let app = report_app(seen.hook_into(payments(&mock)));
    let payment = pay(&app, &wallet, get_request("/report", None)).await;

    mock.fail_next(
        FacilitatorCall::Settle,
        Fault::SettleFailed("insufficient_funds".into()),
    );
    let refused = send(&app, get_request("/report", Some(&payment))).await;
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    mock.fail_next(
        FacilitatorCall::Settle,
        Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
    );
    let outage = send(&app, get_request("/report", Some(&payment))).await;
    assert_eq!(outage.status(), StatusCode::BAD_GATEWAY);

    let failed = seen.settle_failed();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].route, "GET /report");
    assert_eq!(failed[0].reason, "insufficient_funds");
    assert_eq!(failed[0].status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(failed[0].amount_msat, 10_000);
    assert!(failed[0].handler_ran);
    assert!(!failed[0].may_have_paid);
    assert_eq!(failed[1].status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        failed[1].reason,
        "payment facilitator /settle answered 500 Internal Server Error"
    );
    assert_eq!(failed[0].payment_hash, failed[1].payment_hash);
    assert!(seen.settled().is_empty());
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT);
}

#[tokio::test]
async fn the_refusal_hook_hears_each_refused_payment_with_its_reason() {
    let (mock, wallet) = funded_mock();
    let seen = Seen::default();
    let app = report_app(seen.hook_into(payments(&mock)));

    // Garbage: refused before any invoice is known.
    let garbage = send(&app, get_request("/report", Some("%%%"))).await;
    assert_eq!(garbage.status(), StatusCode::PAYMENT_REQUIRED);
    // Invalid at /verify.
    let payment = pay(&app, &wallet, get_request("/report", None)).await;
    mock.fail_next(
        FacilitatorCall::Verify,
        Fault::Invalid("invalid_exact_lightning_payload_signature".into()),
    );
    let invalid = send(&app, get_request("/report", Some(&payment))).await;
    assert_eq!(invalid.status(), StatusCode::PAYMENT_REQUIRED);
    // Paid, then reused.
    assert_eq!(
        send(&app, get_request("/report", Some(&payment)))
            .await
            .status(),
        StatusCode::OK
    );
    let reused = send(&app, get_request("/report", Some(&payment))).await;
    assert_eq!(reused.status(), StatusCode::PAYMENT_REQUIRED);

    let refused = seen.refused();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused[0]
            .reason
            .starts_with("Invalid or malformed payment header"),
        "{:?}",
        refused[0].reason
    );
    assert_eq!(refused[0].payment_hash, None);
    assert_eq!(
        refused[1].reason,
        "invalid_exact_lightning_payload_signature"
    );
    assert_eq!(
        refused[2].reason,
        "Invalid payment: this invoice was already settled"
    );
    let hash = seen.settled()[0].payment_hash.clone();
    assert_eq!(refused[1].payment_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(refused[2].payment_hash.as_deref(), Some(hash.as_str()));
    assert!(refused.iter().all(|event| event.route == "GET /report"
        && event.amount_msat == 10_000
        && event.status == StatusCode::PAYMENT_REQUIRED));
}

#[tokio::test]
async fn a_panicking_hook_changes_nothing_for_the_client() {
    let (mock, wallet) = funded_mock();
    let app = report_app(
        payments(&mock).on_settled(|_| async { panic!("the revenue database is down") }),
    );
    let paid = buy(&app, &wallet, "/report").await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert!(paid.headers().contains_key(X_PAYMENT_RESPONSE));
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 10_000);
}

// ---------------------------------------------------------------------------------------------
// Found by review: layers that combine, hooks under races and panics, the hooks' fields
// ---------------------------------------------------------------------------------------------

/// A facilitator forwarding to the mock, whose settle answers can be bent.
struct Bent {
    mock: MockFacilitator,
    /// Rewrites each successful settle answer.
    bend: fn(&mut x402_lightning::SettleResponse),
}

impl x402_lightning::Facilitator for Bent {
    async fn requirements(
        &self,
        request: &x402_lightning::RequirementsRequest,
    ) -> Result<x402_lightning::PaymentRequirements, x402_lightning::FacilitatorError> {
        self.mock.requirements(request).await
    }

    async fn verify(
        &self,
        request: &x402_lightning::VerifyRequest,
    ) -> Result<x402_lightning::VerifyResponse, x402_lightning::FacilitatorError> {
        self.mock.verify(request).await
    }

    async fn settle(
        &self,
        request: &x402_lightning::SettleRequest,
    ) -> Result<x402_lightning::SettleResponse, x402_lightning::FacilitatorError> {
        let mut answer = self.mock.settle(request).await?;
        (self.bend)(&mut answer);
        Ok(answer)
    }

    async fn supported(
        &self,
    ) -> Result<x402_lightning::SupportedResponse, x402_lightning::FacilitatorError> {
        self.mock.supported().await
    }
}

/// A gate a handler or hook waits at: the test learns it arrived, and lets it go.
#[derive(Clone, Default)]
struct Gate {
    arrived: Arc<tokio::sync::Notify>,
    open: Arc<tokio::sync::Notify>,
}

impl Gate {
    async fn pass(&self) {
        self.arrived.notify_one();
        self.open.notified().await;
    }

    /// Waits until something arrived at the gate, failing the test after 20 s: a guard against
    /// a request that never gets there, not a measure of speed.
    async fn wait_for_arrival(&self) {
        tokio::time::timeout(std::time::Duration::from_secs(20), self.arrived.notified())
            .await
            .expect("something arrived at the gate");
    }
}

/// A route at `charged_path` that charges 3 sats itself, behind a price table layer (the one it
/// was charged from) pricing `table_route` at 10 sats.
fn table_around_a_charge(mock: &MockFacilitator, table_route: &str, charged_path: &str) -> Router {
    let base = payments(mock)
        .route(table_route, Price::sats(10))
        .build()
        .expect("builds");
    let charged = get(report).route_layer(base.charge(Price::sats(3)).expect("charge"));
    Router::new().route(charged_path, charged).layer(base)
}

#[tokio::test]
async fn a_charge_inside_a_price_table_layer_still_gets_its_payment() {
    let (mock, wallet) = funded_mock();
    let app = table_around_a_charge(&mock, "GET /table", "/charged");

    let paid = buy(&app, &wallet, "/charged").await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 3_000);
}

#[tokio::test]
async fn a_route_priced_by_the_table_and_a_charge_is_refused_loudly() {
    let (mock, wallet) = funded_mock();
    let app = table_around_a_charge(&mock, "GET /report", "/report");

    let refused = buy(&app, &wallet, "/report").await;
    assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let error = json_of(refused).await["error"].as_str().map(str::to_owned);
    assert!(error.is_some_and(|error| error.contains("priced twice")));
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT);
}

#[tokio::test]
async fn a_hook_that_panics_before_returning_its_future_changes_nothing() {
    let (mock, wallet) = funded_mock();
    let layer = payments(&mock)
        .route(
            "GET /report",
            PriceTag::fixed(Price::sats(10)).settle_before_handler(),
        )
        .on_settled(|_| -> std::future::Ready<()> { panic!("no revenue table") })
        .on_payment_refused(|_| -> std::future::Ready<()> { panic!("no abuse table") })
        .build()
        .expect("builds");
    let app = Router::new().route("/report", get(report)).layer(layer);

    let garbage = send(&app, get_request("/report", Some("%%%"))).await;
    assert_eq!(garbage.status(), StatusCode::PAYMENT_REQUIRED);
    let paid = buy(&app, &wallet, "/report").await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 10_000);
}

#[tokio::test]
async fn a_retry_waits_for_the_compensation_of_the_failed_attempt() {
    let (mock, wallet) = funded_mock();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let gate = Gate::default();
    let (hook_log, hook_gate) = (Arc::clone(&log), gate.clone());
    let app = report_app(payments(&mock).on_settle_failed(move |_| {
        let (log, gate) = (Arc::clone(&hook_log), hook_gate.clone());
        async move {
            gate.pass().await;
            log.lock().expect("lock").push("compensated".to_owned());
        }
    }));
    let payment = pay(&app, &wallet, get_request("/report", None)).await;
    mock.fail_next(
        FacilitatorCall::Settle,
        Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
    );

    let (first_app, first_payment) = (app.clone(), payment.clone());
    let first = tokio::spawn(async move {
        send(&first_app, get_request("/report", Some(&first_payment))).await
    });
    gate.wait_for_arrival().await;
    // The compensation still runs: the invoice is still claimed.
    let meanwhile = send(&app, get_request("/report", Some(&payment))).await;
    assert_eq!(meanwhile.status(), StatusCode::CONFLICT);
    gate.open.notify_one();
    let first = first.await.expect("first request");
    assert_eq!(first.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(*log.lock().expect("lock"), ["compensated"]);

    let retry = send(&app, get_request("/report", Some(&payment))).await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 10_000);
}

#[tokio::test]
async fn a_conflict_and_a_handler_400_are_reported_and_charged_as_they_should() {
    let (mock, wallet) = funded_mock();
    let seen = Seen::default();
    let base = seen.hook_into(payments(&mock)).build().expect("builds");
    let gate = Gate::default();
    let held = gate.clone();
    let slow = move || {
        let gate = held.clone();
        async move {
            gate.pass().await;
            "slow"
        }
    };
    let app = Router::new()
        .route(
            "/a",
            get(slow.clone()).route_layer(base.charge(Price::sats(10)).expect("charge")),
        )
        .route(
            "/b",
            get(slow).route_layer(base.charge(Price::sats(10)).expect("charge")),
        )
        .route(
            "/bad",
            get(|| async { (StatusCode::BAD_REQUEST, "bad input") })
                .route_layer(base.charge(Price::sats(10)).expect("charge")),
        );

    let payment = pay(&app, &wallet, get_request("/a", None)).await;
    let (first_app, first_payment) = (app.clone(), payment.clone());
    let first =
        tokio::spawn(
            async move { send(&first_app, get_request("/a", Some(&first_payment))).await },
        );
    gate.wait_for_arrival().await;
    let second = send(&app, get_request("/b", Some(&payment))).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    gate.open.notify_one();
    assert_eq!(first.await.expect("first").status(), StatusCode::OK);

    let refused = seen.refused();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].status, StatusCode::CONFLICT);
    assert_eq!(refused[0].route, "/b");
    assert_eq!(
        refused[0].payment_hash.as_deref(),
        Some(seen.settled()[0].payment_hash.as_str())
    );

    // A handler's 400 (the smallest failure) is not charged.
    let bad = buy(&app, &wallet, "/bad").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(mock.balance(wallet.public_key()), FUNDS_MSAT - 10_000);
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 1);
}

#[tokio::test]
async fn the_hooks_report_what_the_facilitator_said() {
    let (mock, wallet) = funded_mock();
    let seen = Seen::default();
    // A settle "success" for another invoice: unusable, and the invoice may have been paid.
    let bent = Bent {
        mock: mock.clone(),
        bend: |answer| answer.transaction = "00".repeat(32),
    };
    let app = report_app(
        seen.hook_into(
            X402Layer::builder(bent, Network::Regtest)
                .flows(Flows::V1)
                .pay_to(mock.pay_to()),
        ),
    );
    let payment = pay(&app, &wallet, get_request("/report", None)).await;
    let unusable = send(&app, get_request("/report", Some(&payment))).await;
    assert_eq!(unusable.status(), StatusCode::BAD_GATEWAY);
    let failed = seen.settle_failed();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].may_have_paid);
    assert_eq!(failed[0].status, StatusCode::BAD_GATEWAY);
    assert!(
        failed[0].reason.contains("settled another invoice"),
        "{}",
        failed[0].reason
    );

    // The payer the facilitator names is the one reported.
    let seen = Seen::default();
    let bent = Bent {
        mock: mock.clone(),
        bend: |answer| answer.payer = Some("the-facilitator's-name".to_owned()),
    };
    let app = report_app(
        seen.hook_into(
            X402Layer::builder(bent, Network::Regtest)
                .flows(Flows::V1)
                .pay_to(mock.pay_to()),
        ),
    );
    let payment = pay(&app, &wallet, get_request("/report", None)).await;
    assert_eq!(
        send(&app, get_request("/report", Some(&payment)))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(seen.settled()[0].payer, "the-facilitator's-name");
}
