//! The browser paywall, a second look: what the page's script does in a real headless Chromium
//! when a browser wallet (WebLN) refuses, returns no preimage or another invoice's, when the
//! paid request is answered 409 or 5xx before its content, with two pages open at once, after
//! the countdown, on a cancelled invoice and with a receiver that cannot report states; and, on
//! the server, polls naming another route's invoice, sent as `HEAD` or `POST`, naming an
//! invoice of the right payee on another network, and the cache headers of every poll answer.
//!
//! Each test that exposed a bug (a handler's 5xx after the payment called a refusal; a 501
//! poll hiding a wallet payment in progress; a poll answered on a `POST`) now checks its fix.

#[path = "common/browser.rs"]
#[allow(dead_code, reason = "this suite uses part of it")]
mod browser;
#[path = "common/paywall_http.rs"]
#[allow(dead_code, reason = "this suite uses part of it")]
mod paywall_http;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Request as AxumRequest};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use x402_lightning::clock::ManualClock;
use x402_lightning::mock::{LightningPayment, MockFacilitator};
use x402_lightning::receiver::{InvoiceRequest, Receiver};
use x402_lightning::{FacilitatorCall, Network, Price, PriceTag, VerifiedPayment, X402Layer};

use self::browser::{Browser, loopback, serve_app, within};
use self::paywall_http::{
    Answer, POLL, ScriptedReceiver, get_with, page_of, proof_from_page, send,
};

/// The most a test's browser steps may take.
const STEPS: Duration = Duration::from_secs(90);
/// The longest single wait in the browser.
const WAIT: Duration = Duration::from_secs(20);
const WAITING: &str = "Waiting for the payment…";
const PAID: &str = "Paid. Here is what you bought.";
const EXPIRED: &str = "This invoice expired: reload for a new invoice.";
const CANCELLED: &str = "This invoice was cancelled: reload for a new invoice.";
const CANNOT_SEE: &str =
    "Pay with a browser wallet: this page cannot see payments made from other wallets.";
const INVOICE: &str = "return document.getElementById('invoice').value;";
const BOUGHT_JSON: &str = "const pre = document.querySelector('#content pre'); \
                           return pre ? pre.textContent : null;";
const STATUS: &str = "return document.getElementById('status').textContent;";

/// A browser wallet whose answers the test scripts: `window.__answers` is a queue of
/// `{reject: message}` or `{resolve: value}`; an empty queue leaves the payment pending until
/// `window.__pay(value)`. Every `sendPayment` is counted in `window.__calls`.
const SCRIPTED_WALLET: &str = "window.__answers = arguments[0];
window.__calls = 0;
window.webln = {
    enable: async () => {},
    sendPayment: (invoice) => {
        window.__calls += 1;
        window.__invoice = invoice;
        const next = window.__answers.shift();
        if (!next) return new Promise((resolve) => { window.__pay = resolve; });
        if ('reject' in next) return Promise.reject(new Error(next.reject));
        return Promise.resolve(next.resolve);
    },
};
return true;";

// ---------------------------------------------------------------------------------------------
// Harness

/// The receiver a test puts in place of the layer's, made from the mock.
type ReceiverOf = fn(MockFacilitator) -> ScriptedReceiver;

/// A shop on loopback: `GET /weather` (10 sat) answering the payment hash it was paid with,
/// `GET /gated` the same behind a gateway that answers the first paid request 409 and the
/// second 503 without passing them on, `GET /flaky` whose handler fails (500) once, and
/// `GET /short` with 5 s invoices.
struct Shop {
    origin: String,
    mock: MockFacilitator,
    /// The proofs (`PAYMENT-SIGNATURE`) the gateway of `/gated` saw, in order.
    gated_proofs: Arc<Mutex<Vec<String>>>,
    /// How many times the handler of `/flaky` ran.
    flaky_runs: Arc<AtomicUsize>,
    /// How many polls (`X402-Invoice-State`) reached the shop.
    polls: Arc<AtomicUsize>,
}

async fn paid_hash(Extension(paid): Extension<VerifiedPayment>) -> Json<Value> {
    Json(json!({ "paymentHash": paid.payment_hash }))
}

async fn open_shop(receiver: Option<ReceiverOf>) -> Shop {
    let mock = MockFacilitator::builder().build();
    let (listener, origin) = loopback().await;
    let mut builder = X402Layer::builder(mock.clone(), Network::Regtest)
        .public_base_url(&origin)
        .route("GET /weather", Price::sats(10))
        .route("GET /gated", Price::sats(10))
        .route("GET /flaky", Price::sats(10))
        .route(
            "GET /short",
            PriceTag::fixed(Price::sats(10)).max_timeout_seconds(5),
        );
    if let Some(receiver) = receiver {
        builder = builder.receiver(receiver(mock.clone()));
    }
    let layer = builder.build().expect("the layer builds");
    let gated_proofs = Arc::new(Mutex::new(Vec::new()));
    let flaky_runs = Arc::new(AtomicUsize::new(0));
    let runs = Arc::clone(&flaky_runs);
    let proofs = Arc::clone(&gated_proofs);
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&polls);
    let app = Router::new()
        .route("/weather", get(paid_hash))
        .route("/gated", get(paid_hash))
        .route("/short", get(paid_hash))
        .route(
            "/flaky",
            get(move |paid: Extension<VerifiedPayment>| {
                let runs = Arc::clone(&runs);
                async move {
                    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        (StatusCode::INTERNAL_SERVER_ERROR, "database hiccup").into_response()
                    } else {
                        paid_hash(paid).await.into_response()
                    }
                }
            }),
        )
        .layer(layer)
        .layer(middleware::from_fn(
            move |request: AxumRequest, next: Next| {
                let proofs = Arc::clone(&proofs);
                if request.headers().contains_key(POLL) {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                async move { gateway(proofs, request, next).await }
            },
        ));
    serve_app(listener, app);
    Shop {
        origin,
        mock,
        gated_proofs,
        flaky_runs,
        polls,
    }
}

/// In front of the layer: the paid requests of `/gated` are answered 409, then 503, then
/// passed on.
async fn gateway(proofs: Arc<Mutex<Vec<String>>>, request: AxumRequest, next: Next) -> Response {
    let proof = request
        .headers()
        .get("payment-signature")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let (Some(proof), "/gated") = (proof, request.uri().path()) {
        let seen = {
            let mut proofs = proofs.lock().expect("lock");
            proofs.push(proof);
            proofs.len()
        };
        match seen {
            1 => {
                let body = Json(json!({"error": "another request is settling this invoice"}));
                return (StatusCode::CONFLICT, body).into_response();
            }
            2 => return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response(),
            _ => {}
        }
    }
    next.run(request).await
}

/// Waits until the page's `#status` says `text`.
async fn wait_status(browser: &Browser, what: &str, text: &str) {
    browser
        .wait_for(
            what,
            WAIT,
            &format!(
                "return document.getElementById('status').textContent === {} || null;",
                json!(text)
            ),
        )
        .await;
}

/// Waits until the page's `#status` starts with `prefix`; returns it.
async fn wait_status_prefix(browser: &Browser, what: &str, prefix: &str) -> String {
    browser
        .wait_for(
            what,
            WAIT,
            &format!(
                "const s = document.getElementById('status').textContent; \
                 return s.startsWith({}) ? s : null;",
                json!(prefix)
            ),
        )
        .await
        .as_str()
        .expect("text")
        .to_owned()
}

async fn install_wallet(browser: &Browser, answers: Value) {
    browser.js(SCRIPTED_WALLET, vec![answers]).await;
}

/// Pays the page's invoice through the mock, as the person's wallet does over Lightning.
async fn pay_the_pages_invoice(browser: &Browser, shop: &Shop) -> LightningPayment {
    let invoice = browser.js(INVOICE, vec![]).await;
    shop.mock
        .pay_invoice(invoice.as_str().expect("text"))
        .expect("paid")
}

/// A browser wallet that hands back `preimage` for the next payment, and the button pressed.
async fn wallet_hands_back(browser: &Browser, preimage: &str) {
    install_wallet(browser, json!([{"resolve": {"preimage": preimage}}])).await;
    browser.click("#pay-webln").await;
}

async fn button_enabled(browser: &Browser) -> bool {
    browser
        .js(
            "return !document.getElementById('pay-webln').disabled;",
            vec![],
        )
        .await
        == true
}

/// The payment hash the bought JSON names.
async fn bought_hash(browser: &Browser) -> Value {
    let shown = browser.wait_for("what was bought", WAIT, BOUGHT_JSON).await;
    let shown: Value = serde_json::from_str(shown.as_str().expect("text")).expect("JSON shown");
    shown["paymentHash"].clone()
}

/// The payment hash of the page's invoice (its data block).
async fn page_hash(browser: &Browser) -> Value {
    browser
        .js(
            "return JSON.parse(document.getElementById('x402-paywall').textContent).paymentHash;",
            vec![],
        )
        .await
}

// ---------------------------------------------------------------------------------------------
// A browser wallet that does not pay, or pays something else

#[tokio::test(flavor = "multi_thread")]
async fn browser_a_wallet_that_refuses_or_returns_no_preimage_lets_the_person_try_again() {
    let Some(browser) = Browser::launch(
        "browser_a_wallet_that_refuses_or_returns_no_preimage_lets_the_person_try_again",
    )
    .await
    else {
        return;
    };
    let shop = open_shop(None).await;
    within(STEPS, async {
        browser.goto(&format!("{}/weather", shop.origin)).await;
        install_wallet(
            &browser,
            json!([
                {"reject": "User rejected the payment"},
                {"resolve": {}},
                {"resolve": {"preimage": "zz".repeat(32)}},
                {"resolve": null},
                {"resolve": {"preimage": 42}},
            ]),
        )
        .await;
        let expected = [
            "Your browser wallet did not pay: User rejected the payment",
            "Your browser wallet did not pay: the wallet returned no preimage",
            "Your browser wallet did not pay: the wallet returned no preimage",
            "Your browser wallet did not pay: the wallet returned no preimage",
            "Your browser wallet did not pay: the wallet returned no preimage",
        ];
        for (i, message) in expected.iter().enumerate() {
            browser.click("#pay-webln").await;
            wait_status(&browser, message, message).await;
            assert_eq!(browser.js("return window.__calls;", vec![]).await, i + 1);
            assert!(
                button_enabled(&browser).await,
                "{message}: the button works again"
            );
            assert!(!browser.is_visible("#content").await, "nothing shown");
        }
        // Now it pays, for real: the page unlocks.
        let paid = pay_the_pages_invoice(&browser, &shop).await;
        wallet_hands_back(&browser, &paid.preimage.to_uppercase()).await;
        assert_eq!(bought_hash(&browser).await, json!(paid.payment_hash));
        assert_eq!(browser.js(STATUS, vec![]).await, json!(PAID));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_a_wallet_returning_another_invoices_preimage_is_refused_and_shows_nothing() {
    let Some(browser) = Browser::launch(
        "browser_a_wallet_returning_another_invoices_preimage_is_refused_and_shows_nothing",
    )
    .await
    else {
        return;
    };
    let shop = open_shop(None).await;
    // Another invoice of the same shop, paid: a real preimage, of the wrong invoice.
    let other = send_json_402(&shop).await;
    let other_paid = shop.mock.pay_invoice(&other).expect("paid");
    within(STEPS, async {
        browser.goto(&format!("{}/weather", shop.origin)).await;
        wallet_hands_back(&browser, &other_paid.preimage).await;
        let said = wait_status_prefix(&browser, "the refusal", "The payment was refused: ").await;
        assert!(said.len() > "The payment was refused: ".len(), "{said}");
        assert!(!browser.is_visible("#content").await, "nothing is shown");
        assert_eq!(
            browser.text("#content").await.as_deref().map(str::trim),
            Some("")
        );
        assert!(browser.is_visible("#reload").await, "reload is offered");
        assert_eq!(
            shop.mock.calls_to(FacilitatorCall::Settle).len(),
            0,
            "no settle for a preimage that is not the invoice's"
        );
    })
    .await;
}

/// A wallet that pays the invoice but hands back a wrong preimage: the refused proof leaves the
/// page asking the server, which learns the real one and unlocks it.
#[tokio::test(flavor = "multi_thread")]
async fn browser_a_wallet_that_paid_but_returned_a_wrong_preimage_still_unlocks_by_polling() {
    let Some(browser) = Browser::launch(
        "browser_a_wallet_that_paid_but_returned_a_wrong_preimage_still_unlocks_by_polling",
    )
    .await
    else {
        return;
    };
    let shop = open_shop(None).await;
    let other = send_json_402(&shop).await;
    let other_paid = shop.mock.pay_invoice(&other).expect("paid");
    within(STEPS, async {
        browser.goto(&format!("{}/weather", shop.origin)).await;
        let invoice = browser.js(INVOICE, vec![]).await;
        wallet_hands_back(&browser, &other_paid.preimage).await;
        wait_status_prefix(&browser, "the refusal", "The payment was refused: ").await;
        // The wallet did pay the page's invoice, over Lightning.
        shop.mock
            .pay_invoice(invoice.as_str().expect("text"))
            .expect("the mock pays");
        wait_status(&browser, "the page unlocked by polling", PAID).await;
        assert!(
            browser.is_visible("#content").await,
            "what was bought shows"
        );
    })
    .await;
}

/// A JSON 402's invoice for `/weather` of `shop`, over HTTP.
async fn send_json_402(shop: &Shop) -> String {
    let response = reqwest::Client::new()
        .get(format!("{}/weather", shop.origin))
        .header("accept", "application/json")
        .send()
        .await
        .expect("the shop answers");
    assert_eq!(response.status(), 402);
    let body: Value = response.json().await.expect("JSON");
    body["accepts"][0]["extra"]["invoice"]
        .as_str()
        .expect("an invoice")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// The paid request answered 409 or 5xx first

#[tokio::test(flavor = "multi_thread")]
async fn browser_a_409_then_a_503_are_retried_with_the_same_proof_until_served() {
    let Some(browser) =
        Browser::launch("browser_a_409_then_a_503_are_retried_with_the_same_proof_until_served")
            .await
    else {
        return;
    };
    let shop = open_shop(None).await;
    within(STEPS, async {
        browser.goto(&format!("{}/gated", shop.origin)).await;
        let paid = pay_the_pages_invoice(&browser, &shop).await;
        wallet_hands_back(&browser, &paid.preimage).await;
        assert_eq!(bought_hash(&browser).await, json!(paid.payment_hash));
        assert_eq!(browser.js(STATUS, vec![]).await, json!(PAID));
        let proofs = shop.gated_proofs.lock().expect("lock").clone();
        assert_eq!(proofs.len(), 3, "409, 503, then served");
        assert!(
            proofs.iter().all(|proof| *proof == proofs[0]),
            "the same proof"
        );
    })
    .await;
}

/// The handler of a paid route fails once (500). The `lnbtc` flow settles before the handler,
/// so the 500 carries `PAYMENT-RESPONSE` (paid); the page sends the same proof again, which
/// the layer refuses as already settled, and the page then tells the person "The payment was
/// refused", while it was taken, and never shows the server's answer.
#[tokio::test(flavor = "multi_thread")]
async fn browser_a_handlers_500_after_the_payment_is_not_called_a_refused_payment() {
    let Some(browser) =
        Browser::launch("browser_a_handlers_500_after_the_payment_is_not_called_a_refused_payment")
            .await
    else {
        return;
    };
    let shop = open_shop(None).await;
    within(STEPS, async {
        browser.goto(&format!("{}/flaky", shop.origin)).await;
        let paid = pay_the_pages_invoice(&browser, &shop).await;
        wallet_hands_back(&browser, &paid.preimage).await;
        let said = browser
            .wait_for(
                "the page's last word",
                WAIT,
                "const s = document.getElementById('status').textContent; \
                 return s.startsWith('Paid.') && !s.startsWith('Paid. Loading') \
                     || s.startsWith('The payment was refused') ? s : null;",
            )
            .await;
        let runs = shop.flaky_runs.load(Ordering::SeqCst);
        assert!(
            !said
                .as_str()
                .unwrap_or_default()
                .starts_with("The payment was refused"),
            "paid (the handler ran {runs} time(s)), yet the page says {said}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Two pages at once

#[tokio::test(flavor = "multi_thread")]
async fn browser_two_tabs_paid_from_another_wallet_each_unlock_their_own_content() {
    let Some(browser) =
        Browser::launch("browser_two_tabs_paid_from_another_wallet_each_unlock_their_own_content")
            .await
    else {
        return;
    };
    let shop = open_shop(None).await;
    within(STEPS, async {
        let url = format!("{}/weather", shop.origin);
        browser.goto(&url).await;
        // The second tab, opened by the first (same origin: the test reads it from there).
        browser
            .js(
                "window.__tab = window.open(arguments[0], '_blank'); return !!window.__tab;",
                vec![json!(url)],
            )
            .await;
        let second_invoice = browser
            .wait_for(
                "the second tab's page",
                WAIT,
                "const d = window.__tab && window.__tab.document; \
                 const i = d && d.getElementById('invoice'); \
                 return i && i.value && d.getElementById('status').textContent \
                     === 'Waiting for the payment…' ? i.value : null;",
            )
            .await;
        let first_invoice = browser.js(INVOICE, vec![]).await;
        assert_ne!(first_invoice, second_invoice, "each page its own invoice");

        // The second tab's invoice is paid from a phone: only the second tab unlocks.
        let second = shop
            .mock
            .pay_invoice(second_invoice.as_str().expect("text"))
            .expect("paid");
        let shown = browser
            .wait_for(
                "the second tab to unlock",
                WAIT,
                "const pre = window.__tab.document.querySelector('#content pre'); \
                 return pre ? pre.textContent : null;",
            )
            .await;
        let shown: Value = serde_json::from_str(shown.as_str().expect("text")).expect("JSON");
        assert_eq!(shown["paymentHash"], json!(second.payment_hash));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(browser.js(STATUS, vec![]).await, json!(WAITING));
        assert!(
            !browser.is_visible("#content").await,
            "the first tab stays locked"
        );

        // Then the first's: it unlocks with its own.
        let first = shop
            .mock
            .pay_invoice(first_invoice.as_str().expect("text"))
            .expect("paid");
        assert_eq!(bought_hash(&browser).await, json!(first.payment_hash));
        assert_eq!(page_hash(&browser).await, json!(first.payment_hash));
        assert_eq!(shop.mock.calls_to(FacilitatorCall::Settle).len(), 2);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// After the countdown; cancelled; a receiver that cannot tell

#[tokio::test(flavor = "multi_thread")]
async fn browser_after_the_countdown_the_wallet_button_asks_no_wallet() {
    let Some(browser) =
        Browser::launch("browser_after_the_countdown_the_wallet_button_asks_no_wallet").await
    else {
        return;
    };
    let shop = open_shop(None).await;
    within(STEPS, async {
        browser.goto(&format!("{}/short", shop.origin)).await;
        install_wallet(&browser, json!([])).await;
        wait_status(&browser, "the countdown to end", EXPIRED).await;
        assert_eq!(browser.text("#countdown").await.as_deref(), Some("0 s"));
        assert!(!button_enabled(&browser).await, "the button is disabled");
        // A person's click, then a click on the button re-enabled (an extension, devtools).
        browser.click("#pay-webln").await;
        browser
            .js(
                "const b = document.getElementById('pay-webln'); \
                 b.disabled = false; b.click(); return true;",
                vec![],
            )
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(browser.js("return window.__calls;", vec![]).await, 0);
        assert_eq!(browser.js(STATUS, vec![]).await, json!(EXPIRED));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_a_cancelled_invoice_says_so_and_stops_polling() {
    let Some(browser) =
        Browser::launch("browser_a_cancelled_invoice_says_so_and_stops_polling").await
    else {
        return;
    };
    let shop = open_shop(Some(ScriptedReceiver::cancelling)).await;
    within(STEPS, async {
        browser.goto(&format!("{}/weather", shop.origin)).await;
        install_wallet(&browser, json!([])).await;
        wait_status(&browser, "the page to say cancelled", CANCELLED).await;
        assert!(browser.is_visible("#reload").await, "reload is offered");
        assert!(!button_enabled(&browser).await, "no wallet payment of it");
        let polls = shop.polls.load(Ordering::SeqCst);
        assert_eq!(polls, 1, "the first poll heard cancelled");
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(shop.polls.load(Ordering::SeqCst), polls, "no more polls");
        browser
            .js(
                "const b = document.getElementById('pay-webln'); \
                 b.disabled = false; b.click(); return true;",
                vec![],
            )
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(browser.js("return window.__calls;", vec![]).await, 0);
        assert_eq!(browser.js(STATUS, vec![]).await, json!(CANCELLED));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_a_501_poll_stops_polling_and_the_browser_wallet_still_unlocks() {
    let Some(browser) =
        Browser::launch("browser_a_501_poll_stops_polling_and_the_browser_wallet_still_unlocks")
            .await
    else {
        return;
    };
    let shop = open_shop(Some(ScriptedReceiver::cannot_tell)).await;
    within(STEPS, async {
        browser.goto(&format!("{}/weather", shop.origin)).await;
        wait_status(&browser, "the page to give up polling", CANNOT_SEE).await;
        assert_eq!(shop.polls.load(Ordering::SeqCst), 1, "one poll");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(shop.polls.load(Ordering::SeqCst), 1, "and no other");
        assert!(button_enabled(&browser).await);

        let paid = pay_the_pages_invoice(&browser, &shop).await;
        wallet_hands_back(&browser, &paid.preimage).await;
        assert_eq!(bought_hash(&browser).await, json!(paid.payment_hash));
        assert_eq!(browser.js(STATUS, vec![]).await, json!(PAID));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Server side, over `oneshot`

const ORIGIN: &str = "http://shop.test";

struct Local {
    mock: MockFacilitator,
    clock: ManualClock,
    app: Router,
}

fn local(network: Network, mock: MockFacilitator, receiver: Option<ReceiverOf>) -> Local {
    let clock = ManualClock::starting_now();
    let mut builder = X402Layer::builder(mock.clone(), network)
        .public_base_url(ORIGIN)
        .clock(clock.clone())
        .route("GET /weather", Price::sats(10))
        .route("GET /news", Price::sats(10))
        .route("POST /infer", Price::sats(5));
    if let Some(receiver) = receiver {
        builder = builder.receiver(receiver(mock.clone()));
    }
    let app = Router::new()
        .route("/weather", get(|| async { "sunny" }))
        .route("/news", get(|| async { "news" }))
        .route("/infer", post(|| async { "inferred" }))
        .layer(builder.build().expect("layer"));
    Local { mock, clock, app }
}

fn regtest_local() -> Local {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock).build();
    local(Network::Regtest, mock, None)
}

fn invoice_calls(mock: &MockFacilitator) -> usize {
    mock.calls_to(FacilitatorCall::Invoice).len()
}

/// A poll on `/news` naming `/weather`'s invoice learns its preimage (by design), which buys
/// `/weather` once and never `/news`.
#[tokio::test]
async fn a_preimage_polled_through_another_route_buys_only_its_own_route() {
    let shop = regtest_local();
    let weather = page_of(&shop.app, "/weather").await;
    let news = page_of(&shop.app, "/news").await;
    let paid = shop.mock.pay_invoice(&weather.invoice()).expect("paid");
    let polled = send(&shop.app, get_with("/news", &[(POLL, &weather.invoice())])).await;
    assert_eq!(polled.json()["preimage"], json!(paid.preimage));

    // `/weather`'s proof sent to `/news`, and `/news`'s challenge with `/weather`'s preimage.
    let weather_proof = proof_from_page(&weather, &paid.preimage);
    let news_proof = proof_from_page(&news, &paid.preimage);
    for proof in [&weather_proof, &news_proof] {
        let answer = send(
            &shop.app,
            get_with("/news", &[("payment-signature", proof)]),
        )
        .await;
        assert_ne!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_ne!(answer.body, "news");
    }
    let served = send(
        &shop.app,
        get_with("/weather", &[("payment-signature", &weather_proof)]),
    )
    .await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    assert_eq!(served.body, "sunny");
}

/// `HEAD` with the poll header: answered like the `GET` poll (its headers), asking the
/// receiver no more than the `GET` would.
#[tokio::test]
async fn a_head_poll_is_answered_like_a_get_poll() {
    let shop = regtest_local();
    let invoice = page_of(&shop.app, "/weather").await.invoice();
    let head = Request::head("/weather")
        .header(POLL, &invoice)
        .body(Body::empty())
        .expect("request");
    let answer = send(&shop.app, head).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let get = send(&shop.app, get_with("/weather", &[(POLL, &invoice)])).await;
    assert_eq!(get.json()["state"], "open");
    assert_eq!(invoice_calls(&shop.mock), 1, "asked once within the second");
}

/// The protocol names the poll a `GET` of the page's URL; a priced `POST` carrying the header
/// (no page was ever served on it) gets its own 402.
#[tokio::test]
async fn a_post_with_the_poll_header_is_an_ordinary_request() {
    let shop = regtest_local();
    let invoice = page_of(&shop.app, "/weather").await.invoice();
    let post = Request::post("/infer")
        .header(POLL, &invoice)
        .body(Body::from("{}"))
        .expect("request");
    let answer = send(&shop.app, post).await;
    // A poll is a GET (or HEAD) of the page's URL: a POST gets the route's own answer.
    assert_eq!(
        answer.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        answer.body
    );
    assert!(answer.header("payment-required").is_some());
}

/// An invoice of the layer's own payee (the same node key) on another network is never asked
/// about: 404 without a receiver call.
#[tokio::test]
async fn an_invoice_of_the_same_payee_on_another_network_is_not_polled() {
    let clock = ManualClock::starting_now();
    let regtest_mock = MockFacilitator::builder().clock(clock.clone()).build();
    let shop = local(Network::Regtest, regtest_mock.clone(), None);
    let _ = page_of(&shop.app, "/weather").await;
    for network in [Network::Testnet, Network::Signet, Network::Bitcoin] {
        let twin = MockFacilitator::builder()
            .network(network)
            .node(regtest_mock.node().clone())
            .clock(clock.clone())
            .build();
        assert_eq!(twin.pay_to(), regtest_mock.pay_to(), "the same payee");
        let invoice = twin
            .create_invoice(&InvoiceRequest {
                network,
                amount_msat: 10_000,
                description_hash: Some([9; 32]),
                expiry_secs: 60,
                resource: format!("{ORIGIN}/weather"),
                description: String::new(),
                mime_type: String::new(),
            })
            .await
            .expect("minted");
        let answer = send(&shop.app, get_with("/weather", &[(POLL, &invoice)])).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{network:?}: {}",
            answer.body
        );
    }
    assert_eq!(invoice_calls(&regtest_mock), 0, "no receiver was asked");

    // The reverse: a testnet layer, a signet invoice of its payee (BOLT11 `tbs` vs `tb`).
    let testnet_mock = MockFacilitator::builder()
        .network(Network::Testnet)
        .clock(clock.clone())
        .build();
    let testnet_shop = local(Network::Testnet, testnet_mock.clone(), None);
    let _ = page_of(&testnet_shop.app, "/weather").await;
    let signet_twin = MockFacilitator::builder()
        .network(Network::Signet)
        .node(testnet_mock.node().clone())
        .clock(clock)
        .build();
    let invoice = signet_twin
        .create_invoice(&InvoiceRequest {
            network: Network::Signet,
            amount_msat: 10_000,
            description_hash: Some([9; 32]),
            expiry_secs: 60,
            resource: format!("{ORIGIN}/weather"),
            description: String::new(),
            mime_type: String::new(),
        })
        .await
        .expect("minted");
    let answer = send(&testnet_shop.app, get_with("/weather", &[(POLL, &invoice)])).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert_eq!(invoice_calls(&testnet_mock), 0);
}

fn varies_on_the_poll(answer: &Answer) -> bool {
    answer.headers.get_all("vary").iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|value| value.to_ascii_lowercase().contains("x402-invoice-state"))
    })
}

/// Every poll answer is never stored (`Cache-Control: no-store`), and each state answer says
/// it depends on the poll header (`Vary`).
#[tokio::test]
async fn every_poll_answer_is_no_store_and_states_vary_on_the_poll_header() {
    // open, paid, expired
    let shop = regtest_local();
    let page = page_of(&shop.app, "/weather").await;
    let invoice = page.invoice();
    let mut answers = Vec::new();
    answers.push(send(&shop.app, get_with("/weather", &[(POLL, &invoice)])).await);
    shop.mock.pay_invoice(&invoice).expect("paid");
    shop.clock.advance(Duration::from_secs(1));
    answers.push(send(&shop.app, get_with("/weather", &[(POLL, &invoice)])).await);
    let other = page_of(&shop.app, "/news").await.invoice();
    shop.clock.advance(Duration::from_secs(3_600));
    answers.push(send(&shop.app, get_with("/weather", &[(POLL, &other)])).await);
    // cancelled
    let cancelling = local(
        Network::Regtest,
        MockFacilitator::new(),
        Some(ScriptedReceiver::cancelling),
    );
    let invoice = page_of(&cancelling.app, "/weather").await.invoice();
    answers.push(send(&cancelling.app, get_with("/weather", &[(POLL, &invoice)])).await);
    let states: Vec<Value> = answers.iter().map(|a| a.json()["state"].clone()).collect();
    assert_eq!(
        states,
        json!(["open", "paid", "expired", "cancelled"])
            .as_array()
            .cloned()
            .expect("array")
    );
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.header("cache-control"),
            Some("no-store"),
            "{}",
            answer.body
        );
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(
            varies_on_the_poll(answer),
            "{}: {:?}",
            answer.body,
            answer.headers
        );
    }

    // The refusals: 400, 404, 501.
    let unsupported = local(
        Network::Regtest,
        MockFacilitator::new(),
        Some(ScriptedReceiver::cannot_tell),
    );
    let invoice = page_of(&unsupported.app, "/weather").await.invoice();
    let refusals = [
        send(&shop.app, get_with("/weather", &[(POLL, "junk")])).await,
        send(
            &shop.app,
            get_with("/weather", &[(POLL, &foreign_invoice().await)]),
        )
        .await,
        send(&unsupported.app, get_with("/weather", &[(POLL, &invoice)])).await,
    ];
    let statuses: Vec<u16> = refusals.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(statuses, [400, 404, 501]);
    for answer in &refusals {
        assert_eq!(
            answer.header("cache-control"),
            Some("no-store"),
            "{}",
            answer.body
        );
    }
}

async fn foreign_invoice() -> String {
    MockFacilitator::new()
        .create_invoice(&InvoiceRequest {
            network: Network::Regtest,
            amount_msat: 10_000,
            description_hash: Some([7; 32]),
            expiry_secs: 60,
            resource: format!("{ORIGIN}/weather"),
            description: String::new(),
            mime_type: String::new(),
        })
        .await
        .expect("minted")
}

/// The wallet's prompt is open ("Waiting for your browser wallet…") when the first poll comes
/// back 501: the page then tells the person to pay with a browser wallet, over the prompt it
/// is already showing.
#[tokio::test(flavor = "multi_thread")]
async fn browser_a_501_poll_does_not_overwrite_a_pending_wallet_payment() {
    let Some(browser) =
        Browser::launch("browser_a_501_poll_does_not_overwrite_a_pending_wallet_payment").await
    else {
        return;
    };
    let shop = open_shop(Some(ScriptedReceiver::cannot_tell)).await;
    within(STEPS, async {
        browser.goto(&format!("{}/weather", shop.origin)).await;
        install_wallet(&browser, json!([])).await;
        browser.click("#pay-webln").await;
        browser
            .wait_for(
                "the wallet to be asked",
                WAIT,
                "return window.__calls === 1 || null;",
            )
            .await;
        let asked_at = shop.polls.load(Ordering::SeqCst);
        browser
            .wait_for(
                "the 501 poll",
                WAIT,
                "return performance.now() > 2500 || null;",
            )
            .await;
        assert!(
            shop.polls.load(Ordering::SeqCst) >= 1,
            "polled (before: {asked_at})"
        );
        assert_eq!(
            browser.js(STATUS, vec![]).await,
            json!("Waiting for your browser wallet…"),
            "the wallet's payment is still pending"
        );
    })
    .await;
}
