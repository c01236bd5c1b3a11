//! Every row of PROTOCOL.md's table "What the middleware answers", over real HTTP against the
//! mock facilitator.

mod common;

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
use tokio::sync::Semaphore;
use x402_lightning::header::{X_PAYMENT, decode_payment_header, encode_payment_header};
use x402_lightning::invoice::{check_requirements_invoice, unix_now};
use x402_lightning::mock::{Fault, Forgery, InvoiceSpec, MockFacilitator, MockNode, TestWallet};
use x402_lightning::types::{ExactLightningPayload, X402_VERSION};
use x402_lightning::{
    FacilitatorCall, Network, PaymentPayload, PaymentRequired, PaymentRequirements, Price,
    PriceTag, Scheme, X402Layer,
};

const MALFORMED: &str = "Invalid or malformed payment header";

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
    h.mock.balance(&h.wallet.public_key())
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
        request = request.header(X_PAYMENT, payment);
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
    let body: PaymentRequired = serde_json::from_value(body).expect("a PaymentRequired body");
    assert_eq!(body.accepts.len(), 1, "{body:?}");
    let offer = &body.accepts[0];
    assert_eq!(offer.scheme, Scheme::Exact);
    assert_eq!(offer.network, Network::Regtest);
    assert_eq!(offer.asset, "BTC");
    assert_eq!(offer.max_amount_required, price_msat);
    assert_eq!(offer.pay_to, h.mock.pay_to());
    assert_eq!(offer.resource, h.url(path));
    let checked = check_requirements_invoice(offer, unix_now()).expect("invoice matches offer");
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

/// An `X-PAYMENT` in which the wallet honestly authorizes payment of `invoice` on regtest.
fn authorizing(wallet: &TestWallet, invoice: &str) -> String {
    encode_payment_header(&PaymentPayload {
        x402_version: X402_VERSION,
        scheme: Scheme::Exact,
        network: Network::Regtest,
        payload: ExactLightningPayload::new(invoice.to_owned(), wallet.sign(invoice), wallet.id()),
    })
}

/// `GET path` carrying `payment`.
fn get_paying(h: &Harness, path: &str, payment: &str) -> reqwest::RequestBuilder {
    request(h, Method::GET, path, Some(payment))
}

/// Sends `request` and asserts the layer refused its payment by itself: 402 whose `error`
/// contains each of `says`, a fresh offer (not the invoice paid), `/requirements` only, the
/// handler not run and nothing paid.
async fn assert_refused_before_verify(
    h: &Harness,
    request: reqwest::RequestBuilder,
    path: &str,
    price_msat: u64,
    says: &[&str],
) {
    h.mock.clear_calls();
    let (runs, funds) = (h.handler_runs(), balance(h));
    let request = request.build().expect("a request");
    let paid_invoice = request
        .headers()
        .get(X_PAYMENT)
        .and_then(|value| decode_payment_header(value.as_bytes(), usize::MAX).ok())
        .map(|payment| payment.payload.invoice);
    let response = h.client.execute(request).await.expect("request sent");
    let body = expect_offer(h, response, path, price_msat).await;
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
}

/// `GET /weather` paying with `payment` is refused before `/verify`, its `error` saying `says`.
async fn assert_weather_refused(h: &Harness, payment: &str, says: &[&str]) {
    let request = get_paying(h, "/weather", payment);
    assert_refused_before_verify(h, request, "/weather", WEATHER_MSAT, says).await;
}

/// A `/weather` payment spoiled by `forgery` is refused before `/verify`, its `error` saying `says`.
async fn assert_forgery_refused(forgery: Forgery, says: &[&str]) {
    let h = start().await;
    let offer = h.requirements("/weather").await;
    assert_weather_refused(&h, &h.wallet.forge(&offer, forgery), says).await;
}

/// The wallet's honest authorization of `invoice` for `/weather` is refused before `/verify`.
async fn assert_invoice_refused(h: &Harness, invoice: &str, says: &[&str]) {
    assert_weather_refused(h, &authorizing(&h.wallet, invoice), says).await;
}

/// Refuses the settle of the next paid `GET path` with `settle_exact_lightning_payment_failed`
/// and asserts the 402 that follows; returns how often the handler ran.
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
    h.handler_runs()
}

/// The demo app with `/weather` (and a priced `/fail`) settled before their handlers run.
async fn start_prepaid() -> Harness {
    start_layer(|mock| {
        let prepaid = |msat| PriceTag::fixed(Price::msat(msat)).settle_before_handler();
        X402Layer::builder(facilitator_for(mock), mock.network())
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
    let oversized = "A".repeat(8 * 1024 + 1);
    let says = [MALFORMED, "8193 bytes", "limit of 8192"];
    assert_weather_refused(&h, &oversized, &says).await;
}

#[tokio::test]
async fn non_base64_payment_header_is_refused_before_verify() {
    assert_forgery_refused(Forgery::NotBase64, &[MALFORMED, "not valid base64"]).await;
}

#[tokio::test]
async fn non_json_payment_header_is_refused_before_verify() {
    assert_forgery_refused(Forgery::NotJson, &[MALFORMED, "not a valid payment JSON"]).await;
}

#[tokio::test]
async fn payment_of_another_x402_version_is_refused_before_verify() {
    assert_forgery_refused(Forgery::Version(2), &[MALFORMED, "x402Version 2"]).await;
}

#[tokio::test]
async fn payment_of_another_scheme_is_refused_before_verify() {
    let says = [MALFORMED, "scheme upto"];
    assert_forgery_refused(Forgery::Scheme("upto".into()), &says).await;
}

#[tokio::test]
async fn payment_on_another_lightning_network_is_refused_before_verify() {
    let says = [
        MALFORMED,
        "payment is on lightning,",
        "paid on lightning-regtest",
    ];
    assert_forgery_refused(Forgery::Network(Network::Bitcoin), &says).await;
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

#[tokio::test]
async fn two_payment_headers_are_refused_as_malformed() {
    let h = start().await;
    let (first, _) = fresh_payment(&h, "/weather").await;
    let (second, _) = fresh_payment(&h, "/weather").await;
    let request = get_paying(&h, "/weather", &first).header(X_PAYMENT, &second);
    let says = [MALFORMED, "more than one X-PAYMENT header"];
    assert_refused_before_verify(&h, request, "/weather", WEATHER_MSAT, &says).await;
}

// ---------------------------------------------------------------------------------------------
// Row: the payload invoice fails a pre-check
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unparsable_invoice_is_refused_before_verify() {
    let h = start().await;
    let says = ["Invalid payment", "not a valid BOLT11 invoice"];
    assert_invoice_refused(&h, "lnbcrt100n1notaninvoice", &says).await;
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
        demo_prices(facilitator_for(mock), mock.network()).pay_to(mock.node().node_id())
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
        demo_prices(facilitator_for(mock), mock.network()).pay_to(MockNode::random().node_id())
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
        created_at: unix_now() - Duration::from_secs(7200),
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
    // the remembered facts are still checked: here the invoice expired since the 402.
    let mock = MockFacilitator::builder()
        .invoice_expiry(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let layer = demo_prices(facilitator_for(&mock), mock.network())
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let h = harness(mock, demo_app(Arc::clone(&runs)).layer(layer), runs).await;
    let (payment, _) = fresh_payment(&h, "/weather").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let says = ["Invalid payment", "invoice expired at unix time"];
    assert_weather_refused(&h, &payment, &says).await;
    assert_eq!(balance(&h), FUNDS_MSAT);
}

#[tokio::test]
async fn replayed_settled_invoice_is_refused_without_verify() {
    let h = start().await;
    let (payment, _) = fresh_payment(&h, "/weather").await;
    let first = h.get("/weather", Some(&payment)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(h.handler_runs(), 1);
    assert_weather_refused(&h, &payment, &["Invalid payment", "already settled"]).await;
    assert_eq!(balance(&h), FUNDS_MSAT - WEATHER_MSAT);
}

// ---------------------------------------------------------------------------------------------
// Row: the same invoice is already being processed
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invoice_in_flight_elsewhere_gets_409_without_facilitator_calls() {
    // `/gated` holds its request inside the handler until the test opens the gate.
    let gate = Arc::new(Semaphore::new(0));
    let mock = MockFacilitator::start().await.unwrap();
    let layer = demo_prices(facilitator_for(&mock), mock.network())
        .route("GET /gated", Price::sats(1))
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let gated = {
        let (gate, runs) = (Arc::clone(&gate), Arc::clone(&runs));
        move || {
            let (gate, runs) = (Arc::clone(&gate), Arc::clone(&runs));
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
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
    tokio::time::timeout(Duration::from_secs(30), async {
        while h.handler_runs() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_invoice_raced_by_32_requests_is_served_and_settled_once() {
    let h = start().await;
    let (payment, _) = fresh_payment(&h, "/weather").await;
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        racers.spawn(get_paying(&h, "/weather", &payment).send());
    }
    let mut statuses = Vec::new();
    while let Some(answer) = racers.join_next().await {
        statuses.push(answer.unwrap().expect("answered").status());
    }
    let count = |status| statuses.iter().filter(|&&s| s == status).count();
    let (ok, conflict, refused) = (
        count(StatusCode::OK),
        count(StatusCode::CONFLICT),
        count(StatusCode::PAYMENT_REQUIRED),
    );
    assert_eq!(ok, 1, "{statuses:?}");
    assert_eq!(ok + conflict + refused, 32, "{statuses:?}");
    // Each late 402 ("already settled") fetched a fresh offer; nobody else reached /verify.
    assert_eq!(
        made(&h),
        (refused, 1, 1),
        "(/requirements, /verify, /settle)"
    );
    assert_eq!(h.handler_runs(), 1);
    assert_eq!(balance(&h), FUNDS_MSAT - WEATHER_MSAT);
}

// ---------------------------------------------------------------------------------------------
// Row: /verify says invalid
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn verify_refusal_is_a_402_with_its_reason() {
    let h = start().await;
    let (payment, requirements) = fresh_payment(&h, "/weather").await;
    h.mock.fail_next(
        FacilitatorCall::Verify,
        Fault::Invalid("insufficient_funds".into()),
    );
    let response = h.get("/weather", Some(&payment)).await;
    let body = expect_offer(&h, response, "/weather", WEATHER_MSAT).await;
    assert_eq!(body.error, "insufficient_funds");
    assert_eq!(body.payer, None, "the facilitator named no payer");
    assert_ne!(body.accepts[0].extra.invoice, requirements.extra.invoice);
    assert_eq!(made(&h), (1, 1, 0), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 0);
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
async fn paid_post_with_malformed_json_gets_the_apps_4xx_and_is_not_settled() {
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
        "axum's JSON rejection"
    );
    assert!(payment_response(&response).is_none());
    assert_eq!(made(&h), (0, 1, 0), "(/requirements, /verify, /settle)");
    assert_eq!(h.handler_runs(), 0);
    assert_eq!(balance(&h), FUNDS_MSAT);
}

// ---------------------------------------------------------------------------------------------
// Row: handler answers < 400 and /settle succeeds
// ---------------------------------------------------------------------------------------------

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
async fn settled_response_carries_the_settlement_and_the_handler_sees_the_payment() {
    let h = start().await;
    let (payment, requirements) = fresh_payment(&h, "/weather").await;
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
    assert!(h.mock.is_paid(&requirements.extra.invoice));
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

#[tokio::test]
async fn no_priced_content_without_verify_and_settle() {
    let h = start().await;
    let routes = [
        (Method::GET, "/weather", WEATHER_MSAT),
        (Method::GET, "/premium/report", PREMIUM_MSAT),
        (Method::POST, "/ai/infer", INFER_MSAT),
    ];
    for (method, path, price) in routes {
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
            // A 402 with an offer, never the handler's body.
            expect_offer(&h, response, path, price).await;
        }
    }
    assert_eq!(h.handler_runs(), 0);
    assert_eq!(h.calls(FacilitatorCall::Settle), 0);
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
