//! Kinds of fault a review and public bug reports against x402 and L402 middlewares found, each
//! pinned: a payee the client chose, caches holding paid content, payment headers reaching
//! handlers, junk `Host`s in `resource`, a hanging facilitator holding requests, settle outcomes
//! lost when the client hangs up, readiness held while the facilitator is asked, and unbounded
//! invoice issuance.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use axum::body::Body;
use axum::routing::{any, get};
use common::*;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::Notify;
use tower::{ServiceBuilder, ServiceExt as _};
use x402_lightning::Flows;
use x402_lightning::clock::ManualClock;
use x402_lightning::header::{PAYMENT_SIGNATURE, X_PAYMENT};
use x402_lightning::layer::{IssuanceLimit, IssuanceRate};
use x402_lightning::mock::{Fault, InvoiceSpec, MockFacilitator, MockNode};
use x402_lightning::{
    Facilitator, FacilitatorCall, FacilitatorError, HttpFacilitator, Network, PaymentRequired,
    PaymentRequirements, Price, PriceTag, RequirementsRequest, SettleRequest, SettleResponse,
    SupportedResponse, VerifyRequest, VerifyResponse, X402Layer,
};

const ALREADY_SETTLED: &str = "Invalid payment: this invoice was already settled";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Awaits `future`, failing the test if it has not finished after 20 s: a guard against a
/// request that waits forever, not a measure of speed.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("finished instead of waiting forever")
}

/// A facilitator forwarding to the mock that holds one kind of call at its door until
/// released, and says when such a call arrived and when it came back.
struct Gated {
    honest: HttpFacilitator,
    held: FacilitatorCall,
    entered: Notify,
    release: Notify,
    finished: Notify,
}

impl Gated {
    fn holding(mock: &MockFacilitator, held: FacilitatorCall) -> Arc<Self> {
        Arc::new(Self {
            honest: facilitator_for(mock),
            held,
            entered: Notify::new(),
            release: Notify::new(),
            finished: Notify::new(),
        })
    }

    async fn pass<T>(&self, call: FacilitatorCall, forward: impl Future<Output = T>) -> T {
        if call != self.held {
            return forward.await;
        }
        self.entered.notify_one();
        self.release.notified().await;
        let answer = forward.await;
        self.finished.notify_one();
        answer
    }
}

impl Facilitator for Gated {
    async fn requirements(
        &self,
        request: &RequirementsRequest,
    ) -> Result<PaymentRequirements, FacilitatorError> {
        let forward = self.honest.requirements(request);
        self.pass(FacilitatorCall::Requirements, forward).await
    }

    async fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, FacilitatorError> {
        self.pass(FacilitatorCall::Verify, self.honest.verify(request))
            .await
    }

    async fn settle(&self, request: &SettleRequest) -> Result<SettleResponse, FacilitatorError> {
        self.pass(FacilitatorCall::Settle, self.honest.settle(request))
            .await
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        self.pass(FacilitatorCall::Supported, self.honest.supported())
            .await
    }
}

/// `GET path` with these headers, for `oneshot`.
fn get_with(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).expect("a request")
}

/// A response's body as JSON.
async fn json_of(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    serde_json::from_slice(&bytes).expect("a JSON body")
}

/// The requirements of a 402 answered to `oneshot`.
async fn offer_of(response: Response<Body>) -> PaymentRequirements {
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let mut body: PaymentRequired =
        serde_json::from_value(json_of(response).await).expect("a PaymentRequired body");
    body.accepts.remove(0)
}

/// A layer on the mock's network through `facilitator`, `GET /weather` priced as in the demo.
fn weather_layer<F: Facilitator>(facilitator: F) -> x402_lightning::layer::X402LayerBuilder<F> {
    X402Layer::builder(facilitator, Network::Regtest)
        .flows(Flows::V1)
        .route("GET /weather", Price::msat(WEATHER_MSAT))
}

// ---------------------------------------------------------------------------------------------
// 1. A payment is never checked against a payee the client chose
// ---------------------------------------------------------------------------------------------

/// A careless facilitator: its `/supported` names no `payTo` (here: it has no `/supported`).
async fn careless_mock() -> MockFacilitator {
    let mock = MockFacilitator::start().await.expect("mock starts");
    mock.fail_always(
        FacilitatorCall::Supported,
        Fault::Status(StatusCode::NOT_FOUND),
    );
    mock
}

#[tokio::test]
async fn a_fresh_instance_learns_the_payee_before_it_judges_a_payment() {
    let mock = careless_mock().await;
    // Another instance behind the same load balancer handed out this invoice.
    let ask = RequirementsRequest::new(Network::Regtest, WEATHER_MSAT, "http://x/weather");
    let elsewhere = facilitator_for(&mock)
        .requirements(&ask)
        .await
        .expect("requirements");
    let h = start_layer_on(mock, |mock| {
        demo_prices(facilitator_for(mock), Network::Regtest).flows(Flows::V1)
    })
    .await;
    h.mock.clear_calls();

    // This fresh instance never saw a payee and /supported names none: before judging the
    // payment it has its receiver mint one invoice, whose payee is the facilitator's node.
    let payment = h.wallet.pay(&elsewhere);
    let served = h.get("/weather", Some(&payment)).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(
        h.calls(FacilitatorCall::Requirements),
        1,
        "one invoice to learn the payee"
    );
    let verified = h.mock.calls_to(FacilitatorCall::Verify).remove(0).request();
    assert_eq!(
        verified["paymentRequirements"]["payTo"],
        h.mock.pay_to().to_string()
    );

    // Learned once: the next payment costs no lookup.
    let next = h.wallet.pay(
        &facilitator_for(&h.mock)
            .requirements(&ask)
            .await
            .expect("requirements"),
    );
    h.mock.clear_calls();
    assert_eq!(
        h.get("/weather", Some(&next)).await.status(),
        StatusCode::OK
    );
    assert_eq!(h.calls(FacilitatorCall::Requirements), 0);
    assert_eq!(h.calls(FacilitatorCall::Supported), 0);
}

#[tokio::test]
async fn a_client_cannot_have_its_own_invoice_checked_against_itself() {
    let h = start_layer_on(careless_mock().await, |mock| {
        demo_prices(facilitator_for(mock), Network::Regtest).flows(Flows::V1)
    })
    .await;
    let own_node = MockNode::random();
    let spec = InvoiceSpec::new(Network::Regtest, WEATHER_MSAT);
    let own_invoice = own_node.mint(&spec).expect("mints").invoice.to_string();
    let payment = pay_invoice(&h.wallet, &own_invoice);

    // Before and after the layer has learned the facilitator's node: refused before /verify.
    for attempt in ["first", "second"] {
        let refusal: PaymentRequired = h
            .get("/weather", Some(&payment))
            .await
            .json()
            .await
            .expect("402 body");
        assert_eq!(
            refusal.error,
            format!(
                "Invalid payment: invoice payee {} is not the facilitator's node",
                own_node.pay_to()
            ),
            "{attempt}"
        );
    }
    assert_eq!(h.calls(FacilitatorCall::Verify), 0);
    assert_eq!(h.handler_runs(), 0);
}

#[tokio::test]
async fn a_payee_the_layer_cannot_learn_yet_is_refused_as_not_known_yet() {
    // Neither /supported nor /requirements answers: the layer cannot learn any payee. The seed
    // flow's authorization moved nothing yet, so the answer is a 402 saying so (its fresh
    // invoice cannot be had either: a 502 tells the client to come back).
    let mock = careless_mock().await;
    let ask = RequirementsRequest::new(Network::Regtest, WEATHER_MSAT, "http://x/weather");
    let elsewhere = facilitator_for(&mock)
        .requirements(&ask)
        .await
        .expect("requirements");
    mock.fail_always(
        FacilitatorCall::Requirements,
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
    );
    let clock = x402_lightning::clock::ManualClock::starting_now();
    let layer_clock = clock.clone();
    let h = start_layer_on(mock, move |mock| {
        demo_prices(facilitator_for(mock), Network::Regtest)
            .flows(Flows::V1)
            .clock(layer_clock)
    })
    .await;
    let refused = h.get("/weather", Some(&h.wallet.pay(&elsewhere))).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(h.calls(FacilitatorCall::Verify), 0);
    assert_eq!(h.handler_runs(), 0);

    // Back, once the lookup may run again: the same payment passes.
    h.mock.heal(FacilitatorCall::Requirements);
    clock.advance(std::time::Duration::from_secs(5));
    assert_eq!(
        h.get("/weather", Some(&h.wallet.pay(&elsewhere)))
            .await
            .status(),
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Caches never hold paid content or invoices
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refusals_are_no_store_and_paid_responses_private_unless_the_handler_chose() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = demo_prices(facilitator_for(&mock), Network::Regtest)
        .flows(Flows::V1)
        .route("GET /cached", Price::sats(1))
        .route("GET /cdn", Price::sats(1))
        .build()
        .expect("layer builds");
    let app = demo_app(Arc::clone(&runs))
        .route(
            "/cached",
            get(|| async { ([(CACHE_CONTROL, "public, max-age=60")], "cacheable") }),
        )
        .route(
            "/cdn",
            get(|| async { ([("cdn-cache-control", "max-age=600")], "for the CDN") }),
        )
        .layer(layer);
    let h = harness(mock, app, runs).await;
    let cache_control = |response: &reqwest::Response| {
        response
            .headers()
            .get(CACHE_CONTROL)
            .map(|value| value.to_str().expect("ascii").to_owned())
    };

    let unpaid = h.get("/weather", None).await;
    assert_eq!(unpaid.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(cache_control(&unpaid).as_deref(), Some("no-store"));

    let paid = h
        .get("/weather", Some(&h.payment_for("/weather").await))
        .await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(cache_control(&paid).as_deref(), Some("private, no-store"));

    let own = h
        .get("/cached", Some(&h.payment_for("/cached").await))
        .await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(cache_control(&own).as_deref(), Some("public, max-age=60"));
    // A targeted caching header (RFC 9213) is the handler's own decision too: nothing is added
    // that a CDN would be told to ignore.
    let cdn = h.get("/cdn", Some(&h.payment_for("/cdn").await)).await;
    assert_eq!(cdn.status(), StatusCode::OK);
    assert_eq!(cache_control(&cdn), None);
    assert_eq!(cdn.headers()["cdn-cache-control"], "max-age=600");

    // The layer's other answers are not stored either.
    h.mock.fail_next(
        FacilitatorCall::Requirements,
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
    );
    let failed = h.get("/weather", None).await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(cache_control(&failed).as_deref(), Some("no-store"));
    // A free route is the handler's business alone.
    assert_eq!(cache_control(&h.get("/", None).await), None);
}

// ---------------------------------------------------------------------------------------------
// 3. Payment headers never reach a handler
// ---------------------------------------------------------------------------------------------

async fn payment_headers_seen(headers: HeaderMap) -> String {
    let seen: Vec<&str> = [X_PAYMENT, PAYMENT_SIGNATURE]
        .into_iter()
        .filter(|name| headers.contains_key(*name))
        .collect();
    format!("seen: {seen:?}")
}

#[tokio::test]
async fn payment_headers_are_stripped_on_free_routes_preflights_and_free_dynamic_prices() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let layer = X402Layer::builder(facilitator_for(&mock), Network::Regtest)
        .flows(Flows::V1)
        .route("GET /priced", Price::sats(1))
        .route(
            "/tier",
            PriceTag::dynamic(|_: &http::request::Parts| async { None }),
        )
        .build()
        .expect("layer builds");
    let app = axum::Router::new()
        .route("/free", any(payment_headers_seen))
        .route("/priced", any(payment_headers_seen))
        .route("/tier", any(payment_headers_seen))
        .layer(layer);
    let both = [
        (X_PAYMENT, "eyJ4NDAyVmVyc2lvbiI6MX0="),
        (PAYMENT_SIGNATURE, "proof"),
    ];
    for (method, path) in [
        (Method::GET, "/free"),
        (Method::POST, "/free"),
        (Method::OPTIONS, "/priced"),
        (Method::GET, "/tier"),
    ] {
        let mut request = get_with(path, &both);
        *request.method_mut() = method.clone();
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"seen: []", "{method} {path}");
    }
    assert!(mock.calls().is_empty(), "{:?}", mock.calls());
}

// ---------------------------------------------------------------------------------------------
// 4. `resource` is a valid absolute URL, or the request is refused
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_host_that_is_not_a_plain_host_and_port_is_refused_with_400_before_any_mint() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let layer = weather_layer(facilitator_for(&mock))
        .build()
        .expect("layer builds");
    let app = demo_app(Arc::new(AtomicUsize::new(0))).layer(layer);
    for host in [
        "user@evil.example",
        "user:pass@evil.example:80",
        "@evil.example",
        "evil.example:99999",
        "evil.example:0",
        "evil.example:00080",
        ".",
        "..",
        "-",
        "a..b",
        "-evil.example",
        "evil-.example",
        "evil.example:",
        "evil.example:80x",
        "evil.example:-1",
        "evil example",
        "evil.example/path",
        "evil.example?q",
        "evil.example#f",
        "[::1",
        "[not-v6]:80",
        "[::1]x",
        "evil\\.example",
        "1.2.3.4.5",
        "",
        "évil.example",
    ] {
        let host_value = HeaderValue::from_bytes(host.as_bytes()).expect("a header value");
        let request = Request::get("/weather")
            .header(HOST, host_value)
            .body(Body::empty())
            .expect("a request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{host:?}");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let error = json_of(response).await["error"].as_str().map(str::to_owned);
        assert!(
            error.as_deref().is_some_and(
                |error| error.contains("Host") || error.contains("not a valid absolute URL")
            ),
            "{host:?}: {error:?}"
        );
    }
    // Two Host headers, and an absolute-form target with userinfo, are refused the same way.
    let two = get_with("/weather", &[("host", "a.example"), ("host", "b.example")]);
    let userinfo = get_with("http://user@evil.example/weather", &[]);
    for request in [two, userinfo] {
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    assert!(mock.calls().is_empty(), "{:?}", mock.calls());

    for (host, resource) in [
        ("api.example.com", "http://api.example.com/weather?x=1"),
        (
            "api.example.com:8080",
            "http://api.example.com:8080/weather?x=1",
        ),
        ("[::1]:3000", "http://[::1]:3000/weather?x=1"),
        ("127.0.0.1", "http://127.0.0.1/weather?x=1"),
        ("api.example.com.", "http://api.example.com./weather?x=1"),
        ("my_host-1", "http://my_host-1/weather?x=1"),
    ] {
        let response = app
            .clone()
            .oneshot(get_with("/weather?x=1", &[("host", host)]))
            .await
            .expect("infallible");
        assert_eq!(offer_of(response).await.resource, resource, "{host}");
    }
}

#[tokio::test]
async fn with_a_public_base_url_the_host_is_never_read() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let layer = weather_layer(facilitator_for(&mock))
        .public_base_url("https://api.example.com/v1/")
        .build()
        .expect("layer builds");
    let app = demo_app(Arc::new(AtomicUsize::new(0))).layer(layer);
    for host in ["user@evil.example", "evil.example:99999"] {
        let response = app
            .clone()
            .oneshot(get_with("/weather", &[("host", host)]))
            .await
            .expect("infallible");
        assert_eq!(
            offer_of(response).await.resource,
            "https://api.example.com/v1/weather"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. A hanging facilitator costs a request one timeout at most: the check never sits on it
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_supported_check_that_never_answers_holds_no_request() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let gate = Gated::holding(&mock, FacilitatorCall::Supported);
    let clock = ManualClock::starting_now();
    let layer = weather_layer(Arc::clone(&gate))
        .clock(clock.clone())
        .build()
        .expect("layer builds");
    let app = demo_app(Arc::new(AtomicUsize::new(0))).layer(layer);

    // The first priced request starts the check, which hangs; the request does not wait.
    let first = within(app.clone().oneshot(get_with("/weather", &[]))).await;
    assert_eq!(
        first.expect("infallible").status(),
        StatusCode::PAYMENT_REQUIRED
    );
    within(gate.entered.notified()).await;
    // A minute later the check is still hanging: no second one piles up, and no request waits.
    clock.advance(Duration::from_secs(61));
    let later = within(app.clone().oneshot(get_with("/weather", &[]))).await;
    assert_eq!(
        later.expect("infallible").status(),
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), 2);
    // Once it answers (here: /supported, honestly), it is done for good.
    gate.release.notify_one();
    within(gate.finished.notified()).await;
    clock.advance(Duration::from_secs(61));
    let last = within(app.clone().oneshot(get_with("/weather", &[]))).await;
    assert_eq!(
        last.expect("infallible").status(),
        StatusCode::PAYMENT_REQUIRED
    );
    assert_eq!(mock.call_count(FacilitatorCall::Supported), 1);
}

// ---------------------------------------------------------------------------------------------
// 7. The outcome of a settle that was sent is never lost
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_that_hangs_up_mid_settle_still_has_its_settlement_remembered() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let wallet = x402_lightning::mock::TestWallet::random();
    mock.fund(wallet.public_key(), FUNDS_MSAT);
    let gate = Gated::holding(&mock, FacilitatorCall::Settle);
    let layer = weather_layer(Arc::clone(&gate))
        .build()
        .expect("layer builds");
    let runs = Arc::new(AtomicUsize::new(0));
    let app = demo_app(Arc::clone(&runs)).layer(layer);
    let offer = offer_of(
        app.clone()
            .oneshot(get_with("/weather", &[]))
            .await
            .expect("ok"),
    )
    .await;
    let payment = wallet.pay(&offer);
    let paid = || get_with("/weather", &[(X_PAYMENT, payment.as_str())]);

    let client = tokio::spawn(app.clone().oneshot(paid()));
    within(gate.entered.notified()).await;
    client.abort(); // the client hangs up while /settle is in flight
    assert!(client.await.is_err_and(|err| err.is_cancelled()));

    // The settle goes on; until its outcome lands, the invoice stays claimed.
    let meanwhile = within(app.clone().oneshot(paid()))
        .await
        .expect("infallible");
    assert_eq!(meanwhile.status(), StatusCode::CONFLICT);
    gate.release.notify_one();
    within(gate.finished.notified()).await;
    assert!(mock.is_paid(&offer.extra.invoice));

    // The outcome landed: a replay is refused here, without asking /verify again.
    let replay = app.clone().oneshot(paid()).await.expect("infallible");
    let refusal = offer_of(replay).await;
    assert_ne!(
        refusal.extra.invoice, offer.extra.invoice,
        "a fresh invoice"
    );
    assert_eq!(mock.call_count(FacilitatorCall::Verify), 1);
    assert_eq!(mock.call_count(FacilitatorCall::Settle), 1);
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    let replay = app.oneshot(paid()).await.expect("infallible");
    assert_eq!(json_of(replay).await["error"], ALREADY_SETTLED);
}

// ---------------------------------------------------------------------------------------------
// 8. Readiness of the inner service is not held while the facilitator is asked
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unpaid_requests_hold_no_concurrency_permit_while_the_facilitator_is_asked() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let gate = Gated::holding(&mock, FacilitatorCall::Requirements);
    let layer = X402Layer::builder(Arc::clone(&gate), Network::Regtest)
        .flows(Flows::V1)
        .route("GET /paid", Price::sats(1))
        .build()
        .expect("layer builds");
    let service = ServiceBuilder::new()
        .layer(layer)
        .concurrency_limit(1)
        .service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from("content")))
        });

    let unpaid = tokio::spawn(service.clone().oneshot(get_with("/paid", &[])));
    within(gate.entered.notified()).await;
    // The only permit is free while the unpaid request waits for its invoice.
    let free = within(service.clone().oneshot(get_with("/free", &[]))).await;
    assert_eq!(free.expect("infallible").status(), StatusCode::OK);
    gate.release.notify_one();
    let unpaid = within(unpaid).await.expect("joined").expect("infallible");
    assert_eq!(unpaid.status(), StatusCode::PAYMENT_REQUIRED);
}

// ---------------------------------------------------------------------------------------------
// 9. Invoice issuance is limited, per client and in all
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_client_over_its_issuance_limit_gets_429_and_nothing_is_minted() {
    let clock = ManualClock::starting_now();
    let limited = clock.clone();
    let h = start_with(move |prices| {
        prices
            .issuance_limit(IssuanceLimit::new().per_client(IssuanceRate::per_minute(2)))
            .clock(limited)
    })
    .await;
    let offer = h.requirements("/weather").await;
    h.requirements("/weather").await;

    for payment in [None, Some("not base64!")] {
        let limited = h.get("/weather", payment).await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[RETRY_AFTER], "30");
        assert_eq!(limited.headers()[CACHE_CONTROL], "no-store");
        let body: Value = limited.json().await.expect("JSON");
        assert_eq!(
            body["error"],
            "too many payment requests: invoices are rate-limited; retry in 30 s"
        );
    }
    assert_eq!(h.calls(FacilitatorCall::Requirements), 2);

    // Paying mints nothing, so it is not limited.
    let paid = h.get("/weather", Some(&h.wallet.pay(&offer))).await;
    assert_eq!(paid.status(), StatusCode::OK);
    // Free routes never are.
    assert_eq!(h.get("/", None).await.status(), StatusCode::OK);

    clock.advance(Duration::from_secs(30));
    h.requirements("/weather").await;
    assert_eq!(
        h.get("/weather", None).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(h.calls(FacilitatorCall::Requirements), 3);
}

#[tokio::test]
async fn clients_named_by_a_key_have_their_own_limits_under_a_global_one() {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let clock = ManualClock::starting_now();
    let limit = IssuanceLimit::new()
        .per_client(IssuanceRate::per_minute(1))
        .global(IssuanceRate::per_minute(3))
        .client_key(|head| Some(head.headers.get("x-api-key")?.to_str().ok()?.to_owned()));
    let layer = weather_layer(facilitator_for(&mock))
        .issuance_limit(limit)
        .clock(clock.clone())
        .build()
        .expect("layer builds");
    let app = demo_app(Arc::new(AtomicUsize::new(0))).layer(layer);
    let status_for = |key: &str| {
        let request = get_with("/weather", &[("x-api-key", key)]);
        let app = app.clone();
        async move { app.oneshot(request).await.expect("infallible").status() }
    };
    assert_eq!(status_for("a").await, StatusCode::PAYMENT_REQUIRED);
    // Over its own limit: refused without touching the global allowance.
    assert_eq!(status_for("a").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status_for("b").await, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(status_for("c").await, StatusCode::PAYMENT_REQUIRED);
    // The global limit of three is reached: even a new client waits.
    assert_eq!(status_for("d").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), 3);
    // One more invoice in all every 20 s.
    clock.advance(Duration::from_secs(20));
    assert_eq!(status_for("e").await, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(status_for("f").await, StatusCode::TOO_MANY_REQUESTS);
}

// ---------------------------------------------------------------------------------------------
// 10. The inner response body type is kept: the layer wraps a whole Router served by axum
// ---------------------------------------------------------------------------------------------

/// `axum::serve` takes the layer around a whole `Router` only because the layer's response is
/// the Router's own `Response<Body>` (a body type of the layer's own would not type-check).
#[tokio::test]
async fn the_layer_around_a_whole_router_is_served_by_axum_with_its_own_body_type() {
    use tower::Layer as _;

    /// Compiles only for a service whose response is axum's own `Response<Body>`.
    fn answers_with_axum_body<S: tower::Service<Request<Body>, Response = Response<Body>>>(_: &S) {}

    let mock = MockFacilitator::start().await.expect("mock starts");
    let runs = Arc::new(AtomicUsize::new(0));
    let layer = demo_prices(facilitator_for(&mock), Network::Regtest)
        .flows(Flows::V1)
        .build()
        .expect("layer builds");
    let service = layer.layer(demo_app(Arc::clone(&runs)));
    answers_with_axum_body(&service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(service);
    tokio::spawn(async move { axum::serve(listener, make).await });
    let client = reqwest::Client::new();
    let free = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .expect("sent");
    assert_eq!(free.text().await.expect("body"), "free");
    let unpaid = client
        .get(format!("http://{addr}/weather"))
        .send()
        .await
        .expect("sent");
    assert_eq!(unpaid.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(mock.call_count(FacilitatorCall::Requirements), 1);
}
