//! The layer against a failing, slow, lying or hostile facilitator, forged and malformed
//! payments, replays and races, over real HTTP. Every refusal must be the status and JSON body
//! of PROTOCOL.md's table "What the middleware answers", the priced content must never leak, and
//! nobody may pay for content they did not get.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Sub;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use x402_lightning::Flows;
use x402_lightning::header::X_PAYMENT;
use x402_lightning::layer::{SupportError, X402LayerBuilder};
use x402_lightning::mock::{Fault, Forgery, InvoiceFault, InvoiceSpec, MockFacilitator, MockNode};
use x402_lightning::types::{X402_VERSION, reason};
use x402_lightning::{
    Bolt11Invoice, Facilitator, FacilitatorCall, FacilitatorError, HttpFacilitator, Network,
    PaymentRequired, PaymentRequirements, Price, PriceTag, RequirementsRequest, SettleRequest,
    SettleResponse, SupportedResponse, VerifyRequest, VerifyResponse, X402Layer,
};

/// How long the client of a test that provokes a timeout waits for the facilitator.
const SHORT_TIMEOUT: Duration = Duration::from_secs(1);

/// A delay far past [`SHORT_TIMEOUT`]: the delayed call is abandoned, never raced.
const PAST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the demo's priced handlers answer; no refusal may carry any of it.
const CONTENT: [&str; 3] = ["sunny", "premium ", "completion"];

/// The prefix of the layer's 402 errors for a payment header it cannot decode.
const MALFORMED_PREFIX: &str = "Invalid or malformed payment header: ";

/// The 402 error of a replay of an invoice the layer remembers settling.
const ALREADY_SETTLED: &str = "Invalid payment: this invoice was already settled";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A response read whole.
struct Answer {
    status: StatusCode,
    is_json: bool,
    settlement: Option<SettleResponse>,
    text: String,
    body: Value,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let settlement = payment_response(&response);
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|value| value == "application/json");
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            is_json,
            settlement,
            text,
            body,
        }
    }

    /// Asserts a JSON `{"error": …}` answer with `status`; returns the error.
    #[track_caller]
    fn error(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "answer: {}", self.text);
        assert!(self.is_json, "not JSON: {}", self.text);
        match self.body["error"].as_str() {
            Some(error) if !error.is_empty() => error,
            _ => panic!("no error in {}", self.text),
        }
    }

    /// Asserts a 402 with one fresh set of requirements; returns the parsed body.
    #[track_caller]
    fn refusal(&self) -> PaymentRequired {
        self.error(StatusCode::PAYMENT_REQUIRED);
        let body: PaymentRequired =
            serde_json::from_value(self.body.clone()).expect("a PaymentRequired body");
        assert_eq!(body.x402_version, X402_VERSION);
        assert_eq!(body.accepts.len(), 1, "{}", self.text);
        assert!(
            body.accepts[0].extra.invoice.starts_with("lnbcrt"),
            "{}",
            self.text
        );
        body
    }

    /// Asserts that none of the priced content is in the answer.
    #[track_caller]
    fn withholds_content(&self) {
        for content in CONTENT {
            assert!(
                !self.text.contains(content),
                "content {content:?} leaked: {}",
                self.text
            );
        }
    }

    /// Asserts a 200 carrying `content` and a successful `X-PAYMENT-RESPONSE`.
    #[track_caller]
    fn served(&self, content: &str) -> SettleResponse {
        assert_eq!(self.status, StatusCode::OK, "answer: {}", self.text);
        assert!(self.text.contains(content), "answer: {}", self.text);
        let settlement = self.settlement.clone().expect("X-PAYMENT-RESPONSE");
        assert!(settlement.success, "{settlement:?}");
        settlement
    }
}

/// The facilitator calls the mock recorded, but `/supported` (asked once, on first use).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Calls {
    requirements: usize,
    verify: usize,
    settle: usize,
}

impl Calls {
    const fn new(requirements: usize, verify: usize, settle: usize) -> Self {
        Self {
            requirements,
            verify,
            settle,
        }
    }
}

impl Sub for Calls {
    type Output = Calls;

    fn sub(self, before: Calls) -> Calls {
        Calls::new(
            self.requirements - before.requirements,
            self.verify - before.verify,
            self.settle - before.settle,
        )
    }
}

impl Harness {
    fn counts(&self) -> Calls {
        Calls::new(
            self.calls(FacilitatorCall::Requirements),
            self.calls(FacilitatorCall::Verify),
            self.calls(FacilitatorCall::Settle),
        )
    }

    /// Asserts the calls the mock recorded (before it answers, so before the layer goes on).
    #[track_caller]
    fn assert_calls(&self, expected: Calls) {
        assert_eq!(self.counts(), expected);
    }

    /// How much the wallet has paid so far.
    fn debited(&self) -> u64 {
        FUNDS_MSAT - self.mock.balance(self.wallet.public_key())
    }

    /// `GET path` with an optional `X-PAYMENT`, read whole.
    async fn send(&self, path: &str, payment: Option<&str>) -> Answer {
        Answer::read(self.get(path, payment).await).await
    }

    /// `GET path` with any `X-PAYMENT` value, bytes included.
    async fn send_raw(&self, path: &str, payment: HeaderValue) -> Answer {
        let request = self.client.get(self.url(path)).header(X_PAYMENT, payment);
        Answer::read(request.send().await.expect("request sent")).await
    }

    /// `POST /ai/infer` with a JSON body (valid or not) and an optional `X-PAYMENT`.
    async fn infer(&self, payment: Option<&str>, body: &'static str) -> Answer {
        let mut request = self
            .client
            .post(self.url("/ai/infer"))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(payment) = payment {
            request = request.header(X_PAYMENT, payment);
        }
        Answer::read(request.send().await.expect("request sent")).await
    }

    /// Asserts that the free routes answer as without the layer, asking the facilitator nothing.
    async fn free_routes_serve(&self) {
        let before = self.counts();
        let root = self.send("/", None).await;
        assert_eq!((root.status, root.text.as_str()), (StatusCode::OK, "free"));
        let health = self.send("/health", None).await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(health.body, json!({ "status": "ok" }));
        assert_eq!(self.counts(), before);
    }
}

/// The demo app behind any `layer`, served on loopback, with a wallet funded at `mock`.
async fn harness_with<F: Facilitator>(mock: MockFacilitator, layer: X402Layer<F>) -> Harness {
    let runs = Arc::new(AtomicUsize::new(0));
    harness(mock, demo_app(Arc::clone(&runs)).layer(layer), runs).await
}

async fn start_mock() -> MockFacilitator {
    MockFacilitator::start().await.expect("mock starts")
}

/// The demo with `payTo` pinned to the mock's node key.
async fn start_pinned() -> Harness {
    start_layer(|mock| {
        demo_prices(facilitator_for(mock), mock.network())
            .flows(Flows::V1)
            .pay_to(mock.node().node_id())
    })
    .await
}

/// A client of a facilitator that is not the mock (default timeouts).
fn facilitator_at(addr: SocketAddr) -> HttpFacilitator {
    HttpFacilitator::new(format!("http://{addr}")).expect("facilitator client")
}

/// A loopback address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    listener.local_addr().expect("local addr")
}

/// A signed regtest invoice of `node`.
fn mint(node: &MockNode, spec: &InvoiceSpec) -> String {
    node.mint(spec).expect("mints").invoice.to_string()
}

/// How often the mock has recorded (and carried out) one call injected with `fault` by the time
/// the layer answered: never when it was delayed past the client's timeout, because the mock
/// records a call when it answers it, [`PAST_TIMEOUT`] later, long after the test is over (if
/// the client's hang-up has not dropped it before). A real facilitator might finish it.
fn recorded(fault: &Fault) -> usize {
    usize::from(!matches!(fault, Fault::Delay(_)))
}

/// The demo, its prices changed by `configure`, behind a client that gives up after
/// [`SHORT_TIMEOUT`] when `fault` is a delay meant to outlast it, and behind the harness's
/// patient client otherwise.
async fn start_failing_with(
    fault: &Fault,
    configure: impl FnOnce(X402LayerBuilder<HttpFacilitator>) -> X402LayerBuilder<HttpFacilitator>,
) -> Harness {
    let provokes_timeout = matches!(fault, Fault::Delay(_));
    start_layer(|mock| {
        let facilitator = if provokes_timeout {
            HttpFacilitator::builder(mock.url())
                .timeout(SHORT_TIMEOUT)
                .build()
                .expect("facilitator client")
        } else {
            facilitator_for(mock)
        };
        configure(demo_prices(facilitator, mock.network()).flows(Flows::V1))
    })
    .await
}

/// The demo behind a client suited to `fault`: see [`start_failing_with`].
async fn start_failing(fault: &Fault) -> Harness {
    start_failing_with(fault, |prices| prices).await
}

/// Faults that make any call fail, with the status the layer must answer for each.
fn call_failures() -> Vec<(Fault, StatusCode)> {
    let bad_gateway = |status| (Fault::Status(status), StatusCode::BAD_GATEWAY);
    vec![
        bad_gateway(StatusCode::INTERNAL_SERVER_ERROR),
        bad_gateway(StatusCode::SERVICE_UNAVAILABLE),
        bad_gateway(StatusCode::NOT_FOUND),
        bad_gateway(StatusCode::UNAUTHORIZED),
        bad_gateway(StatusCode::TOO_MANY_REQUESTS),
        bad_gateway(StatusCode::TEMPORARY_REDIRECT),
        (Fault::Garbage, StatusCode::BAD_GATEWAY),
        (Fault::Delay(PAST_TIMEOUT), StatusCode::GATEWAY_TIMEOUT),
    ]
}

// ---------------------------------------------------------------------------------------------
// 1. Every fault of the mock, on every call
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn requirements_failures_answer_502_or_504_and_ask_nothing_else() {
    for (fault, status) in call_failures() {
        // Without a payment, and with one that fails decoding: both need fresh requirements.
        for payment in [None, Some("not base64 at all!")] {
            let h = start_failing(&fault).await;
            h.mock
                .fail_next(FacilitatorCall::Requirements, fault.clone());
            let answer = h.send("/weather", payment).await;
            let error = answer.error(status);
            assert!(
                error.starts_with("payment facilitator") && error.contains("/requirements"),
                "{fault}: {error}"
            );
            h.assert_calls(Calls::new(recorded(&fault), 0, 0));
            assert_eq!(h.handler_runs(), 0);
        }
    }
}

/// Asks `h` for /weather's requirements while the mock hands out bad ones: a 502 that never
/// shows the client the bad invoice.
async fn refuses_bad_requirements(h: &Harness, fault: InvoiceFault) {
    h.mock
        .fail_next(FacilitatorCall::Requirements, Fault::Invoice(fault));
    let answer = h.send("/weather", None).await;
    let error = answer.error(StatusCode::BAD_GATEWAY);
    assert!(
        error.starts_with("payment facilitator /requirements sent unusable requirements: "),
        "{fault:?}: {error}"
    );
    let handed_out = h
        .mock
        .calls_to(FacilitatorCall::Requirements)
        .pop()
        .expect("requirements asked")
        .response();
    let invoice = handed_out["extra"]["invoice"].as_str().expect("an invoice");
    for shown in [invoice, "lnbc", "lntb"] {
        assert!(!answer.text.contains(shown), "{fault:?}: {}", answer.text);
    }
    assert_eq!(h.calls(FacilitatorCall::Verify), 0);
    assert_eq!(h.handler_runs(), 0);
}

#[tokio::test]
async fn requirements_with_a_bad_invoice_answer_502_without_the_invoice() {
    use InvoiceFault::*;
    let h = start().await;
    for fault in [
        WrongAmount,
        WrongNetwork,
        WrongPayee,
        Expired,
        UnaskedAmount,
    ] {
        refuses_bad_requirements(&h, fault).await;
    }
    // The layer keeps working once the facilitator behaves.
    h.send("/weather", None).await.refusal();
}

#[tokio::test]
async fn a_pinned_pay_to_refuses_every_bad_invoice_foreign_pay_to_included() {
    use InvoiceFault::*;
    let h = start_pinned().await;
    for fault in [
        ForeignPayTo,
        WrongAmount,
        WrongNetwork,
        WrongPayee,
        Expired,
        UnaskedAmount,
    ] {
        refuses_bad_requirements(&h, fault).await;
    }
    let fresh = h.send("/weather", None).await.refusal();
    assert_eq!(fresh.accepts[0].pay_to, h.mock.pay_to().to_string());
    let payment = h.wallet.pay(&fresh.accepts[0]);
    h.send("/weather", Some(&payment)).await.served("sunny");
}

/// Without a pin, a foreign `payTo` with a matching invoice is consistent requirements, which
/// PROTOCOL.md tells the layer to hand out (the 502 row lists "payTo ≠ the pinned one" only).
/// The layer does, although `/supported` announced another payee; the mock then refuses the
/// payment of it at `/verify`, so nothing is paid and nothing is served.
#[tokio::test]
async fn an_unpinned_foreign_pay_to_is_handed_out_and_refused_at_verify() {
    let h = start().await;
    h.mock.fail_next(
        FacilitatorCall::Requirements,
        Fault::Invoice(InvoiceFault::ForeignPayTo),
    );
    let mut foreign = h.send("/weather", None).await.refusal();
    let requirements = foreign.accepts.remove(0);
    assert_ne!(requirements.pay_to, h.mock.pay_to().to_string());
    assert_eq!(h.calls(FacilitatorCall::Supported), 1);

    let paid = h.send("/weather", Some(&h.wallet.pay(&requirements))).await;
    let refusal = paid.refusal();
    assert_eq!(refusal.error, reason::INVOICE_PAYEE);
    assert_eq!(refusal.payer.as_deref(), Some(h.wallet.id().as_str()));
    paid.withholds_content();
    h.assert_calls(Calls::new(2, 1, 0));
    assert_eq!((h.handler_runs(), h.debited()), (0, 0));
}

#[tokio::test]
async fn verify_failures_answer_502_or_504_before_the_handler_and_burn_nothing() {
    for (fault, status) in call_failures() {
        let h = start_failing(&fault).await;
        let payment = h.payment_for("/weather").await;
        h.mock.fail_next(FacilitatorCall::Verify, fault.clone());
        let answer = h.send("/weather", Some(&payment)).await;
        let error = answer.error(status);
        assert!(error.contains("/verify"), "{fault}: {error}");
        answer.withholds_content();
        assert!(answer.settlement.is_none());
        h.assert_calls(Calls::new(1, recorded(&fault), 0));
        assert_eq!((h.handler_runs(), h.debited()), (0, 0), "{fault}");

        // The invoice was released, not remembered: the same payment goes through now.
        h.send("/weather", Some(&payment)).await.served("sunny");
        assert_eq!(h.debited(), WEATHER_MSAT);
    }
}

#[tokio::test]
async fn settle_failures_answer_502_or_504_and_drop_the_handlers_answer() {
    for (fault, status) in call_failures() {
        let h = start_failing(&fault).await;
        let payment = h.payment_for("/weather").await;
        h.mock.fail_next(FacilitatorCall::Settle, fault.clone());
        let answer = h.send("/weather", Some(&payment)).await;
        let error = answer.error(status);
        assert!(error.contains("/settle"), "{fault}: {error}");
        answer.withholds_content();
        assert!(answer.settlement.is_none());
        assert_eq!(h.handler_runs(), 1, "{fault}");
        h.assert_calls(Calls::new(1, 1, recorded(&fault)));
        assert_eq!(h.debited(), 0, "{fault}");

        // Nothing was paid and nothing remembered: the same payment goes through now.
        h.send("/weather", Some(&payment)).await.served("sunny");
        assert_eq!(
            (h.handler_runs(), h.debited()),
            (2, WEATHER_MSAT),
            "{fault}"
        );
    }
}

#[tokio::test]
async fn settling_before_the_handler_never_runs_it_when_the_settle_fails() {
    // A refused settle (`success: false`) in this mode is a row of layer_protocol.rs.
    for (fault, status) in call_failures() {
        let h = start_failing_with(&fault, |prices| {
            prices.route(
                "GET /premium/early",
                PriceTag::fixed(Price::msat(PREMIUM_MSAT)).settle_before_handler(),
            )
        })
        .await;
        let payment = h.payment_for("/premium/early").await;
        h.mock.fail_next(FacilitatorCall::Settle, fault.clone());
        let answer = h.send("/premium/early", Some(&payment)).await;
        let error = answer.error(status);
        assert!(error.contains("/settle"), "{fault}: {error}");
        answer.withholds_content();
        assert!(answer.settlement.is_none(), "{fault}");
        h.assert_calls(Calls::new(1, 1, recorded(&fault)));
        assert_eq!((h.handler_runs(), h.debited()), (0, 0), "{fault}");

        // Nothing was paid and nothing remembered: the same payment goes through now.
        h.send("/premium/early", Some(&payment))
            .await
            .served("premium early");
        assert_eq!(
            (h.handler_runs(), h.debited()),
            (1, PREMIUM_MSAT),
            "{fault}"
        );
    }
}

#[tokio::test]
async fn supported_failures_never_stop_free_or_priced_routes() {
    for (fault, _) in call_failures() {
        let h = start_failing(&fault).await;
        h.mock
            .fail_always(FacilitatorCall::Supported, fault.clone());
        h.free_routes_serve().await;
        assert_eq!(h.calls(FacilitatorCall::Supported), 0);

        // A failed check lets the request through; it is not repeated on every request (the
        // next attempt waits a minute: see the unit test in src/layer/support.rs).
        let failed = recorded(&fault);
        let payment = h.payment_for("/weather").await;
        assert_eq!(h.calls(FacilitatorCall::Supported), failed);
        h.send("/weather", Some(&payment)).await.served("sunny");
        h.send("/weather", None).await.refusal();
        assert_eq!(h.calls(FacilitatorCall::Supported), failed);
        h.free_routes_serve().await;
    }
}

#[tokio::test]
async fn a_facilitator_failing_every_call_is_survived_until_it_heals() {
    let h = start().await;
    for call in FacilitatorCall::ALL {
        h.mock
            .fail_always(call, Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
    }
    for _ in 0..2 {
        h.free_routes_serve().await;
        let error = h.send("/weather", None).await;
        assert_eq!(
            error.error(StatusCode::BAD_GATEWAY),
            "payment facilitator /requirements answered 503 Service Unavailable"
        );
    }
    h.mock.heal_all();
    let payment = h.payment_for("/weather").await;
    h.send("/weather", Some(&payment)).await.served("sunny");
    assert_eq!((h.handler_runs(), h.debited()), (1, WEATHER_MSAT));
}

#[tokio::test]
async fn a_facilitator_that_is_down_leaves_free_routes_serving_and_priced_ones_502() {
    let node = MockNode::random();
    let layer = demo_prices(facilitator_at(closed_port().await), Network::Regtest)
        .flows(Flows::V1)
        .pay_to(node.node_id())
        .build()
        .expect("the layer builds without the facilitator");
    assert!(matches!(
        layer.check_facilitator().await,
        Err(SupportError::Facilitator(
            FacilitatorError::Unreachable { .. }
        ))
    ));
    // The mock is only the harness's wallet bank here; the layer never reaches it.
    let h = harness_with(start_mock().await, layer).await;

    h.free_routes_serve().await;
    let preflight = h
        .client
        .request(Method::OPTIONS, h.url("/weather"))
        .send()
        .await
        .expect("preflight sent");
    assert_eq!(preflight.status(), StatusCode::METHOD_NOT_ALLOWED);

    let unpaid = h.send("/weather", None).await;
    assert_eq!(
        unpaid.error(StatusCode::BAD_GATEWAY),
        "payment facilitator unreachable (/requirements)"
    );
    let post = h.infer(None, r#"{"prompt":"hi"}"#).await;
    assert!(post.error(StatusCode::BAD_GATEWAY).contains("unreachable"));
    // A well-formed payment of a real invoice to the pinned node passes the pre-checks;
    // /verify cannot be asked.
    let invoice = mint(&node, &InvoiceSpec::new(Network::Regtest, WEATHER_MSAT));
    let paid = h
        .send("/weather", Some(&pay_invoice(&h.wallet, &invoice)))
        .await;
    assert_eq!(
        paid.error(StatusCode::BAD_GATEWAY),
        "payment facilitator unreachable (/verify)"
    );
    paid.withholds_content();
    assert_eq!(h.handler_runs(), 0);
    assert!(h.mock.calls().is_empty());
}

// ---------------------------------------------------------------------------------------------
// 2. A hostile facilitator
// ---------------------------------------------------------------------------------------------

/// How [`Liar`] bends the mock's honest answers.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Forwards honestly.
    None,
    /// `/settle` pays, then reports this payment hash.
    Transaction(&'static str),
    /// `/settle` pays, then reports its own hash in upper case (hex is hex: not a lie).
    UppercaseTransaction,
    /// `/settle` pays, then reports this network.
    SettledOn(Network),
    /// `/verify` is honest; `/settle` cannot be reached.
    SettleUnreachable,
    /// `/settle` says `success: false` without a reason, paying nothing.
    SettleRefusedSilently,
    /// `/verify` says `isValid: false` without a reason.
    InvalidSilently,
}

/// A facilitator that forwards every call to the mock (real invoices, real signature checks,
/// real payments) and then lies as its [`Lie`] says.
struct Liar {
    honest: HttpFacilitator,
    lie: Lie,
}

impl Facilitator for Liar {
    async fn requirements(
        &self,
        request: &RequirementsRequest,
    ) -> Result<PaymentRequirements, FacilitatorError> {
        self.honest.requirements(request).await
    }

    async fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, FacilitatorError> {
        let mut verdict = self.honest.verify(request).await?;
        if let Lie::InvalidSilently = self.lie {
            verdict.is_valid = false;
            verdict.invalid_reason = None;
        }
        Ok(verdict)
    }

    async fn settle(&self, request: &SettleRequest) -> Result<SettleResponse, FacilitatorError> {
        if let Lie::SettleUnreachable = self.lie {
            return Err(FacilitatorError::Unreachable {
                call: FacilitatorCall::Settle,
                source: "connection reset by a hostile facilitator".into(),
            });
        }
        if let Lie::SettleRefusedSilently = self.lie {
            return Ok(SettleResponse {
                success: false,
                error_reason: None,
                transaction: String::new(),
                network: request.payment_requirements.network,
                payer: None,
            });
        }
        let mut settlement = self.honest.settle(request).await?;
        match self.lie {
            Lie::Transaction(hash) => hash.clone_into(&mut settlement.transaction),
            Lie::UppercaseTransaction => {
                settlement.transaction = settlement.transaction.to_uppercase();
            }
            Lie::SettledOn(network) => settlement.network = network,
            _ => {}
        }
        Ok(settlement)
    }

    async fn supported(&self) -> Result<SupportedResponse, FacilitatorError> {
        self.honest.supported().await
    }
}

/// The demo's /weather behind a [`Liar`] in front of a fresh mock.
async fn start_lying(lie: Lie) -> Harness {
    let mock = start_mock().await;
    let liar = Liar {
        honest: facilitator_for(&mock),
        lie,
    };
    let layer = X402Layer::builder(liar, mock.network())
        .flows(Flows::V1)
        .route("GET /weather", Price::msat(WEATHER_MSAT))
        .build()
        .expect("layer builds");
    harness_with(mock, layer).await
}

#[tokio::test]
async fn the_liar_is_honest_when_it_does_not_lie() {
    for lie in [Lie::None, Lie::UppercaseTransaction] {
        let h = start_lying(lie).await;
        let payment = h.payment_for("/weather").await;
        h.send("/weather", Some(&payment)).await.served("sunny");
        assert_eq!(h.debited(), WEATHER_MSAT);
    }
}

/// A settle "success" that names another invoice or network is a 502, but the facilitator did
/// pay something: the invoice is remembered as settled, and a replay never reaches /verify.
/// A settle that never answered is not remembered: the facilitator's own replay protection
/// decides a retry.
#[tokio::test]
async fn a_settlement_that_does_not_match_the_payment_is_refused_with_502() {
    const ANOTHER: &str =
        "payment facilitator /settle sent an unusable reply: settled another invoice";
    const ELSEWHERE: &str =
        "payment facilitator /settle sent an unusable reply: settled on another network";
    let cases = [
        (
            Lie::Transaction("abababababababababababababababababababababababababababababababab"),
            ANOTHER,
            true,
        ),
        (Lie::Transaction(""), ANOTHER, true),
        (Lie::SettledOn(Network::Testnet), ELSEWHERE, true),
        (Lie::SettledOn(Network::Bitcoin), ELSEWHERE, true),
        (
            Lie::SettleUnreachable,
            "payment facilitator unreachable (/settle)",
            false,
        ),
    ];
    for (lie, error, paid) in cases {
        let h = start_lying(lie).await;
        let payment = h.payment_for("/weather").await;
        let answer = h.send("/weather", Some(&payment)).await;
        assert_eq!(answer.error(StatusCode::BAD_GATEWAY), error, "{lie:?}");
        answer.withholds_content();
        assert!(answer.settlement.is_none(), "{lie:?}");
        assert_eq!(h.handler_runs(), 1, "{lie:?}");
        h.assert_calls(Calls::new(1, 1, usize::from(paid)));

        let replay = h.send("/weather", Some(&payment)).await;
        replay.withholds_content();
        if paid {
            assert_eq!(replay.refusal().error, ALREADY_SETTLED, "{lie:?}");
            h.assert_calls(Calls::new(2, 1, 1));
        } else {
            // Asked again: /verify passes, the handler runs, the settle fails again.
            assert_eq!(replay.error(StatusCode::BAD_GATEWAY), error, "{lie:?}");
            h.assert_calls(Calls::new(1, 2, 0));
        }
    }
}

#[tokio::test]
async fn verdicts_without_a_reason_get_the_x402_generic_reason() {
    let cases = [
        (Lie::InvalidSilently, reason::UNEXPECTED_VERIFY_ERROR, 0),
        (
            Lie::SettleRefusedSilently,
            reason::UNEXPECTED_SETTLE_ERROR,
            1,
        ),
    ];
    for (lie, why, handler_runs) in cases {
        let h = start_lying(lie).await;
        let payment = h.payment_for("/weather").await;
        let answer = h.send("/weather", Some(&payment)).await;
        assert_eq!(answer.refusal().error, why, "{lie:?}");
        answer.withholds_content();
        assert_eq!((h.handler_runs(), h.debited()), (handler_runs, 0));
    }
}

/// PROTOCOL.md: "Every error body is JSON with a human-readable `error`". A verdict whose reason
/// is `""` (or blank) gets the x402 generic reason, as one whose reason is missing does.
#[tokio::test]
async fn empty_verdict_reasons_get_the_x402_generic_reason() {
    let cases = [
        (
            FacilitatorCall::Verify,
            Fault::Invalid(String::new()),
            reason::UNEXPECTED_VERIFY_ERROR,
        ),
        (
            FacilitatorCall::Verify,
            Fault::Invalid("  ".to_owned()),
            reason::UNEXPECTED_VERIFY_ERROR,
        ),
        (
            FacilitatorCall::Settle,
            Fault::SettleFailed(String::new()),
            reason::UNEXPECTED_SETTLE_ERROR,
        ),
    ];
    let h = start().await;
    for (call, fault, why) in cases {
        let payment = h.payment_for("/weather").await;
        h.mock.fail_next(call, fault.clone());
        let answer = h.send("/weather", Some(&payment)).await;
        assert_eq!(answer.refusal().error, why, "{fault}");
        answer.withholds_content();
    }
    assert_eq!(h.debited(), 0);
}

/// What a hostile `/requirements` changes in the mock's honest answer (JSON, so that even what
/// the typed API cannot express can be sent); the node is the mock's.
type Rewrite = fn(&mut Value, &MockNode);

/// The demo in front of a facilitator whose `/requirements` is the mock's answer rewritten; its
/// other calls do not exist (`/supported` answers 404, which the layer shrugs off).
async fn start_rewriting(rewrite: Rewrite) -> Harness {
    let mock = start_mock().await;
    let (honest, node) = (facilitator_for(&mock), mock.node().clone());
    let hostile = Router::new().route(
        "/requirements",
        post(move |Json(ask): Json<RequirementsRequest>| {
            let (honest, node) = (honest.clone(), node.clone());
            async move {
                let answer = honest.requirements(&ask).await.expect("the mock answers");
                let mut answer = serde_json::to_value(answer).expect("JSON");
                rewrite(&mut answer, &node);
                Json(answer)
            }
        }),
    );
    let layer = demo_prices(facilitator_at(serve(hostile).await), mock.network())
        .flows(Flows::V1)
        .build()
        .expect("layer builds");
    harness_with(mock, layer).await
}

#[tokio::test]
async fn requirements_that_differ_from_what_was_asked_answer_502() {
    let cases: [(Rewrite, &str); 5] = [
        (
            |answer, _| answer["scheme"] = json!("upto"),
            "payment facilitator /requirements sent an unusable reply",
        ),
        (
            |answer, _| answer["scheme"] = json!("EXACT"),
            "payment facilitator /requirements sent an unusable reply",
        ),
        (
            // Consistent testnet requirements, only not on the network asked.
            |answer, node| {
                let amount = answer["maxAmountRequired"].as_str().expect("amount");
                let spec = InvoiceSpec::new(Network::Testnet, amount.parse().expect("msat"));
                answer["network"] = json!("lightning-testnet");
                answer["extra"]["invoice"] = json!(mint(node, &spec));
            },
            "payment facilitator /requirements sent unusable requirements: facilitator answered \
             network lightning-testnet, asked lightning-regtest",
        ),
        (
            |answer, _| answer["asset"] = json!("ETH"),
            "payment facilitator /requirements sent unusable requirements: facilitator answered \
             asset \"ETH\", expected BTC",
        ),
        (
            |answer, _| answer["extra"] = json!({}),
            "payment facilitator /requirements sent an unusable reply",
        ),
    ];
    for (rewrite, error) in cases {
        let h = start_rewriting(rewrite).await;
        let answer = h.send("/weather", None).await;
        assert_eq!(answer.error(StatusCode::BAD_GATEWAY), error);
        for shown in ["lnbc", "lntb"] {
            assert!(!answer.text.contains(shown), "{}", answer.text);
        }
        assert_eq!(h.calls(FacilitatorCall::Requirements), 1);
    }
    // The same stub, rewriting nothing, is a working facilitator for unpaid requests.
    let h = start_rewriting(|_, _| {}).await;
    h.send("/weather", None).await.refusal();
}

// ---------------------------------------------------------------------------------------------
// 3. Forgeries
// ---------------------------------------------------------------------------------------------

/// Forged authorizations of a genuine invoice, and a genuine authorization of an invoice the
/// facilitator never handed out, pass every check the layer can make and are refused by
/// `/verify`. (Payments the layer refuses by itself, malformed or with an invoice failing a
/// pre-check, are rows of layer_protocol.rs, one test per condition.)
#[tokio::test]
async fn forgeries_only_the_facilitator_can_see_are_refused_at_verify_before_any_content() {
    let h = start().await;
    let requirements = h.requirements("/weather").await;
    let unissued = mint(
        h.mock.node(),
        &InvoiceSpec::new(Network::Regtest, WEATHER_MSAT),
    );
    let cases = [
        (Forgery::TamperedSignature, reason::INVALID_SIGNATURE),
        (Forgery::SignedByAnotherKey, reason::INVALID_SIGNATURE),
        // Signed by the mock's node, but never handed out by it.
        (Forgery::AnotherInvoice(unissued), reason::INVOICE_UNKNOWN),
    ];
    for (forgery, why) in cases {
        let before = h.counts();
        let answer = h
            .send(
                "/weather",
                Some(&h.wallet.forge(&requirements, forgery.clone())),
            )
            .await;
        let refusal = answer.refusal();
        assert_eq!(refusal.error, why, "{forgery:?}");
        assert_ne!(
            refusal.accepts[0].extra.invoice, requirements.extra.invoice,
            "{forgery:?}: a fresh invoice"
        );
        assert!(answer.settlement.is_none(), "{forgery:?}");
        answer.withholds_content();
        assert_eq!(h.counts() - before, Calls::new(1, 1, 0), "{forgery:?}");
    }
    assert_eq!((h.handler_runs(), h.debited()), (0, 0));
    // None of it burned the honest payment of the same requirements.
    let payment = h.wallet.pay(&requirements);
    h.send("/weather", Some(&payment)).await.served("sunny");
    assert_eq!((h.handler_runs(), h.debited()), (1, WEATHER_MSAT));
}

// ---------------------------------------------------------------------------------------------
// 4. Races
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn one_invoice_raced_by_64_requests_is_served_and_settled_once() {
    const RACERS: usize = 64;
    let h = start().await;
    let requirements = h.requirements("/weather").await;
    let invoice: Bolt11Invoice = requirements.extra.invoice.parse().expect("an invoice");
    let payment = h.wallet.pay(&requirements);
    let start_line = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let request = h
            .client
            .get(h.url("/weather"))
            .header(X_PAYMENT, payment.as_str());
        let start_line = Arc::clone(&start_line);
        racers.spawn(async move {
            start_line.wait().await;
            Answer::read(request.send().await.expect("request sent")).await
        });
    }
    let (mut served, mut in_flight, mut already_settled) = (0, 0, 0);
    let mut offered = HashSet::new();
    while let Some(answer) = racers.join_next().await {
        let answer = answer.expect("racer finished");
        match answer.status {
            StatusCode::OK => {
                let settlement = answer.served("sunny");
                assert_eq!(settlement.transaction, invoice.payment_hash().to_string());
                assert_eq!(settlement.payer, Some(h.wallet.id()));
                served += 1;
            }
            // Another racer holds the invoice: no offer, no settlement, no content.
            StatusCode::CONFLICT => {
                answer.error(StatusCode::CONFLICT);
                assert_eq!(answer.body.get("accepts"), None, "{}", answer.text);
                assert!(answer.settlement.is_none(), "{}", answer.text);
                answer.withholds_content();
                in_flight += 1;
            }
            // The winner has settled it: a fresh invoice of its own, and no settlement.
            StatusCode::PAYMENT_REQUIRED => {
                let refusal = answer.refusal();
                assert_eq!(refusal.error, ALREADY_SETTLED);
                let fresh = refusal.accepts[0].extra.invoice.clone();
                assert_ne!(fresh, requirements.extra.invoice);
                assert!(offered.insert(fresh), "an invoice offered twice");
                assert!(answer.settlement.is_none(), "{}", answer.text);
                answer.withholds_content();
                already_settled += 1;
            }
            other => panic!("a loser answers 409 or the already-settled 402, not {other}"),
        }
    }
    assert_eq!(
        served, 1,
        "{in_flight} answered 409, {already_settled} already settled"
    );
    // Only the winner reached /verify and /settle; each already-settled 402 minted one invoice.
    h.assert_calls(Calls::new(1 + already_settled, 1, 1));
    assert_eq!((h.handler_runs(), h.debited()), (1, WEATHER_MSAT));
    assert!(h.mock.is_paid(&requirements.extra.invoice));
}

// ---------------------------------------------------------------------------------------------
// 5. Malformed input
// ---------------------------------------------------------------------------------------------

fn base64_header(json: &str) -> HeaderValue {
    HeaderValue::from_str(&BASE64.encode(json)).expect("base64 is a header value")
}

/// `depth` nested arrays.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn malformed_payment_headers_get_402_json_and_never_reach_verify() {
    let h = start().await;
    let wrong_types = r#"{"x402Version":1,"scheme":"exact","network":"lightning-regtest",
        "payload":{"invoice":42,"signature":true,"from":[]}}"#;
    let deep_in_payload = format!(
        r#"{{"x402Version":1,"scheme":"exact","network":"lightning-regtest",
            "payload":{{"invoice":"i","signature":"s","from":"f","deep":{}}}}}"#,
        nested(2_500)
    );
    let cases = [
        (
            HeaderValue::from_bytes(b"\xff\xfe\xfd\xfc").expect("obs-text"),
            "not valid base64",
        ),
        (
            HeaderValue::from_bytes(b"eyJ4NDAyVmVyc2lvbiI6MX0=\xc3\x28").expect("obs-text"),
            "not valid base64",
        ),
        (HeaderValue::from_static(""), "not a valid payment JSON"),
        (HeaderValue::from_static("    "), "not a valid payment JSON"),
        (base64_header("null"), "not a valid payment JSON"),
        (base64_header("[1,2]"), "not a valid payment JSON"),
        (base64_header("\"x402\""), "not a valid payment JSON"),
        (
            base64_header(wrong_types),
            "payment field payload.invoice must be a string, not an integer",
        ),
        (
            base64_header(r#"{"x402Version":"1","scheme":"exact"}"#),
            "payment field x402Version must be an integer, not a string",
        ),
        (
            base64_header(r#"{"x402Version":2,"scheme":"exact"}"#),
            "unsupported x402Version 2: expected 1",
        ),
        (
            base64_header(r#"{"x402Version":1,"scheme":"exact","network":7}"#),
            "payment field network must be a string, not an integer",
        ),
        (
            base64_header(
                r#"{"x402Version":1,"scheme":"exact","network":"lightning-regtest","payload":null}"#,
            ),
            "payment field payload must be an object, not null",
        ),
        (base64_header(&nested(3_000)), "not a valid payment JSON"),
        (base64_header(&deep_in_payload), "not a valid payment JSON"),
        // Far over the limit (the limit itself is a row of layer_protocol.rs), and the server
        // still takes the request.
        (
            HeaderValue::from_str(&"A".repeat(64 * 1024)).expect("ascii"),
            "payment header is 65536 bytes, over the limit of 8192 bytes",
        ),
    ];
    for (value, says) in cases {
        let shown = String::from_utf8_lossy(value.as_bytes())
            .chars()
            .take(80)
            .collect::<String>();
        let before = h.counts();
        let answer = h.send_raw("/weather", value).await;
        let error = answer.refusal().error;
        assert!(
            error.starts_with(MALFORMED_PREFIX) && error.contains(says),
            "{shown:?}: {error}"
        );
        assert_eq!(h.counts() - before, Calls::new(1, 0, 0), "{shown:?}");
    }
    assert_eq!(h.handler_runs(), 0);
}

#[tokio::test]
async fn two_payment_headers_are_refused_as_malformed() {
    let h = start().await;
    let (first, second) = (
        h.requirements("/weather").await,
        h.requirements("/weather").await,
    );
    let request = h
        .client
        .get(h.url("/weather"))
        .header(X_PAYMENT, h.wallet.pay(&first))
        .header(X_PAYMENT, h.wallet.pay(&second));
    let answer = Answer::read(request.send().await.expect("request sent")).await;
    let refusal = answer.refusal();
    assert_eq!(
        refusal.error,
        "Invalid or malformed payment header: more than one X-PAYMENT header"
    );
    assert_eq!(refusal.payer, None);
    for paid in [&first, &second] {
        assert_ne!(refusal.accepts[0].extra.invoice, paid.extra.invoice);
    }
    assert!(answer.settlement.is_none());
    answer.withholds_content();
    h.assert_calls(Calls::new(3, 0, 0));
    assert_eq!((h.handler_runs(), h.debited()), (0, 0));

    // Neither invoice was claimed by the refusal: each is paid on its own.
    h.send("/weather", Some(&h.wallet.pay(&first)))
        .await
        .served("sunny");
    assert_eq!(h.debited(), WEATHER_MSAT);
}

#[tokio::test]
async fn nesting_far_past_the_parsers_recursion_limit_is_refused_not_a_stack_overflow() {
    let h = start_with(|prices| prices.max_header_bytes(512 * 1024)).await;
    let answer = h
        .send_raw("/weather", base64_header(&nested(100_000)))
        .await;
    assert!(
        answer
            .refusal()
            .error
            .starts_with("Invalid or malformed payment header: payment header is not a valid")
    );
    assert_eq!(h.calls(FacilitatorCall::Verify), 0);
}

// ---------------------------------------------------------------------------------------------
// 6. The settled-invoice memory bound
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_forgotten_settled_invoice_reaches_verify_and_is_refused_there() {
    let h = start_with(|prices| prices.settled_memory(1)).await;
    let first = h.payment_for("/weather").await;
    let second = h.payment_for("/weather").await;
    h.send("/weather", Some(&first)).await.served("sunny");
    h.send("/weather", Some(&second)).await.served("sunny");

    // The last one is remembered: refused here, without /verify.
    let replay = h.send("/weather", Some(&second)).await;
    assert_eq!(replay.refusal().error, ALREADY_SETTLED);
    h.assert_calls(Calls::new(3, 2, 2));

    // The first one was forgotten: /verify is asked, and refuses the duplicate.
    let replay = h.send("/weather", Some(&first)).await;
    let refusal = replay.refusal();
    assert_eq!(refusal.error, reason::DUPLICATE_SETTLEMENT);
    assert_eq!(refusal.payer.as_deref(), Some(h.wallet.id().as_str()));
    replay.withholds_content();
    h.assert_calls(Calls::new(4, 3, 2));
    assert_eq!((h.handler_runs(), h.debited()), (2, 2 * WEATHER_MSAT));
}
