//! The browser paywall over `tower::ServiceExt::oneshot`: which requests get the page, that it
//! carries the header's invoice, its security policy, that it loads nothing from elsewhere, that
//! its QR code decodes to the invoice, how layers and routes configure it, and the page's poll
//! (`X402-Invoice-State`) answered from the receiver, down to the paid request it unlocks.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use base64::Engine as _;
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::hex::FromHex as _;
use http::{Request, StatusCode};
use serde_json::json;
use x402_lightning::clock::ManualClock;
use x402_lightning::layer::X402LayerBuilder;
use x402_lightning::mock::MockFacilitator;
use x402_lightning::paywall::{Paywall, PaywallPage};
use x402_lightning::receiver::{
    InvoiceRequest, InvoiceState, InvoiceStatus, Receiver, ReceiverError,
};
#[path = "common/paywall_http.rs"]
#[allow(dead_code, reason = "this suite uses part of it")]
mod paywall_http;

use self::paywall_http::{
    Answer, NAVIGATION, POLL, ScriptedReceiver, get_with, page_of, proof_from_page, send,
};
use x402_lightning::{FacilitatorCall, Flows, Network, Price, PriceTag, X402Layer};

const ORIGIN: &str = "http://shop.test";

struct Shop {
    mock: MockFacilitator,
    clock: ManualClock,
    app: Router,
}

fn shop(
    configure: impl FnOnce(X402LayerBuilder<MockFacilitator>) -> X402LayerBuilder<MockFacilitator>,
) -> Shop {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let layer = configure(
        X402Layer::builder(mock.clone(), Network::Regtest)
            .public_base_url(ORIGIN)
            .clock(clock.clone())
            .route(
                "GET /weather",
                PriceTag::fixed(Price::msat(10_500)).description("Today's <weather> & more"),
            )
            .route("POST /infer", Price::sats(5))
            .route("GET /api", PriceTag::fixed(Price::sats(1)).no_paywall()),
    )
    .build()
    .expect("layer builds");
    let app = Router::new()
        .route(
            "/weather",
            get(|| async { axum::Json(json!({"conditions": "sunny"})) }),
        )
        .route("/infer", post(|| async { "inferred" }))
        .route("/api", get(|| async { "raw" }))
        .layer(layer);
    Shop { mock, clock, app }
}

async fn page(shop: &Shop) -> Answer {
    page_of(&shop.app, "/weather").await
}

/// The page's poll: `X402-Invoice-State: <the invoice>`.
async fn poll(shop: &Shop, invoice: &str) -> Answer {
    send(&shop.app, get_with("/weather", &[(POLL, invoice)])).await
}

// ---------------------------------------------------------------------------------------------
// Which requests get the page

#[tokio::test]
async fn only_a_navigation_that_prefers_html_gets_the_page() {
    let shop = shop(|layer| layer);
    let cases: [(Option<&str>, bool); 10] = [
        (Some(NAVIGATION), true),
        (Some("text/html"), true),
        (Some("text/html;q=0.9, application/json;q=0.8"), true),
        (None, false),
        (Some("application/json"), false),
        (Some("*/*"), false),
        (Some("text/*"), false),
        (Some("text/html, application/json"), false),
        (Some("application/json, text/html;q=0.5"), false),
        (Some("text/html;q=0"), false),
    ];
    for (accept, wants_page) in cases {
        let headers: Vec<(&str, &str)> = accept
            .map(|accept| ("accept", accept))
            .into_iter()
            .collect();
        let answer = send(&shop.app, get_with("/weather", &headers)).await;
        assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED, "{accept:?}");
        assert!(answer.header("payment-required").is_some(), "{accept:?}");
        assert_eq!(
            answer.header("cache-control"),
            Some("no-store"),
            "{accept:?}"
        );
        assert_eq!(answer.is_page(), wants_page, "{accept:?}");
        let varies = answer
            .headers
            .get_all("vary")
            .iter()
            .any(|value| value.to_str().is_ok_and(|value| value.contains("Accept")));
        assert!(varies, "{accept:?}: Vary: Accept");
        if !wants_page {
            // Exactly today's answer: the seed flow's body beside the header.
            assert_eq!(answer.json()["x402Version"], 1, "{accept:?}");
            assert_eq!(
                answer.json()["accepts"][0]["extra"]["invoice"],
                answer.invoice()
            );
        }
    }
}

#[tokio::test]
async fn a_request_carrying_a_payment_or_not_a_get_keeps_the_json_answer() {
    let shop = shop(|layer| layer);
    let post = Request::post("/infer")
        .header("accept", NAVIGATION)
        .body(Body::empty())
        .expect("request");
    let answer = send(&shop.app, post).await;
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED);
    assert!(!answer.is_page());

    let paying = get_with(
        "/weather",
        &[
            ("accept", NAVIGATION),
            ("payment-signature", "bm90IGpzb24="),
        ],
    );
    let answer = send(&shop.app, paying).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(!answer.is_page());

    let head = Request::head("/weather")
        .header("accept", NAVIGATION)
        .body(Body::empty())
        .expect("request");
    let answer = send(&shop.app, head).await;
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED);
    assert!(answer.is_page(), "HEAD answers with the page's headers");
    assert!(answer.header("payment-required").is_some());
}

#[tokio::test]
async fn layers_and_routes_choose_their_page() {
    // A route without one.
    let shop_ = shop(|layer| layer);
    let answer = send(&shop_.app, get_with("/api", &[("accept", NAVIGATION)])).await;
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED);
    assert!(!answer.is_page());

    // A layer without one.
    let off = shop(X402LayerBuilder::no_paywall);
    let answer = send(&off.app, get_with("/weather", &[("accept", NAVIGATION)])).await;
    assert!(!answer.is_page());
    assert!(
        answer.headers.get("vary").is_none(),
        "no page, no Vary: Accept"
    );

    // The seed flow alone: nothing a browser can pay.
    let v1 = shop(|layer| layer.flows(Flows::V1));
    let answer = send(&v1.app, get_with("/weather", &[("accept", NAVIGATION)])).await;
    assert!(!answer.is_page());

    // A route's own page on a layer without one.
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let layer = X402Layer::builder(mock, Network::Regtest)
        .public_base_url(ORIGIN)
        .clock(clock)
        .no_paywall()
        .route(
            "GET /weather",
            PriceTag::fixed(Price::sats(10)).paywall(Paywall::new().title("Route's own")),
        )
        .build()
        .expect("layer");
    let app = Router::new()
        .route("/weather", get(|| async { "sunny" }))
        .layer(layer);
    let answer = send(&app, get_with("/weather", &[("accept", NAVIGATION)])).await;
    assert!(answer.is_page());
    assert!(
        answer.body.contains("<title>Route&#39;s own</title>"),
        "{}",
        answer.body
    );
}

// ---------------------------------------------------------------------------------------------
// The page

#[tokio::test]
async fn the_page_offers_the_invoice_of_the_header_and_its_challenge() {
    let shop =
        shop(|layer| layer.paywall(Paywall::new().title("Weather <now>").operator("Ann & Co")));
    let answer = page(&shop).await;
    let invoice = answer.invoice();
    assert!(
        answer.body.contains(&format!(
            "readonly rows=\"5\" aria-label=\"Lightning invoice\">{invoice}</textarea>"
        )),
        "the invoice text"
    );
    assert!(
        answer
            .body
            .contains(&format!("href=\"lightning:{invoice}\""))
    );
    let challenge = serde_json::to_value(answer.challenge()).expect("JSON");
    assert_eq!(
        answer.data_block("x402-challenge"),
        challenge,
        "the header's challenge"
    );
    assert_eq!(challenge["resource"]["url"], format!("{ORIGIN}/weather"));
    // Price in sat, and in msat when not whole; texts escaped.
    assert!(
        answer
            .body
            .contains("<strong id=\"price\">10.5 sat</strong> <small>(10,500 msat)</small>")
    );
    assert!(answer.body.contains("<title>Weather &lt;now&gt;</title>"));
    assert!(answer.body.contains("Sold by Ann &amp; Co"));
    assert!(
        answer
            .body
            .contains("Today&#39;s &lt;weather&gt; &amp; more")
    );
    // One invoice minted for the challenge.
    assert_eq!(shop.mock.calls_to(FacilitatorCall::Requirements).len(), 1);
    let facts = answer.data_block("x402-paywall");
    assert_eq!(facts["expiresIn"], 60);
    let decoded = x402_lightning::lnbtc::invoice::decode(&invoice).expect("invoice");
    assert_eq!(
        facts["paymentHash"],
        bitcoin::hex::DisplayHex::to_lower_hex_string(&decoded.payment_hash[..])
    );
}

#[tokio::test]
async fn the_policy_allows_exactly_the_pages_own_script_and_style() {
    let shop = shop(|layer| layer);
    let answer = page(&shop).await;
    let policy = answer.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert!(!policy.contains('*'), "{policy}");
    let script_src = directive(policy, "script-src");
    let hashes = |tag: &str| -> Vec<String> {
        let open = format!("<{tag}>");
        answer
            .body
            .match_indices(&open)
            .map(|(at, _)| {
                let start = at + open.len();
                let end = start
                    + answer.body[start..]
                        .find(&format!("</{tag}>"))
                        .expect("closed");
                let digest =
                    sha256::Hash::hash(&answer.body.as_bytes()[start..end]).to_byte_array();
                format!(
                    "'sha256-{}'",
                    base64::engine::general_purpose::STANDARD.encode(digest)
                )
            })
            .collect()
    };
    let scripts = hashes("script");
    assert_eq!(scripts.len(), 1, "one executable script");
    assert_eq!(script_src, format!("script-src {}", scripts[0]));
    let styles = hashes("style");
    assert_eq!(styles.len(), 1);
    assert!(directive(policy, "style-src").contains(&styles[0]));
    // Every other script element is a data block, which no browser runs.
    let data_blocks = answer
        .body
        .matches("<script type=\"application/json\"")
        .count();
    assert_eq!(answer.body.matches("<script").count(), data_blocks + 1);
    let handlers: Vec<_> = answer
        .body
        .match_indices(" on")
        .map(|(at, _)| &answer.body[at + 1..])
        .filter(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            rest[name.len()..].starts_with('=')
        })
        .collect();
    assert!(handlers.is_empty(), "no inline event handler: {handlers:?}");
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(answer.header("referrer-policy"), Some("no-referrer"));
}

fn directive<'a>(policy: &'a str, name: &str) -> &'a str {
    policy
        .split(';')
        .map(str::trim)
        .find(|directive| directive.starts_with(name))
        .unwrap_or_else(|| panic!("{name} in {policy}"))
}

#[tokio::test]
async fn the_page_loads_nothing_from_elsewhere() {
    let shop = shop(|layer| layer);
    let answer = page(&shop).await;
    // Outside the JSON data (the challenge names the resource's own URL), no URL at all.
    let mut markup = answer.body.clone();
    while let Some(start) = markup.find("<script type=\"application/json\"") {
        let end = start + markup[start..].find("</script>").expect("closed") + "</script>".len();
        markup.replace_range(start..end, "");
    }
    for needle in [
        "http:", "https:", "src=", "url(", "@import", "<iframe", "<img", "<object", "<embed",
        "<base",
    ] {
        let found: Vec<_> = markup
            .match_indices(needle)
            .map(|(at, _)| &markup[at.saturating_sub(40)..(at + 40).min(markup.len())])
            .collect();
        assert!(found.is_empty(), "{needle}: {found:?}");
    }
    let hrefs: Vec<&str> = markup
        .split("href=\"")
        .skip(1)
        .map(|rest| rest.split(['"', ':']).next().unwrap_or_default())
        .collect();
    assert_eq!(
        hrefs,
        ["data", "lightning"],
        "an empty icon (no /favicon.ico request), and a link that opens a wallet"
    );
    assert_eq!(markup.matches("<link").count(), 1, "the icon only");
}

#[tokio::test]
async fn the_qr_code_decodes_to_the_invoice() {
    let shop = shop(|layer| layer);
    let answer = page(&shop).await;
    let start = answer.body.find("<svg").expect("an inline SVG");
    let end = start + answer.body[start..].find("</svg>").expect("closed");
    let svg = &answer.body[start..end];
    let decoded = decode_qr_svg(svg);
    assert_eq!(
        decoded,
        format!("LIGHTNING:{}", answer.invoice().to_uppercase())
    );
}

/// Reads the page's QR code back: its path of horizontal runs (`M{x} {y}h{run}v1h-{run}z`)
/// drawn onto a grey image four pixels a module, then decoded by `rqrr`.
fn decode_qr_svg(svg: &str) -> String {
    let view_box = svg.split("viewBox=\"0 0 ").nth(1).expect("a viewBox");
    let size: usize = view_box
        .split(' ')
        .next()
        .expect("size")
        .parse()
        .expect("a number");
    let path = svg
        .split(" d=\"")
        .nth(1)
        .expect("a path")
        .split('"')
        .next()
        .expect("its data");
    let mut dark = vec![false; size * size];
    for run in path.split('M').filter(|run| !run.is_empty()) {
        let (x, rest) = run.split_once(' ').expect("x y");
        let (y, rest) = rest.split_once('h').expect("a run");
        let length = rest.split('v').next().expect("length");
        let (x, y, length): (usize, usize, usize) = (
            x.parse().unwrap(),
            y.parse().unwrap(),
            length.parse().unwrap(),
        );
        for module in x..x + length {
            dark[y * size + module] = true;
        }
    }
    const SCALE: usize = 4;
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(size * SCALE, size * SCALE, |x, y| {
            if dark[(y / SCALE) * size + x / SCALE] {
                0
            } else {
                255
            }
        });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    let (_, content) = grids[0].decode().expect("it decodes");
    content
}

#[tokio::test]
async fn without_javascript_the_page_still_shows_the_invoice_and_says_why_to_turn_it_on() {
    let shop = shop(|layer| layer);
    let answer = page(&shop).await;
    // Server-rendered: the QR code, the price, the invoice, the expiry.
    assert!(answer.body.contains("<figure id=\"qr\"><svg"));
    assert!(answer.body.contains(">10.5 sat<"));
    assert!(answer.body.contains(&answer.invoice()));
    assert!(answer.body.contains("<span id=\"countdown\">60 s</span>"));
    assert!(answer.body.contains("<noscript>"));
    // The buttons that need the script stay hidden without it.
    for id in ["pay-webln", "copy", "reload"] {
        assert!(answer.body.contains(&format!("id=\"{id}\" hidden")), "{id}");
    }
    assert!(answer.body.contains(">Pay with a browser wallet</button>"));
    assert!(
        answer
            .body
            .contains("name=\"viewport\" content=\"width=device-width, initial-scale=1\"")
    );
}

#[tokio::test]
async fn a_render_hook_draws_its_own_page_from_the_challenge() {
    let shop = shop(|layer| {
        layer.paywall(
            Paywall::new()
                .render(|page: &PaywallPage<'_>| {
                    format!(
                        "<!doctype html><h1>{}</h1><p id=\"hash\">{}</p><p>{} {}</p>{}",
                        x402_lightning::paywall::escape_html(&page.price_text()),
                        page.payment_hash_hex(),
                        page.network(),
                        page.expires_in_secs(),
                        page.unlocking_elements(),
                    )
                })
                .content_security_policy("default-src 'none'"),
        )
    });
    let answer = page(&shop).await;
    assert!(
        answer.body.starts_with("<!doctype html><h1>10.5 sat</h1>"),
        "{}",
        answer.body
    );
    assert!(
        answer
            .body
            .contains(&format!("<p id=\"hash\">{}</p>", answer.payment_hash()))
    );
    assert!(answer.body.contains("lightning-regtest 60"));
    assert_eq!(
        answer.header("content-security-policy"),
        Some("default-src 'none'")
    );
    assert!(answer.header("payment-required").is_some());
}

// ---------------------------------------------------------------------------------------------
// The poll, and the paid request it leads to

#[tokio::test]
async fn a_page_learns_its_invoice_was_paid_and_its_preimage_unlocks_the_route() {
    let shop = shop(|layer| layer);
    let page = page(&shop).await;
    let hash = page.payment_hash();
    let invoice = page.invoice();

    let open = poll(&shop, &invoice).await;
    assert_eq!(open.status, StatusCode::OK);
    assert_eq!(open.json(), json!({"paymentHash": hash, "state": "open"}));
    assert_eq!(open.header("cache-control"), Some("no-store"));

    // Paid from another wallet.
    let paid = shop
        .mock
        .pay_invoice(&page.invoice())
        .expect("the mock pays");
    shop.clock.advance(Duration::from_secs(1));
    let answer = poll(&shop, &invoice).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"paymentHash": hash, "state": "paid", "preimage": paid.preimage})
    );
    let preimage = <[u8; 32]>::from_hex(&paid.preimage).expect("hex");
    assert_eq!(
        bitcoin::hex::DisplayHex::to_lower_hex_string(
            &sha256::Hash::hash(&preimage).to_byte_array()[..]
        ),
        hash
    );

    // What the page's script sends: the challenge it carries, accepted, with the preimage.
    let signature = proof_from_page(&page, &paid.preimage);
    let served = send(
        &shop.app,
        get_with("/weather", &[("payment-signature", &signature)]),
    )
    .await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    assert_eq!(served.json(), json!({"conditions": "sunny"}));
    assert!(served.header("payment-response").is_some());

    // Once: the same proof again is refused.
    let again = send(
        &shop.app,
        get_with("/weather", &[("payment-signature", &signature)]),
    )
    .await;
    assert_eq!(again.status, StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test]
async fn polls_ask_the_receiver_at_most_once_a_second_and_keep_its_last_answer() {
    let shop = shop(|layer| layer);
    let invoice = page(&shop).await.invoice();
    for _ in 0..5 {
        assert_eq!(poll(&shop, &invoice).await.json()["state"], "open");
    }
    assert_eq!(shop.mock.calls_to(FacilitatorCall::Invoice).len(), 1);
    shop.clock.advance(Duration::from_secs(1));
    let paid = shop.mock.pay_invoice(&invoice).expect("the mock pays");
    assert_eq!(
        poll(&shop, &invoice).await.json()["preimage"],
        paid.preimage
    );
    assert_eq!(shop.mock.calls_to(FacilitatorCall::Invoice).len(), 2);
    // A paid invoice stays paid: every poll after says so, without asking again.
    for _ in 0..3 {
        assert_eq!(poll(&shop, &invoice).await.json()["state"], "paid");
    }
    shop.clock.advance(Duration::from_secs(5));
    assert_eq!(
        poll(&shop, &invoice).await.json()["preimage"],
        paid.preimage
    );
    assert_eq!(shop.mock.calls_to(FacilitatorCall::Invoice).len(), 2);
}

#[tokio::test]
async fn an_invoice_is_open_until_its_proof_is_refused_then_expired() {
    let shop = shop(|layer| layer.clock_skew(Duration::from_secs(5)));
    let invoice = page(&shop).await.invoice();
    // Past its end, a payment made in its last moments may still land: still asked, still open.
    shop.clock.advance(Duration::from_secs(61));
    assert_eq!(poll(&shop, &invoice).await.json()["state"], "open");
    assert_eq!(shop.mock.calls_to(FacilitatorCall::Invoice).len(), 1);
    // Past the skew its proof is refused: expired, without asking anyone.
    shop.clock.advance(Duration::from_secs(5));
    assert_eq!(poll(&shop, &invoice).await.json()["state"], "expired");
    assert_eq!(shop.mock.calls_to(FacilitatorCall::Invoice).len(), 1);
}

#[tokio::test]
async fn only_invoices_of_the_layers_receiver_can_be_polled() {
    let shop = shop(|layer| layer);
    // An API client's invoice is one of the receiver's: its holder may poll it.
    let api = send(
        &shop.app,
        get_with("/weather", &[("accept", "application/json")]),
    )
    .await;
    assert_eq!(poll(&shop, &api.invoice()).await.json()["state"], "open");

    // Another node's invoice, with a request hash: not asked about.
    let foreign = MockFacilitator::new()
        .create_invoice(&InvoiceRequest {
            network: Network::Regtest,
            amount_msat: 10_500,
            description_hash: Some([7; 32]),
            expiry_secs: 60,
            resource: format!("{ORIGIN}/weather"),
            description: String::new(),
            mime_type: String::new(),
        })
        .await
        .expect("minted");
    let answer = poll(&shop, &foreign).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);

    // The receiver's own invoice for the seed flow alone (a text description): not a page's.
    let ask = |description_hash| InvoiceRequest {
        network: Network::Regtest,
        amount_msat: 10_500,
        description_hash,
        expiry_secs: 60,
        resource: format!("{ORIGIN}/weather"),
        description: "weather".to_owned(),
        mime_type: String::new(),
    };
    let v1_invoice = shop.mock.create_invoice(&ask(None)).await.expect("minted");
    assert_eq!(poll(&shop, &v1_invoice).await.status, StatusCode::NOT_FOUND);
    // The receiver's invoice on another network: not this layer's.
    let testnet = MockFacilitator::builder().network(Network::Testnet).build();
    let on_testnet = InvoiceRequest {
        network: Network::Testnet,
        ..ask(Some([7; 32]))
    };
    let other_network = testnet.create_invoice(&on_testnet).await.expect("minted");
    assert_eq!(
        poll(&shop, &other_network).await.status,
        StatusCode::NOT_FOUND
    );

    let hash = page(&shop).await.payment_hash();
    for bad in ["", "abc", hash.as_str(), "lnbcrt1junk", &"x".repeat(5_000)] {
        let answer = poll(&shop, bad).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad:.20}");
    }
    let invoice = api.invoice();
    let twice = Request::get("/weather")
        .header(POLL, &invoice)
        .header(POLL, &invoice)
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&shop.app, twice).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        shop.mock.calls_to(FacilitatorCall::Invoice).len(),
        1,
        "only the receiver's own invoice was asked about"
    );
}

#[tokio::test]
async fn any_instance_answers_a_pages_poll() {
    // Two instances behind one facilitator: the page from one, its polls through the other.
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let instance = || {
        X402Layer::builder(mock.clone(), Network::Regtest)
            .public_base_url(ORIGIN)
            .clock(clock.clone())
            .route("GET /weather", Price::sats(10))
            .build()
            .expect("layer")
    };
    let (first, second) = (instance(), instance());
    second.check_facilitator().await.expect("the mock answers");
    let app = |layer| {
        Router::new()
            .route("/weather", get(|| async { "sunny" }))
            .layer(layer)
    };
    let (first, second) = (app(first), app(second));
    let page = send(&first, get_with("/weather", &[("accept", NAVIGATION)])).await;
    assert!(page.is_page());
    let paid = mock.pay_invoice(&page.invoice()).expect("paid");
    let answer = send(&second, get_with("/weather", &[(POLL, &page.invoice())])).await;
    assert_eq!(answer.json()["preimage"], paid.preimage);
}

#[tokio::test]
async fn a_fresh_instance_that_does_not_know_its_receiver_yet_says_ask_again() {
    let clock = ManualClock::starting_now();
    let mock = MockFacilitator::builder().clock(clock.clone()).build();
    let shop = shop(|layer| layer);
    let invoice = page(&shop).await.invoice();
    let layer = X402Layer::builder(mock, Network::Regtest)
        .public_base_url(ORIGIN)
        .clock(clock)
        .route("GET /weather", Price::sats(10))
        .build()
        .expect("layer");
    let app = Router::new()
        .route("/weather", get(|| async { "sunny" }))
        .layer(layer);
    let answer = send(&app, get_with("/weather", &[(POLL, &invoice)])).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn without_a_paywall_the_poll_header_is_an_ordinary_request() {
    let shop = shop(|layer| layer);
    let invoice = page(&shop).await.invoice();
    let answer = send(&shop.app, get_with("/api", &[(POLL, &invoice)])).await;
    assert_eq!(answer.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(shop.mock.calls_to(FacilitatorCall::Invoice).len(), 0);
}

#[tokio::test]
async fn a_route_binding_a_header_a_page_cannot_send_gets_no_page() {
    let shop = shop(|layer| {
        layer
            .route(
                "GET /mine",
                PriceTag::fixed(Price::sats(1)).bind_headers(["cookie"]),
            )
            .route(
                "GET /versioned",
                PriceTag::fixed(Price::sats(1)).bind_headers(["x-api-version"]),
            )
    });
    let navigation = [
        ("accept", NAVIGATION),
        ("cookie", "session=secret"),
        ("x-api-version", "</script><b>2"),
    ];
    let mine = send(&shop.app, get_with("/mine", &navigation)).await;
    assert_eq!(mine.status, StatusCode::PAYMENT_REQUIRED);
    assert!(!mine.is_page());
    assert!(!mine.body.contains("secret"));
    // A header a page can send: its value goes into the page's data, escaped.
    let versioned = send(&shop.app, get_with("/versioned", &navigation)).await;
    assert!(versioned.is_page());
    assert_eq!(
        versioned.data_block("x402-paywall")["headers"],
        json!({"x-api-version": "</script><b>2"})
    );
    assert!(!versioned.body.contains("</script><b>"));
    assert!(!versioned.body.contains("secret"));
}

async fn poll_through(
    script: impl Fn(&[u8; 32]) -> Result<Option<InvoiceStatus>, ReceiverError> + Send + Sync + 'static,
) -> Answer {
    let receiver = ScriptedReceiver::new(MockFacilitator::new(), script);
    let shop = shop(|layer| layer.receiver(receiver));
    let invoice = page(&shop).await.invoice();
    poll(&shop, &invoice).await
}

#[tokio::test]
async fn a_receiver_that_cannot_tell_makes_the_poll_501() {
    let answer = poll_through(|_| Err(ReceiverError::Unsupported)).await;
    assert_eq!(answer.status, StatusCode::NOT_IMPLEMENTED);
    assert!(
        answer.json()["error"]
            .as_str()
            .is_some_and(|error| error.contains("browser wallet"))
    );
}

#[tokio::test]
async fn a_receiver_that_does_not_know_the_invoice_makes_the_poll_404() {
    let answer = poll_through(|_| Ok(None)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_receiver_reporting_a_preimage_that_does_not_hash_is_502() {
    let answer = poll_through(|hash| {
        Ok(Some(InvoiceStatus {
            payment_hash: bitcoin::hex::DisplayHex::to_lower_hex_string(&hash[..]),
            state: InvoiceState::Paid,
            preimage: Some("11".repeat(32)),
        }))
    })
    .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert!(!answer.body.contains(&"11".repeat(32)), "never echoed");
}

#[tokio::test]
async fn a_receiver_failure_makes_the_poll_502_and_the_page_asks_again() {
    let answer = poll_through(|_| {
        Err(ReceiverError::Failed {
            message: "down".into(),
            timed_out: false,
        })
    })
    .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    let answer = poll_through(|_| {
        Err(ReceiverError::Failed {
            message: "slow".into(),
            timed_out: true,
        })
    })
    .await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_poll_on_a_free_route_reaches_its_handler_untouched() {
    let shop = shop(|layer| layer);
    let app = Router::new()
        .route("/free", get(|| async { "free" }))
        .merge(shop.app.clone());
    let answer = send(&app, get_with("/free", &[(POLL, "lnbcrt1")])).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "free");
}
