//! Every row of PROTOCOL.md's table "What the middleware answers", over real HTTP against the
//! mock facilitator.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bitcoin::hashes::Hash as _;
use common::*;
use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, CONTENT_TYPE};
use http::{Method, StatusCode};
use lightning_invoice::{Bolt11Invoice, Currency};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use x402_lightning::Flows;
use x402_lightning::clock::ManualClock;
use x402_lightning::header::{X_PAYMENT, decode_payment_header};
use x402_lightning::invoice::check_requirements_invoice;
use x402_lightning::mock::{Fault, Forgery, InvoiceSpec, MockFacilitator, MockNode, TestWallet};
use x402_lightning::{
    FacilitatorCall, Network, PaymentRequired, PaymentRequirements, Price, PriceTag, Scheme,
    X402Layer,
};

const MALFORMED: &str = "Invalid or malformed payment header";

/// How every 402 error the layer gives by itself begins: a payment header it cannot decode, or
/// a payment that fails a pre-check.
const OWN_402_PREFIXES: [&str; 2] = ["Invalid or malformed payment header: ", "Invalid payment: "];

/// The 402 error of a replay of an invoice the layer remembers settling.
const ALREADY_SETTLED: &str = "Invalid payment: this invoice was already settled";

/// The fields of a `PaymentRequired` body: a 402 carries nothing else (no handler content).
const PAYMENT_REQUIRED_FIELDS: [&str; 4] = ["x402Version", "error", "accepts", "payer"];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The calls the mock answered since its record was last cleared:
/// `(/requirements, /verify, /settle)`.
fn made(h: &Harness) -> (usize, usize, usize) {
    (
        h.calls(FacilitatorCall::Requirements),
        h.calls(FacilitatorCall::Verify),
        h.calls(FacilitatorCall::Settle),
    )
}

/// The wallet's balance at the mock.
fn balance(h: &Harness) -> u64 {
    h.mock.balance(h.wallet.public_key())
}

/// `method path` with an optional `X-PAYMENT`; a POST carries a valid JSON body.
fn request(
    h: &Harness,
    method: Method,
    path: &str,
    payment: Option<&str>,
) -> reqwest::RequestBuilder {
    let post = method == Method::POST;
    let mut request = h.client.request(method, h.url(path));
    if post {
        request = request.json(&json!({ "prompt": "hello" }));
    }
    if let Some(payment) = payment {
        request = request.header(X_PAYMENT_ON_THE_WIRE, payment);
    }
    request
}

async fn send(h: &Harness, method: Method, path: &str, payment: Option<&str>) -> reqwest::Response {
    request(h, method, path, payment)
        .send()
        .await
        .expect("request sent")
}

fn assert_json(response: &reqwest::Response) {
    assert_eq!(
        response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"application/json"[..]),
        "content type of a {} answer",
        response.status()
    );
}

/// The payment hash of a BOLT11 invoice as lowercase hex, read with `lightning-invoice`.
fn payment_hash_hex(invoice: &str) -> String {
    let invoice: Bolt11Invoice = invoice.parse().expect("a BOLT11 invoice");
    invoice
        .payment_hash()
        .to_byte_array()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Asserts a 402 `PaymentRequired` (x402Version 1, JSON) whose only offer is a fresh, unpaid
/// invoice for `path` at `price_msat` on regtest, payable to the mock's node; returns the body.
async fn expect_offer(
    h: &Harness,
    response: reqwest::Response,
    path: &str,
    price_msat: u64,
) -> PaymentRequired {
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    assert_json(&response);
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["x402Version"], json!(1), "{body}");
    let fields: BTreeSet<&str> = body
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        fields.is_subset(&PAYMENT_REQUIRED_FIELDS.into()),
        "a 402 carries a PaymentRequired and nothing else: {body}"
    );
    let body: PaymentRequired = serde_json::from_value(body).expect("a PaymentRequired body");
    assert_eq!(body.accepts.len(), 1, "{body:?}");
    let offer = &body.accepts[0];
    assert_eq!(offer.scheme, Scheme::Exact);
    assert_eq!(offer.network, Network::Regtest);
    assert_eq!(offer.asset, "BTC");
    assert_eq!(offer.max_amount_required, price_msat);
    assert_eq!(offer.pay_to, h.mock.pay_to().to_string());
    assert_eq!(offer.resource, h.url(path));
    let checked = check_requirements_invoice(offer, h.now()).expect("invoice matches offer");
    let invoice: Bolt11Invoice = offer.extra.invoice.parse().expect("a BOLT11 invoice");
    assert_eq!(invoice.amount_milli_satoshis(), Some(price_msat));
    assert_eq!(invoice.currency(), Currency::Regtest);
    assert_eq!(checked.payee(), h.mock.node().node_id());
    assert!(!h.mock.is_paid(&offer.extra.invoice), "a fresh invoice");
    body
}

/// The offer of a fresh 402 for `method path`.
async fn offer(h: &Harness, method: Method, path: &str, price_msat: u64) -> PaymentRequirements {
    let response = send(h, method, path, None).await;
    expect_offer(h, response, path, price_msat)
        .await
        .accepts
        .remove(0)
}

/// An `X-PAYMENT` paying a fresh invoice of `GET path`, and its requirements; the calls made to
/// get them are forgotten.
async fn fresh_payment(h: &Harness, path: &str) -> (String, PaymentRequirements) {
    let requirements = h.requirements(path).await;
    h.mock.clear_calls();
    (h.wallet.pay(&requirements), requirements)
}

/// `GET path` carrying `payment`.
fn get_paying(h: &Harness, path: &str, payment: &str) -> reqwest::RequestBuilder {
    request(h, Method::GET, path, Some(payment))
}

/// Sends `request` and asserts the layer refused its payment by itself: 402 whose `error`
/// contains each of `says`, a fresh offer (not the invoice paid), `/requirements` only, the
/// handler not run and nothing paid; returns the 402 body.
async fn assert_refused_before_verify(
    h: &Harness,
    request: reqwest::RequestBuilder,
    path: &str,
    price_msat: u64,
    says: &[&str],
) -> PaymentRequired {
    h.mock.clear_calls();
    let (runs, funds) = (h.handler_runs(), balance(h));
    let request = request.build().expect("a request");
    let paid_invoice = request
        .headers()
        .get(X_PAYMENT)
        .and_then(|value| decode_payment_header(value.as_bytes(), usize::MAX).ok())
        .map(|payment| payment.payload.invoice);
    let response = h.client.execute(request).await.expect("request sent");
    assert!(payment_response(&response).is_none());
    let body = expect_offer(h, response, path, price_msat).await;
    assert!(
        OWN_402_PREFIXES
            .iter()
            .any(|prefix| body.error.starts_with(prefix)),
        "{:?} is not one of the layer's own errors",
        body.error
    );
    for part in says {
        assert!(
            body.error.contains(part),
            "error {:?} should say {part:?}",
            body.error
        );
    }
    assert_eq!(body.payer, None);
    if let Some(paid) = paid_invoice {
        assert_ne!(body.accepts[0].extra.invoice, paid, "a fresh invoice");
    }
    assert_eq!(made(h), (1, 0, 0), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), runs, "the handler must not run");
    assert_eq!(balance(h), funds, "nothing paid");
    body
}

/// `GET /weather` paying with `payment` is refused before `/verify`, its `error` saying `says`.
async fn assert_weather_refused(h: &Harness, payment: &str, says: &[&str]) -> PaymentRequired {
    let request = get_paying(h, "/weather", payment);
    assert_refused_before_verify(h, request, "/weather", WEATHER_MSAT, says).await
}

/// A `/weather` payment spoiled by `forgery` is refused before `/verify`, its `error` saying
/// `says`; the refusal burns nothing: the honest payment of the same offer is served after it.
async fn assert_forgery_refused(h: &Harness, forgery: Forgery, says: &[&str]) {
    let offer = h.requirements("/weather").await;
    assert_weather_refused(h, &h.wallet.forge(&offer, forgery.clone()), says).await;
    let honest = h.get("/weather", Some(&h.wallet.pay(&offer))).await;
    assert_eq!(honest.status(), StatusCode::OK, "after {forgery:?}");
    let settlement = payment_response(&honest).expect("X-PAYMENT-RESPONSE");
    assert!(settlement.success, "after {forgery:?}");
}

/// The wallet's honest authorization of `invoice` for `/weather` is refused before `/verify`.
async fn assert_invoice_refused(h: &Harness, invoice: &str, says: &[&str]) {
    assert_weather_refused(h, &pay_invoice(&h.wallet, invoice), says).await;
}

/// Refuses the settle of the next paid `GET path` with `settle_exact_lightning_payment_failed`
/// and asserts the 402 that follows, then that the same payment is served when settled; returns
/// how often the handler had run by the refusal.
async fn refused_settle(h: &Harness, path: &str, price_msat: u64) -> usize {
    let (payment, requirements) = fresh_payment(h, path).await;
    h.mock.fail_next(
        FacilitatorCall::Settle,
        Fault::SettleFailed("settle_exact_lightning_payment_failed".into()),
    );
    let response = h.get(path, Some(&payment)).await;
    let settlement = payment_response(&response).expect("X-PAYMENT-RESPONSE on a failed settle");
    assert!(!settlement.success);
    assert_eq!(
        settlement.error_reason.as_deref(),
        Some("settle_exact_lightning_payment_failed")
    );
    assert_eq!(settlement.transaction, "");
    let body = expect_offer(h, response, path, price_msat).await;
    assert_eq!(body.error, "settle_exact_lightning_payment_failed");
    // The invoice was not paid, so it is offered again: no /requirements call.
    assert_eq!(body.accepts[0].extra.invoice, requirements.extra.invoice);
    assert_eq!(made(h), (0, 1, 1), "(/requirements, /verify, /settle)");
    assert!(!h.mock.is_paid(&requirements.extra.invoice));
    assert_eq!(balance(h), FUNDS_MSAT);
    let runs = h.handler_runs();

    // Nothing was paid and nothing remembered: the same payment goes through now.
    let retried = h.get(path, Some(&payment)).await;
    assert_eq!(retried.status(), StatusCode::OK);
    assert!(
        payment_response(&retried)
            .expect("X-PAYMENT-RESPONSE")
            .success
    );
    assert_eq!(balance(h), FUNDS_MSAT - price_msat);
    runs
}

/// The demo app with `/weather` (and a priced `/fail`) settled before their handlers run.
async fn start_prepaid() -> Harness {
    start_layer(|mock| {
        let prepaid = |msat| PriceTag::fixed(Price::msat(msat)).settle_before_handler();
        X402Layer::builder(facilitator_for(mock), mock.network())
            .flows(Flows::V1)
            .route("GET /weather", prepaid(WEATHER_MSAT))
            .route("GET /fail", prepaid(1_000))
    })
    .await
}

/// `GET /` of the dynamic-price app with an `x-tier` header.
async fn get_tier(h: &Harness, tier: &str) -> reqwest::Response {
    let request = h.client.get(h.url("/")).header("x-tier", tier);
    request.send().await.expect("request sent")
}

/// The demo app with `GET /` priced per request: free with `x-tier: free`, zero with
/// `x-tier: zero`, else 7 sat.
async fn start_dynamic() -> Harness {
    let tag = PriceTag::dynamic(|head: &http::request::Parts| {
        let tier = head
            .headers
            .get("x-tier")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        async move {
            match tier.as_deref() {
                Some("free") => None,
                Some("zero") => Some(Price::msat(0)),
                _ => Some(Price::sats(7)),
            }
        }
    });
    start_with(|prices| prices.route("GET /", tag)).await
}

/// A handler answering `answer` that counts its runs in `runs`.
fn counted(
    runs: &Arc<AtomicUsize>,
    answer: &'static str,
) -> impl Fn() -> std::future::Ready<&'static str> + Clone + Send + Sync + 'static {
    let runs = Arc::clone(runs);
    move || {
        runs.fetch_add(1, Ordering::SeqCst);
        std::future::ready(answer)
    }
}

// ---------------------------------------------------------------------------------------------
// Row: no price, or OPTIONS
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn free_routes_are_served_without_any_facilitator_call() {
    let h = start().await;
    let root = h.get("/", None).await;
    assert_eq!(root.status(), StatusCode::OK);
    assert_eq!(root.text().await.unwrap(), "free");
    let health = h.get("/health", Some("not even base64!")).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );
    assert!(h.mock.calls().is_empty(), "{:?}", h.mock.calls());
}

#[tokio::test]
async fn options_preflight_on_a_priced_route_is_answered_by_the_app_without_calls() {
    // `/ai/infer` is also priced for every method, so only the preflight rule lets OPTIONS by.
    let h = start_with(|prices| prices.route("/ai/infer", Price::sats(1))).await;
    for path in ["/weather", "/ai/infer"] {
        let response = send(&h, Method::OPTIONS, path, None).await;
        assert_ne!(response.status(), StatusCode::PAYMENT_REQUIRED, "{path}");
        // axum's own answer: neither route has an OPTIONS handler.
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert!(payment_response(&response).is_none());
    }
    assert!(h.mock.calls().is_empty(), "{:?}", h.mock.calls());
    assert_eq!(h.handler_runs(), 0);
}

// ---------------------------------------------------------------------------------------------
// Row: priced, no X-PAYMENT
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unpaid_request_gets_402_with_fresh_invoice() {
    let h = start().await;
    let response = h.get("/weather", None).await;
    let body = expect_offer(&h, response, "/weather", WEATHER_MSAT).await;
    assert_eq!(body.error, "X-PAYMENT header is required");
    assert_eq!(body.payer, None);
    let offer = &body.accepts[0];
    assert_eq!(
        offer.resource,
        format!("http://127.0.0.1:{}/weather", h.addr.port())
    );
    assert_eq!(offer.description, "Current weather");
    assert_eq!(offer.mime_type, "application/json");
    assert_eq!(offer.max_timeout_seconds, 60);
    assert_eq!(made(&h), (1, 0, 0), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 0);

    // What was asked of the facilitator, on the wire.
    let asked = h.mock.calls_to(FacilitatorCall::Requirements)[0].request();
    assert_eq!(asked["x402Version"], json!(1));
    assert_eq!(asked["scheme"], json!("exact"));
    assert_eq!(asked["network"], json!("lightning-regtest"));
    assert_eq!(asked["amount"], json!(WEATHER_MSAT.to_string()));
    assert_eq!(asked["resource"], json!(offer.resource));
    assert_eq!(asked["description"], json!("Current weather"));

    // Every 402 mints its own invoice.
    let again = h.requirements("/weather").await;
    assert_ne!(again.extra.invoice, offer.extra.invoice);
}

#[tokio::test]
async fn resource_is_the_requested_url_with_its_query() {
    let h = start().await;
    let path = "/premium/a/b?lang=en&x=1";
    let response = h.get(path, None).await;
    let body = expect_offer(&h, response, path, PREMIUM_MSAT).await;
    assert_eq!(body.accepts[0].description, "Premium content");
}

#[tokio::test]
async fn public_base_url_replaces_the_host_in_resource() {
    let h = start_with(|prices| prices.public_base_url("https://api.example.com")).await;
    let offer = h.requirements("/premium/a/b?lang=en").await;
    assert_eq!(
        offer.resource,
        "https://api.example.com/premium/a/b?lang=en"
    );
    let asked = h.mock.calls_to(FacilitatorCall::Requirements)[0].request();
    assert_eq!(asked["resource"], json!(offer.resource));
}

#[tokio::test]
async fn head_on_a_get_priced_route_is_priced() {
    let h = start().await;
    let response = send(&h, Method::HEAD, "/weather", None).await;
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(made(&h), (1, 0, 0), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 0);
}

// ---------------------------------------------------------------------------------------------
// Row: X-PAYMENT oversized, not base64, not JSON, wrong version/scheme/network
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_payment_header_is_refused_before_verify() {
    let h = start().await;
    // 8 KiB exactly is within the default limit: decoded, then refused for what it is.
    let at_limit = "A".repeat(8 * 1024);
    assert_weather_refused(&h, &at_limit, &[MALFORMED, "not a valid payment JSON"]).await;
    let oversized = format!("{at_limit}A");
    let says = [
        MALFORMED,
        "payment header is 8193 bytes, over the limit of 8192 bytes",
    ];
    assert_weather_refused(&h, &oversized, &says).await;
}

#[tokio::test]
async fn non_base64_payment_header_is_refused_before_verify() {
    let h = start().await;
    assert_forgery_refused(&h, Forgery::NotBase64, &[MALFORMED, "not valid base64"]).await;
}

#[tokio::test]
async fn non_json_payment_header_is_refused_before_verify() {
    let h = start().await;
    let says = [MALFORMED, "not a valid payment JSON"];
    assert_forgery_refused(&h, Forgery::NotJson, &says).await;
}

#[tokio::test]
async fn payment_of_another_x402_version_is_refused_before_verify() {
    let h = start().await;
    for version in [2, 0] {
        let says = [MALFORMED, &format!("unsupported x402Version {version}")];
        assert_forgery_refused(&h, Forgery::Version(version), &says).await;
    }
}

#[tokio::test]
async fn payment_of_another_scheme_is_refused_before_verify() {
    let h = start().await;
    for scheme in ["upto", ""] {
        let says = [MALFORMED, &format!("unsupported scheme {scheme}")];
        assert_forgery_refused(&h, Forgery::Scheme(scheme.into()), &says).await;
    }
}

#[tokio::test]
async fn payment_on_another_lightning_network_is_refused_before_verify() {
    let h = start().await;
    for network in [Network::Bitcoin, Network::Testnet] {
        let says = [
            MALFORMED,
            &format!("payment is on {network},"),
            "paid on lightning-regtest",
        ];
        assert_forgery_refused(&h, Forgery::Network(network), &says).await;
    }
}

#[tokio::test]
async fn payment_on_a_network_that_is_not_lightning_is_refused_before_verify() {
    let h = start().await;
    let offer = h.requirements("/weather").await;
    let mut payment = json!(h.wallet.authorize(&offer));
    payment["network"] = json!("base-sepolia");
    let payment = BASE64.encode(payment.to_string());
    let says = [MALFORMED, "unsupported network base-sepolia"];
    assert_weather_refused(&h, &payment, &says).await;
}

// ---------------------------------------------------------------------------------------------
// Row: the payload invoice fails a pre-check
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unparsable_invoice_is_refused_before_verify() {
    let h = start().await;
    let says = ["Invalid payment", "not a valid BOLT11 invoice"];
    for invoice in ["lnbcrt100n1notaninvoice", ""] {
        assert_invoice_refused(&h, invoice, &says).await;
    }
}

#[tokio::test]
async fn invoice_on_another_network_is_refused_before_verify() {
    let h = start().await;
    let testnet = InvoiceSpec::new(Network::Testnet, WEATHER_MSAT);
    let invoice = h.mock.node().mint(&testnet).unwrap().invoice.to_string();
    let says = [
        "Invalid payment",
        "invoice is on lightning-testnet, expected lightning-regtest",
    ];
    assert_invoice_refused(&h, &invoice, &says).await;
}

#[tokio::test]
async fn invoice_for_another_price_is_refused_before_verify() {
    let h = start().await;
    // A valid payment of /weather's invoice, sent to /premium/x.
    let (weather_payment, _) = fresh_payment(&h, "/weather").await;
    let request = get_paying(&h, "/premium/x", &weather_payment);
    let says = [
        "Invalid payment",
        &format!("invoice amount is {WEATHER_MSAT} msat, expected {PREMIUM_MSAT} msat"),
    ];
    assert_refused_before_verify(&h, request, "/premium/x", PREMIUM_MSAT, &says).await;
}

/// An invoice for `/weather`'s price on regtest, payable to a node that is not the mock's.
fn strangers_invoice() -> (MockNode, String) {
    let stranger = MockNode::random();
    let minted = stranger.mint(&InvoiceSpec::new(Network::Regtest, WEATHER_MSAT));
    let invoice = minted.expect("minted").invoice.to_string();
    (stranger, invoice)
}

#[tokio::test]
async fn invoice_payable_to_another_node_than_the_pinned_pay_to_is_refused() {
    let h = start_layer(|mock| {
        demo_prices(facilitator_for(mock), mock.network())
            .flows(Flows::V1)
            .pay_to(mock.node().node_id())
    })
    .await;
    let (stranger, invoice) = strangers_invoice();
    let payee = format!(
        "invoice payee is {}, expected {}",
        stranger.pay_to(),
        h.mock.pay_to()
    );
    assert_invoice_refused(&h, &invoice, &["Invalid payment", payee.as_str()]).await;
}

#[tokio::test]
async fn invoice_payable_to_another_node_than_the_facilitators_is_refused() {
    let h = start().await;
    h.requirements("/weather").await; // the layer learns the facilitator's node
    let (_, invoice) = strangers_invoice();
    let says = ["Invalid payment", "is not the facilitator's node"];
    assert_invoice_refused(&h, &invoice, &says).await;
}

#[tokio::test]
async fn pinned_pay_to_refuses_requirements_for_another_node_with_502() {
    let h = start_layer(|mock| {
        demo_prices(facilitator_for(mock), mock.network())
            .flows(Flows::V1)
            .pay_to(MockNode::random().node_id())
    })
    .await;
    let response = h.get("/weather", None).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_json(&response);
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().expect("an error message");
    assert!(error.contains("payTo"), "{error}");
    assert_eq!(body.get("accepts"), None);
    assert_eq!(made(&h), (1, 0, 0), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 0);
}

#[tokio::test]
async fn expired_invoice_is_refused_before_verify() {
    let h = start().await;
    let expired = InvoiceSpec {
        created_at: h.now() - Duration::from_secs(7200),
        expiry: Duration::from_secs(60),
        ..InvoiceSpec::new(Network::Regtest, WEATHER_MSAT)
    };
    let invoice = h.mock.node().mint(&expired).unwrap().invoice.to_string();
    let says = ["Invalid payment", "invoice expired at unix time"];
    assert_invoice_refused(&h, &invoice, &says).await;
}

#[tokio::test]
async fn an_invoice_handed_out_in_a_402_is_checked_again_when_paid() {
    // The layer remembers the invoices of its 402s, so their payments skip parsing them again;
    // the remembered facts are still checked: here the invoice expired since the 402. One
    // manual clock drives the mock (which mints and verifies) and the layer (which checks).
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder()
        .clock(clock.clone())
        .invoice_expiry(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let layer_clock = clock.clone();
    let h = start_layer_on(mock, |mock| {
        demo_prices(facilitator_for(mock), mock.network())
            .flows(Flows::V1)
            .clock(layer_clock)
    })
    .await
    .on_clock(clock.clone());
    let (early, _) = fresh_payment(&h, "/weather").await;
    let (late, requirements) = fresh_payment(&h, "/weather").await;
    let expires_at = check_requirements_invoice(&requirements, h.now())
        .expect("a valid offer")
        .expires_at();

    // A second before its expiry, an invoice of the same age is still paid...
    clock.advance(expires_at - h.now() - Duration::from_secs(1));
    let served = h.get("/weather", Some(&early)).await;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(balance(&h), FUNDS_MSAT - WEATHER_MSAT);
    // ...and from its expiry on, it is refused before /verify.
    clock.advance(Duration::from_secs(1));
    let expired = format!("invoice expired at unix time {}", expires_at.as_secs());
    assert_weather_refused(&h, &late, &["Invalid payment", &expired]).await;
    assert!(!h.mock.is_paid(&requirements.extra.invoice));
}

#[tokio::test]
async fn replayed_settled_invoice_is_refused_without_verify() {
    let h = start().await;
    let (payment, _) = fresh_payment(&h, "/weather").await;
    let first = h.get("/weather", Some(&payment)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(h.handler_runs(), 1);
    // Every replay: a fresh offer, /requirements only, the handler not run, nothing paid.
    for _ in 0..3 {
        let refusal = assert_weather_refused(&h, &payment, &[]).await;
        assert_eq!(refusal.error, ALREADY_SETTLED);
    }
    assert_eq!(h.handler_runs(), 1);
    assert_eq!(balance(&h), FUNDS_MSAT - WEATHER_MSAT);
}

// ---------------------------------------------------------------------------------------------
// Row: the same invoice is already being processed
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invoice_in_flight_elsewhere_gets_409_without_facilitator_calls() {
    // `/gated` holds its request inside the handler until the test opens the gate.
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Notify::new());
    let mock = MockFacilitator::start().await.unwrap();
    let layer = demo_prices(facilitator_for(&mock), mock.network())
        .flows(Flows::V1)
        .route("GET /gated", Price::sats(1))
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let gated = {
        let (gate, entered, runs) = (Arc::clone(&gate), Arc::clone(&entered), Arc::clone(&runs));
        move || {
            let (gate, entered, runs) =
                (Arc::clone(&gate), Arc::clone(&entered), Arc::clone(&runs));
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                entered.notify_one();
                let _open = gate.acquire().await.expect("gate open");
                "opened"
            }
        }
    };
    let app = demo_app(Arc::clone(&runs))
        .route("/gated", get(gated))
        .layer(layer);
    let h = harness(mock, app, runs).await;

    let (payment, _) = fresh_payment(&h, "/gated").await;
    let first = tokio::spawn(get_paying(&h, "/gated", &payment).send());
    // The timeouts guard against a hang; they measure nothing.
    tokio::time::timeout(Duration::from_secs(30), entered.notified())
        .await
        .expect("the first request reaches its handler");

    let second = tokio::time::timeout(Duration::from_secs(30), h.get("/gated", Some(&payment)))
        .await
        .expect("the second request is answered while the first is in flight");
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_json(&second);
    let body: Value = second.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(body.get("accepts"), None);
    assert_eq!(made(&h), (0, 1, 0), "only the first request's /verify");

    gate.add_permits(1);
    let first = first.await.unwrap().expect("first answered");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.text().await.unwrap(), "opened");
    assert_eq!(made(&h), (0, 1, 1), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 1);
    assert_eq!(balance(&h), FUNDS_MSAT - 1_000);
}

// ---------------------------------------------------------------------------------------------
// Row: /verify says invalid
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn verify_refusal_is_a_402_with_its_reason() {
    let h = start().await;
    // An x402 reason, and one the layer cannot know: both are passed on as they are.
    for why in ["insufficient_funds", "a_reason_only_this_facilitator_uses"] {
        let (payment, requirements) = fresh_payment(&h, "/weather").await;
        h.mock
            .fail_next(FacilitatorCall::Verify, Fault::Invalid(why.into()));
        let response = h.get("/weather", Some(&payment)).await;
        assert!(payment_response(&response).is_none());
        let body = expect_offer(&h, response, "/weather", WEATHER_MSAT).await;
        assert_eq!(body.error, why);
        assert_eq!(body.payer, None, "the facilitator named no payer");
        assert_ne!(body.accepts[0].extra.invoice, requirements.extra.invoice);
        assert_eq!(made(&h), (1, 1, 0), "(/requirements, /verify, /settle)");
    }
    assert_eq!(h.handler_runs(), 0);
    assert_eq!(balance(&h), FUNDS_MSAT);
}

#[tokio::test]
async fn verify_refusal_names_the_payer_the_facilitator_named() {
    let h = start().await;
    let broke = TestWallet::random();
    let requirements = h.requirements("/weather").await;
    h.mock.clear_calls();
    let response = h.get("/weather", Some(&broke.pay(&requirements))).await;
    let body = expect_offer(&h, response, "/weather", WEATHER_MSAT).await;
    assert_eq!(body.error, "insufficient_funds");
    assert_eq!(body.payer, Some(broke.id()));
    assert_eq!(made(&h), (1, 1, 0), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 0);
}

// ---------------------------------------------------------------------------------------------
// Row: handler answers >= 400
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn failing_handler_response_is_returned_unchanged_and_not_settled() {
    let h = start_with(|prices| prices.route("GET /fail", Price::sats(1))).await;
    let (payment, requirements) = fresh_payment(&h, "/fail").await;
    let response = h.get("/fail", Some(&payment)).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(payment_response(&response).is_none());
    assert_eq!(response.text().await.unwrap(), "boom");
    assert_eq!(made(&h), (0, 1, 0), "(/requirements, /verify, /settle)");
    assert!(!h.mock.is_paid(&requirements.extra.invoice));
    assert_eq!(balance(&h), FUNDS_MSAT);
}

#[tokio::test]
async fn paid_post_with_malformed_json_gets_the_routes_4xx_and_is_not_settled() {
    let h = start().await;
    let requirements = offer(&h, Method::POST, "/ai/infer", INFER_MSAT).await;
    h.mock.clear_calls();
    let response = h
        .client
        .post(h.url("/ai/infer"))
        .header(X_PAYMENT, h.wallet.pay(&requirements))
        .header(CONTENT_TYPE, "application/json")
        .body("{\"prompt\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "the route's JSON check, as axum's JSON rejection"
    );
    assert!(payment_response(&response).is_none());
    // Refused by the route's check before anything: not even /verify holds the payment.
    assert_eq!(made(&h), (0, 0, 0), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 0);
    assert_eq!(balance(&h), FUNDS_MSAT);

    // Not settled, so not remembered: the same payment with a valid body is served.
    let retried = h
        .client
        .post(h.url("/ai/infer"))
        .header(X_PAYMENT_ON_THE_WIRE, h.wallet.pay(&requirements))
        .json(&json!({ "prompt": "again" }))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::OK);
    assert!(
        payment_response(&retried)
            .expect("X-PAYMENT-RESPONSE")
            .success
    );
    let body: Value = retried.json().await.unwrap();
    assert_eq!(body["completion"], json!("again"));
    assert_eq!(made(&h), (0, 1, 1), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 1);
    assert_eq!(balance(&h), FUNDS_MSAT - INFER_MSAT);
}

// ---------------------------------------------------------------------------------------------
// Row: handler answers < 400 and /settle succeeds
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn paid_post_with_json_body_is_served_settled_and_debited() {
    let h = start().await;
    let requirements = offer(&h, Method::POST, "/ai/infer", INFER_MSAT).await;
    h.mock.clear_calls();
    let payment = h.wallet.pay(&requirements);
    let response = send(&h, Method::POST, "/ai/infer", Some(&payment)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        payment_response(&response)
            .expect("X-PAYMENT-RESPONSE")
            .success
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "completion": "hello", "model": "test" }));
    assert_eq!(made(&h), (0, 1, 1), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 1);
    assert_eq!(balance(&h), FUNDS_MSAT - 5_000_000);
}

#[tokio::test]
async fn a_paid_request_is_verified_served_and_settled_and_the_handler_sees_the_payment() {
    let h = start().await;
    // The offer as the client reads it off the wire.
    let unpaid: Value = h.get("/weather", None).await.json().await.unwrap();
    let offered = unpaid["accepts"][0].clone();
    let requirements: PaymentRequirements = serde_json::from_value(offered.clone()).unwrap();
    let payment = h.wallet.pay(&requirements);
    h.mock.clear_calls();
    let hash = payment_hash_hex(&requirements.extra.invoice);
    let response = h.get("/weather", Some(&payment)).await;
    assert_eq!(response.status(), StatusCode::OK);

    let settlement = payment_response(&response).expect("X-PAYMENT-RESPONSE");
    assert!(settlement.success);
    assert_eq!(settlement.error_reason, None);
    assert_eq!(settlement.transaction, hash);
    assert_eq!(settlement.network, Network::Regtest);
    assert_eq!(settlement.payer, Some(h.wallet.id()));
    let exposed = response
        .headers()
        .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("X-PAYMENT-RESPONSE"));
    assert!(exposed, "{:?}", response.headers());

    let body: Value = response.json().await.unwrap();
    assert_eq!(body["conditions"], json!("sunny"));
    assert_eq!(body["payer"], json!(h.wallet.id()));
    assert_eq!(body["paymentHash"], json!(hash));
    assert_eq!(body["amountMsat"], json!(WEATHER_MSAT));
    assert_eq!(body["network"], json!("lightning-regtest"));
    assert_eq!(body["settled"], json!(false));
    assert_eq!(made(&h), (0, 1, 1), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 1);
    assert!(h.mock.is_paid(&requirements.extra.invoice));
    assert_eq!(balance(&h), FUNDS_MSAT - WEATHER_MSAT);

    // On the wire: /settle gets the very body /verify got, made of the client's X-PAYMENT JSON
    // untouched and the requirements the client paid.
    let verified = h.mock.calls_to(FacilitatorCall::Verify).remove(0).request();
    let settled = h.mock.calls_to(FacilitatorCall::Settle).remove(0).request();
    assert_eq!(settled, verified);
    let sent: Value = serde_json::from_slice(&BASE64.decode(&payment).unwrap()).unwrap();
    assert_eq!(
        verified,
        json!({ "x402Version": 1, "paymentPayload": sent, "paymentRequirements": offered })
    );
}

// ---------------------------------------------------------------------------------------------
// Row: /settle says success: false
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refused_settle_is_a_402_with_the_failed_settle_response_and_no_body() {
    let h = start().await;
    let runs = refused_settle(&h, "/weather", WEATHER_MSAT).await;
    assert_eq!(runs, 1, "the handler ran, its answer was dropped");
}

// ---------------------------------------------------------------------------------------------
// Opt-in: settle before the handler
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn settle_before_handler_settles_first() {
    let h = start_prepaid().await;
    let (payment, requirements) = fresh_payment(&h, "/weather").await;
    let response = h.get("/weather", Some(&payment)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        payment_response(&response)
            .expect("X-PAYMENT-RESPONSE")
            .success
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["settled"],
        json!(true),
        "settled before the handler ran"
    );
    assert_eq!(
        body["paymentHash"],
        json!(payment_hash_hex(&requirements.extra.invoice))
    );
    assert_eq!(made(&h), (0, 1, 1), "(/requirements, /verify, /settle)");
    assert_eq!(balance(&h), FUNDS_MSAT - WEATHER_MSAT);
}

#[tokio::test]
async fn settle_before_handler_refused_settle_never_runs_the_handler() {
    let h = start_prepaid().await;
    let runs = refused_settle(&h, "/weather", WEATHER_MSAT).await;
    assert_eq!(runs, 0);
}

#[tokio::test]
async fn settle_before_handler_charges_even_when_the_handler_fails() {
    let h = start_prepaid().await;
    let (payment, requirements) = fresh_payment(&h, "/fail").await;
    let response = h.get("/fail", Some(&payment)).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        payment_response(&response)
            .expect("X-PAYMENT-RESPONSE")
            .success
    );
    assert_eq!(response.text().await.unwrap(), "boom");
    assert_eq!(made(&h), (0, 1, 1), "(/requirements, /verify, /settle)");
    assert!(h.mock.is_paid(&requirements.extra.invoice));
    assert_eq!(balance(&h), FUNDS_MSAT - 1_000);
}

// ---------------------------------------------------------------------------------------------
// Dynamic prices
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dynamic_price_of_none_is_free_without_facilitator_calls() {
    let h = start_dynamic().await;
    let response = get_tier(&h, "free").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "free");
    assert!(h.mock.calls().is_empty(), "{:?}", h.mock.calls());
}

#[tokio::test]
async fn dynamic_price_is_charged_as_returned() {
    let h = start_dynamic().await;
    let (payment, requirements) = fresh_payment(&h, "/").await;
    assert_eq!(requirements.max_amount_required, 7_000);
    let response = h.get("/", Some(&payment)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "free");
    assert_eq!(made(&h), (0, 1, 1), "(/requirements, /verify, /settle)");
    assert_eq!(balance(&h), FUNDS_MSAT - 7_000);
}

#[tokio::test]
async fn dynamic_price_of_zero_is_a_500_not_a_free_pass() {
    let h = start_dynamic().await;
    let response = get_tier(&h, "zero").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_json(&response);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("price")),
        "{body}"
    );
    assert_eq!(made(&h), (0, 0, 0), "(/requirements, /verify, /settle)");
}

// ---------------------------------------------------------------------------------------------
// axum's route_layer
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn route_layer_prices_matched_routes_and_leaves_404s_free() {
    let mock = MockFacilitator::start().await.unwrap();
    let layer = X402Layer::builder(facilitator_for(&mock), mock.network())
        .flows(Flows::V1)
        .price_every_request(Price::sats(3))
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/x", get(counted(&runs, "x content")))
        .route_layer(layer);
    let h = harness(mock, app, runs).await;

    assert_eq!(h.get("/nope", None).await.status(), StatusCode::NOT_FOUND);
    assert!(h.mock.calls().is_empty(), "{:?}", h.mock.calls());

    let (payment, requirements) = fresh_payment(&h, "/x").await;
    assert_eq!(requirements.max_amount_required, 3_000);
    assert_eq!(requirements.resource, h.url("/x"));
    let response = h.get("/x", Some(&payment)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "x content");
    assert_eq!(made(&h), (0, 1, 1), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 1);
}

// ---------------------------------------------------------------------------------------------
// No unpaid request ever receives a priced route's content
// ---------------------------------------------------------------------------------------------

/// The demo's priced routes: method, path, price and a piece of what the handler answers.
fn priced_routes() -> [(Method, &'static str, u64, &'static str); 3] {
    [
        (Method::GET, "/weather", WEATHER_MSAT, "sunny"),
        (
            Method::GET,
            "/premium/report",
            PREMIUM_MSAT,
            "premium report",
        ),
        (Method::POST, "/ai/infer", INFER_MSAT, "completion"),
    ]
}

#[tokio::test]
async fn no_priced_content_without_a_payment_that_verifies() {
    let h = start().await;
    for (method, path, price, content) in priced_routes() {
        let requirements = offer(&h, method.clone(), path, price).await;
        let attempts = [
            None,
            Some(h.wallet.forge(&requirements, Forgery::TamperedSignature)),
            Some(h.wallet.forge(&requirements, Forgery::SignedByAnotherKey)),
            Some(TestWallet::random().pay(&requirements)), // unfunded
        ];
        for payment in attempts {
            let response = send(&h, method.clone(), path, payment.as_deref()).await;
            assert!(payment_response(&response).is_none(), "{method} {path}");
            // A 402 with an offer and nothing else, never the handler's body.
            let body = expect_offer(&h, response, path, price).await;
            assert!(!format!("{body:?}").contains(content), "{method} {path}");
        }
    }
    assert_eq!(h.handler_runs(), 0);
    // Each forged or unfunded payment was refused by /verify; none reached /settle.
    assert_eq!(h.calls(FacilitatorCall::Verify), 3 * 3);
    assert_eq!(h.calls(FacilitatorCall::Settle), 0);
    assert_eq!(balance(&h), FUNDS_MSAT);
}

#[tokio::test]
async fn no_priced_content_when_the_settle_after_the_handler_fails() {
    let h = start().await;
    let failures = [
        (
            Fault::SettleFailed("settle_exact_lightning_payment_failed".into()),
            StatusCode::PAYMENT_REQUIRED,
        ),
        // Every way a settle can fail is in layer_faults.rs; this one stands for them here.
        (
            Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
            StatusCode::BAD_GATEWAY,
        ),
    ];
    for (method, path, price, content) in priced_routes() {
        for (fault, status) in failures.clone() {
            let requirements = offer(&h, method.clone(), path, price).await;
            let payment = h.wallet.pay(&requirements);
            h.mock.clear_calls();
            let runs = h.handler_runs();
            h.mock.fail_next(FacilitatorCall::Settle, fault.clone());
            let response = send(&h, method.clone(), path, Some(&payment)).await;
            let case = format!("{method} {path}, settle {fault}");
            assert_eq!(response.status(), status, "{case}");
            assert_json(&response);
            // Only a refused settle reports itself, and never as a success.
            let settlement = payment_response(&response);
            assert_eq!(
                settlement.map(|settlement| settlement.success),
                (status == StatusCode::PAYMENT_REQUIRED).then_some(false),
                "{case}"
            );
            let text = response.text().await.unwrap();
            assert!(!text.contains(content), "{case}: {text}");
            let body: Value = serde_json::from_str(&text).expect("a JSON body");
            let error = body["error"].as_str().expect("an error");
            if status == StatusCode::PAYMENT_REQUIRED {
                assert_eq!(error, "settle_exact_lightning_payment_failed", "{case}");
            } else {
                assert!(error.contains("/settle"), "{case}: {error}");
            }
            // The handler ran (the settle comes after it), but its answer never left.
            assert_eq!(h.handler_runs(), runs + 1, "{case}");
            assert_eq!(
                made(&h),
                (0, 1, 1),
                "{case}: (/requirements, /verify, /settle)"
            );
            assert!(!h.mock.is_paid(&requirements.extra.invoice), "{case}");
        }
    }
    assert_eq!(balance(&h), FUNDS_MSAT);
}

// ---------------------------------------------------------------------------------------------
// Route matching as the app routes: no method or prefix slips through unpriced
// ---------------------------------------------------------------------------------------------

/// An app that proxies `/api/{*rest}` for every method and nests a service at `/files`, behind
/// `/api/*` (1 sat), `POST /api/expensive` (1,000 sat) and `GET /files/*` (2 sat).
async fn start_proxy() -> Harness {
    let mock = MockFacilitator::start().await.expect("mock starts");
    let layer = X402Layer::builder(facilitator_for(&mock), mock.network())
        .flows(Flows::V1)
        .route("/api/*", Price::sats(1))
        .route("POST /api/expensive", Price::sats(1_000))
        .route("GET /files/*", Price::sats(2))
        .build()
        .expect("layer builds");
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let proxy = axum::routing::any(move |headers: http::HeaderMap| {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            // The handler never sees the client's authorization.
            format!(
                "proxied, x-payment forwarded: {}",
                headers.contains_key(X_PAYMENT)
            )
        }
    });
    let files = get(|uri: http::Uri| async move { format!("file {uri}") });
    let app = Router::new()
        .route("/api/{*rest}", proxy)
        .nest_service("/files", files)
        .layer(layer);
    harness(mock, app, runs).await
}

#[tokio::test]
async fn a_method_priced_on_one_path_leaves_the_wider_pattern_priced_for_other_methods() {
    let h = start_proxy().await;
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::POST] {
        let response = h
            .client
            .request(method.clone(), h.url("/api/expensive"))
            .send()
            .await
            .unwrap();
        let body = expect_json_402(response).await;
        let expected = if method == Method::POST {
            1_000_000
        } else {
            1_000
        };
        assert_eq!(body.accepts[0].max_amount_required, expected, "{method}");
    }
    assert_eq!(h.handler_runs(), 0);
}

#[tokio::test]
async fn a_trailing_wildcard_also_prices_the_bare_prefix_a_nested_service_serves() {
    let h = start_proxy().await;
    for path in ["/files", "/files/", "/files/a.txt"] {
        let body = expect_json_402(h.get(path, None).await).await;
        assert_eq!(body.accepts[0].max_amount_required, 2_000, "{path}");
    }
}

#[tokio::test]
async fn the_handler_does_not_see_the_clients_authorization() {
    let h = start_proxy().await;
    let requirements = h.requirements("/api/cheap").await;
    let response = h
        .get("/api/cheap", Some(&h.wallet.pay(&requirements)))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        "proxied, x-payment forwarded: false"
    );
}

async fn expect_json_402(response: reqwest::Response) -> PaymentRequired {
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    response.json().await.expect("a PaymentRequired body")
}

#[tokio::test]
async fn request_targets_that_are_not_paths_cannot_reach_the_fallback_unpaid() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mock = MockFacilitator::start().await.expect("mock starts");
    let layer = X402Layer::builder(facilitator_for(&mock), mock.network())
        .flows(Flows::V1)
        .route("/*", Price::sats(1))
        .build()
        .expect("layer builds");
    let app = Router::new()
        .route("/", axum::routing::any(|| async { "paid content" }))
        .fallback(|| async { "paid content" })
        .layer(layer);
    let h = harness(mock, app, Arc::new(AtomicUsize::new(0))).await;
    for target in ["*", "example.com:80"] {
        let mut stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(!answer.contains("paid content"), "{target}: {answer}");
        assert!(answer.starts_with("HTTP/1.1 402"), "{target}: {answer}");
    }
}
