//! The browser paywall in a real headless Chromium over WebDriver: a person opens a priced route,
//! pays the invoice with a browser wallet (WebLN) or from another wallet, and the page shows
//! what they bought; an invoice left unpaid expires on the page.
//!
//! Needs Chromium and ChromeDriver (`apt-get install chromium chromium-driver`); without them
//! each test says `SKIPPED` and passes, unless `X402_BROWSER_REQUIRED=1`. Screenshots go to
//! `target/paywall-screenshots/`; `X402_UPDATE_SCREENSHOTS=1` also writes the README's
//! `docs/paywall-before.png` and `docs/paywall-after.png`.
//!
//! ```text
//! cargo build --example demo && cargo test --all-features --test paywall_browser -- --nocapture
//! ```

#[path = "common/browser.rs"]
mod browser;
#[path = "common/demo_process.rs"]
mod demo_process;

use std::time::Duration;

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use serde_json::{Value, json};
use x402_lightning::clock::{Clock as _, ManualClock};
use x402_lightning::lnbtc::invoice::decode;
use x402_lightning::mock::MockFacilitator;
use x402_lightning::{HttpFacilitator, Network, Price, PriceTag, X402Layer};

use self::browser::{Browser, loopback, serve_app, update_docs_screenshot, within};
use self::demo_process::{Demo, start_demo};

/// The most a test's browser steps may take.
const STEPS: Duration = Duration::from_secs(60);
/// What the page says while it waits, once paid, and once its invoice expired.
const WAITING: &str = "Waiting for the payment…";
const PAID: &str = "Paid. Here is what you bought.";
const EXPIRED: &str = "This invoice expired: reload for a new invoice.";
/// The text of the JSON the page shows once paid, when it shows it.
const BOUGHT_JSON: &str = "const pre = document.querySelector('#content pre'); \
                           return pre ? pre.textContent : null;";
/// The BOLT11 invoice the page offers.
const INVOICE: &str = "return document.getElementById('invoice').value;";
/// The clock-skew allowance the in-process shop's layer is given (the default's value).
const SKEW: Duration = Duration::from_secs(60);

/// A browser wallet as an extension provides it (`window.webln`), living in the test: it hands
/// the invoice to the test and pays when the test resolves its promise with `{preimage}`.
const WEBLN_WALLET: &str = "window.webln = {
    enable: async () => { window.__x402_enabled = true; },
    sendPayment: (invoice) => new Promise((resolve, reject) => {
        window.__x402_enabled_first = window.__x402_enabled === true;
        window.__x402_pay = resolve;
        window.__x402_fail = reject;
        window.__x402_invoice = invoice;
    }),
};
return true;";

/// The demo, rebuilt first if its sources changed since it was built.
async fn demo() -> Demo {
    tokio::task::spawn_blocking(|| {
        browser::rebuild_stale_demo();
        start_demo(&[])
    })
    .await
    .expect("the demo starts")
}

/// Pays `invoice` through the demo's simulated Lightning node, as a wallet would: its answer
/// `{"preimage", "paymentHash", "amountMsat"}`.
async fn pay_through_node(node_url: &str, invoice: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{node_url}/pay"))
        .json(&json!({ "invoice": invoice }))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the simulated node answers");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON answer");
    assert!(status.is_success(), "the node did not pay: {status} {body}");
    body
}

/// The weather the page shows once paid, as JSON.
fn weather_shown(text: &Value) -> Value {
    let text = text.as_str().expect("text");
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// An app of this test's own: `GET /weather` at 10 sat behind the layer on regtest, through the
/// mock facilitator over HTTP, both on `clock`, served on loopback.
struct Shop {
    origin: String,
    mock: MockFacilitator,
}

/// A PNG of one pixel.
const ONE_PIXEL_PNG: [u8; 70] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn open_shop(clock: &ManualClock) -> Shop {
    let mock = MockFacilitator::builder()
        .clock(clock.clone())
        .start()
        .await
        .expect("the mock starts");
    let (listener, origin) = loopback().await;
    let layer = X402Layer::builder(
        HttpFacilitator::new(mock.url()).expect("facilitator client"),
        Network::Regtest,
    )
    .public_base_url(&origin)
    .clock(clock.clone())
    .clock_skew(SKEW)
    .route(
        "GET /weather",
        PriceTag::fixed(Price::sats(10))
            .description("Current weather")
            .mime_type("application/json"),
    )
    .route("GET /article", Price::sats(2))
    .route("GET /picture", Price::sats(3))
    .route("GET /report", Price::sats(4))
    .build()
    .expect("the layer builds");
    let app = Router::new()
        .route(
            "/weather",
            get(|| async { Json(json!({ "conditions": "sunny" })) }),
        )
        .route(
            "/article",
            get(|| async {
                Html("<!doctype html><title>Bought</title><p id=\"article\">the article</p>")
            }),
        )
        .route(
            "/picture",
            get(|| async { ([(CONTENT_TYPE, "image/png")], ONE_PIXEL_PNG.to_vec()) }),
        )
        .route(
            "/report",
            get(|| async {
                (
                    [
                        (CONTENT_TYPE, "application/octet-stream"),
                        (CONTENT_DISPOSITION, "attachment; filename=\"report.bin\""),
                    ],
                    vec![1_u8, 2, 3],
                )
            }),
        )
        .layer(layer);
    serve_app(listener, app);
    Shop { origin, mock }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_wallet_pays_and_the_page_shows_the_weather() {
    let Some(browser) =
        Browser::launch("a_browser_wallet_pays_and_the_page_shows_the_weather").await
    else {
        return;
    };
    let demo = demo().await;
    within(STEPS, async {
        browser.goto(&format!("{}/weather", demo.url)).await;
        assert!(browser.is_visible("#qr svg").await, "the QR code is shown");
        assert_eq!(browser.text("#price").await.as_deref(), Some("10 sat"));
        assert!(
            browser.is_visible("#pay-webln").await,
            "the browser wallet button is shown"
        );
        assert_eq!(
            browser.text("#pay-webln").await.as_deref(),
            Some("Pay with a browser wallet")
        );
        let invoice = browser.js(INVOICE, vec![]).await;
        let before = browser.screenshot("before").await;
        update_docs_screenshot(&before, "paywall-before.png");

        // The wallet arrives after the page loaded, as an extension's may: the page looks for
        // it when the button is clicked.
        browser.js(WEBLN_WALLET, vec![]).await;
        browser.click("#pay-webln").await;
        let asked = browser
            .wait_for(
                "the page to ask the browser wallet to pay",
                Duration::from_secs(10),
                "return window.__x402_invoice || null;",
            )
            .await;
        assert_eq!(
            asked, invoice,
            "the wallet is asked to pay the page's invoice"
        );
        assert_eq!(
            browser
                .js("return window.__x402_enabled_first;", vec![])
                .await,
            true,
            "the page enables the wallet before asking it to pay"
        );
        let paid = pay_through_node(&demo.mock_url, invoice.as_str().expect("text")).await;
        browser
            .js(
                "window.__x402_pay({ preimage: arguments[0] }); return true;",
                vec![paid["preimage"].clone()],
            )
            .await;

        let shown = browser
            .wait_for("the weather", Duration::from_secs(15), BOUGHT_JSON)
            .await;
        let weather = weather_shown(&shown);
        assert_eq!(weather["location"], "Lisbon", "{weather}");
        assert_eq!(weather["paidMsat"], 10_000, "{weather}");
        assert_eq!(weather["paymentHash"], paid["paymentHash"], "{weather}");
        assert_eq!(browser.text("#status").await.as_deref(), Some(PAID));
        let after = browser.screenshot("after").await;
        update_docs_screenshot(&after, "paywall-after.png");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn paid_from_another_wallet_the_page_unlocks_by_itself() {
    let Some(browser) =
        Browser::launch("paid_from_another_wallet_the_page_unlocks_by_itself").await
    else {
        return;
    };
    let demo = demo().await;
    within(STEPS, async {
        browser.goto(&format!("{}/weather", demo.url)).await;
        assert_eq!(browser.text("#status").await.as_deref(), Some(WAITING));
        let invoice = browser.js(INVOICE, vec![]).await;
        browser.screenshot("before").await;

        // A phone scans the QR code and pays; nobody touches the page.
        let paid = pay_through_node(&demo.mock_url, invoice.as_str().expect("text")).await;

        let shown = browser
            .wait_for(
                "the page to learn of the payment and show the weather",
                Duration::from_secs(20),
                BOUGHT_JSON,
            )
            .await;
        let weather = weather_shown(&shown);
        assert_eq!(weather["location"], "Lisbon", "{weather}");
        assert_eq!(weather["paymentHash"], paid["paymentHash"], "{weather}");
        assert_eq!(browser.text("#status").await.as_deref(), Some(PAID));
        browser.screenshot("after").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_invoice_says_reload_for_a_new_invoice() {
    let Some(browser) = Browser::launch("an_expired_invoice_says_reload_for_a_new_invoice").await
    else {
        return;
    };
    let clock = ManualClock::starting_now();
    let shop = open_shop(&clock).await;
    within(STEPS, async {
        browser.goto(&format!("{}/weather", shop.origin)).await;
        assert_eq!(browser.text("#status").await.as_deref(), Some(WAITING));
        assert!(!browser.is_visible("#reload").await, "no reload button yet");
        let invoice = browser.js(INVOICE, vec![]).await;
        let invoice = decode(invoice.as_str().expect("text")).expect("a BOLT11 invoice");
        browser.screenshot("before").await;

        // The server's time passes the invoice's end and the skew allowance; the page's own
        // countdown (minutes) is far from zero, so only the server can tell it.
        let end = invoice.created_at + invoice.expiry_secs + SKEW.as_secs();
        clock.advance(Duration::from_secs(end + 1 - clock.unix_now().as_secs()));

        browser
            .wait_for(
                "the page to say its invoice expired",
                Duration::from_secs(15),
                &format!(
                    "return document.getElementById('status').textContent === {} || null;",
                    json!(EXPIRED)
                ),
            )
            .await;
        assert!(
            browser.is_visible("#reload").await,
            "the reload button shows"
        );
        assert_eq!(
            browser.text("#reload").await.as_deref(),
            Some("Reload for a new invoice")
        );
        // On a phone the message is below the QR code: scrolled to, as a person would.
        browser.scroll_to("#status").await;
        browser.screenshot("after").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_has_no_console_errors_and_no_blocked_resources() {
    let Some(browser) =
        Browser::launch("the_page_has_no_console_errors_and_no_blocked_resources").await
    else {
        return;
    };
    let clock = ManualClock::starting_now();
    let shop = open_shop(&clock).await;
    let url = format!("{}/weather", shop.origin);
    within(STEPS, async {
        browser.goto(&url).await;
        // The page's script ran under its policy (allowed by its hash): it showed the button
        // and asked its own URL about the invoice (after 1 s).
        assert!(browser.is_visible("#pay-webln").await, "the script ran");
        browser
            .wait_for(
                "the page's first poll",
                Duration::from_secs(10),
                "return performance.getEntriesByType('resource')
                    .some((entry) => entry.initiatorType === 'fetch') || null;",
            )
            .await;
        let foreign = browser
            .js(
                "return performance.getEntriesByType('resource')
                    .map((entry) => entry.name)
                    .filter((name) => new URL(name).origin !== location.origin);",
                vec![],
            )
            .await;
        assert_eq!(foreign, json!([]), "the page loads nothing from elsewhere");
        assert_eq!(browser.text("#status").await.as_deref(), Some(WAITING));

        // Nothing logged, but for what the browser asks by itself: the shop's `/favicon.ico`
        // (it serves none: 404), as the page names no icon; and the 402 of the page itself,
        // should Chromium log it as a failed load.
        let favicon = format!("{}/favicon.ico ", shop.origin);
        let console = browser.console().await;
        let unexpected: Vec<&Value> = console
            .iter()
            .filter(|entry| {
                let message = entry["message"].as_str().unwrap_or_default();
                let by_the_browser = entry["source"] == "network"
                    && ((message.starts_with(&favicon) && message.contains("status of 404"))
                        || (message.starts_with(&format!("{url} "))
                            && message.contains("status of 402")));
                !by_the_browser
            })
            .collect();
        assert!(unexpected.is_empty(), "console: {unexpected:#?}");

        // The policy is enforced, not merely sent: an inline script of nobody's is refused.
        let refused = browser
            .js(
                "window.addEventListener('securitypolicyviolation', (event) => {
                    window.__x402_violation = event.violatedDirective;
                 });
                 const script = document.createElement('script');
                 script.textContent = 'window.__x402_injected = true;';
                 document.body.append(script);
                 return true;",
                vec![],
            )
            .await;
        assert_eq!(refused, true);
        let directive = browser
            .wait_for(
                "the policy to refuse an injected inline script",
                Duration::from_secs(5),
                "return window.__x402_violation || null;",
            )
            .await;
        assert!(
            directive
                .as_str()
                .is_some_and(|d| d.starts_with("script-src")),
            "{directive}"
        );
        assert_eq!(
            browser
                .js("return window.__x402_injected === true;", vec![])
                .await,
            false
        );
    })
    .await;
}

/// Opens `path` on `shop`, pays its invoice from another wallet (the mock's Lightning network)
/// and lets the server's clock pass the poll interval, then waits until `shown` (a script
/// returning a truthy value once the page shows what it bought).
async fn buy_and_wait(
    browser: &Browser,
    shop: &Shop,
    clock: &ManualClock,
    path: &str,
    shown: &str,
) {
    browser.goto(&format!("{}{path}", shop.origin)).await;
    let invoice = browser.js(INVOICE, vec![]).await;
    shop.mock
        .pay_invoice(invoice.as_str().expect("text"))
        .expect("the mock pays");
    // Whether the page asked before or after the payment, its next question is answered anew.
    clock.advance(Duration::from_secs(2));
    browser
        .wait_for(
            &format!("{path}: what was bought"),
            Duration::from_secs(20),
            shown,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_was_bought_is_shown_as_its_type_html_an_image_or_a_download() {
    let Some(browser) =
        Browser::launch("what_was_bought_is_shown_as_its_type_html_an_image_or_a_download").await
    else {
        return;
    };
    let clock = ManualClock::starting_now();
    let shop = open_shop(&clock).await;
    within(STEPS, async {
        // HTML replaces the page.
        buy_and_wait(
            &browser,
            &shop,
            &clock,
            "/article",
            "const p = document.getElementById('article'); return p ? p.textContent : null;",
        )
        .await;
        assert_eq!(browser.js("return document.title;", vec![]).await, json!("Bought"));
        assert!(!browser.is_visible("#qr").await, "the paywall is gone");

        // An image is shown.
        buy_and_wait(
            &browser,
            &shop,
            &clock,
            "/picture",
            "const img = document.querySelector('#content img'); \
             return img && img.complete && img.naturalWidth === 1 || null;",
        )
        .await;
        let src = browser
            .js("return document.querySelector('#content img').src;", vec![])
            .await;
        assert!(src.as_str().is_some_and(|src| src.starts_with("blob:")), "{src}");

        // Anything else is downloaded, under the name the server gave it.
        buy_and_wait(
            &browser,
            &shop,
            &clock,
            "/report",
            "const a = document.querySelector('#content a[download]'); \
             return a ? a.getAttribute('download') : null;",
        )
        .await;
        assert_eq!(
            browser
                .js("return document.querySelector('#content a[download]').getAttribute('download');", vec![])
                .await,
            json!("report.bin")
        );
        assert_eq!(
            browser.text("#status").await.as_deref(),
            Some(PAID),
            "the page says it was paid"
        );
    })
    .await;
}
