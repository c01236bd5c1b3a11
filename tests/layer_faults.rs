//! The layer against a failing, slow, lying or hostile facilitator, forged and malformed
//! payments, replays and races, over real HTTP. Every refusal must be the status and JSON body
//! of PROTOCOL.md's table "What the middleware answers", the priced content must never leak, and
//! nobody may pay for content they did not get.

mod common;

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
use x402_lightning::header::{X_PAYMENT, encode_payment_header};
use x402_lightning::layer::SupportError;
use x402_lightning::mock::{
    Fault, Forgery, InvoiceFault, InvoiceSpec, MockFacilitator, MockNode, TestWallet,
};
use x402_lightning::types::{ExactLightningPayload, X402_VERSION, reason};
use x402_lightning::{
    Facilitator, FacilitatorCall, FacilitatorError, HttpFacilitator, Network, PaymentPayload,
    PaymentRequired, PaymentRequirements, Price, PriceTag, RequirementsRequest, Scheme,
    SettleRequest, SettleResponse, SupportedResponse, VerifyRequest, VerifyResponse, X402Layer,
};

/// The harness's facilitator client gives up after 500 ms; this is well past it.
const PAST_TIMEOUT: Duration = Duration::from_millis(1_200);

/// What the demo's priced handlers answer; no refusal may carry any of it.
const CONTENT: [&str; 3] = ["sunny", "premium ", "completion"];

/// The prefixes of the layer's own 402 errors (decoding and pre-checks).
const LAYER_402_PREFIXES: [&str; 2] =
    ["Invalid or malformed payment header: ", "Invalid payment: "];

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
        FUNDS_MSAT - self.mock.balance(&self.wallet.public_key())
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
        demo_prices(facilitator_for(mock), mock.network()).pay_to(mock.node().node_id())
    })
    .await
}

/// A client of a facilitator that is not the mock (default timeouts).
fn facilitator_at(addr: SocketAddr) -> HttpFacilitator {
    HttpFacilitator::new(&format!("http://{addr}")).expect("facilitator client")
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

/// `wallet`'s honest `X-PAYMENT` for any regtest invoice.
fn pay_invoice(wallet: &TestWallet, invoice: &str) -> String {
    encode_payment_header(&PaymentPayload {
        x402_version: X402_VERSION,
        scheme: Scheme::Exact,
        network: Network::Regtest,
        payload: ExactLightningPayload::new(invoice.to_owned(), wallet.sign(invoice), wallet.id()),
    })
}

/// How often the mock records (and carries out) one call injected with `fault`: never when it
/// was delayed past the client's timeout, because the client hangs up and the mock's server
/// drops the call unanswered. A real facilitator might finish it regardless.
fn recorded(fault: &Fault) -> usize {
    usize::from(!matches!(fault, Fault::Delay(_)))
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
            let h = start().await;
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
    assert_eq!(fresh.accepts[0].pay_to, h.mock.pay_to());
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
    assert_ne!(requirements.pay_to, h.mock.pay_to());
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
        let h = start().await;
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
async fn verify_invalid_answers_402_with_its_reason() {
    for why in [
        reason::INSUFFICIENT_FUNDS,
        "a_reason_only_this_facilitator_uses",
    ] {
        let h = start().await;
        let payment = h.payment_for("/weather").await;
        h.mock
            .fail_next(FacilitatorCall::Verify, Fault::Invalid(why.to_owned()));
        let answer = h.send("/weather", Some(&payment)).await;
        assert_eq!(answer.refusal().error, why);
        answer.withholds_content();
        h.assert_calls(Calls::new(2, 1, 0));
        assert_eq!((h.handler_runs(), h.debited()), (0, 0));
    }
}

#[tokio::test]
async fn settle_failures_answer_502_or_504_and_drop_the_handlers_answer() {
    for (fault, status) in call_failures() {
        let h = start().await;
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
async fn settle_refused_answers_402_with_the_failed_settlement_and_no_content() {
    let h = start().await;
    let payment = h.payment_for("/weather").await;
    let why = reason::PAYMENT_FAILED;
    h.mock
        .fail_next(FacilitatorCall::Settle, Fault::SettleFailed(why.to_owned()));
    let answer = h.send("/weather", Some(&payment)).await;
    assert_eq!(answer.refusal().error, why);
    let settlement = answer.settlement.clone().expect("X-PAYMENT-RESPONSE");
    assert!(!settlement.success);
    assert_eq!(settlement.error_reason.as_deref(), Some(why));
    assert_eq!(settlement.transaction, "");
    answer.withholds_content();
    assert_eq!(h.handler_runs(), 1);
    h.assert_calls(Calls::new(1, 1, 1));
    assert_eq!(h.debited(), 0);

    // Nothing was paid and nothing remembered: the same payment goes through now.
    h.send("/weather", Some(&payment)).await.served("sunny");
    assert_eq!(h.debited(), WEATHER_MSAT);
}

#[tokio::test]
async fn a_refused_settle_offers_the_unpaid_invoice_again_without_asking_for_a_new_one() {
    let h = start().await;
    let requirements = h.requirements("/weather").await;
    let payment = h.wallet.pay(&requirements);
    h.mock.fail_next(
        FacilitatorCall::Settle,
        Fault::SettleFailed(reason::INSUFFICIENT_FUNDS.to_owned()),
    );
    // A /requirements call would fail: the answer must not need one.
    h.mock.fail_always(
        FacilitatorCall::Requirements,
        Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
    );
    let answer = h.send("/weather", Some(&payment)).await;
    let refusal = answer.refusal();
    assert_eq!(refusal.error, reason::INSUFFICIENT_FUNDS);
    assert_eq!(refusal.accepts[0].extra.invoice, requirements.extra.invoice);
    let settlement = answer.settlement.clone().expect("X-PAYMENT-RESPONSE");
    assert!(!settlement.success);
    assert_eq!(
        settlement.error_reason.as_deref(),
        Some(reason::INSUFFICIENT_FUNDS)
    );
    answer.withholds_content();
    h.assert_calls(Calls::new(1, 1, 1));
    assert_eq!(h.debited(), 0);
}

#[tokio::test]
async fn settling_before_the_handler_never_runs_it_when_the_settle_fails() {
    let h = start_with(|prices| {
        prices.route(
            "GET /premium/early",
            PriceTag::fixed(Price::msat(PREMIUM_MSAT)).settle_before_handler(),
        )
    })
    .await;
    let mut faults = call_failures();
    faults.push((
        Fault::SettleFailed(reason::PAYMENT_FAILED.to_owned()),
        StatusCode::PAYMENT_REQUIRED,
    ));
    for (fault, status) in faults {
        let payment = h.payment_for("/premium/early").await;
        h.mock.fail_next(FacilitatorCall::Settle, fault.clone());
        let answer = h.send("/premium/early", Some(&payment)).await;
        answer.error(status);
        answer.withholds_content();
        assert_eq!((h.handler_runs(), h.debited()), (0, 0), "{fault}");
    }
    let payment = h.payment_for("/premium/early").await;
    h.send("/premium/early", Some(&payment))
        .await
        .served("premium early");
    assert_eq!(h.handler_runs(), 1);
}

#[tokio::test]
async fn supported_failures_never_stop_free_or_priced_routes() {
    for (fault, _) in call_failures() {
        let h = start().await;
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
    let layer = demo_prices(facilitator_at(closed_port().await), Network::Regtest)
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
    let post = h.infer(None, "{}").await;
    assert!(post.error(StatusCode::BAD_GATEWAY).contains("unreachable"));
    // A well-formed payment of a real invoice passes the pre-checks; /verify cannot be asked.
    let invoice = mint(
        &MockNode::random(),
        &InvoiceSpec::new(Network::Regtest, WEATHER_MSAT),
    );
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

#[tokio::test]
async fn a_settlement_that_does_not_match_the_payment_is_refused_with_502() {
    let cases = [
        (
            Lie::Transaction("abababababababababababababababababababababababababababababababab"),
            "payment facilitator /settle sent an unusable reply: settled another invoice",
            Calls::new(1, 1, 1),
        ),
        (
            Lie::Transaction(""),
            "payment facilitator /settle sent an unusable reply: settled another invoice",
            Calls::new(1, 1, 1),
        ),
        (
            Lie::SettledOn(Network::Testnet),
            "payment facilitator /settle sent an unusable reply: settled on another network",
            Calls::new(1, 1, 1),
        ),
        (
            Lie::SettledOn(Network::Bitcoin),
            "payment facilitator /settle sent an unusable reply: settled on another network",
            Calls::new(1, 1, 1),
        ),
        (
            Lie::SettleUnreachable,
            "payment facilitator unreachable (/settle)",
            Calls::new(1, 1, 0),
        ),
    ];
    for (lie, error, calls) in cases {
        let h = start_lying(lie).await;
        let payment = h.payment_for("/weather").await;
        let answer = h.send("/weather", Some(&payment)).await;
        assert_eq!(answer.error(StatusCode::BAD_GATEWAY), error, "{lie:?}");
        answer.withholds_content();
        assert!(answer.settlement.is_none(), "{lie:?}");
        assert_eq!(h.handler_runs(), 1, "{lie:?}");
        h.assert_calls(calls);
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
/// is missing gets the x402 generic reason, but one whose reason is `""` (or blank) is passed
/// through as an empty `error`.
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

/// Who refuses a forged payment, and with what.
#[derive(Debug)]
enum Refusal {
    /// The layer itself, before any facilitator call but fresh requirements; its error
    /// contains this.
    PreCheck(&'static str),
    /// The mock's `/verify`, with this reason.
    Verify(&'static str),
}

#[tokio::test]
async fn every_forgery_is_refused_with_402_before_any_content() {
    let h = start().await;
    let requirements = h.requirements("/weather").await;
    let node = h.mock.node();
    let regtest = |amount| InvoiceSpec::new(Network::Regtest, amount);
    let expired = InvoiceSpec {
        created_at: regtest(1).created_at - Duration::from_secs(7200),
        expiry: Duration::from_secs(60),
        ..regtest(WEATHER_MSAT)
    };
    let another = Forgery::AnotherInvoice;
    let cases = [
        (
            Forgery::TamperedSignature,
            Refusal::Verify(reason::INVALID_SIGNATURE),
        ),
        (
            Forgery::SignedByAnotherKey,
            Refusal::Verify(reason::INVALID_SIGNATURE),
        ),
        (
            // Signed by the mock's node, but never handed out by it.
            another(mint(node, &regtest(WEATHER_MSAT))),
            Refusal::Verify(reason::INVOICE_UNKNOWN),
        ),
        (
            another(mint(node, &regtest(PREMIUM_MSAT))),
            Refusal::PreCheck("invoice amount is 250000 msat, expected 10000 msat"),
        ),
        (
            another(mint(&MockNode::random(), &regtest(WEATHER_MSAT))),
            Refusal::PreCheck("is not the facilitator's node"),
        ),
        (
            another(mint(node, &expired)),
            Refusal::PreCheck("invoice expired"),
        ),
        (
            another(mint(
                node,
                &InvoiceSpec::new(Network::Testnet, WEATHER_MSAT),
            )),
            Refusal::PreCheck("invoice is on"),
        ),
        (
            another("lnbcrt1notaninvoice".to_owned()),
            Refusal::PreCheck("not a valid BOLT11 invoice"),
        ),
        (
            another(String::new()),
            Refusal::PreCheck("not a valid BOLT11 invoice"),
        ),
        (
            Forgery::Network(Network::Testnet),
            Refusal::PreCheck("payment is on lightning-testnet"),
        ),
        (
            Forgery::Network(Network::Bitcoin),
            Refusal::PreCheck("payment is on lightning,"),
        ),
        (
            Forgery::Version(2),
            Refusal::PreCheck("unsupported x402Version 2"),
        ),
        (
            Forgery::Version(0),
            Refusal::PreCheck("unsupported x402Version 0"),
        ),
        (
            Forgery::Scheme("upto".to_owned()),
            Refusal::PreCheck("unsupported scheme"),
        ),
        (
            Forgery::Scheme(String::new()),
            Refusal::PreCheck("unsupported scheme"),
        ),
        (Forgery::NotBase64, Refusal::PreCheck("not valid base64")),
        (
            Forgery::NotJson,
            Refusal::PreCheck("not a valid payment JSON"),
        ),
    ];
    for (forgery, expected) in cases {
        let before = h.counts();
        let answer = h
            .send(
                "/weather",
                Some(&h.wallet.forge(&requirements, forgery.clone())),
            )
            .await;
        let error = answer.refusal().error;
        answer.withholds_content();
        let made = h.counts() - before;
        match expected {
            Refusal::Verify(why) => {
                assert_eq!(error, why, "{forgery:?}");
                assert_eq!(made, Calls::new(1, 1, 0), "{forgery:?}");
            }
            Refusal::PreCheck(says) => {
                assert!(
                    error.contains(says) && LAYER_402_PREFIXES.iter().any(|p| error.starts_with(p)),
                    "{forgery:?}: {error}"
                );
                assert_eq!(made, Calls::new(1, 0, 0), "{forgery:?}");
            }
        }
    }
    assert_eq!((h.handler_runs(), h.debited()), (0, 0));
    // None of it burned the honest payment of the same requirements.
    let payment = h.wallet.pay(&requirements);
    h.send("/weather", Some(&payment)).await.served("sunny");
}

// ---------------------------------------------------------------------------------------------
// 4. Replays and races
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn one_invoice_raced_by_64_requests_is_served_and_settled_once() {
    const RACERS: usize = 64;
    let h = start().await;
    let payment = h.payment_for("/weather").await;
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
    while let Some(answer) = racers.join_next().await {
        let answer = answer.expect("racer finished");
        match answer.status {
            StatusCode::OK => {
                answer.served("sunny");
                served += 1;
            }
            StatusCode::CONFLICT => {
                answer.error(StatusCode::CONFLICT);
                answer.withholds_content();
                in_flight += 1;
            }
            _ => {
                assert_eq!(answer.refusal().error, ALREADY_SETTLED);
                answer.withholds_content();
                already_settled += 1;
            }
        }
    }
    assert_eq!(served, 1);
    assert_eq!(in_flight + already_settled, RACERS - 1);
    h.assert_calls(Calls::new(1 + already_settled, 1, 1));
    assert_eq!((h.handler_runs(), h.debited()), (1, WEATHER_MSAT));
}

#[tokio::test]
async fn a_settled_payment_replayed_is_refused_without_asking_verify() {
    let h = start().await;
    let payment = h.payment_for("/weather").await;
    h.send("/weather", Some(&payment)).await.served("sunny");
    for _ in 0..3 {
        let replay = h.send("/weather", Some(&payment)).await;
        assert_eq!(replay.refusal().error, ALREADY_SETTLED);
        replay.withholds_content();
    }
    h.assert_calls(Calls::new(4, 1, 1));
    assert_eq!((h.handler_runs(), h.debited()), (1, WEATHER_MSAT));
}

#[tokio::test]
async fn a_payment_whose_handler_failed_is_not_settled_and_can_be_retried() {
    let h = start().await;
    let requirements = h.infer(None, "{}").await.refusal().accepts.remove(0);
    let payment = h.wallet.pay(&requirements);

    // Not JSON: axum's extractor answers 400 before the handler body runs.
    let failed = h.infer(Some(&payment), "{not json").await;
    assert_eq!(failed.status, StatusCode::BAD_REQUEST, "{}", failed.text);
    assert!(failed.settlement.is_none());
    h.assert_calls(Calls::new(1, 1, 0));
    assert_eq!(h.debited(), 0);

    let retried = h.infer(Some(&payment), r#"{"prompt":"again"}"#).await;
    retried.served("completion");
    assert_eq!(retried.body["completion"], "again");
    h.assert_calls(Calls::new(1, 2, 1));
    assert_eq!((h.handler_runs(), h.debited()), (1, INFER_MSAT));
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
    let at_limit = "A".repeat(8 * 1024);
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
        (base64_header(wrong_types), "not a valid payment JSON"),
        (
            base64_header(r#"{"x402Version":"1","scheme":"exact"}"#),
            "unsupported x402Version",
        ),
        (
            base64_header(r#"{"x402Version":1,"scheme":"exact","network":7}"#),
            "unsupported network 7",
        ),
        (
            base64_header(
                r#"{"x402Version":1,"scheme":"exact","network":"lightning-regtest","payload":null}"#,
            ),
            "not a valid payment JSON",
        ),
        (base64_header(&nested(3_000)), "not a valid payment JSON"),
        (base64_header(&deep_in_payload), "not a valid payment JSON"),
        // 8 KiB exactly is within the limit (and the server takes it): decoded, then refused.
        (
            HeaderValue::from_str(&at_limit).expect("ascii"),
            "not a valid payment JSON",
        ),
        (
            HeaderValue::from_str(&format!("{at_limit}A")).expect("ascii"),
            "payment header is 8193 bytes, over the limit of 8192 bytes",
        ),
        (
            HeaderValue::from_str(&"A".repeat(64 * 1024)).expect("ascii"),
            "over the limit",
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
            error.starts_with(LAYER_402_PREFIXES[0]) && error.contains(says),
            "{shown:?}: {error}"
        );
        assert_eq!(h.counts() - before, Calls::new(1, 0, 0), "{shown:?}");
    }
    assert_eq!(h.handler_runs(), 0);
}

#[tokio::test]
async fn two_payment_headers_are_refused() {
    let h = start().await;
    let (first, second) = (
        h.payment_for("/weather").await,
        h.payment_for("/weather").await,
    );
    let request = h
        .client
        .get(h.url("/weather"))
        .header(X_PAYMENT, first.as_str())
        .header(X_PAYMENT, second.as_str());
    let answer = Answer::read(request.send().await.expect("request sent")).await;
    assert_eq!(
        answer.refusal().error,
        "Invalid or malformed payment header: more than one X-PAYMENT header"
    );
    assert_eq!(h.calls(FacilitatorCall::Verify), 0);
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
